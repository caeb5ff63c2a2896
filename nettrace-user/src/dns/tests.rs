//! Resolver tests over real loopback sockets: a hickory-based responder ([`super::test_server`])
//! on 127.0.0.1 answers, and the trace of each lookup is checked through
//! [`Tracer::snapshot`]. Timeouts are 200 ms; nothing sleeps to synchronise.
use std::{
    net::{IpAddr, SocketAddr},
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use hickory_proto::op::{Message, ResponseCode};

use super::{
    HostsTable, NameserverSelector, ResolveError, ResolverConfig,
    resolver::Resolver,
    test_server::{Handler, Proto, TestServer, reply, zone, zone_map, zone_reply},
};
use crate::{
    event::Event,
    event::TraceSettings,
    model::{DnsRCode, DnsResType, HttpTrace, TraceId},
    tracer::Tracer,
};

const TIMEOUT: Duration = Duration::from_millis(200);

fn tracer() -> Tracer {
    Tracer::new(TraceSettings {
        sock_ops: true,
        dns_messages: true,
        ..TraceSettings::default()
    })
}

/// Starts a dial in the trace (resolver dials are attached to it).
fn start_dial(tracer: &Tracer) -> TraceId {
    let dial = TraceId::generate();
    tracer.sink().emit(Event::DialStarted {
        dial: dial.clone(),
        at: Instant::now(),
        dst_address: "host:443".into(),
        source_ip: None,
        http_req: None,
    });
    dial
}

fn config(servers: &[SocketAddr]) -> ResolverConfig {
    ResolverConfig::default()
        .with_nameservers(servers.to_vec())
        .with_timeout(TIMEOUT)
        .with_attempts(1)
}

fn ips(list: &[&str]) -> Vec<IpAddr> {
    list.iter().map(|s| s.parse().unwrap()).collect()
}

/// Looks `host` up with a fresh tracer and dial; returns the result and the trace.
async fn lookup(
    resolver: &Resolver,
    host: &str,
) -> (Result<Vec<IpAddr>, ResolveError>, HttpTrace, TraceId) {
    let tracer = tracer();
    let dial = start_dial(&tracer);
    let result = resolver.lookup_ip(&tracer.sink(), &dial, host).await;
    (result, tracer.snapshot_with_captures("t").0, dial)
}

fn nameservers(trace: &HttpTrace) -> Vec<String> {
    trace.net_trace.dials[0]
        .resolver_dials
        .iter()
        .map(|r| r.nameserver.clone())
        .collect()
}

const EXAMPLE: [(&str, &str); 3] = [
    ("example.test", "192.0.2.1"),
    ("example.test", "2001:db8::1"),
    ("example.test", "192.0.2.2"),
];

#[tokio::test]
async fn a_and_aaaa_are_queried_on_their_own_traced_connections() {
    let server = TestServer::start(zone(&EXAMPLE)).await;
    let resolver = Resolver::new(config(&[server.addr]), None, None);
    let (result, trace, dial) = lookup(&resolver, "example.test").await;
    assert_eq!(
        result.unwrap(),
        ips(&["192.0.2.1", "192.0.2.2", "2001:db8::1"])
    );

    let net = &trace.net_trace;
    let resolver_dials = &net.dials[0].resolver_dials;
    assert_eq!(resolver_dials.len(), 2);
    for rd in resolver_dials {
        assert_eq!(rd.nameserver, server.addr.to_string());
        assert!(rd.dial_err.is_empty());
        let conn = net.udp_conns.get(&rd.established_conn).unwrap();
        assert!(conn.from_resolver);
        assert_eq!(conn.from_dial, dial);
        assert_eq!(conn.addr_tuple.dst(), Some(server.addr));
        assert!(conn.total_sent_bytes > 0 && conn.total_recv_bytes > 0);
        assert!(!conn.conn_close_at.is_undefined());
        assert!(conn.socket_trace.as_ref().unwrap().socket_ops.len() >= 2);
    }
    assert!(net.tcp_conns.is_empty());
    assert_eq!(net.dns_queries.len(), 2);
    let mut types = Vec::new();
    for dns in net.dns_queries.iter() {
        assert_eq!(dns.from_dial, dial);
        assert!(net.udp_conns.get(&dns.connection).is_some());
        let [query] = dns.dns_query_msgs.as_slice() else {
            panic!("one query per connection: {dns:?}");
        };
        let [reply] = dns.dns_reply_msgs.as_slice() else {
            panic!("one reply per connection: {dns:?}");
        };
        assert_eq!(query.id, reply.id);
        assert!(query.recursion_desired && !query.truncated);
        assert_eq!(query.opt_udp_payload_size, 1232);
        assert_eq!(query.questions[0].name, "example.test.");
        assert_eq!(query.questions[0].class, 1);
        assert!(query.size > 12 && reply.size > query.size);
        assert_eq!(reply.rcode, DnsRCode::NO_ERROR);
        assert!(reply.recursion_available && !reply.truncated);
        let qtype = query.questions[0].res_type;
        types.push(qtype);
        assert!(!reply.answers.is_empty());
        for answer in &reply.answers {
            assert_eq!(answer.res_type, qtype);
            assert_eq!(answer.name, "example.test.");
            assert_eq!(answer.ttl, 60);
            assert!(answer.resolved_val.parse::<IpAddr>().is_ok());
        }
    }
    types.sort();
    assert_eq!(types, [DnsResType::A, DnsResType::AAAA]);
}

#[tokio::test]
async fn nxdomain_is_an_error_and_recorded() {
    let server = TestServer::start(zone(&EXAMPLE)).await;
    let resolver = Resolver::new(config(&[server.addr]), None, None);
    let (result, trace, _) = lookup(&resolver, "missing.test").await;
    let error = result.unwrap_err();
    assert!(
        matches!(&error, ResolveError::NxDomain { name } if name == "missing.test"),
        "{error}"
    );
    assert!(error.is_negative_answer());
    for dns in trace.net_trace.dns_queries.iter() {
        assert_eq!(dns.dns_reply_msgs[0].rcode, DnsRCode::NX_DOMAIN);
        assert!(dns.dns_reply_msgs[0].answers.is_empty());
    }
    assert_eq!(trace.net_trace.dns_queries.len(), 2);
}

#[tokio::test]
async fn a_name_without_addresses_is_no_addresses() {
    let handler: Handler =
        Arc::new(|query: &Message, _| vec![reply(query, ResponseCode::NoError, Vec::new(), false)]);
    let server = TestServer::start(handler).await;
    let resolver = Resolver::new(config(&[server.addr]), None, None);
    let (result, _, _) = lookup(&resolver, "empty.test").await;
    assert!(matches!(result, Err(ResolveError::NoAddresses { .. })));
}

#[tokio::test]
async fn servfail_and_refused_move_on_to_the_next_server() {
    let failing = |rcode: ResponseCode| -> Handler {
        Arc::new(move |query: &Message, _| vec![reply(query, rcode, Vec::new(), false)])
    };
    let servfail = TestServer::start(failing(ResponseCode::ServFail)).await;
    let refused = TestServer::start(failing(ResponseCode::Refused)).await;
    let good = TestServer::start(zone(&EXAMPLE)).await;

    let resolver = Resolver::new(
        config(&[servfail.addr, refused.addr, good.addr]),
        None,
        None,
    );
    let (result, trace, _) = lookup(&resolver, "example.test").await;
    assert_eq!(result.unwrap().len(), 3);
    let asked = nameservers(&trace);
    assert_eq!(asked.len(), 6, "{asked:?}");
    for server in [&servfail, &refused, &good] {
        let n = asked
            .iter()
            .filter(|a| **a == server.addr.to_string())
            .count();
        assert_eq!(n, 2);
    }

    let only_failing = Resolver::new(config(&[servfail.addr]), None, None);
    let (result, _, _) = lookup(&only_failing, "example.test").await;
    assert!(
        matches!(result, Err(ResolveError::ServerFailure { server }) if server == servfail.addr)
    );
    let only_refused = Resolver::new(config(&[refused.addr]), None, None);
    let (result, _, _) = lookup(&only_refused, "example.test").await;
    assert!(matches!(result, Err(ResolveError::Rcode { rcode, .. }) if rcode == DnsRCode::REFUSED));
}

#[tokio::test]
async fn truncated_udp_reply_falls_back_to_tcp() {
    let by_name = zone_map(&EXAMPLE);
    let handler: Handler = Arc::new(move |query: &Message, proto| match proto {
        Proto::Udp => vec![reply(query, ResponseCode::NoError, Vec::new(), true)],
        Proto::Tcp => vec![zone_reply(&by_name, query)],
    });
    let server = TestServer::start(handler).await;
    let resolver = Resolver::new(config(&[server.addr]), None, None);
    let (result, trace, dial) = lookup(&resolver, "example.test").await;
    assert_eq!(
        result.unwrap(),
        ips(&["192.0.2.1", "192.0.2.2", "2001:db8::1"])
    );

    let net = &trace.net_trace;
    assert_eq!(net.udp_conns.len(), 2);
    assert_eq!(net.tcp_conns.len(), 2);
    assert!(
        net.udp_conns
            .iter()
            .all(|c| c.from_resolver && c.from_dial == dial)
    );
    assert!(net.tcp_conns.iter().all(|c| c.from_resolver && c.connected));
    assert_eq!(net.dials[0].resolver_dials.len(), 4);
    assert_eq!(net.dns_queries.len(), 4);
    for dns in net.dns_queries.iter() {
        let query = &dns.dns_query_msgs[0];
        let reply = &dns.dns_reply_msgs[0];
        assert_eq!(query.id, reply.id);
        if let Some(tcp) = net.tcp_conns.get(&dns.connection) {
            assert!(!reply.truncated && !reply.answers.is_empty());
            // Wire sizes without the 2-byte length prefixes.
            assert_eq!(tcp.total_sent_bytes, u64::from(query.size) + 2);
            assert_eq!(tcp.total_recv_bytes, u64::from(reply.size) + 2);
        } else {
            assert!(reply.truncated && reply.answers.is_empty());
        }
    }
    let tcp_queries = server
        .seen()
        .iter()
        .filter(|(proto, _, _)| *proto == Proto::Tcp)
        .count();
    assert_eq!(tcp_queries, 2);
}

#[tokio::test]
async fn silent_server_times_out_then_the_next_answers() {
    let silent = TestServer::start(Arc::new(|_: &Message, _| Vec::new())).await;
    let good = TestServer::start(zone(&EXAMPLE)).await;
    let resolver = Resolver::new(config(&[silent.addr, good.addr]), None, None);
    let started = Instant::now();
    let (result, trace, _) = lookup(&resolver, "example.test").await;
    assert_eq!(result.unwrap().len(), 3);
    // A and AAAA wait in parallel: one timeout, not two.
    assert!(started.elapsed() < TIMEOUT * 2 + Duration::from_millis(150));
    let silent_traces = trace
        .net_trace
        .dns_queries
        .iter()
        .filter(|d| d.dns_reply_msgs.is_empty())
        .count();
    assert_eq!(silent_traces, 2);

    let only_silent = Resolver::new(config(&[silent.addr]).with_attempts(2), None, None);
    let (result, trace, _) = lookup(&only_silent, "example.test").await;
    assert!(matches!(
        result,
        Err(ResolveError::Timeout { timeout: TIMEOUT, server }) if server == silent.addr
    ));
    assert_eq!(nameservers(&trace).len(), 4, "2 attempts x A+AAAA");
}

/// The reply to `query` with a CNAME whose RDATA is a bad name, then a valid A record.
fn malformed_reply(query: &Message) -> Vec<u8> {
    let mut bytes = reply(query, ResponseCode::NoError, Vec::new(), false);
    bytes[6..8].copy_from_slice(&2u16.to_be_bytes());
    bytes[10..12].copy_from_slice(&0u16.to_be_bytes()); // drop the OPT count: no OPT sent
    bytes.extend([
        0xC0, 12, 0, 5, 0, 1, 0, 0, 0, 60, 0, 5, 0x40, b'b', b'a', b'd', 0,
    ]);
    bytes.extend([0xC0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 127, 0, 0, 1]);
    bytes
}

#[tokio::test]
async fn malformed_reply_is_recorded_as_far_as_it_parses_and_reported() {
    let broken =
        TestServer::start(Arc::new(|query: &Message, _| vec![malformed_reply(query)])).await;
    let good = TestServer::start(zone(&EXAMPLE)).await;

    // A long timeout: the malformed reply must end the exchange at once, not the timeout.
    let config_5s = config(&[broken.addr]).with_timeout(Duration::from_secs(5));
    let resolver = Resolver::new(config_5s, None, None);
    let started = Instant::now();
    let (result, trace, _) = lookup(&resolver, "example.test").await;
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "no wait for a timeout"
    );
    let error = result.unwrap_err();
    assert!(
        matches!(&error, ResolveError::Malformed { server, .. } if *server == broken.addr),
        "{error}"
    );
    for dns in trace.net_trace.dns_queries.iter() {
        let reply = &dns.dns_reply_msgs[0];
        assert_eq!(reply.id, dns.dns_query_msgs[0].id);
        assert_eq!(reply.answers.len(), 1);
        assert_eq!(reply.answers[0].res_type, DnsResType::A);
        assert_eq!(reply.answers[0].resolved_val, "127.0.0.1");
    }

    let with_fallback = Resolver::new(config(&[broken.addr, good.addr]), None, None);
    let (result, _, _) = lookup(&with_fallback, "example.test").await;
    assert_eq!(result.unwrap().len(), 3);
}

