//! Repeated snapshots share what did not change (issue 16): after each kind of change, a
//! repeated snapshot equals a fresh conversion of every record, and the records the change
//! did not touch are the very same (shared) values as in the snapshot before.
use super::*;
use crate::limits::TraceLimits;

/// Which records of each list are shared (the same `Arc`) between two snapshots, as
/// `[dials, tcp, udp, dns, tls, http]`, each in list order; records are appended, so those
/// past the end of the earlier list are new and left out.
fn shared(a: &HttpTrace, b: &HttpTrace) -> [Vec<bool>; 6] {
    fn same<T>(a: &crate::model::TraceList<T>, b: &crate::model::TraceList<T>) -> Vec<bool> {
        b.as_slice()
            .iter()
            .zip(a.as_slice())
            .map(|(new, old)| Arc::ptr_eq(old, new))
            .collect()
    }
    let (x, y) = (&a.net_trace, &b.net_trace);
    [
        same(&x.dials, &y.dials),
        same(&x.tcp_conns, &y.tcp_conns),
        same(&x.udp_conns, &y.udp_conns),
        same(&x.dns_queries, &y.dns_queries),
        same(&x.tls_tunnels, &y.tls_tunnels),
        same(&a.http_requests, &b.http_requests),
    ]
}

/// The snapshot at `ms` after a change: every record of it is shared with `before` except
/// those `changed` names as (list, position); see [`checked`] for the rest.
fn step(
    recorder: &mut Recorder,
    ms: u64,
    before: &HttpTrace,
    changed: &[(usize, usize)],
) -> HttpTrace {
    let repeated = recorder.snapshot("s", at(ms));
    assert_shared(before, &repeated, changed);
    check_fresh(recorder, ms, repeated)
}

/// The snapshot at `ms`, checked by [`check_fresh`].
fn checked(recorder: &mut Recorder, ms: u64) -> HttpTrace {
    let repeated = recorder.snapshot("s", at(ms));
    check_fresh(recorder, ms, repeated)
}

/// Checks `repeated` (the snapshot at `ms`) against a fresh conversion of every record,
/// which becomes what the next snapshot reuses and is returned.
fn check_fresh(recorder: &mut Recorder, ms: u64, repeated: HttpTrace) -> HttpTrace {
    recorder.forget_snapshots();
    let fresh = recorder.snapshot("s", at(ms));
    assert_eq!(repeated, fresh);
    assert_eq!(
        serde_json::to_string(&repeated).expect("json"),
        serde_json::to_string(&fresh).expect("json")
    );
    // The fresh values are kept: snapshot again so that the caller compares with them.
    let again = recorder.snapshot("s", at(ms));
    assert!(shared(&fresh, &again).iter().flatten().all(|s| *s));
    again
}

/// Two requests over `tcp-1` (with its dial's resolver on `udp-1` and DNS messages), a TLS
/// tunnel; `tcp-1` stays open, with an operation log.
fn two_requests(recorder: &mut Recorder, tcp: &Arc<SocketRecord>, body: &Arc<BodyCounters>) {
    resolved_tls_dial(recorder, tcp);
    recorder.handle(Event::TlsEnded {
        tls: id("tls-1"),
        at: at(28),
        outcome: TlsOutcome::default(),
    });
    exchange(recorder, "req-1", 30, body);
    exchange(recorder, "req-2", 40, body);
    tcp.push_op(RawSocketOp::new(
        SocketOpType::Write,
        at(30),
        at(31),
        Ok(10),
    ));
}

/// A recorder with [`two_requests`] and a first snapshot of it.
/// The body counters the two requests share, with their response body's writer.
type SharedBody = (Arc<BodyCounters>, ResponseCounter);

fn started() -> (Recorder, Arc<SocketRecord>, SharedBody, HttpTrace) {
    let mut recorder = recorder(true);
    let tcp = Arc::new(SocketRecord::new(true));
    let (body, _, response) = BodyCounters::with_writers(std::time::Instant::now());
    two_requests(&mut recorder, &tcp, &body);
    let first = checked(&mut recorder, 50);
    (recorder, tcp, (body, response), first)
}

/// Asserts that every record of `after` is shared with `before` except those `changed`
/// names as (list, position).
fn assert_shared(before: &HttpTrace, after: &HttpTrace, changed: &[(usize, usize)]) {
    let shared = shared(before, after);
    for (list, flags) in shared.iter().enumerate() {
        for (i, flag) in flags.iter().enumerate() {
            let expect = !changed.contains(&(list, i));
            assert_eq!(*flag, expect, "list {list} record {i}: {shared:?}");
        }
    }
}

