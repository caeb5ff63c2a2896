//! Phases of hand-built traces, and of the Go README example.
use time::macros::datetime;

use super::*;
use crate::{
    AddrTuple, DialTrace, DnsQueryMsg, DnsQueryTrace, DnsReplyMsg, HttpReqTrace, HttpTrace,
    NetTrace, TcpConnTrace, TlsTunnelTrace,
};

fn ms(ms: u32) -> Timestamp {
    Timestamp::Relative(ms)
}

fn id(s: &str) -> TraceId {
    TraceId::new(s)
}

/// `GET https://example.test/` at +2ms: DNS 3..5, connect 6..8, TLS 8..12, head at 20, body
/// read to 50; then a second request on the same connection at +60ms.
fn two_requests() -> HttpTrace {
    HttpTrace {
        net_trace: NetTrace {
            trace_begin_at: Timestamp::Absolute(datetime!(2026-01-01 10:00 UTC)),
            trace_end_at: ms(100),
            dials: vec![DialTrace {
                trace_id: id("dial"),
                dial_begin_at: ms(2),
                dial_end_at: ms(8),
                dst_address: "example.test:443".into(),
                established_conn: id("tcp"),
                ..Default::default()
            }]
            .into(),
            tcp_conns: vec![TcpConnTrace {
                trace_id: id("tcp"),
                from_dial: id("dial"),
                handshake_begin_at: ms(6),
                handshake_end_at: ms(8),
                connected: true,
                addr_tuple: AddrTuple::new(
                    "127.0.0.1:40000".parse().unwrap(),
                    "127.0.0.1:443".parse().unwrap(),
                ),
                ..Default::default()
            }]
            .into(),
            dns_queries: vec![DnsQueryTrace {
                trace_id: id("dns"),
                from_dial: id("dial"),
                dns_query_msgs: vec![DnsQueryMsg {
                    sent_at: ms(3),
                    ..Default::default()
                }],
                dns_reply_msgs: vec![DnsReplyMsg {
                    recv_at: ms(5),
                    ..Default::default()
                }],
                ..Default::default()
            }]
            .into(),
            tls_tunnels: vec![TlsTunnelTrace {
                trace_id: id("tls"),
                tcp_conn: id("tcp"),
                handshake_begin_at: ms(8),
                handshake_end_at: ms(12),
                ..Default::default()
            }]
            .into(),
            ..Default::default()
        },
        http_requests: vec![
            HttpReqTrace {
                trace_id: id("req1"),
                tcp_conn: id("tcp"),
                tls_tunnel: id("tls"),
                req_sent_at: ms(2),
                resp_recv_at: ms(20),
                resp_body_first_byte_at: ms(21),
                resp_body_last_byte_at: ms(50),
                resp_status_code: 200,
                resp_content_len: 10,
                ..Default::default()
            },
            HttpReqTrace {
                trace_id: id("req2"),
                tcp_conn: id("tcp"),
                tls_tunnel: id("tls"),
                req_sent_at: ms(60),
                resp_recv_at: ms(61),
                resp_status_code: 200,
                ..Default::default()
            },
        ]
        .into(),
    }
}

fn span(a: u64, b: u64) -> Option<Span> {
    Some(Span::new(a * 1000, b * 1000))
}

#[test]
fn new_connection_has_every_phase() {
    let phases = request_phases(&two_requests());
    let first = &phases[0];
    assert_eq!(first.http_req, id("req1"));
    assert_eq!(first.dial, id("dial"));
    assert_eq!(first.blocked, span(2, 2));
    assert_eq!(first.dns, span(3, 5));
    assert_eq!(first.connect, span(6, 8));
    assert_eq!(first.tls, span(8, 12));
    assert_eq!(first.tls_tunnel, id("tls"), "the tunnel of the tls phase");
    assert!(first.proxy_tls_tunnel.is_empty());
    assert_eq!(first.send, None);
    assert_eq!(first.wait, span(12, 20));
    assert_eq!(first.transfer, span(20, 50));
    assert_eq!(first.total, span(2, 50));
    assert_eq!(first.reused_conn, None);
    assert_eq!(first.unfinished, None);
    assert_eq!(first.precision, Precision::Millis);
    let order: Vec<Phase> = first.iter().map(|(p, _)| p).collect();
    assert_eq!(
        order,
        [
            Phase::Blocked,
            Phase::Dns,
            Phase::Connect,
            Phase::Tls,
            Phase::Wait,
            Phase::Transfer
        ]
    );
}

