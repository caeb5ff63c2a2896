//! TLS tunnels as the trace records them: a successful handshake (certificates, cipher suite,
//! ALPN, SNI), each kind of bad certificate, session resumption, and the handshake timeout.
//!
//! Go's tests of the same intent: TestHTTPTracing (TLS part) and TestTLSCertErrors (which used
//! badssl.com; here the test PKI's expired, not-yet-valid, wrong-host and untrusted leaves).
use std::time::{Duration, Instant};

use nettrace::client::{CertificateFailure, HttpClientConfig, RequestErrorKind, TimeoutLimit};
use nettrace::model::{HttpTrace, PeerCert, TlsTunnelTrace};
use nettrace_tests::fixtures::broken::{BrokenServer, Misbehaviour};
use nettrace_tests::fixtures::tls::{
    CA_COMMON_NAME, CA_ORGANIZATION, LEAF_ORGANIZATION, LeafKind, Resumption, ServerTlsOptions,
    UNTRUSTED_CA_COMMON_NAME, UNTRUSTED_CA_ORGANIZATION, WRONG_HOST_NAME,
};
use nettrace_tests::scenario::{
    self, EXAMPLE_HOST, bounded_for, dump, failed_request, get_err, get_ok, only, tcp_conn,
    tls_tunnel,
};
use time::OffsetDateTime;

fn trusted_issuer() -> String {
    format!("CN={CA_COMMON_NAME},O={CA_ORGANIZATION}")
}

fn leaf_subject(name: &str) -> String {
    format!("CN={name},O={LEAF_ORGANIZATION}")
}

/// Validity of `cert` as absolute times.
fn validity(cert: &PeerCert) -> (OffsetDateTime, OffsetDateTime) {
    let not_before = cert.not_before.as_absolute().expect("absolute notBefore");
    let not_after = cert.not_after.as_absolute().expect("absolute notAfter");
    (not_before, not_after)
}

/// GETs `https://example.test:<port>/` from a server presenting `kind`, expects the TLS
/// handshake to fail with `expected`, checks what every certificate failure records, and
/// returns the trace, the failed tunnel and its one peer certificate.
async fn certificate_failure(
    kind: LeafKind,
    expected: CertificateFailure,
) -> (HttpTrace, TlsTunnelTrace, PeerCert) {
    let pki = scenario::pki();
    let server = scenario::https_server(&pki, kind, &ServerTlsOptions::h2_and_h1()).await;
    let dns = scenario::example_dns().await;
    let config = HttpClientConfig {
        prefer_http2: true,
        ..scenario::config_with_dns_and_pki(&dns, &pki)
    };
    let client = scenario::client(config, scenario::full_options());
    let url = server.url_with_host(EXAMPLE_HOST, "/");
    let failure = get_err(&client, &url).await;
    assert_eq!(
        failure.kind(),
        RequestErrorKind::TlsCertificate(expected),
        "{failure:?}"
    );
    let cause = std::error::Error::source(&failure)
        .and_then(|e| e.downcast_ref::<rustls::Error>())
        .unwrap_or_else(|| panic!("no rustls::Error under {failure:?}"));
    assert!(
        matches!(cause, rustls::Error::InvalidCertificate(_)),
        "{cause:?}"
    );
    let error = failure.to_string();
    let trace = scenario::trace(&client, &format!("{kind:?}"));
    let net = &trace.net_trace;
    assert_eq!(failed_request(&trace, &failure).req_url, url);

    let tunnel = (**only(&net.tls_tunnels, "TLS tunnel", &trace)).clone();
    assert!(!tunnel.handshake_err.is_empty(), "{}", dump(&trace));
    assert!(!tunnel.did_resume);
    assert_eq!(tunnel.cipher_suite, 0);
    assert!(tunnel.negotiated_proto.is_empty());
    assert_eq!(tunnel.server_name, EXAMPLE_HOST, "the SNI that was sent");
    // Go left the failed tunnel's tcpConn empty; it must name the connection.
    let dial = only(&net.dials, "dial", &trace);
    assert_eq!(tunnel.tcp_conn, dial.established_conn, "{}", dump(&trace));
    assert!(tcp_conn(&trace, &tunnel.tcp_conn).connected);

    let req = only(&trace.http_requests, "HTTP request", &trace);
    assert_eq!(req.tls_tunnel, tunnel.trace_id, "{}", dump(&trace));
    assert_eq!(req.tcp_conn, tunnel.tcp_conn);
    assert!(req.proxy_tls_tunnel.is_empty());
    assert_eq!(req.req_error, error);
    assert!(
        error.contains(&tunnel.handshake_err),
        "reqError {error:?} does not carry handshakeErr {:?}",
        tunnel.handshake_err
    );
    assert!(req.resp_recv_at.is_undefined() && req.resp_status_code == 0);

    let cert = only(&tunnel.peer_certs, "peer certificate", &trace).clone();
    assert!(!cert.is_ca);
    assert!(
        server
            .tls_failures()
            .wait_for(1, Duration::from_secs(5))
            .await,
        "the server did not see the handshake fail"
    );
    assert_eq!(server.requests().get(), 0);
    (trace, tunnel, cert)
}

