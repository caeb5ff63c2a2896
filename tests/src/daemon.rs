//! Starting `nettrace-loader serve` for a test on a socket in a temporary folder (never the
//! default path), killed when dropped.
//!
//! ```no_run
//! # let loader = std::path::Path::new("nettrace-loader");
//! let dir = nettrace_tests::scenario::TempDir::new("serve");
//! let daemon = nettrace_tests::daemon::Daemon::start(loader, &dir);
//! println!("clients connect to {}", daemon.socket().display());
//! ```
use std::{
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use crate::scenario::TempDir;

/// A running daemon, killed on drop.
pub struct Daemon {
    child: Child,
    socket: PathBuf,
}

impl Daemon {
    /// Starts `loader serve` on `loader.sock` in `dir` (made enterable by every user) and
    /// waits until it listens.
    pub fn start(loader: &Path, dir: &TempDir) -> Self {
        let socket = dir.path("loader.sock");
        std::fs::set_permissions(dir.path(""), std::fs::Permissions::from_mode(0o755))
            .expect("chmod");
        let child = Command::new(loader)
            .arg("serve")
            .arg("--socket")
            .arg(&socket)
            .stderr(Stdio::inherit())
            .spawn()
            .expect("starting the daemon");
        let daemon = Self { child, socket };
        let deadline = Instant::now() + Duration::from_secs(20);
        while !daemon.socket.exists() {
            assert!(Instant::now() < deadline, "the daemon never listened");
            // A timeout guard on another process's start, not synchronisation within this one.
            std::thread::sleep(Duration::from_millis(20));
        }
        daemon
    }

    /// The socket clients connect to.
    pub fn socket(&self) -> &Path {
        &self.socket
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The trace a successful `nettrace get` printed, checked to hold one TCP connection and
/// complete kernel data that came through the daemon.
pub fn trace_through_daemon(out: &crate::scenario::CommandOutput) -> nettrace::model::HttpTrace {
    assert_eq!(out.code, Some(0), "{out:?}");
    let trace: nettrace::model::HttpTrace = serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("not a JSON trace ({e}): {out:?}"));
    let status = trace.net_trace.kernel_data.clone().expect("kernelData");
    assert!(status.available && status.complete, "{status:?}");
    assert!(status.reason.contains("daemon"), "{status:?}");
    assert_eq!(trace.net_trace.tcp_conns.len(), 1, "{out:?}");
    trace
}
