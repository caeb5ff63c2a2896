//! [`Lanes`]: the reader of the per-CPU lanes in which the programs write their event records
//! (`EVENT_LANES`) and the captured packets that fit (`PACKET_LANES`), see
//! [`nettrace_common::Lane`]: no ring buffer lock per record (issue 16: a ring record costs
//! about 150 ns of the traced call, connection or packet here).
//!
//! The lanes never wake a reader: they are read with their ring buffer, whenever it is (its
//! wakeups, the reader's tick, every snapshot). A lane that fills up meanwhile sends the
//! further records to the ring, so nothing is lost that the ring would have kept.
use std::{
    io,
    sync::atomic::{AtomicU64, Ordering},
};

use aya::maps::Map;
use nettrace_common::{
    EventLane, EventSlot, LANE_SLOTS_OFFSET, LanePacket, PacketEvent, PacketLane, event_kind,
    event_record_len, limits, map_name,
};

use super::{KernelError, mapped::MappedArray};

/// Where a lane's counts and flag are: the same in every kind of lane (`Lane<T, N>` starts
/// with them).
const WRITTEN: usize = std::mem::offset_of!(EventLane, written);
const CLOSED: usize = std::mem::offset_of!(EventLane, closed);
const READ: usize = std::mem::offset_of!(EventLane, read.read);

/// The layout of one kind of lane, and how much of a slot its record takes.
#[derive(Debug)]
pub(crate) struct LaneKind {
    name: &'static str,
    /// Bytes of one lane ([`nettrace_common::Lane`]).
    lane_bytes: usize,
    /// Bytes of one slot.
    slot_bytes: usize,
    /// Slots of a lane (a power of two).
    slots: usize,
}

impl LaneKind {
    /// The name of the lane map.
    pub(crate) fn name(&self) -> &'static str {
        self.name
    }
}

/// The lanes of event records: each record as long as its kind says.
pub(crate) const EVENTS: LaneKind = LaneKind {
    name: map_name::EVENT_LANES,
    lane_bytes: size_of::<EventLane>(),
    slot_bytes: size_of::<EventSlot>(),
    slots: limits::EVENT_LANE_SLOTS,
};

/// The lanes of captured packets: the description and the bytes it says were captured.
pub(crate) const PACKETS: LaneKind = LaneKind {
    name: map_name::PACKET_LANES,
    lane_bytes: size_of::<PacketLane>(),
    slot_bytes: size_of::<LanePacket>(),
    slots: limits::PACKET_LANE_SLOTS,
};

/// The bytes of the record at the start of `bytes` (a lane's slot, or a ring record, which
/// may be longer than its record too): as long as its kind's records say, a packet's
/// description and the bytes it captured; at most `bytes` (all of them for a kind it does
/// not know: the decoder then reports the record). The rest, stale memory that may hold
/// another client's packet, is never handed on.
pub(crate) fn record_len(bytes: &[u8]) -> usize {
    let word = |at: usize| {
        bytes
            .get(at..at + 4)
            .and_then(|word| word.try_into().ok())
            .map(u32::from_ne_bytes)
    };
    let len = match word(0) {
        Some(event_kind::PACKET) => word(std::mem::offset_of!(PacketEvent, captured_len))
            .map(|captured| size_of::<PacketEvent>().saturating_add(captured as usize)),
        Some(kind) => event_record_len(kind),
        None => None,
    };
    len.map_or(bytes.len(), |len| len.min(bytes.len()))
}

/// The mapped lanes of one kind, one per CPU.
pub(crate) struct Lanes {
    mapped: MappedArray,
    count: usize,
    kind: &'static LaneKind,
    /// False: closed, the programs write nothing here.
    open: bool,
    /// Each lane's writer's count when last noted ([`Self::note_written`]).
    noted: Vec<u64>,
}

// SAFETY: the mapping is process-wide memory; the reader's fields are written only through
// `&mut self`, and the programs' fields are only read, atomically or by copy.
unsafe impl Send for Lanes {}

impl std::fmt::Debug for Lanes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lanes")
            .field("kind", &self.kind.name)
            .field("count", &self.count)
            .finish_non_exhaustive()
    }
}

impl Lanes {
    /// How many lanes of a kind to create: one per CPU online now, up to the highest CPU
    /// number (the programs index them by CPU; one that comes online later with a higher
    /// number writes its records to the ring buffers).
    pub(crate) fn count() -> Result<u32, KernelError> {
        let online = aya::util::online_cpus().map_err(|(_, source)| count_error(source))?;
        let highest = online.into_iter().max().unwrap_or(0);
        highest
            .checked_add(1)
            .ok_or_else(|| count_error(io::Error::other("too many CPUs")))
    }

