//! TLS records: [`TlsTunnelTrace`] and the [`PeerCert`]s it saw.
//!
//! One record per TLS handshake, successful or not (to the server, or to an HTTPS proxy).
//! `peerCerts` is `null` when empty; `cipherSuite` is the IANA number (0 if the handshake
//! failed); certificate validity is absolute.
//!
//! ```
//! use nettrace_model::{PeerCert, Timestamp};
//! use time::macros::datetime;
//!
//! let cert = PeerCert {
//!     subject: "CN=www.google.com".into(),
//!     issuer: "CN=GTS CA 1C3,O=Google Trust Services LLC,C=US".into(),
//!     not_before: Timestamp::Absolute(datetime!(2022-11-28 08:19:01 UTC)),
//!     not_after: Timestamp::Absolute(datetime!(2023-02-20 08:19:00 UTC)),
//!     is_ca: false,
//! };
//! let json = serde_json::to_value(&cert).unwrap();
//! assert_eq!(json["notBefore"], "2022-11-28T08:19:01Z");
//! assert_eq!(json["isCA"], false);
//! ```

use serde::{Deserialize, Serialize};

use super::serde_util::null_when_empty;
use super::{Timestamp, TraceId, TraceList, Traced};

/// A TLS handshake over a TCP connection, successful or failed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct TlsTunnelTrace {
    /// This record's ID.
    #[serde(rename = "traceID")]
    pub trace_id: TraceId,
    /// The TCP connection the handshake ran over.
    pub tcp_conn: TraceId,
    /// When the handshake began (ClientHello sent).
    pub handshake_begin_at: Timestamp,
    /// When the handshake ended, successfully or not.
    pub handshake_end_at: Timestamp,
    /// Why the handshake failed, if it did. Omitted when empty.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub handshake_err: String,
    /// True if the session was resumed.
    pub did_resume: bool,
    /// The peer's certificates in the order sent, leaf first; after a failed handshake
    /// typically only the offending one. JSON `null` when empty.
    #[serde(with = "null_when_empty")]
    pub peer_certs: Vec<PeerCert>,
    /// The negotiated cipher suite (IANA number, e.g. 4865 = TLS_AES_128_GCM_SHA256).
    pub cipher_suite: u16,
    /// The ALPN protocol (e.g. `h2`). Omitted when empty.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub negotiated_proto: String,
    /// The SNI sent by the client.
    pub server_name: String,
}

/// The TLS tunnels of a trace (Go's `TLSTunnelTraces`).
pub type TlsTunnelTraces = TraceList<TlsTunnelTrace>;

impl Traced for TlsTunnelTrace {
    fn trace_id(&self) -> &TraceId {
        &self.trace_id
    }
}

/// A certificate presented by the peer.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct PeerCert {
    /// Subject distinguished name, RFC 2253 style (`CN=x,O=y,C=US`).
    pub subject: String,
    /// Issuer distinguished name, RFC 2253 style.
    pub issuer: String,
    /// Start of validity (absolute).
    pub not_before: Timestamp,
    /// End of validity (absolute).
    pub not_after: Timestamp,
    /// True for a certificate authority. JSON `isCA`.
    #[serde(rename = "isCA")]
    pub is_ca: bool,
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use time::macros::datetime;

    use super::*;

    fn cert() -> PeerCert {
        PeerCert {
            subject: "O=Acme Co".into(),
            issuer: "O=Acme Co".into(),
            not_before: Timestamp::Absolute(datetime!(1970-01-01 0:00 UTC)),
            not_after: Timestamp::Absolute(datetime!(2084-01-29 16:00 UTC)),
            is_ca: true,
        }
    }

    #[test]
    fn tunnel_round_trip() {
        let tunnel = TlsTunnelTrace {
            trace_id: TraceId::new("tid-9"),
            tcp_conn: TraceId::new("tid-8"),
            handshake_begin_at: Timestamp::Relative(126),
            handshake_end_at: Timestamp::Relative(172),
            handshake_err: String::new(),
            did_resume: true,
            peer_certs: vec![cert(), cert()],
            cipher_suite: 4865,
            negotiated_proto: "h2".into(),
            server_name: "www.google.com".into(),
        };
        let json = serde_json::to_value(&tunnel).unwrap();
        assert_eq!(json["cipherSuite"], 4865);
        assert_eq!(json["peerCerts"][1]["notAfter"], "2084-01-29T16:00:00Z");
        assert!(json.get("handshakeErr").is_none());
        assert_eq!(
            serde_json::from_value::<TlsTunnelTrace>(json).unwrap(),
            tunnel
        );
    }

    #[test]
    fn failed_tunnel_shape() {
        let tunnel = TlsTunnelTrace {
            trace_id: TraceId::new("tid-5"),
            tcp_conn: TraceId::new("tid-4"),
            handshake_begin_at: Timestamp::Relative(1),
            handshake_end_at: Timestamp::Relative(6),
            handshake_err: "x509: certificate signed by unknown authority".into(),
            ..Default::default()
        };
        let json = serde_json::to_value(&tunnel).unwrap();
        assert_eq!(
            json,
            json!({"traceID": "tid-5", "tcpConn": "tid-4", "handshakeBeginAt": "+1ms",
                "handshakeEndAt": "+6ms",
                "handshakeErr": "x509: certificate signed by unknown authority",
                "didResume": false, "peerCerts": null, "cipherSuite": 0, "serverName": ""})
        );
        assert_eq!(
            serde_json::from_value::<TlsTunnelTrace>(json).unwrap(),
            tunnel
        );
    }

    #[test]
    fn cert_round_trip() {
        let json = serde_json::to_value(cert()).unwrap();
        assert_eq!(json["notBefore"], "1970-01-01T00:00:00Z");
        assert_eq!(serde_json::from_value::<PeerCert>(json).unwrap(), cert());
    }
}
