//! The one way this crate takes its mutexes.

use std::sync::{Mutex, MutexGuard, PoisonError};

/// Locks `mutex`, also when a thread panicked while holding it.
///
/// Only for data whose every critical section leaves it consistent (single map, queue or
/// syscall steps, never a half-done multi-step update), which is how every mutex of this
/// crate is used: a panic elsewhere must not take tracing down with it.
pub(crate) fn lock<T: ?Sized>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
