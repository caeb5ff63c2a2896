//! Event-sequence tests of the [`Translator`], without I/O: the kernel events of a program's
//! sockets go in; the recorder events that come out are checked one by one (summarised as
//! text), then folded by a [`Recorder`] whose snapshot is compared with the trace expected.
//! Times and IDs come from [`crate::recorder::fixture`]: the translator names its records
//! `k-1`, `k-2`, ... (a connection, then its dial), the recorder its DNS traces `dns-1`, ...
use std::time::Instant;

use nettrace_common::CGROUP_PACKET_IFINDEX;

use super::{Translator, packet::tests::client_hello};
use crate::{
    SocketCookie,
    event::{
        ConnectCall, Direction, Event, KernelEvent, KernelProcess, KernelTcpState, PacketRecord,
        SockOp, SocketCreated, SocketProtocol, SocketReleased, TcpResetRecord, Transport,
    },
    model::{
        AddrTuple, DialTrace, DnsAnswer, DnsQueryMsg, DnsQueryTrace, DnsQuestion, DnsRCode,
        DnsReplyMsg, DnsResType, HttpTrace, KernelSocketCalls, KernelStateChange, KernelTcpFacts,
        KernelUdpFacts, SocketOp, SocketOpType, SocketTrace, TcpConnTrace, Timestamp,
        TlsTunnelTrace, UdpConnTrace,
    },
    recorder::{Recorder, fixture::*},
};

const TCP: u64 = 7;
const UDP: u64 = 9;
const LOCAL_TCP: &str = "192.168.1.2:40000";
const LOCAL_UDP: &str = "192.168.1.2:50000";
const SERVER: &str = "93.184.215.14:443";
const NAMESERVER: &str = "10.0.0.53:53";

fn process() -> KernelProcess {
    kernel_process(4242, "curl")
}

fn created(cookie: u64, ms: u64, protocol: SocketProtocol) -> KernelEvent {
    KernelEvent::SocketCreated(SocketCreated {
        cookie: SocketCookie(cookie),
        client: CLIENT,
        time: kt(ms),
        protocol,
        ipv6: false,
        process: process(),
    })
}

fn connect(cookie: u64, ms: u64, remote: &str) -> KernelEvent {
    KernelEvent::Connect(ConnectCall {
        cookie: SocketCookie(cookie),
        client: CLIENT,
        time: kt(ms),
        protocol: None,
        remote: addr(remote),
        process: process(),
    })
}

fn released(cookie: u64, ms: u64) -> KernelEvent {
    KernelEvent::SocketReleased(SocketReleased {
        cookie: SocketCookie(cookie),
        client: CLIENT,
        time: kt(ms),
    })
}

fn reset_received(cookie: u64, ms: u64) -> KernelEvent {
    KernelEvent::TcpReset(TcpResetRecord {
        cookie: SocketCookie(cookie),
        client: CLIENT,
        time: kt(ms),
        direction: Direction::Received,
    })
}

fn established_ops(cookie: u64, ms: u64) -> KernelEvent {
    KernelEvent::SockOps(Box::new(sock_ops(
        cookie,
        ms,
        SockOp::ActiveEstablished,
        KernelTcpState::Established,
        (addr(LOCAL_TCP), addr(SERVER)),
    )))
}

/// A packet of socket `cookie` as the cgroup programs copy it (from the IP header on).
fn copied(cookie: u64, ms: u64, direction: Direction, ip_packet: Vec<u8>) -> KernelEvent {
    KernelEvent::Packet(PacketRecord {
        cookie: SocketCookie(cookie),
        client: CLIENT,
        time: kt(ms),
        ifindex: CGROUP_PACKET_IFINDEX,
        direction,
        packet_len: ip_packet.len() as u32,
        data: ip_packet.into(),
    })
}

/// An IPv4 packet from `src` to `dst` carrying `transport` (a UDP or TCP header and payload).
fn ipv4(protocol: u8, src: &str, dst: &str, transport: &[u8]) -> Vec<u8> {
    let (src, dst) = (addr(src), addr(dst));
    let (std::net::IpAddr::V4(src), std::net::IpAddr::V4(dst)) = (src.ip(), dst.ip()) else {
        panic!("IPv4 addresses");
    };
    let total = (20 + transport.len()) as u16;
    let mut packet = vec![0x45, 0];
    packet.extend_from_slice(&total.to_be_bytes());
    packet.extend_from_slice(&[0, 0, 0x40, 0, 64, protocol, 0, 0]);
    packet.extend_from_slice(&src.octets());
    packet.extend_from_slice(&dst.octets());
    packet.extend_from_slice(transport);
    packet
}

