//! Dial records: [`DialTrace`] and the resolver's dials to nameservers ([`ResolverDialTrace`]).
//!
//! A dial is one attempt to connect to `host:port`: name resolution (each nameserver connection
//! a [`ResolverDialTrace`], skipped nameservers listed by address), then the TCP connection it
//! established, if any. `resolverDials`, `skippedNameservers`, `sourceIP`, `dialErr` and
//! `establishedConn` are omitted when empty, as in Go.
//!
//! ```
//! use nettrace_model::{DialTrace, Timestamp, TraceId};
//!
//! let dial = DialTrace {
//!     trace_id: TraceId::new("tid-3"),
//!     dial_begin_at: Timestamp::Relative(0),
//!     dst_address: "example.com:443".into(),
//!     dial_err: "all nameservers skipped".into(),
//!     skipped_nameservers: vec!["10.0.0.1:53".into()],
//!     ..Default::default()
//! };
//! let json = serde_json::to_value(&dial).unwrap();
//! assert_eq!(json["skippedNameservers"][0], "10.0.0.1:53");
//! assert!(json.get("resolverDials").is_none() && json.get("establishedConn").is_none());
//! ```

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use super::serde_util::{null_when_empty, opt_ip};
use super::{PreciseTimes, Timestamp, TraceId, TraceList, Traced};

/// An attempt to connect to a remote endpoint given by IP address or name.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct DialTrace {
    /// This record's ID.
    #[serde(rename = "traceID")]
    pub trace_id: TraceId,
    /// When the dial began.
    pub dial_begin_at: Timestamp,
    /// When the dial ended, with a connection or giving up.
    pub dial_end_at: Timestamp,
    /// Why the dial failed, if it did. Omitted when empty.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub dial_err: String,
    /// When the dial's context was closed or cancelled by the caller.
    pub ctx_close_at: Timestamp,
    /// The destination as `host:port`, `host` an IP address or a name.
    pub dst_address: String,
    /// The resolver's connection attempts to nameservers. Omitted when empty.
    #[serde(
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_when_empty::deserialize"
    )]
    pub resolver_dials: Vec<ResolverDialTrace>,
    /// Nameservers (`host:port`) skipped by configuration. Omitted when empty.
    #[serde(
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_when_empty::deserialize"
    )]
    pub skipped_nameservers: Vec<String>,
    /// The source IP the dial was bound to, if configured. Omitted when `None`.
    #[serde(
        rename = "sourceIP",
        skip_serializing_if = "Option::is_none",
        with = "opt_ip"
    )]
    pub source_ip: Option<IpAddr>,
    /// The TCP connection established. Omitted when empty.
    #[serde(skip_serializing_if = "TraceId::is_empty")]
    pub established_conn: TraceId,
    /// The timestamps above in µs since the trace began, where the tracer knew them
    /// (extension; JSON `preciseUs`, omitted when empty). See [`crate::PreciseTimes`].
    #[serde(skip_serializing_if = "PreciseTimes::is_empty")]
    pub precise_us: PreciseTimes,
}

/// The dials of a trace (Go's `DialTraces`).
pub type DialTraces = TraceList<DialTrace>;

impl Traced for DialTrace {
    fn trace_id(&self) -> &TraceId {
        &self.trace_id
    }
}

/// The resolver's attempt to connect (UDP or TCP) to a nameserver.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ResolverDialTrace {
    /// When the dial began.
    pub dial_begin_at: Timestamp,
    /// When the dial ended.
    pub dial_end_at: Timestamp,
    /// Why the dial failed, if it did. Omitted when empty.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub dial_err: String,
    /// The nameserver as `host:port`.
    pub nameserver: String,
    /// The UDP or TCP connection established. Omitted when empty.
    #[serde(skip_serializing_if = "TraceId::is_empty")]
    pub established_conn: TraceId,
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn dial() -> DialTrace {
        DialTrace {
            trace_id: TraceId::new("tid-3"),
            dial_begin_at: Timestamp::Relative(72),
            dial_end_at: Timestamp::Relative(126),
            dial_err: String::new(),
            ctx_close_at: Timestamp::Relative(241),
            dst_address: "www.google.com:443".into(),
            resolver_dials: vec![
                ResolverDialTrace {
                    dial_begin_at: Timestamp::Relative(73),
                    dial_end_at: Timestamp::Relative(73),
                    nameserver: "8.8.8.8:53".into(),
                    established_conn: TraceId::new("tid-5"),
                    ..Default::default()
                },
                ResolverDialTrace {
                    dial_begin_at: Timestamp::Relative(73),
                    dial_end_at: Timestamp::Relative(80),
                    dial_err: "connection refused".into(),
                    nameserver: "[2001:4860:4860::8888]:53".into(),
                    ..Default::default()
                },
            ],
            skipped_nameservers: vec!["10.1.1.1:53".into()],
            source_ip: "192.168.99.1".parse().ok(),
            established_conn: TraceId::new("tid-8"),
            ..Default::default()
        }
    }

    #[test]
    fn dial_round_trip() {
        let dial = dial();
        let json = serde_json::to_value(&dial).unwrap();
        assert_eq!(json["sourceIP"], "192.168.99.1");
        assert_eq!(json["resolverDials"][0]["establishedConn"], "tid-5");
        assert!(json["resolverDials"][1].get("establishedConn").is_none());
        assert_eq!(json["resolverDials"][1]["dialErr"], "connection refused");
        assert_eq!(serde_json::from_value::<DialTrace>(json).unwrap(), dial);
    }

    #[test]
    fn empty_dial_omits_optional_fields() {
        let dial = DialTrace {
            trace_id: TraceId::new("tid-1"),
            ..Default::default()
        };
        let json = serde_json::to_value(&dial).unwrap();
        assert_eq!(
            json,
            json!({"traceID": "tid-1", "dialBeginAt": "undefined", "dialEndAt": "undefined",
                "ctxCloseAt": "undefined", "dstAddress": ""})
        );
        assert_eq!(serde_json::from_value::<DialTrace>(json).unwrap(), dial);
        let with_nulls: DialTrace = serde_json::from_value(json!({"traceID": "tid-1",
            "resolverDials": null, "skippedNameservers": null, "sourceIP": ""}))
        .unwrap();
        assert_eq!(with_nulls, dial);
    }
}
