//! [`Retiring`]: when a traced TCP socket leaves kernel tracing.
use std::time::{Duration, Instant};

use rustc_hash::{FxHashMap, FxHashSet};

use crate::SocketCookie;

/// How long a socket the application closed waits for the kernel's CLOSE. That comes within
/// seconds of `close()` (FIN-WAIT-2 lasts `net.ipv4.tcp_fin_timeout`, 60 s by default; FINs
/// to a peer gone quiet are retried for about two minutes), so a socket still waiting after
/// this lost its CLOSE record (a full ring buffer, or another program that turned its state
/// callback off) and leaves all the same, instead of keeping the programs armed.
pub(super) const RETIRE_WAIT: Duration = Duration::from_secs(10 * 60);

/// How often the waits are looked over (at the next socket closed by either side).
const SWEEP_EVERY: Duration = Duration::from_secs(60);

/// Which side is done with a TCP socket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Side {
    /// The application closed it.
    Application,
    /// The kernel reported its final CLOSE.
    Kernel,
}

/// A TCP socket leaves kernel tracing (its hold on the programs is released; its entry goes
/// with the socket) once the application has closed it *and* the kernel has reported its
/// final CLOSE, in either order: the state machine goes on after `close()` (FIN,
/// TIME_WAIT), and after a reset the application may still read from a socket in CLOSE.
/// A socket the application closed more than [`RETIRE_WAIT`] ago leaves without its CLOSE;
/// that is checked when a socket closes (on either side), when a trace is taken and, for a
/// client of the in-process kernel hub, on the hub's tick (so an idle client lets go too; a
/// daemon client has no tick), at most every [`SWEEP_EVERY`]. A socket of the hub whose
/// `connect()` failed before it left CLOSE never comes here: no CLOSE would come for it, and it
/// leaves at once (`EventSink::tcp_socket_failed`).
#[derive(Debug, Default)]
pub(super) struct Retiring {
    /// Closed by the application (since then), CLOSE not seen yet.
    dropped: FxHashMap<SocketCookie, Instant>,
    /// CLOSE seen, still open in the application (which closes every socket it opened).
    closed: FxHashSet<SocketCookie>,
    /// Left without their CLOSE (when): one that comes late is not waited for. Forgotten
    /// after another [`RETIRE_WAIT`].
    expired: FxHashMap<SocketCookie, Instant>,
    /// When the waits are looked over next ([`SWEEP_EVERY`] after the last time); `None`:
    /// at the next chance. Kept as a time to compare with rather than the last sweep's,
    /// whose distance to now cost a subtraction of instants for every socket closed.
    next_sweep: Option<Instant>,
}

impl Retiring {
    /// Records that `side` is done with `cookie` at `now`; returns the sockets that leave:
    /// `cookie` once both sides are done (in one step, so the two sides cannot both miss
    /// each other), and those that waited too long for their CLOSE. No list is allocated
    /// unless some did: this runs for every TCP socket, on both sides.
    pub(super) fn done(
        &mut self,
        cookie: SocketCookie,
        side: Side,
        now: Instant,
    ) -> impl Iterator<Item = SocketCookie> + use<> {
        self.mark_done(cookie, side, now)
            .then_some(cookie)
            .into_iter()
            .chain(self.expired_at(now))
    }

    /// [`Self::done`] without the sweep: whether `cookie` leaves. For sockets closed together
    /// (a drain's), followed by one [`Self::expired_at`] for them all.
    pub(super) fn mark_done(&mut self, cookie: SocketCookie, side: Side, now: Instant) -> bool {
        match side {
            Side::Application => {
                let leaves = self.closed.remove(&cookie);
                if !leaves {
                    self.dropped.entry(cookie).or_insert(now);
                }
                leaves
            }
            Side::Kernel => {
                let leaves = self.dropped.remove(&cookie).is_some();
                if !leaves && self.expired.remove(&cookie).is_none() {
                    self.closed.insert(cookie);
                }
                leaves
            }
        }
    }

    /// `cookie` leaves at `now` without its CLOSE, whose record no program sent (a socket
    /// whose `connect()` failed before it left CLOSE): a CLOSE that came all the same would
    /// find it among the expired ones, not wait in vain for the application.
    pub(super) fn left_without_close(&mut self, cookie: SocketCookie, now: Instant) {
        self.expired.insert(cookie, now);
    }

    /// The sockets the application closed more than [`RETIRE_WAIT`] before `now`, which
    /// leave; looked for at most every [`SWEEP_EVERY`] (empty otherwise).
    pub(super) fn expired_at(&mut self, now: Instant) -> Vec<SocketCookie> {
        if self.next_sweep.is_some_and(|next| now < next) {
            return Vec::new();
        }
        // Always there: the monotonic clock counts from boot, nowhere near its end.
        self.next_sweep = now.checked_add(SWEEP_EVERY);
        self.sweep(now)
    }

