//! The µs times (`preciseUs`) and the response body's first and last byte times.
use super::*;

#[test]
fn precise_times_refine_every_timestamp() {
    let mut recorder = recorder(false);
    let (body, _, mut body_response) = BodyCounters::with_writers(std::time::Instant::now());
    let tcp = Arc::new(SocketRecord::new(false));
    let us = |us: u64| at(0) + std::time::Duration::from_micros(us);
    recorder.handle(dial_started("dial-1", 0, "example.test:443", Some("req-1")));
    recorder.handle(opened(
        "tcp-1",
        Transport::Tcp,
        "dial-1",
        SERVER,
        Some(12),
        &tcp,
        1,
    ));
    recorder.handle(Event::ConnEstablished {
        conn: id("tcp-1"),
        at: us(1_234),
        local: addr(LOCAL_TCP),
    });
    recorder.handle(dial_ended("dial-1", 2, Ok("tcp-1")));
    recorder.handle(request_started("req-1", 0, "http://example.test/", &body));
    recorder.handle(Event::HttpResponse {
        req: id("req-1"),
        at: us(3_456),
        conn: Some(conn_info("tcp-1", None, None)),
        proto: (1, 1),
        status: 200,
        header: None,
    });
    body_response.first_read(us(3_500));
    body_response.last_read(us(2_703_020));

    let trace = recorder.snapshot("precise", at(3000));
    let req = &trace.http_requests[0];
    assert_eq!(req.resp_recv_at, rel(3));
    assert_eq!(req.precise_us.get("respRecvAt"), Some(3_456));
    assert_eq!(req.precise_us.get("reqSentAt"), Some(0));
    assert_eq!(req.resp_body_first_byte_at, rel(3));
    assert_eq!(req.resp_body_last_byte_at, rel(2703));
    assert_eq!(req.precise_us.get("respBodyLastByteAt"), Some(2_703_020));
    let conn = &trace.net_trace.tcp_conns[0];
    assert_eq!(conn.precise_us.get("handshakeEndAt"), Some(1_234));
    assert_eq!(
        trace.net_trace.dials[0].precise_us.get("dialEndAt"),
        Some(2_000)
    );

    // The phases read them: microseconds, and a transfer of 2.7 s.
    let phases = &crate::model::phases::request_phases(&trace)[0];
    assert_eq!(phases.precision, crate::model::phases::Precision::Micros);
    assert_eq!(
        phases.wait.map(|s| (s.start_us, s.end_us)),
        Some((1_234, 3_456))
    );
    assert_eq!(phases.transfer.map(|s| s.duration_us()), Some(2_699_564));

    // In JSON: the extra keys, Go's keys unchanged.
    let json = serde_json::to_value(req).expect("json");
    assert_eq!(json["respBodyLastByteAt"], "+2703ms");
    assert_eq!(json["preciseUs"]["respRecvAt"], 3456);
    assert_eq!(json["respRecvAt"], "+3ms");
}
