//! [`RecordBatch`]: ring-buffer records copied out of the rings in one buffer, so that each
//! decoded event can still be handed on as the exact `#[repr(C)]` record it came from (the
//! loader daemon forwards those bytes to its clients, which decode them with the same
//! [`super::KernelEvent::decode`]).
//!
use std::ops::Range;

use bytes::{Bytes, BytesMut};

/// Bytes of records a batch keeps room for from one drain to the next; a drain larger than
/// this (a burst of packets) leaves its buffer to its views.
const KEPT_BYTES: usize = 64 * 1024;

/// Record spans a batch keeps room for (records of 64 bytes or more).
const KEPT_SPANS: usize = KEPT_BYTES / 64;

/// Records back to back in one buffer (no allocation per event), then shared: decoded
/// packets are views of it. One batch serves drain after drain: once the views of a drain's
/// records are dropped (as soon as they are handed on, unless a packet is kept), the next
/// drain writes into the same memory, with no allocation, instead of a new buffer per drain
/// that was regrown (and copied) whenever a drain outgrew the one before.
#[derive(Debug)]
pub(crate) struct RecordBatch {
    bytes: BytesMut,
    spans: Vec<Range<usize>>,
}

impl Default for RecordBatch {
    fn default() -> Self {
        Self {
            bytes: BytesMut::with_capacity(KEPT_BYTES),
            spans: Vec::new(),
        }
    }
}

impl RecordBatch {
    /// Appends a copy of one record.
    pub(crate) fn push(&mut self, record: &[u8]) {
        if self.spans.is_empty() {
            // A drain's first record: room for a whole drain without a new buffer. When less
            // than that is left after the last drain's records and their views are all gone,
            // `try_reclaim` moves back to the buffer's start (nothing allocated, nothing
            // copied); otherwise the room left serves. Before, a drain outgrew the room left
            // every few drains and copied its records so far into a new buffer. While views
            // are kept (captured packets), the rest of the buffer serves.
            let _whole_again = self.bytes.try_reclaim(KEPT_BYTES);
        }
        let start = self.bytes.len();
        self.bytes.extend_from_slice(record);
        self.spans.push(start..self.bytes.len());
    }

    /// The records pushed since the last call, shared, and each one's span in them, in the
    /// order they were pushed; the batch is left empty, its room kept for the next drain.
    pub(crate) fn take_shared(&mut self) -> (Bytes, std::vec::Drain<'_, Range<usize>>) {
        // A large drain's room is given back at the next drain that fits in less.
        if self.spans.capacity() > KEPT_SPANS && self.spans.len() <= KEPT_SPANS {
            self.spans.shrink_to(KEPT_SPANS);
        }
        // The rest of the buffer stays here; once every view of the records is dropped,
        // `BytesMut` reclaims the whole of it rather than allocating.
        let bytes = self.bytes.split().freeze();
        if bytes.len() > KEPT_BYTES {
            self.bytes = BytesMut::with_capacity(KEPT_BYTES);
        }
        (bytes, self.spans.drain(..))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_records_apart() {
        let mut batch = RecordBatch::default();
        batch.push(b"ab");
        batch.push(b"");
        batch.push(b"cde");
        let (bytes, spans) = batch.take_shared();
        let records: Vec<&[u8]> = spans.map(|span| &bytes[span]).collect();
        assert_eq!(records, [&b"ab"[..], b"", b"cde"]);
    }

    #[test]
    fn a_batch_serves_one_drain_after_another() {
        let mut batch = RecordBatch::default();
        batch.push(b"first");
        let first = batch.take_shared().0;
        // The first drain's records are still held while the second is filled.
        batch.push(b"second");
        batch.push(b"third");
        let (second, spans) = batch.take_shared();
        let records: Vec<&[u8]> = spans.map(|span| &second[span]).collect();
        assert_eq!(records, [&b"second"[..], b"third"]);
        assert_eq!(&first[..], b"first");
        let start = first.as_ptr();
        drop((first, second));
        // Once they are dropped, the buffer is reused.
        batch.push(b"fourth");
        let (fourth, spans) = batch.take_shared();
        let records: Vec<&[u8]> = spans.map(|span| &fourth[span]).collect();
        assert_eq!(records, [b"fourth"]);
        assert_eq!(
            fourth.as_ptr(),
            start,
            "written at the start of the buffer, where the first drain's records were"
        );
        assert!(batch.take_shared().0.is_empty());
    }
}
