//! The diagnosis never panics, whatever a trace file holds: random timestamps (relative,
//! absolute at the ends of the calendar, undefined), error texts, kernel facts and references
//! that lead nowhere; its findings are sorted and name only non-empty IDs.
use nettrace_model::diagnosis::{self, CaptureSummary};
use nettrace_model::{
    DialTrace, DnsQueryMsg, DnsQueryTrace, DnsReplyMsg, HttpReqTrace, HttpTrace, KernelDataStatus,
    KernelTcpFacts, NetTrace, PeerCert, TcpConnTrace, Timestamp, TlsTunnelTrace, TraceId,
};
use proptest::prelude::*;
use time::OffsetDateTime;

fn timestamp() -> impl Strategy<Value = Timestamp> {
    prop_oneof![
        Just(Timestamp::Undefined),
        any::<u32>().prop_map(Timestamp::Relative),
        (0u32..5000).prop_map(Timestamp::Relative),
        prop_oneof![
            Just(OffsetDateTime::UNIX_EPOCH),
            Just(time::macros::datetime!(0000-01-01 0:00 UTC)),
            Just(time::macros::datetime!(9999-12-31 23:59:59.999999999 UTC)),
        ]
        .prop_map(Timestamp::Absolute),
    ]
}

fn error() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        "",
        "no such host",
        "server misbehaving",
        "lookup x: i/o timeout",
        "connection refused",
        "connection timed out",
        "connection reset by peer",
        "x509: certificate has expired or is not yet valid",
        "invalid peer certificate: UnknownIssuer",
        "x509: certificate is valid for , not x",
        "certificate is only valid for ",
        "received corrupt message of type InvalidContentType",
        "TLS handshake timed out after 1s",
        "ReqTimeout timed out after 1s",
        "stopped after 10 redirects",
        "the proxy refused CONNECT x: HTTP/1.1 407",
        "canceled: ReqTimeout",
    ])
    .prop_map(str::to_owned)
}

/// An ID out of a small set, so that references sometimes resolve and sometimes do not.
fn id() -> impl Strategy<Value = TraceId> {
    prop::sample::select(vec!["", "a", "b", "c", "d"]).prop_map(TraceId::new)
}

fn kernel() -> impl Strategy<Value = Option<KernelTcpFacts>> {
    prop::option::of(
        (
            any::<u32>(),
            any::<u32>(),
            any::<u32>(),
            any::<u32>(),
            any::<bool>(),
        )
            .prop_map(|(syn, retx, segs, srtt, rst)| KernelTcpFacts {
                syn_retransmits: syn,
                retransmits: retx,
                segs_out: segs,
                srtt_us: srtt,
                rst_received: rst,
                ..Default::default()
            }),
    )
}

prop_compose! {
    fn trace()(
        begin in timestamp(),
        times in prop::collection::vec(timestamp(), 12),
        errors in prop::collection::vec(error(), 6),
        ids in prop::collection::vec(id(), 12),
        kernel in kernel(),
        connected in any::<bool>(),
        status in prop::sample::select(vec![0u16, 200, 302, 407, 500]),
        rcode in 0u16..6,
        truncated in any::<bool>(),
        lost in any::<u64>(),
    ) -> HttpTrace {
        HttpTrace {
            net_trace: NetTrace {
                trace_begin_at: begin,
                trace_end_at: times[11],
                dials: vec![DialTrace {
                    trace_id: ids[0].clone(),
                    dial_begin_at: times[0],
                    dial_end_at: times[1],
                    dial_err: errors[0].clone(),
                    dst_address: "x:1".into(),
                    established_conn: ids[1].clone(),
                    ..Default::default()
                }]
                .into(),
                tcp_conns: vec![TcpConnTrace {
                    trace_id: ids[2].clone(),
                    from_dial: ids[3].clone(),
                    handshake_begin_at: times[2],
                    handshake_end_at: times[3],
                    connected,
                    kernel,
                    ..Default::default()
                }]
                .into(),
                dns_queries: vec![DnsQueryTrace {
                    trace_id: ids[4].clone(),
                    from_dial: ids[5].clone(),
                    connection: ids[6].clone(),
                    dns_query_msgs: vec![DnsQueryMsg { sent_at: times[4], ..Default::default() }],
                    dns_reply_msgs: vec![DnsReplyMsg {
                        recv_at: times[5],
                        truncated,
                        rcode: rcode.into(),
                        ..Default::default()
                    }],
                }]
                .into(),
                tls_tunnels: vec![TlsTunnelTrace {
                    trace_id: ids[7].clone(),
                    tcp_conn: ids[8].clone(),
                    handshake_begin_at: times[6],
                    handshake_end_at: times[7],
                    handshake_err: errors[1].clone(),
                    peer_certs: vec![PeerCert {
                        not_before: times[8],
                        not_after: times[9],
                        ..Default::default()
                    }],
                    ..Default::default()
                }]
                .into(),
                kernel_data: Some(KernelDataStatus {
                    available: true,
                    lost_events: lost,
                    ..Default::default()
                }),
                ..Default::default()
            },
            http_requests: vec![
                HttpReqTrace {
                    trace_id: ids[9].clone(),
                    tcp_conn: ids[10].clone(),
                    req_sent_at: times[10],
                    req_error: errors[2].clone(),
                    resp_recv_at: times[5],
                    resp_status_code: status,
                    ..Default::default()
                },
                HttpReqTrace {
                    trace_id: ids[11].clone(),
                    req_sent_at: times[0],
                    req_error: errors[3].clone(),
                    resp_status_code: status,
                    ..Default::default()
                },
            ]
            .into(),
        }
    }
}

