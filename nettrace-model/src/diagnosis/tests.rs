//! Unit tests of the diagnosis on hand-built traces: Go's wording without DNS messages or
//! kernel facts, the kernel facts alone, the thresholds, the order and the JSON form.
use serde_json::json;
use time::macros::datetime;

use super::*;
use crate::{
    AddrTuple, ConntrackEntry, DialTrace, DnsQueryMsg, DnsQueryTrace, DnsQuestion, DnsReplyMsg,
    DnsResType, HttpReqTrace, KernelDataStatus, KernelTcpFacts, NetTrace, PeerCert, SocketOp,
    SocketOpType, SocketTrace, TcpConnTrace, Timestamp, TlsTunnelTrace, UdpConnTrace,
};

fn id(s: &str) -> TraceId {
    TraceId::new(s)
}

fn ms(ms: u32) -> Timestamp {
    Timestamp::Relative(ms)
}

fn trace(net: NetTrace, requests: Vec<HttpReqTrace>) -> HttpTrace {
    HttpTrace {
        net_trace: NetTrace {
            trace_begin_at: Timestamp::Absolute(datetime!(2026-06-01 10:00 UTC)),
            trace_end_at: ms(10_000),
            ..net
        },
        http_requests: requests.into(),
    }
}

fn request(trace_id: &str, conn: &str, error: &str) -> HttpReqTrace {
    HttpReqTrace {
        trace_id: id(trace_id),
        tcp_conn: id(conn),
        req_sent_at: ms(0),
        req_method: "GET".into(),
        req_url: "https://example.test/".into(),
        req_error: error.into(),
        ..Default::default()
    }
}

fn dial(trace_id: &str, established: &str, error: &str) -> DialTrace {
    DialTrace {
        trace_id: id(trace_id),
        dial_begin_at: ms(1),
        dial_end_at: ms(50),
        dst_address: "example.test:443".into(),
        dial_err: error.into(),
        established_conn: id(established),
        ..Default::default()
    }
}

fn tcp(trace_id: &str, connected: bool) -> TcpConnTrace {
    TcpConnTrace {
        trace_id: id(trace_id),
        from_dial: id("d"),
        handshake_begin_at: ms(2),
        handshake_end_at: ms(3),
        connected,
        addr_tuple: AddrTuple::new(
            "10.0.0.2:40000".parse().unwrap(),
            "192.0.2.1:443".parse().unwrap(),
        ),
        ..Default::default()
    }
}

fn codes(findings: &[Finding]) -> Vec<(Code, Severity)> {
    findings.iter().map(|f| (f.code, f.severity)).collect()
}

#[test]
fn a_healthy_trace_has_no_finding() {
    let t = trace(
        NetTrace {
            dials: vec![dial("d", "c", "")].into(),
            tcp_conns: vec![TcpConnTrace {
                kernel: Some(KernelTcpFacts {
                    segs_out: 10,
                    srtt_us: 300,
                    ..Default::default()
                }),
                ..tcp("c", true)
            }]
            .into(),
            kernel_data: Some(KernelDataStatus {
                available: true,
                complete: true,
                ..Default::default()
            }),
            ..Default::default()
        },
        vec![HttpReqTrace {
            resp_recv_at: ms(40),
            resp_status_code: 200,
            ..request("r", "c", "")
        }],
    );
    let findings = diagnose(&t);
    assert!(findings.is_empty(), "{}", render_text(&t, &findings));
    assert_eq!(verdict(&findings), "OK: no problem found");
}

#[test]
fn go_wording_without_dns_messages() {
    for (error, code) in [
        (
            "lookup example.test on 10.0.0.1:53: server misbehaving",
            Code::DnsServfail,
        ),
        (
            "lookup example.test on 10.0.0.1:53: read udp: i/o timeout",
            Code::DnsTimeout,
        ),
    ] {
        let t = trace(
            NetTrace {
                dials: vec![dial("d", "", error)].into(),
                ..Default::default()
            },
            vec![request("r", "", &format!("dial tcp: {error}"))],
        );
        let findings = diagnose(&t);
        assert_eq!(codes(&findings), [(code, Severity::Error)], "{error}");
        assert_eq!(findings[0].evidence, [id("d"), id("r")]);
    }
}

