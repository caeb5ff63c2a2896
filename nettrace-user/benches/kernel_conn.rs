//! What kernel tracing adds per new connection (issue 16): plain client, traced client with
//! the kernel off, and traced with the kernel on, each making sequential GETs of 1 KiB with a
//! new TCP connection per request (or, with `NETTRACE_KCONN_CONNS=keep-alive`, on one kept
//! connection). Needs root for the kernel kind (prints SKIPPED otherwise).
//!
//! ```text
//! CARGO_TARGET_DIR=target/bench cargo bench -p nettrace-user --bench kernel_conn
//! # rounds and requests per kind per round (defaults 15 and 600):
//! NETTRACE_KCONN_ROUNDS=7 NETTRACE_KCONN_ROUND_REQUESTS=3000 target/bench/release/deps/kernel_conn-<hash> --bench
//! # one kind alone, for counting tools (strace -c, perf trace -s) run around the binary:
//! NETTRACE_KCONN_KIND=traced_kernel NETTRACE_KCONN_REQUESTS=2000 target/bench/release/deps/kernel_conn-<hash>
//! # the fixture server in a process of its own (this binary again), so that the process CPU
//! # is the client's alone; the server's is read from /proc and shown beside it:
//! NETTRACE_KCONN_SERVER=process target/bench/release/deps/kernel_conn-<hash> --bench
//! # every round's figures appended to a file, to pool the rounds of several runs:
//! NETTRACE_KCONN_SAMPLES=rounds.txt NETTRACE_KCONN_SERVER=process target/bench/release/deps/kernel_conn-<hash> --bench
//! # the same kinds on one kept-alive connection each (the keep-alive target with the kernel on):
//! NETTRACE_KCONN_CONNS=keep-alive NETTRACE_KCONN_ROUND_REQUESTS=6000 target/bench/release/deps/kernel_conn-<hash> --bench
//! ```
//!
//! Paired rounds as in `summary`: each round times every kind once on a fresh client (warmed
//! by one untimed GET), in an order that alternates between rounds; the figures are medians
//! over rounds of process CPU time per request (`CLOCK_PROCESS_CPUTIME_ID`: client, server and
//! the kernel thread together, which the machine's other load disturbs less than wall time),
//! and of the per-round differences and ratios.
//!
//! With the server in-process, its sockets' runs of the programs (each program checks every
//! socket) count as the client's. With `NETTRACE_KCONN_SERVER=process` they do not, but on
//! loopback the receiving side's softirq work runs in the sender's context, so part of the
//! client socket's receive path (and the programs it runs) is then charged to the server: the
//! two modes bracket the client's own cost. Then one kernel client's trace is read to
//! count what the kernel reported per connection (state changes, send/receive calls).
mod common;

use std::{
    io::{BufRead, Read, Write},
    process::{Child, Command, Stdio},
    time::Duration,
};

use common::{AnyClient, Conns, Kind, Timing};
use nettrace_tests::{
    cpu::{self, Process},
    fixtures::http::HttpServer,
};

/// Set in the child process that serves the fixture (`NETTRACE_KCONN_SERVER=process`).
const SERVE_ENV: &str = "NETTRACE_KCONN_SERVE";

/// New connections per GET (the default) or one kept-alive connection
/// (`NETTRACE_KCONN_CONNS=keep-alive`, for the issue's keep-alive target with the kernel on).
fn conns() -> Conns {
    match std::env::var("NETTRACE_KCONN_CONNS").as_deref() {
        Ok("keep-alive") => Conns::KeepAlive,
        Ok("new") | Err(_) => Conns::NewPerRequest,
        Ok(other) => panic!("NETTRACE_KCONN_CONNS: new or keep-alive, not {other:?}"),
    }
}

/// What one request of `conns` is, for the printed lines.
fn unit(conns: Conns) -> (&'static str, &'static str) {
    match conns {
        Conns::KeepAlive => ("keep-alive GET 1 KiB", "request"),
        Conns::NewPerRequest => ("new connection per GET 1 KiB", "connection"),
    }
}

/// Requests per kind per round, unless `NETTRACE_KCONN_ROUND_REQUESTS` says otherwise.
const REQUESTS: u64 = 600;

