//! [`Recorder::snapshot`]: the trace so far, in the model's types.
use std::time::Instant;

use super::{ConnRec, DialRec, HttpRec, Recorder, TlsRec, stream::Selection};
use crate::{
    clock::TraceClock,
    event::{RawSocketOp, Transport},
    model::{
        AddrTuple, ConnProcess, ConntrackEntry, DialTrace, DnsQueryMsg, DnsQueryTrace, DnsReplyMsg,
        DroppedRecords, HttpReqTrace, HttpTrace, NetTrace, ResolverDialTrace, SocketOp,
        SocketTrace, TcpConnTrace, TlsTunnelTrace, TraceId, UdpConnTrace,
    },
};

impl Recorder {
    /// The trace so far, ending at `now`. Takes nothing away: a second snapshot holds at
    /// least what the first did, with the same IDs.
    pub(crate) fn snapshot(&self, description: &str, now: Instant) -> HttpTrace {
        let dropped = self.dropped;
        self.trace_of(description, now, &self.clock, None, dropped)
    }

    /// The records `only` names (all of them when `None`), with timestamps of `clock`, and
    /// `dropped` as the trace's counts of what the limits left out (plus the socket
    /// operations its connections dropped).
    pub(super) fn trace_of(
        &self,
        description: &str,
        now: Instant,
        clock: &TraceClock,
        only: Option<&Selection>,
        dropped: DroppedRecords,
    ) -> HttpTrace {
        let mut net = NetTrace {
            description: description.to_owned(),
            trace_begin_at: clock.begin_at(),
            trace_end_at: clock.stamp(Some(now)),
            ..NetTrace::default()
        };
        for (id, dial) in self.dials.iter() {
            if only.is_none_or(|sel| sel.dials.contains(id)) {
                net.dials.0.push(dial_trace(clock, id, dial));
            }
        }
        let conns = self
            .conns
            .iter()
            .filter(|(id, _)| only.is_none_or(|sel| sel.conns.contains(*id)));
        let mut socket_ops = 0;
        for (id, conn) in conns {
            socket_ops += conn.record.dropped_ops();
            match conn.transport {
                Transport::Tcp => net.tcp_conns.0.push(tcp_trace(clock, id, conn)),
                Transport::Udp => net.udp_conns.0.push(udp_trace(clock, id, conn)),
            }
        }
        for (conn, dns) in self.dns.iter() {
            if only.is_some_and(|sel| !sel.dns.contains(conn)) {
                continue;
            }
            net.dns_queries.0.push(DnsQueryTrace {
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
            });
        }
        for (id, tls) in self.tls.iter() {
            if only.is_none_or(|sel| sel.tls.contains(id)) {
                net.tls_tunnels.0.push(tls_trace(clock, id, tls));
            }
        }
        let dropped = DroppedRecords {
            socket_ops,
            ..dropped
        };
        net.dropped = (!dropped.is_empty()).then_some(dropped);
        let http_requests = self
            .http
            .iter()
            .filter(|(id, _)| only.is_none_or(|sel| sel.http.contains(*id)))
            .map(|(id, req)| self.http_trace(clock, id, req))
            .collect::<Vec<_>>()
            .into();
        HttpTrace {
            net_trace: net,
            http_requests,
        }
    }

    fn http_trace(&self, clock: &TraceClock, id: &TraceId, req: &HttpRec) -> HttpReqTrace {
        let (proto_major, proto_minor) = req.proto.unwrap_or((1, 1));
        let (body_first, body_last) = req.body.response_times();
        HttpReqTrace {
            trace_id: id.clone(),
            tcp_conn: req
                .conn
                .clone()
                .or_else(|| self.conn_of_request_dial(id))
                .unwrap_or_default(),
            // A reused connection's tunnel was set up in an earlier trace: like Go, the request
            // then names none rather than one this trace does not hold.
            tls_tunnel: req
                .tls
                .clone()
                .filter(|tls| self.tls.get(tls).is_some())
                .or_else(|| self.tls_of_request(id, false))
                .unwrap_or_default(),
            proxy_tls_tunnel: req
                .proxy_tls
                .clone()
                .filter(|tls| self.tls.get(tls).is_some())
                .or_else(|| self.tls_of_request(id, true))
                .unwrap_or_default(),
            proto_major,
            proto_minor,
            network_proxy: req.network_proxy.clone(),
            req_sent_at: clock.stamp(Some(req.sent)),
            req_method: req.method.to_string(),
            req_url: req.url.to_string(),
            req_header: req
                .req_header
                .as_ref()
                .zip(self.http_headers.as_deref())
                .map(|(header, options)| header.fields(&self.header_bytes, options))
                .unwrap_or_default(),
            req_content_len: req.body.request(),
            req_error: req.error.clone(),
            resp_recv_at: clock.stamp(req.response),
            resp_status_code: req.status,
            resp_header: req
                .resp_header
                .as_ref()
                .zip(self.http_headers.as_deref())
                .map(|(header, options)| header.fields(&self.header_bytes, options))
                .unwrap_or_default(),
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

    /// For a request that never got a response: the connection its dial established (Go's
    /// back-fill from the dial). A dial that connected nothing names none: its failed
    /// attempts stay in `tcpConns` (`connected: false`, `fromDial`), but no connection was used.
    fn conn_of_request_dial(&self, req: &TraceId) -> Option<TraceId> {
        self.dials
            .iter()
            .filter(|(_, d)| d.http_req.as_ref() == Some(req))
            .last()?
            .1
            .established
            .clone()
    }

    /// The (proxy) TLS tunnel a request caused, when the response did not name it.
    fn tls_of_request(&self, req: &TraceId, for_proxy: bool) -> Option<TraceId> {
        self.tls
            .iter()
            .filter(|(_, t)| t.http_req.as_ref() == Some(req) && t.for_proxy == for_proxy)
            .map(|(id, _)| id.clone())
            .last()
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
