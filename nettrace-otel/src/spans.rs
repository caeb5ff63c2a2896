//! The span trees of a trace, as plain values: what [`crate::OtlpExporter`] sends, and what
//! tests read without a collector.
//!
//! Each HTTP request becomes a tree: the request span (kind client, named after the method),
//! with children `dns`, `connect`, `tls` (when the request opened its connection), `send`,
//! `wait` and `transfer`; a redirect's next hops are child request spans of the first, each
//! with its own children. Hops are grouped into one request when a hop follows a 3xx
//! response (a streamed trace, `--stream`, always holds exactly one request).
//!
//! Attributes follow the OpenTelemetry semantic conventions (`http.request.method`,
//! `url.full`, `http.response.status_code`, `server.address`, `server.port`,
//! `network.peer.address`, `network.protocol.version`, `tls.*`, `dns.*`, `error.type`);
//! what they have no name for is under `nettrace.*` (kernel facts, conntrack, trace IDs).
//! Socket operations are events of the request span, kernel state changes and DNS messages
//! events of `connect` and `dns`. Times are the trace's own (ms relative to its beginning,
//! or absolute to the nanosecond).
use std::time::{Duration, SystemTime};

use nettrace_model::{
    DialTrace, HttpReqTrace, HttpTrace, SocketOpType, TcpConnTrace, Timestamp, TlsTunnelTrace,
};
use time::OffsetDateTime;

/// An attribute value.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// A string.
    Str(String),
    /// An integer.
    Int(i64),
    /// A boolean.
    Bool(bool),
}

