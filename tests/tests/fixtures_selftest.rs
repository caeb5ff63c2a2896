//! Self-tests of the loopback fixtures, driven by plain clients (hickory `Message` over
//! tokio sockets, tokio-rustls, the hyper-util legacy client), so that a broken fixture fails
//! here rather than inside a client test. Every wait is bounded by [`LIMIT`].

use std::future::Future;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hickory_proto::op::{Edns, Message, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};
use http::{Request, Response, StatusCode, Uri, Version};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::rt::{TokioExecutor, TokioIo};
use nettrace_tests::fixtures::broken::{BrokenServer, Misbehaviour, RefusingPort};
use nettrace_tests::fixtures::dns::{Behaviour, DnsServer, Malformed, Transport, Zone};
use nettrace_tests::fixtures::http::{
    HttpOptions, HttpServer, HttpVersions, INDEX_HTML, SLOW_BODY_LEN, pattern,
};
use nettrace_tests::fixtures::net::{V4, V6};
use nettrace_tests::fixtures::proxy::{ProxyOptions, ProxyServer};
use nettrace_tests::fixtures::tls::{
    ALPN_H2, ALPN_HTTP11, CA_COMMON_NAME, CA_ORGANIZATION, LEAF_ORGANIZATION, LeafKind, Resumption,
    ServerTlsOptions, TestPki, TlsVersions,
};
use rustls::pki_types::ServerName;
use rustls::{CertificateError, ClientConfig, HandshakeKind};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

/// The upper bound of every wait in these tests.
const LIMIT: Duration = Duration::from_secs(5);
/// The delay used by the slow fixtures.
const DELAY: Duration = Duration::from_millis(200);

// ---------------------------------------------------------------- DNS

/// A query for `name`/`rtype` with RD set, optionally with EDNS.
fn dns_query(name: &str, rtype: RecordType, edns: bool) -> Message {
    let mut msg = Message::query();
    msg.metadata.recursion_desired = true;
    msg.add_query(Query::query(Name::from_ascii(name).unwrap(), rtype));
    if edns {
        msg.set_edns(Edns::new());
    }
    msg
}

/// Sends `query` over UDP and returns the raw reply, or `None` after `wait`.
async fn udp_exchange(server: SocketAddr, query: &Message, wait: Duration) -> Option<Vec<u8>> {
    let bind = SocketAddr::new(server.ip(), 0);
    let socket = UdpSocket::bind(bind).await.unwrap();
    socket.connect(server).await.unwrap();
    socket.send(&query.to_vec().unwrap()).await.unwrap();
    let mut buf = vec![0u8; 65_535];
    let len = tokio::time::timeout(wait, socket.recv(&mut buf))
        .await
        .ok()?
        .unwrap();
    buf.truncate(len);
    Some(buf)
}

/// Sends `query` over TCP (2-byte framing) and returns the raw reply, or `None` after `wait`.
async fn tcp_exchange(server: SocketAddr, query: &Message, wait: Duration) -> Option<Vec<u8>> {
    let mut stream = TcpStream::connect(server).await.unwrap();
    let bytes = query.to_vec().unwrap();
    stream
        .write_all(&(bytes.len() as u16).to_be_bytes())
        .await
        .unwrap();
    stream.write_all(&bytes).await.unwrap();
    let read = async {
        let len = stream.read_u16().await.unwrap();
        let mut reply = vec![0u8; usize::from(len)];
        stream.read_exact(&mut reply).await.unwrap();
        reply
    };
    tokio::time::timeout(wait, read).await.ok()
}

/// Queries over UDP and decodes the reply, checking the ID.
async fn udp_ask(server: SocketAddr, name: &str, rtype: RecordType) -> Message {
    let query = dns_query(name, rtype, false);
    let reply = udp_exchange(server, &query, LIMIT)
        .await
        .expect("a UDP reply");
    let reply = Message::from_vec(&reply).expect("a decodable reply");
    assert_eq!(reply.metadata.id, query.metadata.id);
    reply
}

fn test_zone() -> Zone {
    Zone::new()
        .a("example.test", [Ipv4Addr::LOCALHOST])
        .aaaa("example.test", [Ipv6Addr::LOCALHOST])
        .mx("example.test", 10, "mail.example.test")
        .txt("example.test", ["v=test", "hello"])
        .cname("www.example.test", "alias.example.test")
        .cname("alias.example.test", "example.test")
        .behaviour("nx.test", Behaviour::NxDomain)
        .behaviour("fail.test", Behaviour::ServFail)
        .behaviour("refused.test", Behaviour::Refused)
        .a("tc.test", [Ipv4Addr::LOCALHOST])
        .behaviour("tc.test", Behaviour::TruncateUdp)
        .behaviour("silent.test", Behaviour::Silence)
        .a("slow.test", [Ipv4Addr::LOCALHOST])
        .delay("slow.test", DELAY)
        .behaviour("garbage.test", Behaviour::Malformed(Malformed::Garbage))
        .behaviour("label.test", Behaviour::Malformed(Malformed::BadLabel))
        .behaviour("rdata.test", Behaviour::Malformed(Malformed::BadRdata))
}

