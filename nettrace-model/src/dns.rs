//! DNS records: [`DnsQueryTrace`] with its query and reply messages.
//!
//! One `DnsQueryTrace` per resolver connection collects every query sent and every reply
//! received on it. Lists (`dnsQueryMsgs`, `dnsReplyMsgs`, `questions`, `answers`) are `null`
//! when empty, as Go writes them; types and rcodes are in [`super::dns_codes`].
//!
//! ```
//! use nettrace_model::{DnsAnswer, DnsReplyMsg, DnsRCode, DnsResType, Timestamp};
//!
//! let reply = DnsReplyMsg {
//!     recv_at: Timestamp::Relative(115),
//!     id: 34311,
//!     recursion_available: true,
//!     size: 59,
//!     rcode: DnsRCode::NO_ERROR,
//!     answers: vec![DnsAnswer {
//!         name: "www.google.com.".into(),
//!         res_type: DnsResType::A,
//!         class: 1,
//!         ttl: 227,
//!         resolved_val: "142.251.36.132".into(),
//!     }],
//!     ..Default::default()
//! };
//! let json = serde_json::to_value(&reply).unwrap();
//! assert_eq!(json["rCode"], "no-error");
//! assert_eq!(json["answers"][0]["type"], "A");
//! ```

use serde::{Deserialize, Serialize};

use super::serde_util::{is_zero_u16, null_when_empty};
use super::{DnsRCode, DnsResType, PreciseTimes, Timestamp, TraceId, TraceList, Traced};

/// The DNS messages exchanged over one resolver connection.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct DnsQueryTrace {
    /// This record's ID.
    #[serde(rename = "traceID")]
    pub trace_id: TraceId,
    /// The dial whose name resolution sent these queries.
    pub from_dial: TraceId,
    /// The UDP or TCP connection that carried the messages.
    pub connection: TraceId,
    /// Queries sent, in order. JSON `null` when empty.
    #[serde(with = "null_when_empty")]
    pub dns_query_msgs: Vec<DnsQueryMsg>,
    /// Replies received, in order. JSON `null` when empty.
    #[serde(with = "null_when_empty")]
    pub dns_reply_msgs: Vec<DnsReplyMsg>,
}

/// The DNS queries of a trace (Go's `DNSQueryTraces`).
pub type DnsQueryTraces = TraceList<DnsQueryTrace>;

impl Traced for DnsQueryTrace {
    fn trace_id(&self) -> &TraceId {
        &self.trace_id
    }
}

/// A DNS query message.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct DnsQueryMsg {
    /// When it was written to the socket.
    pub sent_at: Timestamp,
    /// Message ID (matches the reply).
    pub id: u16,
    /// RD flag: recursion desired.
    pub recursion_desired: bool,
    /// TC flag: truncated.
    pub truncated: bool,
    /// Message size in bytes.
    pub size: u32,
    /// The questions. JSON `null` when empty.
    #[serde(with = "null_when_empty")]
    pub questions: Vec<DnsQuestion>,
    /// EDNS (RFC 6891) UDP payload size the client accepts; 0 (omitted) without EDNS.
    #[serde(rename = "optUDPPayloadSize", skip_serializing_if = "is_zero_u16")]
    pub opt_udp_payload_size: u16,
    /// The timestamps above in µs since the trace began, where the tracer knew them
    /// (extension; JSON `preciseUs`, omitted when empty). See [`crate::PreciseTimes`].
    #[serde(skip_serializing_if = "PreciseTimes::is_empty")]
    pub precise_us: PreciseTimes,
}

/// A question of a DNS query.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct DnsQuestion {
    /// The name asked for, fully qualified with the trailing dot.
    pub name: String,
    /// The record type asked for. JSON `type`.
    #[serde(rename = "type")]
    pub res_type: DnsResType,
    /// The class (1 = IN), a number.
    pub class: u16,
}

/// A DNS reply message.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct DnsReplyMsg {
    /// When it was read from the socket.
    pub recv_at: Timestamp,
    /// Message ID (matches the query).
    pub id: u16,
    /// AA flag: the server is authoritative.
    pub authoritative: bool,
    /// RA flag: recursion available.
    pub recursion_available: bool,
    /// TC flag: truncated.
    pub truncated: bool,
    /// Message size in bytes.
    pub size: u32,
    /// Response code. JSON `rCode`.
    #[serde(rename = "rCode")]
    pub rcode: DnsRCode,
    /// The answers. JSON `null` when empty.
    #[serde(with = "null_when_empty")]
    pub answers: Vec<DnsAnswer>,
    /// The timestamps above in µs since the trace began, where the tracer knew them
    /// (extension; JSON `preciseUs`, omitted when empty). See [`crate::PreciseTimes`].
    #[serde(skip_serializing_if = "PreciseTimes::is_empty")]
    pub precise_us: PreciseTimes,
}

