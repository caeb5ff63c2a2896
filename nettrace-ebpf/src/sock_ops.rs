//! cgroup `sock_ops`: established callbacks with the socket's addresses and counters, and the
//! retransmit, RTO and state-change callbacks the program turns on for traced sockets at
//! connect (the connect callback itself is sent only for a socket whose flow is captured: it
//! tells userspace the flow's keys).
//!
//! The RTT minimum is the kernel's own (`tcp_sock.rtt_min`, a context field), read with each
//! record: a callback per RTT sample (per ACK) ran the program once per request of a
//! keep-alive connection for that one number. Of the state-change callbacks only the one to
//! CLOSE is sent, for the kernel's final counters; a socket whose calls are counted in its
//! entry ([`socket_flags::FOLD_CALLS`]) also reports the transitions that `close()` and
//! `shutdown()` make (to FIN-WAIT-1 or LAST-ACK, or to the same state: a `close()` after
//! `shutdown()`), whose record carries the totals: after `close()` the application has no
//! descriptor left through which userspace could read them.
//!
//! A record sent at a transition stands for it ([`sock_ops_record::TRANSITION`]), and so does
//! the active-established one for SYN-SENT to ESTABLISHED: the `inet_sock_set_state`
//! tracepoint leaves these out (issue 16: each record cost the kernel a ring reservation and
//! userspace a decode and a dispatch). A socket that counts its calls in its entry sends no
//! established record at all: its counters stay in the entry
//! ([`nettrace_common::TracedSocket::established`]), where userspace reads them with the call
//! totals while the socket is open, and its transitions wait there for its next record.
use aya_ebpf::{
    bindings::{
        BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB, BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB,
        BPF_SOCK_OPS_RETRANS_CB, BPF_SOCK_OPS_RETRANS_CB_FLAG, BPF_SOCK_OPS_RTO_CB,
        BPF_SOCK_OPS_RTO_CB_FLAG, BPF_SOCK_OPS_STATE_CB, BPF_SOCK_OPS_STATE_CB_FLAG,
        BPF_SOCK_OPS_TCP_CONNECT_CB,
    },
    macros::sock_ops,
    programs::SockOpsContext,
};
use nettrace_common::{
    EstablishedCounters, FlowKey, SockOpsEvent, TracedFlow, TracedSocket, direction, event_kind,
    family, ip_protocol, sock_ops_record, socket_flags,
};

use crate::{
    emit::{armed, emit, header, now, send_held_transitions, traced_socket_ptr},
    flows,
};

/// Callbacks asked for on every traced socket at connect time.
const CALLBACK_FLAGS: u32 =
    BPF_SOCK_OPS_RETRANS_CB_FLAG | BPF_SOCK_OPS_RTO_CB_FLAG | BPF_SOCK_OPS_STATE_CB_FLAG;

/// The kernel's `TCP_ESTABLISHED` state.
const TCP_ESTABLISHED: u32 = 1;
/// `TCP_SYN_SENT`.
pub(crate) const TCP_SYN_SENT: u32 = 2;
/// `TCP_CLOSE` (`args[1]` of the state callback is the new state).
pub(crate) const TCP_CLOSE: u32 = 7;
/// `TCP_FIN_WAIT1`: the application closed first.
const TCP_FIN_WAIT1: u32 = 4;
/// `TCP_LAST_ACK`: the application closed after the peer.
const TCP_LAST_ACK: u32 = 9;

/// Whether the state callback from `old` to `new` of a socket with `flags` becomes a record:
/// the one to CLOSE (the kernel's final counters), and for a socket that counts its calls in
/// its entry the application's `close()` / `shutdown()` (the totals, which userspace cannot
/// read once the descriptor is gone).
#[inline(always)]
pub(crate) fn state_callback_sent(flags: u32, old: u32, new: u32) -> bool {
    new == TCP_CLOSE || (flags & socket_flags::FOLD_CALLS != 0 && closed_by_application(old, new))
}

/// Whether a state change from `old` to `new` is the application's `close()` or
/// `shutdown()`: the kernel moves to FIN-WAIT-1 or LAST-ACK, or, closing a socket already
/// shut down (FIN-WAIT-1/2, CLOSING), sets the state it is in.
#[inline(always)]
fn closed_by_application(old: u32, new: u32) -> bool {
    new == TCP_FIN_WAIT1 || new == TCP_LAST_ACK || old == new
}

