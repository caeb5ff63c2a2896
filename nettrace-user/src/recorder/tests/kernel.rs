//! What the kernel reports: facts joined by socket cookie, conntrack entries, packets.
use super::*;

#[test]
fn kernel_events_join_connections_by_socket_cookie() {
    let mut recorder = recorder(false);
    resolved_dial(&mut recorder);
    let quiet = Arc::new(SocketRecord::new(false));
    recorder.handle(opened(
        "tcp-q",
        Transport::Tcp,
        "dial-1",
        SERVER,
        Some(15),
        &quiet,
        11,
    ));
    let before = recorder.snapshot_ms("kernel", at(60));

    // An unknown socket's events change nothing.
    let ends = (addr(LOCAL_TCP), addr(SERVER));
    recorder.handle(kernel(tcp_state(
        99,
        12,
        KernelTcpState::Close,
        KernelTcpState::SynSent,
    )));
    recorder.handle(kernel(sock_msg(99, 13, Direction::Sent, 10)));
    recorder.handle(kernel_ops(sock_ops(
        99,
        14,
        SockOp::Retransmit,
        KernelTcpState::SynSent,
        ends,
    )));
    assert_eq!(recorder.snapshot_ms("kernel", at(60)), before);

    // The cgroup programs' events are not facts of a connection.
    recorder.handle(kernel(KernelEvent::SocketCreated(SocketCreated {
        cookie: SocketCookie(15),
        client: CLIENT,
        time: kt(11),
        protocol: SocketProtocol::Tcp,
        ipv6: false,
        process: KernelProcess {
            pid: 42,
            comm: "curl".to_owned(),
        },
    })));
    recorder.handle(kernel(KernelEvent::Connect(ConnectCall {
        cookie: SocketCookie(15),
        client: CLIENT,
        time: kt(11),
        protocol: Some(SocketProtocol::Tcp),
        remote: addr(SERVER),
        process: KernelProcess {
            pid: 42,
            comm: "curl".to_owned(),
        },
    })));
    assert_eq!(recorder.snapshot_ms("kernel", at(60)), before);

    // tcp-1 (cookie 12): its handshake, a retransmitted SYN, an RTO, the counters of the
    // latest callback, calls that moved bytes, would block and failed, and a reset.
    let events = [
        kernel(tcp_state(
            12,
            10,
            KernelTcpState::Close,
            KernelTcpState::SynSent,
        )),
        kernel_ops(sock_ops(
            12,
            15,
            SockOp::Retransmit,
            KernelTcpState::SynSent,
            ends,
        )),
        kernel(tcp_state(
            12,
            25,
            KernelTcpState::SynSent,
            KernelTcpState::Established,
        )),
        kernel(sock_msg(12, 30, Direction::Sent, 120)),
        kernel(sock_msg(12, 31, Direction::Received, -libc::EAGAIN)),
        kernel(sock_msg(12, 32, Direction::Received, 2000)),
        kernel_ops(sock_ops(
            12,
            33,
            SockOp::Retransmit,
            KernelTcpState::Established,
            ends,
        )),
        kernel_ops(sock_ops(
            12,
            34,
            SockOp::Rto,
            KernelTcpState::Established,
            ends,
        )),
        kernel_ops(SockOpsRecord {
            counters: TcpCounters {
                srtt_us: 1500,
                min_rtt_us: Some(900),
                // Counts retransmissions from before the callbacks were seen too.
                total_retrans: 3,
                bytes_acked: 121,
                bytes_received: 2001,
                segs_out: 5,
                segs_in: 6,
                snd_cwnd: 10,
            },
            ..sock_ops(
                12,
                35,
                SockOp::StateChange,
                KernelTcpState::Established,
                ends,
            )
        }),
        kernel(KernelEvent::TcpReset(TcpResetRecord {
            cookie: SocketCookie(12),
            client: CLIENT,
            time: kt(40),
            direction: Direction::Received,
        })),
        kernel(sock_msg(12, 41, Direction::Received, -libc::ECONNRESET)),
        kernel(tcp_state(
            12,
            41,
            KernelTcpState::Established,
            KernelTcpState::Close,
        )),
        // udp-1 (cookie 11): calls only.
        kernel(sock_msg(11, 2, Direction::Sent, 29)),
        kernel(sock_msg(11, 7, Direction::Received, 45)),
    ];
    for event in events {
        recorder.handle(event);
    }
    let trace = recorder.snapshot_ms("kernel", at(60));
    let state = |ms, from: &str, to: &str| KernelStateChange {
        at: rel(ms),
        from: from.to_owned(),
        to: to.to_owned(),
    };
    assert_eq!(
        trace.net_trace.tcp_conns[0].kernel,
        Some(KernelTcpFacts {
            states: vec![
                state(10, "close", "syn-sent"),
                state(25, "syn-sent", "established"),
                state(41, "established", "close"),
            ],
            syn_retransmits: 1,
            retransmits: 3,
            rto_events: 1,
            srtt_us: 1500,
            min_rtt_us: 900,
            bytes_acked: 121,
            bytes_received: 2001,
            segs_out: 5,
            segs_in: 6,
            rst_sent: false,
            rst_received: true,
            calls: KernelSocketCalls {
                send_calls: 1,
                recv_calls: 3,
                would_block: 1,
                send_errors: 0,
                recv_errors: 1,
                call_bytes_sent: 120,
                call_bytes_received: 2000,
                last_error: "Connection reset by peer (os error 104)".to_owned(),
            },
        })
    );
    assert_eq!(trace.net_trace.tcp_conns[1].trace_id, id("tcp-q"));
    assert_eq!(trace.net_trace.tcp_conns[1].kernel, None);
    assert_eq!(
        trace.net_trace.udp_conns[0].kernel,
        Some(KernelUdpFacts {
            calls: KernelSocketCalls {
                send_calls: 1,
                recv_calls: 1,
                call_bytes_sent: 29,
                call_bytes_received: 45,
                ..KernelSocketCalls::default()
            },
        })
    );
    // Kernel data is an extension: under its own key, the calls inline.
    let json = serde_json::to_value(&trace).expect("json");
    let facts = &json["tcpConns"][0]["kernel"];
    assert_eq!(
        facts["states"][1],
        json!({"at": "+25ms", "from": "syn-sent", "to": "established"})
    );
    assert_eq!(facts["recvCalls"], 3);
    assert_eq!(
        facts["lastError"],
        "Connection reset by peer (os error 104)"
    );
    assert!(json["tcpConns"][1].get("kernel").is_none());
    assert_eq!(
        json["udpConns"][0]["kernel"],
        json!({"sendCalls": 1, "recvCalls": 1, "wouldBlock": 0, "sendErrors": 0,
            "recvErrors": 0, "callBytesSent": 29, "callBytesReceived": 45})
    );
    // The recorder leaves the kernel data status to the tracer, which knows the losses.
    assert_eq!(trace.net_trace.kernel_data, None);
}