/// An answer record of a DNS reply.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct DnsAnswer {
    /// The owner name of the record.
    pub name: String,
    /// The record type. JSON `type`.
    #[serde(rename = "type")]
    pub res_type: DnsResType,
    /// The class (1 = IN), a number.
    pub class: u16,
    /// Time to live, seconds.
    pub ttl: u32,
    /// The value, by type: IP address (A/AAAA), target name (CNAME, NS, PTR, MX host);
    /// empty (omitted) for other types.
    #[serde(rename = "resolvedVal", skip_serializing_if = "String::is_empty")]
    pub resolved_val: String,
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn query_trace() -> DnsQueryTrace {
        DnsQueryTrace {
            trace_id: TraceId::new("tid-b"),
            from_dial: TraceId::new("tid-3"),
            connection: TraceId::new("tid-7"),
            dns_query_msgs: vec![DnsQueryMsg {
                sent_at: Timestamp::Relative(74),
                id: 34311,
                recursion_desired: true,
                truncated: false,
                size: 43,
                questions: vec![DnsQuestion {
                    name: "www.google.com.".into(),
                    res_type: DnsResType::A,
                    class: 1,
                }],
                opt_udp_payload_size: 1232,
                ..Default::default()
            }],
            dns_reply_msgs: vec![DnsReplyMsg {
                recv_at: Timestamp::Relative(115),
                id: 34311,
                authoritative: false,
                recursion_available: true,
                truncated: false,
                size: 120,
                rcode: DnsRCode::NO_ERROR,
                answers: vec![
                    DnsAnswer {
                        name: "www.google.com.".into(),
                        res_type: DnsResType::CNAME,
                        class: 1,
                        ttl: 60,
                        resolved_val: "google.com.".into(),
                    },
                    DnsAnswer {
                        name: "google.com.".into(),
                        res_type: DnsResType::TXT,
                        class: 1,
                        ttl: 60,
                        resolved_val: String::new(),
                    },
                ],
                ..Default::default()
            }],
        }
    }

    #[test]
    fn query_trace_round_trip() {
        let trace = query_trace();
        let json = serde_json::to_value(&trace).unwrap();
        assert_eq!(json["traceID"], "tid-b");
        assert_eq!(json["dnsQueryMsgs"][0]["optUDPPayloadSize"], 1232);
        assert_eq!(json["dnsQueryMsgs"][0]["questions"][0]["type"], "A");
        assert_eq!(
            json["dnsReplyMsgs"][0]["answers"][0]["resolvedVal"],
            "google.com."
        );
        assert!(
            json["dnsReplyMsgs"][0]["answers"][1]
                .get("resolvedVal")
                .is_none()
        );
        assert_eq!(
            serde_json::from_value::<DnsQueryTrace>(json).unwrap(),
            trace
        );
    }

    #[test]
    fn empty_lists_are_null_and_omitempty_scalars_omitted() {
        let trace = DnsQueryTrace {
            trace_id: TraceId::new("tid-1"),
            dns_query_msgs: vec![DnsQueryMsg::default()],
            dns_reply_msgs: vec![DnsReplyMsg {
                rcode: DnsRCode::NX_DOMAIN,
                ..Default::default()
            }],
            ..Default::default()
        };
        let json = serde_json::to_value(&trace).unwrap();
        assert_eq!(
            json,
            json!({
                "traceID": "tid-1", "fromDial": "", "connection": "",
                "dnsQueryMsgs": [{"sentAt": "undefined", "id": 0, "recursionDesired": false,
                    "truncated": false, "size": 0, "questions": null}],
                "dnsReplyMsgs": [{"recvAt": "undefined", "id": 0, "authoritative": false,
                    "recursionAvailable": false, "truncated": false, "size": 0,
                    "rCode": "non-existent-domain", "answers": null}]
            })
        );
        assert_eq!(
            serde_json::from_value::<DnsQueryTrace>(json).unwrap(),
            trace
        );
        let no_msgs = serde_json::to_value(DnsQueryTrace::default()).unwrap();
        assert_eq!(no_msgs["dnsQueryMsgs"], json!(null));
        assert_eq!(no_msgs["dnsReplyMsgs"], json!(null));
    }
}
