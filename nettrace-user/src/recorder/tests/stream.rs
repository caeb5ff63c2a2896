//! Streaming: `take_request` returns a completed request's records as a trace of its own
//! and forgets them, keeping the open connections (reused) for the next request.
use super::*;

#[test]
fn a_completed_request_is_taken_out_with_its_dial_dns_and_tunnel() {
    let mut recorder = recorder(true);
    let tcp = Arc::new(SocketRecord::new(true));
    resolved_tls_dial(&mut recorder, &tcp);
    let body = Arc::new(BodyCounters::default());
    exchange(&mut recorder, "req-1", 0, &body);
    tcp.push_op(RawSocketOp::new(
        SocketOpType::Write,
        at(31),
        at(31),
        Ok(100),
    ));
    // Another request, still in flight, keeps its records.
    recorder.handle(request_started("req-9", 35, "http://other.test/", &body));

    let trace = recorder
        .take_request(&[id("req-1")], at(40))
        .expect("trace");
    let net = &trace.net_trace;
    assert_eq!(net.description, "GET https://example.test/");
    assert_eq!(net.trace_begin_at, wall(0));
    assert_eq!(net.trace_end_at, rel(40));
    assert_eq!(net.dials.len(), 1);
    let conns: Vec<_> = net.tcp_conns.iter().map(|c| c.trace_id.clone()).collect();
    assert_eq!(conns, [id("tcp-1")]);
    assert_eq!(net.udp_conns.len(), 1);
    assert_eq!(net.dns_queries.len(), 1);
    assert_eq!(net.tls_tunnels.len(), 1);
    assert_eq!(trace.http_requests.len(), 1);
    assert_eq!(trace.http_requests[0].tcp_conn, id("tcp-1"));
    assert_eq!(trace.http_requests[0].tls_tunnel, id("tls-1"));
    let ops = net.tcp_conns[0].socket_trace.as_ref().expect("ops");
    assert_eq!(ops.socket_ops.len(), 1);

    // What is left: the open connection (reused, no operations) and the other request.
    let left = recorder.snapshot("left", at(41));
    assert!(left.net_trace.dials.is_empty());
    assert!(
        left.net_trace.udp_conns.is_empty(),
        "the closed resolver socket went"
    );
    assert!(left.net_trace.dns_queries.is_empty());
    assert!(left.net_trace.tls_tunnels.is_empty());
    let reqs: Vec<_> = left
        .http_requests
        .iter()
        .map(|r| r.trace_id.clone())
        .collect();
    assert_eq!(reqs, [id("req-9")]);
    let tcp_left = &left.net_trace.tcp_conns[0];
    assert!(tcp_left.reused);
    assert_eq!(
        tcp_left.socket_trace.as_ref().map(|s| s.socket_ops.len()),
        Some(0)
    );
}

#[test]
fn the_next_request_on_a_kept_connection_finds_it_reused_with_absolute_earlier_times() {
    let mut recorder = recorder(false);
    let tcp = Arc::new(SocketRecord::new(true));
    resolved_dial_with(&mut recorder, &tcp);
    let body = Arc::new(BodyCounters::default());
    exchange(&mut recorder, "req-1", 0, &body);
    assert!(recorder.take_request(&[id("req-1")], at(40)).is_some());

    exchange(&mut recorder, "req-2", 100, &body);
    tcp.push_op(RawSocketOp::new(
        SocketOpType::Read,
        at(101),
        at(104),
        Ok(10),
    ));
    let trace = recorder
        .take_request(&[id("req-2")], at(110))
        .expect("trace");
    let net = &trace.net_trace;
    assert_eq!(net.trace_begin_at, wall(100));
    assert!(net.dials.is_empty());
    let conn = &net.tcp_conns[0];
    assert!(conn.reused);
    assert_eq!(
        conn.handshake_begin_at,
        wall(10),
        "before the request: absolute"
    );
    let ops = &conn.socket_trace.as_ref().expect("ops").socket_ops;
    assert_eq!(ops.len(), 1);
    assert_eq!(ops[0].call_at, rel(1));
    assert_eq!(trace.http_requests[0].req_sent_at, rel(0));
    assert_eq!(trace.http_requests[0].resp_recv_at, rel(5));

    // A second take finds nothing; the connection closing later is forgotten.
    assert!(recorder.take_request(&[id("req-2")], at(120)).is_none());
    recorder.set_streaming();
    recorder.handle(closed("tcp-1", 130));
    let left = recorder.snapshot("left", at(140));
    assert!(left.net_trace.tcp_conns.is_empty());
}

#[test]
fn a_redirect_chain_is_one_trace_and_drops_go_with_it() {
    let mut recorder = recorder(false);
    recorder.set_limits(crate::limits::TraceLimits {
        http_requests: 2,
        ..crate::limits::TraceLimits::UNLIMITED
    });
    let tcp = Arc::new(SocketRecord::new(false));
    resolved_dial_with(&mut recorder, &tcp);
    let body = Arc::new(BodyCounters::default());
    exchange(&mut recorder, "req-1", 0, &body);
    exchange(&mut recorder, "req-2", 30, &body);
    // Over the limit: counted, and the count goes with the next trace taken.
    exchange(&mut recorder, "req-3", 35, &body);
    let trace = recorder
        .take_request(&[id("req-1"), id("req-2")], at(50))
        .expect("trace");
    let reqs: Vec<_> = trace
        .http_requests
        .iter()
        .map(|r| r.trace_id.clone())
        .collect();
    assert_eq!(reqs, [id("req-1"), id("req-2")]);
    assert_eq!(trace.net_trace.dropped.map(|d| d.http_requests), Some(1));
    assert_eq!(recorder.snapshot("left", at(51)).net_trace.dropped, None);
}
