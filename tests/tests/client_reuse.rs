//! Deterministic connection reuse: sequential keep-alive requests to one host go over one
//! connection, every time (Go's transport guarantees it: a connection whose body was read to
//! its end is idle before the read returns). Before the client had its own pool, about one
//! run in three of these scenarios dialed a second connection.
//!
//! Each test loops: several rounds of many requests, so every CI run exercises the ordering
//! thousands of times. All loops are bounded in count, and every request in time.
use std::time::Duration;

use nettrace::client::{HttpClient, HttpClientConfig};
use nettrace::model::{HttpTrace, TraceId};
use nettrace_tests::fixtures::http::HttpServer;
use nettrace_tests::fixtures::tls::{LeafKind, ServerTlsOptions};
use nettrace_tests::scenario::{self, bounded_for, dump, get_ok, only};

/// Rounds per scenario, each with a fresh client and server.
const ROUNDS: usize = 5;
/// Sequential requests per round.
const REQUESTS: usize = 1000;
/// Time allowed for one round (a debug build on a loaded machine).
const ROUND_LIMIT: Duration = Duration::from_secs(120);

/// Checks that every request of `trace` went over its one connection, dialed once; returns
/// that connection's ID.
fn one_connection(trace: &HttpTrace, requests: usize) -> TraceId {
    let dial = only(&trace.net_trace.dials, "dial", trace);
    let conn = only(&trace.net_trace.tcp_conns, "TCP connection", trace);
    assert_eq!(dial.established_conn, conn.trace_id);
    assert_eq!(trace.http_requests.len(), requests);
    for (i, req) in trace.http_requests.iter().enumerate() {
        assert_eq!(req.tcp_conn, conn.trace_id, "request {i}");
        assert!(req.req_error.is_empty(), "request {i}: {}", req.req_error);
    }
    conn.trace_id.clone()
}

