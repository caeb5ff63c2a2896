//! A quick summary table (no criterion): plain vs traced throughput and their ratio for each
//! loopback scenario, the socket-op recording cost (derived from traced runs with and without
//! `sock_trace`, and measured directly on the library's traced stream over memory), and the
//! memory kept per recorded request. See BENCHMARKS.md.
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
    pin::Pin,
    task::{Context, Poll, Waker},
    time::{Duration, Instant},
};

use http::Uri;
use nettrace::{bench_support::BenchStream, model::HttpTrace};
use tokio::io::{AsyncRead, AsyncWrite};

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
    let cost = op_cost(if quick { 1_000_000 } else { 4_000_000 });
    println!(
        "  direct, the library's traced stream over memory (no syscall): read that waited \
         (2 clock reads) {:.1} ns/op, write (1 clock read) {:.1} ns/op; byte totals only \
         {:.1} ns/op; {:.1} op logged per op",
        cost.read, cost.write, cost.totals, cost.logged
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

/// An in-memory stream: reads give 64 bytes, every other poll `Pending` first (as on a socket
/// that waits for data); writes take everything at once.
#[derive(Default)]
struct Memory {
    ready: bool,
}

impl AsyncRead for Memory {
    fn poll_read(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        this.ready = !this.ready;
        if !this.ready {
            return Poll::Pending;
        }
        buf.put_slice(&[0; 64]);
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Memory {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// Nanoseconds per operation over streams from `make`, a fresh one every 100,000 operations
/// (as a long connection's log grows): reads polled until ready, or writes.
fn ns_per_op<S>(make: impl Fn() -> S, ops: usize, reads: bool) -> f64
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut cx = Context::from_waker(Waker::noop());
    let chunk = 100_000;
    let mut data = [0u8; 64];
    let start = Instant::now();
    for _ in 0..ops / chunk {
        let mut stream = make();
        for _ in 0..chunk {
            if reads {
                for _ in 0..2 {
                    let mut buf = tokio::io::ReadBuf::new(&mut data);
                    if Pin::new(&mut stream)
                        .poll_read(&mut cx, &mut buf)
                        .is_ready()
                    {
                        break;
                    }
                }
            } else {
                let written = Pin::new(&mut stream).poll_write(&mut cx, &data);
                std::hint::black_box(written.is_ready());
            }
        }
        std::hint::black_box(&stream);
    }
    start.elapsed().as_secs_f64() * 1e9 / (ops / chunk * chunk) as f64
}

/// What recording one socket operation costs, on the library's own traced stream
/// (`nettrace::bench_support::BenchStream`, the wrapper the connector puts on a TCP
/// connection) over [`Memory`]: no syscall and no runtime, so the difference is the recording.
struct OpCost {
    /// A read that waited (two polls, two clock reads), with `sock_trace`, minus without it.
    read: f64,
    /// A write done in its first poll (one clock read), with `sock_trace`, minus without it.
    write: f64,
    /// Byte totals only (`sock_trace` off) minus the bare stream, reads and writes averaged.
    totals: f64,
    /// Operations the traced stream logged per operation made (a check: 1.0).
    logged: f64,
}

fn op_cost(ops: usize) -> OpCost {
    let traced = || BenchStream::new(Memory::default(), true);
    let untraced = || BenchStream::new(Memory::default(), false);
    let bare = |reads| ns_per_op(Memory::default, ops, reads);
    let (bare_read, bare_write) = (bare(true), bare(false));
    let (totals_read, totals_write) = (
        ns_per_op(untraced, ops, true),
        ns_per_op(untraced, ops, false),
    );
    let read = ns_per_op(traced, ops, true) - totals_read;
    let write = ns_per_op(traced, ops, false) - totals_write;
    let mut check = traced();
    let mut cx = Context::from_waker(Waker::noop());
    let count = 1000;
    for _ in 0..count {
        let written = Pin::new(&mut check).poll_write(&mut cx, b"x");
        std::hint::black_box(written.is_ready());
    }
    OpCost {
        read,
        write,
        totals: (totals_read - bare_read + totals_write - bare_write) / 2.0,
        logged: check.ops_logged() as f64 / count as f64,
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
