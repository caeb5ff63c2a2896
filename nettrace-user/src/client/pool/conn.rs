//! [`PooledConn`]: one connection as the pool holds it (hyper's request sender and what the
//! trace knows of the connection), and [`ReturnOnEnd`], which hands an HTTP/1 connection back
//! to the pool when its response body has been read to the end.
use std::sync::Arc;

use hyper::client::conn::{http1, http2};

use super::{Pool, PoolKey};
use crate::{client::RequestBody, event::ConnInfo};

/// hyper's handle for sending requests over one connection.
pub(crate) enum Sender {
    /// One request at a time; the pool holds it while idle.
    Http1(http1::SendRequest<RequestBody>),
    /// Many requests at once; the pool keeps a copy for as long as the connection is open.
    Http2(http2::SendRequest<RequestBody>),
}

/// A connection: hyper's sender and the trace IDs of its records.
pub(crate) struct PooledConn {
    pub(crate) sender: Sender,
    /// Copied into each response's extensions.
    pub(crate) info: Arc<ConnInfo>,
    /// Plain HTTP through a proxy: requests use the absolute form.
    pub(crate) proxied: bool,
}

impl PooledConn {
    /// Waits until the connection can take a request: at once when it is idle, once hyper has
    /// finished the previous exchange when it was handed back at the end of a body. Fails when
    /// the connection closed instead.
    pub(crate) async fn ready(&mut self) -> Result<(), hyper::Error> {
        match &mut self.sender {
            Sender::Http1(sender) => sender.ready().await,
            Sender::Http2(sender) => sender.ready().await,
        }
    }

    /// Whether the connection is known to be closed.
    pub(crate) fn is_closed(&self) -> bool {
        match &self.sender {
            Sender::Http1(sender) => sender.is_closed(),
            Sender::Http2(sender) => sender.is_closed(),
        }
    }

    /// Whether requests go over HTTP/2 (shared, never handed back).
    pub(crate) fn is_http2(&self) -> bool {
        matches!(self.sender, Sender::Http2(_))
    }

    /// Another handle on an HTTP/2 connection; `None` for HTTP/1.
    pub(crate) fn share(&self) -> Option<Self> {
        match &self.sender {
            Sender::Http2(sender) => Some(Self {
                sender: Sender::Http2(sender.clone()),
                info: self.info.clone(),
                proxied: self.proxied,
            }),
            Sender::Http1(_) => None,
        }
    }
}

/// An HTTP/1 connection lent to one exchange, handed back when its response body ends.
/// Dropped instead (a body not read to its end, an error), the connection closes, as hyper
/// does when a body is abandoned.
///
/// Boxed, one pointer: the response body keeps it, and the response is moved about ten times
/// on its way to the caller; inline, its 112 bytes took the response past 256 bytes, where
/// each move's `memcpy` costs more than the allocation does once.
pub(crate) struct ReturnOnEnd(Box<Lent>);

/// What [`ReturnOnEnd`] holds.
struct Lent {
    pool: Arc<Pool>,
    key: PoolKey,
    conn: PooledConn,
}

impl ReturnOnEnd {
    pub(crate) fn new(pool: Arc<Pool>, key: PoolKey, conn: PooledConn) -> Self {
        Self(Box::new(Lent { pool, key, conn }))
    }

    /// The body was read to its end: the connection is idle now, before the caller sees the
    /// end. hyper may still be finishing the exchange; the next checkout waits for that
    /// ([`PooledConn::ready`]).
    pub(crate) fn report(self) {
        let Lent { pool, key, conn } = *self.0;
        pool.put(&key, conn);
    }
}
