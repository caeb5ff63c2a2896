//! Packet capture: the TC program's cost per packet (untraced and traced), and a 1 GiB
//! loopback transfer with no capture, with nettrace capturing it, and with tcpdump writing
//! the same flow: throughput, and packets captured against packets lost. Needs root (prints
//! SKIPPED otherwise); tcpdump is optional (its row is skipped, loudly, without it).
//!
//! ```text
//! CARGO_TARGET_DIR=target/bench cargo bench -p nettrace-user --bench capture
//! ```
//!
//! Method: one loopback TCP connection per run, the sender writing 64 KiB at a time and a
//! receiver thread reading everything. The TC program is attached to `lo` egress (every
//! loopback packet passes there once). Program cost comes from the kernel's run statistics
//! (`BPF_ENABLE_STATS`). The nettrace run registers the sender's socket for capture (the
//! sock_ops program registers its flow at connect) with the default snap length, and drains
//! the packet ring on a separate thread while the transfer runs, as the library does.
use std::os::fd::AsFd;
use std::{
    io::{Read, Write},
    net::{TcpListener, TcpStream},
    process::{Command, Stdio},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    thread,
    time::{Duration, Instant},
};

use kernel_support::{Stats, stats};
use nettrace::{
    capture::DEFAULT_SNAPLEN,
    kernel::{ClientId, KernelConfig, KernelEvent, KernelTracer, enable_run_stats},
};
use nettrace_common::socket_flags;

mod kernel_support;

const TRANSFER: usize = 1 << 30;
const CHUNK: usize = 1 << 16;

/// Sends `TRANSFER` bytes over a fresh loopback connection made from `socket`; returns the
/// elapsed time.
fn transfer(listener: &TcpListener, socket: socket2::Socket) -> Duration {
    let receiver = kernel_support::receiver(listener, 1 << 18);
    socket
        .connect(&listener.local_addr().unwrap().into())
        .unwrap();
    let mut stream: TcpStream = socket.into();
    let chunk = vec![0x5au8; CHUNK];
    let started = Instant::now();
    for _ in 0..TRANSFER / CHUNK {
        stream.write_all(&chunk).unwrap();
    }
    stream.shutdown(std::net::Shutdown::Write).unwrap();
    let received = receiver.join().unwrap();
    let elapsed = started.elapsed();
    assert_eq!(received, TRANSFER);
    elapsed
}

fn socket() -> socket2::Socket {
    kernel_support::tcp_socket(false)
}

fn gbit_per_s(elapsed: Duration) -> f64 {
    TRANSFER as f64 * 8.0 / elapsed.as_secs_f64() / 1e9
}

/// Runs and average ns per run of the TC programs between two readings.
fn per_run(before: &Stats, after: &Stats) -> (u64, f64) {
    kernel_support::cost(before, after, |name| name.starts_with("nettrace_tc_"))
}