fn udp(src: &str, dst: &str, payload: &[u8]) -> Vec<u8> {
    let mut datagram = Vec::new();
    datagram.extend_from_slice(&addr(src).port().to_be_bytes());
    datagram.extend_from_slice(&addr(dst).port().to_be_bytes());
    datagram.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    datagram.extend_from_slice(&[0, 0]);
    datagram.extend_from_slice(payload);
    ipv4(17, src, dst, &datagram)
}

fn tcp(src: &str, dst: &str, payload: &[u8]) -> Vec<u8> {
    let mut segment = Vec::new();
    segment.extend_from_slice(&addr(src).port().to_be_bytes());
    segment.extend_from_slice(&addr(dst).port().to_be_bytes());
    segment.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 1]); // sequence, acknowledgment
    segment.extend_from_slice(&[0x50, 0x18, 0xff, 0xff, 0, 0, 0, 0]); // 20 bytes, PSH|ACK
    segment.extend_from_slice(payload);
    ipv4(6, src, dst, &segment)
}

/// The question `example.test. A IN`.
const QUESTION: [u8; 18] = [
    7, b'e', b'x', b'a', b'm', b'p', b'l', b'e', 4, b't', b'e', b's', b't', 0, 0, 1, 0, 1,
];

/// A recursive query for `example.test. A` with ID 0x1234 (30 bytes).
fn dns_query() -> Vec<u8> {
    let mut message = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    message.extend_from_slice(&QUESTION);
    message
}

/// Its answer: `example.test. 300 A 93.184.215.14` (46 bytes).
fn dns_reply() -> Vec<u8> {
    let mut message = vec![0x12, 0x34, 0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 0];
    message.extend_from_slice(&QUESTION);
    message.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0x01, 0x2c, 0, 4]);
    message.extend_from_slice(&[93, 184, 215, 14]);
    message
}

fn ms(instant: Instant) -> u128 {
    instant.saturating_duration_since(at(0)).as_millis()
}

/// One line per recorder event: what it is, its IDs, time and the facts it carries.
fn summary(event: &Event) -> String {
    match event {
        Event::DialStarted {
            dial,
            at,
            dst_address,
            ..
        } => format!("dial-started {dial} @{} {dst_address}", ms(*at)),
        Event::DialEnded { dial, at, result } => match result {
            Ok(conn) => format!("dial-ended {dial} @{} ok {conn}", ms(*at)),
            Err(error) => format!("dial-ended {dial} @{} err {error}", ms(*at)),
        },
        Event::ConnOpened {
            conn,
            transport,
            dial,
            from_resolver,
            remote,
            cookie,
            record,
            at,
        } => format!(
            "conn-opened {conn} {} of {dial}{} to {remote} socket {} @{} ops {}",
            match transport {
                Transport::Tcp => "tcp",
                Transport::Udp => "udp",
            },
            if *from_resolver { " resolver" } else { "" },
            cookie.map_or(0, |c| c.0),
            ms(*at),
            record.logs_ops(),
        ),
        Event::ConnProcess { conn, process } => {
            format!("process {conn} pid {} {}", process.pid, process.comm)
        }
        Event::ConnEstablished { conn, at, local } => {
            format!("established {conn} @{} {local}", ms(*at))
        }
        Event::ConnFailed { conn, at } => format!("failed {conn} @{}", ms(*at)),
        Event::ConnClosed { conn, at } => format!("closed {conn} @{}", ms(*at)),
        Event::DnsQuery {
            conn,
            dial,
            at,
            msg,
        } => format!("dns-query {conn} of {dial} @{} id {}", ms(*at), msg.id),
        Event::DnsReply {
            conn,
            dial,
            at,
            msg,
        } => format!("dns-reply {conn} of {dial} @{} id {}", ms(*at), msg.id),
        Event::TlsStarted {
            tls,
            conn,
            at,
            server_name,
            ..
        } => format!("tls-started {tls} on {conn} @{} {server_name}", ms(*at)),
        Event::Kernel(event) => {
            let kind = match event {
                KernelEvent::TcpState(_) => "tcp-state",
                KernelEvent::SockOps(_) => "sock-ops",
                KernelEvent::SockMsg(_) => "sock-msg",
                KernelEvent::SockCalls(_) => "sock-calls",
                KernelEvent::TcpReset(_) => "tcp-reset",
                KernelEvent::Packet(_) => "packet",
                KernelEvent::SocketCreated(_) => "socket-created",
                KernelEvent::SocketReleased(_) => "socket-released",
                KernelEvent::Connect(_) => "connect",
            };
            format!("kernel {kind} {}", event.cookie().0)
        }
        other => format!("unexpected {other:?}"),
    }
}

