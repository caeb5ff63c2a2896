//! [`DaemonError`]: what can go wrong between the daemon and its clients.
use std::io;

use crate::kernel::KernelError;

/// Errors of the daemon and its client.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// A socket call failed.
    #[error("daemon socket I/O failed")]
    Io(#[source] io::Error),
    /// The kernel programs could not be loaded.
    #[error("the kernel programs are unavailable")]
    Kernel(#[source] KernelError),
    /// The daemon refused a request.
    #[error("the daemon refused: {0}")]
    Refused(String),
    /// The daemon sent something this client does not understand, closed the connection,
    /// or did not answer in time.
    #[error("unexpected answer from the daemon: {0}")]
    Protocol(String),
}
