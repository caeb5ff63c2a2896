//! [`KernelTracer`]: loads the embedded object, attaches its programs and owns the maps through
//! which userspace says which sockets to trace.
use crate::sync::lock;
use std::{
    error::Error as _,
    fs::File,
    io,
    os::fd::{AsRawFd, BorrowedFd, RawFd},
    sync::{Mutex, OnceLock},
};

use aya::{
    Btf, Ebpf, EbpfLoader,
    maps::{Array, HashMap, MapData, PerCpuArray, SkStorage},
    programs::{
        BtfTracePoint, CgroupAttachMode, SchedClassifier, SockOps, TcAttachType,
        tc::SchedClassifierLinkId,
    },
};
use nettrace_common::{
    CaptureClient, CaptureInterface, FlowKey, TracedFlow, TracedSocket, limits, map_name,
    program_name,
};

use super::{
    CaptureInterfaceInfo, KernelError, KernelEvents,
    announce::{Announcement, Announcements},
    armed::{Armed, Hold},
    cgroup,
    flow_epoch::FlowEpochs,
    lanes::{self as lane_kinds, LaneKind, Lanes},
    object::EBPF_OBJECT,
};
use crate::{
    SocketCookie,
    capture::LinkKind,
    event::{ClientId, Direction},
};

/// How often a program ran and how long it took in all (kernel run statistics).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProgramStats {
    /// The program's name.
    pub name: String,
    /// Runs counted.
    pub run_count: u64,
    /// Time spent in those runs.
    pub run_time: std::time::Duration,
}

/// Turns on the kernel's run statistics of eBPF programs for as long as the returned
/// descriptor is open (`BPF_ENABLE_STATS`; the system setting is not touched).
pub fn enable_run_stats() -> Result<std::os::fd::OwnedFd, KernelError> {
    aya::sys::enable_stats(aya::sys::Stats::RunTime).map_err(|e| KernelError::Stats(e.io_error))
}

/// How to load the programs.
#[derive(Clone, Debug)]
pub struct KernelConfig {
    /// Size of the event ring buffer in bytes: a power of two and a multiple of the page size.
    pub ring_bytes: u32,
    /// Size of the packet ring buffer in bytes (same rules).
    pub packet_ring_bytes: u32,
    /// Whether the programs write their records to per-CPU lanes first (the default), which
    /// cost less than ring buffer records; false sends every record through the rings, e.g.
    /// to see what full rings do without filling the lanes first.
    pub lanes: bool,
}

impl Default for KernelConfig {
    fn default() -> Self {
        Self {
            ring_bytes: limits::DEFAULT_RING_BYTES,
            packet_ring_bytes: limits::DEFAULT_PACKET_RING_BYTES,
            lanes: true,
        }
    }
}

/// The TC links of one capture interface (ingress and egress, or egress only on loopback).
#[derive(Debug)]
pub struct CaptureLinks {
    links: Vec<(&'static str, SchedClassifierLinkId)>,
}

/// The loaded and attached eBPF programs, and the maps to control them.
///
/// Dropping it detaches the programs (their links are file descriptors owned here).
pub struct KernelTracer {
    /// Owns the programs and their links; kept alive for as long as tracing runs.
    pub(super) ebpf: Mutex<Ebpf>,
    /// The one entry telling the cgroup programs how to register new sockets.
    pub(super) cgroup_trace: Mutex<Array<MapData, TracedSocket>>,
    attachments: Vec<String>,
    /// Each traced socket's entry, stored in the socket (freed by the kernel with it).
    traced: Mutex<SkStorage<MapData, TracedSocket>>,
    /// Each client slot's generation, in the kernel and as last written.
    generations: Mutex<(Array<MapData, u32>, Vec<u32>)>,
    lost: Mutex<PerCpuArray<MapData, u64>>,
    capture: Mutex<CaptureMaps>,
    /// Taken before any other lock of a registration, so that the flag changes in order.
    pub(super) armed: Mutex<Armed>,
    /// Where threads announce the sockets they create, for the kernel to register them: set
    /// up at the first announcement (only a library's hub makes any), `None` where it cannot
    /// be (see [`Announcements::possible`]).
    announcements: OnceLock<Option<Announcements>>,
}

/// The maps that steer packet capture, and the classifier programs.
struct CaptureMaps {
    flows: HashMap<MapData, FlowKey, TracedFlow>,
    /// Moved on after every change of `flows` but an insertion of a new key.
    epochs: FlowEpochs,
    clients: Array<MapData, CaptureClient>,
    interfaces: HashMap<MapData, u32, CaptureInterface>,
    lost: PerCpuArray<MapData, u64>,
}

impl KernelTracer {
    /// Loads the programs, attaches them (the sock_ops program to the cgroup v2 root, the
    /// state tracepoint globally) and returns the tracer with the stream of its events.
    ///
    /// Must be called inside a tokio runtime (the event stream registers with its reactor).
    pub fn load(config: &KernelConfig) -> Result<(Self, KernelEvents), KernelError> {
        Self::load_with_packets(config).map(|(tracer, events, _)| (tracer, events))
    }

