//! TCP connections as the trace records them: refused and timed-out handshakes, several
//! addresses per name, the source IP, and socket operations with their byte totals.
//!
//! Go's tests of the same intent: TestHTTPTracing (TCP part), TestUnresponsiveDest (a handshake
//! that never completes, here a loopback listener whose accept queue is full) and
//! TestWithSourceIP.
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

use nettrace::client::{
    DnsFailure, HttpClientConfig, HttpReqTraceOptions, RequestErrorKind, TraceOptions,
};
use nettrace::model::SocketOpType;
use nettrace_tests::fixtures::broken::RefusingPort;
use nettrace_tests::fixtures::dns::Zone;
use nettrace_tests::fixtures::http::{HttpOptions, HttpServer};
use nettrace_tests::fixtures::net::{V4, V6};
use nettrace_tests::scenario::{
    self, EXAMPLE_HOST, bounded, bounded_for, dump, failed_request, get_err, get_ok, only, tcp_conn,
};

#[tokio::test]
async fn connection_refused_records_an_unconnected_tcp_conn_and_the_dial_error() {
    let refusing = RefusingPort::new(V4).unwrap_or_else(|e| panic!("{e:?}"));
    let client = scenario::client(HttpClientConfig::default(), scenario::full_options());
    let url = format!("http://{}/", refusing.addr());
    let failure = get_err(&client, &url).await;
    assert_eq!(
        failure.kind(),
        RequestErrorKind::ConnectRefused,
        "{failure:?}"
    );
    let cause = std::error::Error::source(&failure)
        .and_then(|e| e.downcast_ref::<std::io::Error>())
        .unwrap_or_else(|| panic!("no io::Error under {failure:?}"));
    assert_eq!(cause.kind(), std::io::ErrorKind::ConnectionRefused);
    let error = failure.to_string();
    assert!(error.to_lowercase().contains("refused"), "{error}");
    let trace = scenario::trace(&client, "refused");
    assert_eq!(failed_request(&trace, &failure).req_url, url);
    let net = &trace.net_trace;

    let dial = only(&net.dials, "dial", &trace);
    assert_eq!(dial.dst_address, refusing.addr().to_string());
    assert!(
        dial.dial_err.to_lowercase().contains("refused"),
        "{}",
        dump(&trace)
    );
    assert!(dial.established_conn.is_empty());
    assert!(!dial.dial_end_at.is_undefined());
    let conn = only(&net.tcp_conns, "TCP conn", &trace);
    assert!(!conn.connected);
    assert_eq!(conn.from_dial, dial.trace_id);
    assert_eq!(conn.addr_tuple.dst(), Some(refusing.addr()));
    assert!(!conn.handshake_end_at.is_undefined(), "{}", dump(&trace));
    assert!(!conn.conn_close_at.is_undefined(), "{}", dump(&trace));
    assert_eq!((conn.total_sent_bytes, conn.total_recv_bytes), (0, 0));
    assert!(net.tls_tunnels.is_empty());
    let req = only(&trace.http_requests, "HTTP request", &trace);
    // No connection was used: the request names none (as Go); the failed attempt stays in
    // `tcpConns`, linked to the dial.
    assert!(req.tcp_conn.is_empty(), "{}", dump(&trace));
    assert_eq!(req.req_error, error);
    assert_eq!(req.resp_status_code, 0);
}

