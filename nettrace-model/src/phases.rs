//! Where the time of each HTTP request went: [`request_phases`] splits every request of a trace
//! into phases (blocked, DNS, connect, TLS, send, wait, transfer) on one time axis, in
//! microseconds since the trace began.
//!
//! A pure function of a trace: it works on this project's traces, the loader's and Go's, with
//! the facts each holds. Precision is stated, never invented: a trace written by Go has whole
//! milliseconds, so its phases are [`Precision::Millis`]; a trace of this project's recorder
//! carries the same timestamps in microseconds ([`crate::PreciseTimes`], JSON `preciseUs`), and
//! its phases are [`Precision::Micros`].
//!
//! How each phase is found (all spans are `start..end`, µs since `traceBeginAt`):
//! - **blocked**: from the request (`reqSentAt`, when the client got it) to the start of its dial,
//!   or, on a reused connection, zero.
//! - **dns**: the dial's DNS messages (first query sent to last reply), else its resolver dials,
//!   else, for a name (not an IP address), from the dial's start to the first TCP handshake.
//! - **connect**: the TCP handshake (or, when no connection was made, the failed attempts).
//! - **tls** (and **proxy_tls**): the handshakes; none on a reused connection.
//! - **send**: the socket's writes of the request, when the trace has socket operations; else
//!   none (the request is written in microseconds; waiting for the answer is `wait`).
//! - **wait**: from the request being ready to go (connection and TLS done, or the request
//!   received on a reused connection) to the response head (`respRecvAt`): time to first byte.
//! - **transfer**: from the response head to the last byte of the body
//!   (`respBodyLastByteAt`, or the last socket read with data, when recorded).
//! - **total**: from the request to the last thing known of it.
//!
//! A connection is *reused* when it was carried over from an earlier trace, opened before the
//! request arrived, or served an earlier request of the trace; its connect and TLS phases
//! belong to that first request and [`RequestPhases::reused_conn`] names it.
//!
//! ```
//! use nettrace_model::{HttpReqTrace, HttpTrace, Timestamp, TraceId};
//! use nettrace_model::phases::{request_phases, Precision};
//!
//! let trace = HttpTrace {
//!     http_requests: vec![HttpReqTrace {
//!         trace_id: TraceId::new("req"),
//!         req_sent_at: Timestamp::Relative(2),
//!         resp_recv_at: Timestamp::Relative(30),
//!         ..Default::default()
//!     }]
//!     .into(),
//!     ..Default::default()
//! };
//! let phases = request_phases(&trace);
//! assert_eq!(phases[0].wait.map(|s| s.duration_us()), Some(28_000));
//! assert_eq!(phases[0].precision, Precision::Millis);
//! ```
use std::net::IpAddr;

use time::OffsetDateTime;

use self::index::TraceIndex;

use crate::{
    DialTrace, HttpReqTrace, HttpTrace, PreciseTimes, TcpConnTrace, Timestamp, TlsTunnelTrace,
    TraceId,
};

/// A stretch of time, in µs since the trace began.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Span {
    /// Start, µs since `traceBeginAt`.
    pub start_us: u64,
    /// End, µs since `traceBeginAt` (never before `start_us`).
    pub end_us: u64,
}

impl Span {
    /// A span from `start_us` to `end_us` (an end before the start is taken as the start).
    pub fn new(start_us: u64, end_us: u64) -> Self {
        Self {
            start_us,
            end_us: end_us.max(start_us),
        }
    }

    /// How long it lasted, µs.
    pub fn duration_us(&self) -> u64 {
        self.end_us - self.start_us
    }
}

/// How precise a request's phases are: what the trace held.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Precision {
    /// Whole milliseconds (Go's JSON): a phase of `0` lasted less than a millisecond, and every
    /// boundary is uncertain by up to 1 ms.
    #[default]
    Millis,
    /// Microseconds (this project's recorder, `preciseUs`).
    Micros,
}

/// One phase of a request, in the order they happen.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Phase {
    /// Waiting before the dial (or for a pooled connection).
    Blocked,
    /// Name resolution.
    Dns,
    /// The TCP handshake.
    Connect,
    /// The TLS handshake with an HTTPS proxy.
    ProxyTls,
    /// The TLS handshake with the server.
    Tls,
    /// Writing the request.
    Send,
    /// Waiting for the response head (time to first byte).
    Wait,
    /// Receiving the response body.
    Transfer,
}

