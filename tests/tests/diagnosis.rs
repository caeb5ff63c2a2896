//! The diagnosis (`nettrace_model::diagnosis`) of real traces: each loopback scenario that
//! provokes a failure or a slowness yields its code, with the evidence (trace IDs) of the
//! records that show it; a healthy request yields no error finding.
//!
//! Root scenarios (netns, nft, kernel facts) are in `diagnosis_netns.rs`; the trust warnings
//! (lost kernel events, truncated capture) in `diagnosis_trust.rs`.
use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use http::Uri;
use nettrace::client::{HttpClientConfig, TraceOptions};
use nettrace::model::diagnosis::{self, Code, Finding, Severity};
use nettrace::model::{DnsRCode, HttpTrace, TraceId};
use nettrace_tests::findings::{assert_evidence, expect_code};
use nettrace_tests::fixtures::broken::{BrokenServer, Misbehaviour, RefusingPort};
use nettrace_tests::fixtures::dns::{Behaviour, Zone};
use nettrace_tests::fixtures::net::V4;
use nettrace_tests::fixtures::proxy::{ProxyOptions, ProxyServer};
use nettrace_tests::fixtures::tls::{LeafKind, ServerTlsOptions, WRONG_HOST_NAME};
use nettrace_tests::scenario::{
    self, EXAMPLE_HOST, bounded_for, dump, get_err, get_ok, only, tls_tunnel,
};

/// The findings of `trace`, checked to be sorted (errors, then warnings, then information).
fn diagnosed(trace: &HttpTrace) -> Vec<Finding> {
    let findings = diagnosis::diagnose(trace);
    // Shown with --nocapture.
    println!("{}", diagnosis::render_text(trace, &findings));
    assert!(
        findings.windows(2).all(|w| w[0].severity >= w[1].severity),
        "not sorted by severity:\n{}",
        diagnosis::render_text(trace, &findings)
    );
    findings
}

/// The top finding is an error with `code` (the verdict names it).
fn assert_top_error(findings: &[Finding], code: Code, trace: &HttpTrace) {
    let text = diagnosis::render_text(trace, findings);
    assert!(
        findings
            .first()
            .is_some_and(|f| f.code == code && f.severity == Severity::Error),
        "{code} is not the top error:\n{text}"
    );
    assert!(diagnosis::verdict(findings).starts_with("FAILED"), "{text}");
}

fn assert_no_error(findings: &[Finding], trace: &HttpTrace) {
    assert!(
        findings.iter().all(|f| f.severity != Severity::Error),
        "{}",
        diagnosis::render_text(trace, findings)
    );
}

#[tokio::test]
async fn a_healthy_request_has_no_finding() {
    let dns = scenario::example_dns().await;
    let server = scenario::plain_server().await;
    let client = scenario::client(scenario::config_with_dns(&dns), scenario::full_options());
    for path in ["/", "/bytes/100000", "/redirect/2"] {
        get_ok(&client, &server.url_with_host(EXAMPLE_HOST, path)).await;
    }
    let trace = scenario::trace(&client, "healthy");
    let findings = diagnosed(&trace);
    assert!(
        findings.is_empty(),
        "{}",
        diagnosis::render_text(&trace, &findings)
    );
    assert!(diagnosis::verdict(&findings).starts_with("OK"));
}

