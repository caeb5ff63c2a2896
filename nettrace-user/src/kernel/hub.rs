//! [`KernelHub`]: one loaded set of programs per process, shared by every traced client.
//!
//! Programs are attached once, however many clients trace. Each client gets a slot
//! ([`KernelClient`]); its sockets are registered with the slot's id, the kernel tags their
//! events with it, and the hub hands each event to that client only. A background task drains
//! the ring buffer as events arrive; [`KernelHub::drain`] does the same on demand, so a trace
//! taken right after a request holds every kernel event that happened before it.
use crate::sync::lock;
use std::{
    net::SocketAddr,
    os::fd::{AsRawFd, BorrowedFd, RawFd},
    sync::{Arc, Mutex, Weak},
};

use bytes::Bytes;
// Keys are client slots, kernel socket cookies and interface indexes, none chosen by a peer.
use rustc_hash::FxHashMap as HashMap;

use nettrace_common::{
    CaptureClient, CaptureInterface, FlowKey, TracedFlow, capture_flags, limits, socket_flags,
};

mod batch;
mod route;

use batch::{DecodedBatch, EventRef};
use route::{Destination, Recipients};

use super::{
    CaptureInterfaceInfo, CaptureLinks, CgroupLinks, ClientId, FlowProtocol, KernelConfig,
    KernelError, KernelEvent, KernelEvents, KernelTracer, SockCallsRecord, SockOp, SockOpsRecord,
    announce::Announcement, flow_directions, record::RecordBatch,
};
use crate::{
    KernelTime, SocketCookie,
    capture::{LinkKind, PacketCaptureOptions},
    event::UnboxedEvent,
};

/// Receives the kernel events of one client.
pub(crate) trait KernelSink: Send + Sync {
    /// One event about one of the client's sockets, with the ring-buffer record it was
    /// decoded from.
    fn kernel_event(&self, event: KernelEvent, record: &[u8]);

    /// Consecutive events of one drain, in order (by default, one [`Self::kernel_event`]
    /// call each; a sink with a lock per event takes it once here instead). Events the sink
    /// leaves in `events` are dropped.
    fn kernel_events(&self, events: &mut dyn Iterator<Item = (KernelEvent, &[u8])>) {
        for (event, record) in events {
            self.kernel_event(event, record);
        }
    }

    /// [`Self::kernel_events`] of a drain's events, whose sock_ops records are lent, not
    /// boxed: by default boxed as they are handed on; a sink that needs no box reads them
    /// where they are (an allocation, a free and a copy fewer per record).
    fn kernel_events_unboxed<'a>(
        &self,
        events: &mut dyn Iterator<Item = (UnboxedEvent<'a>, &'a [u8])>,
    ) {
        self.kernel_events(&mut events.map(|(event, record)| (event.boxed(), record)));
    }

    /// Called on the hub's tick (every [`super::events::READ_TICK`]), outside its locks:
    /// the time for a sink's own periodic work, such as letting go of sockets whose CLOSE
    /// never came. Nothing by default.
    fn tick(&self) {}
}

/// The client `id`, if it is still there.
fn owner(clients: &HashMap<ClientId, ClientEntry>, id: ClientId) -> Recipients {
    clients
        .get(&id)
        .and_then(|entry| entry.sink.upgrade())
        .map_or(Recipients::None, Recipients::One)
}

/// The client a sock_ops record goes to (its socket's); at a connect of a client that
/// captures, the flow keys the program registered are remembered with the socket. Inlined
/// into the drain, as [`KernelHub::destination`] is (see [`batch`]).
#[inline]
fn sock_ops_destination(
    clients: &mut HashMap<ClientId, ClientEntry>,
    ops: &SockOpsRecord,
) -> Destination {
    if ops.op == SockOp::Connect
        && let Some(entry) = clients.get_mut(&ops.client)
        && entry.capture.is_some()
        && let Some(socket) = entry.sockets.get_mut(&ops.cookie)
    {
        let keys = &mut socket.flows;
        // The program registered the flow before the SYN; remember its keys so that they
        // are removed with the socket.
        for (key, _) in flow_directions(FlowProtocol::Tcp, ops.local, ops.remote) {
            if !keys.contains(&key) {
                keys.push(key);
            }
        }
    }
    Destination::Client(ops.client)
}

/// The process-wide hub, alive while some client holds it.
static HUB: Mutex<Weak<KernelHub>> = Mutex::new(Weak::new());

/// The loaded programs and the clients using them.
pub(crate) struct KernelHub {
    tracer: KernelTracer,
    events: Mutex<KernelEvents>,
    packets: Mutex<KernelEvents>,
    /// Held through a whole drain (taking and handing on), so that a drain that finds the
    /// rings empty returns only after the events another drain took are handed on; holds
    /// what each drain fills.
    draining: Mutex<Draining>,
    clients: Mutex<HashMap<ClientId, ClientEntry>>,
    /// Interfaces with capture programs attached, and who captures on them.
    interfaces: Mutex<HashMap<InterfaceKey, AttachedInterface>>,
    /// Tells the ring-watching thread to end.
    stop: Mutex<Option<tokio::sync::oneshot::Sender<()>>>,
}

