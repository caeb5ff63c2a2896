//! Records shared by the nettrace eBPF programs and the userspace library.
//!
//! Everything here is `#[repr(C)]` plain data with an identical layout on both sides of the
//! ring buffer and the BPF maps: event layouts, map key/value types, map names and limits.
//! No logic lives here. Flags are `u32` rather than `bool` so that no struct has hidden padding.
//!
//! Every event written to the ring buffer starts with an [`EventHeader`] whose `kind` (one of
//! the [`event_kind`] constants) tells the reader which full record follows:
//!
//! ```
//! use nettrace_common::{event_kind, EventHeader, TcpStateEvent};
//! assert_eq!(core::mem::size_of::<EventHeader>(), 24);
//! // A reader looks at the header first, then reads the record that `kind` names.
//! let kind = event_kind::TCP_STATE;
//! assert!(core::mem::size_of::<TcpStateEvent>() > core::mem::size_of::<EventHeader>());
//! # let _ = kind;
//! ```
#![no_std]
#![deny(missing_docs)]

/// Version of the records as a reader outside the programs' own build sees them: the loader
/// daemon (`nettrace-loader serve`) forwards the ring-buffer records as they are, and its
/// clients decode them with their own copy of this crate, so the two exchange this number
/// when they connect and refuse each other when it differs.
///
/// Bump it whenever the bytes of a forwarded record would be read differently by a reader
/// of the previous version:
/// - a field of [`EventHeader`], of an event record (the `*Event` structs) or of a type one
///   embeds ([`SocketCalls`]) added, removed, moved, resized or retyped;
/// - a field or flag bit given another meaning (as when `SockOpsEvent::has_min_rtt` became
///   [`SockOpsEvent::record_flags`], whose [`sock_ops_record::TRANSITION`] bit makes the
///   reader put back a state transition);
/// - an [`event_kind`] value added, removed or renumbered, or a constant a record's field
///   takes ([`direction`], [`family`], [`ANY_CLIENT`], [`CGROUP_PACKET_IFINDEX`]) changed;
/// - [`limits::MAX_PACKET_BYTES`] raised (a packet record would outgrow the reader's frame).
///
/// Types and constants that stay between userspace and the kernel of one process (map names,
/// map keys and values such as [`TracedSocket`], [`FlowKey`], [`CaptureClient`], program
/// names, the other limits) do not take a bump. The daemon's JSON requests and replies are
/// versioned by this number too: they only gain optional fields or new requests (which an
/// older daemon refuses), and a change to them that a peer of the previous version would
/// misread takes a bump as well. A packet record's time may be the departure time TCP gave
/// the segment (same clock and unit): no bump.
pub const RECORD_LAYOUT_VERSION: u32 = 3;

/// Names of the BPF maps, as they appear in the compiled object.
pub mod map_name {
    /// Socket storage (`BPF_MAP_TYPE_SK_STORAGE`): a [`crate::TracedSocket`] kept in each
    /// traced socket, written by userspace through the socket's descriptor (or by the cgroup
    /// program at creation) and freed by the kernel with the socket. Only sockets holding
    /// one produce events; for any other socket the lookup costs one pointer load.
    pub const TRACED_SOCKETS: &str = "TRACED_SOCKETS";
    /// Ring buffer carrying every event to userspace.
    pub const EVENTS: &str = "EVENTS";
    /// Per-CPU array indexed by client id: events lost because the ring buffer was full.
    pub const LOST_EVENTS: &str = "LOST_EVENTS";
    /// Hash map: [`crate::FlowKey`] -> [`crate::TracedFlow`]: the flows whose packets are
    /// captured, one entry per direction.
    pub const TRACED_FLOWS: &str = "TRACED_FLOWS";
    /// Array indexed by client id: [`crate::CaptureClient`], how that client captures.
    pub const CAPTURE_CLIENTS: &str = "CAPTURE_CLIENTS";
    /// Hash map: interface index (`u32`) -> [`crate::CaptureInterface`], what is captured on
    /// it besides traced flows (ICMP, ARP).
    pub const CAPTURE_INTERFACES: &str = "CAPTURE_INTERFACES";
    /// Ring buffer carrying captured packets ([`crate::PacketEvent`] + bytes) to userspace.
    pub const PACKETS: &str = "PACKETS";
    /// Per-CPU array indexed by client id: packets lost because the packet ring was full.
    pub const LOST_PACKETS: &str = "LOST_PACKETS";
    /// Array of one [`crate::TracedSocket`]: how the cgroup programs register the sockets
    /// created in the traced cgroup (client slot and flags); userspace writes it before it
    /// attaches them.
    pub const CGROUP_TRACE: &str = "CGROUP_TRACE";
    /// Array of one `u32`: non-zero while userspace has anything registered (a socket, a
    /// flow, a traced cgroup, an interface capturing ICMP or ARP). The programs that run for
    /// every socket or packet of the machine check it first, so that while nothing is traced
    /// they cost a direct array load instead of a cookie and a hash lookup. The value is a
    /// generation, new each time userspace arms the programs again (see [`FLOW_PORTS`]).
    pub const ARMED: &str = "ARMED";
    /// Array of 65,536 `u32`, indexed by a pair of ports ([`crate::port_pair_slot`] of the
    /// source and destination port): the [`ARMED`] generation in which a flow direction with
    /// such a pair was registered. A packet whose pair's entry does not hold the current
    /// generation belongs to no registered flow, and the TC programs skip it without the flow
    /// lookup: one array load per packet, traced or not. A new generation clears every mark
    /// at once.
    pub const FLOW_PORTS: &str = "FLOW_PORTS";
    /// Array of [`crate::limits::FLOW_CACHE_ENTRIES`] `u64`s, mappable (`BPF_F_MMAPABLE`): the
    /// flows' epochs, one per cache slot ([`crate::port_pair_slot`] modulo the entry count),
    /// each moved on (atomically) after every removal of a [`TRACED_FLOWS`] entry of its slot
    /// and every replacement of one, by userspace and by the programs alike. The TC programs
    /// keep a small per-CPU cache of the flows they found ([`FLOW_CACHE`]), each entry with the
    /// epoch it was found in: an entry of an older epoch is not used, so no run that reads the
    /// epoch after it moved uses a copy from before the change.
    pub const FLOW_EPOCH: &str = "FLOW_EPOCH";
    /// Per-CPU array of [`crate::limits::FLOW_CACHE_ENTRIES`] entries (and one more, for a
    /// barrier), the TC programs' own:
    /// the flows each CPU found lately (key, flow, epoch), at [`crate::port_pair_slot`] modulo
    /// the entry count, so that a flow's next packets on that CPU cost a cache line the CPU
    /// wrote instead of a hash lookup. Userspace never reads it.
    pub const FLOW_CACHE: &str = "FLOW_CACHE";
    /// Array of one `u32` per client slot: the slot's generation, moved on by userspace
    /// whenever a client takes or leaves the slot. A socket's entry in [`TRACED_SOCKETS`]
    /// lives as long as the socket, which may outlive its client; an entry whose generation
    /// is not the slot's current one produces nothing (so a socket a client left open never
    /// reaches the next client of its slot).
    pub const CLIENT_GENERATIONS: &str = "CLIENT_GENERATIONS";
    /// Array of [`crate::limits::ANNOUNCEMENT_SLOTS`] [`crate::SocketAnnouncement`]s,
    /// mappable (`BPF_F_MMAPABLE`): a thread about to create a socket it wants traced writes
    /// its entry into the slot of its thread id, and the `sock_create` program on the cgroup
    /// root stores the entry in the socket as the kernel creates it. Registration without a
    /// system call of its own, and the cookie comes back in the slot.
    pub const ANNOUNCED_SOCKETS: &str = "ANNOUNCED_SOCKETS";
    /// Array of one [`crate::EventLane`] per CPU, mappable (`BPF_F_MMAPABLE`): every event
    /// record, written to the lane of the CPU its program ran on, without the ring buffer's
    /// lock. A record whose lane is full (or in use by a program it interrupted) goes to
    /// [`EVENTS`] instead.
    pub const EVENT_LANES: &str = "EVENT_LANES";
    /// The same for captured packets of up to [`crate::limits::LANE_PACKET_BYTES`]
    /// bytes ([`crate::PacketLane`]); longer ones, and those a full lane cannot take, go to
    /// [`PACKETS`].
    pub const PACKET_LANES: &str = "PACKET_LANES";
}