impl Phase {
    /// Every phase, in order.
    pub const ALL: [Self; 8] = [
        Self::Blocked,
        Self::Dns,
        Self::Connect,
        Self::ProxyTls,
        Self::Tls,
        Self::Send,
        Self::Wait,
        Self::Transfer,
    ];

    /// Short lower-case name (`dns`, `connect`, `proxy-tls`, ...), as the waterfall prints it.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Blocked => "blocked",
            Self::Dns => "dns",
            Self::Connect => "connect",
            Self::ProxyTls => "proxy-tls",
            Self::Tls => "tls",
            Self::Send => "send",
            Self::Wait => "wait",
            Self::Transfer => "transfer",
        }
    }
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The phases of one HTTP request. A phase that did not happen, or that the trace cannot
/// tell, is `None`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RequestPhases {
    /// The request (`httpRequests[].traceID`).
    pub http_req: TraceId,
    /// The TCP connection it went over, or the one its dial tried last (empty if none).
    pub tcp_conn: TraceId,
    /// The dial that made the connection, when this request made it (empty otherwise).
    pub dial: TraceId,
    /// The TLS tunnel whose handshake is [`Self::tls`] (empty when none).
    pub tls_tunnel: TraceId,
    /// The TLS tunnel with the proxy whose handshake is [`Self::proxy_tls`] (empty when none).
    pub proxy_tls_tunnel: TraceId,
    /// Waiting before the dial.
    pub blocked: Option<Span>,
    /// Name resolution.
    pub dns: Option<Span>,
    /// The TCP handshake.
    pub connect: Option<Span>,
    /// The TLS handshake with an HTTPS proxy.
    pub proxy_tls: Option<Span>,
    /// The TLS handshake with the server.
    pub tls: Option<Span>,
    /// Writing the request (only with socket operations in the trace).
    pub send: Option<Span>,
    /// Waiting for the response head.
    pub wait: Option<Span>,
    /// Receiving the body, from the response head to its last byte.
    pub transfer: Option<Span>,
    /// From the request to the last thing known of it.
    pub total: Option<Span>,
    /// The connection reused (its `traceID`), when the request did not open its own.
    pub reused_conn: Option<TraceId>,
    /// The phase that began and never ended (a failed or unfinished request), if any.
    pub unfinished: Option<Phase>,
    /// How precise the spans are.
    pub precision: Precision,
}

impl RequestPhases {
    /// The span of `phase`, if it happened.
    pub fn get(&self, phase: Phase) -> Option<Span> {
        match phase {
            Phase::Blocked => self.blocked,
            Phase::Dns => self.dns,
            Phase::Connect => self.connect,
            Phase::ProxyTls => self.proxy_tls,
            Phase::Tls => self.tls,
            Phase::Send => self.send,
            Phase::Wait => self.wait,
            Phase::Transfer => self.transfer,
        }
    }

    /// The phases that happened, in order, with their spans.
    pub fn iter(&self) -> impl Iterator<Item = (Phase, Span)> + '_ {
        Phase::ALL
            .into_iter()
            .filter_map(|phase| self.get(phase).map(|span| (phase, span)))
    }
}

/// The phases of every HTTP request of `trace`, in the trace's order.
///
/// O(n log n) in the size of the trace: its lookups are built once, not per request.
pub fn request_phases(trace: &HttpTrace) -> Vec<RequestPhases> {
    let index = TraceIndex::new(trace);
    // Pushed in a loop: for one request, fewer copies of the large `RequestPhases` than
    // `collect` makes (measured: about 50 ns of 450).
    let mut phases = Vec::with_capacity(trace.http_requests.len());
    for (i, req) in trace.http_requests.iter().enumerate() {
        phases.push(phases_of(&index, i, req));
    }
    phases
}

/// The phases of the request `req_id` of `trace`, if it has such a request.
pub fn phases_of_request(trace: &HttpTrace, req_id: &TraceId) -> Option<RequestPhases> {
    let (i, req) = trace
        .http_requests
        .iter()
        .enumerate()
        .find(|(_, req)| &req.trace_id == req_id)?;
    Some(phases_of(&TraceIndex::new(trace), i, req))
}

/// A point in time, µs since the trace began, and whether it is precise to the microsecond.
#[derive(Clone, Copy, Debug)]
struct At {
    us: u64,
    precise: bool,
}

/// Turns the model's timestamps into µs since the trace began.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Clock {
    begin: Option<OffsetDateTime>,
}

impl Clock {
    pub(crate) fn of(trace: &HttpTrace) -> Self {
        Self {
            begin: trace.net_trace.trace_begin_at.as_absolute(),
        }
    }

