//! `cgroup_skb/egress` and `cgroup_skb/ingress` on a traced cgroup: they see every packet of
//! the cgroup's sockets, starting at the IP header, wherever it goes.
//!
//! For traced sockets they copy what a trace parses from packets: DNS datagrams (UDP port 53,
//! both ways) and, on egress, TCP segments that start a TLS handshake record (the
//! ClientHello carries the server name). Egress UDP packets of a socket that captures also
//! register their flow in [`TRACED_FLOWS`] (both directions, once) before the packet reaches
//! the TC programs, so UDP flows are captured from their first packet without any lookup
//! being added to the TC path. Packets of other cgroups never run these programs; an
//! untraced socket of the cgroup costs one cookie lookup.
use core::ffi::c_void;

use aya_ebpf::{helpers::bpf_get_socket_cookie, macros::cgroup_skb, programs::SkBuffContext};
use nettrace_common::{
    CGROUP_PACKET_IFINDEX, FlowKey, TracedFlow, TracedSocket, direction, family, ip_protocol,
    socket_flags,
};

use crate::{
    capture::{Target, copy_packet},
    emit::{armed_generation, mark_port_pair, now, port_pair_marked, traced_socket},
    flows,
    maps::TRACED_FLOWS,
};

/// The verdict that lets the packet through.
const PASS: i32 = 1;
const DNS_PORT: u16 = 53;
/// TLS record content type "handshake".
const TLS_HANDSHAKE: u8 = 0x16;
/// Bytes copied of a DNS datagram or TLS handshake segment (IP header included).
const COPY_BYTES: u32 = 2048;

#[cgroup_skb(egress)]
pub fn nettrace_cgroup_skb_egress(ctx: SkBuffContext) -> i32 {
    inspect(&ctx, direction::SENT);
    PASS
}

#[cgroup_skb(ingress)]
pub fn nettrace_cgroup_skb_ingress(ctx: SkBuffContext) -> i32 {
    inspect(&ctx, direction::RECEIVED);
    PASS
}

#[inline(always)]
fn inspect(ctx: &SkBuffContext, way: u32) {
    // SAFETY: `sk` of the skb context: the packet's socket, or NULL.
    let sk = unsafe { (*ctx.skb.skb).__bindgen_anon_2.sk };
    let Some(socket) = traced_socket(sk.cast()) else {
        return;
    };
    // SAFETY: the skb context is a valid argument of the cookie helper (it reads skb->sk).
    let cookie = unsafe { bpf_get_socket_cookie(ctx.skb.skb as *mut c_void) };
    let _ = packet(ctx, cookie, &socket, way);
}

/// The addresses of a packet, its protocol and where its transport header starts.
struct Headers {
    family: u32,
    protocol: u8,
    src: [u32; 4],
    dst: [u32; 4],
    l4: usize,
}

#[inline(always)]
fn headers(ctx: &SkBuffContext) -> Result<Option<Headers>, i64> {
    let first: u8 = ctx.load(0)?;
    match first >> 4 {
        4 => {
            let header_len = ((first & 0x0f) as usize) * 4;
            if header_len < 20 {
                return Ok(None);
            }
            // Only a first fragment (offset 0) carries the ports.
            let fragment: u16 = ctx.load(6)?;
            if u16::from_be(fragment) & 0x1fff != 0 {
                return Ok(None);
            }
            Ok(Some(Headers {
                family: family::INET,
                protocol: ctx.load(9)?,
                src: [ctx.load(12)?, 0, 0, 0],
                dst: [ctx.load(16)?, 0, 0, 0],
                l4: header_len,
            }))
        }
        // IPv6 without extension headers (a packet with them is not looked at).
        6 => Ok(Some(Headers {
            family: family::INET6,
            protocol: ctx.load(6)?,
            src: ctx.load(8)?,
            dst: ctx.load(24)?,
            l4: 40,
        })),
        _ => Ok(None),
    }
}

#[inline(always)]
fn packet(ctx: &SkBuffContext, cookie: u64, socket: &TracedSocket, way: u32) -> Result<(), i64> {
    let Some(h) = headers(ctx)? else {
        return Ok(());
    };
    let src_port = u16::from_be(ctx.load(h.l4)?);
    let dst_port = u16::from_be(ctx.load(h.l4 + 2)?);
    let copy = if h.protocol == ip_protocol::UDP {
        if way == direction::SENT && socket.flags & socket_flags::CAPTURE != 0 {
            register_udp_flow(cookie, socket.client_id, &h, src_port, dst_port);
        }
        src_port == DNS_PORT || dst_port == DNS_PORT
    } else if h.protocol == ip_protocol::TCP && way == direction::SENT {
        let data_offset: u8 = ctx.load(h.l4 + 12)?;
        let payload = h.l4 + ((data_offset >> 4) as usize) * 4;
        (payload as u32) < ctx.len() && ctx.load::<u8>(payload)? == TLS_HANDSHAKE
    } else {
        false
    };
    if copy {
        let target = Target {
            skb: &ctx.skb,
            ifindex: CGROUP_PACKET_IFINDEX,
            client_id: socket.client_id,
            cookie,
            way,
            time_ns: now(),
        };
        copy_packet(&target, COPY_BYTES);
    }
    Ok(())
}

/// Registers both directions of a UDP flow of a capturing socket, unless already there for it.
#[inline(always)]
fn register_udp_flow(cookie: u64, client_id: u32, h: &Headers, src_port: u16, dst_port: u16) {
    let sent = FlowKey {
        src_addr: h.src,
        dst_addr: h.dst,
        src_port,
        dst_port,
        protocol: ip_protocol::UDP,
        family: h.family as u8,
        _pad: 0,
    };
    let received = FlowKey {
        src_addr: h.dst,
        dst_addr: h.src,
        src_port: dst_port,
        dst_port: src_port,
        ..sent
    };
    // SAFETY: the value is copied out at once (map values stay valid during the run, RCU).
    if let Some(known) = unsafe { TRACED_FLOWS.get(&sent) }.copied()
        && known.cookie == cookie
        && known.client_id == client_id
    {
        // An entry from before the programs were armed again has marks of an older
        // generation (either direction's: another flow may share one of the marks):
        // marked again, or the TC programs would skip its packets.
        let generation = armed_generation();
        if !port_pair_marked(generation, src_port, dst_port)
            || !port_pair_marked(generation, dst_port, src_port)
        {
            mark_port_pair(&sent);
            mark_port_pair(&received);
        }
        return;
    }
    // New, or the entry of an earlier socket of the same addresses and ports: (re)placed.
    for (key, way) in [(sent, direction::SENT), (received, direction::RECEIVED)] {
        let flow = TracedFlow {
            cookie,
            client_id,
            direction: way,
        };
        flows::register_direction(&key, &flow);
    }
}
