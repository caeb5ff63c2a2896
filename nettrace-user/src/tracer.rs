//! [`Tracer`]: the handle through which hooks report events. Every clone of a traced client
//! shares one; it owns the [`Recorder`] behind a mutex that only events take (rare: one per
//! dial, connection, message or request) and never per socket operation.
use std::{
    collections::{HashMap, HashSet},
    net::SocketAddr,
    sync::{
        Arc, Mutex, MutexGuard, OnceLock, PoisonError,
        atomic::{AtomicU64, Ordering},
    },
    time::Instant,
};

use crate::{
    SocketCookie,
    capture::{CaptureStore, PacketCapture, PacketCaptureOptions},
    client::HttpReqTraceOptions,
    conntrack::{ConntrackError, ConntrackSink, CtSample, ReplyTuple, Tracker},
    event::{BodyCounters, Event},
    headers::HeaderCapture,
    kernel::{
        FlowProtocol, KernelClient, KernelError, KernelEvent, KernelHub, KernelSink, KernelTcpState,
    },
    model::{HttpTrace, KernelDataStatus, TraceId},
    recorder::Recorder,
    sock::SocketRecord,
};

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

struct Inner {
    settings: TraceSettings,
    recorder: Mutex<Recorder>,
    next_resolver_dial: AtomicU64,
    kernel: OnceLock<KernelLink>,
    /// The conntrack side, with `WithConntrack`.
    conntrack: OnceLock<Tracker>,
    /// TCP sockets on their way out of the kernel map (see [`Retiring`]).
    retiring: Mutex<Retiring>,
}

