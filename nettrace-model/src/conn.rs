//! Connection records: [`TcpConnTrace`] and [`UdpConnTrace`], with their [`AddrTuple`].
//!
//! A TCP record exists for every attempted connection (established or not), a UDP record for
//! every connected UDP socket (e.g. to a nameserver). Both may carry the conntrack entry
//! ([`ConntrackEntry`], JSON key `conntrack`) and the socket operations ([`SocketTrace`]), each
//! omitted when absent, and, when traced from the kernel, the process that opened them
//! ([`ConnProcess`], JSON key `process`, an extension omitted when unknown). IP addresses are typed; an unknown one is written `""` (Go wrote `"<nil>"`
//! for an unknown source IP, which is still read as unknown).
//!
//! ```
//! use nettrace_model::{AddrTuple, TcpConnTrace, Timestamp, TraceId};
//!
//! let conn = TcpConnTrace {
//!     trace_id: TraceId::new("tid-8"),
//!     handshake_begin_at: Timestamp::Relative(115),
//!     addr_tuple: AddrTuple::new("192.168.99.1:33623".parse().unwrap(),
//!                                "142.251.36.132:443".parse().unwrap()),
//!     ..Default::default()
//! };
//! let json = serde_json::to_value(&conn).unwrap();
//! assert_eq!(json["addrTuple"]["dstPort"], 443);
//! assert!(json.get("conntrack").is_none());
//! ```

use serde::{Deserialize, Serialize};

use super::serde_util::is_false;
use super::{
    AddrTuple, ConntrackEntry, KernelTcpFacts, KernelUdpFacts, PreciseTimes, SocketTrace,
    Timestamp, TraceId, TraceList, Traced,
};

/// An established, or just attempted, TCP connection.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct TcpConnTrace {
    /// This record's ID.
    #[serde(rename = "traceID")]
    pub trace_id: TraceId,
    /// The dial this connection came from.
    pub from_dial: TraceId,
    /// True if opened by the resolver towards a nameserver. Omitted when false.
    #[serde(skip_serializing_if = "is_false")]
    pub from_resolver: bool,
    /// When the handshake began (SYN sent).
    pub handshake_begin_at: Timestamp,
    /// When the handshake ended, successfully or not.
    pub handshake_end_at: Timestamp,
    /// True if the handshake succeeded. If not, the reason may be in the dial's `dial_err`.
    pub connected: bool,
    /// When the connection was closed from our side.
    pub conn_close_at: Timestamp,
    /// Our and the peer's addresses.
    pub addr_tuple: AddrTuple,
    /// True if this connection was carried over from an earlier trace (its timestamps from
    /// then are absolute).
    pub reused: bool,
    /// TCP payload bytes sent.
    pub total_sent_bytes: u64,
    /// TCP payload bytes received.
    pub total_recv_bytes: u64,
    /// The conntrack entry, if conntrack tracing is on and it was found. JSON `conntrack`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conntrack: Option<ConntrackEntry>,
    /// Socket operations, if socket tracing is on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub socket_trace: Option<SocketTrace>,
    /// What the kernel saw of the connection (extension; JSON `kernel`, omitted when absent).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kernel: Option<KernelTcpFacts>,
    /// The process that opened it, when known (extension; JSON `process`, omitted when
    /// unknown; only kernel tracing, e.g. `nettrace-loader trace`, knows it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub process: Option<ConnProcess>,
    /// The timestamps above in µs since the trace began, where the tracer knew them
    /// (extension; JSON `preciseUs`, omitted when empty). See [`crate::PreciseTimes`].
    #[serde(skip_serializing_if = "PreciseTimes::is_empty")]
    pub precise_us: PreciseTimes,
}