#[tokio::test]
async fn stray_datagrams_are_recorded_and_ignored() {
    let by_name = zone_map(&EXAMPLE);
    let handler: Handler = Arc::new(move |query: &Message, _| {
        let mut other = query.clone();
        other.metadata.id = query.metadata.id.wrapping_add(1);
        vec![
            vec![0xde, 0xad, 0xbe],
            reply(&other, ResponseCode::NoError, Vec::new(), false),
            zone_reply(&by_name, query),
        ]
    });
    let server = TestServer::start(handler).await;
    let config_5s = config(&[server.addr]).with_timeout(Duration::from_secs(5));
    let resolver = Resolver::new(config_5s, None, None);
    let started = Instant::now();
    let (result, trace, _) = lookup(&resolver, "example.test").await;
    assert_eq!(result.unwrap().len(), 3);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "no wait for a timeout"
    );
    for dns in trace.net_trace.dns_queries.iter() {
        let query_id = dns.dns_query_msgs[0].id;
        let ids: Vec<u16> = dns.dns_reply_msgs.iter().map(|r| r.id).collect();
        assert_eq!(
            ids,
            [query_id.wrapping_add(1), query_id],
            "junk not recorded"
        );
        let conn = trace.net_trace.udp_conns.get(&dns.connection).unwrap();
        let reads = conn
            .socket_trace
            .as_ref()
            .unwrap()
            .socket_ops
            .iter()
            .filter(|op| op.op_type == crate::model::SocketOpType::Read)
            .count();
        assert_eq!(reads, 3, "the junk datagram is still a socket read");
    }
}

