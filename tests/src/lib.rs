//! Shared helpers of the nettrace integration tests.
//!
//! Tests that need root call [`require_root`] first. When the process is not root, the test
//! is skipped *loudly*: the line goes straight to the process's stderr (libtest does not
//! capture direct writes), so `cargo test` shows it next to the test's `ok`.
use std::io::Write;

pub mod daemon;
pub mod fixtures;
pub mod netns;
pub mod scenario;
pub mod tshark;
pub mod unprivileged;

/// True when the calling test may run root-only scenarios; otherwise prints a SKIPPED line
/// naming the test and the reason, and returns false.
pub fn require_root(test: &str) -> bool {
    if is_root() {
        return true;
    }
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    skip(
        test,
        &format!("needs root for eBPF/netlink/netns (running as euid {euid})"),
    );
    false
}

/// True when the process runs as root (quietly: for tests that only skip some failures).
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Says loudly that `test` is skipped and why. The line goes straight to the process's stderr,
/// which libtest does not capture, so it shows in `cargo test` output next to the `ok`.
pub fn skip(test: &str, reason: &str) {
    let _ = writeln!(std::io::stderr(), "SKIPPED {test}: {reason}");
}
