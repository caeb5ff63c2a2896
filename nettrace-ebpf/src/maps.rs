//! The maps shared by all programs. Names and sizes come from `nettrace-common`; userspace may
//! resize the ring buffer at load time.
use aya_ebpf::bindings::BPF_F_MMAPABLE;
use aya_ebpf::{
    btf_maps::SkStorage,
    macros::{btf_map, map},
    maps::{Array, HashMap, PerCpuArray, RingBuf},
};
use nettrace_common::{
    CachedFlow, CaptureClient, CaptureInterface, EventLane, FlowKey, PacketLane,
    SocketAnnouncement, TracedFlow, TracedSocket, limits,
};

/// The owner of a traced socket, stored in the socket itself (socket storage): set by
/// userspace through the socket's descriptor before `connect()`, or by the cgroup program at
/// creation, and freed by the kernel with the socket.
#[btf_map]
pub(crate) static TRACED_SOCKETS: SkStorage<TracedSocket> = SkStorage::new();

/// All events, in the order they were reserved.
#[map(name = "EVENTS")]
pub(crate) static EVENTS: RingBuf = RingBuf::with_byte_size(limits::DEFAULT_RING_BYTES, 0);

/// Events lost because the ring buffer was full, per client slot and CPU.
#[map(name = "LOST_EVENTS")]
pub(crate) static LOST_EVENTS: PerCpuArray<u64> =
    PerCpuArray::with_max_entries(limits::MAX_CLIENTS, 0);

/// Traced flow directions -> their socket. Filled by the sock_ops program at connect (TCP)
/// and by userspace (UDP, NAT aliases); emptied by userspace. A plain hash map, never an LRU
/// one: an entry leaves only by a removal that moves its epoch on ([`FLOW_EPOCH`]), which the
/// TC programs' flow cache relies on.
#[map(name = "TRACED_FLOWS")]
pub(crate) static TRACED_FLOWS: HashMap<FlowKey, TracedFlow> =
    HashMap::with_max_entries(limits::MAX_TRACED_FLOWS, 0);

/// The flows' epochs, one per cache slot (see [`nettrace_common::map_name::FLOW_EPOCH`]);
/// userspace maps it.
#[map(name = "FLOW_EPOCH")]
pub(crate) static FLOW_EPOCH: Array<u64> =
    Array::with_max_entries(limits::FLOW_CACHE_ENTRIES, BPF_F_MMAPABLE);

/// Each CPU's cache of the flows its TC programs found (see [`crate::flows`]), and one entry
/// more for a barrier.
#[map(name = "FLOW_CACHE")]
pub(crate) static FLOW_CACHE: PerCpuArray<CachedFlow> =
    PerCpuArray::with_max_entries(limits::FLOW_CACHE_ENTRIES + 1, 0);

/// How each client captures, by client slot.
#[map(name = "CAPTURE_CLIENTS")]
pub(crate) static CAPTURE_CLIENTS: Array<CaptureClient> =
    Array::with_max_entries(limits::MAX_CLIENTS, 0);

/// What is captured per interface besides traced flows (ICMP, ARP).
#[map(name = "CAPTURE_INTERFACES")]
pub(crate) static CAPTURE_INTERFACES: HashMap<u32, CaptureInterface> =
    HashMap::with_max_entries(limits::MAX_CAPTURE_INTERFACES, 0);

/// Captured packets: a [`nettrace_common::PacketEvent`] followed by the packet's bytes.
#[map(name = "PACKETS")]
pub(crate) static PACKETS: RingBuf = RingBuf::with_byte_size(limits::DEFAULT_PACKET_RING_BYTES, 0);

/// Packets lost because the packet ring was full, per client slot and CPU.
#[map(name = "LOST_PACKETS")]
pub(crate) static LOST_PACKETS: PerCpuArray<u64> =
    PerCpuArray::with_max_entries(limits::MAX_CLIENTS, 0);

/// How the cgroup programs register new sockets (one entry, written by userspace).
#[map(name = "CGROUP_TRACE")]
pub(crate) static CGROUP_TRACE: Array<TracedSocket> = Array::with_max_entries(1, 0);

/// Non-zero while userspace has anything registered: the current generation (see
/// [`nettrace_common::map_name::ARMED`]).
#[map(name = "ARMED")]
pub(crate) static ARMED: Array<u32> = Array::with_max_entries(1, 0);

/// Per client slot, its generation (see [`nettrace_common::map_name::CLIENT_GENERATIONS`]).
#[map(name = "CLIENT_GENERATIONS")]
pub(crate) static CLIENT_GENERATIONS: Array<u32> = Array::with_max_entries(limits::MAX_CLIENTS, 0);

/// Per pair of ports, the generation in which a flow direction with it was registered (see
/// [`nettrace_common::map_name::FLOW_PORTS`]).
#[map(name = "FLOW_PORTS")]
pub(crate) static FLOW_PORTS: Array<u32> = Array::with_max_entries(limits::FLOW_PORTS, 0);

/// Sockets announced by the threads that are creating them, by thread id modulo the slot
/// count (see [`nettrace_common::map_name::ANNOUNCED_SOCKETS`]); userspace maps it.
#[map(name = "ANNOUNCED_SOCKETS")]
pub(crate) static ANNOUNCED_SOCKETS: Array<SocketAnnouncement> =
    Array::with_max_entries(limits::ANNOUNCEMENT_SLOTS, BPF_F_MMAPABLE);

/// One lane per CPU for event records (see [`nettrace_common::map_name::EVENT_LANES`]);
/// userspace sets the count at load and maps it.
#[map(name = "EVENT_LANES")]
pub(crate) static EVENT_LANES: Array<EventLane> = Array::with_max_entries(1, BPF_F_MMAPABLE);

/// One lane per CPU for captured packets that fit (see
/// [`nettrace_common::map_name::PACKET_LANES`]); userspace sets the count at load and maps it.
#[map(name = "PACKET_LANES")]
pub(crate) static PACKET_LANES: Array<PacketLane> = Array::with_max_entries(1, BPF_F_MMAPABLE);
