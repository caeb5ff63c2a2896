//! The daemon's per-client isolation rules, without root: sessions drive real JSON requests
//! with real (unprivileged) socket descriptors against a fake [`KernelSlot`] that records
//! what reaches it, so every refused request is also checked not to reach the kernel.
use std::{
    cell::RefCell,
    fs::File,
    net::{SocketAddr, TcpListener, TcpStream, UdpSocket},
    os::fd::{AsFd, OwnedFd},
};

use super::*;
use crate::{
    capture::{LinkKind, MAX_SNAPLEN, PacketCaptureOptions},
    daemon::{
        link::Incoming,
        protocol::{CaptureInterface, VERSION},
    },
    kernel::{CaptureInterfaceInfo, FlowProtocol},
};

const REGISTER: &str = r#"{"op":"register"}"#;
const CAPTURE_FLOW: &str = r#"{"op":"capture-flow"}"#;
const CONNECT_FAILED: &str = r#"{"op":"connect-failed"}"#;
const STATUS: &str = r#"{"op":"status"}"#;
const SYNC: &str = r#"{"op":"sync"}"#;
const CAPTURE_LO: &str = r#"{"op":"capture","interfaces":["lo"],"snaplen":128}"#;

/// What reached a fake slot.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Call {
    Register(SocketCookie),
    Unregister(SocketCookie),
    Drain,
    LostEvents,
    LostPackets,
    StartCapture(Vec<String>),
    RegisterFlow(SocketCookie, FlowProtocol, SocketAddr, SocketAddr),
    CloseReported(SocketCookie),
}

/// The fake slot's failure.
#[derive(Debug, thiserror::Error)]
#[error("the fake slot fails")]
struct FakeFailure;

/// A slot that records its calls; its counters and failures are set by the test.
#[derive(Default)]
struct FakeSlot {
    calls: RefCell<Vec<Call>>,
    lost_events: Option<u64>,
    lost_packets: Option<u64>,
    fail_register: bool,
    fail_unregister: bool,
    /// Interfaces whose capture fails.
    missing_interface: Option<&'static str>,
    /// What `close_reported` answers.
    close_reported: Option<bool>,
    fail_close_reported: bool,
}

impl FakeSlot {
    fn calls(&self) -> Vec<Call> {
        self.calls.borrow().clone()
    }

    fn record(&self, call: Call) {
        self.calls.borrow_mut().push(call);
    }
}

impl KernelSlot for FakeSlot {
    type Error = FakeFailure;

    fn register(
        &self,
        _socket: std::os::fd::BorrowedFd<'_>,
        cookie: SocketCookie,
    ) -> Result<(), FakeFailure> {
        self.record(Call::Register(cookie));
        if self.fail_register {
            return Err(FakeFailure);
        }
        Ok(())
    }

    fn unregister(&self, cookie: SocketCookie) -> Result<(), FakeFailure> {
        self.record(Call::Unregister(cookie));
        if self.fail_unregister {
            return Err(FakeFailure);
        }
        Ok(())
    }

    fn drain(&self) {
        self.record(Call::Drain);
    }

    fn lost_events(&self) -> Result<u64, FakeFailure> {
        self.record(Call::LostEvents);
        self.lost_events.ok_or(FakeFailure)
    }

    fn lost_packets(&self) -> Result<u64, FakeFailure> {
        self.record(Call::LostPackets);
        self.lost_packets.ok_or(FakeFailure)
    }

    fn start_capture(
        &self,
        options: &PacketCaptureOptions,
    ) -> Result<Vec<CaptureInterfaceInfo>, FakeFailure> {
        self.record(Call::StartCapture(options.interfaces.clone()));
        if options
            .interfaces
            .iter()
            .any(|name| Some(name.as_str()) == self.missing_interface)
        {
            return Err(FakeFailure);
        }
        Ok(options
            .interfaces
            .iter()
            .zip(1..)
            .map(|(name, index)| CaptureInterfaceInfo {
                name: name.clone(),
                index,
                link_kind: LinkKind::Ethernet,
                loopback: name == "lo",
            })
            .collect())
    }

    fn register_flow(
        &self,
        cookie: SocketCookie,
        protocol: FlowProtocol,
        local: SocketAddr,
        remote: SocketAddr,
    ) -> Result<(), FakeFailure> {
        self.record(Call::RegisterFlow(cookie, protocol, local, remote));
        Ok(())
    }

    fn close_reported(
        &self,
        _socket: std::os::fd::BorrowedFd<'_>,
        cookie: SocketCookie,
    ) -> Result<Option<bool>, FakeFailure> {
        self.record(Call::CloseReported(cookie));
        if self.fail_close_reported {
            return Err(FakeFailure);
        }
        Ok(self.close_reported)
    }
}

/// A connected client as the daemon sees it: its slot and its event sink.
struct Peer {
    slot: FakeSlot,
    sink: ClientSink,
    id: u64,
    uid: Option<u32>,
}

impl Peer {
    fn new(id: u64, uid: Option<u32>) -> Self {
        Self::with_slot(id, uid, FakeSlot::default())
    }

