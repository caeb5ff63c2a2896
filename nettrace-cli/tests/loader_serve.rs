//! `nettrace-loader serve` with unprivileged clients of different users.
//!
//! Through the hidden `probe` client: each gets the kernel events of its own socket only, also
//! when one tries to register the other's socket by cookie or by descriptor number; hostile
//! messages get error replies and the daemon goes on serving. Through the library (`nettrace
//! get` as users nobody and 65533): each trace holds the kernel facts of its own connection,
//! by the daemon, and a client killed mid-request leaves nothing registered behind. Raw: the
//! daemon serves nothing before the version handshake and refuses another version.
use std::{
    io::{BufRead, BufReader, Read, Write},
    net::TcpListener,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use nettrace::daemon::{
    DaemonClient, MAX_SESSIONS_PER_USER,
    protocol::{Frame, MAX_FRAME, Message, VERSION},
};
use nettrace_tests::{
    daemon::{Daemon, trace_through_daemon},
    require_root,
    scenario::{self, CommandOutput, TempDir},
};

const LOADER: &str = env!("CARGO_BIN_EXE_nettrace-loader");

/// Starts the daemon on a socket in `dir` (which users nobody and 65533 may enter).
fn start_daemon(dir: &TempDir) -> (Daemon, PathBuf) {
    let daemon = Daemon::start(Path::new(LOADER), dir);
    let socket = daemon.socket().to_owned();
    (daemon, socket)
}

fn probe_as(uid: u32, socket: &Path, connect: &str, extra: &[&str]) -> Child {
    let id = uid.to_string();
    Command::new("setpriv")
        .args([
            "--reuid",
            &id,
            "--regid",
            &id,
            "--clear-groups",
            LOADER,
            "probe",
        ])
        .arg("--socket")
        .arg(socket)
        .args(["--connect", connect])
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("starting a probe")
}

/// Waits for a probe whose output was read already.
fn finish(mut child: Child, text: &str) -> (u64, Vec<u64>, String) {
    let status = child.wait().expect("probe status");
    finish_with(status, text)
}

/// The probe's cookie and the cookies of the events it received; its whole output.
fn finish_with(status: std::process::ExitStatus, text: &str) -> (u64, Vec<u64>, String) {
    assert!(status.success(), "probe failed: {status:?} {text}");
    let text = text.to_owned();
    let cookie = text
        .lines()
        .find_map(|l| l.strip_prefix("cookie ")?.parse().ok())
        .unwrap_or_else(|| panic!("no cookie in {text}"));
    let events = text
        .lines()
        .filter_map(|l| l.strip_prefix("event ")?.split(' ').next()?.parse().ok())
        .collect();
    (cookie, events, text)
}

#[test]
fn serve_gives_each_client_only_its_own_sockets() {
    if !require_root("serve_gives_each_client_only_its_own_sockets") {
        return;
    }
    let dir = TempDir::new("loader-serve");
    let (_daemon, socket) = start_daemon(&dir);
    // A server for both probes: reads until EOF, answers, closes (bounded: two clients).
    let listener = TcpListener::bind("127.0.0.1:0").expect("listener");
    let addr = listener.local_addr().expect("addr").to_string();
    let server = std::thread::spawn(move || {
        for _ in 0..2 {
            let Ok((mut conn, _)) = listener.accept() else {
                return;
            };
            let mut got = Vec::new();
            let _ = conn.read_to_end(&mut got);
            let _ = conn.write_all(b"ok");
        }
    });

    // A registers and waits before connecting, so that B's attempts happen while A's socket
    // is registered.
    let mut a = probe_as(65534, &socket, &addr, &["--hold-ms", "700"]);
    let mut a_out = BufReader::new(a.stdout.take().expect("stdout"));
    let mut first = String::new();
    a_out.read_line(&mut first).expect("A's cookie line");
    let a_cookie: u64 = first
        .trim()
        .strip_prefix("cookie ")
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("unexpected first line {first:?}"));
    let b = probe_as(65533, &socket, &addr, &["--steal", &a_cookie.to_string()]);
    let mut rest = String::new();
    a_out.read_to_string(&mut rest).expect("A's output");
    let (_, a_events, a_text) = finish(a, &format!("{first}{rest}"));
    let output = b.wait_with_output().expect("probe output");
    let (b_cookie, b_events, b_text) =
        finish_with(output.status, &String::from_utf8_lossy(&output.stdout));
    let _ = server.join();

    assert_ne!(a_cookie, b_cookie);
    assert_eq!(
        b_text.matches("steal refused").count(),
        4,
        "every theft and malformed message is refused: {b_text}"
    );
    assert!(!b_text.contains("ACCEPTED"), "{b_text}");
    assert!(
        !a_events.is_empty(),
        "A got no events: cookie {a_cookie}, {a_text}"
    );
    assert!(!b_events.is_empty(), "B got no events: {b_text}");
    assert!(
        a_events.iter().all(|c| *c == a_cookie),
        "A saw another socket: {a_text}"
    );
    assert!(
        b_events.iter().all(|c| *c == b_cookie),
        "B saw another socket (A is {a_cookie}): {b_text}"
    );
    assert!(b_text.contains("tcp-state") && a_text.contains("tcp-state"));
}