#[tokio::test]
async fn nxdomain_names_the_dial_the_queries_and_the_request() {
    let dns = scenario::dns_with(Zone::new().behaviour("gone.test", Behaviour::NxDomain)).await;
    let client = scenario::client(scenario::config_with_dns(&dns), scenario::full_options());
    get_err(&client, "http://gone.test:8080/").await;
    let trace = scenario::trace(&client, "NXDOMAIN");
    let findings = diagnosed(&trace);
    assert_top_error(&findings, Code::DnsNxdomain, &trace);
    let finding = expect_code(&findings, Code::DnsNxdomain, &trace);
    let dial = only(&trace.net_trace.dials, "dial", &trace);
    let req = only(&trace.http_requests, "request", &trace);
    let mut ids = vec![&dial.trace_id, &req.trace_id];
    ids.extend(trace.net_trace.dns_queries.iter().map(|q| &q.trace_id));
    assert_evidence(finding, &ids, &trace);
    assert!(finding.summary.contains("gone.test"), "{}", finding.summary);
    assert!(
        finding.summary.contains(&dns.addr().to_string()),
        "names the nameserver: {}",
        finding.summary
    );
    // The NXDOMAIN explains the failure: no generic one.
    assert!(findings.iter().all(|f| f.code != Code::RequestFailed));
}

#[tokio::test]
async fn servfail_everywhere_is_an_error_and_once_a_warning() {
    let dns = scenario::dns_with(Zone::new().behaviour("flaky.test", Behaviour::ServFail)).await;
    let client = scenario::client(scenario::config_with_dns(&dns), scenario::full_options());
    get_err(&client, "http://flaky.test:8080/").await;
    let trace = scenario::trace(&client, "SERVFAIL");
    let findings = diagnosed(&trace);
    assert_top_error(&findings, Code::DnsServfail, &trace);
    let finding = expect_code(&findings, Code::DnsServfail, &trace);
    let dial = only(&trace.net_trace.dials, "dial", &trace);
    let req = only(&trace.http_requests, "request", &trace);
    assert_evidence(finding, &[&dial.trace_id, &req.trace_id], &trace);
    assert!(finding.summary.contains("SERVFAIL"), "{}", finding.summary);

    // First nameserver fails, the second answers: a warning naming the failing one.
    let failing =
        scenario::dns_with(Zone::new().behaviour(EXAMPLE_HOST, Behaviour::ServFail)).await;
    let working = scenario::example_dns().await;
    let server = scenario::plain_server().await;
    let config = HttpClientConfig {
        nameservers: vec![failing.addr(), working.addr()],
        ..Default::default()
    };
    let client = scenario::client(config, scenario::full_options());
    get_ok(&client, &server.url_with_host(EXAMPLE_HOST, "/")).await;
    let trace = scenario::trace(&client, "SERVFAIL then OK");
    let findings = diagnosed(&trace);
    assert_no_error(&findings, &trace);
    let finding = expect_code(&findings, Code::DnsServfail, &trace);
    assert_eq!(finding.severity, Severity::Warning);
    assert!(
        finding.summary.contains(&failing.addr().to_string())
            && !finding.summary.contains(&working.addr().to_string()),
        "{}",
        finding.summary
    );
    let servfail_queries: Vec<&TraceId> = trace
        .net_trace
        .dns_queries
        .iter()
        .filter(|q| {
            q.dns_reply_msgs
                .iter()
                .any(|r| r.rcode == DnsRCode::SERV_FAIL)
        })
        .map(|q| &q.trace_id)
        .collect();
    assert!(!servfail_queries.is_empty(), "{}", dump(&trace));
    assert_evidence(finding, &servfail_queries, &trace);
}

