//! The loader daemon (`nettrace-loader serve`): kernel facts for unprivileged processes.
//!
//! The daemon (root) loads the programs once and listens on a Unix `SOCK_SEQPACKET` socket
//! (one message per packet). A client proves that it owns a socket by passing its descriptor
//! (`SCM_RIGHTS`) in a `register` request: the daemon reads the socket's cookie from the
//! descriptor, closes its copy, and traces the cookie in the client's own slot. A request can
//! name no cookie or descriptor number, so a client can only ever trace sockets it holds, and
//! the kernel's events and packets of a slot go to that client alone. When the client
//! disconnects, its slot and every socket it registered are removed.
//!
//! Messages are JSON ([`protocol`]); a malformed or hostile one gets an error reply and a log
//! line, never a crash. Events that do not fit in the client's socket buffer are dropped and
//! counted (a slow client cannot stall the daemon).
//!
//! ```no_run
//! # fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use nettrace::daemon::DaemonClient;
//! let mut daemon = DaemonClient::connect(std::path::Path::new("/run/nettrace/loader.sock"))?;
//! let socket = std::net::TcpListener::bind("127.0.0.1:0")?;
//! let cookie = daemon.register(&socket)?;
//! let event = daemon.next_event(std::time::Duration::from_secs(1))?;
//! # let _ = (cookie, event); Ok(()) }
//! ```
mod client;
pub mod protocol;
mod seqpacket;
mod server;

pub use client::{DaemonClient, DaemonError};
pub use server::{ServeOptions, serve};

/// Where the daemon listens unless told otherwise.
pub const DEFAULT_SOCKET_PATH: &str = "/run/nettrace/loader.sock";
