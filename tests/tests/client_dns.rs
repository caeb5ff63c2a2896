//! Name resolution as the trace records it: resolver dials, their UDP/TCP connections and the
//! DNS messages, against the scriptable loopback DNS fixture (NXDOMAIN, SERVFAIL, truncation,
//! silence, malformed replies, skipped and unreachable nameservers, CNAME chains).
//!
//! Go's tests of the same intent: TestHTTPTracing (DNS part), TestNonExistentHost,
//! TestAllNameserversSkipped, and the malformed-reply parser tests of conn_test.go.
use std::collections::HashSet;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hickory_proto::rr::RecordType;
use nettrace::client::{
    DnsFailure, HttpClientConfig, HttpReqTraceOptions, RequestErrorKind, TraceOptions,
};
use nettrace::dns::ResolveError;
use nettrace::model::{DnsQueryTrace, DnsRCode, DnsResType, HttpTrace, TraceId};
use nettrace_tests::fixtures::dns::{Behaviour, DnsServer, Malformed, Zone};
use nettrace_tests::scenario::{
    self, EXAMPLE_HOST, bounded_for, dump, failed_request, get_err, get_ok, only, tcp_conn,
    udp_conn,
};

/// The DNS query trace carried by connection `conn`.
fn dns_of_conn<'a>(trace: &'a HttpTrace, conn: &TraceId) -> &'a DnsQueryTrace {
    let found: Vec<_> = trace
        .net_trace
        .dns_queries
        .iter()
        .filter(|q| &q.connection == conn)
        .collect();
    match found[..] {
        [one] => one,
        _ => panic!("expected one DNS query trace on {conn}:\n{}", dump(trace)),
    }
}

/// The record type asked on connection `conn` (its first question).
fn qtype_of_conn(trace: &HttpTrace, conn: &TraceId) -> DnsResType {
    let query = dns_of_conn(trace, conn);
    let msg = query
        .dns_query_msgs
        .first()
        .unwrap_or_else(|| panic!("no query message on {conn}:\n{}", dump(trace)));
    msg.questions
        .first()
        .unwrap_or_else(|| panic!("no question on {conn}:\n{}", dump(trace)))
        .res_type
}

/// The nameservers of the resolver dials that asked `qtype`, in dial order.
fn nameservers_asked(trace: &HttpTrace, qtype: DnsResType) -> Vec<String> {
    let dial = only(&trace.net_trace.dials, "dial", trace);
    dial.resolver_dials
        .iter()
        .filter(|rd| !rd.established_conn.is_empty())
        .filter(|rd| qtype_of_conn(trace, &rd.established_conn) == qtype)
        .map(|rd| rd.nameserver.clone())
        .collect()
}

