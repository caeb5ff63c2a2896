//! Dials, TCP and UDP connections and their socket operations.
use super::*;

#[test]
fn an_empty_trace_begins_at_the_injected_clock() {
    let mut recorder = recorder(false);
    let trace = recorder.snapshot_ms("nothing", at(1500));
    assert_eq!(trace, empty_trace("nothing", 1500));
    assert_eq!(
        serde_json::to_value(&trace).expect("json"),
        json!({
            "description": "nothing",
            "traceBeginAt": "2026-01-02T03:04:05.000000006Z",
            "traceEndAt": "+1500ms",
            "dials": null,
            "tcpConns": null,
            "udpConns": null,
            "dnsQueries": null,
            "tlsTunnels": null,
            "httpRequests": null,
        })
    );
}

#[test]
fn a_dial_links_its_resolver_dials_and_connections() {
    let mut recorder = recorder(false);
    resolved_dial(&mut recorder);
    let trace = recorder.snapshot_ms("dial", at(50));
    let expected = HttpTrace {
        net_trace: NetTrace {
            dials: vec![resolved_dial_trace()].into(),
            tcp_conns: vec![TcpConnTrace {
                trace_id: id("tcp-1"),
                from_dial: id("dial-1"),
                from_resolver: false,
                handshake_begin_at: rel(10),
                handshake_end_at: rel(25),
                connected: true,
                conn_close_at: Timestamp::Undefined,
                addr_tuple: AddrTuple::new(addr(LOCAL_TCP), addr(SERVER)),
                reused: false,
                total_sent_bytes: 0,
                total_recv_bytes: 0,
                conntrack: None,
                socket_trace: None,
                kernel: None,
                process: None,
                ..Default::default()
            }]
            .into(),
            udp_conns: vec![UdpConnTrace {
                trace_id: id("udp-1"),
                from_dial: id("dial-1"),
                from_resolver: true,
                socket_create_at: rel(1),
                conn_close_at: rel(9),
                addr_tuple: AddrTuple::new(addr(LOCAL_UDP), addr(NAMESERVER)),
                total_sent_bytes: 0,
                total_recv_bytes: 0,
                conntrack: None,
                socket_trace: None,
                kernel: None,
                process: None,
            }]
            .into(),
            ..empty_trace("dial", 50).net_trace
        },
        ..HttpTrace::default()
    };
    assert_eq!(trace, expected);
    let json = serde_json::to_value(&trace).expect("json");
    assert_eq!(
        json["dials"][0],
        json!({
            "traceID": "dial-1",
            "dialBeginAt": "+0ms",
            "dialEndAt": "+25ms",
            "ctxCloseAt": "+30ms",
            "dstAddress": "example.test:443",
            "resolverDials": [
                {"dialBeginAt": "+1ms", "dialEndAt": "+2ms", "nameserver": "10.0.0.53:53",
                    "establishedConn": "udp-1"},
                {"dialBeginAt": "+3ms", "dialEndAt": "+4ms",
                    "dialErr": "connect: network is unreachable",
                    "nameserver": "[2001:db8::53]:53"},
            ],
            "skippedNameservers": ["10.0.0.1:53", "10.0.0.2:53"],
            "sourceIP": "192.168.1.2",
            "establishedConn": "tcp-1",
        })
    );
    assert_eq!(json["udpConns"][0]["fromResolver"], true);
    assert!(json["tcpConns"][0].get("fromResolver").is_none());
}

