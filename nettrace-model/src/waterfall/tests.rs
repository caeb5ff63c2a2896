//! The waterfall of hand-built traces and of the Go README example.
use super::*;
use crate::{
    AddrTuple, ConnProcess, ConntrackEntry, ConntrackStatus, KernelTcpFacts, TcpState, TraceId,
};

fn tuple(src: &str, sport: u16, dst: &str, dport: u16) -> AddrTuple {
    AddrTuple {
        src_ip: src.parse().ok(),
        src_port: sport,
        dst_ip: dst.parse().ok(),
        dst_port: dport,
    }
}

fn go_readme_example() -> HttpTrace {
    let json = include_str!("../../../nettrace-cli/tests/golden/go_readme_example.json");
    serde_json::from_str(json).unwrap()
}

/// A loader trace: one connection and its TLS handshake, no HTTP request.
fn loader_trace() -> HttpTrace {
    let mut trace = HttpTrace::default();
    trace.net_trace.trace_end_at = Timestamp::Relative(10);
    trace.net_trace.dials = vec![DialTrace {
        trace_id: TraceId::new("dial-1"),
        dial_begin_at: Timestamp::Relative(1),
        dial_end_at: Timestamp::Relative(3),
        dst_address: "127.0.0.1:8080".into(),
        established_conn: TraceId::new("conn-1"),
        ..DialTrace::default()
    }]
    .into();
    trace.net_trace.tcp_conns = vec![TcpConnTrace {
        trace_id: TraceId::new("conn-1"),
        from_dial: TraceId::new("dial-1"),
        handshake_begin_at: Timestamp::Relative(1),
        handshake_end_at: Timestamp::Relative(3),
        connected: true,
        addr_tuple: tuple("127.0.0.1", 40000, "127.0.0.1", 8080),
        total_sent_bytes: 517,
        total_recv_bytes: 4242,
        process: Some(ConnProcess {
            pid: 1234,
            comm: "curl".into(),
        }),
        kernel: Some(KernelTcpFacts {
            srtt_us: 40,
            min_rtt_us: 12,
            ..Default::default()
        }),
        ..TcpConnTrace::default()
    }]
    .into();
    trace.net_trace.tls_tunnels = vec![TlsTunnelTrace {
        trace_id: TraceId::new("tls-1"),
        tcp_conn: TraceId::new("conn-1"),
        handshake_begin_at: Timestamp::Relative(3),
        handshake_end_at: Timestamp::Relative(5),
        server_name: "localhost".into(),
        tls_version: "TLSv1.3".into(),
        ..Default::default()
    }]
    .into();
    trace
}

#[test]
fn connections_without_requests_are_shown_with_their_facts() {
    let text = render(&loader_trace());
    assert!(text.contains("(no HTTP requests recorded)"), "{text}");
    assert!(
        text.contains("tcp conn-1 127.0.0.1:40000 -> 127.0.0.1:8080 pid 1234 curl"),
        "{text}"
    );
    assert!(
        text.contains("tls       localhost TLSv1.3, took 2ms"),
        "{text}"
    );
    assert!(
        text.contains("sent 517 / received 4242 on conn-1"),
        "{text}"
    );
    assert!(text.contains("kernel    srtt 40us, min rtt 12us"), "{text}");
    let mut trace = loader_trace();
    trace.net_trace.tcp_conns[0].process = None;
    assert!(!render(&trace).contains("pid"));
}

#[test]
fn go_readme_example_has_phases_and_a_summary() {
    let text = render(&go_readme_example());
    assert!(text.contains("times in whole milliseconds"), "{text}");
    assert!(
        text.contains(
            "summary   dns 42ms  connect 11ms  tls 46ms  send 11ms  wait 56ms  transfer 1ms  \
             total 168ms"
        ),
        "{text}"
    );
    for label in ["dns", "connect", "tls", "send", "wait", "transfer", "bytes"] {
        assert!(
            text.lines().any(|l| l.trim_start().starts_with(label)),
            "no {label} line in\n{text}"
        );
    }
    assert!(
        text.contains("www.google.com. A @8.8.8.8:53 -> 142.251.36.132"),
        "{text}"
    );
    assert!(text.contains("conntrack 192.168.99.1:33623"), "{text}");
    // Columns align: every bar starts at the same column.
    let bars: Vec<usize> = text.lines().filter_map(|l| l.find(" |")).collect();
    assert!(bars.len() >= 6, "{text}");
    assert!(bars.windows(2).all(|w| w[0] == w[1]), "{text}");
    assert!(!text.contains('\x1b'));
}

#[test]
fn colour_only_when_asked() {
    let options = Options {
        color: true,
        ..Options::default()
    };
    let text = render_with(&go_readme_example(), &options);
    assert!(text.contains("\x1b[36m#"), "dns bar in cyan: {text}");
    assert!(text.contains(RESET));
}

