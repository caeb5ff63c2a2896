//! Root scenario: a ring buffer too small for a burst of events loses some, and every one of
//! them is counted: events delivered + events lost = events the kernel produced. The calls
//! go to the per-CPU call lanes first and to the ring once a lane is full, so the burst is
//! larger than all lanes together as well. Calls of one CPU beyond its lane come out of the
//! reader in time order with the lane's.
use std::{
    io::{Read, Write},
    net::{TcpListener, TcpStream},
    os::fd::AsFd,
    thread,
};

use nettrace::{
    KernelTime,
    kernel::{ClientId, Direction, KernelConfig, KernelEvent, KernelTracer},
};
use nettrace_tests::require_root;
use socket2::{Domain, Socket, Type};

/// One page: room for about 80 send events.
const SMALL_RING: u32 = 4096;
/// Far more send calls than the ring holds, beyond what the lanes hold (see [`sends`]).
const SENDS_BEYOND_LANES: usize = 2000;

/// The send calls of the burst: [`SENDS_BEYOND_LANES`] more than the call lanes of all
/// possible CPUs hold.
fn sends() -> usize {
    let possible = std::fs::read_to_string("/sys/devices/system/cpu/possible").unwrap();
    // "0-N" or "0" (a list of ranges in general: the last number bounds them all).
    let last: usize = possible
        .trim()
        .rsplit(['-', ','])
        .next()
        .unwrap()
        .parse()
        .unwrap();
    (last + 1) * nettrace_common::limits::EVENT_LANE_SLOTS + SENDS_BEYOND_LANES
}

/// What a burst of one-byte sends on a traced loopback connection gave, with a ring of
/// [`SMALL_RING`] bytes.
struct Burst {
    /// Send records delivered, in the order the reader handed them out.
    delivered: Vec<KernelTime>,
    /// Events the kernel counted as lost meanwhile.
    lost: u64,
}

/// Where the burst's calls are made.
#[derive(Clone, Copy)]
enum Cpus {
    /// Wherever the scheduler runs the test.
    Any,
    /// All on one CPU: its lane takes them, the ring what that lane has no room for.
    First,
}

/// Sends `sends` one-byte writes on a traced connection, from `cpus`, with a ring of
/// `ring_bytes`, and reads what the kernel reported.
async fn burst(sends: usize, ring_bytes: u32, cpus: Cpus) -> Burst {
    let (tracer, mut events) = KernelTracer::load(&KernelConfig {
        ring_bytes,
        ..KernelConfig::default()
    })
    .unwrap();
    let client = ClientId(3);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let server_addr = listener.local_addr().unwrap();
    let server = thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        let mut sink = Vec::new();
        stream.read_to_end(&mut sink).unwrap();
        sink.len()
    });
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    let cookie = tracer.register(socket.as_fd(), client).unwrap();
    socket.connect(&server_addr.into()).unwrap();
    let mut stream: TcpStream = socket.into();
    stream.set_nodelay(true).unwrap();

    // Start from an empty ring: whatever the handshake produced is taken first.
    let _ = events.drain();
    let lost_before = tracer.lost_events(client).unwrap();

    let stream = thread::spawn(move || {
        if let Cpus::First = cpus {
            // A lane is a CPU's, whichever: the first one the thread may use.
            nettrace_tests::cpu::pin(nettrace_tests::cpu::allowed()[0]);
        }
        for _ in 0..sends {
            stream.write_all(b"x").unwrap();
        }
        stream
    })
    .join()
    .unwrap();
    let delivered = events
        .drain()
        .into_iter()
        .filter_map(|e| match e {
            Ok(KernelEvent::SockMsg(call))
                if call.cookie == cookie && call.direction == Direction::Sent =>
            {
                Some(call.time)
            }
            _ => None,
        })
        .collect();
    let lost = tracer.lost_events(client).unwrap() - lost_before;
    drop(stream);
    assert_eq!(server.join().unwrap(), sends);
    tracer.unregister(cookie).unwrap();
    Burst { delivered, lost }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_is_delivered_or_counted_as_lost() {
    if !require_root("every_event_is_delivered_or_counted_as_lost") {
        return;
    }
    let sends = sends();
    let Burst { delivered, lost } = burst(sends, SMALL_RING, Cpus::Any).await;
    let delivered = delivered.len();
    assert!(
        lost > 0,
        "the ring was meant to overflow (delivered {delivered})"
    );
    assert!(delivered > 0, "some events fit");
    assert_eq!(
        delivered as u64 + lost,
        sends as u64,
        "delivered {delivered} + lost {lost} != {sends} send calls"
    );
}

/// Calls go to the per-CPU lanes, not the ring: a burst five times what the ring holds, but
/// less than one lane, loses nothing, and comes out in time order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_that_fit_in_a_lane_need_no_room_in_the_ring() {
    if !require_root("calls_that_fit_in_a_lane_need_no_room_in_the_ring") {
        return;
    }
    let sends = nettrace_common::limits::EVENT_LANE_SLOTS - 100;
    let Burst { delivered, lost } = burst(sends, SMALL_RING, Cpus::Any).await;
    assert_eq!(lost, 0, "a call was lost although the lanes had room");
    assert_eq!(delivered.len(), sends);
    assert!(delivered.is_sorted(), "calls handed out out of time order");
}

/// A lane full: the calls after it go to the ring, and a reader hands out the lane's (older)
/// before the ring's, in time order, none lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_lanes_calls_and_the_rings_after_them_come_out_in_time_order() {
    if !require_root("a_full_lanes_calls_and_the_rings_after_them_come_out_in_time_order") {
        return;
    }
    let beyond_the_lane = 300;
    let sends = nettrace_common::limits::EVENT_LANE_SLOTS + beyond_the_lane;
    // Room for the calls beyond the lane (a send record is 48 bytes, with its 8-byte header
    // in the ring).
    let ring_bytes = 64 * 1024;
    let Burst { delivered, lost } = burst(sends, ring_bytes, Cpus::First).await;
    assert_eq!(lost, 0, "the ring had room for what the lane had not");
    assert_eq!(delivered.len(), sends);
    assert!(
        delivered.is_sorted(),
        "the ring's calls were handed out before the lane's older ones"
    );
}
