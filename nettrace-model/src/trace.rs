//! Whole traces: [`NetTrace`], [`HttpTrace`] and the [`AnyNetTrace`] trait.
//!
//! `NetTrace` holds everything below HTTP; `HttpTrace` adds the HTTP requests and, like Go's
//! embedding, writes the `NetTrace` keys inline before `httpRequests`. Top-level lists are `null`
//! when empty (Go's `json.Marshal` of nil slices) and read from `null` or `[]`.
//!
//! ```
//! use nettrace_model::{AnyNetTrace, HttpTrace, Timestamp};
//!
//! let mut trace = HttpTrace::default();
//! trace.net_trace_mut().description = "GET https://example.com/".into();
//! trace.net_trace.trace_end_at = Timestamp::Relative(15);
//! let json = serde_json::to_string(&trace).unwrap();
//! assert!(json.starts_with(r#"{"description":"GET https://example.com/","traceBeginAt":"undefined""#));
//! assert!(json.ends_with(r#""tlsTunnels":null,"httpRequests":null}"#));
//! ```

use serde::{Deserialize, Serialize};

use super::{
    DialTraces, DnsQueryTraces, DroppedRecords, HttpReqTraces, KernelDataStatus, TcpConnTraces,
    Timestamp, TlsTunnelTraces, UdpConnTraces,
};

/// Access to the [`NetTrace`] part of any trace (Go's `AnyNetTrace`, implemented by `NetTrace`
/// and its extensions such as [`HttpTrace`]).
pub trait AnyNetTrace {
    /// The network-level records.
    fn net_trace(&self) -> &NetTrace;

    /// The network-level records, mutable.
    fn net_trace_mut(&mut self) -> &mut NetTrace;
}

/// The network operations of a client program (dials, connections, DNS, TLS).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct NetTrace {
    /// Description given by the caller.
    pub description: String,
    /// When tracing began (absolute); relative timestamps count from here.
    pub trace_begin_at: Timestamp,
    /// When tracing ended (relative).
    pub trace_end_at: Timestamp,
    /// Session UUID (Go's `SessionUUID`, newer Go versions). JSON `uuid`, omitted when empty.
    #[serde(rename = "uuid", skip_serializing_if = "String::is_empty")]
    pub session_uuid: String,
    /// Every attempt to connect to a remote endpoint.
    pub dials: DialTraces,
    /// Every established or failed TCP connection.
    pub tcp_conns: TcpConnTraces,
    /// Every UDP connection.
    pub udp_conns: UdpConnTraces,
    /// Every DNS query (if DNS query tracing is on).
    pub dns_queries: DnsQueryTraces,
    /// Every TLS tunnel opened or attempted.
    pub tls_tunnels: TlsTunnelTraces,
    /// Whether kernel data was gathered and is complete (extension; JSON `kernelData`,
    /// omitted when absent).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kernel_data: Option<KernelDataStatus>,
    /// What was left out because a memory limit was reached (extension; JSON `dropped`,
    /// omitted when nothing was).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dropped: Option<DroppedRecords>,
}

impl AnyNetTrace for NetTrace {
    fn net_trace(&self) -> &NetTrace {
        self
    }

    fn net_trace_mut(&mut self) -> &mut NetTrace {
        self
    }
}

/// The network operations of an HTTP client: a [`NetTrace`] plus the HTTP requests.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct HttpTrace {
    /// The network-level records; their keys are written inline (Go embedding).
    #[serde(flatten)]
    pub net_trace: NetTrace,
    /// Every HTTP request made.
    pub http_requests: HttpReqTraces,
}

impl AnyNetTrace for HttpTrace {
    fn net_trace(&self) -> &NetTrace {
        &self.net_trace
    }

    fn net_trace_mut(&mut self) -> &mut NetTrace {
        &mut self.net_trace
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use time::macros::datetime;

    use super::*;
    use crate::{DialTrace, HttpReqTrace, TraceId};

    fn trace() -> HttpTrace {
        HttpTrace {
            net_trace: NetTrace {
                description: "GET https://example.com/".into(),
                trace_begin_at: Timestamp::Absolute(datetime!(2026-01-01 10:00:00.123456789 UTC)),
                trace_end_at: Timestamp::Relative(15),
                session_uuid: String::new(),
                dials: vec![DialTrace {
                    trace_id: TraceId::new("tid-3"),
                    ..Default::default()
                }]
                .into(),
                ..Default::default()
            },
            http_requests: vec![HttpReqTrace {
                trace_id: TraceId::new("tid-2"),
                ..Default::default()
            }]
            .into(),
        }
    }

    #[test]
    fn http_trace_key_order_is_go_embedding_order() {
        let json = serde_json::to_string(&trace()).unwrap();
        let keys = [
            "description",
            "traceBeginAt",
            "traceEndAt",
            "dials",
            "tcpConns",
            "udpConns",
            "dnsQueries",
            "tlsTunnels",
            "httpRequests",
        ];
        let positions: Vec<usize> = keys
            .iter()
            .map(|k| {
                json.find(&format!("\"{k}\":"))
                    .unwrap_or_else(|| panic!("{k}"))
            })
            .collect();
        assert!(positions.windows(2).all(|w| w[0] < w[1]), "{json}");
        assert!(!json.contains("\"uuid\""));
        assert!(json.contains(r#""tcpConns":null"#));
    }

    #[test]
    fn round_trip_with_uuid() {
        let mut trace = trace();
        trace.net_trace.session_uuid = "0b8c1d6e-4c7f-4a57-9b0e-2f3a6c8d9e10".into();
        let json = serde_json::to_value(&trace).unwrap();
        assert_eq!(json["uuid"], "0b8c1d6e-4c7f-4a57-9b0e-2f3a6c8d9e10");
        assert_eq!(json["traceBeginAt"], "2026-01-01T10:00:00.123456789Z");
        assert_eq!(serde_json::from_value::<HttpTrace>(json).unwrap(), trace);
    }

    #[test]
    fn reads_null_empty_and_missing_lists() {
        let expected = HttpTrace {
            net_trace: NetTrace {
                description: "x".into(),
                ..Default::default()
            },
            ..Default::default()
        };
        let nulls = json!({"description": "x", "traceBeginAt": null, "dials": null,
            "tcpConns": null, "udpConns": null, "dnsQueries": null, "tlsTunnels": null,
            "httpRequests": null});
        let empties = json!({"description": "x", "traceBeginAt": "", "dials": [],
            "tcpConns": [], "udpConns": [], "dnsQueries": [], "tlsTunnels": [],
            "httpRequests": []});
        let missing = json!({"description": "x", "someFutureKey": {"a": 1}});
        for input in [nulls, empties, missing] {
            assert_eq!(
                serde_json::from_value::<HttpTrace>(input).unwrap(),
                expected
            );
        }
    }

    #[test]
    fn any_net_trace_gives_the_embedded_trace() {
        fn description(trace: &impl AnyNetTrace) -> &str {
            &trace.net_trace().description
        }
        let mut http = trace();
        assert_eq!(description(&http), "GET https://example.com/");
        http.net_trace_mut().description = "changed".into();
        assert_eq!(description(&http.net_trace), "changed");
        let net = NetTrace::default();
        assert_eq!(serde_json::to_value(&net).unwrap()["dials"], json!(null));
    }
}
