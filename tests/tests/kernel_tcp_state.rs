//! Root scenario: the eBPF programs report the TCP state machine of a registered loopback
//! connection, joined by socket cookie, and nothing of an unregistered connection opened
//! beside it.
use std::{
    io::{Read, Write},
    net::{Shutdown, SocketAddr, TcpListener, TcpStream},
    os::fd::{AsFd, AsRawFd},
    thread,
    time::Duration,
};

use nettrace::{
    KernelTime, SocketCookie,
    kernel::{
        ClientId, KernelConfig, KernelEvent, KernelEvents, KernelTcpState, KernelTracer, SockOp,
    },
};
use nettrace_common::socket_flags::FOLD_CALLS;
use nettrace_tests::require_root;
use socket2::{Domain, Socket, Type};

/// Upper bound for the whole exchange to show up in the ring buffer.
const EVENT_DEADLINE: Duration = Duration::from_secs(10);

/// Every event read (of any socket, in ring order) up to the `closes`-th CLOSE of socket
/// `cookie`, that one included; panics when it does not come within [`EVENT_DEADLINE`].
async fn events_until_close(
    events: &mut KernelEvents,
    cookie: SocketCookie,
    closes: usize,
) -> Vec<KernelEvent> {
    let mut seen = Vec::new();
    let read = tokio::time::timeout(EVENT_DEADLINE, async {
        let mut closed = 0;
        while closed < closes {
            let event = events.next().await.unwrap();
            if matches!(&event, KernelEvent::TcpState(c)
                if c.cookie == cookie && c.new == KernelTcpState::Close)
            {
                closed += 1;
            }
            seen.push(event);
        }
    })
    .await;
    if read.is_err() {
        panic!("no CLOSE {closes} of {cookie} within {EVENT_DEADLINE:?}; saw {seen:#?}");
    }
    seen
}