/// Names of the eBPF programs in the compiled object.
pub mod program_name {
    /// cgroup `sock_ops` program: connect, established, retransmit, RTO and state callbacks.
    pub const SOCK_OPS: &str = "nettrace_sock_ops";
    /// `tp_btf/inet_sock_set_state`: the TCP state transitions of a traced socket that no
    /// `sock_ops` record stands for ([`crate::socket_flags::STATE_CALLBACKS`]).
    pub const INET_SOCK_SET_STATE: &str = "nettrace_inet_sock_set_state";
    /// `tp_btf/sock_send_length`: each send call on a traced socket (TCP and UDP), sent as a
    /// record or counted in the socket's entry ([`crate::socket_flags::FOLD_CALLS`]).
    pub const SOCK_SEND_LENGTH: &str = "nettrace_sock_send_length";
    /// `tp_btf/sock_recv_length`: each receive call, as above.
    pub const SOCK_RECV_LENGTH: &str = "nettrace_sock_recv_length";
    /// `tp_btf/tcp_send_reset`: a RST sent on a traced socket.
    pub const TCP_SEND_RESET: &str = "nettrace_tcp_send_reset";
    /// `tp_btf/tcp_receive_reset`: a RST received on a traced socket.
    pub const TCP_RECEIVE_RESET: &str = "nettrace_tcp_receive_reset";
    /// TC classifier, ingress, for interfaces whose packets start with an Ethernet header.
    pub const TC_ETHERNET_INGRESS: &str = "nettrace_tc_ethernet_ingress";
    /// TC classifier, egress, for interfaces whose packets start with an Ethernet header.
    pub const TC_ETHERNET_EGRESS: &str = "nettrace_tc_ethernet_egress";
    /// TC classifier, ingress, for interfaces without a link-layer header (raw IP).
    pub const TC_RAW_IP_INGRESS: &str = "nettrace_tc_raw_ip_ingress";
    /// TC classifier, egress, for interfaces without a link-layer header (raw IP).
    pub const TC_RAW_IP_EGRESS: &str = "nettrace_tc_raw_ip_egress";
    /// `cgroup/sock_create` on a traced cgroup: registers every TCP/UDP socket created there.
    pub const SOCK_CREATE: &str = "nettrace_sock_create";
    /// cgroup `sock_create` program on the cgroup root: registers the socket a thread
    /// announced in [`crate::map_name::ANNOUNCED_SOCKETS`].
    pub const SOCK_CREATE_ANNOUNCED: &str = "nettrace_sock_create_announced";
    /// `cgroup/sock_release` on a traced cgroup: reports a traced socket's release (close).
    pub const SOCK_RELEASE: &str = "nettrace_sock_release";
    /// `cgroup/connect4` on a traced cgroup: each `connect()` attempt of a traced socket.
    pub const CONNECT4: &str = "nettrace_connect4";
    /// `cgroup/connect6` on a traced cgroup: as [`CONNECT4`], for IPv6 sockets.
    pub const CONNECT6: &str = "nettrace_connect6";
    /// `cgroup_skb/egress` on a traced cgroup: copies DNS and TLS handshake packets of traced
    /// sockets, and registers the UDP flows of capturing sockets before TC sees them.
    pub const CGROUP_SKB_EGRESS: &str = "nettrace_cgroup_skb_egress";
    /// `cgroup_skb/ingress` on a traced cgroup: copies DNS packets of traced sockets.
    pub const CGROUP_SKB_INGRESS: &str = "nettrace_cgroup_skb_ingress";
}

