//! [`Endpoint`]: the scheme, host and port a URI points to.
use std::net::IpAddr;

use http::Uri;

/// Where a URI points.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Endpoint {
    /// True for `https`.
    pub(crate) tls: bool,
    /// Host name or IP literal, without IPv6 brackets.
    pub(crate) host: String,
    /// Port, defaulted from the scheme.
    pub(crate) port: u16,
}

impl Endpoint {
    /// The endpoint of an absolute `http`/`https` URI.
    pub(crate) fn from_uri(uri: &Uri) -> Result<Self, String> {
        let tls = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            Some(other) => return Err(format!("unsupported URL scheme {other:?} in {uri}")),
            None => return Err(format!("URL {uri} has no scheme")),
        };
        let host = uri
            .host()
            .ok_or_else(|| format!("URL {uri} has no host"))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
        Ok(Self { tls, host, port })
    }

    /// The host as an IP address, when it is a literal.
    pub(crate) fn ip(&self) -> Option<IpAddr> {
        self.host.parse().ok()
    }

    /// `host:port`, with brackets around an IPv6 host (Go's `DstAddress` form).
    pub(crate) fn authority(&self) -> String {
        match self.ip() {
            Some(IpAddr::V6(_)) => format!("[{}]:{}", self.host, self.port),
            _ => format!("{}:{}", self.host, self.port),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_ports_and_strips_brackets() {
        let e = Endpoint::from_uri(&"https://example.test/x".parse().unwrap()).unwrap();
        assert_eq!(
            (e.tls, e.host.as_str(), e.port),
            (true, "example.test", 443)
        );
        let e = Endpoint::from_uri(&"http://[::1]:8080/".parse().unwrap()).unwrap();
        assert_eq!(e.authority(), "[::1]:8080");
        assert_eq!(e.ip(), Some("::1".parse().unwrap()));
        assert!(Endpoint::from_uri(&"ftp://x/".parse().unwrap()).is_err());
    }
}