fn skip_if(prefix: &'static str, reason: &'static str) -> NameserverSelector {
    Arc::new(move |ip: IpAddr, port: u16| {
        format!("{ip}:{port}")
            .starts_with(prefix)
            .then(|| reason.to_owned())
    })
}

#[tokio::test]
async fn skipped_nameservers_are_recorded_and_all_skipped_fails_with_reasons() {
    let server = TestServer::start(zone(&EXAMPLE)).await;
    let other: SocketAddr = "192.0.2.53:53".parse().unwrap();

    let skip_all = Resolver::new(
        config(&[other, server.addr]),
        None,
        Some(Arc::new(|_, _| {
            Some("skipping any configured nameserver".into())
        })),
    );
    let (result, trace, _) = lookup(&skip_all, "example.test").await;
    let error = result.unwrap_err();
    assert!(matches!(
        &error,
        ResolveError::AllNameserversSkipped { skipped } if skipped.len() == 2
    ));
    assert!(
        error
            .to_string()
            .contains("192.0.2.53:53: skipping any configured nameserver"),
        "{error}"
    );
    let dial = &trace.net_trace.dials[0];
    assert_eq!(
        dial.skipped_nameservers,
        [other.to_string(), server.addr.to_string()]
    );
    assert!(dial.resolver_dials.is_empty());
    assert!(trace.net_trace.udp_conns.is_empty());

    let skip_other = Resolver::new(
        config(&[other, server.addr]),
        None,
        Some(skip_if("192.0.2.", "different network")),
    );
    let (result, trace, _) = lookup(&skip_other, "example.test").await;
    assert_eq!(result.unwrap().len(), 3);
    assert_eq!(
        trace.net_trace.dials[0].skipped_nameservers,
        [other.to_string()]
    );
    assert!(
        nameservers(&trace)
            .iter()
            .all(|n| *n == server.addr.to_string())
    );
}

