//! The HTTP `CONNECT` handshake that opens a tunnel through a proxy to `host:port`.
use http::{HeaderValue, StatusCode};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::{ProxyFailure, RequestError, RequestErrorKind};

/// Upper bound for the proxy's response head.
const MAX_RESPONSE_HEAD: usize = 16 * 1024;

/// Asks the proxy on `io` for a tunnel to `authority` (`host:port`), logging in with
/// `authorization` (a `Proxy-Authorization` value) when given; succeeds on a 2xx reply.
pub(crate) async fn connect<S>(
    io: &mut S,
    authority: &str,
    authorization: Option<&HeaderValue>,
) -> Result<(), RequestError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut request = format!("CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n").into_bytes();
    if let Some(authorization) = authorization {
        request.extend_from_slice(b"Proxy-Authorization: ");
        request.extend_from_slice(authorization.as_bytes());
        request.extend_from_slice(b"\r\n");
    }
    request.extend_from_slice(b"\r\n");
    let sent = match io.write_all(&request).await {
        Ok(()) => io.flush().await,
        Err(error) => Err(error),
    };
    sent.map_err(|e| failed(format!("sending CONNECT to the proxy failed: {e}")).with_source(e))?;
    // Read byte by byte: nothing after the head may be consumed, it belongs to the tunnel.
    let mut head = Vec::with_capacity(256);
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() >= MAX_RESPONSE_HEAD {
            return Err(failed(format!(
                "the proxy's CONNECT response head exceeds {MAX_RESPONSE_HEAD} bytes"
            )));
        }
        let byte = io.read_u8().await.map_err(|e| {
            failed(format!("reading the proxy's CONNECT response failed: {e}")).with_source(e)
        })?;
        head.push(byte);
    }
    let text = String::from_utf8_lossy(&head);
    let status_line = text.lines().next().unwrap_or_default();
    let status = status_line.split_whitespace().nth(1).unwrap_or_default();
    // Three ASCII digits, 100 to 999 (`2ab` or `+99` are no status); a status that is no
    // number is an answer the client cannot read, not a refusal.
    let kind = match StatusCode::from_bytes(status.as_bytes()) {
        Ok(code) if code.is_success() => return Ok(()),
        Ok(code) => ProxyFailure::TunnelRefused {
            status: code.as_u16(),
        },
        Err(_) => ProxyFailure::TunnelFailed,
    };
    Err(RequestError::new(
        RequestErrorKind::Proxy(kind),
        format!("the proxy refused CONNECT {authority}: {status_line}"),
    ))
}

