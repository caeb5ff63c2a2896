//! [`SocketRecord`]: the live I/O record of one traced socket, shared by its wrapper (which
//! writes it on every operation) and the recorder (which reads it for a snapshot).
//!
//! Byte totals are atomics, always kept. The operation log exists only with `WithSockTrace`
//! and is a mutex that only this socket's operations and the snapshot take, never contended
//! across sockets; recording one operation costs two clock reads and a push.
use std::{
    net::SocketAddr,
    sync::{
        Mutex, PoisonError,
        atomic::{AtomicU64, Ordering},
    },
    time::Instant,
};

use crate::model::SocketOpType;

/// One recorded socket operation, with instants (converted to timestamps at snapshot time).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct RawSocketOp {
    pub(crate) op_type: SocketOpType,
    pub(crate) call_at: Instant,
    pub(crate) return_at: Instant,
    pub(crate) error: Option<String>,
    pub(crate) remote: Option<SocketAddr>,
    pub(crate) data_len: u32,
}

/// The I/O record of one socket.
#[derive(Debug, Default)]
pub(crate) struct SocketRecord {
    sent: AtomicU64,
    received: AtomicU64,
    ops: Option<Mutex<Vec<RawSocketOp>>>,
}

impl SocketRecord {
    /// A record that keeps every operation when `with_ops`, only byte totals otherwise.
    pub(crate) fn new(with_ops: bool) -> Self {
        Self {
            ops: with_ops.then(|| Mutex::new(Vec::new())),
            ..Self::default()
        }
    }

    /// Whether operations are logged (callers skip the clock reads otherwise).
    pub(crate) fn logs_ops(&self) -> bool {
        self.ops.is_some()
    }

    /// Counts bytes sent.
    pub(crate) fn add_sent(&self, bytes: usize) {
        self.sent.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    /// Counts bytes received.
    pub(crate) fn add_received(&self, bytes: usize) {
        self.received.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    /// Logs an operation (if operations are logged).
    pub(crate) fn push_op(&self, op: RawSocketOp) {
        if let Some(ops) = &self.ops {
            ops.lock().unwrap_or_else(PoisonError::into_inner).push(op);
        }
    }

    /// Forgets the logged operations (a new trace starts; the byte totals go on).
    pub(crate) fn clear_ops(&self) {
        if let Some(ops) = &self.ops {
            ops.lock().unwrap_or_else(PoisonError::into_inner).clear();
        }
    }

    /// Payload bytes sent so far.
    pub(crate) fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    /// Payload bytes received so far.
    pub(crate) fn received(&self) -> u64 {
        self.received.load(Ordering::Relaxed)
    }

    /// A copy of the operation log, `None` when operations are not logged.
    pub(crate) fn ops(&self) -> Option<Vec<RawSocketOp>> {
        self.ops
            .as_ref()
            .map(|ops| ops.lock().unwrap_or_else(PoisonError::into_inner).clone())
    }
}