/// Whether the transition from `old` to `new` of a socket with `flags` reaches userspace as a
/// record of this program ([`sock_ops_record::TRANSITION`]), so that the state tracepoint
/// leaves it out: those of the state callback that are sent, and SYN-SENT to ESTABLISHED of a
/// socket that sends an established record (one without [`socket_flags::FOLD_CALLS`]), which
/// the active-established callback right after it stands for. Only for a socket whose state
/// callbacks are on ([`socket_flags::STATE_CALLBACKS`]).
#[inline(always)]
pub(crate) fn transition_sent_by_sock_ops(flags: u32, old: u32, new: u32) -> bool {
    flags & socket_flags::STATE_CALLBACKS != 0
        && (state_callback_sent(flags, old, new)
            || (flags & socket_flags::FOLD_CALLS == 0
                && old == TCP_SYN_SENT
                && new == TCP_ESTABLISHED))
}

/// One volatile load of a `bpf_sock_ops` field, which the compiler can neither merge with
/// another nor turn into a load through an offset context pointer.
macro_rules! field {
    ($ops:expr, $($field:tt)+) => {
        // SAFETY: `$ops` is the context pointer the kernel passed in; the verifier checks every
        // context field access and rewrites it into the matching socket field load.
        unsafe { core::ptr::read_volatile(core::ptr::addr_of!((*$ops).$($field)+)) }
    };
}

