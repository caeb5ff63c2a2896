//! `cargo xtask build-ebpf`: builds `nettrace-ebpf` for `bpfel-unknown-none`, strips its debug
//! info (BTF and BTF.ext stay: the loader needs them) and writes the object with its stamp.
use std::{env, ffi::OsString, fs, path::Path, process::Command};

use anyhow::{Context, Result};

use crate::{stamp, toolchain};

/// The flags of `nettrace-ebpf/.cargo/config.toml`, plus path remapping so that the object
/// (its BTF line info names source files) is the same whichever folder it is built in.
fn rustflags(root: &Path, sysroot: &Path) -> Vec<String> {
    let mut flags: Vec<String> = ["-C", "debuginfo=2", "-C", "link-arg=--btf"]
        .map(String::from)
        .to_vec();
    let mut remap = |from: &Path, to: &str| {
        flags.push("--remap-path-prefix".into());
        flags.push(format!("{}={to}", from.display()));
    };
    remap(root, "nettrace");
    remap(sysroot, "rust");
    if let Some(home) = env::var_os("CARGO_HOME")
        .or_else(|| env::var_os("HOME").map(|h| Path::new(&h).join(".cargo").into_os_string()))
    {
        remap(Path::new(&home), "cargo");
    }
    flags
}

/// Builds the object into `out_dir`.
pub(crate) fn run(root: &Path, out_dir: &Path) -> Result<()> {
    let tools = toolchain::ensure()?;
    let crate_dir = root.join("nettrace-ebpf");
    let mut path = OsString::from(&tools.bpf_linker_dir);
    if let Some(old) = env::var_os("PATH") {
        path.push(":");
        path.push(old);
    }
    let mut build = Command::new("cargo");
    build
        .current_dir(&crate_dir)
        .args(["+nightly", "build", "--release", "--locked"])
        .env("PATH", &path)
        .env(
            "CARGO_ENCODED_RUSTFLAGS",
            rustflags(root, &tools.sysroot).join("\x1f"),
        )
        // The outer `cargo xtask` sets these for the stable toolchain; the nightly build must
        // not inherit them.
        .env_remove("RUSTC")
        .env_remove("RUSTUP_TOOLCHAIN")
        .env_remove("CARGO_TARGET_DIR");
    toolchain::run(&mut build)?;

    let built = crate_dir.join("target/bpfel-unknown-none/release/nettrace");
    fs::create_dir_all(out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
    let object = out_dir.join(stamp::OBJECT_FILE);
    let mut strip = Command::new(tools.llvm_objcopy());
    strip
        .arg("--strip-debug")
        .arg(&built)
        .arg(&object)
        .env("LD_LIBRARY_PATH", tools.sysroot.join("lib"));
    toolchain::run(&mut strip)?;

    let source_stamp = stamp::compute(root)?;
    fs::write(out_dir.join(stamp::STAMP_FILE), format!("{source_stamp}\n"))?;
    let size = fs::metadata(&object)?.len();
    println!(
        "wrote {} ({size} bytes), stamp {source_stamp}",
        object.display()
    );
    Ok(())
}
