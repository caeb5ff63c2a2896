//! The ctnetlink sockets: [`QuerySocket`] asks for one entry by its original tuple,
//! [`EventSocket`] receives the destroy events of the namespace.
//!
//! A netlink socket belongs to the network namespace of the thread that opened it, for its
//! whole life: both are opened where the client is built.
use std::{io, time::Duration};

use netlink_packet_core::{NLM_F_REQUEST, NetlinkHeader, NetlinkMessage, NetlinkPayload};
use netlink_packet_netfilter::{
    NetfilterHeader, NetfilterMessage, NetfilterProtoFamily,
    conntrack::{ConntrackAttribute, ConntrackMessage, IPTuple, ProtoTuple, Tuple},
};
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_NETFILTER};

use super::{
    ConntrackError,
    message::{CtMessage, CtTuple, Decoded, decode_datagram},
};

/// How long a GET may take before it is given up (the kernel answers synchronously).
const QUERY_TIMEOUT: Duration = Duration::from_secs(1);
/// Multicast group of conntrack destroy events (`NFNLGRP_CONNTRACK_DESTROY`).
const NFNLGRP_CONNTRACK_DESTROY: u32 = 3;
/// Receive buffer asked for the event socket: destroy events of the whole namespace arrive
/// there, most of them not ours.
const EVENT_RCVBUF: usize = 4 << 20;
/// Largest datagram read (a conntrack message is a few hundred bytes).
const RECV_BUF: usize = 64 * 1024;

/// Looks up conntrack entries (the seam the tracker is tested through).
pub(crate) trait Lookup: Send {
    /// The entry whose original tuple is `tuple`, `None` if there is none.
    fn get(&mut self, tuple: &CtTuple) -> Result<Option<CtMessage>, ConntrackError>;
}

/// A ctnetlink socket for GET requests.
#[derive(Debug)]
pub(crate) struct QuerySocket {
    socket: Socket,
    seq: u32,
    buf: Vec<u8>,
}

impl QuerySocket {
    /// Opens the socket and checks, with a lookup that finds nothing, that ctnetlink answers
    /// this process (it refuses requests without CAP_NET_ADMIN).
    pub(crate) fn open() -> Result<Self, ConntrackError> {
        let socket = bound_socket()?;
        socket
            .connect(&SocketAddr::new(0, 0))
            .map_err(|e| ConntrackError::io("connect(netlink)", e))?;
        socket2::SockRef::from(&socket)
            .set_read_timeout(Some(QUERY_TIMEOUT))
            .map_err(|e| ConntrackError::io("setsockopt(SO_RCVTIMEO)", e))?;
        let mut query = Self {
            socket,
            seq: 0,
            buf: vec![0; RECV_BUF],
        };
        let probe = CtTuple {
            proto: 6,
            src: (std::net::Ipv4Addr::UNSPECIFIED, 0).into(),
            dst: (std::net::Ipv4Addr::UNSPECIFIED, 0).into(),
        };
        query.get(&probe).map_err(|e| match e {
            ConntrackError::Refused(source) if source.raw_os_error() == Some(libc::EPERM) => {
                ConntrackError::NotPermitted {
                    call: "ctnetlink GET",
                    source,
                }
            }
            other => other,
        })?;
        Ok(query)
    }
}

impl Lookup for QuerySocket {
    fn get(&mut self, tuple: &CtTuple) -> Result<Option<CtMessage>, ConntrackError> {
        self.seq = self.seq.wrapping_add(1);
        let seq = self.seq;
        let request = get_request(tuple, seq);
        self.socket
            .send(&request, 0)
            .map_err(|e| ConntrackError::io("send(ctnetlink GET)", e))?;
        // Answers to earlier requests that timed out may still be queued: skip them by seq.
        loop {
            let n = match self.socket.recv(&mut &mut self.buf[..], 0) {
                Ok(n) => n,
                Err(e) if is_timeout(&e) => return Err(ConntrackError::Timeout(QUERY_TIMEOUT)),
                Err(e) => return Err(ConntrackError::io("recv(ctnetlink)", e)),
            };
            let datagram = self.buf.get(..n).unwrap_or_default();
            for item in decode_datagram(datagram) {
                match item? {
                    Decoded::Entry { seq: s, msg, .. } if s == seq => return Ok(Some(msg)),
                    Decoded::Error { seq: s, code } if s == seq => {
                        return match -code {
                            0 | libc::ENOENT => Ok(None),
                            errno => {
                                Err(ConntrackError::Refused(io::Error::from_raw_os_error(errno)))
                            }
                        };
                    }
                    _ => {}
                }
            }
        }
    }
}