/// tcpdump writing the flow of `port` on `lo` while a transfer runs: (elapsed, packets it
/// captured, packets it says the kernel dropped).
fn with_tcpdump(listener: &TcpListener, port: u16) -> Option<(Duration, u64, u64)> {
    let file = std::env::temp_dir().join(format!("nettrace-bench-{}.pcap", std::process::id()));
    let mut child = Command::new("tcpdump")
        .args(["-i", "lo", "-s", &DEFAULT_SNAPLEN.to_string(), "-U", "-w"])
        .arg(&file)
        .arg(format!("tcp port {port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .ok()?;
    // tcpdump says "listening on lo" once its filter is in place.
    let mut stderr = child.stderr.take()?;
    let mut seen = Vec::new();
    let mut byte = [0u8; 1];
    let deadline = Instant::now() + Duration::from_secs(10);
    while !String::from_utf8_lossy(&seen).contains("listening on") {
        if Instant::now() > deadline || stderr.read(&mut byte).ok()? == 0 {
            let _ = child.kill();
            return None;
        }
        seen.push(byte[0]);
    }
    let elapsed = transfer(listener, socket());
    // SAFETY: plain kill(2) on our own child's pid.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let mut rest = String::new();
    let _ = stderr.read_to_string(&mut rest);
    let _ = child.wait();
    let _ = std::fs::remove_file(&file);
    let number_before = |what: &str| -> u64 {
        rest.lines()
            .find(|l| l.contains(what))
            .and_then(|l| l.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    };
    Some((
        elapsed,
        number_before("packets captured"),
        number_before("dropped by kernel"),
    ))
}

fn main() {
    if !kernel_support::is_root_or_skip("capture") {
        return;
    }
    let runtime = kernel_support::runtime();
    let _guard = runtime.enter();
    let (tracer, _events, mut packets) =
        KernelTracer::load_with_packets(&KernelConfig::default()).unwrap();
    let _stats = enable_run_stats().expect("BPF_ENABLE_STATS");
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();

    // No capture programs attached.
    let baseline = transfer(&listener, socket());

    let client = ClientId(1);
    tracer.reset_lost_events(client).unwrap();
    let links = kernel_support::capture_lo(&tracer, client);

    // Attached, but the flow is not traced: each packet costs the program's lookup only.
    let before = stats(&tracer);
    let untraced = transfer(&listener, socket());
    let (untraced_runs, untraced_ns) = per_run(&before, &stats(&tracer));

    // Traced: the sender's socket is registered for capture; a thread drains the ring.
    let sender = socket();
    let cookie = tracer
        .register_with_flags(sender.as_fd(), client, socket_flags::CAPTURE)
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let drained = {
        let stop = stop.clone();
        thread::spawn(move || {
            let (mut count, mut bytes) = (0u64, 0u64);
            loop {
                let batch = packets.drain();
                for packet in batch.into_iter().flatten() {
                    if let KernelEvent::Packet(p) = packet {
                        count += 1;
                        bytes += p.data.len() as u64;
                    }
                }
                if stop.load(Ordering::Relaxed) {
                    return (count, bytes, packets);
                }
                thread::sleep(Duration::from_millis(1));
            }
        })
    };
    let before = stats(&tracer);
    let traced = transfer(&listener, sender);
    let (traced_runs, traced_ns) = per_run(&before, &stats(&tracer));
    stop.store(true, Ordering::Relaxed);
    let (captured, captured_bytes, _packets) = drained.join().unwrap();
    let lost = tracer.lost_packets(client).unwrap();
    tracer.unregister(cookie).unwrap();
    tracer.detach_capture(links);

    let tcpdump = with_tcpdump(&listener, port);

    println!(
        "1 GiB over loopback in 64 KiB writes; TC program on lo egress; snap length {DEFAULT_SNAPLEN}"
    );
    println!(
        "{:<40} {:>10} {:>10} {:>12} {:>10}",
        "run", "Gbit/s", "vs none", "captured", "lost"
    );
    let row = |name: &str, elapsed: Duration, captured: String, lost: String| {
        println!(
            "{name:<40} {:>10.2} {:>10.3} {captured:>12} {lost:>10}",
            gbit_per_s(elapsed),
            baseline.as_secs_f64() / elapsed.as_secs_f64()
        );
    };
    row("no capture", baseline, "-".into(), "-".into());
    row(
        "programs attached, flow untraced",
        untraced,
        "0".into(),
        "-".into(),
    );
    row(
        "nettrace capturing the flow",
        traced,
        captured.to_string(),
        lost.to_string(),
    );
    match tcpdump {
        Some((elapsed, got, dropped)) => row(
            "tcpdump -w capturing the flow",
            elapsed,
            got.to_string(),
            dropped.to_string(),
        ),
        None => eprintln!("SKIPPED tcpdump row: tcpdump is not installed or did not start"),
    }
    println!(
        "TC program: untraced {untraced_ns:.1} ns/run over {untraced_runs} runs; traced {traced_ns:.1} ns/run over {traced_runs} runs; {captured_bytes} bytes handed over"
    );
}
