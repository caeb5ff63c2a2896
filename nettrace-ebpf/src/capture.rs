//! TC classifiers on ingress and egress of the capture interfaces: packets of traced flows
//! (and, when asked, ICMP and ARP) are copied into the [`PACKETS`] ring buffer.
//!
//! While userspace has nothing registered a packet costs one array load
//! ([`crate::emit::armed_generation`]); otherwise an untraced TCP or UDP packet costs the header
//! fields that lead to its ports and one more array load (the mark of its pair of ports,
//! [`crate::emit::port_pair_marked`]). Its addresses and length are read, and its flow looked
//! up ([`crate::flows::find`]), only when a registered flow direction has its pair of ports
//! (or one sharing the mark). The copy is made with `bpf_skb_load_bytes`, so non-linear
//! packets (GSO on loopback) are copied too.
//! Every program returns "no verdict" (`TC_ACT_UNSPEC`, tcx "next"): packets flow on untouched.
use core::{ffi::c_void, marker::PhantomData, mem::MaybeUninit};

use aya_ebpf::{
    helpers::bpf_skb_load_bytes,
    macros::classifier,
    programs::{TcContext, sk_buff::SkBuff},
};
use nettrace_common::{
    ANY_CLIENT, EventHeader, FlowKey, LanePacket, PacketEvent, capture_flags, direction,
    event_kind, family, ip_protocol, limits,
};

use crate::{
    emit::{
        PACKET_WAKEUP_BYTES, armed_generation, count_lost, now, port_pair_marked, wakeup_flags,
        write_lane,
    },
    flows,
    maps::{CAPTURE_CLIENTS, CAPTURE_INTERFACES, LOST_PACKETS, PACKET_LANES, PACKETS},
};

/// "No verdict": the next program (tcx) or the default action decides.
const TC_ACT_UNSPEC: i32 = -1;
const ETHERNET_HEADER_LEN: usize = 14;
const ETH_P_IP: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86dd;
const ETH_P_ARP: u16 = 0x0806;
/// `__sk_buff.tstamp_type` of a time on the monotonic clock (`BPF_SKB_TSTAMP_DELIVERY_MONO`,
/// named `BPF_SKB_CLOCK_MONOTONIC` since Linux 6.11).
const TSTAMP_MONOTONIC: u8 = 1;

#[classifier]
pub fn nettrace_tc_ethernet_ingress(ctx: TcContext) -> i32 {
    capture(&ctx, ETHERNET_HEADER_LEN, direction::RECEIVED);
    TC_ACT_UNSPEC
}

#[classifier]
pub fn nettrace_tc_ethernet_egress(ctx: TcContext) -> i32 {
    capture(&ctx, ETHERNET_HEADER_LEN, direction::SENT);
    TC_ACT_UNSPEC
}

#[classifier]
pub fn nettrace_tc_raw_ip_ingress(ctx: TcContext) -> i32 {
    capture(&ctx, 0, direction::RECEIVED);
    TC_ACT_UNSPEC
}

#[classifier]
pub fn nettrace_tc_raw_ip_egress(ctx: TcContext) -> i32 {
    capture(&ctx, 0, direction::SENT);
    TC_ACT_UNSPEC
}

/// Packets that belong to no flow but may be asked for per interface.
#[derive(Clone, Copy)]
enum Unbound {
    Icmp,
    Arp,
}

/// `l2_len`: bytes before the network header; `way`: the hook's direction.
#[inline(always)]
fn capture(ctx: &TcContext, l2_len: usize, way: u32) {
    let generation = armed_generation();
    if generation == 0 {
        return;
    }
    let ethertype = if l2_len == 0 {
        // `__sk_buff.protocol` holds the ethertype in network byte order.
        u16::from_be(ctx.skb.protocol() as u16)
    } else {
        match read::<u16>(ctx, 12) {
            Ok(raw) => u16::from_be(raw),
            Err(_) => return,
        }
    };
    let _ = match ethertype {
        ETH_P_IP => ipv4(ctx, l2_len, way, generation),
        ETH_P_IPV6 => ipv6(ctx, l2_len, way, generation),
        ETH_P_ARP => {
            unbound(ctx, Unbound::Arp, way);
            Ok(())
        }
        _ => Ok(()),
    };
}

