//! The two steps every program shares: "is this socket traced?" and "send this record".
use core::{
    ffi::c_void,
    intrinsics::{AtomicOrdering, atomic_xchg},
};

use aya_ebpf::{
    bindings::{
        BPF_RB_AVAIL_DATA, BPF_RB_FORCE_WAKEUP, BPF_RB_NO_WAKEUP, BPF_SK_STORAGE_GET_F_CREATE,
    },
    helpers::{
        bpf_ktime_get_ns,
        generated::{bpf_get_smp_processor_id, bpf_sk_storage_get},
    },
    maps::{Array, PerCpuArray, RingBuf},
};
use nettrace_common::{
    EventHeader, EventSlot, FlowKey, HeldTransition, Lane, TcpStateEvent, TracedSocket, event_kind,
    limits, port_pair_slot,
};

use crate::maps::{
    ARMED, CLIENT_GENERATIONS, EVENT_LANES, EVENTS, FLOW_PORTS, LOST_EVENTS, TRACED_SOCKETS,
};

/// Whether userspace has anything registered at all. The first check of the programs that
/// run for every socket or packet: the verifier turns this array lookup into a direct load,
/// far cheaper than a socket cookie and a hash lookup (userspace sets the flag before it
/// registers its first socket or flow, and clears it after it removed its last one).
#[inline(always)]
pub(crate) fn armed() -> bool {
    armed_generation() != 0
}

/// The current generation of the flag, zero when disarmed: [`armed`] for a program that
/// needs the generation too ([`port_pair_marked`]).
#[inline(always)]
pub(crate) fn armed_generation() -> u32 {
    ARMED.get(0).copied().unwrap_or(0)
}

/// Marks the pair of ports of a flow direction about to be registered, so that the TC
/// programs look it up. The mark is a plain 4-byte store of the whole entry: no
/// read-modify-write to race with.
#[inline(always)]
pub(crate) fn mark_port_pair(key: &FlowKey) {
    let generation = armed_generation();
    if let Some(mark) = FLOW_PORTS.get_ptr_mut(key.port_pair_slot()) {
        // SAFETY: the pointer comes from a successful array lookup and stays valid for the
        // run; a concurrent store of the same generation is harmless.
        unsafe { mark.write_volatile(generation) };
    }
}

/// Whether the pair of ports from `src_port` to `dst_port` was marked in `generation`, the
/// current non-zero one ([`armed_generation`]): if not, no registered flow direction has these
/// ports and the flow lookup can be skipped.
#[inline(always)]
pub(crate) fn port_pair_marked(generation: u32, src_port: u16, dst_port: u16) -> bool {
    FLOW_PORTS
        .get(port_pair_slot(src_port, dst_port))
        .is_some_and(|mark| *mark == generation)
}

/// The traced-socket entry stored in socket `sk` (NULL: none), for in-place updates by the
/// program; with `create`, stores it first (only the cgroup programs register sockets
/// themselves). A socket with no storage at all costs one pointer load in the helper: no
/// cookie, no hash.
#[inline(always)]
pub(crate) fn traced_socket_ptr(
    sk: *mut c_void,
    create: Option<&mut TracedSocket>,
) -> Option<*mut TracedSocket> {
    if sk.is_null() {
        return None;
    }
    let map = core::ptr::from_ref(&TRACED_SOCKETS).cast_mut().cast();
    let (value, flags) = match create {
        Some(value) => (
            core::ptr::from_mut(value).cast(),
            u64::from(BPF_SK_STORAGE_GET_F_CREATE),
        ),
        None => (core::ptr::null_mut(), 0),
    };
    // SAFETY: `map` is the socket-storage map's definition; `sk` is a socket pointer of the
    // program's context, which the verifier checks against the helper's argument type (and
    // the helper returns NULL for a socket that is not a full one).
    let entry = unsafe { bpf_sk_storage_get(map, sk, value, flags) }.cast::<TracedSocket>();
    if entry.is_null() {
        return None;
    }
    // SAFETY: a non-NULL storage pointer stays valid for the run.
    let (client_id, generation) = unsafe { ((*entry).client_id, (*entry).generation) };
    // Only an entry of the slot's current client counts (see `CLIENT_GENERATIONS`).
    let current = CLIENT_GENERATIONS.get(client_id).copied();
    (current == Some(generation)).then_some(entry)
}

