//! Cost of the kernel programs for traffic that is not traced, in the three states a machine
//! is in: nothing registered at all, something else registered (another socket and its flow),
//! and for comparison the measured socket itself traced, with its calls counted in its entry
//! (the library's TCP sockets) and with a record per call (a daemon client's). Needs root
//! (prints SKIPPED otherwise).
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
//! is read around each state too, as a cross-check of the same counters. A thread reads both
//! rings while the traced states run, as a tracer does, so that a traced run copies its record
//! out: left unread,
//! the event ring (256 KiB) is full after about 5,000 records of a state's 200,000 sends and
//! the packet ring (4 MiB) after about 13,000 packets, and the later runs would measure the
//! cheaper path of a full ring. The records read and the kernel's lost counts are
//! printed, so a run where the reader fell behind shows.
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsFd;
use std::sync::{
    Arc,
    atomic::{AtomicBool, Ordering},
};
use std::thread::JoinHandle;
use std::time::Duration;

use kernel_support::{Stats, cost, stats, tcp_socket};
use nettrace::kernel::{ClientId, KernelConfig, KernelEvents, KernelTracer, enable_run_stats};
use nettrace_common::{program_name, socket_flags};

mod kernel_support;

/// `send()` calls per state.
const SENDS: usize = 200_000;

/// Runs and ns per run of `name` between two readings.
fn per_run(before: &Stats, after: &Stats, name: &str) -> (u64, f64) {
    cost(before, after, |n| n == name)
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

/// Reads `rings` until `stop`; how many records each gave.
fn read_rings(mut rings: [KernelEvents; 2], stop: Arc<AtomicBool>) -> JoinHandle<[usize; 2]> {
    std::thread::spawn(move || {
        let mut read = [0; 2];
        while !stop.load(Ordering::Relaxed) {
            let mut found = 0;
            for (ring, count) in rings.iter_mut().zip(&mut read) {
                let records = ring.drain().len();
                *count += records;
                found += records;
            }
            if found == 0 {
                // A poll, not a synchronisation: the rings hold megabytes, far more than
                // arrives in this pause.
                std::thread::sleep(Duration::from_micros(100));
            }
        }
        read
    })
}

fn socket() -> socket2::Socket {
    tcp_socket(true)
}

/// `SENDS` small writes from `socket` to a reader thread over loopback.
fn burst(listener: &TcpListener, socket: socket2::Socket) {
    let server = kernel_support::receiver(listener, 1 << 16);
    socket
        .connect(&listener.local_addr().unwrap().into())
        .unwrap();
    let mut stream: TcpStream = socket.into();
    kernel_support::small_sends(&mut stream, SENDS);
    drop(stream);
    server.join().unwrap();
}

fn main() {
    if !kernel_support::is_root_or_skip("untraced") {
        return;
    }
    let runtime = kernel_support::runtime();
    let _guard = runtime.enter();
    let (tracer, events, packets) =
        KernelTracer::load_with_packets(&KernelConfig::default()).unwrap();
    let _stats = enable_run_stats().expect("BPF_ENABLE_STATS");
    let client = ClientId(1);
    let links = kernel_support::capture_lo(&tracer, client);
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
    let other_cookie = tracer
        .register_with_flags(other.as_fd(), client, socket_flags::CAPTURE)
        .unwrap();
    other
        .connect(&other_listener.local_addr().unwrap().into())
        .unwrap();
    measure("untraced, another socket traced", socket());
    tracer.unregister(other_cookie).unwrap();
    drop(other);

    // The reader runs for the traced states only: in the others the programs write nothing,
    // and its polls would only disturb the measured runs.
    let stop = Arc::new(AtomicBool::new(false));
    let reader = read_rings([events, packets], stop.clone());
    // Traced, the library's way for its TCP sockets (calls counted in the socket's entry),
    // then with a record per call (a daemon client's sockets, UDP sockets).
    for (state, flags) in [
        (
            "traced, calls counted (+ packet)",
            socket_flags::CAPTURE | socket_flags::FOLD_CALLS,
        ),
        ("traced, record per call (+ packet)", socket_flags::CAPTURE),
    ] {
        let traced = socket();
        let cookie = tracer
            .register_with_flags(traced.as_fd(), client, flags)
            .unwrap();
        measure(state, traced);
        tracer.unregister(cookie).unwrap();
    }
    tracer.detach_capture(links);
    stop.store(true, Ordering::Relaxed);
    let [events_read, packets_read] = reader.join().unwrap();

    println!("kernel run statistics, {SENDS} send() calls of 64 B per state");
    println!(
        "records read: {events_read} events, {packets_read} packets; lost by the kernel: \
         {} events, {} packets",
        tracer.lost_events(client).unwrap(),
        tracer.lost_packets(client).unwrap()
    );
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
