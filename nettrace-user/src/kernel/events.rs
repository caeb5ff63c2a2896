//! [`KernelEvents`]: the reader of a ring buffer and of the per-CPU lanes that carry its kind
//! of records first (every event record, packets of up to 256 bytes; see [`super::lanes`]).
//!
//! Records wait in the ring until they are taken ([`KernelEvents::next`] waits for one,
//! [`KernelEvents::drain`] takes all there are, without waiting); a full ring makes the kernel
//! count lost events (see [`super::KernelTracer::lost_events`]) instead of blocking anything.
use std::{
    collections::VecDeque,
    os::fd::{AsFd, OwnedFd},
};

use aya::maps::{Map, MapData, RingBuf};
use tokio::io::unix::AsyncFd;

use super::{
    KernelError, KernelEvent,
    lanes::{Lanes, record_len},
};
use crate::clock::KernelTime;

/// How often a waiting reader looks for events the programs did not wake it for.
pub const READ_TICK: std::time::Duration = std::time::Duration::from_millis(20);

/// The stream of kernel events: records in the order the kernel reserved them, each
/// sock_ops record with the state transitions it stands for
/// ([`KernelEvent::implied_state_changes`]): those held for it come right before it, at their
/// own (earlier) times, so after any event of the socket that was reserved in between. Most
/// records come from the per-CPU lanes instead (all a lane has room for): their events,
/// the transitions their records stand for among them, are handed out in time order, each
/// before the first ring event of a later time.
pub struct KernelEvents {
    ring: RingBuf<MapData>,
    /// A duplicate of the ring's descriptor, polled for readiness only.
    ready: AsyncFd<OwnedFd>,
    /// The last record and the transitions it stands for, not handed out yet.
    implied: VecDeque<KernelEvent>,
    /// The lanes of the ring's records that go there.
    lanes: LaneQueue,
}

/// The lanes and the records taken from them, not handed out yet.
#[derive(Debug)]
struct LaneQueue {
    lanes: Lanes,
    /// Oldest first.
    taken: VecDeque<Result<KernelEvent, KernelError>>,
}

impl KernelEvents {
    /// The reader of ring `map` (named `name`), and of its `lanes`.
    pub(super) fn new(map: Map, name: &'static str, lanes: Lanes) -> Result<Self, KernelError> {
        let ring = RingBuf::try_from(map).map_err(super::tracer::map_error(name, "open"))?;
        let ready = readiness(&ring)?;
        Ok(Self {
            ring,
            ready,
            implied: VecDeque::new(),
            lanes: LaneQueue {
                lanes,
                taken: VecDeque::new(),
            },
        })
    }

    /// Waits for the next event. A malformed record yields an error and is skipped: the next
    /// call goes on with the following record.
    ///
    /// The programs wake readers only once a batch of events has built up (a wakeup per event
    /// would cost microseconds each), so this also looks every [`READ_TICK`].
    pub async fn next(&mut self) -> Result<KernelEvent, KernelError> {
        let Self {
            ring,
            ready,
            implied,
            lanes,
        } = self;
        loop {
            if let Some(event) = take(ring, implied, lanes) {
                return event;
            }
            tokio::select! {
                guard = ready.readable() => {
                    let mut guard = guard.map_err(KernelError::Poll)?;
                    if let Some(event) = take(ring, implied, lanes) {
                        return event;
                    }
                    guard.clear_ready();
                }
                () = tokio::time::sleep(READ_TICK) => {}
            }
        }
    }

    /// The next event if one is already in the ring buffer, without waiting.
    pub fn try_next(&mut self) -> Option<Result<KernelEvent, KernelError>> {
        take(&mut self.ring, &mut self.implied, &mut self.lanes)
    }

    /// Takes every event the ring buffer holds now: all that happened before the call.
    pub fn drain(&mut self) -> Vec<Result<KernelEvent, KernelError>> {
        std::iter::from_fn(|| self.try_next()).collect()
    }

    /// Copies every record the ring buffer (and the lanes) hold now into `batch`,
    /// undecoded: the ring's first, in its order, then each lane's in its order, up to what
    /// the lanes held before the ring was read (so no lane record is taken before a ring
    /// record of an earlier time that the next drain would bring). Each record is cut to its
    /// own length: a ring record may carry stale bytes after a packet's.
    pub(crate) fn drain_records(&mut self, batch: &mut super::record::RecordBatch) {
        let lanes = &mut self.lanes.lanes;
        lanes.note_written();
        while let Some(item) = self.ring.next() {
            batch.push(&item[..record_len(&item)]);
        }
        lanes.drain_noted(|record| batch.push(record));
    }

    /// A new readiness handle on the ring (a duplicated descriptor), for a task that waits
    /// for events while the ring itself is drained elsewhere.
    pub(crate) fn readiness(&self) -> Result<AsyncFd<OwnedFd>, KernelError> {
        readiness(&self.ring)
    }
}

fn readiness(ring: &RingBuf<MapData>) -> Result<AsyncFd<OwnedFd>, KernelError> {
    let fd = ring
        .as_fd()
        .try_clone_to_owned()
        .map_err(KernelError::Poll)?;
    // SAFETY: `fd` is an owned, open descriptor that the AsyncFd owns from here on and closes
    // only when it is dropped.
    unsafe { AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE) }
        .map_err(|e| KernelError::Poll(e.into()))
}

/// The older of the next ring event and the next event taken from the lanes (the ring's on
/// a tie).
fn take(
    ring: &mut RingBuf<MapData>,
    implied: &mut VecDeque<KernelEvent>,
    lanes: &mut LaneQueue,
) -> Option<Result<KernelEvent, KernelError>> {
    if implied.is_empty()
        && let Some(record) = ring.next()
    {
        match KernelEvent::decode(&record) {
            Ok(mut event) => {
                event.cap_packet_time(KernelTime::now);
                push_with_implied(event, implied)
            }
            Err(error) => return Some(Err(KernelError::from(error))),
        }
    }
    if lanes.taken.is_empty() {
        let taken = &mut lanes.taken;
        let mut events = VecDeque::new();
        // The lanes' records so far: all written before a clock read after this one, made
        // at the first packet only.
        lanes.lanes.note_written();
        let mut read_at = None;
        lanes
            .lanes
            .drain_noted(|record| match KernelEvent::decode(record) {
                Ok(mut event) => {
                    event.cap_packet_time(|| *read_at.get_or_insert_with(KernelTime::now));
                    push_with_implied(event, &mut events);
                    taken.extend(events.drain(..).map(Ok));
                }
                Err(error) => taken.push_back(Err(KernelError::from(error))),
            });
        // Each lane in time order, the lanes one after another: merged by time (a
        // malformed record first, as it came). The transitions a record stands for go to
        // their own times.
        taken
            .make_contiguous()
            .sort_by_key(|event| event.as_ref().map_or(KernelTime(0), KernelEvent::time));
    }
    let lane_first = match (implied.front(), lanes.taken.front()) {
        (Some(event), Some(taken)) => taken
            .as_ref()
            .map_or(true, |taken| taken.time() < event.time()),
        (None, Some(_)) => true,
        (_, None) => false,
    };
    if lane_first {
        lanes.taken.pop_front()
    } else {
        implied.pop_front().map(Ok)
    }
}

/// Queues `event`, and before it the transitions it stands for (only sock_ops records stand
/// for more than themselves).
fn push_with_implied(event: KernelEvent, queue: &mut VecDeque<KernelEvent>) {
    match event {
        KernelEvent::SockOps(_) => queue.extend(event.with_implied()),
        event => queue.push_back(event),
    }
}
