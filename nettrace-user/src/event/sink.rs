//! [`EventSink`]: the narrow view of the tracer that hooks (the connector, resolver, TLS and
//! HTTP layers, the socket wrappers) get. A hook reports what happened and asks for the few
//! services a socket's life needs from the kernel side; it never sees the recorder, the
//! kernel link or the conntrack tracker behind it.
//!
//! ```ignore
//! fn on_established(sink: &Sink, conn: TraceId, local: SocketAddr) {
//!     sink.emit(Event::ConnEstablished { conn, at: Instant::now(), local });
//! }
//! ```
use std::{io, net::SocketAddr, os::fd::BorrowedFd, sync::Arc};

use socket2::Socket;

use super::{Event, SocketRecord, Transport};
use crate::SocketCookie;

/// What the tracer records beyond the always-on records.
#[derive(Clone, Debug, Default)]
pub(crate) struct TraceSettings {
    /// Log every socket operation (`WithSockTrace`).
    pub(crate) sock_ops: bool,
    /// Record DNS messages (`WithDNSQueryTrace`).
    pub(crate) dns_messages: bool,
    /// The most records of each kind a trace keeps.
    pub(crate) limits: crate::limits::TraceLimits,
    /// Whether completed requests are streamed ([`Event::RequestDone`] is emitted, and the
    /// recorder forgets what only that request used).
    pub(crate) stream: bool,
    /// Whether each connection's trace is streamed when it closes (a program traced from
    /// the kernel, whose requests are not seen).
    pub(crate) stream_connections: bool,
}

/// Where hooks report events. Every method is cheap for an untraced aspect (no kernel link,
/// no capture) and never fails: a kernel-side failure only costs that socket's kernel facts
/// or packets, and is logged.
pub(crate) trait EventSink: std::fmt::Debug + Send + Sync + 'static {
    /// What is recorded.
    fn settings(&self) -> &TraceSettings;

    /// Reports an event.
    fn emit(&self, event: Event);

    /// Reports an [`Event::HttpResponse`] whose `header` is filled from `headers`, captured
    /// into the recorder's shared buffer (no allocation per response); the event's own
    /// `header` is ignored.
    fn emit_response(&self, headers: &http::HeaderMap, event: Event);

    /// A fresh I/O record for a new socket, logging operations if `WithSockTrace` is on.
    fn new_socket_record(&self) -> Arc<SocketRecord>;

    /// A process-unique number for a resolver dial.
    fn next_resolver_dial(&self) -> u64;

    /// Creates a socket for `transport` with `create` and traces it in the kernel too, before
    /// it can connect. Returns the socket with its cookie (`None` when it could not be read:
    /// the socket is then not traced in the kernel). Fails only as `create` does.
    ///
    /// `create` runs on the calling thread, and the first socket it creates must be the one it
    /// returns: the kernel may register that one as it is created (see `kernel::announce`).
    fn open_socket(
        &self,
        transport: Transport,
        create: &mut dyn FnMut() -> io::Result<Socket>,
    ) -> io::Result<(Socket, Option<SocketCookie>)>;

    /// Stops tracing a UDP socket in the kernel (it has no state machine to wait for).
    fn unregister_socket(&self, cookie: SocketCookie);

    /// The application closed a TCP socket: it leaves kernel tracing once the kernel has
    /// reported its final CLOSE too.
    fn tcp_socket_closed(&self, cookie: SocketCookie);

    /// The application closes a TCP socket whose `connect()` failed or never began, while
    /// `socket` is still open: [`Self::tcp_socket_closed`], unless the kernel reported no
    /// CLOSE for it, which then never comes (the socket never left CLOSE, and closing it is
    /// no transition) and it leaves kernel tracing at once.
    fn tcp_socket_failed(&self, socket: BorrowedFd<'_>, cookie: SocketCookie);

    /// Captures the packets of the connected UDP `socket` (between `local` and `remote`) as
    /// its own; does nothing when the client does not capture.
    fn register_udp_flow(
        &self,
        socket: BorrowedFd<'_>,
        cookie: SocketCookie,
        local: SocketAddr,
        remote: SocketAddr,
    );
}

/// A shared handle on the sink, as the hooks that outlive a call (socket wrappers, bodies)
/// keep it.
pub(crate) type Sink = Arc<dyn EventSink>;
