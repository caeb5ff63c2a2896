//! [`Recorder::snapshot`]: the trace so far, in the model's types.
//!
//! A snapshot shares what did not change since the last one: each record's model value is
//! kept (an `Arc`, in the table row's slot) with what it was converted from: the record's
//! version (bumped by every change the recorder makes), the live state the socket and body
//! wrappers change without an event ([`SocketState`], [`BodyState`]), and for a request the
//! records it was resolved to (its connection and TLS tunnels, which depend on the dials and
//! tunnels). A repeated snapshot of an unchanged trace then copies pointers: its cost is what
//! changed plus one pointer per record. Timestamps depend only on the trace's clock, which
//! changes only with [`Recorder::clear_at`] (which changes every record it keeps).
use std::{sync::Arc, time::Instant};

use rustc_hash::FxHashMap;

use super::{ConnRec, DialRec, DnsRec, HttpRec, Recorder, TlsRec, stream::Selection, table::Table};
use crate::{
    clock::TraceClock,
    event::{BodyState, RawSocketOp, SocketState, Transport},
    headers::HttpReqTraceOptions,
    model::{
        AddrTuple, ConnProcess, ConntrackEntry, DialTrace, DnsQueryMsg, DnsQueryTrace, DnsReplyMsg,
        DroppedRecords, HttpReqTrace, HttpTrace, NetTrace, ResolverDialTrace, SocketOp,
        SocketTrace, TcpConnTrace, TlsTunnelTrace, TraceId, UdpConnTrace,
    },
};

/// A record's model value as a snapshot converted it, with what it was converted from.
#[derive(Debug)]
pub(crate) struct Converted<V, K = ()> {
    version: u64,
    key: K,
    value: V,
}

/// A table row's slot: the last snapshot's model value of the record, if any.
pub(crate) type Slot<V, K = ()> = Option<Converted<V, K>>;

/// The model value of a connection.
#[derive(Clone, Debug)]
pub(crate) enum ConnValue {
    Tcp(Arc<TcpConnTrace>),
    Udp(Arc<UdpConnTrace>),
}

/// What a request's model value was converted from, besides its record.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct HttpKey {
    body: BodyState,
    refs: Refs,
}

/// The records a request refers to (empty: none).
#[derive(Debug, Default, PartialEq, Eq)]
struct Refs {
    conn: TraceId,
    tls: TraceId,
    proxy_tls: TraceId,
}

/// The slots of each table.
pub(crate) type DialSlot = Slot<Arc<DialTrace>>;
pub(crate) type ConnSlot = Slot<ConnValue, SocketState>;
pub(crate) type DnsSlot = Slot<Arc<DnsQueryTrace>>;
pub(crate) type TlsSlot = Slot<Arc<TlsTunnelTrace>>;
pub(crate) type HttpSlot = Slot<Arc<HttpReqTrace>, HttpKey>;

/// The slot's value if it was converted at `version` from `key`; otherwise `convert`'s,
/// kept in the slot.
fn reuse<V: Clone, K: PartialEq>(
    slot: &mut Slot<V, K>,
    version: u64,
    key: K,
    convert: impl FnOnce(&K) -> V,
) -> V {
    if let Some(done) = slot
        && done.version == version
        && done.key == key
    {
        return done.value.clone();
    }
    let value = convert(&key);
    *slot = Some(Converted {
        version,
        key,
        value: value.clone(),
    });
    value
}

/// How captured header fields are read back.
#[derive(Clone, Copy)]
struct Headers<'a> {
    bytes: &'a [u8],
    options: Option<&'a HttpReqTraceOptions>,
}

/// The dials and TLS tunnels by the request that caused them, built once per snapshot (a
/// scan per request would make a snapshot quadratic).
struct Lookups<'a> {
    /// Per request, what its last dial established.
    dial_conn: FxHashMap<&'a TraceId, Option<&'a TraceId>>,
    /// Per request and `for_proxy`, the last TLS tunnel it caused.
    tls: FxHashMap<(&'a TraceId, bool), &'a TraceId>,
    tunnels: &'a Table<TlsRec, TlsSlot>,
}