/// Limits shared by both sides.
pub mod limits {
    /// Number of client slots (size of the lost-event counters).
    pub const MAX_CLIENTS: u32 = 1_024;
    /// Default size of the event ring buffer in bytes (a power of two, multiple of the page size).
    pub const DEFAULT_RING_BYTES: u32 = 256 * 1024;
    /// Capacity of the traced-flow map (two entries per flow, one per direction).
    pub const MAX_TRACED_FLOWS: u32 = 131_072;
    /// Capacity of the capture-interface map.
    pub const MAX_CAPTURE_INTERFACES: u32 = 256;
    /// Default size of the packet ring buffer in bytes.
    pub const DEFAULT_PACKET_RING_BYTES: u32 = 4 * 1024 * 1024;
    /// Most bytes copied of one packet, whatever the snap length asked.
    pub const MAX_PACKET_BYTES: u32 = 9216;
    /// Entries of the flow-port marks ([`crate::port_pair_slot`] gives one of them).
    pub const FLOW_PORTS: u32 = 65_536;
    /// Entries of each CPU's flow cache ([`crate::map_name::FLOW_CACHE`]; a power of two,
    /// 64 bytes each).
    pub const FLOW_CACHE_ENTRIES: u32 = 64;
    /// Slots of [`crate::map_name::ANNOUNCED_SOCKETS`] (a power of two: a thread's slot is its
    /// id modulo this).
    pub const ANNOUNCEMENT_SLOTS: u32 = 1_024;
    /// State transitions a socket's entry holds for its next `sock_ops` record (see
    /// [`crate::TracedSocket::held`]): a library connection holds up to three (SYN-SENT,
    /// ESTABLISHED and CLOSE-WAIT until the application's `close()`), with one to spare. One
    /// more would grow the entry past what the socket's storage allocates cheaply (see
    /// [`crate::TracedSocket`]).
    pub const HELD_TRANSITIONS: usize = 4;
    /// Records an [`crate::EventLane`] holds (a power of two; 132 KiB per CPU): events of
    /// one CPU between two reads of the lanes (the reader looks at least every 20 ms: 25,600
    /// events a second per CPU go through the lanes; more go to the ring buffer).
    pub const EVENT_LANE_SLOTS: usize = 512;
    /// Packets a [`crate::PacketLane`] holds (a power of two; 74 KiB per CPU).
    pub const PACKET_LANE_SLOTS: usize = 256;
    /// The most bytes of a packet a [`crate::PacketLane`] takes: headers and small packets
    /// (an ACK, a DNS query); a longer copy goes to the packet ring buffer.
    pub const LANE_PACKET_BYTES: usize = 256;
}

/// Values of [`EventHeader::kind`].
pub mod event_kind {
    /// A [`crate::TcpStateEvent`].
    pub const TCP_STATE: u32 = 1;
    /// A [`crate::SockOpsEvent`].
    pub const SOCK_OPS: u32 = 2;
    /// A [`crate::SockMsgEvent`].
    pub const SOCK_MSG: u32 = 3;
    /// A [`crate::TcpResetEvent`].
    pub const TCP_RESET: u32 = 4;
    /// A [`crate::PacketEvent`], followed by the packet's bytes.
    pub const PACKET: u32 = 5;
    /// A [`crate::SockCreateEvent`].
    pub const SOCK_CREATE: u32 = 6;
    /// A [`crate::SockReleaseEvent`].
    pub const SOCK_RELEASE: u32 = 7;
    /// A [`crate::ConnectEvent`].
    pub const CONNECT: u32 = 8;
    /// A [`crate::SockCallsEvent`].
    pub const SOCK_CALLS: u32 = 9;
}

/// [`PacketEvent::ifindex`] of a packet copied by the cgroup skb programs: it starts at the
/// IP header and was seen on no particular interface.
pub const CGROUP_PACKET_IFINDEX: u32 = 0;

/// Bits of [`TracedSocket::flags`].
pub mod socket_flags {
    /// Capture the socket's packets: the sock_ops program registers its TCP flow in
    /// [`crate::map_name::TRACED_FLOWS`] when it connects, before the SYN leaves.
    pub const CAPTURE: u32 = 1;
    /// Count the socket's send and receive calls in its entry ([`crate::TracedSocket::calls`])
    /// instead of sending a record per call: the totals travel with the socket's `sock_ops`
    /// records and with a [`crate::SockCallsEvent`] for a failed call or a call after CLOSE;
    /// while the socket is open, userspace reads them from the entry. Such a socket's
    /// application `close()` and `shutdown()` (the transition to FIN-WAIT-1 or LAST-ACK, or a
    /// state set again by a `close()` after `shutdown()`) send a record too: once the
    /// descriptor is gone the entry cannot be read, and the record of CLOSE may be a round
    /// trip away. With [`STATE_CALLBACKS`], its established callback sends no record: it
    /// keeps its counters in the entry ([`crate::TracedSocket::established`]), and its
    /// transitions wait in the entry for the next record, so a connection that closes the
    /// usual way takes two records. For TCP sockets whose owner keeps their descriptors (the
    /// in-process library), not for a trace that wants each call (socket-operation logs of a
    /// traced program).
    pub const FOLD_CALLS: u32 = 2;
    /// Set when a transition of the socket to CLOSE is reported (by the `sock_ops` program
    /// or the state tracepoint, whichever sends it): a call after it is reported at once (the
    /// last record with totals is gone by then), and userspace learns from it whether a
    /// socket whose `connect()` failed will still report a CLOSE (one that never left CLOSE
    /// reports none). Cleared when the socket connects again.
    pub const CLOSED: u32 = 4;
    /// Set by the `sock_ops` program at connect when the kernel took its state callbacks.
    /// From then on the transitions that `sock_ops` records anyway (to CLOSE, the
    /// `close()` / `shutdown()` of a [`FOLD_CALLS`] socket, and to ESTABLISHED of a socket
    /// without it) come only as its records, marked
    /// [`crate::sock_ops_record::TRANSITION`]: the state tracepoint leaves them out.
    /// The other transitions it holds back in the socket's entry
    /// ([`crate::TracedSocket::held`]) for the next `sock_ops` record to carry
    /// ([`crate::SockOpsEvent::held`]), and so does it with a socket's CLOSE to SYN-SENT, which
    /// comes just before the connect callback (that sends them as state records itself when
    /// the kernel refuses the state callbacks). A transition that finds the entry full is sent
    /// as a state record after those held, as is one of a socket without the flag.
    pub const STATE_CALLBACKS: u32 = 8;
}