const NETTRACE: &str = env!("CARGO_BIN_EXE_nettrace");
const LIMIT: Duration = Duration::from_secs(30);

/// `nettrace get URL` as user `uid`, with the daemon at `socket`.
fn get_as(uid: u32, socket: &Path, url: &str) -> Command {
    let id = uid.to_string();
    let mut command = Command::new("setpriv");
    command
        .args(["--reuid", &id, "--regid", &id, "--clear-groups", "--"])
        .args([NETTRACE, "get", url, "--no-keepalive", "--daemon-socket"])
        .arg(socket);
    command
}

async fn run(command: Command) -> CommandOutput {
    tokio::task::spawn_blocking(move || scenario::run_command(command, LIMIT))
        .await
        .unwrap_or_else(|e| panic!("the runner panicked: {e}"))
}

/// The trace of a successful `nettrace get`, checked to hold kernel facts from the daemon;
/// returns the bytes its connection received, as the kernel counted its receive calls.
fn kernel_received(out: &CommandOutput) -> u64 {
    let trace = trace_through_daemon(out);
    let kernel = trace.net_trace.tcp_conns[0]
        .kernel
        .as_ref()
        .unwrap_or_else(|| panic!("no kernel facts: {out:?}"));
    let states: Vec<(&str, &str)> = kernel
        .states
        .iter()
        .map(|s| (s.from.as_str(), s.to.as_str()))
        .collect();
    assert_eq!(
        states.get(..2),
        Some(&[("close", "syn-sent"), ("syn-sent", "established")][..]),
        "{states:?}"
    );
    assert!(kernel.segs_out > 0 && kernel.segs_in > 0, "{kernel:?}");
    kernel.calls.call_bytes_received
}