#[tokio::test]
async fn a_and_aaaa_queries_are_recorded_per_resolver_connection() {
    let dns = scenario::example_dns().await;
    let server = scenario::plain_server().await;
    let client = scenario::client(scenario::config_with_dns(&dns), scenario::full_options());
    let url = server.url_with_host(EXAMPLE_HOST, "/");
    let (status, _) = get_ok(&client, &url).await;
    assert_eq!(status, 200);
    let trace = scenario::trace(&client, "A and AAAA");
    let net = &trace.net_trace;

    let dial = only(&net.dials, "dial", &trace);
    let port = server.addr().port();
    assert_eq!(dial.dst_address, format!("{EXAMPLE_HOST}:{port}"));
    assert!(dial.dial_err.is_empty(), "{}", dump(&trace));
    assert_eq!(dial.source_ip, None);
    assert!(dial.skipped_nameservers.is_empty());
    // A and AAAA, each on its own UDP connection to the one nameserver.
    assert_eq!(dial.resolver_dials.len(), 2, "{}", dump(&trace));
    assert_eq!(net.udp_conns.len(), 2, "{}", dump(&trace));
    for rd in &dial.resolver_dials {
        assert_eq!(rd.nameserver, dns.addr().to_string());
        assert!(rd.dial_err.is_empty());
        let udp = udp_conn(&trace, &rd.established_conn);
        assert!(udp.from_resolver);
        assert_eq!(udp.from_dial, dial.trace_id);
        assert_eq!(udp.addr_tuple.dst(), Some(dns.addr()));
        assert!(
            !udp.conn_close_at.is_undefined(),
            "resolver socket left open"
        );
    }

    assert_eq!(net.dns_queries.len(), 2, "{}", dump(&trace));
    let mut types = HashSet::new();
    for query in net.dns_queries.iter() {
        assert_eq!(query.from_dial, dial.trace_id);
        let udp = udp_conn(&trace, &query.connection);
        let [asked] = &query.dns_query_msgs[..] else {
            panic!("one query per connection expected:\n{}", dump(&trace));
        };
        let [reply] = &query.dns_reply_msgs[..] else {
            panic!("one reply per connection expected:\n{}", dump(&trace));
        };
        assert!(asked.recursion_desired && !asked.truncated);
        let [question] = &asked.questions[..] else {
            panic!("one question expected:\n{}", dump(&trace));
        };
        assert_eq!(question.name, "example.test.");
        assert_eq!(question.class, 1);
        types.insert(question.res_type);
        assert_eq!(reply.id, asked.id);
        assert_eq!(reply.rcode, DnsRCode::NO_ERROR);
        assert!(!reply.truncated);
        // The messages are the whole datagrams.
        assert_eq!(u64::from(asked.size), udp.total_sent_bytes);
        assert_eq!(u64::from(reply.size), udp.total_recv_bytes);
        if question.res_type == DnsResType::A {
            let [answer] = &reply.answers[..] else {
                panic!("one A answer expected:\n{}", dump(&trace));
            };
            assert_eq!(answer.name, "example.test.");
            assert_eq!(answer.res_type, DnsResType::A);
            assert_eq!(answer.class, 1);
            assert_eq!(answer.ttl, 60);
            assert_eq!(answer.resolved_val, "127.0.0.1");
        } else {
            assert!(reply.answers.is_empty(), "{}", dump(&trace));
        }
    }
    assert_eq!(types, HashSet::from([DnsResType::A, DnsResType::AAAA]));

    // What the server saw matches what was recorded.
    let log = dns.log();
    assert_eq!(log.len(), 2, "{log:?}");
    let logged_ids: HashSet<u16> = log.iter().map(|q| q.id).collect();
    let traced_ids: HashSet<u16> = net
        .dns_queries
        .iter()
        .map(|q| q.dns_query_msgs[0].id)
        .collect();
    assert_eq!(logged_ids, traced_ids);

    let tcp = only(&net.tcp_conns, "TCP conn", &trace);
    assert_eq!(tcp.trace_id, dial.established_conn);
    assert_eq!(tcp.addr_tuple.dst(), Some(server.addr()));
    let req = only(&trace.http_requests, "HTTP request", &trace);
    assert_eq!(req.tcp_conn, tcp.trace_id);
}

