//! [`Translator`]: turns the kernel events of a traced cgroup into the recorder's [`Event`]s,
//! so that a program traced from the kernel alone becomes the same trace as one traced by the
//! library: a dial per `connect()`, a TCP or UDP connection per connected socket, socket
//! operations from the send/receive hooks, DNS messages and the TLS server name from the
//! packets the cgroup programs copy. Sans-I/O: events in, events out.
use std::{collections::HashMap, net::SocketAddr, sync::Arc, time::Instant};

pub(crate) mod packet;
#[cfg(test)]
mod tests;

use crate::{
    SocketCookie,
    dns::message::{decode, query_record, reply_record},
    event::{
        ConnectCall, Direction, Event, KernelEvent, KernelTcpState, PacketRecord, RawSocketOp,
        SockMsgRecord, SockOp, SocketProtocol, SocketRecord, Transport,
    },
    ids::IdSource,
    model::{SocketOpType, TraceId},
};
use packet::{Proto, client_hello_sni, parse_ip};

/// `EAGAIN`: a non-blocking call that found nothing to do (not an operation).
const EAGAIN: i32 = 11;
const DNS_PORT: u16 = 53;

/// What the translator asks for besides recording events.
#[derive(Debug, Default)]
pub(crate) struct Output {
    /// Events for the recorder, in order.
    pub(crate) events: Vec<Event>,
    /// Sockets done with: unregister them from kernel tracing.
    pub(crate) unregister: Vec<SocketCookie>,
}

/// The state of one socket of the traced cgroup.
#[derive(Debug)]
struct SocketState {
    protocol: SocketProtocol,
    created: Instant,
    /// The connection of its latest `connect()`.
    conn: Option<Connection>,
    released: bool,
    tcp_closed: bool,
    /// Unregistered from kernel tracing. The state stays (as the recorder's records do): a
    /// copied packet may come from the packet ring after the release from the event ring.
    retired: bool,
}

#[derive(Debug)]
struct Connection {
    conn: TraceId,
    dial: TraceId,
    remote: SocketAddr,
    record: Arc<SocketRecord>,
    local_known: bool,
    dial_ended: bool,
    rst_received: bool,
    tls_seen: bool,
}

/// Kernel events of a cgroup in, recorder events out.
#[derive(Debug)]
pub(crate) struct Translator {
    sock_ops: bool,
    sockets: HashMap<SocketCookie, SocketState>,
    /// The IDs of the dials, connections and TLS tunnels it creates.
    ids: IdSource,
}

impl Translator {
    /// A translator logging every socket operation when `sock_ops`, with IDs from the
    /// process-wide generator.
    pub(crate) fn new(sock_ops: bool) -> Self {
        Self::with_ids(sock_ops, IdSource::global())
    }

    /// A translator whose records take their IDs from `ids` (deterministic, for tests).
    pub(crate) fn with_ids(sock_ops: bool, ids: IdSource) -> Self {
        Self {
            sock_ops,
            sockets: HashMap::new(),
            ids,
        }
    }

