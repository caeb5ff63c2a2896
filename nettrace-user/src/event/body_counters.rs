//! [`BodyCounters`]: the body bytes of one HTTP request and when the caller read the response
//! body, written by the body wrappers as the bytes flow and read by the recorder when it takes
//! a snapshot. Lock-free, and without read-modify-write instructions (a `lock`-prefixed
//! instruction costs tens of nanoseconds here): each counter has one writer, the request body
//! for the request's bytes ([`RequestCounter`]) and the response body for the rest
//! ([`ResponseCounter`]), so a body frame costs a load and a store. The single writer is the
//! type's promise, not a convention: the two writing ends come into being only with their
//! counters ([`BodyCounters::with_writers`]), cannot be cloned, and write through `&mut self`.
//! The clock is read by the wrapper only for the first byte and where reading stops (the end,
//! a failure, a drop).
//!
//! ```ignore
//! let (counters, _request, mut response) = BodyCounters::with_writers(Instant::now());
//! response.add(1024);
//! response.first_read(Instant::now());
//! response.last_read(Instant::now());
//! let (first, last) = counters.response_times();
//! ```
use std::{
    sync::{
        Arc,
        atomic::{AtomicI64, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use crate::sync::add_single_writer;

/// No instant stored.
const UNSET: i64 = i64::MIN;

/// Body bytes of one HTTP request, and when the caller read the first and the last response
/// body bytes (the end of the body counts as the last), for the transfer phase.
#[derive(Debug)]
pub(crate) struct BodyCounters {
    request: AtomicU64,
    response: AtomicU64,
    /// What the instants below count from.
    base: Instant,
    /// ns from `base` (negative before it), or [`UNSET`].
    response_first: AtomicI64,
    /// ns from `base` (negative before it), or [`UNSET`].
    response_last: AtomicI64,
}

/// What a snapshot reads of [`BodyCounters`]: equal states mean equal snapshots of them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct BodyState {
    request: u64,
    response: u64,
    response_first: i64,
    response_last: i64,
}

impl Default for BodyCounters {
    fn default() -> Self {
        Self::based_at(Instant::now())
    }
}

impl BodyCounters {
    /// Counters whose instants count from `base`, any instant near the ones to be stored (a
    /// request's start, which the caller has read already: a clock read costs tens of
    /// nanoseconds here, and the base only needs to be near).
    pub(crate) fn based_at(base: Instant) -> Self {
        Self {
            request: AtomicU64::new(0),
            response: AtomicU64::new(0),
            base,
            response_first: AtomicI64::new(UNSET),
            response_last: AtomicI64::new(UNSET),
        }
    }

    /// Fresh counters whose instants count from `base` (see [`Self::based_at`]), with their
    /// only writers: the request body's and the response body's.
    pub(crate) fn with_writers(base: Instant) -> (Arc<Self>, RequestCounter, ResponseCounter) {
        let counters = Arc::new(Self::based_at(base));
        (
            counters.clone(),
            RequestCounter(counters.clone()),
            ResponseCounter(counters),
        )
    }

    /// When the caller read the first and the last response body bytes, if it did.
    pub(crate) fn response_times(&self) -> (Option<Instant>, Option<Instant>) {
        (
            self.decode(self.response_first.load(Ordering::Relaxed)),
            self.decode(self.response_last.load(Ordering::Relaxed)),
        )
    }

    /// The counts and times as they are now: equal states mean equal snapshots of them.
    pub(crate) fn state(&self) -> BodyState {
        BodyState {
            request: self.request(),
            response: self.response(),
            response_first: self.response_first.load(Ordering::Relaxed),
            response_last: self.response_last.load(Ordering::Relaxed),
        }
    }

    /// Request body bytes so far.
    pub(crate) fn request(&self) -> u64 {
        self.request.load(Ordering::Relaxed)
    }

    /// Response body bytes so far.
    pub(crate) fn response(&self) -> u64 {
        self.response.load(Ordering::Relaxed)
    }

    /// `at` as ns from `base`, saturated (never [`UNSET`]).
    fn encode(&self, at: Instant) -> i64 {
        match at.checked_duration_since(self.base) {
            Some(after) => i64::try_from(after.as_nanos()).unwrap_or(i64::MAX),
            None => i64::try_from(self.base.duration_since(at).as_nanos())
                .map_or(UNSET + 1, |before| -before),
        }
    }

    fn decode(&self, ns: i64) -> Option<Instant> {
        match ns {
            UNSET => None,
            0.. => self
                .base
                .checked_add(Duration::from_nanos(ns.unsigned_abs())),
            _ => self
                .base
                .checked_sub(Duration::from_nanos(ns.unsigned_abs())),
        }
    }
}

/// The writing end of [`BodyCounters`] that counts the request body bytes handed to the
/// connection: one per counters, held by the request's body.
#[derive(Debug)]
pub(crate) struct RequestCounter(Arc<BodyCounters>);

impl RequestCounter {
    /// Counts `bytes` more request body bytes.
    pub(crate) fn add(&mut self, bytes: u64) {
        add_single_writer(&self.0.request, bytes);
    }
}

/// The writing end of [`BodyCounters`] that counts the response body bytes the caller read
/// (after decoding) and notes when it read them: one per counters, held by the response's
/// body.
#[derive(Debug)]
pub(crate) struct ResponseCounter(Arc<BodyCounters>);

impl ResponseCounter {
    /// Counts `bytes` more response body bytes read.
    pub(crate) fn add(&mut self, bytes: u64) {
        add_single_writer(&self.0.response, bytes);
    }

    /// Notes that the caller read the first response body bytes at `at` (a later call keeps
    /// the first instant).
    pub(crate) fn first_read(&mut self, at: Instant) {
        let counters = &self.0;
        if counters.response_first.load(Ordering::Relaxed) == UNSET {
            counters
                .response_first
                .store(counters.encode(at), Ordering::Relaxed);
        }
    }

    /// Notes that the caller read the last response body bytes, or saw its end, at `at`.
    pub(crate) fn last_read(&mut self, at: Instant) {
        let counters = &self.0;
        counters
            .response_last
            .store(counters.encode(at), Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instants_before_and_after_the_base_come_back_exactly() {
        let (counters, mut request, mut response) = BodyCounters::with_writers(Instant::now());
        assert_eq!(counters.response_times(), (None, None));
        let before = counters.base - Duration::from_nanos(1_234_567_891);
        let after = counters.base + Duration::from_nanos(2_703_020_001);
        response.first_read(before);
        response.first_read(after);
        response.last_read(before);
        response.last_read(after);
        assert_eq!(counters.response_times(), (Some(before), Some(after)));
        request.add(5);
        request.add(6);
        response.add(100);
        assert_eq!((counters.request(), counters.response()), (11, 100));
    }
}
