//! The log of both binaries on standard error: `-v` adds the debug lines of the nettrace
//! crates, `RUST_LOG` overrides (`off` silences), the default shows the library's
//! degradations (why there is no kernel data) as one line; and `nettrace-loader serve`
//! logs through it and removes its socket on SIGTERM as on Ctrl-C.
use std::{
    path::Path,
    process::{Command, Stdio},
    time::Duration,
};

use nettrace_tests::{
    require_root,
    scenario::{self, CommandOutput, TempDir},
    unprivileged::{NOBODY, RunnableCopy, as_user},
};
use tokio::io::{AsyncBufReadExt, BufReader};

const LIMIT: Duration = Duration::from_secs(30);

async fn run(command: Command) -> CommandOutput {
    tokio::task::spawn_blocking(move || scenario::run_command(command, LIMIT))
        .await
        .unwrap_or_else(|e| panic!("the runner panicked: {e}"))
}

/// `nettrace get URL -o /dev/null <extra>` with `RUST_LOG` set to `rust_log` (or unset).
async fn get(url: &str, extra: &[&str], rust_log: Option<&str>) -> CommandOutput {
    let mut command = Command::new(env!("CARGO_BIN_EXE_nettrace"));
    command.args(["get", url, "-o", "/dev/null", "--kernel", "off"]);
    command.args(extra);
    match rust_log {
        Some(spec) => command.env("RUST_LOG", spec),
        None => command.env_remove("RUST_LOG"),
    };
    run(command).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verbose_adds_debug_lines_and_rust_log_decides_instead() {
    let server = scenario::plain_server().await;
    let url = server.url("/");
    let quiet = get(&url, &[], None).await;
    assert_eq!(quiet.code, Some(0), "{quiet:?}");
    assert!(!quiet.stderr.contains("DEBUG"), "{}", quiet.stderr);

    let verbose = get(&url, &["-v"], None).await;
    assert_eq!(verbose.code, Some(0), "{verbose:?}");
    assert!(
        verbose
            .stderr
            .lines()
            .any(|l| l.starts_with("DEBUG nettrace")),
        "{}",
        verbose.stderr
    );
    assert!(!verbose.stderr.contains("TRACE"), "{}", verbose.stderr);

    let very = get(&url, &["-vv"], None).await;
    assert!(
        very.stderr.lines().any(|l| l.starts_with("TRACE nettrace")),
        "{}",
        very.stderr
    );

    let off = get(&url, &["-vv"], Some("off")).await;
    assert_eq!(off.code, Some(0), "{off:?}");
    assert!(off.stderr.is_empty(), "RUST_LOG=off: {}", off.stderr);

    let chosen = get(&url, &[], Some("nettrace::client=debug")).await;
    assert!(
        chosen.stderr.contains("traced HTTP client created"),
        "{}",
        chosen.stderr
    );
}

/// `--kernel auto` without the privilege and without a daemon: the trace says why, and so
/// does one line of the default log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_kernel_data_the_default_log_says_why_in_one_line() {
    if !require_root(
        "without_kernel_data_the_default_log_says_why_in_one_line (switches to nobody)",
    ) {
        return;
    }
    let server = scenario::plain_server().await;
    let line = kernel_log_line(&server, Path::new("/nonexistent/nettrace.sock")).await;
    assert!(
        line.starts_with(" INFO") || line.starts_with("INFO"),
        "{line}"
    );
    assert!(line.contains("not permitted"), "{line}");
    assert!(line.contains("/nonexistent/nettrace.sock"), "{line}");
}