const DIALS: usize = 0;
const TCP: usize = 1;
const UDP: usize = 2;
const DNS: usize = 3;
const TLS: usize = 4;
const HTTP: usize = 5;

#[test]
fn an_unchanged_trace_is_shared_whole_and_only_the_end_moves() {
    let (mut recorder, _tcp, _body, first) = started();
    let second = step(&mut recorder, 60, &first, &[]);
    assert_eq!(second.net_trace.trace_end_at, rel(60));
    assert_eq!(first.net_trace.trace_end_at, rel(50));
}

#[test]
fn a_new_request_is_converted_and_the_old_ones_are_shared() {
    let (mut recorder, _tcp, (body, _), first) = started();
    recorder.handle(request_started(
        "req-3",
        52,
        "https://example.test/3",
        &body,
    ));
    // The body counters are shared by the test's requests: none of them changed.
    let second = step(&mut recorder, 60, &first, &[(HTTP, 2)]);
    assert_eq!(second.http_requests.len(), 3);
    // A response naming the connection: only that request changes.
    recorder.handle(response(
        "req-3",
        55,
        Some(conn_info("tcp-1", Some("tls-1"), None)),
        200,
    ));
    let third = step(&mut recorder, 60, &second, &[(HTTP, 2)]);
    assert_eq!(third.http_requests[2].tcp_conn, id("tcp-1"));
}

#[test]
fn socket_operations_and_bytes_change_only_their_connection() {
    let (mut recorder, tcp, _body, first) = started();
    tcp.push_op(RawSocketOp::new(SocketOpType::Read, at(51), at(52), Ok(5)));
    let second = step(&mut recorder, 60, &first, &[(TCP, 0)]);
    let ops = &second.net_trace.tcp_conns[0]
        .socket_trace
        .as_ref()
        .expect("ops")
        .socket_ops;
    assert_eq!(ops.len(), 2);
    tcp.add_received(5);
    let third = step(&mut recorder, 60, &second, &[(TCP, 0)]);
    assert_eq!(third.net_trace.tcp_conns[0].total_recv_bytes, 5);
}

#[test]
fn body_bytes_and_times_change_the_requests_that_count_them() {
    let (mut recorder, _tcp, (_, mut response), first) = started();
    response.add(100);
    let second = step(&mut recorder, 60, &first, &[(HTTP, 0), (HTTP, 1)]);
    response.first_read(at(55));
    let third = step(&mut recorder, 60, &second, &[(HTTP, 0), (HTTP, 1)]);
    assert_eq!(third.http_requests[0].resp_body_first_byte_at, rel(55));
}

#[test]
fn a_dns_reply_changes_only_its_query_trace() {
    let (mut recorder, _tcp, _body, first) = started();
    recorder.handle(Event::DnsReply {
        conn: id("udp-1"),
        dial: id("dial-1"),
        at: at(3),
        msg: reply_msg(1, "example.test", "93.184.215.14"),
    });
    let second = step(&mut recorder, 60, &first, &[(DNS, 0)]);
    assert_eq!(second.net_trace.dns_queries[0].dns_reply_msgs.len(), 1);
}

#[test]
fn kernel_facts_and_conntrack_change_only_their_connection() {
    let (mut recorder, _tcp, _body, first) = started();
    recorder.handle(kernel(tcp_state(
        12,
        10,
        KernelTcpState::Close,
        KernelTcpState::SynSent,
    )));
    let second = step(&mut recorder, 60, &first, &[(TCP, 0)]);
    assert!(second.net_trace.tcp_conns[0].kernel.is_some());
    recorder.handle(Event::Conntrack {
        conn: id("tcp-1"),
        sample: ct_sample(45, TcpState::Established, 3, false),
    });
    let third = step(&mut recorder, 60, &second, &[(TCP, 0)]);
    assert!(third.net_trace.tcp_conns[0].conntrack.is_some());
    // The UDP socket's kernel facts (cookie 11).
    recorder.handle(kernel(sock_msg(11, 5, Direction::Sent, 29)));
    let fourth = step(&mut recorder, 60, &third, &[(UDP, 0)]);
    assert!(fourth.net_trace.udp_conns[0].kernel.is_some());
}