/// A recorder whose dial `dial-1` opened the TCP connection `tcp-1`, socket cookie 12.
fn recorder_with_tcp_12() -> Recorder {
    let mut recorder = recorder(false);
    resolved_dial(&mut recorder);
    let record = Arc::new(SocketRecord::new(false));
    recorder.handle(opened(
        "tcp-1",
        Transport::Tcp,
        "dial-1",
        SERVER,
        Some(12),
        &record,
        11,
    ));
    recorder
}

/// A socket that counts its calls in the kernel sends totals (with its sock_ops records, in
/// a record of their own after a failure, or read from its entry), in any order and each
/// copied while calls went on: every count is the largest seen, and its errno becomes the
/// error's text.
#[test]
fn call_totals_counted_in_the_kernel_keep_the_newest() {
    let mut recorder = recorder_with_tcp_12();
    let ends = (addr(LOCAL_TCP), addr(SERVER));
    let totals = |send_calls, recv_calls, bytes_received, last_errno| SocketCalls {
        send_calls,
        recv_calls,
        recv_errors: u64::from(last_errno != 0),
        last_errno,
        bytes_sent: 100 * send_calls,
        bytes_received,
        ..SocketCalls::default()
    };
    let calls_record = |ms, calls| {
        kernel(KernelEvent::SockCalls(Box::new(SockCallsRecord::totals(
            SocketCookie(12),
            CLIENT,
            kt(ms),
            calls,
        ))))
    };
    let events = [
        kernel_ops(sock_ops(
            12,
            20,
            SockOp::ActiveEstablished,
            KernelTcpState::Established,
            ends,
        )),
        // Read from the entry after a failed read while a call went on (its count copied,
        // not yet its bytes), read again, then the failure's own record and an older
        // sock_ops record arriving late.
        calls_record(40, totals(2, 4, 4000, libc::ECONNRESET as u64)),
        calls_record(45, totals(2, 4, 5000, libc::ECONNRESET as u64)),
        // As many errors, another errno: the first one's stays (no newer error came).
        calls_record(46, totals(2, 4, 5000, libc::EPIPE as u64)),
        calls_record(35, totals(2, 3, 5000, libc::ECONNRESET as u64)),
        kernel_ops(SockOpsRecord {
            calls: totals(2, 2, 5000, 0),
            ..sock_ops(
                12,
                30,
                SockOp::StateChange,
                KernelTcpState::Established,
                ends,
            )
        }),
    ];
    for event in events {
        recorder.handle(event);
    }
    let trace = recorder.snapshot_ms("kernel", at(60));
    let facts = trace.net_trace.tcp_conns[0].kernel.as_ref().expect("facts");
    assert_eq!(
        facts.calls,
        KernelSocketCalls {
            send_calls: 2,
            recv_calls: 4,
            recv_errors: 1,
            call_bytes_sent: 200,
            call_bytes_received: 5000,
            last_error: "Connection reset by peer (os error 104)".to_owned(),
            ..KernelSocketCalls::default()
        }
    );
}

