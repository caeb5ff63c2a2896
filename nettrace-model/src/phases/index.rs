//! Lookups of a trace built once, so that the phases of all its requests take O(n log n)
//! rather than a scan of the connections, dials, tunnels and requests for every request.
//!
//! Each lookup answers exactly what the scan it replaces answered: by-ID maps keep the first
//! record with an ID (as [`crate::TraceList::get`] does), "the last one" maps keep the last,
//! and time ranges are found by binary search over sorted times.
//!
//! Most traces are small (a streamed trace holds one request and one connection), so building
//! costs little there too: the maps by ID are [`IdMap`]s, lists searched in order until they
//! grow; a connection's few socket operations are scanned rather than indexed; and nothing is
//! allocated for what a trace does not hold.

use crate::{
    DialTrace, DnsQueryTrace, HttpTrace, IdMap, SocketOp, SocketOpType, TcpConnTrace,
    TlsTunnelTrace,
};

use super::Clock;

/// The maximum of values over a range of sorted keys, in O(1) per query after an
/// O(n log n) build (a sparse table).
#[derive(Debug, Default)]
pub(super) struct RangeMax {
    /// `(key, value)` pairs by ascending key: the keys, and level 0 of the table.
    pairs: Vec<(u64, u64)>,
    /// Levels 1, 2, ... one after the other (see [`Self::level_start`]): entry `i` of level
    /// `k` is the maximum of the values at `i..i + 2^k`. Empty below two pairs.
    upper: Vec<u64>,
}

impl RangeMax {
    /// A table over `(key, value)` pairs, in any order.
    pub(super) fn new(mut pairs: Vec<(u64, u64)>) -> Self {
        pairs.sort_unstable();
        let len = pairs.len();
        let mut upper = Vec::new();
        if len >= 2 {
            upper.reserve(Self::level_start(len, Self::top_level(len) + 1));
            upper.extend(pairs.windows(2).map(|w| w[0].1.max(w[1].1)));
        }
        // Level k + 1 (of `len - 2 * width + 1` entries) from level k (`width` = 2^k).
        let (mut prev, mut width) = (0, 2);
        while width * 2 <= len {
            let start = upper.len();
            for i in 0..=len - width * 2 {
                let max = upper[prev + i].max(upper[prev + i + width]);
                upper.push(max);
            }
            (prev, width) = (start, width * 2);
        }
        Self { pairs, upper }
    }

    /// The highest level of a table over `len` pairs (`len` > 0): the largest `k` with
    /// `2^k <= len`.
    fn top_level(len: usize) -> usize {
        (usize::BITS - 1 - len.leading_zeros()) as usize
    }

    /// Where level `level` (1 or more) begins in `upper`, for `len` pairs: after levels
    /// `1..level`, of `len - 2^j + 1` entries each.
    fn level_start(len: usize, level: usize) -> usize {
        (level - 1) * (len + 1) + 2 - (1 << level)
    }

    /// The largest value whose key is in `lo..hi` (`hi` excluded), if any.
    pub(super) fn max_in(&self, lo: u64, hi_excluded: u64) -> Option<u64> {
        let from = self.pairs.partition_point(|&(k, _)| k < lo);
        let to = self.pairs.partition_point(|&(k, _)| k < hi_excluded);
        self.max_at(from, to)
    }

    /// The largest value whose key is in `lo..=hi`, if any.
    pub(super) fn max_within(&self, lo: u64, hi: u64) -> Option<u64> {
        let from = self.pairs.partition_point(|&(k, _)| k < lo);
        let to = self.pairs.partition_point(|&(k, _)| k <= hi);
        self.max_at(from, to)
    }

    /// The largest value at positions `from..to`.
    fn max_at(&self, from: usize, to: usize) -> Option<u64> {
        if from >= to {
            return None;
        }
        let level = Self::top_level(to - from);
        let at = |i: usize| match level {
            0 => self.pairs.get(i).map(|&(_, v)| v),
            _ => self
                .upper
                .get(Self::level_start(self.pairs.len(), level) + i)
                .copied(),
        };
        Some(at(from)?.max(at(to - (1 << level))?))
    }
}

/// The most socket operations of a connection scanned in order by [`ConnOps`]; past that
/// they are indexed ([`OpsIndex`]).
const OPS_SCANNED_MAX: usize = 16;

/// The socket operations with data of one connection, for range queries: scanned while few,
/// through their [`OpsIndex`] past [`OPS_SCANNED_MAX`].
#[derive(Clone, Copy, Debug)]
pub(super) struct ConnOps<'x> {
    /// The connection's operations, all of them.
    ops: &'x [SocketOp],
    clock: &'x Clock,
    /// Built when the operations are many.
    index: Option<&'x OpsIndex>,
}

