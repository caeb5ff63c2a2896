//! What runs over connections: DNS messages, TLS tunnels, HTTP requests.
use super::*;

#[test]
fn dns_messages_are_recorded_per_resolver_connection_when_asked() {
    let mut recorder = recorder(true);
    resolved_dial(&mut recorder);
    let udp2 = Arc::new(SocketRecord::new(false));
    recorder.handle(opened(
        "udp-2",
        Transport::Udp,
        "dial-1",
        "10.0.0.54:53",
        Some(14),
        &udp2,
        3,
    ));
    recorder.handle(Event::DnsQuery {
        conn: id("udp-1"),
        dial: id("dial-1"),
        at: at(2),
        msg: query_msg(0x1234, "example.test."),
    });
    recorder.handle(Event::DnsQuery {
        conn: id("udp-2"),
        dial: id("dial-1"),
        at: at(3),
        msg: query_msg(0x4321, "example.test."),
    });
    recorder.handle(Event::DnsReply {
        conn: id("udp-1"),
        dial: id("dial-1"),
        at: at(7),
        msg: reply_msg(0x1234, "example.test.", "93.184.215.14"),
    });

    let trace = recorder.snapshot_ms("dns", at(50));
    let sent = |ms, msg: DnsQueryMsg| DnsQueryMsg {
        sent_at: rel(ms),
        ..msg
    };
    assert_eq!(
        trace.net_trace.dns_queries.to_vec(),
        [
            DnsQueryTrace {
                // Named by the recorder, from its ID source.
                trace_id: id("dns-1"),
                from_dial: id("dial-1"),
                connection: id("udp-1"),
                dns_query_msgs: vec![sent(2, query_msg(0x1234, "example.test."))],
                dns_reply_msgs: vec![DnsReplyMsg {
                    recv_at: rel(7),
                    ..reply_msg(0x1234, "example.test.", "93.184.215.14")
                }],
            },
            DnsQueryTrace {
                trace_id: id("dns-2"),
                from_dial: id("dial-1"),
                connection: id("udp-2"),
                dns_query_msgs: vec![sent(3, query_msg(0x4321, "example.test."))],
                dns_reply_msgs: Vec::new(),
            },
        ]
    );
    let json = serde_json::to_value(&trace).expect("json");
    assert_eq!(json["dnsQueries"][0]["traceID"], "dns-1");
    assert_eq!(json["dnsQueries"][0]["dnsQueryMsgs"][0]["sentAt"], "+2ms");
    assert_eq!(json["dnsQueries"][0]["dnsReplyMsgs"][0]["recvAt"], "+7ms");
    assert_eq!(
        json["dnsQueries"][0]["dnsReplyMsgs"][0]["answers"][0]["resolvedVal"],
        "93.184.215.14"
    );
    assert_eq!(json["dnsQueries"][1]["dnsReplyMsgs"], json!(null));
}

#[test]
fn dns_messages_are_not_recorded_when_off() {
    // Nothing may be named either.
    let mut off = Recorder::with_clock(false, clock_at(0), no_ids());
    resolved_dial(&mut off);
    off.handle(Event::DnsQuery {
        conn: id("udp-1"),
        dial: id("dial-1"),
        at: at(2),
        msg: query_msg(0x1234, "example.test."),
    });
    off.handle(Event::DnsReply {
        conn: id("udp-1"),
        dial: id("dial-1"),
        at: at(7),
        msg: reply_msg(0x1234, "example.test.", "93.184.215.14"),
    });
    let trace = off.snapshot_ms("dns off", at(50));
    assert!(trace.net_trace.dns_queries.is_empty());
    // The rest is recorded as without the messages.
    let mut without = recorder(false);
    resolved_dial(&mut without);
    assert_eq!(trace, without.snapshot_ms("dns off", at(50)));
}

fn cert(subject: &str, issuer: &str, is_ca: bool) -> PeerCert {
    PeerCert {
        subject: subject.to_owned(),
        issuer: issuer.to_owned(),
        not_before: Timestamp::Absolute(datetime!(2025-01-01 0:00 UTC)),
        not_after: Timestamp::Absolute(datetime!(2027-01-01 0:00 UTC)),
        is_ca,
    }
}

