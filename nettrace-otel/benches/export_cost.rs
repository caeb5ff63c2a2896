//! What exporting costs per trace, thread by thread.
//!
//! Exports `NETTRACE_OTLP_TRACES` (default 20,000) copies of one streamed keep-alive trace
//! (`streamed-trace.json`: one request with socket operations and kernel facts, as
//! `nettrace get --stream --sock-trace` writes it) to a sink that answers every OTLP/HTTP
//! request with 200, waits for the flush, and reads the on-CPU time of every thread of the
//! process from `/proc/self/task/*/schedstat` (nanoseconds, unlike `stat`'s ticks). The
//! exporter's threads are told apart by name (`nettrace-otlp`, reqwest's runtime); the
//! caller's own cost (queueing a copy of the trace) is the bench binary's row. Then the same
//! number of span trees are built on the bench's thread alone (the part of the exporter
//! thread's cost that is not OTLP encoding and sending), and before them the model's phases
//! alone (`nettrace_model::phases::request_phases`, part of each tree).
//!
//! ```sh
//! cargo bench -p nettrace-otel --bench export_cost
//! ```
#[path = "../src/otlp_sink.rs"]
mod otlp_sink;

use std::{collections::BTreeMap, time::Instant};

use nettrace_tests::cpu::{self, Process};

use nettrace_model::{HttpTrace, phases::request_phases};
use nettrace_otel::{OtlpConfig, OtlpExporter, spans::request_trees};

const ROUNDS: usize = 3;

fn main() {
    let traces: usize = std::env::var("NETTRACE_OTLP_TRACES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(20_000);
    let trace: HttpTrace =
        serde_json::from_str(include_str!("streamed-trace.json")).expect("fixture trace");
    let endpoint = otlp_sink::start();
    println!("{traces} traces per round, {ROUNDS} rounds; µs of CPU per trace by thread");
    for round in 1..=ROUNDS {
        let before = cpu::threads(Process::This);
        let started = Instant::now();
        let mut config = OtlpConfig::new(endpoint.clone());
        config.max_pending_traces = traces;
        let exporter = OtlpExporter::new(&config).expect("exporter");
        for _ in 0..traces {
            assert!(exporter.export(&trace), "queued");
        }
        // Read before `finish`: it ends the exporter's threads, and their times with them.
        let report = exporter.flush();
        let wall = started.elapsed();
        let after = cpu::threads(Process::This);
        assert_eq!(
            report.exported, report.spans,
            "every span delivered: {report}"
        );
        exporter.finish().expect("finished");
        let mut rows: BTreeMap<String, u64> = BTreeMap::new();
        for (tid, (name, time)) in &after {
            let spent =
                time.saturating_sub(before.get(tid).map_or(Default::default(), |(_, t)| *t));
            *rows.entry(name.clone()).or_default() += spent.as_nanos() as u64;
        }
        let per = |ns: u64| ns as f64 / 1_000.0 / traces as f64;
        let total: u64 = rows
            .iter()
            .filter(|(name, _)| name.as_str() != "otlp-sink")
            .map(|(_, ns)| ns)
            .sum();
        println!(
            "round {round}: {report}, wall {:.2} s, all threads but the sink {:.2} µs/trace",
            wall.as_secs_f64(),
            per(total)
        );
        for (name, ns) in rows.iter().filter(|(_, ns)| **ns > 0) {
            println!("  {name:<40} {:>8.2}", per(*ns));
        }
    }
    for _ in 0..ROUNDS {
        let (requests, us) = per_trace(traces, || request_phases(&trace).len());
        println!("of which the model's phases ({requests} requests): {us:.2} µs/trace");
        let (spans, us) = per_trace(traces, || request_trees(&trace).len());
        println!("span trees alone ({spans} trees): {us:.2} µs/trace");
    }
}

/// Runs `build` `traces` times on this thread: the sum of what it returns, and its CPU time
/// per run in µs.
fn per_trace(traces: usize, mut build: impl FnMut() -> usize) -> (usize, f64) {
    let started = cpu::this_thread();
    let built = (0..traces).map(|_| build()).sum();
    let ns = (cpu::this_thread() - started).as_nanos() as f64;
    (built, ns / 1_000.0 / traces as f64)
}