/// A translator feeding a recorder, as a program tracer wires them.
struct Run {
    translator: Translator,
    recorder: Recorder,
}

impl Run {
    fn new(sock_ops: bool) -> Self {
        Self {
            translator: Translator::with_ids(sock_ops, sequence("k")),
            recorder: recorder(true),
        }
    }

    /// Translates `event` and records what comes out; returns the events summarised and the
    /// sockets to unregister.
    fn step(&mut self, event: KernelEvent) -> (Vec<String>, Vec<u64>) {
        let out = self.translator.translate(event);
        let summaries = out.events.iter().map(summary).collect();
        for event in out.events {
            self.recorder.handle(event);
        }
        (summaries, out.unregister.iter().map(|c| c.0).collect())
    }

    /// [`Run::step`] for an event that only goes on to the recorder as a kernel fact.
    fn kernel_only(&mut self, event: KernelEvent) {
        let cookie = event.cookie();
        let (events, unregister) = self.step(event);
        assert_eq!(events.len(), 1, "{events:?}");
        assert!(events[0].starts_with("kernel "), "{events:?}");
        assert!(events[0].ends_with(&format!(" {}", cookie.0)), "{events:?}");
        assert_eq!(unregister, Vec::<u64>::new());
    }

    fn snapshot(&mut self, end_ms: u64) -> HttpTrace {
        self.recorder.snapshot_ms("program", at(end_ms))
    }
}

fn strings(lines: &[&str]) -> Vec<String> {
    lines.iter().map(|line| (*line).to_owned()).collect()
}

fn none() -> (Vec<String>, Vec<u64>) {
    (Vec::new(), Vec::new())
}

fn state(ms: u32, from: &str, to: &str) -> KernelStateChange {
    KernelStateChange {
        at: rel(ms),
        from: from.to_owned(),
        to: to.to_owned(),
    }
}

