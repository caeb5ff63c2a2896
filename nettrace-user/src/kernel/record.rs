//! [`RecordBatch`]: ring-buffer records copied out of the rings in one buffer, so that each
//! decoded event can still be handed on as the exact `#[repr(C)]` record it came from (the
//! loader daemon forwards those bytes to its clients, which decode them with the same
//! [`super::KernelEvent::decode`]).
//!
use std::ops::Range;

use bytes::Bytes;

/// Records back to back in one buffer (one allocation per drain, not per event), then
/// shared: decoded packets are views of it.
#[derive(Debug, Default)]
pub(crate) struct RecordBatch {
    bytes: Vec<u8>,
    spans: Vec<Range<usize>>,
}

impl RecordBatch {
    /// An empty batch with room for `bytes` of records (and about that many 64-byte records).
    pub(crate) fn with_capacity(bytes: usize) -> Self {
        Self {
            bytes: Vec::with_capacity(bytes),
            spans: Vec::with_capacity(bytes / 64),
        }
    }

    /// Bytes of records in the batch.
    pub(crate) fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Appends a copy of one record.
    pub(crate) fn push(&mut self, record: &[u8]) {
        let start = self.bytes.len();
        self.bytes.extend_from_slice(record);
        self.spans.push(start..self.bytes.len());
    }

    /// The buffer, shared, and each record's span in it, in the order they were pushed.
    pub(crate) fn into_shared(self) -> (Bytes, Vec<Range<usize>>) {
        (Bytes::from(self.bytes), self.spans)
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
        let (bytes, spans) = batch.into_shared();
        let records: Vec<&[u8]> = spans.into_iter().map(|span| &bytes[span]).collect();
        assert_eq!(records, [&b"ab"[..], b"", b"cde"]);
    }
}
