//! Shared helpers of the scenario tests of the traced HTTP client: clients built against the
//! loopback fixtures, bounded waits, look-ups by ID, and [`check_trace`], the invariants every
//! trace must hold (unique IDs, references that resolve, timestamps ordered and within the
//! trace, byte totals equal to the socket operations).
//!
//! ```no_run
//! # async fn demo() {
//! use nettrace_tests::scenario::{self, EXAMPLE_HOST};
//! let dns = scenario::example_dns().await;
//! let server = scenario::plain_server().await;
//! let client = scenario::client(scenario::config_with_dns(&dns), scenario::full_options());
//! let (status, _body) = scenario::get_ok(&client, &server.url_with_host(EXAMPLE_HOST, "/")).await;
//! assert_eq!(status, 200);
//! let trace = scenario::trace(&client, "demo");
//! assert_eq!(trace.http_requests.len(), 1);
//! # }
//! ```
use std::collections::HashSet;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use bytes::Bytes;
use nettrace::client::{
    HttpClient, HttpClientConfig, HttpReqTraceOptions, RequestError, TraceOptions,
};
use nettrace::model::{
    DialTrace, HdrFieldsOpt, HttpReqTrace, HttpTrace, SocketOpType, SocketTrace, TcpConnTrace,
    Timestamp, TlsTunnelTrace, TraceId, UdpConnTrace,
};
use nettrace::tls::TlsSettings;
use time::OffsetDateTime;

use crate::fixtures::dns::{DnsServer, Zone};
use crate::fixtures::http::{HttpOptions, HttpServer};
use crate::fixtures::tls::{LeafKind, ServerTlsOptions, TestPki};

/// The name the example zone resolves to 127.0.0.1 (one of the stock leaves' names).
pub const EXAMPLE_HOST: &str = "example.test";

/// The longest any single client operation may take in a scenario before it counts as a hang.
pub const BOUND: Duration = Duration::from_secs(10);

/// Awaits `fut`, panicking with `what` if it takes longer than [`BOUND`].
pub async fn bounded<F: Future>(what: &str, fut: F) -> F::Output {
    bounded_for(BOUND, what, fut).await
}

/// Awaits `fut`, panicking with `what` if it takes longer than `limit`.
pub async fn bounded_for<F: Future>(limit: Duration, what: &str, fut: F) -> F::Output {
    match tokio::time::timeout(limit, fut).await {
        Ok(output) => output,
        Err(_) => panic!("{what}: still running after {limit:?} (hang)"),
    }
}

/// Socket, DNS message and HTTP tracing with header values: everything there is to record.
pub fn full_options() -> TraceOptions {
    options_with_headers(HdrFieldsOpt::WithValues)
}

