//! Redirects: which responses are followed and what the next hop sends (RFC 9110 15.4, as
//! Go's http.Client does it).
use http::{HeaderMap, Method, StatusCode, Uri, header};

/// At most this many requests are sent for one call, redirects included (Go: "stopped after
/// 10 redirects" when the 10th response is a redirect too).
pub(crate) const MAX_REQUESTS: usize = 10;

/// The next hop of a redirect response, if it is one that is followed.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct NextHop {
    pub(crate) uri: Uri,
    pub(crate) method: Method,
    /// False when the next hop drops the body (301/302 of a POST, 303).
    pub(crate) keep_body: bool,
}

/// A redirect that cannot be followed: its `Location` is no `http`/`https` URL, or does not
/// parse. Its hop is recorded as a request that failed without being sent (as Go records a
/// redirect to `file://`: its transport refuses the scheme), with `location` as its URL.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct BadLocation {
    /// The method the hop would have used.
    pub(crate) method: Method,
    /// The `Location` as sent (invalid UTF-8 replaced).
    pub(crate) location: String,
    /// Why it cannot be followed.
    pub(crate) reason: String,
}

/// The hop after a response with `status` and `headers` to a request `method` on `current`.
pub(crate) fn next_hop(
    current: &Uri,
    method: &Method,
    status: StatusCode,
    headers: &HeaderMap,
) -> Option<Result<NextHop, BadLocation>> {
    let keep_method = match status {
        StatusCode::MOVED_PERMANENTLY | StatusCode::FOUND | StatusCode::SEE_OTHER => false,
        StatusCode::TEMPORARY_REDIRECT | StatusCode::PERMANENT_REDIRECT => true,
        _ => return None,
    };
    let location = headers.get(header::LOCATION)?;
    let (method, keep_body) = if keep_method
        || (status != StatusCode::SEE_OTHER && (method == Method::GET || method == Method::HEAD))
    {
        (method.clone(), keep_method)
    } else {
        (Method::GET, false)
    };
    Some(match resolve(current, location.as_bytes()) {
        Ok(uri) => Ok(NextHop {
            uri,
            method,
            keep_body,
        }),
        Err(reason) => Err(BadLocation {
            method,
            location: String::from_utf8_lossy(location.as_bytes())
                .trim()
                .to_owned(),
            reason,
        }),
    })
}

/// `location` resolved against `base` (absolute URL, absolute path, or relative path).
fn resolve(base: &Uri, location: &[u8]) -> Result<Uri, String> {
    let location = std::str::from_utf8(location)
        .map_err(|_| "redirect Location is not UTF-8".to_owned())?
        .trim();
    // A scheme (RFC 3986: a letter, then letters, digits, `+`, `-`, `.`) other than http(s).
    if let Some((scheme, _)) = location.split_once(':')
        && scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
        && !scheme.eq_ignore_ascii_case("http")
        && !scheme.eq_ignore_ascii_case("https")
    {
        return Err(format!(
            "unsupported URL scheme {:?} in redirect Location {location:?}",
            scheme.to_ascii_lowercase()
        ));
    }
    let parsed: Uri = location
        .parse()
        .map_err(|e| format!("invalid redirect Location {location:?}: {e}"))?;
    if parsed.scheme().is_some() {
        return Ok(parsed);
    }
    let path = if location.starts_with('/') {
        location.to_owned()
    } else {
        let base_path = base.path();
        let dir = &base_path[..base_path.rfind('/').map_or(0, |i| i + 1)];
        format!("{dir}{location}")
    };
    let mut parts = base.clone().into_parts();
    parts.path_and_query = Some(
        path.parse()
            .map_err(|e| format!("invalid redirect Location {location:?}: {e}"))?,
    );
    Uri::from_parts(parts).map_err(|e| format!("invalid redirect Location {location:?}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn location(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::LOCATION, value.parse().unwrap());
        h
    }

    #[test]
    fn follows_like_go() {
        let base: Uri = "http://a.test/x/y?q=1".parse().unwrap();
        let hop = next_hop(&base, &Method::POST, StatusCode::FOUND, &location("z"))
            .unwrap()
            .unwrap();
        assert_eq!(hop.uri, "http://a.test/x/z".parse::<Uri>().unwrap());
        assert_eq!((hop.method, hop.keep_body), (Method::GET, false));

        let hop = next_hop(
            &base,
            &Method::POST,
            StatusCode::TEMPORARY_REDIRECT,
            &location("/p"),
        )
        .unwrap()
        .unwrap();
        assert_eq!(hop.uri, "http://a.test/p".parse::<Uri>().unwrap());
        assert_eq!((hop.method, hop.keep_body), (Method::POST, true));

        let hop = next_hop(
            &base,
            &Method::GET,
            StatusCode::MOVED_PERMANENTLY,
            &location("https://b.test/"),
        )
        .unwrap()
        .unwrap();
        assert_eq!(hop.uri, "https://b.test/".parse::<Uri>().unwrap());

        assert!(next_hop(&base, &Method::GET, StatusCode::OK, &location("/")).is_none());
        let bad = next_hop(
            &base,
            &Method::POST,
            StatusCode::FOUND,
            &location("file:///etc/passwd"),
        )
        .unwrap()
        .unwrap_err();
        assert_eq!(bad.method, Method::GET);
        assert_eq!(bad.location, "file:///etc/passwd");
        assert!(
            bad.reason.contains("unsupported URL scheme \"file\""),
            "{bad:?}"
        );
        let bad = next_hop(
            &base,
            &Method::GET,
            StatusCode::FOUND,
            &location("http://a b/"),
        )
        .unwrap()
        .unwrap_err();
        assert!(bad.reason.contains("invalid redirect Location"), "{bad:?}");
        // A colon later in a relative path is no scheme.
        let hop = next_hop(&base, &Method::GET, StatusCode::FOUND, &location("/a:b"))
            .unwrap()
            .unwrap();
        assert_eq!(hop.uri, "http://a.test/a:b".parse::<Uri>().unwrap());
        assert!(next_hop(&base, &Method::GET, StatusCode::FOUND, &HeaderMap::new()).is_none());
    }
}