#[test]
fn a_tcp_connection_from_socket_creation_to_close() {
    let mut run = Run::new(true);
    assert_eq!(run.step(created(TCP, 0, SocketProtocol::Tcp)), none());
    assert_eq!(
        run.step(connect(TCP, 1, SERVER)),
        (
            strings(&[
                "dial-started k-2 @1 93.184.215.14:443",
                // The handshake begins with the socket, as Go counts it.
                "conn-opened k-1 tcp of k-2 to 93.184.215.14:443 socket 7 @0 ops true",
                "process k-1 pid 4242 curl",
            ]),
            vec![]
        )
    );
    let ends = (addr(LOCAL_TCP), addr(SERVER));
    run.kernel_only(KernelEvent::SockOps(Box::new(sock_ops(
        TCP,
        1,
        SockOp::Connect,
        KernelTcpState::SynSent,
        ends,
    ))));
    run.kernel_only(tcp_state(
        TCP,
        1,
        KernelTcpState::Close,
        KernelTcpState::SynSent,
    ));
    assert_eq!(
        run.step(established_ops(TCP, 21)),
        (
            strings(&[
                "established k-1 @21 192.168.1.2:40000",
                "dial-ended k-2 @21 ok k-1",
                "kernel sock-ops 7",
            ]),
            vec![]
        )
    );
    run.kernel_only(tcp_state(
        TCP,
        21,
        KernelTcpState::SynSent,
        KernelTcpState::Established,
    ));
    run.kernel_only(sock_msg(TCP, 22, Direction::Sent, 100));
    // Would block: not an operation.
    run.kernel_only(sock_msg(TCP, 23, Direction::Received, -libc::EAGAIN));
    run.kernel_only(sock_msg(TCP, 30, Direction::Received, 300));
    run.kernel_only(sock_msg(TCP, 35, Direction::Received, -libc::ECONNRESET));
    // Closed by the program; the kernel's state machine goes on, so the socket stays
    // registered until its CLOSE.
    assert_eq!(
        run.step(released(TCP, 40)),
        (strings(&["closed k-1 @40"]), vec![])
    );
    run.kernel_only(tcp_state(
        TCP,
        41,
        KernelTcpState::Established,
        KernelTcpState::FinWait1,
    ));
    assert_eq!(
        run.step(tcp_state(
            TCP,
            45,
            KernelTcpState::FinWait1,
            KernelTcpState::Close
        )),
        (strings(&["kernel tcp-state 7"]), vec![TCP])
    );

    let trace = run.snapshot(50);
    assert_eq!(
        trace.net_trace.dials.to_vec(),
        [DialTrace {
            trace_id: id("k-2"),
            dial_begin_at: rel(1),
            dial_end_at: rel(21),
            dst_address: SERVER.to_owned(),
            established_conn: id("k-1"),
            ..DialTrace::default()
        }]
    );
    let op = |op_type, ms, data_len, return_err: &str| SocketOp {
        op_type,
        // The kernel gives one time per call.
        call_at: rel(ms),
        return_at: rel(ms),
        return_err: return_err.to_owned(),
        remote_addr: String::new(),
        data_len,
    };
    let reset = "Connection reset by peer (os error 104)";
    assert_eq!(
        trace.net_trace.tcp_conns.to_vec(),
        [TcpConnTrace {
            trace_id: id("k-1"),
            from_dial: id("k-2"),
            from_resolver: false,
            handshake_begin_at: rel(0),
            handshake_end_at: rel(21),
            connected: true,
            conn_close_at: rel(40),
            addr_tuple: AddrTuple::new(addr(LOCAL_TCP), addr(SERVER)),
            reused: false,
            total_sent_bytes: 100,
            total_recv_bytes: 300,
            conntrack: None,
            socket_trace: Some(SocketTrace {
                dropped_ops: 0,
                socket_ops: vec![
                    op(SocketOpType::Write, 22, 100, ""),
                    op(SocketOpType::Read, 30, 300, ""),
                    op(SocketOpType::Read, 35, 0, reset),
                ],
            }),
            kernel: Some(KernelTcpFacts {
                states: vec![
                    state(1, "close", "syn-sent"),
                    state(21, "syn-sent", "established"),
                    state(41, "established", "fin-wait1"),
                    state(45, "fin-wait1", "close"),
                ],
                calls: KernelSocketCalls {
                    send_calls: 1,
                    recv_calls: 3,
                    would_block: 1,
                    send_errors: 0,
                    recv_errors: 1,
                    call_bytes_sent: 100,
                    call_bytes_received: 300,
                    last_error: reset.to_owned(),
                },
                ..KernelTcpFacts::default()
            }),
            process: Some(conn_process(4242, "curl")),
            ..Default::default()
        }]
    );
    assert!(trace.net_trace.udp_conns.is_empty());
    assert!(trace.net_trace.dns_queries.is_empty());
    assert!(trace.http_requests.is_empty());
}

