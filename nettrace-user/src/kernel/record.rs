//! [`RecordBatch`]: ring-buffer records copied out of the rings in one buffer, so that each
//! decoded event can still be handed on as the exact `#[repr(C)]` record it came from (the
//! loader daemon forwards those bytes to its clients, which decode them with the same
//! [`super::KernelEvent::decode`]).
//!
//! ```ignore
//! let mut batch = RecordBatch::default();
//! batch.push(&[1, 2, 3]);
//! assert_eq!(batch.iter().next().map(|(_, r)| r), Some(&[1, 2, 3][..]));
//! ```
use std::ops::Range;

/// Records back to back in one buffer (one allocation per drain, not per event).
#[derive(Debug, Default)]
pub(crate) struct RecordBatch {
    bytes: Vec<u8>,
    spans: Vec<Range<usize>>,
}

impl RecordBatch {
    /// Appends a copy of one record.
    pub(crate) fn push(&mut self, record: &[u8]) {
        let start = self.bytes.len();
        self.bytes.extend_from_slice(record);
        self.spans.push(start..self.bytes.len());
    }

    /// The records in the order they were pushed, each with its span in the buffer.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (Range<usize>, &[u8])> {
        self.spans
            .iter()
            .map(|span| (span.clone(), self.get(span.clone())))
    }

    /// The bytes of a span returned by [`Self::iter`] (empty for a span of another batch).
    pub(crate) fn get(&self, span: Range<usize>) -> &[u8] {
        self.bytes.get(span).unwrap_or_default()
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
        let records: Vec<&[u8]> = batch.iter().map(|(_, r)| r).collect();
        assert_eq!(records, [&b"ab"[..], b"", b"cde"]);
        assert!(batch.get(10..20).is_empty());
    }
}
