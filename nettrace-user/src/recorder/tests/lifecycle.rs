//! The trace as a whole: non-destructive snapshots, `clear`, events of unknown records.
use super::*;

/// A trace of every kind of record, with kernel facts and conntrack, for the snapshot and
/// clear tests.
fn busy_recorder() -> (Recorder, Arc<SocketRecord>, ResponseCounter) {
    let mut recorder = recorder(true);
    let ops = Arc::new(SocketRecord::new(true));
    resolved_dial_with(&mut recorder, &ops);
    recorder.handle(Event::DnsQuery {
        conn: id("udp-1"),
        dial: id("dial-1"),
        at: at(2),
        msg: query_msg(7, "example.test."),
    });
    let tcp3 = Arc::new(SocketRecord::new(true));
    recorder.handle(opened(
        "tcp-3",
        Transport::Tcp,
        "dial-1",
        SERVER,
        Some(13),
        &tcp3,
        11,
    ));
    recorder.handle(closed("tcp-3", 12));
    let (body, _, mut body_response) = BodyCounters::with_writers(std::time::Instant::now());
    recorder.handle(request_started("req-1", 0, "https://example.test/", &body));
    recorder.handle(tls_started("tls-1", "tcp-1", 26, false, Some("req-1")));
    recorder.handle(Event::TlsEnded {
        tls: id("tls-1"),
        at: at(28),
        outcome: TlsOutcome {
            negotiated_proto: "http/1.1".to_owned(),
            cipher_suite: 0x1301,
            ..TlsOutcome::default()
        },
    });
    recorder.handle(response(
        "req-1",
        40,
        Some(conn_info("tcp-1", Some("tls-1"), None)),
        200,
    ));
    body_response.add(500);
    ops.add_sent(100);
    ops.push_op(RawSocketOp::new(
        SocketOpType::Write,
        at(29),
        at(29),
        Ok(100),
    ));
    ops.add_received(700);
    ops.push_op(RawSocketOp::new(
        SocketOpType::Read,
        at(30),
        at(39),
        Ok(700),
    ));
    recorder.handle(kernel(tcp_state(
        12,
        10,
        KernelTcpState::Close,
        KernelTcpState::SynSent,
    )));
    recorder.handle(kernel(tcp_state(
        12,
        25,
        KernelTcpState::SynSent,
        KernelTcpState::Established,
    )));
    recorder.handle(Event::Conntrack {
        conn: id("tcp-1"),
        sample: CtSample {
            at: at(26),
            entry: ConntrackEntry {
                status: ConntrackStatus::CONFIRMED | ConntrackStatus::SEEN_REPLY,
                tcp_state: TcpState::Established,
                addr_orig: AddrTuple::new(addr(LOCAL_TCP), addr(SERVER)),
                addr_reply: AddrTuple::new(addr(SERVER), addr(LOCAL_TCP)),
                ..ConntrackEntry::default()
            },
            destroyed: false,
        },
    });
    (recorder, ops, body_response)
}

#[test]
fn a_snapshot_takes_nothing_away() {
    let (mut recorder, _, _) = busy_recorder();
    let first = recorder.snapshot_ms("busy", at(50));
    assert_eq!(first.net_trace.dials.len(), 1);
    assert_eq!(first.net_trace.dns_queries.len(), 1);
    assert_eq!(first.net_trace.tls_tunnels.len(), 1);
    assert_eq!(first.net_trace.tcp_conns.len(), 2);
    assert_eq!(first.http_requests.len(), 1);
    // Go's GetTrace loses dials, DNS queries and TLS tunnels on a second call.
    let second = recorder.snapshot_ms("busy", at(50));
    assert_eq!(second, first);
    assert_eq!(
        serde_json::to_string(&second).expect("json"),
        serde_json::to_string(&first).expect("json")
    );
    // A later snapshot differs in its end only, and the records still take events.
    let later = recorder.snapshot_ms("busy", at(70));
    let mut expected = first.clone();
    expected.net_trace.trace_end_at = rel(70);
    assert_eq!(later, expected);
    recorder.handle(Event::DialContextClosed {
        dial: id("dial-1"),
        at: at(60),
    });
    recorder.handle(closed("tcp-1", 65));
    let after = recorder.snapshot_ms("busy", at(70));
    assert_eq!(after.net_trace.dials[0].ctx_close_at, rel(30));
    assert_eq!(after.net_trace.tcp_conns[0].conn_close_at, rel(65));
}