#[tokio::test]
async fn dns_answers_records_and_follows_cname_chains() {
    let dns = DnsServer::start(test_zone()).await.unwrap();
    let a = udp_ask(dns.addr(), "Example.TEST.", RecordType::A).await;
    assert_eq!(a.metadata.response_code, ResponseCode::NoError);
    assert!(!a.metadata.truncation);
    assert_eq!(a.answers.len(), 1);
    assert_eq!(a.answers[0].data, RData::A(Ipv4Addr::LOCALHOST.into()));

    let aaaa = udp_ask(dns.addr(), "example.test", RecordType::AAAA).await;
    assert_eq!(
        aaaa.answers[0].data,
        RData::AAAA(Ipv6Addr::LOCALHOST.into())
    );

    let chain = udp_ask(dns.addr(), "www.example.test", RecordType::A).await;
    let types: Vec<_> = chain.answers.iter().map(|r| r.record_type()).collect();
    assert_eq!(types, [RecordType::CNAME, RecordType::CNAME, RecordType::A]);

    let mx = udp_ask(dns.addr(), "example.test", RecordType::MX).await;
    assert!(matches!(&mx.answers[0].data, RData::MX(mx) if mx.preference == 10));
    let txt = udp_ask(dns.addr(), "example.test", RecordType::TXT).await;
    assert!(matches!(&txt.answers[0].data, RData::TXT(_)));

    let nodata = udp_ask(dns.addr(), "slow.test", RecordType::AAAA).await;
    assert_eq!(nodata.metadata.response_code, ResponseCode::NoError);
    assert!(nodata.answers.is_empty());
    let unknown = udp_ask(dns.addr(), "unknown.test", RecordType::A).await;
    assert_eq!(unknown.metadata.response_code, ResponseCode::NXDomain);

    assert_eq!(dns.udp_queries().get(), 7);
    assert_eq!(dns.tcp_queries().get(), 0);
    let first = &dns.log()[0];
    assert_eq!(
        (first.transport, first.name.as_str(), first.record_type),
        (Transport::Udp, "example.test.", RecordType::A)
    );
}

#[tokio::test]
async fn dns_error_rcodes_on_both_transports() {
    let dns = DnsServer::start(test_zone()).await.unwrap();
    for (name, rcode) in [
        ("nx.test", ResponseCode::NXDomain),
        ("fail.test", ResponseCode::ServFail),
        ("refused.test", ResponseCode::Refused),
    ] {
        assert_eq!(
            udp_ask(dns.addr(), name, RecordType::A)
                .await
                .metadata
                .response_code,
            rcode
        );
        let query = dns_query(name, RecordType::A, true);
        let reply = tcp_exchange(dns.addr(), &query, LIMIT).await.unwrap();
        let reply = Message::from_vec(&reply).unwrap();
        assert_eq!(reply.metadata.response_code, rcode);
        assert!(reply.edns.is_some(), "EDNS answered with EDNS");
    }
    assert_eq!((dns.udp_queries().get(), dns.tcp_queries().get()), (3, 3));
    assert_eq!(dns.tcp_connections().get(), 3);
}

#[tokio::test]
async fn dns_truncates_over_udp_and_answers_over_tcp() {
    let big = (0..40).map(|i| format!("record number {i} of a long text answer"));
    let zone = test_zone().txt("big.test", big);
    let dns = DnsServer::start(zone).await.unwrap();

    let udp = udp_ask(dns.addr(), "tc.test", RecordType::A).await;
    assert!(udp.metadata.truncation);
    assert!(udp.answers.is_empty());
    let query = dns_query("tc.test", RecordType::A, false);
    let tcp = tcp_exchange(dns.addr(), &query, LIMIT).await.unwrap();
    let tcp = Message::from_vec(&tcp).unwrap();
    assert!(!tcp.metadata.truncation);
    assert_eq!(tcp.answers.len(), 1);

    // Over 512 bytes without EDNS: truncated by size.
    let big = udp_ask(dns.addr(), "big.test", RecordType::TXT).await;
    assert!(big.metadata.truncation);
    let query = dns_query("big.test", RecordType::TXT, false);
    let full = tcp_exchange(dns.addr(), &query, LIMIT).await.unwrap();
    assert!(full.len() > 512);
    assert_eq!(Message::from_vec(&full).unwrap().answers.len(), 1);

    let transports: Vec<_> = dns.log().iter().map(|q| q.transport).collect();
    assert_eq!(
        transports,
        [
            Transport::Udp,
            Transport::Tcp,
            Transport::Udp,
            Transport::Tcp
        ]
    );
}