/// A server that accepts `count` connections, reads each to EOF and closes it.
fn echo_to_eof_server(count: usize) -> (SocketAddr, thread::JoinHandle<Vec<usize>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let handle = thread::spawn(move || {
        (0..count)
            .map(|_| {
                let (mut stream, _) = listener.accept().unwrap();
                let mut received = Vec::new();
                stream.read_to_end(&mut received).unwrap();
                received.len()
            })
            .collect()
    });
    (addr, handle)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registered_connection_yields_its_tcp_states_and_addresses() {
    if !require_root("registered_connection_yields_its_tcp_states_and_addresses") {
        return;
    }
    let (tracer, mut events) = KernelTracer::load(&KernelConfig::default()).unwrap();
    let (server, server_done) = echo_to_eof_server(2);
    let started = KernelTime::now();

    // An untraced connection, complete before the traced one closes: if the kernel reported
    // it, its events would arrive before the traced connection's final CLOSE.
    let mut untraced = TcpStream::connect(server).unwrap();
    let untraced_cookie = SocketCookie::of(&untraced).unwrap();
    untraced.write_all(b"not traced").unwrap();
    untraced.shutdown(Shutdown::Write).unwrap();

    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    let cookie = tracer.register(socket.as_fd(), ClientId(7)).unwrap();
    socket.connect(&server.into()).unwrap();
    let mut traced: TcpStream = socket.into();
    let local = traced.local_addr().unwrap();
    traced.write_all(b"hello kernel").unwrap();
    traced.shutdown(Shutdown::Write).unwrap();
    // Both connections are read to EOF and closed by the server: the FINs have crossed.
    assert_eq!(server_done.join().unwrap(), vec![10, 12]);
    drop(untraced);
    drop(traced);

    let seen = events_until_close(&mut events, cookie, 1).await;
    let finished = KernelTime::now();

    assert!(
        seen.iter().all(|e| e.cookie() == cookie),
        "events of another socket (untraced cookie {untraced_cookie}): {seen:#?}"
    );
    assert!(
        seen.iter()
            .all(|e| e.time() >= started && e.time() <= finished)
    );
    assert!(
        seen.windows(2).all(|w| w[0].time() <= w[1].time()),
        "{seen:#?}"
    );

    let states: Vec<_> = seen
        .iter()
        .filter_map(|e| match e {
            KernelEvent::TcpState(change) => Some((change.old, change.new)),
            _ => None,
        })
        .collect();
    use KernelTcpState::*;
    assert_eq!(
        states,
        [
            (Close, SynSent),
            (SynSent, Established),
            (Established, FinWait1),
            (FinWait1, FinWait2),
            (FinWait2, Close),
        ],
        "{seen:#?}"
    );

    let sock_ops: Vec<_> = seen
        .iter()
        .filter_map(|e| match e {
            KernelEvent::SockOps(record) => Some(record),
            _ => None,
        })
        .collect();
    let ops: Vec<_> = sock_ops.iter().map(|r| (r.op, r.args)).collect();
    // The kernel's RTT minimum: the handshake's sample in both records.
    let min_rtt: Vec<_> = sock_ops
        .iter()
        .map(|r| r.counters.min_rtt_us.is_some())
        .collect();
    assert_eq!(min_rtt, [true, true], "{seen:#?}");
    // No connect record (the socket's flow is not captured). Of the state callbacks only the
    // last one (to CLOSE) is sent; it and the established record stand for their transitions
    // (SYN-SENT to ESTABLISHED, FIN-WAIT-2 to CLOSE), which the stream above gives after them.
    assert_eq!(
        ops,
        [
            (SockOp::ActiveEstablished, [2, 1]),
            (SockOp::StateChange, [5, 7]),
        ],
        "{seen:#?}"
    );
    let transitions: Vec<_> = sock_ops.iter().map(|r| r.transition).collect();
    assert_eq!(
        transitions,
        [Some((SynSent, Established)), Some((FinWait2, Close))],
        "{seen:#?}"
    );
    // The other transitions came in those records too, held in the socket by the state
    // tracepoint: SYN-SENT with the established record, the application's close and
    // FIN-WAIT-2 with the last one; each at its own time, before its record's.
    let held: Vec<Vec<_>> = sock_ops
        .iter()
        .map(|r| {
            r.held
                .iter()
                .flatten()
                .map(|h| {
                    assert!(h.time <= r.time, "{r:?}");
                    (h.old, h.new)
                })
                .collect()
        })
        .collect();
    assert_eq!(
        held,
        [
            vec![(Close, SynSent)],
            vec![(Established, FinWait1), (FinWait1, FinWait2)]
        ],
        "{seen:#?}"
    );
    // The final state change carries the kernel's figures for the whole connection.
    let last = &sock_ops.last().unwrap().counters;
    // Sequence space acknowledged: the payload, plus one each for the SYN and the FIN.
    assert_eq!(last.bytes_acked, 12 + 2, "{last:?}");
    assert_eq!(last.bytes_received, 1, "the server's FIN: {last:?}");
    assert!(last.min_rtt_us.is_some(), "{last:?}");
    assert!(last.segs_out >= 3 && last.segs_in >= 3, "{last:?}");
    // The socket's entry went with the socket; letting go of it releases what kept the
    // programs armed, and doing so twice is not an error.
    assert!(tracer.is_armed());
    tracer.unregister(cookie).unwrap();
    assert!(!tracer.is_armed());
    tracer.unregister(cookie).unwrap();
    for record in &sock_ops {
        assert_eq!(record.local, local, "{record:?}");
        assert_eq!(record.remote, server, "{record:?}");
        assert_eq!(record.client, ClientId(7));
    }
    assert_eq!(tracer.lost_events(ClientId(7)).unwrap(), 0);
}

/// A TCP socket registered for `client` with `FOLD_CALLS` (before it connects), connected to
/// `server`.
fn connect_counting_calls(
    tracer: &KernelTracer,
    server: SocketAddr,
    client: ClientId,
) -> (TcpStream, SocketCookie) {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    let cookie = tracer
        .register_with_flags(socket.as_fd(), client, FOLD_CALLS)
        .unwrap();
    socket.connect(&server.into()).unwrap();
    (socket.into(), cookie)
}

/// A socket registered with `FOLD_CALLS` sends no record per call and none when it is
/// established: its entry counts the calls and holds its transitions and the handshake's
/// counters, userspace reads them through the descriptor (only while it still names that
/// socket), and the record of its `shutdown()` carries them, the record of its CLOSE the
/// rest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn folded_calls_are_counted_in_the_socket_and_sent_with_its_shutdown() {
    if !require_root("folded_calls_are_counted_in_the_socket_and_sent_with_its_shutdown") {
        return;
    }
    let (tracer, mut events) = KernelTracer::load(&KernelConfig::default()).unwrap();
    let (server, server_done) = echo_to_eof_server(1);
    let (mut traced, cookie) = connect_counting_calls(&tracer, server, ClientId(9));
    let descriptor = traced.as_raw_fd();
    traced.write_all(b"abc").unwrap();
    traced.write_all(b"defg").unwrap();
    let entry = tracer.socket_entry(descriptor, cookie).unwrap().unwrap();
    let calls = entry.calls;
    assert_eq!((calls.send_calls, calls.bytes_sent), (2, 7), "{calls:?}");
    use KernelTcpState::*;
    let held: Vec<_> = entry.held[..entry.held_count as usize]
        .iter()
        .map(|h| {
            (
                KernelTcpState::from(h.old_state),
                KernelTcpState::from(h.new_state),
            )
        })
        .collect();
    assert_eq!(
        held,
        [(Close, SynSent), (SynSent, Established)],
        "{entry:?}"
    );
    let established = entry.established;
    assert!(
        established.timestamp_ns >= entry.held[1].timestamp_ns,
        "kept at the handshake: {entry:?}"
    );
    // The handshake's RTT sample; the SYN out and the SYN-ACK in (the ACK leaves after).
    assert!(
        established.srtt_us > 0 && established.min_rtt_us != u32::MAX,
        "{entry:?}"
    );
    assert!(
        established.segs_out >= 1 && established.segs_in >= 1,
        "{entry:?}"
    );
    assert_eq!(
        tracer
            .socket_entry(descriptor, SocketCookie(cookie.0 + 1))
            .unwrap(),
        None,
        "another cookie: the descriptor names another socket"
    );
    traced.shutdown(Shutdown::Write).unwrap();
    assert_eq!(server_done.join().unwrap(), vec![7]);
    drop(traced);
    assert_eq!(tracer.socket_entry(descriptor, cookie).unwrap(), None);

    let mut per_call = 0;
    let mut records = Vec::new();
    for event in events_until_close(&mut events, cookie, 1).await {
        if event.cookie() != cookie {
            continue;
        }
        match event {
            KernelEvent::SockMsg(_) | KernelEvent::SockCalls(_) => per_call += 1,
            KernelEvent::SockOps(ops) => records.push(ops),
            _ => {}
        }
    }
    assert_eq!(per_call, 0, "no record per call");
    let summary: Vec<_> = records
        .iter()
        .map(|r| {
            let held: Vec<_> = r.held.iter().flatten().map(|h| (h.old, h.new)).collect();
            (r.transition, held, (r.calls.send_calls, r.calls.bytes_sent))
        })
        .collect();
    assert_eq!(
        summary,
        [
            (
                Some((Established, FinWait1)),
                vec![(Close, SynSent), (SynSent, Established)],
                (2, 7)
            ),
            (Some((FinWait2, Close)), vec![(FinWait1, FinWait2)], (2, 7)),
        ],
        "{records:#?}"
    );
    tracer.unregister(cookie).unwrap();
}

