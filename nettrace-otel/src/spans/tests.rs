use std::time::SystemTime;

use nettrace_model::{HttpTrace, TraceId};

use super::{SpanNode, Value, attrs::server_of, request_trees, s};
use crate::tests_support::one_request;

fn names<'a>(node: &'a SpanNode<'_>) -> Vec<&'a str> {
    node.children.iter().map(|c| c.name.as_str()).collect()
}

fn child<'a, 't>(node: &'a SpanNode<'t>, name: &str) -> &'a SpanNode<'t> {
    node.children
        .iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no {name} under {}: {:?}", node.name, names(node)))
}

/// µs since `begin` of a span's start and end.
fn us_since(begin: SystemTime, node: &SpanNode) -> (u128, u128) {
    let us = |at: SystemTime| {
        at.duration_since(begin)
            .expect("after the beginning")
            .as_micros()
    };
    (us(node.start.system_time()), us(node.end.system_time()))
}

/// ms since the fixture's beginning of a span's start and end (exact: no µs left over).
fn ms(node: &SpanNode) -> (u128, u128) {
    let begin = SystemTime::from(time::macros::datetime!(2026-01-02 03:04:05.000000006 UTC));
    let (start, end) = us_since(begin, node);
    assert_eq!(
        (start % 1000, end % 1000),
        (0, 0),
        "{}: whole ms",
        node.name
    );
    (start / 1000, end / 1000)
}

#[test]
fn a_redirected_request_is_one_tree_with_the_models_phases_and_the_next_hop_as_child() {
    let trace = one_request();
    let trees = request_trees(&trace);
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
        [
            "blocked", "dns", "connect", "tls", "send", "wait", "transfer", "GET"
        ]
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
    assert_eq!(root.attr("nettrace.time_precision"), Some(&s("ms")));
    assert_eq!(root.error, None);
    // The phases are the model's: the waterfall's boundaries.
    let phases = nettrace_model::phases::request_phases(&one_request());
    for (phase, span) in phases[0].iter() {
        let node = child(root, phase.as_str());
        assert_eq!(
            ms(node),
            (
                u128::from(span.start_us / 1000),
                u128::from(span.end_us / 1000)
            ),
            "{phase}"
        );
    }
    assert_eq!(ms(root).0, 0);
    assert_eq!(ms(child(root, "blocked")), (0, 1), "the dial began at +1ms");
    // DNS: from the first query to the last reply, with the messages as events.
    let dns = child(root, "dns");
    assert_eq!(ms(dns), (4, 8));
    let events: Vec<_> = dns.events.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(events, ["dns.query", "dns.reply"]);
    assert_eq!(dns.attr("dns.question.name"), Some(&s("example.test")));
    let connect = child(root, "connect");
    assert_eq!(ms(connect), (10, 20));
    assert_eq!(
        connect.attr("nettrace.kernel.srtt_us"),
        Some(&Value::Int(250))
    );
    assert_eq!(connect.events.len(), 2, "kernel state changes");
    let tls = child(root, "tls");
    assert_eq!(ms(tls), (20, 30));
    assert_eq!(tls.attr("tls.protocol.version"), Some(&s("1.3")));
    assert_eq!(tls.attr("tls.cipher"), Some(&s("TLS_AES_128_GCM_SHA256")));
    // Send: the socket's writes after the handshake; wait: until the response head.
    assert_eq!(ms(child(root, "send")), (30, 32));
    assert_eq!(ms(child(root, "wait")), (32, 40));
    // The last read returned with the head: a body of no time (the model's, as the waterfall).
    assert_eq!(ms(child(root, "transfer")), (40, 40));
    let ops: Vec<_> = root.events.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(
        ops,
        ["write", "read"],
        "the first request's socket operations"
    );
    // The redirect's next hop: a child request on the kept connection, with a transfer.
    let next = child(root, "GET");
    assert!(next.client);
    assert_eq!(next.attr("url.full"), Some(&s("https://example.test/new")));
    assert_eq!(next.attr("nettrace.conn.reused"), Some(&Value::Bool(true)));
    assert_eq!(names(next), ["send", "wait", "transfer"], "no zero blocked");
    assert_eq!(ms(child(next, "send")), (45, 51));
    assert_eq!(ms(child(next, "wait")), (51, 60));
    assert_eq!(ms(child(next, "transfer")), (60, 70));
    assert_eq!(next.events.len(), 3, "write, read, read");
    assert_eq!(ms(root).1, 70, "the root ends with its last hop");
    assert_eq!(root.walk().len(), 12);
}

