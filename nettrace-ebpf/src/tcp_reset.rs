//! `tp_btf/tcp_send_reset` and `tp_btf/tcp_receive_reset`: resets sent or received on a traced
//! socket. A reset sent without a socket (for a packet matching none) has a NULL `sk`; one
//! sent from a TIME_WAIT socket has a socket without the traced entry (it is not a full
//! socket): neither is reported.
use core::ffi::c_void;

use aya_ebpf::{macros::btf_tracepoint, programs::BtfTracePointContext};
use nettrace_common::{TcpResetEvent, direction, event_kind};

use crate::emit::{armed, emit, header, traced_socket};

/// The first argument of both is the socket.
#[inline(always)]
fn report(ctx: &BtfTracePointContext, direction: u32) -> i32 {
    if !armed() {
        return 0;
    }
    let sk: *mut c_void = ctx.arg(0);
    let Some(socket) = traced_socket(sk) else {
        return 0;
    };
    let cookie = socket.cookie;
    emit(
        socket.client_id,
        TcpResetEvent {
            header: header(event_kind::TCP_RESET, cookie, socket.client_id),
            direction,
            _pad: 0,
        },
    );
    0
}

#[btf_tracepoint(function = "tcp_send_reset")]
pub fn nettrace_tcp_send_reset(ctx: BtfTracePointContext) -> i32 {
    report(&ctx, direction::SENT)
}

#[btf_tracepoint(function = "tcp_receive_reset")]
pub fn nettrace_tcp_receive_reset(ctx: BtfTracePointContext) -> i32 {
    report(&ctx, direction::RECEIVED)
}