/// Waits (bounded) until the daemon's status, as root sees it, is `want`.
fn wait_status(root: &mut DaemonClient, want: (u64, u64)) {
    let deadline = Instant::now() + LIMIT;
    loop {
        let status = root.status().expect("status");
        if status == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "daemon status stayed {status:?}, want {want:?}"
        );
        // Polls another process's state, with a deadline.
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unprivileged_get_through_serve_has_kernel_facts_of_its_own_connection() {
    if !require_root("unprivileged_get_through_serve_has_kernel_facts_of_its_own_connection") {
        return;
    }
    let dir = TempDir::new("loader-serve-get");
    let (_daemon, socket) = start_daemon(&dir);
    let server = scenario::plain_server().await;
    // Two users at once, with bodies of very different sizes: each trace's kernel counts are
    // those of its own connection.
    let small = run(get_as(65534, &socket, &server.url("/bytes/3000")));
    let large = run(get_as(65533, &socket, &server.url("/bytes/300000")));
    let (small, large) = tokio::join!(small, large);
    let small = kernel_received(&small);
    let large = kernel_received(&large);
    assert!((3000..6000).contains(&small), "small: {small}");
    assert!((300_000..303_000).contains(&large), "large: {large}");
    let mut root = DaemonClient::connect(&socket).expect("root client");
    wait_status(&mut root, (1, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_killed_mid_request_leaves_nothing_behind() {
    if !require_root("a_client_killed_mid_request_leaves_nothing_behind") {
        return;
    }
    let dir = TempDir::new("loader-serve-kill");
    let (_daemon, socket) = start_daemon(&dir);
    let server = scenario::plain_server().await;
    let mut slow = get_as(65534, &socket, &server.url("/slow-body/20000"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting the slow client");
    let socket_path = socket.clone();
    tokio::task::spawn_blocking(move || {
        let mut root = DaemonClient::connect(&socket_path).expect("root client");
        // The slow client's connection is registered while its request waits for the body.
        wait_status(&mut root, (2, 1));
        // setpriv executes nettrace in place: this is the client itself.
        slow.kill().expect("kill -9");
        let _ = slow.wait();
        wait_status(&mut root, (1, 0));
    })
    .await
    .unwrap_or_else(|e| panic!("the status checker panicked: {e}"));
    // The daemon goes on serving.
    let out = run(get_as(65533, &socket, &server.url("/bytes/10"))).await;
    assert!(kernel_received(&out) >= 10);
}

/// Switches the calling thread (only it: the raw system calls bypass the C library's
/// process-wide change) to user and group `id`.
fn become_user_on_this_thread(id: u32) {
    let id = libc::c_long::from(id);
    // SAFETY: plain system calls with integer arguments; they change only this thread's
    // credentials, and the thread ends after the test's unprivileged part.
    let (gid_rc, uid_rc) = unsafe {
        (
            libc::syscall(libc::SYS_setresgid, id, id, id),
            libc::syscall(libc::SYS_setresuid, id, id, id),
        )
    };
    assert_eq!((gid_rc, uid_rc), (0, 0), "switching this thread's user");
}

#[test]
fn one_user_cannot_take_more_than_its_share_of_sessions() {
    if !require_root("one_user_cannot_take_more_than_its_share_of_sessions") {
        return;
    }
    let dir = TempDir::new("loader-serve-limit");
    let (_daemon, socket) = start_daemon(&dir);
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                become_user_on_this_thread(65534);
                let mut held = Vec::new();
                for n in 0..MAX_SESSIONS_PER_USER {
                    let mut client = DaemonClient::connect(&socket)
                        .unwrap_or_else(|e| panic!("session {n}: {e}"));
                    client
                        .status()
                        .unwrap_or_else(|e| panic!("session {n} is served: {e}"));
                    held.push(client);
                }
                // Over the limit the daemon replies why and closes at once; the client sees the
                // reply, or the closed connection when its request crossed the close.
                let refused = DaemonClient::connect(&socket).and_then(|mut c| c.status());
                refused.expect_err("one session over the limit is refused");
                // A session given back is a seat free again (the daemon notices the close on
                // its own thread: bounded retries, no fixed sleep).
                drop(held.pop());
                let deadline = Instant::now() + Duration::from_secs(5);
                loop {
                    match DaemonClient::connect(&socket).and_then(|mut c| c.status()) {
                        Ok(_) => break,
                        Err(_) if Instant::now() < deadline => std::thread::yield_now(),
                        Err(error) => panic!("the freed seat was not given back: {error}"),
                    }
                }
            })
            .join()
            .expect("the unprivileged thread");
    });
    // Root is not limited, and the daemon still serves.
    let mut root = DaemonClient::connect(&socket).expect("root connects");
    root.status().expect("root is served");
}

/// A connection to the daemon that sends what it is told (one request per packet).
struct RawClient(socket2::Socket);

impl RawClient {
    fn connect(path: &Path) -> Self {
        let socket =
            socket2::Socket::new(socket2::Domain::UNIX, socket2::Type::SEQPACKET, None).unwrap();
        socket
            .connect(&socket2::SockAddr::unix(path).unwrap())
            .expect("connecting to the daemon");
        Self(socket)
    }

    /// Sends `request` and reads the daemon's reply.
    fn ask(&mut self, request: &str) -> Message {
        self.0.send(request.as_bytes()).expect("sending a request");
        let mut buf = vec![0u8; MAX_FRAME + 1];
        let n = self.0.read(&mut buf).expect("reading the reply");
        match Frame::decode(&buf[..n]) {
            Ok(Frame::Reply(reply)) => reply,
            other => panic!("not a reply: {other:?}"),
        }
    }
}

#[test]
fn serve_serves_nothing_before_hello_and_refuses_another_version() {
    if !require_root("serve_serves_nothing_before_hello_and_refuses_another_version") {
        return;
    }
    let dir = TempDir::new("loader-serve-hello");
    let (_daemon, socket) = start_daemon(&dir);
    let mut raw = RawClient::connect(&socket);
    let status = r#"{"op":"status"}"#;
    let refused = |reply: Message| match reply {
        Message::Error { error, .. } => error,
        other => panic!("not refused: {other:?}"),
    };
    let error = refused(raw.ask(status));
    assert!(error.contains("first request must be hello"), "{error}");
    let other = VERSION + 1;
    match raw.ask(&format!(r#"{{"op":"hello","version":{other}}}"#)) {
        Message::Error { error, version } => {
            assert_eq!(version, Some(VERSION), "{error}");
            assert!(
                error.contains(&format!("version {other}"))
                    && error.contains(&format!("daemon {VERSION}"))
                    && error.contains("same nettrace release"),
                "{error}"
            );
        }
        reply => panic!("another version was not refused: {reply:?}"),
    }
    let error = refused(raw.ask(status));
    assert!(error.contains("first request must be hello"), "{error}");
    assert_eq!(
        raw.ask(&format!(r#"{{"op":"hello","version":{VERSION}}}"#)),
        Message::Hello { version: VERSION }
    );
    assert!(matches!(raw.ask(status), Message::Status { .. }));
    // The library's client says hello by itself.
    let mut client = DaemonClient::connect(&socket).expect("the library's client connects");
    assert_eq!(client.status().expect("status"), (2, 0));
}