    /// `ts` (named `key` in its record, whose precise times are `precise`) in µs since the
    /// trace began; `None` when undefined or before the trace.
    fn at(&self, ts: &Timestamp, precise: &PreciseTimes, key: &str) -> Option<At> {
        match ts {
            Timestamp::Undefined => None,
            Timestamp::Relative(ms) => Some(match precise.get(key) {
                Some(us) => At { us, precise: true },
                None => At {
                    us: u64::from(*ms) * 1000,
                    precise: false,
                },
            }),
            Timestamp::Absolute(at) => {
                let since = *at - self.begin?;
                u64::try_from(since.whole_microseconds())
                    .ok()
                    .map(|us| At { us, precise: true })
            }
        }
    }

    /// `ts` in µs since the trace began, without precise times.
    pub(crate) fn us(&self, ts: &Timestamp) -> Option<u64> {
        self.at(ts, &PreciseTimes::default(), "").map(|at| at.us)
    }
}

/// Collects the points used, to state the precision of the result.
#[derive(Default)]
struct Points {
    any: bool,
    all_precise: bool,
    latest: u64,
}

impl Points {
    fn new() -> Self {
        Self {
            any: false,
            all_precise: true,
            latest: 0,
        }
    }

    fn note(&mut self, at: Option<At>) -> Option<u64> {
        let at = at?;
        self.any = true;
        self.all_precise &= at.precise;
        self.latest = self.latest.max(at.us);
        Some(at.us)
    }

    fn precision(&self) -> Precision {
        if self.any && self.all_precise {
            Precision::Micros
        } else {
            Precision::Millis
        }
    }
}

