//! One exchange with one nameserver: the query over UDP, then over TCP if the UDP reply is
//! truncated, each on its own traced connection and each within the per-attempt timeout.
//!
//! Every connection is a resolver dial: `ResolverDialStarted` before the socket is opened,
//! `ResolverDialEnded` with the connection's ID or the error after (also when the lookup is
//! cancelled meanwhile). With DNS message tracing on, each message sent or received is
//! recorded (`DnsQuery`/`DnsReply`) with its wire size, without the TCP length prefix.
//!
//! - UDP: a connected socket. Datagrams that are not the reply (no complete header, another
//!   ID, another question) are recorded and ignored, and the wait goes on until the timeout, as
//!   in Go's and glibc's resolvers (a spoofed or late datagram must not end the exchange).
//! - TCP: a 2-byte length prefix and the message go out in one write; the reply is read as its
//!   2-byte length and then exactly that many bytes, however the stream splits them. A reply
//!   that does not match the query ends the exchange with an error (the connection is ours).
//! - The source IP is bound for every resolver socket except towards a loopback nameserver
//!   (a local stub resolver must be reachable whatever the source IP).
//!
//! ```ignore
//! // crate-internal
//! let exchange = Exchange { sink: &sink, dial: &dial, server, source_ip: None, timeout };
//! let reply: hickory_proto::op::Message = exchange.run(&query).await?;
//! ```
use std::{
    io,
    net::{IpAddr, SocketAddr},
    time::{Duration, Instant},
};

use hickory_proto::op::Message;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{
    ResolveError,
    message::{
        Decoded, OutgoingQuery, ReplyCheck, check_reply, decode, query_record, reply_record,
    },
};
use crate::{
    event::Event,
    event::Sink,
    model::TraceId,
    sock::{ConnectError, SocketOrigin, TcpOptions, connect_tcp, connect_udp},
};

/// The largest DNS message (and UDP datagram) we read.
const MAX_MESSAGE: usize = u16::MAX as usize;

/// One query to one nameserver, on behalf of a dial.
#[derive(Debug)]
pub(crate) struct Exchange<'a> {
    /// Where events go.
    pub(crate) sink: &'a Sink,
    /// The dial the lookup belongs to.
    pub(crate) dial: &'a TraceId,
    /// The nameserver.
    pub(crate) server: SocketAddr,
    /// The configured source IP (not bound towards a loopback nameserver).
    pub(crate) source_ip: Option<IpAddr>,
    /// How long to wait for the reply, per transport.
    pub(crate) timeout: Duration,
}