    /// [`Self::load`], also returning the reader of the packet ring buffer (captured
    /// packets, see [`Self::attach_capture`]).
    pub fn load_with_packets(
        config: &KernelConfig,
    ) -> Result<(Self, KernelEvents, KernelEvents), KernelError> {
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(KernelError::NoRuntime);
        }
        // Counted once: the maps and their readers must agree. Closed lanes need no room.
        let lanes = if config.lanes { Lanes::count()? } else { 1 };
        let mut ebpf = EbpfLoader::new()
            .map_max_entries(map_name::EVENTS, config.ring_bytes)
            .map_max_entries(map_name::PACKETS, config.packet_ring_bytes)
            .map_max_entries(map_name::EVENT_LANES, lanes)
            .map_max_entries(map_name::PACKET_LANES, lanes)
            .load(EBPF_OBJECT)
            .map_err(|e| {
                if is_permission_error(&e) {
                    KernelError::NotPermitted(Box::new(e))
                } else {
                    KernelError::Load(Box::new(e))
                }
            })?;
        let btf = Btf::from_sys_fs().map_err(|e| KernelError::Btf(Box::new(e)))?;
        let mut attachments = Vec::new();
        for (name, tracepoint) in [
            (program_name::INET_SOCK_SET_STATE, "inet_sock_set_state"),
            (program_name::SOCK_SEND_LENGTH, "sock_send_length"),
            (program_name::SOCK_RECV_LENGTH, "sock_recv_length"),
            (program_name::TCP_SEND_RESET, "tcp_send_reset"),
            (program_name::TCP_RECEIVE_RESET, "tcp_receive_reset"),
        ] {
            attachments.push(attach_btf_tracepoint(&mut ebpf, &btf, name, tracepoint)?);
        }
        attachments.push(attach_sock_ops(&mut ebpf)?);
        for name in CLASSIFIERS {
            classifier(&mut ebpf, name, "load")?
                .load()
                .map_err(program_error(name, "load"))?;
        }
        let capture = CaptureMaps {
            flows: HashMap::try_from(take_map(&mut ebpf, map_name::TRACED_FLOWS)?)
                .map_err(map_error(map_name::TRACED_FLOWS, "open"))?,
            epochs: FlowEpochs::map(take_map(&mut ebpf, map_name::FLOW_EPOCH)?)?,
            clients: Array::try_from(take_map(&mut ebpf, map_name::CAPTURE_CLIENTS)?)
                .map_err(map_error(map_name::CAPTURE_CLIENTS, "open"))?,
            interfaces: HashMap::try_from(take_map(&mut ebpf, map_name::CAPTURE_INTERFACES)?)
                .map_err(map_error(map_name::CAPTURE_INTERFACES, "open"))?,
            lost: PerCpuArray::try_from(take_map(&mut ebpf, map_name::LOST_PACKETS)?)
                .map_err(map_error(map_name::LOST_PACKETS, "open"))?,
        };
        let packets = ring_reader(
            &mut ebpf,
            map_name::PACKETS,
            &lane_kinds::PACKETS,
            lanes,
            config,
        )?;
        let traced = SkStorage::try_from(take_map(&mut ebpf, map_name::TRACED_SOCKETS)?)
            .map_err(map_error(map_name::TRACED_SOCKETS, "open"))?;
        let generations = Array::try_from(take_map(&mut ebpf, map_name::CLIENT_GENERATIONS)?)
            .map_err(map_error(map_name::CLIENT_GENERATIONS, "open"))?;
        let lost = PerCpuArray::try_from(take_map(&mut ebpf, map_name::LOST_EVENTS)?)
            .map_err(map_error(map_name::LOST_EVENTS, "open"))?;
        let events = ring_reader(
            &mut ebpf,
            map_name::EVENTS,
            &lane_kinds::EVENTS,
            lanes,
            config,
        )?;
        let cgroup_trace = Array::try_from(take_map(&mut ebpf, map_name::CGROUP_TRACE)?)
            .map_err(map_error(map_name::CGROUP_TRACE, "open"))?;
        let armed = Armed::new(
            Array::try_from(take_map(&mut ebpf, map_name::ARMED)?)
                .map_err(map_error(map_name::ARMED, "open"))?,
            Array::try_from(take_map(&mut ebpf, map_name::FLOW_PORTS)?)
                .map_err(map_error(map_name::FLOW_PORTS, "open"))?,
        );
        super::cgroup_programs::load(&mut ebpf)?;
        let tracer = Self {
            ebpf: Mutex::new(ebpf),
            cgroup_trace: Mutex::new(cgroup_trace),
            attachments,
            traced: Mutex::new(traced),
            generations: Mutex::new((generations, vec![0; limits::MAX_CLIENTS as usize])),
            lost: Mutex::new(lost),
            capture: Mutex::new(capture),
            armed: Mutex::new(armed),
            announcements: OnceLock::new(),
        };
        Ok((tracer, events, packets))
    }