    /// Translates one kernel event.
    pub(crate) fn translate(&mut self, event: KernelEvent) -> Output {
        let mut out = Output::default();
        match event {
            KernelEvent::SocketCreated(created) => {
                self.sockets.insert(
                    created.cookie,
                    SocketState {
                        protocol: created.protocol,
                        created: created.time.to_instant(),
                        conn: None,
                        released: false,
                        tcp_closed: false,
                        retired: false,
                    },
                );
            }
            KernelEvent::Connect(call) => self.connect(&call, &mut out),
            KernelEvent::SockOps(record) => {
                if let Some(conn) = self.conn_mut(record.cookie) {
                    let at = record.time.to_instant();
                    if matches!(record.op, SockOp::ActiveEstablished) && !conn.dial_ended {
                        conn.dial_ended = true;
                        conn.local_known = true;
                        out.events.push(Event::ConnEstablished {
                            conn: conn.conn.clone(),
                            at,
                            local: record.local,
                        });
                        out.events.push(Event::DialEnded {
                            dial: conn.dial.clone(),
                            at,
                            result: Ok(conn.conn.clone()),
                        });
                    }
                }
                out.events.push(Event::Kernel(KernelEvent::SockOps(record)));
            }
            KernelEvent::TcpReset(reset) => {
                if reset.direction == Direction::Received
                    && let Some(conn) = self.conn_mut(reset.cookie)
                {
                    conn.rst_received = true;
                }
                out.events.push(Event::Kernel(KernelEvent::TcpReset(reset)));
            }
            KernelEvent::TcpState(change) => {
                let cookie = change.cookie;
                let at = change.time.to_instant();
                if change.new == KernelTcpState::Close
                    && let Some(state) = self.sockets.get_mut(&cookie)
                {
                    state.tcp_closed = true;
                    if let Some(conn) = state.conn.as_mut()
                        && !conn.dial_ended
                    {
                        conn.dial_ended = true;
                        let error = if conn.rst_received {
                            "connection refused"
                        } else {
                            "connection failed (no answer to the SYN)"
                        };
                        out.events.push(Event::ConnFailed {
                            conn: conn.conn.clone(),
                            at,
                        });
                        out.events.push(Event::DialEnded {
                            dial: conn.dial.clone(),
                            at,
                            result: Err(format!("dial tcp {}: {error}", conn.remote)),
                        });
                    }
                }
                out.events
                    .push(Event::Kernel(KernelEvent::TcpState(change)));
                self.retire_if_done(cookie, &mut out);
            }
            KernelEvent::SockMsg(call) => {
                self.socket_op(&call);
                out.events.push(Event::Kernel(KernelEvent::SockMsg(call)));
            }
            // The cgroup's sockets report each call; totals (of a socket that counts them in
            // the kernel) only go to its connection's kernel facts.
            totals @ KernelEvent::SockCalls(_) => out.events.push(Event::Kernel(totals)),
            KernelEvent::SocketReleased(released) => {
                let cookie = released.cookie;
                if let Some(state) = self.sockets.get_mut(&cookie) {
                    state.released = true;
                    if let Some(conn) = &state.conn {
                        out.events.push(Event::ConnClosed {
                            conn: conn.conn.clone(),
                            at: released.time.to_instant(),
                        });
                    }
                }
                self.retire_if_done(cookie, &mut out);
            }
            KernelEvent::Packet(packet)
                if packet.ifindex == nettrace_common::CGROUP_PACKET_IFINDEX =>
            {
                self.copied_packet(&packet, &mut out);
            }
            other @ KernelEvent::Packet(_) => out.events.push(Event::Kernel(other)),
        }
        out
    }

    /// A `connect()`: a new dial and connection (a socket connected again gets new ones).
    fn connect(&mut self, call: &ConnectCall, out: &mut Output) {
        let Some(state) = self.sockets.get_mut(&call.cookie) else {
            return;
        };
        let at = call.time.to_instant();
        if let Some(old) = state.conn.take() {
            out.events.push(Event::ConnClosed { conn: old.conn, at });
        }
        let conn = Connection {
            conn: self.ids.next_id(),
            dial: self.ids.next_id(),
            remote: call.remote,
            record: Arc::new(SocketRecord::new(self.sock_ops)),
            local_known: false,
            dial_ended: false,
            rst_received: false,
            tls_seen: false,
        };
        let transport = match state.protocol {
            SocketProtocol::Tcp => Transport::Tcp,
            SocketProtocol::Udp => Transport::Udp,
        };
        out.events.push(Event::DialStarted {
            dial: conn.dial.clone(),
            at,
            dst_address: call.remote.to_string(),
            source_ip: None,
            http_req: None,
        });
        out.events.push(Event::ConnOpened {
            conn: conn.conn.clone(),
            transport,
            dial: conn.dial.clone(),
            from_resolver: call.remote.port() == DNS_PORT,
            remote: call.remote,
            cookie: Some(call.cookie),
            record: conn.record.clone(),
            // A TCP handshake begins with the socket (as Go counts it), at the latest here.
            at: if state.created <= at {
                state.created
            } else {
                at
            },
        });
        out.events.push(Event::ConnProcess {
            conn: conn.conn.clone(),
            process: call.process.clone(),
        });
        let mut conn = conn;
        if transport == Transport::Udp {
            // Connecting a UDP socket only sets its peer: done at once.
            conn.dial_ended = true;
            out.events.push(Event::DialEnded {
                dial: conn.dial.clone(),
                at,
                result: Ok(conn.conn.clone()),
            });
        }
        state.conn = Some(conn);
    }

