//! Opening traced sockets: one path for every TCP connection and UDP socket the client opens
//! (HTTP connections and resolver connections alike).
//!
//! The socket is created through the sink, which traces it in the kernel and knows its cookie
//! (the kernel registers it as it creates it when it can, see `kernel::announce`), optionally
//! bound to the configured source IP, and the connection reported, all before `connect()`,
//! so that the record (and the kernel programs, which know the socket by its cookie) cover the
//! whole handshake.
use std::{
    io,
    net::{IpAddr, SocketAddr},
    os::fd::AsFd,
    time::{Duration, Instant},
};

use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::{TcpStream, UdpSocket};

use super::{TracedStream, TracedUdpSocket};
use crate::{
    SocketCookie,
    event::Sink,
    event::{Event, OnCancel, Transport},
    model::TraceId,
};

/// Who opens the socket and where to.
#[derive(Clone, Debug)]
pub(crate) struct SocketOrigin {
    /// The dial the socket belongs to.
    pub(crate) dial: TraceId,
    /// True for connections to nameservers.
    pub(crate) from_resolver: bool,
    /// Local address to bind before connecting.
    pub(crate) source_ip: Option<IpAddr>,
}

/// Keep-alive probe interval when none is configured (Go's `net.Dialer` default).
const DEFAULT_KEEPALIVE: Duration = Duration::from_secs(15);

/// TCP options applied before connecting.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct TcpOptions {
    /// Give up the handshake after this long.
    pub(crate) connect_timeout: Option<Duration>,
    /// Keep-alive probe interval; `None` means 15 s, zero turns probes off (Go's rules).
    pub(crate) keepalive: Option<Duration>,
}

/// Creates a socket for `transport` towards `remote` and reports it.
fn open(
    sink: &Sink,
    transport: Transport,
    origin: &SocketOrigin,
    remote: SocketAddr,
) -> io::Result<(
    Socket,
    TraceId,
    std::sync::Arc<crate::event::SocketRecord>,
    Option<SocketCookie>,
)> {
    let domain = Domain::for_address(remote);
    let (kind, protocol) = match transport {
        Transport::Tcp => (Type::STREAM, Protocol::TCP),
        Transport::Udp => (Type::DGRAM, Protocol::UDP),
    };
    let (socket, cookie) = sink.open_socket(transport, &mut || {
        let socket = Socket::new(domain, kind.nonblocking().cloexec(), Some(protocol))?;
        if let Some(ip) = origin.source_ip {
            socket.bind(&SocketAddr::new(ip, 0).into())?;
        }
        Ok(socket)
    })?;
    let conn = TraceId::generate();
    let record = sink.new_socket_record();
    sink.emit(Event::ConnOpened {
        conn: conn.clone(),
        transport,
        dial: origin.dial.clone(),
        from_resolver: origin.from_resolver,
        remote,
        cookie,
        record: record.clone(),
        at: Instant::now(),
    });
    Ok((socket, conn, record, cookie))
}

/// Opens and connects a traced TCP connection.
pub(crate) async fn connect_tcp(
    sink: &Sink,
    origin: &SocketOrigin,
    remote: SocketAddr,
    options: TcpOptions,
) -> Result<TracedStream<TcpStream>, ConnectError> {
    let (socket, conn, record, cookie) =
        open(sink, Transport::Tcp, origin, remote).map_err(ConnectError::Socket)?;
    // Up to the first await nothing can cancel the attempt, and a failure finds the socket
    // still here, in CLOSE: the sink learns from it whether the kernel will report a CLOSE.
    if let Err(error) = start_connect(&socket, remote, options) {
        if let Some(cookie) = cookie {
            sink.tcp_socket_failed(socket.as_fd(), cookie);
        }
        report_failed(sink, &conn);
        return Err(error);
    }
    // Reports the attempt failed (and its socket closed) unless it connects: on an error, and
    // when the request is canceled (this future dropped) while it connects.
    let failed = OnCancel::new(|| {
        if let Some(cookie) = cookie {
            sink.tcp_socket_closed(cookie);
        }
        report_failed(sink, &conn);
    });
    let connecting = connected(socket);
    let stream = match options.connect_timeout {
        Some(limit) => match tokio::time::timeout(limit, connecting).await {
            Ok(result) => result,
            Err(_) => return Err(ConnectError::Timeout(limit)),
        },
        None => connecting.await,
    }
    .map_err(ConnectError::Connect)?;
    let local = stream.local_addr().map_err(ConnectError::Socket)?;
    failed.disarm();
    sink.emit(Event::ConnEstablished {
        conn: conn.clone(),
        at: Instant::now(),
        local,
    });
    Ok(TracedStream::new(
        stream,
        conn,
        record,
        cookie,
        sink.clone(),
    ))
}

