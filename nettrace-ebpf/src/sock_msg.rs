//! `tp_btf/sock_send_length` and `tp_btf/sock_recv_length`: the kernel's view of each send and
//! receive call on a traced socket (TCP or UDP), with its result or error.
//!
//! A socket with [`socket_flags::FOLD_CALLS`] has its calls counted in its entry instead of a
//! record per call: a record per call cost a keep-alive request about 3 us of the client's
//! CPU (issue 16). Its totals are sent only for a failed call, or a call after CLOSE (when no
//! `sock_ops` record will carry them any more).
use core::{
    ffi::c_void,
    intrinsics::{AtomicOrdering, atomic_xadd},
};

use aya_ebpf::{macros::btf_tracepoint, programs::BtfTracePointContext};
use nettrace_common::{
    SockCallsEvent, SockMsgEvent, SocketCalls, direction, event_kind, socket_flags,
};

use crate::emit::{armed, emit, header, traced_socket_ptr};

/// `EAGAIN`: the call found nothing to do yet.
const EAGAIN: i32 = 11;

/// Arguments of both: `(struct sock *sk, int ret, int flags)`.
#[inline(always)]
fn report(ctx: &BtfTracePointContext, direction: u32) -> i32 {
    if !armed() {
        return 0;
    }
    let sk: *mut c_void = ctx.arg(0);
    let Some(entry) = traced_socket_ptr(sk, None) else {
        return 0;
    };
    let ret: i32 = ctx.arg(1);
    // SAFETY: `entry` points into the socket's storage, valid for this program run. Its
    // cookie is the socket's (every way of storing an entry writes it): no helper call.
    let (client_id, flags, cookie) =
        unsafe { ((*entry).client_id, (*entry).flags, (*entry).cookie) };
    if flags & socket_flags::FOLD_CALLS != 0 {
        // SAFETY: as above; the counters are only ever updated atomically.
        let calls = unsafe { &raw mut (*entry).calls };
        let failed = count_call(calls, direction, ret);
        if failed || flags & socket_flags::CLOSED != 0 {
            send_totals(calls, cookie, client_id);
        }
        return 0;
    }
    let msg_flags: i32 = ctx.arg(2);
    emit(
        client_id,
        SockMsgEvent {
            header: header(event_kind::SOCK_MSG, cookie, client_id),
            direction,
            ret,
            flags: msg_flags as u32,
            _pad: 0,
        },
    );
    0
}

/// Adds one call returning `ret` to `calls`; true when it failed (other than `EAGAIN`).
#[inline(always)]
fn count_call(calls: *mut SocketCalls, direction: u32, ret: i32) -> bool {
    let sent = direction == direction::SENT;
    // SAFETY: `calls` points into the socket's storage, valid for this program run; every
    // program updates these fields atomically (calls may run on several CPUs at once). The
    // BPF target has no atomic types: the intrinsic becomes the instruction set's atomic add.
    let add = |field: *mut u64, n: u64| unsafe {
        atomic_xadd::<u64, u64, { AtomicOrdering::Relaxed }>(field, n);
    };
    // SAFETY (field projections): `calls` is valid, as above.
    unsafe {
        add(
            if sent {
                &raw mut (*calls).send_calls
            } else {
                &raw mut (*calls).recv_calls
            },
            1,
        );
        if ret >= 0 {
            let bytes = if sent {
                &raw mut (*calls).bytes_sent
            } else {
                &raw mut (*calls).bytes_received
            };
            add(bytes, ret as u64);
            return false;
        }
        if ret == -EAGAIN {
            add(&raw mut (*calls).would_block, 1);
            return false;
        }
        // The errno first: a copy that sees the new error count sees its errno too.
        core::ptr::write_volatile(&raw mut (*calls).last_errno, (-ret) as u64);
        let errors = if sent {
            &raw mut (*calls).send_errors
        } else {
            &raw mut (*calls).recv_errors
        };
        add(errors, 1);
    }
    true
}

/// Sends the totals `calls` of the socket `cookie` of client `client_id`.
#[inline(always)]
fn send_totals(calls: *mut SocketCalls, cookie: u64, client_id: u32) {
    // SAFETY: `calls` points into the socket's storage, valid for this program run; a copy
    // that races with another CPU's add is off by that call, which the next totals include.
    let calls = unsafe { core::ptr::read_volatile(calls) };
    emit(
        client_id,
        SockCallsEvent {
            header: header(event_kind::SOCK_CALLS, cookie, client_id),
            calls,
        },
    );
}

#[btf_tracepoint(function = "sock_send_length")]
pub fn nettrace_sock_send_length(ctx: BtfTracePointContext) -> i32 {
    report(&ctx, direction::SENT)
}

#[btf_tracepoint(function = "sock_recv_length")]
pub fn nettrace_sock_recv_length(ctx: BtfTracePointContext) -> i32 {
    report(&ctx, direction::RECEIVED)
}
