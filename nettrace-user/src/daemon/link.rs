//! [`DaemonLink`]: the library's connection to the loader daemon. A reader thread of its own
//! ("nettrace-daemon") takes every frame as it arrives: kernel records are decoded with
//! [`KernelEvent::decode`] and handed to the sink (as the in-process hub does), replies go to
//! the oldest waiting request. Requests are sent from any thread and wait for their reply.
//! Connecting includes the version handshake ([`Request::Hello`]): a daemon of another
//! version, or one older than the handshake, is an error and no link.
//!
//! ```ignore
//! let link = DaemonLink::connect(path, Arc::downgrade(&sink) as Weak<dyn KernelSink>)?;
//! let cookie = link.register(&socket)?; // before connect()
//! let report = link.sync()?;            // every event before this is in the sink now
//! ```
use crate::sync::lock;
use std::{
    collections::VecDeque,
    os::fd::{AsFd, AsRawFd},
    path::{Path, PathBuf},
    sync::{
        Arc, Mutex, Weak,
        atomic::{AtomicBool, AtomicU64, Ordering},
        mpsc,
    },
    time::Duration,
};

use socket2::{Domain, SockAddr, Socket, Type};

use super::{
    DaemonError,
    protocol::{CaptureRequest, Frame, MAX_FRAME, Message, Request, VERSION, predates_handshake},
    seqpacket::{recv, send_with_fd},
};
use crate::{
    SocketCookie,
    capture::{LinkKind, PacketCaptureOptions},
    kernel::{CaptureInterfaceInfo, KernelEvent, KernelSink},
};

/// How long a request waits for its reply.
const REPLY_LIMIT: Duration = Duration::from_secs(10);

/// The lost-event accounting of a sync ([`DaemonClient::sync`](super::DaemonClient::sync)).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SyncReport {
    /// Events the daemon dropped because this client read too slowly.
    pub dropped: u64,
    /// Events of this client the kernel lost (ring buffer full).
    pub lost_events: u64,
    /// Packets of this client the kernel lost.
    pub lost_packets: u64,
    /// Records from the daemon that did not decode (skipped).
    pub malformed: u64,
}

/// A connection to the daemon whose kernel events go to a [`KernelSink`].
pub(crate) struct DaemonLink {
    shared: Arc<Shared>,
    path: PathBuf,
    /// Whether the daemon captures for this client.
    capturing: AtomicBool,
}

struct Shared {
    socket: Socket,
    waiting: Mutex<Waiting>,
    malformed: AtomicU64,
}

/// Requests waiting for their replies, oldest first; why the link ended, once it has.
#[derive(Default)]
struct Waiting {
    replies: VecDeque<mpsc::SyncSender<Result<Message, String>>>,
    closed: Option<String>,
}

impl DaemonLink {
    /// Connects to the daemon at `path`, starts the reader thread and says hello: fails
    /// unless the daemon speaks this build's [`VERSION`].
    pub(crate) fn connect(path: &Path, sink: Weak<dyn KernelSink>) -> Result<Self, DaemonError> {
        let socket =
            Socket::new(Domain::UNIX, Type::SEQPACKET.cloexec(), None).map_err(DaemonError::Io)?;
        let addr = SockAddr::unix(path).map_err(DaemonError::Io)?;
        socket.connect(&addr).map_err(DaemonError::Io)?;
        let shared = Arc::new(Shared {
            socket,
            waiting: Mutex::default(),
            malformed: AtomicU64::new(0),
        });
        let reader = shared.clone();
        std::thread::Builder::new()
            .name("nettrace-daemon".to_owned())
            .spawn(move || read_frames(&reader, &sink))
            .map_err(DaemonError::Io)?;
        let link = Self {
            shared,
            path: path.to_owned(),
            capturing: AtomicBool::new(false),
        };
        // Dropped on failure, which ends the reader thread.
        link.hello()?;
        Ok(link)
    }

