//! The trace API of the client: `get_trace` is a snapshot, `clear_trace` starts a new trace
//! carrying open connections over as reused, `close` ends everything, and a real trace survives
//! a JSON round trip.
//!
//! Go's tests of the same intent: TestReusedTCPConn; plus Go's known bugs not to reproduce
//! (a second GetTrace lost dials, DNS queries and TLS tunnels; reused connections kept stale
//! relative socket-op timestamps).
use std::collections::BTreeSet;

use nettrace::client::{ClientError, HttpClient, HttpClientConfig, RequestErrorKind, TraceOptions};
use nettrace::model::{HttpTrace, SocketOpType, Timestamp, TraceId};
use nettrace_tests::fixtures::broken::RefusingPort;
use nettrace_tests::fixtures::dns::DnsServer;
use nettrace_tests::fixtures::http::HttpServer;
use nettrace_tests::fixtures::net::V4;
use nettrace_tests::fixtures::tls::{LeafKind, ServerTlsOptions};
use nettrace_tests::scenario::{
    self, EXAMPLE_HOST, begin_of, bounded, dump, get_ok, only, tcp_conn,
};

/// Every record ID of the trace, by section.
fn ids(trace: &HttpTrace) -> Vec<(&'static str, BTreeSet<TraceId>)> {
    let net = &trace.net_trace;
    vec![
        (
            "dials",
            net.dials.iter().map(|r| r.trace_id.clone()).collect(),
        ),
        (
            "tcpConns",
            net.tcp_conns.iter().map(|r| r.trace_id.clone()).collect(),
        ),
        (
            "udpConns",
            net.udp_conns.iter().map(|r| r.trace_id.clone()).collect(),
        ),
        (
            "dnsQueries",
            net.dns_queries.iter().map(|r| r.trace_id.clone()).collect(),
        ),
        (
            "tlsTunnels",
            net.tls_tunnels.iter().map(|r| r.trace_id.clone()).collect(),
        ),
        (
            "httpRequests",
            trace
                .http_requests
                .iter()
                .map(|r| r.trace_id.clone())
                .collect(),
        ),
    ]
}

/// An HTTPS server (HTTP/1.1), a DNS server for it, and a keep-alive client of both.
async fn https_setup(options: TraceOptions) -> (HttpServer, DnsServer, HttpClient) {
    let pki = scenario::pki();
    let server = scenario::https_server(&pki, LeafKind::Valid, &ServerTlsOptions::h1()).await;
    let dns = scenario::example_dns().await;
    let client = scenario::client(scenario::config_with_dns_and_pki(&dns, &pki), options);
    (server, dns, client)
}

#[tokio::test]
async fn get_trace_is_a_snapshot_that_loses_nothing() {
    let (server, _dns, client) = https_setup(scenario::full_options()).await;
    let url = server.url_with_host(EXAMPLE_HOST, "/");
    let (status, _) = get_ok(&client, &url).await;
    assert_eq!(status, 200);
    let first = scenario::trace(&client, "first");
    let second = scenario::trace(&client, "second");
    // Go's second GetTrace had no dials, DNS queries or TLS tunnels left.
    for section in [&first, &second] {
        let net = &section.net_trace;
        assert_eq!(net.dials.len(), 1, "{}", dump(section));
        assert_eq!(net.dns_queries.len(), 2, "{}", dump(section));
        assert_eq!(net.tls_tunnels.len(), 1, "{}", dump(section));
        assert_eq!(section.http_requests.len(), 1, "{}", dump(section));
    }
    assert_eq!(ids(&first), ids(&second), "IDs changed between snapshots");
    assert_eq!(
        first.net_trace.trace_begin_at,
        second.net_trace.trace_begin_at
    );
    scenario::assert_not_after(
        &second,
        &first.net_trace.trace_end_at,
        &second.net_trace.trace_end_at,
        "traceEndAt",
    );
    // Records that are complete do not change.
    assert_eq!(first.net_trace.dials, second.net_trace.dials);
    assert_eq!(first.net_trace.dns_queries, second.net_trace.dns_queries);
    assert_eq!(first.net_trace.udp_conns, second.net_trace.udp_conns);
    assert_eq!(first.net_trace.tls_tunnels, second.net_trace.tls_tunnels);
    assert_eq!(first.http_requests, second.http_requests);

    // A later request adds to the trace; the earlier records stay, with their IDs.
    let (status, _) = get_ok(&client, &server.url_with_host(EXAMPLE_HOST, "/bytes/3")).await;
    assert_eq!(status, 200);
    let third = scenario::trace(&client, "third");
    for ((section, before), (_, after)) in ids(&first).into_iter().zip(ids(&third)) {
        assert!(
            before.is_subset(&after),
            "{section}: records lost\n{}",
            dump(&third)
        );
    }
    assert_eq!(third.http_requests.len(), 2);
    // Clones share the trace.
    let (from_clone, _) = client
        .clone()
        .get_trace("clone")
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(ids(&from_clone)[5], ids(&third)[5]);
}

