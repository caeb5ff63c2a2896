//! [`Tracer`]: the driver that wires one client's (or one traced program's) parts together.
//!
//! Every clone of a traced client shares one. It owns:
//! - the [`Recorder`] (events in, snapshots out), behind a mutex that only events take
//!   (rare: one per dial, connection, message or request), never a socket operation;
//! - the kernel link ([`KernelLink`]: the process's kernel hub, the loader daemon, or why
//!   neither), set once;
//! - the conntrack [`Tracker`] (`WithConntrack`), set once;
//! - for a program traced from the kernel alone, the [`Translator`], set once;
//! - the TCP sockets on their way out of kernel tracing ([`Retiring`]).
//!
//! Hooks see it only as an [`EventSink`] ([`Tracer::sink`]); the kernel hub, the daemon link
//! and the conntrack tracker see it as their sink traits ([`KernelSink`], [`ConntrackSink`])
//! through a weak reference, so that dropping the client drops the tracer.
//!
//! # Feedback loops
//! Three paths lead from a producer back into another producer, each taken with no lock of
//! the tracer held:
//! - the kernel's final CLOSE of a TCP socket (or the translator's verdict for a program's
//!   socket) unregisters the socket from kernel tracing;
//! - a conntrack sample whose reply tuple differs from the socket's ends (NAT) registers the
//!   far-side flow for capture;
//! - a connection's events drive the conntrack tracker (opened, established, closed), whose
//!   lookups report back as samples.
//!
//! # Lock order
//! Outer to inner; a lock is only taken while holding locks above it in this list:
//! 1. the kernel hub's `draining` lock (held while a drain hands events to this tracer; the
//!    call totals a client reads from its sockets' entries are handed on outside it, which
//!    is safe since totals are merged by maximum, in any order);
//! 2. the translator's lock, then `retiring`: each released before the next is taken;
//! 3. the kernel hub's and the daemon link's own locks (clients, interfaces, the socket),
//!    taken by register/unregister/capture calls and never held while calling back here;
//!    the conntrack tracker releases its locks before it reports a sample;
//! 4. `recorder`, innermost: nothing called while holding it takes another lock.
//!
//! A part that is already set is never replaced: attaching a second kernel link or
//! translator is an error (`KernelError::AlreadyAttached`), as is a second conntrack tracker
//! (`ConntrackError::AlreadyAttached`).
use crate::sync::lock;
use std::{
    collections::HashMap,
    io,
    net::SocketAddr,
    os::fd::BorrowedFd,
    sync::{
        Arc, Mutex, MutexGuard, OnceLock,
        atomic::{AtomicU64, Ordering},
    },
    time::Instant,
};

use smallvec::SmallVec;
use socket2::Socket;
use tokio::sync::mpsc;

use crate::{
    SocketCookie,
    capture::{CaptureStore, PacketCapture, PacketCaptureOptions},
    conntrack::{ConntrackError, ConntrackSink, ReplyTuple, Tracker},
    daemon::{DaemonError, link::DaemonLink},
    error_chain::error_chain,
    event::{
        CtSample, Event, EventSink, Sink, SocketRecord, TraceSettings, Transport, UnboxedEvent,
    },
    headers::HttpReqTraceOptions,
    kernel::{
        Announcement, CallReports, FlowProtocol, KernelClient, KernelError, KernelEvent, KernelHub,
        KernelSink, KernelTcpState, SocketEntry, TcpStateChange,
    },
    model::{HttpTrace, KernelDataStatus, TraceId},
    recorder::{ConnEndpoints, Recorder},
    translate::Translator,
};

mod retiring;
use retiring::{Retiring, Side};

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
    /// TCP sockets on their way out of kernel tracing (see [`Retiring`]).
    retiring: Mutex<Retiring>,
    /// For a program traced from the kernel alone: turns its cgroup's kernel events into
    /// the recorder's events.
    translator: OnceLock<Mutex<Translator>>,
    /// The completed-request stream, when on (see [`Tracer::stream_to`]).
    stream: OnceLock<CompletedStream>,
}