/// A silent nameserver and a 1 s request limit: the DNS timeout names the nameserver and how
/// long it was waited for, and the request timeout says it fired while resolving.
#[tokio::test]
async fn a_silent_nameserver_is_a_dns_timeout_and_the_request_timeout_says_dns() {
    let silent = scenario::dns_with(Zone::new().behaviour(EXAMPLE_HOST, Behaviour::Silence)).await;
    let config = HttpClientConfig {
        req_timeout: Some(Duration::from_secs(1)),
        ..scenario::config_with_dns(&silent)
    };
    let client = scenario::client(config, scenario::full_options());
    get_err(&client, &format!("http://{EXAMPLE_HOST}:8080/")).await;
    let trace = scenario::trace(&client, "silent DNS");
    let findings = diagnosed(&trace);
    assert_top_error(&findings, Code::DnsTimeout, &trace);
    let finding = expect_code(&findings, Code::DnsTimeout, &trace);
    assert!(
        finding.summary.contains(&silent.addr().to_string()),
        "names the nameserver: {}",
        finding.summary
    );
    assert!(
        ["waited 9", "waited 1s", "waited 1."]
            .iter()
            .any(|w| finding.summary.contains(w)),
        "says how long (about 1 s): {}",
        finding.summary
    );
    let dial = only(&trace.net_trace.dials, "dial", &trace);
    let queries: Vec<&TraceId> = trace
        .net_trace
        .dns_queries
        .iter()
        .map(|q| &q.trace_id)
        .collect();
    assert!(!queries.is_empty(), "{}", dump(&trace));
    let mut ids = vec![&dial.trace_id];
    ids.extend(queries.iter().copied());
    assert_evidence(finding, &ids, &trace);

    let timeout = expect_code(&findings, Code::RequestTimeout, &trace);
    assert_eq!(timeout.severity, Severity::Error);
    assert!(timeout.summary.contains("(dns)"), "{}", timeout.summary);
    let req = only(&trace.http_requests, "request", &trace);
    assert_evidence(timeout, &[&req.trace_id], &trace);
    assert!(
        queries.iter().any(|q| timeout.evidence.contains(q)),
        "names the silent query: {:?}",
        timeout.evidence
    );
}

#[tokio::test]
async fn a_truncated_answer_says_the_resolver_fell_back_to_tcp() {
    let zone = Zone::new()
        .a(EXAMPLE_HOST, [Ipv4Addr::LOCALHOST])
        .behaviour(EXAMPLE_HOST, Behaviour::TruncateUdp);
    let dns = scenario::dns_with(zone).await;
    let server = scenario::plain_server().await;
    let client = scenario::client(scenario::config_with_dns(&dns), scenario::full_options());
    get_ok(&client, &server.url_with_host(EXAMPLE_HOST, "/")).await;
    let trace = scenario::trace(&client, "TC");
    let findings = diagnosed(&trace);
    assert_no_error(&findings, &trace);
    let truncated: Vec<&Finding> = findings
        .iter()
        .filter(|f| f.code == Code::DnsTruncated)
        .collect();
    // One per record type (A and AAAA), each answered over TCP.
    assert_eq!(
        truncated.len(),
        2,
        "{}",
        diagnosis::render_text(&trace, &findings)
    );
    let net = &trace.net_trace;
    for finding in truncated {
        assert_eq!(finding.severity, Severity::Info);
        assert!(finding.summary.contains("TCP"), "{}", finding.summary);
        let udp_query = net
            .dns_queries
            .iter()
            .find(|q| {
                finding.evidence.contains(&q.trace_id) && net.udp_conns.get(&q.connection).is_some()
            })
            .unwrap_or_else(|| panic!("no UDP query in {:?}", finding.evidence));
        assert!(udp_query.dns_reply_msgs.iter().any(|r| r.truncated));
        let tcp_retry = net
            .tcp_conns
            .iter()
            .find(|c| c.from_resolver && finding.evidence.contains(&c.trace_id))
            .unwrap_or_else(|| panic!("no resolver TCP connection in {:?}", finding.evidence));
        assert!(tcp_retry.connected);
    }
}

#[tokio::test]
async fn a_refused_port_is_tcp_refused_with_its_connection() {
    let refusing = RefusingPort::new(V4).unwrap_or_else(|e| panic!("{e:?}"));
    let client = scenario::client(HttpClientConfig::default(), scenario::full_options());
    get_err(&client, &format!("http://{}/", refusing.addr())).await;
    let trace = scenario::trace(&client, "refused");
    let findings = diagnosed(&trace);
    assert_top_error(&findings, Code::TcpRefused, &trace);
    let finding = expect_code(&findings, Code::TcpRefused, &trace);
    let conn = only(&trace.net_trace.tcp_conns, "TCP connection", &trace);
    let dial = only(&trace.net_trace.dials, "dial", &trace);
    let req = only(&trace.http_requests, "request", &trace);
    assert_evidence(
        finding,
        &[&conn.trace_id, &dial.trace_id, &req.trace_id],
        &trace,
    );
    assert!(
        finding.summary.contains(&refusing.addr().to_string()),
        "{}",
        finding.summary
    );
}

