//! [`FlowEpochs`]: the flows' epochs (`FLOW_EPOCH`, one per slot of the programs' flow
//! cache), mapped. Userspace moves a slot's epoch on after every removal or replacement of a
//! traced flow of that slot, as the programs do after theirs, so that the TC programs' per-CPU
//! flow caches stop using their copies of it (see the eBPF crate's `flows` module).
use std::sync::atomic::{AtomicU64, Ordering};

use aya::maps::Map;
use nettrace_common::{FlowKey, limits, map_name};

use super::{KernelError, mapped::MappedArray};

/// The mapped epochs.
#[derive(Debug)]
pub(super) struct FlowEpochs(MappedArray);

// SAFETY: the mapping is process-wide memory, and its values are only changed atomically.
unsafe impl Send for FlowEpochs {}
// SAFETY: as above.
unsafe impl Sync for FlowEpochs {}

impl FlowEpochs {
    /// Maps `map`, the `FLOW_EPOCH` array, and moves every epoch on once, so that the all-zero
    /// entries the caches start with are of no current epoch.
    pub(super) fn map(map: Map) -> Result<Self, KernelError> {
        let epochs = MappedArray::map(
            map,
            map_name::FLOW_EPOCH,
            size_of::<u64>(),
            limits::FLOW_CACHE_ENTRIES as usize,
        )
        .map(Self)?;
        for slot in 0..limits::FLOW_CACHE_ENTRIES {
            epochs.epoch(slot).fetch_add(1, Ordering::SeqCst);
        }
        Ok(epochs)
    }

    /// Moves the epoch of `key`'s slot on; call it after its flow was removed or replaced,
    /// never before: a program that reads the new epoch then finds the map as it is now.
    pub(super) fn advance(&self, key: &FlowKey) {
        // A full barrier: the map's change (a system call that returned) comes first.
        self.epoch(key.cache_slot()).fetch_add(1, Ordering::SeqCst);
    }

    /// The epoch of `slot` (below [`limits::FLOW_CACHE_ENTRIES`]).
    fn epoch(&self, slot: u32) -> &AtomicU64 {
        let slot = (slot & (limits::FLOW_CACHE_ENTRIES - 1)) as usize;
        // SAFETY: the mapping starts with the array's values, 8 bytes each and page-aligned,
        // `slot` is below their count, and the mapping lives as long as `self`; the programs
        // change the values only with atomic adds.
        unsafe { AtomicU64::from_ptr(self.0.base().as_ptr().cast::<u64>().add(slot)) }
    }
}