    /// The version handshake, before any other request.
    fn hello(&self) -> Result<(), DaemonError> {
        let bytes = serde_json::to_vec(&Request::Hello { version: VERSION })
            .map_err(|e| DaemonError::Protocol(e.to_string()))?;
        let mismatch = |daemon| DaemonError::VersionMismatch {
            daemon,
            library: VERSION,
        };
        match self.request_raw(&bytes, None)? {
            Message::Hello { version } if version == VERSION => Ok(()),
            Message::Hello { version } => Err(mismatch(version)),
            Message::Error {
                version: Some(version),
                ..
            } if version != VERSION => Err(mismatch(version)),
            Message::Error { error, .. } if predates_handshake(&error) => {
                tracing::debug!(%error, "the daemon's answer to hello");
                Err(DaemonError::PredatesHandshake { library: VERSION })
            }
            // Refused for another reason (too many sessions, no kernel slot).
            Message::Error { error, .. } => Err(DaemonError::Refused(error)),
            other => Err(unexpected(other)),
        }
    }

    /// The daemon's socket path.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Traces `socket` (before `connect()`, to see the handshake); returns its cookie.
    pub(crate) fn register(&self, socket: &impl AsFd) -> Result<SocketCookie, DaemonError> {
        match self.request(&Request::Register {}, Some(socket.as_fd()))? {
            Message::Ok { cookie } => Ok(SocketCookie(cookie)),
            other => Err(unexpected(other)),
        }
    }

    /// Stops tracing a socket this client registered, without waiting for the reply (this
    /// runs on the reader thread too, when the kernel reports a socket's final CLOSE); a
    /// socket still open goes on reporting to this client until it closes.
    pub(crate) fn unregister(&self, cookie: SocketCookie) -> Result<(), DaemonError> {
        let bytes = serde_json::to_vec(&Request::Unregister { cookie: cookie.0 })
            .map_err(|e| DaemonError::Protocol(e.to_string()))?;
        // The reply finds its place in the queue and is dropped there.
        drop(self.send(&bytes, None)?);
        Ok(())
    }

    /// Returns once every kernel event that happened before the call is in the sink.
    pub(crate) fn sync(&self) -> Result<SyncReport, DaemonError> {
        match self.request(&Request::Sync {}, None)? {
            Message::Synced {
                dropped,
                lost_events,
                lost_packets,
            } => Ok(SyncReport {
                dropped,
                lost_events,
                lost_packets,
                malformed: self.shared.malformed.load(Ordering::Relaxed),
            }),
            other => Err(unexpected(other)),
        }
    }

    /// Makes the daemon capture this client's packets as `options` say (before registering
    /// the sockets to capture); returns the interfaces, in the daemon's network namespace.
    /// ICMP and ARP are refused by the daemon; the total size limit is the caller's to keep.
    pub(crate) fn capture(
        &self,
        options: &PacketCaptureOptions,
    ) -> Result<Vec<CaptureInterfaceInfo>, DaemonError> {
        let request = Request::Capture(CaptureRequest {
            interfaces: options.interfaces.clone(),
            snaplen: options.snaplen,
            tcp_without_payload: options.tcp_without_payload,
            tcp_headers_only: options.tcp_headers_only,
            include_icmp: options.include_icmp,
            include_arp: options.include_arp,
        });
        let Message::Capturing { interfaces } = self.request(&request, None)? else {
            return Err(DaemonError::Protocol(
                "the daemon did not answer the capture request".to_owned(),
            ));
        };
        self.capturing.store(true, Ordering::Relaxed);
        Ok(interfaces
            .into_iter()
            .map(|found| CaptureInterfaceInfo {
                name: found.name,
                index: found.index,
                link_kind: if found.raw_ip {
                    LinkKind::RawIp
                } else {
                    LinkKind::Ethernet
                },
                loopback: found.loopback,
            })
            .collect())
    }

    /// Captures the packets of a connected UDP socket this client registered (the daemon
    /// reads its addresses from the descriptor); nothing to do when it does not capture.
    pub(crate) fn capture_flow(&self, socket: &impl AsFd) -> Result<(), DaemonError> {
        if !self.capturing.load(Ordering::Relaxed) {
            return Ok(());
        }
        match self.request(&Request::CaptureFlow {}, Some(socket.as_fd()))? {
            Message::Ok { .. } => Ok(()),
            other => Err(unexpected(other)),
        }
    }