/// The GET request for the entry with original tuple `tuple`.
fn get_request(tuple: &CtTuple, seq: u32) -> Vec<u8> {
    let family = if tuple.src.is_ipv4() {
        NetfilterProtoFamily::IPv4
    } else {
        NetfilterProtoFamily::IPv6
    };
    let attrs = vec![ConntrackAttribute::CtaTupleOrig(vec![
        Tuple::Ip(vec![
            IPTuple::SourceAddress(tuple.src.ip()),
            IPTuple::DestinationAddress(tuple.dst.ip()),
        ]),
        Tuple::Proto(vec![
            ProtoTuple::Protocol(tuple.proto.into()),
            ProtoTuple::SourcePort(tuple.src.port()),
            ProtoTuple::DestinationPort(tuple.dst.port()),
        ]),
    ])];
    let mut header = NetlinkHeader::default();
    header.flags = NLM_F_REQUEST;
    header.sequence_number = seq;
    let mut message = NetlinkMessage::new(
        header,
        NetlinkPayload::from(NetfilterMessage::new(
            NetfilterHeader::new(family, 0, 0),
            ConntrackMessage::Get(attrs),
        )),
    );
    message.finalize();
    let mut buf = vec![0; message.buffer_len()];
    message.serialize(&mut buf);
    buf
}

/// A ctnetlink socket subscribed to destroy events.
#[derive(Debug)]
pub(crate) struct EventSocket {
    socket: Socket,
}

impl EventSocket {
    /// Opens the socket and joins the destroy group (refused without CAP_NET_ADMIN). [`EventSocket::wait`]
    /// waits at most `tick`.
    pub(crate) fn open(tick: Duration) -> Result<Self, ConntrackError> {
        let socket = bound_socket()?;
        socket
            .add_membership(NFNLGRP_CONNTRACK_DESTROY)
            .map_err(|e| ConntrackError::io("join NFNLGRP_CONNTRACK_DESTROY", e))?;
        if let Err(error) = socket.set_rx_buf_sz(EVENT_RCVBUF) {
            tracing::debug!(%error, "conntrack: keeping the default event buffer size");
        }
        socket2::SockRef::from(&socket)
            .set_read_timeout(Some(tick))
            .map_err(|e| ConntrackError::io("setsockopt(SO_RCVTIMEO)", e))?;
        Ok(Self { socket })
    }

    /// Waits (up to the tick) until a datagram of events is queued, without taking it;
    /// `Ok(false)` when none came.
    pub(crate) fn wait(&self) -> Result<bool, ConntrackError> {
        let mut peek = [0u8; 1];
        match self.socket.recv(&mut &mut peek[..], libc::MSG_PEEK) {
            Ok(_) => Ok(true),
            Err(e) if is_timeout(&e) => Ok(false),
            Err(e) => Err(ConntrackError::io("recv(conntrack events)", e)),
        }
    }

    /// Takes the next queued datagram without waiting; `Ok(None)` when none is queued.
    /// `ENOBUFS` (events were dropped because the buffer overflowed) is an error the caller
    /// logs before reading on.
    pub(crate) fn try_recv(&self, buf: &mut [u8]) -> Result<Option<usize>, ConntrackError> {
        match self.socket.recv(&mut &mut buf[..], libc::MSG_DONTWAIT) {
            Ok(n) => Ok(Some(n)),
            Err(e) if is_timeout(&e) => Ok(None),
            Err(e) => Err(ConntrackError::io("recv(conntrack events)", e)),
        }
    }
}

/// A netfilter netlink socket bound to an address the kernel picks.
fn bound_socket() -> Result<Socket, ConntrackError> {
    let mut socket = Socket::new(NETLINK_NETFILTER)
        .map_err(|e| ConntrackError::io("socket(NETLINK_NETFILTER)", e))?;
    socket
        .bind_auto()
        .map_err(|e| ConntrackError::io("bind(netlink)", e))?;
    Ok(socket)
}

fn is_timeout(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// A buffer for [`EventSocket::recv`].
pub(crate) fn event_buffer() -> Vec<u8> {
    vec![0; RECV_BUF]
}