/// A query to a silent nameserver, then the same question answered by another one.
#[test]
fn a_silent_nameserver_that_another_one_covered_is_a_warning() {
    let question = vec![DnsQuestion {
        name: "example.test.".into(),
        res_type: DnsResType::A,
        class: 1,
    }];
    let udp = |trace_id: &str, ns: &str, closed: u32| UdpConnTrace {
        trace_id: id(trace_id),
        from_dial: id("d"),
        from_resolver: true,
        socket_create_at: ms(1),
        conn_close_at: ms(closed),
        addr_tuple: AddrTuple::new("10.0.0.2:5000".parse().unwrap(), ns.parse().unwrap()),
        ..Default::default()
    };
    let query = |trace_id: &str, conn: &str, replied: Option<u32>| DnsQueryTrace {
        trace_id: id(trace_id),
        from_dial: id("d"),
        connection: id(conn),
        dns_query_msgs: vec![DnsQueryMsg {
            sent_at: ms(1),
            id: 7,
            questions: question.clone(),
            ..Default::default()
        }],
        dns_reply_msgs: replied
            .map(|at| DnsReplyMsg {
                recv_at: ms(at),
                id: 7,
                ..Default::default()
            })
            .into_iter()
            .collect(),
    };
    let t = trace(
        NetTrace {
            dials: vec![dial("d", "c", "")].into(),
            udp_conns: vec![
                udp("u1", "10.0.0.1:53", 5001),
                udp("u2", "10.0.0.9:53", 5003),
            ]
            .into(),
            dns_queries: vec![query("q1", "u1", None), query("q2", "u2", Some(5002))].into(),
            tcp_conns: vec![tcp("c", true)].into(),
            ..Default::default()
        },
        vec![request("r", "c", "")],
    );
    let findings = diagnose(&t);
    assert_eq!(codes(&findings), [(Code::DnsTimeout, Severity::Warning)]);
    let finding = &findings[0];
    assert!(
        finding.summary.contains("10.0.0.1:53") && finding.summary.contains("within 5s"),
        "{}",
        finding.summary
    );
    assert!(!finding.summary.contains("10.0.0.9"), "{}", finding.summary);
    assert_eq!(finding.evidence, [id("d"), id("q1"), id("r")]);
}

#[test]
fn tcp_failures_from_kernel_facts_or_error_texts() {
    // Refused, from Go's text alone.
    let t = trace(
        NetTrace {
            dials: vec![dial(
                "d",
                "",
                "dial tcp 192.0.2.1:443: connect: connection refused",
            )]
            .into(),
            tcp_conns: vec![tcp("c", false)].into(),
            ..Default::default()
        },
        vec![request(
            "r",
            "",
            "dial tcp 192.0.2.1:443: connect: connection refused",
        )],
    );
    let findings = diagnose(&t);
    assert_eq!(codes(&findings), [(Code::TcpRefused, Severity::Error)]);
    assert_eq!(findings[0].evidence, [id("c"), id("d"), id("r")]);

    // SYN retransmits without an answer (a loader trace: no dial, no request).
    let mut unanswered = tcp("c", false);
    unanswered.from_dial = TraceId::default();
    unanswered.handshake_end_at = ms(3002);
    unanswered.kernel = Some(KernelTcpFacts {
        syn_retransmits: 2,
        retransmits: 2,
        rto_events: 2,
        ..Default::default()
    });
    let t = trace(
        NetTrace {
            tcp_conns: vec![unanswered].into(),
            ..Default::default()
        },
        vec![],
    );
    let findings = diagnose(&t);
    assert_eq!(
        codes(&findings),
        [(Code::TcpSynUnanswered, Severity::Error)]
    );
    assert!(
        findings[0].summary.contains("2 SYN retransmits over 3s"),
        "{}",
        findings[0].summary
    );

    // Connected after a retransmitted SYN, then lost 10 of 200 data segments.
    let mut lossy = tcp("c", true);
    lossy.handshake_end_at = ms(1003);
    lossy.kernel = Some(KernelTcpFacts {
        syn_retransmits: 1,
        retransmits: 11,
        segs_out: 200,
        srtt_us: 25_000,
        min_rtt_us: 800,
        ..Default::default()
    });
    let t = trace(
        NetTrace {
            dials: vec![dial("d", "c", "")].into(),
            tcp_conns: vec![lossy].into(),
            ..Default::default()
        },
        vec![request("r", "c", "")],
    );
    let findings = diagnose(&t);
    assert_eq!(
        codes(&findings),
        [
            (Code::TcpSynUnanswered, Severity::Warning),
            (Code::TcpRetransmits, Severity::Warning)
        ]
    );
    assert!(
        findings[0].summary.contains("took 1s"),
        "{}",
        findings[0].summary
    );
    assert!(
        findings[1].summary.contains("10 of 200 segments") && findings[1].summary.contains("5.0%"),
        "{}",
        findings[1].summary
    );
    assert!(
        findings[1]
            .details
            .iter()
            .any(|d| d.contains("25ms") && d.contains("800µs"))
    );
}

