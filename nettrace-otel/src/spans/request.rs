//! One span tree per HTTP request, its phase children built from the model's
//! [`nettrace_model::phases`] (the same phases as the waterfall, HAR and diagnosis, at the
//! trace's precision), redirect hops as child requests.
use nettrace_model::{
    HttpReqTrace, HttpTrace, IdMap, SocketOp, TraceId,
    phases::{Phase, Precision, RequestPhases, request_phases},
};
use smallvec::smallvec;

use super::{
    EventAttrs, SpanEvent, SpanNode, Text, UnixNanos, Value,
    attrs::{error_type, request_attrs},
    int,
    lookup::Lookup,
    records::{connect_details, dns_details, tls_details},
    s,
    times::Times,
};

/// What every request's tree is built from.
struct Context<'a, 'p> {
    times: Times,
    lookup: &'p Lookup<'a>,
    ops: ConnOps<'a, 'p>,
}

/// The socket operations of each connection in call order, and where each request on it
/// starts: a request's operations are those from its start to the next request's.
struct ConnOps<'a, 'p> {
    ops: IdMap<'a, Vec<(UnixNanos, &'a SocketOp)>>,
    starts: IdMap<'p, Vec<UnixNanos>>,
}

impl<'a, 'p> ConnOps<'a, 'p> {
    fn new(trace: &'a HttpTrace, times: &Times, phases: &'p [RequestPhases]) -> Self {
        let mut starts: IdMap<Vec<UnixNanos>> = IdMap::default();
        for p in phases.iter().filter(|p| !p.tcp_conn.is_empty()) {
            if let Some(at) = p.total.and_then(|t| op_axis(times, t.start_us)) {
                starts
                    .get_or_insert_with(p.tcp_conn.as_str(), Vec::new)
                    .push(at);
            }
        }
        starts.for_each_value_mut(|list| list.sort_unstable());
        let mut ops = IdMap::default();
        for conn in trace.net_trace.tcp_conns.iter() {
            let (Some(socket), true) =
                (&conn.socket_trace, starts.contains(conn.trace_id.as_str()))
            else {
                continue;
            };
            let mut list: Vec<_> = socket
                .socket_ops
                .iter()
                .filter_map(|op| Some((times.ms(&op.call_at)?, op)))
                .collect();
            list.sort_by_key(|(at, _)| *at);
            ops.insert_first(conn.trace_id.as_str(), list);
        }
        Self { ops, starts }
    }

    /// The operations on `conn` of the request that started `start_us` µs into the trace.
    fn of(&self, times: &Times, conn: &TraceId, start_us: u64) -> &[(UnixNanos, &'a SocketOp)] {
        let (Some(ops), Some(start)) = (self.ops.get(conn.as_str()), op_axis(times, start_us))
        else {
            return &[];
        };
        let next = self
            .starts
            .get(conn.as_str())
            .and_then(|starts| starts.get(starts.partition_point(|at| *at <= start)));
        let from = ops.partition_point(|(at, _)| *at < start);
        let to = next.map_or(ops.len(), |next| ops.partition_point(|(at, _)| at < next));
        ops.get(from..to.max(from)).unwrap_or_default()
    }
}

/// `us` on the axis of socket operations, which are recorded in whole milliseconds: an
/// operation of a request started 3.4 ms into the trace is called at `+3ms` or later.
fn op_axis(times: &Times, us: u64) -> Option<UnixNanos> {
    times.since_begin(us / 1000 * 1000)
}

/// One tree per HTTP request, the hops of a redirect chain grouped (a hop following a 3xx
/// response is the previous one's child).
pub(super) fn http_trees<'a>(
    trace: &'a HttpTrace,
    times: Times,
    lookup: &Lookup<'a>,
) -> Vec<SpanNode<'a>> {
    let phases = request_phases(trace);
    let cx = Context {
        times,
        lookup,
        ops: ConnOps::new(trace, &times, &phases),
    };
    let net = &trace.net_trace;
    // The trace's attributes, on each tree's root.
    let finish = |mut root: SpanNode<'a>| {
        if !net.description.is_empty() {
            root.attrs
                .push(("nettrace.description", s(&net.description)));
        }
        if !net.session_uuid.is_empty() {
            root.attrs
                .push(("nettrace.session.uuid", s(&net.session_uuid)));
        }
        if let Some(dropped) = net.dropped.filter(|d| !d.is_empty()) {
            root.attrs
                .push(("nettrace.dropped.total", int(dropped.total())));
        }
        root
    };
    let mut trees = Vec::new();
    // The root of the chain being built, `None` inside when its first hop has no span (the
    // whole chain then has none).
    let mut chain: Option<Option<SpanNode<'a>>> = None;
    let mut previous: Option<&HttpReqTrace> = None;
    for (hop, phases) in trace.http_requests.iter().zip(&phases) {
        let follows_redirect = previous.is_some_and(|prev| {
            (300..400).contains(&prev.resp_status_code) && prev.req_error.is_empty()
        });
        previous = Some(hop);
        match &mut chain {
            Some(root) if follows_redirect => {
                if let Some(root) = root
                    && let Some(child) = hop_span(&cx, hop, phases)
                {
                    root.end = root.end.max(child.end);
                    root.children.push(child);
                }
            }
            _ => {
                let root = hop_span(&cx, hop, phases);
                trees.extend(chain.replace(root).flatten().map(finish));
            }
        }
    }
    trees.extend(chain.flatten().map(finish));
    trees
}