/// A library socket's transitions and handshake counters wait in its entry until the record
/// of its CLOSE: each snapshot reads them there, the record carries them again, and a read
/// may come after it. Every transition is recorded once, in order, and the newest counters
/// are shown.
#[test]
fn transitions_read_from_the_entry_and_carried_again_are_recorded_once() {
    use KernelTcpState::*;
    let mut recorder = recorder_with_tcp_12();
    let held = |ms, old, new| {
        Some(HeldStateChange {
            time: kt(ms),
            old,
            new,
        })
    };
    let handshake = TcpCounters {
        srtt_us: 150,
        snd_cwnd: 10,
        total_retrans: 0,
        segs_in: 1,
        segs_out: 1,
        min_rtt_us: Some(120),
        bytes_received: 0,
        bytes_acked: 1,
    };
    let read = |ms| {
        let mut read =
            SockCallsRecord::totals(SocketCookie(12), CLIENT, kt(ms), SocketCalls::default());
        read.held[0] = held(11, Close, SynSent);
        read.held[1] = held(12, SynSent, Established);
        read.established = Some((kt(13), handshake));
        KernelEvent::SockCalls(Box::new(read))
    };
    let mut close = SockOpsRecord {
        counters: TcpCounters {
            srtt_us: 90,
            segs_out: 6,
            ..TcpCounters::default()
        },
        transition: Some((FinWait2, Close)),
        ..sock_ops(
            12,
            50,
            SockOp::StateChange,
            Close,
            (addr(LOCAL_TCP), addr(SERVER)),
        )
    };
    close.held[..4].copy_from_slice(&[
        held(11, Close, SynSent),
        held(12, SynSent, Established),
        held(40, Established, FinWait1),
        held(45, FinWait1, FinWait2),
    ]);
    let record_all = |recorder: &mut Recorder, event: KernelEvent| {
        for event in event.with_implied() {
            recorder.handle(kernel(event));
        }
    };
    let states = |recorder: &mut Recorder| {
        let trace = recorder.snapshot_ms("kernel", at(60));
        let facts = trace.net_trace.tcp_conns[0].kernel.clone().expect("facts");
        let states: Vec<_> = facts
            .states
            .iter()
            .map(|s| format!("{}>{}", s.from, s.to))
            .collect();
        (states, facts.srtt_us, facts.segs_out)
    };
    record_all(&mut recorder, read(20));
    record_all(&mut recorder, read(30));
    assert_eq!(
        states(&mut recorder),
        (
            vec![
                "close>syn-sent".to_owned(),
                "syn-sent>established".to_owned()
            ],
            150,
            1
        )
    );
    record_all(&mut recorder, KernelEvent::SockOps(Box::new(close)));
    // A read taken before the record, delivered after it (the hub reads, then drains).
    record_all(&mut recorder, read(48));
    let expected = [
        "close>syn-sent",
        "syn-sent>established",
        "established>fin-wait1",
        "fin-wait1>fin-wait2",
        "fin-wait2>close",
    ];
    assert_eq!(
        states(&mut recorder),
        (expected.map(str::to_owned).to_vec(), 90, 6)
    );
}

