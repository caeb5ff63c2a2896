//! Event-sequence tests of the recorder, without I/O (as quinn-proto tests its `Connection`):
//! events stamped on the fixture's time line go in, and the snapshot's [`HttpTrace`] is
//! compared whole, with its relative timestamps in ms, its links by [`TraceId`] and, where
//! the spelling matters, its JSON. See [`super::fixture`] for the clock and the IDs.
//!
//! This module holds the event builders and the scenarios the tests share; the tests are in
//! `connections` (dials, connections, socket operations), `messages` (DNS, TLS, HTTP),
//! `lifecycle` (snapshot, clear, unknown records), `kernel` (kernel facts, conntrack,
//! packet captures), `limits` (bounded memory) and `stream` (completed requests taken out).
mod connections;
mod kernel;
mod lifecycle;
mod limits;
mod messages;
mod precise;
mod snapshots;
mod stream;

use std::{io, sync::Arc};

use nettrace_common::SocketCalls;
use serde_json::json;
use time::macros::datetime;

use super::{Recorder, fixture::*};
use crate::{
    SocketCookie,
    capture::{
        CaptureInterfaceInfo, CaptureStore, CapturedPacket, LinkKind, PacketCapture,
        PacketCaptureOptions,
        PacketDirection::{Egress, Ingress},
    },
    event::{
        BodyCounters, ConnInfo, ConnectCall, CtSample, Direction, Event, HeldStateChange,
        KernelEvent, KernelProcess, KernelTcpState, PacketRecord, RawSocketOp, ResponseCounter,
        SockCallsRecord, SockOp, SockOpsRecord, SocketCreated, SocketProtocol, SocketRecord,
        TcpCounters, TcpResetRecord, TlsOutcome, Transport,
    },
    headers::{HeaderCapture, HttpReqTraceOptions},
    model::{
        AddrTuple, ConntrackEntry, ConntrackStatus, DialTrace, DnsAnswer, DnsQueryMsg,
        DnsQueryTrace, DnsQuestion, DnsRCode, DnsReplyMsg, DnsResType, HdrFieldsOpt, HttpHeader,
        HttpHeaderKv, HttpReqTrace, HttpTrace, KernelSocketCalls, KernelStateChange,
        KernelTcpFacts, KernelUdpFacts, NetTrace, PeerCert, ResolverDialTrace, SocketOp,
        SocketOpType, SocketTrace, TcpConnTrace, TcpState, Timestamp, TlsTunnelTrace, TraceId,
        UdpConnTrace,
    },
};

const CLIENT_IP: &str = "192.168.1.2";
const LOCAL_TCP: &str = "192.168.1.2:40000";
const LOCAL_UDP: &str = "192.168.1.2:50000";
const SERVER: &str = "93.184.215.14:443";
const NAMESERVER: &str = "10.0.0.53:53";

/// A trace with nothing in it, begun at [`WALL`] and ended at `end_ms`.
fn empty_trace(description: &str, end_ms: u32) -> HttpTrace {
    HttpTrace {
        net_trace: NetTrace {
            description: description.to_owned(),
            trace_begin_at: wall(0),
            trace_end_at: rel(end_ms),
            ..NetTrace::default()
        },
        ..HttpTrace::default()
    }
}

fn dial_started(dial: &str, ms: u64, dst_address: &str, http_req: Option<&str>) -> Event {
    Event::DialStarted {
        dial: id(dial),
        at: at(ms),
        dst_address: dst_address.to_owned(),
        source_ip: None,
        http_req: http_req.map(id),
    }
}

fn dial_ended(dial: &str, ms: u64, result: Result<&str, &str>) -> Event {
    Event::DialEnded {
        dial: id(dial),
        at: at(ms),
        result: result.map(id).map_err(str::to_owned),
    }
}

/// A socket `conn` of `dial` to `remote`, created at `ms` (a resolver's when `remote` is port 53).
fn opened(
    conn: &str,
    transport: Transport,
    dial: &str,
    remote: &str,
    cookie: Option<u64>,
    record: &Arc<SocketRecord>,
    ms: u64,
) -> Event {
    Event::ConnOpened {
        conn: id(conn),
        transport,
        dial: id(dial),
        from_resolver: addr(remote).port() == 53,
        remote: addr(remote),
        cookie: cookie.map(SocketCookie),
        record: record.clone(),
        at: at(ms),
    }
}

