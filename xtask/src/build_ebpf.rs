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
    let mut list = Command::new(tools.llvm_nm());
    list.arg("--just-symbol-name")
        .arg(&built)
        .env("LD_LIBRARY_PATH", tools.sysroot.join("lib"));
    let renames = stable_symbol_names(&toolchain::output(&mut list)?)?;
    let mut strip = Command::new(tools.llvm_objcopy());
    strip.arg("--strip-debug");
    for (from, to) in &renames {
        strip.arg(format!("--redefine-sym={from}={to}"));
    }
    strip
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

/// New names for the Rust symbols of `symbols` (one per line) whose crate roots carry a
/// disambiguator (`_RNvNtCs<hash>_8nettrace7capture14copy_into_ring`): the same names without
/// it (`_RNvNtC8nettrace7capture14copy_into_ring`). Cargo derives the hash from the crates'
/// paths (`nettrace-common` lies outside the eBPF crate's workspace), so a function the
/// compiler kept out of line would otherwise make the object differ with the folder it is
/// built in. Fails if a new name would demangle to another path than the old one (the
/// shortening moves the targets of back-references, and the scan does not parse the
/// grammar), or if two symbols would get one name.
fn stable_symbol_names(symbols: &str) -> Result<Vec<(String, String)>> {
    let mut renames = Vec::new();
    let mut taken: std::collections::HashSet<&str> = symbols.lines().collect();
    let mut new_names = std::collections::HashSet::new();
    for symbol in symbols.lines() {
        let stable = without_disambiguators(symbol);
        if stable == symbol || !taken.contains(symbol) {
            continue;
        }
        let demangled = |name: &str| format!("{:#}", rustc_demangle::demangle(name));
        if demangled(&stable) != demangled(symbol) {
            anyhow::bail!(
                "renaming {symbol} to {stable} would change what it names ({} -> {})",
                demangled(symbol),
                demangled(&stable)
            );
        }
        taken.remove(symbol);
        if taken.contains(stable.as_str()) || !new_names.insert(stable.clone()) {
            anyhow::bail!("two symbols would be named {stable}");
        }
        renames.push((symbol.to_owned(), stable));
    }
    Ok(renames)
}

/// `symbol` with the disambiguators of its crate roots (`Cs<base62>_` before a crate name's
/// length) removed, if it is a Rust v0 symbol.
fn without_disambiguators(symbol: &str) -> String {
    if !symbol.starts_with("_R") {
        return symbol.to_owned();
    }
    let bytes = symbol.as_bytes();
    let mut out = String::with_capacity(symbol.len());
    let mut at = 0;
    while at < bytes.len() {
        if bytes[at] == b'C' && bytes.get(at + 1) == Some(&b's') {
            let hash_end = bytes[at + 2..]
                .iter()
                .position(|b| !b.is_ascii_alphanumeric())
                .map(|len| at + 2 + len);
            if let Some(end) = hash_end
                && bytes[end] == b'_'
                && bytes.get(end + 1).is_some_and(u8::is_ascii_digit)
            {
                out.push('C');
                at = end + 1;
                continue;
            }
        }
        out.push(char::from(bytes[at]));
        at += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crate_disambiguators_are_dropped_from_rust_symbols_only() {
        assert_eq!(
            without_disambiguators("_RNvNtCse9Qs1aEn59e_8nettrace7capture14copy_into_ring"),
            "_RNvNtC8nettrace7capture14copy_into_ring"
        );
        assert_eq!(
            without_disambiguators("_RNvNtCs1234_4core4hint10black_box"),
            "_RNvNtC4core4hint10black_box"
        );
        // Not Rust v0, or no disambiguator: unchanged.
        for name in ["memmove", "Cs12_3abc", "_RNvNtC8nettrace7capture4copy"] {
            assert_eq!(without_disambiguators(name), name);
        }
    }

    #[test]
    fn two_symbols_that_would_share_a_name_fail_the_build() {
        let renames = stable_symbol_names("memmove\n_RNvCs1_8nettrace1f\n").unwrap();
        assert_eq!(
            renames,
            [(
                "_RNvCs1_8nettrace1f".to_owned(),
                "_RNvC8nettrace1f".to_owned()
            )]
        );
        assert!(stable_symbol_names("_RNvCs1_8nettrace1f\n_RNvCs2_8nettrace1f\n").is_err());
        assert!(stable_symbol_names("_RNvC8nettrace1f\n_RNvCs2_8nettrace1f\n").is_err());
    }

    #[test]
    fn a_rename_that_would_move_a_back_reference_fails_the_build() {
        // `drop_in_place::<(Foo, Foo)>`: the second `Foo` refers back to the first by its
        // offset, which the shorter name would move.
        let pair = "_RINvNtCs1234_4core3ptr13drop_in_placeTNtCs5678_8nettrace3FooBA_EE";
        let printed = format!("{:#}", rustc_demangle::demangle(pair));
        assert_eq!(
            printed,
            "core::ptr::drop_in_place::<(nettrace::Foo, nettrace::Foo)>"
        );
        assert!(stable_symbol_names(pair).is_err());
    }
}