#[tokio::test]
async fn dns_silence_and_delay() {
    let dns = DnsServer::start(test_zone()).await.unwrap();
    let silent = dns_query("silent.test", RecordType::A, false);
    let short = Duration::from_millis(150);
    assert!(udp_exchange(dns.addr(), &silent, short).await.is_none());
    assert!(tcp_exchange(dns.addr(), &silent, short).await.is_none());

    let start = Instant::now();
    let slow = udp_ask(dns.addr(), "slow.test", RecordType::A).await;
    assert!(start.elapsed() >= DELAY);
    assert_eq!(slow.answers.len(), 1);

    // Behaviours can change while running.
    dns.set_behaviour("slow.test", Behaviour::ServFail);
    let changed = udp_ask(dns.addr(), "slow.test", RecordType::A).await;
    assert_eq!(changed.metadata.response_code, ResponseCode::ServFail);
    assert_eq!(dns.udp_queries().get(), 3);
}

#[tokio::test]
async fn dns_malformed_replies_keep_the_id_and_fail_to_decode() {
    let dns = DnsServer::start(test_zone()).await.unwrap();
    for name in ["garbage.test", "label.test", "rdata.test"] {
        let query = dns_query(name, RecordType::A, false);
        let reply = udp_exchange(dns.addr(), &query, LIMIT).await.unwrap();
        assert_eq!(reply[..2], query.metadata.id.to_be_bytes(), "{name}");
        assert!(Message::from_vec(&reply).is_err(), "{name} decoded");
        let reply = tcp_exchange(dns.addr(), &query, LIMIT).await.unwrap();
        assert!(
            Message::from_vec(&reply).is_err(),
            "{name} decoded over TCP"
        );
    }
}

#[tokio::test]
async fn dns_serves_ipv6_loopback() {
    let dns = DnsServer::start_on(V6, test_zone()).await.unwrap();
    assert!(dns.addr().is_ipv6());
    let a = udp_ask(dns.addr(), "example.test", RecordType::A).await;
    assert_eq!(a.answers.len(), 1);
}

// ---------------------------------------------------------------- TLS

/// Dials `addr` and runs a TLS handshake for `name`.
async fn tls_connect(
    addr: SocketAddr,
    config: Arc<ClientConfig>,
    name: &str,
) -> io::Result<TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    let name = ServerName::try_from(name.to_string()).unwrap();
    TlsConnector::from(config).connect(name, tcp).await
}

/// The `CN` and `O` of a DER certificate's subject and issuer.
fn names_of(der: &[u8]) -> [String; 4] {
    let (_, cert) = x509_parser::parse_x509_certificate(der).unwrap();
    fn first<'a>(
        mut it: impl Iterator<Item = &'a x509_parser::x509::AttributeTypeAndValue<'a>>,
    ) -> String {
        it.next().unwrap().as_str().unwrap().to_string()
    }
    [
        first(cert.subject().iter_common_name()),
        first(cert.subject().iter_organization()),
        first(cert.issuer().iter_common_name()),
        first(cert.issuer().iter_organization()),
    ]
}

/// The certificate error inside a failed handshake's `io::Error`.
fn cert_error(err: &io::Error) -> &CertificateError {
    let inner = err.get_ref().expect("an inner error");
    match inner.downcast_ref::<rustls::Error>() {
        Some(rustls::Error::InvalidCertificate(e)) => e,
        other => panic!("not a certificate error: {other:?} ({err})"),
    }
}

#[tokio::test]
async fn tls_valid_leaf_negotiates_alpn_and_names_subjects() {
    let pki = TestPki::new().unwrap();
    let leaf = pki.leaf(LeafKind::Valid).unwrap();
    let server = HttpServer::start(HttpOptions::https(
        leaf.server_config(&ServerTlsOptions::h2_and_h1()).unwrap(),
    ))
    .await
    .unwrap();
    let config = pki.client_config(&[ALPN_H2, ALPN_HTTP11]);
    for name in ["example.test", "localhost", "127.0.0.1"] {
        let tls = tls_connect(server.addr(), config.clone(), name)
            .await
            .unwrap();
        let (_, session) = tls.get_ref();
        assert_eq!(session.alpn_protocol(), Some(ALPN_H2));
        let chain = session.peer_certificates().unwrap();
        assert_eq!(
            names_of(&chain[0]),
            [
                "example.test",
                LEAF_ORGANIZATION,
                CA_COMMON_NAME,
                CA_ORGANIZATION
            ]
        );
    }
    let h1 = pki.client_config(&[ALPN_HTTP11]);
    let tls = tls_connect(server.addr(), h1, "example.test")
        .await
        .unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(ALPN_HTTP11));
    assert!(server.tls_handshakes().wait_for(4, LIMIT).await);
    assert!(pki.ca_pem().starts_with("-----BEGIN CERTIFICATE-----"));
}

