//! The traced flows as the programs see them: registering a flow direction
//! ([`register_direction`], from `sock_ops` and `cgroup_skb`) and finding one ([`find`], from
//! the TC programs), through each CPU's cache of the flows it found lately.
//!
//! The cache spares a flow's later packets the hash lookup in [`TRACED_FLOWS`] (the hash of a
//! 40-byte key and two or three cache lines nobody touched since the flow's last packet): an
//! entry is one cache line that this CPU wrote at that packet. Only programs on its own CPU
//! write or read it. An entry is used only if its epoch is its slot's current one
//! ([`FLOW_EPOCH`], one per slot), which moves on after every removal (userspace) and
//! replacement (here and in userspace) of a flow of that slot: no run that reads the epoch
//! after it moved uses a copy from before (a run on another CPU in the moment between the
//! map's change and the move may, as a lookup that began before the change would). On a weakly
//! ordered CPU this takes a full barrier on each side: the exchange that claims an entry
//! (see [`find`]), and after a change, the writer's (see [`flow_replaced`] and userspace's
//! `FlowEpochs::advance`). Each entry's state word holds a sequence number, odd while the entry
//! is written: a run that interrupted a writer, or raced one, neither takes a half-written
//! entry nor writes it. An all-zero entry (as the map starts) matches no packet: a real key
//! has its protocol and family.
use core::intrinsics::{AtomicOrdering, atomic_cxchg, atomic_xadd, atomic_xchg};

use aya_ebpf::bindings::{BPF_ANY, BPF_NOEXIST};
use nettrace_common::{CachedFlow, FlowKey, TracedFlow, limits};

use crate::{
    emit::mark_port_pair,
    maps::{FLOW_CACHE, FLOW_EPOCH, TRACED_FLOWS},
};

/// The entry of each CPU's cache whose state word serves only as a barrier
/// ([`flow_replaced`]): after the cached flows.
const BARRIER_ENTRY: u32 = limits::FLOW_CACHE_ENTRIES;

/// Bits of a state word that hold the sequence number.
const SEQ_BITS: u32 = 16;

/// A state word of `epoch` (its low 48 bits) and sequence number `seq` (its low 16 bits).
#[inline(always)]
fn state(epoch: u64, seq: u64) -> u64 {
    (epoch << SEQ_BITS) | (seq & ((1 << SEQ_BITS) - 1))
}

/// The epoch of a state word (the low 48 bits of the epoch it was written with).
#[inline(always)]
fn epoch_of(state: u64) -> u64 {
    state >> SEQ_BITS
}

/// Words of a [`FlowKey`], compared and copied one by one.
const KEY_WORDS: usize = core::mem::size_of::<FlowKey>() / 4;

/// Makes packets of `key` belong to `flow`: its pair of ports marked, then its entry inserted.
/// An entry that was there already (another socket's of the same addresses and ports, whose
/// removal has not come yet) is replaced and the epoch of its cache slot moved on, so that no
/// CPU keeps using its cached copy. A full map only costs this flow its packets.
#[inline(always)]
pub(crate) fn register_direction(key: &FlowKey, flow: &TracedFlow) {
    mark_port_pair(key);
    if TRACED_FLOWS
        .insert(key, flow, u64::from(BPF_NOEXIST))
        .is_err()
        && TRACED_FLOWS.insert(key, flow, u64::from(BPF_ANY)).is_ok()
    {
        flow_replaced(key);
    }
}

/// Moves the epoch of `key`'s slot on after its flow was replaced: every CPU's cached flow of
/// that slot is looked up again.
#[inline(always)]
fn flow_replaced(key: &FlowKey) {
    // Both lookups are of indexes below their maps' sizes: they do not fail.
    if let (Some(epoch), Some(barrier)) = (
        FLOW_EPOCH.get_ptr_mut(key.cache_slot()),
        FLOW_CACHE.get_ptr_mut(BARRIER_ENTRY),
    ) {
        // SAFETY: the pointers come from successful array lookups and stay valid for the
        // run; every writer moves an epoch with atomic adds. The exchange of this CPU's
        // barrier word (no flow's) is a full barrier (the add itself orders nothing, and the
        // map's update only releases what came before it): the change to the flow map is
        // seen before the new epoch.
        unsafe {
            atomic_xchg::<u64, { AtomicOrdering::SeqCst }>(&raw mut (*barrier).state, 0);
            atomic_xadd::<u64, u64, { AtomicOrdering::SeqCst }>(epoch, 1);
        }
    }
}

