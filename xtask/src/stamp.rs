//! The source stamp of the committed eBPF object: a SHA-256 over every file the object is built
//! from, so that a change to the eBPF or common sources without a rebuild is caught.
use std::{
    fs,
    path::{Path, PathBuf},
};

use anyhow::{Context, Result, bail};
use sha2::{Digest, Sha256};

/// Where the committed object and its stamp live, relative to the workspace root.
pub(crate) const OBJECT_DIR: &str = "nettrace-user/ebpf";
/// File name of the object.
pub(crate) const OBJECT_FILE: &str = "nettrace.bpf.o";
/// File name of the stamp (hex SHA-256 and a newline).
pub(crate) const STAMP_FILE: &str = "nettrace.bpf.o.stamp";

/// Files and folders (relative to the root) whose contents make up the stamp.
const INPUTS: &[&str] = &[
    "nettrace-ebpf/Cargo.toml",
    "nettrace-ebpf/Cargo.lock",
    "nettrace-ebpf/.cargo/config.toml",
    "nettrace-ebpf/src",
    "nettrace-common/Cargo.toml",
    "nettrace-common/src",
    // It renames the object's symbols.
    "xtask/src/build_ebpf.rs",
];

/// The workspace root (the parent of this crate's folder).
pub(crate) fn workspace_root() -> Result<PathBuf> {
    let manifest_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest_dir
        .parent()
        .map(Path::to_path_buf)
        .context("xtask has no parent folder")
}

/// The stamp of the sources under `root`.
pub(crate) fn compute(root: &Path) -> Result<String> {
    let mut files = Vec::new();
    for input in INPUTS {
        collect_files(&root.join(input), &mut files)?;
    }
    files.sort();
    let mut hasher = Sha256::new();
    for file in &files {
        let relative = file.strip_prefix(root).unwrap_or(file);
        let contents = fs::read(file).with_context(|| format!("reading {}", file.display()))?;
        // Length-prefix both parts so that no two different file sets hash alike.
        let name = relative.to_string_lossy();
        hasher.update((name.len() as u64).to_le_bytes());
        hasher.update(name.as_bytes());
        hasher.update((contents.len() as u64).to_le_bytes());
        hasher.update(&contents);
    }
    Ok(hex(&hasher.finalize()))
}

/// Fails, saying what to run, when the committed stamp differs from the sources' stamp.
pub(crate) fn check_committed(root: &Path) -> Result<()> {
    let stamp_path = root.join(OBJECT_DIR).join(STAMP_FILE);
    let committed = fs::read_to_string(&stamp_path)
        .with_context(|| format!("reading {}", stamp_path.display()))?;
    let current = compute(root)?;
    if committed.trim() != current {
        bail!(
            "the committed eBPF object is stale: {} says {} but the eBPF and common sources \
             hash to {current}; run `cargo xtask build-ebpf` and commit the result",
            stamp_path.display(),
            committed.trim()
        );
    }
    if !root.join(OBJECT_DIR).join(OBJECT_FILE).is_file() {
        bail!("{OBJECT_DIR}/{OBJECT_FILE} is missing; run `cargo xtask build-ebpf`");
    }
    Ok(())
}

fn collect_files(path: &Path, files: &mut Vec<PathBuf>) -> Result<()> {
    let meta = fs::metadata(path).with_context(|| format!("reading {}", path.display()))?;
    if meta.is_file() {
        files.push(path.to_path_buf());
        return Ok(());
    }
    for entry in fs::read_dir(path).with_context(|| format!("listing {}", path.display()))? {
        collect_files(&entry?.path(), files)?;
    }
    Ok(())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The check that the test command relies on: the committed object matches the sources.
    #[test]
    fn committed_ebpf_object_is_fresh() {
        let root = workspace_root().unwrap();
        if let Err(error) = check_committed(&root) {
            panic!("{error:#}");
        }
    }

    /// The stamp must notice any change to an input file, and the check must then fail.
    #[test]
    fn stamp_changes_when_a_source_changes() {
        let root = workspace_root().unwrap();
        let copy = std::env::temp_dir().join(format!("nettrace-stamp-{}", std::process::id()));
        let _ = fs::remove_dir_all(&copy);
        for input in INPUTS.iter().chain([&"nettrace-user/ebpf"]) {
            copy_tree(&root.join(input), &copy.join(input));
        }
        let before = compute(&copy).unwrap();
        check_committed(&copy).unwrap();
        let source = copy.join("nettrace-common/src/lib.rs");
        let mut text = fs::read_to_string(&source).unwrap();
        text.push_str("\n// changed\n");
        fs::write(&source, text).unwrap();
        assert_ne!(compute(&copy).unwrap(), before);
        let error = check_committed(&copy).unwrap_err().to_string();
        assert!(error.contains("stale"), "{error}");
        fs::remove_dir_all(&copy).unwrap();
    }

    fn copy_tree(from: &Path, to: &Path) {
        if from.is_file() {
            fs::create_dir_all(to.parent().unwrap()).unwrap();
            fs::copy(from, to).unwrap();
            return;
        }
        for entry in fs::read_dir(from).unwrap() {
            let entry = entry.unwrap();
            copy_tree(&entry.path(), &to.join(entry.file_name()));
        }
    }
}