#[tokio::test]
async fn tls_bad_leaves_fail_verification_with_the_matching_error() {
    let pki = TestPki::new().unwrap();
    let config = pki.client_config(&[ALPN_HTTP11]);
    for kind in LeafKind::ALL {
        let leaf = pki.leaf(kind).unwrap();
        let server = HttpServer::start(HttpOptions::https(
            leaf.server_config(&ServerTlsOptions::h1()).unwrap(),
        ))
        .await
        .unwrap();
        let result = tls_connect(server.addr(), config.clone(), "example.test").await;
        if kind == LeafKind::Valid {
            assert!(result.is_ok());
            continue;
        }
        let err = result.expect_err("a bad certificate was accepted");
        let cert_err = cert_error(&err);
        let ok = match kind {
            LeafKind::Expired => matches!(
                cert_err,
                CertificateError::Expired | CertificateError::ExpiredContext { .. }
            ),
            LeafKind::NotYetValid => matches!(
                cert_err,
                CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. }
            ),
            LeafKind::WrongHost => matches!(
                cert_err,
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. }
            ),
            LeafKind::UntrustedIssuer => matches!(cert_err, CertificateError::UnknownIssuer),
            LeafKind::Valid => unreachable!(),
        };
        assert!(ok, "{kind:?}: {cert_err:?}");
        assert!(server.tls_failures().wait_for(1, LIMIT).await, "{kind:?}");
    }
}

/// A TLS connection that sends one HTTP/1.1 request and reads to the end, so TLS 1.3
/// tickets (sent after the handshake) reach the client. Returns the handshake kind.
async fn tls_round_trip(addr: SocketAddr, config: Arc<ClientConfig>) -> HandshakeKind {
    let mut tls = tls_connect(addr, config, "example.test").await.unwrap();
    let kind = tls.get_ref().1.handshake_kind().unwrap();
    tls.write_all(b"GET / HTTP/1.1\r\nhost: example.test\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut response = Vec::new();
    let _ = tokio::time::timeout(LIMIT, tls.read_to_end(&mut response)).await;
    assert!(response.starts_with(b"HTTP/1.1 200"));
    kind
}

#[tokio::test]
async fn tls_resumption_follows_the_server_options() {
    let pki = TestPki::new().unwrap();
    let leaf = pki.leaf(LeafKind::Valid).unwrap();
    let cases = [
        (Resumption::Disabled, TlsVersions::All, HandshakeKind::Full),
        (
            Resumption::Tickets,
            TlsVersions::Tls13Only,
            HandshakeKind::Resumed,
        ),
        (
            Resumption::Tickets,
            TlsVersions::Tls12Only,
            HandshakeKind::Resumed,
        ),
        (
            Resumption::SessionCache,
            TlsVersions::Tls13Only,
            HandshakeKind::Resumed,
        ),
        (
            Resumption::SessionCache,
            TlsVersions::Tls12Only,
            HandshakeKind::Resumed,
        ),
    ];
    for (resumption, versions, second) in cases {
        let options = ServerTlsOptions {
            resumption,
            versions,
            ..ServerTlsOptions::h1()
        };
        let server = HttpServer::start(HttpOptions::https(leaf.server_config(&options).unwrap()))
            .await
            .unwrap();
        let config = pki.client_config(&[ALPN_HTTP11]);
        let first = tls_round_trip(server.addr(), config.clone()).await;
        assert_eq!(first, HandshakeKind::Full);
        let again = tls_round_trip(server.addr(), config).await;
        assert_eq!(again, second, "{resumption:?} {versions:?}");
        let resumed = usize::from(second == HandshakeKind::Resumed);
        assert_eq!(server.tls_resumed().get(), resumed);
    }
}

// ---------------------------------------------------------------- HTTP clients

/// A hyper-util connector that dials the URI's IP and speaks TLS with a fixed SNI.
#[derive(Clone)]
struct HttpsConnector {
    config: Arc<ClientConfig>,
    sni: ServerName<'static>,
}

/// The TLS stream handed to hyper, reporting negotiated HTTP/2.
struct HttpsStream(TokioIo<TlsStream<TcpStream>>);

impl tower_service::Service<Uri> for HttpsConnector {
    type Response = HttpsStream;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<HttpsStream>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let (config, sni) = (self.config.clone(), self.sni.clone());
        Box::pin(async move {
            let host = uri.host().unwrap_or_default();
            let host = host.trim_start_matches('[').trim_end_matches(']');
            let ip: IpAddr = host.parse().map_err(io::Error::other)?;
            let tcp = TcpStream::connect((ip, uri.port_u16().unwrap_or(443))).await?;
            tcp.set_nodelay(true)?;
            let tls = TlsConnector::from(config).connect(sni, tcp).await?;
            Ok(HttpsStream(TokioIo::new(tls)))
        })
    }
}