/// Socket, DNS message and HTTP tracing, headers captured as `mode` says.
pub fn options_with_headers(mode: HdrFieldsOpt) -> TraceOptions {
    TraceOptions {
        sock_trace: true,
        dns_query_trace: true,
        http_req_trace: Some(HttpReqTraceOptions {
            header_fields: mode,
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// A configuration resolving through `dns` only.
pub fn config_with_dns(dns: &DnsServer) -> HttpClientConfig {
    HttpClientConfig {
        nameservers: vec![dns.addr()],
        ..Default::default()
    }
}

/// TLS settings trusting only the test CA of `pki`.
pub fn trust(pki: &TestPki) -> TlsSettings {
    TlsSettings {
        roots: Some(pki.root_store()),
        ..Default::default()
    }
}

/// A configuration resolving through `dns` and trusting the test CA of `pki`.
pub fn config_with_dns_and_pki(dns: &DnsServer, pki: &TestPki) -> HttpClientConfig {
    HttpClientConfig {
        tls: trust(pki),
        ..config_with_dns(dns)
    }
}

/// Builds a client, panicking with the error if it cannot be built.
pub fn client(config: HttpClientConfig, options: TraceOptions) -> HttpClient {
    HttpClient::new(config, options).unwrap_or_else(|e| panic!("building the client: {e:?}"))
}

/// A DNS server with [`EXAMPLE_HOST`] -> 127.0.0.1 (no AAAA record).
pub async fn example_dns() -> DnsServer {
    dns_with(Zone::new().a(EXAMPLE_HOST, [Ipv4Addr::LOCALHOST])).await
}

/// A DNS server answering from `zone`.
pub async fn dns_with(zone: Zone) -> DnsServer {
    DnsServer::start(zone)
        .await
        .unwrap_or_else(|e| panic!("starting the DNS fixture: {e:?}"))
}

/// A plain HTTP server (HTTP/1.1 and h2c, keep-alive) on 127.0.0.1.
pub async fn plain_server() -> HttpServer {
    HttpServer::plain()
        .await
        .unwrap_or_else(|e| panic!("starting the HTTP fixture: {e:?}"))
}

/// An HTTPS server presenting the stock leaf `kind` with `tls` options, on 127.0.0.1.
pub async fn https_server(pki: &TestPki, kind: LeafKind, tls: &ServerTlsOptions) -> HttpServer {
    let config = pki
        .leaf(kind)
        .and_then(|leaf| leaf.server_config(tls))
        .unwrap_or_else(|e| panic!("server TLS config for {kind:?}: {e:?}"));
    HttpServer::start(HttpOptions::https(config))
        .await
        .unwrap_or_else(|e| panic!("starting the HTTPS fixture: {e:?}"))
}

/// A fresh test PKI.
pub fn pki() -> TestPki {
    TestPki::new().unwrap_or_else(|e| panic!("generating the test PKI: {e:?}"))
}

/// The trace and captures once the kernel has closed every TCP connection of `client` (so
/// that both FINs are captured and the final states recorded). Nothing can be awaited for
/// that, so the trace is polled every 5 ms, within [`BOUND`].
pub async fn trace_once_closed(
    client: &HttpClient,
) -> (HttpTrace, Vec<nettrace::capture::PacketCapture>) {
    let deadline = std::time::Instant::now() + BOUND;
    loop {
        let (trace, captures) = client
            .get_trace("once closed")
            .unwrap_or_else(|e| panic!("get_trace: {e}"));
        let closed = trace.net_trace.tcp_conns.iter().all(|conn| {
            conn.kernel
                .as_ref()
                .and_then(|k| k.states.last())
                .is_some_and(|s| s.to == "close")
        });
        if closed {
            return (trace, captures);
        }
        assert!(
            std::time::Instant::now() < deadline,
            "connection not closed in the kernel: {}",
            dump(&trace)
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// `GET url` and the whole body, bounded; panics if the request or the body fails.
pub async fn get_ok(client: &HttpClient, url: &str) -> (u16, Bytes) {
    bounded(&format!("GET {url}"), async {
        let response = client
            .get(url)
            .await
            .unwrap_or_else(|e| panic!("GET {url} failed: {e}"));
        let status = response.status().as_u16();
        let body = response
            .into_body()
            .bytes()
            .await
            .unwrap_or_else(|e| panic!("GET {url}: reading the body failed: {e}"));
        (status, body)
    })
    .await
}

/// `GET url`, bounded, expecting the request itself to fail; returns the error.
pub async fn get_err(client: &HttpClient, url: &str) -> RequestError {
    match bounded(&format!("GET {url}"), client.get(url)).await {
        Ok(response) => panic!("GET {url} should fail, got {}", response.status()),
        Err(error) => error,
    }
}

/// The `HTTPReqTrace` that `error` names ([`RequestError::trace_id`]), checked to record the
/// error's text as its `reqError` and the error's URL as its `reqURL`.
pub fn failed_request<'a>(trace: &'a HttpTrace, error: &RequestError) -> &'a HttpReqTrace {
    let id = error
        .trace_id()
        .unwrap_or_else(|| panic!("{error:?} names no request record"));
    let req = trace
        .http_requests
        .iter()
        .find(|r| &r.trace_id == id)
        .unwrap_or_else(|| panic!("no HTTP request {id} for {error:?}:\n{}", dump(trace)));
    assert_eq!(req.req_error, error.to_string(), "{}", dump(trace));
    let url = error
        .url()
        .unwrap_or_else(|| panic!("{error:?} has no URL"));
    assert_eq!(req.req_url, url.to_string(), "{}", dump(trace));
    req
}

/// The trace so far, checked with [`check_trace`]; panics if the client is closed.
pub fn trace(client: &HttpClient, description: &str) -> HttpTrace {
    let (trace, _captures) = client
        .get_trace(description)
        .unwrap_or_else(|e| panic!("get_trace: {e:?}"));
    assert_eq!(trace.net_trace.description, description);
    check_trace(&trace);
    trace
}

/// The trace as pretty JSON, for failure messages.
pub fn dump(trace: &HttpTrace) -> String {
    serde_json::to_string_pretty(trace).unwrap_or_else(|e| format!("<unserializable: {e}>"))
}

/// The only element of `items`, panicking with `what` and the trace otherwise.
pub fn only<'a, T>(items: &'a [T], what: &str, trace: &HttpTrace) -> &'a T {
    match items {
        [one] => one,
        _ => panic!(
            "expected exactly one {what}, found {}:\n{}",
            items.len(),
            dump(trace)
        ),
    }
}

/// The TCP connection `id`, panicking if the trace has none.
pub fn tcp_conn<'a>(trace: &'a HttpTrace, id: &TraceId) -> &'a TcpConnTrace {
    trace
        .net_trace
        .tcp_conns
        .get(id)
        .unwrap_or_else(|| panic!("no TCP connection {id:?} in\n{}", dump(trace)))
}

/// The UDP connection `id`, panicking if the trace has none.
pub fn udp_conn<'a>(trace: &'a HttpTrace, id: &TraceId) -> &'a UdpConnTrace {
    trace
        .net_trace
        .udp_conns
        .get(id)
        .unwrap_or_else(|| panic!("no UDP connection {id:?} in\n{}", dump(trace)))
}

