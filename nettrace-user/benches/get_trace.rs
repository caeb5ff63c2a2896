//! `get_trace` on a large trace: the first snapshot against repeated ones (issue 16). See
//! BENCHMARKS.md, section "get_trace: repeated snapshots (issue 16)".
//!
//! ```text
//! CARGO_TARGET_DIR=target/bench cargo bench -p nettrace-user --bench get_trace
//! ```
//!
//! A recorder is filled with [`REQUESTS`] completed HTTPS requests from event sequences
//! ([`nettrace::bench_support::TraceBench`]; no sockets, so only the snapshot is timed),
//! either each on a connection of its own (dial, TCP connection with four logged socket
//! operations, TLS handshake: five records per request) or 100 to a keep-alive connection.
//! Each round times, in this order and on this thread's CPU clock (the machine is shared:
//! wall time is printed too but CPU time is the figure):
//! - `first`: a snapshot that converts every record, as the first `get_trace` does;
//! - `repeat`: a snapshot of the unchanged trace right after;
//! - `+1`, `+100`: a snapshot after 1 or 100 more requests (added untimed).
//!
//! `NETTRACE_GET_TRACE_ROUNDS` sets the rounds (default 11); medians are printed, with the
//! ratios to `first` computed per round, then their median. Dropping a snapshot is timed
//! apart (`drop`), for the first and the repeated one.
use std::{
    hint::black_box,
    time::{Duration, Instant},
};

use nettrace::bench_support::TraceBench;

/// Requests in the trace.
const REQUESTS: usize = 20_000;

/// This thread's CPU time.
fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; the clock ID is a constant the kernel knows.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime");
    Duration::new(
        u64::try_from(ts.tv_sec).unwrap_or(0),
        u32::try_from(ts.tv_nsec).unwrap_or(0),
    )
}

/// CPU and wall time of `f`, and its result.
fn timed<T>(f: impl FnOnce() -> T) -> (Duration, Duration, T) {
    let wall = Instant::now();
    let cpu = thread_cpu();
    let out = black_box(f());
    (thread_cpu() - cpu, wall.elapsed(), out)
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// The timed kinds of snapshot, in round order.
const KINDS: [&str; 4] = ["first", "repeat", "+1", "+100"];

fn run(per_conn: u64, rounds: usize) {
    let mut bench = TraceBench::new(per_conn);
    bench.add_requests(REQUESTS);
    // Warm up: allocator arenas, caches.
    drop(bench.snapshot_uncached());
    drop(bench.snapshot());
    let mut cpu: Vec<Vec<f64>> = vec![Vec::new(); KINDS.len()];
    let mut wall: Vec<Vec<f64>> = vec![Vec::new(); KINDS.len()];
    let mut ratios: Vec<Vec<f64>> = vec![Vec::new(); KINDS.len()];
    let mut drops: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
    for _ in 0..rounds {
        let mut round = [0.0; 4];
        for (k, kind) in KINDS.iter().enumerate() {
            match *kind {
                "+1" => bench.add_requests(1),
                "+100" => bench.add_requests(100),
                _ => {}
            }
            let (c, w, trace) = if *kind == "first" {
                timed(|| bench.snapshot_uncached())
            } else {
                timed(|| bench.snapshot())
            };
            assert!(trace.http_requests.len() as u64 == bench.requests());
            let (d, _, ()) = timed(|| drop(trace));
            if k < 2 {
                drops[k].push(d.as_secs_f64() * 1e3);
            }
            round[k] = c.as_secs_f64();
            cpu[k].push(c.as_secs_f64() * 1e3);
            wall[k].push(w.as_secs_f64() * 1e3);
        }
        for k in 0..KINDS.len() {
            ratios[k].push(round[k] / round[0]);
        }
    }
    println!(
        "{REQUESTS} requests, {per_conn} per connection ({} at the end), {rounds} rounds:",
        bench.requests()
    );
    for (k, kind) in KINDS.iter().enumerate() {
        println!(
            "  {kind:>6}: cpu {:8.3} ms  wall {:8.3} ms  cpu/first {:.4}",
            median(&mut cpu[k]),
            median(&mut wall[k]),
            median(&mut ratios[k]),
        );
    }
    println!(
        "  drop of the first snapshot {:.3} ms, of a repeated one {:.3} ms (cpu)",
        median(&mut drops[0]),
        median(&mut drops[1]),
    );
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` runs it once, small.
    let testing = !std::env::args().any(|a| a == "--bench");
    let rounds = std::env::var("NETTRACE_GET_TRACE_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(if testing { 1 } else { 11 });
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!("load average: {}", load.trim());
    for per_conn in [1, 100] {
        run(per_conn, rounds);
    }
}
