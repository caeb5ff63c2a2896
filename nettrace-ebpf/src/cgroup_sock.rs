//! `cgroup/sock_create` and `cgroup/sock_release` on a traced cgroup: every TCP or UDP socket
//! created there is registered in [`TRACED_SOCKETS`] at once (so its whole life is seen, as
//! for a socket registered by userspace before `connect()`), and its creation and release
//! are reported.
use core::ffi::c_void;

use aya_ebpf::{
    helpers::{bpf_get_current_comm, bpf_get_current_pid_tgid, bpf_get_socket_cookie},
    macros::cgroup_sock,
    programs::SockContext,
};
use nettrace_common::{
    SockCreateEvent, SockReleaseEvent, TracedSocket, event_kind, family, ip_protocol,
};

use crate::{
    emit::{emit, header, traced_socket, traced_socket_ptr},
    maps::CGROUP_TRACE,
};

const SOCK_STREAM: u32 = 1;
const SOCK_DGRAM: u32 = 2;

/// One volatile load of a `bpf_sock` field (the verifier rewrites each context access).
macro_rules! field {
    ($sock:expr, $field:ident) => {
        // SAFETY: `$sock` is the context pointer the kernel passed in; the verifier checks
        // every context field access.
        unsafe { core::ptr::read_volatile(core::ptr::addr_of!((*$sock).$field)) }
    };
}

/// The verdict that lets the operation go on.
const ALLOW: i32 = 1;

#[cgroup_sock(sock_create)]
pub fn nettrace_sock_create(ctx: SockContext) -> i32 {
    let sock = ctx.sock;
    let sock_family = field!(sock, family);
    let sock_type = field!(sock, type_);
    let protocol = field!(sock, protocol);
    let inet = sock_family == family::INET || sock_family == family::INET6;
    let tcp_or_udp = (sock_type == SOCK_STREAM && protocol == u32::from(ip_protocol::TCP))
        || (sock_type == SOCK_DGRAM && protocol == u32::from(ip_protocol::UDP));
    if !inet || !tcp_or_udp {
        return ALLOW;
    }
    let Some(config) = CGROUP_TRACE.get(0).copied() else {
        return ALLOW;
    };
    // SAFETY: the sock context is a valid argument of the cookie helper.
    let cookie = unsafe { bpf_get_socket_cookie(sock as *mut c_void) };
    let mut socket = TracedSocket {
        client_id: config.client_id,
        flags: config.flags,
        generation: config.generation,
        cookie,
        ..TracedSocket::default()
    };
    // Out of memory only costs this socket its kernel facts; the socket is created anyway.
    if traced_socket_ptr(sock as *mut c_void, Some(&mut socket)).is_none() {
        return ALLOW;
    }
    emit(
        socket.client_id,
        SockCreateEvent {
            header: header(event_kind::SOCK_CREATE, cookie, socket.client_id),
            family: sock_family,
            sock_type,
            protocol,
            pid: current_pid(),
            comm: current_comm(),
        },
    );
    ALLOW
}

#[cgroup_sock(sock_release)]
pub fn nettrace_sock_release(ctx: SockContext) -> i32 {
    if let Some(socket) = traced_socket(ctx.sock as *mut c_void) {
        // SAFETY: the sock context is a valid argument of the cookie helper.
        let cookie = unsafe { bpf_get_socket_cookie(ctx.sock as *mut c_void) };
        emit(
            socket.client_id,
            SockReleaseEvent {
                header: header(event_kind::SOCK_RELEASE, cookie, socket.client_id),
            },
        );
    }
    ALLOW
}

/// The calling process's id (thread group id).
#[inline(always)]
pub(crate) fn current_pid() -> u32 {
    (bpf_get_current_pid_tgid() >> 32) as u32
}

/// The calling thread's command name (zeros if the helper fails).
#[inline(always)]
pub(crate) fn current_comm() -> [u8; 16] {
    bpf_get_current_comm().unwrap_or([0; 16])
}