/// The dial `id`, panicking if the trace has none.
pub fn dial<'a>(trace: &'a HttpTrace, id: &TraceId) -> &'a DialTrace {
    trace
        .net_trace
        .dials
        .get(id)
        .unwrap_or_else(|| panic!("no dial {id:?} in\n{}", dump(trace)))
}

/// The TLS tunnel `id`, panicking if the trace has none.
pub fn tls_tunnel<'a>(trace: &'a HttpTrace, id: &TraceId) -> &'a TlsTunnelTrace {
    trace
        .net_trace
        .tls_tunnels
        .get(id)
        .unwrap_or_else(|| panic!("no TLS tunnel {id:?} in\n{}", dump(trace)))
}

/// The HTTP request whose URL is `url`, panicking unless there is exactly one.
pub fn request_to<'a>(trace: &'a HttpTrace, url: &str) -> &'a HttpReqTrace {
    let found: Vec<&HttpReqTrace> = trace
        .http_requests
        .iter()
        .filter(|r| r.req_url == url)
        .collect();
    match found[..] {
        [one] => one,
        _ => panic!(
            "expected one request to {url}, found {}:\n{}",
            found.len(),
            dump(trace)
        ),
    }
}

/// The time of `ts` in the trace: relative ones from `traceBeginAt`, absolute ones as they are.
/// `None` if undefined.
pub fn time_of(trace: &HttpTrace, ts: &Timestamp) -> Option<OffsetDateTime> {
    let begin = begin_of(trace);
    match ts {
        Timestamp::Undefined => None,
        Timestamp::Relative(ms) => Some(begin + time::Duration::milliseconds(i64::from(*ms))),
        Timestamp::Absolute(at) => Some(*at),
    }
}

/// `traceBeginAt`, which must be absolute.
pub fn begin_of(trace: &HttpTrace) -> OffsetDateTime {
    trace
        .net_trace
        .trace_begin_at
        .as_absolute()
        .unwrap_or_else(|| panic!("traceBeginAt is not absolute:\n{}", dump(trace)))
}

/// `traceEndAt` as a time.
pub fn end_of(trace: &HttpTrace) -> OffsetDateTime {
    time_of(trace, &trace.net_trace.trace_end_at)
        .unwrap_or_else(|| panic!("traceEndAt is undefined:\n{}", dump(trace)))
}

/// Relative timestamps are whole milliseconds (truncated), absolute ones exact: comparing the
/// two needs this much slack.
const SLACK: time::Duration = time::Duration::milliseconds(1);

/// Asserts `a <= b` when both are defined (`what` names them).
pub fn assert_not_after(trace: &HttpTrace, a: &Timestamp, b: &Timestamp, what: &str) {
    if let (Some(ta), Some(tb)) = (time_of(trace, a), time_of(trace, b)) {
        let slack = if matches!((a, b), (Timestamp::Relative(_), Timestamp::Relative(_))) {
            time::Duration::ZERO
        } else {
            SLACK
        };
        assert!(
            ta <= tb + slack,
            "{what}: {a} is after {b}\n{}",
            dump(trace)
        );
    }
}

