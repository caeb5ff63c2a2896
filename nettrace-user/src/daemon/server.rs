//! The daemon side: accepts clients, serves each once it has said hello with this build's
//! version ([`Request::Hello`]), registers the sockets whose descriptors they pass, and
//! forwards each client's kernel events and captured packets to it alone (the capture
//! requests are handled in [`capture`]). A session reaches the kernel only through its
//! client's [`KernelSlot`] (the hub's `KernelClient` here, a fake in `server_tests`), so its
//! isolation rules are tested without root.
use crate::sync::lock;
use std::{
    collections::HashMap,
    io,
    os::{
        fd::{AsFd, AsRawFd, OwnedFd},
        unix::fs::PermissionsExt,
    },
    path::PathBuf,
    sync::{
        Arc, Mutex, Weak,
        atomic::{AtomicU64, Ordering},
    },
};

use socket2::{Domain, SockAddr, Socket, Type};

use super::{
    DaemonError, capture,
    protocol::{
        CaptureRequest, Frame, MAX_RECORD, MAX_REQUEST, Message, RECORD_TAG, Request, VERSION,
    },
    seqpacket::{grow_send_buffer, recv_with_fds, send_now, send_with_fd},
    slot::KernelSlot,
};
use crate::{
    SocketCookie,
    kernel::{KernelConfig, KernelEvent, KernelHub, KernelSink},
};

/// How the daemon runs.
#[derive(Clone, Debug)]
pub struct ServeOptions {
    /// The Unix socket to listen on (its folder is created; a stale socket is replaced).
    pub socket_path: PathBuf,
    /// Group allowed to connect (socket mode 0660); everyone when `None` (mode 0666: a client
    /// can only ever trace sockets it holds).
    pub group: Option<u32>,
    /// Ring buffer sizes.
    pub kernel_config: KernelConfig,
}

/// Most sockets one client may have registered at a time (what the daemon keeps per socket).
pub const MAX_SOCKETS_PER_CLIENT: usize = 4096;

/// Most sessions one user (other than root) may hold at a time: each costs a thread and one
/// of the kernel's client slots, which all users share.
pub const MAX_SESSIONS_PER_USER: usize = 64;

/// Buffer for the events on their way to a client (events beyond it are dropped and counted).
const CLIENT_SEND_BUFFER: usize = 4 << 20;

/// Loads the programs and serves clients until the process ends (accept errors are logged).
/// `ready` is called once the socket listens.
pub fn serve(options: &ServeOptions, ready: impl FnOnce()) -> Result<(), DaemonError> {
    let hub = KernelHub::shared(&options.kernel_config).map_err(DaemonError::Kernel)?;
    let listener = listen(options).map_err(DaemonError::Io)?;
    ready();
    let shared = Arc::new(Shared::new(MAX_SOCKETS_PER_CLIENT));
    let mut next_id = 0u64;
    loop {
        let (conn, _) = match listener.accept() {
            Ok(accepted) => accepted,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(error) => {
                tracing::warn!("accept failed: {error}");
                continue;
            }
        };
        next_id += 1;
        let conn: OwnedFd = conn.into();
        let seat = match UserSeat::take(&shared, peer_uid(&conn)) {
            Ok(seat) => seat,
            Err(error) => {
                tracing::warn!("client {next_id} refused: {error}");
                reply(&conn, &Message::error(error));
                continue;
            }
        };
        let (hub, shared_for_client, id) = (hub.clone(), shared.clone(), next_id);
        let spawned = std::thread::Builder::new()
            .name(format!("nettrace-client-{id}"))
            .spawn(move || {
                let _seat = seat;
                serve_client(&hub, conn, id, &shared_for_client);
            });
        if let Err(error) = spawned {
            tracing::warn!("no thread for a client: {error}");
        }
    }
}

