//! Shared helpers of the nettrace integration tests.
//!
//! Tests that need root call [`require_root`] first. When the process is not root, the test
//! is skipped *loudly*: the line goes straight to the process's stderr (libtest does not
//! capture direct writes), so `cargo test` shows it next to the test's `ok`.
use std::io::Write;

pub mod cpu;
pub mod daemon;
pub mod findings;
pub mod fixtures;
pub mod netns;
pub mod scenario;
pub mod tiny_rings;
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

/// A system program some tests drive, and the Debian package that provides it.
#[derive(Clone, Copy, Debug)]
pub struct Tool {
    /// The command (run with `--version` to check that it works).
    pub command: &'static str,
    /// The Debian package to install for it.
    pub package: &'static str,
}

/// `nft`: NAT rules and lossy links in test namespaces.
pub const NFT: Tool = Tool {
    command: "nft",
    package: "nftables",
};
/// `conntrack`: lists the kernel's conntrack table.
pub const CONNTRACK: Tool = Tool {
    command: "conntrack",
    package: "conntrack",
};
/// `tshark`: reads capture files as a user would.
pub const TSHARK: Tool = Tool {
    command: "tshark",
    package: "tshark",
};

/// True when every tool in `tools` runs; otherwise prints a SKIPPED line for `test` naming
/// the missing tool and how to install it, and returns false.
pub fn require_tools(test: &str, tools: &[Tool]) -> bool {
    for tool in tools {
        let problem = match std::process::Command::new(tool.command)
            .arg("--version")
            .output()
        {
            Ok(output) if output.status.success() => continue,
            Ok(output) => format!("`{} --version` failed ({})", tool.command, output.status),
            Err(e) => format!("`{}` is not installed ({e})", tool.command),
        };
        skip(
            test,
            &format!(
                "needs {}: {problem}; install it with `apt-get install {}`",
                tool.command, tool.package
            ),
        );
        return false;
    }
    true
}

/// Says loudly that `test` is skipped and why. The line goes straight to the process's stderr,
/// which libtest does not capture, so it shows in `cargo test` output next to the `ok`.
pub fn skip(test: &str, reason: &str) {
    let _ = writeln!(std::io::stderr(), "SKIPPED {test}: {reason}");
}
