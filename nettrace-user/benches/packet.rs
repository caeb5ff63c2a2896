//! Cost of the TC capture program per packet, without traffic's noise: the egress classifier
//! is run by the kernel (`BPF_PROG_TEST_RUN`) on crafted frames of a traced loopback
//! connection, so every run sees the same packet and the same maps. Needs root (prints
//! SKIPPED otherwise).
//!
//! ```text
//! CARGO_TARGET_DIR=target/bench cargo bench -p nettrace-user --bench packet
//! ```
//!
//! Method: the programs are loaded (not attached: only the test runs count), a client is set
//! up to capture TCP payloads, and a socket registered for capture connects over loopback, so
//! its flow is in the flow map and its pairs of ports are marked. Per frame kind, rounds of
//! `PER_ROUND` runs on the first CPU the process may use; after each round a reader thread on
//! another CPU drains the packet lanes and ring, as a tracer's would, so every traced run
//! finds room in its lane (the path of a tracer that keeps up) and the slots it writes were
//! last read on another CPU. Two figures per kind: the mean time of a run that the test run
//! measures, and the kernel's run statistics (`BPF_ENABLE_STATS`, the measure the targets
//! use: two more clock reads per run, about 60 ns here; the "nothing registered" figure of
//! `untraced` is that floor).
//!
//! Two modes. By default each test run call makes all of a round's runs: the test run reads
//! its clock once per call, so its figure is the program alone, with its code and data warm
//! in the CPU's caches. With `NETTRACE_PACKET_TRAFFIC=1` each call makes one run, after a
//! 64-byte message over an untraced loopback connection and its reply, so the network stack
//! runs between two runs as in real traffic; then only the run statistics mean anything (the
//! test run's own figure is a single run's, in whole nanoseconds, with its clock reads).
//! `NETTRACE_PACKET_REPEAT=n` makes `n` runs per call instead.
//!
//! A test run gives its frame no socket and no departure time, so the egress program reads
//! the clock for every frame here; for a segment a local TCP socket sends it takes TCP's
//! departure time instead, about 50 ns less with cold caches (BENCHMARKS.md, session 19).
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsFd;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use kernel_support::{cost, stats};
use nettrace::kernel::{
    ClientId, Direction, KernelConfig, KernelEvents, KernelTracer, enable_run_stats,
};
use nettrace_common::{program_name, socket_flags};
use nettrace_tests::cpu::{allowed, pin};

mod kernel_support;

/// Runs per round: fewer than a packet lane's slots, so a round never fills it.
const PER_ROUND: u32 = 200;
/// Rounds per frame kind.
const ROUNDS: usize = 500;

/// An Ethernet frame of an IPv4 TCP segment from `from` to `to` with `payload` bytes of data
/// (the checksums are not filled: the program does not read them).
fn frame(from: SocketAddr, to: SocketAddr, payload: usize) -> Vec<u8> {
    let (SocketAddr::V4(from), SocketAddr::V4(to)) = (from, to) else {
        panic!("IPv4 addresses expected");
    };
    let tcp_len = 32;
    let mut frame = vec![0u8; 14 + 20 + tcp_len + payload];
    frame[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
    let ip = &mut frame[14..34];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&((20 + tcp_len + payload) as u16).to_be_bytes());
    ip[6] = 0x40; // don't fragment
    ip[8] = 64;
    ip[9] = 6; // TCP
    ip[12..16].copy_from_slice(&from.ip().octets());
    ip[16..20].copy_from_slice(&to.ip().octets());
    let tcp = &mut frame[34..34 + tcp_len];
    tcp[0..2].copy_from_slice(&from.port().to_be_bytes());
    tcp[2..4].copy_from_slice(&to.port().to_be_bytes());
    tcp[12] = ((tcp_len / 4) as u8) << 4;
    tcp[13] = if payload > 0 { 0x18 } else { 0x10 }; // PSH+ACK or ACK
    frame
}

/// "median [first quartile..third quartile]" of `values`.
fn quartiles(values: &mut [f64]) -> String {
    values.sort_by(f64::total_cmp);
    let at = |q: f64| values[((values.len() - 1) as f64 * q).round() as usize];
    format!("{:.1} [{:.1}..{:.1}]", at(0.5), at(0.25), at(0.75))
}

/// A connected, untraced loopback TCP pair (TC is not attached, so its packets are not runs
/// of the measured program).
fn loopback_pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let sender = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (receiver, _) = listener.accept().unwrap();
    sender.set_nodelay(true).unwrap();
    receiver.set_nodelay(true).unwrap();
    (sender, receiver)
}

/// A 64-byte message from `sender` to `receiver` and back.
fn loopback_exchange(sender: &mut TcpStream, receiver: &mut TcpStream) {
    let mut message = [7u8; 64];
    sender.write_all(&message).unwrap();
    receiver.read_exact(&mut message).unwrap();
    receiver.write_all(&message).unwrap();
    sender.read_exact(&mut message).unwrap();
}

