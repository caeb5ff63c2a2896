//! [`DroppedRecords`]: what a tracer with bounded memory left out of a trace, and why the
//! trace says so (an extension: JSON `dropped` on the trace, omitted when nothing was dropped).
//!
//! A tracer that runs for weeks keeps a fixed ceiling on what one trace holds (socket
//! operations per connection, DNS messages, HTTP requests, connections). When a limit is
//! reached, further records of that kind are not kept, and counted here instead: a trace
//! is never silently incomplete.
//!
//! ```
//! use nettrace_model::{DroppedRecords, HttpTrace};
//!
//! let mut trace = HttpTrace::default();
//! trace.net_trace.dropped = Some(DroppedRecords { socket_ops: 12, ..Default::default() });
//! let json = serde_json::to_value(&trace).unwrap();
//! assert_eq!(json["dropped"], serde_json::json!({"socketOps": 12}));
//! ```
use serde::{Deserialize, Serialize};

/// Counts of the records a trace left out because a limit was reached. Each count is
/// omitted from JSON when zero.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct DroppedRecords {
    /// Socket operations not logged, over all connections (each connection's own count is
    /// its `socketTrace.droppedSocketOps`).
    #[serde(skip_serializing_if = "is_zero")]
    pub socket_ops: u64,
    /// DNS queries and replies not recorded.
    #[serde(skip_serializing_if = "is_zero")]
    pub dns_messages: u64,
    /// HTTP requests (hops) not recorded.
    #[serde(skip_serializing_if = "is_zero")]
    pub http_requests: u64,
    /// Dials, TCP/UDP connections and TLS tunnels not recorded.
    #[serde(skip_serializing_if = "is_zero")]
    pub connections: u64,
    /// Completed-request traces not delivered because their receiver was full (streaming).
    #[serde(skip_serializing_if = "is_zero")]
    pub streamed_traces: u64,
}

impl DroppedRecords {
    /// Whether nothing was dropped.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// The total of every count.
    pub fn total(&self) -> u64 {
        self.socket_ops
            + self.dns_messages
            + self.http_requests
            + self.connections
            + self.streamed_traces
    }
}

fn is_zero(value: &u64) -> bool {
    *value == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_counts_are_omitted_and_read_back() {
        let dropped = DroppedRecords {
            dns_messages: 3,
            connections: 1,
            ..Default::default()
        };
        let json = serde_json::to_value(dropped).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"dnsMessages": 3, "connections": 1})
        );
        assert_eq!(
            serde_json::from_value::<DroppedRecords>(json).unwrap(),
            dropped
        );
        assert!(!dropped.is_empty());
        assert_eq!(dropped.total(), 4);
        assert!(DroppedRecords::default().is_empty());
    }
}