/// The sending end of the completed-request stream, and its receiver until taken.
#[derive(Debug)]
struct CompletedStream {
    sender: mpsc::Sender<HttpTrace>,
    receiver: Mutex<Option<mpsc::Receiver<HttpTrace>>>,
    /// Traces dropped because the receiver was full, since the last one delivered.
    lost: AtomicU64,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tracer")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// Whether the kernel side traces this client's sockets, and through what.
enum KernelLink {
    /// The client's slot in the process's kernel hub (the programs are loaded here).
    Hub(KernelClient),
    /// The loader daemon's connection (the programs are loaded by `nettrace-loader serve`):
    /// packet capture of the client's own flows, without ICMP/ARP or the NAT side of a flow;
    /// no cgroup tracing.
    Daemon(DaemonLink),
    /// Why there is no kernel data.
    Unavailable(String),
}

impl KernelLink {
    /// The hub slot, for what only loading the programs here allows.
    fn hub(&self) -> Option<&KernelClient> {
        match self {
            Self::Hub(client) => Some(client),
            _ => None,
        }
    }

    /// Traces a socket (before `connect()`); `entry` says whether the kernel stored its
    /// entry already, from an announcement ([`Self::announce`]: the hub only).
    fn register(
        &self,
        socket: BorrowedFd<'_>,
        cookie: SocketCookie,
        calls: CallReports,
        entry: SocketEntry,
    ) -> Result<(), String> {
        match self {
            Self::Hub(client) => client
                .register(socket, cookie, calls, entry)
                .map_err(|e| e.to_string()),
            Self::Daemon(link) => match link.register(&socket) {
                Ok(registered) if registered == cookie => Ok(()),
                Ok(other) => Err(format!("the daemon registered cookie {other}")),
                Err(e) => Err(e.to_string()),
            },
            Self::Unavailable(_) => Ok(()),
        }
    }

    /// Announces the socket the calling thread creates next, for the kernel to register it
    /// as it is created (the hub only: see [`KernelClient::announce`]).
    fn announce(&self, calls: CallReports) -> Option<Announcement<'_>> {
        self.hub()?.announce(calls)
    }

    /// Stops tracing a socket.
    fn unregister(&self, cookie: SocketCookie) -> Result<(), String> {
        match self {
            Self::Hub(client) => client.unregister(cookie).map_err(|e| e.to_string()),
            Self::Daemon(link) => link.unregister(cookie).map_err(|e| e.to_string()),
            Self::Unavailable(_) => Ok(()),
        }
    }

    /// Stops tracing sockets that closed together: through the hub at once, through the
    /// daemon one by one (each failure said, with its socket).
    fn unregister_many(&self, cookies: &[SocketCookie]) {
        match self {
            Self::Hub(client) => {
                if let Err(error) = client.unregister_many(cookies) {
                    tracing::debug!(%error, ?cookies, "unregistering sockets failed");
                }
            }
            Self::Daemon(_) => {
                for &cookie in cookies {
                    if let Err(error) = self.unregister(cookie) {
                        tracing::debug!(%error, %cookie, "unregistering a socket failed");
                    }
                }
            }
            Self::Unavailable(_) => {}
        }
    }
}

/// How a socket's calls reach the trace: a TCP socket's are counted in the kernel (its
/// descriptor stays here until the application closes it, and its close is reported: see
/// [`CallReports`]); a UDP socket's one by one. Through the daemon, each call is sent.
fn call_reports(transport: Transport) -> CallReports {
    match transport {
        Transport::Tcp => CallReports::Totals,
        Transport::Udp => CallReports::EachCall,
    }
}

impl KernelSink for Inner {
    fn kernel_event(&self, event: KernelEvent, _record: &[u8]) {
        self.record_kernel_events(std::iter::once(UnboxedEvent::Event(event)));
    }

    fn kernel_events(&self, events: &mut dyn Iterator<Item = (KernelEvent, &[u8])>) {
        self.record_kernel_events(events.map(|(event, _)| UnboxedEvent::Event(event)));
    }

    fn kernel_events_unboxed<'a>(
        &self,
        events: &mut dyn Iterator<Item = (UnboxedEvent<'a>, &'a [u8])>,
    ) {
        self.record_kernel_events(events.map(|(event, _)| event));
    }

    fn tick(&self) {
        // An idle client (no socket closing, no trace taken) still lets the sockets go whose
        // CLOSE was lost; otherwise they would keep the programs armed machine-wide.
        self.retire_expired(Instant::now());
    }
}