impl ConnOps<'_> {
    /// The writes with data whose call and return are known: `(call, return)`, µs.
    fn writes(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.ops
            .iter()
            .filter(|op| op.data_len != 0 && op.op_type == SocketOpType::Write)
            .filter_map(|op| Some((self.clock.us(&op.call_at)?, self.clock.us(&op.return_at)?)))
    }

    /// The return times of the reads with data, µs.
    fn reads(&self) -> impl Iterator<Item = u64> + '_ {
        self.ops
            .iter()
            .filter(|op| op.data_len != 0 && op.op_type == SocketOpType::Read)
            .filter_map(|op| self.clock.us(&op.return_at))
    }

    /// The latest return of the writes with data called in `lo..=hi`.
    pub(super) fn last_write_return(&self, lo: u64, hi: u64) -> Option<u64> {
        match self.index {
            Some(index) => index.writes.max_within(lo, hi),
            None => self
                .writes()
                .filter(|&(call, _)| (lo..=hi).contains(&call))
                .map(|(_, ret)| ret)
                .max(),
        }
    }

    /// The last read with data returning in `from..until` (`until` excluded).
    pub(super) fn last_read(&self, from: u64, until: u64) -> Option<u64> {
        let last = match self.index {
            Some(index) => {
                let end = index.reads.partition_point(|&at| at < until);
                *index.reads.get(end.checked_sub(1)?)?
            }
            None => self.reads().filter(|&at| at < until).max()?,
        };
        (last >= from).then_some(last)
    }
}

/// The socket operations with data of one connection, indexed for range queries.
#[derive(Debug, Default)]
struct OpsIndex {
    /// Writes: the latest return among those called in a time range.
    writes: RangeMax,
    /// Return times of the reads, ascending.
    reads: Vec<u64>,
}

impl OpsIndex {
    /// The index of the operations of `conn`, when they are more than [`OPS_SCANNED_MAX`].
    fn of_many(conn: &TcpConnTrace, clock: &Clock) -> Option<Self> {
        let ops = &conn.socket_trace.as_ref()?.socket_ops;
        if ops.len() <= OPS_SCANNED_MAX {
            return None;
        }
        let ops = ConnOps {
            ops,
            clock,
            index: None,
        };
        let mut reads: Vec<u64> = ops.reads().collect();
        reads.sort_unstable();
        Some(Self {
            writes: RangeMax::new(ops.writes().collect()),
            reads,
        })
    }
}

/// The positions of the records that name an ID (a dial's, say), in the trace's order, by
/// that ID: chained, the first and last of each ID in a map and each record's successor in a
/// flat list.
#[derive(Debug, Default)]
struct Chains<'a> {
    /// The first and the last position of each ID.
    ends: IdMap<'a, (usize, usize)>,
    /// Per position: the next position with the same ID. Empty while no ID has two records.
    next: Vec<Option<usize>>,
}

impl<'a> Chains<'a> {
    /// The chains of `ids`: the ID each of `len` records names, or `None` to leave it out.
    fn of(len: usize, ids: impl Iterator<Item = Option<&'a str>>) -> Self {
        let mut chains = Self::default();
        for (i, id) in ids.enumerate() {
            let Some(id) = id else { continue };
            let (_, last) = chains.ends.get_or_insert_with(id, || (i, i));
            if *last == i {
                continue;
            }
            if chains.next.is_empty() {
                chains.next = vec![None; len];
            }
            if let Some(next) = chains.next.get_mut(*last) {
                *next = Some(i);
            }
            *last = i;
        }
        chains
    }

    /// The positions of the records naming `id`, in order.
    fn positions(&self, id: &str) -> impl Iterator<Item = usize> + '_ {
        let first = self.ends.get(id).map(|&(first, _)| first);
        std::iter::successors(first, |&i| self.next.get(i).copied().flatten())
    }
}

/// What a trace says of one connection ID: one lookup for the connection, its tunnels and
/// its requests.
#[derive(Debug, Default)]
struct ConnFacts {
    /// The position of the first connection with the ID (none has the empty ID).
    conn: Option<usize>,
    /// The position of the last TLS tunnel on it.
    last_tunnel: Option<usize>,
    /// The position of the first request on it.
    first_request: Option<usize>,
    /// The earliest `reqSentAt` (ms) of the requests on it seen so far, from the last one
    /// back (for [`Later::start_on_conn`] while building).
    earliest_request_ms: Option<u64>,
}

/// What follows one request.
#[derive(Clone, Copy, Debug)]
struct Later {
    /// The earliest `reqSentAt` (precise) of the requests after it.
    start: u64,
    /// The earliest `reqSentAt` (ms) of the later requests on its connection.
    start_on_conn: u64,
}