#[test]
fn clear_carries_open_connections_over_as_reused_with_absolute_times() {
    let (mut recorder, ops, mut body_response) = busy_recorder();
    recorder.clear_at(clock_at(1000));

    let trace = recorder.snapshot_ms("second", at(1000));
    let reused = TcpConnTrace {
        trace_id: id("tcp-1"),
        // Of a dial of the earlier trace, as in Go.
        from_dial: id("dial-1"),
        from_resolver: false,
        handshake_begin_at: wall(10),
        handshake_end_at: wall(25),
        connected: true,
        conn_close_at: Timestamp::Undefined,
        addr_tuple: AddrTuple::new(addr(LOCAL_TCP), addr(SERVER)),
        reused: true,
        // The totals go on; the operations belong to the earlier trace.
        total_sent_bytes: 100,
        total_recv_bytes: 700,
        conntrack: Some(ConntrackEntry {
            captured_at: wall(26),
            status: ConntrackStatus::CONFIRMED | ConntrackStatus::SEEN_REPLY,
            tcp_state: TcpState::Established,
            addr_orig: AddrTuple::new(addr(LOCAL_TCP), addr(SERVER)),
            addr_reply: AddrTuple::new(addr(SERVER), addr(LOCAL_TCP)),
            ..ConntrackEntry::default()
        }),
        socket_trace: Some(SocketTrace::default()),
        kernel: Some(KernelTcpFacts {
            states: vec![
                KernelStateChange {
                    at: wall(10),
                    from: "close".to_owned(),
                    to: "syn-sent".to_owned(),
                },
                KernelStateChange {
                    at: wall(25),
                    from: "syn-sent".to_owned(),
                    to: "established".to_owned(),
                },
            ],
            ..KernelTcpFacts::default()
        }),
        process: None,
        ..Default::default()
    };
    let expected = HttpTrace {
        net_trace: NetTrace {
            trace_begin_at: wall(1000),
            trace_end_at: rel(0),
            // Dials, DNS, TLS and requests are gone, and so are the closed connections.
            tcp_conns: vec![reused.clone()].into(),
            ..empty_trace("second", 0).net_trace
        },
        ..HttpTrace::default()
    };
    assert_eq!(trace, expected);
    let json = serde_json::to_value(&trace).expect("json");
    assert_eq!(json["traceBeginAt"], "2026-01-02T03:04:06.000000006Z");
    assert_eq!(
        json["tcpConns"][0]["handshakeBeginAt"],
        "2026-01-02T03:04:05.010000006Z"
    );
    assert_eq!(json["tcpConns"][0]["reused"], true);
    assert_eq!(
        json["tcpConns"][0]["conntrack"]["capturedAt"],
        "2026-01-02T03:04:05.026000006Z"
    );

    // Late events of records of the earlier trace are ignored; the open connection takes
    // its events, and those of its socket, with relative times.
    recorder.handle(dial_ended("dial-1", 1001, Err("late")));
    recorder.handle(Event::TlsEnded {
        tls: id("tls-1"),
        at: at(1001),
        outcome: TlsOutcome::default(),
    });
    recorder.handle(kernel(tcp_state(
        13,
        1002,
        KernelTcpState::Established,
        KernelTcpState::FinWait1,
    )));
    recorder.handle(kernel(tcp_state(
        12,
        1500,
        KernelTcpState::Established,
        KernelTcpState::FinWait1,
    )));
    ops.add_sent(50);
    ops.push_op(RawSocketOp::new(
        SocketOpType::Write,
        at(1100),
        at(1100),
        Ok(50),
    ));
    body_response.add(1);
    let body2 = Arc::new(BodyCounters::default());
    recorder.handle(request_started(
        "req-2",
        1100,
        "https://example.test/2",
        &body2,
    ));
    // Its tunnel was set up in the earlier trace: the request names none.
    recorder.handle(response(
        "req-2",
        1150,
        Some(conn_info("tcp-1", Some("tls-1"), None)),
        200,
    ));
    recorder.handle(closed("tcp-1", 1500));

    let trace = recorder.snapshot_ms("second", at(1600));
    let mut facts = reused.kernel.clone().expect("kernel facts");
    facts.states.push(KernelStateChange {
        at: rel(500),
        from: "established".to_owned(),
        to: "fin-wait1".to_owned(),
    });
    let conn = TcpConnTrace {
        conn_close_at: rel(500),
        total_sent_bytes: 150,
        socket_trace: Some(SocketTrace {
            dropped_ops: 0,
            socket_ops: vec![SocketOp {
                op_type: SocketOpType::Write,
                call_at: rel(100),
                return_at: rel(100),
                data_len: 50,
                ..SocketOp::default()
            }],
        }),
        kernel: Some(facts),
        ..reused
    };
    assert_eq!(trace.net_trace.tcp_conns.to_vec(), [conn]);
    assert!(trace.net_trace.dials.is_empty());
    assert!(trace.net_trace.tls_tunnels.is_empty());
    assert_eq!(
        trace.http_requests.to_vec(),
        [HttpReqTrace {
            trace_id: id("req-2"),
            tcp_conn: id("tcp-1"),
            tls_tunnel: TraceId::default(),
            proto_major: 1,
            proto_minor: 1,
            req_sent_at: rel(100),
            req_method: "GET".to_owned(),
            req_url: "https://example.test/2".to_owned(),
            resp_recv_at: rel(150),
            resp_status_code: 200,
            ..HttpReqTrace::default()
        }]
    );

    // Closed now: the next trace drops it.
    recorder.clear_at(clock_at(2000));
    let mut empty = empty_trace("third", 0);
    empty.net_trace.trace_begin_at = wall(2000);
    assert_eq!(recorder.snapshot_ms("third", at(2000)), empty);
    // Its socket is no longer joined.
    recorder.handle(kernel(tcp_state(
        12,
        2001,
        KernelTcpState::FinWait1,
        KernelTcpState::Close,
    )));
    assert_eq!(recorder.snapshot_ms("third", at(2000)), empty);
}