impl Inner {
    /// Kernel events in order: through the translator when there is one (a program's
    /// trace), straight into the recorder otherwise.
    fn record_kernel_events<'a>(&self, events: impl Iterator<Item = UnboxedEvent<'a>>) {
        if let Some(translator) = self.translator.get() {
            // A sock_ops record may stand for a state transition the kernel sent no record for.
            for event in events
                .map(UnboxedEvent::boxed)
                .flat_map(KernelEvent::with_implied)
            {
                let out = lock(translator).translate(event);
                for cookie in out.unregister {
                    self.unregister(cookie);
                }
                for event in out.events {
                    self.emit(event);
                }
            }
            return;
        }
        // Room for the sockets a drain usually closes (no list grown one push after another).
        let mut closed: SmallVec<[SocketCookie; 32]> = SmallVec::new();
        let mut changed = |change: &TcpStateChange| {
            if change.new == KernelTcpState::Close {
                closed.push(change.cookie);
            }
        };
        // Not peeked (each peek copies a sock_ops record twice more): the first event of a
        // chunk is taken before the lock, the rest under it.
        let mut events = events;
        while let Some(first) = events.next() {
            // The recorder's lock once per chunk: the application's threads wait for it
            // behind at most this many records (each with the transition it stands for).
            let mut recorder = lock(&self.recorder);
            // Not `with_implied`'s chained iterators, which cost more than the recording on
            // this path (the hub's): one lookup of the connection per record.
            recorder.kernel_with_implied(first, &mut changed);
            for event in events.by_ref().take(KERNEL_EVENTS_PER_LOCK - 1) {
                recorder.kernel_with_implied(event, &mut changed);
            }
        }
        // Each socket leaves kernel tracing once the application is done with it too; those
        // that leave together, under one hold of each lock that takes.
        if closed.is_empty() {
            return;
        }
        let now = Instant::now();
        let mut leaving: SmallVec<[SocketCookie; 32]> = SmallVec::new();
        {
            let mut retiring = lock(&self.retiring);
            for cookie in closed {
                if retiring.mark_done(cookie, Side::Kernel, now) {
                    leaving.push(cookie);
                }
            }
            leaving.extend(retiring.expired_at(now));
        }
        if let Some(link) = self.kernel.get()
            && !leaving.is_empty()
        {
            link.unregister_many(&leaving);
        }
    }
}

/// Kernel events recorded under one hold of the recorder's lock (see
/// [`KernelSink::kernel_events`]).
const KERNEL_EVENTS_PER_LOCK: usize = 64;

impl ConntrackSink for Inner {
    fn conntrack_sample(&self, conn: &TraceId, sample: CtSample) {
        // Only in-process: the daemon takes no tuple from a client (this one comes from the
        // client's conntrack, its own word), so the NAT side is not captured through it.
        if let Some(client) = self.kernel.get().and_then(KernelLink::hub) {
            // The flow is registered outside the recorder's lock (see the lock order).
            let endpoints = lock(&self.recorder).conn_endpoints(conn);
            if let Some(endpoints) = endpoints {
                capture_after_nat(client, &endpoints, &sample);
            }
        }
        lock(&self.recorder).handle(Event::Conntrack {
            conn: conn.clone(),
            sample,
        });
    }
}

/// When NAT changed a connection's addresses, its packets on the far side travel under the
/// entry's reply tuple: capture them as the socket's too (from the first lookup on, which is
/// made once the connection is established).
fn capture_after_nat(client: &KernelClient, endpoints: &ConnEndpoints, sample: &CtSample) {
    let reply = &sample.entry.addr_reply;
    let (Some(server), Some(client_side)) = (reply.src(), reply.dst()) else {
        return;
    };
    if (server, client_side) == (endpoints.remote, endpoints.local) {
        return;
    }
    let protocol = match endpoints.transport {
        Transport::Tcp => FlowProtocol::Tcp,
        Transport::Udp => FlowProtocol::Udp,
    };
    // The far side's "local" end is the client's address after source NAT.
    if let Err(error) = client.register_flow(endpoints.cookie, protocol, client_side, server) {
        tracing::warn!(%error, "the NAT side of a flow is not captured");
    }
}

impl EventSink for Inner {
    fn settings(&self) -> &TraceSettings {
        &self.settings
    }

    fn emit(&self, event: Event) {
        tracing::trace!(?event, "nettrace event");
        if let Event::RequestDone { hops, at } = event {
            self.complete_request(&hops, at);
            return;
        }
        let closed = match &event {
            Event::ConnClosed { conn, at } if self.settings.stream_connections => {
                Some((conn.clone(), *at))
            }
            _ => None,
        };
        self.record(event);
        if let Some((conn, at)) = closed {
            self.complete_connection(&conn, at);
        }
    }

    fn emit_response(&self, headers: &http::HeaderMap, mut event: Event) {
        // The conntrack side does not follow responses: one lock for packing and recording.
        let mut recorder = lock(&self.recorder);
        if let Event::HttpResponse { header, .. } = &mut event {
            *header = recorder.pack_headers(headers);
        }
        tracing::trace!(?event, "nettrace event");
        recorder.handle(event);
    }