#[tokio::test]
async fn nxdomain_records_the_dial_error_and_no_tcp_connection() {
    let dns = scenario::dns_with(Zone::new().behaviour("gone.test", Behaviour::NxDomain)).await;
    let client = scenario::client(scenario::config_with_dns(&dns), scenario::full_options());
    let url = "http://gone.test:8080/";
    let failure = get_err(&client, url).await;
    assert_eq!(
        failure.kind(),
        RequestErrorKind::NameResolution(DnsFailure::NoSuchHost),
        "{failure:?}"
    );
    let cause = std::error::Error::source(&failure)
        .and_then(|e| e.downcast_ref::<ResolveError>())
        .unwrap_or_else(|| panic!("no ResolveError under {failure:?}"));
    assert!(
        matches!(cause, ResolveError::NxDomain { name } if name == "gone.test"),
        "{cause:?}"
    );
    let error = failure.to_string();
    assert!(error.contains("gone.test"), "{error}");
    let trace = scenario::trace(&client, "NXDOMAIN");
    assert_eq!(failed_request(&trace, &failure).req_url, url);
    let net = &trace.net_trace;

    let dial = only(&net.dials, "dial", &trace);
    assert_eq!(dial.dst_address, "gone.test:8080");
    assert!(!dial.dial_err.is_empty(), "{}", dump(&trace));
    assert!(dial.established_conn.is_empty());
    assert!(!dial.dial_end_at.is_undefined());
    assert!(!dial.resolver_dials.is_empty());
    assert!(!net.dns_queries.is_empty());
    let mut asked = HashSet::new();
    for query in net.dns_queries.iter() {
        assert_eq!(query.dns_query_msgs.len(), 1, "{}", dump(&trace));
        assert_eq!(query.dns_reply_msgs.len(), 1, "{}", dump(&trace));
        let question = &query.dns_query_msgs[0].questions[0];
        if question.name == "gone.test." {
            asked.insert(question.res_type);
        }
        let reply = &query.dns_reply_msgs[0];
        assert_eq!(reply.rcode, DnsRCode::NX_DOMAIN, "{}", dump(&trace));
        assert!(reply.answers.is_empty());
    }
    assert_eq!(asked, HashSet::from([DnsResType::A, DnsResType::AAAA]));
    assert!(net.tcp_conns.is_empty(), "{}", dump(&trace));
    assert!(net.tls_tunnels.is_empty());

    let req = only(&trace.http_requests, "HTTP request", &trace);
    assert!(req.tcp_conn.is_empty());
    assert_eq!((req.proto_major, req.proto_minor), (1, 1));
    assert_eq!(req.req_method, "GET");
    assert_eq!(req.req_url, url);
    assert_eq!(req.req_error, error);
    assert!(req.resp_recv_at.is_undefined());
    assert_eq!(req.resp_status_code, 0);
    assert!(req.resp_header.is_empty());
    assert_eq!(req.resp_content_len, 0);
}

#[tokio::test]
async fn servfail_from_every_nameserver_is_a_server_failure() {
    let dns = scenario::dns_with(Zone::new().behaviour("flaky.test", Behaviour::ServFail)).await;
    let client = scenario::client(scenario::config_with_dns(&dns), scenario::full_options());
    let url = "http://flaky.test:8080/";
    let failure = get_err(&client, url).await;
    assert_eq!(
        failure.kind(),
        RequestErrorKind::NameResolution(DnsFailure::ServerFailure),
        "{failure:?}"
    );
    let trace = scenario::trace(&client, "SERVFAIL");
    let req = failed_request(&trace, &failure);
    assert!(req.tcp_conn.is_empty(), "{}", dump(&trace));
    let dial = only(&trace.net_trace.dials, "dial", &trace);
    assert!(
        failure.to_string().contains(&dial.dial_err),
        "{}",
        dump(&trace)
    );
}

#[tokio::test]
async fn servfail_from_the_first_nameserver_moves_on_to_the_second() {
    let failing =
        scenario::dns_with(Zone::new().behaviour(EXAMPLE_HOST, Behaviour::ServFail)).await;
    let working = scenario::example_dns().await;
    let server = scenario::plain_server().await;
    let config = HttpClientConfig {
        nameservers: vec![failing.addr(), working.addr()],
        ..Default::default()
    };
    let client = scenario::client(config, scenario::full_options());
    let (status, _) = get_ok(&client, &server.url_with_host(EXAMPLE_HOST, "/")).await;
    assert_eq!(status, 200);
    let trace = scenario::trace(&client, "SERVFAIL then OK");

    let expected = vec![failing.addr().to_string(), working.addr().to_string()];
    for qtype in [DnsResType::A, DnsResType::AAAA] {
        assert_eq!(nameservers_asked(&trace, qtype), expected, "{qtype}");
    }
    for rd in &only(&trace.net_trace.dials, "dial", &trace).resolver_dials {
        let reply = &dns_of_conn(&trace, &rd.established_conn).dns_reply_msgs[0];
        let rcode = if rd.nameserver == expected[0] {
            DnsRCode::SERV_FAIL
        } else {
            DnsRCode::NO_ERROR
        };
        assert_eq!(reply.rcode, rcode, "{}", dump(&trace));
    }
    assert_eq!(failing.udp_queries().get(), 2);
    assert_eq!(working.udp_queries().get(), 2);
}

