//! Root scenario of the diagnosis's trust warnings: kernel rings far too small for the
//! traffic lose events and packets (`kernel-events-lost`), and a capture size limit drops
//! packets (`capture-truncated`). Alone in its test binary: the first client of a process
//! sizes the kernel rings for all.
use nettrace::capture::PacketCapture;
use nettrace::model::diagnosis::{self, CaptureSummary, Code, Severity};
use nettrace_tests::scenario::{self, get_ok};
use nettrace_tests::{require_root, tiny_rings};

/// Bytes the capture keeps: a few packets.
const CAPTURE_LIMIT: usize = 8 << 10;

fn summary(capture: &PacketCapture) -> CaptureSummary {
    CaptureSummary {
        interface: capture.interface_name.clone(),
        packets: capture.packets.len(),
        truncated: capture.truncated,
        lost_packets: capture.lost_packets,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overflowing_rings_and_a_full_capture_are_trust_warnings() {
    if !require_root("overflowing_rings_and_a_full_capture_are_trust_warnings") {
        return;
    }
    let server = scenario::plain_server().await;
    let client = tiny_rings::client(CAPTURE_LIMIT);
    // 16 MiB through loopback, then 200 connections at once: bursts of packets and socket
    // events far beyond the rings.
    let (status, _) = get_ok(&client, &server.url("/bytes/16777216")).await;
    assert_eq!(status, 200);
    // The packet ring is drained on the reader's tick only (it is smaller than the wake-up
    // mark), so how much of a burst reaches the capture depends on how long the burst takes:
    // bursts go on until the capture holds its limit, eight at most.
    let mut bursts = 0;
    let (trace, captures) = loop {
        tiny_rings::burst(&client, &server.url("/bytes/10"), 200).await;
        bursts += 1;
        let (trace, captures) = client
            .get_trace("overflow")
            .unwrap_or_else(|e| panic!("{e}"));
        if bursts == 8 || captures.first().is_some_and(|c| c.truncated) {
            break (trace, captures);
        }
    };
    let kernel = trace
        .net_trace
        .kernel_data
        .clone()
        .unwrap_or_else(|| panic!("no kernelData"));
    assert!(
        kernel.lost_events > 0,
        "the event ring must overflow: {kernel:?}"
    );
    let summaries: Vec<CaptureSummary> = captures.iter().map(summary).collect();
    assert!(summaries[0].truncated, "{:?}", summaries[0]);

    let findings = diagnosis::diagnose_with_captures(&trace, &summaries);
    let text = diagnosis::render_text(&trace, &findings);
    assert!(
        findings.iter().all(|f| f.severity != Severity::Error),
        "every request succeeded: {text}"
    );
    let lost = findings
        .iter()
        .find(|f| f.code == Code::KernelEventsLost)
        .unwrap_or_else(|| panic!("no kernel-events-lost: {text}"));
    assert_eq!(lost.severity, Severity::Warning);
    assert!(
        lost.summary
            .contains(&format!("lost {} events", kernel.lost_events)),
        "{}",
        lost.summary
    );
    let truncated = findings
        .iter()
        .find(|f| f.code == Code::CaptureTruncated)
        .unwrap_or_else(|| panic!("no capture-truncated: {text}"));
    assert_eq!(truncated.severity, Severity::Warning);
    assert!(
        truncated.summary.contains("lo") && truncated.summary.contains("size limit"),
        "{}",
        truncated.summary
    );
    // The trace alone knows nothing of the capture.
    assert!(
        diagnosis::diagnose(&trace)
            .iter()
            .all(|f| f.code != Code::CaptureTruncated)
    );
}
