//! What every detector needs of a trace: times in milliseconds since the trace began (from
//! relative or absolute timestamps), the requests a record served, and readable durations.
use std::collections::HashMap;
use std::net::SocketAddr;

use time::OffsetDateTime;

use crate::phases::{Precision, RequestPhases, request_phases};
use crate::{
    DialTrace, DnsQueryTrace, HttpReqTrace, HttpTrace, TcpConnTrace, Timestamp, TraceId,
    UdpConnTrace, units,
};

/// A trace and the facts derived once from it.
pub(super) struct Ctx<'a> {
    /// The trace diagnosed.
    pub(super) trace: &'a HttpTrace,
    begin: Option<OffsetDateTime>,
    /// The phases of every request, in the trace's order.
    phases: Vec<RequestPhases>,
    /// Each request's index, by ID.
    request_index: HashMap<&'a TraceId, usize>,
    /// The indexes of the requests over each TCP connection, in the trace's order.
    requests_by_conn: HashMap<&'a TraceId, Vec<usize>>,
    /// The indexes of the requests through each TLS tunnel (theirs or their proxy's).
    requests_by_tunnel: HashMap<&'a TraceId, Vec<usize>>,
    /// For each dial that connected nothing, the failed request it was for.
    orphan_of_dial: HashMap<&'a TraceId, usize>,
    /// The inverse: the dials of each failed request without a connection.
    dials_of_orphan: HashMap<usize, Vec<&'a DialTrace>>,
    /// The records by ID (the first of each ID), so that large traces cost linear time.
    dials: HashMap<&'a TraceId, &'a DialTrace>,
    tcp_conns: HashMap<&'a TraceId, &'a TcpConnTrace>,
    udp_conns: HashMap<&'a TraceId, &'a UdpConnTrace>,
    queries_by_dial: HashMap<&'a TraceId, Vec<&'a DnsQueryTrace>>,
}

impl<'a> Ctx<'a> {
    pub(super) fn new(trace: &'a HttpTrace) -> Self {
        let net = &trace.net_trace;
        let mut request_index = HashMap::new();
        let mut requests_by_conn: HashMap<&TraceId, Vec<usize>> = HashMap::new();
        let mut requests_by_tunnel: HashMap<&TraceId, Vec<usize>> = HashMap::new();
        for (i, req) in trace.http_requests.iter().enumerate() {
            request_index.entry(&req.trace_id).or_insert(i);
            if !req.tcp_conn.is_empty() {
                requests_by_conn.entry(&req.tcp_conn).or_default().push(i);
            }
            for tunnel in [&req.tls_tunnel, &req.proxy_tls_tunnel] {
                if !tunnel.is_empty() {
                    requests_by_tunnel.entry(tunnel).or_default().push(i);
                }
            }
        }
        let mut queries_by_dial: HashMap<&TraceId, Vec<&DnsQueryTrace>> = HashMap::new();
        for query in net.dns_queries.iter() {
            queries_by_dial
                .entry(&query.from_dial)
                .or_default()
                .push(query);
        }
        let mut ctx = Self {
            trace,
            begin: net.trace_begin_at.as_absolute(),
            phases: request_phases(trace),
            request_index,
            requests_by_conn,
            requests_by_tunnel,
            orphan_of_dial: HashMap::new(),
            dials_of_orphan: HashMap::new(),
            dials: by_id(net.dials.iter(), |d| &d.trace_id),
            tcp_conns: by_id(net.tcp_conns.iter(), |c| &c.trace_id),
            udp_conns: by_id(net.udp_conns.iter(), |c| &c.trace_id),
            queries_by_dial,
        };
        ctx.orphan_of_dial = ctx.orphans_of_dials();
        for dial in net.dials.iter() {
            if let Some(index) = ctx.orphan_of_dial.get(&dial.trace_id) {
                ctx.dials_of_orphan.entry(*index).or_default().push(dial);
            }
        }
        ctx
    }

