//! HTTP records: [`HttpReqTrace`], captured headers ([`HttpHeader`], [`HttpHeaderKv`]) and the
//! capture option [`HdrFieldsOpt`].
//!
//! JSON as Go writes it, including the `RespContentLen` key with a capital `R` (a Go quirk kept
//! for compatibility; `respContentLen` is read too, as Go's case-insensitive decoder does).
//! Headers are omitted when empty. [`HttpHeader::get`] matches names case-insensitively, as HTTP
//! field names are (RFC 9110) and as Go's `Get` does.
//!
//! ```
//! use nettrace_model::{HttpHeader, HttpHeaderKv};
//!
//! let header = HttpHeader::from(vec![HttpHeaderKv::with_value("Content-Type", "text/html")]);
//! assert_eq!(header.get("content-type").map(|kv| kv.field_val_len), Some(9));
//! ```

use std::ops::{Deref, DerefMut};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::go_names;
use super::serde_util::{is_zero_u32, null_when_empty};
use super::{ModelError, PreciseTimes, Timestamp, TraceId, TraceList, Traced};

/// An HTTP request and its response.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct HttpReqTrace {
    /// This record's ID.
    #[serde(rename = "traceID")]
    pub trace_id: TraceId,
    /// The TCP connection the request went over (empty if none was established).
    pub tcp_conn: TraceId,
    /// The TLS tunnel to the server. Omitted when empty.
    #[serde(skip_serializing_if = "TraceId::is_empty")]
    pub tls_tunnel: TraceId,
    /// The TLS tunnel to an HTTPS proxy. Omitted when empty. JSON `proxyTLSTunnel`.
    #[serde(rename = "proxyTLSTunnel", skip_serializing_if = "TraceId::is_empty")]
    pub proxy_tls_tunnel: TraceId,
    /// HTTP major version.
    pub proto_major: u8,
    /// HTTP minor version.
    pub proto_minor: u8,
    /// The proxy as `scheme://host:port`, if the request was proxied. Omitted when empty.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub network_proxy: String,
    /// When the request was sent.
    pub req_sent_at: Timestamp,
    /// Request method (`GET`, ...).
    pub req_method: String,
    /// Request URL. JSON `reqURL`.
    #[serde(rename = "reqURL")]
    pub req_url: String,
    /// Captured request header fields (see [`HdrFieldsOpt`]). Omitted when empty.
    #[serde(skip_serializing_if = "HttpHeader::is_empty")]
    pub req_header: HttpHeader,
    /// Request body bytes read by the client (before transfer encoding).
    pub req_content_len: u64,
    /// Why the request failed, if it did. Omitted when empty.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub req_error: String,
    /// When the response (its header) was received.
    pub resp_recv_at: Timestamp,
    /// Response status code; 0 without a response.
    pub resp_status_code: u16,
    /// Captured response header fields. Omitted when empty.
    #[serde(skip_serializing_if = "HttpHeader::is_empty")]
    pub resp_header: HttpHeader,
    /// Response body bytes read by the caller (after decoding). JSON `RespContentLen`.
    #[serde(rename = "RespContentLen", alias = "respContentLen")]
    pub resp_content_len: u64,
    /// When the caller read the first byte of the response body (extension; JSON
    /// `respBodyFirstByteAt`, omitted when undefined: Go does not record it).
    #[serde(skip_serializing_if = "Timestamp::is_undefined")]
    pub resp_body_first_byte_at: Timestamp,
    /// When the caller read the last byte of the response body, i.e. saw its end, or stopped
    /// reading before it (dropped the body, or reading failed); undefined while the body is
    /// still being read (extension; JSON `respBodyLastByteAt`, omitted when undefined).
    #[serde(skip_serializing_if = "Timestamp::is_undefined")]
    pub resp_body_last_byte_at: Timestamp,
    /// The timestamps above in µs since the trace began, where the tracer knew them
    /// (extension; JSON `preciseUs`, omitted when empty). See [`crate::PreciseTimes`].
    #[serde(skip_serializing_if = "PreciseTimes::is_empty")]
    pub precise_us: PreciseTimes,
}

