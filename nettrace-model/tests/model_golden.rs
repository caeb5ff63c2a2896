//! Golden traces: JSON written by Go (or by hand from Go's spec) must read into the model and
//! be written back identically.
//!
//! - `go_readme_example.json`: the trace in Go nettrace's README, written by Go.
//! - `full_trace.json`: every section and optional field filled, written by hand in Go's
//!   `json.MarshalIndent(.., "", "  ")` layout.
//! - `failed_tls.json`: a TLS handshake failing certificate verification (go-nettrace.md
//!   section 2), with the tunnel's `tcpConn` set as it should be (Go leaves it `""`).

use nettrace_model::{
    AnyNetTrace, ConntrackStatus, DnsRCode, DnsResType, HttpTrace, SocketOpType, TcpState,
    Timestamp,
};
use serde_json::Value;
use time::macros::{datetime, offset};

const GOLDENS: [&str; 3] = [
    "go_readme_example.json",
    "full_trace.json",
    "failed_tls.json",
];

/// Keys whose values are timestamps or enum/flag strings.
const STRING_FORM_KEYS: [&str; 22] = [
    "traceBeginAt",
    "traceEndAt",
    "dialBeginAt",
    "dialEndAt",
    "ctxCloseAt",
    "handshakeBeginAt",
    "handshakeEndAt",
    "connCloseAt",
    "socketCreateAt",
    "capturedAt",
    "callAt",
    "returnAt",
    "sentAt",
    "recvAt",
    "reqSentAt",
    "respRecvAt",
    "notBefore",
    "notAfter",
    "tcpState",
    "type",
    "rCode",
    "status",
];