/// What every drain fills, kept from one to the next (see [`KernelHub::draining`]).
#[derive(Default)]
struct Draining {
    /// The records copied out of the rings and lanes.
    records: RecordBatch,
    /// The events decoded from them.
    decoded: DecodedBatch,
}

/// How long the programs stay armed after the last socket left (see [`super::armed`]): a
/// client that opens one connection after another does not write the flag twice per
/// connection, and a client with nothing in flight stops costing the rest of the machine
/// soon after.
const DISARM_DELAY: std::time::Duration = std::time::Duration::from_millis(200);

/// Events with the ring-buffer records they were decoded from, as a sink takes them.
type EventBatch = Vec<(KernelEvent, Bytes)>;

struct ClientEntry {
    sink: Weak<dyn KernelSink>,
    /// The cgroup this client traces, if any.
    cgroup: Option<CgroupLinks>,
    /// The client's traced sockets.
    sockets: HashMap<SocketCookie, RegisteredSocket>,
    capture: Option<ClientCapture>,
}

/// One of a client's traced sockets.
#[derive(Default)]
struct RegisteredSocket {
    /// The flow keys registered for its packets.
    flows: Vec<FlowKey>,
    /// The descriptor of a socket whose calls the kernel counts ([`CallReports::Totals`]):
    /// read for its totals when the client drains, until a read finds that it no longer names
    /// the socket (the application closed it, and the number may have gone to another file;
    /// the cookie stored with the totals tells). The kernel may report the socket until its
    /// CLOSE all the same.
    descriptor: Option<RawFd>,
}

/// How a registered socket reports its send and receive calls.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CallReports {
    /// A record per call, with its time and result (a daemon client, whose descriptors the
    /// hub does not keep; UDP sockets, which report no close).
    EachCall,
    /// Totals counted in the kernel, sent with the socket's `sock_ops` records (its
    /// application's `close()` among them) and read through its descriptor at each
    /// [`KernelClient::drain`] while it is open: a record per call cost a keep-alive
    /// request about 3 us of the client's CPU (issue 16). For TCP sockets whose descriptors
    /// stay with the registering process until it closes them.
    Totals,
}

/// What one client captures.
struct ClientCapture {
    /// Interface indexes (in the client's network namespace).
    interfaces: Vec<InterfaceKey>,
    snaplen: u32,
    icmp: bool,
    arp: bool,
}

/// An interface, told apart from its namesakes in other network namespaces.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct InterfaceKey {
    /// Inode of the network namespace.
    netns: u64,
    /// Index in that namespace.
    index: u32,
}

struct AttachedInterface {
    links: CaptureLinks,
    link_kind: LinkKind,
    users: Vec<ClientId>,
}

impl KernelHub {
    /// The process's hub, loading and attaching the programs if no client holds them now.
    ///
    /// The ring buffer is watched by a thread of the hub's own ("nettrace-kernel"), so this
    /// works inside or outside any async runtime and outlives the caller's.
    pub(crate) fn shared(config: &KernelConfig) -> Result<Arc<Self>, KernelError> {
        let mut slot = lock(&HUB);
        if let Some(hub) = slot.upgrade() {
            return Ok(hub);
        }
        let (loaded_tx, loaded_rx) = std::sync::mpsc::channel();
        let (hub_tx, hub_rx) = tokio::sync::oneshot::channel::<Weak<KernelHub>>();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let config = config.clone();
        std::thread::Builder::new()
            .name("nettrace-kernel".to_owned())
            .spawn(move || watch_ring(config, loaded_tx, hub_rx, stop_rx))
            .map_err(KernelError::Thread)?;
        let (tracer, events, packets) = loaded_rx
            .recv()
            .map_err(|_| KernelError::Thread(std::io::Error::other("the kernel thread ended")))??;
        let hub = Arc::new(Self {
            tracer,
            events: Mutex::new(events),
            packets: Mutex::new(packets),
            draining: Mutex::new(Draining::default()),
            clients: Mutex::new(HashMap::default()),
            interfaces: Mutex::new(HashMap::default()),
            stop: Mutex::new(Some(stop_tx)),
        });
        hub.tracer.set_disarm_delay(Some(DISARM_DELAY))?;
        // If the thread is gone, events are still drained by every snapshot.
        let _ = hub_tx.send(Arc::downgrade(&hub));
        *slot = Arc::downgrade(&hub);
        Ok(hub)
    }

    /// Gives `sink` a client slot.
    pub(crate) fn attach(
        self: &Arc<Self>,
        sink: Weak<dyn KernelSink>,
    ) -> Result<KernelClient, KernelError> {
        let mut clients = lock(&self.clients);
        let id = (0..limits::MAX_CLIENTS)
            .map(ClientId)
            .find(|id| !clients.contains_key(id))
            .ok_or(KernelError::NoClientSlot)?;
        // A new generation: entries the slot's earlier client left in open sockets produce
        // nothing for this one.
        self.tracer.renew_client(id)?;
        self.tracer.reset_lost_events(id)?;
        clients.insert(
            id,
            ClientEntry {
                sink,
                cgroup: None,
                sockets: HashMap::default(),
                capture: None,
            },
        );
        Ok(KernelClient {
            hub: self.clone(),
            id,
        })
    }