    /// Starts tracing `socket` on behalf of `client`; returns its cookie, which names it in
    /// its events. Call it before `connect()` so that the whole handshake is seen.
    pub fn register(
        &self,
        socket: BorrowedFd<'_>,
        client: ClientId,
    ) -> Result<SocketCookie, KernelError> {
        self.register_with_flags(socket, client, 0)
    }

    /// [`Self::register`] with [`nettrace_common::socket_flags`] bits (e.g. capture the
    /// socket's packets).
    pub fn register_with_flags(
        &self,
        socket: BorrowedFd<'_>,
        client: ClientId,
        flags: u32,
    ) -> Result<SocketCookie, KernelError> {
        let cookie = SocketCookie::of(&socket).map_err(KernelError::Cookie)?;
        self.register_as(socket, cookie, client, flags)?;
        Ok(cookie)
    }

    /// [`Self::register_with_flags`] of a socket whose cookie the caller has read already
    /// ([`SocketCookie::of`]): the programs name the socket in its records by the cookie
    /// stored in its entry, so another one would mislabel them.
    pub(crate) fn register_as(
        &self,
        socket: BorrowedFd<'_>,
        cookie: SocketCookie,
        client: ClientId,
        flags: u32,
    ) -> Result<(), KernelError> {
        let value = TracedSocket {
            client_id: client.0,
            flags,
            generation: self.generation(client),
            cookie: cookie.0,
            ..TracedSocket::default()
        };
        let mut armed = lock(&self.armed);
        let hold = Hold::Socket(cookie.0);
        armed.hold(hold)?;
        let inserted = store_entry(&mut lock(&self.traced), socket.as_raw_fd(), value)
            .map_err(map_error(map_name::TRACED_SOCKETS, "insert"));
        if inserted.is_err() {
            armed.release(&hold)?;
        }
        inserted
    }

