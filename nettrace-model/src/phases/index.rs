//! Lookups of a trace built once, so that the phases of all its requests take O(n log n)
//! rather than a scan of the connections, dials, tunnels and requests for every request.
//!
//! Each lookup answers exactly what the scan it replaces answered: by-ID maps keep the first
//! record with an ID (as [`crate::TraceList::get`] does), "the last one" maps keep the last,
//! and time ranges are found by binary search over sorted times.
use foldhash::{HashMap, HashMapExt as _};

use crate::{
    DialTrace, DnsQueryTrace, HttpTrace, PreciseTimes, SocketOpType, TcpConnTrace, TlsTunnelTrace,
};

use super::Clock;

/// The maximum of values over a range of sorted keys, in O(1) per query after an
/// O(n log n) build (a sparse table).
#[derive(Debug, Default)]
pub(super) struct RangeMax {
    /// Keys, ascending.
    keys: Vec<u64>,
    /// `levels[k][i]`: the maximum of the values at `i..i + 2^k`.
    levels: Vec<Vec<u64>>,
}

impl RangeMax {
    /// A table over `(key, value)` pairs, in any order.
    pub(super) fn new(mut pairs: Vec<(u64, u64)>) -> Self {
        pairs.sort_unstable();
        let keys = pairs.iter().map(|(k, _)| *k).collect();
        let mut levels = vec![pairs.into_iter().map(|(_, v)| v).collect::<Vec<u64>>()];
        let len = levels[0].len();
        let mut width = 1;
        while width * 2 <= len {
            let Some(prev) = levels.last() else { break };
            // Level k + 1 from level k (of `len - width + 1` entries): `len - 2 * width + 1`.
            let next = (0..=len - width * 2)
                .map(|i| prev[i].max(prev[i + width]))
                .collect();
            levels.push(next);
            width *= 2;
        }
        Self { keys, levels }
    }

    /// The largest value whose key is in `lo..hi` (`hi` excluded), if any.
    pub(super) fn max_in(&self, lo: u64, hi_excluded: u64) -> Option<u64> {
        let from = self.keys.partition_point(|&k| k < lo);
        let to = self.keys.partition_point(|&k| k < hi_excluded);
        self.max_at(from, to)
    }

    /// The largest value whose key is in `lo..=hi`, if any.
    pub(super) fn max_within(&self, lo: u64, hi: u64) -> Option<u64> {
        let from = self.keys.partition_point(|&k| k < lo);
        let to = self.keys.partition_point(|&k| k <= hi);
        self.max_at(from, to)
    }

    /// The largest value at positions `from..to`.
    fn max_at(&self, from: usize, to: usize) -> Option<u64> {
        if from >= to {
            return None;
        }
        let len = to - from;
        let level = (usize::BITS - 1 - len.leading_zeros()) as usize;
        let row = self.levels.get(level)?;
        let a = *row.get(from)?;
        let b = *row.get(to - (1 << level))?;
        Some(a.max(b))
    }
}

/// The socket operations of one connection, ready for range queries.
#[derive(Debug, Default)]
pub(super) struct ConnOps {
    /// Writes with data: the latest return among those called in a time range.
    pub(super) writes: RangeMax,
    /// Return times of the reads with data, ascending.
    pub(super) reads: Vec<u64>,
}

impl ConnOps {
    fn of(conn: &TcpConnTrace, clock: &Clock) -> Option<Self> {
        let ops = conn.socket_trace.as_ref()?;
        let none = PreciseTimes::default();
        let mut writes = Vec::new();
        let mut reads = Vec::new();
        for op in &ops.socket_ops {
            if op.data_len == 0 {
                continue;
            }
            match op.op_type {
                SocketOpType::Write => {
                    if let (Some(call), Some(ret)) = (
                        clock.at(&op.call_at, &none, ""),
                        clock.at(&op.return_at, &none, ""),
                    ) {
                        writes.push((call.us, ret.us));
                    }
                }
                SocketOpType::Read => reads.extend(clock.us(&op.return_at)),
                _ => {}
            }
        }
        reads.sort_unstable();
        Some(Self {
            writes: RangeMax::new(writes),
            reads,
        })
    }

