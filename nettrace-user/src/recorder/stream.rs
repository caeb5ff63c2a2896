//! [`Recorder::take_request`]: one completed request's trace, taken out of the recorder, for
//! the completed-request stream (how a client that runs forever keeps a bounded trace).
//!
//! The request's records are its hops, the dials they caused (with their resolver
//! connections and DNS messages), the connections those dials opened or the hops used, and
//! the TLS tunnels of those. Everything is removed except the connections still open: they
//! stay, marked reused, with their socket operations (now in the streamed trace) cleared.
//! Their timestamps before the request began come out absolute, as a reused connection's
//! do after `clear_trace`.
use std::{mem, time::Instant};

use rustc_hash::FxHashSet;

use super::{KEPT_HEADER_BYTES, Recorder};
use crate::{
    SocketCookie,
    clock::TraceClock,
    model::{HttpTrace, TraceId},
};

/// The records of one request, by ID.
#[derive(Debug, Default)]
pub(crate) struct Selection {
    pub(super) http: FxHashSet<TraceId>,
    pub(super) dials: FxHashSet<TraceId>,
    pub(super) conns: FxHashSet<TraceId>,
    pub(super) tls: FxHashSet<TraceId>,
    /// DNS records, by their resolver connection.
    pub(super) dns: FxHashSet<TraceId>,
}

impl Recorder {
    /// The kernel cookies of the connections the request made of `hops` used: the sockets
    /// whose call totals its trace needs.
    pub(crate) fn request_cookies(&self, hops: &[TraceId]) -> Vec<SocketCookie> {
        self.select(hops)
            .conns
            .iter()
            .filter_map(|conn| self.conns.get(conn)?.cookie)
            .collect()
    }

    /// The trace of the request made of `hops` (the redirect chain, first to last), ending at
    /// `now` and beginning when its first record did; its records are taken out of the
    /// recorder (see the [module](self) documentation). `None` when the recorder holds
    /// nothing of it. The counts of what the limits dropped since the last taken trace go
    /// with it.
    pub(crate) fn take_request(&mut self, hops: &[TraceId], now: Instant) -> Option<HttpTrace> {
        let sel = self.select(hops);
        if sel.http.is_empty() && sel.dials.is_empty() {
            return None;
        }
        let begin = self
            .http
            .iter()
            .filter(|(id, _)| sel.http.contains(*id))
            .map(|(_, r)| r.sent)
            .chain(
                self.dials
                    .iter()
                    .filter(|(id, _)| sel.dials.contains(*id))
                    .map(|(_, d)| d.begin),
            )
            .min()
            .unwrap_or(now);
        let clock = TraceClock::starting_at(begin, self.clock.wall_time(begin));
        let description = hops
            .first()
            .and_then(|first| self.http.get(first))
            .map(|first| format!("{} {}", first.method, first.url))
            .unwrap_or_default();
        let dropped = mem::take(&mut self.dropped);
        let trace = self.trace_of(&description, now, &clock, &sel, dropped);
        self.forget(&sel);
        Some(trace)
    }

    /// The trace of connection `conn` (closed: a program's connection seen from the kernel,
    /// which has no HTTP requests), with its dial, DNS messages and TLS tunnels, taken out of
    /// the recorder; `None` when the recorder does not hold it.
    pub(crate) fn take_connection(&mut self, conn: &TraceId, now: Instant) -> Option<HttpTrace> {
        let rec = self.conns.get(conn)?;
        let mut sel = Selection::default();
        sel.conns.insert(conn.clone());
        let dial = self.dials.get(&rec.dial);
        let shared = self
            .conns
            .iter()
            .any(|(id, other)| id != conn && other.dial == rec.dial);
        if dial.is_some() && !shared {
            sel.dials.insert(rec.dial.clone());
        }
        if self.dns.get(conn).is_some() {
            sel.dns.insert(conn.clone());
        }
        for (id, tls) in self.tls.iter() {
            if &tls.conn == conn {
                sel.tls.insert(id.clone());
            }
        }
        let begin = dial.map_or(rec.opened, |d| d.begin.min(rec.opened));
        let clock = TraceClock::starting_at(begin, self.clock.wall_time(begin));
        let description = format!(
            "{} {}",
            match rec.transport {
                crate::event::Transport::Tcp => "TCP",
                crate::event::Transport::Udp => "UDP",
            },
            rec.remote
        );
        let dropped = mem::take(&mut self.dropped);
        let trace = self.trace_of(&description, now, &clock, &sel, dropped);
        self.forget(&sel);
        Some(trace)
    }

