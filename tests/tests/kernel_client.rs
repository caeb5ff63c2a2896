//! Root scenarios: the traced client with the kernel side required. The kernel's facts must
//! agree with what userspace saw (bytes, resets, states) and be joined to the right records.
use nettrace::{
    client::{HttpClient, HttpClientConfig, KernelMode, TraceOptions},
    model::{HttpTrace, KernelTcpFacts, TcpConnTrace},
};
use nettrace_tests::{
    fixtures::broken::{BrokenServer, Misbehaviour, RefusingPort},
    fixtures::net::V4,
    require_root,
    scenario::{self, bounded, dump, get_ok},
};

fn kernel_client(config: HttpClientConfig) -> HttpClient {
    kernel_client_with(config, scenario::full_options())
}

/// A client with `options`, the kernel side required.
fn kernel_client_with(config: HttpClientConfig, options: TraceOptions) -> HttpClient {
    HttpClient::new(
        config,
        TraceOptions {
            kernel: KernelMode::Require,
            ..options
        },
    )
    .unwrap_or_else(|e| panic!("kernel tracing must start as root: {e:#?}"))
}

/// The kernel's facts of `tcp`, a connection of `trace` (which the panic prints if there are
/// none).
fn tcp_kernel<'a>(trace: &HttpTrace, tcp: &'a TcpConnTrace) -> &'a KernelTcpFacts {
    tcp.kernel
        .as_ref()
        .unwrap_or_else(|| panic!("{}", dump(trace)))
}

/// The kernel's state changes of a connection, (from, to).
fn state_changes(kernel: &KernelTcpFacts) -> Vec<(&str, &str)> {
    kernel
        .states
        .iter()
        .map(|s| (s.from.as_str(), s.to.as_str()))
        .collect()
}

fn assert_complete(trace: &HttpTrace) {
    let status = trace.net_trace.kernel_data.as_ref().expect("kernelData");
    assert!(status.available && status.complete, "{status:?}");
}

#[tokio::test]
async fn kernel_byte_counts_match_userspace_for_tcp_and_udp() {
    if !require_root("kernel_byte_counts_match_userspace_for_tcp_and_udp") {
        return;
    }
    let dns = scenario::example_dns().await;
    let server = scenario::plain_server().await;
    let client = kernel_client(HttpClientConfig {
        disable_keep_alive: true,
        ..scenario::config_with_dns(&dns)
    });
    let url = server.url_with_host(scenario::EXAMPLE_HOST, "/bytes/5000");
    get_ok(&client, &url).await;
    let trace = scenario::trace(&client, "kernel bytes");
    assert_complete(&trace);
    let tcp = trace
        .net_trace
        .tcp_conns
        .iter()
        .find(|c| !c.from_resolver)
        .unwrap();
    let kernel = tcp_kernel(&trace, tcp);
    assert_eq!(
        kernel.calls.call_bytes_sent,
        tcp.total_sent_bytes,
        "{}",
        dump(&trace)
    );
    assert_eq!(
        kernel.calls.call_bytes_received,
        tcp.total_recv_bytes,
        "{}",
        dump(&trace)
    );
    assert!(kernel.calls.send_calls >= 1 && kernel.calls.recv_calls >= 1);
    assert_eq!(
        kernel.calls.send_errors + kernel.calls.recv_errors,
        0,
        "{kernel:?}"
    );
    assert!(!kernel.rst_sent && !kernel.rst_received, "{kernel:?}");
    assert_eq!(
        state_changes(kernel)[..2],
        [("close", "syn-sent"), ("syn-sent", "established")]
    );
    assert!(!trace.net_trace.udp_conns.is_empty());
    for udp in trace.net_trace.udp_conns.iter() {
        let kernel = udp
            .kernel
            .as_ref()
            .unwrap_or_else(|| panic!("{}", dump(&trace)));
        assert_eq!(
            kernel.calls.call_bytes_sent,
            udp.total_sent_bytes,
            "{}",
            dump(&trace)
        );
        assert_eq!(
            kernel.calls.call_bytes_received,
            udp.total_recv_bytes,
            "{}",
            dump(&trace)
        );
        assert_eq!(
            kernel.calls.send_calls, 1,
            "one query per resolver socket: {kernel:?}"
        );
    }
}