#[test]
fn tls_tunnels_keep_their_outcome_and_requests_name_them() {
    let mut recorder = recorder(false);
    let body = Arc::new(BodyCounters::default());
    let (tcp1, tcp2) = (
        Arc::new(SocketRecord::new(false)),
        Arc::new(SocketRecord::new(false)),
    );
    recorder.handle(request_started("req-1", 0, "https://example.test/", &body));
    recorder.handle(dial_started("dial-1", 1, "proxy.test:3128", Some("req-1")));
    recorder.handle(opened(
        "tcp-1",
        Transport::Tcp,
        "dial-1",
        SERVER,
        Some(12),
        &tcp1,
        2,
    ));
    recorder.handle(established("tcp-1", 10, LOCAL_TCP));
    recorder.handle(dial_ended("dial-1", 10, Ok("tcp-1")));
    // TLS to the proxy, then TLS to the server inside it, which fails verification.
    recorder.handle(tls_started("tls-p", "tcp-1", 11, true, Some("req-1")));
    let proxy_certs = vec![cert("CN=proxy.test", "CN=Test CA", false)];
    recorder.handle(Event::TlsEnded {
        tls: id("tls-p"),
        at: at(15),
        outcome: TlsOutcome {
            error: String::new(),
            did_resume: true,
            cipher_suite: 0x1302,
            negotiated_proto: String::new(),
            peer_certs: proxy_certs.clone(),
            tls_version: "TLSv1.3".to_owned(),
            insecure: true,
            cert_verify_error: "invalid peer certificate: UnknownIssuer".to_owned(),
        },
    });
    recorder.handle(tls_started("tls-1", "tcp-1", 16, false, Some("req-1")));
    let presented = vec![
        cert("CN=example.test", "CN=Rogue CA", false),
        cert("CN=Rogue CA", "CN=Rogue CA", true),
    ];
    let bad_cert = "invalid peer certificate: UnknownIssuer";
    recorder.handle(Event::TlsEnded {
        tls: id("tls-1"),
        at: at(20),
        outcome: TlsOutcome {
            error: bad_cert.to_owned(),
            peer_certs: presented.clone(),
            ..TlsOutcome::default()
        },
    });
    recorder.handle(Event::HttpFailed {
        req: id("req-1"),
        error: bad_cert.to_owned(),
    });
    // A second request over another connection, whose handshake never ended but whose
    // response names the tunnel.
    recorder.handle(request_started(
        "req-2",
        30,
        "https://example.test/2",
        &body,
    ));
    recorder.handle(opened(
        "tcp-2",
        Transport::Tcp,
        "dial-9",
        SERVER,
        None,
        &tcp2,
        30,
    ));
    recorder.handle(tls_started("tls-2", "tcp-2", 31, false, None));
    recorder.handle(Event::HttpResponse {
        req: id("req-2"),
        at: at(40),
        conn: Some(conn_info("tcp-2", Some("tls-2"), None)),
        proto: (2, 0),
        status: 204,
        header: None,
    });

    let trace = recorder.snapshot_ms("tls", at(50));
    assert_eq!(
        trace.net_trace.tls_tunnels.to_vec(),
        [
            TlsTunnelTrace {
                trace_id: id("tls-p"),
                tcp_conn: id("tcp-1"),
                handshake_begin_at: rel(11),
                handshake_end_at: rel(15),
                handshake_err: String::new(),
                did_resume: true,
                peer_certs: proxy_certs,
                cipher_suite: 0x1302,
                negotiated_proto: String::new(),
                server_name: "example.test".to_owned(),
                tls_version: "TLSv1.3".to_owned(),
                insecure: true,
                cert_verify_err: "invalid peer certificate: UnknownIssuer".to_owned(),
                ..Default::default()
            },
            TlsTunnelTrace {
                trace_id: id("tls-1"),
                tcp_conn: id("tcp-1"),
                handshake_begin_at: rel(16),
                handshake_end_at: rel(20),
                handshake_err: bad_cert.to_owned(),
                peer_certs: presented,
                server_name: "example.test".to_owned(),
                ..TlsTunnelTrace::default()
            },
            TlsTunnelTrace {
                trace_id: id("tls-2"),
                tcp_conn: id("tcp-2"),
                handshake_begin_at: rel(31),
                handshake_end_at: Timestamp::Undefined,
                server_name: "example.test".to_owned(),
                ..TlsTunnelTrace::default()
            },
        ]
    );
    let requests = trace.http_requests.as_slice();
    // Failed before a response: the tunnels and connection come from what it caused.
    assert_eq!(
        (
            &requests[0].tcp_conn,
            &requests[0].tls_tunnel,
            &requests[0].proxy_tls_tunnel
        ),
        (&id("tcp-1"), &id("tls-1"), &id("tls-p"))
    );
    assert_eq!(requests[0].req_error, bad_cert);
    assert_eq!(
        (
            &requests[1].tcp_conn,
            &requests[1].tls_tunnel,
            &requests[1].proxy_tls_tunnel
        ),
        (&id("tcp-2"), &id("tls-2"), &TraceId::default())
    );
    assert_eq!(
        (
            requests[1].proto_major,
            requests[1].proto_minor,
            requests[1].resp_status_code,
            &requests[1].resp_recv_at
        ),
        (2, 0, 204, &rel(40))
    );
    let json = serde_json::to_value(&trace).expect("json");
    assert_eq!(json["tlsTunnels"][1]["handshakeErr"], bad_cert);
    assert_eq!(json["tlsTunnels"][1]["peerCerts"][1]["isCA"], true);
    assert_eq!(
        json["tlsTunnels"][1]["peerCerts"][0]["notBefore"],
        "2025-01-01T00:00:00Z"
    );
    assert_eq!(json["tlsTunnels"][2]["handshakeEndAt"], "undefined");
    assert_eq!(json["httpRequests"][0]["proxyTLSTunnel"], "tls-p");
    assert!(json["httpRequests"][1].get("proxyTLSTunnel").is_none());
}