/// Bits of [`SockOpsEvent::record_flags`].
pub mod sock_ops_record {
    /// The kernel had an RTT sample: [`crate::SockOpsEvent::min_rtt_us`] is valid.
    pub const HAS_MIN_RTT: u32 = 1;
    /// The record also stands for the TCP state transition `args[0]` -> `args[1]`, which the
    /// state tracepoint did not send (see [`crate::socket_flags::STATE_CALLBACKS`]). For the
    /// active-established callback, which has no arguments, the program fills in SYN-SENT and
    /// ESTABLISHED.
    pub const TRANSITION: u32 = 2;
}

/// Bits of [`CaptureClient::flags`].
pub mod capture_flags {
    /// Keep TCP payload. Without it (and without [`TCP_HEADERS_ONLY`]) only the TCP packets
    /// that carry no payload (SYN, FIN, RST, pure ACKs) are copied, as Go's
    /// `TCPWithoutPayload`.
    pub const TCP_PAYLOAD: u32 = 1;
    /// Without [`TCP_PAYLOAD`]: copy TCP packets that carry payload too, cut after their TCP
    /// header.
    pub const TCP_HEADERS_ONLY: u32 = 2;
}

/// [`EventHeader::client_id`] of a packet that belongs to no flow (ICMP, ARP): it goes to
/// every client capturing on the interface that asked for its kind.
pub const ANY_CLIENT: u32 = u32::MAX;

/// Direction values of [`SockMsgEvent::direction`] and [`TcpResetEvent::direction`].
pub mod direction {
    /// Sent by the traced socket.
    pub const SENT: u32 = 0;
    /// Received by the traced socket.
    pub const RECEIVED: u32 = 1;
}

/// IP protocol numbers (IANA), as packet headers and socket records carry them.
pub mod ip_protocol {
    /// ICMP.
    pub const ICMP: u8 = 1;
    /// TCP.
    pub const TCP: u8 = 6;
    /// UDP.
    pub const UDP: u8 = 17;
    /// ICMPv6.
    pub const ICMPV6: u8 = 58;
}

/// Address family values used in events (the kernel's `AF_INET` / `AF_INET6`).
pub mod family {
    /// IPv4.
    pub const INET: u32 = 2;
    /// IPv6.
    pub const INET6: u32 = 10;
}

/// Value stored for each traced socket in [`map_name::TRACED_SOCKETS`]. Userspace writes the
/// client, flags, generation and cookie; with [`socket_flags::FOLD_CALLS`], the programs keep
/// the call totals in the rest (counted here instead of being sent one by one). The kernel
/// frees the entry with the socket.
///
/// At most [`TRACED_SOCKET_MAX_BYTES`]: the kernel allocates each entry with a 72-byte
/// header (`bpf_local_storage_elem`, its data cache-line aligned), and up to 256 bytes in all
/// come from the 256-byte slab; a larger entry took the 512-byte one, and the
/// socket-creating program's run 170 ns longer (measured).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TracedSocket {
    /// Slot of the traced client that owns the socket (index into the lost-event counters).
    pub client_id: u32,
    /// [`socket_flags`] bits.
    pub flags: u32,
    /// The client slot's generation when the entry was stored (see
    /// [`map_name::CLIENT_GENERATIONS`]): an entry of an earlier generation belongs to a
    /// client that has left, and the programs ignore it.
    pub generation: u32,
    /// How many of [`Self::held`] hold a transition.
    pub held_count: u32,
    /// The socket's cookie: tells a reader of the entry through a descriptor that the
    /// descriptor still is the registered socket, and names the socket in the records of its
    /// calls (read here instead of with a helper call).
    pub cookie: u64,
    /// Call totals of a socket with [`socket_flags::FOLD_CALLS`]; zero otherwise.
    pub calls: SocketCalls,
    /// TCP state transitions held back for the socket's next `sock_ops` record, oldest first
    /// (see [`socket_flags::STATE_CALLBACKS`]).
    pub held: [HeldTransition; limits::HELD_TRANSITIONS],
    /// The connection's counters when its handshake completed, for a socket whose
    /// established callback sends no record ([`socket_flags::FOLD_CALLS`]); zero before (and
    /// for other sockets).
    pub established: EstablishedCounters,
}