/// A UDP "connection": a connected UDP socket and the datagrams exchanged over it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct UdpConnTrace {
    /// This record's ID.
    #[serde(rename = "traceID")]
    pub trace_id: TraceId,
    /// The dial this socket came from.
    pub from_dial: TraceId,
    /// True if opened by the resolver towards a nameserver. Omitted when false.
    #[serde(skip_serializing_if = "is_false")]
    pub from_resolver: bool,
    /// When the socket was created.
    pub socket_create_at: Timestamp,
    /// When the socket was closed from our side.
    pub conn_close_at: Timestamp,
    /// Our and the peer's addresses.
    pub addr_tuple: AddrTuple,
    /// UDP payload bytes sent.
    pub total_sent_bytes: u64,
    /// UDP payload bytes received.
    pub total_recv_bytes: u64,
    /// The conntrack entry, if conntrack tracing is on and it was found. JSON `conntrack`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conntrack: Option<ConntrackEntry>,
    /// Socket operations, if socket tracing is on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub socket_trace: Option<SocketTrace>,
    /// What the kernel saw of the socket (extension; JSON `kernel`, omitted when absent).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kernel: Option<KernelUdpFacts>,
    /// The process that opened it, when known (extension; JSON `process`, omitted when
    /// unknown; only kernel tracing, e.g. `nettrace-loader trace`, knows it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub process: Option<ConnProcess>,
}

/// The process that opened a connection: the caller of `connect()`, as the kernel saw it
/// (extension; JSON `{"pid": 1234, "comm": "curl"}`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ConnProcess {
    /// Process ID (the thread group ID: the same for every thread of the process).
    pub pid: u32,
    /// Command name: the kernel's `comm` of the calling thread (the process's, unless the
    /// thread was renamed), at most 15 bytes.
    pub comm: String,
}

impl std::fmt::Display for ConnProcess {
    /// `pid 1234 curl`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "pid {} {}", self.pid, self.comm)
    }
}

/// The TCP connections of a trace (Go's `TCPConnTraces`).
pub type TcpConnTraces = TraceList<TcpConnTrace>;

/// The UDP connections of a trace (Go's `UDPConnTraces`).
pub type UdpConnTraces = TraceList<UdpConnTrace>;

impl Traced for TcpConnTrace {
    fn trace_id(&self) -> &TraceId {
        &self.trace_id
    }
}