    /// For each dial that connected nothing, the failed request without a connection sent
    /// last before it began, or the only such request (Go's traces name no connection for a
    /// request whose dial failed).
    fn orphans_of_dials(&self) -> HashMap<&'a TraceId, usize> {
        let trace = self.trace;
        let mut orphans: Vec<(Option<i64>, usize)> = trace
            .http_requests
            .iter()
            .enumerate()
            .filter(|(_, r)| r.tcp_conn.is_empty() && !r.req_error.is_empty())
            .map(|(i, r)| (self.ms(&r.req_sent_at), i))
            .collect();
        let only = match orphans.as_slice() {
            [(_, i)] => Some(*i),
            _ => None,
        };
        // Sorted by time sent (unknown times first, never picked), then trace order.
        orphans.sort_unstable();
        let mut out = HashMap::new();
        for dial in trace.net_trace.dials.iter() {
            if !dial.established_conn.is_empty() {
                continue;
            }
            let before = self.ms(&dial.dial_begin_at).and_then(|begin| {
                let end = orphans.partition_point(|(sent, _)| sent.is_none_or(|s| s <= begin));
                orphans[..end]
                    .last()
                    .filter(|(sent, _)| sent.is_some())
                    .map(|(_, i)| *i)
            });
            if let Some(index) = before.or(only) {
                out.entry(&dial.trace_id).or_insert(index);
            }
        }
        out
    }

    /// The phases of `req`.
    pub(super) fn phases(&self, req: &HttpReqTrace) -> Option<&RequestPhases> {
        let index = *self.request_index.get(&req.trace_id)?;
        self.phases
            .get(index)
            .filter(|p| p.http_req == req.trace_id)
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
        let requests = &self.trace.http_requests;
        self.requests_by_conn
            .get(conn)
            .map(|indexes| indexes.iter().filter_map(|i| requests.at(*i)).collect())
            .unwrap_or_default()
    }

    /// The requests a dial served: those over the connection it established, or, for a
    /// dial that connected nothing, the failed request it was for.
    pub(super) fn requests_of_dial(&self, dial: &DialTrace) -> Vec<&'a HttpReqTrace> {
        if !dial.established_conn.is_empty() {
            return self.requests_on_conn(&dial.established_conn);
        }
        self.orphan_of_dial
            .get(&dial.trace_id)
            .and_then(|i| self.trace.http_requests.at(*i))
            .into_iter()
            .collect()
    }

    /// The dials that a failed request without a connection went through (the inverse of
    /// [`Ctx::requests_of_dial`]).
    pub(super) fn dials_of_failed_request(&self, req: &HttpReqTrace) -> Vec<&'a DialTrace> {
        self.request_index
            .get(&req.trace_id)
            .and_then(|index| self.dials_of_orphan.get(index))
            .cloned()
            .unwrap_or_default()
    }

    /// The requests through a TLS tunnel (as theirs or their proxy's).
    pub(super) fn requests_through_tunnel(&self, tunnel: &TraceId) -> Vec<&'a HttpReqTrace> {
        let requests = &self.trace.http_requests;
        self.requests_by_tunnel
            .get(tunnel)
            .map(|indexes| indexes.iter().filter_map(|i| requests.at(*i)).collect())
            .unwrap_or_default()
    }

    /// The DNS queries of a dial.
    pub(super) fn queries_of_dial(&self, dial: &TraceId) -> Vec<&'a DnsQueryTrace> {
        self.queries_by_dial.get(dial).cloned().unwrap_or_default()
    }

    /// The TCP connection `id`.
    pub(super) fn tcp(&self, id: &TraceId) -> Option<&'a TcpConnTrace> {
        self.tcp_conns.get(id).copied()
    }

    /// The UDP connection `id`.
    pub(super) fn udp(&self, id: &TraceId) -> Option<&'a UdpConnTrace> {
        self.udp_conns.get(id).copied()
    }

    /// The requests a TCP connection served, or would have: over it, or, when it failed, those
    /// of its dial.
    pub(super) fn requests_of_tcp(&self, conn: &TcpConnTrace) -> Vec<&'a HttpReqTrace> {
        let on = self.requests_on_conn(&conn.trace_id);
        if !on.is_empty() {
            return on;
        }
        self.dial(&conn.from_dial)
            .map(|d| self.requests_of_dial(d))
            .unwrap_or_default()
    }

    /// The dial of a connection, when known.
    pub(super) fn dial(&self, id: &TraceId) -> Option<&'a DialTrace> {
        self.dials.get(id).copied()
    }
}

/// Records by their ID, the first of each ID (as `TraceList::get` finds it); empty IDs left
/// out.
fn by_id<'a, T>(
    records: impl Iterator<Item = &'a T>,
    id: impl Fn(&'a T) -> &'a TraceId,
) -> HashMap<&'a TraceId, &'a T> {
    let mut map = HashMap::new();
    for record in records {
        let key = id(record);
        if !key.is_empty() {
            map.entry(key).or_insert(record);
        }
    }
    map
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