    /// Whether the programs reported the CLOSE of `socket`, a registered TCP socket whose
    /// connect failed at once ([`Request::ConnectFailed`]).
    pub(crate) fn close_reported(&self, socket: &impl AsFd) -> Result<bool, DaemonError> {
        match self.request(&Request::ConnectFailed {}, Some(socket.as_fd()))? {
            Message::CloseReported { reported } => Ok(reported),
            other => Err(unexpected(other)),
        }
    }

    /// Sends a request and waits for its reply (an error reply is [`DaemonError::Refused`]).
    pub(crate) fn request(
        &self,
        request: &Request,
        fd: Option<std::os::fd::BorrowedFd<'_>>,
    ) -> Result<Message, DaemonError> {
        let bytes =
            serde_json::to_vec(request).map_err(|e| DaemonError::Protocol(e.to_string()))?;
        match self.request_raw(&bytes, fd)? {
            Message::Error { error, .. } => Err(DaemonError::Refused(error)),
            answer => Ok(answer),
        }
    }

    /// Sends raw bytes (with a descriptor when given) and waits for the daemon's reply.
    pub(crate) fn request_raw(
        &self,
        bytes: &[u8],
        fd: Option<std::os::fd::BorrowedFd<'_>>,
    ) -> Result<Message, DaemonError> {
        match self.send(bytes, fd)?.recv_timeout(REPLY_LIMIT) {
            Ok(answer) => answer.map_err(DaemonError::Protocol),
            Err(mpsc::RecvTimeoutError::Timeout) => Err(DaemonError::Protocol(format!(
                "no answer in {REPLY_LIMIT:?}"
            ))),
            Err(mpsc::RecvTimeoutError::Disconnected) => Err(DaemonError::Protocol(
                "the connection to the daemon ended".to_owned(),
            )),
        }
    }
}

impl DaemonLink {
    /// Sends a request; its reply will come on the returned channel.
    fn send(
        &self,
        bytes: &[u8],
        fd: Option<std::os::fd::BorrowedFd<'_>>,
    ) -> Result<mpsc::Receiver<Result<Message, String>>, DaemonError> {
        let (tx, rx) = mpsc::sync_channel(1);
        // Sending and queueing under one lock keeps the queue in the order of the sends.
        let mut waiting = lock(&self.shared.waiting);
        if let Some(reason) = &waiting.closed {
            return Err(DaemonError::Protocol(reason.clone()));
        }
        send_with_fd(&self.shared.socket, bytes, fd.map(|fd| fd.as_raw_fd()))
            .map_err(DaemonError::Io)?;
        waiting.replies.push_back(tx);
        Ok(rx)
    }
}

impl Drop for DaemonLink {
    fn drop(&mut self) {
        // Ends the reader thread (not joined: this may run on it, from the sink).
        let _ = self.shared.socket.shutdown(std::net::Shutdown::Both);
    }
}

fn unexpected(message: Message) -> DaemonError {
    DaemonError::Protocol(format!("unexpected reply {message:?}"))
}

/// The body of the reader thread: until the connection ends or the sink is gone.
fn read_frames(shared: &Shared, sink: &Weak<dyn KernelSink>) {
    // One byte more than the longest frame tells a cut frame.
    let mut buf = vec![0u8; MAX_FRAME + 1];
    let reason = loop {
        let n = match recv(&shared.socket, &mut buf) {
            Ok(0) => break "the daemon closed the connection".to_owned(),
            Ok(n) => n,
            Err(error) => break format!("receiving from the daemon failed: {error}"),
        };
        match Incoming::of(buf.get(..n).unwrap_or_default()) {
            Incoming::Event(event, record) => {
                let Some(sink) = sink.upgrade() else {
                    break "the tracer is gone".to_owned();
                };
                sink.kernel_event(event, record);
            }
            Incoming::Reply(reply) => {
                if let Err(error) = &reply {
                    tracing::warn!(%error, "malformed reply from the daemon");
                }
                answer(shared, reply);
            }
            Incoming::Malformed(error) => {
                shared.malformed.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(%error, "skipping a malformed frame from the daemon");
            }
        }
    };
    let mut waiting = lock(&shared.waiting);
    for waiter in waiting.replies.drain(..) {
        let _ = waiter.try_send(Err(reason.clone()));
    }
    waiting.closed = Some(reason);
}