/// `close()` after `shutdown()` sets the state the socket is in (FIN-WAIT-2 stays FIN-WAIT-2):
/// for a socket that counts its calls, that record carries the reads made after the shutdown.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_close_after_shutdown_sends_the_reads_made_in_between() {
    if !require_root("a_close_after_shutdown_sends_the_reads_made_in_between") {
        return;
    }
    let (tracer, mut events) = KernelTracer::load(&KernelConfig::default()).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let server = listener.local_addr().unwrap();
    let (release, released) = std::sync::mpsc::channel::<()>();
    // Reads to EOF, answers, and keeps its side open until released.
    let server_done = thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        let mut received = Vec::new();
        stream.read_to_end(&mut received).unwrap();
        stream.write_all(b"reply").unwrap();
        let _ = released.recv_timeout(EVENT_DEADLINE);
        received.len()
    });
    let (mut traced, cookie) = connect_counting_calls(&tracer, server, ClientId(10));
    traced.write_all(b"abc").unwrap();
    traced.shutdown(Shutdown::Write).unwrap();
    let mut reply = [0_u8; 5];
    traced.read_exact(&mut reply).unwrap();
    drop(traced);
    let mut again = None;
    tokio::time::timeout(EVENT_DEADLINE, async {
        loop {
            let event = events.next().await.unwrap();
            if event.cookie() != cookie {
                continue;
            }
            if let KernelEvent::SockOps(ops) = &event
                && ops.op == SockOp::StateChange
                && ops.args[0] == ops.args[1]
            {
                again = Some(**ops);
                break;
            }
        }
    })
    .await
    .expect("the close's record within the deadline");
    release.send(()).unwrap();
    assert_eq!(server_done.join().unwrap(), 3);
    let record = again.expect("a state set again by close()");
    let calls = record.calls;
    assert_eq!(
        (calls.send_calls, calls.bytes_sent, calls.bytes_received),
        (1, 3, 5),
        "{record:?}"
    );
    assert!(calls.recv_calls >= 1, "{record:?}");
    tracer.unregister(cookie).unwrap();
}