/// The handshake error, lower case without spaces (rustls words it in several ways).
fn squashed(error: &str) -> String {
    error.to_lowercase().replace([' ', '_', '-'], "")
}

#[tokio::test]
async fn successful_handshake_records_certs_cipher_alpn_h2_and_sni() {
    let pki = scenario::pki();
    let server =
        scenario::https_server(&pki, LeafKind::Valid, &ServerTlsOptions::h2_and_h1()).await;
    let dns = scenario::example_dns().await;
    let config = HttpClientConfig {
        prefer_http2: true,
        ..scenario::config_with_dns_and_pki(&dns, &pki)
    };
    let client = scenario::client(config, scenario::full_options());
    let url = server.url_with_host(EXAMPLE_HOST, "/");
    let (status, body) = get_ok(&client, &url).await;
    assert_eq!(status, 200);
    assert!(String::from_utf8_lossy(&body).contains("<html>"));
    let trace = scenario::trace(&client, "TLS h2");
    let net = &trace.net_trace;

    let tunnel = only(&net.tls_tunnels, "TLS tunnel", &trace);
    let req = only(&trace.http_requests, "HTTP request", &trace);
    let dial = only(&net.dials, "dial", &trace);
    assert_eq!(tunnel.tcp_conn, dial.established_conn);
    assert_eq!(req.tcp_conn, tunnel.tcp_conn);
    assert_eq!(req.tls_tunnel, tunnel.trace_id);
    assert!(req.proxy_tls_tunnel.is_empty());
    assert!(tunnel.handshake_err.is_empty(), "{}", dump(&trace));
    assert!(!tunnel.did_resume);
    assert_ne!(tunnel.cipher_suite, 0);
    assert_eq!(tunnel.negotiated_proto, "h2");
    assert_eq!(tunnel.server_name, EXAMPLE_HOST);
    assert_eq!((req.proto_major, req.proto_minor), (2, 0));
    assert_eq!(server.request_log()[0].version, http::Version::HTTP_2);
    // The handshake lies within the connection and before the response.
    let conn = tcp_conn(&trace, &tunnel.tcp_conn);
    scenario::assert_not_after(
        &trace,
        &conn.handshake_end_at,
        &tunnel.handshake_begin_at,
        "tls",
    );
    scenario::assert_not_after(&trace, &tunnel.handshake_end_at, &req.resp_recv_at, "tls");

    let cert = only(&tunnel.peer_certs, "peer certificate", &trace);
    assert_eq!(cert.subject, leaf_subject(EXAMPLE_HOST));
    assert_eq!(cert.issuer, trusted_issuer());
    assert!(!cert.is_ca);
    let (not_before, not_after) = validity(cert);
    let now = OffsetDateTime::now_utc();
    assert!(not_before < now && now < not_after, "{}", dump(&trace));
}

