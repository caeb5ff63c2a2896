//! A cap on idle keep-alive connections across all hosts (Go's `MaxIdleConns`), which
//! hyper-util's pool (idle limits per host only) does not have.
//!
//! A connection counts as idle from the moment its response body has been read to the end
//! until it writes again. When more than the cap are idle, the one idle longest is closed:
//! poisoned, so the pool never hands it out again, and its reads end (EOF), so hyper closes it
//! now rather than at the next checkout. HTTP/2 connections, which carry several requests at
//! once, are left to the pool.
use std::{
    collections::VecDeque,
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicBool, Ordering},
    },
    task::Waker,
};

use hyper_util::client::legacy::connect::CaptureConnection;

/// Per-connection flags shared by the connection and the tracker.
#[derive(Debug, Default)]
pub(crate) struct CloseSignal {
    close: AtomicBool,
    /// Set by every write: the connection is in use again.
    busy: AtomicBool,
    reader: Mutex<Option<Waker>>,
}

impl CloseSignal {
    /// Whether the connection must close.
    pub(crate) fn close_requested(&self) -> bool {
        self.close.load(Ordering::Acquire)
    }

    /// The connection wrote something.
    pub(crate) fn mark_busy(&self) {
        self.busy.store(true, Ordering::Relaxed);
    }

    /// Remembers who to wake when the close is requested during a pending read.
    pub(crate) fn wake_on_close(&self, waker: &Waker) {
        let mut slot = self.reader.lock().unwrap_or_else(PoisonError::into_inner);
        if !slot.as_ref().is_some_and(|w| w.will_wake(waker)) {
            *slot = Some(waker.clone());
        }
    }

    fn request_close(&self) {
        self.close.store(true, Ordering::Release);
        if let Some(waker) = self
            .reader
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            waker.wake();
        }
    }
}

/// The handle hyper copies into each response's extensions.
#[derive(Clone, Debug)]
pub(crate) struct IdleHandle(pub(crate) Arc<CloseSignal>);

/// One idle connection.
struct Idle {
    signal: Arc<CloseSignal>,
    capture: CaptureConnection,
}

/// The idle connections of one client, oldest first.
pub(crate) struct IdleConns {
    limit: usize,
    idle: Mutex<VecDeque<Idle>>,
}

impl IdleConns {
    /// A tracker allowing `limit` idle connections (`limit` > 0).
    pub(crate) fn new(limit: usize) -> Self {
        Self {
            limit,
            idle: Mutex::new(VecDeque::new()),
        }
    }

    /// A connection finished its response and went back to the pool.
    pub(crate) fn became_idle(&self, signal: Arc<CloseSignal>, capture: CaptureConnection) {
        signal.busy.store(false, Ordering::Relaxed);
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        idle.retain(|i| {
            !Arc::ptr_eq(&i.signal, &signal)
                && !i.signal.busy.load(Ordering::Relaxed)
                && !i.signal.close_requested()
        });
        idle.push_back(Idle { signal, capture });
        while idle.len() > self.limit {
            let Some(oldest) = idle.pop_front() else {
                break;
            };
            if let Some(connected) = oldest.capture.connection_metadata().as_ref() {
                connected.poison();
            }
            oldest.signal.request_close();
        }
    }
}

/// What a response body reports when it has been read to the end.
pub(crate) struct IdleOnEnd {
    pub(crate) conns: Arc<IdleConns>,
    pub(crate) signal: Arc<CloseSignal>,
    pub(crate) capture: CaptureConnection,
}

impl IdleOnEnd {
    /// The connection is idle now.
    pub(crate) fn report(self) {
        self.conns.became_idle(self.signal, self.capture);
    }
}