/// Sets the TCP options of `socket` (non-blocking) and starts its connection to `remote`.
fn start_connect(
    socket: &Socket,
    remote: SocketAddr,
    options: TcpOptions,
) -> Result<(), ConnectError> {
    let interval = options.keepalive.unwrap_or(DEFAULT_KEEPALIVE);
    let keepalive = if interval.is_zero() {
        socket.set_keepalive(false)
    } else {
        socket.set_tcp_keepalive(
            &socket2::TcpKeepalive::new()
                .with_time(interval)
                .with_interval(interval),
        )
    };
    keepalive.map_err(ConnectError::Socket)?;
    socket.set_tcp_nodelay(true).map_err(ConnectError::Socket)?;
    match socket.connect(&remote.into()) {
        Err(error) if error.raw_os_error() != Some(libc::EINPROGRESS) => {
            Err(ConnectError::Connect(error))
        }
        _ => Ok(()),
    }
}

/// The stream of `socket`, whose connection is under way, once it is made; or why it failed.
async fn connected(socket: Socket) -> io::Result<TcpStream> {
    let stream = TcpStream::from_std(std::net::TcpStream::from(socket))?;
    // Writable once the handshake ended, either way; the socket's error tells which.
    stream.writable().await?;
    match stream.take_error()? {
        Some(error) => Err(error),
        None => Ok(stream),
    }
}

/// Reports that the connection `conn` failed and is closed.
fn report_failed(sink: &Sink, conn: &TraceId) {
    let at = Instant::now();
    sink.emit(Event::ConnFailed {
        conn: conn.clone(),
        at,
    });
    sink.emit(Event::ConnClosed {
        conn: conn.clone(),
        at,
    });
}

/// Opens and connects a traced UDP socket.
pub(crate) async fn connect_udp(
    sink: &Sink,
    origin: &SocketOrigin,
    remote: SocketAddr,
) -> Result<TracedUdpSocket, ConnectError> {
    let (socket, conn, record, cookie) =
        open(sink, Transport::Udp, origin, remote).map_err(ConnectError::Socket)?;
    let result = async {
        let socket = UdpSocket::from_std(std::net::UdpSocket::from(socket))?;
        socket.connect(remote).await?;
        let local = socket.local_addr()?;
        io::Result::Ok((socket, local))
    }
    .await;
    match result {
        Ok((socket, local)) => {
            if let Some(cookie) = cookie {
                sink.register_udp_flow(std::os::fd::AsFd::as_fd(&socket), cookie, local, remote);
            }
            sink.emit(Event::ConnEstablished {
                conn: conn.clone(),
                at: Instant::now(),
                local,
            });
            Ok(TracedUdpSocket::new(
                socket,
                conn,
                record,
                cookie,
                sink.clone(),
            ))
        }
        Err(error) => {
            if let Some(cookie) = cookie {
                sink.unregister_socket(cookie);
            }
            sink.emit(Event::ConnClosed {
                conn,
                at: Instant::now(),
            });
            Err(ConnectError::Connect(error))
        }
    }
}

/// Why a traced connection could not be opened.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ConnectError {
    /// Creating, binding or configuring the socket failed.
    #[error("socket setup failed: {0}")]
    Socket(#[source] io::Error),
    /// `connect()` failed.
    #[error("{0}")]
    Connect(#[source] io::Error),
    /// The handshake did not finish in time.
    #[error("TCP handshake timed out after {0:?}")]
    Timeout(Duration),
}
