//! [`DecodedBatch`]: the events of one drain, decoded, in time order, each with the record it
//! came from; its sock_ops records stay where they were decoded and are lent on from there.
//!
//! The functions the drain calls are `#[inline]`: inlined into `KernelHub::drain` (with the
//! routing's), whichever codegen unit each module lands in, the drain's loops over its events
//! cost about 100 instructions per connection less.
use std::{mem::size_of, ops::Range};

use bytes::Bytes;

use crate::{
    KernelTime,
    event::{DecodedRecord, MalformedRecord, UnboxedEvent},
    kernel::{KernelEvent, SockOpsRecord},
};
use nettrace_common::SockOpsEvent;

/// One decoded event of a batch.
enum Decoded {
    Event(KernelEvent),
    /// The sock_ops record at this index of [`DecodedBatch::sock_ops`].
    SockOps(usize),
}

/// An event of a batch as routing reads it.
pub(super) enum EventRef<'a> {
    Event(&'a KernelEvent),
    SockOps(&'a SockOpsRecord),
}

/// Bytes of room each list of a batch keeps from one drain to the next.
const KEPT_BYTES: usize = 64 * 1024;

/// A drain's events with the records they were decoded from. A sock_ops record (some 420
/// bytes decoded) is decoded into [`Self::sock_ops`] and stays there: sorting moves only its
/// index, and it is lent to the sinks as it is handed on ([`UnboxedEvent::SockOps`]) instead
/// of being copied from the batch into each iterator and call on its way to the recorder.
/// One batch serves drain after drain (its lists keep their room, up to [`KEPT_BYTES`]
/// each), so that a drain neither allocates them nor copies them as they grow.
#[derive(Default)]
pub(super) struct DecodedBatch {
    /// Each with the span of its record in the drain's buffer.
    events: Vec<(Decoded, Range<usize>)>,
    /// The first [`Self::used`] are this drain's; the rest were left by earlier drains, and
    /// are decoded over ([`SockOpsRecord::decode_into`]).
    sock_ops: Vec<SockOpsRecord>,
    used: usize,
}

impl DecodedBatch {
    /// Decodes the records at `spans` of `bytes`, in that order, in place of the batch's
    /// events so far; a malformed record is skipped (and said).
    #[inline]
    pub(super) fn decode(
        &mut self,
        bytes: &Bytes,
        spans: impl ExactSizeIterator<Item = Range<usize>>,
        read_at: KernelTime,
    ) {
        self.clear();
        self.events.reserve(spans.len());
        for span in spans {
            let decoded =
                match KernelEvent::decode_shared(bytes, span.clone(), |raw| self.add_sock_ops(raw))
                {
                    Ok(DecodedRecord::Event(mut event)) => {
                        event.cap_packet_time(|| read_at);
                        Decoded::Event(event)
                    }
                    Ok(DecodedRecord::SockOps(index)) => Decoded::SockOps(index),
                    Err(error) => {
                        tracing::warn!(%error, "skipping a kernel event");
                        continue;
                    }
                };
            self.events.push((decoded, span));
        }
    }

    /// Decodes `raw` into the batch's next sock_ops record; returns its index.
    #[inline]
    fn add_sock_ops(&mut self, raw: &SockOpsEvent) -> Result<usize, MalformedRecord> {
        let index = self.used;
        if index == self.sock_ops.len() {
            self.sock_ops.push(SockOpsRecord::BLANK);
        }
        if let Some(record) = self.sock_ops.get_mut(index) {
            record.decode_into(raw)?;
        }
        self.used += 1;
        Ok(index)
    }

    /// Empties the batch; the room of a large drain is given back.
    fn clear(&mut self) {
        self.events.clear();
        self.events
            .shrink_to(KEPT_BYTES / size_of::<(Decoded, Range<usize>)>());
        let kept = KEPT_BYTES / size_of::<SockOpsRecord>();
        self.sock_ops.truncate(kept);
        self.sock_ops.shrink_to(kept);
        self.used = 0;
    }

    /// Whether the drain brought no event.
    pub(super) fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    /// Puts the events in time order (a stable sort: events of one time keep their order).
    /// In order already when one ring or one lane brought them all (a quiet drain): checked
    /// first, as the sort would allocate its scratch space for a batch of more than a few
    /// events.
    #[inline]
    pub(super) fn sort_by_time(&mut self) {
        let Self {
            events, sock_ops, ..
        } = self;
        let time = |(event, _): &(Decoded, Range<usize>)| match event {
            Decoded::Event(event) => event.time(),
            Decoded::SockOps(index) => sock_ops.get(*index).map_or(KernelTime(0), |ops| ops.time),
        };
        if !events.is_sorted_by_key(time) {
            events.sort_by_key(time);
        }
    }

    /// The events in order, for routing.
    #[inline]
    pub(super) fn iter(&self) -> impl Iterator<Item = EventRef<'_>> {
        self.events.iter().filter_map(|(event, _)| match event {
            Decoded::Event(event) => Some(EventRef::Event(event)),
            Decoded::SockOps(index) => self.sock_ops.get(*index).map(EventRef::SockOps),
        })
    }

    /// Takes the events out in order, each with its record in `bytes` (the buffer they were
    /// decoded from): the other events move out, the sock_ops records are lent from the
    /// batch, the records from the buffer (no view of it taken and given back per event).
    #[inline]
    pub(super) fn take<'a>(
        &'a mut self,
        bytes: &'a Bytes,
    ) -> impl Iterator<Item = (UnboxedEvent<'a>, &'a [u8])> {
        let Self {
            events, sock_ops, ..
        } = self;
        let sock_ops = &*sock_ops;
        events.drain(..).filter_map(move |(event, span)| {
            let event = match event {
                Decoded::Event(event) => UnboxedEvent::Event(event),
                Decoded::SockOps(index) => UnboxedEvent::SockOps(sock_ops.get(index)?),
            };
            // Never left out for its span (checked when it was decoded): routing counted the
            // events of `iter`, which reads no spans.
            Some((event, bytes.get(span).unwrap_or_default()))
        })
    }
}