    /// Announces the socket the calling thread creates next, for the kernel to register as
    /// it creates it, on behalf of `client` with `flags` (see [`Self::register_with_flags`]).
    /// After creating the socket, [`Announcement::registered`] gives its cookie when the kernel
    /// did register it; then call [`Self::adopt`]. `None`: register it the ordinary way.
    pub(crate) fn announce(&self, client: ClientId, flags: u32) -> Option<Announcement<'_>> {
        let announcements = self
            .announcements
            .get_or_init(|| match self.start_announcements() {
                Ok(announcements) => announcements,
                Err(error) => {
                    tracing::warn!(%error, "sockets are registered one call each");
                    None
                }
            })
            .as_ref()?;
        announcements.announce(TracedSocket {
            client_id: client.0,
            flags,
            generation: self.generation(client),
            ..TracedSocket::default()
        })
    }

    /// Maps the announcement slots and attaches the program that reads them, where
    /// announcing can work.
    fn start_announcements(&self) -> Result<Option<Announcements>, KernelError> {
        if !Announcements::possible() {
            return Ok(None);
        }
        let mut ebpf = lock(&self.ebpf);
        let announcements = Announcements::map(take_map(&mut ebpf, map_name::ANNOUNCED_SOCKETS)?)?;
        super::cgroup_programs::attach_announced(&mut ebpf)?;
        Ok(Some(announcements))
    }

    /// Keeps the programs armed for a socket the kernel registered from an announcement, as
    /// [`Self::register_with_flags`] does for the sockets it registers.
    pub(crate) fn adopt(&self, cookie: SocketCookie) -> Result<(), KernelError> {
        lock(&self.armed).hold(Hold::Socket(cookie.0))
    }

    /// Stops tracing a socket the application has closed (or is about to close): its entry
    /// goes with the socket, so only what keeps the programs armed is released here (an open
    /// socket keeps producing events while anything keeps them armed: see
    /// [`Self::unregister_open`]). Unregistering a socket that is not registered is not an
    /// error.
    pub fn unregister(&self, cookie: SocketCookie) -> Result<(), KernelError> {
        lock(&self.armed).release(&Hold::Socket(cookie.0))
    }

    /// Stops tracing a socket that stays open: its entry is removed from the socket.
    pub fn unregister_open(
        &self,
        socket: BorrowedFd<'_>,
        cookie: SocketCookie,
    ) -> Result<(), KernelError> {
        let mut armed = lock(&self.armed);
        match lock(&self.traced).remove(&socket.as_raw_fd()) {
            Ok(()) => {}
            Err(e) if is_not_found(&e) => {}
            Err(e) => return Err(map_error(map_name::TRACED_SOCKETS, "remove")(e)),
        }
        armed.release(&Hold::Socket(cookie.0))
    }

    /// Hands `client`'s slot to a new owner (or marks its owner gone): every socket entry
    /// stored for the slot so far stops producing events, also in sockets still open.
    pub fn renew_client(&self, client: ClientId) -> Result<(), KernelError> {
        let mut generations = lock(&self.generations);
        let (map, current) = &mut *generations;
        let Some(slot) = current.get_mut(client.0 as usize) else {
            return Err(KernelError::NoClientSlot);
        };
        let next = slot.wrapping_add(1);
        map.set(client.0, next, 0)
            .map_err(map_error(map_name::CLIENT_GENERATIONS, "set"))?;
        *slot = next;
        Ok(())
    }

    /// The generation entries of `client` are stored with.
    pub(super) fn generation(&self, client: ClientId) -> u32 {
        lock(&self.generations)
            .1
            .get(client.0 as usize)
            .copied()
            .unwrap_or(0)
    }

    /// [`Self::unregister`] for many closed sockets at once.
    pub fn unregister_many(&self, cookies: &[SocketCookie]) -> Result<(), KernelError> {
        lock(&self.armed).release_sockets(cookies)
    }

    /// Keeps the programs armed for `delay` after the last registration left (`None`, the
    /// default: disarmed at once). Saves two flag writes per connection for a client that
    /// opens one connection after another; [`Self::disarm_if_idle`] ends the delay.
    pub fn set_disarm_delay(&self, delay: Option<std::time::Duration>) -> Result<(), KernelError> {
        lock(&self.armed).set_disarm_delay(delay)
    }

    /// Disarms the programs when nothing has been registered for the disarm delay.
    pub fn disarm_if_idle(&self) -> Result<(), KernelError> {
        lock(&self.armed).disarm_if_idle(std::time::Instant::now())
    }

    /// Whether the programs are armed: true while anything (a socket, a flow, a cgroup, an
    /// ICMP or ARP capture) is registered, and for the disarm delay after (see
    /// [`Self::set_disarm_delay`]). While false, they return after one array load.
    pub fn is_armed(&self) -> bool {
        lock(&self.armed).is_set()
    }

    /// Whether `socket` is traced: it holds an entry (it keeps it until it is destroyed, or
    /// until [`Self::unregister_open`]).
    pub fn is_registered(&self, socket: BorrowedFd<'_>) -> Result<bool, KernelError> {
        match lock(&self.traced).get(&socket.as_raw_fd(), 0) {
            Ok(_) => Ok(true),
            Err(e) if is_not_found(&e) => Ok(false),
            Err(e) => Err(map_error(map_name::TRACED_SOCKETS, "lookup")(e)),
        }
    }

    /// The entry the kernel keeps for the socket behind `descriptor` if it is still the
    /// registered socket `cookie`: its call totals (see
    /// [`nettrace_common::socket_flags::FOLD_CALLS`]), the transitions it holds and the
    /// counters of its handshake; `None` when the descriptor is closed, or now names another
    /// socket or none.
    pub fn socket_entry(
        &self,
        descriptor: RawFd,
        cookie: SocketCookie,
    ) -> Result<Option<TracedSocket>, KernelError> {
        match lock(&self.traced).get(&descriptor, 0) {
            Ok(entry) => Ok((entry.cookie == cookie.0).then_some(entry)),
            Err(e) if is_not_found(&e) || is_stale_descriptor(&e) => Ok(None),
            Err(e) => Err(map_error(map_name::TRACED_SOCKETS, "lookup")(e)),
        }
    }

    /// One line per attached program: its name and where it is attached.
    pub fn attachments(&self) -> &[String] {
        &self.attachments
    }

    /// Run statistics of every program (`run_count`, `run_time`), counted by the kernel while
    /// statistics are on (see [`enable_run_stats`]); zero otherwise.
    pub fn program_stats(&self) -> Result<Vec<ProgramStats>, KernelError> {
        lock(&self.ebpf)
            .programs()
            .map(|(name, program)| {
                let info = program
                    .info()
                    .map_err(program_error("statistics", "read"))?;
                Ok(ProgramStats {
                    name: name.to_owned(),
                    run_count: info.run_count(),
                    run_time: info.run_time(),
                })
            })
            .collect()
    }

    /// Events of `client` lost so far because the ring buffer was full (all CPUs).
    pub fn lost_events(&self, client: ClientId) -> Result<u64, KernelError> {
        let per_cpu = lock(&self.lost)
            .get(&client.0, 0)
            .map_err(map_error(map_name::LOST_EVENTS, "read"))?;
        Ok(per_cpu.iter().sum())
    }

    /// Sets the lost-event counter of `client` back to zero (
    /// and its lost-packet counter, for the next user of the slot).
    pub fn reset_lost_events(&self, client: ClientId) -> Result<(), KernelError> {
        let zeros = || -> Result<_, KernelError> {
            let cpus = aya::util::nr_cpus().map_err(|(_, e)| KernelError::Cpus(e))?;
            aya::maps::PerCpuValues::try_from(vec![0u64; cpus]).map_err(KernelError::Cpus)
        };
        lock(&self.lost)
            .set(client.0, zeros()?, 0)
            .map_err(map_error(map_name::LOST_EVENTS, "reset"))?;
        lock(&self.capture)
            .lost
            .set(client.0, zeros()?, 0)
            .map_err(map_error(map_name::LOST_PACKETS, "reset"))
    }

    /// Attaches the capture classifiers to `interface` (in the calling thread's network
    /// namespace): tcx links where the kernel has them, a clsact qdisc otherwise.
    pub fn attach_capture(
        &self,
        interface: &CaptureInterfaceInfo,
    ) -> Result<CaptureLinks, KernelError> {
        let (ingress, egress) = match interface.link_kind {
            LinkKind::Ethernet => (
                program_name::TC_ETHERNET_INGRESS,
                program_name::TC_ETHERNET_EGRESS,
            ),
            LinkKind::RawIp => (
                program_name::TC_RAW_IP_INGRESS,
                program_name::TC_RAW_IP_EGRESS,
            ),
        };
        let mut hooks = vec![(egress, TcAttachType::Egress)];
        if !interface.loopback {
            hooks.push((ingress, TcAttachType::Ingress));
        }
        let mut ebpf = lock(&self.ebpf);
        if !has_tcx() {
            // Older kernels attach through netlink, under a clsact qdisc (which may exist).
            let _ = aya::programs::tc::qdisc_add_clsact(&interface.name);
        }
        let mut links = CaptureLinks { links: Vec::new() };
        for (name, hook) in hooks {
            let attached = classifier(&mut ebpf, name, "attach").and_then(|p| {
                p.attach(&interface.name, hook)
                    .map_err(program_error(name, "attach"))
            });
            match attached {
                Ok(id) => links.links.push((name, id)),
                Err(error) => {
                    detach_all(&mut ebpf, links);
                    return Err(error);
                }
            }
        }
        Ok(links)
    }

    /// Runs the Ethernet capture classifier of hook `hook` (egress for [`Direction::Sent`],
    /// ingress for [`Direction::Received`]) on `frame`, `repeat` times (0 counts as 1), in
    /// the kernel (`BPF_PROG_TEST_RUN`), as if the frame had passed the loopback interface.
    /// Attached or not, the program treats it as a real packet: a frame of a registered flow
    /// is copied for that flow's client (lanes, ring, lost counters), so run it where the
    /// clients expect such frames (tests, benchmarks). Returns the mean time of a run as the
    /// kernel measured it, in whole nanoseconds.
    ///
    /// The kernel takes frames from 14 bytes up to a page less its head- and tailroom (about
    /// 3.5 KiB), and gives them no socket and no departure time (so an egress run reads the
    /// clock). The programs' lock is held for all the runs: attaching and detaching wait.
    /// For checking what the program makes of a crafted frame, and for measuring its cost
    /// without traffic's noise.
    pub fn run_capture_program(
        &self,
        hook: Direction,
        frame: &[u8],
        repeat: u32,
    ) -> Result<std::time::Duration, KernelError> {
        use aya::programs::{TestRun, TestRunOptions};
        const STEP: &str = "test run";
        let name = match hook {
            Direction::Sent => program_name::TC_ETHERNET_EGRESS,
            Direction::Received => program_name::TC_ETHERNET_INGRESS,
        };
        let mut ebpf = lock(&self.ebpf);
        let program = classifier(&mut ebpf, name, STEP)?;
        let options = TestRunOptions {
            data_in: Some(frame),
            repeat,
            ..TestRunOptions::new()
        };
        let result = program
            .test_run(options)
            .map_err(program_error(name, STEP))?;
        Ok(result.duration)
    }

    /// Detaches what [`Self::attach_capture`] attached.
    pub fn detach_capture(&self, links: CaptureLinks) {
        detach_all(&mut lock(&self.ebpf), links);
    }

    /// Sets how `client` captures (its snap length and whether TCP payload is kept).
    pub fn set_capture_client(
        &self,
        client: ClientId,
        settings: CaptureClient,
    ) -> Result<(), KernelError> {
        lock(&self.capture)
            .clients
            .set(client.0, settings, 0)
            .map_err(map_error(map_name::CAPTURE_CLIENTS, "set"))
    }

    /// Sets what is captured on interface `index` besides traced flows; all zeros removes it.
    pub fn set_capture_interface(
        &self,
        index: u32,
        settings: CaptureInterface,
    ) -> Result<(), KernelError> {
        let mut armed = lock(&self.armed);
        let mut capture = lock(&self.capture);
        let hold = Hold::Interface(index);
        if settings == CaptureInterface::default() {
            return match capture.interfaces.remove(&index) {
                Err(e) if !is_not_found(&e) => {
                    Err(map_error(map_name::CAPTURE_INTERFACES, "remove")(e))
                }
                _ => armed.release(&hold),
            };
        }
        armed.hold(hold)?;
        let inserted = capture
            .interfaces
            .insert(index, settings, 0)
            .map_err(map_error(map_name::CAPTURE_INTERFACES, "insert"));
        if inserted.is_err() {
            armed.release(&hold)?;
        }
        inserted
    }

    /// Captures the packets of one flow direction for the socket `flow.cookie`.
    pub fn register_flow(&self, key: FlowKey, flow: TracedFlow) -> Result<(), KernelError> {
        let mut armed = lock(&self.armed);
        let hold = Hold::Flow(key);
        armed.hold(hold)?;
        let inserted = armed.mark_port_pair(&key).and_then(|()| {
            let mut capture = lock(&self.capture);
            if capture.flows.insert(key, flow, BPF_NOEXIST).is_ok() {
                return Ok(());
            }
            // Replaces an entry, which the programs may have cached.
            let replaced = capture
                .flows
                .insert(key, flow, BPF_ANY)
                .map_err(map_error(map_name::TRACED_FLOWS, "insert"));
            if replaced.is_ok() {
                capture.epochs.advance(&key);
            }
            replaced
        });
        if inserted.is_err() {
            armed.release(&hold)?;
        }
        inserted
    }

    /// Stops capturing one flow direction; a missing entry is not an error.
    pub fn unregister_flow(&self, key: &FlowKey) -> Result<(), KernelError> {
        let mut armed = lock(&self.armed);
        let mut capture = lock(&self.capture);
        let removed = capture.flows.remove(key);
        // After the removal: no program uses a cached copy from now on.
        capture.epochs.advance(key);
        drop(capture);
        match removed {
            Err(e) if !is_not_found(&e) => Err(map_error(map_name::TRACED_FLOWS, "remove")(e)),
            _ => armed.release(&Hold::Flow(*key)),
        }
    }

    /// The flow direction registered under `key`, if any.
    pub fn flow(&self, key: &FlowKey) -> Result<Option<TracedFlow>, KernelError> {
        match lock(&self.capture).flows.get(key, 0) {
            Ok(flow) => Ok(Some(flow)),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(map_error(map_name::TRACED_FLOWS, "lookup")(e)),
        }
    }

    /// Packets of `client` lost so far because the packet ring was full (all CPUs).
    pub fn lost_packets(&self, client: ClientId) -> Result<u64, KernelError> {
        let per_cpu = lock(&self.capture)
            .lost
            .get(&client.0, 0)
            .map_err(map_error(map_name::LOST_PACKETS, "read"))?;
        Ok(per_cpu.iter().sum())
    }
}