/// Asserts `ts` is defined.
pub fn assert_defined(trace: &HttpTrace, ts: &Timestamp, what: &str) {
    assert!(!ts.is_undefined(), "{what} is undefined\n{}", dump(trace));
}

/// Asserts `ts`, if defined, is not after the end of the trace and, if relative, that it is
/// (relative timestamps cannot be before the beginning).
fn assert_within_trace(trace: &HttpTrace, ts: &Timestamp, what: &str) {
    assert_not_after(trace, ts, &trace.net_trace.trace_end_at, what);
    if let Timestamp::Absolute(at) = ts {
        // Only records carried over from an earlier trace are absolute: before this one.
        assert!(
            *at <= begin_of(trace) + SLACK,
            "{what}: absolute {ts} is not before traceBeginAt\n{}",
            dump(trace)
        );
    }
}

/// Checks what every trace must satisfy, whatever the scenario:
/// - `traceBeginAt` absolute, `traceEndAt` relative;
/// - every record has a non-empty ID, unique across the trace;
/// - references resolve: dial -> TCP conn, resolver dial -> UDP/TCP conn from the resolver,
///   conn -> dial (except conns carried over from an earlier trace, `reused`), DNS query ->
///   dial and resolver conn, TLS tunnel -> TCP conn, HTTP request -> conn and tunnels;
/// - timestamps are within the trace and ordered (begin <= end, TLS within its TCP conn,
///   resolver dials within their dial, DNS messages and socket operations within their conn);
/// - with socket tracing, operations are ordered and their lengths add up to the byte totals.
pub fn check_trace(trace: &HttpTrace) {
    let net = &trace.net_trace;
    begin_of(trace);
    assert!(
        matches!(net.trace_end_at, Timestamp::Relative(_)),
        "traceEndAt {} is not relative\n{}",
        net.trace_end_at,
        dump(trace)
    );
    check_unique_ids(trace);
    for dial in net.dials.iter() {
        check_dial(trace, dial);
    }
    for conn in net.tcp_conns.iter() {
        check_tcp(trace, conn);
    }
    for conn in net.udp_conns.iter() {
        check_udp(trace, conn);
    }
    check_dns(trace);
    for tunnel in net.tls_tunnels.iter() {
        check_tls(trace, tunnel);
    }
    for req in trace.http_requests.iter() {
        check_http(trace, req);
    }
}

fn check_unique_ids(trace: &HttpTrace) {
    let net = &trace.net_trace;
    let ids = net
        .dials
        .iter()
        .map(|d| &d.trace_id)
        .chain(net.tcp_conns.iter().map(|c| &c.trace_id))
        .chain(net.udp_conns.iter().map(|c| &c.trace_id))
        .chain(net.dns_queries.iter().map(|q| &q.trace_id))
        .chain(net.tls_tunnels.iter().map(|t| &t.trace_id))
        .chain(trace.http_requests.iter().map(|r| &r.trace_id));
    let mut seen = HashSet::new();
    for id in ids {
        assert!(!id.is_empty(), "a record without ID\n{}", dump(trace));
        assert!(
            seen.insert(id.clone()),
            "ID {id} used twice\n{}",
            dump(trace)
        );
    }
}