#[test]
fn conntrack_samples_keep_the_destroyed_entry() {
    let mut recorder = recorder(false);
    resolved_dial(&mut recorder);
    let conntrack = |recorder: &mut Recorder| {
        recorder.snapshot_ms("ct", at(60)).net_trace.tcp_conns[0]
            .conntrack
            .clone()
    };
    assert_eq!(conntrack(&mut recorder), None);
    recorder.handle(Event::Conntrack {
        conn: id("tcp-1"),
        sample: ct_sample(26, TcpState::Established, 3, false),
    });
    assert_eq!(
        conntrack(&mut recorder),
        Some(ConntrackEntry {
            captured_at: rel(26),
            ..ct_sample(26, TcpState::Established, 3, false).entry
        })
    );
    // The destroy event's entry is final: a lookup reported after it does not replace it.
    let destroyed = ct_sample(45, TcpState::TimeWait, 10, true);
    recorder.handle(Event::Conntrack {
        conn: id("tcp-1"),
        sample: destroyed.clone(),
    });
    recorder.handle(Event::Conntrack {
        conn: id("tcp-1"),
        sample: ct_sample(44, TcpState::FinWait, 9, false),
    });
    // Unknown connections are ignored.
    recorder.handle(Event::Conntrack {
        conn: id("tcp-404"),
        sample: ct_sample(44, TcpState::Established, 1, false),
    });
    let trace = recorder.snapshot_ms("ct", at(60));
    assert_eq!(
        trace.net_trace.tcp_conns[0].conntrack,
        Some(ConntrackEntry {
            captured_at: rel(45),
            ..destroyed.entry
        })
    );
    assert_eq!(trace.net_trace.tcp_conns.len(), 1);
    assert_eq!(
        serde_json::to_value(&trace).expect("json")["tcpConns"][0]["conntrack"],
        json!({
            "capturedAt": "+45ms",
            "status": "seen-reply|assured|confirmed|src-nat|src-nat-done",
            "tcpState": "time-wait",
            "mark": 7,
            "addrOrig": {"srcIP": "192.168.1.2", "srcPort": 40000, "dstIP": "93.184.215.14",
                "dstPort": 443},
            "addrReply": {"srcIP": "93.184.215.14", "srcPort": 443, "dstIP": "203.0.113.7",
                "dstPort": 61000},
            "packetsSent": 10,
            "packetsRecv": 11,
            "bytesSent": 1000,
            "bytesRecv": 10000,
        })
    );
}

fn packet(cookie: u64, ms: u64, ifindex: u32, direction: Direction, len: usize) -> Event {
    Event::Kernel(KernelEvent::Packet(PacketRecord {
        cookie: SocketCookie(cookie),
        client: CLIENT,
        time: kt(ms),
        ifindex,
        direction,
        packet_len: len as u32 + 4,
        data: bytes::Bytes::from(vec![ms as u8; len]),
    }))
}

fn capture_store(total_size_limit: usize) -> CaptureStore {
    CaptureStore::new(
        PacketCaptureOptions {
            interfaces: vec!["eth0".to_owned()],
            snaplen: 64,
            total_size_limit,
            ..PacketCaptureOptions::default()
        },
        vec![CaptureInterfaceInfo {
            name: "eth0".to_owned(),
            index: 2,
            link_kind: LinkKind::Ethernet,
            loopback: false,
        }],
    )
}