/// The lookups of one trace that the phases of its requests need.
#[derive(Debug)]
pub(super) struct TraceIndex<'a> {
    pub(super) trace: &'a HttpTrace,
    pub(super) clock: Clock,
    /// The connection, tunnels and requests of each connection ID.
    by_conn: IdMap<'a, ConnFacts>,
    dial_by_id: IdMap<'a, usize>,
    tunnel_by_id: IdMap<'a, usize>,
    /// Connections made by each dial (not for the resolver).
    attempts_of_dial: Chains<'a>,
    /// DNS queries of each dial.
    dns_of_dial: Chains<'a>,
    /// Per request but the last: what starts after it.
    later: Vec<Later>,
    /// Dials no request names the connection of: position by start time.
    free_dials: RangeMax,
    /// Per connection (by position): its socket operations indexed, when many. Empty when
    /// no connection has many.
    ops_index: Vec<Option<OpsIndex>>,
}

impl<'a> TraceIndex<'a> {
    /// Builds every lookup of `trace`: O(n log n).
    pub(super) fn new(trace: &'a HttpTrace) -> Self {
        let clock = Clock::of(trace);
        let net = &trace.net_trace;
        let reqs = trace.http_requests.as_slice();
        let mut by_conn: IdMap<'_, ConnFacts> = IdMap::default();
        for (i, c) in net.tcp_conns.iter().enumerate() {
            // The empty ID means "no connection", as for `TraceList::get`.
            if !c.trace_id.is_empty() {
                let facts = by_conn.get_or_insert_with(c.trace_id.as_str(), ConnFacts::default);
                facts.conn.get_or_insert(i);
            }
        }
        for (i, t) in net.tls_tunnels.iter().enumerate() {
            by_conn
                .get_or_insert_with(t.tcp_conn.as_str(), ConnFacts::default)
                .last_tunnel = Some(i);
        }
        // Asked only for the dials of the trace: none without dials (a streamed trace of a
        // reused connection).
        let (attempts_of_dial, dns_of_dial) = if net.dials.is_empty() {
            Default::default()
        } else {
            let attempt = |c: &'a TcpConnTrace| (!c.from_resolver).then_some(c.from_dial.as_str());
            let query = |q: &'a DnsQueryTrace| Some(q.from_dial.as_str());
            (
                Chains::of(net.tcp_conns.len(), net.tcp_conns.iter().map(attempt)),
                Chains::of(net.dns_queries.len(), net.dns_queries.iter().map(query)),
            )
        };
        // From the last request back: what is later than each, and (the last one written
        // wins) the first request on each connection.
        let mut later = vec![
            Later {
                start: u64::MAX,
                start_on_conn: u64::MAX,
            };
            // The last request has nothing after it: not stored.
            reqs.len().saturating_sub(1)
        ];
        let mut earliest = u64::MAX;
        for (i, r) in reqs.iter().enumerate().rev() {
            let on_conn = by_conn.get_or_insert_with(r.tcp_conn.as_str(), ConnFacts::default);
            on_conn.first_request = Some(i);
            if let Some(later) = later.get_mut(i) {
                *later = Later {
                    start: earliest,
                    start_on_conn: on_conn.earliest_request_ms.unwrap_or(u64::MAX),
                };
            }
            if let Some(at) = clock.us(&r.req_sent_at) {
                let earliest = on_conn.earliest_request_ms.map_or(at, |e| e.min(at));
                on_conn.earliest_request_ms = Some(earliest);
            }
            if let Some(at) = clock.at(&r.req_sent_at, &r.precise_us, "reqSentAt") {
                earliest = earliest.min(at.us);
            }
        }
        let free_dials = RangeMax::new(
            net.dials
                .iter()
                .enumerate()
                .filter(|(_, d)| {
                    let conn = by_conn.get(d.established_conn.as_str());
                    let requested = conn.is_some_and(|c| c.first_request.is_some());
                    d.established_conn.is_empty() || !requested
                })
                .filter_map(|(i, d)| {
                    let at = clock.at(&d.dial_begin_at, &d.precise_us, "dialBeginAt")?;
                    Some((at.us, i as u64))
                })
                .collect(),
        );
        let many_ops = |c: &TcpConnTrace| {
            c.socket_trace
                .as_ref()
                .is_some_and(|t| t.socket_ops.len() > OPS_SCANNED_MAX)
        };
        let ops_index = if net.tcp_conns.iter().any(many_ops) {
            let of = |c| OpsIndex::of_many(c, &clock);
            net.tcp_conns.iter().map(of).collect()
        } else {
            Vec::new()
        };
        Self {
            trace,
            clock,
            by_conn,
            dial_by_id: IdMap::first_positions(net.dials.iter().map(|d| d.trace_id.as_str())),
            tunnel_by_id: IdMap::first_positions(
                net.tls_tunnels.iter().map(|t| t.trace_id.as_str()),
            ),
            attempts_of_dial,
            dns_of_dial,
            later,
            free_dials,
            ops_index,
        }
    }

