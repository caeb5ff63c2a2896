//! The daemon side: accepts clients, registers the sockets whose descriptors they pass, and
//! forwards each client's kernel events to it alone.
use std::{
    collections::HashMap,
    io,
    os::{
        fd::{AsFd, AsRawFd, OwnedFd},
        unix::fs::PermissionsExt,
    },
    path::PathBuf,
    sync::{
        Arc, Mutex, PoisonError, Weak,
        atomic::{AtomicU64, Ordering},
    },
};

use socket2::{Domain, SockAddr, Socket, Type};

use super::{
    DaemonError,
    protocol::{MAX_MESSAGE, Message, Request, WireEvent},
    seqpacket::recv_with_fds,
};
use crate::{
    SocketCookie,
    kernel::{KernelClient, KernelConfig, KernelEvent, KernelHub, KernelSink},
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

/// Which client registered each cookie (one owner per socket).
type Owners = Arc<Mutex<HashMap<SocketCookie, u64>>>;

/// Loads the programs and serves clients until the process ends (accept errors are logged).
/// `ready` is called once the socket listens.
pub fn serve(options: &ServeOptions, ready: impl FnOnce()) -> Result<(), DaemonError> {
    let hub = KernelHub::shared(&options.kernel_config).map_err(DaemonError::Kernel)?;
    let listener = listen(options).map_err(DaemonError::Io)?;
    ready();
    let owners: Owners = Arc::default();
    let mut next_id = 0u64;
    loop {
        let (conn, _) = match listener.accept() {
            Ok(accepted) => accepted,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(error) => {
                eprintln!("nettrace-loader serve: accept failed: {error}");
                continue;
            }
        };
        next_id += 1;
        let (hub, owners, id) = (hub.clone(), owners.clone(), next_id);
        let spawned = std::thread::Builder::new()
            .name(format!("nettrace-client-{id}"))
            .spawn(move || serve_client(&hub, conn.into(), id, &owners));
        if let Err(error) = spawned {
            eprintln!("nettrace-loader serve: no thread for a client: {error}");
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
    fn kernel_event(&self, event: KernelEvent) {
        let message = Message::Event(wire(&event));
        let sent = serde_json::to_vec(&message)
            .map_err(io::Error::other)
            .and_then(|bytes| {
                // SAFETY: `conn` is an open socket and `bytes` a valid buffer of its length.
                let n = unsafe {
                    libc::send(
                        self.conn.as_raw_fd(),
                        bytes.as_ptr().cast(),
                        bytes.len(),
                        libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
                    )
                };
                if n < 0 {
                    Err(io::Error::last_os_error())
                } else {
                    Ok(())
                }
            });
        if sent.is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

fn wire(event: &KernelEvent) -> WireEvent {
    let (kind, data) = match event {
        KernelEvent::TcpState(_) => ("tcp-state", String::new()),
        KernelEvent::SockOps(_) => ("sock-ops", String::new()),
        KernelEvent::SockMsg(_) => ("sock-msg", String::new()),
        KernelEvent::TcpReset(_) => ("tcp-reset", String::new()),
        KernelEvent::Packet(p) => (
            "packet",
            p.data.iter().map(|b| format!("{b:02x}")).collect(),
        ),
        KernelEvent::SocketCreated(_) => ("socket-created", String::new()),
        KernelEvent::SocketReleased(_) => ("socket-released", String::new()),
        KernelEvent::Connect(_) => ("connect", String::new()),
    };
    let detail = match event {
        KernelEvent::Packet(p) => format!("{} bytes on interface {}", p.packet_len, p.ifindex),
        other => format!("{other:?}"),
    };
    WireEvent {
        cookie: event.cookie().0,
        time_ns: event.time().0,
        kind: kind.to_owned(),
        detail,
        data,
    }
}

/// One client's session: its own slot, the sockets it proved it holds, removed when it goes.
fn serve_client(hub: &Arc<KernelHub>, conn: OwnedFd, id: u64, owners: &Owners) {
    let uid = peer_uid(&conn).map_or_else(|| "?".to_owned(), |u| u.to_string());
    let log = |what: &str| eprintln!("nettrace-loader serve: client {id} (uid {uid}): {what}");
    let sink_fd = match conn.try_clone() {
        Ok(fd) => fd,
        Err(error) => return log(&format!("dropped: {error}")),
    };
    let sink = Arc::new(ClientSink {
        conn: sink_fd,
        dropped: AtomicU64::new(0),
    });
    let weak: Weak<dyn KernelSink> = Arc::downgrade(&(sink.clone() as Arc<dyn KernelSink>));
    let client = match hub.attach(weak) {
        Ok(client) => client,
        Err(error) => {
            reply(
                &conn,
                &Message::Error {
                    error: format!("no kernel slot: {error}"),
                },
            );
            return log(&format!("refused: {error}"));
        }
    };
    log("connected");
    let mut buf = vec![0u8; MAX_MESSAGE];
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
        let answer = handle(&client, id, owners, &buf[..n], &fds, cut);
        // The descriptors are closed here: only the cookies are kept.
        drop(fds);
        if let Message::Error { error } = &answer {
            log(&format!("request refused: {error}"));
        }
        reply(&conn, &answer);
    }
    // The client is gone: forget its sockets (dropping the slot unregisters them).
    lock(owners).retain(|_, owner| *owner != id);
    drop(client);
    log(&format!(
        "disconnected ({} events dropped)",
        sink.dropped.load(Ordering::Relaxed)
    ));
}

fn handle(
    client: &KernelClient,
    id: u64,
    owners: &Owners,
    bytes: &[u8],
    fds: &[OwnedFd],
    cut: bool,
) -> Message {
    let error = |error: String| Message::Error { error };
    if cut {
        return error(format!(
            "message longer than {MAX_MESSAGE} bytes or too many descriptors"
        ));
    }
    let request: Request = match serde_json::from_slice(bytes) {
        Ok(request) => request,
        Err(e) => return error(format!("malformed request: {e}")),
    };
    let [fd] = fds else {
        return error(format!(
            "a request carries exactly one socket descriptor (SCM_RIGHTS), got {}",
            fds.len()
        ));
    };
    let cookie = match SocketCookie::of(&fd.as_fd()) {
        Ok(cookie) => cookie,
        Err(e) => return error(format!("the descriptor is not a socket: {e}")),
    };
    let mut owners = lock(owners);
    match request {
        Request::Register => {
            if owners.get(&cookie).is_some_and(|owner| *owner != id) {
                return error("the socket is registered by another client".to_owned());
            }
            if let Err(e) = client.register(cookie) {
                return error(format!("registering failed: {e}"));
            }
            owners.insert(cookie, id);
        }
        Request::Unregister => {
            if owners.get(&cookie) != Some(&id) {
                return error("the socket is not registered by this client".to_owned());
            }
            if let Err(e) = client.unregister(cookie) {
                return error(format!("unregistering failed: {e}"));
            }
            owners.remove(&cookie);
        }
    }
    Message::Ok { cookie: cookie.0 }
}

fn reply(conn: &OwnedFd, message: &Message) {
    if let Ok(bytes) = serde_json::to_vec(message) {
        // A client that does not read its replies only stalls its own session.
        let _ = super::seqpacket::send_with_fd(conn, &bytes, None);
    }
}

/// The peer's user id (`SO_PEERCRED`), for the log.
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

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Each critical section is one map operation: a poisoned lock is still consistent.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
