//! Cost of the eBPF programs per run, for untraced and traced sockets, and the event rate the
//! ring buffer sustains. Needs root (prints SKIPPED otherwise).
//!
//! ```text
//! CARGO_TARGET_DIR=target/bench cargo bench -p nettrace-user --bench kernel
//! ```
//!
//! Method: the kernel's own run statistics (`BPF_ENABLE_STATS`, run count and total run time
//! per program) around a burst of `send()` calls on a loopback TCP connection: first a
//! connection that is not registered (each run is the cookie lookup only), then a registered
//! one (lookup plus an event in the ring buffer, drained by a reader meanwhile).
use std::os::fd::AsFd;
use std::{
    collections::HashMap,
    io::Write,
    net::{TcpListener, TcpStream},
    thread,
    time::{Duration, Instant},
};

use kernel_support::{costs, stats};
use nettrace::kernel::{ClientId, KernelConfig, KernelTracer, enable_run_stats};

mod kernel_support;

/// `send()` calls per phase.
const SENDS: usize = 200_000;

/// A loopback connection whose server reads everything.
fn connection(listener: &TcpListener) -> (socket2::Socket, thread::JoinHandle<usize>) {
    let server = kernel_support::receiver(listener, 1 << 16);
    (kernel_support::tcp_socket(true), server)
}

fn burst(socket: socket2::Socket, addr: std::net::SocketAddr) -> Duration {
    socket.connect(&addr.into()).unwrap();
    let mut stream: TcpStream = socket.into();
    kernel_support::small_sends(&mut stream, SENDS)
}

/// Sends 64-byte writes at `rate` per second for one second, in batches every millisecond.
fn paced(socket: socket2::Socket, addr: std::net::SocketAddr, rate: usize) -> usize {
    socket.connect(&addr.into()).unwrap();
    let mut stream: TcpStream = socket.into();
    let per_ms = rate / 1000;
    let started = Instant::now();
    let mut sent = 0;
    for ms in 0..1000u64 {
        for _ in 0..per_ms {
            stream.write_all(&[0u8; 64]).unwrap();
            sent += 1;
        }
        let next = started + Duration::from_millis(ms + 1);
        if let Some(wait) = next.checked_duration_since(Instant::now()) {
            thread::sleep(wait);
        }
    }
    sent
}

fn main() {
    if !kernel_support::is_root_or_skip("kernel") {
        return;
    }
    let runtime = kernel_support::runtime();
    runtime.block_on(async {
        let (tracer, mut events) = KernelTracer::load(&KernelConfig::default()).unwrap();
        let _stats = enable_run_stats().expect("BPF_ENABLE_STATS");
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();

        // Untraced: every send runs the programs, which find no cookie.
        let (socket, server) = connection(&listener);
        let before = stats(&tracer);
        let untraced_time = burst(socket, addr);
        let untraced = costs(&before, &stats(&tracer));
        server.join().unwrap();

        // Traced: the same sends produce events; a reader drains the ring meanwhile.
        let (socket, server) = connection(&listener);
        let client = ClientId(1);
        let cookie = tracer.register(socket.as_fd(), client).unwrap();
        // One reader for all phases, counting send events per client slot, until idle.
        let received: std::sync::Arc<std::sync::Mutex<HashMap<u32, usize>>> = Default::default();
        let reader = {
            let received = received.clone();
            tokio::spawn(async move {
                while let Ok(Ok(event)) =
                    tokio::time::timeout(Duration::from_millis(1500), events.next()).await
                {
                    if matches!(event, nettrace::kernel::KernelEvent::SockMsg(_)) {
                        *received.lock().unwrap().entry(event.client().0).or_default() += 1;
                    }
                }
            })
        };
        let before = stats(&tracer);
        let traced_time = tokio::task::spawn_blocking(move || burst(socket, addr)).await.unwrap();
        let traced = costs(&before, &stats(&tracer));
        server.join().unwrap();
        let lost = tracer.lost_events(client).unwrap();
        tracer.unregister(cookie).unwrap();

        // Paced: a steady rate for one second each.
        let mut paced_rows = Vec::new();
        for (slot, rate) in [(2u32, 100_000usize), (3, 200_000)] {
            let (socket, server) = connection(&listener);
            let client = ClientId(slot);
            tracer.reset_lost_events(client).unwrap();
            let cookie = tracer.register(socket.as_fd(), client).unwrap();
            let sent = tokio::task::spawn_blocking(move || paced(socket, addr, rate)).await.unwrap();
            server.join().unwrap();
            paced_rows.push((slot, rate, sent, tracer.lost_events(client).unwrap()));
            tracer.unregister(cookie).unwrap();
        }
        reader.await.unwrap();
        let received = received.lock().unwrap().clone();
        let count = |slot: u32| received.get(&slot).copied().unwrap_or(0);

        println!("eBPF program cost per run (kernel run statistics), {SENDS} send() calls of 64 B each");
        println!("{:<34} {:>10} {:>12}   {:>10} {:>12}", "program", "untraced", "ns/run", "traced", "ns/run");
        let names: std::collections::BTreeSet<_> =
            untraced.iter().chain(&traced).map(|(n, _, _)| n.clone()).collect();
        for name in names {
            let find = |rows: &[(String, u64, f64)]| {
                rows.iter().find(|(n, _, _)| *n == name).map(|(_, r, ns)| (*r, *ns)).unwrap_or((0, 0.0))
            };
            let (ur, uns) = find(&untraced);
            let (tr, tns) = find(&traced);
            println!("{name:<34} {ur:>10} {uns:>12.1}   {tr:>10} {tns:>12.1}");
        }
        let rate = SENDS as f64 / traced_time.as_secs_f64();
        println!(
            "traced burst (as fast as possible): {SENDS} send events in {:.0} ms = {:.0} events/s; received {}, lost {lost} (untraced burst {:.0} ms)",
            traced_time.as_secs_f64() * 1e3,
            rate,
            count(1),
            untraced_time.as_secs_f64() * 1e3
        );
        for (slot, rate, sent, lost) in paced_rows {
            println!(
                "paced {rate} events/s for 1 s (default ring): sent {sent}, received {}, lost {lost}",
                count(slot)
            );
        }
    });
}