fn listen(options: &ServeOptions) -> io::Result<Socket> {
    let path = &options.socket_path;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    // A socket left by a killed daemon: nothing listens on it any more.
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let socket = Socket::new(Domain::UNIX, Type::SEQPACKET.cloexec(), None)?;
    socket.bind(&SockAddr::unix(path)?)?;
    let mode = match options.group {
        Some(gid) => {
            std::os::unix::fs::chown(path, Some(0), Some(gid))?;
            0o660
        }
        None => 0o666,
    };
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
    socket.listen(64)?;
    Ok(socket)
}

/// Forwards kernel events to one client without ever blocking the kernel reader: an event
/// that does not fit in the client's socket buffer is dropped and counted.
struct ClientSink {
    conn: OwnedFd,
    dropped: AtomicU64,
}

impl KernelSink for ClientSink {
    fn kernel_event(&self, event: KernelEvent, record: &[u8]) {
        let sent = if record.len() > MAX_RECORD {
            Err(io::Error::other("record too long"))
        } else if let Some(time) = capped_time(&event, record)
            && let (Some(before), Some(after)) =
                (record.get(..TIME_AT), record.get(TIME_AT + time.len()..))
        {
            // The record as it is, but the time: no copy of it.
            send_now(&self.conn, [&[RECORD_TAG], before, &time, after])
        } else {
            send_now(&self.conn, [&[RECORD_TAG], record])
        };
        if sent.is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Where a record's time lies (in its [`nettrace_common::EventHeader`]).
const TIME_AT: usize = std::mem::offset_of!(nettrace_common::EventHeader, timestamp_ns);

/// The time of `event`, which the hub decoded from the packet record `record`, as the bytes
/// to put at [`TIME_AT`] when it differs from the record's: the hub caps a packet's departure
/// time at the moment it read the record ([`KernelEvent::cap_packet_time`]), and the client
/// gets the time an in-process reader would have given it. `None` for every other record.
fn capped_time(event: &KernelEvent, record: &[u8]) -> Option<[u8; 8]> {
    let KernelEvent::Packet(packet) = event else {
        return None;
    };
    let time = packet.time.0.to_ne_bytes();
    let stamped = record.get(TIME_AT..TIME_AT + time.len())?;
    (stamped != time).then_some(time)
}

/// What every session shares.
struct Shared {
    /// The client (session id) that registered each socket.
    owners: Mutex<HashMap<SocketCookie, u64>>,
    clients: AtomicU64,
    /// Open sessions per user id (root's are not counted).
    sessions_by_user: Mutex<HashMap<u32, usize>>,
    /// Most sockets one client may have registered at a time ([`MAX_SOCKETS_PER_CLIENT`]).
    max_sockets_per_client: usize,
}

impl Shared {
    fn new(max_sockets_per_client: usize) -> Self {
        Self {
            owners: Mutex::default(),
            clients: AtomicU64::new(0),
            sessions_by_user: Mutex::default(),
            max_sockets_per_client,
        }
    }

    /// Client `id` is gone: removes its slot (which silences its sockets in the kernel, by a
    /// new generation of the slot, and removes their flows), then forgets the sockets it
    /// registered. In this order: a socket forgotten first could be registered by another
    /// client (a process it shares the socket with) in between, and the slot's removal would
    /// then release it under that client.
    fn remove_client<S>(&self, id: u64, slot: S) {
        drop(slot);
        lock(&self.owners).retain(|_, owner| *owner != id);
    }
}

/// One of a user's [`MAX_SESSIONS_PER_USER`] sessions, given back when dropped.
struct UserSeat {
    shared: Arc<Shared>,
    uid: Option<u32>,
}

impl UserSeat {
    /// A seat for a session of `uid`, unless that user holds all theirs already (root is not
    /// limited), or the peer's uid could not be read (it would escape the limit); the error
    /// is the reply.
    fn take(shared: &Arc<Shared>, uid: Option<u32>) -> Result<Self, String> {
        let Some(uid) = uid else {
            return Err("the peer's user id cannot be read (SO_PEERCRED)".to_owned());
        };
        let counted = (uid != 0).then_some(uid);
        if let Some(uid) = counted {
            let mut sessions = lock(&shared.sessions_by_user);
            let held = sessions.entry(uid).or_default();
            if *held >= MAX_SESSIONS_PER_USER {
                return Err(format!(
                    "too many sessions for this user (at most {MAX_SESSIONS_PER_USER})"
                ));
            }
            *held += 1;
        }
        Ok(Self {
            shared: shared.clone(),
            uid: counted,
        })
    }
}

impl Drop for UserSeat {
    fn drop(&mut self) {
        if let Some(uid) = self.uid {
            let mut sessions = lock(&self.shared.sessions_by_user);
            if let Some(held) = sessions.get_mut(&uid) {
                *held = held.saturating_sub(1);
                if *held == 0 {
                    sessions.remove(&uid);
                }
            }
        }
    }
}

/// One client's session state, as its requests see it.
struct Session<'a, S> {
    client: &'a S,
    sink: &'a ClientSink,
    shared: &'a Shared,
    id: u64,
    /// The peer's user id, when known.
    uid: Option<u32>,
    /// Whether the client's capture has started (once per connection).
    capturing: std::cell::Cell<bool>,
    /// Whether the client said hello with this daemon's [`VERSION`]: until then it is served
    /// nothing, since it could misread every record.
    greeted: std::cell::Cell<bool>,
}

/// One client's session: its own slot, the sockets it proved it holds, removed when it goes.
fn serve_client(hub: &Arc<KernelHub>, conn: OwnedFd, id: u64, shared: &Shared) {
    let uid = peer_uid(&conn);
    let who = uid.map_or_else(|| "?".to_owned(), |u| u.to_string());
    let log = |what: &str| tracing::info!("client {id} (uid {who}): {what}");
    let sink_fd = match conn.try_clone() {
        Ok(fd) => fd,
        Err(error) => return log(&format!("dropped: {error}")),
    };
    grow_send_buffer(&conn, CLIENT_SEND_BUFFER);
    let sink = Arc::new(ClientSink {
        conn: sink_fd,
        dropped: AtomicU64::new(0),
    });
    let weak: Weak<dyn KernelSink> = Arc::downgrade(&(sink.clone() as Arc<dyn KernelSink>));
    let client = match hub.attach(weak) {
        Ok(client) => client,
        Err(error) => {
            reply(&conn, &Message::error(format!("no kernel slot: {error}")));
            return log(&format!("refused: {error}"));
        }
    };
    shared.clients.fetch_add(1, Ordering::Relaxed);
    log("connected");
    let session = Session::new(&client, &sink, shared, id, uid);
    let mut buf = vec![0u8; MAX_REQUEST];
    loop {
        let (n, fds, cut) = match recv_with_fds(conn.as_raw_fd(), &mut buf) {
            Ok(Some(message)) => message,
            Ok(None) => break,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(error) => {
                log(&format!("receive failed: {error}"));
                break;
            }
        };
        let answer = session.handle(buf.get(..n).unwrap_or_default(), &fds, cut);
        // The descriptors are closed here: only the cookies are kept.
        drop(fds);
        if let Message::Error { error, .. } = &answer {
            log(&format!("request refused: {error}"));
        }
        reply(&conn, &answer);
    }
    // The client is gone: its slot and its sockets.
    shared.remove_client(id, client);
    shared.clients.fetch_sub(1, Ordering::Relaxed);
    log(&format!(
        "disconnected ({} events dropped)",
        sink.dropped.load(Ordering::Relaxed)
    ));
}

impl<'a, S: KernelSlot> Session<'a, S> {
    fn new(
        client: &'a S,
        sink: &'a ClientSink,
        shared: &'a Shared,
        id: u64,
        uid: Option<u32>,
    ) -> Self {
        Self {
            client,
            sink,
            shared,
            id,
            uid,
            capturing: std::cell::Cell::new(false),
            greeted: std::cell::Cell::new(false),
        }
    }

