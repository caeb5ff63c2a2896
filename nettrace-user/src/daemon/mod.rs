//! The loader daemon (`nettrace-loader serve`): kernel facts for unprivileged processes.
//!
//! The daemon (root) loads the programs once and listens on a Unix `SOCK_SEQPACKET` socket
//! (one message per packet). A client first says `hello` with its version of the records the
//! daemon forwards ([`protocol::VERSION`]); the daemon serves nothing else until it has
//! accepted one, and a client refuses a daemon of another version or one older than the
//! handshake ([`DaemonError::VersionMismatch`], [`DaemonError::PredatesHandshake`]): the
//! daemon and the library must come from the same nettrace release, since a record read
//! with another layout would be silent garbage.
//!
//! A client proves that it owns a socket by passing its descriptor (`SCM_RIGHTS`) in a
//! `register` request: the daemon reads the socket's cookie from the descriptor, closes its
//! copy, and traces the cookie in the client's own slot. A request can
//! name no cookie or descriptor number to register, so a client can only ever trace sockets it
//! holds, and the kernel's events of a slot go to that client alone. When the client
//! disconnects, its slot and every socket it registered are removed.
//!
//! A client may also capture the packets of its own sockets: a `capture` request names the
//! interfaces (of the daemon's network namespace) and the snap length, and the packets of the
//! client's flows then come like its events. TCP flows are registered by the kernel at
//! connect; a UDP flow by a `capture-flow` request carrying the connected socket's descriptor
//! again, whose addresses the daemon reads itself. No request names an address, ICMP/ARP
//! capture is refused (those packets belong to no socket), and so is the NAT side of a flow.
//!
//! Events travel as the exact ring-buffer records the programs wrote, and the client decodes
//! them as the daemon does ([`protocol`]). A `sync` request makes the daemon hand on every
//! event that happened before it, then reply with its lost-event accounting: events it dropped
//! because the client read too slowly (they never stall the daemon), and the kernel's count
//! for the client's slot. A malformed or hostile request gets an error reply and a log line,
//! never a crash.
//!
//! The library's [`HttpClient`](crate::client::HttpClient) uses the daemon by itself when it may not
//! load the programs and the daemon's socket exists ([`socket_path`]), packet capture
//! included; otherwise (a daemon of another version among the reasons) it traces from
//! userspace only and the trace says why (and packet capture fails, naming the privilege).
//! [`DaemonClient`] is the same connection for a program that wants the events itself:
//!
//! ```no_run
//! # fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use nettrace::daemon::{DaemonClient, socket_path};
//! // Fails unless the daemon speaks this build's version (the handshake is part of connect).
//! let mut daemon = DaemonClient::connect(&socket_path(None))?;
//! let socket = std::net::TcpListener::bind("127.0.0.1:0")?;
//! let cookie = daemon.register(&socket)?;
//! daemon.sync()?;
//! let event = daemon.next_event(std::time::Duration::from_secs(1))?;
//! # let _ = (cookie, event); Ok(()) }
//! ```
use std::path::{Path, PathBuf};

mod capture;
mod client;
mod error;
pub(crate) mod link;
pub mod protocol;
mod seqpacket;
mod server;
mod slot;

pub use client::DaemonClient;
pub use error::DaemonError;
pub use link::SyncReport;
#[cfg(any(test, feature = "fuzzing"))]
pub(crate) use server::fuzz as server_fuzz;
pub use server::{MAX_SESSIONS_PER_USER, MAX_SOCKETS_PER_CLIENT, ServeOptions, serve};

/// Where the daemon listens unless told otherwise.
pub const DEFAULT_SOCKET_PATH: &str = "/run/nettrace/loader.sock";

/// The environment variable that overrides [`DEFAULT_SOCKET_PATH`] for clients.
pub const SOCKET_PATH_ENV: &str = "NETTRACE_DAEMON_SOCKET";

/// The daemon socket a client uses: `configured` when given, else `$NETTRACE_DAEMON_SOCKET`
/// when set and not empty, else [`DEFAULT_SOCKET_PATH`].
pub fn socket_path(configured: Option<&Path>) -> PathBuf {
    if let Some(path) = configured {
        return path.to_owned();
    }
    match std::env::var_os(SOCKET_PATH_ENV) {
        Some(path) if !path.is_empty() => PathBuf::from(path),
        _ => PathBuf::from(DEFAULT_SOCKET_PATH),
    }
}
