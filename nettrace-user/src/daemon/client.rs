//! [`DaemonClient`]: an unprivileged process's connection to the loader daemon.
use std::{
    collections::VecDeque,
    io,
    os::fd::{AsFd, AsRawFd},
    path::Path,
    time::Duration,
};

use socket2::{Domain, SockAddr, Socket, Type};

use super::{
    protocol::{MAX_MESSAGE, Message, Request, WireEvent},
    seqpacket::send_with_fd,
};
use crate::kernel::KernelError;

/// Errors of the daemon and its client.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// A socket call failed.
    #[error("daemon socket I/O failed")]
    Io(#[source] io::Error),
    /// The kernel programs could not be loaded.
    #[error("the kernel programs are unavailable")]
    Kernel(#[source] KernelError),
    /// The daemon refused a request.
    #[error("the daemon refused: {0}")]
    Refused(String),
    /// The daemon sent something this client does not understand, or closed the connection.
    #[error("unexpected answer from the daemon: {0}")]
    Protocol(String),
}

/// A connection to the daemon: registers sockets this process holds and receives their
/// kernel events.
pub struct DaemonClient {
    socket: Socket,
    /// Events that arrived while waiting for a reply.
    pending: VecDeque<WireEvent>,
}

impl DaemonClient {
    /// Connects to the daemon's socket.
    pub fn connect(path: &Path) -> Result<Self, DaemonError> {
        let socket =
            Socket::new(Domain::UNIX, Type::SEQPACKET.cloexec(), None).map_err(DaemonError::Io)?;
        let addr = SockAddr::unix(path).map_err(DaemonError::Io)?;
        socket.connect(&addr).map_err(DaemonError::Io)?;
        Ok(Self {
            socket,
            pending: VecDeque::new(),
        })
    }

    /// Traces `socket` (pass it before `connect()` to see the handshake); returns its cookie.
    pub fn register(&mut self, socket: &impl AsFd) -> Result<u64, DaemonError> {
        self.request(&Request::Register, socket)
    }

    /// Stops tracing `socket`.
    pub fn unregister(&mut self, socket: &impl AsFd) -> Result<u64, DaemonError> {
        self.request(&Request::Unregister, socket)
    }

    /// Sends raw bytes with an optional descriptor (for tests of hostile input) and returns
    /// the daemon's answer.
    pub fn send_raw(
        &mut self,
        bytes: &[u8],
        fd: Option<std::os::fd::BorrowedFd<'_>>,
    ) -> Result<Message, DaemonError> {
        send_with_fd(&self.socket, bytes, fd.map(|fd| fd.as_raw_fd())).map_err(DaemonError::Io)?;
        self.answer(Duration::from_secs(10))
    }

    /// The next kernel event, waiting at most `timeout`; `None` when none came.
    pub fn next_event(&mut self, timeout: Duration) -> Result<Option<WireEvent>, DaemonError> {
        if let Some(event) = self.pending.pop_front() {
            return Ok(Some(event));
        }
        match self.receive(timeout)? {
            None => Ok(None),
            Some(Message::Event(event)) => Ok(Some(event)),
            Some(other) => Err(DaemonError::Protocol(format!("{other:?}"))),
        }
    }

    fn request(&mut self, request: &Request, socket: &impl AsFd) -> Result<u64, DaemonError> {
        let bytes =
            serde_json::to_vec(request).map_err(|e| DaemonError::Protocol(e.to_string()))?;
        let fd = socket.as_fd().as_raw_fd();
        send_with_fd(&self.socket, &bytes, Some(fd)).map_err(DaemonError::Io)?;
        match self.answer(Duration::from_secs(10))? {
            Message::Ok { cookie } => Ok(cookie),
            Message::Error { error } => Err(DaemonError::Refused(error)),
            Message::Event(event) => Err(DaemonError::Protocol(format!("{event:?}"))),
        }
    }

    /// The reply to the last request (events before it are kept for [`Self::next_event`]).
    fn answer(&mut self, timeout: Duration) -> Result<Message, DaemonError> {
        for _ in 0..100_000 {
            match self.receive(timeout)? {
                Some(Message::Event(event)) => self.pending.push_back(event),
                Some(answer) => return Ok(answer),
                None => return Err(DaemonError::Protocol("no answer in time".to_owned())),
            }
        }
        Err(DaemonError::Protocol(
            "no answer among the events".to_owned(),
        ))
    }

    fn receive(&mut self, timeout: Duration) -> Result<Option<Message>, DaemonError> {
        self.socket
            .set_read_timeout(Some(timeout.max(Duration::from_millis(1))))
            .map_err(DaemonError::Io)?;
        let mut buf = vec![0u8; MAX_MESSAGE * 4];
        // SAFETY: `buf` is a valid writable buffer of its length.
        let n = unsafe {
            libc::recv(
                self.socket.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                0,
            )
        };
        if n < 0 {
            let error = io::Error::last_os_error();
            return match error.kind() {
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => Ok(None),
                _ => Err(DaemonError::Io(error)),
            };
        }
        if n == 0 {
            return Err(DaemonError::Protocol(
                "the daemon closed the connection".to_owned(),
            ));
        }
        let bytes = buf.get(..n as usize).unwrap_or_default();
        serde_json::from_slice(bytes)
            .map(Some)
            .map_err(|e| DaemonError::Protocol(e.to_string()))
    }
}
