//! Wall-clock times of a trace's timestamps, at the precision the trace holds, as the
//! nanoseconds since the Unix epoch that OTLP writes ([`UnixNanos`]: plain integers, which
//! cost a fraction of `SystemTime`'s checked arithmetic on every span and event).
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use nettrace_model::{HttpTrace, PreciseTimes, Timestamp};
use time::OffsetDateTime;

/// A moment as nanoseconds since the Unix epoch: 0 for moments before it, the greatest value
/// for those after the year 2554 (what OTLP's `fixed64` times can hold). A trace that began
/// before 1970 has its beginning clamped first, so its later times are counted from the
/// epoch: such traces do not occur, and OTLP cannot write their times anyway.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UnixNanos(pub u64);

impl UnixNanos {
    /// `at`, saturated to the range.
    pub fn of(at: SystemTime) -> Self {
        Self(
            at.duration_since(UNIX_EPOCH)
                .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)),
        )
    }

    /// The moment as a `SystemTime`.
    pub fn system_time(self) -> SystemTime {
        UNIX_EPOCH + Duration::from_nanos(self.0)
    }

    fn of_offset(at: OffsetDateTime) -> Self {
        let nanos = at.unix_timestamp_nanos().max(0);
        Self(u64::try_from(nanos).unwrap_or(u64::MAX))
    }

    /// `us` microseconds later (saturated).
    fn plus_us(self, us: u64) -> Self {
        Self(self.0.saturating_add(us.saturating_mul(1_000)))
    }
}

/// Turns the trace's timestamps, and the model's µs since the trace began, into wall-clock
/// times.
#[derive(Clone, Copy, Debug)]
pub(super) struct Times {
    begin: Option<UnixNanos>,
}

impl Times {
    pub(super) fn of(trace: &HttpTrace) -> Self {
        Self {
            begin: trace
                .net_trace
                .trace_begin_at
                .as_absolute()
                .map(UnixNanos::of_offset),
        }
    }

    /// `us` µs after the trace began (the model's [`nettrace_model::phases::Span`]s).
    pub(super) fn since_begin(&self, us: u64) -> Option<UnixNanos> {
        Some(self.begin?.plus_us(us))
    }

    /// The timestamp named `key` of a record whose precise times are `precise`: µs from
    /// `preciseUs` when recorded, else the JSON's whole milliseconds, or the absolute time.
    pub(super) fn at(
        &self,
        ts: &Timestamp,
        precise: &PreciseTimes,
        key: &str,
    ) -> Option<UnixNanos> {
        match ts {
            Timestamp::Undefined => None,
            Timestamp::Relative(ms) => match precise.get(key) {
                Some(us) => self.since_begin(us),
                None => self.since_begin(u64::from(*ms).saturating_mul(1_000)),
            },
            Timestamp::Absolute(at) => Some(UnixNanos::of_offset(*at)),
        }
    }

    /// A timestamp of a record without precise times (socket operations, state changes).
    pub(super) fn ms(&self, ts: &Timestamp) -> Option<UnixNanos> {
        self.at(ts, &PreciseTimes::default(), "")
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    use super::UnixNanos;

    #[test]
    fn moments_outside_the_range_saturate() {
        assert_eq!(
            UnixNanos::of(UNIX_EPOCH - Duration::from_secs(1)),
            UnixNanos(0)
        );
        let at = UNIX_EPOCH + Duration::from_nanos(5);
        assert_eq!(UnixNanos::of(at), UnixNanos(5));
        assert_eq!(UnixNanos(5).system_time(), at);
        let far = UNIX_EPOCH + Duration::from_secs(u64::MAX / 1_000_000_000 + 1);
        assert_eq!(UnixNanos::of(far), UnixNanos(u64::MAX));
        assert_eq!(UnixNanos(u64::MAX - 1).plus_us(1), UnixNanos(u64::MAX));
        let before = time::macros::datetime!(1969-12-31 23:59:59 UTC);
        assert_eq!(UnixNanos::of_offset(before), UnixNanos(0));
        let now = SystemTime::now();
        let offset = time::OffsetDateTime::from(now);
        assert_eq!(UnixNanos::of_offset(offset), UnixNanos::of(now));
    }
}