#[tokio::test]
async fn http1_client_negotiates_http11_with_an_ip_address_server_name() {
    let pki = scenario::pki();
    let server =
        scenario::https_server(&pki, LeafKind::Valid, &ServerTlsOptions::h2_and_h1()).await;
    let config = HttpClientConfig {
        tls: scenario::trust(&pki),
        ..Default::default()
    };
    let client = scenario::client(config, scenario::full_options());
    let (status, _) = get_ok(&client, &server.url("/")).await;
    assert_eq!(status, 200);
    let trace = scenario::trace(&client, "TLS http/1.1");
    let tunnel = only(&trace.net_trace.tls_tunnels, "TLS tunnel", &trace);
    assert_eq!(tunnel.negotiated_proto, "http/1.1");
    assert_eq!(tunnel.server_name, "127.0.0.1");
    assert!(tunnel.handshake_err.is_empty());
    let req = only(&trace.http_requests, "HTTP request", &trace);
    assert_eq!((req.proto_major, req.proto_minor), (1, 1));
    assert_eq!(server.request_log()[0].version, http::Version::HTTP_11);
}

#[tokio::test]
async fn expired_certificate_is_recorded_with_its_validity() {
    let (trace, tunnel, cert) =
        certificate_failure(LeafKind::Expired, CertificateFailure::Expired).await;
    assert!(
        squashed(&tunnel.handshake_err).contains("expired"),
        "{}",
        dump(&trace)
    );
    assert_eq!(cert.subject, leaf_subject(EXAMPLE_HOST));
    assert_eq!(cert.issuer, trusted_issuer());
    let (not_before, not_after) = validity(&cert);
    assert!(not_before < not_after && not_after < OffsetDateTime::now_utc());
}

#[tokio::test]
async fn not_yet_valid_certificate_is_recorded_with_its_validity() {
    let (trace, tunnel, cert) =
        certificate_failure(LeafKind::NotYetValid, CertificateFailure::NotValidYet).await;
    assert!(
        squashed(&tunnel.handshake_err).contains("notvalidyet"),
        "{}",
        dump(&trace)
    );
    assert_eq!(cert.subject, leaf_subject(EXAMPLE_HOST));
    assert_eq!(cert.issuer, trusted_issuer());
    let (not_before, not_after) = validity(&cert);
    assert!(OffsetDateTime::now_utc() < not_before && not_before < not_after);
}

#[tokio::test]
async fn wrong_host_certificate_is_recorded_with_its_subject() {
    let (trace, tunnel, cert) =
        certificate_failure(LeafKind::WrongHost, CertificateFailure::WrongHost).await;
    assert!(
        squashed(&tunnel.handshake_err).contains("notvalidforname"),
        "{}",
        dump(&trace)
    );
    assert_eq!(cert.subject, leaf_subject(WRONG_HOST_NAME));
    assert_eq!(cert.issuer, trusted_issuer());
    let (not_before, not_after) = validity(&cert);
    let now = OffsetDateTime::now_utc();
    assert!(not_before < now && now < not_after);
}

#[tokio::test]
async fn untrusted_issuer_is_recorded_with_the_issuer_name() {
    let (trace, tunnel, cert) =
        certificate_failure(LeafKind::UntrustedIssuer, CertificateFailure::UnknownIssuer).await;
    assert!(
        squashed(&tunnel.handshake_err).contains("unknownissuer"),
        "{}",
        dump(&trace)
    );
    assert_eq!(cert.subject, leaf_subject(EXAMPLE_HOST));
    assert_eq!(
        cert.issuer,
        format!("CN={UNTRUSTED_CA_COMMON_NAME},O={UNTRUSTED_CA_ORGANIZATION}")
    );
}

/// A server that does not speak TLS fails the handshake, not the certificate.
#[tokio::test]
async fn a_server_not_speaking_tls_is_a_handshake_failure() {
    let server = scenario::plain_server().await;
    let client = scenario::client(HttpClientConfig::default(), scenario::full_options());
    let url = format!("https://{}/", server.addr());
    let failure = get_err(&client, &url).await;
    assert_eq!(
        failure.kind(),
        RequestErrorKind::TlsHandshake,
        "{failure:?}"
    );
    let trace = scenario::trace(&client, "not TLS");
    let req = failed_request(&trace, &failure);
    let tunnel = tls_tunnel(&trace, &req.tls_tunnel);
    assert!(
        failure.to_string().contains(&tunnel.handshake_err),
        "{}",
        dump(&trace)
    );
}