/// The `CONNECT` exchange failed (I/O, or an answer the client cannot read).
fn failed(message: String) -> RequestError {
    RequestError::new(RequestErrorKind::Proxy(ProxyFailure::TunnelFailed), message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn accepts_2xx_and_leaves_the_tunnel_bytes() {
        let (mut client, mut proxy) = tokio::io::duplex(1024);
        let server = tokio::spawn(async move {
            let mut buf = vec![0; 1024];
            let n = proxy.read(&mut buf).await.unwrap();
            assert!(buf[..n].starts_with(b"CONNECT example.test:443 HTTP/1.1\r\n"));
            proxy
                .write_all(b"HTTP/1.1 200 Connection established\r\n\r\nTUNNEL")
                .await
                .unwrap();
        });
        connect(&mut client, "example.test:443", None)
            .await
            .unwrap();
        let mut rest = [0; 6];
        client.read_exact(&mut rest).await.unwrap();
        assert_eq!(&rest, b"TUNNEL");
        server.await.unwrap();
    }

    #[tokio::test]
    async fn sends_the_proxy_credentials() {
        let (mut client, mut proxy) = tokio::io::duplex(1024);
        let server = tokio::spawn(async move {
            let mut buf = vec![0; 1024];
            let n = proxy.read(&mut buf).await.unwrap();
            proxy.write_all(b"HTTP/1.1 200 OK\r\n\r\n").await.unwrap();
            String::from_utf8(buf[..n].to_vec()).unwrap()
        });
        let value = HeaderValue::from_static("Basic dXNlcjpwYXNz");
        connect(&mut client, "example.test:443", Some(&value))
            .await
            .unwrap();
        assert_eq!(
            server.await.unwrap(),
            "CONNECT example.test:443 HTTP/1.1\r\nHost: example.test:443\r\n\
             Proxy-Authorization: Basic dXNlcjpwYXNz\r\n\r\n"
        );
    }

    #[tokio::test]
    async fn reports_a_refusal_with_the_status_line() {
        let (mut client, mut proxy) = tokio::io::duplex(1024);
        tokio::spawn(async move {
            let mut buf = vec![0; 1024];
            let _ = proxy.read(&mut buf).await;
            let _ = proxy.write_all(b"HTTP/1.1 403 Forbidden\r\n\r\n").await;
        });
        let error = connect(&mut client, "example.test:443", None)
            .await
            .unwrap_err();
        assert!(error.to_string().contains("403 Forbidden"), "{error}");
        assert_eq!(
            error.kind(),
            RequestErrorKind::Proxy(ProxyFailure::TunnelRefused { status: 403 })
        );
    }

    #[tokio::test]
    async fn a_closed_proxy_fails_the_tunnel() {
        let (mut client, mut proxy) = tokio::io::duplex(1024);
        tokio::spawn(async move {
            let mut buf = vec![0; 1024];
            let _ = proxy.read(&mut buf).await;
            let _ = proxy.write_all(b"HTTP/1.1 200").await;
        });
        let error = connect(&mut client, "example.test:443", None)
            .await
            .unwrap_err();
        assert_eq!(
            error.kind(),
            RequestErrorKind::Proxy(ProxyFailure::TunnelFailed)
        );
        assert!(
            error
                .to_string()
                .starts_with("reading the proxy's CONNECT response failed"),
            "{error}"
        );
        let source =
            std::error::Error::source(&error).and_then(|e| e.downcast_ref::<std::io::Error>());
        assert_eq!(
            source.map(|e| e.kind()),
            Some(std::io::ErrorKind::UnexpectedEof)
        );
    }

    #[tokio::test]
    async fn a_status_that_is_no_number_is_a_failed_tunnel() {
        let (mut client, mut proxy) = tokio::io::duplex(1024);
        tokio::spawn(async move {
            let mut buf = vec![0; 1024];
            let _ = proxy.read(&mut buf).await;
            let _ = proxy.write_all(b"SSH-2.0-OpenSSH\r\n\r\n").await;
        });
        let error = connect(&mut client, "example.test:443", None)
            .await
            .unwrap_err();
        assert_eq!(
            error.kind(),
            RequestErrorKind::Proxy(ProxyFailure::TunnelFailed)
        );
    }

    /// Found by the `connect_reply` fuzz target: a status that starts with `2` but is no
    /// number opened the tunnel, and `+99` or `000` were refusals with a status.
    #[test]
    fn only_a_2xx_number_opens_the_tunnel() {
        for (reply, expected) in [
            (&b"HTTP/1.1 2ab x\r\n\r\n"[..], None),
            (b"HTTP/1.1 2\xc3\xa9 x\r\n\r\n", None),
            (b"HTTP/1.1 +99 x\r\n\r\n", None),
            (b"HTTP/1.1 000 x\r\n\r\n", None),
            (b"HTTP/1.1 099 x\r\n\r\n", None),
            (b"HTTP/1.1 302 Found\r\n\r\n", Some(302)),
        ] {
            crate::fuzz_api::connect_reply(reply);
            let (mut client, mut proxy) = tokio::io::duplex(1024);
            let runtime = tokio::runtime::Builder::new_current_thread()
                .build()
                .unwrap();
            let error = runtime.block_on(async {
                proxy.write_all(reply).await.unwrap();
                connect(&mut client, "example.test:443", None)
                    .await
                    .unwrap_err()
            });
            let kind = match expected {
                Some(status) => ProxyFailure::TunnelRefused { status },
                None => ProxyFailure::TunnelFailed,
            };
            assert_eq!(error.kind(), RequestErrorKind::Proxy(kind), "{reply:?}");
        }
    }
}