/// `generation`: the programs' current one (see [`port_pair_marked`]).
#[inline(always)]
fn ipv4(ctx: &TcContext, l3: usize, way: u32, generation: u32) -> Result<(), i64> {
    // The fixed 20 bytes under one bounds check; each field is loaded only when needed.
    let mut copy = MaybeUninit::uninit();
    let ip = Header::<20>::at(ctx, l3, &mut copy)?;
    let header_len = ((ip.field::<u8>(0) & 0x0f) as usize) * 4;
    if header_len < 20 {
        return Ok(());
    }
    let protocol: u8 = ip.field(9);
    if protocol == ip_protocol::ICMP {
        unbound(ctx, Unbound::Icmp, way);
        return Ok(());
    }
    if protocol != ip_protocol::TCP && protocol != ip_protocol::UDP {
        return Ok(());
    }
    // Only a first fragment (offset 0) carries the ports.
    if u16::from_be(ip.field(6)) & 0x1fff != 0 {
        return Ok(());
    }
    let l4 = l3 + header_len;
    let Some(ports) = marked_ports(ctx, l4, generation)? else {
        return Ok(());
    };
    let transport = Transport {
        offset: l4,
        ip_len: ip_len(u16::from_be(ip.field(2)), header_len as u32),
    };
    let ends = Ends {
        src_addr: [ip.field(12), 0, 0, 0],
        dst_addr: [ip.field(16), 0, 0, 0],
        ports,
    };
    flow(ctx, ends, family::INET, protocol, transport, way)
}

/// IPv6 without extension headers (a packet with them is not matched).
#[inline(always)]
fn ipv6(ctx: &TcContext, l3: usize, way: u32, generation: u32) -> Result<(), i64> {
    let mut copy = MaybeUninit::uninit();
    let ip = Header::<40>::at(ctx, l3, &mut copy)?;
    let next_header: u8 = ip.field(6);
    if next_header == ip_protocol::ICMPV6 {
        unbound(ctx, Unbound::Icmp, way);
        return Ok(());
    }
    if next_header != ip_protocol::TCP && next_header != ip_protocol::UDP {
        return Ok(());
    }
    let l4 = l3 + 40;
    let Some(ports) = marked_ports(ctx, l4, generation)? else {
        return Ok(());
    };
    let transport = Transport {
        offset: l4,
        ip_len: ip_len(u16::from_be(ip.field(4)), 0),
    };
    let ends = Ends {
        src_addr: ip.field(8),
        dst_addr: ip.field(24),
        ports,
    };
    flow(ctx, ends, family::INET6, next_header, transport, way)
}

/// The ports of the TCP or UDP header at `l4` (host order) when their pair was marked in
/// `generation`; `None` for most untraced packets, which then cost no more loads.
#[inline(always)]
fn marked_ports(ctx: &TcContext, l4: usize, generation: u32) -> Result<Option<(u16, u16)>, i64> {
    let mut copy = MaybeUninit::uninit();
    let header = Header::<4>::at(ctx, l4, &mut copy)?;
    let (src_port, dst_port) = (u16::from_be(header.field(0)), u16::from_be(header.field(2)));
    // One array load instead of a hash of the 40-byte key for most untraced packets, and
    // one cache line (not two, a port each) for a traced one.
    if !port_pair_marked(generation, src_port, dst_port) {
        return Ok(None);
    }
    Ok(Some((src_port, dst_port)))
}

/// Both ends of a packet: addresses (IPv4 in the first word) and ports, host order.
#[derive(Clone, Copy)]
struct Ends {
    src_addr: [u32; 4],
    dst_addr: [u32; 4],
    ports: (u16, u16),
}

/// Where a packet's transport header starts, and how long the IP header says the transport
/// part is (`None`: a GSO packet too big for the 16-bit field, BIG TCP, whose IP length is
/// zero; its real length is the packet's).
#[derive(Clone, Copy)]
struct Transport {
    offset: usize,
    ip_len: Option<u32>,
}

/// The transport length from an IP length field that counts `ip_header_len` bytes of IP
/// header too (IPv4 total length; IPv6 payload length, which counts none).
#[inline(always)]
fn ip_len(field: u16, ip_header_len: u32) -> Option<u32> {
    if field == 0 {
        return None;
    }
    Some(u32::from(field).saturating_sub(ip_header_len))
}

