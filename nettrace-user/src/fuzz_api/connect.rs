//! The `connect_reply` target: the proxy's answer to `CONNECT` (`client::tunnel::connect`),
//! read from an in-memory stream that is always ready.
use std::{
    future::Future,
    io,
    pin::{Pin, pin},
    task::{Context, Poll, Waker},
};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::client::{ProxyFailure, RequestErrorKind, tunnel::connect};

/// The head's bound in `tunnel.rs`.
const MAX_HEAD: usize = 16 * 1024;

/// A proxy whose every byte is `reply`; records what the client wrote and how much it read.
struct ScriptedProxy<'a> {
    reply: &'a [u8],
    read: usize,
    written: Vec<u8>,
}

impl AsyncRead for ScriptedProxy<'_> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let rest = self.reply.get(self.read..).unwrap_or_default();
        let n = rest.len().min(buf.remaining());
        buf.put_slice(&rest[..n]);
        self.read += n;
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for ScriptedProxy<'_> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.written.extend_from_slice(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// Runs `CONNECT` against a proxy that answers `data`, and checks that the client reads the
/// head and not one byte more (the rest belongs to the tunnel), gives up at the head's bound,
/// and opens the tunnel only on a 2xx status number (a refusal names a 3-digit status).
pub fn connect_reply(data: &[u8]) {
    let mut proxy = ScriptedProxy {
        reply: data,
        read: 0,
        written: Vec::new(),
    };
    let result = {
        let mut future = pin!(connect(&mut proxy, "example.test:443", None));
        let mut cx = Context::from_waker(Waker::noop());
        // Every read is ready at once: the future ends in its first poll.
        match future.as_mut().poll(&mut cx) {
            Poll::Ready(result) => result,
            Poll::Pending => panic!("CONNECT waited on an always-ready stream"),
        }
    };
    assert_eq!(
        proxy.written,
        b"CONNECT example.test:443 HTTP/1.1\r\nHost: example.test:443\r\n\r\n"
    );
    let head_end = data
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|at| at + 4)
        .filter(|&end| end <= MAX_HEAD);
    match head_end {
        Some(end) => assert_eq!(proxy.read, end, "read exactly the head"),
        None => {
            assert!(
                proxy.read <= MAX_HEAD,
                "read {} bytes of a head",
                proxy.read
            );
            assert!(result.is_err(), "no head, no tunnel");
        }
    }
    let status = head_end.and_then(|end| status_code(&data[..end]));
    match result {
        Ok(()) => assert!(
            status.is_some_and(|code| (200..300).contains(&code)),
            "a tunnel opened on {:?}",
            String::from_utf8_lossy(&data[..proxy.read])
        ),
        Err(error) => match error.kind() {
            RequestErrorKind::Proxy(ProxyFailure::TunnelRefused { status: refused }) => {
                assert_eq!(status, Some(refused), "refused with another status");
                assert!(!(200..300).contains(&refused));
            }
            RequestErrorKind::Proxy(ProxyFailure::TunnelFailed) => {
                assert!(
                    head_end.is_none() || status.is_none(),
                    "a readable status {status:?} reported as a failed tunnel"
                );
            }
            other => panic!("CONNECT failed with {other:?}"),
        },
    }
}

/// The status code of a head's first line (`HTTP/1.1 200 OK`): three ASCII digits, 100 to
/// 999, as the second word.
fn status_code(head: &[u8]) -> Option<u16> {
    let text = String::from_utf8_lossy(head);
    let word = text.lines().next()?.split_whitespace().nth(1)?;
    let code = (word.len() == 3 && word.bytes().all(|b| b.is_ascii_digit()))
        .then(|| word.parse::<u16>().ok())??;
    (100..=999).contains(&code).then_some(code)
}