/// `--kernel auto` without the privilege, and a daemon that predates the version handshake
/// (a fake one answering hello as such a daemon does): the daemon is not used, and the log
/// line (the trace's reason) says why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daemon_older_than_the_handshake_is_not_used_and_the_log_says_why() {
    use std::{io::Read, os::unix::fs::PermissionsExt};
    if !require_root(
        "a_daemon_older_than_the_handshake_is_not_used_and_the_log_says_why (switches to nobody)",
    ) {
        return;
    }
    let server = scenario::plain_server().await;
    let dir = TempDir::new("old-daemon");
    let mode = |path: &Path, mode| {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
    };
    mode(&dir.path(""), 0o755);
    let socket = dir.path("loader.sock");
    let listener =
        socket2::Socket::new(socket2::Domain::UNIX, socket2::Type::SEQPACKET, None).unwrap();
    listener
        .bind(&socket2::SockAddr::unix(&socket).unwrap())
        .unwrap();
    listener.listen(1).unwrap();
    mode(&socket, 0o666);
    let old_daemon = std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().expect("the client connects");
        let mut buf = [0u8; 4096];
        let n = conn.read(&mut buf).expect("the client's first request");
        let first = String::from_utf8_lossy(&buf[..n]).into_owned();
        // What a daemon built before the handshake answers.
        let answer = r#"R{"type":"error","error":"malformed request: unknown variant `hello`, expected one of `register`, `unregister`, `sync`, `status`, `capture`, `capture-flow` at line 1 column 13"}"#;
        conn.send(answer.as_bytes()).expect("answering");
        // Nothing more: the client closes the connection.
        let n = conn.read(&mut buf).expect("the end of the connection");
        (first, n)
    });
    let line = kernel_log_line(&server, &socket).await;
    assert!(
        line.contains("predates the version handshake")
            && line.contains("same nettrace release")
            && line.contains(&socket.display().to_string()),
        "{line}"
    );
    let (first, after) = old_daemon.join().expect("the fake daemon");
    assert!(first.starts_with(r#"{"op":"hello","version":"#), "{first}");
    assert_eq!(after, 0, "a request after the refused hello");
}

/// `nettrace get` of `server` as user nobody with `--daemon-socket daemon`: it succeeds, and
/// its default log has exactly one line about the kernel data, returned.
async fn kernel_log_line(
    server: &nettrace_tests::fixtures::http::HttpServer,
    daemon: &Path,
) -> String {
    let binary = RunnableCopy::of(Path::new(env!("CARGO_BIN_EXE_nettrace")));
    let mut command = as_user(NOBODY, binary.path());
    command
        .args(["get", &server.url("/"), "-o", "/dev/null"])
        .arg("--daemon-socket")
        .arg(daemon)
        .env_remove("RUST_LOG");
    let out = run(command).await;
    assert_eq!(out.code, Some(0), "{out:?}");
    let lines: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.contains("no kernel data"))
        .collect();
    let [line] = &lines[..] else {
        panic!("one line about the kernel expected: {}", out.stderr);
    };
    (*line).to_owned()
}

/// Starts `nettrace-loader serve` on a socket in `dir`, waits for its "listening" log line,
/// sends `signal`, and checks that it exits 0 and removes the socket.
async fn serve_then_signal(signal: libc::c_int) {
    let dir = TempDir::new("serve-signal");
    let socket = dir.path("loader.sock");
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_nettrace-loader"))
        .arg("serve")
        .arg("--socket")
        .arg(&socket)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("starting the daemon: {e}"));
    let stderr = child.stderr.take().unwrap_or_else(|| panic!("no stderr"));
    let mut lines = BufReader::new(stderr).lines();
    let listening = tokio::time::timeout(LIMIT, async {
        while let Ok(Some(line)) = lines.next_line().await {
            if line.contains("listening on") {
                return Some(line);
            }
        }
        None
    })
    .await
    .unwrap_or_else(|_| panic!("the daemon did not listen within {LIMIT:?}"))
    .unwrap_or_else(|| panic!("the daemon ended without listening"));
    assert!(listening.contains("INFO"), "{listening}");
    assert!(socket.exists(), "listening, yet no socket file");
    let pid = child
        .id()
        .and_then(|pid| i32::try_from(pid).ok())
        .unwrap_or_else(|| panic!("no pid"));
    // SAFETY: kill has no memory preconditions; pid is our running child.
    assert_eq!(unsafe { libc::kill(pid, signal) }, 0);
    let status = tokio::time::timeout(LIMIT, child.wait())
        .await
        .unwrap_or_else(|_| panic!("the daemon did not stop within {LIMIT:?}"))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(status.code(), Some(0), "{status:?}");
    assert!(!socket.exists(), "the socket file is left behind");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loader_serve_removes_its_socket_on_sigterm_and_on_sigint() {
    if !require_root("loader_serve_removes_its_socket_on_sigterm_and_on_sigint") {
        return;
    }
    serve_then_signal(libc::SIGTERM).await;
    serve_then_signal(libc::SIGINT).await;
}
