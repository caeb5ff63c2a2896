//! Root scenario: a ring buffer too small for a burst of events loses some, and every one of
//! them is counted: events delivered + events lost = events the kernel produced.
use std::{
    io::{Read, Write},
    net::{TcpListener, TcpStream},
    os::fd::AsFd,
    thread,
};

use nettrace::{
    SocketCookie,
    kernel::{ClientId, Direction, KernelConfig, KernelEvent, KernelTracer},
};
use nettrace_tests::require_root;
use socket2::{Domain, Socket, Type};

/// One page: room for about 80 send events.
const SMALL_RING: u32 = 4096;
/// Far more send calls than the ring holds.
const SENDS: usize = 2000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_is_delivered_or_counted_as_lost() {
    if !require_root("every_event_is_delivered_or_counted_as_lost") {
        return;
    }
    let (tracer, mut events) = KernelTracer::load(&KernelConfig {
        ring_bytes: SMALL_RING,
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
    let cookie = SocketCookie::of(&socket).unwrap();
    tracer.register(socket.as_fd(), cookie, client).unwrap();
    socket.connect(&server_addr.into()).unwrap();
    let mut stream: TcpStream = socket.into();
    stream.set_nodelay(true).unwrap();

    // Start from an empty ring: whatever the handshake produced is taken first.
    let _ = events.drain();
    let lost_before = tracer.lost_events(client).unwrap();

    for _ in 0..SENDS {
        stream.write_all(b"x").unwrap();
    }
    let delivered = events
        .drain()
        .into_iter()
        .filter(|e| {
            matches!(e, Ok(KernelEvent::SockMsg(call))
                if call.cookie == cookie && call.direction == Direction::Sent)
        })
        .count();
    let lost = tracer.lost_events(client).unwrap() - lost_before;
    assert!(
        lost > 0,
        "the ring was meant to overflow (delivered {delivered})"
    );
    assert!(delivered > 0, "some events fit");
    assert_eq!(
        delivered as u64 + lost,
        SENDS as u64,
        "delivered {delivered} + lost {lost} != {SENDS} send calls"
    );
    drop(stream);
    assert_eq!(server.join().unwrap(), SENDS);
    tracer.unregister(cookie).unwrap();
}