#[tokio::test]
async fn a_reset_mid_body_is_tcp_reset() {
    let server = BrokenServer::start(Misbehaviour::ResetMidBody {
        declared: 10_000,
        sent: 100,
    })
    .await
    .unwrap_or_else(|e| panic!("{e:?}"));
    let client = scenario::client(HttpClientConfig::default(), scenario::full_options());
    let response = bounded_for(scenario::BOUND, "GET", client.get(&server.url("/")))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let body = bounded_for(scenario::BOUND, "body", response.into_body().bytes()).await;
    assert!(body.is_err(), "the body is cut short");
    let trace = scenario::trace(&client, "reset");
    let findings = diagnosed(&trace);
    let finding = expect_code(&findings, Code::TcpReset, &trace);
    assert_eq!(finding.severity, Severity::Error);
    let conn = only(&trace.net_trace.tcp_conns, "TCP connection", &trace);
    let req = only(&trace.http_requests, "request", &trace);
    assert_evidence(finding, &[&conn.trace_id, &req.trace_id], &trace);
    assert!(finding.summary.contains("reset"), "{}", finding.summary);
}

/// GETs `https://example.test:<port>/` from a server presenting `kind` and returns the trace
/// and its findings, checked to have `code` as the top error naming the tunnel, its
/// connection and the request.
async fn tls_failure(kind: LeafKind, code: Code) -> (HttpTrace, Finding) {
    let pki = scenario::pki();
    let server = scenario::https_server(&pki, kind, &ServerTlsOptions::h2_and_h1()).await;
    let dns = scenario::example_dns().await;
    let client = scenario::client(
        scenario::config_with_dns_and_pki(&dns, &pki),
        scenario::full_options(),
    );
    get_err(&client, &server.url_with_host(EXAMPLE_HOST, "/")).await;
    let trace = scenario::trace(&client, &format!("{kind:?}"));
    let findings = diagnosed(&trace);
    assert_top_error(&findings, code, &trace);
    let finding = expect_code(&findings, code, &trace).clone();
    let tunnel = only(&trace.net_trace.tls_tunnels, "TLS tunnel", &trace);
    let req = only(&trace.http_requests, "request", &trace);
    assert_evidence(
        &finding,
        &[&tunnel.trace_id, &tunnel.tcp_conn, &req.trace_id],
        &trace,
    );
    // The certificate's subject and validity are named.
    let cert = only(&tunnel.peer_certs, "peer certificate", &trace);
    assert!(
        finding.summary.contains(&cert.subject),
        "{}",
        finding.summary
    );
    assert!(finding.summary.contains(" valid 20"), "{}", finding.summary);
    (trace, finding)
}

#[tokio::test]
async fn an_expired_certificate_is_tls_cert_expired() {
    let (_, finding) = tls_failure(LeafKind::Expired, Code::TlsCertExpired).await;
    assert!(finding.summary.contains("expired"), "{}", finding.summary);
}

#[tokio::test]
async fn a_certificate_from_an_unknown_ca_is_tls_unknown_ca() {
    let (trace, finding) = tls_failure(LeafKind::UntrustedIssuer, Code::TlsUnknownCa).await;
    let issuer = &trace.net_trace.tls_tunnels[0].peer_certs[0].issuer;
    assert!(
        finding.summary.contains(issuer.as_str()),
        "{}",
        finding.summary
    );
}

#[tokio::test]
async fn a_certificate_for_another_host_is_tls_wrong_host() {
    let (_, finding) = tls_failure(LeafKind::WrongHost, Code::TlsWrongHost).await;
    assert!(
        finding.summary.contains(WRONG_HOST_NAME) && finding.summary.contains(EXAMPLE_HOST),
        "names the certificate's host and the one asked for: {}",
        finding.summary
    );
}

