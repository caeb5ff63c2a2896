//! [`KernelEvents`]: the asynchronous reader of the event ring buffer.
use aya::maps::{Map, MapData, RingBuf};
use tokio::io::unix::AsyncFd;

use super::{KernelError, KernelEvent};

/// The stream of kernel events, in the order the kernel reserved them.
///
/// Reading is driven by the consumer: records wait in the ring buffer until [`Self::next`] or
/// [`Self::drain`] takes them, and a full ring makes the kernel count lost events (see
/// [`super::KernelTracer::lost_events`]) instead of blocking anything.
pub struct KernelEvents {
    ring: AsyncFd<RingBuf<MapData>>,
}

impl KernelEvents {
    pub(super) fn new(map: Map) -> Result<Self, KernelError> {
        let ring = RingBuf::try_from(map).map_err(|source| KernelError::Map {
            name: nettrace_common::map_name::EVENTS,
            step: "open",
            source,
        })?;
        // SAFETY: the RingBuf owns its map descriptor, never replaces it and closes it only
        // when dropped, which happens after (or as part of) dropping the AsyncFd.
        let ring = unsafe { AsyncFd::register_with_interest(ring, tokio::io::Interest::READABLE) }
            .map_err(|e| KernelError::Poll(e.into()))?;
        Ok(Self { ring })
    }

    /// Waits for the next event. A malformed record yields an error and is skipped: the next
    /// call goes on with the following record.
    pub async fn next(&mut self) -> Result<KernelEvent, KernelError> {
        loop {
            if let Some(event) = self.try_next() {
                return event;
            }
            let mut ready = self.ring.readable_mut().await.map_err(KernelError::Poll)?;
            if let Some(item) = ready.get_inner_mut().next() {
                return KernelEvent::decode(&item);
            }
            ready.clear_ready();
        }
    }

    /// The next event if one is already in the ring buffer, without waiting.
    pub fn try_next(&mut self) -> Option<Result<KernelEvent, KernelError>> {
        let item = self.ring.get_mut().next()?;
        Some(KernelEvent::decode(&item))
    }

    /// Takes every event the ring buffer holds now: all that happened before the call.
    pub fn drain(&mut self) -> Vec<Result<KernelEvent, KernelError>> {
        std::iter::from_fn(|| self.try_next()).collect()
    }
}