    /// Maps a lane array of `kind`, created with `count` lanes; unless `open`, closes every
    /// lane (the programs then write to the ring buffers alone).
    pub(crate) fn map(
        map: Map,
        kind: &'static LaneKind,
        count: u32,
        open: bool,
    ) -> Result<Self, KernelError> {
        let count = count as usize;
        let lanes = Self {
            mapped: MappedArray::map(map, kind.name, kind.lane_bytes, count)?,
            count,
            kind,
            open,
            noted: vec![0; count],
        };
        if !open {
            for index in 0..count {
                // SAFETY: the lane's 8-byte aligned `closed` field, in the mapping (`index` is
                // below the lane count); the programs only read it.
                let closed = unsafe { AtomicU64::from_ptr(lanes.lane(index).add(CLOSED).cast()) };
                closed.store(1, Ordering::Release);
            }
        }
        Ok(lanes)
    }

    /// The first byte of lane `index`, in the mapping if `index` is below the lane count.
    fn lane(&self, index: usize) -> *mut u8 {
        self.mapped
            .base()
            .as_ptr()
            .wrapping_add(index * self.kind.lane_bytes)
    }

    /// Notes how far each lane is written now; the next [`Self::drain_noted`] hands out no
    /// more. A reader that notes the lanes, then drains its ring buffer, then the noted
    /// lanes, takes no lane record published after the ring was read: every record of a
    /// later time waits for the next drain, as the ring's own do.
    pub(crate) fn note_written(&mut self) {
        if !self.open {
            return;
        }
        for index in 0..self.count {
            // SAFETY: `index` is below the lane count, so the lane and its 8-byte aligned
            // `written` field lie inside the mapping; the programs write it atomically.
            let written = unsafe { AtomicU64::from_ptr(self.lane(index).add(WRITTEN).cast()) };
            self.noted[index] = written.load(Ordering::Acquire);
        }
    }

    /// Hands each record written to the lanes up to the counts last noted
    /// ([`Self::note_written`]) to `take` (a lane's in order; lanes one after another), and
    /// frees their slots.
    pub(crate) fn drain_noted(&mut self, mut take: impl FnMut(&[u8])) {
        if !self.open {
            return;
        }
        for index in 0..self.count {
            let noted = self.noted[index];
            // SAFETY: `index` is below the lane count, so the lane lies inside the mapping,
            // and `&mut self` makes this the only reader; the noted count was loaded with
            // acquire ordering.
            unsafe { drain_lane(self.lane(index), self.kind, noted, &mut take) };
        }
    }
}

/// Hands each record of the lane at `lane` from its reader's count up to `until` (a count of
/// the writer's, loaded with acquire ordering) to `take`, then moves the reader's count on
/// (which frees the slots for the writer).
///
/// # Safety
/// `lane` points to a live lane of `kind`, 8-byte aligned, whose reader is the caller alone.
unsafe fn drain_lane(lane: *mut u8, kind: &LaneKind, until: u64, take: &mut impl FnMut(&[u8])) {
    // SAFETY: an 8-byte aligned field of a live lane, written only by this reader (the
    // caller's promise).
    let read = unsafe { AtomicU64::from_ptr(lane.add(READ).cast::<u64>()) };
    let start = read.load(Ordering::Relaxed);
    // A noted count behind the reader's (noted before an earlier drain) takes nothing.
    let end = until.max(start);
    let slots = kind.slots as u64;
    // More than a lane's worth unread cannot happen (the programs never overwrite an unread
    // slot); if the counts say so, only the last lane's worth can be whole.
    let from = start.max(end.saturating_sub(slots));
    for count in from..end {
        let slot = (count % slots) as usize;
        // SAFETY: the slot lies in the lane; it was written before `written` passed it
        // (`until` was loaded with acquire ordering) and is not written again before `read`
        // passes it, below. A record is plain bytes (`repr(C)` without padding).
        let bytes = unsafe {
            std::slice::from_raw_parts(
                lane.add(LANE_SLOTS_OFFSET + slot * kind.slot_bytes),
                kind.slot_bytes,
            )
        };
        take(&bytes[..record_len(bytes)]);
    }
    if end != start {
        read.store(end, Ordering::Release);
    }
}

fn count_error(source: io::Error) -> KernelError {
    KernelError::Map {
        name: map_name::EVENT_LANES,
        step: "count CPUs",
        source: Box::new(source),
    }
}

#[cfg(test)]
mod tests {
    use std::alloc::{Layout, alloc_zeroed, dealloc};

    use nettrace_common::{EventHeader, SockMsgEvent, TcpStateEvent, event_kind};

    use super::*;

    /// A zeroed event lane on the heap, as the kernel creates one.
    struct HeapLane(*mut EventLane);

    impl HeapLane {
        fn new() -> Self {
            // SAFETY: a non-zero-sized layout; all-zero bytes are a valid `EventLane`.
            let lane = unsafe { alloc_zeroed(Layout::new::<EventLane>()) }.cast::<EventLane>();
            assert!(!lane.is_null());
            Self(lane)
        }

