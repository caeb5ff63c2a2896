//! Cgroups for `trace`: a fresh one for the command (removed afterwards), and the cgroup of a
//! running process.
use std::{
    fs,
    os::fd::{AsRawFd, OwnedFd},
    path::{Path, PathBuf},
};

use anyhow::{Context, Result, bail};

/// A cgroup made for one traced command; removed when dropped (if it is empty by then).
pub(crate) struct FreshCgroup {
    path: PathBuf,
}

impl FreshCgroup {
    /// Creates `<cgroup2 root>/nettrace-loader-<pid>`.
    pub(crate) fn create() -> Result<Self> {
        let root = cgroup2_root()?;
        let path = root.join(format!("nettrace-loader-{}", std::process::id()));
        // A leftover of a killed loader with the same pid is reused if empty.
        match fs::create_dir(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e).with_context(|| format!("creating cgroup {}", path.display())),
        }
        Ok(Self { path })
    }

    /// The cgroup's path.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// `cgroup.procs`, opened for a child to move itself in before it execs.
    pub(crate) fn procs_file(&self) -> Result<OwnedFd> {
        let file = fs::OpenOptions::new()
            .write(true)
            .open(self.path.join("cgroup.procs"))
            .with_context(|| format!("opening {}/cgroup.procs", self.path.display()))?;
        Ok(file.into())
    }
}

impl Drop for FreshCgroup {
    fn drop(&mut self) {
        if let Err(error) = fs::remove_dir(&self.path) {
            tracing::warn!(
                "cgroup {} not removed ({error}): a process of the command may still run there",
                self.path.display()
            );
        }
    }
}

/// Moves the calling process into the cgroup whose `cgroup.procs` is `fd`. Only
/// async-signal-safe calls: it runs in the forked child before `exec`.
pub(crate) fn join(fd: i32) -> std::io::Result<()> {
    let pid = b"0\n";
    // SAFETY: `fd` is an open descriptor inherited from the parent and `pid` a valid buffer
    // of its length; write(2) is async-signal-safe.
    let written = unsafe { libc::write(fd, pid.as_ptr().cast(), pid.len()) };
    if written < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// The raw descriptor number of `fd` (for [`join`] in the child).
pub(crate) fn raw(fd: &OwnedFd) -> i32 {
    fd.as_raw_fd()
}

/// The cgroup v2 path of process `pid` (from `/proc/PID/cgroup`).
pub(crate) fn of_pid(pid: u32) -> Result<PathBuf> {
    let text = fs::read_to_string(format!("/proc/{pid}/cgroup"))
        .with_context(|| format!("reading the cgroup of process {pid}"))?;
    let Some(relative) = text.lines().find_map(|line| line.strip_prefix("0::")) else {
        bail!("process {pid} has no cgroup v2 entry in /proc/{pid}/cgroup");
    };
    let root = cgroup2_root()?;
    // `0::/` is the root itself (joining "" would add a trailing slash).
    Ok(match relative.trim_start_matches('/') {
        "" => root,
        relative => root.join(relative),
    })
}

/// Mount point of the cgroup v2 hierarchy.
fn cgroup2_root() -> Result<PathBuf> {
    let mounts = fs::read_to_string("/proc/self/mounts").context("reading /proc/self/mounts")?;
    mounts
        .lines()
        .find_map(|line| {
            let mut fields = line.split_whitespace();
            let (_, target, fstype) = (fields.next()?, fields.next()?, fields.next()?);
            (fstype == "cgroup2").then(|| PathBuf::from(target.replace("\\040", " ")))
        })
        .context("no cgroup2 file system is mounted")
}