impl<'a> Lookups<'a> {
    fn new(dials: &'a Table<DialRec, DialSlot>, tunnels: &'a Table<TlsRec, TlsSlot>) -> Self {
        let mut dial_conn = FxHashMap::default();
        for (_, dial) in dials.iter() {
            if let Some(req) = &dial.http_req {
                dial_conn.insert(req, dial.established.as_ref());
            }
        }
        let mut tls = FxHashMap::default();
        for (id, tunnel) in tunnels.iter() {
            if let Some(req) = &tunnel.http_req {
                tls.insert((req, tunnel.for_proxy), id);
            }
        }
        Self {
            dial_conn,
            tls,
            tunnels,
        }
    }

    /// What request `id` refers to: what its response named, else for a request that never
    /// got one the connection its dial established (Go's back-fill from the dial; a dial
    /// that connected nothing names none: its failed attempts stay in `tcpConns`), and the
    /// tunnels it caused. A reused connection's tunnel was set up in an earlier trace: like
    /// Go, the request then names none rather than one this trace does not hold.
    fn refs(&self, id: &TraceId, req: &HttpRec) -> Refs {
        let tunnel = |named: &Option<TraceId>, for_proxy: bool| {
            named
                .as_ref()
                .filter(|tls| self.tunnels.get(tls).is_some())
                .or_else(|| self.tls.get(&(id, for_proxy)).copied())
                .cloned()
                .unwrap_or_default()
        };
        Refs {
            conn: req
                .conn
                .as_ref()
                .or_else(|| self.dial_conn.get(id).copied().flatten())
                .cloned()
                .unwrap_or_default(),
            tls: tunnel(&req.tls, false),
            proxy_tls: tunnel(&req.proxy_tls, true),
        }
    }
}

impl Recorder {
    /// The trace so far, ending at `now`. Takes nothing away: a second snapshot holds at
    /// least what the first did, with the same IDs, and shares the records that did not
    /// change (see the [module](self) documentation).
    pub(crate) fn snapshot(&mut self, description: &str, now: Instant) -> HttpTrace {
        let clock = &self.clock;
        let mut net = NetTrace {
            description: description.to_owned(),
            trace_begin_at: clock.begin_at(),
            trace_end_at: clock.stamp(Some(now)),
            ..NetTrace::default()
        };
        for (id, dial, version, slot) in self.dials.rows_for_snapshot() {
            net.dials.push_shared(reuse(slot, version, (), |_| {
                Arc::new(dial_trace(clock, id, dial))
            }));
        }
        let mut socket_ops = 0;
        for (id, conn, version, slot) in self.conns.rows_for_snapshot() {
            socket_ops += conn.record.dropped_ops();
            let state = conn.record.state();
            match reuse(slot, version, state, |_| conn_value(clock, id, conn)) {
                ConnValue::Tcp(tcp) => net.tcp_conns.push_shared(tcp),
                ConnValue::Udp(udp) => net.udp_conns.push_shared(udp),
            }
        }
        for (conn, dns, version, slot) in self.dns.rows_for_snapshot() {
            net.dns_queries.push_shared(reuse(slot, version, (), |_| {
                Arc::new(dns_trace(clock, conn, dns))
            }));
        }
        for (id, tls, version, slot) in self.tls.rows_for_snapshot() {
            net.tls_tunnels.push_shared(reuse(slot, version, (), |_| {
                Arc::new(tls_trace(clock, id, tls))
            }));
        }
        let dropped = DroppedRecords {
            socket_ops,
            ..self.dropped
        };
        net.dropped = (!dropped.is_empty()).then_some(dropped);

        // A request refers to dials and tunnels: when none of them changed since the last
        // snapshot, a request that did not change resolves as it did then.
        let links = (self.dials.generation(), self.tls.generation());
        let links_same = self.snapshot_links == Some(links);
        let headers = Headers {
            bytes: &self.header_bytes,
            options: self.http_headers.as_deref(),
        };
        let mut lookups = None;
        let mut http_requests = crate::model::HttpReqTraces::with_capacity(self.http.len());
        for (id, req, version, slot) in self.http.rows_for_snapshot() {
            let body = req.body.state();
            if links_same
                && let Some(done) = slot
                && done.version == version
                && done.key.body == body
            {
                http_requests.push_shared(done.value.clone());
                continue;
            }
            let lookups = lookups.get_or_insert_with(|| Lookups::new(&self.dials, &self.tls));
            let key = HttpKey {
                body,
                refs: lookups.refs(id, req),
            };
            http_requests.push_shared(reuse(slot, version, key, |key| {
                Arc::new(http_trace(clock, id, req, &key.refs, headers))
            }));
        }
        self.snapshot_links = Some(links);
        HttpTrace {
            net_trace: net,
            http_requests,
        }
    }

