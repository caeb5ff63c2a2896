//! [`TracedUdpSocket`]: a connected UDP socket whose sends and receives are counted and logged
//! into its [`SocketRecord`]; the close is reported when it is dropped.
use std::{io, sync::Arc, time::Instant};

use tokio::net::UdpSocket;

use super::stream::completed_op;
use crate::event::SocketRecord;
use crate::{SocketCookie, event::Event, event::Sink, model::SocketOpType, model::TraceId};

/// A traced, connected UDP socket.
#[derive(Debug)]
pub(crate) struct TracedUdpSocket {
    inner: UdpSocket,
    conn: TraceId,
    record: Arc<SocketRecord>,
    cookie: Option<SocketCookie>,
    sink: Sink,
}

impl TracedUdpSocket {
    /// Wraps a connected socket, the connection `conn` whose I/O goes into `record`.
    pub(crate) fn new(
        inner: UdpSocket,
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
        }
    }

    /// The connection's trace ID.
    pub(crate) fn conn(&self) -> &TraceId {
        &self.conn
    }

    /// Sends one datagram to the connected peer.
    pub(crate) async fn send(&self, datagram: &[u8]) -> io::Result<usize> {
        let mut call_at = self.record.logs_ops().then(Instant::now);
        let result = self.inner.send(datagram).await;
        let op = completed_op(
            &mut call_at,
            false,
            SocketOpType::Write,
            result.as_ref().copied(),
        );
        self.record.sent_by(*result.as_ref().unwrap_or(&0), op);
        result
    }

    /// Receives one datagram from the connected peer.
    pub(crate) async fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        let mut call_at = self.record.logs_ops().then(Instant::now);
        let result = self.inner.recv(buf).await;
        let op = completed_op(
            &mut call_at,
            false,
            SocketOpType::Read,
            result.as_ref().copied(),
        );
        self.record.received_by(*result.as_ref().unwrap_or(&0), op);
        result
    }
}

impl Drop for TracedUdpSocket {
    fn drop(&mut self) {
        // UDP has no state machine the programs could see ending: forget it here.
        if let Some(cookie) = self.cookie {
            self.sink.unregister_socket(cookie);
        }
        self.sink.emit(Event::ConnClosed {
            conn: self.conn.clone(),
            at: Instant::now(),
        });
    }
}