impl Connection for HttpsStream {
    fn connected(&self) -> Connected {
        let connected = Connected::new();
        if self.0.inner().get_ref().1.alpn_protocol() == Some(ALPN_H2) {
            connected.negotiated_h2()
        } else {
            connected
        }
    }
}

impl hyper::rt::Read for HttpsStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl hyper::rt::Write for HttpsStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

type Body = Full<Bytes>;

fn plain_client(h2_only: bool) -> Client<HttpConnector, Body> {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    Client::builder(TokioExecutor::new())
        .http2_only(h2_only)
        .build(connector)
}

fn https_client(config: Arc<ClientConfig>) -> Client<HttpsConnector, Body> {
    let sni = ServerName::try_from("example.test").unwrap();
    Client::builder(TokioExecutor::new()).build(HttpsConnector { config, sni })
}

fn get(url: &str) -> Request<Body> {
    Request::get(url).body(Body::default()).unwrap()
}

/// Sends `req` and collects the response body, within [`LIMIT`].
async fn fetch<C>(client: &Client<C, Body>, req: Request<Body>) -> (Response<()>, Bytes)
where
    C: hyper_util::client::legacy::connect::Connect + Clone + Send + Sync + 'static,
{
    let exchange = async {
        let res: Response<Incoming> = client.request(req).await.unwrap();
        let (parts, body) = res.into_parts();
        let body = body.collect().await.unwrap().to_bytes();
        (Response::from_parts(parts, ()), body)
    };
    tokio::time::timeout(LIMIT, exchange).await.unwrap()
}

fn header<'a>(res: &'a Response<()>, name: &str) -> Option<&'a str> {
    res.headers().get(name).map(|v| v.to_str().unwrap())
}

// ---------------------------------------------------------------- HTTP routes

#[tokio::test]
async fn http_routes_answer_as_documented() {
    let server = HttpServer::plain().await.unwrap();
    let client = plain_client(false);

    let (res, body) = fetch(&client, get(&server.url("/"))).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(
        header(&res, "content-type")
            .unwrap()
            .starts_with("text/html")
    );
    assert_eq!(body, INDEX_HTML);

    let (_, body) = fetch(&client, get(&server.url("/bytes/1000"))).await;
    assert_eq!(body, pattern(1000));

    let mut gz = get(&server.url("/gzip/5000"));
    gz.headers_mut()
        .insert("accept-encoding", "gzip, deflate".parse().unwrap());
    let (res, body) = fetch(&client, gz).await;
    assert_eq!(header(&res, "content-encoding"), Some("gzip"));
    assert!(body.len() < 5000);
    let mut plain = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&body[..]), &mut plain).unwrap();
    assert_eq!(plain, pattern(5000));
    let (res, body) = fetch(&client, get(&server.url("/gzip/50"))).await;
    assert_eq!(header(&res, "content-encoding"), None);
    assert_eq!(body, pattern(50));

    let mut path = "/redirect/3".to_string();
    let mut hops = 0;
    while hops < 10 {
        let (res, _) = fetch(&client, get(&server.url(&path))).await;
        if res.status() != StatusCode::FOUND {
            break;
        }
        path = header(&res, "location").unwrap().to_string();
        hops += 1;
    }
    assert_eq!((hops, path.as_str()), (3, "/"));
    let (res, _) = fetch(&client, get(&server.url("/redirect-loop"))).await;
    assert_eq!(header(&res, "location"), Some("/redirect-loop"));

    let (res, _) = fetch(&client, get(&server.url("/status/418"))).await;
    assert_eq!(res.status().as_u16(), 418);
    let (res, body) = fetch(&client, get(&server.url("/status/204"))).await;
    assert_eq!((res.status().as_u16(), body.len()), (204, 0));
    let (res, _) = fetch(&client, get(&server.url("/nope"))).await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);

    let echo = Request::post(server.url("/echo?x=1"))
        .header("x-test", "yes")
        .header("content-type", "text/plain")
        .body(Body::from("hello echo"))
        .unwrap();
    let (res, body) = fetch(&client, echo).await;
    assert_eq!(body, "hello echo");
    assert_eq!(header(&res, "x-echo-method"), Some("POST"));
    assert_eq!(header(&res, "x-echo-header-x-test"), Some("yes"));
    assert_eq!(header(&res, "x-echo-version"), Some("HTTP/1.1"));
    assert_eq!(header(&res, "content-type"), Some("text/plain"));

    // Keep-alive: one connection carried every request.
    assert_eq!(server.connections().get(), 1);
    assert_eq!(server.requests().get(), 13);
    let log = server.request_log();
    assert!(log.iter().all(|r| r.connection == 0));
    assert_eq!(log.last().unwrap().path, "/echo?x=1");
}