impl Exchange<'_> {
    /// Sends `query` and returns the matching reply (any rcode), over TCP if UDP's is
    /// truncated.
    pub(crate) async fn run(&self, query: &OutgoingQuery) -> Result<Message, ResolveError> {
        let reply = self.over_udp(query).await?;
        if !reply.metadata.truncation {
            return Ok(reply);
        }
        tracing::debug!(server = %self.server, "truncated UDP reply, retrying over TCP");
        self.over_tcp(query).await
    }

    fn origin(&self) -> SocketOrigin {
        SocketOrigin {
            dial: self.dial.clone(),
            from_resolver: true,
            source_ip: local_bind(self.source_ip, self.server),
        }
    }

    async fn over_udp(&self, query: &OutgoingQuery) -> Result<Message, ResolveError> {
        let dial = ResolverDial::start(self.sink, self.dial, self.server);
        let socket = match connect_udp(self.sink, &self.origin(), self.server).await {
            Ok(socket) => {
                dial.end(Ok(socket.conn().clone()));
                socket
            }
            Err(error) => {
                dial.end(Err(error.to_string()));
                return Err(self.connect_error("connect udp", error));
            }
        };
        let exchange = async {
            socket
                .send(&query.bytes)
                .await
                .map_err(|e| self.io("send udp", e))?;
            self.record_query(socket.conn(), &query.bytes);
            let mut buf = vec![0; MAX_MESSAGE];
            loop {
                let n = socket
                    .recv(&mut buf)
                    .await
                    .map_err(|e| self.io("recv udp", e))?;
                let at = Instant::now();
                let decoded = decode(buf.get(..n).unwrap_or_default());
                self.record_reply(socket.conn(), at, decoded.as_ref(), n);
                match check_reply(query, decoded) {
                    ReplyCheck::Answer(reply) => return Ok(reply),
                    ReplyCheck::Malformed(detail) => return Err(self.malformed(detail)),
                    ReplyCheck::Stray(why) => {
                        tracing::debug!(server = %self.server, %why, "ignoring UDP datagram");
                    }
                }
            }
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .unwrap_or_else(|_| Err(self.timed_out()))
    }

    async fn over_tcp(&self, query: &OutgoingQuery) -> Result<Message, ResolveError> {
        let deadline = tokio::time::Instant::now() + self.timeout;
        let dial = ResolverDial::start(self.sink, self.dial, self.server);
        let options = TcpOptions {
            connect_timeout: Some(self.timeout),
            keepalive: None,
        };
        let mut stream = match connect_tcp(self.sink, &self.origin(), self.server, options).await {
            Ok(stream) => {
                dial.end(Ok(stream.conn().clone()));
                stream
            }
            Err(error) => {
                dial.end(Err(error.to_string()));
                return Err(self.connect_error("connect tcp", error));
            }
        };
        let conn = stream.conn().clone();
        let exchange = async {
            let len = u16::try_from(query.bytes.len()).map_err(|_| {
                let error = io::Error::new(io::ErrorKind::InvalidInput, "query over 65535 bytes");
                self.io("write tcp", error)
            })?;
            let mut framed = Vec::with_capacity(2 + query.bytes.len());
            framed.extend_from_slice(&len.to_be_bytes());
            framed.extend_from_slice(&query.bytes);
            stream
                .write_all(&framed)
                .await
                .map_err(|e| self.io("write tcp", e))?;
            self.record_query(&conn, &query.bytes);
            let mut prefix = [0; 2];
            stream
                .read_exact(&mut prefix)
                .await
                .map_err(|e| self.io("read tcp", e))?;
            let mut body = vec![0; usize::from(u16::from_be_bytes(prefix))];
            stream
                .read_exact(&mut body)
                .await
                .map_err(|e| self.io("read tcp", e))?;
            let at = Instant::now();
            let decoded = decode(&body);
            self.record_reply(&conn, at, decoded.as_ref(), body.len());
            match check_reply(query, decoded) {
                ReplyCheck::Answer(reply) => Ok(reply),
                ReplyCheck::Malformed(detail) | ReplyCheck::Stray(detail) => {
                    Err(self.malformed(detail))
                }
            }
        };
        tokio::time::timeout_at(deadline, exchange)
            .await
            .unwrap_or_else(|_| Err(self.timed_out()))
    }

    /// Records a query just written (only with DNS message tracing on).
    fn record_query(&self, conn: &TraceId, bytes: &[u8]) {
        if !self.sink.settings().dns_messages {
            return;
        }
        let at = Instant::now();
        if let Some(decoded) = decode(bytes) {
            self.sink.emit(Event::DnsQuery {
                conn: conn.clone(),
                dial: self.dial.clone(),
                at,
                msg: query_record(&decoded, bytes.len()),
            });
        }
    }

    /// Records a message received at `at` (only with DNS message tracing on, and only if it
    /// has a complete header: without one there is nothing to record but its size, which the
    /// socket's operations show).
    fn record_reply(&self, conn: &TraceId, at: Instant, decoded: Option<&Decoded>, size: usize) {
        if !self.sink.settings().dns_messages {
            return;
        }
        if let Some(decoded) = decoded {
            self.sink.emit(Event::DnsReply {
                conn: conn.clone(),
                dial: self.dial.clone(),
                at,
                msg: reply_record(decoded, size),
            });
        }
    }

    fn io(&self, op: &'static str, source: io::Error) -> ResolveError {
        ResolveError::Io {
            server: self.server,
            op,
            source,
        }
    }

    fn malformed(&self, detail: String) -> ResolveError {
        ResolveError::Malformed {
            server: self.server,
            detail,
        }
    }

    fn timed_out(&self) -> ResolveError {
        ResolveError::Timeout {
            server: self.server,
            timeout: self.timeout,
        }
    }

    fn connect_error(&self, op: &'static str, error: ConnectError) -> ResolveError {
        match error {
            ConnectError::Timeout(_) => self.timed_out(),
            ConnectError::Socket(source) => self.io("socket setup", source),
            ConnectError::Connect(source) => self.io(op, source),
        }
    }
}

/// The address to bind for a resolver socket: the source IP, except towards a loopback
/// nameserver.
fn local_bind(source_ip: Option<IpAddr>, server: SocketAddr) -> Option<IpAddr> {
    source_ip.filter(|_| !server.ip().to_canonical().is_loopback())
}

/// Reports a resolver dial: started on creation, ended by [`ResolverDial::end`] or, if the
/// lookup is dropped first, as cancelled.
struct ResolverDial<'a> {
    sink: &'a Sink,
    dial: &'a TraceId,
    id: u64,
    ended: bool,
}

impl<'a> ResolverDial<'a> {
    fn start(sink: &'a Sink, dial: &'a TraceId, server: SocketAddr) -> Self {
        let id = sink.next_resolver_dial();
        sink.emit(Event::ResolverDialStarted {
            dial: dial.clone(),
            resolver_dial: id,
            at: Instant::now(),
            nameserver: server.to_string(),
        });
        Self {
            sink,
            dial,
            id,
            ended: false,
        }
    }

    fn end(mut self, result: Result<TraceId, String>) {
        self.emit_end(result);
    }

    fn emit_end(&mut self, result: Result<TraceId, String>) {
        self.ended = true;
        self.sink.emit(Event::ResolverDialEnded {
            dial: self.dial.clone(),
            resolver_dial: self.id,
            at: Instant::now(),
            result,
        });
    }
}

impl Drop for ResolverDial<'_> {
    fn drop(&mut self) {
        if !self.ended {
            self.emit_end(Err(crate::event::CANCELED.into()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_ip_is_not_bound_towards_loopback_nameservers() {
        let source = Some("192.0.2.7".parse().unwrap());
        let remote: SocketAddr = "10.0.0.53:53".parse().unwrap();
        assert_eq!(local_bind(source, remote), source);
        for loopback in ["127.0.0.53:53", "[::1]:53", "[::ffff:127.0.0.1]:53"] {
            assert_eq!(local_bind(source, loopback.parse().unwrap()), None);
        }
        assert_eq!(local_bind(None, remote), None);
    }
}