#[test]
fn a_reset_seen_by_a_read_fails_the_request() {
    let mut conn = tcp("c", true);
    conn.socket_trace = Some(SocketTrace {
        socket_ops: vec![SocketOp {
            op_type: SocketOpType::Read,
            call_at: ms(5),
            return_at: ms(6),
            return_err: "read: connection reset by peer".into(),
            ..Default::default()
        }],
        dropped_ops: 0,
    });
    let t = trace(
        NetTrace {
            dials: vec![dial("d", "c", "")].into(),
            tcp_conns: vec![conn].into(),
            ..Default::default()
        },
        vec![request("r", "c", "read: connection reset by peer")],
    );
    let findings = diagnose(&t);
    assert_eq!(codes(&findings), [(Code::TcpReset, Severity::Error)]);
    assert_eq!(findings[0].evidence, [id("c"), id("d"), id("r")]);
}

fn tunnel(error: &str, not_before: Timestamp, not_after: Timestamp) -> TlsTunnelTrace {
    TlsTunnelTrace {
        trace_id: id("t"),
        tcp_conn: id("c"),
        handshake_begin_at: ms(3),
        handshake_end_at: ms(9),
        handshake_err: error.into(),
        peer_certs: vec![PeerCert {
            subject: "CN=example.test".into(),
            issuer: "CN=Some CA".into(),
            not_before,
            not_after,
            is_ca: false,
        }],
        server_name: "example.test".into(),
        ..Default::default()
    }
}

fn tls_trace(tunnel: TlsTunnelTrace) -> HttpTrace {
    let error = tunnel.handshake_err.clone();
    trace(
        NetTrace {
            dials: vec![dial("d", "c", "")].into(),
            tcp_conns: vec![tcp("c", true)].into(),
            tls_tunnels: vec![tunnel].into(),
            ..Default::default()
        },
        vec![HttpReqTrace {
            tls_tunnel: id("t"),
            ..request("r", "c", &error)
        }],
    )
}

#[test]
fn gos_expired_or_not_yet_valid_is_told_apart_by_the_dates() {
    let go = "x509: certificate has expired or is not yet valid: current time is after";
    let past = Timestamp::Absolute(datetime!(2026-01-01 0:00 UTC));
    let later = Timestamp::Absolute(datetime!(2026-05-01 0:00 UTC));
    let future = Timestamp::Absolute(datetime!(2026-07-01 0:00 UTC));
    let expired = diagnose(&tls_trace(tunnel(go, past, later)));
    assert_eq!(codes(&expired), [(Code::TlsCertExpired, Severity::Error)]);
    assert!(
        expired[0].summary.contains("31 days before"),
        "{}",
        expired[0].summary
    );
    assert!(
        expired[0]
            .summary
            .contains("valid 2026-01-01 to 2026-05-01")
    );
    assert_eq!(expired[0].evidence, [id("t"), id("c"), id("r")]);
    let early = diagnose(&tls_trace(tunnel(go, future, future)));
    assert_eq!(codes(&early), [(Code::TlsCertNotYetValid, Severity::Error)]);
}