    fn new_socket_record(&self) -> Arc<SocketRecord> {
        Arc::new(SocketRecord::with_limit(
            self.settings.sock_ops,
            self.settings.limits.socket_ops_per_conn,
        ))
    }

    fn next_resolver_dial(&self) -> u64 {
        self.next_resolver_dial.fetch_add(1, Ordering::Relaxed)
    }

    fn open_socket(
        &self,
        transport: Transport,
        create: &mut dyn FnMut() -> io::Result<Socket>,
    ) -> io::Result<(Socket, Option<SocketCookie>)> {
        let link = self.kernel.get();
        let calls = call_reports(transport);
        let announced = link.and_then(|link| link.announce(calls));
        let socket = create()?;
        let (cookie, entry) = match announced.and_then(Announcement::registered) {
            Some(cookie) => (Some(SocketCookie(cookie)), SocketEntry::StoredByKernel),
            None => (SocketCookie::of(&socket).ok(), SocketEntry::ToStore),
        };
        if let Some(cookie) = cookie
            && let Some(link) = link
            && let Err(error) =
                link.register(std::os::fd::AsFd::as_fd(&socket), cookie, calls, entry)
        {
            tracing::warn!(%error, %cookie, "socket not traced in the kernel");
        }
        Ok((socket, cookie))
    }

    fn unregister_socket(&self, cookie: SocketCookie) {
        self.unregister(cookie);
    }

    /// See [`Retiring`].
    fn tcp_socket_closed(&self, cookie: SocketCookie) {
        if !matches!(
            self.kernel.get(),
            Some(KernelLink::Hub(_) | KernelLink::Daemon(_))
        ) {
            return;
        }
        let leaving = lock(&self.retiring).done(cookie, Side::Application, Instant::now());
        for cookie in leaving {
            self.unregister(cookie);
        }
    }

    /// The socket's entry says whether its CLOSE was reported: read by the hub, or by the
    /// daemon from the descriptor sent along. When it was not, none will come, and the
    /// socket leaves at once; otherwise (or when the entry cannot be read) it waits for its
    /// CLOSE as any other ([`Retiring`] lets it go after `RETIRE_WAIT` at the latest).
    fn tcp_socket_failed(&self, socket: BorrowedFd<'_>, cookie: SocketCookie) {
        let reported = match self.kernel.get() {
            Some(KernelLink::Hub(client)) => client
                .close_reported(socket, cookie)
                .map_err(|e| error_chain(&e)),
            Some(KernelLink::Daemon(link)) => link
                .close_reported(&socket)
                .map(Some)
                .map_err(|e| error_chain(&e)),
            _ => Ok(None),
        };
        match reported {
            Ok(Some(false)) => {
                // Remembered as gone without its CLOSE, so that a late one is not waited for.
                lock(&self.retiring).left_without_close(cookie, Instant::now());
                self.unregister(cookie);
            }
            Err(error) => {
                tracing::debug!(%error, %cookie, "reading a failed socket's entry failed");
                self.tcp_socket_closed(cookie);
            }
            Ok(_) => self.tcp_socket_closed(cookie),
        }
    }

    /// TCP flows are registered by the kernel at connect. Through the daemon, the descriptor
    /// goes along and the daemon reads the addresses from it.
    fn register_udp_flow(
        &self,
        socket: BorrowedFd<'_>,
        cookie: SocketCookie,
        local: SocketAddr,
        remote: SocketAddr,
    ) {
        let result = match self.kernel.get() {
            Some(KernelLink::Hub(client)) => client
                .register_flow(cookie, FlowProtocol::Udp, local, remote)
                .map_err(|e| error_chain(&e)),
            Some(KernelLink::Daemon(link)) => {
                link.capture_flow(&socket).map_err(|e| error_chain(&e))
            }
            _ => Ok(()),
        };
        if let Err(error) = result {
            tracing::warn!(%error, %cookie, "flow not captured");
        }
    }
}