#[test]
fn a_failed_dial_keeps_its_error_and_its_attempt_but_the_request_names_no_conn() {
    let mut recorder = recorder(false);
    let body = Arc::new(BodyCounters::default());
    recorder.handle(request_started("req-2", 0, "http://example.test/", &body));
    recorder.handle(dial_started("dial-2", 0, "example.test:80", Some("req-2")));
    let record = Arc::new(SocketRecord::new(true));
    recorder.handle(opened(
        "tcp-2",
        Transport::Tcp,
        "dial-2",
        "93.184.215.14:80",
        None,
        &record,
        1,
    ));
    recorder.handle(Event::ConnFailed {
        conn: id("tcp-2"),
        at: at(8),
    });
    // A second failure report does not move the handshake's end.
    recorder.handle(Event::ConnFailed {
        conn: id("tcp-2"),
        at: at(9),
    });
    let refused = "dial tcp 93.184.215.14:80: connect: connection refused";
    recorder.handle(dial_ended("dial-2", 8, Err(refused)));
    recorder.handle(Event::HttpFailed {
        req: id("req-2"),
        error: "error sending request: connection refused".to_owned(),
    });
    // The first error is the request's.
    recorder.handle(Event::HttpFailed {
        req: id("req-2"),
        error: "a later error".to_owned(),
    });
    // A dial whose every nameserver was skipped.
    recorder.handle(dial_started("dial-3", 20, "example.test:80", None));
    recorder.handle(Event::NameserverSkipped {
        dial: id("dial-3"),
        nameserver: NAMESERVER.to_owned(),
        reason: "skipping any configured nameserver".to_owned(),
    });
    recorder.handle(dial_ended(
        "dial-3",
        21,
        Err("all nameservers skipped: skipping any configured nameserver"),
    ));

    let trace = recorder.snapshot_ms("failed", at(30));
    let expected = HttpTrace {
        net_trace: NetTrace {
            dials: vec![
                DialTrace {
                    trace_id: id("dial-2"),
                    dial_begin_at: rel(0),
                    dial_end_at: rel(8),
                    dial_err: refused.to_owned(),
                    dst_address: "example.test:80".to_owned(),
                    ..DialTrace::default()
                },
                DialTrace {
                    trace_id: id("dial-3"),
                    dial_begin_at: rel(20),
                    dial_end_at: rel(21),
                    dial_err: "all nameservers skipped: skipping any configured nameserver"
                        .to_owned(),
                    dst_address: "example.test:80".to_owned(),
                    skipped_nameservers: vec![NAMESERVER.to_owned()],
                    ..DialTrace::default()
                },
            ]
            .into(),
            tcp_conns: vec![TcpConnTrace {
                trace_id: id("tcp-2"),
                from_dial: id("dial-2"),
                handshake_begin_at: rel(1),
                handshake_end_at: rel(8),
                connected: false,
                addr_tuple: AddrTuple {
                    src_ip: None,
                    src_port: 0,
                    dst_ip: Some(addr("93.184.215.14:80").ip()),
                    dst_port: 80,
                },
                socket_trace: Some(SocketTrace::default()),
                ..TcpConnTrace::default()
            }]
            .into(),
            ..empty_trace("failed", 30).net_trace
        },
        http_requests: vec![HttpReqTrace {
            trace_id: id("req-2"),
            // Its dial connected nothing: no connection was used (as Go); the failed
            // attempt is still listed under `tcpConns`.
            tcp_conn: TraceId::default(),
            proto_major: 1,
            proto_minor: 1,
            req_sent_at: rel(0),
            req_method: "GET".to_owned(),
            req_url: "http://example.test/".to_owned(),
            req_error: "error sending request: connection refused".to_owned(),
            resp_recv_at: Timestamp::Undefined,
            ..HttpReqTrace::default()
        }]
        .into(),
    };
    assert_eq!(trace, expected);
    let json = serde_json::to_value(&trace).expect("json");
    assert!(json["dials"][0].get("establishedConn").is_none());
    assert_eq!(json["tcpConns"][0]["connected"], false);
    assert_eq!(json["tcpConns"][0]["addrTuple"]["srcIP"], "");
    assert_eq!(json["httpRequests"][0]["respRecvAt"], "undefined");
}