/// The classifier programs, loaded with the others and attached per capture interface.
const CLASSIFIERS: [&str; 4] = [
    program_name::TC_ETHERNET_INGRESS,
    program_name::TC_ETHERNET_EGRESS,
    program_name::TC_RAW_IP_INGRESS,
    program_name::TC_RAW_IP_EGRESS,
];

/// Classifier program `name`; `step` names what it is wanted for, should it be of another
/// type.
fn classifier<'a>(
    ebpf: &'a mut Ebpf,
    name: &'static str,
    step: &'static str,
) -> Result<&'a mut SchedClassifier, KernelError> {
    program(ebpf, name)?
        .try_into()
        .map_err(program_error(name, step))
}

fn detach_all(ebpf: &mut Ebpf, links: CaptureLinks) {
    for (name, id) in links.links {
        if let Err(error) = classifier(ebpf, name, "detach")
            .and_then(|p| p.detach(id).map_err(program_error(name, "detach")))
        {
            tracing::warn!(%error, "detaching a capture program failed");
        }
    }
}

/// Whether the kernel attaches TC programs with tcx links (6.6 and later), as aya does.
fn has_tcx() -> bool {
    use aya::util::KernelVersion;
    KernelVersion::current().is_ok_and(|v| v >= KernelVersion::new(6, 6, 0))
}

