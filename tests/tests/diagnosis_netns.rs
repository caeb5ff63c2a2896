//! Root scenarios of the diagnosis, each in a network namespace the test creates, with nft
//! rules that provoke what the kernel facts or conntrack then show: an unanswered SYN
//! (`tcp-syn-unanswered`), lost data segments (`tcp-retransmits`), and NAT (`nat`).
use std::net::Ipv4Addr;
use std::time::Duration;

use nettrace::client::{HttpClient, HttpClientConfig, KernelMode, RequestBody, TraceOptions};
use nettrace::model::diagnosis::{self, Code, Severity};
use nettrace_tests::findings::{assert_evidence, expect_code};
use nettrace_tests::fixtures::dns::Zone;
use nettrace_tests::netns::NetNs;
use nettrace_tests::scenario::{self, EXAMPLE_HOST, bounded_for, dump, get_ok, only};
use nettrace_tests::{NFT, require_root, require_tools};

fn kernel_client(config: HttpClientConfig, conntrack: bool) -> HttpClient {
    HttpClient::new(
        config,
        TraceOptions {
            kernel: KernelMode::Require,
            conntrack,
            ..scenario::full_options()
        },
    )
    .unwrap_or_else(|e| panic!("kernel tracing must start as root: {e:#?}"))
}

fn namespace(test: &str, tag: &str) -> Option<NetNs> {
    if !require_root(test) || !require_tools(test, &[NFT]) {
        return None;
    }
    Some(NetNs::new(tag).unwrap_or_else(|e| panic!("creating a namespace: {e}")))
}

/// The server's side drops every SYN to its port: the client's SYN is retransmitted until
/// the handshake limit, and the diagnosis says the SYN went unanswered, with the count.
#[test]
fn a_dropped_syn_is_tcp_syn_unanswered_with_its_retransmits() {
    let test = "a_dropped_syn_is_tcp_syn_unanswered_with_its_retransmits";
    let Some(ns) = namespace(test, "diag-syn") else {
        return;
    };
    let trace = ns.block_on(|| async {
        let server = scenario::plain_server().await;
        ns.nft(&format!(
            "table inet diag {{ chain pre {{ type filter hook prerouting priority 0;
                tcp dport {} tcp flags & (syn | ack) == syn drop;
            }}
        }}",
            server.addr().port()
        ));
        // The SYN is retransmitted after 1 s and 3 s: the limit lets both go.
        let client = kernel_client(
            HttpClientConfig {
                tcp_handshake_timeout: Some(Duration::from_millis(3500)),
                ..Default::default()
            },
            false,
        );
        let url = server.url("/");
        let result = bounded_for(Duration::from_secs(10), "GET", client.get(&url)).await;
        assert!(result.is_err(), "the SYN is dropped, the GET must fail");
        scenario::trace(&client, "dropped SYN")
    });
    let findings = diagnosis::diagnose(&trace);
    let finding = expect_code(&findings, Code::TcpSynUnanswered, &trace);
    assert_eq!(finding.severity, Severity::Error);
    assert_eq!(findings[0].code, Code::TcpSynUnanswered, "the top finding");
    let conn = only(&trace.net_trace.tcp_conns, "TCP connection", &trace);
    let kernel = conn
        .kernel
        .as_ref()
        .unwrap_or_else(|| panic!("no kernel facts: {}", dump(&trace)));
    assert!(kernel.syn_retransmits >= 2, "{kernel:?}");
    let dial = only(&trace.net_trace.dials, "dial", &trace);
    let req = only(&trace.http_requests, "request", &trace);
    assert_evidence(
        finding,
        &[&conn.trace_id, &dial.trace_id, &req.trace_id],
        &trace,
    );
    assert!(
        finding
            .summary
            .contains(&format!("{} SYN retransmits", kernel.syn_retransmits)),
        "{}",
        finding.summary
    );
    assert!(finding.summary.contains("filtered"), "{}", finding.summary);
}