#[tokio::test]
async fn first_address_refused_then_the_second_one_connects() {
    // A server on [::1]:P, and 127.0.0.1:P held bound without listening: the name resolves
    // to both, IPv4 first, so the first attempt is refused and the second connects.
    let mut attempt = 0;
    let (server, _refuse) = loop {
        attempt += 1;
        let server = HttpServer::start(HttpOptions {
            bind: V6,
            ..Default::default()
        })
        .await
        .unwrap_or_else(|e| panic!("HTTP fixture on ::1: {e:?}"));
        if let Some(socket) = scenario::refuse_v4_port(server.addr().port()) {
            break (server, socket);
        }
        assert!(attempt < 8, "no port free on both 127.0.0.1 and ::1");
    };
    let dns = scenario::dns_with(
        Zone::new()
            .a("two.test", [Ipv4Addr::LOCALHOST])
            .aaaa("two.test", [Ipv6Addr::LOCALHOST]),
    )
    .await;
    let client = scenario::client(scenario::config_with_dns(&dns), scenario::full_options());
    let (status, _) = get_ok(&client, &server.url_with_host("two.test", "/")).await;
    assert_eq!(status, 200);
    let trace = scenario::trace(&client, "two addresses");
    let net = &trace.net_trace;

    let dial = only(&net.dials, "dial", &trace);
    assert!(dial.dial_err.is_empty(), "{}", dump(&trace));
    let attempts: Vec<_> = net.tcp_conns.iter().filter(|c| !c.from_resolver).collect();
    let [refused, connected] = attempts[..] else {
        panic!("expected two TCP attempts:\n{}", dump(&trace));
    };
    let port = server.addr().port();
    assert_eq!(
        refused.addr_tuple.dst(),
        Some(SocketAddr::new(V4, port)),
        "{}",
        dump(&trace)
    );
    assert!(!refused.connected);
    assert_eq!(refused.from_dial, dial.trace_id);
    assert!(!refused.conn_close_at.is_undefined());
    assert_eq!(connected.addr_tuple.dst(), Some(server.addr()));
    assert!(connected.connected);
    assert_eq!(connected.from_dial, dial.trace_id);
    assert_eq!(dial.established_conn, connected.trace_id);
    scenario::assert_not_after(
        &trace,
        &refused.handshake_end_at,
        &connected.handshake_begin_at,
        "addresses are tried one after the other",
    );
    let req = only(&trace.http_requests, "HTTP request", &trace);
    assert_eq!(req.tcp_conn, connected.trace_id);
}

/// A listener whose accept queue is full drops new SYNs: connecting there hangs like towards
/// a blackholed address (Go's TestUnresponsiveDest used 198.51.100.100 and a default route).
/// Returns the listener, what fills its queue, and its address; `None` if this system answers
/// such SYNs anyway.
fn blackhole() -> Option<(socket2::Socket, Vec<std::net::TcpStream>, SocketAddr)> {
    use socket2::{Domain, Protocol, Socket, Type};
    let listener = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).ok()?;
    listener.bind(&SocketAddr::new(V4, 0).into()).ok()?;
    listener.listen(0).ok()?;
    let addr = listener.local_addr().ok()?.as_socket()?;
    let mut queued = Vec::new();
    for _ in 0..4 {
        match std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)) {
            Ok(stream) => queued.push(stream),
            Err(_) => return Some((listener, queued, addr)),
        }
    }
    None
}

#[tokio::test]
async fn tcp_handshake_timeout_records_the_timed_out_attempt() {
    let Some((_listener, _queued, addr)) = blackhole() else {
        nettrace_tests::skip(
            "tcp_handshake_timeout_records_the_timed_out_attempt",
            "a full accept queue does not drop SYNs on this kernel",
        );
        return;
    };
    let config = HttpClientConfig {
        tcp_handshake_timeout: Some(Duration::from_millis(300)),
        ..Default::default()
    };
    let client = scenario::client(config, scenario::full_options());
    let url = format!("http://{addr}/");
    let started = Instant::now();
    let failure = bounded_for(Duration::from_secs(5), "GET a blackhole", async {
        client.get(&url).await
    })
    .await
    .err()
    .unwrap_or_else(|| panic!("GET {url} should time out"));
    assert_eq!(
        failure.kind(),
        RequestErrorKind::ConnectTimedOut,
        "{failure:?}"
    );
    let error = failure.to_string();
    let elapsed = started.elapsed();
    assert!(elapsed >= Duration::from_millis(300), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(3), "{elapsed:?}");
    assert!(error.contains("timed out"), "{error}");
    let trace = scenario::trace(&client, "TCP handshake timeout");
    let dial = only(&trace.net_trace.dials, "dial", &trace);
    assert!(dial.dial_err.contains("timed out"), "{}", dump(&trace));
    assert!(dial.established_conn.is_empty());
    let conn = only(&trace.net_trace.tcp_conns, "TCP conn", &trace);
    assert!(!conn.connected);
    assert_eq!(conn.addr_tuple.dst(), Some(addr));
    let waited = conn
        .handshake_end_at
        .sub(&conn.handshake_begin_at)
        .unwrap_or_else(|| panic!("handshake begin/end not comparable:\n{}", dump(&trace)));
    assert!(
        waited >= time::Duration::milliseconds(299),
        "handshake gave up after {waited}:\n{}",
        dump(&trace)
    );
    let req = only(&trace.http_requests, "HTTP request", &trace);
    assert_eq!(req.req_error, error);
    assert!(
        req.tcp_conn.is_empty(),
        "no connection was used:\n{}",
        dump(&trace)
    );
    assert_eq!(failed_request(&trace, &failure).trace_id, req.trace_id);
}

