//! Requests through a forward proxy as the trace records them: plain HTTP in absolute form,
//! HTTPS through CONNECT, an `https://` proxy (its own TLS tunnel), refusals and failures.
//!
//! The client never resolves a proxied target itself: each test gives it a DNS fixture with an
//! empty zone so that a wrong lookup fails on loopback instead of leaving the machine.
use std::collections::HashMap;
use std::sync::Arc;

use http::Uri;
use nettrace::client::{HttpClient, HttpClientConfig, ProxyFailure, RequestErrorKind};
use nettrace::model::HttpTrace;
use nettrace_tests::fixtures::broken::RefusingPort;
use nettrace_tests::fixtures::dns::{DnsServer, Zone};
use nettrace_tests::fixtures::http::HttpServer;
use nettrace_tests::fixtures::net::V4;
use nettrace_tests::fixtures::proxy::{ProxyOptions, ProxyServer};
use nettrace_tests::fixtures::tls::{LeafKind, ServerTlsOptions, TestPki};
use nettrace_tests::scenario::{
    self, EXAMPLE_HOST, dump, failed_request, get_err, get_ok, only, tcp_conn, tls_tunnel,
};

/// Proxy options resolving [`EXAMPLE_HOST`] to 127.0.0.1.
fn proxy_options() -> ProxyOptions {
    ProxyOptions {
        hosts: HashMap::from([(EXAMPLE_HOST.to_owned(), V4)]),
        ..Default::default()
    }
}

async fn start_proxy(options: ProxyOptions) -> ProxyServer {
    ProxyServer::start(options)
        .await
        .unwrap_or_else(|e| panic!("starting the proxy fixture: {e:?}"))
}

/// A client sending every request through `proxy_url`, trusting `pki`, with a DNS fixture
/// that knows no name (returned: it must outlive the client's requests).
async fn proxied_client(proxy_url: &str, pki: &TestPki) -> (HttpClient, DnsServer) {
    let dns = scenario::dns_with(Zone::new()).await;
    let proxy: Uri = proxy_url
        .parse()
        .unwrap_or_else(|e| panic!("{proxy_url}: {e}"));
    let config = HttpClientConfig {
        proxy: Some(Arc::new(move |_| Ok(Some(proxy.clone())))),
        ..scenario::config_with_dns_and_pki(&dns, pki)
    };
    (scenario::client(config, scenario::full_options()), dns)
}

/// The one dial goes to the proxy, without name resolution, and established `conn`.
fn assert_dialled_proxy(trace: &HttpTrace, proxy: &ProxyServer) -> nettrace::model::TraceId {
    let dial = only(&trace.net_trace.dials, "dial", trace);
    assert_eq!(
        dial.dst_address,
        proxy.addr().to_string(),
        "{}",
        dump(trace)
    );
    assert!(dial.resolver_dials.is_empty(), "{}", dump(trace));
    assert!(trace.net_trace.udp_conns.is_empty());
    let conn = tcp_conn(trace, &dial.established_conn);
    assert_eq!(conn.addr_tuple.dst(), Some(proxy.addr()));
    dial.established_conn.clone()
}

async fn https_target(pki: &TestPki) -> HttpServer {
    scenario::https_server(pki, LeafKind::Valid, &ServerTlsOptions::h2_and_h1()).await
}

#[tokio::test]
async fn plain_http_goes_through_the_proxy_in_absolute_form() {
    let pki = scenario::pki();
    let server = scenario::plain_server().await;
    let proxy = start_proxy(proxy_options()).await;
    let (client, dns) = proxied_client(&proxy.url(), &pki).await;
    let url = server.url_with_host(EXAMPLE_HOST, "/bytes/10");
    let (status, body) = get_ok(&client, &url).await;
    assert_eq!((status, body.len()), (200, 10));
    assert_eq!(proxy.request_lines(), vec![format!("GET {url} HTTP/1.1")]);
    assert_eq!(proxy.forwarded().get(), 1);
    assert_eq!(proxy.connects().get(), 0);
    let trace = scenario::trace(&client, "plain via proxy");
    let conn = assert_dialled_proxy(&trace, &proxy);
    let req = only(&trace.http_requests, "HTTP request", &trace);
    assert_eq!(req.network_proxy, proxy.url());
    assert_eq!(req.tcp_conn, conn);
    assert_eq!(req.req_url, url);
    assert_eq!(req.resp_content_len, 10);
    assert!(trace.net_trace.tls_tunnels.is_empty());
    assert_eq!(
        dns.udp_queries().get(),
        0,
        "the client resolved a proxied target"
    );
}

