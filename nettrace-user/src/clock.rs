//! The kernel's clock as seen from userspace.
//!
//! Kernel events carry `bpf_ktime_get_ns()`, which is `CLOCK_MONOTONIC` in nanoseconds;
//! [`KernelTime::now`] reads the same clock, so kernel and userspace instants compare directly.
use std::time::Duration;

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn now_is_monotonic() {
        let a = KernelTime::now();
        let b = KernelTime::now();
        assert!(b >= a);
        assert_eq!(a.saturating_since(b), Duration::ZERO);
    }
}