    /// A closed connection that no request in the recorder refers to any more (its request
    /// was streamed before it closed) is forgotten.
    pub(crate) fn forget_if_unused(&mut self, conn: &TraceId) {
        let Some(rec) = self.conns.get(conn) else {
            return;
        };
        if rec.closed.is_none()
            || self.dials.get(&rec.dial).is_some()
            || self.http.iter().any(|(_, r)| r.conn.as_ref() == Some(conn))
        {
            return;
        }
        if let Some(cookie) = rec.cookie {
            self.by_cookie.remove(&cookie);
        }
        self.conns.remove_where(|id, _| id == conn);
        self.tls.remove_where(|_, t| &t.conn == conn);
        if let Some(dns) = self.dns.get(conn) {
            self.dns_messages = self
                .dns_messages
                .saturating_sub(dns.queries.len() + dns.replies.len());
        }
        self.dns.remove_where(|id, _| id == conn);
    }

    fn select(&self, hops: &[TraceId]) -> Selection {
        let mut sel = Selection::default();
        for hop in hops {
            if let Some(rec) = self.http.get(hop) {
                sel.http.insert(hop.clone());
                sel.conns.extend(rec.conn.clone());
                sel.tls.extend(rec.tls.clone());
                sel.tls.extend(rec.proxy_tls.clone());
            }
        }
        for (id, dial) in self.dials.iter() {
            if dial.http_req.as_ref().is_some_and(|r| hops.contains(r)) {
                sel.dials.insert(id.clone());
            }
        }
        for (id, conn) in self.conns.iter() {
            if sel.dials.contains(&conn.dial) {
                sel.conns.insert(id.clone());
            }
        }
        for (id, tls) in self.tls.iter() {
            let caused = tls.http_req.as_ref().is_some_and(|r| hops.contains(r));
            if caused || sel.conns.contains(&tls.conn) {
                sel.tls.insert(id.clone());
            }
        }
        for (conn, dns) in self.dns.iter() {
            if sel.conns.contains(conn) || sel.dials.contains(&dns.dial) {
                sel.dns.insert(conn.clone());
            }
        }
        sel
    }

    /// Removes what `sel` names, except the open connections (carried on, as reused).
    fn forget(&mut self, sel: &Selection) {
        self.http.remove_where(|id, _| sel.http.contains(id));
        self.dials.remove_where(|id, _| sel.dials.contains(id));
        self.tls.remove_where(|id, _| sel.tls.contains(id));
        let mut messages = 0;
        self.dns.remove_where(|id, dns| {
            let gone = sel.dns.contains(id);
            if gone {
                messages += dns.queries.len() + dns.replies.len();
            }
            gone
        });
        self.dns_messages = self.dns_messages.saturating_sub(messages);
        let by_cookie = &mut self.by_cookie;
        self.conns.remove_where(|id, rec| {
            if !sel.conns.contains(id) {
                return false;
            }
            if rec.closed.is_some() {
                if let Some(cookie) = rec.cookie {
                    by_cookie.remove(&cookie);
                }
                return true;
            }
            rec.reused = true;
            rec.record.clear_ops();
            false
        });
        if self.http.is_empty() {
            // Every record that pointed into it is gone.
            self.header_bytes.clear();
            self.header_bytes.shrink_to(KEPT_HEADER_BYTES);
        }
    }
}