#[tokio::test]
async fn a_stalled_handshake_is_tls_handshake_timeout() {
    let stall = BrokenServer::start(Misbehaviour::Stall)
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));
    let pki = scenario::pki();
    let config = HttpClientConfig {
        tls: scenario::trust(&pki),
        tls_handshake_timeout: Some(Duration::from_millis(300)),
        ..Default::default()
    };
    let client = scenario::client(config, scenario::full_options());
    get_err(&client, &format!("https://{}/", stall.addr())).await;
    let trace = scenario::trace(&client, "TLS timeout");
    let findings = diagnosed(&trace);
    assert_top_error(&findings, Code::TlsHandshakeTimeout, &trace);
    let finding = expect_code(&findings, Code::TlsHandshakeTimeout, &trace);
    let tunnel = only(&trace.net_trace.tls_tunnels, "TLS tunnel", &trace);
    let req = only(&trace.http_requests, "request", &trace);
    assert_evidence(finding, &[&tunnel.trace_id, &req.trace_id], &trace);
    assert!(
        finding.summary.contains("sent no byte"),
        "{}",
        finding.summary
    );
}

#[tokio::test]
async fn a_plain_http_server_on_https_is_tls_not_tls() {
    let server = scenario::plain_server().await;
    let client = scenario::client(HttpClientConfig::default(), scenario::full_options());
    get_err(&client, &format!("https://{}/", server.addr())).await;
    let trace = scenario::trace(&client, "not TLS");
    let findings = diagnosed(&trace);
    assert_top_error(&findings, Code::TlsNotTls, &trace);
    let finding = expect_code(&findings, Code::TlsNotTls, &trace);
    let req = only(&trace.http_requests, "request", &trace);
    let tunnel = tls_tunnel(&trace, &req.tls_tunnel);
    assert_evidence(finding, &[&tunnel.trace_id, &req.trace_id], &trace);
}

#[tokio::test]
async fn a_slow_answer_is_http_slow_server() {
    let server = scenario::plain_server().await;
    let client = scenario::client(HttpClientConfig::default(), scenario::full_options());
    get_ok(&client, &server.url("/slow-headers/1200")).await;
    let trace = scenario::trace(&client, "slow server");
    let findings = diagnosed(&trace);
    assert_no_error(&findings, &trace);
    let finding = expect_code(&findings, Code::HttpSlowServer, &trace);
    assert_eq!(finding.severity, Severity::Warning);
    let req = only(&trace.http_requests, "request", &trace);
    assert_evidence(finding, &[&req.trace_id, &req.tcp_conn], &trace);
    assert!(
        finding.summary.contains("took 1."),
        "says how long: {}",
        finding.summary
    );
    assert!(findings.iter().all(|f| f.code != Code::HttpSlowTransfer));
    assert!(diagnosis::verdict(&findings).starts_with("WARNING"));
}

#[tokio::test]
async fn a_slow_body_is_http_slow_transfer_with_its_rate() {
    let server = scenario::plain_server().await;
    // Without the socket trace: the client records the body's last byte itself.
    let options = TraceOptions {
        sock_trace: false,
        ..scenario::full_options()
    };
    let client = scenario::client(HttpClientConfig::default(), options);
    get_ok(&client, &server.url("/slow-body/1200")).await;
    let trace = scenario::trace(&client, "slow transfer");
    let findings = diagnosed(&trace);
    assert_no_error(&findings, &trace);
    let finding = expect_code(&findings, Code::HttpSlowTransfer, &trace);
    let req = only(&trace.http_requests, "request", &trace);
    assert_evidence(finding, &[&req.trace_id, &req.tcp_conn], &trace);
    assert!(
        finding.summary.contains("B/s"),
        "says the rate: {}",
        finding.summary
    );
    assert!(
        finding.summary.contains("RTT"),
        "says the RTT: {}",
        finding.summary
    );
    assert!(findings.iter().all(|f| f.code != Code::HttpSlowServer));
}

