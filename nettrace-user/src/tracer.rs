//! [`Tracer`]: the handle through which hooks report events. Every clone of a traced client
//! shares one; it owns the [`Recorder`] behind a mutex that only events take (rare: one per
//! dial, connection, message or request) and never per socket operation.
use std::{
    sync::{
        Arc, Mutex, MutexGuard, PoisonError,
        atomic::{AtomicU64, Ordering},
    },
    time::Instant,
};

use crate::{event::Event, model::HttpTrace, recorder::Recorder, sock::SocketRecord};

/// What the tracer records beyond the always-on records.
#[derive(Clone, Debug, Default)]
pub(crate) struct TraceSettings {
    /// Log every socket operation (`WithSockTrace`).
    pub(crate) sock_ops: bool,
    /// Record DNS messages (`WithDNSQueryTrace`).
    pub(crate) dns_messages: bool,
}

/// The shared tracing state of one client.
#[derive(Clone, Debug)]
pub(crate) struct Tracer {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    settings: TraceSettings,
    recorder: Mutex<Recorder>,
    next_resolver_dial: AtomicU64,
}

impl Tracer {
    /// A tracer whose trace begins now.
    pub(crate) fn new(settings: TraceSettings) -> Self {
        let recorder = Recorder::new(settings.dns_messages);
        Self {
            inner: Arc::new(Inner {
                settings,
                recorder: Mutex::new(recorder),
                next_resolver_dial: AtomicU64::new(1),
            }),
        }
    }

    /// What is recorded.
    pub(crate) fn settings(&self) -> &TraceSettings {
        &self.inner.settings
    }

    /// Reports an event.
    pub(crate) fn emit(&self, event: Event) {
        tracing::trace!(?event, "nettrace event");
        self.recorder().handle(event);
    }

    /// A fresh I/O record for a new socket, logging operations if `WithSockTrace` is on.
    pub(crate) fn new_socket_record(&self) -> Arc<SocketRecord> {
        Arc::new(SocketRecord::new(self.inner.settings.sock_ops))
    }

    /// A process-unique number for a resolver dial.
    pub(crate) fn next_resolver_dial(&self) -> u64 {
        self.inner
            .next_resolver_dial
            .fetch_add(1, Ordering::Relaxed)
    }

    /// The trace so far.
    pub(crate) fn snapshot(&self, description: &str) -> HttpTrace {
        self.recorder().snapshot(description, Instant::now())
    }

    /// Starts a new trace (open connections carry over as reused).
    pub(crate) fn clear(&self) {
        self.recorder().clear();
    }

    fn recorder(&self) -> MutexGuard<'_, Recorder> {
        // Every recorder update is a single in-memory step; a panic in one cannot leave the
        // state half-written in a way later events would trip over.
        self.inner
            .recorder
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}