#[test]
fn an_insecure_tunnel_whose_certificate_failed_is_a_warning() {
    let mut insecure = tunnel("", Timestamp::Undefined, Timestamp::Undefined);
    insecure.insecure = true;
    insecure.cert_verify_err = "invalid peer certificate: UnknownIssuer".into();
    let findings = diagnose(&tls_trace(insecure));
    assert_eq!(codes(&findings), [(Code::TlsUnknownCa, Severity::Warning)]);
    assert!(findings[0].summary.contains("CN=Some CA"));
}

#[test]
fn repeated_requests_are_no_loop_but_a_chain_back_to_a_url_is() {
    let hop = |trace_id: &str, url: &str, status: u16| HttpReqTrace {
        req_url: url.into(),
        resp_status_code: status,
        resp_recv_at: ms(5),
        ..request(trace_id, "c", "")
    };
    // --repeat of a URL that redirects once: two chains, no loop.
    let repeated = trace(
        NetTrace::default(),
        vec![
            hop("r1", "http://a/redirect/1", 302),
            hop("r2", "http://a/", 200),
            hop("r3", "http://a/redirect/1", 302),
            hop("r4", "http://a/", 200),
        ],
    );
    assert!(diagnose(&repeated).is_empty());
    // a -> b -> a -> c: a loop the client got out of.
    let looped = trace(
        NetTrace::default(),
        vec![
            hop("r1", "http://a/", 301),
            hop("r2", "http://b/", 302),
            hop("r3", "http://a/", 302),
            hop("r4", "http://c/", 200),
        ],
    );
    let findings = diagnose(&looped);
    assert_eq!(
        codes(&findings),
        [(Code::HttpRedirectLoop, Severity::Warning)]
    );
    assert_eq!(
        findings[0].evidence,
        [id("r1"), id("r2"), id("r3"), id("r4")]
    );
    assert!(
        findings[0].summary.contains("after 2 hop(s)"),
        "{}",
        findings[0].summary
    );
}

#[test]
fn request_timeouts_name_the_running_phase() {
    // Connecting: the dial's attempt never completed.
    let mut connecting = tcp("c", false);
    connecting.handshake_end_at = ms(300);
    let t = trace(
        NetTrace {
            dials: vec![dial("d", "", "canceled: ReqTimeout")].into(),
            tcp_conns: vec![connecting].into(),
            ..Default::default()
        },
        vec![request("r", "", "ReqTimeout timed out after 300ms")],
    );
    let findings = diagnose(&t);
    let timeout = findings
        .iter()
        .find(|f| f.code == Code::RequestTimeout)
        .unwrap_or_else(|| panic!("{}", render_text(&t, &findings)));
    // 300 ms without a SYN retransmit is no evidence of filtering.
    assert!(findings.iter().all(|f| f.code != Code::TcpSynUnanswered));
    assert!(
        timeout.summary.contains("(TCP handshake)"),
        "{}",
        timeout.summary
    );
    assert_eq!(timeout.evidence, [id("r"), id("c")]);

    // Receiving the body: the head came, then Go's client timeout.
    let t = trace(
        NetTrace {
            dials: vec![dial("d", "c", "")].into(),
            tcp_conns: vec![tcp("c", true)].into(),
            ..Default::default()
        },
        vec![HttpReqTrace {
            resp_recv_at: ms(20),
            resp_status_code: 200,
            ..request(
                "r",
                "c",
                "context deadline exceeded (Client.Timeout exceeded while reading body)",
            )
        }],
    );
    let findings = diagnose(&t);
    assert_eq!(codes(&findings), [(Code::RequestTimeout, Severity::Error)]);
    assert!(
        findings[0].summary.contains("(transfer)"),
        "{}",
        findings[0].summary
    );
}