#[tokio::test]
async fn truncated_udp_reply_falls_back_to_a_resolver_tcp_connection() {
    let zone = Zone::new()
        .a(EXAMPLE_HOST, [Ipv4Addr::LOCALHOST])
        .behaviour(EXAMPLE_HOST, Behaviour::TruncateUdp);
    let dns = scenario::dns_with(zone).await;
    let server = scenario::plain_server().await;
    let client = scenario::client(scenario::config_with_dns(&dns), scenario::full_options());
    let (status, _) = get_ok(&client, &server.url_with_host(EXAMPLE_HOST, "/")).await;
    assert_eq!(status, 200);
    let trace = scenario::trace(&client, "TC fallback");
    let net = &trace.net_trace;
    let dial = only(&net.dials, "dial", &trace);

    // Per type: a UDP exchange answered with TC, then a TCP exchange with the answer.
    assert_eq!(dial.resolver_dials.len(), 4, "{}", dump(&trace));
    assert_eq!(net.udp_conns.len(), 2, "{}", dump(&trace));
    for udp in net.udp_conns.iter() {
        let reply = &dns_of_conn(&trace, &udp.trace_id).dns_reply_msgs[..];
        assert!(
            matches!(reply, [r] if r.truncated && r.answers.is_empty()),
            "{}",
            dump(&trace)
        );
    }
    let resolver_tcp: Vec<_> = net.tcp_conns.iter().filter(|c| c.from_resolver).collect();
    assert_eq!(resolver_tcp.len(), 2, "{}", dump(&trace));
    let mut types = HashSet::new();
    for conn in resolver_tcp {
        assert!(conn.connected);
        assert_eq!(conn.from_dial, dial.trace_id);
        assert_eq!(conn.addr_tuple.dst(), Some(dns.addr()));
        assert!(
            !conn.conn_close_at.is_undefined(),
            "resolver conn left open"
        );
        let query = dns_of_conn(&trace, &conn.trace_id);
        let ([asked], [reply]) = (&query.dns_query_msgs[..], &query.dns_reply_msgs[..]) else {
            panic!("one query and one reply over TCP:\n{}", dump(&trace));
        };
        types.insert(asked.questions[0].res_type);
        assert_eq!(reply.id, asked.id);
        assert!(!reply.truncated);
        if asked.questions[0].res_type == DnsResType::A {
            assert_eq!(reply.answers.len(), 1, "{}", dump(&trace));
            assert_eq!(reply.answers[0].resolved_val, "127.0.0.1");
        }
        // Messages are recorded without the 2-byte length prefix of DNS over TCP.
        assert_eq!(conn.total_sent_bytes, u64::from(asked.size) + 2);
        assert_eq!(conn.total_recv_bytes, u64::from(reply.size) + 2);
    }
    assert_eq!(types, HashSet::from([DnsResType::A, DnsResType::AAAA]));
    assert_eq!(dns.tcp_queries().get(), 2);
    // The HTTP connection is the one the dial established, not a resolver one.
    let http = tcp_conn(&trace, &dial.established_conn);
    assert!(!http.from_resolver);
    assert_eq!(http.addr_tuple.dst(), Some(server.addr()));
}

