//! Drives two daemon sessions (two clients sharing the daemon) with request frames from a
//! fuzzer, through [`Session::handle`] (the function the session's socket loop calls), with
//! real descriptors and a slot that records what reaches the kernel.
//!
//! Input: frames, each a control byte, a 16-bit big-endian length and that many bytes (fewer
//! at the end). The control byte's bits 0-1 are the number of descriptors passed, 2-3 the
//! first of them in [`Descriptors`], bit 4 cuts the message (as `recv` reports one longer
//! than [`MAX_REQUEST`]), bit 5 sends it from the second client. Both clients have said hello
//! (the version handshake) before the first frame.
use std::{
    cell::RefCell,
    collections::HashSet,
    fs::File,
    net::{TcpListener, TcpStream, UdpSocket},
    os::fd::OwnedFd,
    sync::OnceLock,
};

use super::*;
use crate::{
    capture::{LinkKind, PacketCaptureOptions},
    kernel::{CaptureInterfaceInfo, FlowProtocol},
};

/// The fake slot cannot fail.
#[derive(Debug, thiserror::Error)]
#[error("never")]
pub(crate) struct Never;

/// A slot that keeps the sockets registered in it.
#[derive(Default)]
struct RecordingSlot {
    registered: RefCell<HashSet<SocketCookie>>,
    flows: RefCell<Vec<SocketCookie>>,
}

impl KernelSlot for RecordingSlot {
    type Error = Never;

    fn register(
        &self,
        _socket: std::os::fd::BorrowedFd<'_>,
        cookie: SocketCookie,
    ) -> Result<(), Never> {
        assert!(
            self.registered.borrow_mut().insert(cookie),
            "a socket registered twice in one slot"
        );
        Ok(())
    }

    fn unregister(&self, cookie: SocketCookie) -> Result<(), Never> {
        assert!(
            self.registered.borrow_mut().remove(&cookie),
            "a socket of no one unregistered"
        );
        Ok(())
    }

    fn drain(&self) {}

    fn lost_events(&self) -> Result<u64, Never> {
        Ok(0)
    }

    fn lost_packets(&self) -> Result<u64, Never> {
        Ok(0)
    }

    fn start_capture(
        &self,
        options: &PacketCaptureOptions,
    ) -> Result<Vec<CaptureInterfaceInfo>, Never> {
        Ok(options
            .interfaces
            .iter()
            .zip(1..)
            .map(|(name, index)| CaptureInterfaceInfo {
                name: name.clone(),
                index,
                link_kind: LinkKind::Ethernet,
                loopback: false,
            })
            .collect())
    }

    fn close_reported(
        &self,
        _socket: std::os::fd::BorrowedFd<'_>,
        cookie: SocketCookie,
    ) -> Result<Option<bool>, Never> {
        assert!(
            self.registered.borrow().contains(&cookie),
            "a failed connect of a socket not in the slot"
        );
        Ok(Some(false))
    }

    fn register_flow(
        &self,
        cookie: SocketCookie,
        protocol: FlowProtocol,
        _local: std::net::SocketAddr,
        _remote: std::net::SocketAddr,
    ) -> Result<(), Never> {
        assert_eq!(protocol, FlowProtocol::Udp);
        assert!(
            self.registered.borrow().contains(&cookie),
            "a flow of a socket not in the slot"
        );
        self.flows.borrow_mut().push(cookie);
        Ok(())
    }
}

/// Descriptors a client may pass: a connected UDP socket, an unconnected one, a TCP socket
/// connected over loopback, a listener, a file. Made once per process.
struct Descriptors(Vec<OwnedFd>);

impl Descriptors {
    fn get() -> Option<&'static [OwnedFd]> {
        static MADE: OnceLock<Option<Descriptors>> = OnceLock::new();
        MADE.get_or_init(|| Self::make().ok())
            .as_ref()
            .map(|d| d.0.as_slice())
    }

    fn make() -> std::io::Result<Self> {
        let connected = UdpSocket::bind("127.0.0.1:0")?;
        connected.connect("127.0.0.1:9")?;
        let unconnected = UdpSocket::bind("127.0.0.1:0")?;
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let tcp = TcpStream::connect(listener.local_addr()?)?;
        // The accepted end stays open with the listener's backlog: leak it for the process.
        let accepted = listener.accept()?.0;
        std::mem::forget(accepted);
        Ok(Self(vec![
            connected.into(),
            unconnected.into(),
            tcp.into(),
            listener.into(),
            File::open("/dev/null")?.into(),
        ]))
    }
}

/// One client of the run.
struct Client {
    slot: RecordingSlot,
    sink: ClientSink,
    id: u64,
}

