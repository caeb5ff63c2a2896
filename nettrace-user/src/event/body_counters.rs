//! [`BodyCounters`]: the body bytes of one HTTP request and when the caller read the response
//! body, written by the body wrappers as the bytes flow and read by the recorder when it takes
//! a snapshot. Lock-free, and without read-modify-write instructions (a `lock`-prefixed
//! instruction costs tens of nanoseconds here): each counter has one writer, the request body
//! for the request's bytes and the response body for the rest, so a body frame costs a load
//! and a store. The clock is read by the wrapper only for the first byte and where reading
//! stops (the end, a failure, a drop).
//!
//! ```ignore
//! let counters = Arc::new(BodyCounters::default());
//! counters.add_response(1024);
//! counters.response_first_read(Instant::now());
//! counters.response_last_read(Instant::now());
//! let (first, last) = counters.response_times();
//! ```
use std::{
    sync::atomic::{AtomicI64, AtomicU64, Ordering},
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

    /// Counts request body bytes handed to the connection. Only the request's body calls
    /// this (one writer: see the [module](self) documentation).
    pub(crate) fn add_request(&self, bytes: u64) {
        add_single_writer(&self.request, bytes);
    }

    /// Counts response body bytes read by the caller (after decoding). Only the response's
    /// body calls this (one writer).
    pub(crate) fn add_response(&self, bytes: u64) {
        add_single_writer(&self.response, bytes);
    }

    /// Notes that the caller read the first response body bytes at `at` (a later call keeps
    /// the first instant). Only the response's body calls this (one writer).
    pub(crate) fn response_first_read(&self, at: Instant) {
        if self.response_first.load(Ordering::Relaxed) == UNSET {
            self.response_first
                .store(self.encode(at), Ordering::Relaxed);
        }
    }

    /// Notes that the caller read the last response body bytes, or saw its end, at `at`.
    pub(crate) fn response_last_read(&self, at: Instant) {
        self.response_last.store(self.encode(at), Ordering::Relaxed);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instants_before_and_after_the_base_come_back_exactly() {
        let counters = BodyCounters::default();
        assert_eq!(counters.response_times(), (None, None));
        let before = counters.base - Duration::from_nanos(1_234_567_891);
        let after = counters.base + Duration::from_nanos(2_703_020_001);
        counters.response_first_read(before);
        counters.response_first_read(after);
        counters.response_last_read(before);
        counters.response_last_read(after);
        assert_eq!(counters.response_times(), (Some(before), Some(after)));
    }
}