    fn handle(&self, bytes: &[u8], fds: &[OwnedFd], cut: bool) -> Message {
        // Until a hello is accepted, every refusal names this daemon's version: a later
        // client whose hello this build cannot read (a field added) still learns it.
        let error = |error: String| Message::Error {
            error,
            version: (!self.greeted.get()).then_some(VERSION),
        };
        if cut {
            return error(format!(
                "message longer than {MAX_REQUEST} bytes or too many descriptors"
            ));
        }
        let request: Request = match serde_json::from_slice(bytes) {
            Ok(request) => request,
            Err(e) => return error(format!("malformed request: {e}")),
        };
        match (request, fds) {
            (Request::Hello { version }, []) => self.hello(version),
            (Request::Hello { .. }, _) => error("hello carries no descriptor".to_owned()),
            // What an old client (one that predates the handshake) reads: it says why.
            _ if !self.greeted.get() => error(format!(
                "the first request must be hello with the client's version (this daemon \
                 speaks version {VERSION}); a client older than the version handshake cannot \
                 use this daemon: the daemon and the library must come from the same \
                 nettrace release"
            )),
            (Request::Register {}, [fd]) => self.register(fd),
            (Request::Register {}, _) => error(format!(
                "register carries exactly one socket descriptor (SCM_RIGHTS), got {}",
                fds.len()
            )),
            (Request::CaptureFlow {}, [fd]) => self.capture_flow(fd),
            (Request::CaptureFlow {}, _) => error(format!(
                "capture-flow carries exactly one socket descriptor (SCM_RIGHTS), got {}",
                fds.len()
            )),
            (Request::ConnectFailed {}, [fd]) => self.connect_failed(fd),
            (Request::ConnectFailed {}, _) => error(format!(
                "connect-failed carries exactly one socket descriptor (SCM_RIGHTS), got {}",
                fds.len()
            )),
            (_, [_, ..]) => error(
                "only register, capture-flow and connect-failed carry a descriptor".to_owned(),
            ),
            (Request::Unregister { cookie }, []) => self.unregister(SocketCookie(cookie)),
            (Request::Sync {}, []) => self.sync(),
            (Request::Status {}, []) => self.status(),
            (Request::Capture(request), []) => self.capture(&request),
        }
    }