fn established(conn: &str, ms: u64, local: &str) -> Event {
    Event::ConnEstablished {
        conn: id(conn),
        at: at(ms),
        local: addr(local),
    }
}

fn closed(conn: &str, ms: u64) -> Event {
    Event::ConnClosed {
        conn: id(conn),
        at: at(ms),
    }
}

fn request_started(req: &str, ms: u64, url: &str, body: &Arc<BodyCounters>) -> Event {
    Event::HttpRequestStarted {
        req: id(req),
        at: at(ms),
        method: http::Method::GET,
        url: url.parse().expect("url"),
        header: None,
        network_proxy: String::new(),
        body: body.clone(),
    }
}

fn response(req: &str, ms: u64, conn: Option<ConnInfo>, status: u16) -> Event {
    Event::HttpResponse {
        req: id(req),
        at: at(ms),
        conn,
        proto: (1, 1),
        status,
        header: None,
    }
}

fn conn_info(tcp: &str, tls: Option<&str>, proxy_tls: Option<&str>) -> ConnInfo {
    ConnInfo {
        tcp_conn: id(tcp),
        tls_tunnel: tls.map(id),
        proxy_tls_tunnel: proxy_tls.map(id),
    }
}

fn tls_started(tls: &str, conn: &str, ms: u64, for_proxy: bool, req: Option<&str>) -> Event {
    Event::TlsStarted {
        tls: id(tls),
        conn: id(conn),
        at: at(ms),
        server_name: "example.test".to_owned(),
        for_proxy,
        http_req: req.map(id),
    }
}

fn kernel(event: KernelEvent) -> Event {
    Event::Kernel(event)
}

fn kernel_ops(record: SockOpsRecord) -> Event {
    Event::Kernel(KernelEvent::SockOps(Box::new(record)))
}

fn query_msg(id: u16, name: &str) -> DnsQueryMsg {
    DnsQueryMsg {
        // Overwritten by the event's instant.
        sent_at: rel(9999),
        id,
        recursion_desired: true,
        size: 29,
        questions: vec![DnsQuestion {
            name: name.to_owned(),
            res_type: DnsResType(1),
            class: 1,
        }],
        ..DnsQueryMsg::default()
    }
}

fn reply_msg(id: u16, name: &str, ip: &str) -> DnsReplyMsg {
    DnsReplyMsg {
        recv_at: Timestamp::Undefined,
        id,
        recursion_available: true,
        size: 45,
        rcode: DnsRCode(0),
        answers: vec![DnsAnswer {
            name: name.to_owned(),
            res_type: DnsResType(1),
            class: 1,
            ttl: 300,
            resolved_val: ip.to_owned(),
        }],
        ..DnsReplyMsg::default()
    }
}

/// A dial that resolved its name (one nameserver skipped, one answering over UDP, one
/// unreachable) and connected over TCP (`tcp-1`, socket 12, without an operation log).
fn resolved_dial(recorder: &mut Recorder) {
    resolved_dial_with(recorder, &Arc::new(SocketRecord::new(false)));
}

/// [`resolved_dial_with`], its resolver's query for `example.test` (at 2 ms), and the TLS
/// tunnel `tls-1` over `tcp-1` (started at 26 ms for `req-1`).
fn resolved_tls_dial(recorder: &mut Recorder, tcp: &Arc<SocketRecord>) {
    resolved_dial_with(recorder, tcp);
    recorder.handle(Event::DnsQuery {
        conn: id("udp-1"),
        dial: id("dial-1"),
        at: at(2),
        msg: query_msg(1, "example.test"),
    });
    recorder.handle(tls_started("tls-1", "tcp-1", 26, false, Some("req-1")));
}

/// Request `req` at `ms` over `tcp-1` and `tls-1`, answered with 200 5 ms later.
fn exchange(recorder: &mut Recorder, req: &str, ms: u64, body: &Arc<BodyCounters>) {
    recorder.handle(request_started(req, ms, "https://example.test/", body));
    recorder.handle(response(
        req,
        ms + 5,
        Some(conn_info("tcp-1", Some("tls-1"), None)),
        200,
    ));
}