#[test]
fn a_refused_or_unanswered_connection_ends_its_dial_with_an_error() {
    let mut run = Run::new(true);
    run.step(created(TCP, 0, SocketProtocol::Tcp));
    run.step(connect(TCP, 1, "93.184.215.14:80"));
    run.kernel_only(tcp_state(
        TCP,
        1,
        KernelTcpState::Close,
        KernelTcpState::SynSent,
    ));
    run.kernel_only(reset_received(TCP, 2));
    assert_eq!(
        run.step(tcp_state(
            TCP,
            2,
            KernelTcpState::SynSent,
            KernelTcpState::Close
        )),
        (
            strings(&[
                "failed k-1 @2",
                "dial-ended k-2 @2 err dial tcp 93.184.215.14:80: connection refused",
                "kernel tcp-state 7",
            ]),
            // Still open in the program.
            vec![]
        )
    );
    assert_eq!(
        run.step(released(TCP, 3)),
        (strings(&["closed k-1 @3"]), vec![TCP])
    );

    // No answer to the SYN: the kernel gives up.
    run.step(created(8, 10, SocketProtocol::Tcp));
    run.step(connect(8, 11, "192.0.2.1:443"));
    run.kernel_only(tcp_state(
        8,
        11,
        KernelTcpState::Close,
        KernelTcpState::SynSent,
    ));
    assert_eq!(
        run.step(tcp_state(
            8,
            1011,
            KernelTcpState::SynSent,
            KernelTcpState::Close
        ))
        .0,
        strings(&[
            "failed k-3 @1011",
            "dial-ended k-4 @1011 err dial tcp 192.0.2.1:443: connection failed (no answer to \
             the SYN)",
            "kernel tcp-state 8",
        ])
    );

    let trace = run.snapshot(1100);
    let dials = trace.net_trace.dials.to_vec();
    assert_eq!(
        dials,
        [
            DialTrace {
                trace_id: id("k-2"),
                dial_begin_at: rel(1),
                dial_end_at: rel(2),
                dial_err: "dial tcp 93.184.215.14:80: connection refused".to_owned(),
                dst_address: "93.184.215.14:80".to_owned(),
                ..DialTrace::default()
            },
            DialTrace {
                trace_id: id("k-4"),
                dial_begin_at: rel(11),
                dial_end_at: rel(1011),
                dial_err: "dial tcp 192.0.2.1:443: connection failed (no answer to the SYN)"
                    .to_owned(),
                dst_address: "192.0.2.1:443".to_owned(),
                ..DialTrace::default()
            },
        ]
    );
    let conns = trace.net_trace.tcp_conns.as_slice();
    assert_eq!(conns.len(), 2);
    let refused = &conns[0];
    assert_eq!(
        (
            &refused.handshake_begin_at,
            &refused.handshake_end_at,
            refused.connected,
            &refused.conn_close_at,
            refused.addr_tuple.src(),
        ),
        (&rel(0), &rel(2), false, &rel(3), None)
    );
    assert_eq!(refused.kernel.as_ref().map(|k| k.rst_received), Some(true));
    let unanswered = &conns[1];
    assert_eq!(
        (
            &unanswered.handshake_begin_at,
            &unanswered.handshake_end_at,
            unanswered.connected,
            &unanswered.conn_close_at,
        ),
        (&rel(10), &rel(1011), false, &Timestamp::Undefined)
    );
}