#[test]
fn a_failed_request_has_an_error_status_type_and_unfinished_phase() {
    let trace = one_request();
    let trees = request_trees(&trace);
    let failed = &trees[1];
    assert_eq!(failed.name, "POST");
    assert_eq!(failed.error.as_deref(), Some("connection reset by peer"));
    assert_eq!(failed.attr("error.type"), Some(&s("connection_reset")));
    assert_eq!(failed.attr("server.port"), Some(&Value::Int(8443)));
    assert_eq!(
        failed.attr("nettrace.conn.reused"),
        Some(&Value::Bool(true)),
        "the connection served the requests before"
    );
    assert_eq!(failed.attr("nettrace.unfinished_phase"), Some(&s("wait")));
    assert_eq!(
        names(failed),
        ["wait"],
        "no connect: not its own connection"
    );
    let wait = &failed.children[0];
    assert_eq!(wait.error.as_deref(), Some("connection reset by peer"));
    assert_eq!(wait.attr("nettrace.unfinished"), Some(&Value::Bool(true)));
}

/// The fixture with the recorder's microseconds (`preciseUs`) on every timestamp the
/// phases of the first request use.
fn precise_trace() -> HttpTrace {
    let mut trace = one_request();
    let net = &mut trace.net_trace;
    let req = &mut trace.http_requests[0];
    req.precise_us.set("reqSentAt", 250);
    req.precise_us.set("respRecvAt", 40_123);
    let dial = &mut net.dials[0];
    dial.precise_us.set("dialBeginAt", 1_100);
    dial.precise_us.set("dialEndAt", 30_210);
    let query = &mut net.dns_queries[0];
    query.dns_query_msgs[0].precise_us.set("sentAt", 4_400);
    query.dns_reply_msgs[0].precise_us.set("recvAt", 8_301);
    let conn = &mut net.tcp_conns[0];
    conn.precise_us.set("handshakeBeginAt", 10_050);
    conn.precise_us.set("handshakeEndAt", 20_007);
    let tls = &mut net.tls_tunnels[0];
    tls.precise_us.set("handshakeBeginAt", 20_010);
    tls.precise_us.set("handshakeEndAt", 30_200);
    trace
}

#[test]
fn span_times_keep_the_microseconds_of_a_precise_trace() {
    let trace = precise_trace();
    let phases = nettrace_model::phases::request_phases(&trace);
    assert_eq!(
        phases[0].precision,
        nettrace_model::phases::Precision::Micros
    );
    let trees = request_trees(&trace);
    let root = &trees[0];
    let begin = SystemTime::from(time::macros::datetime!(2026-01-02 03:04:05.000000006 UTC));
    let at = |name: &str| us_since(begin, child(root, name));
    assert_eq!(root.attr("nettrace.time_precision"), Some(&s("us")));
    assert_eq!(us_since(begin, root).0, 250);
    assert_eq!(at("blocked"), (250, 1_100));
    assert_eq!(at("dns"), (4_400, 8_301));
    assert_eq!(at("connect"), (10_050, 20_007));
    assert_eq!(at("tls"), (20_010, 30_200));
    assert_eq!(at("wait").1, 40_123);
    // The DNS messages too.
    let dns = child(root, "dns");
    let events: Vec<u128> = dns
        .events
        .iter()
        .map(|e| {
            e.at.system_time()
                .duration_since(begin)
                .expect("after")
                .as_micros()
        })
        .collect();
    assert_eq!(events, [4_400, 8_301]);
    // Every phase is the model's, to the microsecond.
    for (phase, span) in phases[0].iter() {
        assert_eq!(
            at(phase.as_str()),
            (u128::from(span.start_us), u128::from(span.end_us)),
            "{phase}"
        );
    }
}

#[test]
fn a_go_trace_in_milliseconds_keeps_its_phases() {
    let json = include_str!("../../../nettrace-cli/tests/golden/go_readme_example.json");
    let trace: HttpTrace = serde_json::from_str(json).expect("trace");
    let trees = request_trees(&trace);
    let root = &trees[0];
    assert_eq!(root.name, "GET");
    assert_eq!(root.attr("nettrace.time_precision"), Some(&s("ms")));
    assert_eq!(
        names(root),
        ["dns", "connect", "tls", "send", "wait", "transfer"],
        "blocked lasted 0 ms"
    );
    let begin = SystemTime::from(time::macros::datetime!(2022-12-23 10:17:45.260618344 +01:00));
    let at = |name: &str| {
        let (start, end) = us_since(begin, child(root, name));
        (start / 1000, end / 1000)
    };
    // The same phases as the model's own test of this trace (and the waterfall).
    assert_eq!(at("dns"), (73, 115));
    assert_eq!(at("connect"), (115, 126));
    assert_eq!(at("tls"), (126, 172));
    assert_eq!(at("send"), (172, 183));
    assert_eq!(at("wait"), (183, 239));
    assert_eq!(at("transfer"), (239, 240));
    assert_eq!(us_since(begin, root), (72_000, 240_000));
}