/// A named attribute.
pub type Attr = (&'static str, Value);

/// A span event.
#[derive(Clone, Debug, PartialEq)]
pub struct SpanEvent {
    /// Its name (`read`, `write`, `state`, `dns.query`, ...).
    pub name: String,
    /// When it happened.
    pub at: SystemTime,
    /// Its attributes.
    pub attrs: Vec<Attr>,
}

/// One span and its children.
#[derive(Clone, Debug, PartialEq)]
pub struct SpanNode {
    /// The span name.
    pub name: String,
    /// A client span (a request) or an internal one (a phase).
    pub client: bool,
    /// Start time.
    pub start: SystemTime,
    /// End time (never before the start).
    pub end: SystemTime,
    /// Attributes.
    pub attrs: Vec<Attr>,
    /// Events, in time order.
    pub events: Vec<SpanEvent>,
    /// The error, if the span failed (its status is then Error with this description).
    pub error: Option<String>,
    /// Child spans.
    pub children: Vec<SpanNode>,
}

impl SpanNode {
    fn new(name: &str, start: SystemTime, end: SystemTime) -> Self {
        Self {
            name: name.to_owned(),
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
    pub fn attr(&self, key: &str) -> Option<&Value> {
        self.attrs.iter().find(|(k, _)| *k == key).map(|(_, v)| v)
    }

    /// Every span of the tree, depth first (this one first).
    pub fn walk(&self) -> Vec<&SpanNode> {
        let mut all = vec![self];
        for child in &self.children {
            all.extend(child.walk());
        }
        all
    }
}

fn s(v: impl Into<String>) -> Value {
    Value::Str(v.into())
}

fn int(v: impl TryInto<i64>) -> Value {
    Value::Int(v.try_into().unwrap_or(i64::MAX))
}

/// Converts the trace's timestamps to wall-clock times.
struct Times {
    begin: Option<OffsetDateTime>,
}

impl Times {
    fn at(&self, ts: &Timestamp) -> Option<SystemTime> {
        match ts {
            Timestamp::Undefined => None,
            Timestamp::Relative(ms) => self
                .begin
                .map(|b| SystemTime::from(b) + Duration::from_millis(u64::from(*ms))),
            Timestamp::Absolute(at) => Some(SystemTime::from(*at)),
        }
    }
}

/// The span trees of `trace`: one per HTTP request (redirect chains grouped), then one per
/// TCP connection that no request used and one per name resolution that served no request
/// (what a program traced from the kernel, `nettrace-loader trace`, is made of).
pub fn request_trees(trace: &HttpTrace) -> Vec<SpanNode> {
    let mut trees = http_trees(trace);
    trees.extend(connection_trees(trace));
    trees
}

/// Connections and name resolutions no HTTP request used, as trees of their own.
fn connection_trees(trace: &HttpTrace) -> Vec<SpanNode> {
    let times = Times {
        begin: trace.net_trace.trace_begin_at.as_absolute(),
    };
    let net = &trace.net_trace;
    let used =
        |conn: &nettrace_model::TraceId| trace.http_requests.iter().any(|r| &r.tcp_conn == conn);
    let http_dials: Vec<_> = net
        .tcp_conns
        .iter()
        .filter(|c| used(&c.trace_id))
        .map(|c| c.from_dial.clone())
        .collect();
    let mut trees = Vec::new();
    for conn in net.tcp_conns.iter().filter(|c| !used(&c.trace_id)) {
        let Some(dial) = net.dials.get(&conn.from_dial) else {
            continue;
        };
        let Some(mut connect) = connect_span(&times, dial, conn) else {
            continue;
        };
        let mut root = connect.clone();
        root.name = format!("TCP {}", dial.dst_address);
        root.client = true;
        root.end = times
            .at(&conn.conn_close_at)
            .or_else(|| times.at(&net.trace_end_at))
            .unwrap_or(root.end)
            .max(root.end);
        root.events = Vec::new();
        connect.attrs.clear();
        let tls = net
            .tls_tunnels
            .iter()
            .filter(|t| t.tcp_conn == conn.trace_id)
            .filter_map(|t| tls_span(&times, t));
        root.children = std::iter::once(connect).chain(tls).collect();
        if let Some(process) = &conn.process {
            root.attrs.push(("process.pid", int(process.pid)));
            root.attrs
                .push(("process.executable.name", s(&process.comm)));
        }
        root.attrs
            .push(("nettrace.conn.trace_id", s(conn.trace_id.as_str())));
        trees.push(root);
    }
    for dial in net
        .dials
        .iter()
        .filter(|d| !http_dials.contains(&d.trace_id))
    {
        let resolves = net.dns_queries.iter().any(|q| q.from_dial == dial.trace_id);
        if let Some(mut dns) = resolves.then(|| dns_span(trace, &times, dial)).flatten() {
            dns.client = true;
            trees.push(dns);
        }
    }
    trees
}

/// One tree per HTTP request.
fn http_trees(trace: &HttpTrace) -> Vec<SpanNode> {
    let times = Times {
        begin: trace.net_trace.trace_begin_at.as_absolute(),
    };
    let mut chains: Vec<Vec<&HttpReqTrace>> = Vec::new();
    for hop in trace.http_requests.iter() {
        let follows_redirect = chains.last().and_then(|c| c.last()).is_some_and(|prev| {
            (300..400).contains(&prev.resp_status_code) && prev.req_error.is_empty()
        });
        match chains.last_mut() {
            Some(chain) if follows_redirect => chain.push(hop),
            _ => chains.push(vec![hop]),
        }
    }
    chains
        .into_iter()
        .filter_map(|chain| {
            let (first, rest) = chain.split_first()?;
            let mut root = hop_span(trace, &times, first)?;
            for hop in rest {
                if let Some(child) = hop_span(trace, &times, hop) {
                    root.end = root.end.max(child.end);
                    root.children.push(child);
                }
            }
            let described = !trace.net_trace.description.is_empty();
            if described {
                root.attrs
                    .push(("nettrace.description", s(&trace.net_trace.description)));
            }
            if !trace.net_trace.session_uuid.is_empty() {
                root.attrs
                    .push(("nettrace.session.uuid", s(&trace.net_trace.session_uuid)));
            }
            if let Some(dropped) = trace.net_trace.dropped.filter(|d| !d.is_empty()) {
                root.attrs
                    .push(("nettrace.dropped.total", int(dropped.total())));
            }
            Some(root)
        })
        .collect()
}

/// One hop: its span with the phase children.
fn hop_span(trace: &HttpTrace, times: &Times, hop: &HttpReqTrace) -> Option<SpanNode> {
    let net = &trace.net_trace;
    let sent = times.at(&hop.req_sent_at)?;
    let response = times.at(&hop.resp_recv_at);
    let conn = net.tcp_conns.get(&hop.tcp_conn);
    // The connection is the hop's own when its dial began with or after the hop.
    let dial = conn
        .and_then(|c| net.dials.get(&c.from_dial))
        .filter(|d| times.at(&d.dial_begin_at).is_some_and(|b| b >= sent))
        .filter(|_| !conn.is_some_and(|c| c.reused));
    let tls = net
        .tls_tunnels
        .get(&hop.tls_tunnel)
        .filter(|_| dial.is_some());

    let mut children = Vec::new();
    if let Some(dial) = dial {
        children.extend(dns_span(trace, times, dial));
    }
    let mut ready = sent;
    if let (Some(dial), Some(conn)) = (dial, conn)
        && let Some(span) = connect_span(times, dial, conn)
    {
        ready = ready.max(span.end);
        children.push(span);
    }
    if let Some(tls) = tls.and_then(|t| tls_span(times, t)) {
        ready = ready.max(tls.end);
        children.push(tls);
    }
    // The next request over the same connection begins where this one's operations end.
    let next_sent = trace
        .http_requests
        .iter()
        .filter(|r| r.tcp_conn == hop.tcp_conn && !hop.tcp_conn.is_empty())
        .filter_map(|r| times.at(&r.req_sent_at))
        .filter(|at| *at > sent)
        .min();
    // Socket operations of the hop's connection from its sending on.
    let ops: Vec<_> = conn
        .and_then(|c| c.socket_trace.as_ref())
        .map(|t| {
            t.socket_ops
                .iter()
                .filter_map(|op| Some((op, times.at(&op.call_at)?, times.at(&op.return_at)?)))
                .filter(|(_, call, _)| *call >= sent && next_sent.is_none_or(|n| *call < n))
                .collect()
        })
        .unwrap_or_default();
    let is_write = |t: SocketOpType| matches!(t, SocketOpType::Write | SocketOpType::WriteTo);
    let end_of = |wanted: &dyn Fn(SocketOpType) -> bool, until: Option<SystemTime>| {
        ops.iter()
            .filter(|(op, call, _)| wanted(op.op_type) && until.is_none_or(|u| *call <= u))
            .map(|(_, _, ret)| *ret)
            .max()
    };
    let written = end_of(&is_write, response).map_or(ready, |w| w.max(ready));
    let mut end = response.unwrap_or(written).max(written);
    children.push(SpanNode::new("send", ready, written));
    if let Some(response) = response {
        children.push(SpanNode::new("wait", written, response));
        let read_end = end_of(&|t| !is_write(t), None).filter(|r| *r > response);
        if let Some(read_end) = read_end {
            children.push(SpanNode::new("transfer", response, read_end));
            end = end.max(read_end);
        }
    }
    for child in &children {
        end = end.max(child.end);
    }

    let mut span = SpanNode::new(&hop.req_method, sent, end);
    span.client = true;
    span.attrs = request_attrs(hop, conn);
    span.events = ops
        .iter()
        .map(|(op, call, _)| SpanEvent {
            name: op.op_type.to_string(),
            at: *call,
            attrs: {
                let mut attrs = vec![("nettrace.socket.data_len", int(op.data_len))];
                if !op.return_err.is_empty() {
                    attrs.push(("error.message", s(&op.return_err)));
                }
                attrs
            },
        })
        .collect();
    span.error = if !hop.req_error.is_empty() {
        Some(hop.req_error.clone())
    } else if hop.resp_status_code >= 400 {
        Some(format!("HTTP status {}", hop.resp_status_code))
    } else {
        None
    };
    if span.error.is_some() {
        let kind = if hop.req_error.is_empty() {
            hop.resp_status_code.to_string()
        } else {
            error_type(&hop.req_error)
        };
        span.attrs.push(("error.type", s(kind)));
    }
    span.children = children;
    Some(span)
}

/// A short, low-cardinality class of an error text (semantic conventions' `error.type`).
fn error_type(error: &str) -> String {
    let lower = error.to_ascii_lowercase();
    let known = [
        ("timed out", "timeout"),
        ("timeout", "timeout"),
        ("refused", "connection_refused"),
        ("reset", "connection_reset"),
        ("certificate", "tls_certificate"),
        ("tls", "tls"),
        ("dns", "dns"),
        ("resolv", "dns"),
        ("canceled", "canceled"),
    ];
    known
        .iter()
        .find(|(needle, _)| lower.contains(needle))
        .map_or("_OTHER", |(_, kind)| kind)
        .to_owned()
}

fn request_attrs(hop: &HttpReqTrace, conn: Option<&TcpConnTrace>) -> Vec<Attr> {
    let mut attrs = vec![
        ("http.request.method", s(&hop.req_method)),
        ("url.full", s(&hop.req_url)),
        ("nettrace.trace_id", s(hop.trace_id.as_str())),
        ("network.protocol.name", s("http")),
        (
            "network.protocol.version",
            s(match (hop.proto_major, hop.proto_minor) {
                (2, _) => "2".to_owned(),
                (major, minor) => format!("{major}.{minor}"),
            }),
        ),
        ("http.request.body.size", int(hop.req_content_len)),
        ("http.response.body.size", int(hop.resp_content_len)),
    ];
    if hop.resp_status_code != 0 {
        attrs.push(("http.response.status_code", int(hop.resp_status_code)));
    }
    if let Some((host, port)) = server_of(&hop.req_url) {
        attrs.push(("server.address", s(host)));
        attrs.push(("server.port", int(port)));
    }
    if !hop.network_proxy.is_empty() {
        attrs.push(("nettrace.network_proxy", s(&hop.network_proxy)));
    }
    if let Some(conn) = conn {
        let tuple = &conn.addr_tuple;
        if let Some(ip) = tuple.dst_ip {
            attrs.push(("network.peer.address", s(ip.to_string())));
            attrs.push(("network.peer.port", int(tuple.dst_port)));
        }
        if let Some(ip) = tuple.src_ip {
            attrs.push(("network.local.address", s(ip.to_string())));
            attrs.push(("network.local.port", int(tuple.src_port)));
        }
        attrs.push(("network.transport", s("tcp")));
        attrs.push(("nettrace.conn.reused", Value::Bool(conn.reused)));
        attrs.push(("nettrace.conn.trace_id", s(conn.trace_id.as_str())));
    }
    attrs
}

/// Host and port of an `http(s)://` URL.
fn server_of(url: &str) -> Option<(String, u16)> {
    let (scheme, rest) = url.split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next()?;
    let authority = authority.rsplit('@').next()?;
    let default = if scheme.eq_ignore_ascii_case("https") {
        443
    } else {
        80
    };
    if let Some(v6) = authority.strip_prefix('[') {
        let (host, after) = v6.split_once(']')?;
        let port = after.strip_prefix(':').and_then(|p| p.parse().ok());
        return Some((host.to_owned(), port.unwrap_or(default)));
    }
    match authority.rsplit_once(':') {
        Some((host, port)) => Some((host.to_owned(), port.parse().ok()?)),
        None => Some((authority.to_owned(), default)),
    }
}

/// Name resolution: the resolver dials and DNS messages of the dial.
fn dns_span(trace: &HttpTrace, times: &Times, dial: &DialTrace) -> Option<SpanNode> {
    let queries: Vec<_> = trace
        .net_trace
        .dns_queries
        .iter()
        .filter(|q| q.from_dial == dial.trace_id)
        .collect();
    let mut events = Vec::new();
    for query in &queries {
        for msg in &query.dns_query_msgs {
            let Some(at) = times.at(&msg.sent_at) else {
                continue;
            };
            let mut attrs = vec![("dns.id", int(msg.id))];
            if let Some(q) = msg.questions.first() {
                attrs.push(("dns.question.name", s(&q.name)));
                attrs.push(("dns.question.type", s(q.res_type.to_string())));
            }
            events.push(SpanEvent {
                name: "dns.query".to_owned(),
                at,
                attrs,
            });
        }
        for msg in &query.dns_reply_msgs {
            let Some(at) = times.at(&msg.recv_at) else {
                continue;
            };
            let answers: Vec<_> = msg.answers.iter().map(|a| a.resolved_val.clone()).collect();
            events.push(SpanEvent {
                name: "dns.reply".to_owned(),
                at,
                attrs: vec![
                    ("dns.id", int(msg.id)),
                    ("dns.response_code", s(msg.rcode.to_string())),
                    ("dns.answers", s(answers.join(","))),
                ],
            });
        }
    }
    let resolver_times = dial.resolver_dials.iter().flat_map(|r| {
        [times.at(&r.dial_begin_at), times.at(&r.dial_end_at)]
            .into_iter()
            .flatten()
    });
    let all: Vec<SystemTime> = resolver_times.chain(events.iter().map(|e| e.at)).collect();
    let (start, end) = (all.iter().min()?, all.iter().max()?);
    let mut span = SpanNode::new("dns", *start, *end);
    events.sort_by_key(|e| e.at);
    span.events = events;
    let name = dial
        .dst_address
        .rsplit_once(':')
        .map_or(&*dial.dst_address, |(h, _)| h);
    span.attrs.push(("dns.question.name", s(name)));
    span.attrs
        .push(("nettrace.dial.trace_id", s(dial.trace_id.as_str())));
    if !dial.skipped_nameservers.is_empty() {
        span.attrs.push((
            "nettrace.dns.skipped_nameservers",
            s(dial.skipped_nameservers.join(",")),
        ));
    }
    let failed: Vec<_> = dial
        .resolver_dials
        .iter()
        .filter(|r| !r.dial_err.is_empty())
        .map(|r| format!("{}: {}", r.nameserver, r.dial_err))
        .collect();
    if !failed.is_empty() && dial.resolver_dials.iter().all(|r| !r.dial_err.is_empty()) {
        span.error = Some(failed.join("; "));
    }
    Some(span)
}

/// The TCP handshake, with the kernel's facts and conntrack entry.
fn connect_span(times: &Times, dial: &DialTrace, conn: &TcpConnTrace) -> Option<SpanNode> {
    let start = times.at(&conn.handshake_begin_at)?;
    let end = times.at(&conn.handshake_end_at).unwrap_or(start);
    let mut span = SpanNode::new("connect", start, end);
    span.attrs.push(("network.transport", s("tcp")));
    if let Some(ip) = conn.addr_tuple.dst_ip {
        span.attrs.push(("network.peer.address", s(ip.to_string())));
        span.attrs
            .push(("network.peer.port", int(conn.addr_tuple.dst_port)));
    }
    span.attrs
        .push(("nettrace.tcp.connected", Value::Bool(conn.connected)));
    span.attrs
        .push(("nettrace.tcp.total_sent_bytes", int(conn.total_sent_bytes)));
    span.attrs
        .push(("nettrace.tcp.total_recv_bytes", int(conn.total_recv_bytes)));
    if !conn.connected && !dial.dial_err.is_empty() {
        span.error = Some(dial.dial_err.clone());
    }
    if let Some(kernel) = &conn.kernel {
        span.attrs.extend([
            ("nettrace.kernel.srtt_us", int(kernel.srtt_us)),
            ("nettrace.kernel.min_rtt_us", int(kernel.min_rtt_us)),
            ("nettrace.kernel.retransmits", int(kernel.retransmits)),
            (
                "nettrace.kernel.syn_retransmits",
                int(kernel.syn_retransmits),
            ),
            ("nettrace.kernel.rto_events", int(kernel.rto_events)),
            ("nettrace.kernel.segs_out", int(kernel.segs_out)),
            ("nettrace.kernel.segs_in", int(kernel.segs_in)),
            ("nettrace.kernel.rst_sent", Value::Bool(kernel.rst_sent)),
            (
                "nettrace.kernel.rst_received",
                Value::Bool(kernel.rst_received),
            ),
        ]);
        for change in &kernel.states {
            if let Some(at) = times.at(&change.at) {
                span.events.push(SpanEvent {
                    name: "tcp.state".to_owned(),
                    at,
                    attrs: vec![
                        ("nettrace.tcp.state.from", s(&change.from)),
                        ("nettrace.tcp.state.to", s(&change.to)),
                    ],
                });
            }
        }
    }
    if let Some(ct) = &conn.conntrack {
        span.attrs.extend([
            ("nettrace.conntrack.tcp_state", s(ct.tcp_state.to_string())),
            ("nettrace.conntrack.mark", int(ct.mark)),
            ("nettrace.conntrack.packets_sent", int(ct.packets_sent)),
            ("nettrace.conntrack.packets_recv", int(ct.packets_recv)),
        ]);
        if let (Some(src), Some(dst)) = (ct.addr_reply.src_ip, ct.addr_reply.dst_ip) {
            span.attrs.push((
                "nettrace.conntrack.reply",
                s(format!(
                    "{src}:{} -> {dst}:{}",
                    ct.addr_reply.src_port, ct.addr_reply.dst_port
                )),
            ));
        }
    }
    Some(span)
}

/// The TLS handshake.
fn tls_span(times: &Times, tls: &TlsTunnelTrace) -> Option<SpanNode> {
    let start = times.at(&tls.handshake_begin_at)?;
    let end = times.at(&tls.handshake_end_at).unwrap_or(start);
    let mut span = SpanNode::new("tls", start, end);
    span.attrs.push(("tls.server.name", s(&tls.server_name)));
    span.attrs
        .push(("tls.resumed", Value::Bool(tls.did_resume)));
    span.attrs
        .push(("tls.established", Value::Bool(tls.handshake_err.is_empty())));
    if let Some(version) = tls.tls_version.strip_prefix("TLSv") {
        span.attrs.push(("tls.protocol.name", s("tls")));
        span.attrs.push(("tls.protocol.version", s(version)));
    }
    if let Some(name) = nettrace_model::cipher_suite_name(tls.cipher_suite) {
        span.attrs.push(("tls.cipher", s(name)));
    }
    if !tls.negotiated_proto.is_empty() {
        span.attrs
            .push(("tls.next_protocol", s(&tls.negotiated_proto)));
    }
    if let Some(leaf) = tls.peer_certs.first() {
        span.attrs.push(("tls.server.subject", s(&leaf.subject)));
        span.attrs.push(("tls.server.issuer", s(&leaf.issuer)));
    }
    if !tls.handshake_err.is_empty() {
        span.error = Some(tls.handshake_err.clone());
    }
    Some(span)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests_support::ONE_REQUEST;

    fn trees() -> Vec<SpanNode> {
        let trace: HttpTrace = serde_json::from_str(ONE_REQUEST).expect("trace");
        request_trees(&trace)
    }

    fn names(node: &SpanNode) -> Vec<&str> {
        node.children.iter().map(|c| c.name.as_str()).collect()
    }

    fn ms(node: &SpanNode, at: SystemTime) -> u128 {
        let _ = node;
        let begin = SystemTime::from(time::macros::datetime!(2026-01-02 03:04:05.000000006 UTC));
        at.duration_since(begin)
            .expect("after the beginning")
            .as_millis()
    }

    #[test]
    fn a_redirected_request_is_one_tree_with_its_phases_and_the_next_hop_as_child() {
        let trees = trees();
        assert_eq!(
            trees.len(),
            2,
            "req-1 -> req-2 is one request, req-3 another"
        );
        let root = &trees[0];
        assert!(root.client);
        assert_eq!(root.name, "GET");
        assert_eq!(
            names(root),
            ["dns", "connect", "tls", "send", "wait", "GET"]
        );
        assert_eq!(root.attr("url.full"), Some(&s("https://example.test/old")));
        assert_eq!(
            root.attr("http.response.status_code"),
            Some(&Value::Int(301))
        );
        assert_eq!(root.attr("server.address"), Some(&s("example.test")));
        assert_eq!(root.attr("server.port"), Some(&Value::Int(443)));
        assert_eq!(root.attr("network.peer.address"), Some(&s("192.0.2.1")));
        assert_eq!(root.attr("network.protocol.version"), Some(&s("1.1")));
        assert_eq!(root.error, None);
        // Times are the trace's own.
        assert_eq!(ms(root, root.start), 0);
        let dns = &root.children[0];
        assert_eq!((ms(dns, dns.start), ms(dns, dns.end)), (2, 8));
        let events: Vec<_> = dns.events.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(events, ["dns.query", "dns.reply"]);
        let connect = &root.children[1];
        assert_eq!(
            (ms(connect, connect.start), ms(connect, connect.end)),
            (10, 20)
        );
        assert_eq!(
            connect.attr("nettrace.kernel.srtt_us"),
            Some(&Value::Int(250))
        );
        assert_eq!(connect.events.len(), 2, "kernel state changes");
        let tls = &root.children[2];
        assert_eq!(tls.attr("tls.protocol.version"), Some(&s("1.3")));
        assert_eq!(tls.attr("tls.cipher"), Some(&s("TLS_AES_128_GCM_SHA256")));
        let wait = &root.children[4];
        assert_eq!((ms(wait, wait.start), ms(wait, wait.end)), (32, 40));
        // The redirect's next hop: a child request on the kept connection, with a transfer.
        let next = &root.children[5];
        assert!(next.client);
        assert_eq!(next.attr("url.full"), Some(&s("https://example.test/new")));
        assert_eq!(names(next), ["send", "wait", "transfer"]);
        let transfer = &next.children[2];
        assert_eq!(
            (ms(transfer, transfer.start), ms(transfer, transfer.end)),
            (60, 70)
        );
        assert_eq!(ms(root, root.end), 70, "the root ends with its last hop");
        assert_eq!(root.walk().len(), 10);
    }

    #[test]
    fn a_failed_request_has_an_error_status_and_type() {
        let trees = trees();
        let failed = &trees[1];
        assert_eq!(failed.name, "POST");
        assert_eq!(failed.error.as_deref(), Some("connection reset by peer"));
        assert_eq!(failed.attr("error.type"), Some(&s("connection_reset")));
        assert_eq!(failed.attr("server.port"), Some(&Value::Int(8443)));
        assert_eq!(
            failed.attr("nettrace.conn.reused"),
            Some(&Value::Bool(false))
        );
        assert_eq!(
            names(failed),
            ["send"],
            "no connect: the connection was not its own"
        );
    }

    #[test]
    fn a_connection_without_requests_is_a_tree_of_its_own() {
        let mut trace: HttpTrace = serde_json::from_str(ONE_REQUEST).expect("trace");
        trace.http_requests = Vec::new().into();
        let trees = request_trees(&trace);
        let names: Vec<_> = trees.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["TCP example.test:443", "dns"]);
        let tcp = &trees[0];
        assert!(tcp.client);
        assert_eq!(self::names(tcp), ["connect", "tls"]);
        assert_eq!(ms(tcp, tcp.end), 200, "open until the trace's end");
    }

    #[test]
    fn server_of_reads_hosts_ports_and_ipv6() {
        assert_eq!(server_of("http://a.test/x"), Some(("a.test".into(), 80)));
        assert_eq!(
            server_of("https://u:p@a.test:8443?q"),
            Some(("a.test".into(), 8443))
        );
        assert_eq!(server_of("http://[::1]:8080/"), Some(("::1".into(), 8080)));
        assert_eq!(server_of("https://[::1]/"), Some(("::1".into(), 443)));
        assert_eq!(server_of("nonsense"), None);
    }
}