fn golden(name: &str) -> String {
    let path = format!("{}/tests/golden/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn read(name: &str) -> HttpTrace {
    serde_json::from_str(&golden(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// Every string found under one of `keys`, with its JSON pointer (in sorted key order).
fn strings_under(value: &Value, keys: &[&str]) -> Vec<(String, String)> {
    fn walk(value: &Value, path: &str, keys: &[&str], out: &mut Vec<(String, String)>) {
        match value {
            Value::Object(map) => {
                for (k, v) in map {
                    let p = format!("{path}/{k}");
                    if let (true, Value::String(s)) = (keys.contains(&k.as_str()), v) {
                        out.push((p.clone(), s.clone()));
                    }
                    walk(v, &p, keys, out);
                }
            }
            Value::Array(items) => {
                for (i, v) in items.iter().enumerate() {
                    walk(v, &format!("{path}/{i}"), keys, out);
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(value, "", keys, &mut out);
    out
}

/// Go writes conntrack flags in random order; make them comparable.
fn sort_status_flags(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (k, v) in map.iter_mut() {
                if let (true, Value::String(s)) = (k == "status", &mut *v) {
                    let mut flags: Vec<&str> = s.split('|').collect();
                    flags.sort_unstable();
                    *s = flags.join("|");
                } else {
                    sort_status_flags(v);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(sort_status_flags),
        _ => {}
    }
}

#[test]
fn goldens_round_trip_as_json_values() {
    for name in GOLDENS {
        let mut original: Value = serde_json::from_str(&golden(name)).unwrap();
        let mut written = serde_json::to_value(read(name)).unwrap();
        if name == "go_readme_example.json" {
            sort_status_flags(&mut original);
            sort_status_flags(&mut written);
        }
        assert_eq!(written, original, "{name}");
    }
}

#[test]
fn hand_written_goldens_reserialize_byte_for_byte() {
    // Same bytes as Go's MarshalIndent: same key order, omissions, nulls and string forms.
    for name in ["full_trace.json", "failed_tls.json"] {
        let written = serde_json::to_string_pretty(&read(name)).unwrap() + "\n";
        assert_eq!(written, golden(name), "{name}");
    }
}

#[test]
fn go_readme_example_reserializes_byte_for_byte_but_for_go_quirks() {
    // The two differences from Go's bytes, both on purpose: conntrack flags in ascending bit
    // order instead of Go's random map order, and no HTML escaping of '>' (Go writes \u003e).
    let expected = golden("go_readme_example.json")
        .replace("\\u003e", ">")
        .replace(
            "assured|src-nat|confirmed|src-nat-done|dst-nat-done|seen-reply",
            "seen-reply|assured|confirmed|src-nat|src-nat-done|dst-nat-done",
        )
        .replace(
            "confirmed|src-nat-done|dst-nat-done|seen-reply|src-nat",
            "seen-reply|confirmed|src-nat|src-nat-done|dst-nat-done",
        )
        .replace(
            "seen-reply|src-nat|confirmed|src-nat-done|dst-nat-done",
            "seen-reply|confirmed|src-nat|src-nat-done|dst-nat-done",
        );
    let written = serde_json::to_string_pretty(&read("go_readme_example.json")).unwrap() + "\n";
    assert_eq!(written, expected);
}

#[test]
fn timestamp_and_enum_strings_are_written_back_exactly() {
    for name in GOLDENS {
        let original: Value = serde_json::from_str(&golden(name)).unwrap();
        let written = serde_json::to_value(read(name)).unwrap();
        let mut before = strings_under(&original, &STRING_FORM_KEYS);
        let mut after = strings_under(&written, &STRING_FORM_KEYS);
        assert!(before.len() >= 12, "{name}: too few strings checked");
        if name == "go_readme_example.json" {
            // Only the flag order may differ, and ours is ascending.
            for list in [&mut before, &mut after] {
                for (path, s) in list.iter_mut() {
                    if path.ends_with("/status") {
                        let status: ConntrackStatus = s.parse().unwrap();
                        *s = format!("{:#034b}", status.bits());
                    }
                }
            }
        }
        assert_eq!(after, before, "{name}");
    }
}

#[test]
fn go_readme_example_reads_into_typed_values() {
    let trace = read("go_readme_example.json");
    let net = trace.net_trace();
    let begin = net.trace_begin_at.as_absolute().unwrap();
    assert_eq!(begin, datetime!(2022-12-23 10:17:45.260618344 +01:00));
    assert_eq!(begin.offset(), offset!(+01:00));
    assert_eq!(net.trace_end_at, Timestamp::Relative(1241));

    let dial = net.dials.get("tid-3").unwrap();
    assert_eq!(dial.source_ip, "192.168.99.1".parse().ok());
    assert_eq!(dial.resolver_dials.len(), 2);

    let tcp = net.tcp_conns.get(&dial.established_conn).unwrap();
    let conntrack = tcp.conntrack.as_ref().unwrap();
    assert_eq!(conntrack.tcp_state, TcpState::LastAck);
    assert_eq!(
        conntrack.status.to_string(),
        "seen-reply|assured|confirmed|src-nat|src-nat-done|dst-nat-done"
    );
    let ops = &tcp.socket_trace.as_ref().unwrap().socket_ops;
    assert_eq!(ops.len(), 19);
    assert_eq!(ops[0].op_type, SocketOpType::Write);
    assert!(ops[18].return_err.contains("->142.251.36.132:443"));

    for udp in net.udp_conns.iter() {
        assert!(udp.from_resolver);
        assert_eq!(udp.conntrack.as_ref().unwrap().tcp_state, TcpState::None);
    }
    let aaaa = net.dns_queries.get("tid-a").unwrap();
    assert_eq!(
        aaaa.dns_query_msgs[0].questions[0].res_type,
        DnsResType::AAAA
    );
    assert_eq!(aaaa.dns_reply_msgs[0].rcode, DnsRCode::NO_ERROR);
    assert_eq!(
        net.udp_conns
            .get(&aaaa.connection)
            .unwrap()
            .total_recv_bytes,
        71
    );

    let tls = net.tls_tunnels.get("tid-9").unwrap();
    assert_eq!(tls.cipher_suite, 4865);
    assert_eq!(
        tls.peer_certs[0].not_before,
        Timestamp::Absolute(datetime!(2022-11-28 08:19:01 UTC))
    );
    let req = trace.http_requests.get("tid-2").unwrap();
    assert_eq!(
        (req.proto_major, req.resp_status_code, req.resp_content_len),
        (2, 200, 15381)
    );
    assert!(
        req.tls_tunnel.is_empty(),
        "the older Go README omits tlsTunnel"
    );
}

#[test]
fn full_trace_references_resolve() {
    let trace = read("full_trace.json");
    let net = &trace.net_trace;
    assert_eq!(net.session_uuid, "6f1c2a9e-3b4d-4e8f-9a01-b2c3d4e5f607");
    for dial in net.dials.iter() {
        for resolver in &dial.resolver_dials {
            if !resolver.established_conn.is_empty() {
                assert!(net.udp_conns.get(&resolver.established_conn).is_some());
            }
        }
        if !dial.established_conn.is_empty() {
            assert!(net.tcp_conns.get(&dial.established_conn).is_some());
        }
    }
    for query in net.dns_queries.iter() {
        assert!(net.dials.get(&query.from_dial).is_some());
        assert!(net.udp_conns.get(&query.connection).is_some());
    }
    for tunnel in net.tls_tunnels.iter() {
        assert!(net.tcp_conns.get(&tunnel.tcp_conn).is_some());
    }
    for req in trace.http_requests.iter() {
        assert!(net.tcp_conns.get(&req.tcp_conn).is_some());
    }
    let failed = net.tcp_conns.get("tid-11").unwrap();
    assert!(!failed.connected);
    assert_eq!(failed.addr_tuple.src_ip, None);
    let reused = net.tcp_conns.get("tid-1").unwrap();
    assert!(reused.reused);
    assert!(reused.handshake_begin_at.as_absolute().is_some());
    let req = trace.http_requests.get("tid-2").unwrap();
    assert_eq!(
        req.req_header.get("authorization").unwrap().field_val_len,
        47
    );
    assert_eq!(req.proxy_tls_tunnel, "tid-12");
    let answers = &net.dns_queries.get("tid-7").unwrap().dns_reply_msgs[0].answers;
    let types: Vec<DnsResType> = answers.iter().map(|a| a.res_type).collect();
    assert_eq!(
        types,
        [DnsResType::CNAME, DnsResType::A, DnsResType::UNRECOGNIZED]
    );
}

#[test]
fn failed_tls_trace_links_the_tunnel_to_its_connection() {
    let trace = read("failed_tls.json");
    let net = &trace.net_trace;
    assert!(net.udp_conns.is_empty() && net.dns_queries.is_empty());
    let req = trace.http_requests.get("tid-2").unwrap();
    let tunnel = net.tls_tunnels.get(&req.tls_tunnel).unwrap();
    assert_eq!(tunnel.tcp_conn, req.tcp_conn, "Go's bug leaves this empty");
    assert!(!tunnel.handshake_err.is_empty());
    assert_eq!((tunnel.cipher_suite, tunnel.server_name.as_str()), (0, ""));
    assert_eq!(req.resp_recv_at, Timestamp::Undefined);
    assert_eq!(
        tunnel.peer_certs[0].not_before,
        Timestamp::Absolute(datetime!(1970-01-01 0:00 UTC))
    );
    let json = serde_json::to_string(&trace).unwrap();
    assert!(json.contains(r#""udpConns":null,"dnsQueries":null,"tlsTunnels":[{"#));
}
