//! Conntrack: the netfilter connection-tracking (and NAT) entry of every traced TCP and UDP
//! connection, through ctnetlink (Go's `WithConntrack`).
//!
//! Enabled by [`TraceOptions::conntrack`](crate::client::TraceOptions::conntrack). Each
//! connection's [`ConntrackEntry`](crate::model::ConntrackEntry) (status flags, TCP state,
//! mark, original and reply tuples, packets and bytes each way) is looked up by its original
//! tuple when the connection is established, when it closes and at every `get_trace` until
//! the entry is destroyed; the destroy event of the namespace brings the final state and
//! counters of an entry that expires before the trace is taken.
//!
//! Needs CAP_NET_ADMIN in the network namespace where the client is built (ctnetlink
//! refuses requests and event subscriptions otherwise): without it, building the client fails
//! with [`ConntrackError::NotPermitted`]. The sockets belong to that namespace.
//!
//! What cannot be had is logged (through `tracing`) with the reason, and the trace holds
//! what exists: no entries when conntrack is not active in the namespace (no netfilter rule
//! uses it), no counters when `net.netfilter.nf_conntrack_acct` is 0. The library never
//! changes a system setting.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use nettrace::client::{HttpClient, HttpClientConfig, TraceOptions};
//!
//! let client = HttpClient::new(
//!     HttpClientConfig::default(),
//!     TraceOptions { conntrack: true, ..Default::default() },
//! )?;
//! client.get("http://192.0.2.1/").await?;
//! let (trace, _) = client.get_trace("with conntrack")?;
//! for conn in trace.net_trace.tcp_conns.iter() {
//!     if let Some(ct) = &conn.conntrack {
//!         println!("{:?} -> {:?} [{}]", ct.addr_orig, ct.addr_reply, ct.status);
//!     }
//! }
//! # Ok(()) }
//! ```
mod error;
mod events;
pub(crate) mod message;
mod netlink;
mod tracker;

pub use error::ConntrackError;
pub(crate) use tracker::{ConntrackSink, ReplyTuple, Tracker};