#[test]
fn events_of_unknown_records_are_ignored() {
    let mut recorder = Recorder::with_clock(false, clock_at(0), no_ids());
    let body = Arc::new(BodyCounters::default());
    let events = [
        dial_ended("dial-x", 1, Ok("tcp-x")),
        Event::DialContextClosed {
            dial: id("dial-x"),
            at: at(1),
        },
        Event::NameserverSkipped {
            dial: id("dial-x"),
            nameserver: NAMESERVER.to_owned(),
            reason: "test".to_owned(),
        },
        Event::ResolverDialStarted {
            dial: id("dial-x"),
            resolver_dial: 1,
            at: at(1),
            nameserver: NAMESERVER.to_owned(),
        },
        Event::ResolverDialEnded {
            dial: id("dial-x"),
            resolver_dial: 1,
            at: at(1),
            result: Ok(id("udp-x")),
        },
        established("tcp-x", 1, LOCAL_TCP),
        Event::ConnFailed {
            conn: id("tcp-x"),
            at: at(1),
        },
        closed("tcp-x", 1),
        Event::TlsEnded {
            tls: id("tls-x"),
            at: at(1),
            outcome: TlsOutcome::default(),
        },
        response("req-x", 1, Some(conn_info("tcp-x", None, None)), 200),
        Event::HttpFailed {
            req: id("req-x"),
            error: "x".to_owned(),
        },
        Event::Conntrack {
            conn: id("tcp-x"),
            sample: ct_sample(1, TcpState::Established, 1, false),
        },
        kernel(tcp_state(
            12,
            1,
            KernelTcpState::Close,
            KernelTcpState::SynSent,
        )),
    ];
    for event in events {
        recorder.handle(event);
    }
    assert_eq!(recorder.snapshot_ms("none", at(2)), empty_trace("none", 2));

    // A known dial with an unknown resolver dial.
    recorder.handle(dial_started("dial-1", 3, "example.test:443", None));
    recorder.handle(Event::ResolverDialEnded {
        dial: id("dial-1"),
        resolver_dial: 9,
        at: at(4),
        result: Err("x".to_owned()),
    });
    recorder.handle(request_started("req-1", 5, "http://example.test/", &body));
    let trace = recorder.snapshot_ms("none", at(6));
    assert!(trace.net_trace.dials[0].resolver_dials.is_empty());
    assert_eq!(trace.http_requests[0].tcp_conn, TraceId::default());
}

#[test]
fn a_late_dns_message_of_a_connection_dropped_by_clear_is_ignored() {
    // A program traced from the kernel: a copied reply can come from the packet ring after
    // the socket's release came from the event ring, and a clear can fall in between.
    let (mut recorder, _, _) = busy_recorder();
    let open = Arc::new(SocketRecord::new(false));
    recorder.handle(opened(
        "udp-2",
        Transport::Udp,
        "dial-1",
        "10.0.0.54:53",
        Some(14),
        &open,
        45,
    ));
    recorder.clear_at(clock_at(1000));
    // udp-1 was closed before the clear; udp-2 carries over.
    recorder.handle(Event::DnsReply {
        conn: id("udp-1"),
        dial: id("dial-1"),
        at: at(1001),
        msg: reply_msg(7, "example.test.", "93.184.215.14"),
    });
    recorder.handle(Event::DnsQuery {
        conn: id("udp-2"),
        dial: id("dial-1"),
        at: at(1002),
        msg: query_msg(8, "example.test."),
    });
    let trace = recorder.snapshot_ms("late", at(1010));
    assert_eq!(
        trace.net_trace.dns_queries.to_vec(),
        [DnsQueryTrace {
            // dns-1 was udp-1's, in the first trace.
            trace_id: id("dns-2"),
            from_dial: id("dial-1"),
            connection: id("udp-2"),
            dns_query_msgs: vec![DnsQueryMsg {
                sent_at: rel(2),
                ..query_msg(8, "example.test.")
            }],
            dns_reply_msgs: Vec::new(),
        }]
    );
}
