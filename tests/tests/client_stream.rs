//! The completed-request stream and bounded memory of a traced client, on loopback: each
//! request's trace arrives as soon as its body is read, holds that request alone (a redirect
//! chain included), and the client's own trace keeps only the open connection.
use nettrace::client::{TraceLimits, TraceOptions};
use nettrace::model::HttpTrace;
use nettrace_tests::fixtures::tls::{LeafKind, ServerTlsOptions};
use nettrace_tests::scenario::{self, EXAMPLE_HOST, check_trace, dump, get_ok};

fn streaming_options() -> TraceOptions {
    TraceOptions {
        completed_traces: Some(16),
        ..scenario::full_options()
    }
}

fn ids(trace: &HttpTrace) -> Vec<String> {
    trace
        .http_requests
        .iter()
        .map(|r| r.req_url.clone())
        .collect()
}

#[tokio::test]
async fn each_request_streams_its_own_trace_and_the_tracer_forgets_it() {
    let pki = scenario::pki();
    let server = scenario::https_server(&pki, LeafKind::Valid, &ServerTlsOptions::h1()).await;
    let dns = scenario::example_dns().await;
    let client = scenario::client(
        scenario::config_with_dns_and_pki(&dns, &pki),
        streaming_options(),
    );
    let mut completed = client.completed_traces().expect("streaming is on");
    assert!(client.completed_traces().is_none(), "one receiver");
    let first_url = server.url_with_host(EXAMPLE_HOST, "/redirect/2");
    let (status, _) = get_ok(&client, &first_url).await;
    assert_eq!(status, 200);
    // Delivered when the body was read: no waiting.
    let first = completed.try_recv().expect("the first request's trace");
    check_trace(&first);
    assert_eq!(
        ids(&first).len(),
        3,
        "the redirect chain is one request: {}",
        dump(&first)
    );
    assert_eq!(first.http_requests[0].req_url, first_url);
    assert_eq!(first.net_trace.dials.len(), 1, "{}", dump(&first));
    assert_eq!(first.net_trace.tls_tunnels.len(), 1, "{}", dump(&first));
    assert!(!first.net_trace.dns_queries.is_empty(), "{}", dump(&first));
    let conn = &first.net_trace.tcp_conns[0];
    assert!(!conn.reused);
    assert!(
        conn.socket_trace
            .as_ref()
            .is_some_and(|s| !s.socket_ops.is_empty())
    );

    let second_url = server.url_with_host(EXAMPLE_HOST, "/");
    get_ok(&client, &second_url).await;
    let second = completed.try_recv().expect("the second request's trace");
    check_trace(&second);
    assert_eq!(ids(&second), [second_url]);
    assert!(
        second.net_trace.dials.is_empty(),
        "no new dial: {}",
        dump(&second)
    );
    let conn = &second.net_trace.tcp_conns[0];
    assert!(conn.reused, "{}", dump(&second));
    assert_eq!(conn.trace_id, first.net_trace.tcp_conns[0].trace_id);
    assert!(
        conn.socket_trace
            .as_ref()
            .is_some_and(|s| !s.socket_ops.is_empty())
    );
    assert!(completed.try_recv().is_none());

    // What is left in the client: the open connection, nothing else.
    let left = scenario::trace(&client, "left");
    assert!(left.http_requests.is_empty(), "{}", dump(&left));
    assert!(left.net_trace.dials.is_empty(), "{}", dump(&left));
    assert!(left.net_trace.dns_queries.is_empty(), "{}", dump(&left));
    assert_eq!(left.net_trace.tcp_conns.len(), 1, "{}", dump(&left));
}

#[tokio::test]
async fn a_failed_request_streams_too() {
    let dns = scenario::example_dns().await;
    let refusing =
        nettrace_tests::fixtures::broken::RefusingPort::new(nettrace_tests::fixtures::net::V4)
            .unwrap_or_else(|e| panic!("{e:?}"));
    let client = scenario::client(scenario::config_with_dns(&dns), streaming_options());
    let mut completed = client.completed_traces().expect("streaming is on");
    let url = format!("http://{EXAMPLE_HOST}:{}/", refusing.addr().port());
    assert!(client.get(&url).await.is_err());
    let trace = completed.try_recv().expect("the failed request's trace");
    assert_eq!(ids(&trace), [url]);
    assert!(
        !trace.http_requests[0].req_error.is_empty(),
        "{}",
        dump(&trace)
    );
    assert_eq!(trace.net_trace.dials.len(), 1, "{}", dump(&trace));
}

#[tokio::test]
async fn socket_operations_past_the_limit_are_counted_in_a_real_trace() {
    let pki = scenario::pki();
    let server = scenario::https_server(&pki, LeafKind::Valid, &ServerTlsOptions::h1()).await;
    let dns = scenario::example_dns().await;
    let client = scenario::client(
        scenario::config_with_dns_and_pki(&dns, &pki),
        TraceOptions {
            limits: TraceLimits {
                socket_ops_per_conn: 3,
                ..TraceLimits::default()
            },
            ..scenario::full_options()
        },
    );
    get_ok(&client, &server.url_with_host(EXAMPLE_HOST, "/")).await;
    let trace = scenario::trace(&client, "limited");
    let conn = &trace.net_trace.tcp_conns[0];
    let ops = conn.socket_trace.as_ref().expect("socket trace");
    assert_eq!(ops.socket_ops.len(), 3, "{}", dump(&trace));
    assert!(
        ops.dropped_ops > 0,
        "a TLS request takes more than 3 operations"
    );
    let dropped = trace.net_trace.dropped.expect("dropped totals");
    assert!(dropped.socket_ops >= ops.dropped_ops, "{}", dump(&trace));
    let json = serde_json::to_value(&trace).expect("json");
    assert!(json["dropped"]["socketOps"].as_u64().is_some_and(|n| n > 0));
}