/// Concurrent failing requests: each error names its own record, so the caller can find it
/// without matching URLs or texts.
#[tokio::test]
async fn concurrent_failures_each_name_their_own_request_record() {
    let refusing = RefusingPort::new(V4).unwrap_or_else(|e| panic!("{e:?}"));
    let dns = scenario::dns_with(Zone::new().behaviour(
        "gone.test",
        nettrace_tests::fixtures::dns::Behaviour::NxDomain,
    ))
    .await;
    let client = scenario::client(scenario::config_with_dns(&dns), scenario::full_options());
    let refused_url = format!("http://{}/", refusing.addr());
    let gone_url = "http://gone.test:8080/";
    let (refused, gone, refused_again) = bounded("three failing GETs", async {
        tokio::join!(
            client.get(&refused_url),
            client.get(gone_url),
            client.get(&refused_url)
        )
    })
    .await;
    let [refused, gone, refused_again] = [refused, gone, refused_again]
        .map(|result| result.err().unwrap_or_else(|| panic!("a GET succeeded")));
    assert_eq!(refused.kind(), RequestErrorKind::ConnectRefused);
    assert_eq!(refused_again.kind(), RequestErrorKind::ConnectRefused);
    assert_eq!(
        gone.kind(),
        RequestErrorKind::NameResolution(DnsFailure::NoSuchHost)
    );
    let trace = scenario::trace(&client, "concurrent failures");
    assert_eq!(trace.http_requests.len(), 3, "{}", dump(&trace));
    let ids: Vec<_> = [&refused, &gone, &refused_again]
        .iter()
        .map(|error| failed_request(&trace, error).trace_id.clone())
        .collect();
    assert_ne!(ids[0], ids[2], "two requests to one URL are two records");
    assert_eq!(failed_request(&trace, &gone).req_url, gone_url);
    // A refused request used no connection, so its record names none (as Go); each of
    // their dials keeps its own failed attempt.
    for error in [&refused, &refused_again] {
        assert!(
            failed_request(&trace, error).tcp_conn.is_empty(),
            "{}",
            dump(&trace)
        );
    }
    let attempts: std::collections::HashSet<_> = trace
        .net_trace
        .tcp_conns
        .iter()
        .filter(|c| !c.connected && c.addr_tuple.dst() == Some(refusing.addr()))
        .map(|c| c.from_dial.clone())
        .collect();
    assert_eq!(attempts.len(), 2, "{}", dump(&trace));
}

/// Without HTTP request records there is no record to name.
#[tokio::test]
async fn without_http_records_a_failure_names_no_record() {
    let refusing = RefusingPort::new(V4).unwrap_or_else(|e| panic!("{e:?}"));
    let options = TraceOptions {
        sock_trace: true,
        ..Default::default()
    };
    let client = scenario::client(HttpClientConfig::default(), options);
    let url = format!("http://{}/", refusing.addr());
    let failure = get_err(&client, &url).await;
    assert_eq!(failure.kind(), RequestErrorKind::ConnectRefused);
    assert_eq!(failure.trace_id(), None);
    assert_eq!(failure.url().map(ToString::to_string), Some(url));
}

#[tokio::test]
async fn source_ip_binds_every_tcp_connection() {
    let source = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let dns = scenario::example_dns().await;
    let server = scenario::plain_server().await;
    let config = HttpClientConfig {
        source_ip: Some(source),
        disable_keep_alive: true,
        ..scenario::config_with_dns(&dns)
    };
    let client = scenario::client(config, scenario::full_options());
    for _ in 0..2 {
        let (status, _) = get_ok(&client, &server.url_with_host(EXAMPLE_HOST, "/")).await;
        assert_eq!(status, 200);
    }
    let trace = scenario::trace(&client, "source IP");
    let net = &trace.net_trace;
    assert_eq!(net.dials.len(), 2, "{}", dump(&trace));
    for dial in net.dials.iter() {
        assert_eq!(dial.source_ip, Some(source), "{}", dump(&trace));
    }
    let http_conns: Vec<_> = net.tcp_conns.iter().filter(|c| !c.from_resolver).collect();
    assert_eq!(http_conns.len(), 2, "{}", dump(&trace));
    for conn in net.tcp_conns.iter() {
        assert_eq!(conn.addr_tuple.src_ip, Some(source), "{}", dump(&trace));
    }
    assert_eq!(server.connections().get(), 2);
}

