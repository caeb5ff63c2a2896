//! Clocks: the kernel's monotonic clock as seen from userspace, and the conversion of instants
//! into the model's timestamps.
//!
//! Kernel events carry `bpf_ktime_get_ns()`, which is `CLOCK_MONOTONIC` in nanoseconds;
//! [`KernelTime::now`] reads the same clock, so kernel and userspace instants compare directly.
//! Userspace hooks record [`Instant`]s; a [`TraceClock`] turns both into [`Timestamp`]s
//! relative to the beginning of a trace, or absolute for what happened before it.
use std::time::{Duration, Instant};

use time::OffsetDateTime;

use crate::model::{PreciseTimes, Timestamp};

/// An instant on `CLOCK_MONOTONIC`, in nanoseconds since boot (the clock of kernel events).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct KernelTime(pub u64);

impl KernelTime {
    /// The current time on `CLOCK_MONOTONIC`.
    pub fn now() -> Self {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC always exists on Linux,
        // so the call cannot fail.
        unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
        Self(ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64)
    }

    /// Time from `earlier` to `self`, zero if `earlier` is later.
    pub fn saturating_since(self, earlier: KernelTime) -> Duration {
        Duration::from_nanos(self.0.saturating_sub(earlier.0))
    }
}

impl KernelTime {
    /// This kernel time as an [`Instant`] (both are `CLOCK_MONOTONIC`; the offset between the
    /// two representations is measured once per process).
    pub(crate) fn to_instant(self) -> Instant {
        static BASE: std::sync::OnceLock<(Instant, KernelTime)> = std::sync::OnceLock::new();
        let (instant, kernel) = *BASE.get_or_init(|| (Instant::now(), KernelTime::now()));
        if self >= kernel {
            instant + self.saturating_since(kernel)
        } else {
            let before = kernel.saturating_since(self);
            instant.checked_sub(before).unwrap_or(instant)
        }
    }
}

/// The beginning of one trace, and the conversions of instants into its timestamps.
#[derive(Clone, Copy, Debug)]
pub(crate) struct TraceClock {
    begin: Instant,
    begin_wall: OffsetDateTime,
}

impl TraceClock {
    /// A trace beginning now.
    pub(crate) fn start_now() -> Self {
        Self::starting_at(Instant::now(), OffsetDateTime::now_utc())
    }

    /// A trace beginning at `begin`, which the wall clock reads as `begin_wall` (its
    /// `traceBeginAt`): a fixed clock for tests, or one read by the caller.
    pub(crate) fn starting_at(begin: Instant, begin_wall: OffsetDateTime) -> Self {
        Self { begin, begin_wall }
    }

    /// The absolute timestamp of the beginning (`traceBeginAt`).
    pub(crate) fn begin_at(&self) -> Timestamp {
        Timestamp::Absolute(self.begin_wall)
    }

    /// The wall-clock time of `at` (measured from the trace's beginning).
    pub(crate) fn wall_time(&self, at: Instant) -> OffsetDateTime {
        let offset = if at >= self.begin {
            time::Duration::try_from(at - self.begin).unwrap_or(time::Duration::MAX)
        } else {
            -time::Duration::try_from(self.begin - at).unwrap_or(time::Duration::MAX)
        };
        self.begin_wall
            .checked_add(offset)
            .unwrap_or(self.begin_wall)
    }

    /// `at` in µs since the trace began (`preciseUs`), when it happened during the trace.
    pub(crate) fn micros(&self, at: Option<Instant>) -> Option<u64> {
        let since = at?.checked_duration_since(self.begin)?;
        u64::try_from(since.as_micros()).ok()
    }

    /// The precise times of a record: each named instant that happened during the trace.
    /// Allocates nothing for the names the recorder uses (the model keeps them inline).
    pub(crate) fn precise(&self, times: &[(&str, Option<Instant>)]) -> PreciseTimes {
        let mut precise = PreciseTimes::default();
        for (key, at) in times {
            if let Some(us) = self.micros(*at) {
                precise.set(key, us);
            }
        }
        precise
    }

    /// `at` as a timestamp of this trace: relative when it happened during the trace, absolute
    /// when before it (a connection carried over from an earlier trace), undefined when unset.
    pub(crate) fn stamp(&self, at: Option<Instant>) -> Timestamp {
        match at {
            None => Timestamp::Undefined,
            Some(at) if at >= self.begin => Timestamp::relative_since(self.begin, at),
            Some(at) => {
                let before =
                    time::Duration::try_from(self.begin - at).unwrap_or(time::Duration::MAX);
                self.begin_wall
                    .checked_sub(before)
                    .map_or(Timestamp::Undefined, Timestamp::Absolute)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instants_become_relative_or_absolute_timestamps() {
        let clock = TraceClock::start_now();
        assert_eq!(clock.stamp(None), Timestamp::Undefined);
        let later = clock.begin + Duration::from_millis(1500);
        assert_eq!(clock.stamp(Some(later)), Timestamp::Relative(1500));
        if let Some(earlier) = clock.begin.checked_sub(Duration::from_secs(2)) {
            let Timestamp::Absolute(wall) = clock.stamp(Some(earlier)) else {
                panic!("not absolute");
            };
            let Timestamp::Absolute(begin) = clock.begin_at() else {
                panic!("begin not absolute");
            };
            assert_eq!(begin - wall, time::Duration::seconds(2));
        }
    }

    #[test]
    fn kernel_times_map_onto_instants() {
        let now = KernelTime::now();
        let instant = now.to_instant();
        let later = KernelTime(now.0 + 3_000_000).to_instant();
        assert_eq!(later - instant, Duration::from_millis(3));
        let drift = Instant::now().saturating_duration_since(instant);
        assert!(drift < Duration::from_millis(100), "{drift:?}");
    }

    #[test]
    fn now_is_monotonic() {
        let a = KernelTime::now();
        let b = KernelTime::now();
        assert!(b >= a);
        assert_eq!(a.saturating_since(b), Duration::ZERO);
    }
}