    /// Takes every event and packet in the ring buffers now and hands each to its client;
    /// returns once every event taken before the call (by any drain) has been handed on.
    pub(crate) fn drain(&self) {
        let mut draining = lock(&self.draining);
        let Draining {
            records,
            decoded: batch,
        } = &mut *draining;
        lock(&self.events).drain_records(records);
        lock(&self.packets).drain_records(records);
        // After the records were taken: every one of them was written earlier (a packet's
        // departure time may lie ahead).
        let read_at = KernelTime::now();
        let (bytes, spans) = records.take_shared();
        batch.decode(&bytes, spans, read_at);
        if batch.is_empty() {
            return;
        }
        // The two rings interleaved in time, so that a packet is handled after the events
        // that came before it (a connect before its first datagram), and the lanes of each
        // CPU with them.
        batch.sort_by_time();
        // Routed under one lock of the clients, handed on outside it: a sink takes its own
        // locks (the recorder's) and may unregister a socket, which takes the clients' lock.
        // Consecutive events of one client travel together: one call, one lock of its
        // recorder per run instead of per event.
        let runs = {
            let mut clients = lock(&self.clients);
            let runs = route::group(
                batch
                    .iter()
                    .map(|event| self.destination(&mut clients, event)),
            );
            route::resolve(runs, |id| owner(&clients, id))
        };
        route::hand_on(batch.take(&bytes), runs);
    }

    /// Where an event goes: to its socket's client, or for a packet of no flow (ICMP, ARP),
    /// to every client that asked for such packets on its interface.
    #[inline]
    fn destination(
        &self,
        clients: &mut HashMap<ClientId, ClientEntry>,
        event: EventRef<'_>,
    ) -> Destination {
        let event = match event {
            EventRef::SockOps(ops) => return sock_ops_destination(clients, ops),
            EventRef::Event(event) => event,
        };
        let captures_on = |capture: &ClientCapture, index: u32| {
            capture.interfaces.iter().any(|key| key.index == index)
        };
        match event {
            KernelEvent::Packet(packet) if packet.client == ClientId::ANY => {
                let arp = self.is_arp(packet.ifindex, &packet.data);
                Destination::Many(
                    clients
                        .values()
                        .filter(|entry| {
                            entry.capture.as_ref().is_some_and(|c| {
                                captures_on(c, packet.ifindex) && if arp { c.arp } else { c.icmp }
                            })
                        })
                        .filter_map(|entry| entry.sink.upgrade())
                        .collect(),
                )
            }
            KernelEvent::Packet(packet) => {
                let captured = clients.get(&packet.client).is_some_and(|entry| {
                    // Copies of the cgroup programs (DNS, TLS handshakes) are seen on no
                    // interface and go to the cgroup's client whether it captures or not.
                    packet.ifindex == nettrace_common::CGROUP_PACKET_IFINDEX
                        || entry
                            .capture
                            .as_ref()
                            .is_some_and(|c| captures_on(c, packet.ifindex))
                });
                if captured {
                    Destination::Client(packet.client)
                } else {
                    Destination::Nowhere
                }
            }
            KernelEvent::SockOps(ops) => sock_ops_destination(clients, ops),
            KernelEvent::SocketCreated(created) => {
                // Registered by the kernel: remembered so that it is removed with the client.
                if let Some(entry) = clients.get_mut(&created.client) {
                    entry.sockets.entry(created.cookie).or_default();
                }
                Destination::Client(created.client)
            }
            other => Destination::Client(other.client()),
        }
    }

    /// Whether a packet of no flow is ARP (otherwise it is ICMP): on an Ethernet interface,
    /// its ethertype says so; raw-IP interfaces carry no ARP.
    fn is_arp(&self, ifindex: u32, data: &[u8]) -> bool {
        let ethernet = lock(&self.interfaces).iter().any(|(key, attached)| {
            key.index == ifindex && attached.link_kind == LinkKind::Ethernet
        });
        ethernet && data.get(12..14) == Some(&[0x08, 0x06][..])
    }

    /// Rewrites the ICMP/ARP settings of interface `index` from its users' wishes (namesakes
    /// in other namespaces share the kernel entry, which is keyed by index).
    fn update_interface_settings(
        &self,
        index: u32,
        clients: &HashMap<ClientId, ClientEntry>,
        interfaces: &HashMap<InterfaceKey, AttachedInterface>,
    ) -> Result<(), KernelError> {
        let mut settings = CaptureInterface::default();
        let users = interfaces
            .iter()
            .filter(|(key, _)| key.index == index)
            .flat_map(|(_, attached)| attached.users.iter());
        for capture in users.filter_map(|id| clients.get(id)?.capture.as_ref()) {
            if capture.icmp {
                settings.icmp_snaplen = settings.icmp_snaplen.max(capture.snaplen);
            }
            if capture.arp {
                settings.arp_snaplen = settings.arp_snaplen.max(capture.snaplen);
            }
        }
        self.tracer.set_capture_interface(index, settings)
    }
}

impl KernelHub {
    /// The ring thread's periodic chore: disarms the programs once nothing has been
    /// registered for [`DISARM_DELAY`].
    fn housekeeping(&self) {
        // The sinks are called outside the clients' lock: they may unregister sockets.
        let sinks: Vec<Arc<dyn KernelSink>> = lock(&self.clients)
            .values()
            .filter_map(|entry| entry.sink.upgrade())
            .collect();
        for sink in sinks {
            sink.tick();
        }
        if let Err(error) = self.tracer.disarm_if_idle() {
            tracing::warn!(%error, "disarming the kernel programs failed");
        }
    }
}

