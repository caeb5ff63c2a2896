//! Root scenario: a client whose kernel rings are far too small for its traffic. Events and
//! packets that do not fit are counted, and the trace says its kernel data is incomplete.
//! (Alone in its test binary: the first client of a process sizes the rings for all.)
use nettrace::{
    capture::PacketCaptureOptions,
    client::{HttpClient, HttpClientConfig, KernelMode, TraceOptions},
    kernel::KernelConfig,
};
use nettrace_tests::{
    require_root,
    scenario::{self, dump, get_ok},
};

/// One page each: about 80 socket-call events, or one full-size packet.
const TINY_RING: u32 = 4096;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overflowing_rings_are_counted_and_the_trace_says_incomplete() {
    if !require_root("overflowing_rings_are_counted_and_the_trace_says_incomplete") {
        return;
    }
    let server = scenario::plain_server().await;
    let client = HttpClient::new(
        HttpClientConfig {
            disable_keep_alive: true,
            ..HttpClientConfig::default()
        },
        TraceOptions {
            kernel: KernelMode::Require,
            kernel_config: KernelConfig {
                ring_bytes: TINY_RING,
                packet_ring_bytes: TINY_RING,
            },
            packet_capture: Some(PacketCaptureOptions {
                interfaces: vec!["lo".to_owned()],
                total_size_limit: 64 << 20,
                ..PacketCaptureOptions::default()
            }),
            ..scenario::full_options()
        },
    )
    .unwrap_or_else(|e| panic!("kernel tracing must start as root: {e:#?}"));
    // 64 MiB through loopback: thousands of packets within milliseconds, while the reader
    // looks at the rings every 20 ms (a packet record takes half the packet ring).
    let (status, body) = get_ok(&client, &server.url("/bytes/67108864")).await;
    assert_eq!((status, body.len()), (200, 64 << 20));
    // 200 connections at once: a few thousand socket events in a burst.
    let url = server.url("/bytes/10");
    let requests: Vec<_> = (0..200)
        .map(|_| {
            let (client, url) = (client.clone(), url.clone());
            tokio::spawn(async move { get_ok(&client, &url).await })
        })
        .collect();
    for request in requests {
        request.await.unwrap();
    }
    let (trace, captures) = client.get_trace("overflow").unwrap();
    let kernel = trace.net_trace.kernel_data.clone().expect("kernelData");
    assert!(kernel.available, "{kernel:?}");
    assert!(
        kernel.lost_events > 0,
        "the event ring must overflow: {kernel:?}"
    );
    assert!(!kernel.complete, "{kernel:?}");
    assert_eq!(trace.http_requests.len(), 201);
    let with_facts = trace
        .net_trace
        .tcp_conns
        .iter()
        .filter(|c| c.kernel.is_some())
        .count();
    assert!(
        with_facts > 0,
        "the events that fit are kept: {}",
        dump(&trace)
    );
    let capture = &captures[0];
    assert!(capture.lost_packets > 0, "the packet ring must overflow");
    assert!(!capture.packets.is_empty());
}