/// The server's side drops two of the client's first data segments: the upload goes through
/// after retransmissions, and the diagnosis gives their share of the segments sent.
#[test]
fn lost_data_segments_are_tcp_retransmits_with_their_share() {
    let test = "lost_data_segments_are_tcp_retransmits_with_their_share";
    let Some(ns) = namespace(test, "diag-loss") else {
        return;
    };
    ns.sysctl("net.netfilter.nf_conntrack_acct", "1");
    let trace = ns.block_on(|| async {
        let server = scenario::plain_server().await;
        // conntrack counts packets before the filter: the retransmissions (packets 5 on) pass.
        ns.nft(&format!(
            "table inet diag {{ chain pre {{ type filter hook prerouting priority 0;
                tcp dport {} ct original packets 3-4 meta length > 200 drop;
            }}
        }}",
            server.addr().port()
        ));
        let config = HttpClientConfig {
            disable_keep_alive: true,
            ..Default::default()
        };
        let client = kernel_client(config, false);
        let request = http::Request::post(server.url("/status/200"))
            .body(RequestBody::from(vec![b'u'; 200_000]))
            .unwrap_or_else(|e| panic!("{e}"));
        let response = bounded_for(
            Duration::from_secs(20),
            "lossy POST",
            client.request(request),
        )
        .await
        .unwrap_or_else(|e| panic!("the POST succeeds despite the losses: {e}"));
        assert_eq!(response.status(), 200);
        let _ = bounded_for(
            Duration::from_secs(10),
            "body",
            response.into_body().bytes(),
        )
        .await;
        scenario::trace_once_closed(&client).await.0
    });
    let findings = diagnosis::diagnose(&trace);
    assert!(
        findings.iter().all(|f| f.severity != Severity::Error),
        "{}",
        diagnosis::render_text(&trace, &findings)
    );
    let finding = expect_code(&findings, Code::TcpRetransmits, &trace);
    let conn = only(&trace.net_trace.tcp_conns, "TCP connection", &trace);
    let kernel = conn
        .kernel
        .as_ref()
        .unwrap_or_else(|| panic!("{}", dump(&trace)));
    let data = kernel.retransmits - kernel.syn_retransmits;
    assert!(data >= 1, "{kernel:?}");
    let req = only(&trace.http_requests, "request", &trace);
    assert_evidence(finding, &[&conn.trace_id, &req.trace_id], &trace);
    assert!(
        finding
            .summary
            .contains(&format!("{data} of {} segments", kernel.segs_out)),
        "{}",
        finding.summary
    );
    assert!(finding.summary.contains('%'), "{}", finding.summary);
}

/// The address `example.test` resolves to; DNATed to 127.0.0.1.
const VIRTUAL_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 3);

/// nft DNATs the connection to the HTTP fixture: conntrack shows it, and the diagnosis says
/// where the connection really went.
#[test]
fn a_dnat_rule_is_nat_with_both_addresses() {
    let test = "a_dnat_rule_is_nat_with_both_addresses";
    let Some(ns) = namespace(test, "diag-nat") else {
        return;
    };
    let trace = ns.block_on(|| async {
        let dns = scenario::dns_with(Zone::new().a(EXAMPLE_HOST, [VIRTUAL_IP])).await;
        let server = scenario::plain_server().await;
        ns.nft(&format!(
            "table ip diag {{ chain out {{ type nat hook output priority -100;
                ip daddr {VIRTUAL_IP} dnat to 127.0.0.1;
            }}
        }}"
        ));
        let client = kernel_client(
            HttpClientConfig {
                disable_keep_alive: true,
                ..scenario::config_with_dns(&dns)
            },
            true,
        );
        get_ok(&client, &server.url_with_host(EXAMPLE_HOST, "/")).await;
        scenario::trace_once_closed(&client).await.0
    });
    let findings = diagnosis::diagnose(&trace);
    assert!(
        findings.iter().all(|f| f.severity != Severity::Error),
        "{}",
        diagnosis::render_text(&trace, &findings)
    );
    let finding = expect_code(&findings, Code::Nat, &trace);
    assert_eq!(finding.severity, Severity::Info);
    let conn = trace
        .net_trace
        .tcp_conns
        .iter()
        .find(|c| !c.from_resolver)
        .unwrap_or_else(|| panic!("{}", dump(&trace)));
    assert!(conn.conntrack.is_some(), "{}", dump(&trace));
    assert_evidence(finding, &[&conn.trace_id], &trace);
    assert!(
        finding
            .summary
            .contains(&format!("destination {VIRTUAL_IP}:"))
            && finding.summary.contains("127.0.0.1:")
            && finding.summary.contains("DNAT"),
        "{}",
        finding.summary
    );
}