impl Drop for KernelHub {
    fn drop(&mut self) {
        // Not joined: the last reference may be dropped on the watching thread itself.
        if let Some(stop) = lock(&self.stop).take() {
            let _ = stop.send(());
        }
    }
}

/// The loaded programs with the readers of their event and packet rings.
type Loaded = (KernelTracer, KernelEvents, KernelEvents);

/// The [`socket_flags`] of a socket `client` registers: capture when it captures, call
/// totals when its calls are reported so.
fn socket_flags_for(
    clients: &HashMap<ClientId, ClientEntry>,
    client: ClientId,
    calls: CallReports,
) -> u32 {
    let capturing = clients
        .get(&client)
        .is_some_and(|entry| entry.capture.is_some());
    let mut flags = if capturing { socket_flags::CAPTURE } else { 0 };
    if calls == CallReports::Totals {
        flags |= socket_flags::FOLD_CALLS;
    }
    flags
}

/// The body of the "nettrace-kernel" thread: loads the programs, reports the result, then
/// drains the ring into the hub whenever it becomes readable, until told to stop.
fn watch_ring(
    config: KernelConfig,
    loaded: std::sync::mpsc::Sender<Result<Loaded, KernelError>>,
    hub: tokio::sync::oneshot::Receiver<Weak<KernelHub>>,
    mut stop: tokio::sync::oneshot::Receiver<()>,
) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            let _ = loaded.send(Err(KernelError::Thread(error)));
            return;
        }
    };
    runtime.block_on(async move {
        let opened =
            KernelTracer::load_with_packets(&config).and_then(|(tracer, events, packets)| {
                let readiness = (events.readiness()?, packets.readiness()?);
                Ok((readiness, tracer, events, packets))
            });
        let (mut events_ready, mut packets_ready) = match opened {
            Ok((readiness, tracer, events, packets)) => {
                let _ = loaded.send(Ok((tracer, events, packets)));
                readiness
            }
            Err(error) => {
                let _ = loaded.send(Err(error));
                return;
            }
        };
        let Ok(hub) = hub.await else {
            return;
        };
        // The programs wake this thread only once a batch has built up; the tick picks up
        // the rest (snapshots drain the ring themselves, so they never wait for it).
        let mut tick = tokio::time::interval(super::events::READ_TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = &mut stop => return,
                ready = events_ready.readable_mut() => {
                    let Ok(mut ready) = ready else { return };
                    let Some(hub) = hub.upgrade() else { return };
                    hub.drain();
                    ready.clear_ready();
                }
                ready = packets_ready.readable_mut() => {
                    let Ok(mut ready) = ready else { return };
                    let Some(hub) = hub.upgrade() else { return };
                    hub.drain();
                    ready.clear_ready();
                }
                _ = tick.tick() => {
                    let Some(hub) = hub.upgrade() else { return };
                    hub.drain();
                    hub.housekeeping();
                }
            }
        }
    });
}

/// Where a registered socket's entry comes from ([`KernelClient::register`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SocketEntry {
    /// Stored now, through the socket's descriptor.
    ToStore,
    /// Stored by the kernel as it created the socket, from an announcement.
    StoredByKernel,
}

/// One client's slot in the hub. Dropping it forgets the client's sockets.
pub(crate) struct KernelClient {
    hub: Arc<KernelHub>,
    id: ClientId,
}

impl KernelClient {
    /// Traces `socket`, whose cookie is `cookie` (call before `connect()`), its calls
    /// reported as `calls` says; when this client captures, the programs register its TCP
    /// flow at connect. `entry` says whether its entry is to be stored now or the kernel
    /// stored it already, from an announcement ([`Self::announce`]).
    pub(crate) fn register(
        &self,
        socket: BorrowedFd<'_>,
        cookie: SocketCookie,
        calls: CallReports,
        entry: SocketEntry,
    ) -> Result<(), KernelError> {
        let mut clients = lock(&self.hub.clients);
        match entry {
            SocketEntry::ToStore => {
                let flags = socket_flags_for(&clients, self.id, calls);
                self.hub
                    .tracer
                    .register_as(socket, cookie, self.id, flags)?;
            }
            SocketEntry::StoredByKernel => self.hub.tracer.adopt(cookie)?,
        }
        if let Some(entry) = clients.get_mut(&self.id) {
            let descriptor = (calls == CallReports::Totals).then(|| socket.as_raw_fd());
            entry.sockets.insert(
                cookie,
                RegisteredSocket {
                    flows: Vec::new(),
                    descriptor,
                },
            );
        }
        Ok(())
    }