/// Takes the resolver's per-reply timeout (5 s unless /etc/resolv.conf says otherwise): the
/// client has no setting for it, as Go's has none.
#[tokio::test]
async fn silent_nameserver_times_out_then_the_next_one_answers() {
    let silent = scenario::dns_with(Zone::new().behaviour(EXAMPLE_HOST, Behaviour::Silence)).await;
    let working = scenario::example_dns().await;
    let server = scenario::plain_server().await;
    let config = HttpClientConfig {
        nameservers: vec![silent.addr(), working.addr()],
        ..Default::default()
    };
    let client = scenario::client(config, scenario::full_options());
    let url = server.url_with_host(EXAMPLE_HOST, "/");
    let response = bounded_for(
        Duration::from_secs(40),
        "GET via a silent nameserver",
        async { client.get(&url).await },
    )
    .await
    .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    assert_eq!(response.status(), 200);
    let trace = scenario::trace(&client, "silent nameserver");

    let expected = vec![silent.addr().to_string(), working.addr().to_string()];
    for qtype in [DnsResType::A, DnsResType::AAAA] {
        assert_eq!(nameservers_asked(&trace, qtype), expected, "{qtype}");
    }
    for rd in &only(&trace.net_trace.dials, "dial", &trace).resolver_dials {
        let query = dns_of_conn(&trace, &rd.established_conn);
        assert_eq!(query.dns_query_msgs.len(), 1, "{}", dump(&trace));
        if rd.nameserver == expected[0] {
            assert!(query.dns_reply_msgs.is_empty(), "{}", dump(&trace));
            let udp = udp_conn(&trace, &rd.established_conn);
            assert_eq!(udp.total_recv_bytes, 0);
            assert!(
                !udp.conn_close_at.is_undefined(),
                "timed-out socket left open"
            );
        } else {
            assert_eq!(query.dns_reply_msgs.len(), 1, "{}", dump(&trace));
        }
    }
}

#[tokio::test]
async fn all_nameservers_skipped_records_them_and_no_resolver_dial() {
    const REASON: &str = "skipping any configured nameserver";
    let dns = scenario::example_dns().await;
    let other = scenario::closed_udp_port();
    let config = HttpClientConfig {
        nameservers: vec![dns.addr(), other],
        skip_nameserver: Some(Arc::new(|_, _| Some(REASON.to_owned()))),
        ..Default::default()
    };
    let client = scenario::client(config, scenario::full_options());
    let url = "http://example.test:8080/";
    let failure = get_err(&client, url).await;
    assert_eq!(
        failure.kind(),
        RequestErrorKind::NameResolution(DnsFailure::NoNameservers)
    );
    let error = failure.to_string();
    assert!(error.contains(REASON), "{error}");
    let trace = scenario::trace(&client, "all skipped");
    failed_request(&trace, &failure);
    let net = &trace.net_trace;

    let dial = only(&net.dials, "dial", &trace);
    assert!(dial.dial_err.contains(REASON), "{}", dump(&trace));
    assert!(dial.resolver_dials.is_empty(), "{}", dump(&trace));
    assert_eq!(
        dial.skipped_nameservers,
        vec![dns.addr().to_string(), other.to_string()]
    );
    assert!(dial.established_conn.is_empty());
    assert!(net.dns_queries.is_empty() && net.udp_conns.is_empty());
    assert!(net.tcp_conns.is_empty() && net.tls_tunnels.is_empty());
    let req = only(&trace.http_requests, "HTTP request", &trace);
    assert!(req.tcp_conn.is_empty());
    assert_eq!(req.req_method, "GET");
    assert_eq!(req.req_url, url);
    assert!(req.req_error.contains(REASON), "{}", dump(&trace));
    assert_eq!(dns.udp_queries().get(), 0);
}

