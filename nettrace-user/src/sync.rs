//! The one way this crate takes its mutexes, and bumps a counter that has one writer.

use std::sync::{
    Mutex, MutexGuard, PoisonError,
    atomic::{AtomicU64, Ordering},
};

/// Locks `mutex`, also when a thread panicked while holding it.
///
/// Only for data whose every critical section leaves it consistent (single map, queue or
/// syscall steps, never a half-done multi-step update), which is how every mutex of this
/// crate is used: a panic elsewhere must not take tracing down with it.
pub(crate) fn lock<T: ?Sized>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Adds `n` to `counter`, which only one thread writes at a time (one writer, or writes under
/// one lock) while others may load it: a load and a store, no read-modify-write. An atomic
/// add is a `lock`-prefixed instruction, which costs tens of nanoseconds on the hot paths
/// where the counters of a request or a socket are bumped.
pub(crate) fn add_single_writer(counter: &AtomicU64, n: u64) {
    counter.store(counter.load(Ordering::Relaxed) + n, Ordering::Relaxed);
}
