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
    net::SocketAddr,
    sync::Mutex,
    time::{Duration, Instant},
};

use http::Uri;

use common::{AnyClient, Conns, Kind};

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

/// Medians of one scenario.
struct Outcome {
    plain: f64,
    traced: f64,
    ratio: f64,
    /// Per request: traced minus traced-without-`sock_trace` (ns), per round.
    sock_delta_ns: Vec<f64>,
    /// Socket operations recorded per request.
    ops_per_request: f64,
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let rounds = if quick { 5 } else { 15 };
    let scale = if quick { 2 } else { 1 };
    let rt = common::runtime();
    let server = rt.block_on(common::server());
    let scenarios = [
        Scenario {
            name: "keep-alive GET 1 KiB",
            conns: Conns::KeepAlive,
            path: format!("/bytes/{}", common::SMALL),
            requests: 3000 / scale,
            bytes: None,
            target: Some(0.95),
        },
        Scenario {
            name: "new connection per GET 1 KiB",
            conns: Conns::NewPerRequest,
            path: format!("/bytes/{}", common::SMALL),
            requests: 600 / scale,
            bytes: None,
            target: None,
        },
        Scenario {
            name: "download 1 MiB",
            conns: Conns::KeepAlive,
            path: format!("/bytes/{}", common::LARGE),
            requests: 60 / scale,
            bytes: Some(common::LARGE),
            target: None,
        },
    ];
    println!("nettrace client benchmarks: loopback, plain HTTP/1.1, {rounds} paired rounds");
    println!(
        "{:<30} {:>14} {:>14} {:>7} {:>8}",
        "scenario", "plain", "traced", "ratio", "target"
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
            |t| format!("{}{t:.2}", if outcome.ratio >= t { ">=" } else { "FAIL " }),
        );
        println!(
            "{:<30} {:>8.0} {unit} {:>8.0} {unit} {:>7.3} {:>8}",
            scenario.name,
            outcome.plain / div,
            outcome.traced / div,
            outcome.ratio,
            target
        );
        outcomes.push((scenario, outcome));
    }
    println!();
    println!("socket-op recording (traced minus traced without sock_trace, paired rounds):");
    for (scenario, outcome) in &outcomes {
        if outcome.sock_delta_ns.is_empty() {
            continue;
        }
        let (lo, mid, hi) = quartiles(&outcome.sock_delta_ns);
        let per_op = |ns: f64| ns / outcome.ops_per_request;
        println!(
            "  {:<28} {:>5.1} ops/req, delta/req median {:>7.0} ns (IQR {:.0}..{:.0}) \
             => {:>6.0} ns/op (IQR {:.0}..{:.0}), target <= 100",
            scenario.name,
            outcome.ops_per_request,
            mid,
            lo,
            hi,
            per_op(mid),
            per_op(lo),
            per_op(hi)
        );
    }
    let (record_ns, count_ns) = recording_model(if quick { 1_000_000 } else { 4_000_000 });
    println!(
        "  in-process model of the recording step (2 clock reads + mutex push of a 96-byte op; \
         not the library's code): {record_ns:.1} ns/op; byte counter only: {count_ns:.1} ns/op"
    );
    println!();
    let small = common::url(&server, &format!("/bytes/{}", common::SMALL));
    rt.block_on(memory(&small, if quick { 5_000 } else { 20_000 }));
    drop(server);
}

/// Runs the paired rounds of one scenario.
async fn run(scenario: &Scenario, url: &Uri, rounds: usize) -> Outcome {
    let mut kinds = vec![Kind::Plain, Kind::Traced];
    if scenario.conns == Conns::KeepAlive {
        kinds.push(Kind::TracedNoSockOps);
    }
    let requests = scenario.requests;
    let mut ratios = Vec::new();
    let mut plain = Vec::new();
    let mut traced = Vec::new();
    let mut sock_delta_ns = Vec::new();
    for round in 0..rounds {
        if round % 2 == 1 {
            kinds.reverse();
        }
        let mut times = [Duration::ZERO; 3];
        for &kind in &kinds {
            let slot = kind as usize;
            times[slot] = common::sample(kind, scenario.conns, url.clone(), requests).await;
        }
        if round % 2 == 1 {
            kinds.reverse();
        }
        let rate =
            |d: Duration| requests as f64 * scenario.bytes.unwrap_or(1) as f64 / d.as_secs_f64();
        plain.push(rate(times[Kind::Plain as usize]));
        traced.push(rate(times[Kind::Traced as usize]));
        ratios.push(
            times[Kind::Plain as usize].as_secs_f64() / times[Kind::Traced as usize].as_secs_f64(),
        );
        if kinds.contains(&Kind::TracedNoSockOps) {
            let delta = times[Kind::Traced as usize].as_secs_f64()
                - times[Kind::TracedNoSockOps as usize].as_secs_f64();
            sock_delta_ns.push(delta * 1e9 / requests as f64);
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
        let count = |trace: &nettrace::model::HttpTrace| {
            trace
                .net_trace
                .tcp_conns
                .iter()
                .filter_map(|c| c.socket_trace.as_ref())
                .map(|s| s.socket_ops.len())
                .sum::<usize>()
        };
        (count(&after) - count(&before)) as f64 / requests as f64
    })
    .await
}

/// The recording step of a traced stream, re-created outside the library (the library keeps
/// it private): two clock reads and a push of an op record under an uncontended mutex.
fn recording_model(ops: usize) -> (f64, f64) {
    #[allow(dead_code)]
    struct Op {
        op_type: u8,
        call_at: Instant,
        return_at: Instant,
        error: Option<String>,
        remote: Option<SocketAddr>,
        data_len: u32,
    }
    let chunk = 100_000;
    let start = Instant::now();
    for _ in 0..ops / chunk {
        let log = Mutex::new(Vec::new());
        for i in 0..chunk {
            let call_at = Instant::now();
            let op = Op {
                op_type: 1,
                call_at,
                return_at: Instant::now(),
                error: None,
                remote: None,
                data_len: i as u32,
            };
            log.lock().expect("log").push(op);
        }
        std::hint::black_box(log);
    }
    let record = start.elapsed().as_secs_f64() * 1e9 / ops as f64;
    let counter = std::sync::atomic::AtomicU64::new(0);
    let start = Instant::now();
    for i in 0..ops {
        counter.fetch_add(
            std::hint::black_box(i as u64),
            std::sync::atomic::Ordering::Relaxed,
        );
    }
    std::hint::black_box(counter);
    let count = start.elapsed().as_secs_f64() * 1e9 / ops as f64;
    (record, count)
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
                 RSS {:.0} B (traced {} KiB - plain {} KiB)",
                json as f64 / n as f64,
                (rss[1] - rss[0]) as f64 * 1024.0 / n as f64,
                rss[1],
                rss[0]
            );
            traced.clear_trace().expect("clear");
            client.get(&url).await;
            let (trace, _) = traced.get_trace("after clear").expect("trace");
            let ops: usize = trace
                .net_trace
                .tcp_conns
                .iter()
                .filter_map(|c| c.socket_trace.as_ref())
                .map(|s| s.socket_ops.len())
                .sum();
            println!(
                "socket ops in the trace after clear_trace + 1 GET on the kept connection: {ops} \
                 (records of requests before the clear: {})",
                ops > 10
            );
        }
    })
    .await;
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
