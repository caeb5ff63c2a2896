//! The daemon's messages: one JSON value per `SOCK_SEQPACKET` message.
use serde::{Deserialize, Serialize};

/// Largest message either side reads; longer ones are cut and rejected.
pub const MAX_MESSAGE: usize = 4096;

/// What a client asks.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Request {
    /// Trace the socket whose descriptor comes with the message (exactly one).
    Register,
    /// Stop tracing a socket this client registered (its descriptor comes with the message).
    Unregister,
}

/// What the daemon sends.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum Message {
    /// A request succeeded; `cookie` is the socket's.
    Ok {
        /// The socket cookie read from the descriptor.
        cookie: u64,
    },
    /// A request failed.
    Error {
        /// Why.
        error: String,
    },
    /// A kernel event about one of this client's sockets.
    Event(WireEvent),
}

/// A kernel event as the daemon forwards it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireEvent {
    /// The socket's cookie.
    pub cookie: u64,
    /// `CLOCK_MONOTONIC` nanoseconds.
    pub time_ns: u64,
    /// `tcp-state`, `sock-ops`, `sock-msg`, `tcp-reset` or `packet`.
    pub kind: String,
    /// The event's fields (Rust debug form).
    pub detail: String,
    /// For a packet, its captured bytes (hex).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub data: String,
}
