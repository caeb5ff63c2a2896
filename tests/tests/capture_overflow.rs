//! Root scenario: a client whose kernel rings are far too small for its traffic. Events and
//! packets that do not fit are counted, and the trace says its kernel data is incomplete.
//! (Alone in its test binary: the first client of a process sizes the rings for all.)
use nettrace_tests::{
    require_root,
    scenario::{self, dump, get_ok},
    tiny_rings,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overflowing_rings_are_counted_and_the_trace_says_incomplete() {
    if !require_root("overflowing_rings_are_counted_and_the_trace_says_incomplete") {
        return;
    }
    let server = scenario::plain_server().await;
    let client = tiny_rings::client(64 << 20);
    // 64 MiB through loopback: thousands of packets within milliseconds, while the reader
    // looks at the rings every 20 ms (a packet record takes half the packet ring).
    let (status, body) = get_ok(&client, &server.url("/bytes/67108864")).await;
    assert_eq!((status, body.len()), (200, 64 << 20));
    // 200 connections at once: a few thousand socket events in a burst.
    tiny_rings::burst(&client, &server.url("/bytes/10"), 200).await;
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