fn check_dial(trace: &HttpTrace, dial: &DialTrace) {
    let id = &dial.trace_id;
    assert_defined(
        trace,
        &dial.dial_begin_at,
        &format!("dial {id} dialBeginAt"),
    );
    assert_within_trace(trace, &dial.dial_begin_at, &format!("dial {id} begin"));
    assert_within_trace(trace, &dial.dial_end_at, &format!("dial {id} end"));
    assert_within_trace(trace, &dial.ctx_close_at, &format!("dial {id} ctxCloseAt"));
    assert_not_after(
        trace,
        &dial.dial_begin_at,
        &dial.dial_end_at,
        &format!("dial {id} begin/end"),
    );
    assert_not_after(
        trace,
        &dial.dial_begin_at,
        &dial.ctx_close_at,
        &format!("dial {id} begin/ctxClose"),
    );
    assert!(!dial.dst_address.is_empty(), "dial {id} without dstAddress");
    if !dial.established_conn.is_empty() {
        assert!(
            dial.dial_err.is_empty(),
            "dial {id} has both a connection and an error\n{}",
            dump(trace)
        );
        let conn = tcp_conn(trace, &dial.established_conn);
        assert_eq!(
            &conn.from_dial, id,
            "dial {id}: its connection is from another dial"
        );
        assert!(conn.connected, "dial {id}: established conn not connected");
        assert!(
            !conn.from_resolver,
            "dial {id}: established conn from resolver"
        );
    }
    for (i, rd) in dial.resolver_dials.iter().enumerate() {
        let what = format!("dial {id} resolver dial #{i} ({})", rd.nameserver);
        assert!(!rd.nameserver.is_empty(), "{what}: no nameserver");
        assert_defined(trace, &rd.dial_begin_at, &format!("{what} begin"));
        assert_not_after(trace, &dial.dial_begin_at, &rd.dial_begin_at, &what);
        assert_not_after(trace, &rd.dial_begin_at, &rd.dial_end_at, &what);
        assert_not_after(trace, &rd.dial_end_at, &dial.dial_end_at, &what);
        if rd.established_conn.is_empty() {
            continue;
        }
        assert!(
            rd.dial_err.is_empty(),
            "{what}: both a connection and an error"
        );
        let (from_dial, from_resolver) = match (
            net_tcp(trace, &rd.established_conn),
            net_udp(trace, &rd.established_conn),
        ) {
            (Some(tcp), None) => (&tcp.from_dial, tcp.from_resolver),
            (None, Some(udp)) => (&udp.from_dial, udp.from_resolver),
            _ => panic!(
                "{what}: connection {} is not exactly one UDP or TCP conn\n{}",
                rd.established_conn,
                dump(trace)
            ),
        };
        assert_eq!(from_dial, id, "{what}: its connection is from another dial");
        assert!(from_resolver, "{what}: its connection is not fromResolver");
    }
}

fn net_tcp<'a>(trace: &'a HttpTrace, id: &TraceId) -> Option<&'a TcpConnTrace> {
    trace.net_trace.tcp_conns.get(id)
}

fn net_udp<'a>(trace: &'a HttpTrace, id: &TraceId) -> Option<&'a UdpConnTrace> {
    trace.net_trace.udp_conns.get(id)
}

/// The end of a connection's life in this trace: its close, or the end of the trace.
fn life_end(trace: &HttpTrace, close: &Timestamp) -> Timestamp {
    if close.is_undefined() {
        trace.net_trace.trace_end_at
    } else {
        *close
    }
}

/// Checks a connection's dial reference: a resolver conn is some resolver dial's connection.
fn check_conn_dial(trace: &HttpTrace, id: &TraceId, from_dial: &TraceId, from_resolver: bool) {
    assert!(
        !from_dial.is_empty(),
        "conn {id} has no fromDial\n{}",
        dump(trace)
    );
    let parent = dial(trace, from_dial);
    if from_resolver {
        assert!(
            parent
                .resolver_dials
                .iter()
                .any(|rd| &rd.established_conn == id),
            "resolver conn {id} is no resolver dial of {from_dial}\n{}",
            dump(trace)
        );
    }
}

fn check_tcp(trace: &HttpTrace, conn: &TcpConnTrace) {
    let id = &conn.trace_id;
    if !conn.reused {
        check_conn_dial(trace, id, &conn.from_dial, conn.from_resolver);
    }
    assert_defined(trace, &conn.handshake_begin_at, &format!("TCP {id} begin"));
    for (ts, what) in [
        (&conn.handshake_begin_at, "handshakeBeginAt"),
        (&conn.handshake_end_at, "handshakeEndAt"),
        (&conn.conn_close_at, "connCloseAt"),
    ] {
        if !conn.reused {
            assert!(
                !matches!(ts, Timestamp::Absolute(_)),
                "TCP {id} {what} absolute in the trace it was opened in\n{}",
                dump(trace)
            );
        }
        assert_within_trace(trace, ts, &format!("TCP {id} {what}"));
    }
    let what = format!("TCP {id} timestamps");
    assert_not_after(
        trace,
        &conn.handshake_begin_at,
        &conn.handshake_end_at,
        &what,
    );
    assert_not_after(trace, &conn.handshake_end_at, &conn.conn_close_at, &what);
    assert_not_after(trace, &conn.handshake_begin_at, &conn.conn_close_at, &what);
    let tuple = conn.addr_tuple;
    assert!(
        tuple.dst_ip.is_some() && tuple.dst_port != 0,
        "TCP {id} without destination\n{}",
        dump(trace)
    );
    if conn.connected {
        assert_defined(trace, &conn.handshake_end_at, &format!("TCP {id} end"));
        assert!(
            tuple.src_ip.is_some() && tuple.src_port != 0,
            "connected TCP {id} without source address\n{}",
            dump(trace)
        );
    } else {
        assert_eq!(
            (conn.total_sent_bytes, conn.total_recv_bytes),
            (0, 0),
            "TCP {id} never connected but moved bytes"
        );
    }
    if let Some(ops) = &conn.socket_trace {
        check_ops(
            trace,
            &format!("TCP {id}"),
            ops,
            (
                &conn.handshake_begin_at,
                &life_end(trace, &conn.conn_close_at),
            ),
            (conn.total_sent_bytes, conn.total_recv_bytes),
            // A carried-over connection lists only this trace's operations; its totals go on.
            !conn.reused,
        );
    }
}