impl Transport {
    /// The transport part's length, from the IP header: not from the packet's length, which
    /// counts the padding of short Ethernet frames (a pure ACK would look like data).
    #[inline(always)]
    fn len(self, ctx: &TcContext) -> u32 {
        match self.ip_len {
            Some(len) => len,
            None => ctx.skb.len().saturating_sub(self.offset as u32),
        }
    }
}

/// A TCP or UDP packet whose pair of ports is marked and whose transport header is
/// `transport`: copied if its flow is traced.
#[inline(always)]
fn flow(
    ctx: &TcContext,
    ends: Ends,
    family: u32,
    protocol: u8,
    transport: Transport,
    way: u32,
) -> Result<(), i64> {
    let l4 = transport.offset;
    let Ends {
        src_addr,
        dst_addr,
        ports: (src_port, dst_port),
    } = ends;
    let key = FlowKey {
        src_addr,
        dst_addr,
        src_port,
        dst_port,
        protocol,
        family: family as u8,
        _pad: 0,
    };
    let Some(flow) = flows::find(&key) else {
        return Ok(());
    };
    // Only TCP's stamp: the stack's own departure time. A UDP or raw socket's comes from
    // the application (`SO_TXTIME`), which may name any time.
    let time_ns = if way == direction::SENT && protocol == ip_protocol::TCP {
        departure_time(ctx)
    } else {
        now()
    };
    let Some(client) = CAPTURE_CLIENTS.get(flow.client_id).copied() else {
        return Ok(());
    };
    let mut wanted = client.snaplen;
    if protocol == ip_protocol::TCP && client.flags & capture_flags::TCP_PAYLOAD == 0 {
        let data_offset: u8 = read(ctx, l4 + 12)?;
        let tcp_header_len = ((data_offset >> 4) as u32) * 4;
        // Go's `TCPWithoutPayload`: a segment that carries data is not captured at all.
        if client.flags & capture_flags::TCP_HEADERS_ONLY == 0
            && transport.len(ctx) > tcp_header_len
        {
            return Ok(());
        }
        let headers = l4 as u32 + tcp_header_len;
        if headers < wanted {
            wanted = headers;
        }
    }
    let target = Target {
        skb: &ctx.skb,
        ifindex: interface_index(ctx),
        client_id: flow.client_id,
        cookie: flow.cookie,
        way: flow.direction,
        time_ns,
    };
    copy_packet(&target, wanted);
    Ok(())
}

/// An ICMP or ARP packet: copied for every client that asked for its kind on this interface.
/// A subprogram of its own: rare, and out of the way of the traced flows' path.
#[inline(never)]
fn unbound(ctx: &TcContext, kind: Unbound, way: u32) {
    let ifindex = interface_index(ctx);
    // SAFETY: the value is copied out at once (map values stay valid during the run, RCU).
    let Some(interface) = (unsafe { CAPTURE_INTERFACES.get(&ifindex) }).copied() else {
        return;
    };
    let snaplen = match kind {
        Unbound::Icmp => interface.icmp_snaplen,
        Unbound::Arp => interface.arp_snaplen,
    };
    if snaplen != 0 {
        let target = Target {
            skb: &ctx.skb,
            ifindex,
            client_id: ANY_CLIENT,
            cookie: 0,
            way,
            time_ns: now(),
        };
        copy_packet(&target, snaplen);
    }
}

/// Reads a `T` at `offset` of the packet: straight from the packet's linear data when it is
/// there (the usual case: stacks build headers in the linear part), through the copying
/// helper otherwise.
#[inline(always)]
fn read<T: Copy>(ctx: &TcContext, offset: usize) -> Result<T, i64> {
    let (start, end) = (ctx.data(), ctx.data_end());
    // At least two bytes: for one, the compiler turns the check into `end > ptr`, from which
    // the verifier grants no access (the headers read here never end a packet).
    let checked = if core::mem::size_of::<T>() < 2 {
        2
    } else {
        core::mem::size_of::<T>()
    };
    if start + offset + checked <= end {
        // SAFETY: the bytes lie between `data` and `data_end` (checked just above, which is
        // also what the verifier checks); the read makes no alignment assumption.
        return Ok(unsafe { core::ptr::read_unaligned((start + offset) as *const T) });
    }
    ctx.load(offset)
}

