//! Not an API: entry points for the crate's own benchmarks, with no stability promise.
//!
//! [`BenchStream`] wraps any byte stream exactly as the connector wraps a TCP connection, so a
//! benchmark can measure what recording one socket operation costs without a socket (whose
//! syscall alone takes microseconds) and without a runtime. [`TraceBench`] builds a large
//! trace in a recorder from event sequences, to time its snapshots.
mod trace;

pub use trace::TraceBench;

use std::{
    io,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::{
    event::SocketRecord, event::TraceSettings, model::TraceId, sock::TracedStream, tracer::Tracer,
};

/// A traced stream over `S`, with a tracer of its own that logs operations when `sock_trace`.
pub struct BenchStream<S> {
    stream: TracedStream<S>,
    logged: Arc<SocketRecord>,
}

impl<S> BenchStream<S> {
    /// Wraps `inner`; operations are logged only when `sock_trace` (byte totals always are).
    pub fn new(inner: S, sock_trace: bool) -> Self {
        let tracer = Tracer::new(TraceSettings {
            sock_ops: sock_trace,
            dns_messages: false,
            ..TraceSettings::default()
        });
        let record = tracer.sink().new_socket_record();
        let stream = TracedStream::new(
            inner,
            TraceId::generate(),
            record.clone(),
            None,
            tracer.sink(),
        );
        Self {
            stream,
            logged: record,
        }
    }

    /// The operations logged so far.
    pub fn ops_logged(&self) -> usize {
        self.logged.ops().map_or(0, |ops| ops.len())
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for BenchStream<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for BenchStream<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    #[tokio::test]
    async fn logs_each_operation_only_with_sock_trace() {
        for (sock_trace, logged) in [(true, 2), (false, 0)] {
            let (near, mut far) = tokio::io::duplex(64);
            let mut stream = BenchStream::new(near, sock_trace);
            stream.write_all(b"ping").await.expect("write");
            far.write_all(b"pong").await.expect("write back");
            let mut buf = [0; 4];
            stream.read_exact(&mut buf).await.expect("read");
            assert_eq!(&buf, b"pong");
            assert_eq!(stream.ops_logged(), logged, "sock_trace {sock_trace}");
        }
    }
}
