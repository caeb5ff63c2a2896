//! [`TraceLimits`]: the ceiling on what one trace holds, so that a client that runs forever
//! (an agent probing its controller every few minutes, for weeks) uses bounded memory.
//!
//! Each limit counts records of the current trace: [`clear_trace`] and the streaming of a
//! completed request (which takes that request's records out of the tracer) make room again.
//! Whatever a limit leaves out is counted, per connection (`socketTrace.droppedSocketOps`) and
//! in the trace's `dropped` totals ([`DroppedRecords`](crate::model::DroppedRecords)): a trace
//! is never silently incomplete.
//!
//! With the defaults and every trace option on, one trace holds at most about
//! 1,000 x 1,000 socket operations of 48 bytes (48 MB) in the worst case of a thousand open
//! connections each at its operation limit; a keep-alive client with streaming holds one
//! request's records at a time (see BENCHMARKS.md for the measured ceiling).
//!
//! ```
//! use nettrace::{client::TraceOptions, limits::TraceLimits};
//!
//! let options = TraceOptions {
//!     sock_trace: true,
//!     limits: TraceLimits { socket_ops_per_conn: 200, ..TraceLimits::default() },
//!     ..TraceOptions::default()
//! };
//! # let _ = options;
//! ```
//!
//! [`clear_trace`]: crate::client::HttpClient::clear_trace

/// The most records of each kind one trace keeps; see the [module](self) documentation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TraceLimits {
    /// Socket operations logged per connection (with `sock_trace`); Go's fixed limit, 1,000,
    /// by default. The byte totals keep counting past it.
    pub socket_ops_per_conn: usize,
    /// DNS queries and replies (with `dns_query_trace`), over all resolver connections;
    /// 10,000 by default.
    pub dns_messages: usize,
    /// HTTP requests (each hop of a redirect chain counts); 10,000 by default.
    pub http_requests: usize,
    /// Dials, and TCP/UDP connections, and TLS tunnels (each kind counted on its own);
    /// 1,000 by default.
    pub connections: usize,
}

impl Default for TraceLimits {
    fn default() -> Self {
        Self {
            socket_ops_per_conn: 1_000,
            dns_messages: 10_000,
            http_requests: 10_000,
            connections: 1_000,
        }
    }
}

impl TraceLimits {
    /// No limit at all (memory grows until `clear_trace`, as before limits existed).
    pub const UNLIMITED: Self = Self {
        socket_ops_per_conn: usize::MAX,
        dns_messages: usize::MAX,
        http_requests: usize::MAX,
        connections: usize::MAX,
    };
}