/// One hop: its span, with a child per phase and its socket operations as events.
fn hop_span<'a>(
    cx: &Context<'a, '_>,
    hop: &'a HttpReqTrace,
    phases: &RequestPhases,
) -> Option<SpanNode<'a>> {
    let total = phases.total?;
    let start = cx.times.since_begin(total.start_us)?;
    let conn = cx.lookup.conn(&phases.tcp_conn);
    let mut end = cx.times.since_begin(total.end_us).unwrap_or(start);
    let mut children = Vec::new();
    for (phase, span) in phases.iter() {
        // A request that waited for nothing has no `blocked` child.
        if phase == Phase::Blocked && span.duration_us() == 0 {
            continue;
        }
        let (Some(from), Some(to)) = (
            cx.times.since_begin(span.start_us),
            cx.times.since_begin(span.end_us),
        ) else {
            continue;
        };
        let mut node = SpanNode::new(phase.as_str(), from, to);
        phase_details(cx, phases, phase, &mut node);
        if phases.unfinished == Some(phase) {
            node.attrs.push(("nettrace.unfinished", Value::Bool(true)));
            if node.error.is_none() && !hop.req_error.is_empty() {
                node.error = Some((&hop.req_error).into());
            }
        }
        end = end.max(node.end);
        children.push(node);
    }

    let mut span = SpanNode::new(&hop.req_method, start, end);
    span.client = true;
    span.attrs = request_attrs(hop, conn, phases.reused_conn.is_some());
    span.attrs.push((
        "nettrace.time_precision",
        s(match phases.precision {
            Precision::Micros => "us",
            Precision::Millis => "ms",
        }),
    ));
    if let Some(phase) = phases.unfinished {
        span.attrs
            .push(("nettrace.unfinished_phase", s(phase.as_str())));
    }
    span.events = cx
        .ops
        .of(&cx.times, &phases.tcp_conn, total.start_us)
        .iter()
        .map(|(at, op)| SpanEvent {
            name: op.op_type.as_str().into(),
            at: *at,
            attrs: {
                let mut attrs: EventAttrs =
                    smallvec![("nettrace.socket.data_len", int(op.data_len))];
                if !op.return_err.is_empty() {
                    attrs.push(("error.message", s(&op.return_err)));
                }
                attrs
            },
        })
        .collect();
    span.error = if !hop.req_error.is_empty() {
        Some((&hop.req_error).into())
    } else if hop.resp_status_code >= 400 {
        Some(Text::format(format_args!(
            "HTTP status {}",
            hop.resp_status_code
        )))
    } else {
        None
    };
    if span.error.is_some() {
        let kind = if hop.req_error.is_empty() {
            Text::format(format_args!("{}", hop.resp_status_code))
        } else {
            error_type(&hop.req_error).into()
        };
        span.attrs.push(("error.type", s(kind)));
    }
    span.children = children;
    Some(span)
}

/// What the records behind `phase` add to its span.
fn phase_details<'a>(
    cx: &Context<'a, '_>,
    phases: &RequestPhases,
    phase: Phase,
    node: &mut SpanNode<'a>,
) {
    let dial = cx.lookup.dial(&phases.dial);
    match phase {
        Phase::Dns => {
            if let Some(dial) = dial {
                dns_details(cx.lookup, &cx.times, dial, node);
                if node.error.is_none() && phases.unfinished == Some(Phase::Dns) {
                    node.error = Some((&dial.dial_err).into()).filter(|e: &Text| !e.is_empty());
                }
            }
        }
        Phase::Connect => {
            if let Some(conn) = cx.lookup.conn(&phases.tcp_conn) {
                connect_details(&cx.times, dial, conn, node);
            }
        }
        Phase::Tls => {
            if let Some(tunnel) = cx.lookup.tunnel(&phases.tls_tunnel) {
                tls_details(tunnel, node);
            }
        }
        Phase::ProxyTls => {
            if let Some(tunnel) = cx.lookup.tunnel(&phases.proxy_tls_tunnel) {
                tls_details(tunnel, node);
            }
        }
        Phase::Blocked | Phase::Send | Phase::Wait | Phase::Transfer => {}
    }
}
