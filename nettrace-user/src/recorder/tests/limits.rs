//! Bounded memory: each limit of [`TraceLimits`] keeps that many records per trace and counts
//! the rest, per connection and in the trace's `dropped` totals; `clear` makes room again.
use super::*;
use crate::{limits::TraceLimits, model::DroppedRecords};

fn limited(record_dns: bool, limits: TraceLimits) -> Recorder {
    let mut recorder = recorder(record_dns);
    recorder.set_limits(limits);
    recorder
}

#[test]
fn requests_past_the_limit_are_counted_and_their_later_events_ignored() {
    let mut recorder = limited(
        false,
        TraceLimits {
            http_requests: 2,
            ..TraceLimits::UNLIMITED
        },
    );
    let body = Arc::new(BodyCounters::default());
    for (i, req) in ["req-1", "req-2", "req-3", "req-4"].into_iter().enumerate() {
        let ms = 10 * i as u64;
        recorder.handle(request_started(req, ms, "http://example.test/", &body));
        recorder.handle(response(req, ms + 5, None, 200));
    }
    let trace = recorder.snapshot("limits", at(50));
    let kept: Vec<_> = trace
        .http_requests
        .iter()
        .map(|r| r.trace_id.clone())
        .collect();
    assert_eq!(kept, [id("req-1"), id("req-2")]);
    assert_eq!(
        trace.net_trace.dropped,
        Some(DroppedRecords {
            http_requests: 2,
            ..DroppedRecords::default()
        })
    );
    let json = serde_json::to_value(&trace).expect("json");
    assert_eq!(json["dropped"], json!({"httpRequests": 2}));
    // A new trace has room again and nothing dropped.
    recorder.clear_at(clock_at(100));
    recorder.handle(request_started("req-5", 110, "http://example.test/", &body));
    let trace = recorder.snapshot("limits", at(120));
    assert_eq!(trace.http_requests.len(), 1);
    assert_eq!(trace.net_trace.dropped, None);
    assert!(
        serde_json::to_value(&trace)
            .expect("json")
            .get("dropped")
            .is_none(),
        "no key when nothing was dropped"
    );
}

#[test]
fn dns_messages_past_the_limit_are_counted() {
    let mut recorder = limited(
        true,
        TraceLimits {
            dns_messages: 3,
            ..TraceLimits::UNLIMITED
        },
    );
    resolved_dial(&mut recorder);
    for (i, name) in ["a.test", "b.test"].into_iter().enumerate() {
        let ms = 2 + i as u64;
        recorder.handle(Event::DnsQuery {
            conn: id("udp-1"),
            dial: id("dial-1"),
            at: at(ms),
            msg: query_msg(i as u16, name),
        });
        recorder.handle(Event::DnsReply {
            conn: id("udp-1"),
            dial: id("dial-1"),
            at: at(ms),
            msg: reply_msg(i as u16, name, "192.0.2.1"),
        });
    }
    let trace = recorder.snapshot("dns", at(50));
    let dns = &trace.net_trace.dns_queries[0];
    assert_eq!(dns.dns_query_msgs.len(), 2);
    assert_eq!(dns.dns_reply_msgs.len(), 1);
    assert_eq!(
        trace.net_trace.dropped.map(|d| d.dns_messages),
        Some(1),
        "{:?}",
        trace.net_trace.dropped
    );
}

#[test]
fn dials_connections_and_tunnels_past_the_limit_are_counted() {
    let mut recorder = limited(
        false,
        TraceLimits {
            connections: 1,
            ..TraceLimits::UNLIMITED
        },
    );
    let record = Arc::new(SocketRecord::new(false));
    for (n, ms) in [(1, 0), (2, 10)] {
        let (dial, conn, tls) = (format!("dial-{n}"), format!("tcp-{n}"), format!("tls-{n}"));
        recorder.handle(dial_started(&dial, ms, "example.test:443", None));
        recorder.handle(opened(
            &conn,
            Transport::Tcp,
            &dial,
            SERVER,
            Some(n),
            &record,
            ms,
        ));
        recorder.handle(established(&conn, ms + 1, LOCAL_TCP));
        recorder.handle(tls_started(&tls, &conn, ms + 2, false, None));
    }
    let trace = recorder.snapshot("conns", at(50));
    assert_eq!(trace.net_trace.dials.len(), 1);
    assert_eq!(trace.net_trace.tcp_conns.len(), 1);
    assert_eq!(trace.net_trace.tls_tunnels.len(), 1);
    assert_eq!(trace.net_trace.tcp_conns[0].trace_id, id("tcp-1"));
    assert_eq!(trace.net_trace.dropped.map(|d| d.connections), Some(3));
}

#[test]
fn socket_operations_past_the_limit_are_counted_per_connection_and_in_total() {
    let mut recorder = recorder(false);
    let full = Arc::new(SocketRecord::with_limit(true, 2));
    let roomy = Arc::new(SocketRecord::with_limit(true, 10));
    recorder.handle(dial_started("dial-1", 0, "example.test:443", None));
    recorder.handle(opened(
        "tcp-1",
        Transport::Tcp,
        "dial-1",
        SERVER,
        Some(1),
        &full,
        1,
    ));
    recorder.handle(opened(
        "tcp-2",
        Transport::Tcp,
        "dial-1",
        SERVER,
        Some(2),
        &roomy,
        1,
    ));
    for ms in 10..15 {
        for record in [&full, &roomy] {
            record.add_sent(10);
            record.push_op(RawSocketOp::new(
                SocketOpType::Write,
                at(ms),
                at(ms),
                Ok(10),
            ));
        }
    }
    let trace = recorder.snapshot("ops", at(50));
    let conns = &trace.net_trace.tcp_conns;
    let ops = |i: usize| conns[i].socket_trace.as_ref().expect("ops");
    assert_eq!((ops(0).socket_ops.len(), ops(0).dropped_ops), (2, 3));
    assert_eq!((ops(1).socket_ops.len(), ops(1).dropped_ops), (5, 0));
    // The byte totals count every operation.
    assert_eq!(conns[0].total_sent_bytes, 50);
    assert_eq!(trace.net_trace.dropped.map(|d| d.socket_ops), Some(3));
    let json = serde_json::to_value(&trace).expect("json");
    assert_eq!(json["tcpConns"][0]["socketTrace"]["droppedSocketOps"], 3);
    assert!(
        json["tcpConns"][1]["socketTrace"]
            .get("droppedSocketOps")
            .is_none()
    );
    // The connection carries over into the next trace with room for operations again.
    recorder.clear_at(clock_at(60));
    let trace = recorder.snapshot("ops", at(70));
    assert_eq!(trace.net_trace.dropped, None);
}