fn header_options() -> Arc<HttpReqTraceOptions> {
    Arc::new(HttpReqTraceOptions {
        header_fields: HdrFieldsOpt::WithValues,
        exclude_header_field: Some(Arc::new(|name: &str| name == "Authorization")),
    })
}

fn header_map(fields: &[(&'static str, &str)]) -> http::HeaderMap {
    let mut map = http::HeaderMap::new();
    for (name, value) in fields {
        let value = http::HeaderValue::from_bytes(value.as_bytes()).expect("header value");
        map.append(*name, value);
    }
    map
}

fn kv(name: &str, value: &str) -> HttpHeaderKv {
    HttpHeaderKv {
        field_name: name.to_owned(),
        field_val: value.to_owned(),
        field_val_len: value.chars().count() as u32,
    }
}

#[test]
fn an_http_request_keeps_headers_and_live_body_counters() {
    let mut recorder = recorder(false);
    let options = header_options();
    recorder.set_http_headers(options.clone());
    let request_headers = header_map(&[
        ("user-agent", "nettrace-test"),
        ("authorization", "Bearer secret"),
        ("accept", "text/plain"),
        ("accept", "*/*"),
    ]);
    let (body, mut body_request, mut body_response) =
        BodyCounters::with_writers(std::time::Instant::now());
    let tcp = Arc::new(SocketRecord::new(false));
    recorder.handle(dial_started("dial-1", 0, "example.test:443", Some("req-1")));
    recorder.handle(opened(
        "tcp-1",
        Transport::Tcp,
        "dial-1",
        SERVER,
        Some(12),
        &tcp,
        1,
    ));
    recorder.handle(established("tcp-1", 5, LOCAL_TCP));
    recorder.handle(dial_ended("dial-1", 5, Ok("tcp-1")));
    recorder.handle(Event::HttpRequestStarted {
        req: id("req-1"),
        at: at(0),
        method: http::Method::POST,
        url: "https://example.test/upload".parse().expect("url"),
        header: HeaderCapture::new(&request_headers, &options),
        network_proxy: "http://proxy.test:3128".to_owned(),
        body: body.clone(),
    });
    body_request.add(11);
    // Response headers go into the recorder's shared buffer.
    let response_headers = header_map(&[
        ("content-type", "text/plain; charset=utf-8"),
        ("x-multi", "1"),
        ("x-multi", "22"),
        // Not ASCII: the length counts characters, as Go's does runes.
        ("content-language", "grüße"),
    ]);
    let packed = recorder.pack_headers(&response_headers);
    assert!(matches!(packed, Some(HeaderCapture::Shared { .. })));
    recorder.handle(Event::HttpResponse {
        req: id("req-1"),
        at: at(20),
        conn: Some(conn_info("tcp-1", None, None)),
        proto: (1, 1),
        status: 200,
        header: packed,
    });
    body_response.add(1000);

    let first = recorder.snapshot_ms("http", at(30));
    let expected = HttpReqTrace {
        trace_id: id("req-1"),
        tcp_conn: id("tcp-1"),
        tls_tunnel: TraceId::default(),
        proxy_tls_tunnel: TraceId::default(),
        proto_major: 1,
        proto_minor: 1,
        network_proxy: "http://proxy.test:3128".to_owned(),
        req_sent_at: rel(0),
        req_method: "POST".to_owned(),
        req_url: "https://example.test/upload".to_owned(),
        // Canonical names, the excluded field left out, repeated fields one by one.
        req_header: HttpHeader(vec![
            kv("User-Agent", "nettrace-test"),
            kv("Accept", "text/plain"),
            kv("Accept", "*/*"),
        ]),
        req_content_len: 11,
        req_error: String::new(),
        resp_recv_at: rel(20),
        resp_status_code: 200,
        resp_header: HttpHeader(vec![
            kv("Content-Type", "text/plain; charset=utf-8"),
            kv("X-Multi", "1"),
            kv("X-Multi", "22"),
            kv("Content-Language", "grüße"),
        ]),
        resp_content_len: 1000,
        ..Default::default()
    };
    assert_eq!(
        first.http_requests.to_vec(),
        std::slice::from_ref(&expected)
    );
    // The counters are read when a snapshot is taken.
    body_response.add(24);
    let second = recorder.snapshot_ms("http", at(30));
    assert_eq!(
        second.http_requests.to_vec(),
        [HttpReqTrace {
            resp_content_len: 1024,
            ..expected
        }]
    );
    let json = serde_json::to_value(&second).expect("json");
    let request = &json["httpRequests"][0];
    assert_eq!(request["RespContentLen"], 1024);
    assert_eq!(request["reqContentLen"], 11);
    assert_eq!(request["reqURL"], "https://example.test/upload");
    assert_eq!(request["networkProxy"], "http://proxy.test:3128");
    assert!(request.get("tlsTunnel").is_none());
    assert_eq!(
        request["respHeader"][3],
        json!({"fieldName": "Content-Language", "fieldVal": "grüße", "fieldValLen": 5})
    );
}

#[test]
fn without_header_options_no_header_is_recorded() {
    let mut recorder = recorder(false);
    assert!(
        recorder
            .pack_headers(&header_map(&[("server", "test")]))
            .is_none()
    );
    let options = header_options();
    let body = Arc::new(BodyCounters::default());
    recorder.handle(Event::HttpRequestStarted {
        req: id("req-1"),
        at: at(0),
        method: http::Method::GET,
        url: "http://example.test/".parse().expect("url"),
        // Captured by a hook that had options, read back by a recorder that has none.
        header: HeaderCapture::new(&header_map(&[("accept", "*/*")]), &options),
        network_proxy: String::new(),
        body,
    });
    let trace = recorder.snapshot_ms("headers", at(1));
    assert_eq!(trace.http_requests[0].req_header, HttpHeader::default());
}