/// The TCP counters of a connection when its handshake completed, kept in its entry
/// ([`TracedSocket::established`]) instead of a record: what a snapshot of the open
/// connection shows until a record brings newer ones. The fields are those of
/// [`SockOpsEvent`], but for the byte counts, which a handshake leaves at the SYN alone.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EstablishedCounters {
    /// When the callback ran (`bpf_ktime_get_ns`); zero: not established yet.
    pub timestamp_ns: u64,
    /// Smoothed RTT in microseconds, shifted left by 3 as the kernel keeps it.
    pub srtt_us: u32,
    /// The kernel's smallest RTT sample in microseconds (`u32::MAX`: none yet).
    pub min_rtt_us: u32,
    /// Congestion window in segments.
    pub snd_cwnd: u32,
    /// Total retransmitted segments (of the SYN).
    pub total_retrans: u32,
    /// Segments received.
    pub segs_in: u32,
    /// Segments sent.
    pub segs_out: u32,
}

/// The most bytes a [`TracedSocket`] may take (see there).
pub const TRACED_SOCKET_MAX_BYTES: usize = 256 - 72;

const _: () = assert!(core::mem::size_of::<TracedSocket>() <= TRACED_SOCKET_MAX_BYTES);

/// A TCP state transition with its time, held in a socket's entry and carried by a later
/// record ([`SockOpsEvent::held`]) instead of a record of its own: one ring record less per
/// transition (issue 16).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HeldTransition {
    /// When the transition happened (`bpf_ktime_get_ns`).
    pub timestamp_ns: u64,
    /// State before the transition.
    pub old_state: u32,
    /// State after the transition.
    pub new_state: u32,
}

/// A slot of [`map_name::ANNOUNCED_SOCKETS`]: the socket that thread [`Self::thread`] is
/// creating, to be registered by the kernel as it is created.
///
/// The thread takes the slot (its kernel thread id in [`Self::thread`]), writes
/// [`Self::socket`], sets [`Self::state`] to [`announcement_state::PENDING`] and creates the
/// socket. The program, run inside that `socket()` call by the same thread, stores the entry
/// (with the socket's cookie) in the socket and sets [`announcement_state::DONE`], or
/// [`announcement_state::FAILED`]; the thread then reads the cookie and frees the slot.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SocketAnnouncement {
    /// The kernel thread id (in the initial PID namespace) that holds the slot; zero: free.
    pub thread: u32,
    /// An [`announcement_state`] value.
    pub state: u32,
    /// The entry to store; the program fills in [`TracedSocket::cookie`].
    pub socket: TracedSocket,
}

/// Values of [`SocketAnnouncement::state`].
pub mod announcement_state {
    /// Nothing announced.
    pub const IDLE: u32 = 0;
    /// The next TCP or UDP socket the thread creates is to be registered.
    pub const PENDING: u32 = 1;
    /// Registered; the slot's entry holds the socket's cookie.
    pub const DONE: u32 = 2;
    /// Not registered: the first socket the thread created meanwhile was no TCP or UDP one,
    /// or had an entry already, or the kernel had no memory for one. The thread registers its
    /// socket itself.
    pub const FAILED: u32 = 3;
}

/// Send and receive calls of a socket, counted by the programs (`sock_send_length`,
/// `sock_recv_length`). 64-bit fields: the programs add to them atomically (calls of one
/// socket may run on several CPUs at once, without the socket lock), and 64-bit atomic adds
/// are what every BPF instruction set has.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SocketCalls {
    /// Send calls.
    pub send_calls: u64,
    /// Receive calls.
    pub recv_calls: u64,
    /// Calls that returned `EAGAIN`.
    pub would_block: u64,
    /// Send calls that failed otherwise.
    pub send_errors: u64,
    /// Receive calls that failed otherwise.
    pub recv_errors: u64,
    /// The errno of the last failure other than `EAGAIN` (positive), zero if none.
    pub last_errno: u64,
    /// Bytes the send calls moved.
    pub bytes_sent: u64,
    /// Bytes the receive calls moved.
    pub bytes_received: u64,
}

/// The call totals of a socket with [`socket_flags::FOLD_CALLS`], sent when one of its calls
/// failed (other than `EAGAIN`) or came after the socket reached CLOSE.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SockCallsEvent {
    /// Common header; `kind` is [`event_kind::SOCK_CALLS`].
    pub header: EventHeader,
    /// The totals, this call included.
    pub calls: SocketCalls,
}

/// A TCP or UDP socket created in a traced cgroup (`cgroup/sock_create`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SockCreateEvent {
    /// Common header; `kind` is [`event_kind::SOCK_CREATE`].
    pub header: EventHeader,
    /// [`family::INET`] or [`family::INET6`].
    pub family: u32,
    /// `SOCK_STREAM` (1) or `SOCK_DGRAM` (2).
    pub sock_type: u32,
    /// IP protocol (6 TCP, 17 UDP).
    pub protocol: u32,
    /// Process (thread group) id of the creator.
    pub pid: u32,
    /// Command name of the creator, NUL-padded.
    pub comm: [u8; 16],
}

/// A traced socket released (its last descriptor closed; `cgroup/sock_release`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SockReleaseEvent {
    /// Common header; `kind` is [`event_kind::SOCK_RELEASE`].
    pub header: EventHeader,
}

/// A `connect()` call on a traced socket, before the kernel acts on it (`cgroup/connect4/6`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ConnectEvent {
    /// Common header; `kind` is [`event_kind::CONNECT`].
    pub header: EventHeader,
    /// [`family::INET`] or [`family::INET6`].
    pub family: u32,
    /// IP protocol (6 TCP, 17 UDP).
    pub protocol: u32,
    /// Destination address, network byte order (IPv4 in the first word).
    pub remote_addr: [u32; 4],
    /// Destination port, host byte order.
    pub remote_port: u32,
    /// Process (thread group) id of the caller.
    pub pid: u32,
    /// Command name of the caller, NUL-padded.
    pub comm: [u8; 16],
}