#[tokio::test]
async fn search_list_and_ndots_choose_the_names_tried() {
    let server = TestServer::start(zone(&[("db.lab.test", "192.0.2.9")])).await;
    let mut config = config(&[server.addr]);
    config.search = vec!["corp.test".into(), "lab.test.".into()];

    let resolver = Resolver::new(config.clone(), None, None);
    let (result, _, _) = lookup(&resolver, "db").await;
    assert_eq!(result.unwrap(), ips(&["192.0.2.9"]));
    let mut names: Vec<String> = server.seen().into_iter().map(|(_, n, _)| n).collect();
    names.dedup();
    assert_eq!(names, ["db.corp.test.", "db.lab.test."]);

    // Absolute: no search list.
    let (result, _, _) = lookup(&resolver, "db.").await;
    assert!(matches!(result, Err(ResolveError::NxDomain { name }) if name == "db."));

    // ndots 1: "db.lab" is tried as is first, then with the search list.
    let before = server.seen().len();
    let (result, _, _) = lookup(&resolver, "db.lab").await;
    assert!(matches!(result, Err(ResolveError::NxDomain { .. })));
    let mut names: Vec<String> = server.seen()[before..]
        .iter()
        .map(|(_, n, _)| n.clone())
        .collect();
    names.dedup();
    assert_eq!(names, ["db.lab.", "db.lab.corp.test.", "db.lab.lab.test."]);
}