#[tokio::test]
async fn https_goes_through_a_connect_tunnel() {
    let pki = scenario::pki();
    let server = https_target(&pki).await;
    let proxy = start_proxy(proxy_options()).await;
    let (client, dns) = proxied_client(&proxy.url(), &pki).await;
    let url = server.url_with_host(EXAMPLE_HOST, "/");
    let (status, _) = get_ok(&client, &url).await;
    assert_eq!(status, 200);
    let port = server.addr().port();
    assert_eq!(
        proxy.request_lines(),
        vec![format!("CONNECT {EXAMPLE_HOST}:{port} HTTP/1.1")]
    );
    assert_eq!((proxy.connects().get(), proxy.tunnels().get()), (1, 1));
    let trace = scenario::trace(&client, "https via CONNECT");
    let conn = assert_dialled_proxy(&trace, &proxy);
    let tunnel = only(&trace.net_trace.tls_tunnels, "TLS tunnel", &trace);
    assert_eq!(tunnel.tcp_conn, conn);
    assert_eq!(
        tunnel.server_name, EXAMPLE_HOST,
        "TLS with the target, not the proxy"
    );
    assert!(tunnel.handshake_err.is_empty(), "{}", dump(&trace));
    let req = only(&trace.http_requests, "HTTP request", &trace);
    assert_eq!(req.network_proxy, proxy.url());
    assert_eq!(req.tcp_conn, conn);
    assert_eq!(req.tls_tunnel, tunnel.trace_id);
    assert!(req.proxy_tls_tunnel.is_empty());
    assert_eq!(server.connections().get(), 1);
    assert_eq!(dns.udp_queries().get(), 0);
}

/// Starts a proxy served over TLS with the valid leaf (its names include 127.0.0.1).
async fn tls_proxy(pki: &TestPki) -> ProxyServer {
    let tls = pki
        .leaf(LeafKind::Valid)
        .and_then(|leaf| leaf.server_config(&ServerTlsOptions::h1()))
        .unwrap_or_else(|e| panic!("{e:?}"));
    start_proxy(ProxyOptions {
        tls: Some(tls),
        ..proxy_options()
    })
    .await
}

#[tokio::test]
async fn an_https_proxy_has_its_own_tls_tunnel_on_the_same_connection() {
    let pki = scenario::pki();
    let server = https_target(&pki).await;
    let proxy = tls_proxy(&pki).await;
    assert!(proxy.url().starts_with("https://"));
    let (client, _dns) = proxied_client(&proxy.url(), &pki).await;
    let (status, _) = get_ok(&client, &server.url_with_host(EXAMPLE_HOST, "/")).await;
    assert_eq!(status, 200);
    assert_eq!(proxy.connects().get(), 1);
    let trace = scenario::trace(&client, "https proxy");
    let conn = assert_dialled_proxy(&trace, &proxy);
    let req = only(&trace.http_requests, "HTTP request", &trace);
    assert_eq!(req.network_proxy, proxy.url());
    assert!(!req.proxy_tls_tunnel.is_empty(), "{}", dump(&trace));
    assert!(!req.tls_tunnel.is_empty(), "{}", dump(&trace));
    assert_ne!(req.proxy_tls_tunnel, req.tls_tunnel);
    assert_eq!(trace.net_trace.tls_tunnels.len(), 2, "{}", dump(&trace));
    let to_proxy = tls_tunnel(&trace, &req.proxy_tls_tunnel);
    let to_target = tls_tunnel(&trace, &req.tls_tunnel);
    assert_eq!(to_proxy.tcp_conn, conn);
    assert_eq!(to_target.tcp_conn, conn);
    assert_eq!(to_proxy.server_name, "127.0.0.1");
    assert_eq!(to_proxy.negotiated_proto, "http/1.1");
    assert_eq!(to_target.server_name, EXAMPLE_HOST);
    assert!(to_proxy.handshake_err.is_empty() && to_target.handshake_err.is_empty());
    scenario::assert_not_after(
        &trace,
        &to_proxy.handshake_end_at,
        &to_target.handshake_begin_at,
        "the proxy's handshake comes first",
    );
}