/// What one frame from the daemon is to the reader thread.
#[derive(Debug)]
pub(crate) enum Incoming<'a> {
    /// A kernel event for the sink, with the record it was decoded from.
    Event(KernelEvent, &'a [u8]),
    /// The reply to the oldest waiting request; replies come in request order, so a broken
    /// one still answers its request.
    Reply(Result<Message, String>),
    /// A record that does not decode or a frame with another tag: counted and skipped.
    Malformed(String),
}

impl<'a> Incoming<'a> {
    /// Classifies (and decodes) one frame.
    pub(crate) fn of(frame: &'a [u8]) -> Self {
        match Frame::decode(frame) {
            Ok(Frame::Record(record)) => match KernelEvent::decode(record) {
                Ok(event) => Self::Event(event, record),
                Err(error) => Self::Malformed(error.to_string()),
            },
            Ok(Frame::Reply(message)) => Self::Reply(Ok(message)),
            Err(error) if Frame::is_reply(frame) => Self::Reply(Err(error)),
            Err(error) => Self::Malformed(error),
        }
    }
}

/// Hands a reply to the oldest waiting request (one that gave up waiting drops it).
fn answer(shared: &Shared, reply: Result<Message, String>) {
    if let Some(waiter) = lock(&shared.waiting).replies.pop_front() {
        let _ = waiter.try_send(reply);
    } else {
        tracing::warn!(?reply, "a reply from the daemon to no request");
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Records what the link hands on.
    struct Count(AtomicU64);

    impl KernelSink for Count {
        fn kernel_event(&self, _event: KernelEvent, _record: &[u8]) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A fake daemon's socket in a folder of its own, removed on drop.
    pub(crate) struct FakeDaemon {
        dir: PathBuf,
        listener: Socket,
    }

    impl FakeDaemon {
        pub(crate) fn listen(name: &str) -> Self {
            let dir =
                std::env::temp_dir().join(format!("nettrace-link-{name}-{}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            let path = dir.join("fake.sock");
            let _ = std::fs::remove_file(&path);
            let listener = Socket::new(Domain::UNIX, Type::SEQPACKET, None).unwrap();
            listener.bind(&SockAddr::unix(&path).unwrap()).unwrap();
            listener.listen(1).unwrap();
            Self { dir, listener }
        }

        pub(crate) fn path(&self) -> PathBuf {
            self.dir.join("fake.sock")
        }

        /// Accepts the client (on another thread: the link waits for the hello's answer),
        /// checks that its first message is the hello of this build, answers it with
        /// `answer` (a whole frame) and hands the connection to `then`.
        pub(crate) fn serve<T: Send + 'static>(
            &self,
            answer: Vec<u8>,
            then: impl FnOnce(Socket) -> T + Send + 'static,
        ) -> std::thread::JoinHandle<T> {
            let listener = self.listener.try_clone().unwrap();
            std::thread::spawn(move || {
                let (daemon, _) = listener.accept().unwrap();
                let mut buf = [0u8; 256];
                let n = recv(&daemon, &mut buf).unwrap();
                assert_eq!(
                    &buf[..n],
                    format!(r#"{{"op":"hello","version":{VERSION}}}"#).as_bytes()
                );
                send_with_fd(&daemon, &answer, None).unwrap();
                then(daemon)
            })
        }
    }

    impl Drop for FakeDaemon {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    fn no_sink() -> Weak<dyn KernelSink> {
        Weak::<Count>::new()
    }

    /// Waits for the end of the connection: the client closed it.
    pub(crate) fn until_closed(daemon: Socket) {
        let mut buf = [0u8; 256];
        assert_eq!(
            recv(&daemon, &mut buf).unwrap(),
            0,
            "a message after the hello"
        );
    }

    #[test]
    fn hostile_frames_are_counted_and_the_sync_still_answers() {
        let fake = FakeDaemon::listen("hostile");
        let hello = Frame::encode_reply(&Message::Hello { version: VERSION });
        let served = fake.serve(hello, |daemon| {
            let mut buf = [0u8; 256];
            let n = recv(&daemon, &mut buf).unwrap();
            assert_eq!(&buf[..n], br#"{"op":"sync"}"#);
            for frame in [&b"Eshort"[..], b"E", b"?what", &[b'E'; MAX_FRAME + 10][..]] {
                send_with_fd(&daemon, frame, None).unwrap();
            }
            let synced = Message::Synced {
                dropped: 2,
                lost_events: 3,
                lost_packets: 0,
            };
            send_with_fd(&daemon, &Frame::encode_reply(&synced), None).unwrap();
            daemon
        });
        let sink = Arc::new(Count(AtomicU64::new(0)));
        let weak: Weak<dyn KernelSink> = Arc::downgrade(&(sink.clone() as Arc<dyn KernelSink>));
        let link = DaemonLink::connect(&fake.path(), weak).unwrap();
        let report = link.sync().unwrap();
        assert_eq!(report.dropped, 2);
        assert_eq!(report.lost_events, 3);
        // Three bad records and an unknown tag: counted, and the sync got its own reply.
        assert_eq!(report.malformed, 4);
        assert_eq!(sink.0.load(Ordering::Relaxed), 0);
        drop(served.join().unwrap());
        // The daemon is gone: requests fail, nothing hangs.
        assert!(link.sync().is_err());
    }

    #[test]
    fn a_daemon_of_another_version_is_no_link_and_the_error_names_both() {
        let other = VERSION + 1;
        // The refusal of a daemon with the handshake, and a hello answered with another
        // version (a daemon that would serve it anyway).
        let refusal = Message::Error {
            error: "version mismatch".to_owned(),
            version: Some(other),
        };
        for answer in [refusal, Message::Hello { version: other }] {
            let fake = FakeDaemon::listen("version");
            let served = fake.serve(Frame::encode_reply(&answer), until_closed);
            let error = DaemonLink::connect(&fake.path(), no_sink()).err().unwrap();
            assert!(
                matches!(
                    error,
                    DaemonError::VersionMismatch { daemon, library }
                        if daemon == other && library == VERSION
                ),
                "{error:?}"
            );
            let text = error.to_string();
            assert!(
                text.contains(&format!("version {other}"))
                    && text.contains(&format!("version {VERSION}"))
                    && text.contains("same nettrace release"),
                "{text}"
            );
            // The failed link closed its connection.
            served.join().unwrap();
        }
    }

    /// What a daemon built before the handshake answers to hello, byte for byte (with its
    /// serde_json 1.0.154, whose message ends with the position).
    pub(crate) const OLD_DAEMONS_ANSWER: &[u8] = br#"R{"type":"error","error":"malformed request: unknown variant `hello`, expected one of `register`, `unregister`, `sync`, `status`, `capture`, `capture-flow` at line 1 column 13"}"#;

    #[test]
    fn a_daemon_that_does_not_know_hello_predates_the_handshake() {
        let fake = FakeDaemon::listen("old");
        let served = fake.serve(OLD_DAEMONS_ANSWER.to_vec(), until_closed);
        let error = DaemonLink::connect(&fake.path(), no_sink()).err().unwrap();
        assert!(
            matches!(error, DaemonError::PredatesHandshake { library } if library == VERSION),
            "{error:?}"
        );
        let text = error.to_string();
        assert!(
            text.contains("predates the version handshake")
                && text.contains("same nettrace release"),
            "{text}"
        );
        served.join().unwrap();
    }

    #[test]
    fn a_daemon_refusing_the_client_for_another_reason_says_why() {
        let full = Message::error("too many sessions for this user (at most 64)");
        let fake = FakeDaemon::listen("full");
        let served = fake.serve(Frame::encode_reply(&full), until_closed);
        let error = DaemonLink::connect(&fake.path(), no_sink()).err().unwrap();
        assert!(
            matches!(&error, DaemonError::Refused(why) if why.contains("too many sessions")),
            "{error:?}"
        );
        served.join().unwrap();
    }
}