#[tokio::test]
async fn a_skipped_nameserver_is_listed_and_the_other_one_is_used() {
    let skipped = scenario::example_dns().await;
    let used = scenario::example_dns().await;
    let server = scenario::plain_server().await;
    let skipped_addr = skipped.addr();
    let config = HttpClientConfig {
        nameservers: vec![skipped_addr, used.addr()],
        skip_nameserver: Some(Arc::new(move |ip, port| {
            (SocketAddr::new(ip, port) == skipped_addr).then(|| "another network".to_owned())
        })),
        ..Default::default()
    };
    let client = scenario::client(config, scenario::full_options());
    let (status, _) = get_ok(&client, &server.url_with_host(EXAMPLE_HOST, "/")).await;
    assert_eq!(status, 200);
    let trace = scenario::trace(&client, "one skipped");
    let dial = only(&trace.net_trace.dials, "dial", &trace);
    assert_eq!(dial.skipped_nameservers, vec![skipped_addr.to_string()]);
    assert_eq!(dial.resolver_dials.len(), 2, "{}", dump(&trace));
    assert!(
        dial.resolver_dials
            .iter()
            .all(|rd| rd.nameserver == used.addr().to_string()),
        "{}",
        dump(&trace)
    );
    assert_eq!(skipped.udp_queries().get(), 0);
}

#[tokio::test]
async fn cname_chain_answers_are_recorded_in_order() {
    let zone = Zone::new()
        .cname("www.example.test", "alias.example.test")
        .cname("alias.example.test", EXAMPLE_HOST)
        .a(EXAMPLE_HOST, [Ipv4Addr::LOCALHOST]);
    let dns = scenario::dns_with(zone).await;
    let server = scenario::plain_server().await;
    let client = scenario::client(scenario::config_with_dns(&dns), scenario::full_options());
    let (status, _) = get_ok(&client, &server.url_with_host("www.example.test", "/")).await;
    assert_eq!(status, 200);
    let trace = scenario::trace(&client, "CNAME chain");

    let a_query = trace
        .net_trace
        .dns_queries
        .iter()
        .find(|q| q.dns_query_msgs[0].questions[0].res_type == DnsResType::A)
        .unwrap_or_else(|| panic!("no A query:\n{}", dump(&trace)));
    assert_eq!(
        a_query.dns_query_msgs[0].questions[0].name,
        "www.example.test."
    );
    let answers: Vec<(&str, DnsResType, &str)> = a_query.dns_reply_msgs[0]
        .answers
        .iter()
        .map(|a| (a.name.as_str(), a.res_type, a.resolved_val.as_str()))
        .collect();
    assert_eq!(
        answers,
        vec![
            (
                "www.example.test.",
                DnsResType::CNAME,
                "alias.example.test."
            ),
            ("alias.example.test.", DnsResType::CNAME, "example.test."),
            ("example.test.", DnsResType::A, "127.0.0.1"),
        ]
    );
    let dial = only(&trace.net_trace.dials, "dial", &trace);
    let conn = tcp_conn(&trace, &dial.established_conn);
    assert_eq!(conn.addr_tuple.dst(), Some(server.addr()));
}

#[tokio::test]
async fn malformed_replies_fail_fast_with_a_clear_error() {
    let zone = Zone::new()
        .a(EXAMPLE_HOST, [Ipv4Addr::LOCALHOST])
        .behaviour(EXAMPLE_HOST, Behaviour::Malformed(Malformed::Garbage));
    let dns = scenario::dns_with(zone).await;
    let client = scenario::client(scenario::config_with_dns(&dns), scenario::full_options());
    let url = "http://example.test:8080/";
    let started = Instant::now();
    let result = bounded_for(Duration::from_secs(4), "GET with malformed DNS", async {
        client.get(url).await
    })
    .await;
    let failure = match result {
        Ok(response) => panic!("expected a failure, got {}", response.status()),
        Err(error) => error,
    };
    assert_eq!(
        failure.kind(),
        RequestErrorKind::NameResolution(DnsFailure::Other),
        "{failure:?}"
    );
    let error = failure.to_string();
    // Not a timeout: the malformed reply itself ends each exchange.
    assert!(started.elapsed() < Duration::from_secs(3), "{error}");
    assert!(error.to_lowercase().contains("malformed"), "{error}");
    let trace = scenario::trace(&client, "malformed");
    let dial = only(&trace.net_trace.dials, "dial", &trace);
    assert!(
        dial.dial_err.to_lowercase().contains("malformed"),
        "{}",
        dump(&trace)
    );
    assert!(trace.net_trace.tcp_conns.is_empty(), "{}", dump(&trace));
    // The undecodable reply is still recorded (its header decodes).
    assert!(
        trace
            .net_trace
            .dns_queries
            .iter()
            .any(|q| !q.dns_reply_msgs.is_empty()),
        "{}",
        dump(&trace)
    );
    let req = only(&trace.http_requests, "HTTP request", &trace);
    assert_eq!(req.req_error, error);
}