#[tokio::test]
async fn plain_http_through_an_https_proxy_records_only_the_proxy_tunnel() {
    let pki = scenario::pki();
    let server = scenario::plain_server().await;
    let proxy = tls_proxy(&pki).await;
    let (client, _dns) = proxied_client(&proxy.url(), &pki).await;
    let url = server.url_with_host(EXAMPLE_HOST, "/bytes/5");
    let (status, _) = get_ok(&client, &url).await;
    assert_eq!(status, 200);
    assert_eq!(proxy.forwarded().get(), 1);
    let trace = scenario::trace(&client, "http via https proxy");
    let conn = assert_dialled_proxy(&trace, &proxy);
    let tunnel = only(&trace.net_trace.tls_tunnels, "TLS tunnel", &trace);
    let req = only(&trace.http_requests, "HTTP request", &trace);
    assert_eq!(req.proxy_tls_tunnel, tunnel.trace_id);
    assert!(req.tls_tunnel.is_empty());
    assert_eq!(tunnel.tcp_conn, conn);
}

#[tokio::test]
async fn a_proxy_refusing_connect_fails_the_request() {
    let pki = scenario::pki();
    let server = https_target(&pki).await;
    let proxy = start_proxy(ProxyOptions {
        required_auth: Some("Basic dXNlcjpwYXNz".to_owned()),
        ..proxy_options()
    })
    .await;
    let (client, _dns) = proxied_client(&proxy.url(), &pki).await;
    let failure = get_err(&client, &server.url_with_host(EXAMPLE_HOST, "/")).await;
    assert_eq!(
        failure.kind(),
        RequestErrorKind::Proxy(ProxyFailure::TunnelRefused { status: 407 }),
        "{failure:?}"
    );
    let error = failure.to_string();
    assert!(error.contains("407"), "{error}");
    assert_eq!((proxy.connects().get(), proxy.tunnels().get()), (1, 0));
    assert_eq!(server.connections().get(), 0);
    let trace = scenario::trace(&client, "proxy refusal");
    let conn = assert_dialled_proxy(&trace, &proxy);
    assert!(trace.net_trace.tls_tunnels.is_empty(), "{}", dump(&trace));
    let req = only(&trace.http_requests, "HTTP request", &trace);
    assert_eq!(req.req_error, error);
    assert_eq!(failed_request(&trace, &failure).trace_id, req.trace_id);
    assert_eq!(req.tcp_conn, conn);
    assert_eq!(req.network_proxy, proxy.url());
    assert_eq!(req.resp_status_code, 0);
}

#[tokio::test]
async fn an_unreachable_proxy_records_the_refused_connection() {
    let pki = scenario::pki();
    let refusing = RefusingPort::new(V4).unwrap_or_else(|e| panic!("{e:?}"));
    let proxy_url = format!("http://{}", refusing.addr());
    let (client, _dns) = proxied_client(&proxy_url, &pki).await;
    let failure = get_err(&client, "http://example.test:8080/").await;
    // Reaching the proxy failed as any connection does.
    assert_eq!(
        failure.kind(),
        RequestErrorKind::ConnectRefused,
        "{failure:?}"
    );
    let error = failure.to_string();
    assert!(error.to_lowercase().contains("refused"), "{error}");
    let trace = scenario::trace(&client, "proxy refused");
    failed_request(&trace, &failure);
    let dial = only(&trace.net_trace.dials, "dial", &trace);
    assert_eq!(dial.dst_address, refusing.addr().to_string());
    assert!(!dial.dial_err.is_empty());
    let conn = only(&trace.net_trace.tcp_conns, "TCP conn", &trace);
    assert!(!conn.connected);
    assert_eq!(conn.addr_tuple.dst(), Some(refusing.addr()));
    let req = only(&trace.http_requests, "HTTP request", &trace);
    assert_eq!(req.network_proxy, proxy_url);
    assert_eq!(req.req_error, error);
}