/// First bytes of every ring-buffer record.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EventHeader {
    /// One of the [`event_kind`] constants.
    pub kind: u32,
    /// Client slot of the socket, copied from its [`TracedSocket`].
    pub client_id: u32,
    /// `bpf_ktime_get_ns()` when the event happened (CLOCK_MONOTONIC, nanoseconds).
    pub timestamp_ns: u64,
    /// Kernel socket cookie (`SO_COOKIE`) of the socket the event belongs to.
    pub cookie: u64,
}

/// A TCP state transition (`inet_sock_set_state`). States use the kernel's numbering
/// (`TCP_ESTABLISHED` = 1 ... `TCP_CLOSING` = 11, `TCP_NEW_SYN_RECV` = 12).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TcpStateEvent {
    /// Common header; `kind` is [`event_kind::TCP_STATE`].
    pub header: EventHeader,
    /// State before the transition.
    pub old_state: u32,
    /// State after the transition.
    pub new_state: u32,
}

/// A cgroup `sock_ops` callback on a traced socket, with the socket's addresses and the
/// TCP counters the kernel exposes to `sock_ops` programs at that moment.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SockOpsEvent {
    /// Common header; `kind` is [`event_kind::SOCK_OPS`].
    pub header: EventHeader,
    /// The callback (`BPF_SOCK_OPS_*_CB`): 3 connect, 4 active / 5 passive established,
    /// 8 RTO, 9 retransmit, 10 state change (`args` = old, new state).
    pub op: u32,
    /// [`family::INET`] or [`family::INET6`].
    pub family: u32,
    /// Local address; for IPv4 only `local_addr[0]` is used. Network byte order.
    pub local_addr: [u32; 4],
    /// Remote address; for IPv4 only `remote_addr[0]` is used. Network byte order.
    pub remote_addr: [u32; 4],
    /// Local port, host byte order.
    pub local_port: u32,
    /// Remote port, host byte order.
    pub remote_port: u32,
    /// First two callback arguments (`args[0]`, `args[1]`), meaning depends on `op`; the old
    /// and new state with [`sock_ops_record::TRANSITION`].
    pub args: [u32; 2],
    /// Kernel TCP state at the callback.
    pub state: u32,
    /// Smoothed RTT in microseconds, shifted left by 3 as the kernel keeps it (`srtt_us`).
    pub srtt_us: u32,
    /// Congestion window in segments.
    pub snd_cwnd: u32,
    /// Total retransmitted segments of the connection.
    pub total_retrans: u32,
    /// Segments received.
    pub segs_in: u32,
    /// Segments sent.
    pub segs_out: u32,
    /// The kernel's smallest RTT sample of the socket (`tcp_sock.rtt_min`: over its last 5
    /// minutes), in microseconds.
    pub min_rtt_us: u32,
    /// [`sock_ops_record`] bits.
    pub record_flags: u32,
    /// Bytes received (`tcp_sock.bytes_received`).
    pub bytes_received: u64,
    /// Bytes acknowledged by the peer (`tcp_sock.bytes_acked`).
    pub bytes_acked: u64,
    /// Call totals of a socket with [`socket_flags::FOLD_CALLS`]; zero otherwise.
    pub calls: SocketCalls,
    /// Transitions of the socket before this record that the state tracepoint held back for
    /// it, oldest first: the first [`Self::held_count`] (see
    /// [`socket_flags::STATE_CALLBACKS`]). They come before the record, and before the
    /// transition [`sock_ops_record::TRANSITION`] stands for.
    pub held: [HeldTransition; limits::HELD_TRANSITIONS],
    /// How many of [`Self::held`] are filled.
    pub held_count: u32,
    /// Padding, zero.
    pub _pad: u32,
}

/// One send or receive call on a traced socket, as the kernel returned it
/// (`sock_send_length` / `sock_recv_length`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SockMsgEvent {
    /// Common header; `kind` is [`event_kind::SOCK_MSG`].
    pub header: EventHeader,
    /// [`direction::SENT`] or [`direction::RECEIVED`].
    pub direction: u32,
    /// The call's result: bytes, or a negative errno.
    pub ret: i32,
    /// The `MSG_*` flags of the call.
    pub flags: u32,
    /// Padding, zero.
    pub _pad: u32,
}

/// One CPU's lane of a lane map ([`map_name::EVENT_LANES`], [`map_name::PACKET_LANES`]): a
/// ring of `N` records of type `T` with one writer, the programs running on that CPU, and one
/// reader in userspace, which maps the array.
///
/// A ring buffer record costs about 150 ns here (its reserve takes a spin lock with
/// interrupts disabled); a lane record is two atomic exchanges and a copy (issue 16).
///
/// - The writer leaves a [`Self::closed`] lane alone; it takes [`Self::busy`] with an atomic
///   exchange (a program that interrupted
///   another one on the same CPU finds it taken and uses the ring buffer instead), checks
///   that [`Self::written`] minus [`LaneRead::read`] leaves a free slot, fills slot
///   `written % N`, and publishes it by exchanging `written` for `written + 1` (a full
///   barrier: the slot is written before the count can be seen).
/// - The reader loads `written` (acquire), copies the slots from its last count up to it and
///   stores the new count in [`LaneRead::read`] (release), which frees them.
#[repr(C)]
pub struct Lane<T, const N: usize> {
    /// Records written since the lane was created (written by the programs only).
    pub written: u64,
    /// Non-zero while a program writes the lane.
    pub busy: u64,
    /// Non-zero: the lane takes nothing, every record goes to the ring buffer (set by
    /// userspace before it registers anything, when told to do without lanes).
    pub closed: u64,
    /// Keeps the reader's count off the writer's cache line.
    pub _pad: [u64; 5],
    /// The reader's side.
    pub read: LaneRead,
    /// The records, the one of count `n` at `n % N`.
    pub slots: [T; N],
}

