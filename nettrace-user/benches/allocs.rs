//! Heap allocations per keep-alive request, plain vs traced: a figure that, unlike time, does
//! not depend on what else runs on the machine. See BENCHMARKS.md.
//!
//! ```text
//! CARGO_TARGET_DIR=target/bench cargo test --profile bench -p nettrace-user --bench allocs -- --nocapture
//! ```
//!
//! A counting global allocator wraps the system one. Each client kind gets a fresh client,
//! warmed by one GET on its pooled connection, as in the other benchmarks; then the calls to
//! the allocator during [`REQUESTS`] sequential GETs of `/bytes/1024` are counted, with the
//! trace cleared (uncounted) every [`common::CLEAR_EVERY`] requests, as `summary` does. The count
//! is process-wide, so it includes the fixture server and the runtime, which do the same work
//! for every kind: the differences between kinds are the clients' own. Each kind is measured
//! [`REPEATS`] times and the lowest count kept (a stray timer or task can only add).
//!
//! For instructions per request (also load-independent), run one kind at a time under
//! callgrind (the VM has no hardware counters for `perf stat`) with two request counts and
//! divide the difference: `NETTRACE_ALLOCS_KIND` (`plain`, `traced` or
//! `traced_no_sock_trace`) and `NETTRACE_ALLOCS_REQUESTS` select them (BENCHMARKS.md);
//! `NETTRACE_ALLOCS_BYTES` sets the body size instead of 1024 (a large body is read in many
//! frames).
//!
//! It is a libtest `#[test]` because bench targets without `harness = false` only run tests
//! (and `cargo bench` ignores them): run it with `cargo test` as above.
mod common;

use std::{
    alloc::{GlobalAlloc, Layout, System},
    sync::atomic::{AtomicU64, Ordering},
};

use common::{AnyClient, Conns, Kind};

/// Requests counted per measurement by default.
const REQUESTS: u64 = 3000;
/// Measurements per kind.
const REPEATS: usize = 5;

/// Calls to `alloc`/`alloc_zeroed`, to `realloc`, and bytes requested by both.
static ALLOCS: AtomicU64 = AtomicU64::new(0);
static REALLOCS: AtomicU64 = AtomicU64::new(0);
static BYTES: AtomicU64 = AtomicU64::new(0);

/// The system allocator, counting.
struct Counting;

// SAFETY: every method forwards to `System` with the caller's arguments unchanged, so the
// `GlobalAlloc` contract is `System`'s; the counters are plain atomics.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        BYTES.fetch_add(layout.size() as u64, Ordering::Relaxed);
        // SAFETY: forwarded as received (see the impl).
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        BYTES.fetch_add(layout.size() as u64, Ordering::Relaxed);
        // SAFETY: forwarded as received (see the impl).
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded as received (see the impl).
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        REALLOCS.fetch_add(1, Ordering::Relaxed);
        BYTES.fetch_add(new_size as u64, Ordering::Relaxed);
        // SAFETY: forwarded as received (see the impl).
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Allocator calls per request.
#[derive(Clone, Copy, Debug)]
struct PerRequest {
    allocs: f64,
    reallocs: f64,
    bytes: f64,
}

/// The counters now.
fn counters() -> [u64; 3] {
    [&ALLOCS, &REALLOCS, &BYTES].map(|c| c.load(Ordering::Relaxed))
}

/// The lowest of [`REPEATS`] counts of `kind` over [`REQUESTS`] keep-alive GETs of `url`.
fn measure(rt: &tokio::runtime::Runtime, kind: Kind, url: &http::Uri, requests: u64) -> PerRequest {
    let mut best: Option<PerRequest> = None;
    for _ in 0..REPEATS {
        let url = url.clone();
        let counted = rt.block_on(common::on_worker(async move {
            let client = AnyClient::new(kind, Conns::KeepAlive);
            client.get(&url).await;
            let mut counted = [0; 3];
            let mut left = requests;
            while left > 0 {
                let chunk = left.min(common::CLEAR_EVERY);
                client.clear();
                let before = counters();
                for _ in 0..chunk {
                    std::hint::black_box(client.get(&url).await);
                }
                let after = counters();
                for (i, total) in counted.iter_mut().enumerate() {
                    *total += after[i] - before[i];
                }
                left -= chunk;
            }
            let per = |i: usize| counted[i] as f64 / requests as f64;
            PerRequest {
                allocs: per(0),
                reallocs: per(1),
                bytes: per(2),
            }
        }));
        if best.is_none_or(|b| counted.allocs < b.allocs) {
            best = Some(counted);
        }
    }
    best.unwrap_or(PerRequest {
        allocs: f64::NAN,
        reallocs: f64::NAN,
        bytes: f64::NAN,
    })
}

#[test]
fn allocations_per_keep_alive_request() {
    let rt = common::runtime();
    let server = rt.block_on(common::server());
    let size = std::env::var("NETTRACE_ALLOCS_BYTES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(common::SMALL);
    let url = common::url(&server, &format!("/bytes/{size}"));
    let requests = std::env::var("NETTRACE_ALLOCS_REQUESTS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(REQUESTS);
    let only = std::env::var("NETTRACE_ALLOCS_KIND").ok();
    println!(
        "allocator calls per keep-alive GET /bytes/{size} (process-wide, lowest of {REPEATS} x \
         {requests} requests)"
    );
    println!(
        "{:<22} {:>8} {:>9} {:>9} | {:>15}",
        "kind", "allocs", "reallocs", "bytes", "allocs - plain"
    );
    let kinds = [Kind::Plain, Kind::Traced, Kind::TracedNoSockOps];
    let selected = |kind: &Kind| only.as_deref().is_none_or(|name| name == kind.name());
    if let Some(kind) = kinds.iter().find(|k| only.is_some() && selected(k)) {
        let counted = measure(&rt, *kind, &url, requests);
        println!("{:<22} {:>8.2} allocs/request", kind.name(), counted.allocs);
        return;
    }
    let plain = measure(&rt, Kind::Plain, &url, requests);
    for kind in kinds {
        let counted = if kind == Kind::Plain {
            plain
        } else {
            measure(&rt, kind, &url, requests)
        };
        println!(
            "{:<22} {:>8.2} {:>9.2} {:>9.0} | {:>15.2}",
            kind.name(),
            counted.allocs,
            counted.reallocs,
            counted.bytes,
            counted.allocs + counted.reallocs - plain.allocs - plain.reallocs,
        );
    }
    drop(server);
}