#[sock_ops]
pub fn nettrace_sock_ops(ctx: SockOpsContext) -> u32 {
    // The questions the kernel asks of every socket (about half the runs per connection,
    // both ends) return before the socket's storage is looked up.
    let op = ctx.op();
    if !armed() || !reported(op) {
        return 1;
    }
    // Of the state callbacks only those that may be sent (whatever the socket's flags) go on
    // to the lookup: to CLOSE, which marks the entry too, and the application's close.
    if op == BPF_SOCK_OPS_STATE_CB
        && !state_callback_sent(socket_flags::FOLD_CALLS, ctx.arg(0), ctx.arg(1))
    {
        return 1;
    }
    // SAFETY: `sk` of the sock_ops context: the callback's socket (a full one for every
    // callback this program acts on), or NULL.
    let sk = unsafe { (*ctx.ops).__bindgen_anon_2.sk };
    let Some(entry) = traced_socket_ptr(sk.cast(), None) else {
        return 1;
    };
    // SAFETY: `entry` points into the map value found above, valid for this program run.
    // Field by field: a copy of the whole entry would take a third of the program's stack.
    let (client_id, registered_flags) = unsafe { ((*entry).client_id, (*entry).flags) };
    let mut flags = registered_flags;
    // Another sock_ops program may have replaced the socket's callback flags since connect
    // (the helper sets them all): without the state callback, the tracepoint must send every
    // transition again, CLOSE included. Seen only from a callback of ours that still runs (an
    // established one, or retransmit/RTO if kept); a CLOSE lost otherwise ends the tracer's
    // wait for it (`RETIRE_WAIT` in the library).
    if op != BPF_SOCK_OPS_TCP_CONNECT_CB
        && flags & socket_flags::STATE_CALLBACKS != 0
        && ctx.cb_flags() & BPF_SOCK_OPS_STATE_CB_FLAG == 0
    {
        flags &= !socket_flags::STATE_CALLBACKS;
        // SAFETY: as above; the callbacks run under the socket lock, and the other programs
        // only read the flags.
        unsafe { (*entry).flags = flags };
    }
    // The callback's arguments; with `transition`, the old and new state of the transition
    // the record stands for (see `socket_flags::STATE_CALLBACKS`). Plain values rather than
    // an `Option` of an array: the verifier rejects the uninitialised payload of a `None`
    // that the compiler spills.
    let mut args = [ctx.arg(0), ctx.arg(1)];
    let mut transition = false;
    match op {
        BPF_SOCK_OPS_STATE_CB => {
            let [old_state, new_state] = args;
            if new_state == TCP_CLOSE {
                // SAFETY: as above.
                unsafe { (*entry).flags = flags | socket_flags::CLOSED };
            }
            if !state_callback_sent(flags, old_state, new_state) {
                return 1;
            }
            // Only when the tracepoint left the transition out: the entry may lack the flag
            // while the kernel's callback is on (a socket registered again after connect).
            transition =
                old_state != new_state && transition_sent_by_sock_ops(flags, old_state, new_state);
        }
        BPF_SOCK_OPS_TCP_CONNECT_CB => {
            // The kernel returns the flags it does not know; those it knows are set. Without
            // state callbacks (an old kernel) the tracepoint sends every transition.
            let unknown = match ctx.set_cb_flags((ctx.cb_flags() | CALLBACK_FLAGS) as i32) {
                Ok(()) => 0,
                Err(bits) => bits,
            };
            // A socket connecting again after CLOSE (a failed attempt) is no longer closed.
            flags &= !(socket_flags::CLOSED | socket_flags::STATE_CALLBACKS);
            if unknown >= 0 && unknown as u32 & BPF_SOCK_OPS_STATE_CB_FLAG == 0 {
                flags |= socket_flags::STATE_CALLBACKS;
            }
            // SAFETY: as above.
            unsafe { (*entry).flags = flags };
            if flags & socket_flags::STATE_CALLBACKS == 0 {
                // No later record is sure to come for the transition to SYN-SENT that the
                // tracepoint held for this one: it goes as a state record now.
                // SAFETY: as above; the callbacks run under the socket lock.
                unsafe { send_held_transitions(entry, (*entry).cookie) };
            }
            // The record only tells userspace the flow it registers for capture (carrying the
            // transition to SYN-SENT); the counters are all zero.
            if flags & socket_flags::CAPTURE == 0 {
                return 1;
            }
        }
        // The flags as the tracepoint saw them when it left SYN-SENT to ESTABLISHED out (or
        // held it), just before this callback (even if they were cleared above since).
        BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB
            if registered_flags & socket_flags::STATE_CALLBACKS != 0 =>
        {
            if registered_flags & socket_flags::FOLD_CALLS == 0 {
                args = [TCP_SYN_SENT, TCP_ESTABLISHED];
                transition = true;
            } else if flags & socket_flags::STATE_CALLBACKS != 0 {
                // The next record (of the application's close, or of CLOSE) will carry the
                // held transitions; the counters wait in the entry for a snapshot of the open
                // connection.
                // SAFETY: as above.
                unsafe { keep_established_counters(ctx.ops, entry) };
                return 1;
            }
            // Without the state callback no record of CLOSE is sure to come: this one carries
            // the held transitions.
        }
        _ => {}
    }
    // SAFETY: as above.
    let cookie = unsafe { (*entry).cookie };
    let ops = ctx.ops;
    let sock_family = field!(ops, family);
    // Each context field is its own load: the verifier forbids loads through a context pointer
    // the compiler has offset, which is what merged or selected loads would produce.
    let (local_addr, remote_addr) = if sock_family == family::INET6 {
        (
            [
                field!(ops, local_ip6[0]),
                field!(ops, local_ip6[1]),
                field!(ops, local_ip6[2]),
                field!(ops, local_ip6[3]),
            ],
            [
                field!(ops, remote_ip6[0]),
                field!(ops, remote_ip6[1]),
                field!(ops, remote_ip6[2]),
                field!(ops, remote_ip6[3]),
            ],
        )
    } else {
        (
            [field!(ops, local_ip4), 0, 0, 0],
            [field!(ops, remote_ip4), 0, 0, 0],
        )
    };
    // The kernel's smallest RTT sample (over `net.ipv4.tcp_min_rtt_wlen`, 5 minutes by
    // default), `NO_RTT` before the first.
    let min_rtt_us = field!(ops, rtt_min);
    let local_port = field!(ops, local_port);
    let remote_port = remote_port(field!(ops, remote_port));
    if op == BPF_SOCK_OPS_TCP_CONNECT_CB && registered_flags & socket_flags::CAPTURE != 0 {
        let local = (local_addr, local_port as u16);
        let remote = (remote_addr, remote_port as u16);
        register_flow(cookie, client_id, sock_family, local, remote);
    }
    // The transitions the tracepoint held for this record, which carries them from here on.
    // SAFETY: as above; the callbacks run under the socket lock, as the tracepoint does.
    let (held, held_count, calls) = unsafe { ((*entry).held, (*entry).held_count, (*entry).calls) };
    // SAFETY: as above.
    unsafe { (*entry).held_count = 0 };
    emit(
        client_id,
        SockOpsEvent {
            header: header(event_kind::SOCK_OPS, cookie, client_id),
            op,
            family: sock_family,
            local_addr,
            remote_addr,
            local_port,
            remote_port,
            args,
            state: field!(ops, state),
            srtt_us: field!(ops, srtt_us),
            snd_cwnd: field!(ops, snd_cwnd),
            total_retrans: field!(ops, total_retrans),
            segs_in: field!(ops, segs_in),
            segs_out: field!(ops, segs_out),
            min_rtt_us,
            record_flags: if min_rtt_us != NO_RTT {
                sock_ops_record::HAS_MIN_RTT
            } else {
                0
            } | if transition {
                sock_ops_record::TRANSITION
            } else {
                0
            },
            bytes_received: field!(ops, bytes_received),
            bytes_acked: field!(ops, bytes_acked),
            calls,
            held,
            held_count,
            _pad: 0,
        },
    );
    1
}