#[test]
fn reused_connection_has_no_connect_or_tls_and_names_the_connection() {
    let phases = request_phases(&two_requests());
    let second = &phases[1];
    assert_eq!(second.reused_conn, Some(id("tcp")));
    assert_eq!((second.dns, second.connect, second.tls), (None, None, None));
    assert!(
        second.tls_tunnel.is_empty(),
        "the handshake was the first request's"
    );
    assert_eq!(second.blocked, span(60, 60));
    assert_eq!(second.wait, span(60, 61));
    assert_eq!(second.total, span(60, 61));
    assert_eq!(second.transfer, None);
    assert_eq!(
        phases_of_request(&two_requests(), &id("req2")).as_ref(),
        Some(second)
    );
}

#[test]
fn carried_over_connection_is_reused() {
    let mut trace = two_requests();
    trace.http_requests.remove(0);
    trace.net_trace.tcp_conns[0].reused = true;
    let phases = request_phases(&trace);
    assert_eq!(phases[0].reused_conn, Some(id("tcp")));
    assert_eq!(phases[0].connect, None);
}

#[test]
fn precise_times_give_microseconds() {
    let mut trace = two_requests();
    let req = &mut trace.http_requests[0];
    req.precise_us.set("reqSentAt", 2_100);
    req.precise_us.set("respRecvAt", 20_345);
    req.precise_us.set("respBodyLastByteAt", 50_001);
    let dial = &mut trace.net_trace.dials[0];
    dial.precise_us.set("dialBeginAt", 2_200);
    dial.precise_us.set("dialEndAt", 8_010);
    let tcp = &mut trace.net_trace.tcp_conns[0];
    tcp.precise_us.set("handshakeBeginAt", 6_001);
    tcp.precise_us.set("handshakeEndAt", 8_010);
    let tls = &mut trace.net_trace.tls_tunnels[0];
    tls.precise_us.set("handshakeBeginAt", 8_020);
    tls.precise_us.set("handshakeEndAt", 12_500);
    let dns = &mut trace.net_trace.dns_queries[0];
    dns.dns_query_msgs[0].precise_us.set("sentAt", 3_003);
    dns.dns_reply_msgs[0].precise_us.set("recvAt", 5_123);
    let first = &request_phases(&trace)[0];
    assert_eq!(first.precision, Precision::Micros);
    assert_eq!(first.blocked, Some(Span::new(2_100, 2_200)));
    assert_eq!(first.dns, Some(Span::new(3_003, 5_123)));
    assert_eq!(first.connect, Some(Span::new(6_001, 8_010)));
    assert_eq!(first.tls, Some(Span::new(8_020, 12_500)));
    assert_eq!(first.wait, Some(Span::new(12_500, 20_345)));
    assert_eq!(first.transfer.map(|s| s.duration_us()), Some(29_656));
    // One timestamp without its precise time makes the whole request millisecond-precise.
    trace.net_trace.tls_tunnels[0].precise_us = PreciseTimes::default();
    assert_eq!(request_phases(&trace)[0].precision, Precision::Millis);
}

#[test]
fn a_request_written_in_the_millisecond_its_handshake_ended_has_a_send_phase() {
    // Socket operations carry whole milliseconds; the handshake's end is precise and falls in
    // the same millisecond as the request's write (seen in CI: the send phase went missing).
    let mut trace = two_requests();
    let tls = &mut trace.net_trace.tls_tunnels[0];
    tls.precise_us.set("handshakeBeginAt", 8_020);
    tls.precise_us.set("handshakeEndAt", 12_500);
    let write = |at: u32| crate::SocketOp {
        op_type: crate::SocketOpType::Write,
        call_at: ms(at),
        return_at: ms(at),
        data_len: 99,
        ..Default::default()
    };
    trace.net_trace.tcp_conns[0].socket_trace = Some(crate::SocketTrace {
        // The handshake's own write, then the request's, both "at 12 ms".
        socket_ops: vec![write(11), write(12)],
        ..Default::default()
    });
    let first = &request_phases(&trace)[0];
    assert_eq!(first.send, Some(Span::new(12_500, 12_500)));
    assert_eq!(first.wait.map(|s| s.start_us), Some(12_500));
    // A write of a later millisecond still ends the phase.
    trace.net_trace.tcp_conns[0].socket_trace = Some(crate::SocketTrace {
        socket_ops: vec![write(11), write(13)],
        ..Default::default()
    });
    assert_eq!(
        request_phases(&trace)[0].send,
        Some(Span::new(12_500, 13_000))
    );
}