/// A reader on `cpu` that drains `packets` when asked and answers how many records it took
/// (waiting, up to a second, until it has `expected` of them).
fn reader(cpu: usize, mut packets: KernelEvents) -> (mpsc::Sender<usize>, mpsc::Receiver<usize>) {
    let (ask, asked) = mpsc::channel::<usize>();
    let (answer, answers) = mpsc::channel();
    std::thread::spawn(move || {
        pin(cpu);
        for expected in asked {
            let deadline = Instant::now() + Duration::from_secs(1);
            let mut taken = packets.drain().len();
            while taken < expected && Instant::now() < deadline {
                std::thread::yield_now();
                taken += packets.drain().len();
            }
            if answer.send(taken).is_err() {
                return;
            }
        }
    });
    (ask, answers)
}

fn main() {
    if !kernel_support::is_root_or_skip("packet") {
        return;
    }
    let runtime = kernel_support::runtime();
    let _guard = runtime.enter();
    let (tracer, _events, packets) =
        KernelTracer::load_with_packets(&KernelConfig::default()).unwrap();
    let _stats = enable_run_stats().expect("BPF_ENABLE_STATS");
    let client = ClientId(1);
    kernel_support::set_capture_client(&tracer, client);

    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let socket = kernel_support::tcp_socket(true);
    let cookie = tracer
        .register_with_flags(socket.as_fd(), client, socket_flags::CAPTURE)
        .unwrap();
    socket
        .connect(&listener.local_addr().unwrap().into())
        .unwrap();
    let local = socket.local_addr().unwrap().as_socket().unwrap();
    let peer = listener.local_addr().unwrap();
    let unmarked_from: SocketAddr = "127.0.0.1:1".parse().unwrap();
    let unmarked_to: SocketAddr = "127.0.0.1:2".parse().unwrap();
    let other_host: SocketAddr = SocketAddr::new("127.0.0.2".parse().unwrap(), local.port());

    let cpus = allowed();
    pin(cpus[0]);
    let (ask, answers) = reader(*cpus.get(1).unwrap_or(&cpus[0]), packets);

    let kinds = [
        ("traced, 64 B of data (130 B)", frame(local, peer, 64), true),
        ("traced, pure ACK (66 B)", frame(local, peer, 0), true),
        (
            "traced, 1,000 B (1,066 B, ring)",
            frame(local, peer, 1000),
            true,
        ),
        (
            "untraced, port pair not marked",
            frame(unmarked_from, unmarked_to, 64),
            false,
        ),
        (
            "untraced, port pair marked, no flow",
            frame(other_host, peer, 64),
            false,
        ),
    ];
    println!(
        "TC egress program, test runs of crafted frames: {ROUNDS} rounds of {PER_ROUND} runs \
         per kind (kinds alternated within a round), CPU {} (reader on CPU {}); \
         per-round figures, median [interquartile range]",
        cpus[0],
        cpus.get(1).unwrap_or(&cpus[0])
    );
    // Runs per test run call (see the module's doc).
    let repeat = std::env::var("NETTRACE_PACKET_REPEAT")
        .ok()
        .and_then(|value| value.parse::<u32>().ok())
        .unwrap_or(PER_ROUND)
        .clamp(1, PER_ROUND);
    // With NETTRACE_PACKET_TRAFFIC=1, the network stack between two runs.
    let mut between = std::env::var("NETTRACE_PACKET_TRAFFIC")
        .is_ok_and(|value| value == "1")
        .then(loopback_pair);
    let repeat = if between.is_some() { 1 } else { repeat };
    // Whole calls of `repeat` runs: a round may be a little short of PER_ROUND.
    let calls = PER_ROUND / repeat;
    let runs = calls * repeat;
    let mut samples = vec![(Vec::new(), Vec::new()); kinds.len()];
    for _ in 0..ROUNDS {
        for ((name, frame, traced), (test_ns, stats_ns)) in kinds.iter().zip(&mut samples) {
            let before = stats(&tracer);
            let mut mean = Duration::ZERO;
            for _ in 0..calls {
                if let Some((sender, receiver)) = between.as_mut() {
                    loopback_exchange(sender, receiver);
                }
                mean += tracer
                    .run_capture_program(Direction::Sent, frame, repeat)
                    .unwrap()
                    / calls;
            }
            let after = stats(&tracer);
            let (counted, per_run) =
                cost(&before, &after, |n| n == program_name::TC_ETHERNET_EGRESS);
            assert_eq!(counted, u64::from(runs), "{name}: runs counted");
            test_ns.push(mean.as_nanos() as f64);
            stats_ns.push(per_run);
            // The reader drains after every kind, so a copy of an untraced frame shows
            // under its own name.
            let expected = if *traced { runs as usize } else { 0 };
            ask.send(expected).unwrap();
            assert_eq!(answers.recv().unwrap(), expected, "{name}: packets read");
        }
    }
    println!(
        "{:<34} {:>24} {:>24}",
        "frame", "test run ns/run", "run statistics ns/run"
    );
    for ((name, _, _), (test_ns, stats_ns)) in kinds.iter().zip(&mut samples) {
        println!(
            "{name:<34} {:>24} {:>24}",
            quartiles(test_ns),
            quartiles(stats_ns)
        );
    }
    println!(
        "lost by the kernel: {} packets",
        tracer.lost_packets(client).unwrap()
    );
    tracer.unregister(cookie).unwrap();
}
