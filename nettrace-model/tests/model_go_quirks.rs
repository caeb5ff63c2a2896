//! Reading what Go writes, quirks included, and what this model writes instead of Go's bugs.

use nettrace_model::{
    ConntrackStatus, DnsRCode, HttpReqTrace, HttpTrace, TcpConnTrace, TcpState, Timestamp,
};
use serde_json::{Value, json};

fn tcp_with_state(state: &str) -> Value {
    json!({
        "traceID": "tid-8", "fromDial": "tid-3", "handshakeBeginAt": "+1ms",
        "handshakeEndAt": "+2ms", "connected": true, "connCloseAt": "undefined",
        "addrTuple": {"srcIP": "<nil>", "srcPort": 0, "dstIP": "10.0.0.1", "dstPort": 443},
        "reused": false, "totalSentBytes": 0, "totalRecvBytes": 0,
        "conntrack": {"capturedAt": "+3ms", "status": "confirmed|seen-reply", "tcpState": state,
            "mark": 0,
            "addrOrig": {"srcIP": "10.0.0.2", "srcPort": 1, "dstIP": "10.0.0.1", "dstPort": 443},
            "addrReply": {"srcIP": "10.0.0.1", "srcPort": 443, "dstIP": "10.0.0.2", "dstPort": 1},
            "packetsSent": 1, "packetsRecv": 1, "bytesSent": 60, "bytesRecv": 60}
    })
}

#[test]
fn tcp_state_syn_recv_is_read_in_both_spellings_and_written_as_go_does() {
    for spelling in ["sync-recv", "syn-recv"] {
        let conn: TcpConnTrace = serde_json::from_value(tcp_with_state(spelling)).unwrap();
        let conntrack = conn.conntrack.as_ref().unwrap();
        assert_eq!(conntrack.tcp_state, TcpState::SynRecv, "{spelling}");
        let written = serde_json::to_value(&conn).unwrap();
        assert_eq!(written["conntrack"]["tcpState"], "sync-recv");
    }
}

#[test]
fn go_nil_source_ip_is_read_as_unknown_and_written_empty() {
    let conn: TcpConnTrace = serde_json::from_value(tcp_with_state("established")).unwrap();
    assert_eq!(conn.addr_tuple.src_ip, None);
    assert_eq!(conn.addr_tuple.src(), None);
    let written = serde_json::to_value(&conn).unwrap();
    assert_eq!(written["addrTuple"]["srcIP"], "");
    assert_eq!(written["conntrack"]["status"], "seen-reply|confirmed");
}

#[test]
fn null_and_empty_lists_read_the_same() {
    // json.Marshal writes nil slices as null; ExportHTTPTraceToJSON writes [] and puts
    // httpRequests before tlsTunnels. Both must read the same.
    let marshal = json!({"description": "d", "traceBeginAt": "2026-01-01T10:00:00Z",
        "traceEndAt": "+1ms", "dials": null, "tcpConns": null, "udpConns": null,
        "dnsQueries": null, "tlsTunnels": null, "httpRequests": null});
    let export = r#"{"description":"d","traceBeginAt":"2026-01-01T10:00:00Z","traceEndAt":"+1ms",
        "dials":[],"tcpConns":[],"udpConns":[],"dnsQueries":[],"httpRequests":[],"tlsTunnels":[]}"#;
    let a: HttpTrace = serde_json::from_value(marshal.clone()).unwrap();
    let b: HttpTrace = serde_json::from_str(export).unwrap();
    assert_eq!(a, b);
    assert_eq!(serde_json::to_value(&b).unwrap(), marshal);

    let nested = json!({"traceID": "tid-1", "dnsQueryMsgs": [{"questions": []}],
        "dnsReplyMsgs": [{"answers": null}]});
    let query: nettrace_model::DnsQueryTrace = serde_json::from_value(nested).unwrap();
    assert!(query.dns_query_msgs[0].questions.is_empty());
    let written = serde_json::to_value(&query).unwrap();
    assert_eq!(written["dnsQueryMsgs"][0]["questions"], Value::Null);
}

#[test]
fn null_timestamps_enums_and_ids_read_as_unset() {
    let req: HttpReqTrace = serde_json::from_value(json!({"traceID": null, "tcpConn": null,
        "reqSentAt": null, "respRecvAt": "", "RespContentLen": 3}))
    .unwrap();
    assert!(req.trace_id.is_empty() && req.tcp_conn.is_empty());
    assert_eq!(req.req_sent_at, Timestamp::Undefined);
    assert_eq!(req.resp_recv_at, Timestamp::Undefined);
    let written = serde_json::to_value(&req).unwrap();
    assert_eq!(written["reqSentAt"], "undefined");
    assert_eq!(written["RespContentLen"], 3);

    let conn: TcpConnTrace = serde_json::from_value(json!({"conntrack": {"status": null,
        "tcpState": null, "capturedAt": null}}))
    .unwrap();
    let conntrack = conn.conntrack.unwrap();
    assert_eq!(conntrack.status, ConntrackStatus::default());
    assert_eq!(conntrack.tcp_state, TcpState::None);
    assert_eq!(conntrack.captured_at, Timestamp::Undefined);
}

#[test]
fn negative_relative_timestamps_are_rejected_not_mangled() {
    let read = |ts: &str| serde_json::from_value::<HttpReqTrace>(json!({"reqSentAt": ts}));
    assert_eq!(read("-0ms").unwrap().req_sent_at, Timestamp::Relative(0));
    let err = read("-5ms").unwrap_err().to_string();
    assert!(err.contains("negative relative timestamp"), "{err}");
}

#[test]
fn unknown_rcode_name_reads_as_unrecognized_not_no_error() {
    let reply: nettrace_model::DnsReplyMsg =
        serde_json::from_value(json!({"rCode": "bad-cookie"})).unwrap();
    assert_eq!(reply.rcode, DnsRCode::UNRECOGNIZED);
    assert_eq!(
        serde_json::to_value(&reply).unwrap()["rCode"],
        "unrecognized-rcode"
    );
}

#[test]
fn resp_content_len_key_keeps_go_casing() {
    let req: HttpReqTrace = serde_json::from_value(json!({"respContentLen": 9})).unwrap();
    assert_eq!(req.resp_content_len, 9);
    let written = serde_json::to_string(&req).unwrap();
    assert!(written.contains(r#""RespContentLen":9"#), "{written}");
    assert!(!written.contains("respContentLen"));
}

#[test]
fn unknown_keys_are_ignored_for_forward_compatibility() {
    let trace: HttpTrace = serde_json::from_value(json!({"description": "x",
        "netTracePath": "/tmp/x", "tcpConns": [{"traceID": "tid-1", "kernel": {"rtt": 5}}]}))
    .unwrap();
    assert_eq!(
        trace.net_trace.tcp_conns.get("tid-1").map(|c| c.reused),
        Some(false)
    );
}