/// Requests per kind per round (more show whether a cost is per round or per connection).
fn requests() -> u64 {
    std::env::var("NETTRACE_KCONN_ROUND_REQUESTS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(REQUESTS)
}

/// Where the fixture server runs.
enum Server {
    /// Held only to keep it serving.
    InProcess { _running: HttpServer },
    /// This binary again, serving until its stdin closes.
    Child(Child),
}

impl Server {
    fn start(rt: &tokio::runtime::Runtime) -> (Self, http::Uri) {
        if std::env::var("NETTRACE_KCONN_SERVER").as_deref() != Ok("process") {
            let server = rt.block_on(common::server());
            let url = common::url(&server, &format!("/bytes/{}", common::SMALL));
            return (Self::InProcess { _running: server }, url);
        }
        let mut child = Command::new(std::env::current_exe().expect("this binary"))
            .env(SERVE_ENV, "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("server process");
        let mut line = String::new();
        let stdout = child.stdout.take().expect("server stdout");
        std::io::BufReader::new(stdout)
            .read_line(&mut line)
            .expect("server URL");
        let url = line.trim().parse().expect("server URL");
        (Self::Child(child), url)
    }

    /// The server process's CPU time so far (zero in-process: it is in the client's). Read
    /// around a whole sample, so it includes the client's one untimed warm-up GET.
    fn cpu(&self) -> Duration {
        match self {
            Self::InProcess { .. } => Duration::ZERO,
            Self::Child(child) => cpu::process(Process::Id(child.id())),
        }
    }
}

impl Drop for Server {
    /// Closes the child's stdin (it then stops serving) and waits for it, on any way out.
    fn drop(&mut self) {
        if let Self::Child(child) = self {
            drop(child.stdin.take());
            let _ = child.wait();
        }
    }
}

/// The child's part: serve, print the URL, wait for the parent to close stdin.
fn serve(rt: &tokio::runtime::Runtime) {
    let server = rt.block_on(common::server());
    let url = common::url(&server, &format!("/bytes/{}", common::SMALL));
    println!("{url}");
    let _ = std::io::stdout().flush();
    let _ = std::io::stdin().read_to_end(&mut Vec::new());
    drop(server);
}

fn main() {
    let rt = common::runtime();
    if std::env::var_os(SERVE_ENV).is_some() {
        serve(&rt);
        return;
    }
    let (server, url) = Server::start(&rt);
    let root = nix_is_root();
    let conns = conns();
    let (what, per) = unit(conns);
    if let Ok(name) = std::env::var("NETTRACE_KCONN_KIND") {
        let kind = [Kind::Plain, Kind::Traced, Kind::TracedKernel]
            .into_iter()
            .find(|k| k.name() == name)
            .expect("NETTRACE_KCONN_KIND: plain, traced or traced_kernel");
        let requests = std::env::var("NETTRACE_KCONN_REQUESTS")
            .ok()
            .and_then(|n| n.parse().ok())
            .unwrap_or(2000);
        let t = rt.block_on(common::sample(kind, conns, url, requests));
        println!(
            "{name}: {requests} x {what}, {:.2} us CPU/req, {:.2} us wall/req",
            per_request(t.cpu, requests),
            per_request(t.wall, requests)
        );
        drop(server);
        return;
    }
    if !root {
        eprintln!("SKIPPED kernel_conn benchmark: needs root to load eBPF programs");
        drop(server);
        return;
    }
    let per_round = requests();
    let rounds: usize = std::env::var("NETTRACE_KCONN_ROUNDS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(15);
    let kinds = [Kind::Plain, Kind::Traced, Kind::TracedKernel];
    let mut cpu: [Vec<f64>; 3] = Default::default();
    let mut wall: [Vec<f64>; 3] = Default::default();
    let (mut added, mut ratio_off, mut ratio_on) = (Vec::new(), Vec::new(), Vec::new());
    let mut hub = Vec::new();
    let mut server_cpu: [Vec<f64>; 3] = Default::default();
    let mut server_added = Vec::new();
    for round in 0..rounds {
        let mut order = kinds.to_vec();
        if round % 2 == 1 {
            order.reverse();
        }
        let mut t = [Timing::default(); 3];
        let mut served = [0.0; 3];
        for kind in order {
            let slot = slot(kind);
            let before = server.cpu();
            t[slot] = rt.block_on(common::sample(kind, conns, url.clone(), per_round));
            served[slot] = per_request(server.cpu().saturating_sub(before), per_round);
            server_cpu[slot].push(served[slot]);
            cpu[slot].push(per_request(t[slot].cpu, per_round));
            wall[slot].push(per_request(t[slot].wall, per_round));
        }
        let us = |i: usize| per_request(t[i].cpu, per_round);
        added.push(us(2) - us(1));
        server_added.push(served[2] - served[1]);
        hub.push(per_request(t[2].hub_cpu, per_round));
        ratio_off.push(us(0) / us(1));
        ratio_on.push(us(0) / us(2));
    }
    if let Some(path) = std::env::var_os("NETTRACE_KCONN_SAMPLES") {
        append_rounds(&path, &added, &ratio_on, &hub);
    }
    let external = matches!(server, Server::Child(_));
    println!(
        "{what}, {rounds} paired rounds of {per_round} requests; \
         medians [IQR] of process CPU per request (server {})",
        if external {
            "in a process of its own: the client's CPU alone"
        } else {
            "in-process: counted with the client"
        }
    );
    for kind in kinds {
        let slot = slot(kind);
        println!(
            "  {:<14} CPU {}  wall {}",
            kind.name(),
            show(&cpu[slot], "us"),
            show(&wall[slot], "us")
        );
    }
    let (ratio_target, added_target) = match conns {
        Conns::KeepAlive => ("target >= 0.93 with the kernel on", ""),
        Conns::NewPerRequest => ("target >= 0.85 with the kernel on", " (target <= 3 us)"),
    };
    println!(
        "  CPU ratio plain/traced: kernel off {}, kernel on {} ({ratio_target})",
        show(&ratio_off, ""),
        show(&ratio_on, "")
    );
    println!(
        "  kernel on minus kernel off: {} CPU per {per}{added_target}",
        show(&added, "us")
    );
    println!(
        "  of kernel on, the hub thread (nettrace-kernel): {} CPU per {per}",
        show(&hub, "us")
    );
    if external {
        let [plain, off, on] = &server_cpu;
        println!(
            "  server process CPU per request: plain {}, kernel off {}, kernel on {}; \
             kernel on minus off {}",
            show(plain, "us"),
            show(off, "us"),
            show(on, "us"),
            show(&server_added, "us")
        );
    }
    rt.block_on(kernel_facts(&url));
    drop(server);
}

/// Appends one line per round to the file at `path` (kernel on minus off in µs, the CPU
/// ratio plain / kernel on, the hub's µs), so that the rounds of several runs can be pooled:
/// a run's median of 101 rounds moves by a microsecond or two on this host.
fn append_rounds(path: &std::ffi::OsStr, added: &[f64], ratio_on: &[f64], hub: &[f64]) {
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .expect("opening NETTRACE_KCONN_SAMPLES");
    for ((added, ratio), hub) in added.iter().zip(ratio_on).zip(hub) {
        writeln!(file, "{added:.3} {ratio:.4} {hub:.3}").expect("writing NETTRACE_KCONN_SAMPLES");
    }
}

/// Counts what the kernel reported per connection in one kernel client's trace.
async fn kernel_facts(url: &http::Uri) {
    let url = url.clone();
    common::on_worker(async move {
        let client = AnyClient::new(Kind::TracedKernel, Conns::NewPerRequest);
        client.get(&url).await;
        client.clear();
        let n = 200;
        for _ in 0..n {
            client.get(&url).await;
        }
        let traced = client.traced_client().expect("traced");
        // Let the last connections reach CLOSE (bounded: 100 tries of 10 ms).
        let mut trace = None;
        for _ in 0..100 {
            let (t, _) = traced.get_trace("facts").expect("trace");
            let closed = t
                .net_trace
                .tcp_conns
                .iter()
                .filter(|c| {
                    c.kernel
                        .as_ref()
                        .is_some_and(|k| k.states.last().is_some_and(|s| s.to == "close"))
                })
                .count();
            let done = closed >= n;
            trace = Some(t);
            if done {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let Some(trace) = trace else { return };
        let conns = &trace.net_trace.tcp_conns;
        let facts: Vec<_> = conns.iter().filter_map(|c| c.kernel.as_ref()).collect();
        let per = |f: &dyn Fn(&nettrace::model::KernelTcpFacts) -> u64| {
            facts.iter().map(|k| f(k)).sum::<u64>() as f64 / facts.len().max(1) as f64
        };
        println!(
            "kernel facts of {} connections ({} with facts): per connection {:.2} state changes, \
             {:.2} send calls, {:.2} receive calls ({:.2} would block), {:.2} retransmits",
            conns.len(),
            facts.len(),
            per(&|k| k.states.len() as u64),
            per(&|k| u64::from(k.calls.send_calls)),
            per(&|k| u64::from(k.calls.recv_calls)),
            per(&|k| u64::from(k.calls.would_block)),
            per(&|k| u64::from(k.retransmits)),
        );
    })
    .await;
}

fn slot(kind: Kind) -> usize {
    match kind {
        Kind::Plain => 0,
        Kind::TracedKernel => 2,
        _ => 1,
    }
}

fn per_request(d: Duration, n: u64) -> f64 {
    d.as_secs_f64() * 1e6 / n as f64
}

fn show(values: &[f64], unit: &str) -> String {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let at = |q: f64| sorted[((sorted.len() - 1) as f64 * q).round() as usize];
    format!("{:.3}{unit} [{:.3}..{:.3}]", at(0.5), at(0.25), at(0.75))
}

fn nix_is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}