#[tokio::test]
async fn clear_trace_carries_an_open_connection_over_as_reused() {
    let (server, _dns, client) = https_setup(scenario::full_options()).await;
    let url = server.url_with_host(EXAMPLE_HOST, "/");
    let (status, _) = get_ok(&client, &url).await;
    assert_eq!(status, 200);
    let before = scenario::trace(&client, "before");
    let dial = only(&before.net_trace.dials, "dial", &before);
    let conn_before = tcp_conn(&before, &dial.established_conn).clone();
    assert!(!conn_before.reused);
    assert!(
        conn_before.conn_close_at.is_undefined(),
        "keep-alive conn closed"
    );
    assert_eq!(before.net_trace.tls_tunnels.len(), 1);

    client
        .clear_trace()
        .unwrap_or_else(|e| panic!("clear_trace: {e}"));
    let (status, _) = get_ok(&client, &url).await;
    assert_eq!(status, 200);
    let after = scenario::trace(&client, "after");
    let net = &after.net_trace;
    assert!(
        begin_of(&after) > begin_of(&before),
        "traceBeginAt did not move"
    );
    assert!(begin_of(&after) >= scenario::end_of(&before));
    assert!(net.dials.is_empty(), "{}", dump(&after));
    assert!(
        net.dns_queries.is_empty() && net.udp_conns.is_empty(),
        "{}",
        dump(&after)
    );
    // Go has no TLS tunnel here. A tunnel may be carried over with its connection, but then it
    // is dated absolutely; either way the request's tlsTunnel must resolve (check_trace).
    for tunnel in net.tls_tunnels.iter() {
        assert_eq!(tunnel.tcp_conn, conn_before.trace_id, "{}", dump(&after));
        assert!(
            matches!(tunnel.handshake_begin_at, Timestamp::Absolute(_)),
            "{}",
            dump(&after)
        );
    }

    let req = only(&after.http_requests, "HTTP request", &after);
    assert_eq!(req.tcp_conn, conn_before.trace_id);
    assert_eq!(req.resp_status_code, 200);
    assert_eq!((req.proto_major, req.proto_minor), (1, 1));
    let conn = only(&net.tcp_conns, "TCP conn", &after);
    assert_eq!(conn.trace_id, conn_before.trace_id);
    assert!(conn.reused);
    assert_eq!(
        conn.from_dial, dial.trace_id,
        "fromDial names the earlier dial"
    );
    let (Timestamp::Absolute(begin), Timestamp::Absolute(end)) =
        (conn.handshake_begin_at, conn.handshake_end_at)
    else {
        panic!(
            "handshake timestamps of a reused conn must be absolute:\n{}",
            dump(&after)
        );
    };
    assert!(begin <= end && end < begin_of(&after), "{}", dump(&after));
    assert!(conn.conn_close_at.is_undefined());
    assert!(conn.total_sent_bytes > conn_before.total_sent_bytes);
    assert!(conn.total_recv_bytes > conn_before.total_recv_bytes);
    // Only this trace's socket operations are listed (the earlier ones went with the earlier
    // trace), and they account for exactly the bytes moved since.
    let ops = &conn
        .socket_trace
        .as_ref()
        .unwrap_or_else(|| panic!("no socket trace:\n{}", dump(&after)))
        .socket_ops;
    assert!(
        ops.iter()
            .all(|op| matches!(op.return_at, Timestamp::Relative(_))),
        "{}",
        dump(&after)
    );
    let moved = |kind: SocketOpType| -> u64 {
        ops.iter()
            .filter(|op| op.op_type == kind)
            .map(|op| u64::from(op.data_len))
            .sum()
    };
    assert_eq!(
        moved(SocketOpType::Write),
        conn.total_sent_bytes - conn_before.total_sent_bytes
    );
    assert_eq!(
        moved(SocketOpType::Read),
        conn.total_recv_bytes - conn_before.total_recv_bytes
    );
    assert_eq!(server.connections().get(), 1);
}

#[tokio::test]
async fn clear_trace_drops_closed_records() {
    let refusing = RefusingPort::new(V4).unwrap_or_else(|e| panic!("{e:?}"));
    let client = scenario::client(HttpClientConfig::default(), scenario::full_options());
    let url = format!("http://{}/", refusing.addr());
    let _ = scenario::get_err(&client, &url).await;
    let before = scenario::trace(&client, "before");
    assert_eq!(before.net_trace.tcp_conns.len(), 1);
    client
        .clear_trace()
        .unwrap_or_else(|e| panic!("clear_trace: {e}"));
    let after = scenario::trace(&client, "after");
    assert!(begin_of(&after) > begin_of(&before));
    for (section, ids) in ids(&after) {
        assert!(ids.is_empty(), "{section} not cleared:\n{}", dump(&after));
    }
}