fn phases_of(ix: &TraceIndex<'_>, index: usize, req: &HttpReqTrace) -> RequestPhases {
    let clock = &ix.clock;
    let mut points = Points::new();
    let mut out = RequestPhases {
        http_req: req.trace_id.clone(),
        tcp_conn: req.tcp_conn.clone(),
        ..Default::default()
    };
    let start = points.note(clock.at(&req.req_sent_at, &req.precise_us, "reqSentAt"));
    let resp = points.note(clock.at(&req.resp_recv_at, &req.precise_us, "respRecvAt"));
    let conn_at = ix.conn(req.tcp_conn.as_str());
    let conn = conn_at.map(|(_, c)| c);
    let reused = conn.filter(|conn| is_reused(ix, index, req, conn));
    // The moment the request could be written: after its own connection setup.
    let mut ready = start;
    let mut unfinished = None;
    if let Some(conn) = reused {
        out.reused_conn = Some(conn.trace_id.clone());
        out.blocked = start.map(|s| Span::new(s, s));
    } else {
        let dial = conn
            .and_then(|c| ix.dial(c.from_dial.as_str()))
            .or_else(|| dial_of_failed_request(ix, index, req));
        if let Some(dial) = dial {
            out.dial = dial.trace_id.clone();
            let dial_begin =
                points.note(clock.at(&dial.dial_begin_at, &dial.precise_us, "dialBeginAt"));
            let dial_end = points.note(clock.at(&dial.dial_end_at, &dial.precise_us, "dialEndAt"));
            if let (Some(s), Some(b)) = (start, dial_begin) {
                out.blocked = Some(Span::new(s, b));
            }
            let attempts = || ix.attempts(dial.trace_id.as_str());
            let first_handshake = attempts()
                .filter_map(|c| clock.at(&c.handshake_begin_at, &c.precise_us, "handshakeBeginAt"))
                .map(|at| at.us)
                .min();
            out.dns = dns_span(ix, dial, dial_begin, first_handshake, &mut points);
            if attempts().next().is_none() && (dial_end.is_none() || !dial.dial_err.is_empty()) {
                // Resolution never ended, or failed before any connection attempt.
                unfinished = Some(Phase::Dns);
            }
            // The connection tried: the request's, else the dial's attempts.
            let attempted: Vec<&TcpConnTrace>;
            let tried = match conn.as_slice() {
                [] => {
                    attempted = attempts().collect();
                    attempted.as_slice()
                }
                named => named,
            };
            if let Some(last) = tried.last()
                && out.tcp_conn.is_empty()
            {
                out.tcp_conn = last.trace_id.clone();
            }
            let begin = tried
                .iter()
                .filter_map(|c| {
                    points.note(clock.at(&c.handshake_begin_at, &c.precise_us, "handshakeBeginAt"))
                })
                .min();
            let end = tried
                .iter()
                .filter_map(|c| {
                    points.note(clock.at(&c.handshake_end_at, &c.precise_us, "handshakeEndAt"))
                })
                .max()
                .or_else(|| {
                    // A failed dial may end without the attempt's end being known.
                    dial_end.filter(|_| conn.is_none() && begin.is_some())
                });
            match (begin, end) {
                (Some(b), Some(e)) => {
                    out.connect = Some(Span::new(b, e));
                    ready = Some(e);
                    if !tried.iter().any(|c| c.connected) {
                        unfinished = Some(Phase::Connect);
                    }
                }
                (Some(b), None) => {
                    out.connect = Some(Span::new(b, b));
                    unfinished = Some(Phase::Connect);
                }
                _ => {}
            }
        }
        let tls = tls_of_indexed(ix, req);
        for (phase, tunnel) in [
            (Phase::ProxyTls, ix.tunnel(req.proxy_tls_tunnel.as_str())),
            (Phase::Tls, tls),
        ] {
            let Some(tunnel) = tunnel else { continue };
            let b = points.note(clock.at(
                &tunnel.handshake_begin_at,
                &tunnel.precise_us,
                "handshakeBeginAt",
            ));
            let e = points.note(clock.at(
                &tunnel.handshake_end_at,
                &tunnel.precise_us,
                "handshakeEndAt",
            ));
            let span = match (b, e) {
                (Some(b), Some(e)) => {
                    ready = Some(e);
                    if !tunnel.handshake_err.is_empty() {
                        unfinished = Some(phase);
                    }
                    Some(Span::new(b, e))
                }
                (Some(b), None) => {
                    unfinished = Some(phase);
                    Some(Span::new(b, b))
                }
                _ => None,
            };
            let id = span.map(|_| tunnel.trace_id.clone()).unwrap_or_default();
            match phase {
                Phase::ProxyTls => (out.proxy_tls, out.proxy_tls_tunnel) = (span, id),
                _ => (out.tls, out.tls_tunnel) = (span, id),
            }
        }
    }
    // Send: the socket's writes between the request being ready and the response.
    if let (Some((conn_pos, _)), Some(r)) = (conn_at, ready) {
        out.send = send_span(ix, conn_pos, r, resp);
        if let Some(send) = out.send {
            ready = Some(send.end_us);
        }
    }
    match (ready, resp) {
        (Some(r), Some(h)) => out.wait = Some(Span::new(r, h)),
        // No answer yet, or the request failed while waiting for it.
        (Some(r), None) if unfinished.is_none() && (req.req_error.is_empty() || conn.is_some()) => {
            out.wait = Some(Span::new(r, r));
            unfinished = Some(Phase::Wait);
        }
        _ => {}
    }
    if let Some(head) = resp {
        let last = points
            .note(clock.at(
                &req.resp_body_last_byte_at,
                &req.precise_us,
                "respBodyLastByteAt",
            ))
            .or_else(|| conn_at.and_then(|(c, _)| last_read(ix, index, c, head)));
        if let Some(last) = last {
            out.transfer = Some(Span::new(head, last));
        }
        if !req.req_error.is_empty() && unfinished.is_none() {
            // The head arrived, then the request failed: while reading the body.
            unfinished = Some(Phase::Transfer);
        }
    }
    let latest = [
        out.blocked,
        out.dns,
        out.connect,
        out.proxy_tls,
        out.tls,
        out.send,
        out.wait,
        out.transfer,
    ]
    .into_iter()
    .flatten()
    .map(|s| s.end_us)
    .chain(resp)
    .max();
    out.total = match (start, latest) {
        (Some(s), Some(l)) => Some(Span::new(s, l)),
        (Some(s), None) => Some(Span::new(s, s)),
        _ => None,
    };
    out.unfinished = unfinished;
    out.precision = points.precision();
    out
}

/// Whether `conn` was opened for something before request `index`.
fn is_reused(ix: &TraceIndex<'_>, index: usize, req: &HttpReqTrace, conn: &TcpConnTrace) -> bool {
    if conn.reused {
        return true;
    }
    let clock = &ix.clock;
    let earlier_user = ix.used_before(conn.trace_id.as_str(), index);
    let opened_before = match (
        clock.at(&conn.handshake_end_at, &conn.precise_us, "handshakeEndAt"),
        clock.at(&req.req_sent_at, &req.precise_us, "reqSentAt"),
    ) {
        (Some(end), Some(start)) => end.us < start.us,
        _ => false,
    };
    earlier_user || opened_before
}

