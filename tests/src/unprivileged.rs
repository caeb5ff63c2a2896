//! Running a program as another (unprivileged) user from a root test: a copy of the binary
//! that any user may run, and the `setpriv` command that switches users.
use std::{
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    process::Command,
};

use crate::scenario::TempDir;

/// The uid and gid of user nobody.
pub const NOBODY: u32 = 65534;

/// A copy of a binary in a folder every user may enter (the build tree may be under a home
/// folder others cannot), removed with its folder on drop.
pub struct RunnableCopy {
    dir: TempDir,
    path: PathBuf,
}

impl RunnableCopy {
    /// Copies `binary` into a fresh world-readable folder.
    pub fn of(binary: &Path) -> Self {
        let dir = TempDir::new("runnable");
        let folder = dir.path("");
        std::fs::set_permissions(&folder, std::fs::Permissions::from_mode(0o755))
            .unwrap_or_else(|e| panic!("chmod {}: {e}", folder.display()));
        let name = binary.file_name().expect("a binary has a file name");
        let path = folder.join(name);
        std::fs::copy(binary, &path)
            .unwrap_or_else(|e| panic!("copying {}: {e}", binary.display()));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
            .unwrap_or_else(|e| panic!("chmod {}: {e}", path.display()));
        Self { dir, path }
    }

    /// Where the copy is.
    pub fn path(&self) -> &Path {
        let _ = &self.dir;
        &self.path
    }
}

/// `setpriv --reuid=UID --regid=UID --clear-groups -- program`: `program` run as user `uid`
/// (with the group of the same number), without any supplementary group.
pub fn as_user(uid: u32, program: &Path) -> Command {
    let mut command = Command::new("setpriv");
    command
        .arg(format!("--reuid={uid}"))
        .arg(format!("--regid={uid}"))
        .args(["--clear-groups", "--"])
        .arg(program);
    command
}
