//! `tp_btf/inet_sock_set_state`: the TCP state transitions of a traced socket, including the
//! first one (CLOSE -> SYN_SENT), which happens before any sock_ops callback can run; those
//! that a `sock_ops` record stands for are left to it, and the others wait in the socket's
//! entry for the next `sock_ops` record to carry them
//! ([`nettrace_common::socket_flags::STATE_CALLBACKS`]).
//! The socket's entry lives in the socket (socket storage) and goes with it: after a reset the
//! application may still read from a socket in CLOSE, and its calls are still seen.
use core::ffi::c_void;

use aya_ebpf::{macros::btf_tracepoint, programs::BtfTracePointContext};
use nettrace_common::{TcpStateEvent, event_kind, socket_flags};

use crate::{
    emit::{
        armed, emit, header_at, hold_transition, now, send_held_transitions, traced_socket_ptr,
    },
    sock_ops::{TCP_CLOSE, TCP_SYN_SENT, state_callback_sent, transition_sent_by_sock_ops},
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
    let (old_state, new_state) = (old_state as u32, new_state as u32);
    let sk: *mut c_void = ctx.arg(0);
    let Some(entry) = traced_socket_ptr(sk, None) else {
        return 0;
    };
    // SAFETY: `entry` points into the socket's storage, valid for this run; the tracepoint
    // runs under the socket lock, as the `sock_ops` callbacks that also write the entry.
    let (mut flags, client_id, held) =
        unsafe { ((*entry).flags, (*entry).client_id, (*entry).held_count) };
    // Marked whichever program sends the transition: userspace asks the entry whether a
    // socket whose connect failed will still report a CLOSE (one that never left CLOSE will
    // not: closing it is no transition).
    if new_state == TCP_CLOSE && flags & socket_flags::CLOSED == 0 {
        flags |= socket_flags::CLOSED;
        // SAFETY: as above.
        unsafe { (*entry).flags = flags };
    }
    // Sent by the sock_ops program instead, in a record that carries the counters too.
    let sent_by_sock_ops = transition_sent_by_sock_ops(flags, old_state, new_state);
    if sent_by_sock_ops {
        // The kernel calls the state callback before this tracepoint, and its record takes
        // the held transitions along. Some still held: our callback did not run (another
        // program replaced the socket's callback flags), so they and this transition go as
        // state records, and so will the socket's later ones.
        if held == 0 || !state_callback_sent(flags, old_state, new_state) {
            return 0;
        }
        // SAFETY: as above.
        unsafe { (*entry).flags = flags & !socket_flags::STATE_CALLBACKS };
    }
    let timestamp_ns = now();
    // Held for the socket's next sock_ops record: one ring record less.
    // SAFETY: as above.
    if !sent_by_sock_ops
        && held_for_sock_ops(flags, old_state, new_state)
        && unsafe { hold_transition(entry, timestamp_ns, old_state, new_state) }
    {
        return 0;
    }
    send_with_held(entry, client_id, timestamp_ns, old_state, new_state);
    0
}

/// Sends the transition `old_state` -> `new_state` of the socket of entry `entry` at
/// `timestamp_ns` as a state record, after those its entry holds (to keep the order).
#[inline(always)]
fn send_with_held(
    entry: *mut nettrace_common::TracedSocket,
    client_id: u32,
    timestamp_ns: u64,
    old_state: u32,
    new_state: u32,
) {
    // SAFETY: `entry` is the socket's entry found in this run, under the socket lock.
    let cookie = unsafe { (*entry).cookie };
    // SAFETY: as above.
    unsafe { send_held_transitions(entry, cookie) };
    emit(
        client_id,
        TcpStateEvent {
            header: header_at(event_kind::TCP_STATE, cookie, client_id, timestamp_ns),
            old_state,
            new_state,
        },
    );
}

/// Whether the transition `old` -> `new` of a socket with `flags` waits in its entry for a
/// `sock_ops` record to carry it ([`nettrace_common::socket_flags::STATE_CALLBACKS`]): every
/// one of a socket with the state callbacks on (each ends in a record: CLOSE at the latest),
/// and the first of a connecting socket, whose connect callback comes right after it.
#[inline(always)]
fn held_for_sock_ops(flags: u32, old: u32, new: u32) -> bool {
    flags & socket_flags::STATE_CALLBACKS != 0 || (old == TCP_CLOSE && new == TCP_SYN_SENT)
}