fn two_requests(precise: bool) -> HttpTrace {
    let mut trace = loader_trace();
    let mut first = HttpReqTrace {
        trace_id: TraceId::new("req-1"),
        tcp_conn: TraceId::new("conn-1"),
        tls_tunnel: TraceId::new("tls-1"),
        req_method: "GET".into(),
        req_url: "https://localhost:8080/slow".into(),
        req_sent_at: Timestamp::Relative(1),
        resp_recv_at: Timestamp::Relative(6),
        resp_body_last_byte_at: Timestamp::Relative(2708),
        resp_status_code: 200,
        resp_content_len: 10,
        ..Default::default()
    };
    let mut second = HttpReqTrace {
        trace_id: TraceId::new("req-2"),
        req_url: "https://localhost:8080/fast".into(),
        req_sent_at: Timestamp::Relative(2710),
        resp_recv_at: Timestamp::Relative(2710),
        ..first.clone()
    };
    second.resp_body_last_byte_at = Timestamp::Relative(2710);
    if precise {
        first.precise_us.set("reqSentAt", 1_000);
        first.precise_us.set("respRecvAt", 6_100);
        first.precise_us.set("respBodyLastByteAt", 2_708_300);
        second.precise_us.set("reqSentAt", 2_710_000);
        second.precise_us.set("respRecvAt", 2_710_420);
        second.precise_us.set("respBodyLastByteAt", 2_710_480);
        let net = &mut trace.net_trace;
        net.dials[0].precise_us.set("dialBeginAt", 1_010);
        net.dials[0].precise_us.set("dialEndAt", 3_000);
        net.tcp_conns[0].precise_us.set("handshakeBeginAt", 1_020);
        net.tcp_conns[0].precise_us.set("handshakeEndAt", 1_300);
        net.tls_tunnels[0].precise_us.set("handshakeBeginAt", 1_310);
        net.tls_tunnels[0].precise_us.set("handshakeEndAt", 5_400);
    }
    trace.http_requests = vec![first, second].into();
    trace
}

#[test]
fn reused_connection_is_named_and_has_no_connect_line() {
    let text = render(&two_requests(false));
    let second = &text[text.find("GET https://localhost:8080/fast").unwrap()..];
    assert!(
        second.contains("reused    connection conn-1 (127.0.0.1:40000 -> 127.0.0.1:8080 pid 1234 curl), opened for req-1"),
        "{text}"
    );
    assert!(!second.contains("connect "), "{second}");
    assert!(!second.contains("tls "), "{second}");
    // The connection's facts appear once.
    assert_eq!(text.matches("4242 on conn-1").count(), 1, "{text}");
    assert!(!text.contains("connections without"), "{text}");
}

#[test]
fn microseconds_when_the_trace_has_them_and_one_scale_for_all() {
    let text = render(&two_requests(true));
    assert!(!text.contains("whole milliseconds"), "{text}");
    assert!(text.contains("connect 280µs"), "{text}");
    assert!(text.contains("transfer 2.7s  total 2.71s"), "{text}");
    assert!(
        text.contains("wait 420µs  transfer 60µs  (reused conn-1)  total 480µs"),
        "{text}"
    );
    // The slow request's transfer fills the bar column; the fast one is a sliver.
    let transfer: Vec<&str> = text
        .lines()
        .filter(|l| l.trim_start().starts_with("transfer"))
        .collect();
    assert_eq!(transfer.len(), 2, "{text}");
    assert!(transfer[0].ends_with("#|"), "{}", transfer[0]);
    assert_eq!(transfer[1].matches('#').count(), 1, "{}", transfer[1]);
}

#[test]
fn long_details_are_cut_to_keep_columns() {
    let mut trace = two_requests(false);
    trace.net_trace.tls_tunnels[0].server_name = "a".repeat(200);
    let text = render(&trace);
    let tls = text
        .lines()
        .find(|l| l.trim_start().starts_with("tls"))
        .unwrap();
    assert!(tls.contains('…'), "{tls}");
    assert!(
        text.contains(&format!("            {} TLSv1.3\n", "a".repeat(200))),
        "{text}"
    );
    let connect = text
        .lines()
        .find(|l| l.trim_start().starts_with("connect"))
        .unwrap();
    let column = |line: &str| line.find(" |").map(|at| line[..at].chars().count());
    assert_eq!(column(tls), column(connect), "{text}");
}

#[test]
fn unanswered_syn_is_explained() {
    let mut trace = loader_trace();
    let conn = &mut trace.net_trace.tcp_conns[0];
    conn.connected = false;
    conn.kernel = Some(KernelTcpFacts {
        syn_retransmits: 2,
        retransmits: 2,
        rto_events: 2,
        segs_out: 3,
        ..Default::default()
    });
    let text = render(&trace);
    assert!(
        text.contains("SYN never answered: filtered, or the host is down"),
        "{text}"
    );
}

#[test]
fn conntrack_line_shows_nat_only_when_reply_differs() {
    let mut ct = ConntrackEntry {
        status: ConntrackStatus::SEEN_REPLY | ConntrackStatus::SRC_NAT,
        tcp_state: TcpState::TimeWait,
        addr_orig: tuple("10.0.0.1", 40000, "192.0.2.7", 80),
        addr_reply: tuple("10.1.0.9", 8080, "10.0.0.100", 40001),
        packets_sent: 6,
        bytes_sent: 399,
        ..ConntrackEntry::default()
    };
    assert_eq!(
        conntrack_summary(&ct),
        "10.0.0.1:40000 -> 192.0.2.7:80 NAT: reply 10.1.0.9:8080 -> 10.0.0.100:40001, \
         time-wait [seen-reply|src-nat], sent 6 pkts/399 B, received 0 pkts/0 B"
    );
    ct.addr_reply = tuple("192.0.2.7", 80, "10.0.0.1", 40000);
    ct.tcp_state = TcpState::None;
    assert!(!conntrack_summary(&ct).contains("NAT"));
    assert!(!conntrack_summary(&ct).contains("none"));
}
