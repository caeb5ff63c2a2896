//! Installs what the eBPF build needs, idempotently: the nightly components `rust-src` (for
//! `build-std`) and `llvm-tools` (for `llvm-objcopy`), and bpf-linker built against the
//! nightly's own LLVM (Debian's LLVM is older than the bitcode rustc emits).
//!
//! bpf-linker is installed under `$NETTRACE_TOOLS_DIR` (default `~/.cache/nettrace/tools`), in a
//! folder named after its version and the LLVM it links, beside a private copy of the nightly's
//! `libLLVM` so that a nightly update cannot pull the library away from under it.
use std::{
    env, fs,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context, Result, bail};

/// The bpf-linker release known to work with aya-ebpf 0.2 here.
const BPF_LINKER_VERSION: &str = "0.13.0";

/// The pieces of the nightly toolchain the build uses.
pub(crate) struct Toolchain {
    /// The nightly sysroot (holds `lib/libLLVM*` and the llvm-tools binaries).
    pub(crate) sysroot: PathBuf,
    /// The host triple of the nightly (where its llvm-tools live).
    pub(crate) host: String,
    /// Folder holding the `bpf-linker` binary, to put first on PATH.
    pub(crate) bpf_linker_dir: PathBuf,
}

impl Toolchain {
    /// Path of the nightly's `llvm-objcopy` (from the `llvm-tools` component).
    pub(crate) fn llvm_objcopy(&self) -> PathBuf {
        self.llvm_tool("llvm-objcopy")
    }

    /// Path of the nightly's `llvm-nm` (from the `llvm-tools` component).
    pub(crate) fn llvm_nm(&self) -> PathBuf {
        self.llvm_tool("llvm-nm")
    }

    fn llvm_tool(&self, name: &str) -> PathBuf {
        self.sysroot
            .join("lib/rustlib")
            .join(&self.host)
            .join("bin")
            .join(name)
    }
}

/// Makes sure every piece is present, installing what is missing.
pub(crate) fn ensure() -> Result<Toolchain> {
    run(Command::new("rustup").args([
        "component",
        "add",
        "rust-src",
        "llvm-tools",
        "--toolchain",
        "nightly",
    ]))?;
    let sysroot = PathBuf::from(output(
        Command::new("rustc").args(["+nightly", "--print", "sysroot"]),
    )?);
    let version = output(Command::new("rustc").args(["+nightly", "-vV"]))?;
    let llvm_major = version_field(&version, "LLVM version: ")
        .and_then(|v| v.split('.').next())
        .context("`rustc +nightly -vV` does not name its LLVM version")?
        .to_owned();
    let host = version_field(&version, "host: ")
        .context("`rustc +nightly -vV` does not name its host")?
        .to_owned();
    let bpf_linker_dir = ensure_bpf_linker(&sysroot, &llvm_major)?;
    Ok(Toolchain {
        sysroot,
        host,
        bpf_linker_dir,
    })
}

fn ensure_bpf_linker(sysroot: &Path, llvm_major: &str) -> Result<PathBuf> {
    let tools = tools_dir()?;
    let root = tools.join(format!("bpf-linker-{BPF_LINKER_VERSION}-llvm{llvm_major}"));
    let bin = root.join("bin");
    let linker = bin.join("bpf-linker");
    if linker.is_file()
        && Command::new(&linker)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    {
        return Ok(bin);
    }
    let prefix = tools.join(format!("llvm{llvm_major}"));
    copy_libllvm(sysroot, &prefix.join("lib"))?;
    eprintln!(
        "installing bpf-linker {BPF_LINKER_VERSION} against LLVM {llvm_major} into {}",
        root.display()
    );
    run(Command::new("cargo")
        .args([
            "install",
            "bpf-linker",
            "--version",
            BPF_LINKER_VERSION,
            "--locked",
        ])
        .args([
            "--no-default-features",
            "--features",
            &format!("llvm-{llvm_major}"),
        ])
        .arg("--root")
        .arg(&root)
        .env("LLVM_PREFIX", &prefix))?;
    Ok(bin)
}

/// Copies the nightly's `libLLVM.so.*` into `lib` and links it as `libLLVM.so`.
fn copy_libllvm(sysroot: &Path, lib: &Path) -> Result<()> {
    let source_dir = sysroot.join("lib");
    let library = fs::read_dir(&source_dir)
        .with_context(|| format!("listing {}", source_dir.display()))?
        .filter_map(|entry| entry.ok())
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .find(|name| name.starts_with("libLLVM.so."))
        .with_context(|| format!("no libLLVM.so.* in {}", source_dir.display()))?;
    fs::create_dir_all(lib)?;
    let target = lib.join(&library);
    if !target.is_file() {
        fs::copy(source_dir.join(&library), &target)
            .with_context(|| format!("copying {library} to {}", lib.display()))?;
    }
    let link = lib.join("libLLVM.so");
    let _ = fs::remove_file(&link);
    std::os::unix::fs::symlink(&library, &link)
        .with_context(|| format!("linking {}", link.display()))?;
    Ok(())
}

fn tools_dir() -> Result<PathBuf> {
    if let Some(dir) = env::var_os("NETTRACE_TOOLS_DIR") {
        return Ok(PathBuf::from(dir));
    }
    let home = env::var_os("HOME").context("HOME is not set (or set NETTRACE_TOOLS_DIR)")?;
    Ok(PathBuf::from(home).join(".cache/nettrace/tools"))
}

/// The value of a `key: value` line of `rustc -vV`.
fn version_field<'a>(rustc_version: &'a str, key: &str) -> Option<&'a str> {
    rustc_version
        .lines()
        .find_map(|line| line.strip_prefix(key))
}

/// Runs a command, failing with its command line when it does not succeed.
pub(crate) fn run(command: &mut Command) -> Result<()> {
    let status = command
        .status()
        .with_context(|| format!("starting {command:?}"))?;
    if !status.success() {
        bail!("{command:?} failed: {status}");
    }
    Ok(())
}

/// Runs `command` and returns its standard output.
pub(crate) fn output(command: &mut Command) -> Result<String> {
    let out = command
        .output()
        .with_context(|| format!("starting {command:?}"))?;
    if !out.status.success() {
        bail!(
            "{command:?} failed: {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_read_from_rustc_version() {
        let text = "rustc 1.97.0-nightly\nhost: x86_64-unknown-linux-gnu\nLLVM version: 22.1.4\n";
        assert_eq!(version_field(text, "LLVM version: "), Some("22.1.4"));
        assert_eq!(
            version_field(text, "host: "),
            Some("x86_64-unknown-linux-gnu")
        );
        assert_eq!(version_field("rustc 1.0", "host: "), None);
    }
}
