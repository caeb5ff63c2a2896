//! The `daemon_session` target: request frames of unprivileged clients to the loader daemon.

/// Runs the request frames of `data` through two daemon sessions sharing one daemon (the
/// format and the checks are in `daemon/server_fuzz.rs`).
pub fn daemon_session(data: &[u8]) {
    crate::daemon::server_fuzz::run(data);
}
