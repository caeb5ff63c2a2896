//! [`Protocol`]: how spans travel to the collector, named as OpenTelemetry's
//! `OTEL_EXPORTER_OTLP_PROTOCOL` names it, and the URL each protocol posts to.
use std::{fmt, str::FromStr};

/// The OTLP transport.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Protocol {
    /// OTLP over HTTP with protobuf bodies (`http/protobuf`; collectors listen on 4318),
    /// posted to `/v1/traces`.
    #[default]
    HttpProtobuf,
    /// OTLP over gRPC (`grpc`; collectors listen on 4317), plaintext `http://` endpoints.
    Grpc,
}

impl Protocol {
    /// The name `OTEL_EXPORTER_OTLP_PROTOCOL` gives it.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::HttpProtobuf => "http/protobuf",
            Self::Grpc => "grpc",
        }
    }

    /// The URL spans are sent to for `endpoint`: for HTTP, `/v1/traces` added when the URL
    /// has no path; for gRPC, the endpoint itself (a plaintext `http://HOST:PORT`).
    pub(crate) fn traces_url(self, endpoint: &str) -> Result<String, String> {
        let Some((scheme, rest)) = endpoint.split_once("://") else {
            return Err("not a URL (expected http://HOST:PORT)".to_owned());
        };
        if rest.is_empty() || rest.starts_with('/') {
            return Err("no host".to_owned());
        }
        match (self, scheme) {
            (Self::HttpProtobuf, "http" | "https") => Ok(match rest.split_once('/') {
                None => format!("{endpoint}/v1/traces"),
                Some((_, "")) => format!("{endpoint}v1/traces"),
                Some(_) => endpoint.to_owned(),
            }),
            (Self::HttpProtobuf, _) => Err(format!("scheme {scheme}: expected http or https")),
            (Self::Grpc, "http") => Ok(endpoint.trim_end_matches('/').to_owned()),
            (Self::Grpc, "https") => Err(
                "gRPC over TLS is not built in: use a plaintext http:// endpoint (a local \
                 collector) or http/protobuf"
                    .to_owned(),
            ),
            (Self::Grpc, _) => Err(format!("scheme {scheme}: expected http")),
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Protocol {
    type Err = String;

    /// `grpc`, `http/protobuf` (or `http`); `http/json` is not supported.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "grpc" => Ok(Self::Grpc),
            "http/protobuf" | "http" => Ok(Self::HttpProtobuf),
            other => Err(format!(
                "OTLP protocol {other}: expected grpc or http/protobuf"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Protocol;

    #[test]
    fn the_traces_path_is_added_only_for_http_and_only_when_there_is_no_path() {
        let http = Protocol::HttpProtobuf;
        assert_eq!(
            http.traces_url("http://127.0.0.1:4318").as_deref(),
            Ok("http://127.0.0.1:4318/v1/traces")
        );
        assert_eq!(
            http.traces_url("http://c:4318/").as_deref(),
            Ok("http://c:4318/v1/traces")
        );
        assert_eq!(
            http.traces_url("https://c/otlp/v1/traces").as_deref(),
            Ok("https://c/otlp/v1/traces")
        );
        assert!(http.traces_url("127.0.0.1:4318").is_err());
        assert!(http.traces_url("ftp://c").is_err());
        assert!(http.traces_url("http:///x").is_err());
        let grpc = Protocol::Grpc;
        assert_eq!(
            grpc.traces_url("http://127.0.0.1:4317/").as_deref(),
            Ok("http://127.0.0.1:4317")
        );
        assert!(grpc.traces_url("https://c:4317").is_err());
        assert!(grpc.traces_url("grpc://c:4317").is_err());
    }

    #[test]
    fn protocols_are_named_as_opentelemetry_names_them() {
        assert_eq!("grpc".parse(), Ok(Protocol::Grpc));
        assert_eq!("http/protobuf".parse(), Ok(Protocol::HttpProtobuf));
        assert_eq!("HTTP".parse(), Ok(Protocol::HttpProtobuf));
        assert!("http/json".parse::<Protocol>().is_err());
        assert_eq!(Protocol::Grpc.to_string(), "grpc");
        assert_eq!(Protocol::default().as_str(), "http/protobuf");
    }
}
