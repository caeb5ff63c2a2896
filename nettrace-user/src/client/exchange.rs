//! One request over the pool: a connection checked out (or dialed), the request put in the
//! form its connection needs (as hyper-util's client did: `Host`, origin- or absolute-form),
//! sent, and the connection lent to the response body until its end
//! ([`ReturnOnEnd`](super::pool::ReturnOnEnd)).
//!
//! A request that a reused connection gives back unsent (the server had closed it while it
//! was idle) is sent again on another, as hyper-util and Go do.
use std::{future::Future, pin::Pin, sync::Arc};

use http::{HeaderMap, HeaderValue, Method, Request, Response, Uri, Version, header, uri::Parts};
use hyper::body::Incoming;

use super::{
    RequestBody,
    exchange_error::ExchangeError,
    pool,
    pool::{Pool, PoolKey, PooledConn, ReturnOnEnd},
    proxy::ProxyRoute,
};

/// Sends that reused connections gave back unsent, at most, before the error is returned.
const MAX_RETRIES: usize = 8;

/// A response and, for an HTTP/1 connection to be reused, what hands it back at the end of
/// the body.
pub(crate) struct Exchanged {
    pub(crate) response: Response<Incoming>,
    pub(crate) on_end: Option<ReturnOnEnd>,
}

/// An exchange in progress.
pub(crate) type ExchangeFuture =
    Pin<Box<dyn Future<Output = Result<Exchanged, ExchangeError>> + Send>>;

/// Sends `request` (absolute URI) through `proxy`, if any, over a connection of `pool`.
///
/// One `async` block, not an `async fn` called from another: each level would copy the
/// request (and an `async fn` its arguments once more, into its locals) on every request.
pub(crate) fn send(
    pool: Arc<Pool>,
    mut request: Request<RequestBody>,
    proxy: Option<&ProxyRoute>,
) -> ExchangeFuture {
    let key = PoolKey::new(request.uri(), proxy);
    Box::pin(async move {
        let key = key.ok_or(ExchangeError::Unsupported("UserAbsoluteUriRequired"))?;
        check_version(&request)?;
        // The request's own `Connection: close` (`disable_keep_alive`): hyper closes after it.
        let closing = wants_close(request.headers());
        let mut retries = 0;
        loop {
            let (mut conn, reused) = pool.checkout(&key).await?;
            let absolute = prepare(&mut request, &conn)?;
            let sent = match &mut conn.sender {
                pool::Sender::Http1(sender) => sender.try_send_request(request).await,
                pool::Sender::Http2(sender) => sender.try_send_request(request).await,
            };
            let mut failed = match sent {
                Ok(response) => return Ok(lend(pool, key, conn, response, closing)),
                Err(failed) => failed,
            };
            match failed.take_message() {
                Some(unsent) if reused && retries < MAX_RETRIES => {
                    retries += 1;
                    request = unsent;
                    if let Some(absolute) = absolute {
                        *request.uri_mut() = absolute;
                    }
                }
                Some(_) => return Err(ExchangeError::canceled(failed.into_error())),
                None => return Err(ExchangeError::send(failed.into_error())),
            }
        }
    })
}

/// The response, with the connection's trace IDs in its extensions, and the connection
/// handed back to the pool now (no body), at the end of the body, or not at all (closing).
fn lend(
    pool: Arc<Pool>,
    key: PoolKey,
    conn: PooledConn,
    mut response: Response<Incoming>,
    closing: bool,
) -> Exchanged {
    response.extensions_mut().insert((*conn.info).clone());
    if conn.is_http2() || closing || wants_close(response.headers()) {
        return Exchanged {
            response,
            on_end: None,
        };
    }
    if http_body::Body::is_end_stream(response.body()) {
        pool.put(&key, conn);
        return Exchanged {
            response,
            on_end: None,
        };
    }
    Exchanged {
        response,
        on_end: Some(ReturnOnEnd::new(pool, key, conn)),
    }
}

/// `Connection: close` in `headers` (hyper then closes the connection after the exchange).
fn wants_close(headers: &HeaderMap) -> bool {
    headers.get_all(header::CONNECTION).iter().any(|value| {
        value
            .as_bytes()
            .split(|&b| b == b',')
            .any(|token| token.trim_ascii().eq_ignore_ascii_case(b"close"))
    })
}

/// The versions hyper-util's client accepted.
fn check_version(request: &Request<RequestBody>) -> Result<(), ExchangeError> {
    match request.version() {
        Version::HTTP_11 | Version::HTTP_2 => Ok(()),
        Version::HTTP_10 if request.method() == Method::CONNECT => {
            Err(ExchangeError::Unsupported("UserUnsupportedRequestMethod"))
        }
        Version::HTTP_10 => Ok(()),
        _ => Err(ExchangeError::Unsupported("UserUnsupportedVersion")),
    }
}