impl Traced for UdpConnTrace {
    fn trace_id(&self) -> &TraceId {
        &self.trace_id
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::{ConntrackStatus, SocketOp, SocketOpType, TcpState};

    #[test]
    fn addr_tuple_unknown_ip_and_go_nil() {
        let tuple = AddrTuple {
            src_ip: None,
            src_port: 0,
            dst_ip: "2a00:1450:4014:80e::2004".parse().ok(),
            dst_port: 443,
        };
        let json = serde_json::to_value(tuple).unwrap();
        assert_eq!(
            json,
            json!({"srcIP": "", "srcPort": 0, "dstIP": "2a00:1450:4014:80e::2004", "dstPort": 443})
        );
        assert_eq!(serde_json::from_value::<AddrTuple>(json).unwrap(), tuple);
        let go: AddrTuple = serde_json::from_value(
            json!({"srcIP": "<nil>", "srcPort": 0, "dstIP": "8.8.8.8", "dstPort": 53}),
        )
        .unwrap();
        assert_eq!(go.src_ip, None);
        assert_eq!(go.dst(), "8.8.8.8:53".parse().ok());
        assert!(serde_json::from_value::<AddrTuple>(json!({"srcIP": "nope"})).is_err());
    }

    #[test]
    fn addr_tuple_writes_v4_mapped_as_v4() {
        let tuple = AddrTuple::new(
            "[::ffff:10.0.0.1]:5000".parse().unwrap(),
            "[::1]:80".parse().unwrap(),
        );
        let json = serde_json::to_value(tuple).unwrap();
        assert_eq!(json["srcIP"], "10.0.0.1");
        assert_eq!(json["dstIP"], "::1");
    }

    fn tcp() -> TcpConnTrace {
        TcpConnTrace {
            trace_id: TraceId::new("tid-8"),
            from_dial: TraceId::new("tid-3"),
            from_resolver: false,
            handshake_begin_at: Timestamp::Relative(115),
            handshake_end_at: Timestamp::Relative(126),
            connected: true,
            conn_close_at: Timestamp::Undefined,
            addr_tuple: AddrTuple::new(
                "192.168.99.1:33623".parse().unwrap(),
                "142.251.36.132:443".parse().unwrap(),
            ),
            reused: false,
            total_sent_bytes: 735,
            total_recv_bytes: 12657,
            conntrack: Some(ConntrackEntry {
                status: ConntrackStatus::CONFIRMED,
                tcp_state: TcpState::SynRecv,
                ..Default::default()
            }),
            socket_trace: Some(SocketTrace {
                dropped_ops: 0,
                socket_ops: vec![SocketOp {
                    op_type: SocketOpType::Write,
                    call_at: Timestamp::Relative(127),
                    return_at: Timestamp::Relative(127),
                    data_len: 280,
                    ..Default::default()
                }],
            }),
            kernel: None,
            process: None,
            ..Default::default()
        }
    }

    #[test]
    fn tcp_round_trip() {
        let conn = tcp();
        let json = serde_json::to_value(&conn).unwrap();
        assert_eq!(json["traceID"], "tid-8");
        assert_eq!(json["connCloseAt"], "undefined");
        assert_eq!(json["conntrack"]["tcpState"], "sync-recv");
        assert!(json.get("fromResolver").is_none());
        assert_eq!(serde_json::from_value::<TcpConnTrace>(json).unwrap(), conn);

        let bare = TcpConnTrace {
            conntrack: None,
            socket_trace: None,
            from_resolver: true,
            ..tcp()
        };
        let json = serde_json::to_value(&bare).unwrap();
        assert!(json.get("conntrack").is_none() && json.get("socketTrace").is_none());
        assert_eq!(json["fromResolver"], true);
        assert_eq!(serde_json::from_value::<TcpConnTrace>(json).unwrap(), bare);
    }

    #[test]
    fn process_key_only_when_known() {
        assert!(
            serde_json::to_value(tcp())
                .unwrap()
                .get("process")
                .is_none()
        );
        let conn = TcpConnTrace {
            process: Some(ConnProcess {
                pid: 1234,
                comm: "curl".into(),
            }),
            ..tcp()
        };
        let json = serde_json::to_value(&conn).unwrap();
        assert_eq!(json["process"], json!({"pid": 1234, "comm": "curl"}));
        assert_eq!(serde_json::from_value::<TcpConnTrace>(json).unwrap(), conn);
        let udp: UdpConnTrace =
            serde_json::from_value(json!({"process": {"pid": 7, "comm": "dig"}})).unwrap();
        assert_eq!(
            udp.process.map(|p| p.to_string()).as_deref(),
            Some("pid 7 dig")
        );
    }

    #[test]
    fn udp_round_trip() {
        let conn = UdpConnTrace {
            trace_id: TraceId::new("tid-5"),
            from_dial: TraceId::new("tid-3"),
            from_resolver: true,
            socket_create_at: Timestamp::Relative(73),
            conn_close_at: Timestamp::Relative(115),
            addr_tuple: AddrTuple::new(
                "192.168.99.1:40475".parse().unwrap(),
                "8.8.8.8:53".parse().unwrap(),
            ),
            total_sent_bytes: 43,
            total_recv_bytes: 71,
            conntrack: Some(ConntrackEntry::default()),
            socket_trace: Some(SocketTrace::default()),
            kernel: None,
            process: None,
        };
        let json = serde_json::to_value(&conn).unwrap();
        assert_eq!(json["socketCreateAt"], "+73ms");
        assert_eq!(json["socketTrace"], json!({"socketOps": null}));
        assert_eq!(serde_json::from_value::<UdpConnTrace>(json).unwrap(), conn);
    }
}