/// The HTTP requests of a trace (Go's `HTTPReqTraces`).
pub type HttpReqTraces = TraceList<HttpReqTrace>;

impl Traced for HttpReqTrace {
    fn trace_id(&self) -> &TraceId {
        &self.trace_id
    }
}

/// One captured header field.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct HttpHeaderKv {
    /// Field name as sent.
    pub field_name: String,
    /// Field value; empty (omitted) if values are not captured.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub field_val: String,
    /// Length of the actual value; 0 (omitted) if not captured.
    #[serde(skip_serializing_if = "is_zero_u32")]
    pub field_val_len: u32,
}

impl HttpHeaderKv {
    /// A field with its value and value length ([`HdrFieldsOpt::WithValues`]).
    pub fn with_value(name: impl Into<String>, value: impl Into<String>) -> Self {
        let field_val = value.into();
        Self {
            field_name: name.into(),
            field_val_len: u32::try_from(field_val.len()).unwrap_or(u32::MAX),
            field_val,
        }
    }
}

/// Captured header fields, in capture order. JSON: an array (`null` when empty).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HttpHeader(pub Vec<HttpHeaderKv>);

impl HttpHeader {
    /// The first field named `name`, compared case-insensitively (ASCII), as HTTP field names
    /// are case-insensitive.
    pub fn get(&self, name: &str) -> Option<&HttpHeaderKv> {
        self.0
            .iter()
            .find(|kv| kv.field_name.eq_ignore_ascii_case(name))
    }

    /// True without fields.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Deref for HttpHeader {
    type Target = Vec<HttpHeaderKv>;

    fn deref(&self) -> &Vec<HttpHeaderKv> {
        &self.0
    }
}

impl DerefMut for HttpHeader {
    fn deref_mut(&mut self) -> &mut Vec<HttpHeaderKv> {
        &mut self.0
    }
}

impl From<Vec<HttpHeaderKv>> for HttpHeader {
    fn from(fields: Vec<HttpHeaderKv>) -> Self {
        Self(fields)
    }
}

impl FromIterator<HttpHeaderKv> for HttpHeader {
    fn from_iter<I: IntoIterator<Item = HttpHeaderKv>>(iter: I) -> Self {
        Self(iter.into_iter().collect())
    }
}

impl Serialize for HttpHeader {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        null_when_empty::serialize(&self.0, serializer)
    }
}

impl<'de> Deserialize<'de> for HttpHeader {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        null_when_empty::deserialize(deserializer).map(Self)
    }
}

/// How HTTP header fields are captured into [`HttpReqTrace`]; the numbers are Go's constants.
/// A tracing option, not part of the JSON.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum HdrFieldsOpt {
    /// Capture nothing (header fields may hold secrets).
    #[default]
    Disabled = 0,
    /// Capture field names only.
    NamesOnly = 1,
    /// Capture names and value lengths.
    ValueLenOnly = 2,
    /// Capture names, values and value lengths.
    WithValues = 3,
}

impl HdrFieldsOpt {
    /// Go's numeric value.
    pub const fn as_u8(self) -> u8 {
        self as u8
    }
}

impl TryFrom<u8> for HdrFieldsOpt {
    type Error = ModelError;