#[tokio::test]
async fn hosts_table_and_ip_literals_bypass_dns() {
    let queries = Arc::new(AtomicUsize::new(0));
    let counted = queries.clone();
    let server = TestServer::start(Arc::new(move |_: &Message, _| {
        counted.fetch_add(1, Ordering::Relaxed);
        Vec::new()
    }))
    .await;
    let mut config = config(&[server.addr]);
    config.hosts = HostsTable::parse("2001:db8::7 printer.lan\n192.0.2.7 printer.lan\n");
    let resolver = Resolver::new(config, None, None);

    for (host, expected) in [
        ("printer.lan", &["192.0.2.7", "2001:db8::7"][..]),
        ("PRINTER.lan.", &["192.0.2.7", "2001:db8::7"]),
        ("192.0.2.44", &["192.0.2.44"]),
        ("[2001:db8::44]", &["2001:db8::44"]),
    ] {
        let (result, trace, _) = lookup(&resolver, host).await;
        assert_eq!(result.unwrap(), ips(expected), "{host}");
        assert!(trace.net_trace.dials[0].resolver_dials.is_empty());
    }
    assert_eq!(queries.load(Ordering::Relaxed), 0);

    let none = Resolver::new(ResolverConfig::default(), None, None);
    let (result, _, _) = lookup(&none, "example.test").await;
    assert!(matches!(result, Err(ResolveError::NoNameservers)));
}

#[tokio::test]
async fn source_ip_is_bound_except_towards_a_loopback_nameserver() {
    let server = TestServer::start(zone(&EXAMPLE)).await;
    // 192.0.2.1 (TEST-NET-1) is not a local address: binding it fails before any packet.
    let source: IpAddr = "192.0.2.1".parse().unwrap();
    let remote: SocketAddr = "192.0.2.53:53".parse().unwrap();
    let resolver = Resolver::new(config(&[remote, server.addr]), Some(source), None);
    let (result, trace, _) = lookup(&resolver, "example.test").await;
    assert_eq!(result.unwrap().len(), 3);

    let net = &trace.net_trace;
    for rd in net.dials[0].resolver_dials.iter() {
        if rd.nameserver == remote.to_string() {
            assert!(rd.dial_err.contains("socket setup"), "{rd:?}");
            assert!(rd.established_conn.is_empty());
        } else {
            let conn = net.udp_conns.get(&rd.established_conn).unwrap();
            assert_eq!(conn.addr_tuple.src_ip, Some("127.0.0.1".parse().unwrap()));
        }
    }
}

#[tokio::test]
async fn dns_messages_are_only_recorded_when_enabled() {
    let server = TestServer::start(zone(&EXAMPLE)).await;
    let resolver = Resolver::new(config(&[server.addr]), None, None);
    let tracer = Tracer::new(TraceSettings::default());
    let dial = start_dial(&tracer);
    let result = resolver
        .lookup_ip(&tracer.sink(), &dial, "example.test")
        .await;
    assert_eq!(result.unwrap().len(), 3);
    let trace = tracer.snapshot_with_captures("t").0;
    assert!(trace.net_trace.dns_queries.is_empty());
    assert_eq!(trace.net_trace.udp_conns.len(), 2);
    assert_eq!(trace.net_trace.dials[0].resolver_dials.len(), 2);
}

#[tokio::test]
async fn unrecorded_lookup_without_a_dial_still_resolves() {
    let server = TestServer::start(zone(&EXAMPLE)).await;
    let resolver = Resolver::new(config(&[server.addr]), None, None);
    let tracer = tracer();
    let result = resolver
        .lookup_ip(&tracer.sink(), &TraceId::generate(), "example.test")
        .await;
    assert_eq!(result.unwrap().len(), 3);
    assert!(
        tracer
            .snapshot_with_captures("t")
            .0
            .net_trace
            .dials
            .is_empty()
    );
}
