//! The client's own connection pool over hyper's `client::conn` (in place of hyper-util's
//! legacy client, which returns a connection to its pool from a background task, so that the
//! next request sometimes dialed a second connection before the first was back).
//!
//! Here an HTTP/1 connection is back in the idle list before the caller reads the end of its
//! response body ([`ReturnOnEnd`], called from the body's end path), as in Go's transport. A
//! checkout takes the newest idle connection and waits until hyper has finished the previous
//! exchange on it ([`PooledConn::ready`]); if the connection closed instead, it takes the next
//! one or dials. Sequential keep-alive requests to one host therefore use one connection,
//! every time.
//!
//! HTTP/2 connections are shared: every request for the key uses one while it is open.
//! Limits, as Go's: idle HTTP/1 connections per host (`max_idle_conns_per_host`) and in all
//! (`max_idle_conns`, the one idle longest is closed), and an idle timeout
//! (`idle_conn_timeout`, enforced by a [reaper](reaper) task). A request that dials also
//! waits for a connection handed back meanwhile, and takes whichever comes first (a finished
//! dial then goes to the pool).
mod checkout;
mod conn;
mod dial;
mod key;
mod reaper;

use std::{
    collections::VecDeque,
    sync::{Arc, Mutex, MutexGuard, PoisonError},
    time::{Duration, Instant},
};

use rustc_hash::FxHashMap;
use tokio::sync::{Notify, oneshot};

pub(crate) use self::{
    conn::{PooledConn, ReturnOnEnd, Sender},
    key::PoolKey,
};
use super::connector::TracedConnector;

/// The pool's limits, from the client configuration.
#[derive(Clone, Copy, Debug)]
pub(crate) struct PoolSettings {
    /// Connections are reused at all (`!disable_keep_alive`).
    pub(crate) keep_alive: bool,
    /// Idle HTTP/1 connections kept per key.
    pub(crate) max_idle_per_host: usize,
    /// Idle HTTP/1 connections kept in all; 0 means no limit.
    pub(crate) max_idle: usize,
    /// How long a connection may stay unused.
    pub(crate) idle_timeout: Option<Duration>,
}

/// The connections of one client.
pub(crate) struct Pool {
    connector: TracedConnector,
    settings: PoolSettings,
    state: Mutex<State>,
    /// Wakes the reaper when it has nothing to wait for, and when the pool is dropped.
    wake_reaper: Arc<Notify>,
}

#[derive(Default)]
struct State {
    hosts: FxHashMap<PoolKey, Host>,
    /// Idle HTTP/1 connections in all hosts.
    idle_count: usize,
    /// Orders idle connections across hosts (the one idle longest has the lowest).
    next_seq: u64,
    /// `close()` was called: nothing is kept any more.
    closed: bool,
    reaper: reaper::Status,
}

#[derive(Default)]
struct Host {
    /// Idle HTTP/1 connections, the one idle longest first.
    idle: VecDeque<Idle>,
    /// Open HTTP/2 connections (normally one), used by every request.
    shared: Vec<Shared>,
    /// Requests dialing for this key that also take a connection handed back meanwhile.
    waiters: VecDeque<oneshot::Sender<PooledConn>>,
}

impl Host {
    fn is_empty(&self) -> bool {
        self.idle.is_empty() && self.shared.is_empty() && self.waiters.is_empty()
    }
}

struct Idle {
    conn: PooledConn,
    seq: u64,
    /// When it became idle (only with an idle timeout).
    since: Option<Instant>,
}

struct Shared {
    conn: PooledConn,
    /// When a request last took it (only with an idle timeout).
    used: Option<Instant>,
}

/// What a checkout found without waiting.
pub(crate) enum Found {
    /// A connection for the key; `ready()` may still have to wait.
    Conn(PooledConn),
    /// None: dial, and take a connection handed back meanwhile from `Some` receiver.
    Dial(Option<oneshot::Receiver<PooledConn>>),
}