fn check_udp(trace: &HttpTrace, conn: &UdpConnTrace) {
    let id = &conn.trace_id;
    check_conn_dial(trace, id, &conn.from_dial, conn.from_resolver);
    assert_defined(trace, &conn.socket_create_at, &format!("UDP {id} create"));
    assert_within_trace(trace, &conn.socket_create_at, &format!("UDP {id} create"));
    assert_within_trace(trace, &conn.conn_close_at, &format!("UDP {id} close"));
    assert_not_after(
        trace,
        &conn.socket_create_at,
        &conn.conn_close_at,
        &format!("UDP {id} create/close"),
    );
    let tuple = conn.addr_tuple;
    assert!(
        tuple.dst_ip.is_some() && tuple.dst_port != 0,
        "UDP {id} without destination\n{}",
        dump(trace)
    );
    if let Some(ops) = &conn.socket_trace {
        check_ops(
            trace,
            &format!("UDP {id}"),
            ops,
            (
                &conn.socket_create_at,
                &life_end(trace, &conn.conn_close_at),
            ),
            (conn.total_sent_bytes, conn.total_recv_bytes),
            true,
        );
    }
}

/// Socket operations: each within the connection's life, `callAt <= returnAt`, in call order,
/// and their lengths add up to the totals `(sent, received)` (`exact`, unless the limit
/// dropped some), or to at most them.
fn check_ops(
    trace: &HttpTrace,
    conn: &str,
    ops: &SocketTrace,
    (open, close): (&Timestamp, &Timestamp),
    (sent, received): (u64, u64),
    exact: bool,
) {
    let mut previous: Option<&Timestamp> = None;
    let (mut written, mut read) = (0u64, 0u64);
    for (i, op) in ops.socket_ops.iter().enumerate() {
        let what = format!("{conn} socket op #{i} ({})", op.op_type);
        assert_defined(trace, &op.call_at, &what);
        assert_defined(trace, &op.return_at, &what);
        assert_not_after(trace, open, &op.call_at, &format!("{what} before open"));
        assert_not_after(trace, &op.call_at, &op.return_at, &what);
        assert_not_after(trace, &op.return_at, close, &format!("{what} after close"));
        // "The operations in the order they were called" (`SocketTrace::socket_ops`).
        if let Some(previous) = previous {
            assert_not_after(
                trace,
                previous,
                &op.call_at,
                &format!("{what} not in call order"),
            );
        }
        previous = Some(&op.call_at);
        match op.op_type {
            SocketOpType::Write | SocketOpType::WriteTo => written += u64::from(op.data_len),
            SocketOpType::Read | SocketOpType::ReadFrom => read += u64::from(op.data_len),
            SocketOpType::Unrecognized => panic!("{what}: unrecognized operation"),
        }
    }
    // Operations past the limit are counted, not logged: the totals still hold them.
    if exact && ops.dropped_ops == 0 {
        assert_eq!(
            (written, read),
            (sent, received),
            "{conn}: socket ops (written, read) do not add up to the totals (sent, received)\n{}",
            dump(trace)
        );
    } else {
        assert!(
            written <= sent && read <= received,
            "{conn}: socket ops ({written}, {read}) exceed the totals ({sent}, {received})\n{}",
            dump(trace)
        );
    }
}