#[tokio::test]
async fn http_slow_routes_delay_headers_or_body() {
    let server = HttpServer::plain().await.unwrap();
    let client = plain_client(false);
    let start = Instant::now();
    let (res, _) = fetch(&client, get(&server.url("/slow-headers/200"))).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(start.elapsed() >= DELAY);

    // Headers and the first half arrive together; the second half after the delay.
    let start = Instant::now();
    let res = tokio::time::timeout(LIMIT, client.request(get(&server.url("/slow-body/200"))))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(res.headers()["content-length"], "64");
    let mut body = res.into_body();
    let mut frames = Vec::new();
    while let Some(frame) = tokio::time::timeout(LIMIT, body.frame()).await.unwrap() {
        if let Ok(data) = frame.unwrap().into_data() {
            frames.push(data);
        }
    }
    assert!(start.elapsed() >= DELAY);
    assert_eq!(frames.len(), 2);
    assert_eq!(frames[0].len(), SLOW_BODY_LEN / 2);
    assert_eq!(frames.concat(), pattern(SLOW_BODY_LEN));
}

#[tokio::test]
async fn http_keep_alive_off_opens_a_connection_per_request() {
    let server = HttpServer::start(HttpOptions {
        keep_alive: false,
        versions: HttpVersions::Http1Only,
        ..HttpOptions::default()
    })
    .await
    .unwrap();
    let client = plain_client(false);
    for _ in 0..2 {
        let (res, _) = fetch(&client, get(&server.url("/"))).await;
        assert_eq!(header(&res, "connection"), Some("close"));
    }
    assert_eq!(server.connections().get(), 2);
    let conns: Vec<_> = server.request_log().iter().map(|r| r.connection).collect();
    assert_eq!(conns, [0, 1]);
}

#[tokio::test]
async fn http2_prior_knowledge_multiplexes_on_one_connection() {
    let server = HttpServer::start(HttpOptions {
        versions: HttpVersions::Http2Only,
        ..HttpOptions::default()
    })
    .await
    .unwrap();
    let client = plain_client(true);
    let (a, b) = tokio::join!(
        fetch(&client, get(&server.url("/slow-headers/50"))),
        fetch(&client, get(&server.url("/bytes/10")))
    );
    assert_eq!(
        (a.0.version(), b.0.version()),
        (Version::HTTP_2, Version::HTTP_2)
    );
    assert_eq!(server.connections().get(), 1);
    assert_eq!(server.requests().get(), 2);
}

#[tokio::test]
async fn https_picks_the_version_by_alpn() {
    let pki = TestPki::new().unwrap();
    let leaf = pki.leaf(LeafKind::Valid).unwrap();
    for (options, version) in [
        (ServerTlsOptions::h2_and_h1(), Version::HTTP_2),
        (ServerTlsOptions::h1(), Version::HTTP_11),
    ] {
        let server = HttpServer::start(HttpOptions::https(leaf.server_config(&options).unwrap()))
            .await
            .unwrap();
        assert!(server.url("/").starts_with("https://"));
        let client = https_client(pki.client_config(&[ALPN_H2, ALPN_HTTP11]));
        for _ in 0..2 {
            let (res, body) = fetch(&client, get(&server.url("/bytes/100"))).await;
            assert_eq!(res.version(), version);
            assert_eq!(body, pattern(100));
        }
        assert_eq!(server.connections().get(), 1);
        assert_eq!(server.request_log()[0].version, version);
    }
}

// ---------------------------------------------------------------- broken servers

const REQUEST: &[u8] = b"GET / HTTP/1.1\r\nhost: broken\r\n\r\n";

/// Reads until EOF or an error, within [`LIMIT`]; returns the bytes and how it ended.
async fn read_all(stream: &mut TcpStream) -> (Vec<u8>, io::Result<()>) {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let read = async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) => return Ok(()),
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e) => return Err(e),
            }
        }
    };
    let end = tokio::time::timeout(LIMIT, read).await.unwrap();
    (got, end)
}

