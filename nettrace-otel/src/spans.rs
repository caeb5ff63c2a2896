//! The span trees of a trace, as plain values: what [`crate::OtlpExporter`] sends, and what
//! tests read without a collector.
//!
//! Each HTTP request becomes a tree: the request span (kind client, named after the method)
//! with one child per phase of [`nettrace_model::phases`], the phases the waterfall, HAR and
//! diagnosis show: `blocked` (when it lasted), `dns`, `connect`, `proxy-tls`, `tls` (when the
//! request opened its connection), `send` (with socket operations), `wait` and `transfer`. A
//! redirect's next hops are child request spans of the first, each with its own children.
//! Hops are grouped into one request when a hop follows a 3xx response (a streamed trace,
//! `--stream`, always holds exactly one request).
//!
//! Attributes follow the OpenTelemetry semantic conventions (`http.request.method`,
//! `url.full`, `http.response.status_code`, `server.address`, `server.port`,
//! `network.peer.address`, `network.protocol.version`, `tls.*`, `dns.*`, `error.type`);
//! what they have no name for is under `nettrace.*` (kernel facts, conntrack, trace IDs, the
//! phase a failed request ended in, `nettrace.time_precision`). Socket operations are events
//! of the request span, kernel state changes and DNS messages events of `connect` and `dns`.
//!
//! Times keep the trace's precision: microseconds where the trace has them (this project's
//! recorder, `preciseUs`), whole milliseconds otherwise (Go's JSON, socket operations);
//! absolute timestamps to the microsecond in phases (the model's unit), to the nanosecond in
//! events.
use nettrace_model::{HttpTrace, IdMap};
use smallvec::SmallVec;

use self::{
    lookup::Lookup,
    records::{lone_connect_span, lone_dns_span, lone_tls_span},
    times::Times,
};

pub use self::{text::Text, times::UnixNanos};

/// An attribute value.
#[derive(Clone, Debug, PartialEq)]
pub enum Value<'a> {
    /// A string.
    Str(Text<'a>),
    /// An integer.
    Int(i64),
    /// A boolean.
    Bool(bool),
}

/// A named attribute.
pub type Attr<'a> = (&'static str, Value<'a>);

/// The attributes of a span event: three or fewer (every event nettrace writes) are kept in
/// the event itself, not allocated.
pub type EventAttrs<'a> = SmallVec<[Attr<'a>; 3]>;

/// A span event.
#[derive(Clone, Debug, PartialEq)]
pub struct SpanEvent<'a> {
    /// Its name (`read`, `write`, `state`, `dns.query`, ...).
    pub name: Text<'a>,
    /// When it happened.
    pub at: UnixNanos,
    /// Its attributes.
    pub attrs: EventAttrs<'a>,
}

/// One span and its children; its texts borrow from the trace it was built from.
#[derive(Clone, Debug, PartialEq)]
pub struct SpanNode<'a> {
    /// The span name.
    pub name: Text<'a>,
    /// A client span (a request) or an internal one (a phase).
    pub client: bool,
    /// Start time.
    pub start: UnixNanos,
    /// End time (never before the start).
    pub end: UnixNanos,
    /// Attributes.
    pub attrs: Vec<Attr<'a>>,
    /// Events, in time order.
    pub events: Vec<SpanEvent<'a>>,
    /// The error, if the span failed (its status is then Error with this description).
    pub error: Option<Text<'a>>,
    /// Child spans.
    pub children: Vec<SpanNode<'a>>,
}

impl<'a> SpanNode<'a> {
    pub(crate) fn new(name: impl Into<Text<'a>>, start: UnixNanos, end: UnixNanos) -> Self {
        Self {
            name: name.into(),
            client: false,
            start,
            end: end.max(start),
            attrs: Vec::new(),
            events: Vec::new(),
            error: None,
            children: Vec::new(),
        }
    }