#[tokio::test]
async fn second_connection_of_the_client_resumes_the_tls_session() {
    let pki = scenario::pki();
    let options = ServerTlsOptions {
        resumption: Resumption::Tickets,
        ..ServerTlsOptions::h1()
    };
    let server = scenario::https_server(&pki, LeafKind::Valid, &options).await;
    let dns = scenario::example_dns().await;
    let config = HttpClientConfig {
        disable_keep_alive: true,
        ..scenario::config_with_dns_and_pki(&dns, &pki)
    };
    let client = scenario::client(config, scenario::full_options());
    let url = server.url_with_host(EXAMPLE_HOST, "/");
    for _ in 0..2 {
        let (status, _) = get_ok(&client, &url).await;
        assert_eq!(status, 200);
    }
    let trace = scenario::trace(&client, "resumption");
    let tunnels = &trace.net_trace.tls_tunnels;
    let [first, second] = &tunnels[..] else {
        panic!("expected two TLS tunnels:\n{}", dump(&trace));
    };
    assert_ne!(
        first.tcp_conn, second.tcp_conn,
        "a second connection was expected"
    );
    assert!(!first.did_resume, "{}", dump(&trace));
    assert!(second.did_resume, "{}", dump(&trace));
    assert!(first.handshake_err.is_empty() && second.handshake_err.is_empty());
    assert_eq!(server.tls_resumed().get(), 1);
    assert_eq!(server.connections().get(), 2);
    let reqs = &trace.http_requests;
    assert_eq!(reqs.len(), 2, "{}", dump(&trace));
    assert_eq!(reqs[0].tls_tunnel, first.trace_id);
    assert_eq!(reqs[1].tls_tunnel, second.trace_id);
}

#[tokio::test]
async fn tls_handshake_timeout_against_a_server_that_never_speaks() {
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
    let url = format!("https://{}/", stall.addr());
    let started = Instant::now();
    let failure = bounded_for(Duration::from_secs(5), "TLS against a stall", async {
        client.get(&url).await
    })
    .await
    .err()
    .unwrap_or_else(|| panic!("GET {url} should time out"));
    assert_eq!(
        failure.kind(),
        RequestErrorKind::Timeout {
            limit: TimeoutLimit::TlsHandshake,
            after: Duration::from_millis(300),
        },
        "{failure:?}"
    );
    let error = failure.to_string();
    let elapsed = started.elapsed();
    assert!(
        (Duration::from_millis(300)..Duration::from_secs(3)).contains(&elapsed),
        "{elapsed:?}"
    );
    assert!(error.contains("timed out"), "{error}");
    assert_eq!(stall.connections().get(), 1);
    let trace = scenario::trace(&client, "TLS timeout");
    let tunnel = only(&trace.net_trace.tls_tunnels, "TLS tunnel", &trace);
    assert!(
        tunnel.handshake_err.contains("timed out"),
        "{}",
        dump(&trace)
    );
    assert!(tunnel.peer_certs.is_empty());
    assert_eq!(tunnel.server_name, "127.0.0.1");
    let waited = tunnel
        .handshake_end_at
        .sub(&tunnel.handshake_begin_at)
        .unwrap_or_else(|| panic!("handshake times not comparable:\n{}", dump(&trace)));
    assert!(waited >= time::Duration::milliseconds(299), "{waited}");
    let conn = tcp_conn(&trace, &tunnel.tcp_conn);
    assert!(conn.connected);
    assert!(conn.total_sent_bytes > 0, "the ClientHello was sent");
    assert_eq!(conn.total_recv_bytes, 0);
    let req = only(&trace.http_requests, "HTTP request", &trace);
    assert_eq!(req.tls_tunnel, tunnel.trace_id);
    assert_eq!(req.req_error, error);
    let _ = tls_tunnel(&trace, &req.tls_tunnel);
}

/// A client of `server`'s `example.test` with `tls` settings (and the stock DNS fixture).
async fn client_with_tls(
    tls: nettrace::tls::TlsSettings,
) -> (
    nettrace::client::HttpClient,
    nettrace_tests::fixtures::dns::DnsServer,
) {
    let dns = scenario::example_dns().await;
    let config = HttpClientConfig {
        tls,
        ..scenario::config_with_dns(&dns)
    };
    (scenario::client(config, scenario::full_options()), dns)
}