#[tokio::test]
async fn broken_reset_mid_body_sends_headers_then_rst() {
    let server = BrokenServer::start(Misbehaviour::ResetMidBody {
        declared: 1000,
        sent: 100,
    })
    .await
    .unwrap();
    let mut stream = TcpStream::connect(server.addr()).await.unwrap();
    stream.write_all(REQUEST).await.unwrap();
    let (got, end) = read_all(&mut stream).await;
    assert_eq!(end.unwrap_err().kind(), io::ErrorKind::ConnectionReset);
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
    assert!(text.contains("content-length: 1000\r\n"));
    assert!(got.ends_with(&pattern(100)));

    // A hyper client sees the headers, then a body error.
    let client = plain_client(false);
    let res = client.request(get(&server.url("/"))).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.into_body().collect().await.is_err());
    assert_eq!(server.connections().get(), 2);
}

#[tokio::test]
async fn broken_stall_never_answers() {
    let server = BrokenServer::start(Misbehaviour::Stall).await.unwrap();
    let mut stream = TcpStream::connect(server.addr()).await.unwrap();
    stream.write_all(REQUEST).await.unwrap();
    assert!(server.connections().wait_for(1, LIMIT).await);
    let mut buf = [0u8; 16];
    let read = tokio::time::timeout(Duration::from_millis(150), stream.read(&mut buf)).await;
    assert!(read.is_err(), "the stalling server answered");
}

#[tokio::test]
async fn broken_close_and_reset_on_accept() {
    let close = BrokenServer::start(Misbehaviour::CloseAfterRequest)
        .await
        .unwrap();
    let mut stream = TcpStream::connect(close.addr()).await.unwrap();
    stream.write_all(REQUEST).await.unwrap();
    let (got, end) = read_all(&mut stream).await;
    assert!(got.is_empty() && end.is_ok(), "clean EOF without response");

    let fin = BrokenServer::start(Misbehaviour::CloseOnAccept)
        .await
        .unwrap();
    let mut stream = TcpStream::connect(fin.addr()).await.unwrap();
    assert!(fin.connections().wait_for(1, LIMIT).await);
    let (got, end) = read_all(&mut stream).await;
    assert!(got.is_empty() && end.is_ok(), "FIN right after accept");

    let rst = BrokenServer::start(Misbehaviour::ResetOnAccept)
        .await
        .unwrap();
    let mut stream = TcpStream::connect(rst.addr()).await.unwrap();
    assert!(rst.connections().wait_for(1, LIMIT).await);
    let (_, end) = read_all(&mut stream).await;
    assert_eq!(end.unwrap_err().kind(), io::ErrorKind::ConnectionReset);
}

#[tokio::test]
async fn refusing_port_refuses() {
    for ip in [V4, V6] {
        let port = RefusingPort::new(ip).unwrap();
        let err = TcpStream::connect(port.addr()).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused);
    }
    assert!(RefusingPort::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED)).is_err());
}

// ---------------------------------------------------------------- proxy

/// Sends a CONNECT for `target` (plus `extra` header lines) on `io`; returns the status line.
async fn send_connect<S>(io: &mut S, target: &str, extra: &str) -> String
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let request = format!("CONNECT {target} HTTP/1.1\r\nhost: {target}\r\n{extra}\r\n");
    io.write_all(request.as_bytes()).await.unwrap();
    // Read the head byte by byte so no tunnelled byte is consumed.
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && head.len() < 4096 {
        let n = tokio::time::timeout(LIMIT, io.read(&mut byte))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(n, 1, "proxy closed during CONNECT");
        head.push(byte[0]);
    }
    let head = String::from_utf8(head).unwrap();
    head.lines().next().unwrap().to_string()
}

/// One HTTP/1.1 GET for `uri` over `io` (absolute or origin form, as given).
async fn h1_get<S>(io: S, uri: &str) -> (StatusCode, Bytes)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake::<_, Body>(TokioIo::new(io))
        .await
        .unwrap();
    let driver = tokio::spawn(conn);
    let req = Request::get(uri)
        .header("host", "example.test")
        .body(Body::default())
        .unwrap();
    let exchange = async {
        let res = sender.send_request(req).await.unwrap();
        let status = res.status();
        (status, res.into_body().collect().await.unwrap().to_bytes())
    };
    let out = tokio::time::timeout(LIMIT, exchange).await.unwrap();
    driver.abort();
    out
}

#[tokio::test]
async fn proxy_forwards_absolute_form_requests() {
    let origin = HttpServer::plain().await.unwrap();
    let proxy = ProxyServer::start(ProxyOptions::default()).await.unwrap();
    let stream = TcpStream::connect(proxy.addr()).await.unwrap();
    let url = origin.url("/bytes/10");
    let (status, body) = h1_get(stream, &url).await;
    assert_eq!((status, body), (StatusCode::OK, Bytes::from(pattern(10))));
    assert_eq!(proxy.forwarded().get(), 1);
    assert_eq!(proxy.connects().get(), 0);
    assert_eq!(proxy.request_lines(), [format!("GET {url} HTTP/1.1")]);
    assert_eq!(origin.request_log()[0].path, "/bytes/10");
}