#[tokio::test]
async fn a_malformed_answer_moves_on_to_the_next_nameserver() {
    let broken = scenario::dns_with(
        Zone::new()
            .a(EXAMPLE_HOST, [Ipv4Addr::LOCALHOST])
            .behaviour(EXAMPLE_HOST, Behaviour::Malformed(Malformed::BadLabel)),
    )
    .await;
    let working = scenario::example_dns().await;
    let server = scenario::plain_server().await;
    let config = HttpClientConfig {
        nameservers: vec![broken.addr(), working.addr()],
        ..Default::default()
    };
    let client = scenario::client(config, scenario::full_options());
    let (status, _) = get_ok(&client, &server.url_with_host(EXAMPLE_HOST, "/")).await;
    assert_eq!(status, 200);
    let trace = scenario::trace(&client, "malformed then OK");
    let expected = vec![broken.addr().to_string(), working.addr().to_string()];
    assert_eq!(nameservers_asked(&trace, DnsResType::A), expected);
    for rd in &only(&trace.net_trace.dials, "dial", &trace).resolver_dials {
        let query = dns_of_conn(&trace, &rd.established_conn);
        let asked = &query.dns_query_msgs[0];
        let [reply] = &query.dns_reply_msgs[..] else {
            panic!("one reply recorded per exchange:\n{}", dump(&trace));
        };
        assert_eq!(reply.id, asked.id);
        if rd.nameserver == expected[1] && asked.questions[0].res_type == DnsResType::A {
            assert_eq!(reply.answers.len(), 1, "{}", dump(&trace));
        }
    }
}

#[tokio::test]
async fn every_configured_nameserver_is_used_in_order() {
    let unreachable = scenario::closed_udp_port();
    let refusing =
        scenario::dns_with(Zone::new().behaviour(EXAMPLE_HOST, Behaviour::Refused)).await;
    let working = scenario::example_dns().await;
    let server = scenario::plain_server().await;
    let config = HttpClientConfig {
        nameservers: vec![unreachable, refusing.addr(), working.addr()],
        ..Default::default()
    };
    let client = scenario::client(config, scenario::full_options());
    let (status, _) = bounded_for(
        Duration::from_secs(4),
        "GET via three nameservers",
        get_ok(&client, &server.url_with_host(EXAMPLE_HOST, "/")),
    )
    .await;
    assert_eq!(status, 200);
    let trace = scenario::trace(&client, "three nameservers");
    let dial = only(&trace.net_trace.dials, "dial", &trace);
    // Go used only the first entry of an explicit list; every one is used here, in order.
    let per_type = |qtype: DnsResType| -> Vec<String> {
        dial.resolver_dials
            .iter()
            .filter(|rd| {
                trace
                    .net_trace
                    .dns_queries
                    .iter()
                    .find(|q| q.connection == rd.established_conn)
                    .is_some_and(|q| q.dns_query_msgs[0].questions[0].res_type == qtype)
            })
            .map(|rd| rd.nameserver.clone())
            .collect()
    };
    let expected = vec![
        unreachable.to_string(),
        refusing.addr().to_string(),
        working.addr().to_string(),
    ];
    assert_eq!(per_type(DnsResType::A), expected, "{}", dump(&trace));
    assert_eq!(per_type(DnsResType::AAAA), expected, "{}", dump(&trace));
    let refused_replies = trace
        .net_trace
        .dns_queries
        .iter()
        .flat_map(|q| &q.dns_reply_msgs)
        .filter(|r| r.rcode == DnsRCode::REFUSED)
        .count();
    assert_eq!(refused_replies, 2, "{}", dump(&trace));
    assert_eq!(refusing.udp_queries().get(), 2);
    assert_eq!(working.udp_queries().get(), 2);
    let logged: HashSet<RecordType> = working.log().iter().map(|q| q.record_type).collect();
    assert_eq!(logged, HashSet::from([RecordType::A, RecordType::AAAA]));
}

