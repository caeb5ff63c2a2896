//! [`SocketRecord`]: the live I/O record of one traced socket, shared by its wrapper (which
//! writes it on every operation) and the recorder (which reads it for a snapshot).
//!
//! Byte totals are atomics, always kept. The operation log exists only with `WithSockTrace`
//! and is a mutex that only this socket's operations and the snapshot take, never contended
//! across sockets; recording one operation costs up to two clock reads, the lock and a push,
//! and its bytes are counted under the same lock (readers load the totals without it).
use std::{
    io,
    sync::{
        Mutex, PoisonError,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use crate::{model::SocketOpType, sync::add_single_writer};

/// The room for operations a log keeps across [`SocketRecord::clear_ops`].
const KEPT_OPS: usize = 64;

/// One recorded socket operation, with instants (converted to timestamps at snapshot time).
/// At most 48 bytes: the log holds one per read or write, so its size is memory per traced
/// request. The sockets traced are connected, so an operation has no remote address of its own.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct RawSocketOp {
    pub(crate) op_type: SocketOpType,
    pub(crate) call_at: Instant,
    /// Nanoseconds from the call to the return (a second `Instant` would take 16 bytes).
    took_ns: u64,
    /// Boxed: rare.
    pub(crate) error: Option<Box<str>>,
    pub(crate) data_len: u32,
}

impl RawSocketOp {
    /// An operation called at `call_at` that returned at `return_at` with `result` (the
    /// bytes moved, or the error).
    pub(crate) fn new(
        op_type: SocketOpType,
        call_at: Instant,
        return_at: Instant,
        result: Result<usize, &io::Error>,
    ) -> Self {
        let took = return_at.saturating_duration_since(call_at).as_nanos();
        Self {
            op_type,
            call_at,
            took_ns: u64::try_from(took).unwrap_or(u64::MAX),
            error: result.as_ref().err().map(|e| e.to_string().into()),
            data_len: result.map_or(0, |n| u32::try_from(n).unwrap_or(u32::MAX)),
        }
    }

    /// When the operation returned.
    pub(crate) fn return_at(&self) -> Instant {
        self.call_at + Duration::from_nanos(self.took_ns)
    }
}

/// The I/O record of one socket.
#[derive(Debug, Default)]
pub(crate) struct SocketRecord {
    /// Bytes sent; with the operation log, written under its lock only.
    sent: AtomicU64,
    /// Bytes received; with the operation log, written under its lock only.
    received: AtomicU64,
    ops: Option<Mutex<Vec<RawSocketOp>>>,
    /// The most operations logged (per trace; [`Self::clear_ops`] makes room again).
    op_limit: usize,
    /// Operations not logged because of `op_limit`, since the last [`Self::clear_ops`].
    /// Written under the log's lock only.
    dropped: AtomicU64,
    /// Bumped (under the log's lock, and written only there) by every logged, dropped or
    /// cleared operation: a snapshot that saw the same value saw the same log.
    ops_generation: AtomicU64,
}

/// What a snapshot reads of a [`SocketRecord`]: equal states mean equal snapshots of it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct SocketState {
    /// Payload bytes sent.
    pub(crate) sent: u64,
    /// Payload bytes received.
    pub(crate) received: u64,
    ops_generation: u64,
}

impl SocketRecord {
    /// A record that keeps every operation when `with_ops`, only byte totals otherwise.
    pub(crate) fn new(with_ops: bool) -> Self {
        Self::with_limit(with_ops, usize::MAX)
    }

    /// A record that keeps up to `op_limit` operations when `with_ops` (and counts the
    /// others), only byte totals otherwise.
    pub(crate) fn with_limit(with_ops: bool, op_limit: usize) -> Self {
        Self {
            ops: with_ops.then(|| Mutex::new(Vec::new())),
            op_limit,
            ..Self::default()
        }
    }

    /// Whether operations are logged (callers skip the clock reads otherwise).
    pub(crate) fn logs_ops(&self) -> bool {
        self.ops.is_some()
    }

    /// Counts bytes sent.
    pub(crate) fn add_sent(&self, bytes: usize) {
        self.sent_by(bytes, None);
    }

    /// Counts bytes received.
    pub(crate) fn add_received(&self, bytes: usize) {
        self.received_by(bytes, None);
    }

    /// Counts `bytes` sent by one operation and logs `op`, the operation (`Some` when
    /// operations are logged).
    pub(crate) fn sent_by(&self, bytes: usize, op: Option<RawSocketOp>) {
        self.moved(&self.sent, bytes, op);
    }

    /// Counts `bytes` received by one operation and logs `op`, the operation (`Some` when
    /// operations are logged).
    pub(crate) fn received_by(&self, bytes: usize, op: Option<RawSocketOp>) {
        self.moved(&self.received, bytes, op);
    }

    /// Logs an operation (if operations are logged), or counts it as dropped once the log
    /// holds `op_limit` of them.
    pub(crate) fn push_op(&self, op: RawSocketOp) {
        self.moved(&self.sent, 0, Some(op));
    }

    /// Adds `bytes` to `total` and logs `op`. With the operation log, both happen under its
    /// lock, and every counter of the record is only written there, so each is bumped with a
    /// load and a store: an atomic add is a `lock`-prefixed instruction, which costs tens of
    /// nanoseconds here, for each of the two or more operations of every request. Without
    /// the log, the byte total is an atomic add.
    fn moved(&self, total: &AtomicU64, bytes: usize, op: Option<RawSocketOp>) {
        let Some(ops) = &self.ops else {
            if bytes > 0 {
                total.fetch_add(bytes as u64, Ordering::Relaxed);
            }
            return;
        };
        if bytes == 0 && op.is_none() {
            return;
        }
        let mut ops = ops.lock().unwrap_or_else(PoisonError::into_inner);
        add_single_writer(total, bytes as u64);
        if let Some(op) = op {
            if ops.len() < self.op_limit {
                ops.push(op);
            } else {
                add_single_writer(&self.dropped, 1);
            }
            add_single_writer(&self.ops_generation, 1);
        }
    }

