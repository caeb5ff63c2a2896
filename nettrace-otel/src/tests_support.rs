//! A trace for the tests: one request redirected once, over a new connection whose dial
//! resolved its name (one DNS query and reply) and set up TLS, then a second, independent
//! request over the same connection (reused). Times relative to the trace's beginning.
#![allow(dead_code)]

pub(crate) const ONE_REQUEST: &str = r#"{
  "description": "GET https://example.test/old",
  "traceBeginAt": "2026-01-02T03:04:05.000000006Z",
  "traceEndAt": "+200ms",
  "dials": [{"traceID": "dial-1", "dialBeginAt": "+1ms", "dialEndAt": "+30ms",
    "dstAddress": "example.test:443",
    "resolverDials": [{"dialBeginAt": "+2ms", "dialEndAt": "+3ms", "nameserver": "10.0.0.53:53",
      "establishedConn": "udp-1"}],
    "establishedConn": "tcp-1"}],
  "tcpConns": [{"traceID": "tcp-1", "fromDial": "dial-1", "handshakeBeginAt": "+10ms",
    "handshakeEndAt": "+20ms", "connected": true, "connCloseAt": "undefined",
    "addrTuple": {"srcIP": "192.168.1.2", "srcPort": 40000, "dstIP": "192.0.2.1", "dstPort": 443},
    "reused": false, "totalSentBytes": 300, "totalRecvBytes": 5000,
    "socketTrace": {"socketOps": [
      {"type": "write", "callAt": "+31ms", "returnAt": "+32ms", "dataLen": 100},
      {"type": "read", "callAt": "+33ms", "returnAt": "+40ms", "dataLen": 200},
      {"type": "write", "callAt": "+50ms", "returnAt": "+51ms", "dataLen": 100},
      {"type": "read", "callAt": "+52ms", "returnAt": "+60ms", "dataLen": 4000},
      {"type": "read", "callAt": "+61ms", "returnAt": "+70ms", "dataLen": 800}]},
    "kernel": {"states": [{"at": "+10ms", "from": "CLOSE", "to": "SYN_SENT"},
      {"at": "+20ms", "from": "SYN_SENT", "to": "ESTABLISHED"}],
      "srttUs": 250, "retransmits": 1}}],
  "udpConns": [{"traceID": "udp-1", "fromDial": "dial-1", "fromResolver": true,
    "socketCreateAt": "+2ms", "connCloseAt": "+9ms",
    "addrTuple": {"srcIP": "192.168.1.2", "srcPort": 50000, "dstIP": "10.0.0.53", "dstPort": 53},
    "totalSentBytes": 29, "totalRecvBytes": 45}],
  "dnsQueries": [{"traceID": "dns-1", "fromDial": "dial-1", "connection": "udp-1",
    "dnsQueryMsgs": [{"sentAt": "+4ms", "id": 7, "recursionDesired": true, "size": 29,
      "questions": [{"name": "example.test.", "type": "A", "class": 1}]}],
    "dnsReplyMsgs": [{"recvAt": "+8ms", "id": 7, "size": 45, "rcode": "NoError",
      "answers": [{"name": "example.test.", "type": "A", "class": 1, "ttl": 60,
        "resolvedVal": "192.0.2.1"}]}]}],
  "tlsTunnels": [{"traceID": "tls-1", "tcpConn": "tcp-1", "handshakeBeginAt": "+20ms",
    "handshakeEndAt": "+30ms", "cipherSuite": 4865, "negotiatedProto": "http/1.1",
    "serverName": "example.test", "tlsVersion": "TLSv1.3"}],
  "httpRequests": [
    {"traceID": "req-1", "tcpConn": "tcp-1", "tlsTunnel": "tls-1", "protoMajor": 1,
      "protoMinor": 1, "reqSentAt": "+0ms", "reqMethod": "GET",
      "reqURL": "https://example.test/old", "reqContentLen": 0, "respRecvAt": "+40ms",
      "respStatusCode": 301, "RespContentLen": 0},
    {"traceID": "req-2", "tcpConn": "tcp-1", "tlsTunnel": "tls-1", "protoMajor": 1,
      "protoMinor": 1, "reqSentAt": "+45ms", "reqMethod": "GET",
      "reqURL": "https://example.test/new", "reqContentLen": 0, "respRecvAt": "+60ms",
      "respStatusCode": 200, "RespContentLen": 4800},
    {"traceID": "req-3", "tcpConn": "tcp-1", "protoMajor": 1, "protoMinor": 1,
      "reqSentAt": "+100ms", "reqMethod": "POST", "reqURL": "https://example.test:8443/x",
      "reqContentLen": 10, "reqError": "connection reset by peer", "respRecvAt": "undefined",
      "respStatusCode": 0, "RespContentLen": 0}
  ]
}"#;

/// [`ONE_REQUEST`], read.
pub(crate) fn one_request() -> nettrace_model::HttpTrace {
    serde_json::from_str(ONE_REQUEST).expect("the fixture reads")
}
