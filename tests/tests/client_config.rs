//! Configuration fields whose effect is seen outside the trace: TCP keep-alive on the socket,
//! the idle-connection pool, and `Expect: 100-continue` timing.
use std::{
    net::SocketAddr,
    time::{Duration, Instant},
};

use http::{Request, header};
use nettrace::client::{HttpClient, HttpClientConfig, RequestBody};
use nettrace_tests::scenario::{self, bounded, get_ok};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpListener,
};

/// The kernel's timer state of the TCP socket with local port `port` (from /proc/net/tcp*):
/// `(timer kind, seconds until it fires)`; kind 2 is the keep-alive timer.
fn tcp_timer(port: u16) -> Option<(u32, f64)> {
    for file in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let table = std::fs::read_to_string(file).ok()?;
        for line in table.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let local_port = fields.get(1)?.rsplit(':').next()?;
            // The established connection only: the port may also be that of an earlier
            // connection (another test's) still in TIME_WAIT, with its own timer.
            const ESTABLISHED: &str = "01";
            if u16::from_str_radix(local_port, 16).ok()? != port || fields.get(3)? != &ESTABLISHED {
                continue;
            }
            // "tr tm->when": timer kind and jiffies, e.g. "02:000003E6".
            let (kind, when) = fields.get(5)?.split_once(':')?;
            let hz = 100.0; // USER_HZ, the unit /proc reports jiffies in
            return Some((
                u32::from_str_radix(kind, 16).ok()?,
                u64::from_str_radix(when, 16).ok()? as f64 / hz,
            ));
        }
    }
    None
}

async fn local_port_of_only_conn(client: &HttpClient) -> u16 {
    let trace = scenario::trace(client, "keep-alive");
    let conn = scenario::only(&trace.net_trace.tcp_conns, "TCP conn", &trace);
    conn.addr_tuple.src_port
}

#[tokio::test]
async fn tcp_keep_alive_interval_arms_the_kernel_keepalive_timer() {
    let server = scenario::plain_server().await;
    let client = scenario::client(
        HttpClientConfig {
            tcp_keep_alive_interval: Some(Duration::from_secs(7)),
            ..Default::default()
        },
        scenario::full_options(),
    );
    get_ok(&client, &server.url("/")).await;
    let port = local_port_of_only_conn(&client).await;
    let (kind, seconds) = tcp_timer(port).expect("the idle connection is in /proc/net/tcp");
    assert_eq!(kind, 2, "keep-alive timer armed");
    assert!(
        seconds > 5.0 && seconds <= 7.0,
        "fires within the interval: {seconds}s"
    );
}

#[tokio::test]
async fn a_zero_keep_alive_interval_turns_probes_off() {
    let server = scenario::plain_server().await;
    let client = scenario::client(
        HttpClientConfig {
            tcp_keep_alive_interval: Some(Duration::ZERO),
            ..Default::default()
        },
        scenario::full_options(),
    );
    get_ok(&client, &server.url("/")).await;
    let port = local_port_of_only_conn(&client).await;
    let (kind, _) = tcp_timer(port).expect("the idle connection is in /proc/net/tcp");
    assert_eq!(kind, 0, "no timer on an idle connection without keep-alive");
}

#[tokio::test]
async fn the_default_keep_alive_interval_is_15_seconds() {
    let server = scenario::plain_server().await;
    let client = scenario::client(HttpClientConfig::default(), scenario::full_options());
    get_ok(&client, &server.url("/")).await;
    let port = local_port_of_only_conn(&client).await;
    let (kind, seconds) = tcp_timer(port).expect("the idle connection is in /proc/net/tcp");
    assert_eq!(kind, 2);
    assert!(seconds > 13.0 && seconds <= 15.0, "{seconds}s");
}

#[tokio::test]
async fn an_idle_connection_is_closed_after_idle_conn_timeout() {
    let server = scenario::plain_server().await;
    let client = scenario::client(
        HttpClientConfig {
            idle_conn_timeout: Some(Duration::from_millis(200)),
            ..Default::default()
        },
        scenario::full_options(),
    );
    get_ok(&client, &server.url("/")).await;
    // Time passing is what is under test here: let the pool's idle timer run out.
    tokio::time::sleep(Duration::from_millis(600)).await;
    get_ok(&client, &server.url("/")).await;
    let trace = scenario::trace(&client, "idle timeout");
    assert_eq!(trace.net_trace.dials.len(), 2, "{}", scenario::dump(&trace));
    let first = &trace.net_trace.tcp_conns[0];
    assert!(
        !first.conn_close_at.is_undefined(),
        "the idle one was closed"
    );
    assert_eq!(server.connections().get(), 2);
}

#[tokio::test]
async fn max_idle_conns_per_host_limits_the_pooled_connections() {
    let server = scenario::plain_server().await;
    let client = scenario::client(
        HttpClientConfig {
            max_idle_conns_per_host: 1,
            ..Default::default()
        },
        scenario::full_options(),
    );
    // Three requests in parallel need three connections (the slow route keeps them busy)...
    let url = server.url("/slow-headers/100");
    parallel_gets(&client, &url, 3).await;
    assert_eq!(server.connections().get(), 3);
    // ...but only one of them stays in the pool: the next three need two new connections.
    parallel_gets(&client, &url, 3).await;
    assert_eq!(server.connections().get(), 5);
}