    /// Forgets the model values kept for the next snapshot, which then converts every
    /// record, as the first one does (for benchmarks and tests).
    pub(crate) fn forget_snapshots(&mut self) {
        self.snapshot_links = None;
        for (_, _, _, slot) in self.dials.rows_for_snapshot() {
            *slot = None;
        }
        for (_, _, _, slot) in self.conns.rows_for_snapshot() {
            *slot = None;
        }
        for (_, _, _, slot) in self.dns.rows_for_snapshot() {
            *slot = None;
        }
        for (_, _, _, slot) in self.tls.rows_for_snapshot() {
            *slot = None;
        }
        for (_, _, _, slot) in self.http.rows_for_snapshot() {
            *slot = None;
        }
    }

    /// The records `only` names, with timestamps of `clock`, and `dropped` as the trace's
    /// counts of what the limits left out (plus the socket operations its connections
    /// dropped). Converts every record (the clock is not the trace's: nothing is shared).
    pub(super) fn trace_of(
        &self,
        description: &str,
        now: Instant,
        clock: &TraceClock,
        only: &Selection,
        dropped: DroppedRecords,
    ) -> HttpTrace {
        let mut net = NetTrace {
            description: description.to_owned(),
            trace_begin_at: clock.begin_at(),
            trace_end_at: clock.stamp(Some(now)),
            ..NetTrace::default()
        };
        for (id, dial) in self.dials.iter() {
            if only.dials.contains(id) {
                net.dials.push(dial_trace(clock, id, dial));
            }
        }
        let mut socket_ops = 0;
        for (id, conn) in self.conns.iter().filter(|(id, _)| only.conns.contains(*id)) {
            socket_ops += conn.record.dropped_ops();
            match conn_value(clock, id, conn) {
                ConnValue::Tcp(tcp) => net.tcp_conns.push_shared(tcp),
                ConnValue::Udp(udp) => net.udp_conns.push_shared(udp),
            }
        }
        for (conn, dns) in self.dns.iter() {
            if only.dns.contains(conn) {
                net.dns_queries.push(dns_trace(clock, conn, dns));
            }
        }
        for (id, tls) in self.tls.iter() {
            if only.tls.contains(id) {
                net.tls_tunnels.push(tls_trace(clock, id, tls));
            }
        }
        let dropped = DroppedRecords {
            socket_ops,
            ..dropped
        };
        net.dropped = (!dropped.is_empty()).then_some(dropped);
        let headers = Headers {
            bytes: &self.header_bytes,
            options: self.http_headers.as_deref(),
        };
        let lookups = Lookups::new(&self.dials, &self.tls);
        let http_requests = self
            .http
            .iter()
            .filter(|(id, _)| only.http.contains(*id))
            .map(|(id, req)| http_trace(clock, id, req, &lookups.refs(id, req), headers))
            .collect();
        HttpTrace {
            net_trace: net,
            http_requests,
        }
    }
}