/// [`resolved_dial`], with the TCP connection's I/O in `tcp`.
fn resolved_dial_with(recorder: &mut Recorder, tcp: &Arc<SocketRecord>) {
    let udp = Arc::new(SocketRecord::new(false));
    recorder.handle(Event::DialStarted {
        dial: id("dial-1"),
        at: at(0),
        dst_address: "example.test:443".to_owned(),
        source_ip: CLIENT_IP.parse().ok(),
        http_req: Some(id("req-1")),
    });
    for nameserver in ["10.0.0.1:53", "10.0.0.1:53", "10.0.0.2:53"] {
        recorder.handle(Event::NameserverSkipped {
            dial: id("dial-1"),
            nameserver: nameserver.to_owned(),
            reason: "not for this name".to_owned(),
        });
    }
    recorder.handle(Event::ResolverDialStarted {
        dial: id("dial-1"),
        resolver_dial: 1,
        at: at(1),
        nameserver: NAMESERVER.to_owned(),
    });
    recorder.handle(opened(
        "udp-1",
        Transport::Udp,
        "dial-1",
        NAMESERVER,
        Some(11),
        &udp,
        1,
    ));
    recorder.handle(established("udp-1", 2, LOCAL_UDP));
    recorder.handle(Event::ResolverDialEnded {
        dial: id("dial-1"),
        resolver_dial: 1,
        at: at(2),
        result: Ok(id("udp-1")),
    });
    recorder.handle(Event::ResolverDialStarted {
        dial: id("dial-1"),
        resolver_dial: 2,
        at: at(3),
        nameserver: "[2001:db8::53]:53".to_owned(),
    });
    recorder.handle(Event::ResolverDialEnded {
        dial: id("dial-1"),
        resolver_dial: 2,
        at: at(4),
        result: Err("connect: network is unreachable".to_owned()),
    });
    recorder.handle(closed("udp-1", 9));
    recorder.handle(opened(
        "tcp-1",
        Transport::Tcp,
        "dial-1",
        SERVER,
        Some(12),
        tcp,
        10,
    ));
    recorder.handle(established("tcp-1", 25, LOCAL_TCP));
    recorder.handle(dial_ended("dial-1", 25, Ok("tcp-1")));
    recorder.handle(Event::DialContextClosed {
        dial: id("dial-1"),
        at: at(30),
    });
    recorder.handle(Event::DialContextClosed {
        dial: id("dial-1"),
        at: at(40),
    });
}

fn resolved_dial_trace() -> DialTrace {
    DialTrace {
        trace_id: id("dial-1"),
        dial_begin_at: rel(0),
        dial_end_at: rel(25),
        dial_err: String::new(),
        // The first close counts.
        ctx_close_at: rel(30),
        dst_address: "example.test:443".to_owned(),
        resolver_dials: vec![
            ResolverDialTrace {
                dial_begin_at: rel(1),
                dial_end_at: rel(2),
                dial_err: String::new(),
                nameserver: NAMESERVER.to_owned(),
                established_conn: id("udp-1"),
            },
            ResolverDialTrace {
                dial_begin_at: rel(3),
                dial_end_at: rel(4),
                dial_err: "connect: network is unreachable".to_owned(),
                nameserver: "[2001:db8::53]:53".to_owned(),
                established_conn: TraceId::default(),
            },
        ],
        // Each once, in the order skipped.
        skipped_nameservers: vec!["10.0.0.1:53".to_owned(), "10.0.0.2:53".to_owned()],
        source_ip: CLIENT_IP.parse().ok(),
        established_conn: id("tcp-1"),
        ..Default::default()
    }
}

fn ct_sample(ms: u64, state: TcpState, packets: u64, destroyed: bool) -> CtSample {
    CtSample {
        at: at(ms),
        entry: ConntrackEntry {
            status: ConntrackStatus::CONFIRMED
                | ConntrackStatus::SEEN_REPLY
                | ConntrackStatus::ASSURED
                | ConntrackStatus::SRC_NAT
                | ConntrackStatus::SRC_NAT_DONE,
            tcp_state: state,
            mark: 7,
            addr_orig: AddrTuple::new(addr(LOCAL_TCP), addr(SERVER)),
            addr_reply: AddrTuple::new(addr(SERVER), addr("203.0.113.7:61000")),
            packets_sent: packets,
            packets_recv: packets + 1,
            bytes_sent: packets * 100,
            bytes_recv: packets * 1000,
            captured_at: Timestamp::Undefined,
        },
        destroyed,
    }
}
