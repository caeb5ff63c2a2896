//! `cgroup/sock_create` and `cgroup/sock_release` on a traced cgroup: every TCP or UDP socket
//! created there is registered in [`TRACED_SOCKETS`] at once (so its whole life is seen, as
//! for a socket registered by userspace before `connect()`), and its creation and release
//! are reported. On the cgroup root, `sock_create` also registers the socket that a thread
//! announced in [`ANNOUNCED_SOCKETS`] just before creating it (the library's own sockets:
//! no registration call, and the cookie comes back in the announcement).
//!
//! [`TRACED_SOCKETS`]: crate::maps::TRACED_SOCKETS
use core::ffi::c_void;

use aya_ebpf::{
    helpers::{bpf_get_current_comm, bpf_get_current_pid_tgid, bpf_get_socket_cookie},
    macros::cgroup_sock,
    programs::SockContext,
};
use nettrace_common::{
    SockCreateEvent, SockReleaseEvent, TracedSocket, announcement_state, event_kind, family,
    ip_protocol, limits,
};

use crate::{
    emit::{emit, header, traced_socket, traced_socket_ptr},
    maps::{ANNOUNCED_SOCKETS, CGROUP_TRACE},
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

/// The family, type and protocol of the socket being created, if it is an IPv4/IPv6 TCP or
/// UDP socket: the kinds traced.
#[inline(always)]
fn traced_kind(sock: *mut aya_ebpf::bindings::bpf_sock) -> Option<(u32, u32, u32)> {
    let sock_family = field!(sock, family);
    let sock_type = field!(sock, type_);
    let protocol = field!(sock, protocol);
    let inet = sock_family == family::INET || sock_family == family::INET6;
    let tcp_or_udp = (sock_type == SOCK_STREAM && protocol == u32::from(ip_protocol::TCP))
        || (sock_type == SOCK_DGRAM && protocol == u32::from(ip_protocol::UDP));
    (inet && tcp_or_udp).then_some((sock_family, sock_type, protocol))
}

/// On the cgroup root: registers the socket the calling thread announced, if it did. Every
/// other socket creation of the machine costs a thread id and one array load.
#[cgroup_sock(sock_create)]
pub fn nettrace_sock_create_announced(ctx: SockContext) -> i32 {
    let thread = bpf_get_current_pid_tgid() as u32;
    let Some(slot) = ANNOUNCED_SOCKETS.get_ptr_mut(thread & (limits::ANNOUNCEMENT_SLOTS - 1))
    else {
        return ALLOW;
    };
    // SAFETY: `slot` comes from a successful array lookup and stays valid for the run. The
    // first two reads run for every thread of the machine and may meet another thread's
    // compare-and-swap on the slot: a stale value only fails the match. Past the match, the
    // slot is held by the thread running this program (inside its `socket()` call), which
    // alone writes it until then, so the rest races with nothing; volatile, since userspace
    // maps the same memory.
    unsafe {
        let announced = &raw mut (*slot).thread;
        let state = &raw mut (*slot).state;
        if announced.read_volatile() != thread
            || state.read_volatile() != announcement_state::PENDING
        {
            return ALLOW;
        }
        let sock = ctx.sock;
        let registered = traced_kind(sock).is_some()
            // A socket registered already (by a traced descendant cgroup's program, which runs
            // first) is left to its owner: the thread then registers it the ordinary way.
            && traced_socket_ptr(sock as *mut c_void, None).is_none()
            && {
                let cookie = bpf_get_socket_cookie(sock as *mut c_void);
                let mut socket = (*slot).socket;
                socket.cookie = cookie;
                (&raw mut (*slot).socket.cookie).write_volatile(cookie);
                // Out of memory only costs the socket this way of registering.
                traced_socket_ptr(sock as *mut c_void, Some(&mut socket)).is_some()
            };
        state.write_volatile(if registered {
            announcement_state::DONE
        } else {
            announcement_state::FAILED
        });
    }
    ALLOW
}

#[cgroup_sock(sock_create)]
pub fn nettrace_sock_create(ctx: SockContext) -> i32 {
    let sock = ctx.sock;
    let Some((sock_family, sock_type, protocol)) = traced_kind(sock) else {
        return ALLOW;
    };
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
    let Some(entry) = traced_socket_ptr(sock as *mut c_void, Some(&mut socket)) else {
        return ALLOW;
    };
    // An entry stored before this program ran (a socket the library announced, when the
    // traced cgroup is the root) belongs to its client: no creation to report here.
    // SAFETY: `entry` points into the socket's storage, valid for this run.
    if unsafe { (*entry).client_id } != socket.client_id {
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
        emit(
            socket.client_id,
            SockReleaseEvent {
                header: header(event_kind::SOCK_RELEASE, socket.cookie, socket.client_id),
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