fn http_trace(
    clock: &TraceClock,
    id: &TraceId,
    req: &HttpRec,
    refs: &Refs,
    headers: Headers<'_>,
) -> HttpReqTrace {
    let (proto_major, proto_minor) = req.proto.unwrap_or((1, 1));
    let (body_first, body_last) = req.body.response_times();
    let fields = |captured: &Option<crate::headers::HeaderCapture>| {
        captured
            .as_ref()
            .zip(headers.options)
            .map(|(header, options)| header.fields(headers.bytes, options))
            .unwrap_or_default()
    };
    HttpReqTrace {
        trace_id: id.clone(),
        tcp_conn: refs.conn.clone(),
        tls_tunnel: refs.tls.clone(),
        proxy_tls_tunnel: refs.proxy_tls.clone(),
        proto_major,
        proto_minor,
        network_proxy: req.network_proxy.clone(),
        req_sent_at: clock.stamp(Some(req.sent)),
        req_method: req.method.to_string(),
        req_url: req.url.to_string(),
        req_header: fields(&req.req_header),
        req_content_len: req.body.request(),
        req_error: req.error.clone(),
        resp_recv_at: clock.stamp(req.response),
        resp_status_code: req.status,
        resp_header: fields(&req.resp_header),
        resp_content_len: req.body.response(),
        resp_body_first_byte_at: clock.stamp(body_first),
        resp_body_last_byte_at: clock.stamp(body_last),
        precise_us: clock.precise(&[
            ("reqSentAt", Some(req.sent)),
            ("respRecvAt", req.response),
            ("respBodyFirstByteAt", body_first),
            ("respBodyLastByteAt", body_last),
        ]),
    }
}

fn conn_value(clock: &TraceClock, id: &TraceId, conn: &ConnRec) -> ConnValue {
    match conn.transport {
        Transport::Tcp => ConnValue::Tcp(Arc::new(tcp_trace(clock, id, conn))),
        Transport::Udp => ConnValue::Udp(Arc::new(udp_trace(clock, id, conn))),
    }
}

fn dns_trace(clock: &TraceClock, conn: &TraceId, dns: &DnsRec) -> DnsQueryTrace {
    DnsQueryTrace {
        trace_id: dns.trace_id.clone(),
        from_dial: dns.dial.clone(),
        connection: conn.clone(),
        dns_query_msgs: dns
            .queries
            .iter()
            .map(|(at, m)| DnsQueryMsg {
                sent_at: clock.stamp(Some(*at)),
                precise_us: clock.precise(&[("sentAt", Some(*at))]),
                ..m.clone()
            })
            .collect(),
        dns_reply_msgs: dns
            .replies
            .iter()
            .map(|(at, m)| DnsReplyMsg {
                recv_at: clock.stamp(Some(*at)),
                precise_us: clock.precise(&[("recvAt", Some(*at))]),
                ..m.clone()
            })
            .collect(),
    }
}

fn dial_trace(clock: &TraceClock, id: &TraceId, dial: &DialRec) -> DialTrace {
    DialTrace {
        trace_id: id.clone(),
        dial_begin_at: clock.stamp(Some(dial.begin)),
        dial_end_at: clock.stamp(dial.end),
        dial_err: dial.error.clone(),
        ctx_close_at: clock.stamp(dial.ctx_closed),
        dst_address: dial.dst_address.clone(),
        resolver_dials: dial
            .resolver_dials
            .iter()
            .map(|r| ResolverDialTrace {
                dial_begin_at: clock.stamp(Some(r.begin)),
                dial_end_at: clock.stamp(r.end),
                dial_err: r.error.clone(),
                nameserver: r.nameserver.clone(),
                established_conn: r.established.clone().unwrap_or_default(),
            })
            .collect(),
        skipped_nameservers: dial.skipped_nameservers.clone(),
        source_ip: dial.source_ip,
        established_conn: dial.established.clone().unwrap_or_default(),
        precise_us: clock.precise(&[("dialBeginAt", Some(dial.begin)), ("dialEndAt", dial.end)]),
    }
}

fn addr_tuple(conn: &ConnRec) -> AddrTuple {
    AddrTuple {
        src_ip: conn.local.map(|a| a.ip()),
        src_port: conn.local.map_or(0, |a| a.port()),
        dst_ip: Some(conn.remote.ip()),
        dst_port: conn.remote.port(),
    }
}