    /// Announces the socket the calling thread creates next, for the kernel to register as
    /// it creates it (see [`KernelTracer::announce`]); after creating it, pass the cookie
    /// [`Announcement::registered`] gives to [`Self::register`] with
    /// [`SocketEntry::StoredByKernel`]. `None`: register it with [`SocketEntry::ToStore`].
    pub(crate) fn announce(&self, calls: CallReports) -> Option<Announcement<'_>> {
        let flags = socket_flags_for(&lock(&self.hub.clients), self.id, calls);
        self.hub.tracer.announce(self.id, flags)
    }

    /// Captures the packets between `local` and `remote` as the socket's, when this client
    /// captures (UDP sockets once connected; aliases such as the NAT reply tuple). A flow
    /// that another attached client captures already is refused ([`KernelError::FlowTaken`]).
    pub(crate) fn register_flow(
        &self,
        cookie: SocketCookie,
        protocol: FlowProtocol,
        local: SocketAddr,
        remote: SocketAddr,
    ) -> Result<(), KernelError> {
        let mut clients = lock(&self.hub.clients);
        let others: Vec<ClientId> = clients
            .keys()
            .filter(|id| **id != self.id)
            .copied()
            .collect();
        let Some(entry) = clients.get_mut(&self.id) else {
            return Ok(());
        };
        let Some(keys) = entry
            .sockets
            .get_mut(&cookie)
            .filter(|_| entry.capture.is_some())
            .map(|socket| &mut socket.flows)
        else {
            return Ok(());
        };
        let directions = flow_directions(protocol, local, remote);
        // Registered before (a NAT alias comes again with every conntrack sample).
        if directions.iter().all(|(key, _)| keys.contains(key)) {
            return Ok(());
        }
        // Never take over the packets of another live client's socket.
        let taken = directions.iter().any(|(key, _)| {
            matches!(self.hub.tracer.flow(key), Ok(Some(flow))
                if flow.client_id != self.id.0
                    && others.contains(&ClientId(flow.client_id)))
        });
        if taken {
            return Err(KernelError::FlowTaken { local, remote });
        }
        for (key, direction) in directions {
            let flow = TracedFlow {
                cookie: cookie.0,
                client_id: self.id.0,
                direction,
            };
            self.hub.tracer.register_flow(key, flow)?;
            if !keys.contains(&key) {
                keys.push(key);
            }
        }
        Ok(())
    }

    /// Traces every TCP/UDP socket created in the cgroup at `path` from now on (the kernel
    /// registers them, with capture when this client captures). One cgroup per process.
    pub(crate) fn trace_cgroup(&self, path: &std::path::Path) -> Result<(), KernelError> {
        let mut clients = lock(&self.hub.clients);
        if clients.values().any(|entry| entry.cgroup.is_some()) {
            return Err(KernelError::CgroupBusy);
        }
        let capturing = clients
            .get(&self.id)
            .is_some_and(|entry| entry.capture.is_some());
        let flags = if capturing { socket_flags::CAPTURE } else { 0 };
        let links = self.hub.tracer.attach_cgroup(path, self.id, flags)?;
        match clients.get_mut(&self.id) {
            Some(entry) => entry.cgroup = Some(links),
            None => self.hub.tracer.detach_cgroup(links),
        }
        Ok(())
    }

    /// Stops tracing a socket that is closed (or about to be) and capturing its flows; a
    /// socket still open goes on reporting to this client until it closes.
    pub(crate) fn unregister(&self, cookie: SocketCookie) -> Result<(), KernelError> {
        self.unregister_many(std::slice::from_ref(&cookie))
    }

    /// [`Self::unregister`] of sockets that closed together (a drain's): each of the hub's
    /// locks taken once for them all.
    pub(crate) fn unregister_many(&self, cookies: &[SocketCookie]) -> Result<(), KernelError> {
        let mut flows: Vec<(SocketCookie, Vec<FlowKey>)> = Vec::new();
        if let Some(entry) = lock(&self.hub.clients).get_mut(&self.id) {
            for cookie in cookies {
                // Most sockets have no flow registered (their client does not capture).
                if let Some(socket) = entry.sockets.remove(cookie)
                    && !socket.flows.is_empty()
                {
                    flows.push((*cookie, socket.flows));
                }
            }
        }
        for (cookie, keys) in flows {
            self.hub.forget_flows(cookie, &keys);
        }
        self.hub.tracer.unregister_many(cookies)
    }

    /// Whether the programs reported a transition to CLOSE of the open TCP socket `socket`
    /// (registered as `cookie`) since it last connected
    /// ([`nettrace_common::socket_flags::CLOSED`]); `None` when its entry cannot be read or
    /// names another socket.
    pub(crate) fn close_reported(
        &self,
        socket: BorrowedFd<'_>,
        cookie: SocketCookie,
    ) -> Result<Option<bool>, KernelError> {
        let entry = self.hub.tracer.socket_entry(socket.as_raw_fd(), cookie)?;
        Ok(entry.map(|entry| entry.flags & socket_flags::CLOSED != 0))
    }

    /// Whether this client has `cookie` among its traced sockets.
    #[cfg(test)]
    pub(crate) fn traces(&self, cookie: SocketCookie) -> bool {
        lock(&self.hub.clients)
            .get(&self.id)
            .is_some_and(|entry| entry.sockets.contains_key(&cookie))
    }

    /// Attaches the capture programs to the interfaces of `options` (looked up in the calling
    /// thread's network namespace) and sets how this client captures. Returns the interfaces.
    pub(crate) fn start_capture(
        &self,
        options: &PacketCaptureOptions,
    ) -> Result<Vec<CaptureInterfaceInfo>, KernelError> {
        options.validate()?;
        let netns = current_netns().map_err(KernelError::Netns)?;
        let snaplen = options.snaplen;
        let found = options
            .interfaces
            .iter()
            .map(|name| {
                CaptureInterfaceInfo::lookup(name).map_err(|source| KernelError::Interface {
                    name: name.clone(),
                    source,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let flags = if options.tcp_headers_only {
            capture_flags::TCP_HEADERS_ONLY
        } else if options.tcp_without_payload {
            0
        } else {
            capture_flags::TCP_PAYLOAD
        };
        self.hub
            .tracer
            .set_capture_client(self.id, CaptureClient { snaplen, flags })?;
        let mut clients = lock(&self.hub.clients);
        let mut interfaces = lock(&self.hub.interfaces);
        let mut capture = ClientCapture {
            interfaces: Vec::new(),
            snaplen,
            icmp: options.include_icmp,
            arp: options.include_arp,
        };
        let mut result = Ok(());
        for info in &found {
            let key = InterfaceKey {
                netns,
                index: info.index,
            };
            if capture.interfaces.contains(&key) {
                continue;
            }
            if let Some(attached) = interfaces.get_mut(&key) {
                attached.users.push(self.id);
            } else {
                match self.hub.tracer.attach_capture(info) {
                    Ok(links) => {
                        interfaces.insert(
                            key,
                            AttachedInterface {
                                links,
                                link_kind: info.link_kind,
                                users: vec![self.id],
                            },
                        );
                    }
                    Err(error) => {
                        result = Err(error);
                        break;
                    }
                }
            }
            capture.interfaces.push(key);
        }
        if let Some(entry) = clients.get_mut(&self.id) {
            entry.capture = Some(capture);
        }
        for info in &found {
            if result.is_ok() {
                result = self
                    .hub
                    .update_interface_settings(info.index, &clients, &interfaces);
            }
        }
        drop((clients, interfaces));
        if let Err(error) = result {
            self.stop_capture();
            return Err(error);
        }
        Ok(found)
    }

    /// Detaches from this client's capture interfaces (the programs stay attached while
    /// another client captures there).
    fn stop_capture(&self) {
        let mut clients = lock(&self.hub.clients);
        let Some(capture) = clients
            .get_mut(&self.id)
            .and_then(|entry| entry.capture.take())
        else {
            return;
        };
        let mut interfaces = lock(&self.hub.interfaces);
        for key in &capture.interfaces {
            let Some(attached) = interfaces.get_mut(key) else {
                continue;
            };
            attached.users.retain(|id| *id != self.id);
            if attached.users.is_empty()
                && let Some(attached) = interfaces.remove(key)
            {
                self.hub.tracer.detach_capture(attached.links);
            }
            if let Err(error) = self
                .hub
                .update_interface_settings(key.index, &clients, &interfaces)
            {
                tracing::warn!(%error, "updating capture interface settings failed");
            }
        }
    }

    /// Packets of this client lost because the packet ring buffer was full.
    pub(crate) fn lost_packets(&self) -> Result<u64, KernelError> {
        self.hub.tracer.lost_packets(self.id)
    }

    /// Hands every pending kernel event to its client (this one included), and this client
    /// the call totals of its open sockets that count them in the kernel.
    pub(crate) fn drain(&self) {
        self.drain_with_totals(|_| true);
    }

    /// [`Self::drain`] with the totals of the sockets `cookies` only (those of one request).
    pub(crate) fn drain_sockets(&self, cookies: &[SocketCookie]) {
        self.drain_with_totals(|cookie| cookies.contains(cookie));
    }

    fn drain_with_totals(&self, wanted: impl Fn(&SocketCookie) -> bool) {
        // Read before the rings are drained: a socket its application closes in between has
        // its final totals in the ring by then (the record of its close), and the drain takes
        // them; read after, they could miss both.
        let entries = self.read_entries(wanted);
        self.hub.drain();
        if let Some((sink, events)) = entries {
            let (events, records): (Vec<KernelEvent>, Vec<Bytes>) = events.into_iter().unzip();
            sink.kernel_events(&mut events.into_iter().zip(records.iter().map(|r| &r[..])));
        }
    }

    /// What the entries of this client's open sockets that count their calls in the kernel
    /// ([`CallReports::Totals`]) and that `wanted` hold (the call totals, held transitions and
    /// handshake counters, which the kernel sends only with the socket's next record), with
    /// the sink they go to.
    fn read_entries(
        &self,
        wanted: impl Fn(&SocketCookie) -> bool,
    ) -> Option<(Arc<dyn KernelSink>, EventBatch)> {
        let (sink, sockets) = {
            let clients = lock(&self.hub.clients);
            let entry = clients.get(&self.id)?;
            let sockets: Vec<(SocketCookie, RawFd)> = entry
                .sockets
                .iter()
                .filter(|(cookie, _)| wanted(cookie))
                .filter_map(|(cookie, socket)| Some((*cookie, socket.descriptor?)))
                .collect();
            (entry.sink.upgrade()?, sockets)
        };
        let time = KernelTime::now();
        let mut closed = Vec::new();
        let events: EventBatch = sockets
            .into_iter()
            .filter_map(|(cookie, descriptor)| {
                let entry = match self.hub.tracer.socket_entry(descriptor, cookie) {
                    Ok(None) => {
                        // The number names no longer that socket (the application closed
                        // it): the record of its close has the totals.
                        closed.push((cookie, descriptor));
                        None
                    }
                    Ok(entry) => entry,
                    Err(error) => {
                        tracing::debug!(%error, %cookie, "reading a socket's entry failed");
                        None
                    }
                };
                entry.map(|entry| SockCallsRecord::from_entry(cookie, self.id, time, &entry))
            })
            .map(|totals| (KernelEvent::SockCalls(Box::new(totals)), totals.to_record()))
            .collect();
        if !closed.is_empty()
            && let Some(entry) = lock(&self.hub.clients).get_mut(&self.id)
        {
            for (cookie, descriptor) in closed {
                if let Some(socket) = entry.sockets.get_mut(&cookie)
                    && socket.descriptor == Some(descriptor)
                {
                    socket.descriptor = None;
                }
            }
        }
        (!events.is_empty()).then_some((sink, events))
    }

    /// Events of this client lost because the ring buffer was full.
    pub(crate) fn lost_events(&self) -> Result<u64, KernelError> {
        self.hub.tracer.lost_events(self.id)
    }
}

impl Drop for KernelClient {
    fn drop(&mut self) {
        self.stop_capture();
        let mut entry = lock(&self.hub.clients).remove(&self.id);
        if let Some(links) = entry.as_mut().and_then(|e| e.cgroup.take()) {
            self.hub.tracer.detach_cgroup(links);
        }
        let sockets = entry.map(|e| e.sockets).unwrap_or_default();
        let mut cookies = Vec::with_capacity(sockets.len());
        for (cookie, socket) in sockets {
            self.hub.forget_flows(cookie, &socket.flows);
            cookies.push(cookie);
        }
        // Sockets still open keep their entries until they close: a new generation of the
        // slot silences them (and keeps them from any later client of the slot).
        if let Err(error) = self.hub.tracer.renew_client(self.id) {
            tracing::warn!(%error, "silencing a departed client's open sockets failed");
        }
        if let Err(error) = self.hub.tracer.unregister_many(&cookies) {
            tracing::debug!(%error, "releasing a client's sockets failed");
        }
    }
}

impl KernelHub {
    /// The process's hub for test `test`, or `None` (said loudly) without the privileges to
    /// load the programs.
    #[cfg(test)]
    pub(crate) fn shared_or_skip(test: &str) -> Option<Arc<Self>> {
        match Self::shared(&KernelConfig::default()) {
            Ok(hub) => Some(hub),
            Err(error @ KernelError::NotPermitted(_)) => {
                crate::test_support::skipped(test, error);
                None
            }
            Err(error) => panic!("loading the programs: {error}"),
        }
    }

    /// Removes the flow entries of `cookie`, unless a newer socket with the same addresses
    /// has taken them over since.
    fn forget_flows(&self, cookie: SocketCookie, keys: &[FlowKey]) {
        for key in keys {
            let owned = matches!(self.tracer.flow(key), Ok(Some(flow)) if flow.cookie == cookie.0);
            if owned && let Err(error) = self.tracer.unregister_flow(key) {
                tracing::debug!(%error, %cookie, "removing a flow entry failed");
            }
        }
    }
}

/// Inode of the calling thread's network namespace (what tells namesake interfaces apart).
fn current_netns() -> std::io::Result<u64> {
    use std::os::unix::fs::MetadataExt;
    Ok(std::fs::metadata("/proc/thread-self/ns/net")?.ino())
}

#[cfg(test)]
mod tests {
    use std::os::fd::AsFd as _;
    use std::sync::mpsc::{SyncSender, sync_channel};
    use std::time::Duration;

    use super::*;

    /// Says when it is ticked.
    struct Ticked(Mutex<SyncSender<()>>);

    impl KernelSink for Ticked {
        fn kernel_event(&self, _event: KernelEvent, _record: &[u8]) {}

        fn tick(&self) {
            let _ = lock(&self.0).try_send(());
        }
    }

    /// Takes no events.
    struct Deaf;

    impl KernelSink for Deaf {
        fn kernel_event(&self, _event: KernelEvent, _record: &[u8]) {}
    }

    fn tcp_socket() -> socket2::Socket {
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)
            .expect("a TCP socket")
    }

    #[test]
    fn an_announced_socket_is_registered_as_the_kernel_creates_it() {
        let Some(hub) =
            KernelHub::shared_or_skip("an_announced_socket_is_registered_as_the_kernel_creates_it")
        else {
            return;
        };
        let sink: Arc<dyn KernelSink> = Arc::new(Deaf);
        let client = hub.attach(Arc::downgrade(&sink)).expect("a client slot");
        let Some(announcement) = client.announce(CallReports::Totals) else {
            // Only where this process's thread ids are the kernel's (a container has a PID
            // namespace of its own); CI runs in the initial one.
            assert!(
                !super::super::announce::Announcements::possible(),
                "announcing is possible here, yet the thread's slot was taken"
            );
            crate::test_support::skipped(
                "an_announced_socket_is_registered_as_the_kernel_creates_it",
                "not in the initial PID namespace",
            );
            return;
        };
        // The same thread cannot announce twice at once: its slot is taken.
        assert!(client.announce(CallReports::Totals).is_none());
        // Another thread's socket, created meanwhile, is not the announced one.
        let other = std::thread::spawn(tcp_socket)
            .join()
            .expect("the other thread");
        let socket = tcp_socket();
        let cookie = announcement.registered().expect("the kernel registered it");
        let fd = std::os::fd::AsFd::as_fd(&socket);
        assert_eq!(
            SocketCookie(cookie),
            SocketCookie::of(&socket).expect("cookie")
        );
        assert!(hub.tracer.is_registered(fd).expect("lookup"));
        assert!(!hub.tracer.is_registered(other.as_fd()).expect("lookup"));
        client
            .register(
                fd,
                SocketCookie(cookie),
                CallReports::Totals,
                SocketEntry::StoredByKernel,
            )
            .expect("adopted");
        assert!(hub.tracer.is_armed());
        // The entry the program stored carries the socket's cookie (read through the
        // descriptor, as the hub reads call totals).
        assert!(
            hub.tracer
                .socket_entry(fd.as_raw_fd(), SocketCookie(cookie))
                .expect("lookup")
                .is_some()
        );
        // Once the announcement is gone, the thread's next socket is not registered, and its
        // slot is free again.
        let unannounced = tcp_socket();
        assert!(
            !hub.tracer
                .is_registered(unannounced.as_fd())
                .expect("lookup")
        );
        assert!(client.announce(CallReports::EachCall).is_some());
        client
            .unregister(SocketCookie(cookie))
            .expect("unregistered");
    }

    #[test]
    fn the_hubs_tick_reaches_its_clients() {
        let Some(hub) = KernelHub::shared_or_skip("the_hubs_tick_reaches_its_clients") else {
            return;
        };
        let (ticked, ticks) = sync_channel(1);
        let sink: Arc<dyn KernelSink> = Arc::new(Ticked(Mutex::new(ticked)));
        let _client = hub.attach(Arc::downgrade(&sink)).expect("a client slot");
        // The tick comes every 20 ms; a generous bound for a loaded machine.
        ticks
            .recv_timeout(Duration::from_secs(5))
            .expect("the hub's tick reached the client");
    }

    #[test]
    fn the_entry_tells_whether_a_failed_connect_reported_its_close() {
        let Some(hub) = KernelHub::shared_or_skip(
            "the_entry_tells_whether_a_failed_connect_reported_its_close",
        ) else {
            return;
        };
        let sink: Arc<dyn KernelSink> = Arc::new(Deaf);
        let client = hub.attach(Arc::downgrade(&sink)).expect("a client slot");
        let registered = || {
            let socket = tcp_socket();
            let cookie = SocketCookie::of(&socket).expect("cookie");
            client
                .register(
                    socket.as_fd(),
                    cookie,
                    CallReports::Totals,
                    SocketEntry::ToStore,
                )
                .expect("registered");
            (socket, cookie)
        };
        let reported = |socket: &socket2::Socket, cookie| {
            client
                .close_reported(socket.as_fd(), cookie)
                .expect("lookup")
        };
        // TCP refuses a multicast peer before the SYN-SENT state (no packet leaves): the
        // socket never left CLOSE, and no program reported a CLOSE.
        let (unconnected, unconnected_cookie) = registered();
        let multicast: SocketAddr = "224.0.0.1:80".parse().expect("an address");
        let error = unconnected
            .connect(&multicast.into())
            .expect_err("TCP to a multicast address");
        assert_eq!(error.raw_os_error(), Some(libc::ENETUNREACH), "{error}");
        assert_eq!(reported(&unconnected, unconnected_cookie), Some(false));
        // A refused connection went SYN-SENT -> CLOSE, which was reported.
        let closed_port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free port");
        let (refused, refused_cookie) = registered();
        let error = refused
            .connect(&closed_port.into())
            .expect_err("nothing listens there");
        assert_eq!(error.raw_os_error(), Some(libc::ECONNREFUSED), "{error}");
        assert_eq!(reported(&refused, refused_cookie), Some(true));
        // A connect that fails after SYN-SENT but before the connect callback (which turns
        // the state callbacks on): the state tracepoint reports the CLOSE, and marks it.
        // Two sockets bound to one port with SO_REUSEADDR: the second cannot connect to the
        // peer the first is connected to (EADDRNOTAVAIL, from the kernel's hashing of the
        // connection, after SYN-SENT was set).
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a listener");
        let server = listener.local_addr().expect("its address");
        let shared_port = |socket: &socket2::Socket| {
            socket.set_reuse_address(true).expect("SO_REUSEADDR");
        };
        let first = tcp_socket();
        shared_port(&first);
        first
            .bind(
                &"127.0.0.1:0"
                    .parse::<SocketAddr>()
                    .expect("an address")
                    .into(),
            )
            .expect("bound");
        let local = first.local_addr().expect("bound address");
        first.connect(&server.into()).expect("connected");
        let (second, second_cookie) = registered();
        shared_port(&second);
        second.bind(&local).expect("bound to the same port");
        let error = second
            .connect(&server.into())
            .expect_err("the connection exists already");
        assert_eq!(error.raw_os_error(), Some(libc::EADDRNOTAVAIL), "{error}");
        assert_eq!(reported(&second, second_cookie), Some(true));
        // Another socket's cookie names no entry of this descriptor.
        assert_eq!(reported(&refused, unconnected_cookie), None);
        for cookie in [unconnected_cookie, refused_cookie, second_cookie] {
            client.unregister(cookie).expect("unregistered");
        }
    }
}