#[tokio::test]
async fn socket_trace_ops_lie_within_the_connection_and_add_up_to_the_totals() {
    const LEN: usize = 20_000;
    let dns = scenario::example_dns().await;
    let server = scenario::plain_server().await;
    let client = scenario::client(scenario::config_with_dns(&dns), scenario::full_options());
    let url = server.url_with_host(EXAMPLE_HOST, &format!("/bytes/{LEN}"));
    let (status, body) = get_ok(&client, &url).await;
    assert_eq!((status, body.len()), (200, LEN));
    // check_trace (in scenario::trace) asserts ordering, lifetimes and sums for every conn.
    let trace = scenario::trace(&client, "socket ops");
    let net = &trace.net_trace;
    let dial = only(&net.dials, "dial", &trace);
    let conn = tcp_conn(&trace, &dial.established_conn);
    let ops = &conn
        .socket_trace
        .as_ref()
        .unwrap_or_else(|| panic!("no socketTrace with sock_trace on:\n{}", dump(&trace)))
        .socket_ops;
    assert!(ops.iter().any(|op| op.op_type == SocketOpType::Write));
    assert!(
        ops.iter()
            .any(|op| op.op_type == SocketOpType::Read && op.data_len > 0)
    );
    assert!(conn.total_recv_bytes > LEN as u64, "{}", dump(&trace));
    assert!(conn.total_sent_bytes > 0);
    assert!(
        ops.iter().all(|op| op.return_err.is_empty()),
        "{}",
        dump(&trace)
    );
    for udp in net.udp_conns.iter() {
        let ops = &udp
            .socket_trace
            .as_ref()
            .unwrap_or_else(|| panic!("no socketTrace on UDP:\n{}", dump(&trace)))
            .socket_ops;
        let writes: Vec<u32> = ops
            .iter()
            .filter(|op| op.op_type == SocketOpType::Write)
            .map(|op| op.data_len)
            .collect();
        let query = net
            .dns_queries
            .iter()
            .find(|q| q.connection == udp.trace_id)
            .unwrap_or_else(|| panic!("no DNS query on {}:\n{}", udp.trace_id, dump(&trace)));
        assert_eq!(
            writes,
            vec![query.dns_query_msgs[0].size],
            "{}",
            dump(&trace)
        );
    }
}

/// `SocketTrace::socket_ops` is documented as "the operations in the order they were called";
/// on an HTTP connection a read is pending (called) while the request is written.
#[tokio::test]
async fn socket_ops_are_listed_in_call_order() {
    let server = scenario::plain_server().await;
    let client = scenario::client(HttpClientConfig::default(), scenario::full_options());
    let (status, _) = get_ok(&client, &server.url("/bytes/10")).await;
    assert_eq!(status, 200);
    // Not synchronisation: a gap of a few ms between the idle connection's pending read
    // (called when the first response ended) and the second request's write, so that the
    // millisecond timestamps tell the two calls apart.
    tokio::time::sleep(Duration::from_millis(5)).await;
    let (status, _) = get_ok(&client, &server.url("/bytes/20")).await;
    assert_eq!(status, 200);
    let trace = scenario::trace(&client, "call order");
    let conn = only(&trace.net_trace.tcp_conns, "TCP conn", &trace);
    scenario::socket_ops_in_call_order(&trace, conn);
}

#[tokio::test]
async fn without_socket_trace_there_are_no_ops_but_byte_totals() {
    const LEN: usize = 5_000;
    let dns = scenario::example_dns().await;
    let server = scenario::plain_server().await;
    let options = TraceOptions {
        dns_query_trace: true,
        http_req_trace: Some(HttpReqTraceOptions::default()),
        ..Default::default()
    };
    let client = scenario::client(scenario::config_with_dns(&dns), options);
    let url = server.url_with_host(EXAMPLE_HOST, &format!("/bytes/{LEN}"));
    let (status, _) = get_ok(&client, &url).await;
    assert_eq!(status, 200);
    let trace = scenario::trace(&client, "no socket ops");
    let net = &trace.net_trace;
    assert!(!net.udp_conns.is_empty());
    for conn in net.tcp_conns.iter() {
        assert!(conn.socket_trace.is_none(), "{}", dump(&trace));
        assert!(conn.total_sent_bytes > 0 && conn.total_recv_bytes > LEN as u64);
    }
    for conn in net.udp_conns.iter() {
        assert!(conn.socket_trace.is_none(), "{}", dump(&trace));
        assert!(conn.total_sent_bytes > 0 && conn.total_recv_bytes > 0);
    }
    let req = only(&trace.http_requests, "HTTP request", &trace);
    assert_eq!(req.resp_content_len, LEN as u64);
}