#[test]
fn refused_connection_ends_in_connect() {
    let trace = HttpTrace {
        net_trace: NetTrace {
            dials: vec![DialTrace {
                trace_id: id("dial"),
                dial_begin_at: ms(1),
                dial_end_at: ms(3),
                dial_err: "connection refused".into(),
                dst_address: "127.0.0.1:1".into(),
                ..Default::default()
            }]
            .into(),
            tcp_conns: vec![TcpConnTrace {
                trace_id: id("tcp"),
                from_dial: id("dial"),
                handshake_begin_at: ms(1),
                handshake_end_at: ms(2),
                ..Default::default()
            }]
            .into(),
            ..Default::default()
        },
        http_requests: vec![HttpReqTrace {
            trace_id: id("req"),
            req_sent_at: ms(0),
            req_error: "connection refused".into(),
            ..Default::default()
        }]
        .into(),
    };
    let phases = &request_phases(&trace)[0];
    assert_eq!(phases.tcp_conn, id("tcp"));
    assert_eq!(phases.dns, None, "an IP address needs no DNS");
    assert_eq!(phases.connect, span(1, 2));
    assert_eq!(phases.unfinished, Some(Phase::Connect));
    assert_eq!(phases.wait, None);
    assert_eq!(phases.total, span(0, 2));
}

#[test]
fn failed_tls_handshake_ends_in_tls() {
    let mut trace = two_requests();
    trace.http_requests.truncate(1);
    let req = &mut trace.http_requests[0];
    req.resp_recv_at = Timestamp::Undefined;
    req.resp_body_last_byte_at = Timestamp::Undefined;
    req.req_error = "invalid peer certificate: Expired".into();
    trace.net_trace.tls_tunnels[0].handshake_err = "invalid peer certificate".into();
    let phases = &request_phases(&trace)[0];
    assert_eq!(phases.unfinished, Some(Phase::Tls));
    assert_eq!(phases.wait, None);
    assert_eq!(phases.total, span(2, 12));
}

#[test]
fn unanswered_request_is_waiting() {
    let mut trace = two_requests();
    trace.http_requests.truncate(1);
    let req = &mut trace.http_requests[0];
    req.resp_recv_at = Timestamp::Undefined;
    req.req_error = "request timed out".into();
    let phases = &request_phases(&trace)[0];
    assert_eq!(phases.unfinished, Some(Phase::Wait));
    assert_eq!(phases.wait, span(12, 12));
}

#[test]
fn body_failure_ends_in_transfer() {
    let mut trace = two_requests();
    trace.http_requests[0].req_error = "connection reset".into();
    trace.http_requests[0].resp_body_last_byte_at = Timestamp::Undefined;
    let phases = &request_phases(&trace)[0];
    assert_eq!(phases.unfinished, Some(Phase::Transfer));
    assert_eq!(phases.transfer, None);
}

#[test]
fn dns_without_messages_is_the_gap_before_the_handshake() {
    let mut trace = two_requests();
    trace.net_trace.dns_queries = Default::default();
    assert_eq!(request_phases(&trace)[0].dns, span(2, 6));
}

#[test]
fn go_readme_example() {
    let json = include_str!("../../../nettrace-cli/tests/golden/go_readme_example.json");
    let trace: HttpTrace = serde_json::from_str(json).unwrap();
    let phases = &request_phases(&trace)[0];
    assert_eq!(phases.precision, Precision::Millis);
    assert_eq!(phases.blocked, span(72, 72));
    assert_eq!(phases.dns, span(73, 115));
    assert_eq!(phases.connect, span(115, 126));
    assert_eq!(phases.tls, span(126, 172));
    // Socket writes after the handshake: the request (and HTTP/2 settings) until +183ms.
    assert_eq!(phases.send, span(172, 183));
    assert_eq!(phases.wait, span(183, 239));
    assert_eq!(phases.transfer, span(239, 240));
    assert_eq!(phases.total, span(72, 240));
    assert_eq!(phases.unfinished, None);
}

#[test]
fn request_without_times_has_no_phases() {
    let trace = HttpTrace {
        http_requests: vec![HttpReqTrace::default()].into(),
        ..Default::default()
    };
    let phases = &request_phases(&trace)[0];
    assert_eq!(phases.total, None);
    assert_eq!(phases.iter().count(), 0);
}