proptest! {
    #[test]
    fn diagnosis_never_panics_and_its_findings_are_sorted(trace in trace()) {
        let captures = [CaptureSummary { truncated: true, ..Default::default() }];
        let findings = diagnosis::diagnose_with_captures(&trace, &captures);
        prop_assert!(findings.windows(2).all(|w| w[0].severity > w[1].severity
            || (w[0].severity == w[1].severity && w[0].code <= w[1].code)));
        for finding in &findings {
            prop_assert!(finding.evidence.iter().all(|id| !id.is_empty()));
            prop_assert!(!finding.summary.is_empty());
        }
        let _ = diagnosis::render_text(&trace, &findings);
        let _ = diagnosis::verdict(&findings);
    }
}

/// A trace of `n` requests, each to a refused port through its own dial (as `nettrace get
/// --repeat` writes one): every request yields its own `tcp-refused`.
fn refused_requests(n: u32) -> HttpTrace {
    let mut trace = HttpTrace {
        net_trace: NetTrace {
            trace_begin_at: Timestamp::Absolute(OffsetDateTime::UNIX_EPOCH),
            trace_end_at: Timestamp::Relative(n * 2),
            ..Default::default()
        },
        ..Default::default()
    };
    for i in 0..n {
        let (req, dial, conn) = (
            TraceId::new(format!("r{i}")),
            TraceId::new(format!("d{i}")),
            TraceId::new(format!("c{i}")),
        );
        trace.net_trace.dials.push(DialTrace {
            trace_id: dial.clone(),
            dial_begin_at: Timestamp::Relative(i * 2),
            dial_end_at: Timestamp::Relative(i * 2 + 1),
            dial_err: "connection refused".into(),
            dst_address: "127.0.0.1:1".into(),
            ..Default::default()
        });
        trace.net_trace.tcp_conns.push(TcpConnTrace {
            trace_id: conn,
            from_dial: dial,
            handshake_begin_at: Timestamp::Relative(i * 2),
            handshake_end_at: Timestamp::Relative(i * 2 + 1),
            ..Default::default()
        });
        trace.http_requests.push(HttpReqTrace {
            trace_id: req,
            req_sent_at: Timestamp::Relative(i * 2),
            req_error: "connection refused".into(),
            ..Default::default()
        });
    }
    trace
}

/// Every request of a large trace keeps its own finding and evidence (the time is printed:
/// see BENCHMARKS.md).
#[test]
fn many_failed_requests_each_get_their_finding() {
    for n in [500u32, 2_000] {
        let trace = refused_requests(n);
        let started = std::time::Instant::now();
        let findings = diagnosis::diagnose(&trace);
        let elapsed = started.elapsed();
        println!("{n} refused requests: {elapsed:?}");
        assert_eq!(findings.len(), n as usize);
        let last = n - 1;
        assert_eq!(
            findings[last as usize].evidence,
            [
                TraceId::new(format!("c{last}")),
                TraceId::new(format!("d{last}")),
                TraceId::new(format!("r{last}"))
            ]
        );
    }
}

/// How long phases and diagnosis take for 2,000, 8,000 and 20,000 refused requests (printed;
/// BENCHMARKS.md). Ignored by default: run it in release,
/// `cargo test --release -p nettrace-model --test model_diagnosis timing -- --ignored --nocapture`.
#[test]
#[ignore = "timing; run in release with --ignored --nocapture"]
fn timing_of_phases_and_diagnosis_for_large_traces() {
    for n in [2_000u32, 8_000, 20_000] {
        let trace = refused_requests(n);
        let started = std::time::Instant::now();
        let phases = nettrace_model::phases::request_phases(&trace);
        let phases_time = started.elapsed();
        let started = std::time::Instant::now();
        let findings = diagnosis::diagnose(&trace);
        let diagnose_time = started.elapsed();
        let started = std::time::Instant::now();
        let waterfall = nettrace_model::waterfall::render(&trace);
        let waterfall_time = started.elapsed();
        let traces = [trace];
        let started = std::time::Instant::now();
        let har = nettrace_model::har::to_har(&traces);
        let har_time = started.elapsed();
        let started = std::time::Instant::now();
        let html = nettrace_model::html::render(&traces, None);
        let html_time = started.elapsed();
        println!(
            "{n} refused requests: request_phases {phases_time:?}, diagnose {diagnose_time:?}, \
             waterfall {waterfall_time:?}, har {har_time:?}, html {html_time:?}"
        );
        assert!(waterfall.matches("connection refused").count() >= n as usize);
        assert_eq!(
            har["log"]["entries"].as_array().map(Vec::len),
            Some(n as usize)
        );
        assert!(html.contains(&format!("c{}", n - 1)), "no last connection");
        assert_eq!(phases.len(), n as usize);
        assert_eq!(findings.len(), n as usize);
        let last = (n - 1) as usize;
        assert_eq!(phases[last].dial, TraceId::new(format!("d{last}")));
        assert_eq!(phases[last].tcp_conn, TraceId::new(format!("c{last}")));
    }
}
