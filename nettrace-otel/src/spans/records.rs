//! What the records behind a phase add to its span: the dial's DNS messages (events) and
//! resolver outcome, the connection's kernel facts, state changes and conntrack entry, the
//! TLS tunnel's parameters. The phase spans' times come from [`nettrace_model::phases`]; the
//! spans of connections no request used take theirs from the records themselves.
use nettrace_model::{DialTrace, TcpConnTrace, TlsTunnelTrace};
use smallvec::smallvec;

use super::{SpanEvent, SpanNode, Text, UnixNanos, Value, int, lookup::Lookup, s, times::Times};

/// The DNS messages of `dial` as events, in time order, at the messages' precision.
fn dns_events<'a>(lookup: &Lookup<'a>, times: &Times, dial: &DialTrace) -> Vec<SpanEvent<'a>> {
    let mut events = Vec::new();
    for query in lookup.queries_of(&dial.trace_id) {
        for msg in &query.dns_query_msgs {
            let Some(at) = times.at(&msg.sent_at, &msg.precise_us, "sentAt") else {
                continue;
            };
            let mut attrs = smallvec![("dns.id", int(msg.id))];
            if let Some(q) = msg.questions.first() {
                attrs.push(("dns.question.name", s(&q.name)));
                attrs.push(("dns.question.type", s(q.res_type.to_string())));
            }
            events.push(SpanEvent {
                name: "dns.query".into(),
                at,
                attrs,
            });
        }
        for msg in &query.dns_reply_msgs {
            let Some(at) = times.at(&msg.recv_at, &msg.precise_us, "recvAt") else {
                continue;
            };
            let answers: Vec<_> = msg.answers.iter().map(|a| a.resolved_val.clone()).collect();
            events.push(SpanEvent {
                name: "dns.reply".into(),
                at,
                attrs: smallvec![
                    ("dns.id", int(msg.id)),
                    ("dns.response_code", s(msg.rcode.to_string())),
                    ("dns.answers", s(answers.join(","))),
                ],
            });
        }
    }
    events.sort_by_key(|e| e.at);
    events
}

/// Adds the name resolution of `dial` to the `dns` span: its messages, the name, skipped
/// name servers, and an error when every resolver dial failed.
pub(super) fn dns_details<'a>(
    lookup: &Lookup<'a>,
    times: &Times,
    dial: &'a DialTrace,
    span: &mut SpanNode<'a>,
) {
    span.events = dns_events(lookup, times, dial);
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
    let resolvers = &dial.resolver_dials;
    if !resolvers.is_empty() && resolvers.iter().all(|r| !r.dial_err.is_empty()) {
        let failed: Vec<_> = resolvers
            .iter()
            .map(|r| format!("{}: {}", r.nameserver, r.dial_err))
            .collect();
        span.error = Some(failed.join("; ").into());
    }
}

/// A `dns` span of its own for a name resolution no request used: from its first to its
/// last known moment (resolver dials and messages).
pub(super) fn lone_dns_span<'a>(
    lookup: &Lookup<'a>,
    times: &Times,
    dial: &'a DialTrace,
) -> Option<SpanNode<'a>> {
    let events = dns_events(lookup, times, dial);
    let resolver_times = dial.resolver_dials.iter().flat_map(|r| {
        [times.ms(&r.dial_begin_at), times.ms(&r.dial_end_at)]
            .into_iter()
            .flatten()
    });
    let all: Vec<UnixNanos> = resolver_times.chain(events.iter().map(|e| e.at)).collect();
    let (start, end) = (all.iter().min()?, all.iter().max()?);
    let mut span = SpanNode::new("dns", *start, *end);
    dns_details(lookup, times, dial, &mut span);
    Some(span)
}

/// Adds the TCP connection to the `connect` span: peer, byte counts, the kernel's facts and
/// state changes (events), the conntrack entry; an error when the dial failed to connect.
pub(super) fn connect_details<'a>(
    times: &Times,
    dial: Option<&'a DialTrace>,
    conn: &'a TcpConnTrace,
    span: &mut SpanNode<'a>,
) {
    span.attrs.push(("network.transport", s("tcp")));
    if let Some(ip) = conn.addr_tuple.dst_ip {
        span.attrs.push(("network.peer.address", s(Text::ip(ip))));
        span.attrs
            .push(("network.peer.port", int(conn.addr_tuple.dst_port)));
    }
    span.attrs
        .push(("nettrace.tcp.connected", Value::Bool(conn.connected)));
    span.attrs
        .push(("nettrace.tcp.total_sent_bytes", int(conn.total_sent_bytes)));
    span.attrs
        .push(("nettrace.tcp.total_recv_bytes", int(conn.total_recv_bytes)));
    if let Some(dial) = dial.filter(|d| !conn.connected && !d.dial_err.is_empty()) {
        span.error = Some((&dial.dial_err).into());
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
            if let Some(at) = times.ms(&change.at) {
                span.events.push(SpanEvent {
                    name: "tcp.state".into(),
                    at,
                    attrs: smallvec![
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
                s(Text::format(format_args!(
                    "{src}:{} -> {dst}:{}",
                    ct.addr_reply.src_port, ct.addr_reply.dst_port
                ))),
            ));
        }
    }
}

/// A `connect` span of its own for a connection no request used: its handshake.
pub(super) fn lone_connect_span<'a>(
    times: &Times,
    dial: Option<&'a DialTrace>,
    conn: &'a TcpConnTrace,
) -> Option<SpanNode<'a>> {
    let start = times.at(
        &conn.handshake_begin_at,
        &conn.precise_us,
        "handshakeBeginAt",
    )?;
    let end = times
        .at(&conn.handshake_end_at, &conn.precise_us, "handshakeEndAt")
        .unwrap_or(start);
    let mut span = SpanNode::new("connect", start, end);
    connect_details(times, dial, conn, &mut span);
    Some(span)
}

/// Adds the TLS tunnel to a `tls` (or `proxy-tls`) span: server name, version, cipher,
/// ALPN, the leaf certificate; the handshake error as the span's error.
pub(super) fn tls_details<'a>(tls: &'a TlsTunnelTrace, span: &mut SpanNode<'a>) {
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
        span.error = Some((&tls.handshake_err).into());
    }
}

/// A `tls` span of its own for a tunnel on a connection no request used: its handshake.
pub(super) fn lone_tls_span<'a>(times: &Times, tls: &'a TlsTunnelTrace) -> Option<SpanNode<'a>> {
    let start = times.at(&tls.handshake_begin_at, &tls.precise_us, "handshakeBeginAt")?;
    let end = times
        .at(&tls.handshake_end_at, &tls.precise_us, "handshakeEndAt")
        .unwrap_or(start);
    let mut span = SpanNode::new("tls", start, end);
    tls_details(tls, &mut span);
    Some(span)
}
