//! Kernel facts: what the eBPF programs saw of a traced TCP connection, and whether the trace's
//! kernel data is complete. These extend Go's model: extra JSON keys (`kernel` on a TCP
//! connection, `kernelData` on the trace), omitted when empty, which Go-era consumers ignore.
use serde::{Deserialize, Serialize};

use super::Timestamp;

/// The kernel's view of one TCP connection (JSON key `kernel` of a `tcpConns` entry).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct KernelTcpFacts {
    /// Every TCP state transition, in order, with the kernel's timestamp.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub states: Vec<KernelStateChange>,
    /// Retransmitted SYNs (the handshake had to be repeated).
    pub syn_retransmits: u32,
    /// Retransmitted segments over the connection's life.
    pub retransmits: u32,
    /// Retransmission timer expirations.
    pub rto_events: u32,
    /// Smoothed RTT in microseconds at the last observation (0 if never measured).
    pub srtt_us: u32,
    /// Smallest RTT sample in microseconds, as the kernel keeps it (over
    /// `net.ipv4.tcp_min_rtt_wlen`, 5 minutes by default; 0 if none).
    pub min_rtt_us: u32,
    /// Sequence space acknowledged by the peer (payload, plus one each for SYN and FIN).
    pub bytes_acked: u64,
    /// Sequence space received from the peer (payload, plus one for its FIN).
    pub bytes_received: u64,
    /// Segments sent.
    pub segs_out: u32,
    /// Segments received.
    pub segs_in: u32,
    /// True when the traced socket sent a reset.
    pub rst_sent: bool,
    /// True when the peer reset the connection.
    pub rst_received: bool,
    /// Send and receive calls as the kernel answered them.
    #[serde(flatten)]
    pub calls: KernelSocketCalls,
}

/// The send and receive calls of a socket as the kernel answered them (`sock_send_length`,
/// `sock_recv_length`): what the application asked of the socket, errors included.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct KernelSocketCalls {
    /// Send calls.
    pub send_calls: u32,
    /// Receive calls.
    pub recv_calls: u32,
    /// Calls that found nothing to do yet (`EAGAIN`): an async socket reads until this.
    pub would_block: u32,
    /// Send calls that failed (other than `EAGAIN`).
    pub send_errors: u32,
    /// Receive calls that failed (other than `EAGAIN`).
    pub recv_errors: u32,
    /// Bytes the send calls moved.
    pub call_bytes_sent: u64,
    /// Bytes the receive calls moved.
    pub call_bytes_received: u64,
    /// The last failure (other than `EAGAIN`), e.g. `Connection reset by peer (os error 104)`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub last_error: String,
}

/// The kernel's view of one UDP socket (JSON key `kernel` of a `udpConns` entry).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct KernelUdpFacts {
    /// Send and receive calls.
    #[serde(flatten)]
    pub calls: KernelSocketCalls,
}

/// One TCP state transition.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct KernelStateChange {
    /// When it happened.
    pub at: Timestamp,
    /// The state before, as the kernel names it in lower case with dashes (`syn-sent`, ...).
    pub from: String,
    /// The state after.
    pub to: String,
}

/// Whether kernel data could be gathered for a trace, and whether it is complete (JSON key
/// `kernelData` of the trace).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct KernelDataStatus {
    /// True when the eBPF programs traced this client's sockets.
    pub available: bool,
    /// Why kernel data is unavailable (or turned off). Omitted when empty.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub reason: String,
    /// True when no kernel event of this client was lost.
    pub complete: bool,
    /// Events lost because the ring buffer was full.
    pub lost_events: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_with_camel_case_keys() {
        let facts = KernelTcpFacts {
            states: vec![KernelStateChange {
                at: Timestamp::Relative(3),
                from: "syn-sent".into(),
                to: "established".into(),
            }],
            syn_retransmits: 1,
            min_rtt_us: 42,
            ..Default::default()
        };
        let json = serde_json::to_string(&facts).unwrap();
        assert!(
            json.contains(r#""states":[{"at":"+3ms","from":"syn-sent","to":"established"}]"#),
            "{json}"
        );
        assert!(
            json.contains(r#""synRetransmits":1"#) && json.contains(r#""minRttUs":42"#),
            "{json}"
        );
        assert_eq!(
            serde_json::from_str::<KernelTcpFacts>(&json).unwrap(),
            facts
        );

        let status = KernelDataStatus {
            available: false,
            reason: "not permitted".into(),
            ..Default::default()
        };
        let json = serde_json::to_string(&status).unwrap();
        assert_eq!(
            json,
            r#"{"available":false,"reason":"not permitted","complete":false,"lostEvents":0}"#
        );
    }
}
