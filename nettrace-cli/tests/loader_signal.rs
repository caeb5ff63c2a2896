//! `nettrace-loader trace` ended by SIGTERM (as `kill` or a service manager ends it) does what
//! Ctrl-C does: the traced command is killed and the trace of what was seen is written, whole,
//! before the loader exits on its own. Root only (skipped loudly otherwise); needs curl.
use std::{
    io::{BufRead, BufReader, Read, Write},
    net::{Ipv4Addr, TcpListener},
    os::unix::process::ExitStatusExt,
    process::{Command, Stdio},
    sync::mpsc,
    time::Duration,
};

use nettrace::model::HttpTrace;
use nettrace_tests::{require_root, scenario::TempDir, skip};

const LOADER: &str = env!("CARGO_BIN_EXE_nettrace-loader");
const LIMIT: Duration = Duration::from_secs(60);

#[test]
fn sigterm_ends_a_trace_and_writes_what_was_seen() {
    const TEST: &str = "sigterm_ends_a_trace_and_writes_what_was_seen";
    if !require_root(TEST) {
        return;
    }
    if !Command::new("curl")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
    {
        skip(TEST, "needs curl (apt-get install curl)");
        return;
    }
    // A loopback server answering one request, then saying so.
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("binding the server");
    let server = listener.local_addr().expect("its address");
    let (served_tx, served) = mpsc::channel();
    std::thread::spawn(move || {
        if let Some(Ok(mut stream)) = listener.incoming().next() {
            let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
            let _ = stream.read(&mut [0u8; 1024]);
            let _ = stream.write_all(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok");
            let _ = served_tx.send(());
        }
    });
    let dir = TempDir::new("loader-sigterm");
    let out = dir.path("trace.json");
    // The command makes one request, then would run for a minute.
    let mut loader = Command::new(LOADER)
        .args([
            "trace",
            "-o",
            out.to_str().expect("utf-8 path"),
            "--",
            "sh",
            "-c",
        ])
        .arg(format!(
            "curl -sS -m 10 -o /dev/null http://{server}/before-sigterm; exec sleep 60"
        ))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting the loader");
    let loader_pid = loader.id();
    let stderr = loader.stderr.take().expect("stderr piped");
    let (lines_tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = lines_tx.send(line);
        }
    });
    let (done_tx, done) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = done_tx.send(loader.wait());
    });
    let kill_loader = || {
        // SAFETY: kill(2) of the loader this test started.
        unsafe { libc::kill(loader_pid as libc::pid_t, libc::SIGKILL) };
    };
    if served.recv_timeout(Duration::from_secs(30)).is_err() {
        kill_loader();
        let said: Vec<String> = lines.try_iter().collect();
        panic!("the traced curl never reached the server: {said:?}");
    }

    // SAFETY: kill(2) of the loader this test started.
    let sent = unsafe { libc::kill(loader_pid as libc::pid_t, libc::SIGTERM) };
    assert_eq!(sent, 0, "kill: {}", std::io::Error::last_os_error());
    let Ok(status) = done.recv_timeout(LIMIT) else {
        kill_loader();
        panic!("the loader did not end after SIGTERM");
    };
    let status = status.expect("the loader's status");
    let said: Vec<String> = lines.try_iter().collect();
    // The loader ended on its own (SIGTERM did not kill it), with the killed command's code.
    assert_eq!(
        status.signal(),
        None,
        "killed by a signal: {status}: {said:?}"
    );
    assert_eq!(
        status.code(),
        Some(128 + libc::SIGKILL),
        "{status}: {said:?}"
    );
    assert!(
        said.iter().any(|l| l.contains("SIGTERM")),
        "no word of SIGTERM: {said:?}"
    );

    // The whole trace, with curl's connection in it.
    let text = std::fs::read_to_string(&out).expect("the trace was written");
    let trace: HttpTrace = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("the trace is not complete JSON: {e}\n{text}"));
    let to_server: Vec<_> = trace
        .net_trace
        .tcp_conns
        .iter()
        .filter(|c| c.addr_tuple.dst_port == server.port())
        .collect();
    assert_eq!(to_server.len(), 1, "{text}");
    assert!(to_server[0].connected, "{text}");
}