impl Inner {
    /// Folds an event into the recorder, and lets the conntrack side follow connections.
    fn record(&self, event: Event) {
        let Some(conntrack) = self.conntrack.get() else {
            lock(&self.recorder).handle(event);
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
        lock(&self.recorder).handle(event);
        match follow {
            Some((conn, Some(local))) => conntrack.established(&conn, local),
            Some((conn, None)) => conntrack.closed(&conn),
            None => {}
        }
    }

    /// Streams a closed connection's trace (a program traced from the kernel). No kernel
    /// drain here: the closing event itself comes from one.
    fn complete_connection(&self, conn: &TraceId, at: Instant) {
        let Some(stream) = self.stream.get() else {
            return;
        };
        let Some(trace) = lock(&self.recorder).take_connection(conn, at) else {
            return;
        };
        self.deliver(stream, trace);
    }

    /// Hands a trace to the stream, counting it lost when the receiver is full or gone.
    fn deliver(&self, stream: &CompletedStream, mut trace: HttpTrace) {
        let lost = stream.lost.swap(0, Ordering::Relaxed);
        if lost > 0 {
            trace
                .net_trace
                .dropped
                .get_or_insert_default()
                .streamed_traces += lost;
        }
        if stream.sender.try_send(trace).is_err() {
            stream.lost.fetch_add(lost + 1, Ordering::Relaxed);
        }
    }

    /// Takes a completed request's trace out of the recorder, with every kernel event that
    /// happened before, and hands it to the stream (or counts it lost when the receiver is
    /// full or gone).
    fn complete_request(&self, hops: &[TraceId], at: Instant) {
        let Some(stream) = self.stream.get() else {
            return;
        };
        // Only this request's sockets are read for their call totals.
        let cookies = lock(&self.recorder).request_cookies(hops);
        let (kernel_data, _) = self.drain_kernel(Some(&cookies));
        let Some(mut trace) = lock(&self.recorder).take_request(hops, at) else {
            return;
        };
        trace.net_trace.kernel_data = kernel_data;
        self.deliver(stream, trace);
    }

    /// Unregisters the sockets that waited too long for their CLOSE (looked for at most once
    /// a minute, see [`Retiring::expired_at`]).
    fn retire_expired(&self, now: Instant) {
        let leaving = lock(&self.retiring).expired_at(now);
        for cookie in leaving {
            self.unregister(cookie);
        }
    }

    /// Takes every pending kernel event and packet, and the call totals of the open sockets
    /// `sockets` (all when `None`); returns the kernel data status and the packets the
    /// kernel lost.
    fn drain_kernel(&self, sockets: Option<&[SocketCookie]>) -> (Option<KernelDataStatus>, u64) {
        // A client that closes no more sockets still lets those that lost their CLOSE go.
        self.retire_expired(Instant::now());
        match self.kernel.get() {
            None => (None, 0),
            Some(KernelLink::Unavailable(reason)) => (
                Some(KernelDataStatus {
                    available: false,
                    reason: reason.clone(),
                    ..KernelDataStatus::default()
                }),
                0,
            ),
            Some(KernelLink::Daemon(link)) => {
                let (status, lost_packets) = daemon_status(link);
                (Some(status), lost_packets)
            }
            Some(KernelLink::Hub(client)) => {
                match sockets {
                    Some(cookies) => client.drain_sockets(cookies),
                    None => client.drain(),
                }
                let (lost_events, reason) = match client.lost_events() {
                    Ok(lost) => (lost, String::new()),
                    Err(error) => (0, format!("lost-event counter unreadable: {error}")),
                };
                let lost_packets = client.lost_packets().unwrap_or_else(|error| {
                    tracing::warn!(%error, "lost-packet counter unreadable");
                    0
                });
                let status = KernelDataStatus {
                    available: true,
                    complete: lost_events == 0 && reason.is_empty(),
                    reason,
                    lost_events,
                };
                (Some(status), lost_packets)
            }
        }
    }

    fn unregister(&self, cookie: SocketCookie) {
        if let Some(link) = self.kernel.get()
            && let Err(error) = link.unregister(cookie)
        {
            tracing::debug!(%error, %cookie, "unregistering a socket failed");
        }
    }
}

impl Tracer {
    /// A tracer whose trace begins now.
    pub(crate) fn new(settings: TraceSettings) -> Self {
        let mut recorder = Recorder::new(settings.dns_messages);
        recorder.set_limits(settings.limits);
        Self {
            inner: Arc::new(Inner {
                settings,
                recorder: Mutex::new(recorder),
                next_resolver_dial: AtomicU64::new(1),
                kernel: OnceLock::new(),
                conntrack: OnceLock::new(),
                retiring: Mutex::default(),
                translator: OnceLock::new(),
                stream: OnceLock::new(),
            }),
        }
    }

    /// Streams completed requests through a channel holding up to `capacity` traces (at
    /// least one); `None` leaves streaming off. Call once, before any request.
    pub(crate) fn stream_to(&self, capacity: Option<usize>) {
        let Some(capacity) = capacity else {
            return;
        };
        let (sender, receiver) = mpsc::channel(capacity.max(1));
        let stream = CompletedStream {
            sender,
            receiver: Mutex::new(Some(receiver)),
            lost: AtomicU64::new(0),
        };
        if self.inner.stream.set(stream).is_ok() && self.inner.settings.stream {
            self.recorder().set_streaming();
        }
    }

