//! The HTTP `CONNECT` handshake that opens a tunnel through a proxy to `host:port`.
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Upper bound for the proxy's response head.
const MAX_RESPONSE_HEAD: usize = 16 * 1024;

/// Asks the proxy on `io` for a tunnel to `authority` (`host:port`); succeeds on a 2xx reply.
pub(crate) async fn connect<S>(io: &mut S, authority: &str) -> Result<(), String>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let request = format!("CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n\r\n");
    io.write_all(request.as_bytes())
        .await
        .map_err(|e| format!("sending CONNECT to the proxy failed: {e}"))?;
    io.flush()
        .await
        .map_err(|e| format!("sending CONNECT to the proxy failed: {e}"))?;
    // Read byte by byte: nothing after the head may be consumed, it belongs to the tunnel.
    let mut head = Vec::with_capacity(256);
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() >= MAX_RESPONSE_HEAD {
            return Err(format!(
                "the proxy's CONNECT response head exceeds {MAX_RESPONSE_HEAD} bytes"
            ));
        }
        let byte = io
            .read_u8()
            .await
            .map_err(|e| format!("reading the proxy's CONNECT response failed: {e}"))?;
        head.push(byte);
    }
    let text = String::from_utf8_lossy(&head);
    let status_line = text.lines().next().unwrap_or_default();
    let status = status_line.split_whitespace().nth(1).unwrap_or_default();
    if status.starts_with('2') && status.len() == 3 {
        Ok(())
    } else {
        Err(format!(
            "the proxy refused CONNECT {authority}: {status_line}"
        ))
    }
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
        connect(&mut client, "example.test:443").await.unwrap();
        let mut rest = [0; 6];
        client.read_exact(&mut rest).await.unwrap();
        assert_eq!(&rest, b"TUNNEL");
        server.await.unwrap();
    }

    #[tokio::test]
    async fn reports_a_refusal_with_the_status_line() {
        let (mut client, mut proxy) = tokio::io::duplex(1024);
        tokio::spawn(async move {
            let mut buf = vec![0; 1024];
            let _ = proxy.read(&mut buf).await;
            let _ = proxy.write_all(b"HTTP/1.1 403 Forbidden\r\n\r\n").await;
        });
        let error = connect(&mut client, "example.test:443").await.unwrap_err();
        assert!(error.contains("403 Forbidden"), "{error}");
    }
}