    fn try_from(value: u8) -> Result<Self, ModelError> {
        let all = [
            Self::Disabled,
            Self::NamesOnly,
            Self::ValueLenOnly,
            Self::WithValues,
        ];
        go_names::from_u8(&all, "header fields option", value)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn request() -> HttpReqTrace {
        HttpReqTrace {
            trace_id: TraceId::new("tid-2"),
            tcp_conn: TraceId::new("tid-8"),
            tls_tunnel: TraceId::new("tid-10"),
            proxy_tls_tunnel: TraceId::new("tid-9"),
            proto_major: 1,
            proto_minor: 1,
            network_proxy: "https://proxy.example:3128".into(),
            req_sent_at: Timestamp::Relative(72),
            req_method: "POST".into(),
            req_url: "https://www.example.com/api".into(),
            req_header: vec![
                HttpHeaderKv::with_value("Accept", "text/html"),
                HttpHeaderKv {
                    field_name: "Authorization".into(),
                    ..Default::default()
                },
            ]
            .into(),
            req_content_len: 12,
            req_error: String::new(),
            resp_recv_at: Timestamp::Relative(239),
            resp_status_code: 201,
            resp_header: vec![HttpHeaderKv {
                field_name: "Content-Type".into(),
                field_val: String::new(),
                field_val_len: 24,
            }]
            .into(),
            resp_content_len: 15381,
            ..Default::default()
        }
    }

    #[test]
    fn request_round_trip() {
        let req = request();
        let json = serde_json::to_value(&req).unwrap();
        assert_eq!(json["proxyTLSTunnel"], "tid-9");
        assert_eq!(json["reqURL"], "https://www.example.com/api");
        assert_eq!(json["respStatusCode"], 201);
        assert_eq!(json["RespContentLen"], 15381);
        assert!(json.get("respContentLen").is_none());
        assert_eq!(
            json["reqHeader"],
            json!([{"fieldName": "Accept", "fieldVal": "text/html", "fieldValLen": 9},
                   {"fieldName": "Authorization"}])
        );
        assert_eq!(serde_json::from_value::<HttpReqTrace>(json).unwrap(), req);
    }

    #[test]
    fn failed_request_omits_empty_fields() {
        let req = HttpReqTrace {
            trace_id: TraceId::new("tid-2"),
            proto_major: 1,
            proto_minor: 1,
            req_sent_at: Timestamp::Relative(0),
            req_method: "GET".into(),
            req_url: "https://non-existent-host.com".into(),
            req_error: "no such host".into(),
            ..Default::default()
        };
        let json = serde_json::to_value(&req).unwrap();
        assert_eq!(
            json,
            json!({"traceID": "tid-2", "tcpConn": "", "protoMajor": 1, "protoMinor": 1,
                "reqSentAt": "+0ms", "reqMethod": "GET", "reqURL": "https://non-existent-host.com",
                "reqContentLen": 0, "reqError": "no such host", "respRecvAt": "undefined",
                "respStatusCode": 0, "RespContentLen": 0})
        );
        assert_eq!(serde_json::from_value::<HttpReqTrace>(json).unwrap(), req);
    }

    #[test]
    fn header_get_is_case_insensitive() {
        let req = request();
        assert_eq!(
            req.req_header.get("ACCEPT").map(|kv| kv.field_val.as_str()),
            Some("text/html")
        );
        assert!(req.req_header.get("authorization").is_some());
        assert!(req.req_header.get("Cookie").is_none());
    }

    #[test]
    fn header_reads_null_and_empty() {
        for input in ["null", "[]"] {
            assert!(
                serde_json::from_str::<HttpHeader>(input)
                    .unwrap()
                    .is_empty()
            );
        }
        let req: HttpReqTrace =
            serde_json::from_value(json!({"reqHeader": null, "respContentLen": 7})).unwrap();
        assert!(req.req_header.is_empty());
        assert_eq!(req.resp_content_len, 7);
    }

    #[test]
    fn hdr_fields_opt_numbers() {
        for value in 0..4u8 {
            assert_eq!(HdrFieldsOpt::try_from(value).unwrap().as_u8(), value);
        }
        assert!(HdrFieldsOpt::try_from(4).is_err());
        assert_eq!(HdrFieldsOpt::default(), HdrFieldsOpt::Disabled);
    }
}
