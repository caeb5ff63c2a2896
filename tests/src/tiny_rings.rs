//! A kernel-traced client whose rings are far too small for its traffic, and the burst of
//! connections that overflows them: for the scenarios checking that what does not fit is
//! counted (`capture_overflow.rs`, `diagnosis_trust.rs`). Root only; each such scenario is
//! alone in its test binary, as the first client of a process sizes the kernel rings for all.
//!
//! ```ignore
//! let client = tiny_rings::client(64 << 20);
//! tiny_rings::burst(&client, &server.url("/bytes/10"), 200).await;
//! ```
use nettrace::{
    capture::PacketCaptureOptions,
    client::{HttpClient, HttpClientConfig, KernelMode, TraceOptions},
    kernel::KernelConfig,
};

use crate::scenario::{self, get_ok};

/// One page each: about 80 socket-call events, or one full-size packet.
pub const TINY_RING: u32 = 4096;

/// A client with every option, kernel tracing required, rings of [`TINY_RING`] bytes and no
/// per-CPU lanes (every record goes to the tiny rings), a capture of `lo` keeping
/// `capture_limit` bytes, and no keep-alive (each request is a connection of its own).
/// Panics when kernel tracing does not start.
pub fn client(capture_limit: usize) -> HttpClient {
    client_with(capture_limit, false)
}

/// [`client`] with the per-CPU lanes on, as by default: only what they have no room for goes
/// to the tiny rings.
pub fn client_with_lanes(capture_limit: usize) -> HttpClient {
    client_with(capture_limit, true)
}

fn client_with(capture_limit: usize, lanes: bool) -> HttpClient {
    HttpClient::new(
        HttpClientConfig {
            disable_keep_alive: true,
            ..HttpClientConfig::default()
        },
        TraceOptions {
            kernel: KernelMode::Require,
            kernel_config: KernelConfig {
                ring_bytes: TINY_RING,
                packet_ring_bytes: TINY_RING,
                lanes,
            },
            packet_capture: Some(PacketCaptureOptions {
                interfaces: vec!["lo".to_owned()],
                total_size_limit: capture_limit,
                ..PacketCaptureOptions::default()
            }),
            ..scenario::full_options()
        },
    )
    .unwrap_or_else(|e| panic!("kernel tracing must start as root: {e:#?}"))
}

/// `count` GETs of `url` at once (a few thousand socket events in a burst for 200), each
/// checked to succeed.
pub async fn burst(client: &HttpClient, url: &str, count: usize) {
    let requests: Vec<_> = (0..count)
        .map(|_| {
            let (client, url) = (client.clone(), url.to_owned());
            tokio::spawn(async move { get_ok(&client, &url).await })
        })
        .collect();
    for request in requests {
        request
            .await
            .unwrap_or_else(|e| panic!("request task: {e}"));
    }
}