fn attach_btf_tracepoint(
    ebpf: &mut Ebpf,
    btf: &Btf,
    name: &'static str,
    tracepoint: &str,
) -> Result<String, KernelError> {
    let program: &mut BtfTracePoint = program(ebpf, name)?
        .try_into()
        .map_err(program_error(name, "load"))?;
    program
        .load(tracepoint, btf)
        .map_err(program_error(name, "load"))?;
    program.attach().map_err(program_error(name, "attach"))?;
    Ok(format!("{name}: tp_btf/{tracepoint}"))
}

fn attach_sock_ops(ebpf: &mut Ebpf) -> Result<String, KernelError> {
    const NAME: &str = program_name::SOCK_OPS;
    let root = cgroup::cgroup2_root().map_err(KernelError::Cgroup)?;
    let cgroup = File::open(&root).map_err(KernelError::Cgroup)?;
    let program: &mut SockOps = program(ebpf, NAME)?
        .try_into()
        .map_err(program_error(NAME, "load"))?;
    program.load().map_err(program_error(NAME, "load"))?;
    program
        .attach(&cgroup, CgroupAttachMode::Single)
        .map_err(program_error(NAME, "attach"))?;
    Ok(format!("{NAME}: cgroup sock_ops on {}", root.display()))
}

pub(super) fn program<'a>(
    ebpf: &'a mut Ebpf,
    name: &'static str,
) -> Result<&'a mut aya::programs::Program, KernelError> {
    ebpf.program_mut(name).ok_or(KernelError::Missing {
        kind: "program",
        name,
    })
}

