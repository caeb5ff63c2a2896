//! Root scenario: the `ARMED` pre-filter. The programs skip every socket while nothing is
//! registered; the flag follows registrations (sockets, flows, ICMP/ARP capture) and a
//! socket registered after the flag was cleared is traced again.
use std::{
    io::Write,
    net::{SocketAddr, TcpListener, TcpStream},
    os::fd::AsFd,
    time::Duration,
};

use nettrace::{
    SocketCookie,
    kernel::{
        ClientId, FlowProtocol, KernelConfig, KernelEvent, KernelEvents, KernelTracer, flow_key,
    },
};
use nettrace_common::{CaptureInterface, TracedFlow, direction};
use nettrace_tests::require_root;
use socket2::{Domain, Socket, Type};

/// Upper bound for an event to show up in the ring buffer.
const EVENT_DEADLINE: Duration = Duration::from_secs(10);

/// Registers a fresh socket, connects it to `server` and sends `payload`; returns the cookie
/// and the stream (kept open by the caller).
fn traced_send(
    tracer: &KernelTracer,
    server: SocketAddr,
    payload: &[u8],
) -> (SocketCookie, TcpStream) {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    let cookie = tracer.register(socket.as_fd(), ClientId(3)).unwrap();
    socket.connect(&server.into()).unwrap();
    let mut stream: TcpStream = socket.into();
    stream.write_all(payload).unwrap();
    (cookie, stream)
}

/// Loads the programs; a listener for the traced connections, and its address.
fn loaded() -> (KernelTracer, KernelEvents, TcpListener, SocketAddr) {
    let (tracer, events) = KernelTracer::load(&KernelConfig::default()).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let server = listener.local_addr().unwrap();
    (tracer, events, listener, server)
}

/// Waits for the send event of `cookie` carrying `len` bytes; returns the events before it.
async fn send_event(events: &mut KernelEvents, cookie: SocketCookie, len: i32) -> Vec<KernelEvent> {
    let mut seen = Vec::new();
    tokio::time::timeout(EVENT_DEADLINE, async {
        loop {
            let event = events.next().await.unwrap();
            if let KernelEvent::SockMsg(message) = &event
                && message.cookie == cookie
                && message.ret == len
            {
                return;
            }
            seen.push(event);
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no send of {len} B within {EVENT_DEADLINE:?}; saw {seen:#?}"));
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn armed_flag_follows_registrations_and_never_hides_a_traced_socket() {
    if !require_root("armed_flag_follows_registrations_and_never_hides_a_traced_socket") {
        return;
    }
    let (tracer, mut events, _listener, server) = loaded();
    assert!(!tracer.is_armed(), "nothing registered yet");

    // A registered socket arms the programs, and its sends are reported.
    let (first, _first_stream) = traced_send(&tracer, server, b"first");
    assert!(tracer.is_armed());
    send_event(&mut events, first, 5).await;

    // A flow keeps the flag after its socket is gone; removing it clears the flag.
    let key = flow_key(FlowProtocol::Tcp, server, "127.0.0.1:9".parse().unwrap());
    let flow = TracedFlow {
        cookie: first.0,
        client_id: 3,
        direction: direction::SENT,
    };
    tracer.register_flow(key, flow).unwrap();
    tracer.unregister(first).unwrap();
    assert!(tracer.is_armed(), "the flow is still registered");
    tracer.unregister_flow(&key).unwrap();
    assert!(!tracer.is_armed(), "nothing left");

    // So does ICMP or ARP capture on an interface.
    let icmp = CaptureInterface {
        icmp_snaplen: 128,
        arp_snaplen: 0,
    };
    tracer.set_capture_interface(1, icmp).unwrap();
    assert!(tracer.is_armed());
    tracer
        .set_capture_interface(1, CaptureInterface::default())
        .unwrap();
    assert!(!tracer.is_armed());
    // Releasing what is not held (an unknown socket) changes nothing.
    tracer.unregister(SocketCookie(u64::MAX)).unwrap();
    assert!(!tracer.is_armed());

    // Disarmed, then armed again: the next registered socket is traced as the first was.
    let (second, _second_stream) = traced_send(&tracer, server, b"second!");
    assert!(tracer.is_armed());
    send_event(&mut events, second, 7).await;
    tracer.unregister(second).unwrap();
    assert!(!tracer.is_armed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disarm_delay_keeps_the_flag_and_batch_release_clears_it() {
    if !require_root("a_disarm_delay_keeps_the_flag_and_batch_release_clears_it") {
        return;
    }
    let (tracer, mut events, _listener, server) = loaded();
    // A delay of zero: the flag outlives its last hold until the next housekeeping call.
    tracer.set_disarm_delay(Some(Duration::ZERO)).unwrap();
    let (first, first_stream) = traced_send(&tracer, server, b"one");
    send_event(&mut events, first, 3).await;
    // An open socket leaves only when asked with its descriptor.
    assert!(tracer.is_registered(first_stream.as_fd()).unwrap());
    tracer.unregister_open(first_stream.as_fd(), first).unwrap();
    assert!(!tracer.is_registered(first_stream.as_fd()).unwrap());
    assert!(tracer.is_armed(), "lingering after the last socket left");
    // Registered again while lingering: traced as before, and housekeeping leaves the flag
    // alone while something holds it.
    let (second, second_stream) = traced_send(&tracer, server, b"two!");
    tracer.disarm_if_idle().unwrap();
    assert!(tracer.is_armed());
    send_event(&mut events, second, 4).await;
    let (third, third_stream) = traced_send(&tracer, server, b"three");
    send_event(&mut events, third, 5).await;

    // One call releases both (for closed sockets: an entry goes with its socket), skipping
    // cookies that hold nothing (before, between and after them).
    let unknown = SocketCookie(u64::MAX);
    tracer
        .unregister_many(&[unknown, second, SocketCookie(u64::MAX - 1), third, unknown])
        .unwrap();
    // Still open here, so their entries are still there, until the sockets are destroyed.
    assert!(tracer.is_registered(second_stream.as_fd()).unwrap());
    assert!(tracer.is_registered(third_stream.as_fd()).unwrap());
    assert!(tracer.is_armed(), "still lingering");
    tracer.disarm_if_idle().unwrap();
    assert!(!tracer.is_armed(), "nothing held for the delay");
    // Without a delay, removal disarms at once.
    tracer.set_disarm_delay(None).unwrap();
    let (fourth, _fourth_stream) = traced_send(&tracer, server, b"four");
    tracer.unregister_many(&[fourth]).unwrap();
    assert!(!tracer.is_armed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renewed_slot_silences_the_sockets_its_last_client_left_open() {
    if !require_root("a_renewed_slot_silences_the_sockets_its_last_client_left_open") {
        return;
    }
    let (tracer, mut events, _listener, server) = loaded();
    let (left, mut left_stream) = traced_send(&tracer, server, b"before");
    send_event(&mut events, left, 6).await;
    // The slot changes hands: the open socket keeps its entry, which now counts for nothing.
    tracer.renew_client(ClientId(3)).unwrap();
    left_stream.write_all(b"after!!").unwrap();
    // A socket registered after that is traced, and its send follows the other's in the ring.
    let (marker, _marker_stream) = traced_send(&tracer, server, b"marker!!!");
    let seen = send_event(&mut events, marker, 9).await;
    let stale: Vec<_> = seen.iter().filter(|e| e.cookie() == left).collect();
    assert!(
        stale.is_empty(),
        "the left socket still reported: {stale:#?}"
    );
}
