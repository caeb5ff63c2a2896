//! What every detector needs of a trace: times in milliseconds since the trace began (from
//! relative or absolute timestamps), the requests a record served, and readable durations.
use std::net::SocketAddr;

use time::OffsetDateTime;

use crate::phases::{Precision, RequestPhases, request_phases};
use crate::{DialTrace, HttpReqTrace, HttpTrace, TcpConnTrace, Timestamp, TraceId, units};

/// A trace and the facts derived once from it.
pub(super) struct Ctx<'a> {
    /// The trace diagnosed.
    pub(super) trace: &'a HttpTrace,
    begin: Option<OffsetDateTime>,
    /// The phases of every request, in the trace's order.
    phases: Vec<RequestPhases>,
}

impl<'a> Ctx<'a> {
    pub(super) fn new(trace: &'a HttpTrace) -> Self {
        Self {
            trace,
            begin: trace.net_trace.trace_begin_at.as_absolute(),
            phases: request_phases(trace),
        }
    }

    /// The phases of `req`.
    pub(super) fn phases(&self, req: &HttpReqTrace) -> Option<&RequestPhases> {
        self.phases.iter().find(|p| p.http_req == req.trace_id)
    }

    /// Milliseconds since the trace began (negative for absolute times before it, as a
    /// connection carried over from an earlier trace has).
    pub(super) fn ms(&self, ts: &Timestamp) -> Option<i64> {
        match ts {
            Timestamp::Undefined => None,
            Timestamp::Relative(ms) => Some(i64::from(*ms)),
            Timestamp::Absolute(at) => {
                let begin = self.begin?;
                i64::try_from((*at - begin).whole_milliseconds()).ok()
            }
        }
    }

    /// `to - from` in milliseconds, when both are known.
    pub(super) fn span(&self, from: &Timestamp, to: &Timestamp) -> Option<i64> {
        Some(self.ms(to)? - self.ms(from)?)
    }

    /// `ts`, or the end of the trace when `ts` is undefined (something still running).
    pub(super) fn or_end(&self, ts: &Timestamp) -> Option<i64> {
        self.ms(ts)
            .or_else(|| self.ms(&self.trace.net_trace.trace_end_at))
    }

    /// The absolute time of `ts`, when the trace's start is known.
    pub(super) fn absolute(&self, ts: &Timestamp) -> Option<OffsetDateTime> {
        match ts {
            Timestamp::Absolute(at) => Some(*at),
            Timestamp::Relative(ms) => self
                .begin?
                .checked_add(time::Duration::milliseconds(i64::from(*ms))),
            Timestamp::Undefined => None,
        }
    }

    /// The requests sent over connection `conn` (or through a tunnel on it).
    pub(super) fn requests_on_conn(&self, conn: &TraceId) -> Vec<&'a HttpReqTrace> {
        if conn.is_empty() {
            return Vec::new();
        }
        self.trace
            .http_requests
            .iter()
            .filter(|r| &r.tcp_conn == conn)
            .collect()
    }

    /// The requests a dial served: those over the connection it established, or, for a
    /// dial that connected nothing, the failed request without a connection sent last before
    /// it began (Go's traces name no connection for such a request).
    pub(super) fn requests_of_dial(&self, dial: &DialTrace) -> Vec<&'a HttpReqTrace> {
        if !dial.established_conn.is_empty() {
            return self.requests_on_conn(&dial.established_conn);
        }
        let orphans: Vec<&HttpReqTrace> = self
            .trace
            .http_requests
            .iter()
            .filter(|r| r.tcp_conn.is_empty() && !r.req_error.is_empty())
            .collect();
        let begin = self.ms(&dial.dial_begin_at);
        let before = orphans
            .iter()
            .filter(|r| matches!((self.ms(&r.req_sent_at), begin), (Some(s), Some(b)) if s <= b))
            .max_by_key(|r| self.ms(&r.req_sent_at));
        match (before, orphans.as_slice()) {
            (Some(req), _) => vec![*req],
            (None, [only]) => vec![*only],
            _ => Vec::new(),
        }
    }

    /// The dial that a failed request without a connection went through (the inverse of
    /// [`Ctx::requests_of_dial`]).
    pub(super) fn dials_of_failed_request(&self, req: &HttpReqTrace) -> Vec<&'a DialTrace> {
        self.trace
            .net_trace
            .dials
            .iter()
            .filter(|d| d.established_conn.is_empty())
            .filter(|d| {
                self.requests_of_dial(d)
                    .iter()
                    .any(|r| r.trace_id == req.trace_id)
            })
            .collect()
    }

    /// The requests a TCP connection served, or would have: over it, or, when it failed, those
    /// of its dial.
    pub(super) fn requests_of_tcp(&self, conn: &TcpConnTrace) -> Vec<&'a HttpReqTrace> {
        let on = self.requests_on_conn(&conn.trace_id);
        if !on.is_empty() {
            return on;
        }
        self.trace
            .net_trace
            .dials
            .get(&conn.from_dial)
            .map(|d| self.requests_of_dial(d))
            .unwrap_or_default()
    }

    /// The dial of a connection, when known.
    pub(super) fn dial(&self, id: &TraceId) -> Option<&'a DialTrace> {
        self.trace.net_trace.dials.get(id)
    }
}

/// The IDs of `requests`.
pub(super) fn ids<'r>(requests: &[&'r HttpReqTrace]) -> impl Iterator<Item = &'r TraceId> {
    requests
        .iter()
        .map(|r| &r.trace_id)
        .collect::<Vec<_>>()
        .into_iter()
}

/// A duration in (whole) milliseconds, readably: `850ms`, `2.73s`.
pub(super) fn duration(ms: i64) -> String {
    let text = units::duration(ms.unsigned_abs().saturating_mul(1000), Precision::Millis);
    if ms < 0 { format!("-{text}") } else { text }
}

/// A time in microseconds, readably: `25µs`, `1.3ms`.
pub(super) fn micros(us: u32) -> String {
    units::duration(u64::from(us), Precision::Micros)
}

/// A rate in bytes per second, readably: `512 B/s`, `3.4 KiB/s`, `12.0 MiB/s`.
pub(super) fn rate(bytes: u64, us: u64) -> String {
    if us == 0 {
        return "unmeasured".to_owned();
    }
    let per_s = bytes as f64 * 1_000_000.0 / us as f64;
    if per_s < 1024.0 {
        format!("{per_s:.0} B/s")
    } else if per_s < 1024.0 * 1024.0 {
        format!("{:.1} KiB/s", per_s / 1024.0)
    } else {
        format!("{:.1} MiB/s", per_s / (1024.0 * 1024.0))
    }
}

/// `ip:port` of an address tuple's destination, or `?`.
pub(super) fn addr(addr: Option<SocketAddr>) -> String {
    addr.map_or_else(|| "?".to_owned(), |a| a.to_string())
}
