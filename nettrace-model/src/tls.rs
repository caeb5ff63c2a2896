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
use super::{PreciseTimes, Timestamp, TraceId, TraceList, Traced};

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
    /// The negotiated protocol version (`TLSv1.3`, `TLSv1.2`). Not in Go's model; omitted
    /// when empty (a failed handshake, or a trace written by Go).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub tls_version: String,
    /// True when the client did not verify the peer's certificates (curl's `--insecure`).
    /// Not in Go's model; omitted when false.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub insecure: bool,
    /// With `insecure`: why verification would have rejected the peer's certificates (the
    /// handshake went on, so `handshakeErr` stays empty). Not in Go's model; omitted when
    /// empty.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub cert_verify_err: String,
    /// The timestamps above in µs since the trace began, where the tracer knew them
    /// (extension; JSON `preciseUs`, omitted when empty). See [`crate::PreciseTimes`].
    #[serde(skip_serializing_if = "PreciseTimes::is_empty")]
    pub precise_us: PreciseTimes,
}

impl TlsTunnelTrace {
    /// The cipher suite's IANA name (`TLS_AES_128_GCM_SHA256`), or its number in hex
    /// (`0x1302` style) when it is not a common one; empty for 0 (none negotiated).
    pub fn cipher_suite_name(&self) -> String {
        match self.cipher_suite {
            0 => String::new(),
            code => cipher_suite_name(code).map_or_else(|| format!("0x{code:04x}"), str::to_owned),
        }
    }
}

/// The IANA name of the common TLS 1.3 and TLS 1.2 cipher suites (those of rustls, Go's
/// crypto/tls and OpenSSL's defaults); `None` for others.
///
/// ```
/// assert_eq!(nettrace_model::cipher_suite_name(0x1302), Some("TLS_AES_256_GCM_SHA384"));
/// assert_eq!(nettrace_model::cipher_suite_name(0xfefe), None);
/// ```
pub fn cipher_suite_name(code: u16) -> Option<&'static str> {
    Some(match code {
        0x1301 => "TLS_AES_128_GCM_SHA256",
        0x1302 => "TLS_AES_256_GCM_SHA384",
        0x1303 => "TLS_CHACHA20_POLY1305_SHA256",
        0x1304 => "TLS_AES_128_CCM_SHA256",
        0x1305 => "TLS_AES_128_CCM_8_SHA256",
        0xc02b => "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
        0xc02c => "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
        0xc02f => "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
        0xc030 => "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
        0xcca8 => "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
        0xcca9 => "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
        0xc009 => "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA",
        0xc00a => "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA",
        0xc013 => "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA",
        0xc014 => "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA",
        0xc023 => "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256",
        0xc027 => "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256",
        0x009c => "TLS_RSA_WITH_AES_128_GCM_SHA256",
        0x009d => "TLS_RSA_WITH_AES_256_GCM_SHA384",
        0x002f => "TLS_RSA_WITH_AES_128_CBC_SHA",
        0x0035 => "TLS_RSA_WITH_AES_256_CBC_SHA",
        0x003c => "TLS_RSA_WITH_AES_128_CBC_SHA256",
        0x000a => "TLS_RSA_WITH_3DES_EDE_CBC_SHA",
        0xc012 => "TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA",
        0x009e => "TLS_DHE_RSA_WITH_AES_128_GCM_SHA256",
        0x009f => "TLS_DHE_RSA_WITH_AES_256_GCM_SHA384",
        0xccaa => "TLS_DHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
        _ => return None,
    })
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
            ..Default::default()
        };
        let json = serde_json::to_value(&tunnel).unwrap();
        assert_eq!(json["cipherSuite"], 4865);
        for extra in ["tlsVersion", "insecure", "certVerifyErr"] {
            assert!(json.get(extra).is_none(), "{extra} is omitted when empty");
        }
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
    fn extra_keys_round_trip_and_suites_have_names() {
        let tunnel = TlsTunnelTrace {
            cipher_suite: 0x1302,
            tls_version: "TLSv1.3".into(),
            insecure: true,
            cert_verify_err: "invalid peer certificate: UnknownIssuer".into(),
            ..Default::default()
        };
        let json = serde_json::to_value(&tunnel).unwrap();
        assert_eq!(json["tlsVersion"], "TLSv1.3");
        assert_eq!(json["insecure"], true);
        assert_eq!(
            json["certVerifyErr"],
            "invalid peer certificate: UnknownIssuer"
        );
        assert_eq!(
            serde_json::from_value::<TlsTunnelTrace>(json).unwrap(),
            tunnel
        );
        assert_eq!(tunnel.cipher_suite_name(), "TLS_AES_256_GCM_SHA384");
        let other = TlsTunnelTrace {
            cipher_suite: 0xabcd,
            ..Default::default()
        };
        assert_eq!(other.cipher_suite_name(), "0xabcd");
        assert_eq!(TlsTunnelTrace::default().cipher_suite_name(), "");
    }

    #[test]
    fn cert_round_trip() {
        let json = serde_json::to_value(cert()).unwrap();
        assert_eq!(json["notBefore"], "1970-01-01T00:00:00Z");
        assert_eq!(serde_json::from_value::<PeerCert>(json).unwrap(), cert());
    }
}
