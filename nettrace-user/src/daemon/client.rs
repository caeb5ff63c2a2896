//! [`DaemonClient`]: a standalone connection to the loader daemon for programs that want the
//! kernel events of their sockets themselves (the library's `HttpClient` uses the daemon by
//! itself, see [`crate::daemon`]). Built on the library's own link: events are decoded from
//! the daemon's records and queued for [`DaemonClient::next_event`].
use std::{
    os::fd::{AsFd, BorrowedFd},
    path::Path,
    sync::{Arc, Mutex, PoisonError, mpsc},
    time::Duration,
};

use super::{
    DaemonError, SyncReport,
    link::DaemonLink,
    protocol::{Message, Request},
};
use crate::{
    capture::PacketCaptureOptions,
    kernel::{CaptureInterfaceInfo, KernelEvent, KernelSink},
};

/// A connection to the daemon: registers sockets this process holds and receives their
/// kernel events.
pub struct DaemonClient {
    link: DaemonLink,
    events: mpsc::Receiver<KernelEvent>,
    /// Kept alive for the link's reader thread (which holds it weakly).
    _sink: Arc<Queue>,
}

/// Queues the events for [`DaemonClient::next_event`].
struct Queue(Mutex<mpsc::Sender<KernelEvent>>);

impl KernelSink for Queue {
    fn kernel_event(&self, event: KernelEvent, _record: &[u8]) {
        let queue = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        // With the state changes that sock_ops records stand for, as the tracer sees them.
        for event in event.with_implied() {
            let _ = queue.send(event);
        }
    }
}

impl DaemonClient {
    /// Connects to the daemon's socket and makes the version handshake: a daemon of another
    /// version ([`DaemonError::VersionMismatch`]) or one older than the handshake
    /// ([`DaemonError::PredatesHandshake`]) is refused, since its records would be misread.
    pub fn connect(path: &Path) -> Result<Self, DaemonError> {
        let (tx, events) = mpsc::channel();
        let sink = Arc::new(Queue(Mutex::new(tx)));
        let weak = Arc::downgrade(&(sink.clone() as Arc<dyn KernelSink>));
        Ok(Self {
            link: DaemonLink::connect(path, weak)?,
            events,
            _sink: sink,
        })
    }

    /// Traces `socket` (pass it before `connect()` to see the handshake); returns its cookie.
    pub fn register(&mut self, socket: &impl AsFd) -> Result<u64, DaemonError> {
        self.link.register(socket).map(|cookie| cookie.0)
    }

    /// Captures the packets of this client's sockets registered from now on, on the
    /// interfaces of `options` (in the daemon's network namespace); returns them. Packets come
    /// from [`Self::next_event`]. ICMP and ARP are refused, and `total_size_limit` is the
    /// caller's to keep.
    pub fn capture(
        &mut self,
        options: &PacketCaptureOptions,
    ) -> Result<Vec<CaptureInterfaceInfo>, DaemonError> {
        self.link.capture(options)
    }

    /// Captures the packets of `socket`, a connected UDP socket registered by this client
    /// (TCP flows are captured from connect on by the kernel); nothing to do before
    /// [`Self::capture`].
    pub fn capture_flow(&mut self, socket: &impl AsFd) -> Result<(), DaemonError> {
        self.link.capture_flow(socket)
    }

    /// Whether the kernel reported the CLOSE of `socket`, a TCP socket registered by this
    /// client whose `connect()` failed at once. When it did not, none will come (the connect
    /// failed before any state the kernel reports), and the socket can be unregistered now.
    pub fn connect_failed(&mut self, socket: &impl AsFd) -> Result<bool, DaemonError> {
        self.link.close_reported(socket)
    }

    /// Stops tracing the socket with `cookie` (one this client registered) once it is closed:
    /// a socket still open goes on reporting to this client until it closes.
    pub fn unregister(&mut self, cookie: u64) -> Result<(), DaemonError> {
        self.link.unregister(crate::SocketCookie(cookie))
    }

    /// Waits until every kernel event that happened before the call is queued for
    /// [`Self::next_event`]; returns the lost-event accounting.
    pub fn sync(&mut self) -> Result<SyncReport, DaemonError> {
        self.link.sync()
    }

    /// How many clients and sockets the daemon holds (everyone's for root, else this
    /// client's): `(clients, sockets)`.
    pub fn status(&mut self) -> Result<(u64, u64), DaemonError> {
        match self.link.request(&Request::Status {}, None)? {
            Message::Status { clients, sockets } => Ok((clients, sockets)),
            other => Err(DaemonError::Protocol(format!("unexpected reply {other:?}"))),
        }
    }

    /// Sends raw bytes with an optional descriptor (for tests of hostile input) and returns
    /// the daemon's answer.
    pub fn send_raw(
        &mut self,
        bytes: &[u8],
        fd: Option<BorrowedFd<'_>>,
    ) -> Result<Message, DaemonError> {
        self.link.request_raw(bytes, fd)
    }

    /// The next kernel event, waiting at most `timeout`; `None` when none came.
    pub fn next_event(&mut self, timeout: Duration) -> Result<Option<KernelEvent>, DaemonError> {
        match self.events.recv_timeout(timeout) {
            Ok(event) => Ok(Some(event)),
            Err(mpsc::RecvTimeoutError::Timeout) => Ok(None),
            Err(mpsc::RecvTimeoutError::Disconnected) => Err(DaemonError::Protocol(
                "the connection to the daemon ended".to_owned(),
            )),
        }
    }
}