impl Pool {
    pub(crate) fn new(connector: TracedConnector, settings: PoolSettings) -> Self {
        Self {
            connector,
            settings,
            state: Mutex::new(State::default()),
            wake_reaper: Arc::new(Notify::new()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn now(&self) -> Option<Instant> {
        self.settings.idle_timeout.map(|_| Instant::now())
    }

    fn expired(&self, since: Option<Instant>, now: Option<Instant>) -> bool {
        match (self.settings.idle_timeout, since, now) {
            (Some(limit), Some(since), Some(now)) => now.saturating_duration_since(since) >= limit,
            _ => false,
        }
    }

    /// An open connection for `key`: the newest idle HTTP/1 one, or a shared HTTP/2 one.
    /// Otherwise the caller dials, and (with keep-alive) is registered to take a connection
    /// handed back meanwhile.
    pub(crate) fn find(&self, key: &PoolKey) -> Found {
        let now = self.now();
        let mut discarded = Vec::new();
        let mut state = self.lock();
        let State {
            hosts, idle_count, ..
        } = &mut *state;
        if let Some(host) = hosts.get_mut(key) {
            while let Some(idle) = host.idle.pop_back() {
                *idle_count -= 1;
                if self.expired(idle.since, now) || idle.conn.is_closed() {
                    discarded.push(idle.conn);
                    continue;
                }
                return Found::Conn(idle.conn);
            }
            host.shared
                .retain(|s| !s.conn.is_closed() && !self.expired(s.used, now));
            if let Some(shared) = host.shared.first_mut()
                && let Some(conn) = shared.conn.share()
            {
                shared.used = now;
                return Found::Conn(conn);
            }
        }
        if !self.settings.keep_alive || state.closed {
            return Found::Dial(None);
        }
        let (tx, rx) = oneshot::channel();
        let host = host_entry(&mut state.hosts, key);
        host.waiters.retain(|w| !w.is_closed());
        host.waiters.push_back(tx);
        drop(state);
        drop(discarded);
        Found::Dial(Some(rx))
    }

    /// Takes an HTTP/1 connection back: to a request waiting for one, else into the idle
    /// list within the limits. HTTP/2 connections go to [`Self::share`].
    pub(crate) fn put(self: &Arc<Self>, key: &PoolKey, conn: PooledConn) {
        if conn.is_http2() {
            return self.share(key, conn);
        }
        let mut discarded = None;
        let mut state = self.lock();
        if !self.settings.keep_alive || state.closed {
            drop(state);
            return;
        }
        let mut conn = conn;
        let since = self.now();
        let seq = state.next_seq;
        state.next_seq += 1;
        let host = host_entry(&mut state.hosts, key);
        while let Some(waiter) = host.waiters.pop_front() {
            match waiter.send(conn) {
                Ok(()) => return,
                Err(back) => conn = back,
            }
        }
        if host.idle.len() >= self.settings.max_idle_per_host {
            drop(state);
            return;
        }
        host.idle.push_back(Idle { conn, seq, since });
        state.idle_count += 1;
        if self.settings.max_idle > 0 && state.idle_count > self.settings.max_idle {
            discarded = evict_oldest(&mut state);
        }
        self.reaper_wanted(&mut state);
        drop(state);
        drop(discarded);
    }

    /// Makes a new HTTP/2 connection available to every request for `key` (and hands it to
    /// those waiting), unless another one already is.
    pub(crate) fn share(self: &Arc<Self>, key: &PoolKey, conn: PooledConn) {
        let mut state = self.lock();
        if !self.settings.keep_alive || state.closed {
            return;
        }
        let used = self.now();
        let host = host_entry(&mut state.hosts, key);
        for waiter in host.waiters.drain(..) {
            if let Some(copy) = conn.share() {
                let _ = waiter.send(copy);
            }
        }
        host.shared.retain(|s| !s.conn.is_closed());
        if host.shared.is_empty() {
            host.shared.push(Shared { conn, used });
            self.reaper_wanted(&mut state);
        }
    }

    /// Closes every idle connection and keeps none from now on (`HttpClient::close`).
    pub(crate) fn close(&self) {
        let hosts = {
            let mut state = self.lock();
            state.closed = true;
            state.idle_count = 0;
            std::mem::take(&mut state.hosts)
        };
        drop(hosts);
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        // The reaper holds only a weak reference: let it see that the pool is gone.
        self.wake_reaper.notify_one();
    }
}

/// The entry of `key`, made on first use (the key is cloned only then). Always `Some`.
fn host_entry<'a>(hosts: &'a mut FxHashMap<PoolKey, Host>, key: &PoolKey) -> &'a mut Host {
    // One lookup: the key's clone is a few reference counts, a second lookup would compare
    // the authorities again.
    hosts.entry(key.clone()).or_default()
}

/// Removes the connection idle longest across all hosts (Go's `MaxIdleConns`); returns it so
/// that it is closed after the lock is released.
fn evict_oldest(state: &mut State) -> Option<PooledConn> {
    let (_, host) = state
        .hosts
        .iter_mut()
        .filter_map(|(_, host)| Some((host.idle.front()?.seq, host)))
        .min_by_key(|(seq, _)| *seq)?;
    let idle = host.idle.pop_front()?;
    state.idle_count -= 1;
    Some(idle.conn)
}