/// Runs the frames of `data` through two sessions and checks: every request gets a reply
/// that the client can read; a request that is not one (or is cut) gets an error; a success
/// answers the request's kind; a client never holds a socket the other holds, and the daemon's
/// table agrees with each slot; after the frames both sessions still answer, and a client's
/// sockets leave with it.
pub(crate) fn run(data: &[u8]) {
    let Some(fds) = Descriptors::get() else {
        return;
    };
    let Ok(null) = File::open("/dev/null") else {
        return;
    };
    let Ok(null2) = null.try_clone() else {
        return;
    };
    let shared = Shared::new(3);
    let clients = [(1, null), (2, null2)].map(|(id, conn)| Client {
        slot: RecordingSlot::default(),
        sink: ClientSink {
            conn: conn.into(),
            dropped: AtomicU64::new(0),
        },
        id,
    });
    let sessions = [(&clients[0], Some(1000)), (&clients[1], Some(0))]
        .map(|(client, uid)| Session::new(&client.slot, &client.sink, &shared, client.id, uid));
    // Both clients say hello first, as the library does, so that the frames reach the
    // requests behind the handshake.
    let hello = serde_json::to_vec(&Request::Hello { version: VERSION }).unwrap_or_default();
    for session in &sessions {
        assert_eq!(
            session.handle(&hello, &[], false),
            Message::Hello { version: VERSION }
        );
    }
    let mut rest = data;
    while let Some((&control, after)) = rest.split_first() {
        let len = match after {
            [hi, lo, ..] => usize::from(u16::from_be_bytes([*hi, *lo])),
            _ => 0,
        };
        let body = after.get(2..).unwrap_or_default();
        let (bytes, next) = body.split_at(len.min(body.len()));
        rest = next;
        let count = usize::from(control & 3);
        let first = usize::from((control >> 2) & 3);
        let passed = fds
            .get(first..(first + count).min(fds.len()))
            .unwrap_or_default();
        let cut = control & 0x10 != 0 || bytes.len() > MAX_REQUEST;
        let bytes = bytes.get(..MAX_REQUEST).unwrap_or(bytes);
        let who = usize::from(control & 0x20 != 0);
        let answer = sessions[who].handle(bytes, passed, cut);
        check_answer(bytes, passed.len(), cut, &answer);
        check_tables(&shared, &clients);
    }
    for (session, client) in sessions.iter().zip(&clients) {
        let mine = lock(&shared.owners)
            .values()
            .filter(|owner| **owner == client.id)
            .count() as u64;
        match session.handle(br#"{"op":"status"}"#, &[], false) {
            Message::Status { sockets, .. } => {
                if client.id == 1 {
                    assert_eq!(sockets, mine, "a client's status counts its own sockets");
                }
            }
            other => panic!("the session ended: {other:?}"),
        }
    }
    shared.remove_client(clients[0].id, ());
    assert!(
        lock(&shared.owners)
            .values()
            .all(|owner| *owner == clients[1].id),
        "a gone client's sockets leave with it"
    );
}

/// The reply fits the request.
fn check_answer(bytes: &[u8], fds: usize, cut: bool, answer: &Message) {
    let encoded = Frame::encode_reply(answer);
    assert_eq!(
        Frame::decode(&encoded),
        Ok(Frame::Reply(answer.clone())),
        "the client reads the reply"
    );
    let request = serde_json::from_slice::<Request>(bytes)
        .ok()
        .filter(|_| !cut);
    let fits = match (&request, answer) {
        (_, Message::Error { .. }) => true,
        (None, _) => false,
        // Said once, before the frames: a hello again is refused.
        (Some(Request::Hello { .. }), _) => false,
        (Some(Request::Register {}), Message::Ok { .. }) => fds == 1,
        (Some(Request::CaptureFlow {}), Message::Ok { .. }) => fds == 1,
        (Some(Request::ConnectFailed {}), Message::CloseReported { .. }) => fds == 1,
        (Some(Request::Unregister { cookie }), Message::Ok { cookie: removed }) => {
            fds == 0 && cookie == removed
        }
        (Some(Request::Sync {}), Message::Synced { .. }) => fds == 0,
        (Some(Request::Status {}), Message::Status { .. }) => fds == 0,
        (Some(Request::Capture(request)), Message::Capturing { interfaces }) => {
            fds == 0
                && !request.include_icmp
                && !request.include_arp
                && interfaces.len() == request.interfaces.len()
        }
        _ => false,
    };
    assert!(
        fits,
        "{:?} with {fds} descriptors (cut: {cut}) answered {answer:?}",
        String::from_utf8_lossy(bytes)
    );
}

/// The daemon's table of owners is the union of the slots, and no socket is in both.
fn check_tables(shared: &Shared, clients: &[Client; 2]) {
    let owners = lock(&shared.owners);
    for client in clients {
        let in_slot = client.slot.registered.borrow();
        let in_table: HashSet<SocketCookie> = owners
            .iter()
            .filter(|(_, owner)| **owner == client.id)
            .map(|(cookie, _)| *cookie)
            .collect();
        assert_eq!(
            *in_slot, in_table,
            "the table agrees with client {}",
            client.id
        );
        assert!(in_table.len() <= shared.max_sockets_per_client);
    }
    let [a, b] = clients;
    assert!(
        a.slot
            .registered
            .borrow()
            .is_disjoint(&b.slot.registered.borrow()),
        "a socket in two clients' slots"
    );
}
