//! Shared pieces of the kernel benchmarks (`kernel.rs`, `untraced.rs`, `capture.rs`): the root
//! check and runtime, the kernel's run statistics of the programs (`BPF_ENABLE_STATS`) and the
//! cost per run between two readings, the capture set-up on `lo`, and the loopback traffic: a
//! socket, a receiver thread that reads everything, and a loop of small sends.
//!
//! ```ignore
//! let before = kernel_support::stats(&tracer);
//! let elapsed = kernel_support::small_sends(&mut stream, 200_000);
//! let (runs, ns) = kernel_support::cost(&before, &kernel_support::stats(&tracer), |n| n == name);
//! ```
// Each bench target uses part of this module.
#![allow(dead_code)]

use std::{
    collections::HashMap,
    io::{Read, Write},
    net::{TcpListener, TcpStream},
    thread,
    time::{Duration, Instant},
};

use nettrace::{
    capture::DEFAULT_SNAPLEN,
    kernel::{CaptureInterfaceInfo, CaptureLinks, ClientId, KernelTracer, ProgramStats},
};
use nettrace_common::{CaptureClient, capture_flags};

/// Bytes of each write of [`small_sends`]: with `TCP_NODELAY`, one packet each.
pub(crate) const SMALL_SEND: usize = 64;

/// True when running as root; otherwise says that `bench` is skipped.
pub(crate) fn is_root_or_skip(bench: &str) -> bool {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    eprintln!("SKIPPED {bench} benchmark: needs root to load eBPF programs");
    false
}

/// The runtime the kernel tracer's readers run on: one worker, so that the measured loops
/// keep the other core.
pub(crate) fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap()
}

/// Attaches the capture programs to `lo` and sets `client` up to capture TCP payloads with
/// the default snap length; the links keep the programs attached.
pub(crate) fn capture_lo(tracer: &KernelTracer, client: ClientId) -> CaptureLinks {
    let lo = CaptureInterfaceInfo::lookup("lo").unwrap();
    let links = tracer.attach_capture(&lo).unwrap();
    set_capture_client(tracer, client);
    links
}

/// Sets `client` up to capture TCP payloads with the default snap length.
pub(crate) fn set_capture_client(tracer: &KernelTracer, client: ClientId) {
    tracer
        .set_capture_client(
            client,
            CaptureClient {
                snaplen: DEFAULT_SNAPLEN,
                flags: capture_flags::TCP_PAYLOAD,
            },
        )
        .unwrap();
}

/// Run count and total run time of each program, by name.
pub(crate) type Stats = HashMap<String, (u64, Duration)>;

/// The kernel's run statistics of the tracer's programs now.
pub(crate) fn stats(tracer: &KernelTracer) -> Stats {
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

/// Runs and ns per run, between two readings, of the programs whose name `matches` (summed).
pub(crate) fn cost(before: &Stats, after: &Stats, matches: impl Fn(&str) -> bool) -> (u64, f64) {
    let (runs, time) = after
        .iter()
        .filter(|(name, _)| matches(name))
        .map(|(name, (count, time))| {
            let (c0, t0) = before.get(name).copied().unwrap_or_default();
            (count - c0, *time - t0)
        })
        .fold((0, Duration::ZERO), |(n, t), (dn, dt)| (n + dn, t + dt));
    (runs, time.as_nanos() as f64 / runs.max(1) as f64)
}

/// Runs and ns per run of each program that ran between two readings, by name.
pub(crate) fn costs(before: &Stats, after: &Stats) -> Vec<(String, u64, f64)> {
    let mut rows: Vec<_> = after
        .keys()
        .map(|name| {
            let (runs, ns) = cost(before, after, |n| n == name);
            (name.clone(), runs, ns)
        })
        .filter(|(_, runs, _)| *runs > 0)
        .collect();
    rows.sort_by(|a, b| a.0.cmp(&b.0));
    rows
}

/// A fresh IPv4 TCP socket (with `TCP_NODELAY` when `nodelay`, so small writes are packets of
/// their own).
pub(crate) fn tcp_socket(nodelay: bool) -> socket2::Socket {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    if nodelay {
        socket.set_tcp_nodelay(true).unwrap();
    }
    socket
}

/// A thread accepting one connection on `listener` and reading it to the end with a buffer
/// of `buf_len` bytes; it returns the bytes read.
pub(crate) fn receiver(listener: &TcpListener, buf_len: usize) -> thread::JoinHandle<usize> {
    let listener = listener.try_clone().unwrap();
    thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        let mut buf = vec![0u8; buf_len];
        let mut total = 0;
        loop {
            match stream.read(&mut buf) {
                Ok(0) | Err(_) => return total,
                Ok(n) => total += n,
            }
        }
    })
}

/// `count` writes of [`SMALL_SEND`] bytes on `stream`; returns how long they took.
pub(crate) fn small_sends(stream: &mut TcpStream, count: usize) -> Duration {
    let started = Instant::now();
    for _ in 0..count {
        stream.write_all(&[0u8; SMALL_SEND]).unwrap();
    }
    started.elapsed()
}