#[test]
fn a_udp_dns_exchange_becomes_a_resolver_connection_with_its_messages() {
    let mut run = Run::new(true);
    run.step(created(UDP, 0, SocketProtocol::Udp));
    assert_eq!(
        run.step(connect(UDP, 1, NAMESERVER)),
        (
            strings(&[
                "dial-started k-2 @1 10.0.0.53:53",
                "conn-opened k-1 udp of k-2 resolver to 10.0.0.53:53 socket 9 @0 ops true",
                "process k-1 pid 4242 curl",
                // Connecting a UDP socket only sets its peer.
                "dial-ended k-2 @1 ok k-1",
            ]),
            vec![]
        )
    );
    // The first datagram out tells the local address.
    assert_eq!(
        run.step(copied(
            UDP,
            2,
            Direction::Sent,
            udp(LOCAL_UDP, NAMESERVER, &dns_query())
        )),
        (
            strings(&[
                "established k-1 @2 192.168.1.2:50000",
                "dns-query k-1 of k-2 @2 id 4660",
            ]),
            vec![]
        )
    );
    run.kernel_only(sock_msg(UDP, 2, Direction::Sent, 30));
    assert_eq!(
        run.step(copied(
            UDP,
            7,
            Direction::Received,
            udp(NAMESERVER, LOCAL_UDP, &dns_reply())
        )),
        (strings(&["dns-reply k-1 of k-2 @7 id 4660"]), vec![])
    );
    run.kernel_only(sock_msg(UDP, 7, Direction::Received, 46));
    // Not DNS, or not a message: nothing to record.
    assert_eq!(
        run.step(copied(
            UDP,
            8,
            Direction::Received,
            udp(NAMESERVER, LOCAL_UDP, &[0x12, 0x34, 0x81])
        )),
        none()
    );
    assert_eq!(
        run.step(copied(UDP, 8, Direction::Received, vec![0x45, 0, 0])),
        none()
    );
    // A UDP socket is done when released.
    assert_eq!(
        run.step(released(UDP, 9)),
        (strings(&["closed k-1 @9"]), vec![UDP])
    );
    // A copied packet may come after the release (another ring): still the connection's, and
    // the socket is not unregistered twice.
    assert_eq!(
        run.step(copied(
            UDP,
            10,
            Direction::Received,
            udp(NAMESERVER, LOCAL_UDP, &dns_reply())
        )),
        (strings(&["dns-reply k-1 of k-2 @10 id 4660"]), vec![])
    );

    let trace = run.snapshot(20);
    let reply = |ms| DnsReplyMsg {
        recv_at: rel(ms),
        id: 0x1234,
        authoritative: false,
        recursion_available: true,
        truncated: false,
        size: 46,
        rcode: DnsRCode(0),
        answers: vec![DnsAnswer {
            name: "example.test.".to_owned(),
            res_type: DnsResType(1),
            class: 1,
            ttl: 300,
            resolved_val: "93.184.215.14".to_owned(),
        }],
        ..Default::default()
    };
    assert_eq!(
        trace.net_trace.dns_queries.to_vec(),
        [DnsQueryTrace {
            trace_id: id("dns-1"),
            from_dial: id("k-2"),
            connection: id("k-1"),
            dns_query_msgs: vec![DnsQueryMsg {
                sent_at: rel(2),
                id: 0x1234,
                recursion_desired: true,
                truncated: false,
                size: 30,
                questions: vec![DnsQuestion {
                    name: "example.test.".to_owned(),
                    res_type: DnsResType(1),
                    class: 1,
                }],
                opt_udp_payload_size: 0,
                ..Default::default()
            }],
            dns_reply_msgs: vec![reply(7), reply(10)],
        }]
    );
    assert_eq!(
        trace.net_trace.udp_conns.to_vec(),
        [UdpConnTrace {
            trace_id: id("k-1"),
            from_dial: id("k-2"),
            from_resolver: true,
            socket_create_at: rel(0),
            conn_close_at: rel(9),
            addr_tuple: AddrTuple::new(addr(LOCAL_UDP), addr(NAMESERVER)),
            total_sent_bytes: 30,
            total_recv_bytes: 46,
            conntrack: None,
            socket_trace: Some(SocketTrace {
                dropped_ops: 0,
                socket_ops: vec![
                    SocketOp {
                        op_type: SocketOpType::Write,
                        call_at: rel(2),
                        return_at: rel(2),
                        data_len: 30,
                        ..SocketOp::default()
                    },
                    SocketOp {
                        op_type: SocketOpType::Read,
                        call_at: rel(7),
                        return_at: rel(7),
                        data_len: 46,
                        ..SocketOp::default()
                    },
                ],
            }),
            kernel: Some(KernelUdpFacts {
                calls: KernelSocketCalls {
                    send_calls: 1,
                    recv_calls: 1,
                    call_bytes_sent: 30,
                    call_bytes_received: 46,
                    ..KernelSocketCalls::default()
                },
            }),
            process: Some(conn_process(4242, "curl")),
        }]
    );
    assert_eq!(
        trace.net_trace.dials.to_vec(),
        [DialTrace {
            trace_id: id("k-2"),
            dial_begin_at: rel(1),
            dial_end_at: rel(1),
            dst_address: NAMESERVER.to_owned(),
            established_conn: id("k-1"),
            ..DialTrace::default()
        }]
    );
    assert!(trace.net_trace.tcp_conns.is_empty());
}