/// Go records the request with its error when the proxy callback fails (the transport calls
/// it and the round trip fails); the request must not vanish from the trace.
#[tokio::test]
async fn a_failing_proxy_selection_is_recorded_as_the_request_error() {
    const REASON: &str = "no proxy for this network";
    let dns = scenario::dns_with(Zone::new()).await;
    let config = HttpClientConfig {
        proxy: Some(Arc::new(|_| Err(REASON.to_owned()))),
        ..scenario::config_with_dns(&dns)
    };
    let client = scenario::client(config, scenario::full_options());
    let url = "http://example.test:8080/";
    let failure = get_err(&client, url).await;
    assert_eq!(
        failure.kind(),
        RequestErrorKind::Proxy(ProxyFailure::Selection)
    );
    let error = failure.to_string();
    assert!(error.contains(REASON), "{error}");
    let trace = scenario::trace(&client, "proxy selection failed");
    assert_eq!(failed_request(&trace, &failure).req_url, url);
    assert!(trace.net_trace.dials.is_empty(), "{}", dump(&trace));
    assert!(trace.net_trace.tcp_conns.is_empty());
    let req = only(&trace.http_requests, "HTTP request", &trace);
    assert_eq!(req.req_url, url);
    assert_eq!(req.req_error, error);
}

/// The password of the proxy URLs in the login tests.
const PROXY_PASSWORD: &str = "s3cr3t-pa55";

/// A proxy demanding `Proxy-Authorization: Basic base64("alice:s3cr3t-pa55")`.
async fn login_proxy() -> ProxyServer {
    start_proxy(ProxyOptions {
        required_auth: Some("Basic YWxpY2U6czNjcjN0LXBhNTU=".to_owned()),
        ..proxy_options()
    })
    .await
}

/// `proxy`'s URL with `alice:<password>@` in it.
fn login_url(proxy: &ProxyServer) -> String {
    format!("http://alice:{PROXY_PASSWORD}@{}", proxy.addr())
}

/// The trace as JSON holds no trace of the password, and names the proxy with it masked.
fn assert_no_password(trace: &HttpTrace, proxy: &ProxyServer) {
    let json = serde_json::to_string(trace).unwrap_or_else(|e| panic!("{e}"));
    assert!(!json.contains(PROXY_PASSWORD), "{json}");
    assert!(!json.contains("YWxpY2U6czNjcjN0LXBhNTU"), "{json}");
    let req = only(&trace.http_requests, "HTTP request", trace);
    assert_eq!(
        req.network_proxy,
        format!("http://alice:***@{}", proxy.addr())
    );
}

#[tokio::test]
async fn proxy_credentials_in_the_url_log_in_for_plain_http() {
    let pki = scenario::pki();
    let server = scenario::plain_server().await;
    let proxy = login_proxy().await;
    let (client, _dns) = proxied_client(&login_url(&proxy), &pki).await;
    let url = server.url_with_host(EXAMPLE_HOST, "/bytes/10");
    let (status, body) = get_ok(&client, &url).await;
    assert_eq!((status, body.len()), (200, 10));
    assert_eq!(proxy.forwarded().get(), 1);
    let trace = scenario::trace(&client, "plain via a login proxy");
    assert_dialled_proxy(&trace, &proxy);
    assert_no_password(&trace, &proxy);
}

#[tokio::test]
async fn proxy_credentials_in_the_url_log_in_for_connect() {
    let pki = scenario::pki();
    let server = https_target(&pki).await;
    let proxy = login_proxy().await;
    let (client, _dns) = proxied_client(&login_url(&proxy), &pki).await;
    let (status, _) = get_ok(&client, &server.url_with_host(EXAMPLE_HOST, "/")).await;
    assert_eq!(status, 200);
    assert_eq!((proxy.connects().get(), proxy.tunnels().get()), (1, 1));
    let trace = scenario::trace(&client, "https via a login proxy");
    assert_dialled_proxy(&trace, &proxy);
    assert_no_password(&trace, &proxy);
}

#[tokio::test]
async fn a_wrong_proxy_password_is_refused_and_not_recorded() {
    let pki = scenario::pki();
    let server = https_target(&pki).await;
    let proxy = login_proxy().await;
    let url = format!("http://alice:{PROXY_PASSWORD}x@{}", proxy.addr());
    let (client, _dns) = proxied_client(&url, &pki).await;
    let failure = get_err(&client, &server.url_with_host(EXAMPLE_HOST, "/")).await;
    assert_eq!(
        failure.kind(),
        RequestErrorKind::Proxy(ProxyFailure::TunnelRefused { status: 407 }),
        "{failure:?}"
    );
    assert!(!format!("{failure:?}").contains(PROXY_PASSWORD));
    let trace = scenario::trace(&client, "wrong proxy password");
    assert_no_password(&trace, &proxy);
}