/// `N` bytes of the packet's headers, checked against the packet's end once: in the linear
/// data when they are there (the usual case), else copied onto the stack by the helper.
/// Fields are then loaded one by one where they are used, with no further check.
#[derive(Clone, Copy)]
struct Header<'a, const N: usize> {
    start: *const u8,
    /// The copy, when the bytes are there, must outlive the header.
    _copy: PhantomData<&'a [u8; N]>,
}

impl<'a, const N: usize> Header<'a, N> {
    /// The `N` bytes at `offset`; `copy` holds them when they are not all in the linear data.
    #[inline(always)]
    fn at(ctx: &TcContext, offset: usize, copy: &'a mut MaybeUninit<[u8; N]>) -> Result<Self, i64> {
        let (start, end) = (ctx.data(), ctx.data_end());
        let start = if start + offset + N <= end {
            (start + offset) as *const u8
        } else {
            copy.write(ctx.load::<[u8; N]>(offset)?).as_ptr()
        };
        Ok(Self {
            start,
            _copy: PhantomData,
        })
    }

    /// The `T` at byte `at` of the header; `at + size_of::<T>()` is at most `N`.
    #[inline(always)]
    fn field<T: Copy>(self, at: usize) -> T {
        debug_assert!(at + core::mem::size_of::<T>() <= N);
        // SAFETY: `start` points to `N` readable bytes (the checked packet data, or the copy
        // that outlives `self`), and the field lies within them; no alignment is assumed.
        unsafe { core::ptr::read_unaligned(self.start.add(at) as *const T) }
    }
}

/// The index of the interface the packet is on.
#[inline(always)]
fn interface_index(ctx: &TcContext) -> u32 {
    // SAFETY: `skb` is the context pointer of the program; the verifier checks the field load.
    unsafe { core::ptr::read_volatile(core::ptr::addr_of!((*ctx.skb.skb).ifindex)) }
}

/// A ring record: the packet's description and room for `N` of its bytes.
#[repr(C)]
struct PacketRecord<const N: usize> {
    event: PacketEvent,
    data: [u8; N],
}

/// Copies the first `wanted` bytes of the packet (fewer if it is shorter) into this CPU's
/// packet lane if they fit there, else into the ring, in the smallest record size that holds
/// them (the ring needs sizes known when verifying).
#[inline(always)]
pub(crate) fn copy_packet(target: &Target<'_>, wanted: u32) {
    let packet_len = target.skb.len();
    let length = if wanted < packet_len {
        wanted
    } else {
        packet_len
    };
    if length <= limits::LANE_PACKET_BYTES as u32 && copy_into_lane(target, packet_len, length) {
        return;
    }
    copy_into_ring(target, packet_len, length);
}

/// The ring's way for a copy the lane did not take: a subprogram of its own, so that the
/// lane's path, the usual one, stays short and together in the program's code.
#[inline(never)]
fn copy_into_ring(target: &Target<'_>, packet_len: u32, length: u32) {
    let target = *target;
    if length <= 256 {
        copy_into::<256>(&target, packet_len, length);
    } else if length <= 2048 {
        copy_into::<2048>(&target, packet_len, length);
    } else {
        copy_into::<{ limits::MAX_PACKET_BYTES as usize }>(&target, packet_len, length);
    }
}

/// Copies the packet's first `length` bytes (at most [`limits::LANE_PACKET_BYTES`]) into
/// this CPU's packet lane; false when the lane is full or taken, or the copy failed.
#[inline(always)]
fn copy_into_lane(target: &Target<'_>, packet_len: u32, length: u32) -> bool {
    write_lane(&PACKET_LANES, |slot: *mut LanePacket| {
        // As in `copy_into`: the verifier must see 1 <= length <= the slot's room.
        let length = core::hint::black_box(length).clamp(1, limits::LANE_PACKET_BYTES as u32);
        // SAFETY: `slot` points to a whole free slot of the lane, this run's alone; `length`
        // is between 1 and the size of `data`, and at most the packet's length.
        unsafe {
            let data = core::ptr::addr_of_mut!((*slot).data) as *mut c_void;
            if bpf_skb_load_bytes(target.skb.skb as *const c_void, 0, data, length) != 0 {
                return false;
            }
            // A plain write: the publishing exchange in `write_lane` orders it before the count
            // (a volatile one made the compiler build the event on the stack and copy it).
            core::ptr::addr_of_mut!((*slot).event).write(packet_event(target, packet_len, length));
        }
        true
    })
}