#[tokio::test]
async fn close_makes_every_further_call_fail() {
    let server = scenario::plain_server().await;
    let client = scenario::client(HttpClientConfig::default(), scenario::full_options());
    let (status, _) = get_ok(&client, &server.url("/")).await;
    assert_eq!(status, 200);
    let clone = client.clone();
    client.close().unwrap_or_else(|e| panic!("close: {e}"));
    assert!(matches!(client.get_trace("x"), Err(ClientError::Closed)));
    assert!(matches!(clone.get_trace("x"), Err(ClientError::Closed)));
    assert!(matches!(client.clear_trace(), Err(ClientError::Closed)));
    assert!(matches!(client.close(), Err(ClientError::Closed)));
    let result = bounded("GET after close", client.get(&server.url("/"))).await;
    assert!(
        matches!(&result, Err(e) if e.kind() == RequestErrorKind::Closed),
        "{:?}",
        result.err()
    );
    assert_eq!(server.requests().get(), 1);
}

#[tokio::test]
async fn a_real_trace_survives_a_json_round_trip() {
    let (server, _dns, client) = https_setup(scenario::full_options()).await;
    let (status, _) = get_ok(&client, &server.url_with_host(EXAMPLE_HOST, "/gzip/2000")).await;
    assert_eq!(status, 200);
    let _ = scenario::get_err(&client, "http://127.0.0.1:1/").await;
    let trace = scenario::trace(&client, "round trip");
    let json = serde_json::to_string(&trace).unwrap_or_else(|e| panic!("{e}"));
    let read: HttpTrace = serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e}\n{json}"));
    assert_eq!(read, trace);
    let again = serde_json::to_string(&read).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(again, json, "re-serialization is not byte-identical");

    // Go's shapes: capital-R RespContentLen, relative "+Nms", absolute RFC 3339.
    let value: serde_json::Value = serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(value["description"], "round trip");
    let begin = value["traceBeginAt"].as_str().unwrap_or_default();
    assert!(
        time::OffsetDateTime::parse(begin, &time::format_description::well_known::Rfc3339).is_ok(),
        "{begin}"
    );
    let end = value["traceEndAt"].as_str().unwrap_or_default();
    assert!(end.starts_with('+') && end.ends_with("ms"), "{end}");
    let reqs = value["httpRequests"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(reqs.len(), 2);
    assert!(reqs.iter().all(|r| r.get("RespContentLen").is_some()));
    assert!(reqs.iter().all(|r| r.get("respContentLen").is_none()));
    assert_eq!(value["tlsTunnels"][0]["peerCerts"][0]["isCA"], false);
}

#[tokio::test]
async fn without_http_request_tracing_the_network_records_remain() {
    let options = TraceOptions {
        http_req_trace: None,
        ..scenario::full_options()
    };
    let (server, _dns, client) = https_setup(options).await;
    let (status, _) = get_ok(&client, &server.url_with_host(EXAMPLE_HOST, "/")).await;
    assert_eq!(status, 200);
    let trace = scenario::trace(&client, "no HTTP tracing");
    assert!(trace.http_requests.is_empty(), "{}", dump(&trace));
    let net = &trace.net_trace;
    assert_eq!(net.dials.len(), 1);
    assert_eq!(net.dns_queries.len(), 2);
    // Go loses TLS tunnels without HTTP tracing; they are kept here.
    let tunnel = only(&net.tls_tunnels, "TLS tunnel", &trace);
    assert_eq!(tunnel.tcp_conn, net.dials[0].established_conn);
}

/// A caller that gives up (drops the request future, as on Ctrl-C) leaves a request that
/// says so: `reqError` is "canceled ...", not an empty error on a request without a response.
/// A body given up with `ResponseBody::cancel` says so too; one dropped unread stays no error.
#[tokio::test]
async fn a_dropped_request_and_a_canceled_body_are_recorded_as_canceled() {
    use nettrace_tests::fixtures::broken::{BrokenServer, Misbehaviour};
    let silent = BrokenServer::start(Misbehaviour::Stall)
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));
    let server = scenario::plain_server().await;
    let client = scenario::client(HttpClientConfig::default(), scenario::full_options());
    let url = silent.url("/");
    {
        let request = client.get(&url);
        tokio::pin!(request);
        tokio::select! {
            result = &mut request => panic!("the silent server answered: {:?}", result.map(|r| r.status())),
            accepted = silent.connections().wait_for(1, std::time::Duration::from_secs(10)) => {
                assert!(accepted, "the request never reached the silent server");
            }
        }
        // Dropped here, with the request sent and no response.
    }
    let slow = server.url("/slow-body/60000");
    let response = bounded("GET slow body", client.get(&slow))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    response.into_body().cancel();
    let unread = server.url("/bytes/100000");
    let response = bounded("GET unread body", client.get(&unread))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    drop(response);
    let trace = scenario::trace(&client, "canceled");
    let error = |url: &str| scenario::request_to(&trace, url).req_error.clone();
    assert_eq!(
        error(&url),
        "canceled before the response arrived",
        "{}",
        dump(&trace)
    );
    assert!(
        scenario::request_to(&trace, &url)
            .resp_recv_at
            .is_undefined()
    );
    assert_eq!(
        error(&slow),
        "canceled while reading the response body",
        "{}",
        dump(&trace)
    );
    assert_eq!(error(&unread), "", "{}", dump(&trace));
}
