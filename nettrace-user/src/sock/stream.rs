//! [`TracedStream`]: an `AsyncRead + AsyncWrite` wrapper that counts bytes and logs each read
//! and write into its socket's [`SocketRecord`], and reports the close when dropped.
//!
//! An async read is "called" at its first poll and "returns" at the poll that completes it, so a
//! logged operation spans the whole wait, like a blocking `read()` in Go.
use std::{
    io,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll, ready},
    time::Instant,
};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::event::{RawSocketOp, SocketRecord};
use crate::{SocketCookie, event::Event, event::Sink, model::SocketOpType, model::TraceId};

/// A traced byte stream (a TCP connection).
#[derive(Debug)]
pub(crate) struct TracedStream<S> {
    inner: S,
    conn: TraceId,
    record: Arc<SocketRecord>,
    cookie: Option<SocketCookie>,
    sink: Sink,
    read_called: Option<Instant>,
    write_called: Option<Instant>,
}

impl<S> TracedStream<S> {
    /// Wraps `inner`, the connection `conn` whose I/O goes into `record`.
    pub(crate) fn new(
        inner: S,
        conn: TraceId,
        record: Arc<SocketRecord>,
        cookie: Option<SocketCookie>,
        sink: Sink,
    ) -> Self {
        Self {
            inner,
            conn,
            record,
            cookie,
            sink,
            read_called: None,
            write_called: None,
        }
    }

    /// The connection's trace ID.
    pub(crate) fn conn(&self) -> &TraceId {
        &self.conn
    }
}

/// Marks the call time of an operation at its first poll (only when operations are logged).
/// True when the mark was made by this poll.
fn mark_call(record: &SocketRecord, called: &mut Option<Instant>) -> bool {
    if called.is_none() && record.logs_ops() {
        *called = Some(Instant::now());
        return true;
    }
    false
}

/// The completed operation to log (`None` when operations are not logged). `same_poll`: it
/// completed in the poll that marked its call, without waiting, so the call time serves as
/// its return time too (the trace keeps milliseconds; a second clock read per operation is
/// measurable on the hot path).
pub(super) fn completed_op(
    called: &mut Option<Instant>,
    same_poll: bool,
    op_type: SocketOpType,
    result: Result<usize, &io::Error>,
) -> Option<RawSocketOp> {
    let call_at = called.take()?;
    let return_at = if same_poll { call_at } else { Instant::now() };
    Some(RawSocketOp::new(op_type, call_at, return_at, result))
}

impl<S: AsyncRead + Unpin> AsyncRead for TracedStream<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let same_poll = mark_call(&this.record, &mut this.read_called);
        let before = buf.filled().len();
        let result = ready!(Pin::new(&mut this.inner).poll_read(cx, buf));
        let n = buf.filled().len() - before;
        let op = completed_op(
            &mut this.read_called,
            same_poll,
            SocketOpType::Read,
            result.as_ref().map(|()| n),
        );
        this.record.received_by(n, op);
        Poll::Ready(result)
    }
}

impl<S: AsyncWrite + Unpin> TracedStream<S> {
    /// One traced write, whichever form (plain or vectored) `write` performs.
    fn traced_write(
        &mut self,
        cx: &mut Context<'_>,
        write: impl FnOnce(Pin<&mut S>, &mut Context<'_>) -> Poll<io::Result<usize>>,
    ) -> Poll<io::Result<usize>> {
        let same_poll = mark_call(&self.record, &mut self.write_called);
        let result = ready!(write(Pin::new(&mut self.inner), cx));
        let op = completed_op(
            &mut self.write_called,
            same_poll,
            SocketOpType::Write,
            result.as_ref().map(|n| *n),
        );
        self.record.sent_by(*result.as_ref().unwrap_or(&0), op);
        Poll::Ready(result)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for TracedStream<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.get_mut()
            .traced_write(cx, |inner, cx| inner.poll_write(cx, buf))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.get_mut()
            .traced_write(cx, |inner, cx| inner.poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

impl<S> Drop for TracedStream<S> {
    fn drop(&mut self) {
        if let Some(cookie) = self.cookie {
            self.sink.tcp_socket_closed(cookie);
        }
        self.sink.emit(Event::ConnClosed {
            conn: self.conn.clone(),
            at: Instant::now(),
        });
    }
}
