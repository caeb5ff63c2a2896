//! Traced sockets: one path that opens every TCP connection and UDP socket of the client
//! ([`open`]), and wrappers that count every byte and, with `WithSockTrace`, log every
//! operation into the socket's shared [`SocketRecord`].
mod datagram;
mod open;
mod stream;

pub(crate) use datagram::TracedUdpSocket;
pub(crate) use open::{ConnectError, SocketOrigin, TcpOptions, connect_tcp, connect_udp};
pub(crate) use stream::TracedStream;