    /// The last read returning in `from..until` (`until` excluded).
    pub(super) fn last_read(&self, from: u64, until: u64) -> Option<u64> {
        let end = self.reads.partition_point(|&at| at < until);
        let last = *self.reads.get(end.checked_sub(1)?)?;
        (last >= from).then_some(last)
    }
}

/// The lookups of one trace that the phases of its requests need.
#[derive(Debug)]
pub(super) struct TraceIndex<'a> {
    pub(super) trace: &'a HttpTrace,
    pub(super) clock: Clock,
    conn_by_id: HashMap<&'a str, usize>,
    dial_by_id: HashMap<&'a str, usize>,
    tunnel_by_id: HashMap<&'a str, usize>,
    /// The last tunnel on each connection.
    last_tunnel_of_conn: HashMap<&'a str, usize>,
    /// Connections made by each dial (not for the resolver), in the trace's order.
    attempts_of_dial: HashMap<&'a str, Vec<usize>>,
    /// DNS queries of each dial, in the trace's order.
    dns_of_dial: HashMap<&'a str, Vec<usize>>,
    /// The first request on each connection ID.
    first_user: HashMap<&'a str, usize>,
    /// Per request: the earliest `reqSentAt` (precise) of the requests after it.
    next_start: Vec<u64>,
    /// Per request: the earliest `reqSentAt` (ms) of the later requests on its connection.
    next_on_conn: Vec<u64>,
    /// Dials no request names the connection of: position by start time.
    free_dials: RangeMax,
    /// Socket operations per connection (by position), when traced.
    ops: Vec<Option<ConnOps>>,
}

/// The first position of each non-empty ID.
fn first_by_id<'a, T>(
    items: impl Iterator<Item = &'a T>,
    id: impl Fn(&'a T) -> &'a str,
) -> HashMap<&'a str, usize>
where
    T: 'a,
{
    let mut map = HashMap::new();
    for (i, item) in items.enumerate() {
        let key = id(item);
        if !key.is_empty() {
            map.entry(key).or_insert(i);
        }
    }
    map
}

impl<'a> TraceIndex<'a> {
    /// Builds every lookup of `trace`: O(n log n).
    pub(super) fn new(trace: &'a HttpTrace) -> Self {
        let clock = Clock::of(trace);
        let net = &trace.net_trace;
        let reqs = trace.http_requests.as_slice();
        let mut last_tunnel_of_conn = HashMap::new();
        for (i, t) in net.tls_tunnels.iter().enumerate() {
            last_tunnel_of_conn.insert(t.tcp_conn.as_str(), i);
        }
        let mut attempts_of_dial: HashMap<&str, Vec<usize>> = HashMap::new();
        for (i, c) in net.tcp_conns.iter().enumerate() {
            if !c.from_resolver {
                attempts_of_dial
                    .entry(c.from_dial.as_str())
                    .or_default()
                    .push(i);
            }
        }
        let mut dns_of_dial: HashMap<&str, Vec<usize>> = HashMap::new();
        for (i, q) in net.dns_queries.iter().enumerate() {
            dns_of_dial.entry(q.from_dial.as_str()).or_default().push(i);
        }
        let mut first_user = HashMap::new();
        for (i, r) in reqs.iter().enumerate() {
            first_user.entry(r.tcp_conn.as_str()).or_insert(i);
        }
        let mut next_start = vec![u64::MAX; reqs.len()];
        let mut next_on_conn = vec![u64::MAX; reqs.len()];
        let mut earliest = u64::MAX;
        let mut earliest_on_conn: HashMap<&str, u64> = HashMap::new();
        for (i, r) in reqs.iter().enumerate().rev() {
            next_start[i] = earliest;
            if let Some(at) = clock.at(&r.req_sent_at, &r.precise_us, "reqSentAt") {
                earliest = earliest.min(at.us);
            }
            let on_conn = earliest_on_conn
                .entry(r.tcp_conn.as_str())
                .or_insert(u64::MAX);
            next_on_conn[i] = *on_conn;
            if let Some(at) = clock.us(&r.req_sent_at) {
                *on_conn = (*on_conn).min(at);
            }
        }
        let free_dials = RangeMax::new(
            net.dials
                .iter()
                .enumerate()
                .filter(|(_, d)| {
                    d.established_conn.is_empty()
                        || !first_user.contains_key(d.established_conn.as_str())
                })
                .filter_map(|(i, d)| {
                    let at = clock.at(&d.dial_begin_at, &d.precise_us, "dialBeginAt")?;
                    Some((at.us, i as u64))
                })
                .collect(),
        );
        let ops = net
            .tcp_conns
            .iter()
            .map(|c| ConnOps::of(c, &clock))
            .collect();
        Self {
            trace,
            clock,
            conn_by_id: first_by_id(net.tcp_conns.iter(), |c| c.trace_id.as_str()),
            dial_by_id: first_by_id(net.dials.iter(), |d| d.trace_id.as_str()),
            tunnel_by_id: first_by_id(net.tls_tunnels.iter(), |t| t.trace_id.as_str()),
            last_tunnel_of_conn,
            attempts_of_dial,
            dns_of_dial,
            first_user,
            next_start,
            next_on_conn,
            free_dials,
            ops,
        }
    }

