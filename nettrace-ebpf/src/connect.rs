//! `cgroup/connect4` and `cgroup/connect6` on a traced cgroup: each `connect()` of a traced
//! socket with its destination and the calling process, before the kernel acts on it. The
//! outcome follows from the socket's other events (TCP states, resets).
use core::ffi::c_void;

use aya_ebpf::{
    bindings::bpf_sock_addr, helpers::bpf_get_socket_cookie, macros::cgroup_sock_addr,
    programs::SockAddrContext,
};
use nettrace_common::{ConnectEvent, event_kind, family};

use crate::{
    cgroup_sock::{current_comm, current_pid},
    emit::{emit, header, traced_socket},
};

/// The verdict that lets the connect go on.
const ALLOW: i32 = 1;

/// One volatile load of a `bpf_sock_addr` field (the verifier rewrites each context access).
macro_rules! field {
    ($addr:expr, $($field:tt)+) => {
        // SAFETY: `$addr` is the context pointer the kernel passed in; the verifier checks
        // every context field access.
        unsafe { core::ptr::read_volatile(core::ptr::addr_of!((*$addr).$($field)+)) }
    };
}

#[cgroup_sock_addr(connect4)]
pub fn nettrace_connect4(ctx: SockAddrContext) -> i32 {
    let addr = ctx.sock_addr;
    report(&ctx, family::INET, [field!(addr, user_ip4), 0, 0, 0]);
    ALLOW
}

#[cgroup_sock_addr(connect6)]
pub fn nettrace_connect6(ctx: SockAddrContext) -> i32 {
    let addr = ctx.sock_addr;
    let remote = [
        field!(addr, user_ip6[0]),
        field!(addr, user_ip6[1]),
        field!(addr, user_ip6[2]),
        field!(addr, user_ip6[3]),
    ];
    report(&ctx, family::INET6, remote);
    ALLOW
}

#[inline(always)]
fn report(ctx: &SockAddrContext, sock_family: u32, remote_addr: [u32; 4]) {
    let addr: *mut bpf_sock_addr = ctx.sock_addr;
    // SAFETY: `sk` of the sock_addr context is the connecting socket, never NULL here.
    let sk = unsafe { (*addr).__bindgen_anon_1.sk };
    let Some(socket) = traced_socket(sk.cast()) else {
        return;
    };
    // SAFETY: the sock_addr context is a valid argument of the cookie helper.
    let cookie = unsafe { bpf_get_socket_cookie(addr as *mut c_void) };
    // `user_port` holds the port in network byte order in its lower 16 bits.
    let remote_port = u16::from_be(field!(addr, user_port) as u16) as u32;
    emit(
        socket.client_id,
        ConnectEvent {
            header: header(event_kind::CONNECT, cookie, socket.client_id),
            family: sock_family,
            protocol: field!(addr, protocol),
            remote_addr,
            remote_port,
            pid: current_pid(),
            comm: current_comm(),
        },
    );
}