    /// Whether completed requests are streamed.
    pub(crate) fn streams(&self) -> bool {
        self.inner.settings.stream
    }

    /// The receiver of the completed-request stream, the first time.
    pub(crate) fn take_completed(&self) -> Option<mpsc::Receiver<HttpTrace>> {
        self.inner
            .stream
            .get()
            .and_then(|s| lock(&s.receiver).take())
    }

    /// The hooks' view of this tracer.
    pub(crate) fn sink(&self) -> Sink {
        self.inner.clone()
    }

    /// Records HTTP header fields as `options` say (`WithHTTPReqTrace`).
    pub(crate) fn record_http_headers(&self, options: Arc<HttpReqTraceOptions>) {
        self.recorder().set_http_headers(options);
    }

    /// Starts following connections in conntrack (`WithConntrack`), in the calling thread's
    /// network namespace.
    pub(crate) fn attach_conntrack(&self) -> Result<(), ConntrackError> {
        if self.inner.conntrack.get().is_some() {
            return Err(ConntrackError::AlreadyAttached);
        }
        let sink: std::sync::Weak<dyn ConntrackSink> = Arc::downgrade(&self.inner) as _;
        let tracker = Tracker::start(sink)?;
        self.inner
            .conntrack
            .set(tracker)
            .map_err(|_| ConntrackError::AlreadyAttached)
    }

    /// The conntrack reply tuple (server to client, after NAT) of every traced connection
    /// whose entry has been seen, by socket cookie; empty without `WithConntrack`. Known from
    /// the lookup made when the connection is established.
    #[allow(dead_code)] // Diagnostics; capture after NAT follows each sample instead.
    pub(crate) fn conntrack_reply_tuples(&self) -> HashMap<SocketCookie, ReplyTuple> {
        self.inner
            .conntrack
            .get()
            .map(Tracker::reply_tuples)
            .unwrap_or_default()
    }

    /// Connects the tracer to the process's kernel hub (loading the programs if needed).
    pub(crate) fn attach_kernel(&self, hub: &Arc<KernelHub>) -> Result<(), KernelError> {
        self.check_no_kernel_link()?;
        let sink = Arc::downgrade(&self.inner);
        let client = hub.attach(sink)?;
        self.set_kernel_link(KernelLink::Hub(client))
    }

    /// Connects the tracer to the loader daemon listening at `path`.
    pub(crate) fn attach_daemon(&self, path: &std::path::Path) -> Result<(), DaemonError> {
        self.check_no_kernel_link().map_err(DaemonError::Kernel)?;
        let sink: std::sync::Weak<dyn KernelSink> = Arc::downgrade(&self.inner) as _;
        let link = DaemonLink::connect(path, sink)?;
        self.set_kernel_link(KernelLink::Daemon(link))
            .map_err(DaemonError::Kernel)
    }

    /// Makes this the tracer of a program seen from the kernel alone: kernel events of its
    /// cgroup become dials, connections, socket operations and DNS messages.
    pub(crate) fn translate_kernel_events(&self) -> Result<(), KernelError> {
        let translator = Translator::new(self.inner.settings.sock_ops);
        self.inner
            .translator
            .set(Mutex::new(translator))
            .map_err(|_| KernelError::AlreadyAttached("a kernel event translator"))
    }

    /// Traces the sockets created in the cgroup at `path` from now on (see
    /// [`Self::translate_kernel_events`]). Needs the kernel link.
    pub(crate) fn trace_cgroup(&self, path: &std::path::Path) -> Result<(), KernelError> {
        let Some(client) = self.inner.kernel.get().and_then(KernelLink::hub) else {
            return Err(KernelError::Unavailable);
        };
        client.trace_cgroup(path)
    }

    /// Records why the tracer has no kernel data.
    pub(crate) fn kernel_unavailable(&self, reason: String) -> Result<(), KernelError> {
        self.set_kernel_link(KernelLink::Unavailable(reason))
    }

    /// Refuses a second kernel link before one is built.
    fn check_no_kernel_link(&self) -> Result<(), KernelError> {
        match self.inner.kernel.get() {
            Some(_) => Err(KernelError::AlreadyAttached("a kernel link")),
            None => Ok(()),
        }
    }

    /// Sets the kernel link, once.
    fn set_kernel_link(&self, link: KernelLink) -> Result<(), KernelError> {
        self.inner
            .kernel
            .set(link)
            .map_err(|_| KernelError::AlreadyAttached("a kernel link"))
    }