    /// The connection with ID `id` (the first, as `TraceList::get`), and its position.
    pub(super) fn conn(&self, id: &str) -> Option<(usize, &'a TcpConnTrace)> {
        let i = *self.conn_by_id.get(id)?;
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
        let i = *self.last_tunnel_of_conn.get(conn)?;
        self.trace.net_trace.tls_tunnels.at(i)
    }

    /// The connections dial `dial` made (not for its resolver), in the trace's order.
    pub(super) fn attempts(&self, dial: &str) -> Vec<(usize, &'a TcpConnTrace)> {
        let conns = &self.trace.net_trace.tcp_conns;
        self.attempts_of_dial
            .get(dial)
            .into_iter()
            .flatten()
            .filter_map(|&i| Some((i, conns.at(i)?)))
            .collect()
    }

    /// The DNS queries of dial `dial`, in the trace's order.
    pub(super) fn dns_queries(&self, dial: &str) -> impl Iterator<Item = &'a DnsQueryTrace> {
        let queries = &self.trace.net_trace.dns_queries;
        self.dns_of_dial
            .get(dial)
            .into_iter()
            .flatten()
            .filter_map(|&i| queries.at(i))
    }

    /// Whether a request before position `index` went over connection `conn`.
    pub(super) fn used_before(&self, conn: &str, index: usize) -> bool {
        self.first_user
            .get(conn)
            .is_some_and(|&first| first < index)
    }

    /// The earliest start of the requests after position `index`.
    pub(super) fn next_start(&self, index: usize) -> u64 {
        self.next_start.get(index).copied().unwrap_or(u64::MAX)
    }

    /// The earliest start (ms) of the later requests on the connection of request `index`.
    pub(super) fn next_on_conn(&self, index: usize) -> u64 {
        self.next_on_conn.get(index).copied().unwrap_or(u64::MAX)
    }

    /// The last dial (in the trace's order) that began in `from..until` and whose connection
    /// no request names.
    pub(super) fn last_free_dial(&self, from: u64, until: u64) -> Option<&'a DialTrace> {
        let i = self.free_dials.max_in(from, until)?;
        self.trace.net_trace.dials.at(usize::try_from(i).ok()?)
    }

    /// The socket operations of the connection at position `conn`, when traced.
    pub(super) fn ops(&self, conn: usize) -> Option<&ConnOps> {
        self.ops.get(conn)?.as_ref()
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