/// Stores the counters of the socket of `ops`, just established, in its entry `entry`
/// ([`TracedSocket::established`]).
///
/// # Safety
/// `ops` is the program's context and `entry` the socket's entry found in this run; the
/// callback runs under the socket lock.
#[inline(always)]
unsafe fn keep_established_counters(
    ops: *mut aya_ebpf::bindings::bpf_sock_ops,
    entry: *mut TracedSocket,
) {
    let counters = EstablishedCounters {
        timestamp_ns: now(),
        srtt_us: field!(ops, srtt_us),
        min_rtt_us: field!(ops, rtt_min),
        snd_cwnd: field!(ops, snd_cwnd),
        total_retrans: field!(ops, total_retrans),
        segs_in: field!(ops, segs_in),
        segs_out: field!(ops, segs_out),
    };
    // SAFETY: the caller's promise.
    unsafe { (*entry).established = counters };
}

/// Makes both directions of a connecting TCP socket's flow known to the capture programs,
/// before its SYN leaves. Userspace removes the entries when the socket is done.
#[inline(always)]
fn register_flow(
    cookie: u64,
    client_id: u32,
    sock_family: u32,
    local: ([u32; 4], u16),
    remote: ([u32; 4], u16),
) {
    for (src, dst, direction) in [
        (local, remote, direction::SENT),
        (remote, local, direction::RECEIVED),
    ] {
        let key = FlowKey {
            src_addr: src.0,
            dst_addr: dst.0,
            src_port: src.1,
            dst_port: dst.1,
            protocol: ip_protocol::TCP,
            family: sock_family as u8,
            _pad: 0,
        };
        let flow = TracedFlow {
            cookie,
            client_id,
            direction,
        };
        flows::register_direction(&key, &flow);
    }
}

/// Callbacks that become events. The others (timeout/rwnd init, ECN, header options) are
/// questions the kernel asks; the program leaves their answers at the defaults.
#[inline(always)]
fn reported(op: u32) -> bool {
    matches!(
        op,
        BPF_SOCK_OPS_TCP_CONNECT_CB
            | BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB
            | BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB
            | BPF_SOCK_OPS_RTO_CB
            | BPF_SOCK_OPS_RETRANS_CB
            | BPF_SOCK_OPS_STATE_CB
    )
}

/// `tcp_sock.rtt_min` before the first RTT sample.
const NO_RTT: u32 = u32::MAX;

/// `bpf_sock_ops.remote_port` holds the port in network byte order, in the upper 16 bits on
/// current kernels and in the lower 16 bits on old ones; returns it in host order.
#[inline(always)]
fn remote_port(raw: u32) -> u32 {
    let be = if raw & 0xffff == 0 { raw >> 16 } else { raw };
    u16::from_be(be as u16) as u32
}