/// The reader's cache line of a [`Lane`].
#[repr(C)]
pub struct LaneRead {
    /// Records read since the lane was created (written by userspace only).
    pub read: u64,
    /// Fills the cache line.
    pub _pad: [u64; 7],
}

/// Where a [`Lane`]'s slots start: after the writer's and the reader's cache lines.
pub const LANE_SLOTS_OFFSET: usize = 128;

/// A lane of event records.
pub type EventLane = Lane<EventSlot, { limits::EVENT_LANE_SLOTS }>;

/// Room for any event record but a packet (the largest is [`SockOpsEvent`]): read as the
/// record its header's kind names, [`event_record_len`] bytes.
#[repr(C)]
pub struct EventSlot {
    /// The record, then unused bytes.
    pub words: [u64; size_of::<SockOpsEvent>() / 8],
}

/// The size of a record of `kind` (an [`event_kind`] value), for every kind but
/// [`event_kind::PACKET`] (whose size its record says); `None` for that and unknown kinds.
pub const fn event_record_len(kind: u32) -> Option<usize> {
    Some(match kind {
        event_kind::TCP_STATE => size_of::<TcpStateEvent>(),
        event_kind::SOCK_OPS => size_of::<SockOpsEvent>(),
        event_kind::SOCK_MSG => size_of::<SockMsgEvent>(),
        event_kind::TCP_RESET => size_of::<TcpResetEvent>(),
        event_kind::SOCK_CREATE => size_of::<SockCreateEvent>(),
        event_kind::SOCK_RELEASE => size_of::<SockReleaseEvent>(),
        event_kind::CONNECT => size_of::<ConnectEvent>(),
        event_kind::SOCK_CALLS => size_of::<SockCallsEvent>(),
        _ => return None,
    })
}

/// A lane of captured packets of up to [`limits::LANE_PACKET_BYTES`] bytes.
pub type PacketLane = Lane<LanePacket, { limits::PACKET_LANE_SLOTS }>;

/// A captured packet in a [`PacketLane`]: read as a [`PacketEvent`] followed by its
/// [`PacketEvent::captured_len`] bytes, like a packet record of the ring buffer.
#[repr(C)]
pub struct LanePacket {
    /// The packet's description.
    pub event: PacketEvent,
    /// The packet's first [`PacketEvent::captured_len`] bytes.
    pub data: [u8; limits::LANE_PACKET_BYTES],
}

const _: () = assert!(limits::EVENT_LANE_SLOTS.is_power_of_two());
const _: () = assert!(limits::PACKET_LANE_SLOTS.is_power_of_two());
const _: () = assert!(core::mem::offset_of!(EventLane, read) == 64);
const _: () = assert!(core::mem::offset_of!(EventLane, closed) == 16);
const _: () = assert!(core::mem::offset_of!(EventLane, slots) == LANE_SLOTS_OFFSET);
const _: () = assert!(core::mem::offset_of!(PacketLane, slots) == LANE_SLOTS_OFFSET);
const _: () = assert!(core::mem::size_of::<LanePacket>().is_multiple_of(8));

/// A TCP reset sent or received on a traced socket (`tcp_send_reset` / `tcp_receive_reset`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TcpResetEvent {
    /// Common header; `kind` is [`event_kind::TCP_RESET`].
    pub header: EventHeader,
    /// [`direction::SENT`] or [`direction::RECEIVED`].
    pub direction: u32,
    /// Padding, zero.
    pub _pad: u32,
}

/// One direction of a traced flow, as the packet headers show it: source and destination
/// addresses (network byte order, IPv4 in the first word), ports in host byte order.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct FlowKey {
    /// Source address.
    pub src_addr: [u32; 4],
    /// Destination address.
    pub dst_addr: [u32; 4],
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
    /// IP protocol (6 TCP, 17 UDP).
    pub protocol: u8,
    /// [`family::INET`] or [`family::INET6`] (as a byte).
    pub family: u8,
    /// Zero (hash keys are compared byte for byte).
    pub _pad: u16,
}

/// The entry of [`map_name::FLOW_PORTS`] that marks flow directions from `src_port` to
/// `dst_port`: the upper 16 bits of the pair times a constant near 2^32 / golden ratio
/// (Fibonacci hashing), so that nearby pairs spread over the whole array. Different pairs
/// may share an entry; such a packet only costs the flow lookup that then finds nothing.
pub const fn port_pair_slot(src_port: u16, dst_port: u16) -> u32 {
    let pair = ((src_port as u32) << 16) | dst_port as u32;
    pair.wrapping_mul(0x9e37_79b1) >> 16
}

impl FlowKey {
    /// [`port_pair_slot`] of this direction's ports.
    pub const fn port_pair_slot(&self) -> u32 {
        port_pair_slot(self.src_port, self.dst_port)
    }

    /// This direction's slot of the flow cache: its entry in each CPU's
    /// [`map_name::FLOW_CACHE`] and its epoch in [`map_name::FLOW_EPOCH`] (below
    /// [`limits::FLOW_CACHE_ENTRIES`]).
    pub const fn cache_slot(&self) -> u32 {
        self.port_pair_slot() & (limits::FLOW_CACHE_ENTRIES - 1)
    }
}

const _: () = assert!(limits::FLOW_CACHE_ENTRIES.is_power_of_two());

/// One entry of a CPU's flow cache ([`map_name::FLOW_CACHE`], the TC programs' own): one
/// cache line.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CachedFlow {
    /// The flow direction's key.
    pub key: FlowKey,
    /// Its flow.
    pub flow: TracedFlow,
    /// The epoch the flow was found in (its low 48 bits, in the upper 48 bits: at a million
    /// changes of the flow map a second they come round again after nine years) and a
    /// sequence number, odd while the entry is written (the low 16 bits): one word, so that
    /// one exchange both claims the entry and orders the programs' memory accesses.
    pub state: u64,
}

