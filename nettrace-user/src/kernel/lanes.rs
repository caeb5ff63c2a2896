//! [`CallLanes`]: the reader of the per-CPU lanes in which the programs write the records of
//! single send and receive calls (`CALL_LANES`, see [`nettrace_common::CallLane`]): no ring
//! buffer lock per call (issue 16: a ring record costs about 150 ns of the traced call here).
//!
//! The lanes never wake a reader: they are read with the event ring, whenever it is (its
//! wakeups, the reader's tick, every snapshot). A lane that fills up meanwhile sends the
//! further calls to the ring, so nothing is lost that the ring would have kept.
use std::{
    io,
    os::fd::{AsFd, AsRawFd},
    ptr::NonNull,
    sync::atomic::{AtomicU64, Ordering},
};

use aya::maps::{Map, MapData};
use nettrace_common::{CallLane, SockMsgEvent, limits, map_name};

use super::KernelError;

/// The mapped lanes, one per possible CPU, and how far each was read.
pub(crate) struct CallLanes {
    lanes: NonNull<CallLane>,
    count: usize,
    bytes: usize,
    /// The map, so that its memory stays the programs' while mapped here.
    _map: MapData,
}

// SAFETY: the mapping is process-wide memory; the reader's fields are written only through
// `&mut self`, and the programs' fields are only read, atomically or by copy.
unsafe impl Send for CallLanes {}

impl std::fmt::Debug for CallLanes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallLanes")
            .field("count", &self.count)
            .finish_non_exhaustive()
    }
}

impl CallLanes {
    /// How many lanes to create: one per possible CPU (the programs index them by CPU).
    pub(crate) fn count() -> Result<u32, KernelError> {
        let count = aya::util::nr_cpus().map_err(|(_, source)| map_error(source))?;
        u32::try_from(count).map_err(|_| map_error(io::Error::other("too many CPUs")))
    }

    /// Maps the `CALL_LANES` array, created with [`Self::count`] lanes.
    pub(crate) fn map(map: Map) -> Result<Self, KernelError> {
        let Map::Array(map) = map else {
            return Err(KernelError::Missing {
                kind: "array map",
                name: map_name::CALL_LANES,
            });
        };
        let count = Self::count()? as usize;
        // SAFETY: `sysconf` has no preconditions.
        let page = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) })
            .map_err(|_| map_error(io::Error::last_os_error()))?;
        // The kernel lays the values out 8-byte aligned (the size is a multiple of 8) and maps
        // them from offset zero, whole pages.
        let bytes = (size_of::<CallLane>() * count).next_multiple_of(page);
        // SAFETY: a fresh shared mapping of the map's descriptor, whose value area is `bytes`
        // long (the array was created mappable with `count` lanes); nothing else is touched.
        let address = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                bytes,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                map.fd().as_fd().as_raw_fd(),
                0,
            )
        };
        if address == libc::MAP_FAILED {
            return Err(map_error(io::Error::last_os_error()));
        }
        let lanes = NonNull::new(address.cast::<CallLane>())
            .ok_or_else(|| map_error(io::Error::other("mmap returned NULL")))?;
        Ok(Self {
            lanes,
            count,
            bytes,
            _map: map,
        })
    }

    /// Hands each record written to the lanes since the last call to `take` (a lane's in
    /// order; lanes one after another), and frees their slots.
    pub(crate) fn drain(&mut self, mut take: impl FnMut(&[u8])) {
        for index in 0..self.count {
            // SAFETY: `index` is below the lane count, so the lane lies inside the mapping,
            // and `&mut self` makes this the only reader.
            unsafe { drain_lane(self.lanes.as_ptr().add(index), &mut take) };
        }
    }
}

/// Hands each record of `lane` from its reader's count up to its writer's to `take`, then
/// moves the reader's count on (which frees the slots for the writer).
///
/// # Safety
/// `lane` points to a live lane, 8-byte aligned, whose reader is the caller alone.
unsafe fn drain_lane(lane: *mut CallLane, take: &mut impl FnMut(&[u8])) {
    // SAFETY: 8-byte aligned fields of a live lane; `written` is only written by the
    // programs (atomically), `read` only by this reader (the caller's promise).
    let (written, read) = unsafe {
        (
            AtomicU64::from_ptr(&raw mut (*lane).written),
            AtomicU64::from_ptr(&raw mut (*lane).read.read),
        )
    };
    let end = written.load(Ordering::Acquire);
    let start = read.load(Ordering::Relaxed);
    // More than a lane's worth unread cannot happen (the programs never overwrite an unread
    // slot); if the counts say so, only the last lane's worth can be whole.
    let from = start.max(end.saturating_sub(limits::LANE_SLOTS as u64));
    for count in from..end {
        let slot = (count % limits::LANE_SLOTS as u64) as usize;
        // SAFETY: the slot lies in the lane; it was written before `written` passed it
        // (acquire above) and is not written again before `read` passes it, below.
        let record = unsafe { &raw const (*lane).slots[slot] };
        // SAFETY: a record is plain bytes (`repr(C)` without padding, written whole).
        let bytes =
            unsafe { std::slice::from_raw_parts(record.cast::<u8>(), size_of::<SockMsgEvent>()) };
        take(bytes);
    }
    if end != start {
        read.store(end, Ordering::Release);
    }
}