async fn https_with(
    config: std::sync::Arc<rustls::ServerConfig>,
) -> nettrace_tests::fixtures::http::HttpServer {
    nettrace_tests::fixtures::http::HttpServer::start(
        nettrace_tests::fixtures::http::HttpOptions::https(config),
    )
    .await
    .unwrap_or_else(|e| panic!("starting the HTTPS fixture: {e:?}"))
}

#[tokio::test]
async fn the_tunnel_names_its_version_and_cipher_suite() {
    for (versions, expected) in [
        (
            nettrace_tests::fixtures::tls::TlsVersions::Tls13Only,
            "TLSv1.3",
        ),
        (
            nettrace_tests::fixtures::tls::TlsVersions::Tls12Only,
            "TLSv1.2",
        ),
    ] {
        let pki = scenario::pki();
        let options = ServerTlsOptions {
            versions,
            ..ServerTlsOptions::h1()
        };
        let server = scenario::https_server(&pki, LeafKind::Valid, &options).await;
        let (client, _dns) = client_with_tls(scenario::trust(&pki)).await;
        get_ok(&client, &server.url_with_host(EXAMPLE_HOST, "/")).await;
        let trace = scenario::trace(&client, expected);
        let tunnel = only(&trace.net_trace.tls_tunnels, "TLS tunnel", &trace);
        assert_eq!(tunnel.tls_version, expected, "{}", dump(&trace));
        assert!(!tunnel.insecure && tunnel.cert_verify_err.is_empty());
        let name = tunnel.cipher_suite_name();
        assert!(
            name.starts_with("TLS_"),
            "{name} for {:#06x}",
            tunnel.cipher_suite
        );
        let json = serde_json::to_value(&trace).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(json["tlsTunnels"][0]["tlsVersion"], expected);
        assert!(json["tlsTunnels"][0].get("insecure").is_none());
        let waterfall = nettrace::waterfall::render(&trace);
        assert!(
            waterfall.contains(&format!("{expected} {name}")),
            "{waterfall}"
        );
    }
}

#[tokio::test]
async fn insecure_goes_on_and_records_what_verification_said() {
    for (kind, verdict) in [
        (LeafKind::UntrustedIssuer, Some("unknownissuer")),
        (LeafKind::WrongHost, Some("notvalidforname")),
        (LeafKind::Expired, Some("expired")),
        (LeafKind::Valid, None),
    ] {
        let pki = scenario::pki();
        let server = scenario::https_server(&pki, kind, &ServerTlsOptions::h1()).await;
        let tls = nettrace::tls::TlsSettings {
            insecure: true,
            ..scenario::trust(&pki)
        };
        let (client, _dns) = client_with_tls(tls).await;
        let (status, _) = get_ok(&client, &server.url_with_host(EXAMPLE_HOST, "/")).await;
        assert_eq!(status, 200);
        let trace = scenario::trace(&client, &format!("insecure {kind:?}"));
        let tunnel = only(&trace.net_trace.tls_tunnels, "TLS tunnel", &trace);
        assert!(tunnel.handshake_err.is_empty(), "{}", dump(&trace));
        assert!(tunnel.insecure);
        assert_eq!(tunnel.peer_certs.len(), 1, "{}", dump(&trace));
        match verdict {
            Some(verdict) => assert!(
                squashed(&tunnel.cert_verify_err).contains(verdict),
                "{kind:?}: {}",
                tunnel.cert_verify_err
            ),
            None => assert!(tunnel.cert_verify_err.is_empty(), "{}", dump(&trace)),
        }
        let json = serde_json::to_value(&trace).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(json["tlsTunnels"][0]["insecure"], true);
    }
}

