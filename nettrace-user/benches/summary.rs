//! A quick summary table (no criterion): plain vs traced throughput and their ratio for each
//! loopback scenario, the socket-op recording cost derived from traced runs with and without
//! `sock_trace`, and the memory kept per recorded request. See BENCHMARKS.md.
//!
//! ```text
//! CARGO_TARGET_DIR=target/bench cargo bench -p nettrace-user --bench summary
//! CARGO_TARGET_DIR=target/bench cargo bench -p nettrace-user --bench summary -- --quick
//! ```
//!
//! Each scenario runs in rounds; a round times every client kind once, each on a fresh client
//! warmed by one untimed GET, in an order that alternates between rounds. Ratios and
//! differences are taken within a round (paired), then the median over rounds is reported,
//! so slow drift from other load on the machine cancels out.
mod common;

use std::{
    sync::{
        Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use http::Uri;
use nettrace::model::HttpTrace;

use common::{AnyClient, Conns, Kind, Timing};

/// One scenario of the table.
struct Scenario {
    name: &'static str,
    conns: Conns,
    path: String,
    /// Requests per client per round.
    requests: u64,
    /// Bytes per request for a bytes/s figure, `None` for requests/s.
    bytes: Option<usize>,
    /// The lowest traced/plain ratio accepted, if there is a target.
    target: Option<f64>,
}

/// Medians of one scenario (paired rounds).
struct Outcome {
    /// Requests (or bytes) per second.
    plain: f64,
    traced: f64,
    /// Traced over plain throughput (the median of the per-round ratios).
    ratio: f64,
    /// Process CPU time per request (µs).
    plain_cpu_us: f64,
    traced_cpu_us: f64,
    /// Traced minus traced-without-`sock_trace`, per request (ns), per round: wall, CPU.
    sock_delta_ns: Vec<(f64, f64)>,
    /// Socket operations recorded per request.
    ops_per_request: f64,
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let rounds = if quick { 5 } else { 21 };
    let scale = if quick { 4 } else { 1 };
    let rt = common::runtime();
    let server = rt.block_on(common::server());
    let scenarios = [
        Scenario {
            name: "keep-alive GET 1 KiB",
            conns: Conns::KeepAlive,
            path: format!("/bytes/{}", common::SMALL),
            requests: 6000 / scale,
            bytes: None,
            target: Some(0.95),
        },
        Scenario {
            name: "new connection per GET 1 KiB",
            conns: Conns::NewPerRequest,
            path: format!("/bytes/{}", common::SMALL),
            requests: 1200 / scale,
            bytes: None,
            target: None,
        },
        Scenario {
            name: "download 1 MiB",
            conns: Conns::KeepAlive,
            path: format!("/bytes/{}", common::LARGE),
            requests: 120 / scale,
            bytes: Some(common::LARGE),
            target: None,
        },
    ];
    println!("nettrace client benchmarks: loopback, plain HTTP/1.1, {rounds} paired rounds");
    println!(
        "{:<29} {:>15} {:>15} {:>6} {:>9} | {:>19} {:>6}",
        "scenario", "plain", "traced", "ratio", "target", "CPU us/req pl / tr", "ratio"
    );
    let mut outcomes = Vec::new();
    for scenario in &scenarios {
        let url = common::url(&server, &scenario.path);
        let outcome = rt.block_on(run(scenario, &url, rounds));
        let (unit, div) = match scenario.bytes {
            Some(_) => ("MiB/s", (1 << 20) as f64),
            None => ("req/s", 1.0),
        };
        let target = scenario.target.map_or_else(
            || "-".to_string(),
            |t| format!("{} {t:.2}", if outcome.ratio >= t { "met" } else { "MISS" }),
        );
        println!(
            "{:<29} {:>9.0} {unit} {:>9.0} {unit} {:>6.3} {:>9} | {:>9.1} / {:>7.1} {:>6.3}",
            scenario.name,
            outcome.plain / div,
            outcome.traced / div,
            outcome.ratio,
            target,
            outcome.plain_cpu_us,
            outcome.traced_cpu_us,
            outcome.plain_cpu_us / outcome.traced_cpu_us,
        );
        outcomes.push((scenario, outcome));
    }
    println!();
    println!(
        "socket-op recording, public API: per request, traced minus traced without sock_trace \
         (paired rounds), divided by the ops recorded per request; median [IQR]; target <= 100 ns/op"
    );
    for (scenario, outcome) in &outcomes {
        if outcome.sock_delta_ns.is_empty() {
            continue;
        }
        let per_op = |values: Vec<f64>| {
            let (lo, mid, hi) = quartiles(&values);
            let ops = outcome.ops_per_request;
            format!("{:.0} ns/op [{:.0}..{:.0}]", mid / ops, lo / ops, hi / ops)
        };
        let wall = outcome.sock_delta_ns.iter().map(|d| d.0).collect();
        let cpu = outcome.sock_delta_ns.iter().map(|d| d.1).collect();
        println!(
            "  {:<27} {:>5.1} ops/req   wall: {:<26} CPU: {}",
            scenario.name,
            outcome.ops_per_request,
            per_op(wall),
            per_op(cpu),
        );
    }
    let model = recording_model(if quick { 1_000_000 } else { 4_000_000 });
    println!(
        "  in-process model of the recording step (not the library's code): 2 clock reads \
         {:.1} ns, + mutex push into a reserved log {:.1} ns, + growing log {:.1} ns/op; \
         byte counter only {:.1} ns/op",
        model.clocks, model.reserved, model.growing, model.counter
    );
    println!();
    let small = common::url(&server, &format!("/bytes/{}", common::SMALL));
    rt.block_on(memory(&small, if quick { 5_000 } else { 20_000 }));
    drop(server);
}

/// Runs the paired rounds of one scenario.
async fn run(scenario: &Scenario, url: &Uri, rounds: usize) -> Outcome {
    let mut kinds = vec![Kind::Plain, Kind::Traced];
    if scenario.bytes.is_none() && scenario.conns == Conns::KeepAlive {
        // Many requests, few bytes: the scenario where socket ops weigh the most.
        kinds.push(Kind::TracedNoSockOps);
    }
    let requests = scenario.requests;
    let per_request = |d: Duration| d.as_secs_f64() / requests as f64;
    let rate = |d: Duration| scenario.bytes.unwrap_or(1) as f64 / per_request(d);
    let (mut ratios, mut plain, mut traced) = (Vec::new(), Vec::new(), Vec::new());
    let (mut plain_cpu, mut traced_cpu) = (Vec::new(), Vec::new());
    let mut sock_delta_ns = Vec::new();
    for round in 0..rounds {
        // Alternate the order so neither kind always runs first.
        let mut order = kinds.clone();
        if round % 2 == 1 {
            order.reverse();
        }
        let mut t = [Timing::default(); 3];
        for kind in order {
            t[kind as usize] = common::sample(kind, scenario.conns, url.clone(), requests).await;
        }
        let [p, tr, nosock] = t;
        plain.push(rate(p.wall));
        traced.push(rate(tr.wall));
        ratios.push(p.wall.as_secs_f64() / tr.wall.as_secs_f64());
        plain_cpu.push(per_request(p.cpu) * 1e6);
        traced_cpu.push(per_request(tr.cpu) * 1e6);
        if kinds.contains(&Kind::TracedNoSockOps) {
            let delta = |a: Duration, b: Duration| (per_request(a) - per_request(b)) * 1e9;
            sock_delta_ns.push((delta(tr.wall, nosock.wall), delta(tr.cpu, nosock.cpu)));
        }
    }
    let ops_per_request = if sock_delta_ns.is_empty() {
        0.0
    } else {
        ops_per_request(scenario.conns, url, requests).await
    };
    Outcome {
        plain: quartiles(&plain).1,
        traced: quartiles(&traced).1,
        ratio: quartiles(&ratios).1,
        plain_cpu_us: quartiles(&plain_cpu).1,
        traced_cpu_us: quartiles(&traced_cpu).1,
        sock_delta_ns,
        ops_per_request,
    }
}

/// Socket operations the traced client records per request, counted in its trace after
/// `requests` GETs (warm-up GET and its connect excluded by a clear).
async fn ops_per_request(conns: Conns, url: &Uri, requests: u64) -> f64 {
    let url = url.clone();
    common::on_worker(async move {
        let client = AnyClient::new(Kind::Traced, conns);
        client.get(&url).await;
        let traced = client.traced_client().expect("traced");
        let (before, _) = traced.get_trace("before").expect("trace");
        for _ in 0..requests {
            client.get(&url).await;
        }
        let (after, _) = traced.get_trace("after").expect("trace");
        (socket_ops(&after) - socket_ops(&before)) as f64 / requests as f64
    })
    .await
}

/// Per-op costs of the recording-step model (ns).
struct Model {
    clocks: f64,
    reserved: f64,
    growing: f64,
    counter: f64,
}

/// The recording step of a traced stream, re-created outside the library (which keeps it
/// private): two clock reads and a push of a 48-byte op record under an uncontended mutex,
/// into a log with room reserved, or growing as the library's does. A stand-in until the
/// library exposes its own (see BENCHMARKS.md).
fn recording_model(ops: usize) -> Model {
    #[allow(dead_code)]
    struct Op {
        op_type: u8,
        call_at: Instant,
        return_at: Instant,
        error: Option<Box<str>>,
        data_len: u32,
    }
    let chunk = 100_000;
    let per_op = |start: Instant| start.elapsed().as_secs_f64() * 1e9 / ops as f64;
    let run = |reserve: bool, push: bool| {
        let start = Instant::now();
        for _ in 0..ops / chunk {
            let log = Mutex::new(Vec::with_capacity(if reserve { chunk } else { 0 }));
            for i in 0..chunk {
                let call_at = Instant::now();
                let op = Op {
                    op_type: 1,
                    call_at,
                    return_at: Instant::now(),
                    error: None,
                    data_len: i as u32,
                };
                if push {
                    log.lock().expect("log").push(op);
                } else {
                    std::hint::black_box(op);
                }
            }
            std::hint::black_box(log);
        }
        per_op(start)
    };
    let clocks = run(true, false);
    let reserved = run(true, true);
    let growing = run(false, true);
    let counter = AtomicU64::new(0);
    let start = Instant::now();
    for i in 0..ops {
        counter.fetch_add(std::hint::black_box(i as u64), Ordering::Relaxed);
    }
    std::hint::black_box(counter);
    Model {
        clocks,
        reserved,
        growing,
        counter: per_op(start),
    }
}

/// Memory kept per recorded keep-alive request: JSON size of the trace, and the RSS growth
/// of `n` requests with the traced client minus that with the plain client (the fixture
/// server's own request log grows by the same amount in both).
async fn memory(url: &Uri, n: u64) {
    let url = url.clone();
    common::on_worker(async move {
        let mut rss = [0i64; 2];
        for (slot, kind) in [Kind::Plain, Kind::Traced].into_iter().enumerate() {
            let client = AnyClient::new(kind, Conns::KeepAlive);
            client.get(&url).await;
            let before = rss_kib();
            for _ in 0..n {
                client.get(&url).await;
            }
            rss[slot] = rss_kib() - before;
            let Some(traced) = client.traced_client() else {
                continue;
            };
            let (trace, _) = traced.get_trace("memory").expect("trace");
            let json = serde_json::to_vec(&trace).expect("JSON").len();
            println!(
                "memory per recorded keep-alive request ({n} requests in one trace): JSON {:.0} B, \
                 RSS {:.0} B (growth: traced {} KiB - plain {} KiB)",
                json as f64 / n as f64,
                (rss[1] - rss[0]) as f64 * 1024.0 / n as f64,
                rss[1],
                rss[0]
            );
            let before = socket_ops(&trace);
            traced.clear_trace().expect("clear");
            client.get(&url).await;
            let (trace, _) = traced.get_trace("after clear").expect("trace");
            println!(
                "clear_trace, then 1 GET on the kept connection: {} socket ops in the new trace \
                 ({before} were in the trace before the clear)",
                socket_ops(&trace)
            );
        }
    })
    .await;
}

/// Socket operations in a trace.
fn socket_ops(trace: &HttpTrace) -> usize {
    trace
        .net_trace
        .tcp_conns
        .iter()
        .filter_map(|c| c.socket_trace.as_ref())
        .map(|s| s.socket_ops.len())
        .sum()
}

/// The process's resident set size (KiB), from /proc/self/status.
fn rss_kib() -> i64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Lower quartile, median and upper quartile.
fn quartiles(values: &[f64]) -> (f64, f64, f64) {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let at = |q: f64| sorted[((sorted.len() - 1) as f64 * q).round() as usize];
    (at(0.25), at(0.5), at(0.75))
}