/// `REQUESTS` sequential GETs of `url`, each body read to its end, in `ROUNDS` rounds of a
/// fresh client (`config`) and server (`start`); each round must use one connection.
async fn sequential_gets_use_one_connection<S, F>(config: impl Fn() -> HttpClientConfig, start: S)
where
    S: Fn() -> F,
    F: Future<Output = HttpServer>,
{
    for round in 0..ROUNDS {
        let server = start().await;
        let client = scenario::client(config(), scenario::full_options());
        let url = server.url("/bytes/64");
        bounded_for(ROUND_LIMIT, "a round of sequential requests", async {
            for _ in 0..REQUESTS {
                let (status, body) = get_ok(&client, &url).await;
                assert_eq!((status, body.len()), (200, 64));
            }
        })
        .await;
        let trace = scenario::trace(&client, "sequential keep-alive");
        one_connection(&trace, REQUESTS);
        assert_eq!(server.connections().get(), 1, "round {round}");
        assert_eq!(server.requests().get(), REQUESTS, "round {round}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sequential_http1_requests_use_one_connection() {
    sequential_gets_use_one_connection(HttpClientConfig::default, scenario::plain_server).await;
}

#[tokio::test]
async fn sequential_http1_requests_use_one_connection_on_one_thread() {
    sequential_gets_use_one_connection(HttpClientConfig::default, scenario::plain_server).await;
}

/// A TLS server offering h2 and HTTP/1.1, and a client trusting it that offers h2 or not.
fn tls(prefer_http2: bool) -> (impl Fn() -> HttpClientConfig, impl AsyncFn() -> HttpServer) {
    let pki = std::sync::Arc::new(scenario::pki());
    let trusted = pki.clone();
    let config = move || HttpClientConfig {
        prefer_http2,
        tls: scenario::trust(&trusted),
        ..Default::default()
    };
    let start = async move || {
        scenario::https_server(&pki, LeafKind::Valid, &ServerTlsOptions::h2_and_h1()).await
    };
    (config, start)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sequential_http2_requests_use_one_connection() {
    let (config, start) = tls(true);
    sequential_gets_use_one_connection(&config, || start()).await;
    // And they did go over HTTP/2.
    let server = start().await;
    let client = scenario::client(config(), scenario::full_options());
    get_ok(&client, &server.url("/")).await;
    assert_eq!(server.request_log()[0].version, http::Version::HTTP_2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sequential_https_http1_requests_use_one_connection() {
    let (config, start) = tls(false);
    sequential_gets_use_one_connection(config, || start()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirect_chains_use_one_connection() {
    /// Chains per round; each is 10 requests (9 redirects).
    const CHAINS: usize = 100;
    for round in 0..ROUNDS {
        let server = scenario::plain_server().await;
        let client = scenario::client(HttpClientConfig::default(), scenario::full_options());
        let url = server.url("/redirect/9");
        bounded_for(ROUND_LIMIT, "a round of redirect chains", async {
            for _ in 0..CHAINS {
                let (status, _) = get_ok(&client, &url).await;
                assert_eq!(status, 200);
            }
        })
        .await;
        let trace = scenario::trace(&client, "redirect chains");
        one_connection(&trace, CHAINS * 10);
        assert_eq!(server.connections().get(), 1, "round {round}");
    }
}

/// As `nettrace get --repeat N --clear-trace` does: each request gets a trace of its own,
/// and every trace after the first shows the first one's connection, carried over (reused)
/// and no dial.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_requests_with_clear_trace_reuse_the_carried_over_connection() {
    /// Requests (and traces) per round.
    const REPEATS: usize = 200;
    for round in 0..ROUNDS {
        let server = scenario::plain_server().await;
        let client = scenario::client(HttpClientConfig::default(), scenario::full_options());
        let url = server.url("/bytes/7");
        let mut first: Option<TraceId> = None;
        bounded_for(ROUND_LIMIT, "a round of repeated requests", async {
            for i in 0..REPEATS {
                get_ok(&client, &url).await;
                let trace = scenario::trace(&client, "repeat");
                let req = only(&trace.http_requests, "request", &trace);
                let conn = only(&trace.net_trace.tcp_conns, "TCP connection", &trace);
                assert_eq!(req.tcp_conn, conn.trace_id, "{}", dump(&trace));
                match &first {
                    None => {
                        assert!(!conn.reused);
                        assert_eq!(trace.net_trace.dials.len(), 1, "{}", dump(&trace));
                        first = Some(conn.trace_id.clone());
                    }
                    Some(first) => {
                        assert!(conn.reused, "request {i}: {}", dump(&trace));
                        assert_eq!(&conn.trace_id, first, "request {i}");
                        assert!(
                            trace.net_trace.dials.is_empty(),
                            "request {i} dialed: {}",
                            dump(&trace)
                        );
                    }
                }
                reset(&client);
            }
        })
        .await;
        assert_eq!(server.connections().get(), 1, "round {round}");
    }
}

fn reset(client: &HttpClient) {
    client
        .clear_trace()
        .unwrap_or_else(|e| panic!("clear_trace: {e}"));
}

/// Concurrent HTTP/2 requests share the one connection too, once it is there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_http2_requests_share_the_connection() {
    const TASKS: usize = 20;
    let (config, start) = tls(true);
    let server = start().await;
    let client = scenario::client(config(), scenario::full_options());
    get_ok(&client, &server.url("/")).await;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..TASKS {
        let (client, url) = (client.clone(), server.url("/slow-headers/50"));
        tasks.spawn(async move { get_ok(&client, &url).await.0 });
    }
    let statuses = bounded_for(ROUND_LIMIT, "concurrent requests", tasks.join_all()).await;
    assert!(statuses.iter().all(|s| *s == 200));
    let trace = scenario::trace(&client, "h2 concurrent");
    one_connection(&trace, TASKS + 1);
    assert_eq!(server.connections().get(), 1);
}

/// With one connection per host allowed and keep-alive, concurrent requests take turns on the
/// one connection: each waits for it to be handed back rather than for a second one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_conns_per_host_with_keep_alive_hands_the_connection_on() {
    const TASKS: usize = 4;
    let server = scenario::plain_server().await;
    let client = scenario::client(
        HttpClientConfig {
            max_conns_per_host: 1,
            ..Default::default()
        },
        scenario::full_options(),
    );
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..TASKS {
        let (client, url) = (client.clone(), server.url("/slow-headers/20"));
        tasks.spawn(async move { get_ok(&client, &url).await.0 });
    }
    let statuses = bounded_for(ROUND_LIMIT, "concurrent requests", tasks.join_all()).await;
    assert!(statuses.iter().all(|s| *s == 200));
    let trace = scenario::trace(&client, "one conn per host");
    let conn = only(&trace.net_trace.tcp_conns, "TCP connection", &trace);
    assert!(
        trace
            .http_requests
            .iter()
            .all(|r| r.tcp_conn == conn.trace_id),
        "{}",
        dump(&trace)
    );
    assert_eq!(server.connections().get(), 1);
}

/// A server that answers one request per connection and then closes it (without saying
/// so): the idle connection it closed is not used again, and the next request succeeds on a
/// new one.
#[tokio::test]
async fn an_idle_connection_the_server_closed_is_replaced() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        for _ in 0..2 {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") {
                assert!(head.len() < 16 * 1024, "request head too long");
                stream.read_exact(&mut byte).await.unwrap();
                head.push(byte[0]);
            }
            stream
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                .await
                .unwrap();
            // Closed here: the client still holds the connection as idle.
        }
    });
    let client = scenario::client(HttpClientConfig::default(), scenario::full_options());
    let url = format!("http://{addr}/");
    for _ in 0..2 {
        let (status, body) = get_ok(&client, &url).await;
        assert_eq!((status, &body[..]), (200, &b"ok"[..]));
    }
    bounded_for(ROUND_LIMIT, "server", server).await.unwrap();
    let trace = scenario::trace(&client, "closed while idle");
    assert_eq!(trace.net_trace.dials.len(), 2, "{}", dump(&trace));
    let [first, second] = trace.http_requests.as_slice() else {
        panic!("two requests:\n{}", dump(&trace));
    };
    assert_ne!(first.tcp_conn, second.tcp_conn);
    assert!(second.req_error.is_empty(), "{}", dump(&trace));
}