    fn with_slot(id: u64, uid: Option<u32>, slot: FakeSlot) -> Self {
        let conn = OwnedFd::from(File::open("/dev/null").unwrap());
        Self {
            slot,
            sink: ClientSink {
                conn,
                dropped: AtomicU64::new(0),
            },
            id,
            uid,
        }
    }

    /// A session that said hello, as every client does first.
    fn session<'a>(&'a self, shared: &'a Shared) -> Session<'a, FakeSlot> {
        let session = self.session_before_hello(shared);
        assert_eq!(
            ask(&session, &hello(VERSION), &[]),
            Message::Hello { version: VERSION }
        );
        session
    }

    fn session_before_hello<'a>(&'a self, shared: &'a Shared) -> Session<'a, FakeSlot> {
        Session::new(&self.slot, &self.sink, shared, self.id, self.uid)
    }
}

fn hello(version: u32) -> String {
    format!(r#"{{"op":"hello","version":{version}}}"#)
}

/// The reply to `request` carrying `fds`.
fn ask(session: &Session<'_, FakeSlot>, request: &str, fds: &[OwnedFd]) -> Message {
    session.handle(request.as_bytes(), fds, false)
}

/// A copy of a descriptor, as the daemon receives one through `SCM_RIGHTS`.
fn fd(socket: &impl AsFd) -> OwnedFd {
    socket.as_fd().try_clone_to_owned().unwrap()
}

fn cookie(socket: &impl AsFd) -> SocketCookie {
    SocketCookie::of(socket).unwrap()
}

fn udp() -> UdpSocket {
    UdpSocket::bind("127.0.0.1:0").unwrap()
}

fn ok(socket: &impl AsFd) -> Message {
    Message::Ok {
        cookie: cookie(socket).0,
    }
}

/// The error text of a refusal (panics on any other reply).
#[track_caller]
fn refused(message: Message) -> String {
    match message {
        Message::Error { error, .. } => error,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

fn unregister(cookie: SocketCookie) -> String {
    format!(r#"{{"op":"unregister","cookie":{}}}"#, cookie.0)
}

fn status(clients: u64, sockets: u64) -> Message {
    Message::Status { clients, sockets }
}

#[test]
fn a_socket_registered_by_one_client_is_refused_to_another() {
    let shared = Shared::new(MAX_SOCKETS_PER_CLIENT);
    let (a, b) = (Peer::new(1, Some(1000)), Peer::new(2, Some(1001)));
    let (sa, sb) = (a.session(&shared), b.session(&shared));
    let socket = udp();
    assert_eq!(ask(&sa, REGISTER, &[fd(&socket)]), ok(&socket));
    let error = refused(ask(&sb, REGISTER, &[fd(&socket)]));
    assert!(error.contains("another client"), "{error}");
    // The same user does not make it anyone's but the registering session's.
    let a_again = Peer::new(3, Some(1000));
    let error = refused(ask(&a_again.session(&shared), REGISTER, &[fd(&socket)]));
    assert!(error.contains("another client"), "{error}");
    assert_eq!(a.slot.calls(), [Call::Register(cookie(&socket))]);
    assert_eq!(b.slot.calls(), []);
    assert_eq!(a_again.slot.calls(), []);
}

#[test]
fn registering_its_own_socket_again_is_ok_with_the_same_cookie() {
    let shared = Shared::new(MAX_SOCKETS_PER_CLIENT);
    let a = Peer::new(1, Some(1000));
    let sa = a.session(&shared);
    let socket = TcpListener::bind("127.0.0.1:0").unwrap();
    assert_eq!(ask(&sa, REGISTER, &[fd(&socket)]), ok(&socket));
    assert_eq!(ask(&sa, REGISTER, &[fd(&socket)]), ok(&socket));
    assert_eq!(a.slot.calls(), [Call::Register(cookie(&socket))]);
    assert_eq!(ask(&sa, STATUS, &[]), status(1, 1));
}

#[test]
fn unregister_accepts_only_the_clients_own_cookies() {
    let shared = Shared::new(MAX_SOCKETS_PER_CLIENT);
    let (a, b) = (Peer::new(1, Some(1000)), Peer::new(2, Some(1001)));
    let (sa, sb) = (a.session(&shared), b.session(&shared));
    let socket = udp();
    let c = cookie(&socket);
    assert_eq!(ask(&sa, REGISTER, &[fd(&socket)]), ok(&socket));

    let error = refused(ask(&sb, &unregister(c), &[]));
    assert!(error.contains("not registered by this client"), "{error}");
    // A cookie nobody registered (an unregistered one of this client's sockets included).
    let other = udp();
    refused(ask(&sa, &unregister(cookie(&other)), &[]));
    refused(ask(&sb, &unregister(SocketCookie(u64::MAX)), &[]));
    assert_eq!(b.slot.calls(), []);

    assert_eq!(ask(&sa, &unregister(c), &[]), Message::Ok { cookie: c.0 });
    refused(ask(&sa, &unregister(c), &[]));
    assert_eq!(a.slot.calls(), [Call::Register(c), Call::Unregister(c)]);
    // Unregistered, the socket is free for another client.
    assert_eq!(ask(&sb, REGISTER, &[fd(&socket)]), ok(&socket));
    assert_eq!(b.slot.calls(), [Call::Register(c)]);
}

#[test]
fn a_failed_slot_call_changes_no_ownership() {
    let shared = Shared::new(MAX_SOCKETS_PER_CLIENT);
    let failing = FakeSlot {
        fail_register: true,
        ..FakeSlot::default()
    };
    let a = Peer::with_slot(1, Some(1000), failing);
    let b = Peer::new(2, Some(1001));
    let (sa, sb) = (a.session(&shared), b.session(&shared));
    let socket = udp();
    let c = cookie(&socket);
    let error = refused(ask(&sa, REGISTER, &[fd(&socket)]));
    assert!(error.contains("registering failed"), "{error}");
    assert_eq!(ask(&sa, STATUS, &[]), status(1, 0));
    // Not A's: B may register it, and A may not unregister it.
    assert_eq!(ask(&sb, REGISTER, &[fd(&socket)]), ok(&socket));
    refused(ask(&sa, &unregister(c), &[]));
    assert_eq!(a.slot.calls(), [Call::Register(c)]);

    // A failed unregistration keeps the socket its owner's.
    let failing = FakeSlot {
        fail_unregister: true,
        ..FakeSlot::default()
    };
    let d = Peer::with_slot(3, Some(1000), failing);
    let sd = d.session(&shared);
    let other = udp();
    assert_eq!(ask(&sd, REGISTER, &[fd(&other)]), ok(&other));
    let error = refused(ask(&sd, &unregister(cookie(&other)), &[]));
    assert!(error.contains("unregistering failed"), "{error}");
    refused(ask(&sb, REGISTER, &[fd(&other)]));
    assert_eq!(ask(&sd, STATUS, &[]), status(1, 1));
}

#[test]
fn a_client_registers_at_most_its_limit_of_sockets() {
    let shared = Shared::new(2);
    let (a, b) = (Peer::new(1, Some(1000)), Peer::new(2, Some(1000)));
    let (sa, sb) = (a.session(&shared), b.session(&shared));
    let sockets = [udp(), udp(), udp()];
    assert_eq!(ask(&sa, REGISTER, &[fd(&sockets[0])]), ok(&sockets[0]));
    assert_eq!(ask(&sa, REGISTER, &[fd(&sockets[1])]), ok(&sockets[1]));
    let error = refused(ask(&sa, REGISTER, &[fd(&sockets[2])]));
    assert!(error.contains("at most 2 sockets"), "{error}");
    // At the limit, its own socket again is still Ok.
    assert_eq!(ask(&sa, REGISTER, &[fd(&sockets[1])]), ok(&sockets[1]));
    // The limit is per client, not per user or for the daemon.
    let others = [udp(), udp()];
    assert_eq!(ask(&sb, REGISTER, &[fd(&others[0])]), ok(&others[0]));
    assert_eq!(ask(&sb, REGISTER, &[fd(&others[1])]), ok(&others[1]));
    // Unregistering one makes room.
    let first = cookie(&sockets[0]);
    assert_eq!(
        ask(&sa, &unregister(first), &[]),
        Message::Ok { cookie: first.0 }
    );
    assert_eq!(ask(&sa, REGISTER, &[fd(&sockets[2])]), ok(&sockets[2]));
    assert_eq!(
        a.slot.calls(),
        [
            Call::Register(first),
            Call::Register(cookie(&sockets[1])),
            Call::Unregister(first),
            Call::Register(cookie(&sockets[2])),
        ]
    );
}

#[test]
fn the_daemon_limit_is_the_published_one() {
    let shared = Shared::new(MAX_SOCKETS_PER_CLIENT);
    assert_eq!(shared.max_sockets_per_client, MAX_SOCKETS_PER_CLIENT);
    assert_eq!(MAX_SOCKETS_PER_CLIENT, 4096);
    assert_eq!(MAX_SESSIONS_PER_USER, 64);
}

#[test]
fn a_descriptor_that_is_not_a_socket_is_refused() {
    let shared = Shared::new(MAX_SOCKETS_PER_CLIENT);
    let a = Peer::new(1, Some(1000));
    let sa = a.session(&shared);
    let (reader, writer) = std::io::pipe().unwrap();
    let null = File::open("/dev/null").unwrap();
    let dir = File::open("/").unwrap();
    for not_a_socket in [
        OwnedFd::from(reader),
        OwnedFd::from(writer),
        OwnedFd::from(null),
        OwnedFd::from(dir),
    ] {
        let error = refused(ask(&sa, REGISTER, std::slice::from_ref(&not_a_socket)));
        assert!(error.contains("not a socket"), "{error}");
    }
    assert_eq!(a.slot.calls(), []);
    assert_eq!(ask(&sa, STATUS, &[]), status(1, 0));
}

#[test]
fn register_capture_flow_and_connect_failed_carry_exactly_one_descriptor() {
    let shared = Shared::new(MAX_SOCKETS_PER_CLIENT);
    let a = Peer::new(1, Some(1000));
    let sa = a.session(&shared);
    assert!(matches!(
        ask(&sa, CAPTURE_LO, &[]),
        Message::Capturing { .. }
    ));
    let (x, y) = (udp(), udp());
    y.connect(x.local_addr().unwrap()).unwrap();
    for request in [REGISTER, CAPTURE_FLOW, CONNECT_FAILED] {
        let error = refused(ask(&sa, request, &[]));
        assert!(error.contains("exactly one"), "{error}");
        let error = refused(ask(&sa, request, &[fd(&x), fd(&y)]));
        assert!(
            error.contains("exactly one") && error.contains("got 2"),
            "{error}"
        );
        refused(ask(&sa, request, &[fd(&y), fd(&y), fd(&y)]));
    }
    assert_eq!(a.slot.calls(), [Call::StartCapture(vec!["lo".to_owned()])]);
    assert_eq!(ask(&sa, STATUS, &[]), status(1, 0));
}

#[test]
fn connect_failed_answers_for_the_clients_own_sockets_only() {
    let shared = Shared::new(MAX_SOCKETS_PER_CLIENT);
    let a = Peer::with_slot(
        1,
        Some(1000),
        FakeSlot {
            close_reported: Some(false),
            ..FakeSlot::default()
        },
    );
    let b = Peer::new(2, Some(1001));
    let (sa, sb) = (a.session(&shared), b.session(&shared));
    let (mine, unregistered) = (udp(), udp());
    assert_eq!(ask(&sa, REGISTER, &[fd(&mine)]), ok(&mine));
    assert_eq!(
        ask(&sa, CONNECT_FAILED, &[fd(&mine)]),
        Message::CloseReported { reported: false }
    );
    let error = refused(ask(&sb, CONNECT_FAILED, &[fd(&mine)]));
    assert!(error.contains("not registered by this client"), "{error}");
    let error = refused(ask(&sa, CONNECT_FAILED, &[fd(&unregistered)]));
    assert!(error.contains("not registered by this client"), "{error}");
    let file = OwnedFd::from(File::open("/dev/null").unwrap());
    let error = refused(ask(&sa, CONNECT_FAILED, &[file]));
    assert!(error.contains("not a socket"), "{error}");
    assert_eq!(
        a.slot.calls(),
        [
            Call::Register(cookie(&mine)),
            Call::CloseReported(cookie(&mine))
        ]
    );
    assert_eq!(b.slot.calls(), []);
    // A reported CLOSE is said; an entry that is gone, or that cannot be read, is refused.
    let slot = |close_reported, fail_close_reported| FakeSlot {
        close_reported,
        fail_close_reported,
        ..FakeSlot::default()
    };
    for (id, fake, expected) in [
        (3, slot(Some(true), false), Ok(true)),
        (4, slot(None, false), Err("entry is gone")),
        (
            5,
            slot(Some(false), true),
            Err("reading the socket's entry failed"),
        ),
    ] {
        let peer = Peer::with_slot(id, Some(1000 + id as u32), fake);
        let session = peer.session(&shared);
        let socket = udp();
        assert_eq!(ask(&session, REGISTER, &[fd(&socket)]), ok(&socket));
        let answer = ask(&session, CONNECT_FAILED, &[fd(&socket)]);
        match expected {
            Ok(reported) => assert_eq!(answer, Message::CloseReported { reported }),
            Err(text) => {
                let error = refused(answer);
                assert!(error.contains(text), "{error}");
            }
        }
    }
}

#[test]
fn a_descriptor_with_a_request_that_takes_none_is_refused() {
    let shared = Shared::new(MAX_SOCKETS_PER_CLIENT);
    let a = Peer::new(1, Some(1000));
    let sa = a.session(&shared);
    let socket = udp();
    assert_eq!(ask(&sa, REGISTER, &[fd(&socket)]), ok(&socket));
    let requests = [
        unregister(cookie(&socket)),
        SYNC.to_owned(),
        STATUS.to_owned(),
        CAPTURE_LO.to_owned(),
    ];
    for request in &requests {
        let error = refused(ask(&sa, request, &[fd(&socket)]));
        assert!(
            error.contains("only register, capture-flow and connect-failed"),
            "{request}: {error}"
        );
    }
    // Nothing reached the slot: no unregistration, no drain, no capture.
    assert_eq!(a.slot.calls(), [Call::Register(cookie(&socket))]);
    // The capture was not started by the refused request.
    let error = refused(ask(&sa, CAPTURE_FLOW, &[fd(&socket)]));
    assert!(error.contains("does not capture"), "{error}");
}

#[test]
fn malformed_unknown_and_cut_requests_are_refused_and_the_session_goes_on() {
    let shared = Shared::new(MAX_SOCKETS_PER_CLIENT);
    let a = Peer::new(1, Some(1000));
    let sa = a.session(&shared);
    let socket = udp();
    let hostile: [&[u8]; 11] = [
        b"",
        b"{",
        b"not json",
        b"\xff\xfe",
        b"[]",
        br#"{"op":"nope"}"#,
        br#"{"op":"register","cookie":5}"#,
        br#"{"op":"register","fd":3}"#,
        br#"{"op":"capture-flow","local":"127.0.0.1:1","remote":"127.0.0.1:2"}"#,
        br#"{"op":"unregister","cookie":"5"}"#,
        br#"{"op":"capture","interfaces":["lo"],"snaplen":1,"flows":[]}"#,
    ];
    for bytes in hostile {
        let error = refused(sa.handle(bytes, &[fd(&socket)], false));
        assert!(error.contains("malformed request"), "{error}");
        assert_eq!(ask(&sa, STATUS, &[]), status(1, 0));
    }
    // A cut message is refused whatever it holds (a well-formed request and one descriptor).
    let error = refused(sa.handle(REGISTER.as_bytes(), &[fd(&socket)], true));
    assert!(error.contains("longer than"), "{error}");
    let error = refused(sa.handle(&[b' '; MAX_REQUEST], &[], true));
    assert!(error.contains("longer than"), "{error}");
    assert_eq!(a.slot.calls(), []);
    // The session goes on.
    assert_eq!(ask(&sa, REGISTER, &[fd(&socket)]), ok(&socket));
    assert_eq!(a.slot.calls(), [Call::Register(cookie(&socket))]);
}

#[test]
fn status_shows_the_clients_own_sockets_and_root_sees_all() {
    let shared = Shared::new(MAX_SOCKETS_PER_CLIENT);
    let (a, b) = (Peer::new(1, Some(1000)), Peer::new(2, Some(1001)));
    let (root, unknown) = (Peer::new(3, Some(0)), Peer::new(4, None));
    shared.clients.store(4, Ordering::Relaxed);
    let (sa, sb) = (a.session(&shared), b.session(&shared));
    let (sroot, sunknown) = (root.session(&shared), unknown.session(&shared));
    let sockets = [udp(), udp(), udp()];
    assert_eq!(ask(&sa, REGISTER, &[fd(&sockets[0])]), ok(&sockets[0]));
    assert_eq!(ask(&sa, REGISTER, &[fd(&sockets[1])]), ok(&sockets[1]));
    assert_eq!(ask(&sb, REGISTER, &[fd(&sockets[2])]), ok(&sockets[2]));
    assert_eq!(ask(&sa, STATUS, &[]), status(1, 2));
    assert_eq!(ask(&sb, STATUS, &[]), status(1, 1));
    assert_eq!(ask(&sunknown, STATUS, &[]), status(1, 0));
    assert_eq!(ask(&sroot, STATUS, &[]), status(4, 3));
    // Status reaches no slot.
    assert_eq!(root.slot.calls(), []);
    assert_eq!(unknown.slot.calls(), []);
}

#[test]
fn sync_drains_then_reports_the_dropped_and_lost_counts() {
    let shared = Shared::new(MAX_SOCKETS_PER_CLIENT);
    let counting = FakeSlot {
        lost_events: Some(7),
        lost_packets: Some(9),
        ..FakeSlot::default()
    };
    let a = Peer::with_slot(1, Some(1000), counting);
    a.sink.dropped.store(5, Ordering::Relaxed);
    let sa = a.session(&shared);
    assert_eq!(
        ask(&sa, SYNC, &[]),
        Message::Synced {
            dropped: 5,
            lost_events: 7,
            lost_packets: 9,
        }
    );
    assert_eq!(
        a.slot.calls(),
        [Call::Drain, Call::LostEvents, Call::LostPackets]
    );

    // Counters that cannot be read are an error reply, and the session goes on.
    let broken = FakeSlot {
        lost_events: Some(7),
        ..FakeSlot::default()
    };
    let b = Peer::with_slot(2, Some(1000), broken);
    let sb = b.session(&shared);
    let error = refused(ask(&sb, SYNC, &[]));
    assert!(error.contains("lost-event counters"), "{error}");
    assert_eq!(ask(&sb, STATUS, &[]), status(1, 0));
}

#[test]
fn capture_is_once_per_client_and_never_icmp_or_arp() {
    let shared = Shared::new(MAX_SOCKETS_PER_CLIENT);
    let slot = FakeSlot {
        missing_interface: Some("nope0"),
        ..FakeSlot::default()
    };
    let a = Peer::with_slot(1, Some(1000), slot);
    let sa = a.session(&shared);
    for request in [
        r#"{"op":"capture","interfaces":["lo"],"snaplen":128,"include_icmp":true}"#,
        r#"{"op":"capture","interfaces":["lo"],"snaplen":128,"include_arp":true}"#,
    ] {
        assert_eq!(refused(ask(&sa, request, &[])), capture::NO_ICMP_ARP);
    }
    let error = refused(ask(
        &sa,
        r#"{"op":"capture","interfaces":[],"snaplen":128}"#,
        &[],
    ));
    assert!(error.contains("no interface"), "{error}");
    // Snap lengths out of range are refused before the slot is asked.
    for snaplen in [0, MAX_SNAPLEN + 1, u32::MAX] {
        let request = format!(r#"{{"op":"capture","interfaces":["lo"],"snaplen":{snaplen}}}"#);
        let error = refused(ask(&sa, &request, &[]));
        assert!(error.contains("snap length"), "{error}");
        assert!(error.contains(&snaplen.to_string()), "{error}");
    }
    assert_eq!(a.slot.calls(), []);
    // A capture that fails in the slot leaves the client free to try again.
    let error = refused(ask(
        &sa,
        r#"{"op":"capture","interfaces":["lo","nope0"],"snaplen":128}"#,
        &[],
    ));
    assert!(error.contains("starting the capture failed"), "{error}");
    assert_eq!(
        ask(
            &sa,
            r#"{"op":"capture","interfaces":["lo","eth0"],"snaplen":128}"#,
            &[]
        ),
        Message::Capturing {
            interfaces: vec![
                CaptureInterface {
                    name: "lo".to_owned(),
                    index: 1,
                    raw_ip: false,
                    loopback: true,
                },
                CaptureInterface {
                    name: "eth0".to_owned(),
                    index: 2,
                    raw_ip: false,
                    loopback: false,
                },
            ],
        }
    );
    let error = refused(ask(&sa, CAPTURE_LO, &[]));
    assert!(error.contains("captures already"), "{error}");
    assert_eq!(
        a.slot.calls(),
        [
            Call::StartCapture(vec!["lo".to_owned(), "nope0".to_owned()]),
            Call::StartCapture(vec!["lo".to_owned(), "eth0".to_owned()]),
        ]
    );
}

#[test]
fn capture_flow_takes_a_connected_udp_socket_the_capturing_client_registered() {
    let shared = Shared::new(MAX_SOCKETS_PER_CLIENT);
    let (a, b) = (Peer::new(1, Some(1000)), Peer::new(2, Some(1001)));
    let (sa, sb) = (a.session(&shared), b.session(&shared));
    let peer = udp();
    let connected = udp();
    connected.connect(peer.local_addr().unwrap()).unwrap();
    let c = cookie(&connected);
    assert_eq!(ask(&sa, REGISTER, &[fd(&connected)]), ok(&connected));

    // Before capture.
    let error = refused(ask(&sa, CAPTURE_FLOW, &[fd(&connected)]));
    assert!(error.contains("does not capture"), "{error}");
    assert!(matches!(
        ask(&sa, CAPTURE_LO, &[]),
        Message::Capturing { .. }
    ));
    assert!(matches!(
        ask(&sb, CAPTURE_LO, &[]),
        Message::Capturing { .. }
    ));

    // Another client's socket, a socket nobody registered, a non-socket.
    let error = refused(ask(&sb, CAPTURE_FLOW, &[fd(&connected)]));
    assert!(error.contains("not registered by this client"), "{error}");
    let unregistered = udp();
    unregistered.connect(peer.local_addr().unwrap()).unwrap();
    let error = refused(ask(&sa, CAPTURE_FLOW, &[fd(&unregistered)]));
    assert!(error.contains("not registered by this client"), "{error}");
    let (reader, _writer) = std::io::pipe().unwrap();
    let error = refused(ask(&sa, CAPTURE_FLOW, &[OwnedFd::from(reader)]));
    assert!(error.contains("not a socket"), "{error}");

    // TCP sockets (their flows are the kernel's to register), listening or connected.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let stream = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    for tcp in [fd(&listener), fd(&stream)] {
        assert_eq!(
            ask(&sa, REGISTER, std::slice::from_ref(&tcp)),
            Message::Ok {
                cookie: cookie(&tcp).0
            }
        );
        let error = refused(ask(&sa, CAPTURE_FLOW, &[tcp]));
        assert!(error.contains("UDP socket"), "{error}");
    }

    // An unconnected UDP socket: no remote address to capture.
    let unconnected = udp();
    assert_eq!(ask(&sa, REGISTER, &[fd(&unconnected)]), ok(&unconnected));
    let error = refused(ask(&sa, CAPTURE_FLOW, &[fd(&unconnected)]));
    assert!(error.contains("not connected"), "{error}");

    let a_calls = a.slot.calls();
    assert!(
        !a_calls
            .iter()
            .any(|call| matches!(call, Call::RegisterFlow(..))),
        "{a_calls:?}"
    );
    // The client's own connected UDP socket: the addresses are read from the descriptor.
    assert_eq!(
        ask(&sa, CAPTURE_FLOW, &[fd(&connected)]),
        Message::Ok { cookie: c.0 }
    );
    assert_eq!(
        a.slot.calls().last(),
        Some(&Call::RegisterFlow(
            c,
            FlowProtocol::Udp,
            connected.local_addr().unwrap(),
            peer.local_addr().unwrap(),
        ))
    );
    assert_eq!(b.slot.calls(), [Call::StartCapture(vec!["lo".to_owned()])]);

    // Once unregistered, the socket is no longer the client's to capture.
    assert_eq!(ask(&sa, &unregister(c), &[]), Message::Ok { cookie: c.0 });
    let error = refused(ask(&sa, CAPTURE_FLOW, &[fd(&connected)]));
    assert!(error.contains("not registered by this client"), "{error}");
}

#[test]
fn a_departed_clients_sockets_are_forgotten_and_free_for_others() {
    let shared = Shared::new(MAX_SOCKETS_PER_CLIENT);
    let (a, b) = (Peer::new(1, Some(1000)), Peer::new(2, Some(1001)));
    let (sa, sb) = (a.session(&shared), b.session(&shared));
    let (mine, theirs) = (udp(), udp());
    assert_eq!(ask(&sa, REGISTER, &[fd(&mine)]), ok(&mine));
    assert_eq!(ask(&sb, REGISTER, &[fd(&theirs)]), ok(&theirs));
    refused(ask(&sb, REGISTER, &[fd(&mine)]));

    assert_eq!(a.slot.calls(), [Call::Register(cookie(&mine))]);
    shared.remove_client(a.id, a.slot);
    // B's own socket stays B's.
    assert_eq!(ask(&sb, STATUS, &[]), status(1, 1));
    assert_eq!(ask(&sb, REGISTER, &[fd(&mine)]), ok(&mine));
    assert_eq!(ask(&sb, STATUS, &[]), status(1, 2));
    assert_eq!(
        b.slot.calls(),
        [
            Call::Register(cookie(&theirs)),
            Call::Register(cookie(&mine))
        ]
    );
}

/// A slot that runs `hook` as it is removed (the real slot unregisters its sockets then).
struct Removing<F: FnOnce()> {
    _slot: FakeSlot,
    hook: Option<F>,
}

impl<F: FnOnce()> Drop for Removing<F> {
    fn drop(&mut self) {
        if let Some(hook) = self.hook.take() {
            hook();
        }
    }
}

#[test]
fn a_departing_clients_sockets_stay_its_own_until_its_slot_is_removed() {
    let shared = Shared::new(MAX_SOCKETS_PER_CLIENT);
    let (a, b) = (Peer::new(1, Some(1000)), Peer::new(2, Some(1001)));
    let socket = udp();
    assert_eq!(
        ask(&a.session(&shared), REGISTER, &[fd(&socket)]),
        ok(&socket)
    );
    let sb = b.session(&shared);
    // B asks for A's socket while A's slot is being removed: were it B's by then, the
    // removal would unregister it in the kernel (and remove its flows) under B.
    let during = RefCell::new(None);
    let removing = Removing {
        _slot: a.slot,
        hook: Some(|| *during.borrow_mut() = Some(ask(&sb, REGISTER, &[fd(&socket)]))),
    };
    shared.remove_client(a.id, removing);
    let error = refused(during.into_inner().unwrap());
    assert!(error.contains("another client"), "{error}");
    // Once removed, the socket is free.
    assert_eq!(ask(&sb, REGISTER, &[fd(&socket)]), ok(&socket));
    assert_eq!(b.slot.calls(), [Call::Register(cookie(&socket))]);
}

#[test]
fn a_user_holds_at_most_its_seats_and_root_is_not_limited() {
    let shared = Arc::new(Shared::new(MAX_SOCKETS_PER_CLIENT));
    let mut seats: Vec<UserSeat> = (0..MAX_SESSIONS_PER_USER)
        .map(|_| UserSeat::take(&shared, Some(1000)).unwrap())
        .collect();
    let error = UserSeat::take(&shared, Some(1000)).err().unwrap();
    assert!(error.contains("too many sessions"), "{error}");
    // Another user is not affected.
    let other = UserSeat::take(&shared, Some(1001)).unwrap();
    // Root is not counted.
    let root: Vec<UserSeat> = (0..=MAX_SESSIONS_PER_USER)
        .map(|_| UserSeat::take(&shared, Some(0)).unwrap())
        .collect();
    // A dropped seat frees one, and only one.
    seats.pop();
    seats.push(UserSeat::take(&shared, Some(1000)).unwrap());
    assert!(UserSeat::take(&shared, Some(1000)).is_err());
    drop((seats, other, root));
    assert!(lock(&shared.sessions_by_user).is_empty());
    assert!(UserSeat::take(&shared, Some(1000)).is_ok());
}

#[test]
fn a_peer_whose_uid_cannot_be_read_gets_no_seat() {
    let shared = Arc::new(Shared::new(MAX_SOCKETS_PER_CLIENT));
    for _ in 0..=MAX_SESSIONS_PER_USER {
        let error = UserSeat::take(&shared, None).err().unwrap();
        assert!(error.contains("user id cannot be read"), "{error}");
    }
    assert!(lock(&shared.sessions_by_user).is_empty());
}

#[test]
fn hello_then_register_is_served() {
    let shared = Shared::new(MAX_SOCKETS_PER_CLIENT);
    let a = Peer::new(1, Some(1000));
    let sa = a.session_before_hello(&shared);
    assert_eq!(
        ask(&sa, &hello(VERSION), &[]),
        Message::Hello { version: VERSION }
    );
    let socket = udp();
    assert_eq!(ask(&sa, REGISTER, &[fd(&socket)]), ok(&socket));
    assert_eq!(ask(&sa, STATUS, &[]), status(1, 1));
    // Hello is said once.
    let error = refused(ask(&sa, &hello(VERSION), &[]));
    assert!(error.contains("already"), "{error}");
    assert_eq!(a.slot.calls(), [Call::Register(cookie(&socket))]);
}

#[test]
fn every_request_before_hello_is_refused_and_reaches_no_slot() {
    let shared = Shared::new(MAX_SOCKETS_PER_CLIENT);
    let a = Peer::new(1, Some(1000));
    let sa = a.session_before_hello(&shared);
    let socket = udp();
    for (request, fds) in [
        (REGISTER.to_owned(), vec![fd(&socket)]),
        (CAPTURE_FLOW.to_owned(), vec![fd(&socket)]),
        (unregister(cookie(&socket)), vec![]),
        (SYNC.to_owned(), vec![]),
        (STATUS.to_owned(), vec![]),
        (CAPTURE_LO.to_owned(), vec![]),
    ] {
        let error = refused(ask(&sa, &request, &fds));
        assert!(
            error.contains("first request must be hello")
                && error.contains(&format!("version {VERSION}"))
                && error.contains("same nettrace release"),
            "{request}: {error}"
        );
    }
    // A hello with a descriptor is no hello.
    let error = refused(ask(&sa, &hello(VERSION), &[fd(&socket)]));
    assert!(error.contains("no descriptor"), "{error}");
    refused(ask(&sa, STATUS, &[]));
    assert_eq!(a.slot.calls(), []);
    // Malformed requests stay malformed ones.
    let error = refused(ask(&sa, r#"{"op":"hello"}"#, &[]));
    assert!(error.contains("malformed request"), "{error}");
    assert_eq!(
        ask(&sa, &hello(VERSION), &[]),
        Message::Hello { version: VERSION }
    );
    assert_eq!(ask(&sa, STATUS, &[]), status(1, 0));
}

#[test]
fn refusals_before_hello_name_the_daemons_version_and_later_ones_do_not() {
    let shared = Shared::new(MAX_SOCKETS_PER_CLIENT);
    let a = Peer::new(1, Some(1000));
    let sa = a.session_before_hello(&shared);
    let version = |answer: Message| match answer {
        Message::Error { version, .. } => version,
        other => panic!("not refused: {other:?}"),
    };
    // A later client's hello with a field this build does not know, and a request before
    // hello: the client learns which version it talks to.
    let later = format!(r#"{{"op":"hello","version":{},"feature":1}}"#, VERSION + 1);
    assert_eq!(version(ask(&sa, &later, &[])), Some(VERSION));
    assert_eq!(version(ask(&sa, STATUS, &[fd(&udp())])), Some(VERSION));
    assert_eq!(
        ask(&sa, &hello(VERSION), &[]),
        Message::Hello { version: VERSION }
    );
    assert_eq!(version(ask(&sa, STATUS, &[fd(&udp())])), None);
}

#[test]
fn a_hello_of_another_version_is_refused_naming_both() {
    let shared = Shared::new(MAX_SOCKETS_PER_CLIENT);
    let a = Peer::new(1, Some(1000));
    let sa = a.session_before_hello(&shared);
    let socket = udp();
    for other in [0, VERSION + 1, u32::MAX] {
        match ask(&sa, &hello(other), &[]) {
            Message::Error { error, version } => {
                assert_eq!(version, Some(VERSION), "{error}");
                assert!(
                    error.contains(&format!("client speaks version {other}"))
                        && error.contains(&format!("daemon {VERSION}"))
                        && error.contains("same nettrace release"),
                    "{error}"
                );
            }
            other => panic!("not refused: {other:?}"),
        }
        // Still not greeted.
        let error = refused(ask(&sa, REGISTER, &[fd(&socket)]));
        assert!(error.contains("first request must be hello"), "{error}");
    }
    assert_eq!(a.slot.calls(), []);
}

#[test]
fn a_packet_record_goes_to_the_client_with_the_time_the_hub_capped() {
    let raw = nettrace_common::PacketEvent {
        header: nettrace_common::EventHeader {
            kind: nettrace_common::event_kind::PACKET,
            client_id: 1,
            timestamp_ns: 2_000,
            cookie: 7,
        },
        ifindex: 1,
        direction: nettrace_common::direction::SENT,
        packet_len: 3,
        captured_len: 3,
    };
    // SAFETY: `PacketEvent` is `#[repr(C)]` plain integers without padding (checked in
    // nettrace-common), so its bytes are initialised.
    let mut record = unsafe {
        std::slice::from_raw_parts(
            (&raw const raw).cast::<u8>(),
            std::mem::size_of::<nettrace_common::PacketEvent>(),
        )
    }
    .to_vec();
    record.extend_from_slice(b"abc");
    let decoded = KernelEvent::decode(&record).unwrap();
    // Not capped: the record goes as it is.
    assert!(capped_time(&decoded, &record).is_none());
    // A departure time ahead of the hub's reading: capped, and the record sent says so.
    let mut capped = decoded.clone();
    capped.cap_packet_time(|| crate::KernelTime(1_500));
    assert!(capped_time(&capped, &record).is_some());
    // Through a client's socket, as the client reads it.
    let (daemon_end, client_end) = Socket::pair(Domain::UNIX, Type::SEQPACKET, None).unwrap();
    let sink = ClientSink {
        conn: daemon_end.into(),
        dropped: AtomicU64::new(0),
    };
    let mut frame = [0u8; 256];
    for event in [decoded, capped] {
        sink.kernel_event(event.clone(), &record);
        let n = client_end.recv(as_uninit(&mut frame)).unwrap();
        let Incoming::Event(received, bytes) = Incoming::of(&frame[..n]) else {
            panic!("not an event frame: {:?}", &frame[..n]);
        };
        assert_eq!(received, event);
        assert_eq!(bytes[bytes.len() - 3..], *b"abc");
    }
    assert_eq!(sink.dropped.load(Ordering::Relaxed), 0);
}

/// `buf` as the uninitialised bytes `socket2` receives into.
fn as_uninit(buf: &mut [u8]) -> &mut [std::mem::MaybeUninit<u8>] {
    // SAFETY: initialised bytes are valid `MaybeUninit<u8>`, and `recv` only writes bytes.
    unsafe { &mut *(buf as *mut [u8] as *mut [std::mem::MaybeUninit<u8>]) }
}
