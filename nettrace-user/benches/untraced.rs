//! Cost of the kernel programs for traffic that is not traced, in the three states a machine
//! is in: nothing registered at all, something else registered (another socket and its flow),
//! and for comparison the measured socket itself traced. Needs root (prints SKIPPED
//! otherwise).
//!
//! ```text
//! CARGO_TARGET_DIR=target/bench cargo bench -p nettrace-user --bench untraced
//! ```
//!
//! Method: the programs are loaded and the TC classifier attached to `lo` egress (every
//! loopback packet passes there once). Per state, 200,000 `send()` calls of 64 B (TCP_NODELAY,
//! so one packet each) on a fresh loopback connection; the kernel's run statistics
//! (`BPF_ENABLE_STATS`: run count and run time per program, which include two clock reads per
//! run) give ns per run of `sock_send_length` and of the TC program. When `bpftool` is
//! installed, `bpftool prog show name nettrace_sock_send_length` (`run_time_ns`, `run_cnt`)
//! is read around each state too, as a cross-check of the same counters.
use std::{
    collections::HashMap,
    io::{Read, Write},
    net::{TcpListener, TcpStream},
    thread,
    time::Duration,
};

use nettrace::{
    SocketCookie,
    capture::DEFAULT_SNAPLEN,
    kernel::{
        CaptureInterfaceInfo, ClientId, KernelConfig, KernelTracer, ProgramStats, enable_run_stats,
    },
};
use nettrace_common::{CaptureClient, capture_flags, program_name, socket_flags};

/// `send()` calls per state.
const SENDS: usize = 200_000;

fn stats(tracer: &KernelTracer) -> HashMap<String, (u64, Duration)> {
    tracer
        .program_stats()
        .expect("program statistics")
        .into_iter()
        .map(
            |ProgramStats {
                 name,
                 run_count,
                 run_time,
             }| (name, (run_count, run_time)),
        )
        .collect()
}

/// Runs and ns per run of `name` between two readings.
fn per_run(
    before: &HashMap<String, (u64, Duration)>,
    after: &HashMap<String, (u64, Duration)>,
    name: &str,
) -> (u64, f64) {
    let (c0, t0) = before.get(name).copied().unwrap_or_default();
    let (c1, t1) = after.get(name).copied().unwrap_or_default();
    let runs = c1 - c0;
    (runs, (t1 - t0).as_nanos() as f64 / runs.max(1) as f64)
}

/// `(run_cnt, run_time_ns)` of program `name` as `bpftool prog show` prints them, if bpftool
/// is installed (several programs of the name, from other tracers, are summed).
fn bpftool_counts(name: &str) -> Option<(u64, u64)> {
    let output = std::process::Command::new("bpftool")
        .args(["prog", "show", "name", name])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&output.stdout);
    let words: Vec<&str> = text.split_whitespace().collect();
    let value = |key: &str| -> u64 {
        words
            .windows(2)
            .filter(|pair| pair[0] == key)
            .filter_map(|pair| pair[1].parse::<u64>().ok())
            .sum()
    };
    output
        .status
        .success()
        .then(|| (value("run_cnt"), value("run_time_ns")))
}

fn socket() -> socket2::Socket {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.set_tcp_nodelay(true).unwrap();
    socket
}

/// `SENDS` small writes from `socket` to a reader thread over loopback.
fn burst(listener: &TcpListener, socket: socket2::Socket) {
    let addr = listener.local_addr().unwrap();
    let listener = listener.try_clone().unwrap();
    let server = thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        let mut buf = vec![0u8; 1 << 16];
        while let Ok(n) = stream.read(&mut buf) {
            if n == 0 {
                break;
            }
        }
    });
    socket.connect(&addr.into()).unwrap();
    let mut stream: TcpStream = socket.into();
    for _ in 0..SENDS {
        stream.write_all(&[0u8; 64]).unwrap();
    }
    drop(stream);
    server.join().unwrap();
}

fn main() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("SKIPPED untraced benchmark: needs root to load eBPF programs");
        return;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let _guard = runtime.enter();
    // The rings are not read: the traced state's events are dropped once they are full,
    // which the statistics count as runs like any other.
    let (tracer, _events, _packets) =
        KernelTracer::load_with_packets(&KernelConfig::default()).unwrap();
    let _stats = enable_run_stats().expect("BPF_ENABLE_STATS");
    let lo = CaptureInterfaceInfo::lookup("lo").unwrap();
    let links = tracer.attach_capture(&lo).unwrap();
    let client = ClientId(1);
    tracer
        .set_capture_client(
            client,
            CaptureClient {
                snaplen: DEFAULT_SNAPLEN,
                flags: capture_flags::TCP_PAYLOAD,
            },
        )
        .unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let mut rows = Vec::new();
    let mut measure = |state: &str, socket: socket2::Socket| {
        let tool_before = bpftool_counts(program_name::SOCK_SEND_LENGTH);
        let before = stats(&tracer);
        burst(&listener, socket);
        let after = stats(&tracer);
        let tool = tool_before
            .zip(bpftool_counts(program_name::SOCK_SEND_LENGTH))
            .map(|((c0, t0), (c1, t1))| (t1 - t0) as f64 / (c1 - c0).max(1) as f64);
        rows.push((
            state.to_owned(),
            per_run(&before, &after, program_name::SOCK_SEND_LENGTH),
            per_run(&before, &after, program_name::TC_ETHERNET_EGRESS),
            tool,
        ));
    };

    measure("untraced, nothing registered", socket());

    // Another socket registered for capture, connected (so its flow is in the flow map),
    // left idle while the measured connection runs.
    let other_listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let other = socket();
    let other_cookie = SocketCookie::of(&other).unwrap();
    tracer
        .register_with_flags(other_cookie, client, socket_flags::CAPTURE)
        .unwrap();
    other
        .connect(&other_listener.local_addr().unwrap().into())
        .unwrap();
    measure("untraced, another socket traced", socket());
    tracer.unregister(other_cookie).unwrap();
    drop(other);

    let traced = socket();
    let cookie = SocketCookie::of(&traced).unwrap();
    tracer
        .register_with_flags(cookie, client, socket_flags::CAPTURE)
        .unwrap();
    measure("traced (event + packet copy)", traced);
    tracer.unregister(cookie).unwrap();
    tracer.detach_capture(links);

    println!("kernel run statistics, {SENDS} send() calls of 64 B per state");
    println!(
        "{:<34} {:>9} {:>9}   {:>9} {:>9}   {:>14}",
        "state", "send runs", "ns/run", "tc runs", "ns/run", "bpftool send"
    );
    for (state, (send_runs, send_ns), (tc_runs, tc_ns), tool) in rows {
        let tool = tool.map_or("no bpftool".to_owned(), |ns| format!("{ns:.1}"));
        println!(
            "{state:<34} {send_runs:>9} {send_ns:>9.1}   {tc_runs:>9} {tc_ns:>9.1}   {tool:>14}"
        );
    }
}