    /// The connection with ID `id` (the first, as `TraceList::get`), and its position.
    pub(super) fn conn(&self, id: &str) -> Option<(usize, &'a TcpConnTrace)> {
        let i = self.by_conn.get(id)?.conn?;
        Some((i, self.trace.net_trace.tcp_conns.at(i)?))
    }

    /// The dial with ID `id`.
    pub(super) fn dial(&self, id: &str) -> Option<&'a DialTrace> {
        let i = *self.dial_by_id.get(id)?;
        self.trace.net_trace.dials.at(i)
    }

    /// The TLS tunnel with ID `id`.
    pub(super) fn tunnel(&self, id: &str) -> Option<&'a TlsTunnelTrace> {
        let i = *self.tunnel_by_id.get(id)?;
        self.trace.net_trace.tls_tunnels.at(i)
    }

    /// The last TLS tunnel on connection `conn`.
    pub(super) fn last_tunnel_on(&self, conn: &str) -> Option<&'a TlsTunnelTrace> {
        let i = self.by_conn.get(conn)?.last_tunnel?;
        self.trace.net_trace.tls_tunnels.at(i)
    }

    /// The connections dial `dial` made (not for its resolver), in the trace's order.
    pub(super) fn attempts(&self, dial: &str) -> impl Iterator<Item = &'a TcpConnTrace> + '_ {
        let conns = &self.trace.net_trace.tcp_conns;
        self.attempts_of_dial
            .positions(dial)
            .filter_map(|i| conns.at(i))
    }

    /// The DNS queries of dial `dial`, in the trace's order.
    pub(super) fn dns_queries(&self, dial: &str) -> impl Iterator<Item = &'a DnsQueryTrace> + '_ {
        let queries = &self.trace.net_trace.dns_queries;
        self.dns_of_dial
            .positions(dial)
            .filter_map(|i| queries.at(i))
    }

    /// Whether a request before position `index` went over connection `conn`.
    pub(super) fn used_before(&self, conn: &str, index: usize) -> bool {
        self.by_conn
            .get(conn)
            .and_then(|facts| facts.first_request)
            .is_some_and(|first| first < index)
    }

    /// The earliest start of the requests after position `index`.
    pub(super) fn next_start(&self, index: usize) -> u64 {
        self.later.get(index).map_or(u64::MAX, |later| later.start)
    }

    /// The earliest start (ms) of the later requests on the connection of request `index`.
    pub(super) fn next_on_conn(&self, index: usize) -> u64 {
        self.later
            .get(index)
            .map_or(u64::MAX, |later| later.start_on_conn)
    }

    /// The last dial (in the trace's order) that began in `from..until` and whose connection
    /// no request names.
    pub(super) fn last_free_dial(&self, from: u64, until: u64) -> Option<&'a DialTrace> {
        let i = self.free_dials.max_in(from, until)?;
        self.trace.net_trace.dials.at(usize::try_from(i).ok()?)
    }

    /// The socket operations of the connection at position `conn`, when traced.
    pub(super) fn ops(&self, conn: usize) -> Option<ConnOps<'_>> {
        let trace = self
            .trace
            .net_trace
            .tcp_conns
            .at(conn)?
            .socket_trace
            .as_ref()?;
        Some(ConnOps {
            ops: &trace.socket_ops,
            clock: &self.clock,
            index: self.ops_index.get(conn).and_then(Option::as_ref),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::RangeMax;

    /// The sparse table answers as a scan does, for every size up to 40 and every range.
    #[test]
    fn range_max_agrees_with_a_scan() {
        let mut seed = 7u64;
        let mut next = move || {
            seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            (seed >> 33) % 20
        };
        for n in 0..40 {
            let pairs: Vec<(u64, u64)> = (0..n).map(|_| (next(), next() * 3)).collect();
            let table = RangeMax::new(pairs.clone());
            for lo in 0..22 {
                for hi in lo..22 {
                    let scan = |inclusive: bool| {
                        pairs
                            .iter()
                            .filter(|(k, _)| *k >= lo && (*k < hi || (inclusive && *k == hi)))
                            .map(|(_, v)| *v)
                            .max()
                    };
                    assert_eq!(table.max_in(lo, hi), scan(false), "n {n} {lo}..{hi}");
                    assert_eq!(table.max_within(lo, hi), scan(true), "n {n} {lo}..={hi}");
                }
            }
        }
    }
}
