//! Packet capture through `nettrace-loader serve` for unprivileged clients.
//!
//! `nettrace get --pcap lo` as user nobody, through the daemon, writes a pcap holding its own
//! connection (SYN to FIN) and its DNS exchange, and none of another user's concurrent
//! connection. A client can capture the flow of a UDP socket only by passing the descriptor
//! of a connected socket it registered; anything else gets an error reply. ICMP/ARP capture
//! through the daemon is refused with a clear message.
use std::{
    net::UdpSocket,
    os::{fd::AsFd, unix::fs::PermissionsExt},
    path::Path,
    process::Command,
    time::Duration,
};

use nettrace::{
    capture::PacketCaptureOptions,
    daemon::{DaemonClient, DaemonError, protocol::Message},
    kernel::KernelEvent,
};
use nettrace_tests::{
    daemon::{Daemon, trace_through_daemon},
    require_root,
    scenario::{self, CommandOutput, EXAMPLE_HOST, TempDir},
    tshark::{have_tshark, tshark_fields},
    unprivileged::{NOBODY, RunnableCopy, as_user},
};

const LOADER: &str = env!("CARGO_BIN_EXE_nettrace-loader");
const LIMIT: Duration = Duration::from_secs(30);
/// A second unprivileged user.
const OTHER: u32 = 65533;

async fn run(command: Command) -> CommandOutput {
    tokio::task::spawn_blocking(move || scenario::run_command(command, LIMIT))
        .await
        .unwrap_or_else(|e| panic!("the runner panicked: {e}"))
}

/// A folder every user may write to.
fn shared_dir(dir: &TempDir, name: &str) -> std::path::PathBuf {
    let path = dir.path(name);
    std::fs::create_dir_all(&path).expect("mkdir");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o777)).expect("chmod");
    path
}

/// The local and server ports of the only TCP connection of a successful `nettrace get`,
/// whose kernel data came complete from the daemon.
fn ports(out: &CommandOutput) -> (u16, u16) {
    let trace = trace_through_daemon(out);
    let tuple = &trace.net_trace.tcp_conns[0].addr_tuple;
    (tuple.src_port, tuple.dst_port)
}