    /// A send or receive call: byte totals and, with socket tracing, an operation.
    fn socket_op(&mut self, call: &SockMsgRecord) {
        let Some(conn) = self.conn_mut(call.cookie) else {
            return;
        };
        if call.ret == -EAGAIN {
            return;
        }
        let bytes = usize::try_from(call.ret).unwrap_or(0);
        let op_type = match call.direction {
            Direction::Sent => SocketOpType::Write,
            Direction::Received => SocketOpType::Read,
        };
        let op = conn.record.logs_ops().then(|| {
            let at = call.time.to_instant();
            let error = (call.ret < 0).then(|| std::io::Error::from_raw_os_error(-call.ret));
            let result = error.as_ref().map_or(Ok(bytes), Err);
            RawSocketOp::new(op_type, at, at, result)
        });
        match call.direction {
            Direction::Sent => conn.record.sent_by(bytes, op),
            Direction::Received => conn.record.received_by(bytes, op),
        }
    }

    /// A packet copied by the cgroup programs: DNS messages, a ClientHello's server name.
    fn copied_packet(&mut self, packet: &PacketRecord, out: &mut Output) {
        let Some(ip) = parse_ip(&packet.data) else {
            return;
        };
        // Not `conn_mut`: a TLS tunnel takes an ID from `self.ids` while `conn` is held.
        let state = self.sockets.get_mut(&packet.cookie);
        let Some(conn) = state.and_then(|state| state.conn.as_mut()) else {
            return;
        };
        let at = packet.time.to_instant();
        let sent = packet.direction == Direction::Sent;
        match ip.proto {
            Proto::Udp => {
                if sent && !conn.local_known {
                    conn.local_known = true;
                    out.events.push(Event::ConnEstablished {
                        conn: conn.conn.clone(),
                        at,
                        local: ip.src,
                    });
                }
                if ip.src.port() != DNS_PORT && ip.dst.port() != DNS_PORT {
                    return;
                }
                let Some(decoded) = decode(ip.payload) else {
                    tracing::debug!(cookie = %packet.cookie, "undecodable DNS datagram");
                    return;
                };
                let (conn_id, dial) = (conn.conn.clone(), conn.dial.clone());
                let size = ip.payload.len();
                out.events.push(if sent {
                    Event::DnsQuery {
                        conn: conn_id,
                        dial,
                        at,
                        msg: query_record(&decoded, size),
                    }
                } else {
                    Event::DnsReply {
                        conn: conn_id,
                        dial,
                        at,
                        msg: reply_record(&decoded, size),
                    }
                });
            }
            Proto::Tcp => {
                if !sent || conn.tls_seen {
                    return;
                }
                if let Some(server_name) = client_hello_sni(ip.payload) {
                    conn.tls_seen = true;
                    out.events.push(Event::TlsStarted {
                        tls: self.ids.next_id(),
                        conn: conn.conn.clone(),
                        at,
                        server_name,
                        for_proxy: false,
                        http_req: None,
                    });
                }
            }
        }
    }

    fn conn_mut(&mut self, cookie: SocketCookie) -> Option<&mut Connection> {
        self.sockets.get_mut(&cookie)?.conn.as_mut()
    }

    /// Unregisters a socket once nothing more can come: a UDP socket or an unconnected TCP socket
    /// when released, a TCP socket when released and in CLOSE (its state machine goes on
    /// after `close()`).
    fn retire_if_done(&mut self, cookie: SocketCookie, out: &mut Output) {
        let Some(state) = self.sockets.get_mut(&cookie) else {
            return;
        };
        let done = state.released
            && (state.protocol == SocketProtocol::Udp || state.tcp_closed || state.conn.is_none());
        if done && !state.retired {
            state.retired = true;
            out.unregister.push(cookie);
        }
    }
}