#[tokio::test]
async fn without_dns_query_trace_connections_are_recorded_but_no_messages() {
    let dns = scenario::example_dns().await;
    let server = scenario::plain_server().await;
    let options = TraceOptions {
        http_req_trace: Some(HttpReqTraceOptions::default()),
        ..Default::default()
    };
    let client = scenario::client(scenario::config_with_dns(&dns), options);
    let (status, _) = get_ok(&client, &server.url_with_host(EXAMPLE_HOST, "/")).await;
    assert_eq!(status, 200);
    let trace = scenario::trace(&client, "no DNS messages");
    let net = &trace.net_trace;
    assert!(net.dns_queries.is_empty(), "{}", dump(&trace));
    assert_eq!(only(&net.dials, "dial", &trace).resolver_dials.len(), 2);
    assert_eq!(net.udp_conns.len(), 2, "{}", dump(&trace));
    for udp in net.udp_conns.iter() {
        assert!(udp.from_resolver);
        assert!(udp.total_sent_bytes > 12 && udp.total_recv_bytes > 12);
        assert!(udp.socket_trace.is_none());
    }
}

/// A literal IP needs no name resolution: no resolver dial, no UDP connection.
#[tokio::test]
async fn an_ip_literal_is_dialled_without_resolution() {
    let dns = scenario::example_dns().await;
    let server = scenario::plain_server().await;
    let client = scenario::client(scenario::config_with_dns(&dns), scenario::full_options());
    let url = server.url("/");
    let (status, _) = get_ok(&client, &url).await;
    assert_eq!(status, 200);
    let trace = scenario::trace(&client, "IP literal");
    let dial = only(&trace.net_trace.dials, "dial", &trace);
    assert_eq!(dial.dst_address, server.addr().to_string());
    assert!(dial.resolver_dials.is_empty(), "{}", dump(&trace));
    assert!(trace.net_trace.udp_conns.is_empty());
    assert!(trace.net_trace.dns_queries.is_empty());
    assert_eq!(dns.udp_queries().get(), 0);
    let conn = tcp_conn(&trace, &dial.established_conn);
    assert_eq!(conn.addr_tuple.dst(), Some(server.addr()));
}

/// The fixture must be usable on ::1 too: an AAAA-only name is dialled over IPv6.
#[tokio::test]
async fn an_aaaa_only_name_connects_over_ipv6() {
    use nettrace_tests::fixtures::http::{HttpOptions, HttpServer};
    use nettrace_tests::fixtures::net::V6;
    let server = HttpServer::start(HttpOptions {
        bind: V6,
        ..Default::default()
    })
    .await
    .unwrap_or_else(|e| panic!("starting the HTTP fixture on ::1: {e:?}"));
    let dns = DnsServer::start(Zone::new().aaaa("six.test", [std::net::Ipv6Addr::LOCALHOST]))
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));
    let client = scenario::client(scenario::config_with_dns(&dns), scenario::full_options());
    let (status, _) = get_ok(&client, &server.url_with_host("six.test", "/")).await;
    assert_eq!(status, 200);
    let trace = scenario::trace(&client, "AAAA only");
    let dial = only(&trace.net_trace.dials, "dial", &trace);
    let conn = tcp_conn(&trace, &dial.established_conn);
    assert_eq!(conn.addr_tuple.dst(), Some(server.addr()));
    assert_eq!(conn.addr_tuple.src_ip, Some(V6));
}