/// `count` GETs of `url` at the same time, each in its own task.
async fn parallel_gets(client: &HttpClient, url: &str, count: usize) {
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..count {
        let (client, url) = (client.clone(), url.to_owned());
        tasks.spawn(async move { get_ok(&client, &url).await });
    }
    bounded("parallel requests", async {
        while let Some(done) = tasks.join_next().await {
            done.unwrap();
        }
    })
    .await;
}

/// A raw HTTP/1.1 server that never sends `100 Continue`: it reads the request head, then
/// reports how long the body took to start arriving.
async fn no_continue_server() -> (SocketAddr, tokio::task::JoinHandle<Duration>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            assert!(head.len() < 16 * 1024, "request head too long");
            stream.read_exact(&mut byte).await.unwrap();
            head.push(byte[0]);
        }
        let head_done = Instant::now();
        stream.read_exact(&mut byte).await.unwrap();
        let waited = head_done.elapsed();
        let mut rest = vec![0u8; 3];
        stream.read_exact(&mut rest).await.unwrap();
        stream
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
            .await
            .unwrap();
        waited
    });
    (addr, task)
}

#[tokio::test]
async fn expect_continue_timeout_holds_the_body_back_until_it_passes() {
    const LIMIT: Duration = Duration::from_millis(300);
    let (addr, server) = no_continue_server().await;
    let client = scenario::client(
        HttpClientConfig {
            expect_continue_timeout: Some(LIMIT),
            ..Default::default()
        },
        scenario::full_options(),
    );
    let request = Request::post(format!("http://{addr}/upload"))
        .header(header::EXPECT, "100-continue")
        .body(RequestBody::from("body"))
        .unwrap();
    let response = bounded("upload", client.request(request)).await.unwrap();
    assert_eq!(response.status(), 200);
    let waited = bounded("server", server).await.unwrap();
    // The limit counts from when the client has written the head; the server (reading it byte
    // by byte) finishes a little later, so it may see slightly less than the limit.
    const HEAD_TRANSIT: Duration = Duration::from_millis(25);
    assert!(
        waited + HEAD_TRANSIT >= LIMIT,
        "body sent after {waited:?}, before the {LIMIT:?} limit"
    );
    let trace = scenario::trace(&client, "expect continue");
    assert_eq!(trace.http_requests[0].req_content_len, 4);
}

#[tokio::test]
async fn without_expect_continue_timeout_the_body_goes_at_once() {
    let (addr, server) = no_continue_server().await;
    let client = scenario::client(HttpClientConfig::default(), scenario::full_options());
    let request = Request::post(format!("http://{addr}/upload"))
        .header(header::EXPECT, "100-continue")
        .body(RequestBody::from("body"))
        .unwrap();
    bounded("upload", client.request(request)).await.unwrap();
    let waited = bounded("server", server).await.unwrap();
    assert!(waited < Duration::from_millis(250), "{waited:?}");
}

#[tokio::test]
async fn a_100_continue_releases_the_body_before_the_limit() {
    // The fixture's /echo route reads the body, so hyper's server answers 100 Continue.
    let server = scenario::plain_server().await;
    let client = scenario::client(
        HttpClientConfig {
            expect_continue_timeout: Some(Duration::from_secs(30)),
            ..Default::default()
        },
        scenario::full_options(),
    );
    let request = Request::post(server.url("/echo"))
        .header(header::EXPECT, "100-continue")
        .body(RequestBody::from("ping"))
        .unwrap();
    let started = Instant::now();
    let response = bounded("echo", client.request(request)).await.unwrap();
    let body = bounded("echo body", response.into_body().bytes())
        .await
        .unwrap();
    assert_eq!(&body[..], b"ping");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "did not wait for the 30 s limit"
    );
}

/// Two hosts, one request each, then the first host again: with room for one idle connection
/// in all, the first host's connection was closed when the second went idle.
async fn first_host_connections_after_two_hosts(max_idle_conns: usize) -> usize {
    let (a, b) = (
        scenario::plain_server().await,
        scenario::plain_server().await,
    );
    let client = scenario::client(
        HttpClientConfig {
            max_idle_conns,
            ..Default::default()
        },
        scenario::full_options(),
    );
    get_ok(&client, &a.url("/bytes/10")).await;
    get_ok(&client, &b.url("/bytes/10")).await;
    get_ok(&client, &a.url("/bytes/10")).await;
    assert_eq!(b.connections().get(), 1);
    a.connections().get()
}

#[tokio::test]
async fn max_idle_conns_closes_the_connection_idle_longest() {
    assert_eq!(first_host_connections_after_two_hosts(1).await, 2);
}

#[tokio::test]
async fn within_max_idle_conns_connections_stay_pooled() {
    assert_eq!(first_host_connections_after_two_hosts(2).await, 1);
    assert_eq!(
        first_host_connections_after_two_hosts(0).await,
        1,
        "0 means no limit"
    );
}