    /// Starts capturing packets on the interfaces of `options` (looked up in the calling
    /// thread's network namespace, or the daemon's through it). Needs the kernel link.
    pub(crate) fn start_capture(&self, options: &PacketCaptureOptions) -> Result<(), KernelError> {
        options.validate()?;
        let interfaces = match self.inner.kernel.get() {
            Some(KernelLink::Hub(client)) => client.start_capture(options)?,
            Some(KernelLink::Daemon(link)) => link
                .capture(options)
                .map_err(|e| KernelError::Daemon(Box::new(e)))?,
            _ => return Err(KernelError::Unavailable),
        };
        self.recorder()
            .enable_capture(CaptureStore::new(options.clone(), interfaces));
        Ok(())
    }

    /// The trace so far and the packet captures, with every kernel event and packet that
    /// happened before the call.
    pub(crate) fn snapshot_with_captures(
        &self,
        description: &str,
    ) -> (HttpTrace, Vec<PacketCapture>) {
        let (kernel_data, lost_packets) = self.inner.drain_kernel(None);
        if let Some(conntrack) = self.inner.conntrack.get() {
            conntrack.refresh();
        }
        // One lock for both, so that no packet arrives between the trace's end and the
        // captures.
        let mut recorder = self.recorder();
        let mut trace = recorder.snapshot(description, Instant::now());
        trace.net_trace.kernel_data = kernel_data;
        (trace, recorder.captures(lost_packets))
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

/// Takes every pending kernel event from the daemon; the status says where the data came
/// from and counts what the kernel lost, what the daemon dropped and what did not decode.
/// Also returns the packets the kernel lost.
fn daemon_status(link: &DaemonLink) -> (KernelDataStatus, u64) {
    let from = format!(
        "kernel data from the nettrace-loader daemon at {}",
        link.path().display()
    );
    match link.sync() {
        Ok(report) => {
            let lost = report.lost_events + report.dropped + report.malformed;
            let reason = if report.malformed == 0 {
                from
            } else {
                format!("{from}; {} malformed records skipped", report.malformed)
            };
            let status = KernelDataStatus {
                available: true,
                complete: lost == 0,
                reason,
                lost_events: lost,
            };
            (status, report.lost_packets)
        }
        Err(error) => {
            let status = KernelDataStatus {
                available: true,
                complete: false,
                reason: format!(
                    "{from}; the events since the last sync may be missing: {}",
                    error_chain(&error)
                ),
                lost_events: 0,
            };
            (status, 0)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tracer() -> Tracer {
        Tracer::new(TraceSettings::default())
    }

    #[test]
    fn a_second_kernel_link_is_refused_and_the_first_kept() {
        let tracer = tracer();
        assert!(tracer.kernel_unavailable("first".to_owned()).is_ok());
        let second = tracer.kernel_unavailable("second".to_owned());
        assert!(
            matches!(second, Err(KernelError::AlreadyAttached(_))),
            "{second:?}"
        );
        let (trace, _) = tracer.snapshot_with_captures("t");
        let kernel = trace.net_trace.kernel_data.unwrap_or_default();
        assert_eq!(kernel.reason, "first");
    }

    #[test]
    fn a_daemon_of_another_release_leaves_the_link_free_for_the_reason() {
        use crate::daemon::link::tests::{FakeDaemon, OLD_DAEMONS_ANSWER, until_closed};
        let fake = FakeDaemon::listen("tracer");
        let served = fake.serve(OLD_DAEMONS_ANSWER.to_vec(), until_closed);
        let tracer = tracer();
        let error = tracer.attach_daemon(&fake.path()).err();
        assert!(
            matches!(error, Some(DaemonError::PredatesHandshake { .. })),
            "{error:?}"
        );
        served.join().unwrap();
        // The client's fallback: no kernel link, and the reason in the trace.
        let reason = error_chain(&error.unwrap());
        assert!(tracer.kernel_unavailable(reason).is_ok());
        let (trace, _) = tracer.snapshot_with_captures("t");
        let kernel = trace.net_trace.kernel_data.unwrap_or_default();
        assert!(!kernel.available, "{kernel:?}");
        assert!(
            kernel.reason.contains("predates the version handshake")
                && kernel.reason.contains("same nettrace release"),
            "{kernel:?}"
        );
    }

    #[test]
    fn a_second_translator_is_refused() {
        let tracer = tracer();
        assert!(tracer.translate_kernel_events().is_ok());
        assert!(matches!(
            tracer.translate_kernel_events(),
            Err(KernelError::AlreadyAttached(_))
        ));
    }

    #[test]
    fn a_second_conntrack_tracker_is_refused() {
        let tracer = tracer();
        if let Err(error) = tracer.attach_conntrack() {
            // Without CAP_NET_ADMIN the first one cannot start.
            crate::test_support::skipped("a_second_conntrack_tracker_is_refused", error);
            return;
        }
        assert!(matches!(
            tracer.attach_conntrack(),
            Err(ConntrackError::AlreadyAttached)
        ));
    }

    /// Connects a traced TCP socket of `tracer` to a multicast address, which TCP refuses
    /// before SYN-SENT (no packet leaves, no CLOSE comes); returns the socket's cookie,
    /// checked to have left kernel tracing without its CLOSE and not to be waited for.
    fn fail_a_connect_before_syn_sent(tracer: &Tracer) -> SocketCookie {
        let origin = crate::sock::SocketOrigin {
            dial: TraceId::generate(),
            from_resolver: false,
            source_ip: None,
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        let multicast: std::net::SocketAddr = "224.0.0.1:80".parse().expect("an address");
        let sink = tracer.sink();
        let result = runtime.block_on(crate::sock::connect_tcp(
            &sink,
            &origin,
            multicast,
            crate::sock::TcpOptions::default(),
        ));
        match result {
            Err(crate::sock::ConnectError::Connect(error)) => {
                assert_eq!(error.raw_os_error(), Some(libc::ENETUNREACH), "{error}");
            }
            other => panic!("expected a failed connect, got {:?}", other.map(|_| ())),
        }
        let cookies: Vec<SocketCookie> = lock(&tracer.inner.retiring).expired_cookies();
        assert_eq!(cookies.len(), 1, "left without its CLOSE: {cookies:?}");
        // Not left waiting (ten minutes) for a CLOSE.
        assert!(!lock(&tracer.inner.retiring).waits_for(cookies[0]));
        cookies[0]
    }

    #[test]
    fn a_socket_whose_connect_never_left_close_leaves_kernel_tracing_at_once() {
        let Some(hub) = KernelHub::shared_or_skip(
            "a_socket_whose_connect_never_left_close_leaves_kernel_tracing_at_once",
        ) else {
            return;
        };
        let tracer = tracer();
        tracer.attach_kernel(&hub).expect("attached");
        let cookie = fail_a_connect_before_syn_sent(&tracer);
        match tracer.inner.kernel.get() {
            // No longer traced by the client's slot.
            Some(KernelLink::Hub(client)) => assert!(!client.traces(cookie)),
            _ => panic!("the hub is the tracer's kernel link"),
        }
    }

    #[test]
    fn through_the_daemon_a_socket_whose_connect_never_left_close_leaves_at_once() {
        let test = "through_the_daemon_a_socket_whose_connect_never_left_close_leaves_at_once";
        // The daemon serves from the process's shared hub, which needs root; held here so
        // that it loads once. The serving thread keeps it (and its default configuration,
        // the one every test of this binary uses) until the test binary ends: `serve` has no
        // stop.
        let Some(_hub) = KernelHub::shared_or_skip(test) else {
            return;
        };
        let dir = nettrace_tests::scenario::TempDir::new("tracer-daemon-failed-connect");
        let socket_path = dir.path("serve.sock");
        let options = crate::daemon::ServeOptions {
            socket_path: socket_path.clone(),
            group: None,
            kernel_config: crate::kernel::KernelConfig::default(),
        };
        let (ready, listening) = std::sync::mpsc::channel();
        // Serves until the test process ends (it has no stop).
        std::thread::spawn(move || {
            let served = crate::daemon::serve(&options, || {
                let _ = ready.send(());
            });
            panic!("the daemon stopped: {served:?}");
        });
        listening
            .recv_timeout(std::time::Duration::from_secs(10))
            .expect("the daemon listens");
        let tracer = tracer();
        tracer
            .attach_daemon(&socket_path)
            .expect("attached to the daemon");
        fail_a_connect_before_syn_sent(&tracer);
        // The unregistration is sent without waiting for a reply: a sync on the same
        // connection returns after the daemon has served it.
        match tracer.inner.kernel.get() {
            Some(KernelLink::Daemon(link)) => {
                link.sync().expect("a sync");
            }
            _ => panic!("the daemon is the tracer's kernel link"),
        }
        // The daemon holds no socket any more: only the tracer's connection and this one.
        let mut status = crate::daemon::DaemonClient::connect(&socket_path).expect("a client");
        assert_eq!(status.status().expect("status"), (2, 0));
    }
}
