//! [`TracedConn`]: what the connector hands to hyper: a traced TCP stream, possibly inside TLS
//! (or TLS inside TLS through an `https://` proxy), with the trace IDs the pool copies into
//! every response's extensions ([`ConnInfo`]).
use std::{
    io,
    pin::Pin,
    task::{Context, Poll},
};

use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::TcpStream,
};

use crate::{event::ConnInfo, sock::TracedStream};

/// Any stack of transport layers (TCP, TLS, TLS in TLS through an `https://` proxy).
pub(crate) trait Io: AsyncRead + AsyncWrite + Send + Unpin {}

impl<T: AsyncRead + AsyncWrite + Send + Unpin> Io for T {}

/// The transport layers of a connection. Plain TCP, the common case, is held as it is, so
/// that hyper's reads and writes reach the socket without a call through a vtable; stacks
/// with TLS are boxed.
pub(crate) enum ConnIo {
    Tcp(TracedStream<TcpStream>),
    Layered(Box<dyn Io>),
}

impl ConnIo {
    /// The layers as one boxed stream, to put another layer on top.
    pub(crate) fn into_layered(self) -> Box<dyn Io> {
        match self {
            Self::Tcp(stream) => Box::new(stream),
            Self::Layered(io) => io,
        }
    }
}

/// Forwards a poll to whichever layer stack `io` holds.
macro_rules! forward {
    ($io:expr, $method:ident($($arg:expr),*)) => {
        match $io {
            ConnIo::Tcp(stream) => Pin::new(stream).$method($($arg),*),
            ConnIo::Layered(io) => Pin::new(io).$method($($arg),*),
        }
    };
}

impl AsyncRead for ConnIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        forward!(self.get_mut(), poll_read(cx, buf))
    }
}

impl AsyncWrite for ConnIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        forward!(self.get_mut(), poll_write(cx, buf))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        forward!(self.get_mut(), poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Self::Tcp(stream) => stream.is_write_vectored(),
            Self::Layered(io) => io.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        forward!(self.get_mut(), poll_flush(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        forward!(self.get_mut(), poll_shutdown(cx))
    }
}

/// A connection as hyper sees it.
pub(crate) struct TracedConn {
    pub(crate) io: ConnIo,
    pub(crate) info: ConnInfo,
    /// Plain HTTP through a proxy: requests use the absolute form.
    pub(crate) proxied: bool,
    pub(crate) negotiated_h2: bool,
    /// Held for the connection's lifetime when `max_conns_per_host` limits connections.
    pub(crate) _slot: Option<tokio::sync::OwnedSemaphorePermit>,
}

impl AsyncRead for TracedConn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_read(cx, buf)
    }
}

impl AsyncWrite for TracedConn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}
