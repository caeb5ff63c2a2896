//! The records of a trace by ID, built once per trace so that each request's span tree
//! costs lookups, not scans.
use nettrace_model::{DialTrace, HttpTrace, IdMap, TcpConnTrace, TlsTunnelTrace, TraceId};

/// Dials, TCP connections and TLS tunnels by `traceID` (the first record of an ID, as
/// [`nettrace_model::TraceList::get`] finds it; an empty ID names none).
pub(super) struct Lookup<'a> {
    dials: IdMap<'a, &'a DialTrace>,
    conns: IdMap<'a, &'a TcpConnTrace>,
    tunnels: IdMap<'a, &'a TlsTunnelTrace>,
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

    pub(super) fn tunnel(&self, id: &TraceId) -> Option<&'a TlsTunnelTrace> {
        self.tunnels
            .get(id.as_str())
            .copied()
            .filter(|_| !id.is_empty())
    }
}