/// The reader of ring `ring` and of its lanes of `kind` (`count` of them, closed unless the
/// config wants lanes).
fn ring_reader(
    ebpf: &mut Ebpf,
    ring: &'static str,
    kind: &'static LaneKind,
    count: u32,
    config: &KernelConfig,
) -> Result<KernelEvents, KernelError> {
    let lanes = Lanes::map(take_map(ebpf, kind.name())?, kind, count, config.lanes)?;
    KernelEvents::new(take_map(ebpf, ring)?, ring, lanes)
}

fn take_map(ebpf: &mut Ebpf, name: &'static str) -> Result<aya::maps::Map, KernelError> {
    ebpf.take_map(name)
        .ok_or(KernelError::Missing { kind: "map", name })
}

pub(super) fn program_error(
    name: &'static str,
    step: &'static str,
) -> impl FnOnce(aya::programs::ProgramError) -> KernelError {
    move |source| KernelError::Program {
        name,
        step,
        source: Box::new(source),
    }
}

pub(super) fn map_error(
    name: &'static str,
    step: &'static str,
) -> impl FnOnce(aya::maps::MapError) -> KernelError {
    move |source| KernelError::Map {
        name,
        step,
        source: Box::new(source),
    }
}

/// `BPF_ANY` (`include/uapi/linux/bpf.h`): store whether a value is there or not.
const BPF_ANY: u64 = 0;