#[test]
fn a_tunnel_or_dial_that_comes_later_changes_the_requests_that_refer_to_it() {
    let mut recorder = recorder(false);
    let body = Arc::new(BodyCounters::default());
    // req-9 never gets a response: it refers to what its dial established and to the
    // tunnels it caused, which come after it.
    recorder.handle(request_started("req-9", 0, "https://example.test/", &body));
    recorder.handle(request_started("req-8", 0, "https://example.test/", &body));
    let first = checked(&mut recorder, 50);
    recorder.handle(dial_started("dial-9", 1, "example.test:443", Some("req-9")));
    let tcp = Arc::new(SocketRecord::new(false));
    recorder.handle(opened(
        "tcp-9",
        Transport::Tcp,
        "dial-9",
        SERVER,
        None,
        &tcp,
        1,
    ));
    let second = step(&mut recorder, 50, &first, &[]);
    assert_eq!(second.http_requests[0].tcp_conn, TraceId::default());
    recorder.handle(dial_ended("dial-9", 2, Ok("tcp-9")));
    let third = step(&mut recorder, 50, &second, &[(DIALS, 0), (HTTP, 0)]);
    assert_eq!(third.http_requests[0].tcp_conn, id("tcp-9"));
    recorder.handle(tls_started("tls-9", "tcp-9", 3, true, Some("req-9")));
    let fourth = step(&mut recorder, 50, &third, &[(HTTP, 0)]);
    assert_eq!(fourth.http_requests[0].proxy_tls_tunnel, id("tls-9"));
    assert_eq!(fourth.http_requests[1].proxy_tls_tunnel, TraceId::default());
    assert_eq!(fourth.net_trace.tls_tunnels.len(), 1);
    // The tunnel ends: the tunnels changed, but what the requests refer to did not.
    recorder.handle(Event::TlsEnded {
        tls: id("tls-9"),
        at: at(4),
        outcome: TlsOutcome::default(),
    });
    let fifth = step(&mut recorder, 50, &fourth, &[(TLS, 0)]);
    assert_eq!(fifth.http_requests[0].proxy_tls_tunnel, id("tls-9"));
}

#[test]
fn clear_carries_the_open_connection_over_converted_again() {
    let (mut recorder, _tcp, _body, first) = started();
    recorder.clear_at(clock_at(100));
    let second = checked(&mut recorder, 120);
    assert!(second.http_requests.is_empty());
    let conn = &second.net_trace.tcp_conns[0];
    assert!(conn.reused);
    assert_eq!(
        conn.handshake_begin_at,
        wall(10),
        "absolute: before the trace"
    );
    assert!(!Arc::ptr_eq(
        &first.net_trace.tcp_conns.as_slice()[0],
        &second.net_trace.tcp_conns.as_slice()[0]
    ));
    let third = step(&mut recorder, 130, &second, &[]);
    assert_eq!(third.net_trace.trace_end_at, rel(30));
}

#[test]
fn what_the_limits_drop_is_counted_and_the_kept_records_are_shared() {
    let mut recorder = recorder(true);
    recorder.set_limits(TraceLimits {
        http_requests: 2,
        dns_messages: 1,
        ..TraceLimits::UNLIMITED
    });
    let tcp = Arc::new(SocketRecord::with_limit(true, 1));
    let body = Arc::new(BodyCounters::default());
    two_requests(&mut recorder, &tcp, &body);
    let first = checked(&mut recorder, 50);
    assert_eq!(first.net_trace.dropped, None);
    recorder.handle(request_started("req-3", 52, "https://example.test/", &body));
    recorder.handle(Event::DnsReply {
        conn: id("udp-1"),
        dial: id("dial-1"),
        at: at(3),
        msg: reply_msg(1, "example.test", "93.184.215.14"),
    });
    let second = step(&mut recorder, 60, &first, &[]);
    let dropped = second.net_trace.dropped.expect("dropped");
    assert_eq!((dropped.http_requests, dropped.dns_messages), (1, 1));
    // An operation over the connection's limit: counted, and the connection changes.
    tcp.push_op(RawSocketOp::new(SocketOpType::Read, at(53), at(54), Ok(1)));
    let third = step(&mut recorder, 60, &second, &[(TCP, 0)]);
    assert_eq!(third.net_trace.dropped.map(|d| d.socket_ops), Some(1));
    assert_eq!(
        third.net_trace.tcp_conns[0]
            .socket_trace
            .as_ref()
            .map(|s| s.dropped_ops),
        Some(1)
    );
}

#[test]
fn taking_a_request_out_leaves_a_correct_snapshot() {
    let (mut recorder, _tcp, _body, _first) = started();
    let taken = recorder.take_request(&[id("req-1")], at(55));
    assert!(taken.is_some());
    let second = checked(&mut recorder, 60);
    assert_eq!(second.http_requests.len(), 1);
    assert!(second.net_trace.tcp_conns[0].reused);
    recorder.handle(Event::HttpFailed {
        req: id("req-2"),
        error: "reset".to_owned(),
    });
    recorder.handle(closed("tcp-1", 59));
    let third = step(&mut recorder, 60, &second, &[(TCP, 0), (HTTP, 0)]);
    assert_eq!(third.http_requests[0].req_error, "reset");
}
