//! `nettrace-loader serve` with two unprivileged clients of different users (through the
//! hidden `probe` client): each gets the kernel events of its own socket only, also when one
//! tries to register the other's socket by cookie or by descriptor number; hostile messages
//! get error replies and the daemon goes on serving.
use std::{
    io::{BufRead, BufReader, Read, Write},
    net::TcpListener,
    path::Path,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use nettrace_tests::{require_root, scenario::TempDir};

const LOADER: &str = env!("CARGO_BIN_EXE_nettrace-loader");

/// The daemon, killed on drop.
struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
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
    let socket = dir.path("loader.sock");
    std::fs::set_permissions(
        dir.path(""),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .expect("chmod");
    let _daemon = Daemon(
        Command::new(LOADER)
            .arg("serve")
            .arg("--socket")
            .arg(&socket)
            .stderr(Stdio::inherit())
            .spawn()
            .expect("starting the daemon"),
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while !socket.exists() {
        assert!(Instant::now() < deadline, "the daemon never listened");
        std::thread::sleep(Duration::from_millis(20));
    }
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