#[tokio::test]
async fn proxy_tunnels_connect_and_checks_targets_and_auth() {
    let origin = HttpServer::plain().await.unwrap();
    let proxy = ProxyServer::start(ProxyOptions {
        required_auth: Some("Basic dGVzdDp0ZXN0".into()),
        ..ProxyOptions::default()
    })
    .await
    .unwrap();
    let target = origin.addr().to_string();

    let mut denied = TcpStream::connect(proxy.addr()).await.unwrap();
    assert_eq!(
        send_connect(&mut denied, &target, "").await,
        "HTTP/1.1 407 Proxy Authentication Required"
    );

    let mut stream = TcpStream::connect(proxy.addr()).await.unwrap();
    let auth = "proxy-authorization: Basic dGVzdDp0ZXN0\r\n";
    let line = send_connect(&mut stream, &target, auth).await;
    assert_eq!(line, "HTTP/1.1 200 OK");
    let (status, body) = h1_get(stream, "/").await;
    assert_eq!((status, body), (StatusCode::OK, Bytes::from(INDEX_HTML)));
    assert!(proxy.connects().get() == 2 && proxy.tunnels().get() == 1);
    assert_eq!(
        proxy.request_lines()[1],
        format!("CONNECT {target} HTTP/1.1")
    );

    // Names the proxy does not know are refused without any lookup.
    let open = ProxyServer::start(ProxyOptions::default()).await.unwrap();
    let mut stream = TcpStream::connect(open.addr()).await.unwrap();
    let line = send_connect(&mut stream, "example.invalid:443", "").await;
    assert_eq!(line, "HTTP/1.1 502 Bad Gateway");
    assert_eq!(open.tunnels().get(), 0);
}

#[tokio::test]
async fn https_proxy_tunnels_to_an_https_origin() {
    let pki = TestPki::new().unwrap();
    let leaf = pki.leaf(LeafKind::Valid).unwrap();
    let origin = HttpServer::start(HttpOptions::https(
        leaf.server_config(&ServerTlsOptions::h1()).unwrap(),
    ))
    .await
    .unwrap();
    let proxy = ProxyServer::start(ProxyOptions {
        tls: Some(leaf.server_config(&ServerTlsOptions::h1()).unwrap()),
        hosts: [("example.test".to_string(), V4)].into(),
        ..ProxyOptions::default()
    })
    .await
    .unwrap();
    assert!(proxy.url().starts_with("https://"));

    let config = pki.client_config(&[ALPN_HTTP11]);
    let mut to_proxy = tls_connect(proxy.addr(), config.clone(), "localhost")
        .await
        .unwrap();
    let target = format!("example.test:{}", origin.addr().port());
    assert_eq!(
        send_connect(&mut to_proxy, &target, "").await,
        "HTTP/1.1 200 OK"
    );
    let sni = ServerName::try_from("example.test").unwrap();
    let inner = TlsConnector::from(config)
        .connect(sni, to_proxy)
        .await
        .unwrap();
    let (status, body) = h1_get(inner, "/bytes/7").await;
    assert_eq!((status, body), (StatusCode::OK, Bytes::from(pattern(7))));
    assert_eq!(origin.tls_handshakes().get(), 1);
    assert_eq!(proxy.tunnels().get(), 1);
}

// ---------------------------------------------------------------- lifetime

/// Yields (a bounded number of times) until connecting to `addr` is refused.
async fn refused_after_drop(addr: SocketAddr) -> bool {
    for _ in 0..100 {
        tokio::task::yield_now().await;
        if let Err(e) = TcpStream::connect(addr).await {
            return e.kind() == io::ErrorKind::ConnectionRefused;
        }
    }
    false
}

#[tokio::test]
async fn fixtures_stop_when_dropped() {
    let stall = BrokenServer::start(Misbehaviour::Stall).await.unwrap();
    let mut held = TcpStream::connect(stall.addr()).await.unwrap();
    assert!(stall.connections().wait_for(1, LIMIT).await);
    let addr = stall.addr();
    drop(stall);
    let (_, end) = read_all(&mut held).await;
    assert!(
        end.is_ok(),
        "a held connection ends when its fixture is dropped"
    );
    assert!(refused_after_drop(addr).await);

    let http = HttpServer::plain().await.unwrap();
    let addr = http.addr();
    drop(http);
    assert!(refused_after_drop(addr).await);

    let dns = DnsServer::start(test_zone()).await.unwrap();
    let addr = dns.addr();
    drop(dns);
    assert!(refused_after_drop(addr).await);

    let proxy = ProxyServer::start(ProxyOptions::default()).await.unwrap();
    let addr = proxy.addr();
    drop(proxy);
    assert!(refused_after_drop(addr).await);
}