#[test]
fn a_client_hello_names_one_tls_tunnel_per_connection() {
    let mut run = Run::new(true);
    run.step(created(TCP, 0, SocketProtocol::Tcp));
    run.step(connect(TCP, 1, SERVER));
    run.step(established_ops(TCP, 10));
    // Data before the ClientHello, and the ClientHello.
    assert_eq!(
        run.step(copied(
            TCP,
            11,
            Direction::Sent,
            tcp(LOCAL_TCP, SERVER, b"\x17\x03\x03\x00\x00")
        )),
        none()
    );
    assert_eq!(
        run.step(copied(
            TCP,
            12,
            Direction::Sent,
            tcp(LOCAL_TCP, SERVER, &client_hello("example.test"))
        )),
        (
            strings(&["tls-started k-3 on k-1 @12 example.test"]),
            vec![]
        )
    );
    // One per connection; and only what the program sent.
    assert_eq!(
        run.step(copied(
            TCP,
            13,
            Direction::Sent,
            tcp(LOCAL_TCP, SERVER, &client_hello("other.test"))
        )),
        none()
    );
    let mut other = Run::new(true);
    other.step(created(TCP, 0, SocketProtocol::Tcp));
    other.step(connect(TCP, 1, SERVER));
    assert_eq!(
        other.step(copied(
            TCP,
            13,
            Direction::Received,
            tcp(SERVER, LOCAL_TCP, &client_hello("example.test"))
        )),
        none()
    );

    let trace = run.snapshot(20);
    assert_eq!(
        trace.net_trace.tls_tunnels.to_vec(),
        [TlsTunnelTrace {
            trace_id: id("k-3"),
            tcp_conn: id("k-1"),
            handshake_begin_at: rel(12),
            // The rest of the handshake is not seen.
            handshake_end_at: Timestamp::Undefined,
            server_name: "example.test".to_owned(),
            ..TlsTunnelTrace::default()
        }]
    );
}

#[test]
fn a_socket_connected_again_gets_a_new_dial_and_connection() {
    let mut run = Run::new(true);
    run.step(created(UDP, 0, SocketProtocol::Udp));
    run.step(connect(UDP, 1, NAMESERVER));
    assert_eq!(
        run.step(connect(UDP, 5, "10.0.0.54:53")),
        (
            strings(&[
                "closed k-1 @5",
                "dial-started k-4 @5 10.0.0.54:53",
                "conn-opened k-3 udp of k-4 resolver to 10.0.0.54:53 socket 9 @0 ops true",
                "process k-3 pid 4242 curl",
                "dial-ended k-4 @5 ok k-3",
            ]),
            vec![]
        )
    );
    // The socket's calls and kernel facts are the new connection's.
    run.kernel_only(sock_msg(UDP, 6, Direction::Sent, 30));
    let trace = run.snapshot(10);
    let conns = trace.net_trace.udp_conns.as_slice();
    assert_eq!(conns.len(), 2);
    assert_eq!(
        (
            &conns[0].trace_id,
            &conns[0].conn_close_at,
            conns[0].total_sent_bytes,
            &conns[0].kernel
        ),
        (&id("k-1"), &rel(5), 0, &None)
    );
    assert_eq!(
        (
            &conns[1].trace_id,
            &conns[1].from_dial,
            &conns[1].conn_close_at,
            conns[1].total_sent_bytes
        ),
        (&id("k-3"), &id("k-4"), &Timestamp::Undefined, 30)
    );
    assert_eq!(
        conns[1].kernel.as_ref().map(|k| k.calls.send_calls),
        Some(1)
    );
}

#[test]
fn without_sock_trace_only_byte_totals_are_kept() {
    let mut run = Run::new(false);
    run.step(created(TCP, 0, SocketProtocol::Tcp));
    assert_eq!(
        run.step(connect(TCP, 1, SERVER)).0[1],
        "conn-opened k-1 tcp of k-2 to 93.184.215.14:443 socket 7 @0 ops false"
    );
    run.step(established_ops(TCP, 10));
    run.kernel_only(sock_msg(TCP, 11, Direction::Sent, 100));
    run.kernel_only(sock_msg(TCP, 12, Direction::Received, 300));
    let trace = run.snapshot(20);
    let conn = &trace.net_trace.tcp_conns[0];
    assert_eq!(
        (
            conn.total_sent_bytes,
            conn.total_recv_bytes,
            &conn.socket_trace
        ),
        (100, 300, &None)
    );
}