/// The traced-socket entry stored in socket `sk`, if the socket is traced.
#[inline(always)]
pub(crate) fn traced_socket(sk: *mut c_void) -> Option<TracedSocket> {
    // SAFETY: the storage stays valid for the run (it is freed with the socket, after an RCU
    // grace period); the value is copied out at once.
    traced_socket_ptr(sk, None).map(|entry| unsafe { *entry })
}

/// A header for an event of `kind` on `cookie` for client `client_id`, stamped now.
#[inline(always)]
pub(crate) fn header(kind: u32, cookie: u64, client_id: u32) -> EventHeader {
    header_at(kind, cookie, client_id, now())
}

/// [`header`] stamped `timestamp_ns`.
#[inline(always)]
pub(crate) fn header_at(kind: u32, cookie: u64, client_id: u32, timestamp_ns: u64) -> EventHeader {
    EventHeader {
        kind,
        client_id,
        timestamp_ns,
        cookie,
    }
}

/// The kernel's monotonic clock, as event headers carry it.
#[inline(always)]
pub(crate) fn now() -> u64 {
    // SAFETY: a plain helper call without arguments.
    unsafe { bpf_ktime_get_ns() }
}

/// Holds the transition `old` -> `new` at `timestamp_ns` in the socket's entry, for its next
/// `sock_ops` record to carry; false when the entry holds as many as it can.
///
/// # Safety
/// `entry` points to a socket's entry found in this run, and the socket is locked (the state
/// tracepoint and the `sock_ops` callbacks run under the socket lock), so nothing else writes
/// the held transitions meanwhile.
#[inline(always)]
pub(crate) unsafe fn hold_transition(
    entry: *mut TracedSocket,
    timestamp_ns: u64,
    old_state: u32,
    new_state: u32,
) -> bool {
    // SAFETY: the caller's promise.
    unsafe {
        let count = (*entry).held_count as usize;
        let Some(slot) = (*entry).held.get_mut(count) else {
            return false;
        };
        *slot = HeldTransition {
            timestamp_ns,
            old_state,
            new_state,
        };
        (*entry).held_count = count as u32 + 1;
    }
    true
}

/// Sends the transitions held in the socket's entry as state records of their own, oldest
/// first, and empties the list: before a transition that is sent as a record, or when no
/// `sock_ops` record will come to carry them.
///
/// # Safety
/// As for [`hold_transition`].
#[inline(always)]
pub(crate) unsafe fn send_held_transitions(entry: *mut TracedSocket, cookie: u64) {
    // SAFETY: the caller's promise.
    unsafe {
        let count = (*entry).held_count as usize;
        let client_id = (*entry).client_id;
        for index in 0..limits::HELD_TRANSITIONS {
            if index >= count {
                break;
            }
            let held = (*entry).held[index];
            emit(
                client_id,
                TcpStateEvent {
                    header: header_at(event_kind::TCP_STATE, cookie, client_id, held.timestamp_ns),
                    old_state: held.old_state,
                    new_state: held.new_state,
                },
            );
        }
        (*entry).held_count = 0;
    }
}

/// Unread bytes from which a new event wakes the reader. Waking it costs microseconds per
/// event (measured: 2.4 us per traced send with a wakeup each time; in a VM each wakeup is a
/// self-IPI, a VM exit), so the reader is woken once a batch has built up and otherwise
/// drains on its own 20 ms tick. 64 KiB is about 120 new library connections' events (two
/// `sock_ops` records of 264 bytes each), a quarter of the default ring (issue 16: at 32 KiB
/// the wakeups still took 0.3 us of the client's CPU per connection on this VM, about 14 us
/// each). A ring smaller than the mark is drained by the reader's tick and by snapshots
/// alone, as before.
pub(crate) const WAKEUP_BYTES: u64 = 64 * 1024;

/// The same for packets, whose records are up to 9 KiB each.
pub(crate) const PACKET_WAKEUP_BYTES: u64 = 64 * 1024;