/// A TCP socket leaves the kernel map once the application has closed it *and* the kernel has
/// reported its final CLOSE, in either order: the state machine goes on after `close()` (FIN,
/// TIME_WAIT), and after a reset the application may still read from a socket in CLOSE.
#[derive(Debug, Default)]
struct Retiring {
    /// Closed by the application, CLOSE not seen yet.
    dropped: HashSet<SocketCookie>,
    /// CLOSE seen, still open in the application.
    closed: HashSet<SocketCookie>,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tracer")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// Whether the kernel side traces this client's sockets.
enum KernelLink {
    /// The client's slot in the process's kernel hub.
    Active(KernelClient),
    /// Why there is no kernel data.
    Unavailable(String),
}

impl KernelSink for Inner {
    fn kernel_event(&self, event: KernelEvent) {
        if let KernelEvent::TcpState(change) = &event
            && change.new == KernelTcpState::Close
            && lock(&self.retiring).both_done(change.cookie, Side::Kernel)
        {
            self.unregister(change.cookie);
        }
        lock(&self.recorder).handle(Event::Kernel(event));
    }
}

impl ConntrackSink for Inner {
    fn conntrack_sample(&self, conn: &TraceId, sample: CtSample) {
        lock(&self.recorder).handle(Event::Conntrack {
            conn: conn.clone(),
            sample,
        });
    }
}

impl Inner {
    fn unregister(&self, cookie: SocketCookie) {
        if let Some(KernelLink::Active(client)) = self.kernel.get()
            && let Err(error) = client.unregister(cookie)
        {
            tracing::debug!(%error, %cookie, "unregistering a socket failed");
        }
    }
}

/// Which side is done with a TCP socket.
#[derive(Clone, Copy)]
enum Side {
    /// The application closed it.
    Application,
    /// The kernel reported its final CLOSE.
    Kernel,
}

impl Retiring {
    /// Records that `side` is done with `cookie`; true once both are (in one step, so the two
    /// sides cannot both miss each other).
    fn both_done(&mut self, cookie: SocketCookie, side: Side) -> bool {
        let (mine, other) = match side {
            Side::Application => (&mut self.dropped, &mut self.closed),
            Side::Kernel => (&mut self.closed, &mut self.dropped),
        };
        if other.remove(&cookie) {
            true
        } else {
            mine.insert(cookie);
            false
        }
    }
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
                kernel: OnceLock::new(),
                conntrack: OnceLock::new(),
                retiring: Mutex::default(),
            }),
        }
    }

    /// What is recorded.
    pub(crate) fn settings(&self) -> &TraceSettings {
        &self.inner.settings
    }

    /// Reports the event `make` builds around a request's body counters, and returns them:
    /// counters of requests dropped from an earlier trace are reused (one allocation less
    /// per request). For events the conntrack side does not follow.
    pub(crate) fn emit_with_counters(
        &self,
        make: impl FnOnce(Arc<BodyCounters>) -> Event,
    ) -> Arc<BodyCounters> {
        let mut recorder = self.recorder();
        let counters = recorder.body_counters();
        let event = make(counters.clone());
        tracing::trace!(?event, "nettrace event");
        recorder.handle(event);
        counters
    }

    /// Reports the event `make` builds around `headers`, captured into the recorder's shared
    /// buffer (no allocation per request). For events the conntrack side does not follow.
    pub(crate) fn emit_with_headers(
        &self,
        headers: &http::HeaderMap,
        make: impl FnOnce(Option<HeaderCapture>) -> Event,
    ) {
        let mut recorder = self.recorder();
        let header = recorder.pack_headers(headers);
        let event = make(header);
        tracing::trace!(?event, "nettrace event");
        recorder.handle(event);
    }

    /// Records HTTP header fields as `options` say (`WithHTTPReqTrace`).
    pub(crate) fn record_http_headers(&self, options: Arc<HttpReqTraceOptions>) {
        self.recorder().set_http_headers(options);
    }

    /// Reports an event.
    pub(crate) fn emit(&self, event: Event) {
        tracing::trace!(?event, "nettrace event");
        let Some(conntrack) = self.inner.conntrack.get() else {
            self.recorder().handle(event);
            return;
        };
        // The conntrack side follows each connection from its events; its lookups report
        // back through the recorder, so they run after the recorder's lock is released.
        let follow = match &event {
            Event::ConnOpened {
                conn,
                transport,
                remote,
                cookie,
                ..
            } => {
                conntrack.opened(conn, *transport, *remote, *cookie);
                None
            }
            Event::ConnEstablished { conn, local, .. } => Some((conn.clone(), Some(*local))),
            Event::ConnClosed { conn, .. } => Some((conn.clone(), None)),
            _ => None,
        };
        self.recorder().handle(event);
        match follow {
            Some((conn, Some(local))) => conntrack.established(&conn, local),
            Some((conn, None)) => conntrack.closed(&conn),
            None => {}
        }
    }

    /// Starts following connections in conntrack (`WithConntrack`), in the calling thread's
    /// network namespace.
    pub(crate) fn attach_conntrack(&self) -> Result<(), ConntrackError> {
        let sink: std::sync::Weak<dyn ConntrackSink> = Arc::downgrade(&self.inner) as _;
        let tracker = Tracker::start(sink)?;
        let _ = self.inner.conntrack.set(tracker);
        Ok(())
    }

    /// The conntrack reply tuple (server to client, after NAT) of every traced connection
    /// whose entry has been seen, by socket cookie; empty without `WithConntrack`. Known from
    /// the lookup made when the connection is established.
    #[allow(dead_code)] // For packet capture after NAT.
    pub(crate) fn conntrack_reply_tuples(&self) -> HashMap<SocketCookie, ReplyTuple> {
        self.inner
            .conntrack
            .get()
            .map(Tracker::reply_tuples)
            .unwrap_or_default()
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

    /// Connects the tracer to the process's kernel hub (loading the programs if needed).
    pub(crate) fn attach_kernel(&self, hub: &Arc<KernelHub>) -> Result<(), KernelError> {
        let sink = Arc::downgrade(&self.inner);
        let client = hub.attach(sink)?;
        let _ = self.inner.kernel.set(KernelLink::Active(client));
        Ok(())
    }

    /// Records why the tracer has no kernel data.
    pub(crate) fn kernel_unavailable(&self, reason: String) {
        let _ = self.inner.kernel.set(KernelLink::Unavailable(reason));
    }

    /// Traces a new socket in the kernel too (before `connect()`); a failure only costs the
    /// socket's kernel facts, and is logged.
    pub(crate) fn register_socket(&self, cookie: SocketCookie) {
        if let Some(KernelLink::Active(client)) = self.inner.kernel.get()
            && let Err(error) = client.register(cookie)
        {
            tracing::warn!(%error, %cookie, "socket not traced in the kernel");
        }
    }

    /// Stops tracing a UDP socket in the kernel (it has no state machine to wait for).
    pub(crate) fn unregister_socket(&self, cookie: SocketCookie) {
        self.inner.unregister(cookie);
    }

    /// The application closed a TCP socket: it leaves the kernel map once its final CLOSE has
    /// been seen too (see [`Retiring`]).
    pub(crate) fn tcp_socket_closed(&self, cookie: SocketCookie) {
        if !matches!(self.inner.kernel.get(), Some(KernelLink::Active(_))) {
            return;
        }
        if lock(&self.inner.retiring).both_done(cookie, Side::Application) {
            self.inner.unregister(cookie);
        }
    }

    /// Starts capturing packets on the interfaces of `options` (looked up in the calling
    /// thread's network namespace). Needs the kernel link.
    pub(crate) fn start_capture(&self, options: &PacketCaptureOptions) -> Result<(), KernelError> {
        let Some(KernelLink::Active(client)) = self.inner.kernel.get() else {
            return Err(KernelError::Unavailable);
        };
        let interfaces = client.start_capture(options)?;
        self.recorder()
            .enable_capture(CaptureStore::new(options.clone(), interfaces));
        Ok(())
    }

    /// Captures the packets between `local` and `remote` as those of socket `cookie` (a
    /// connected UDP socket; TCP flows are registered by the kernel at connect). Does nothing
    /// when the client does not capture; a failure only costs those packets, and is logged.
    pub(crate) fn register_flow(
        &self,
        cookie: SocketCookie,
        protocol: FlowProtocol,
        local: SocketAddr,
        remote: SocketAddr,
    ) {
        if let Some(KernelLink::Active(client)) = self.inner.kernel.get()
            && let Err(error) = client.register_flow(cookie, protocol, local, remote)
        {
            tracing::warn!(%error, %cookie, "flow not captured");
        }
    }

    /// The trace so far and the packet captures, with every kernel event and packet that
    /// happened before the call.
    pub(crate) fn snapshot_with_captures(
        &self,
        description: &str,
    ) -> (HttpTrace, Vec<PacketCapture>) {
        let kernel_data = self.drain_kernel();
        if let Some(conntrack) = self.inner.conntrack.get() {
            conntrack.refresh();
        }
        let lost_packets = match self.inner.kernel.get() {
            Some(KernelLink::Active(client)) => client.lost_packets().unwrap_or_else(|error| {
                tracing::warn!(%error, "lost-packet counter unreadable");
                0
            }),
            _ => 0,
        };
        // One lock for both, so that no packet arrives between the trace's end and the
        // captures.
        let recorder = self.recorder();
        let mut trace = recorder.snapshot(description, Instant::now());
        trace.net_trace.kernel_data = kernel_data;
        (trace, recorder.captures(lost_packets))
    }

    /// Takes every pending kernel event and packet; returns the kernel data status.
    fn drain_kernel(&self) -> Option<KernelDataStatus> {
        match self.inner.kernel.get() {
            None => None,
            Some(KernelLink::Unavailable(reason)) => Some(KernelDataStatus {
                available: false,
                reason: reason.clone(),
                ..KernelDataStatus::default()
            }),
            Some(KernelLink::Active(client)) => {
                client.drain();
                let (lost_events, reason) = match client.lost_events() {
                    Ok(lost) => (lost, String::new()),
                    Err(error) => (0, format!("lost-event counter unreadable: {error}")),
                };
                Some(KernelDataStatus {
                    available: true,
                    complete: lost_events == 0 && reason.is_empty(),
                    reason,
                    lost_events,
                })
            }
        }
    }

    /// Starts a new trace (open connections carry over as reused).
    pub(crate) fn clear(&self) {
        self.recorder().clear();
        if let Some(conntrack) = self.inner.conntrack.get() {
            conntrack.clear();
        }
    }

    fn recorder(&self) -> MutexGuard<'_, Recorder> {
        lock(&self.inner.recorder)
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every update under these locks is a single in-memory step; a panic in one cannot leave
    // the state half-written in a way later events would trip over.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