/// Puts `request` in the form `conn` needs. HTTP/2 takes the absolute URI as it is; HTTP/1
/// gets a `Host` field (unless the caller set one) and the origin form, or the absolute form
/// through a plain HTTP proxy, or the authority form for `CONNECT`. Returns the absolute URI
/// when it was replaced, for a request sent again (moved out rather than cloned beforehand).
fn prepare(
    request: &mut Request<RequestBody>,
    conn: &PooledConn,
) -> Result<Option<Uri>, ExchangeError> {
    if conn.is_http2() {
        return Ok(None);
    }
    if request.version() == Version::HTTP_2 {
        return Err(ExchangeError::Unsupported("UserUnsupportedVersion"));
    }
    if !request.headers().contains_key(header::HOST)
        && let Some(host) = host_value(request.uri())
    {
        request.headers_mut().insert(header::HOST, host);
    }
    let connect = request.method() == Method::CONNECT;
    let uri = request.uri_mut();
    let form = if connect {
        authority_form(uri)
    } else if !conn.proxied {
        Some(origin_form(uri))
    } else {
        None
    };
    Ok(form.map(|form| std::mem::replace(uri, form)))
}

/// `host[:port]`, the port only when it is not the scheme's default.
fn host_value(uri: &Uri) -> Option<HeaderValue> {
    let host = uri.host()?;
    let default = match uri.scheme_str() {
        Some("https" | "wss") => 443,
        _ => 80,
    };
    match port_u16(uri) {
        Some(port) if port != default => host_port_value(host, port),
        _ => HeaderValue::from_str(host).ok(),
    }
}

/// `host:port` as a header value, the bytes `format!("{host}:{port}")` would give, written
/// into one allocation of the exact size that the value then keeps: `format!` and
/// `HeaderValue::from_str` (a copy) cost more than the rest of the request's preparation.
fn host_port_value(host: &str, port: u16) -> Option<HeaderValue> {
    let mut digits = itoa::Buffer::new();
    let digits = digits.format(port).as_bytes();
    let mut value = Vec::with_capacity(host.len() + 1 + digits.len());
    value.extend_from_slice(host.as_bytes());
    value.push(b':');
    value.extend_from_slice(digits);
    // Validated as `from_str` does; a vector as long as its capacity is not copied again.
    HeaderValue::from_maybe_shared(bytes::Bytes::from(value)).ok()
}

/// What `Uri::port_u16` answers (the text after the authority's last `:`, if it is a `u16`),
/// in one byte scan instead of its `rfind(char)`: this runs for every HTTP/1 request.
fn port_u16(uri: &Uri) -> Option<u16> {
    let authority = uri.authority()?.as_str();
    let colon = authority.bytes().rposition(|b| b == b':')?;
    // `:` is ASCII, so `colon + 1` is a character boundary.
    authority[colon + 1..].parse().ok()
}

/// `/path?query` (`/` for none).
fn origin_form(uri: &Uri) -> Uri {
    match uri.path_and_query() {
        Some(path) if path.as_str() != "/" => {
            let mut parts = Parts::default();
            parts.path_and_query = Some(path.clone());
            Uri::from_parts(parts).unwrap_or_default()
        }
        _ => Uri::default(),
    }
}

/// `host:port`, for `CONNECT` (none without an authority).
fn authority_form(uri: &Uri) -> Option<Uri> {
    let mut parts = Parts::default();
    parts.authority = Some(uri.authority()?.clone());
    Uri::from_parts(parts).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_names_a_port_only_when_it_is_not_the_default() {
        let host = |uri: &str| host_value(&uri.parse().expect("valid")).expect("a host");
        assert_eq!(host("http://a.test/x"), "a.test");
        assert_eq!(host("http://a.test:80/x"), "a.test");
        assert_eq!(host("http://a.test:8080/x"), "a.test:8080");
        assert_eq!(host("https://a.test:443/"), "a.test");
        assert_eq!(host("https://a.test:80/"), "a.test:80");
        assert_eq!(host("http://[::1]:8080/"), "[::1]:8080");
        assert_eq!(host("http://a.test:0/"), "a.test:0");
        assert_eq!(host("http://a.test:65535/"), "a.test:65535");
        assert!(host_port_value("a\u{7f}b", 8080).is_none());
    }

    #[test]
    fn the_port_is_read_as_http_reads_it() {
        for uri in [
            "http://a.test/",
            "http://a.test:/",
            "http://a.test:8080/",
            "http://a.test:99999/",
            "http://u:p@a.test/",
            "http://u:p@a.test:81/",
            "http://[::1]/",
            "http://[::1]:443/",
        ] {
            let uri: Uri = uri.parse().expect("valid");
            assert_eq!(port_u16(&uri), uri.port_u16(), "{uri}");
        }
    }

    #[test]
    fn forms_of_the_request_target() {
        let uri: Uri = "http://a.test:8080/p?q=1".parse().expect("valid");
        assert_eq!(origin_form(&uri), "/p?q=1");
        let root: Uri = "http://a.test".parse().expect("valid");
        assert_eq!(origin_form(&root), "/");
        let connect: Uri = "https://a.test:443/".parse().expect("valid");
        let form = authority_form(&connect).expect("an authority");
        assert_eq!(form.to_string(), "a.test:443");
    }

    #[test]
    fn connection_close_is_found_among_tokens() {
        let mut headers = HeaderMap::new();
        assert!(!wants_close(&headers));
        headers.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, Close"),
        );
        assert!(wants_close(&headers));
    }
}
