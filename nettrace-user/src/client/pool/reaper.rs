//! Closes connections that stayed idle longer than `idle_conn_timeout`, also when no further
//! request comes (Go arms a timer per idle connection; here one task per pool sleeps until
//! the earliest expiry).
//!
//! The task starts with the first connection kept and holds the pool only weakly. It sleeps
//! until the next expiry; with nothing to expire it parks, and the next connection kept wakes
//! it (the only time a request pays for a wake-up). It ends when the pool is dropped.
use std::{
    sync::{Arc, Weak},
    time::Instant,
};

use tokio::sync::Notify;

use super::{Pool, State};

/// Whether the reaper runs, and whether it waits to be woken.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) enum Status {
    #[default]
    NotStarted,
    /// Sleeping until an expiry (or running).
    Running,
    /// Nothing to expire: waits for [`Pool::reaper_wanted`].
    Parked,
}

impl Pool {
    /// A connection was kept: starts the reaper, or wakes it when parked.
    pub(super) fn reaper_wanted(self: &Arc<Self>, state: &mut State) {
        if self.settings.idle_timeout.is_none() {
            return;
        }
        match state.reaper {
            Status::Running => {}
            Status::Parked => {
                state.reaper = Status::Running;
                self.wake_reaper.notify_one();
            }
            Status::NotStarted => {
                // Outside a runtime (not the case for requests) idle connections still
                // expire, at the next checkout.
                if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                    state.reaper = Status::Running;
                    runtime.spawn(run(Arc::downgrade(self), self.wake_reaper.clone()));
                }
            }
        }
    }

    /// Drops what has expired; returns when the next connection expires, or `None` (and
    /// parks) when none is kept.
    fn reap(&self, now: Instant) -> Option<Instant> {
        let limit = self.settings.idle_timeout?;
        let mut expired = Vec::new();
        let mut state = self.lock();
        let mut next: Option<Instant> = None;
        let mut removed = 0;
        for host in state.hosts.values_mut() {
            while let Some(idle) = host.idle.front() {
                let at = idle.since.map_or(now, |since| since + limit);
                if at > now && !idle.conn.is_closed() {
                    next = Some(next.map_or(at, |n| n.min(at)));
                    break;
                }
                if let Some(idle) = host.idle.pop_front() {
                    removed += 1;
                    expired.push(idle.conn);
                }
            }
            host.shared.retain_mut(|shared| {
                let at = shared.used.map_or(now, |used| used + limit);
                if at > now && !shared.conn.is_closed() {
                    next = Some(next.map_or(at, |n| n.min(at)));
                    return true;
                }
                false
            });
            host.waiters.retain(|w| !w.is_closed());
        }
        state.idle_count -= removed;
        state.hosts.retain(|_, host| !host.is_empty());
        if next.is_none() {
            state.reaper = Status::Parked;
        }
        drop(state);
        drop(expired);
        next
    }
}

/// The reaper task of one pool.
async fn run(pool: Weak<Pool>, wake: Arc<Notify>) {
    // Bounded by the pool's lifetime: each round needs the pool alive.
    loop {
        let next = match pool.upgrade() {
            Some(pool) => pool.reap(Instant::now()),
            None => return,
        };
        match next {
            Some(at) => {
                tokio::select! {
                    () = tokio::time::sleep_until(at.into()) => {}
                    () = wake.notified() => {}
                }
            }
            None => wake.notified().await,
        }
    }
}
