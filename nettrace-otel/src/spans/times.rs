//! Wall-clock times of a trace's timestamps, at the precision the trace holds.
use std::time::{Duration, SystemTime};

use nettrace_model::{HttpTrace, PreciseTimes, Timestamp};

/// Turns the trace's timestamps, and the model's µs since the trace began, into wall-clock
/// times.
#[derive(Clone, Copy, Debug)]
pub(super) struct Times {
    begin: Option<SystemTime>,
}

impl Times {
    pub(super) fn of(trace: &HttpTrace) -> Self {
        Self {
            begin: trace.net_trace.trace_begin_at.as_absolute().map(Into::into),
        }
    }

    /// `us` µs after the trace began (the model's [`nettrace_model::phases::Span`]s).
    pub(super) fn since_begin(&self, us: u64) -> Option<SystemTime> {
        self.begin?.checked_add(Duration::from_micros(us))
    }

    /// The timestamp named `key` of a record whose precise times are `precise`: µs from
    /// `preciseUs` when recorded, else the JSON's whole milliseconds, or the absolute time.
    pub(super) fn at(
        &self,
        ts: &Timestamp,
        precise: &PreciseTimes,
        key: &str,
    ) -> Option<SystemTime> {
        match ts {
            Timestamp::Undefined => None,
            Timestamp::Relative(ms) => match precise.get(key) {
                Some(us) => self.since_begin(us),
                None => self
                    .begin?
                    .checked_add(Duration::from_millis(u64::from(*ms))),
            },
            Timestamp::Absolute(at) => Some(SystemTime::from(*at)),
        }
    }

    /// A timestamp of a record without precise times (socket operations, state changes).
    pub(super) fn ms(&self, ts: &Timestamp) -> Option<SystemTime> {
        self.at(ts, &PreciseTimes::default(), "")
    }
}