/// The socket operations in call order. They are logged as they complete, and an async read
/// is often called (polled first) before a write that completes earlier.
fn socket_trace(clock: &TraceClock, conn: &ConnRec) -> Option<SocketTrace> {
    let mut ops = conn.record.ops()?;
    ops.sort_by_key(|op| op.call_at);
    Some(SocketTrace {
        dropped_ops: conn.record.dropped_ops(),
        socket_ops: ops.iter().map(|op| socket_op(clock, op)).collect(),
    })
}

fn socket_op(clock: &TraceClock, op: &RawSocketOp) -> SocketOp {
    SocketOp {
        op_type: op.op_type,
        call_at: clock.stamp(Some(op.call_at)),
        return_at: clock.stamp(Some(op.return_at())),
        return_err: op.error.as_deref().unwrap_or_default().to_owned(),
        remote_addr: String::new(),
        data_len: op.data_len,
    }
}

fn tcp_trace(clock: &TraceClock, id: &TraceId, conn: &ConnRec) -> TcpConnTrace {
    TcpConnTrace {
        trace_id: id.clone(),
        from_dial: conn.dial.clone(),
        from_resolver: conn.from_resolver,
        handshake_begin_at: clock.stamp(Some(conn.opened)),
        handshake_end_at: clock.stamp(conn.handshake_end),
        connected: conn.established.is_some(),
        conn_close_at: clock.stamp(conn.closed),
        addr_tuple: addr_tuple(conn),
        reused: conn.reused,
        total_sent_bytes: conn.record.sent(),
        total_recv_bytes: conn.record.received(),
        conntrack: conntrack_entry(clock, conn),
        socket_trace: socket_trace(clock, conn),
        kernel: conn.kernel.facts(clock),
        process: conn_process(conn),
        precise_us: clock.precise(&[
            ("handshakeBeginAt", Some(conn.opened)),
            ("handshakeEndAt", conn.handshake_end),
        ]),
    }
}

fn udp_trace(clock: &TraceClock, id: &TraceId, conn: &ConnRec) -> UdpConnTrace {
    UdpConnTrace {
        trace_id: id.clone(),
        from_dial: conn.dial.clone(),
        from_resolver: conn.from_resolver,
        socket_create_at: clock.stamp(Some(conn.opened)),
        conn_close_at: clock.stamp(conn.closed),
        addr_tuple: addr_tuple(conn),
        total_sent_bytes: conn.record.sent(),
        total_recv_bytes: conn.record.received(),
        conntrack: conntrack_entry(clock, conn),
        socket_trace: socket_trace(clock, conn),
        kernel: conn.kernel.udp_facts(),
        process: conn_process(conn),
    }
}

/// The process that opened the connection, when known.
fn conn_process(conn: &ConnRec) -> Option<ConnProcess> {
    conn.process.as_ref().map(|process| ConnProcess {
        pid: process.pid,
        comm: process.comm.clone(),
    })
}

/// The connection's conntrack entry, stamped with when it was obtained.
fn conntrack_entry(clock: &TraceClock, conn: &ConnRec) -> Option<ConntrackEntry> {
    conn.conntrack.as_ref().map(|sample| ConntrackEntry {
        captured_at: clock.stamp(Some(sample.at)),
        ..sample.entry.clone()
    })
}

fn tls_trace(clock: &TraceClock, id: &TraceId, tls: &TlsRec) -> TlsTunnelTrace {
    let outcome = tls.outcome.clone().unwrap_or_default();
    TlsTunnelTrace {
        trace_id: id.clone(),
        tcp_conn: tls.conn.clone(),
        handshake_begin_at: clock.stamp(Some(tls.begin)),
        handshake_end_at: clock.stamp(tls.end),
        handshake_err: outcome.error,
        did_resume: outcome.did_resume,
        peer_certs: outcome.peer_certs,
        cipher_suite: outcome.cipher_suite,
        negotiated_proto: outcome.negotiated_proto,
        server_name: tls.server_name.clone(),
        tls_version: outcome.tls_version,
        insecure: outcome.insecure,
        cert_verify_err: outcome.cert_verify_error,
        precise_us: clock.precise(&[
            ("handshakeBeginAt", Some(tls.begin)),
            ("handshakeEndAt", tls.end),
        ]),
    }
}