fn check_dns(trace: &HttpTrace) {
    for query in trace.net_trace.dns_queries.iter() {
        let id = &query.trace_id;
        dial(trace, &query.from_dial);
        let (from_dial, from_resolver, open, close) = match (
            net_tcp(trace, &query.connection),
            net_udp(trace, &query.connection),
        ) {
            (Some(c), None) => (
                &c.from_dial,
                c.from_resolver,
                c.handshake_begin_at,
                c.conn_close_at,
            ),
            (None, Some(c)) => (
                &c.from_dial,
                c.from_resolver,
                c.socket_create_at,
                c.conn_close_at,
            ),
            _ => panic!(
                "DNS query {id}: connection {:?} is not one UDP or TCP conn\n{}",
                query.connection,
                dump(trace)
            ),
        };
        assert_eq!(from_dial, &query.from_dial, "DNS query {id}: dial mismatch");
        assert!(
            from_resolver,
            "DNS query {id}: its conn is not fromResolver"
        );
        let close = life_end(trace, &close);
        for msg in &query.dns_query_msgs {
            let what = format!("DNS query {id} message {}", msg.id);
            assert_defined(trace, &msg.sent_at, &what);
            assert_not_after(trace, &open, &msg.sent_at, &what);
            assert_not_after(trace, &msg.sent_at, &close, &what);
            assert!(msg.size >= 12, "{what}: size {} below a header", msg.size);
        }
        for msg in &query.dns_reply_msgs {
            let what = format!("DNS query {id} reply {}", msg.id);
            assert_defined(trace, &msg.recv_at, &what);
            assert_not_after(trace, &open, &msg.recv_at, &what);
            assert_not_after(trace, &msg.recv_at, &close, &what);
            let asked = query.dns_query_msgs.iter().find(|q| q.id == msg.id);
            let asked =
                asked.unwrap_or_else(|| panic!("{what}: no query with its ID\n{}", dump(trace)));
            assert_not_after(trace, &asked.sent_at, &msg.recv_at, &what);
        }
    }
}

fn check_tls(trace: &HttpTrace, tunnel: &TlsTunnelTrace) {
    let id = &tunnel.trace_id;
    assert!(
        !tunnel.tcp_conn.is_empty(),
        "TLS tunnel {id} has no tcpConn (Go's bug)\n{}",
        dump(trace)
    );
    let conn = tcp_conn(trace, &tunnel.tcp_conn);
    assert!(conn.connected, "TLS tunnel {id} over an unconnected conn");
    let what = format!("TLS tunnel {id}");
    assert_defined(trace, &tunnel.handshake_begin_at, &what);
    assert_within_trace(trace, &tunnel.handshake_begin_at, &what);
    assert_within_trace(trace, &tunnel.handshake_end_at, &what);
    assert_not_after(
        trace,
        &conn.handshake_end_at,
        &tunnel.handshake_begin_at,
        &what,
    );
    assert_not_after(
        trace,
        &tunnel.handshake_begin_at,
        &tunnel.handshake_end_at,
        &what,
    );
    assert_not_after(trace, &tunnel.handshake_end_at, &conn.conn_close_at, &what);
    if tunnel.handshake_err.is_empty() && !tunnel.handshake_end_at.is_undefined() {
        assert_ne!(
            tunnel.cipher_suite, 0,
            "{what}: succeeded without cipher suite"
        );
        assert!(
            !tunnel.peer_certs.is_empty(),
            "{what}: succeeded without certs"
        );
    }
    if !tunnel.handshake_err.is_empty() {
        assert_defined(trace, &tunnel.handshake_end_at, &what);
        assert_eq!(tunnel.cipher_suite, 0, "{what}: failed with a cipher suite");
    }
    for cert in &tunnel.peer_certs {
        assert!(
            cert.not_before.as_absolute().is_some() && cert.not_after.as_absolute().is_some(),
            "{what}: certificate validity not absolute\n{}",
            dump(trace)
        );
    }
}