        /// Writes the call numbered `n` the way the programs do (slot, then the count): a
        /// call record, or a state record for every third.
        fn write(&mut self, n: u64) {
            let slots = limits::EVENT_LANE_SLOTS as u64;
            let header = EventHeader {
                kind: event_kind::SOCK_MSG,
                client_id: 1,
                timestamp_ns: n,
                cookie: 7,
            };
            // SAFETY: the lane is live and only this test touches it; a slot holds any event
            // record at its start.
            unsafe {
                let lane = &mut *self.0;
                assert!(n - lane.read.read < slots, "lane full");
                let slot = (&raw mut lane.slots[(n % slots) as usize]).cast::<u8>();
                if n.is_multiple_of(3) {
                    slot.cast::<TcpStateEvent>().write(TcpStateEvent {
                        header: EventHeader {
                            kind: event_kind::TCP_STATE,
                            ..header
                        },
                        ..TcpStateEvent::default()
                    });
                } else {
                    slot.cast::<SockMsgEvent>().write(SockMsgEvent {
                        header,
                        ret: n as i32,
                        ..SockMsgEvent::default()
                    });
                }
                lane.written = n + 1;
            }
        }

        /// The records a drain hands out, by number.
        fn drain(&mut self) -> Vec<u64> {
            let mut seen = Vec::new();
            // SAFETY: the lane is live and this is its only reader.
            unsafe {
                drain_lane(
                    self.0.cast(),
                    &EVENTS,
                    (*self.0).written,
                    &mut |record: &[u8]| {
                        let header = record.as_ptr().cast::<EventHeader>().read_unaligned();
                        assert_eq!(Some(record.len()), event_record_len(header.kind));
                        seen.push(header.timestamp_ns);
                    },
                );
            }
            seen
        }
    }

    impl Drop for HeapLane {
        fn drop(&mut self) {
            // SAFETY: allocated in `new` with this layout.
            unsafe { dealloc(self.0.cast(), Layout::new::<EventLane>()) };
        }
    }

    #[test]
    fn a_drain_hands_out_each_record_once_in_order_across_the_wrap() {
        let mut lane = HeapLane::new();
        assert!(lane.drain().is_empty());
        let slots = limits::EVENT_LANE_SLOTS as u64;
        // Fill the lane to the last slot, read it, then write past the wrap.
        for n in 0..slots {
            lane.write(n);
        }
        assert_eq!(lane.drain(), (0..slots).collect::<Vec<_>>());
        assert!(lane.drain().is_empty(), "read records come back");
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
        for n in 0..4 {
            lane.write(n);
        }
        // Counts no program writes (it never overwrites an unread slot): a reader still
        // hands out no more than a lane holds.
        // SAFETY: the lane is live and only this test touches it.
        unsafe { (*lane.0).written = 3 * limits::EVENT_LANE_SLOTS as u64 };
        let mut records = 0;
        // SAFETY: as in `HeapLane::drain`; zeroed slots have a kind no record has.
        unsafe {
            let written = (*lane.0).written;
            drain_lane(lane.0.cast(), &EVENTS, written, &mut |_: &[u8]| {
                records += 1
            });
        }
        assert_eq!(records, limits::EVENT_LANE_SLOTS);
        assert!(lane.drain().is_empty());
    }

    #[test]
    fn a_slot_of_unknown_kind_is_handed_out_whole() {
        let slot = vec![0u8; size_of::<EventSlot>()];
        assert_eq!(record_len(&slot), slot.len());
        assert_eq!(record_len(&slot[..3]), 3);
    }

    #[test]
    fn a_packet_is_its_description_and_the_bytes_it_captured() {
        let mut slot = vec![0u8; size_of::<LanePacket>()];
        slot[..4].copy_from_slice(&event_kind::PACKET.to_ne_bytes());
        let at = std::mem::offset_of!(PacketEvent, captured_len);
        let event = size_of::<PacketEvent>();
        slot[at..at + 4].copy_from_slice(&60u32.to_ne_bytes());
        assert_eq!(record_len(&slot), event + 60);
        // A length beyond the slot (no program writes one) stops at the slot's end.
        slot[at..at + 4].copy_from_slice(&u32::MAX.to_ne_bytes());
        assert_eq!(record_len(&slot), slot.len());
        assert_eq!(record_len(&slot[..2]), 2);
    }

    #[test]
    fn a_noted_drain_stops_at_the_counts_noted() {
        let mut lane = HeapLane::new();
        for n in 0..3 {
            lane.write(n);
        }
        // SAFETY: the lane is live; read as `note_written` does.
        let noted = unsafe { (*lane.0).written };
        lane.write(3);
        let mut seen = Vec::new();
        // SAFETY: the lane is live and this is its only reader.
        unsafe {
            drain_lane(lane.0.cast(), &EVENTS, noted, &mut |record: &[u8]| {
                seen.push(
                    record
                        .as_ptr()
                        .cast::<EventHeader>()
                        .read_unaligned()
                        .timestamp_ns,
                );
            });
        }
        assert_eq!(seen, [0, 1, 2], "a record written after the note waits");
        assert_eq!(lane.drain(), [3]);
        // A count noted before that drain takes nothing now.
        // SAFETY: as above.
        unsafe { drain_lane(lane.0.cast(), &EVENTS, noted, &mut |_: &[u8]| panic!()) };
    }
}
