//! `tp_btf/sock_send_length` and `tp_btf/sock_recv_length`: the kernel's view of each send and
//! receive call on a traced socket (TCP or UDP), with its result or error.
use core::ffi::c_void;

use aya_ebpf::{
    helpers::bpf_get_socket_cookie, macros::btf_tracepoint, programs::BtfTracePointContext,
};
use nettrace_common::{SockMsgEvent, direction, event_kind};

use crate::emit::{armed, emit, header, traced_socket};

/// Arguments of both: `(struct sock *sk, int ret, int flags)`.
#[inline(always)]
fn report(ctx: &BtfTracePointContext, direction: u32) -> i32 {
    if !armed() {
        return 0;
    }
    let sk: *mut c_void = ctx.arg(0);
    let Some(socket) = traced_socket(sk) else {
        return 0;
    };
    // SAFETY: `sk` is the BTF-typed socket pointer of the tracepoint; the helper accepts it.
    let cookie = unsafe { bpf_get_socket_cookie(sk) };
    let ret: i32 = ctx.arg(1);
    let flags: i32 = ctx.arg(2);
    emit(
        socket.client_id,
        SockMsgEvent {
            header: header(event_kind::SOCK_MSG, cookie, &socket),
            direction,
            ret,
            flags: flags as u32,
            _pad: 0,
        },
    );
    0
}

#[btf_tracepoint(function = "sock_send_length")]
pub fn nettrace_sock_send_length(ctx: BtfTracePointContext) -> i32 {
    report(&ctx, direction::SENT)
}

#[btf_tracepoint(function = "sock_recv_length")]
pub fn nettrace_sock_recv_length(ctx: BtfTracePointContext) -> i32 {
    report(&ctx, direction::RECEIVED)
}