#[test]
fn captured_packets_name_their_connection_and_request_and_count_losses() {
    let mut recorder = recorder(false);
    // Without a capture store, packets are dropped and there are no captures.
    recorder.handle(packet(12, 1, 2, Direction::Sent, 60));
    assert!(recorder.captures(3).is_empty());

    recorder.enable_capture(capture_store(1 << 20));
    resolved_dial(&mut recorder);
    let body = Arc::new(BodyCounters::default());
    recorder.handle(request_started("req-1", 26, "https://example.test/", &body));
    recorder.handle(response(
        "req-1",
        40,
        Some(conn_info("tcp-1", None, None)),
        200,
    ));
    recorder.handle(request_started(
        "req-2",
        50,
        "https://example.test/2",
        &body,
    ));
    recorder.handle(response(
        "req-2",
        60,
        Some(conn_info("tcp-1", None, None)),
        200,
    ));
    let events = [
        // The handshake: the request the connection was dialed for.
        packet(12, 10, 2, Direction::Sent, 60),
        // Cut to the snap length.
        packet(12, 30, 2, Direction::Sent, 100),
        packet(12, 55, 2, Direction::Received, 60),
        // ICMP: no socket.
        packet(0, 56, 2, Direction::Received, 40),
        // Another client's flow, on this client's interface.
        packet(99, 57, 2, Direction::Received, 40),
        // Not a captured interface.
        packet(12, 58, 3, Direction::Sent, 60),
    ];
    for event in events {
        recorder.handle(event);
    }
    let captured =
        |ms: u64, len: usize, original: u32, direction, conn: Option<&str>, req: Option<&str>| {
            CapturedPacket {
                timestamp: WALL + time::Duration::milliseconds(ms as i64),
                data: bytes::Bytes::from(vec![ms as u8; len]),
                original_len: original,
                direction,
                conn_id: conn.map(id),
                http_request_id: req.map(id),
            }
        };
    let expected = PacketCapture {
        interface_name: "eth0".to_owned(),
        link_kind: LinkKind::Ethernet,
        snap_len: 64,
        packets: vec![
            captured(10, 60, 64, Egress, Some("tcp-1"), Some("req-1")),
            captured(30, 64, 104, Egress, Some("tcp-1"), Some("req-1")),
            captured(55, 60, 64, Ingress, Some("tcp-1"), Some("req-2")),
            captured(56, 40, 44, Ingress, None, None),
            captured(57, 40, 44, Ingress, None, None),
        ],
        truncated: false,
        lost_packets: 7,
        with_tcp_payload: true,
        tls_key_log: String::new(),
    };
    assert_eq!(recorder.captures(7), std::slice::from_ref(&expected));
    // Taking the captures takes nothing away either.
    assert_eq!(recorder.captures(7), [expected]);
}

#[test]
fn a_full_capture_is_truncated_until_the_trace_is_cleared() {
    let mut recorder = recorder(false);
    recorder.enable_capture(capture_store(150));
    resolved_dial(&mut recorder);
    for ms in [30, 31, 32, 33] {
        recorder.handle(packet(12, ms, 2, Direction::Sent, 60));
    }
    let captures = recorder.captures(0);
    assert_eq!(captures[0].packets.len(), 2);
    assert!(captures[0].truncated);
    assert_eq!(captures[0].lost_packets, 0);

    recorder.clear_at(clock_at(100));
    let captures = recorder.captures(0);
    assert!(captures[0].packets.is_empty());
    assert!(!captures[0].truncated);
    // The open connection's socket is still joined.
    recorder.handle(packet(12, 130, 2, Direction::Sent, 60));
    let captures = recorder.captures(0);
    assert_eq!(captures[0].packets.len(), 1);
    assert_eq!(captures[0].packets[0].conn_id, Some(id("tcp-1")));
    assert_eq!(
        captures[0].packets[0].timestamp,
        WALL + time::Duration::milliseconds(130)
    );
}

#[test]
fn a_reset_alone_is_a_kernel_fact() {
    // When the state changes were lost (a full ring buffer), the reset still tells.
    let mut recorder = recorder(false);
    resolved_dial(&mut recorder);
    recorder.handle(kernel(KernelEvent::TcpReset(TcpResetRecord {
        cookie: SocketCookie(12),
        client: CLIENT,
        time: kt(40),
        direction: Direction::Sent,
    })));
    let trace = recorder.snapshot_ms("reset", at(50));
    assert_eq!(
        trace.net_trace.tcp_conns[0].kernel,
        Some(KernelTcpFacts {
            rst_sent: true,
            ..KernelTcpFacts::default()
        })
    );
}
