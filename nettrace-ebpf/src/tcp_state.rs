//! `tp_btf/inet_sock_set_state`: the TCP state transitions of a traced socket, including the
//! first one (CLOSE -> SYN_SENT), which happens before any sock_ops callback can run; those
//! that a `sock_ops` record stands for are left to it
//! ([`nettrace_common::socket_flags::STATE_CALLBACKS`]).
//! The socket's entry lives in the socket (socket storage) and goes with it: after a reset the
//! application may still read from a socket in CLOSE, and its calls are still seen.
use core::ffi::c_void;

use aya_ebpf::{
    helpers::bpf_get_socket_cookie, macros::btf_tracepoint, programs::BtfTracePointContext,
};
use nettrace_common::{TcpStateEvent, event_kind};

use crate::{
    emit::{armed, emit, header, traced_socket},
    sock_ops::transition_sent_by_sock_ops,
};

/// Arguments: `(const struct sock *sk, int oldstate, int newstate)`.
#[btf_tracepoint(function = "inet_sock_set_state")]
pub fn nettrace_inet_sock_set_state(ctx: BtfTracePointContext) -> i32 {
    if !armed() {
        return 0;
    }
    let old_state: i32 = ctx.arg(1);
    let new_state: i32 = ctx.arg(2);
    // A state set again is no transition: `close()` after `shutdown()` (FIN-WAIT-2 stays
    // FIN-WAIT-2), or on a socket already in CLOSE (after a reset), which would otherwise
    // report a second CLOSE after userspace had retired the socket.
    if old_state == new_state {
        return 0;
    }
    let sk: *mut c_void = ctx.arg(0);
    let Some(socket) = traced_socket(sk) else {
        return 0;
    };
    // Sent by the sock_ops program instead, in a record that carries the counters too.
    if transition_sent_by_sock_ops(socket.flags, old_state as u32, new_state as u32) {
        return 0;
    }
    // SAFETY: `sk` is the BTF-typed socket pointer the tracepoint was called with; the helper
    // accepts it in tracing programs (bpf_get_socket_ptr_cookie).
    let cookie = unsafe { bpf_get_socket_cookie(sk) };
    emit(
        socket.client_id,
        TcpStateEvent {
            header: header(event_kind::TCP_STATE, cookie, socket.client_id),
            old_state: old_state as u32,
            new_state: new_state as u32,
        },
    );
    0
}
