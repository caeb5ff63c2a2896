//! A first end-to-end run of the traced client against the loopback fixtures.
use std::net::Ipv4Addr;

use nettrace::{
    client::{HttpClient, HttpClientConfig, HttpReqTraceOptions, TraceOptions},
    model::HdrFieldsOpt,
    tls::TlsSettings,
};
use nettrace_tests::fixtures::{
    dns::{DnsServer, Zone},
    http::{HttpOptions, HttpServer},
    tls::{LeafKind, ServerTlsOptions, TestPki},
};

#[tokio::test]
async fn https_get_through_the_test_dns() {
    let pki = TestPki::new().unwrap();
    let tls = pki
        .leaf(LeafKind::Valid)
        .unwrap()
        .server_config(&ServerTlsOptions::h2_and_h1())
        .unwrap();
    let server = HttpServer::start(HttpOptions::https(tls)).await.unwrap();
    let dns = DnsServer::start(Zone::new().a("example.test", [Ipv4Addr::LOCALHOST]))
        .await
        .unwrap();
    let client = HttpClient::new(
        HttpClientConfig {
            prefer_http2: true,
            nameservers: vec![dns.addr()],
            tls: TlsSettings {
                roots: Some(pki.root_store()),
                ..Default::default()
            },
            ..Default::default()
        },
        TraceOptions {
            sock_trace: true,
            dns_query_trace: true,
            http_req_trace: Some(HttpReqTraceOptions {
                header_fields: HdrFieldsOpt::WithValues,
                ..Default::default()
            }),
            ..Default::default()
        },
    )
    .unwrap();
    let url = server.url_with_host("example.test", "/");
    let response = client.get(&url).await.unwrap();
    assert_eq!(response.status(), 200);
    let body = response.into_body().text().await.unwrap();
    assert!(body.contains("<html"), "{body}");
    let (trace, _) = client.get_trace("smoke").unwrap();
    println!("{}", serde_json::to_string_pretty(&trace).unwrap());
    println!("{}", nettrace::waterfall::render(&trace));
    assert_eq!(trace.http_requests.len(), 1);
}