    /// The value of attribute `key`, if set.
    pub fn attr(&self, key: &str) -> Option<&Value<'a>> {
        self.attrs.iter().find(|(k, _)| *k == key).map(|(_, v)| v)
    }

    /// Every span of the tree, depth first (this one first).
    pub fn walk(&self) -> Vec<&SpanNode<'a>> {
        let mut all = vec![self];
        for child in &self.children {
            all.extend(child.walk());
        }
        all
    }
}

fn s<'a>(v: impl Into<Text<'a>>) -> Value<'a> {
    Value::Str(v.into())
}

fn int(v: impl TryInto<i64>) -> Value<'static> {
    Value::Int(v.try_into().unwrap_or(i64::MAX))
}

/// The span trees of `trace`: one per HTTP request (redirect chains grouped), then one per
/// TCP connection that no request used and one per name resolution that served no request
/// (what a program traced from the kernel, `nettrace-loader trace`, is made of).
pub fn request_trees(trace: &HttpTrace) -> Vec<SpanNode<'_>> {
    let times = Times::of(trace);
    let lookup = Lookup::new(trace);
    let mut trees = request::http_trees(trace, times, &lookup);
    trees.extend(connection_trees(trace, times, &lookup));
    trees
}

/// Connections and name resolutions no HTTP request used, as trees of their own, timed by
/// their records (the model's phases are those of requests).
fn connection_trees<'a>(
    trace: &'a HttpTrace,
    times: Times,
    lookup: &Lookup<'a>,
) -> Vec<SpanNode<'a>> {
    let net = &trace.net_trace;
    let mut used = IdMap::default();
    for request in &trace.http_requests {
        used.insert_first(request.tcp_conn.as_str(), ());
    }
    let mut http_dials = IdMap::default();
    for conn in net
        .tcp_conns
        .iter()
        .filter(|c| used.contains(c.trace_id.as_str()))
    {
        http_dials.insert_first(conn.from_dial.as_str(), ());
    }
    let mut trees = Vec::new();
    for conn in net
        .tcp_conns
        .iter()
        .filter(|c| !used.contains(c.trace_id.as_str()))
    {
        let Some(dial) = lookup.dial(&conn.from_dial) else {
            continue;
        };
        let Some(mut connect) = lone_connect_span(&times, Some(dial), conn) else {
            continue;
        };
        let mut root = connect.clone();
        root.name = format!("TCP {}", dial.dst_address).into();
        root.client = true;
        root.end = times
            .at(&conn.conn_close_at, &conn.precise_us, "connCloseAt")
            .or_else(|| times.ms(&net.trace_end_at))
            .unwrap_or(root.end)
            .max(root.end);
        root.events = Vec::new();
        connect.attrs.clear();
        let tls = lookup
            .tunnels_on(&conn.trace_id)
            .iter()
            .filter_map(|t| lone_tls_span(&times, t));
        root.children = std::iter::once(connect).chain(tls).collect();
        if let Some(process) = &conn.process {
            root.attrs.push(("process.pid", int(process.pid)));
            root.attrs
                .push(("process.executable.name", s(process.comm.as_str())));
        }
        root.attrs
            .push(("nettrace.conn.trace_id", s(conn.trace_id.as_str())));
        trees.push(root);
    }
    let dialled_names = net
        .dials
        .iter()
        .filter(|d| !http_dials.contains(d.trace_id.as_str()));
    let mut resolving = IdMap::default();
    for query in &net.dns_queries {
        resolving.insert_first(query.from_dial.as_str(), ());
    }
    for dial in dialled_names.filter(|d| resolving.contains(d.trace_id.as_str())) {
        if let Some(mut dns) = lone_dns_span(lookup, &times, dial) {
            dns.client = true;
            trees.push(dns);
        }
    }
    trees
}

mod attrs;
mod lookup;
mod records;
mod request;
#[cfg(test)]
mod tests;
mod text;
mod times;