/// `BPF_NOEXIST` (`include/uapi/linux/bpf.h`): store only where no value is.
const BPF_NOEXIST: u64 = 1;

/// Stores `value` as the entry of the socket behind `descriptor`. A socket registered again
/// keeps what the kernel wrote into its entry for the same registration (client slot and
/// generation): its call totals, the transitions held for its next record, the counters of
/// its handshake. What the programs do between the read and the write here is lost (calls
/// counted meanwhile), or comes twice (transitions a record took along meanwhile, which a
/// reader of both keeps once).
fn store_entry(
    traced: &mut SkStorage<MapData, TracedSocket>,
    descriptor: RawFd,
    mut value: TracedSocket,
) -> Result<(), aya::maps::MapError> {
    // The usual case, a socket not registered yet, takes one system call.
    match traced.insert(&descriptor, value, BPF_NOEXIST) {
        Err(aya::maps::MapError::SyscallError(e))
            if e.io_error.raw_os_error() == Some(libc::EEXIST) => {}
        stored => return stored,
    }
    if let Ok(kept) = traced.get(&descriptor, 0)
        && (kept.cookie, kept.client_id, kept.generation)
            == (value.cookie, value.client_id, value.generation)
    {
        value.calls = kept.calls;
        value.held = kept.held;
        value.held_count = kept.held_count;
        value.established = kept.established;
    }
    traced.insert(&descriptor, value, 0)
}

/// A lookup or delete of a key the map does not hold.
fn is_not_found(error: &aya::maps::MapError) -> bool {
    match error {
        aya::maps::MapError::KeyNotFound => true,
        aya::maps::MapError::SyscallError(e) => e.io_error.raw_os_error() == Some(libc::ENOENT),
        _ => false,
    }
}

/// A lookup through a descriptor that is closed or no longer a socket.
fn is_stale_descriptor(error: &aya::maps::MapError) -> bool {
    matches!(error, aya::maps::MapError::SyscallError(e)
        if matches!(e.io_error.raw_os_error(), Some(libc::EBADF | libc::ENOTSOCK)))
}

/// True when some cause in the chain is EPERM/EACCES.
fn is_permission_error(error: &aya::EbpfError) -> bool {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = error.source();
    while let Some(e) = cause {
        if let Some(io) = e.downcast_ref::<io::Error>()
            && io.kind() == io::ErrorKind::PermissionDenied
        {
            return true;
        }
        cause = e.source();
    }
    false
}
