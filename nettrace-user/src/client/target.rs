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
        let port = match port_of(uri)? {
            Some(port) => port,
            None => {
                if tls {
                    443
                } else {
                    80
                }
            }
        };
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

/// The port written in `uri`, if any; an error naming it when it is not a number from 0 to
/// 65535. `http::Uri` keeps any digits as the port's text but gives no number for one out of
/// range (`port_u16()` is `None`, as for no port at all), so the text is read here: a URL with
/// port 99999 must fail, not go to the scheme's default port. An empty port (`host:`) is the
/// default one, as in Go.
pub(crate) fn port_of(uri: &Uri) -> Result<Option<u16>, String> {
    let Some(authority) = uri.authority() else {
        return Ok(None);
    };
    let text = port_text(authority.as_str());
    match text {
        None | Some("") => Ok(None),
        Some(text) => text.parse::<u16>().map(Some).map_err(|_| {
            format!("URL {uri} has an invalid port {text:?} (a port is a number from 0 to 65535)")
        }),
    }
}

/// The port's text in `authority`: after the `:` that follows an IPv6 literal's `]`, or
/// after the last `:` of any other host; the user info (up to the last `@`) is not looked
/// at. One backward pass over the bytes (this runs for every request).
fn port_text(authority: &str) -> Option<&str> {
    let bytes = authority.as_bytes();
    // The last `:` and the last `]` after the last `@`.
    let mut colon = None;
    let mut bracket = None;
    for (i, &b) in bytes.iter().enumerate().rev() {
        match b {
            b'@' => break,
            b':' if colon.is_none() => colon = Some(i),
            b']' => {
                bracket = Some(i);
                break;
            }
            _ => {}
        }
    }
    match bracket {
        // `]` is ASCII, so `end + 1` is a character boundary.
        Some(end) => authority[end + 1..].strip_prefix(':'),
        // `:` is ASCII, so `colon + 1` is a character boundary.
        None => colon.map(|colon| &authority[colon + 1..]),
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

    #[test]
    fn a_port_out_of_range_is_an_error_not_the_default() {
        for url in [
            "http://127.0.0.1:99999/",
            "http://[::1]:65536/",
            "https://u:p@example.test:70000/x",
        ] {
            let error = Endpoint::from_uri(&url.parse().unwrap()).unwrap_err();
            assert!(error.contains("invalid port"), "{url}: {error}");
        }
        let e = Endpoint::from_uri(&"http://u:p@[::1]:65535/".parse().unwrap()).unwrap();
        assert_eq!(e.port, 65535);
        let e = Endpoint::from_uri(&"http://example.test:/".parse().unwrap()).unwrap();
        assert_eq!(e.port, 80);
    }

    #[test]
    fn the_port_text_is_after_the_host() {
        for (authority, port) in [
            ("example.test", None),
            ("example.test:", Some("")),
            ("example.test:8080", Some("8080")),
            ("u:p@example.test", None),
            ("u:p@example.test:81", Some("81")),
            ("[::1]", None),
            ("[::1]:", Some("")),
            ("[::1]:443", Some("443")),
            ("u:p@[::1]:443", Some("443")),
            ("[::1]x:80", None),
            ("a@b@c:1", Some("1")),
        ] {
            assert_eq!(port_text(authority), port, "{authority}");
        }
    }
}