#[test]
fn sockets_leave_the_kernel_map_once_nothing_more_can_come() {
    let mut run = Run::new(true);
    // Never connected: done when released.
    run.step(created(1, 0, SocketProtocol::Tcp));
    assert_eq!(run.step(released(1, 1)), (vec![], vec![1]));
    // What the kernel reports after that does not list it again.
    assert_eq!(
        run.step(tcp_state(
            1,
            2,
            KernelTcpState::Close,
            KernelTcpState::Close
        )),
        (strings(&["kernel tcp-state 1"]), vec![])
    );
    // A CLOSE before the release (as after a reset): done at the release.
    run.step(created(2, 0, SocketProtocol::Tcp));
    run.step(connect(2, 1, SERVER));
    run.step(established_ops(2, 2));
    assert_eq!(
        run.step(tcp_state(
            2,
            3,
            KernelTcpState::Established,
            KernelTcpState::Close
        )),
        (strings(&["kernel tcp-state 2"]), vec![])
    );
    assert_eq!(run.step(released(2, 4)).1, vec![2]);
    assert_eq!(
        run.step(tcp_state(
            2,
            5,
            KernelTcpState::Close,
            KernelTcpState::Close
        ))
        .1,
        Vec::<u64>::new()
    );
}

#[test]
fn events_of_sockets_not_seen_created_make_no_records() {
    let mut translator = Translator::with_ids(true, no_ids());
    let summaries = |translator: &mut Translator, event| {
        let out = translator.translate(event);
        let unregister: Vec<u64> = out.unregister.iter().map(|c| c.0).collect();
        (
            out.events.iter().map(summary).collect::<Vec<_>>(),
            unregister,
        )
    };
    // Created before tracing began: its connect and release make nothing.
    assert_eq!(summaries(&mut translator, connect(50, 1, SERVER)), none());
    assert_eq!(summaries(&mut translator, released(50, 2)), none());
    // Its kernel facts go on to the recorder (which joins them by cookie, or not).
    assert_eq!(
        summaries(&mut translator, sock_msg(50, 3, Direction::Sent, 10)),
        (strings(&["kernel sock-msg 50"]), vec![])
    );
    assert_eq!(
        summaries(
            &mut translator,
            tcp_state(50, 4, KernelTcpState::Established, KernelTcpState::Close)
        ),
        (strings(&["kernel tcp-state 50"]), vec![])
    );
    // Copied packets of an unknown or unconnected socket make nothing; packets captured on
    // an interface go on to the capture.
    let query = udp(LOCAL_UDP, NAMESERVER, &dns_query());
    assert_eq!(
        summaries(
            &mut translator,
            copied(50, 5, Direction::Sent, query.clone())
        ),
        none()
    );
    summaries(&mut translator, created(51, 5, SocketProtocol::Udp));
    assert_eq!(
        summaries(
            &mut translator,
            copied(51, 6, Direction::Sent, query.clone())
        ),
        none()
    );
    let KernelEvent::Packet(mut on_interface) = copied(51, 7, Direction::Sent, query) else {
        unreachable!("a packet");
    };
    on_interface.ifindex = 2;
    assert_eq!(
        summaries(&mut translator, KernelEvent::Packet(on_interface)),
        (strings(&["kernel packet 51"]), vec![])
    );
}

#[test]
fn a_connection_names_the_process_that_called_connect() {
    let mut run = Run::new(false);
    // Created by a parent, inherited and connected by its child (a shell and its curl).
    run.step(KernelEvent::SocketCreated(SocketCreated {
        process: kernel_process(100, "sh"),
        ..match created(TCP, 0, SocketProtocol::Tcp) {
            KernelEvent::SocketCreated(created) => created,
            other => panic!("{other:?}"),
        }
    }));
    let call = |ms, pid, comm: &str| {
        KernelEvent::Connect(ConnectCall {
            cookie: SocketCookie(TCP),
            client: CLIENT,
            time: kt(ms),
            protocol: None,
            remote: addr(SERVER),
            process: kernel_process(pid, comm),
        })
    };
    assert_eq!(
        run.step(call(1, 101, "curl")).0[2],
        "process k-1 pid 101 curl"
    );
    // Connected again by another process: the new connection names it, the old keeps its own.
    assert_eq!(
        run.step(call(5, 102, "wget")).0[3],
        "process k-3 pid 102 wget"
    );
    let trace = run.snapshot(10);
    let processes: Vec<_> = trace
        .net_trace
        .tcp_conns
        .iter()
        .map(|conn| (conn.trace_id.to_string(), conn.process.clone()))
        .collect();
    assert_eq!(
        processes,
        [
            ("k-1".to_owned(), Some(conn_process(101, "curl"))),
            ("k-3".to_owned(), Some(conn_process(102, "wget"))),
        ]
    );
}