/// The dial of a request that names no connection: the last dial that began between the
/// request and the next one (Go and this project record no link from a failed request to it).
fn dial_of_failed_request<'a>(
    ix: &TraceIndex<'a>,
    index: usize,
    req: &HttpReqTrace,
) -> Option<&'a DialTrace> {
    let start = ix
        .clock
        .at(&req.req_sent_at, &req.precise_us, "reqSentAt")?
        .us;
    ix.last_free_dial(start, ix.next_start(index))
}

/// The DNS phase of `dial`.
fn dns_span(
    ix: &TraceIndex<'_>,
    dial: &DialTrace,
    dial_begin: Option<u64>,
    first_handshake: Option<u64>,
    points: &mut Points,
) -> Option<Span> {
    let clock = &ix.clock;
    let queries = ix.dns_queries(dial.trace_id.as_str());
    let mut first = None::<u64>;
    let mut last = None::<u64>;
    for query in queries {
        for msg in &query.dns_query_msgs {
            if let Some(at) = points.note(clock.at(&msg.sent_at, &msg.precise_us, "sentAt")) {
                first = Some(first.map_or(at, |f| f.min(at)));
                last = Some(last.map_or(at, |l| l.max(at)));
            }
        }
        for msg in &query.dns_reply_msgs {
            if let Some(at) = points.note(clock.at(&msg.recv_at, &msg.precise_us, "recvAt")) {
                last = Some(last.map_or(at, |l| l.max(at)));
            }
        }
    }
    if let (Some(f), Some(l)) = (first, last) {
        return Some(Span::new(f, l));
    }
    let resolver: Vec<(u64, Option<u64>)> = dial
        .resolver_dials
        .iter()
        .filter_map(|r| {
            let b = points.note(clock.at(&r.dial_begin_at, &PreciseTimes::default(), ""))?;
            Some((
                b,
                points.note(clock.at(&r.dial_end_at, &PreciseTimes::default(), "")),
            ))
        })
        .collect();
    if let Some(b) = resolver.iter().map(|(b, _)| *b).min() {
        let e = first_handshake
            .unwrap_or_else(|| resolver.iter().filter_map(|(_, e)| *e).max().unwrap_or(b));
        return Some(Span::new(b, e));
    }
    // Without DNS records: a name took from the dial's start to the first handshake.
    if host_is_name(&dial.dst_address)
        && let (Some(b), Some(e)) = (dial_begin, first_handshake)
    {
        return Some(Span::new(b, e));
    }
    None
}

/// True when `host:port` names a host rather than giving an IP address.
fn host_is_name(dst: &str) -> bool {
    let host = dst.rsplit_once(':').map_or(dst, |(host, _)| host);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    !host.is_empty() && host.parse::<IpAddr>().is_err()
}

/// The TLS tunnel of `req`: the one it names, or (older Go traces name none) the last one on
/// its connection.
fn tls_of_indexed<'a>(ix: &TraceIndex<'a>, req: &HttpReqTrace) -> Option<&'a TlsTunnelTrace> {
    ix.tunnel(req.tls_tunnel.as_str()).or_else(|| {
        if req.tls_tunnel.is_empty() && req.proxy_tls_tunnel.is_empty() && !req.tcp_conn.is_empty()
        {
            ix.last_tunnel_on(req.tcp_conn.as_str())
        } else {
            None
        }
    })
}

/// The socket's writes from `ready` until the response head (`resp`), if socket operations
/// were traced. Their times are whole milliseconds (as Go writes them) while `ready` may be
/// precise: a write called in the millisecond `ready` falls in counts (the request is written
/// right after the handshake, often within it), and the span ends no earlier than it begins.
fn send_span(ix: &TraceIndex<'_>, conn: usize, ready: u64, resp: Option<u64>) -> Option<Span> {
    let ready_ms = ready - ready % 1000;
    let end = ix
        .ops(conn)?
        .last_write_return(ready_ms, resp.unwrap_or(u64::MAX))?;
    Some(Span::new(ready, end.max(ready)))
}

/// The last read with data on the connection at position `conn` after the response head,
/// before the next request on the same connection.
fn last_read(ix: &TraceIndex<'_>, index: usize, conn: usize, head: u64) -> Option<u64> {
    ix.ops(conn)?.last_read(head, ix.next_on_conn(index))
}

mod index;
#[cfg(test)]
mod tests;