/// The description of a packet of `packet_len` bytes of which `length` were copied.
#[inline(always)]
fn packet_event(target: &Target<'_>, packet_len: u32, length: u32) -> PacketEvent {
    PacketEvent {
        header: EventHeader {
            kind: event_kind::PACKET,
            client_id: target.client_id,
            timestamp_ns: target.time_ns,
            cookie: target.cookie,
        },
        ifindex: target.ifindex,
        direction: target.way,
        packet_len,
        captured_len: length,
    }
}

/// A packet to copy, and whom it is for.
#[derive(Clone, Copy)]
pub(crate) struct Target<'a> {
    /// The packet.
    pub(crate) skb: &'a SkBuff,
    /// The interface it was seen on (see [`nettrace_common::CGROUP_PACKET_IFINDEX`]).
    pub(crate) ifindex: u32,
    /// Its client slot ([`ANY_CLIENT`] for a packet of no flow).
    pub(crate) client_id: u32,
    /// Its socket's cookie (0 for none).
    pub(crate) cookie: u64,
    /// A [`nettrace_common::direction`].
    pub(crate) way: u32,
    /// Its time: when it was seen ([`now`]), or the departure time TCP gave an outgoing
    /// segment ([`departure_time`]).
    pub(crate) time_ns: u64,
}

/// When an outgoing TCP segment leaves: the departure time the stack gave it on the kernel's
/// monotonic clock if it has one (TCP stamps each segment it sends with its earliest
/// departure time, which is the time it built the segment unless pacing delays it; so it may
/// lie ahead of now by a pacing interval, which the reader caps at the time it read the
/// record), else the clock now. The stamp costs a field load where the clock costs about
/// 50 ns of a packet's 250 in real traffic (BENCHMARKS.md, session 19).
#[inline(always)]
fn departure_time(ctx: &TcContext) -> u64 {
    let skb = ctx.skb.skb;
    // SAFETY: `skb` is the context pointer of the program; the verifier checks the field loads
    // (reading `tstamp_type` makes it hand out `tstamp` as the stack set it).
    let (kind, stamp) = unsafe {
        (
            core::ptr::read_volatile(core::ptr::addr_of!((*skb).tstamp_type)),
            core::ptr::read_volatile(core::ptr::addr_of!((*skb).tstamp)),
        )
    };
    if kind == TSTAMP_MONOTONIC && stamp != 0 {
        stamp
    } else {
        now()
    }
}

#[inline(always)]
fn copy_into<const N: usize>(target: &Target<'_>, packet_len: u32, length: u32) {
    let Target { skb, client_id, .. } = *target;
    let Some(mut entry) = PACKETS.reserve::<PacketRecord<N>>(0) else {
        if client_id != ANY_CLIENT {
            count_lost(&LOST_PACKETS, client_id);
        }
        return;
    };
    let record = entry.as_mut_ptr();
    // The verifier must see 1 <= length <= N right before the copy. The compiler knows the
    // caller's bounds and would fold a check into one it cannot follow, so the value is
    // hidden from it and clamped (both bounds hold already: packets and snap lengths are
    // never empty).
    let length = core::hint::black_box(length).clamp(1, N as u32);
    // SAFETY: `record` points to the reserved ring memory of a whole `PacketRecord<N>`;
    // `length` is between 1 and N, the size of `data`, and at most the packet's length.
    let copied = unsafe {
        let data = core::ptr::addr_of_mut!((*record).data) as *mut c_void;
        bpf_skb_load_bytes(skb.skb as *const c_void, 0, data, length) == 0
    };
    if !copied {
        entry.discard(0);
        return;
    }
    // SAFETY: as above; the event part is fully written before the record is submitted.
    unsafe {
        core::ptr::addr_of_mut!((*record).event).write(packet_event(target, packet_len, length));
    }
    entry.submit(wakeup_flags(
        &PACKETS,
        core::mem::size_of::<PacketRecord<N>>() as u64,
        PACKET_WAKEUP_BYTES,
    ));
}