#[tokio::test]
async fn a_client_certificate_is_offered_when_configured() {
    use nettrace_tests::fixtures::tls::TlsVersions;
    let pki = scenario::pki();
    let dir = scenario::TempDir::new("client-cert");
    let identity = pki
        .issue_client("client.test")
        .unwrap_or_else(|e| panic!("{e:?}"));
    let cert = dir.write("client.pem", &identity.cert_pem);
    let key = dir.write("client.key", &identity.key_pem);
    for versions in [TlsVersions::Tls12Only, TlsVersions::Tls13Only] {
        let options = ServerTlsOptions {
            versions,
            ..ServerTlsOptions::h1()
        };
        let config = pki
            .leaf(LeafKind::Valid)
            .and_then(|leaf| leaf.server_config_requiring_client_cert(&options, pki.root_store()))
            .unwrap_or_else(|e| panic!("{e:?}"));
        let server = https_with(config).await;
        let url = server.url_with_host(EXAMPLE_HOST, "/");

        // Without: TLS 1.2 fails the handshake; TLS 1.3 finishes it on the client's side and
        // the server's alert fails the request.
        let (client, _dns) = client_with_tls(scenario::trust(&pki)).await;
        let failure = get_err(&client, &url).await;
        let trace = scenario::trace(&client, "no client certificate");
        let tunnel = only(&trace.net_trace.tls_tunnels, "TLS tunnel", &trace);
        let req = failed_request(&trace, &failure);
        let recorded = if versions == TlsVersions::Tls12Only {
            assert!(!tunnel.handshake_err.is_empty(), "{}", dump(&trace));
            &tunnel.handshake_err
        } else {
            &req.req_error
        };
        assert!(
            squashed(recorded).contains("certificate"),
            "{versions:?}: {recorded}\n{}",
            dump(&trace)
        );

        // With it.
        let identity = nettrace::tls::ClientIdentity::from_pem_files(&cert, &key)
            .unwrap_or_else(|e| panic!("{e:?}"));
        let tls = nettrace::tls::TlsSettings {
            client_identity: Some(identity),
            ..scenario::trust(&pki)
        };
        let (client, _dns) = client_with_tls(tls).await;
        let (status, _) = get_ok(&client, &url).await;
        assert_eq!(status, 200, "{versions:?}");
        let trace = scenario::trace(&client, "client certificate");
        let tunnel = only(&trace.net_trace.tls_tunnels, "TLS tunnel", &trace);
        assert!(tunnel.handshake_err.is_empty(), "{}", dump(&trace));
    }
}

#[tokio::test]
async fn a_self_signed_server_certificate_given_as_root_is_trusted() {
    let lone = nettrace_tests::fixtures::tls::self_signed_leaf(&[EXAMPLE_HOST])
        .unwrap_or_else(|e| panic!("{e:?}"));
    let config = lone
        .server_config(&ServerTlsOptions::h1())
        .unwrap_or_else(|e| panic!("{e:?}"));
    let server = https_with(config).await;
    let dir = scenario::TempDir::new("self-signed");
    let pem = dir.write("server.pem", &lone.cert_pem);
    let roots = nettrace::tls::roots_from_pem_file(&pem).unwrap_or_else(|e| panic!("{e:?}"));
    let tls = nettrace::tls::TlsSettings {
        roots: Some(roots.clone()),
        ..Default::default()
    };
    let (client, _dns) = client_with_tls(tls).await;
    let (status, _) = get_ok(&client, &server.url_with_host(EXAMPLE_HOST, "/")).await;
    assert_eq!(status, 200);
    let trace = scenario::trace(&client, "self-signed");
    let tunnel = only(&trace.net_trace.tls_tunnels, "TLS tunnel", &trace);
    assert!(tunnel.handshake_err.is_empty(), "{}", dump(&trace));

    // The name is still checked: the same certificate, reached as another name.
    let dns = scenario::dns_with(
        nettrace_tests::fixtures::dns::Zone::new()
            .a(WRONG_HOST_NAME, [std::net::Ipv4Addr::LOCALHOST]),
    )
    .await;
    let config = HttpClientConfig {
        tls: nettrace::tls::TlsSettings {
            roots: Some(roots),
            ..Default::default()
        },
        ..scenario::config_with_dns(&dns)
    };
    let client = scenario::client(config, scenario::full_options());
    let failure = get_err(&client, &server.url_with_host(WRONG_HOST_NAME, "/")).await;
    assert_eq!(
        failure.kind(),
        RequestErrorKind::TlsCertificate(CertificateFailure::WrongHost),
        "{failure:?}"
    );

    // A self-signed certificate that is not a root stays untrusted.
    let pki = scenario::pki();
    let (client, _dns) = client_with_tls(scenario::trust(&pki)).await;
    let failure = get_err(&client, &server.url_with_host(EXAMPLE_HOST, "/")).await;
    assert!(
        matches!(failure.kind(), RequestErrorKind::TlsCertificate(_)),
        "{failure:?}"
    );
}