fn check_http(trace: &HttpTrace, req: &HttpReqTrace) {
    let id = &req.trace_id;
    let what = format!("HTTP request {id} ({} {})", req.req_method, req.req_url);
    assert_defined(trace, &req.req_sent_at, &what);
    assert_within_trace(trace, &req.req_sent_at, &what);
    assert_within_trace(trace, &req.resp_recv_at, &what);
    assert_not_after(trace, &req.req_sent_at, &req.resp_recv_at, &what);
    if req.resp_recv_at.is_undefined() {
        assert_eq!(req.resp_status_code, 0, "{what}: a status without response");
        assert!(
            !req.req_error.is_empty(),
            "{what}: no response and no error\n{}",
            dump(trace)
        );
    } else {
        assert_ne!(req.resp_status_code, 0, "{what}: response without status");
        assert!(
            matches!((req.proto_major, req.proto_minor), (1, 1) | (1, 0) | (2, 0)),
            "{what}: protocol {}.{}",
            req.proto_major,
            req.proto_minor
        );
    }
    if !req.tcp_conn.is_empty() {
        tcp_conn(trace, &req.tcp_conn);
    }
    for (tunnel_id, kind) in [
        (&req.tls_tunnel, "tlsTunnel"),
        (&req.proxy_tls_tunnel, "proxyTLSTunnel"),
    ] {
        if tunnel_id.is_empty() {
            continue;
        }
        let tunnel = tls_tunnel(trace, tunnel_id);
        assert_eq!(
            tunnel.tcp_conn,
            req.tcp_conn,
            "{what}: its {kind} runs over another TCP conn\n{}",
            dump(trace)
        );
    }
}

/// Asserts that the socket operations of `conn` are listed in the order they were called, as
/// `SocketTrace::socket_ops` documents ("The operations in the order they were called").
pub fn socket_ops_in_call_order(trace: &HttpTrace, conn: &TcpConnTrace) {
    let Some(ops) = &conn.socket_trace else {
        panic!("TCP {} has no socket trace\n{}", conn.trace_id, dump(trace));
    };
    for (i, pair) in ops.socket_ops.windows(2).enumerate() {
        assert_not_after(
            trace,
            &pair[0].call_at,
            &pair[1].call_at,
            &format!(
                "TCP {} socket ops #{i} ({}) and #{} ({}) not in call order",
                conn.trace_id,
                pair[0].op_type,
                i + 1,
                pair[1].op_type
            ),
        );
    }
}

/// Binds `127.0.0.1:port` without listening, so connecting there is refused while the socket
/// lives; `None` if the port is taken on IPv4.
pub fn refuse_v4_port(port: u16) -> Option<socket2::Socket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let addr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port);
    let socket = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).ok()?;
    socket.bind(&addr.into()).ok()?;
    Some(socket)
}

/// A loopback UDP port with no socket (datagrams sent there are answered with ICMP port
/// unreachable, which a connected UDP socket reports as ECONNREFUSED).
pub fn closed_udp_port() -> SocketAddr {
    let socket = std::net::UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))
        .unwrap_or_else(|e| panic!("binding a UDP port: {e}"));
    socket
        .local_addr()
        .unwrap_or_else(|e| panic!("getsockname: {e}"))
    // dropped here: the port is closed again
}

/// A directory under the system's temp dir, removed (with its contents) when dropped.
pub struct TempDir(std::path::PathBuf);

impl TempDir {
    /// Creates `<tmp>/nettrace-<tag>-<pid>-<n>`.
    pub fn new(tag: &str) -> Self {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("nettrace-{tag}-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&path)
            .unwrap_or_else(|e| panic!("creating {}: {e}", path.display()));
        Self(path)
    }

    /// `name` inside the directory.
    pub fn path(&self, name: &str) -> std::path::PathBuf {
        self.0.join(name)
    }

    /// Writes `contents` to `name` inside the directory and returns its path.
    pub fn write(&self, name: &str, contents: &str) -> std::path::PathBuf {
        let path = self.path(name);
        std::fs::write(&path, contents)
            .unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// What a finished command printed and how it exited.
#[derive(Debug)]
pub struct CommandOutput {
    /// The exit code (`None` if killed by a signal).
    pub code: Option<i32>,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

/// Runs `command` to completion (stdin closed, output captured), killing it and panicking if
/// it runs longer than `limit`. Blocking: call it from `spawn_blocking` when fixtures run on
/// the same runtime.
pub fn run_command(mut command: std::process::Command, limit: Duration) -> CommandOutput {
    use std::io::Read;
    use std::process::Stdio;
    let shown = format!("{command:?}");
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawning {shown}: {e}"));
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_string(&mut text);
            }
            text
        })
    };
    let stdout = drain(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let stderr = drain(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let deadline = std::time::Instant::now() + limit;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if std::time::Instant::now() < deadline => {
                // A timeout guard, not synchronisation: poll the child's exit.
                std::thread::sleep(Duration::from_millis(10));
            }
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("{shown} still running after {limit:?}: killed");
            }
            Err(e) => panic!("waiting for {shown}: {e}"),
        }
    };
    CommandOutput {
        code: status.code(),
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    }
}