#[test]
fn a_proxy_tls_handshake_is_a_phase_of_its_own() {
    let mut trace = one_request();
    let mut proxy = trace.net_trace.tls_tunnels[0].clone();
    proxy.trace_id = TraceId::new("tls-proxy");
    proxy.server_name = "proxy.test".to_owned();
    proxy.handshake_begin_at = nettrace_model::Timestamp::Relative(20);
    proxy.handshake_end_at = nettrace_model::Timestamp::Relative(24);
    trace.net_trace.tls_tunnels[0].handshake_begin_at = nettrace_model::Timestamp::Relative(24);
    trace.net_trace.tls_tunnels.push(proxy);
    trace.http_requests[0].proxy_tls_tunnel = TraceId::new("tls-proxy");
    let trees = request_trees(&trace);
    let root = &trees[0];
    assert_eq!(
        names(root),
        [
            "blocked",
            "dns",
            "connect",
            "proxy-tls",
            "tls",
            "send",
            "wait",
            "transfer",
            "GET"
        ]
    );
    let proxy = child(root, "proxy-tls");
    assert_eq!(ms(proxy), (20, 24));
    assert_eq!(proxy.attr("tls.server.name"), Some(&s("proxy.test")));
    let tls = child(root, "tls");
    assert_eq!(ms(tls), (24, 30));
    assert_eq!(tls.attr("tls.server.name"), Some(&s("example.test")));
}

#[test]
fn a_connection_without_requests_is_a_tree_of_its_own() {
    let mut trace = one_request();
    trace.http_requests = Vec::new().into();
    let trees = request_trees(&trace);
    let names: Vec<_> = trees.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["TCP example.test:443", "dns"]);
    let tcp = &trees[0];
    assert!(tcp.client);
    assert_eq!(self::names(tcp), ["connect", "tls"]);
    assert_eq!(ms(tcp), (10, 200), "open until the trace's end");
    assert_eq!(ms(&trees[1]), (2, 8), "resolver dial to the last reply");
}

#[test]
fn a_connection_without_requests_keeps_precise_times() {
    let mut trace = precise_trace();
    trace.http_requests = Vec::new().into();
    let trees = request_trees(&trace);
    let begin = SystemTime::from(time::macros::datetime!(2026-01-02 03:04:05.000000006 UTC));
    assert_eq!(us_since(begin, &trees[0].children[0]), (10_050, 20_007));
    assert_eq!(us_since(begin, &trees[0].children[1]), (20_010, 30_200));
}

#[test]
fn server_of_reads_hosts_ports_and_ipv6() {
    assert_eq!(server_of("http://a.test/x"), Some(("a.test", 80)));
    assert_eq!(
        server_of("https://u:p@a.test:8443?q"),
        Some(("a.test", 8443))
    );
    assert_eq!(server_of("http://[::1]:8080/"), Some(("::1", 8080)));
    assert_eq!(server_of("https://[::1]/"), Some(("::1", 443)));
    assert_eq!(server_of("nonsense"), None);
}

#[test]
fn a_connection_and_a_resolution_no_request_used_are_trees_of_their_own() {
    let mut trace = one_request();
    // Every record of the fixture serves a request: no tree of its own.
    assert_eq!(request_trees(&trace).len(), 2);
    trace.http_requests = Default::default();
    let trees = request_trees(&trace);
    let roots: Vec<&str> = trees.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(roots, ["TCP example.test:443", "dns"]);
    let conn = &trees[0];
    assert!(conn.client);
    assert_eq!(names(conn), ["connect", "tls"]);
    assert_eq!(conn.attr("nettrace.conn.trace_id"), Some(&s("tcp-1")));
    assert_eq!(ms(conn), (10, 200), "handshake to the trace's end");
    let connect = child(conn, "connect");
    assert_eq!(ms(connect), (10, 20));
    assert!(
        connect.attrs.is_empty(),
        "the connection's attributes are the root's"
    );
    assert_eq!(conn.attr("network.peer.address"), Some(&s("192.0.2.1")));
    assert_eq!(
        child(conn, "tls").attr("tls.protocol.version"),
        Some(&s("1.3"))
    );
    let dns = &trees[1];
    assert!(dns.client);
    assert_eq!(ms(dns), (2, 8), "resolver dial to the reply");
    assert_eq!(dns.attr("dns.question.name"), Some(&s("example.test")));
}

/// The fixture's request spans (the usual attributes) fit the one allocation
/// `request_attrs` makes for them (glibc's per-thread cache serves up to 1,032 bytes).
#[test]
fn the_request_attributes_fit_a_small_allocation() {
    assert_eq!(size_of::<super::Attr>(), 48);
    let trace = one_request();
    let trees = request_trees(&trace);
    for tree in &trees {
        assert!(tree.attrs.len() <= 21, "{}", tree.attrs.len());
        assert!(tree.attrs.capacity() * size_of::<super::Attr>() <= 1_032);
    }
}
