//! [`ProxyRoute`]: the proxy a request goes through, with the credentials of its URL
//! (`http://user:pass@host:port`) taken out of it, and [`redact_userinfo`], which hides a
//! password in a URL before it is shown anywhere.
//!
//! As Go's transport (and curl) do, the credentials are sent as `Proxy-Authorization: Basic
//! ...`: on each plain `http://` request sent through the proxy, and on the `CONNECT` that opens
//! a tunnel for `https://`. They never reach the trace: `networkProxy` records the URL with the
//! password replaced by `***`.
//!
//! ```
//! use nettrace::client::redact_userinfo;
//! assert_eq!(redact_userinfo("http://me:secret@proxy.test:3128"), "http://me:***@proxy.test:3128");
//! assert_eq!(redact_userinfo("http://proxy.test:3128/"), "http://proxy.test:3128/");
//! ```
use http::{HeaderValue, Uri};

/// A chosen proxy, split into where it is and how to log in to it.
#[derive(Clone, Debug)]
pub(crate) struct ProxyRoute {
    /// The proxy's URL without its credentials.
    pub(crate) uri: Uri,
    /// The `Proxy-Authorization` value from the URL's credentials, if it had some.
    pub(crate) authorization: Option<HeaderValue>,
    /// The URL as recorded (`networkProxy`): `scheme://[user:***@]host:port`.
    pub(crate) display: String,
}

impl ProxyRoute {
    /// Splits `proxy` (as a [`ProxySelector`](super::ProxySelector) returned it).
    pub(crate) fn new(proxy: &Uri) -> Self {
        let scheme = proxy.scheme_str().unwrap_or("http");
        let Some(authority) = proxy.authority() else {
            return Self {
                uri: proxy.clone(),
                authorization: None,
                display: format!("{scheme}://"),
            };
        };
        let (userinfo, host_port) = match authority.as_str().rsplit_once('@') {
            Some((userinfo, host_port)) => (Some(userinfo), host_port),
            None => (None, authority.as_str()),
        };
        let Some(userinfo) = userinfo else {
            return Self {
                uri: proxy.clone(),
                authorization: None,
                display: format!("{scheme}://{host_port}"),
            };
        };
        let stripped = Uri::builder()
            .scheme(scheme)
            .authority(host_port)
            .path_and_query(proxy.path_and_query().map_or("/", |p| p.as_str()))
            .build()
            // A host:port taken from a valid authority is a valid authority.
            .unwrap_or_else(|_| proxy.clone());
        let (user, password) = userinfo.split_once(':').unwrap_or((userinfo, ""));
        let credentials = format!("{}:{}", percent_decode(user), percent_decode(password));
        let value = format!("Basic {}", base64(credentials.as_bytes()));
        let mut authorization = HeaderValue::from_str(&value).ok();
        if let Some(value) = &mut authorization {
            value.set_sensitive(true);
        }
        let shown = if userinfo.contains(':') {
            format!("{user}:***@")
        } else {
            format!("{user}@")
        };
        Self {
            uri: stripped,
            authorization,
            display: format!("{scheme}://{shown}{host_port}"),
        }
    }
}

/// `url` with the password of its userinfo (`scheme://user:password@host`) replaced by `***`;
/// other text is returned unchanged. For showing proxy URLs in logs and errors.
pub fn redact_userinfo(url: &str) -> String {
    let (scheme, rest) = match url.split_once("://") {
        Some((scheme, rest)) => (Some(scheme), rest),
        None => (None, url),
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let Some((userinfo, host)) = authority.rsplit_once('@') else {
        return url.to_owned();
    };
    let user = match userinfo.split_once(':') {
        Some((user, _)) => format!("{user}:***"),
        None => userinfo.to_owned(),
    };
    match scheme {
        Some(scheme) => format!("{scheme}://{user}@{host}{tail}"),
        None => format!("{user}@{host}{tail}"),
    }
}

/// Decodes `%XX` escapes (a malformed one is kept as it is).
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| char::from(b).to_digit(16);
        if bytes[i] == b'%'
            && let (Some(hi), Some(lo)) = (
                bytes.get(i + 1).copied().and_then(hex),
                bytes.get(i + 2).copied().and_then(hex),
            )
        {
            // Two hex digits make at most 255.
            out.push(u8::try_from(hi * 16 + lo).unwrap_or(b'%'));
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Standard base64 with padding (RFC 4648).
fn base64(input: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (k, shift) in [18, 12, 6, 0].into_iter().enumerate() {
            if k <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> shift) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc_4648() {
        for (input, expected) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("user:pass", "dXNlcjpwYXNz"),
        ] {
            assert_eq!(base64(input.as_bytes()), expected);
        }
    }

    #[test]
    fn credentials_leave_the_url() {
        let route = ProxyRoute::new(&"http://us%40er:p%3Ass@proxy.test:3128".parse().unwrap());
        assert_eq!(route.uri.to_string(), "http://proxy.test:3128/");
        assert_eq!(route.display, "http://us%40er:***@proxy.test:3128");
        let value = route.authorization.unwrap();
        assert!(value.is_sensitive());
        // "us@er:p:ss"
        assert_eq!(value, format!("Basic {}", base64(b"us@er:p:ss")).as_str());

        let route = ProxyRoute::new(&"https://proxy.test:8443".parse().unwrap());
        assert_eq!(route.display, "https://proxy.test:8443");
        assert!(route.authorization.is_none());
    }

    #[test]
    fn redaction_hides_only_the_password() {
        assert_eq!(
            redact_userinfo("http://u:p@h:1/x@y"),
            "http://u:***@h:1/x@y"
        );
        assert_eq!(redact_userinfo("u:p@h:1"), "u:***@h:1");
        assert_eq!(redact_userinfo("http://u@h"), "http://u@h");
        assert_eq!(redact_userinfo("not a url"), "not a url");
    }
}
