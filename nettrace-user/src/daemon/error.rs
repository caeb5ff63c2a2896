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
    /// The daemon speaks another version of the records it forwards (see
    /// [`protocol::VERSION`](super::protocol::VERSION)): its events would be misread.
    #[error(
        "the daemon speaks version {daemon} of the kernel records and this library version \
         {library}: the daemon (nettrace-loader) and the library must come from the same \
         nettrace release"
    )]
    VersionMismatch {
        /// The daemon's version.
        daemon: u32,
        /// This library's version.
        library: u32,
    },
    /// The daemon does not know the version handshake (it answered the hello as an unknown
    /// request): it is older than this library, and its events would be misread.
    #[error(
        "the daemon predates the version handshake (this library speaks version {library} of \
         the kernel records): the daemon (nettrace-loader) and the library must come from the \
         same nettrace release"
    )]
    PredatesHandshake {
        /// This library's version.
        library: u32,
    },
    /// The daemon sent something this client does not understand, closed the connection,
    /// or did not answer in time.
    #[error("unexpected answer from the daemon: {0}")]
    Protocol(String),
}
