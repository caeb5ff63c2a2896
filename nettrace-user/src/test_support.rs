//! Helpers shared by the unit tests.

/// Says loudly that `test` did not run, and why: on the process's stderr, which libtest does
/// not capture, so the line shows in every run (CI runs as root, where nothing is skipped).
pub(crate) fn skipped(test: &str, reason: impl std::fmt::Display) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stderr(), "SKIPPED {test}: {reason}");
}