/// A tshark flag field is set (tshark prints `1` or `True` by version).
fn set(field: &str) -> bool {
    field == "1" || field.eq_ignore_ascii_case("true")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unprivileged_pcap_through_serve_holds_its_own_packets_only() {
    let test = "unprivileged_pcap_through_serve_holds_its_own_packets_only";
    if !require_root(test) || !have_tshark(test) {
        return;
    }
    let dir = TempDir::new("serve-capture");
    let daemon = Daemon::start(Path::new(LOADER), &dir);
    let binary = RunnableCopy::of(Path::new(env!("CARGO_BIN_EXE_nettrace")));
    let server = scenario::plain_server().await;
    let dns = scenario::example_dns().await;
    let (mine, theirs) = (shared_dir(&dir, "mine"), shared_dir(&dir, "theirs"));
    let get = |uid: u32, url: &str, pcap_dir: &Path, extra: &[&str]| {
        let mut command = as_user(uid, binary.path());
        command
            .args(["get", url, "--no-keepalive", "--pcap", "lo", "--pcap-dir"])
            .arg(pcap_dir)
            .args(extra)
            .arg("--daemon-socket")
            .arg(daemon.socket());
        command
    };
    let nameserver = dns.addr().to_string();
    // Two users capture on lo at once; each gets its own connection's packets.
    let nobody = run(get(
        NOBODY,
        &server.url_with_host(EXAMPLE_HOST, "/bytes/2000"),
        &mine,
        &["--nameserver", &nameserver],
    ));
    let other = run(get(OTHER, &server.url("/bytes/30000"), &theirs, &[]));
    let (nobody, other) = tokio::join!(nobody, other);
    let (my_port, server_port) = ports(&nobody);
    let (their_port, _) = ports(&other);

    let rows = tshark_fields(
        &mine.join("lo.pcap"),
        &[
            "tcp.srcport",
            "tcp.dstport",
            "tcp.flags.syn",
            "tcp.flags.fin",
            "udp.srcport",
            "udp.dstport",
            "dns.qry.name",
        ],
    );
    let mut tcp_ports = std::collections::BTreeSet::new();
    for row in &rows {
        for port in [&row[0], &row[1], &row[4], &row[5]] {
            assert_ne!(
                port,
                &their_port.to_string(),
                "the other user's packet: {rows:?}"
            );
        }
        if !row[0].is_empty() {
            tcp_ports.insert((row[0].clone(), row[1].clone()));
        }
    }
    let expected = [
        (my_port.to_string(), server_port.to_string()),
        (server_port.to_string(), my_port.to_string()),
    ];
    assert_eq!(
        tcp_ports,
        expected.into_iter().collect(),
        "only its own connection: {rows:?}"
    );
    assert!(rows.iter().any(|r| set(&r[2])), "no SYN: {rows:?}");
    assert!(rows.iter().any(|r| set(&r[3])), "no FIN: {rows:?}");
    let queries = rows.iter().filter(|r| r[6] == EXAMPLE_HOST).count();
    // A query and its answer (A and AAAA lookups may add more).
    assert!(queries >= 2, "no DNS exchange: {rows:?}");

    // The other user's capture has its connection and none of nobody's.
    let theirs_rows = tshark_fields(&theirs.join("lo.pcap"), &["tcp.srcport", "tcp.dstport"]);
    assert!(!theirs_rows.is_empty(), "{other:?}");
    assert!(
        theirs_rows
            .iter()
            .all(|r| r.contains(&their_port.to_string()) && !r.contains(&my_port.to_string())),
        "{theirs_rows:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn icmp_capture_through_serve_is_refused_with_a_clear_message() {
    if !require_root("icmp_capture_through_serve_is_refused_with_a_clear_message") {
        return;
    }
    let dir = TempDir::new("serve-capture-icmp");
    let daemon = Daemon::start(Path::new(LOADER), &dir);
    let binary = RunnableCopy::of(Path::new(env!("CARGO_BIN_EXE_nettrace")));
    let server = scenario::plain_server().await;
    let mut command = as_user(NOBODY, binary.path());
    command
        .args(["get", &server.url("/"), "--pcap", "lo", "--icmp"])
        .args(["--pcap-dir", "/tmp", "--daemon-socket"])
        .arg(daemon.socket());
    let out = run(command).await;
    assert_eq!(out.code, Some(2), "{out:?}");
    assert!(
        out.stderr
            .contains("ICMP and ARP capture is not available through the")
            && out.stderr.contains("other users' traffic"),
        "{out:?}"
    );
}

/// `lo` with default limits.
fn lo() -> PacketCaptureOptions {
    PacketCaptureOptions {
        interfaces: vec!["lo".to_owned()],
        ..PacketCaptureOptions::default()
    }
}

/// The daemon's refusal, whatever it says.
fn refusal(result: Result<(), DaemonError>) -> String {
    match result {
        Err(DaemonError::Refused(why)) => why,
        other => panic!("not refused: {other:?}"),
    }
}

/// The error reply to a raw `capture-flow` carrying `fd`.
fn raw_capture_flow(client: &mut DaemonClient, fd: Option<std::os::fd::BorrowedFd<'_>>) -> String {
    match client.send_raw(br#"{"op":"capture-flow"}"#, fd) {
        Ok(Message::Error { error, .. }) => error,
        other => panic!("not refused: {other:?}"),
    }
}

/// Every event queued for `client` now (bounded).
fn events(client: &mut DaemonClient) -> Vec<KernelEvent> {
    client.sync().expect("sync");
    let mut events = Vec::new();
    for _ in 0..100_000 {
        match client.next_event(Duration::ZERO).expect("next event") {
            Some(event) => events.push(event),
            None => break,
        }
    }
    events
}

#[test]
fn capture_flow_takes_only_connected_udp_sockets_the_client_registered() {
    if !require_root("capture_flow_takes_only_connected_udp_sockets_the_client_registered") {
        return;
    }
    let dir = TempDir::new("serve-capture-flow");
    let daemon = Daemon::start(Path::new(LOADER), &dir);
    let mut a = DaemonClient::connect(daemon.socket()).expect("client A");
    let mut b = DaemonClient::connect(daemon.socket()).expect("client B");
    let peer = UdpSocket::bind("127.0.0.1:0").expect("peer");
    let peer_addr = peer.local_addr().expect("peer address");
    let mine = UdpSocket::bind("127.0.0.1:0").expect("socket");
    let cookie = a.register(&mine).expect("register");
    mine.connect(peer_addr).expect("connect");

    // Not capturing yet.
    let why = raw_capture_flow(&mut a, Some(mine.as_fd()));
    assert!(why.contains("does not capture"), "{why}");
    // Errors are replied, and the session goes on.
    let error = a
        .capture(&PacketCaptureOptions {
            interfaces: vec!["nettrace-nope0".to_owned()],
            ..lo()
        })
        .expect_err("unknown interface");
    assert!(format!("{error:?}").contains("nettrace-nope0"), "{error:?}");
    let icmp = PacketCaptureOptions {
        include_icmp: true,
        ..lo()
    };
    let why = refusal(a.capture(&icmp).map(drop));
    assert!(why.contains("ICMP"), "{why}");
    let found = a.capture(&lo()).expect("capture on lo");
    assert!(found.len() == 1 && found[0].name == "lo" && found[0].loopback);
    assert!(refusal(a.capture(&lo()).map(drop)).contains("already"));
    b.capture(&lo()).expect("B captures on lo");

    // A socket A never registered, one B registered, a file, no descriptor at all.
    let stranger = UdpSocket::bind("127.0.0.1:0").expect("stranger");
    stranger.connect(peer_addr).expect("connect");
    assert!(refusal(a.capture_flow(&stranger)).contains("not registered by this client"));
    let bs = UdpSocket::bind("127.0.0.1:0").expect("B's socket");
    b.register(&bs).expect("B registers");
    bs.connect(peer_addr).expect("connect");
    assert!(refusal(a.capture_flow(&bs)).contains("not registered by this client"));
    let file = std::fs::File::open("/proc/self/status").expect("a file");
    let why = raw_capture_flow(&mut a, Some(file.as_fd()));
    assert!(why.contains("not a socket"), "{why}");
    let why = raw_capture_flow(&mut a, None);
    assert!(why.contains("exactly one"), "{why}");
    // A registered socket that is not UDP, or not connected.
    let tcp = std::net::TcpListener::bind("127.0.0.1:0").expect("tcp");
    a.register(&tcp).expect("register tcp");
    assert!(refusal(a.capture_flow(&tcp)).contains("UDP"));
    let unconnected = UdpSocket::bind("127.0.0.1:0").expect("unconnected");
    a.register(&unconnected).expect("register");
    assert!(refusal(a.capture_flow(&unconnected)).contains("not connected"));

    // A's own connected socket: its datagrams come to A, and to no one else.
    a.capture_flow(&mine).expect("capture flow");
    mine.send(b"mine").expect("send");
    let mut buf = [0u8; 16];
    let _ = peer.recv(&mut buf).expect("peer receives");
    let packets = |events: Vec<KernelEvent>| {
        events
            .into_iter()
            .filter(|e| matches!(e, KernelEvent::Packet(_)))
            .map(|e| e.cookie().0)
            .collect::<Vec<_>>()
    };
    let a_packets = packets(events(&mut a));
    assert!(a_packets.contains(&cookie), "{a_packets:?}");
    let b_packets = packets(events(&mut b));
    assert!(!b_packets.contains(&cookie), "{b_packets:?}");
}