/// Writes `event` to this CPU's event lane (see [`nettrace_common::Lane`]), or to the ring
/// buffer when the lane is full or taken by the program this run interrupted, or counts it as
/// lost for its client when the ring is full too.
#[inline(always)]
pub(crate) fn emit<T: Copy + 'static>(client_id: u32, event: T) {
    const {
        assert!(
            core::mem::size_of::<T>() <= core::mem::size_of::<EventSlot>()
                && core::mem::align_of::<T>() <= core::mem::align_of::<EventSlot>()
        );
    }
    let written = write_lane(&EVENT_LANES, |slot| {
        // SAFETY: `slot` points to a whole free slot of the lane, this run's alone, which holds
        // a `T` at its start (size and alignment checked above).
        // A plain write: the publishing exchange in `write_lane` orders it before the count.
        unsafe { slot.cast::<T>().write(event) };
        true
    });
    if written {
        return;
    }
    match EVENTS.reserve::<T>(0) {
        Some(mut entry) => {
            entry.write(event);
            entry.submit(wakeup_flags(
                &EVENTS,
                core::mem::size_of::<T>() as u64,
                WAKEUP_BYTES,
            ));
        }
        None => count_lost(&LOST_EVENTS, client_id),
    }
}

/// Takes this CPU's lane of `lanes`, lets `fill` write its next free slot and publishes the
/// slot if `fill` returns true. False when the lane is full, taken by the program this run
/// interrupted, or `fill` failed (the slot then stays free).
#[inline(always)]
pub(crate) fn write_lane<T, const N: usize>(
    lanes: &Array<Lane<T, N>>,
    fill: impl FnOnce(*mut T) -> bool,
) -> bool {
    // SAFETY: a plain helper call without arguments (the verifier inlines it).
    let cpu = unsafe { bpf_get_smp_processor_id() };
    let Some(lane) = lanes.get_ptr_mut(cpu) else {
        return false;
    };
    // SAFETY: `lane` comes from a successful array lookup and stays valid for the run. Only
    // programs on this CPU write it, and only the one that swapped `busy` from 0 to 1: a run
    // that interrupts the holder (programs do not migrate) finds it taken and returns.
    // `read` is userspace's: a stale value only makes the lane look fuller than it is.
    unsafe {
        if (&raw const (*lane).closed).read_volatile() != 0 {
            return false;
        }
        let busy = &raw mut (*lane).busy;
        if atomic_xchg::<u64, { AtomicOrdering::SeqCst }>(busy, 1) != 0 {
            return false;
        }
        let written = (&raw const (*lane).written).read_volatile();
        let read = (&raw const (*lane).read.read).read_volatile();
        let slot = (*lane)
            .slots
            .get_mut((written & (N as u64 - 1)) as usize)
            .map(core::ptr::from_mut);
        let stored = match slot {
            Some(slot) if written.wrapping_sub(read) < N as u64 && fill(slot) => {
                // The exchange is a full barrier: the slot is written before the new count
                // can be seen.
                atomic_xchg::<u64, { AtomicOrdering::SeqCst }>(
                    &raw mut (*lane).written,
                    written + 1,
                );
                true
            }
            _ => false,
        };
        busy.write_volatile(0);
        stored
    }
}

/// The submit flags for a record of `size` bytes just reserved in `ring`: wake the reader
/// each time the unread data crosses a multiple of `mark` bytes. So a reader that keeps up
/// is woken once per batch, and one that lags is woken again for every further batch; but
/// never for every record (measured: a wakeup per record costs 2.4 us per event, 7.4 us per
/// captured packet).
#[inline(always)]
pub(crate) fn wakeup_flags(ring: &RingBuf, size: u64, mark: u64) -> u64 {
    let unread = ring.query(BPF_RB_AVAIL_DATA as u64);
    let before = unread.saturating_sub(size);
    let flags = if unread / mark != before / mark {
        BPF_RB_FORCE_WAKEUP
    } else {
        BPF_RB_NO_WAKEUP
    };
    flags as u64
}

/// Counts a record of `client_id` that did not fit in its ring.
#[inline(always)]
pub(crate) fn count_lost(counters: &PerCpuArray<u64>, client_id: u32) {
    if let Some(counter) = counters.get_ptr_mut(client_id) {
        // SAFETY: the pointer comes from a successful lookup in a per-CPU array, so it is valid
        // and only this CPU writes it while the program runs (programs do not migrate).
        unsafe { *counter += 1 };
    }
}