    /// The version handshake: the client reads the records as this daemon writes them only
    /// when its version is this daemon's. Said once (a hello it refused may be said again).
    fn hello(&self, version: u32) -> Message {
        if self.greeted.get() {
            return Message::error("hello was said already");
        }
        if version != VERSION {
            return Message::Error {
                error: format!(
                    "version mismatch: the client speaks version {version}, this daemon \
                     {VERSION}; the daemon and the library must come from the same nettrace \
                     release"
                ),
                version: Some(VERSION),
            };
        }
        self.greeted.set(true);
        Message::Hello { version: VERSION }
    }

    /// Starts this client's capture (once).
    fn capture(&self, request: &CaptureRequest) -> Message {
        if self.capturing.get() {
            return Message::error("this client captures already");
        }
        match capture::start(self.client, request) {
            Ok(interfaces) => {
                self.capturing.set(true);
                Message::Capturing { interfaces }
            }
            Err(error) => Message::error(error),
        }
    }

    /// Captures the flow of a connected UDP socket this client registered.
    fn capture_flow(&self, fd: &OwnedFd) -> Message {
        if !self.capturing.get() {
            return Message::error("this client does not capture");
        }
        let captured = self
            .own_socket(fd)
            .and_then(|cookie| capture::udp_flow(self.client, fd, cookie).map(|()| cookie));
        match captured {
            Ok(cookie) => Message::Ok { cookie: cookie.0 },
            Err(error) => Message::error(error),
        }
    }

    /// The cookie of `fd`, a socket this client registered; else why not.
    fn own_socket(&self, fd: &OwnedFd) -> Result<SocketCookie, String> {
        let cookie = SocketCookie::of(&fd.as_fd())
            .map_err(|e| format!("the descriptor is not a socket: {e}"))?;
        if lock(&self.shared.owners).get(&cookie) != Some(&self.id) {
            return Err("the socket is not registered by this client".to_owned());
        }
        Ok(cookie)
    }