#[tokio::test]
async fn a_redirect_loop_names_every_hop() {
    let server = scenario::plain_server().await;
    let client = scenario::client(HttpClientConfig::default(), scenario::full_options());
    get_err(&client, &server.url("/redirect-loop")).await;
    let trace = scenario::trace(&client, "loop");
    let findings = diagnosed(&trace);
    assert_top_error(&findings, Code::HttpRedirectLoop, &trace);
    let finding = expect_code(&findings, Code::HttpRedirectLoop, &trace);
    let hops: Vec<&TraceId> = trace.http_requests.iter().map(|r| &r.trace_id).collect();
    assert_eq!(hops.len(), 10, "{}", dump(&trace));
    assert_evidence(finding, &hops, &trace);
    assert!(
        finding.summary.contains("/redirect-loop"),
        "{}",
        finding.summary
    );
}

#[tokio::test]
async fn a_proxy_wanting_credentials_is_proxy_auth_required() {
    let pki = scenario::pki();
    let target = scenario::https_server(&pki, LeafKind::Valid, &ServerTlsOptions::h1()).await;
    let proxy = ProxyServer::start(ProxyOptions {
        hosts: HashMap::from([(EXAMPLE_HOST.to_owned(), V4)]),
        required_auth: Some("Basic dXNlcjpwYXNz".to_owned()),
        ..Default::default()
    })
    .await
    .unwrap_or_else(|e| panic!("{e:?}"));
    let dns = scenario::dns_with(Zone::new()).await;
    let proxy_uri: Uri = proxy.url().parse().unwrap_or_else(|e| panic!("{e}"));
    let config = HttpClientConfig {
        proxy: Some(Arc::new(move |_| Ok(Some(proxy_uri.clone())))),
        ..scenario::config_with_dns_and_pki(&dns, &pki)
    };
    let client = scenario::client(config, scenario::full_options());
    // HTTPS through CONNECT (refused with 407), then plain HTTP (answered 407).
    get_err(&client, &target.url_with_host(EXAMPLE_HOST, "/")).await;
    let plain = scenario::plain_server().await;
    let (status, _) = get_ok(&client, &plain.url_with_host(EXAMPLE_HOST, "/")).await;
    assert_eq!(status, 407);
    let trace = scenario::trace(&client, "proxy auth");
    let findings = diagnosed(&trace);
    assert_top_error(&findings, Code::ProxyAuthRequired, &trace);
    let auth: Vec<&Finding> = findings
        .iter()
        .filter(|f| f.code == Code::ProxyAuthRequired)
        .collect();
    assert_eq!(
        auth.len(),
        2,
        "{}",
        diagnosis::render_text(&trace, &findings)
    );
    for (finding, req) in auth.iter().zip(trace.http_requests.iter()) {
        assert_evidence(finding, &[&req.trace_id, &req.tcp_conn], &trace);
        assert!(
            finding.summary.contains(&proxy.url()),
            "{}",
            finding.summary
        );
    }
}

#[tokio::test]
async fn a_request_timeout_while_waiting_says_wait() {
    let server = scenario::plain_server().await;
    let config = HttpClientConfig {
        req_timeout: Some(Duration::from_millis(400)),
        ..Default::default()
    };
    let client = scenario::client(config, scenario::full_options());
    get_err(&client, &server.url("/slow-headers/3000")).await;
    let trace = scenario::trace(&client, "timeout");
    let findings = diagnosed(&trace);
    assert_top_error(&findings, Code::RequestTimeout, &trace);
    let finding = expect_code(&findings, Code::RequestTimeout, &trace);
    let req = only(&trace.http_requests, "request", &trace);
    assert_evidence(finding, &[&req.trace_id], &trace);
    assert!(finding.summary.contains("(wait)"), "{}", finding.summary);
}