    /// Forgets the logged operations and the count of dropped ones (a new trace starts; the
    /// byte totals go on). The log's room is given back past a few operations.
    pub(crate) fn clear_ops(&self) {
        if let Some(ops) = &self.ops {
            let mut ops = ops.lock().unwrap_or_else(PoisonError::into_inner);
            ops.clear();
            ops.shrink_to(KEPT_OPS);
            self.dropped.store(0, Ordering::Relaxed);
            add_single_writer(&self.ops_generation, 1);
        }
    }

    /// Operations not logged since the last [`Self::clear_ops`] because of the limit.
    pub(crate) fn dropped_ops(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Payload bytes sent so far.
    pub(crate) fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    /// Payload bytes received so far.
    pub(crate) fn received(&self) -> u64 {
        self.received.load(Ordering::Relaxed)
    }

    /// The byte totals and how far the log went. Read before the log: an operation logged
    /// in between shows in the next state (its generation is bumped under the log's lock).
    pub(crate) fn state(&self) -> SocketState {
        SocketState {
            sent: self.sent(),
            received: self.received(),
            ops_generation: self.ops_generation.load(Ordering::Relaxed),
        }
    }

    /// A copy of the operation log, `None` when operations are not logged.
    pub(crate) fn ops(&self) -> Option<Vec<RawSocketOp>> {
        self.ops
            .as_ref()
            .map(|ops| ops.lock().unwrap_or_else(PoisonError::into_inner).clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_state_changes_with_every_byte_and_operation() {
        let record = SocketRecord::with_limit(true, 1);
        let mut seen = vec![record.state()];
        record.add_sent(1);
        seen.push(record.state());
        record.add_received(1);
        seen.push(record.state());
        let at = Instant::now();
        let op = RawSocketOp::new(SocketOpType::Read, at, at, Ok(1));
        record.push_op(op.clone());
        seen.push(record.state());
        record.push_op(op.clone());
        seen.push(record.state());
        record.clear_ops();
        seen.push(record.state());
        for (i, a) in seen.iter().enumerate() {
            assert!(seen[i + 1..].iter().all(|b| a != b), "{seen:?}");
        }
        assert_eq!(record.state(), record.state(), "reading changes nothing");
    }

    #[test]
    fn an_operation_and_its_bytes_are_recorded_together() {
        let at = Instant::now();
        let op = RawSocketOp::new(SocketOpType::Write, at, at, Ok(7));
        for with_ops in [false, true] {
            let record = SocketRecord::new(with_ops);
            let before = record.state();
            record.sent_by(7, with_ops.then(|| op.clone()));
            record.received_by(3, None);
            assert_eq!((record.sent(), record.received()), (7, 3));
            assert_eq!(record.ops(), with_ops.then(|| vec![op.clone()]));
            assert_ne!(record.state(), before);
        }
    }

    #[test]
    fn totals_counted_under_the_log_lose_nothing_across_threads() {
        let record = SocketRecord::with_limit(true, 0);
        std::thread::scope(|scope| {
            for _ in 0..4 {
                scope.spawn(|| {
                    for _ in 0..1000 {
                        record.sent_by(1, None);
                        record.add_received(2);
                    }
                });
            }
        });
        assert_eq!((record.sent(), record.received()), (4000, 8000));
    }

    #[test]
    fn an_operation_takes_48_bytes() {
        assert!(std::mem::size_of::<RawSocketOp>() <= 48);
    }

    #[test]
    fn operations_are_logged_only_when_asked_and_cleared_with_the_totals_kept() {
        let at = Instant::now();
        let reset = io::Error::from(io::ErrorKind::ConnectionReset);
        let op = RawSocketOp::new(
            SocketOpType::Read,
            at,
            at + Duration::from_millis(3),
            Err(&reset),
        );
        assert_eq!(op.return_at(), at + Duration::from_millis(3));
        assert_eq!(op.error.as_deref(), Some(reset.to_string().as_str()));
        let silent = SocketRecord::new(false);
        silent.push_op(op.clone());
        assert_eq!(silent.ops(), None);
        let logged = SocketRecord::new(true);
        logged.add_received(10);
        logged.push_op(op.clone());
        assert_eq!(logged.ops(), Some(vec![op]));
        logged.clear_ops();
        assert_eq!(logged.ops(), Some(vec![]));
        assert_eq!(logged.received(), 10);
    }

    #[test]
    fn operations_past_the_limit_are_counted_not_logged() {
        let at = Instant::now();
        let op = |n: usize| RawSocketOp::new(SocketOpType::Write, at, at, Ok(n));
        let record = SocketRecord::with_limit(true, 2);
        for n in 1..=5 {
            record.add_sent(n);
            record.push_op(op(n));
        }
        assert_eq!(record.ops(), Some(vec![op(1), op(2)]));
        assert_eq!(record.dropped_ops(), 3);
        assert_eq!(record.sent(), 15);
        record.clear_ops();
        assert_eq!(record.dropped_ops(), 0);
        record.push_op(op(6));
        assert_eq!(record.ops(), Some(vec![op(6)]));
        // Without the operation log nothing is counted as dropped either.
        let silent = SocketRecord::with_limit(false, 0);
        silent.push_op(op(1));
        assert_eq!(silent.dropped_ops(), 0);
    }
}