/// A kept-alive connection counts its calls in the kernel and sends no record per call: a
/// trace taken while it stays open must still hold every call so far (read from the socket's
/// entry), and so must one taken after further requests on it.
#[tokio::test]
async fn an_open_keep_alive_connection_shows_every_call_so_far() {
    if !require_root("an_open_keep_alive_connection_shows_every_call_so_far") {
        return;
    }
    let server = scenario::plain_server().await;
    let client = kernel_client(HttpClientConfig::default());
    let url = server.url("/bytes/3000");
    let mut requests = 0_u32;
    for more in [1, 2] {
        for _ in 0..more {
            get_ok(&client, &url).await;
            requests += 1;
        }
        let trace = scenario::trace(&client, "keep-alive");
        assert_complete(&trace);
        let conns = &trace.net_trace.tcp_conns;
        assert_eq!(
            conns.len(),
            1,
            "one kept-alive connection: {}",
            dump(&trace)
        );
        let tcp = &conns[0];
        assert!(
            tcp.conn_close_at.is_undefined(),
            "still open: {}",
            dump(&trace)
        );
        let kernel = tcp_kernel(&trace, tcp);
        let calls = &kernel.calls;
        assert_eq!(calls.call_bytes_sent, tcp.total_sent_bytes, "{calls:?}");
        assert_eq!(calls.call_bytes_received, tcp.total_recv_bytes, "{calls:?}");
        assert!(
            calls.send_calls >= requests,
            "{requests} requests: {calls:?}"
        );
        assert!(
            calls.recv_calls >= requests,
            "{requests} requests: {calls:?}"
        );
        assert_eq!(calls.send_errors + calls.recv_errors, 0, "{calls:?}");
        // The transitions and the handshake's counters wait in the socket's entry for the
        // record of its CLOSE; the trace reads them there, once each however often it is
        // taken.
        assert_eq!(
            state_changes(kernel),
            [("close", "syn-sent"), ("syn-sent", "established")],
            "{}",
            dump(&trace)
        );
        assert!(
            kernel.srtt_us > 0 && kernel.segs_in >= 1 && kernel.segs_out >= 1,
            "{kernel:?}"
        );
    }
}

#[tokio::test]
async fn a_refused_connection_shows_the_reset_and_its_states() {
    if !require_root("a_refused_connection_shows_the_reset_and_its_states") {
        return;
    }
    let refusing = RefusingPort::new(V4).unwrap();
    let client = kernel_client(HttpClientConfig::default());
    let url = format!("http://{}/", refusing.addr());
    let result = bounded("GET a refusing port", client.get(&url)).await;
    assert!(result.is_err());
    let trace = scenario::trace(&client, "refused");
    assert_complete(&trace);
    let tcp = &trace.net_trace.tcp_conns[0];
    assert!(!tcp.connected);
    let kernel = tcp_kernel(&trace, tcp);
    assert!(kernel.rst_received, "{}", dump(&trace));
    assert_eq!(
        state_changes(kernel),
        [("close", "syn-sent"), ("syn-sent", "close")],
        "{}",
        dump(&trace)
    );
}

#[tokio::test]
async fn a_reset_mid_body_is_seen_by_the_kernel() {
    if !require_root("a_reset_mid_body_is_seen_by_the_kernel") {
        return;
    }
    let server = BrokenServer::start(Misbehaviour::ResetMidBody {
        declared: 10_000,
        sent: 100,
    })
    .await
    .unwrap();
    let client = kernel_client(HttpClientConfig::default());
    let response = bounded("GET", client.get(&server.url("/"))).await.unwrap();
    let body = bounded("body", response.into_body().bytes()).await;
    assert!(body.is_err(), "the body is cut short");
    let trace = scenario::trace(&client, "reset mid-body");
    assert_complete(&trace);
    let tcp = &trace.net_trace.tcp_conns[0];
    let kernel = tcp_kernel(&trace, tcp);
    assert!(kernel.rst_received, "{}", dump(&trace));
    assert_eq!(
        kernel.states.last().map(|s| s.to.as_str()),
        Some("close"),
        "{}",
        dump(&trace)
    );
    assert!(
        kernel.calls.recv_errors >= 1 && kernel.calls.last_error.contains("reset"),
        "the application's read saw the reset: {kernel:?}"
    );
}

/// A streamed request's trace holds what the kernel said of its connection by the request's
/// end: its handshake and, for a connection the application closed by then, the final call
/// totals (a streaming client's sockets report their `close()`: the record of CLOSE may be a
/// round trip away, and the trace does not wait for it).
#[tokio::test]
async fn a_streamed_request_holds_the_kernel_facts_of_its_connection() {
    if !require_root("a_streamed_request_holds_the_kernel_facts_of_its_connection") {
        return;
    }
    let server = scenario::plain_server().await;
    let client = kernel_client_with(
        HttpClientConfig {
            disable_keep_alive: true,
            ..HttpClientConfig::default()
        },
        TraceOptions {
            completed_traces: Some(64),
            ..scenario::full_options()
        },
    );
    let mut completed = client.completed_traces().expect("streaming is on");
    let url = server.url("/bytes/3000");
    let mut closed = 0;
    for _ in 0..10 {
        get_ok(&client, &url).await;
        let trace = bounded("the streamed trace", completed.recv())
            .await
            .expect("a trace per request");
        assert_complete(&trace);
        let tcp = &trace.net_trace.tcp_conns[0];
        let kernel = tcp_kernel(&trace, tcp);
        let states: Vec<_> = kernel.states.iter().map(|s| s.to.as_str()).collect();
        assert_eq!(states[..2], ["syn-sent", "established"], "{}", dump(&trace));
        assert!(kernel.srtt_us > 0, "{kernel:?}");
        if !tcp.conn_close_at.is_undefined() {
            closed += 1;
            // Every byte of the exchange, the request's and the response's.
            let calls = &kernel.calls;
            assert_eq!(calls.call_bytes_sent, tcp.total_sent_bytes, "{calls:?}");
            assert_eq!(calls.call_bytes_received, tcp.total_recv_bytes, "{calls:?}");
        }
    }
    eprintln!("{closed} of 10 connections closed before their request's end");
}