    /// The sockets the application closed more than [`RETIRE_WAIT`] before `now`, which
    /// leave; forgets the expired ones older than that.
    fn sweep(&mut self, now: Instant) -> Vec<SocketCookie> {
        let old = |since: &Instant| now.saturating_duration_since(*since) >= RETIRE_WAIT;
        self.expired.retain(|_, since| !old(since));
        let leaving: Vec<SocketCookie> = self
            .dropped
            .iter()
            .filter(|(_, since)| old(since))
            .map(|(cookie, _)| *cookie)
            .collect();
        for cookie in &leaving {
            self.dropped.remove(cookie);
            self.expired.insert(*cookie, now);
        }
        leaving
    }

    /// The sockets that left without their CLOSE, still remembered.
    #[cfg(test)]
    pub(super) fn expired_cookies(&self) -> Vec<SocketCookie> {
        self.expired.keys().copied().collect()
    }

    /// Whether `cookie` waits for its CLOSE (closed by the application, CLOSE not seen).
    #[cfg(test)]
    pub(super) fn waits_for(&self, cookie: SocketCookie) -> bool {
        self.dropped.contains_key(&cookie)
    }

    /// Sockets remembered, in all three sets.
    #[cfg(test)]
    pub(super) fn remembered(&self) -> usize {
        self.dropped.len() + self.closed.len() + self.expired.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: SocketCookie = SocketCookie(1);
    const B: SocketCookie = SocketCookie(2);
    const C: SocketCookie = SocketCookie(3);

    /// [`Retiring::done`], collected.
    fn done(
        retiring: &mut Retiring,
        cookie: SocketCookie,
        side: Side,
        now: Instant,
    ) -> Vec<SocketCookie> {
        retiring.done(cookie, side, now).collect()
    }

    #[test]
    fn a_socket_leaves_once_both_sides_are_done_in_either_order() {
        let t = Instant::now();
        let mut retiring = Retiring::default();
        assert!(done(&mut retiring, A, Side::Application, t).is_empty());
        assert_eq!(done(&mut retiring, A, Side::Kernel, t), [A]);
        assert!(done(&mut retiring, B, Side::Kernel, t).is_empty());
        assert_eq!(done(&mut retiring, B, Side::Application, t), [B]);
        assert_eq!(retiring.remembered(), 0);
    }

    #[test]
    fn many_connections_leave_nothing_behind() {
        let t = Instant::now();
        let mut retiring = Retiring::default();
        for n in 0..100_000 {
            let (cookie, at) = (SocketCookie(n), t + Duration::from_millis(n));
            assert!(done(&mut retiring, cookie, Side::Application, at).is_empty());
            assert_eq!(done(&mut retiring, cookie, Side::Kernel, at), [cookie]);
        }
        assert_eq!(retiring.remembered(), 0);
    }

    #[test]
    fn a_closed_socket_whose_close_never_comes_leaves_after_the_wait() {
        let t = Instant::now();
        let mut retiring = Retiring::default();
        assert!(done(&mut retiring, A, Side::Application, t).is_empty());
        let almost = t + RETIRE_WAIT - Duration::from_secs(1);
        assert!(done(&mut retiring, B, Side::Application, almost).is_empty());
        // The first sweep after A's wait (sweeps are a minute apart) lets A go; B still waits.
        assert!(done(&mut retiring, C, Side::Kernel, t + RETIRE_WAIT).is_empty());
        let later = almost + SWEEP_EVERY;
        assert_eq!(done(&mut retiring, C, Side::Kernel, later), [A]);
        assert_eq!(done(&mut retiring, B, Side::Kernel, later), [B]);
        // A's CLOSE, late: not waited for (A left), and A is forgotten then.
        assert!(done(&mut retiring, A, Side::Kernel, later).is_empty());
        assert_eq!(
            retiring.remembered(),
            1,
            "only C's CLOSE waits: {retiring:?}"
        );
    }

    #[test]
    fn a_close_waiting_for_the_application_is_kept() {
        let t = Instant::now();
        let mut retiring = Retiring::default();
        // A reset connection left open in a pool for longer than the wait.
        assert!(done(&mut retiring, A, Side::Kernel, t).is_empty());
        let much_later = t + 3 * RETIRE_WAIT;
        assert!(done(&mut retiring, B, Side::Kernel, much_later).is_empty());
        assert_eq!(done(&mut retiring, A, Side::Application, much_later), [A]);
    }

    #[test]
    fn a_client_that_only_takes_traces_lets_an_expired_socket_go() {
        let t = Instant::now();
        let mut retiring = Retiring::default();
        done(&mut retiring, A, Side::Application, t);
        assert!(retiring.expired_at(t + SWEEP_EVERY).is_empty());
        assert_eq!(retiring.expired_at(t + RETIRE_WAIT + SWEEP_EVERY), [A]);
        assert!(
            retiring
                .expired_at(t + RETIRE_WAIT + SWEEP_EVERY)
                .is_empty()
        );
    }

    #[test]
    fn an_expired_socket_is_forgotten_after_another_wait() {
        let t = Instant::now();
        let mut retiring = Retiring::default();
        done(&mut retiring, A, Side::Application, t);
        assert_eq!(done(&mut retiring, B, Side::Kernel, t + RETIRE_WAIT), [A]);
        assert_eq!(retiring.expired.len(), 1);
        done(&mut retiring, C, Side::Kernel, t + 2 * RETIRE_WAIT);
        assert!(retiring.expired.is_empty());
    }
}
