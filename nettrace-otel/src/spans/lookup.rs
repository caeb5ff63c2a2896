//! The records of a trace by ID, built once per trace so that each request's span tree
//! costs lookups, not scans.
use nettrace_model::{
    DialTrace, DnsQueryTrace, HttpTrace, IdMap, TcpConnTrace, TlsTunnelTrace, TraceId,
};

/// Dials, TCP connections and TLS tunnels by `traceID` (the first record of an ID, as
/// [`nettrace_model::TraceList::get`] finds it; an empty ID names none).
pub(super) struct Lookup<'a> {
    dials: IdMap<'a, &'a DialTrace>,
    conns: IdMap<'a, &'a TcpConnTrace>,
    tunnels: IdMap<'a, &'a TlsTunnelTrace>,
    /// The DNS queries of each dial, and the TLS tunnels on each connection, in the trace's
    /// order.
    queries_of_dial: IdMap<'a, Vec<&'a DnsQueryTrace>>,
    tunnels_of_conn: IdMap<'a, Vec<&'a TlsTunnelTrace>>,
}

/// The records of each ID `id` gives them, in the trace's order.
fn all_by_id<'a, T>(
    records: impl Iterator<Item = &'a T>,
    id: impl Fn(&'a T) -> &'a TraceId,
) -> IdMap<'a, Vec<&'a T>> {
    let mut map: IdMap<'a, Vec<&'a T>> = IdMap::default();
    for record in records {
        map.get_or_insert_with(id(record).as_str(), Vec::new)
            .push(record);
    }
    map
}

fn first_by_id<'a, T>(
    records: impl Iterator<Item = &'a T>,
    id: impl Fn(&'a T) -> &'a TraceId,
) -> IdMap<'a, &'a T> {
    let mut map = IdMap::default();
    for record in records {
        map.insert_first(id(record).as_str(), record);
    }
    map
}

impl<'a> Lookup<'a> {
    pub(super) fn new(trace: &'a HttpTrace) -> Self {
        let net = &trace.net_trace;
        Self {
            dials: first_by_id(net.dials.iter(), |d| &d.trace_id),
            conns: first_by_id(net.tcp_conns.iter(), |c| &c.trace_id),
            tunnels: first_by_id(net.tls_tunnels.iter(), |t| &t.trace_id),
            queries_of_dial: all_by_id(net.dns_queries.iter(), |q| &q.from_dial),
            tunnels_of_conn: all_by_id(net.tls_tunnels.iter(), |t| &t.tcp_conn),
        }
    }

    pub(super) fn dial(&self, id: &TraceId) -> Option<&'a DialTrace> {
        self.dials
            .get(id.as_str())
            .copied()
            .filter(|_| !id.is_empty())
    }

    pub(super) fn conn(&self, id: &TraceId) -> Option<&'a TcpConnTrace> {
        self.conns
            .get(id.as_str())
            .copied()
            .filter(|_| !id.is_empty())
    }

    /// The DNS queries made for the dial `id` (an empty ID matches queries without a dial).
    pub(super) fn queries_of(&self, id: &TraceId) -> &[&'a DnsQueryTrace] {
        self.queries_of_dial
            .get(id.as_str())
            .map_or(&[], Vec::as_slice)
    }

    /// The TLS tunnels on the connection `id` (an empty ID matches tunnels without one).
    pub(super) fn tunnels_on(&self, id: &TraceId) -> &[&'a TlsTunnelTrace] {
        self.tunnels_of_conn
            .get(id.as_str())
            .map_or(&[], Vec::as_slice)
    }

    pub(super) fn tunnel(&self, id: &TraceId) -> Option<&'a TlsTunnelTrace> {
        self.tunnels
            .get(id.as_str())
            .copied()
            .filter(|_| !id.is_empty())
    }
}