#[test]
fn a_tcp_connection_logs_its_socket_operations_in_call_order() {
    let mut recorder = recorder(false);
    let record = Arc::new(SocketRecord::new(true));
    recorder.handle(dial_started("dial-1", 0, "example.test:443", None));
    recorder.handle(opened(
        "tcp-1",
        Transport::Tcp,
        "dial-1",
        SERVER,
        Some(12),
        &record,
        10,
    ));
    recorder.handle(established("tcp-1", 20, LOCAL_TCP));
    // The hot path: the socket wrapper writes the shared record, the recorder reads it when
    // it takes a snapshot. A read polled first completes after a write called later.
    let reset = io::Error::from_raw_os_error(libc::ECONNRESET);
    record.add_sent(120);
    record.push_op(RawSocketOp::new(
        SocketOpType::Write,
        at(31),
        at(31) + std::time::Duration::from_micros(500),
        Ok(120),
    ));
    record.add_received(2000);
    record.push_op(RawSocketOp::new(
        SocketOpType::Read,
        at(30),
        at(42),
        Ok(2000),
    ));
    record.push_op(RawSocketOp::new(
        SocketOpType::Read,
        at(43),
        at(44),
        Err(&reset),
    ));
    recorder.handle(closed("tcp-1", 50));
    // A close reported twice keeps the first.
    recorder.handle(closed("tcp-1", 55));

    let trace = recorder.snapshot_ms("ops", at(60));
    let conn = &trace.net_trace.tcp_conns[0];
    assert_eq!(
        *conn,
        TcpConnTrace {
            trace_id: id("tcp-1"),
            from_dial: id("dial-1"),
            handshake_begin_at: rel(10),
            handshake_end_at: rel(20),
            connected: true,
            conn_close_at: rel(50),
            addr_tuple: AddrTuple::new(addr(LOCAL_TCP), addr(SERVER)),
            total_sent_bytes: 120,
            total_recv_bytes: 2000,
            socket_trace: Some(SocketTrace {
                dropped_ops: 0,
                socket_ops: vec![
                    SocketOp {
                        op_type: SocketOpType::Read,
                        call_at: rel(30),
                        return_at: rel(42),
                        data_len: 2000,
                        ..SocketOp::default()
                    },
                    SocketOp {
                        op_type: SocketOpType::Write,
                        call_at: rel(31),
                        return_at: rel(31),
                        data_len: 120,
                        ..SocketOp::default()
                    },
                    SocketOp {
                        op_type: SocketOpType::Read,
                        call_at: rel(43),
                        return_at: rel(44),
                        return_err: "Connection reset by peer (os error 104)".to_owned(),
                        data_len: 0,
                        ..SocketOp::default()
                    },
                ],
            }),
            ..TcpConnTrace::default()
        }
    );
    assert_eq!(
        serde_json::to_value(conn.socket_trace.as_ref()).expect("json"),
        json!({"socketOps": [
            {"type": "read", "callAt": "+30ms", "returnAt": "+42ms", "dataLen": 2000},
            {"type": "write", "callAt": "+31ms", "returnAt": "+31ms", "dataLen": 120},
            {"type": "read", "callAt": "+43ms", "returnAt": "+44ms",
                "returnErr": "Connection reset by peer (os error 104)", "dataLen": 0},
        ]})
    );
}

#[test]
fn connection_endpoints_are_known_once_established() {
    let mut recorder = recorder(false);
    let record = Arc::new(SocketRecord::new(false));
    recorder.handle(opened(
        "tcp-1",
        Transport::Tcp,
        "dial-1",
        SERVER,
        Some(12),
        &record,
        1,
    ));
    recorder.handle(opened(
        "tcp-n",
        Transport::Tcp,
        "dial-1",
        SERVER,
        None,
        &record,
        1,
    ));
    assert!(recorder.conn_endpoints(&id("tcp-1")).is_none());
    recorder.handle(established("tcp-1", 2, LOCAL_TCP));
    recorder.handle(established("tcp-n", 2, LOCAL_TCP));
    let endpoints = recorder.conn_endpoints(&id("tcp-1")).expect("endpoints");
    assert_eq!(
        (
            endpoints.cookie,
            endpoints.transport,
            endpoints.local,
            endpoints.remote
        ),
        (
            SocketCookie(12),
            Transport::Tcp,
            addr(LOCAL_TCP),
            addr(SERVER)
        )
    );
    // Without a cookie there is nothing to join on.
    assert!(recorder.conn_endpoints(&id("tcp-n")).is_none());
    assert!(recorder.conn_endpoints(&id("tcp-404")).is_none());
}

#[test]
fn a_connection_names_its_process_only_when_told() {
    let mut recorder = recorder(false);
    resolved_dial(&mut recorder);
    recorder.handle(Event::ConnProcess {
        conn: id("tcp-1"),
        process: kernel_process(4242, "curl"),
    });
    // Of no known connection: ignored.
    recorder.handle(Event::ConnProcess {
        conn: id("tcp-9"),
        process: kernel_process(1, "init"),
    });
    let trace = recorder.snapshot_ms("dial", at(50));
    let tcp = &trace.net_trace.tcp_conns;
    assert_eq!(tcp.len(), 1);
    assert_eq!(tcp[0].process, Some(conn_process(4242, "curl")));
    assert_eq!(trace.net_trace.udp_conns[0].process, None);
    let json = serde_json::to_value(&trace).expect("json");
    assert_eq!(
        json["tcpConns"][0]["process"],
        json!({"pid": 4242, "comm": "curl"})
    );
    assert!(json["udpConns"][0].get("process").is_none());
}