impl Drop for CallLanes {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `map`, unmapped once; nothing borrows it beyond a
        // `drain` call.
        unsafe { libc::munmap(self.lanes.as_ptr().cast(), self.bytes) };
    }
}

fn map_error(source: io::Error) -> KernelError {
    KernelError::Map {
        name: map_name::CALL_LANES,
        step: "mmap",
        source: Box::new(source),
    }
}

#[cfg(test)]
mod tests {
    use std::alloc::{Layout, alloc_zeroed, dealloc};

    use nettrace_common::{EventHeader, event_kind};

    use super::*;

    /// A zeroed lane on the heap, as the kernel creates one.
    struct HeapLane(*mut CallLane);

    impl HeapLane {
        fn new() -> Self {
            // SAFETY: a non-zero-sized layout; all-zero bytes are a valid `CallLane`.
            let lane = unsafe { alloc_zeroed(Layout::new::<CallLane>()) }.cast::<CallLane>();
            assert!(!lane.is_null());
            Self(lane)
        }

        /// Writes the call numbered `n` the way the programs do (slot, then the count).
        fn write(&mut self, n: u64) {
            // SAFETY: the lane is live and only this test touches it.
            unsafe {
                let lane = &mut *self.0;
                assert!(n - lane.read.read < limits::LANE_SLOTS as u64, "lane full");
                lane.slots[(n % limits::LANE_SLOTS as u64) as usize] = SockMsgEvent {
                    header: EventHeader {
                        kind: event_kind::SOCK_MSG,
                        client_id: 1,
                        timestamp_ns: n,
                        cookie: 7,
                    },
                    ret: n as i32,
                    ..SockMsgEvent::default()
                };
                lane.written = n + 1;
            }
        }

        /// The calls a drain hands out, by number.
        fn drain(&mut self) -> Vec<u64> {
            let mut seen = Vec::new();
            // SAFETY: the lane is live and this is its only reader.
            unsafe {
                drain_lane(self.0, &mut |record: &[u8]| {
                    assert_eq!(record.len(), size_of::<SockMsgEvent>());
                    let event = record.as_ptr().cast::<SockMsgEvent>().read_unaligned();
                    seen.push(event.header.timestamp_ns);
                });
            }
            seen
        }
    }

    impl Drop for HeapLane {
        fn drop(&mut self) {
            // SAFETY: allocated in `new` with this layout.
            unsafe { dealloc(self.0.cast(), Layout::new::<CallLane>()) };
        }
    }

    #[test]
    fn a_drain_hands_out_each_call_once_in_order_across_the_wrap() {
        let mut lane = HeapLane::new();
        assert!(lane.drain().is_empty());
        let slots = limits::LANE_SLOTS as u64;
        // Fill the lane to the last slot, read it, then write past the wrap.
        for n in 0..slots {
            lane.write(n);
        }
        assert_eq!(lane.drain(), (0..slots).collect::<Vec<_>>());
        assert!(lane.drain().is_empty(), "read calls come back");
        for n in slots..slots + 10 {
            lane.write(n);
        }
        assert_eq!(lane.drain(), (slots..slots + 10).collect::<Vec<_>>());
        // SAFETY: the lane is live; read after the drains.
        assert_eq!(unsafe { (*lane.0).read.read }, slots + 10);
    }

    #[test]
    fn counts_more_than_a_lane_apart_yield_only_the_last_lanes_worth() {
        let mut lane = HeapLane::new();
        // Counts no program writes (it never overwrites an unread slot): a reader still
        // hands out no more than a lane holds.
        // SAFETY: the lane is live and only this test touches it.
        unsafe { (*lane.0).written = 3 * limits::LANE_SLOTS as u64 };
        assert_eq!(lane.drain().len(), limits::LANE_SLOTS);
        assert!(lane.drain().is_empty());
    }
}