/// A socket that reached CLOSE (its connection refused) and connects again counts its calls in
/// its entry again: the second connection's calls send no record each, and its CLOSE's record
/// carries them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_socket_connecting_again_after_close_counts_its_calls_again() {
    if !require_root("a_socket_connecting_again_after_close_counts_its_calls_again") {
        return;
    }
    let (tracer, mut events) = KernelTracer::load(&KernelConfig::default()).unwrap();
    let refusing = TcpListener::bind("127.0.0.1:0").unwrap();
    let refused = refusing.local_addr().unwrap();
    drop(refusing);
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    let cookie = tracer
        .register_with_flags(socket.as_fd(), ClientId(11), FOLD_CALLS)
        .unwrap();
    let error = socket.connect(&refused.into()).unwrap_err();
    assert_eq!(error.kind(), std::io::ErrorKind::ConnectionRefused);
    let (server, server_done) = echo_to_eof_server(1);
    socket.connect(&server.into()).unwrap();
    let mut traced: TcpStream = socket.into();
    traced.write_all(b"again").unwrap();
    traced.shutdown(Shutdown::Write).unwrap();
    assert_eq!(server_done.join().unwrap(), vec![5]);
    drop(traced);

    let (mut closes, mut per_call, mut shutdown_totals) = (0, 0, None);
    for event in events_until_close(&mut events, cookie, 2).await {
        if event.cookie() != cookie {
            continue;
        }
        match &event {
            KernelEvent::SockMsg(_) | KernelEvent::SockCalls(_) => per_call += 1,
            // The record comes before the CLOSE it stands for.
            KernelEvent::SockOps(ops)
                if closes == 1
                    && ops.op == SockOp::StateChange
                    && ops
                        .transition
                        .is_some_and(|(_, new)| new == KernelTcpState::Close) =>
            {
                shutdown_totals = Some(ops.calls);
            }
            KernelEvent::TcpState(change) if change.new == KernelTcpState::Close => closes += 1,
            _ => {}
        }
    }
    assert_eq!(per_call, 0, "no record per call after connecting again");
    let totals = shutdown_totals.expect("the second connection's record of CLOSE");
    assert_eq!((totals.send_calls, totals.bytes_sent), (1, 5), "{totals:?}");
    tracer.unregister(cookie).unwrap();
}

/// A socket registered again after it connected (the entry rewritten without the flag that
/// the state callbacks are on, while the kernel still runs them) reports each transition once:
/// the tracepoint sends them, and the state callback's record no longer stands for one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_socket_registered_again_after_connect_reports_each_transition_once() {
    if !require_root("a_socket_registered_again_after_connect_reports_each_transition_once") {
        return;
    }
    let (tracer, mut events) = KernelTracer::load(&KernelConfig::default()).unwrap();
    let (server, server_done) = echo_to_eof_server(1);
    let (mut traced, cookie) = connect_counting_calls(&tracer, server, ClientId(12));
    assert_eq!(
        tracer
            .register_with_flags(traced.as_fd(), ClientId(12), FOLD_CALLS)
            .unwrap(),
        cookie
    );
    // What the kernel kept in the entry stays: the handshake's transitions and counters.
    let entry = tracer
        .socket_entry(traced.as_raw_fd(), cookie)
        .unwrap()
        .unwrap();
    assert_eq!(entry.held_count, 2, "{entry:?}");
    assert!(entry.established.timestamp_ns != 0, "{entry:?}");
    traced.write_all(b"twice").unwrap();
    traced.shutdown(Shutdown::Write).unwrap();
    assert_eq!(server_done.join().unwrap(), vec![5]);
    drop(traced);

    let states: Vec<_> = events_until_close(&mut events, cookie, 1)
        .await
        .into_iter()
        .filter_map(|event| match event {
            KernelEvent::TcpState(change) if change.cookie == cookie => {
                Some((change.old, change.new))
            }
            _ => None,
        })
        .collect();
    use KernelTcpState::*;
    assert_eq!(
        states,
        [
            (Close, SynSent),
            (SynSent, Established),
            (Established, FinWait1),
            (FinWait1, FinWait2),
            (FinWait2, Close),
        ]
    );
    // No transition comes again: a second record of any would have been written before the
    // records of a connection opened after the first one's CLOSE, read here up to its own.
    let (marker_server, marker_done) = echo_to_eof_server(1);
    let (marker, marker_cookie) = connect_counting_calls(&tracer, marker_server, ClientId(12));
    marker.shutdown(Shutdown::Write).unwrap();
    assert_eq!(marker_done.join().unwrap(), vec![0]);
    drop(marker);
    for event in events_until_close(&mut events, marker_cookie, 1).await {
        if let KernelEvent::TcpState(change) = event {
            assert!(change.cookie != cookie, "a transition twice: {change:?}");
        }
    }
    tracer.unregister(cookie).unwrap();
    tracer.unregister(marker_cookie).unwrap();
}