    /// Whether the CLOSE of a socket of this client whose connect failed was reported.
    fn connect_failed(&self, fd: &OwnedFd) -> Message {
        let cookie = match self.own_socket(fd) {
            Ok(cookie) => cookie,
            Err(error) => return Message::error(error),
        };
        match self.client.close_reported(fd.as_fd(), cookie) {
            Ok(Some(reported)) => Message::CloseReported { reported },
            Ok(None) => Message::error("the socket's entry is gone"),
            Err(e) => Message::error(format!("reading the socket's entry failed: {e}")),
        }
    }

    fn register(&self, fd: &OwnedFd) -> Message {
        let error = |error: String| Message::error(error);
        let cookie = match SocketCookie::of(&fd.as_fd()) {
            Ok(cookie) => cookie,
            Err(e) => return error(format!("the descriptor is not a socket: {e}")),
        };
        let mut owners = lock(&self.shared.owners);
        match owners.get(&cookie) {
            Some(owner) if *owner != self.id => {
                return error("the socket is registered by another client".to_owned());
            }
            Some(_) => return Message::Ok { cookie: cookie.0 },
            None => {}
        }
        let mine = owners.values().filter(|owner| **owner == self.id).count();
        let max = self.shared.max_sockets_per_client;
        if mine >= max {
            return error(format!(
                "a client registers at most {max} sockets at a time"
            ));
        }
        if let Err(e) = self.client.register(fd.as_fd(), cookie) {
            return error(format!("registering failed: {e}"));
        }
        owners.insert(cookie, self.id);
        Message::Ok { cookie: cookie.0 }
    }

    fn unregister(&self, cookie: SocketCookie) -> Message {
        let mut owners = lock(&self.shared.owners);
        if owners.get(&cookie) != Some(&self.id) {
            return Message::error("the socket is not registered by this client");
        }
        if let Err(e) = self.client.unregister(cookie) {
            return Message::error(format!("unregistering failed: {e}"));
        }
        owners.remove(&cookie);
        Message::Ok { cookie: cookie.0 }
    }

    /// Hands on every event so far (the events go out on the connection ahead of the reply).
    fn sync(&self) -> Message {
        self.client.drain();
        let lost = self
            .client
            .lost_events()
            .and_then(|events| Ok((events, self.client.lost_packets()?)));
        match lost {
            Ok((lost_events, lost_packets)) => Message::Synced {
                dropped: self.sink.dropped.load(Ordering::Relaxed),
                lost_events,
                lost_packets,
            },
            Err(e) => Message::error(format!("reading the lost-event counters failed: {e}")),
        }
    }

    fn status(&self) -> Message {
        let owners = lock(&self.shared.owners);
        if self.uid == Some(0) {
            Message::Status {
                clients: self.shared.clients.load(Ordering::Relaxed),
                sockets: owners.len() as u64,
            }
        } else {
            let mine = owners.values().filter(|owner| **owner == self.id).count();
            Message::Status {
                clients: 1,
                sockets: mine as u64,
            }
        }
    }
}

fn reply(conn: &OwnedFd, message: &Message) {
    // A client that does not read its replies only stalls its own session.
    let _ = send_with_fd(conn, &Frame::encode_reply(message), None);
}

/// The peer's user id (`SO_PEERCRED`), for the log and the status reply.
fn peer_uid(conn: &OwnedFd) -> Option<u32> {
    let mut cred = libc::ucred {
        pid: 0,
        uid: 0,
        gid: 0,
    };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: `cred` and `len` are valid for writes of the size passed in `len`.
    let rc = unsafe {
        libc::getsockopt(
            conn.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&mut cred as *mut libc::ucred).cast(),
            &mut len,
        )
    };
    (rc == 0).then_some(cred.uid)
}

#[cfg(test)]
#[path = "server_tests.rs"]
mod tests;

#[cfg(any(test, feature = "fuzzing"))]
#[path = "server_fuzz.rs"]
pub(crate) mod fuzz;