/// The low 48 bits of slot `slot`'s current epoch (as [`epoch_of`] gives them back).
#[inline(always)]
fn current_epoch(slot: u32) -> u64 {
    match FLOW_EPOCH.get_ptr(slot) {
        // SAFETY: as in `flow_replaced`; a volatile load of the aligned 8-byte value.
        Some(epoch) => unsafe { epoch_of(epoch.read_volatile() << SEQ_BITS) },
        None => 0,
    }
}

/// The flow of packets with `key`, if it is traced: from this CPU's cache when its entry holds
/// it in the slot's current epoch, else from [`TRACED_FLOWS`] (and then cached).
#[inline(always)]
pub(crate) fn find(key: &FlowKey) -> Option<TracedFlow> {
    let slot = key.cache_slot();
    let Some(entry) = FLOW_CACHE.get_ptr_mut(slot) else {
        return lookup(key);
    };
    // Read once, before the map: an entry cached below is no newer than this epoch.
    let epoch = current_epoch(slot);
    if let Some(flow) = cached(entry, key, epoch) {
        return Some(flow);
    }
    // SAFETY: `entry` comes from a successful lookup in this CPU's part of a per-CPU array:
    // valid for the run, and written only by runs on this CPU.
    unsafe {
        let before = (&raw const (*entry).state).read_volatile();
        if before & 1 != 0 {
            // A run this one interrupted is writing the entry.
            return lookup(key);
        }
        // Claims the entry, unless another run changed it since it was read (then this run
        // leaves it alone). The exchange is a full barrier: the epoch read before it is no
        // newer than the map read after it (a weakly ordered CPU could otherwise read the map
        // first), so an entry never holds a flow older than its epoch.
        let (_, claimed) = atomic_cxchg::<
            u64,
            { AtomicOrdering::SeqCst },
            { AtomicOrdering::SeqCst },
        >(&raw mut (*entry).state, before, before | 1);
        if !claimed {
            return lookup(key);
        }
        let found = lookup(key);
        let seq = before.wrapping_add(2);
        let after = match found {
            Some(flow) => {
                let key_at = (&raw mut (*entry).key).cast::<u32>();
                for (index, word) in key_words(key).iter().enumerate() {
                    key_at.add(index).write_volatile(*word);
                }
                (&raw mut (*entry).flow.cookie).write_volatile(flow.cookie);
                (&raw mut (*entry).flow.client_id).write_volatile(flow.client_id);
                (&raw mut (*entry).flow.direction).write_volatile(flow.direction);
                state(epoch, seq)
            }
            // Left as it was.
            None => state(epoch_of(before), seq),
        };
        // Written whole: readable again.
        (&raw mut (*entry).state).write_volatile(after);
        found
    }
}

/// The flow of `key` in [`TRACED_FLOWS`].
#[inline(always)]
fn lookup(key: &FlowKey) -> Option<TracedFlow> {
    // SAFETY: the value is copied out at once (map values stay valid during the run, RCU).
    unsafe { TRACED_FLOWS.get(key) }.copied()
}

/// The flow `entry` holds for `key` in `epoch`, if it does.
#[inline(always)]
fn cached(entry: *mut CachedFlow, key: &FlowKey, epoch: u64) -> Option<TracedFlow> {
    let wanted = key_words(key);
    // SAFETY: as in `find`. Volatile loads keep the sequence word's two reads around the
    // others.
    unsafe {
        let before = (&raw const (*entry).state).read_volatile();
        if before & 1 != 0 || epoch_of(before) != epoch {
            return None;
        }
        let words = (&raw const (*entry).key).cast::<u32>();
        for (index, word) in wanted.iter().enumerate() {
            if words.add(index).read_volatile() != *word {
                return None;
            }
        }
        let flow = TracedFlow {
            cookie: (&raw const (*entry).flow.cookie).read_volatile(),
            client_id: (&raw const (*entry).flow.client_id).read_volatile(),
            direction: (&raw const (*entry).flow.direction).read_volatile(),
        };
        ((&raw const (*entry).state).read_volatile() == before).then_some(flow)
    }
}

/// `key` as the words of its bytes.
#[inline(always)]
fn key_words(key: &FlowKey) -> [u32; KEY_WORDS] {
    // SAFETY: `FlowKey` is `#[repr(C)]`, 40 bytes of integers without padding (checked in
    // nettrace-common), 4-byte aligned: its bytes are 10 initialised words.
    unsafe { core::mem::transmute::<FlowKey, [u32; KEY_WORDS]>(*key) }
}