#[test]
fn nat_is_information_with_both_addresses() {
    let mut conn = tcp("c", true);
    conn.conntrack = Some(ConntrackEntry {
        addr_orig: AddrTuple::new(
            "10.0.0.2:40000".parse().unwrap(),
            "192.0.2.1:443".parse().unwrap(),
        ),
        addr_reply: AddrTuple::new(
            "172.16.0.5:8443".parse().unwrap(),
            "10.0.0.2:40000".parse().unwrap(),
        ),
        ..Default::default()
    });
    let mut mirrored = tcp("m", true);
    mirrored.conntrack = Some(ConntrackEntry {
        addr_orig: AddrTuple::new(
            "10.0.0.2:40001".parse().unwrap(),
            "192.0.2.1:443".parse().unwrap(),
        ),
        addr_reply: AddrTuple::new(
            "192.0.2.1:443".parse().unwrap(),
            "10.0.0.2:40001".parse().unwrap(),
        ),
        ..Default::default()
    });
    let t = trace(
        NetTrace {
            tcp_conns: vec![conn, mirrored].into(),
            ..Default::default()
        },
        vec![],
    );
    let findings = diagnose(&t);
    assert_eq!(codes(&findings), [(Code::Nat, Severity::Info)]);
    assert_eq!(findings[0].evidence, [id("c")]);
    assert!(
        findings[0]
            .summary
            .contains("destination 192.0.2.1:443 translated to 172.16.0.5:8443 (DNAT)"),
        "{}",
        findings[0].summary
    );
    assert_eq!(verdict(&findings), "OK: no problem found");
}

#[test]
fn order_json_and_trust_warnings() {
    let t = trace(
        NetTrace {
            kernel_data: Some(KernelDataStatus {
                available: true,
                complete: false,
                lost_events: 12,
                ..Default::default()
            }),
            dials: vec![dial("d", "", "lookup example.test: no such host")].into(),
            ..Default::default()
        },
        vec![request("r", "", "no such host")],
    );
    let captures = [CaptureSummary {
        interface: "eth0".into(),
        packets: 100,
        truncated: true,
        lost_packets: 3,
    }];
    let findings = diagnose_with_captures(&t, &captures);
    assert_eq!(
        codes(&findings),
        [
            (Code::DnsNxdomain, Severity::Error),
            (Code::KernelEventsLost, Severity::Warning),
            (Code::CaptureTruncated, Severity::Warning),
        ]
    );
    assert!(findings[1].summary.contains("lost 12 events"));
    assert!(findings[2].summary.contains("eth0") && findings[2].summary.contains("lost 3"));
    let json = serde_json::to_value(&findings[1]).unwrap();
    assert_eq!(json["code"], "kernel-events-lost");
    assert_eq!(json["severity"], "warning");
    assert_eq!(json["evidence"], json!([]));
    assert!(json.get("details").is_none());
    assert!(json["nextStep"].is_string());
    let back: Vec<Finding> =
        serde_json::from_value(serde_json::to_value(&findings).unwrap()).unwrap();
    assert_eq!(back, findings);
    let text = render_text(&t, &findings);
    assert!(
        text.starts_with("verdict: FAILED: example.test does not exist"),
        "{text}"
    );
    assert!(text.contains("evidence: dial d, request r"), "{text}");
}

#[test]
fn an_unexplained_failure_is_still_a_failure() {
    let t = trace(
        NetTrace {
            dials: vec![dial("d", "c", "")].into(),
            tcp_conns: vec![tcp("c", true)].into(),
            ..Default::default()
        },
        vec![request("r", "c", "unexpected EOF")],
    );
    let findings = diagnose(&t);
    assert_eq!(codes(&findings), [(Code::RequestFailed, Severity::Error)]);
    assert!(verdict(&findings).contains("unexpected EOF"));
}