const _: () = assert!(core::mem::size_of::<CachedFlow>() == 64);

/// What a flow direction belongs to.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TracedFlow {
    /// Cookie of the traced socket.
    pub cookie: u64,
    /// Client slot of the socket.
    pub client_id: u32,
    /// [`direction::SENT`] when packets of this direction leave the traced socket,
    /// [`direction::RECEIVED`] when they come to it.
    pub direction: u32,
}

/// How one client captures.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CaptureClient {
    /// Bytes copied of each packet at most (capped at [`limits::MAX_PACKET_BYTES`]).
    pub snaplen: u32,
    /// [`capture_flags`] bits.
    pub flags: u32,
}

/// What is captured on one interface besides traced flows. A snap length of zero means "not
/// captured".
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CaptureInterface {
    /// Snap length for ICMP and ICMPv6 packets.
    pub icmp_snaplen: u32,
    /// Snap length for ARP packets.
    pub arp_snaplen: u32,
}

/// A captured packet; its first `captured_len` bytes follow the record in the ring buffer.
/// The header's cookie is the traced socket's (zero for ICMP/ARP) and its client is
/// [`ANY_CLIENT`] for packets that belong to no flow. Its time is when the program saw it,
/// or for an outgoing packet the departure time on the monotonic clock the stack gave it
/// (TCP gives one to every segment).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PacketEvent {
    /// Common header; `kind` is [`event_kind::PACKET`].
    pub header: EventHeader,
    /// Interface index where it was seen.
    pub ifindex: u32,
    /// [`direction::SENT`] or [`direction::RECEIVED`]: from the traced socket's point of view
    /// for flow packets; for others, egress or ingress of the interface.
    pub direction: u32,
    /// Length of the whole packet.
    pub packet_len: u32,
    /// Bytes that follow this record.
    pub captured_len: u32,
}

#[cfg(feature = "user")]
mod pod {
    // SAFETY: every type below is #[repr(C)], made only of integers and integer arrays, and has
    // no padding (fields are laid out in 8-byte aligned groups), so any bit pattern is valid.
    unsafe impl aya::Pod for super::TracedSocket {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::SocketAnnouncement {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::HeldTransition {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::EstablishedCounters {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::EventHeader {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::TcpStateEvent {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::SockOpsEvent {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::SockMsgEvent {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::SocketCalls {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::SockCallsEvent {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::TcpResetEvent {}
    // SAFETY: as above (FlowKey's explicit `_pad` fills its last two bytes).
    unsafe impl aya::Pod for super::FlowKey {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::TracedFlow {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::CaptureClient {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::CaptureInterface {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::PacketEvent {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::SockCreateEvent {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::SockReleaseEvent {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::ConnectEvent {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::size_of;

    #[test]
    fn port_pair_slots_spread_the_clients_of_one_server_port() {
        // Every source port towards one destination port has a mark of its own (the clients
        // of one server), so an untraced client's packets towards a traced server cost no flow
        // lookup. (The other way, from the server, pairs may share marks: that costs a
        // lookup that finds nothing.)
        for server in [80, 443, 8080] {
            let mut seen = [false; limits::FLOW_PORTS as usize];
            for client in 0..=u16::MAX {
                let slot = port_pair_slot(client, server) as usize;
                assert!(!seen[slot], "{client} -> {server} shares a mark");
                seen[slot] = true;
            }
        }
        let key = FlowKey {
            src_port: 40_000,
            dst_port: 443,
            ..FlowKey::default()
        };
        assert_eq!(key.port_pair_slot(), port_pair_slot(40_000, 443));
        assert_ne!(port_pair_slot(40_000, 443), port_pair_slot(443, 40_000));
    }

    /// The layouts must not contain padding: a Pod type with padding would expose
    /// uninitialised bytes, and both sides must agree on every offset.
    #[test]
    fn layouts_have_no_padding() {
        assert_eq!(size_of::<SocketCalls>(), 8 * 8);
        assert_eq!(size_of::<HeldTransition>(), 16);
        assert_eq!(size_of::<EstablishedCounters>(), 8 + 4 * 6);
        assert_eq!(
            size_of::<TracedSocket>(),
            4 * 4 + 8 + 64 + 4 * 16 + size_of::<EstablishedCounters>()
        );
        assert_eq!(
            size_of::<SocketAnnouncement>(),
            8 + size_of::<TracedSocket>()
        );
        assert!(limits::ANNOUNCEMENT_SLOTS.is_power_of_two());
        assert_eq!(size_of::<SockCallsEvent>(), 24 + 64);
        assert_eq!(size_of::<EventHeader>(), 24);
        assert_eq!(size_of::<TcpStateEvent>(), 24 + 8);
        assert_eq!(
            size_of::<SockOpsEvent>(),
            24 + 4 * 2 + 16 * 2 + 4 * 2 + 8 + 4 * 8 + 8 * 2 + 64 + 4 * 16 + 4 * 2
        );
        assert_eq!(size_of::<SockMsgEvent>(), 24 + 16);
        assert_eq!(size_of::<TcpResetEvent>(), 24 + 8);
        assert_eq!(size_of::<FlowKey>(), 16 * 2 + 2 * 2 + 2 + 2);
        assert_eq!(size_of::<TracedFlow>(), 8 + 4 * 2);
        assert_eq!(size_of::<CaptureClient>(), 8);
        assert_eq!(size_of::<CaptureInterface>(), 8);
        assert_eq!(size_of::<PacketEvent>(), 24 + 4 * 4);
        assert_eq!(size_of::<SockCreateEvent>(), 24 + 4 * 4 + 16);
        assert_eq!(size_of::<SockReleaseEvent>(), 24);
        assert_eq!(size_of::<ConnectEvent>(), 24 + 4 * 2 + 16 + 4 * 2 + 16);
    }
}
