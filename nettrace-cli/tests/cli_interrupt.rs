//! An interrupted `nettrace get` keeps its trace: on SIGINT (Ctrl-C) or SIGTERM the request
//! in flight is canceled, the trace (with that request and its error) is written, and the
//! exit code is 130 or 143, as a shell reports a program the signal killed.
use std::{
    path::Path,
    process::Stdio,
    sync::Arc,
    time::{Duration, Instant},
};

use nettrace::model::HttpTrace;
use nettrace_tests::scenario::{self, TempDir, check_trace, dump};
use tokio::{
    io::AsyncReadExt,
    net::{TcpListener, TcpStream},
};

/// The longest a run may take after its signal.
const LIMIT: Duration = Duration::from_secs(30);

/// Sends `signal` to `child`, then waits (bounded) for its exit code and standard error.
async fn signal_and_wait(
    child: tokio::process::Child,
    signal: libc::c_int,
) -> (Option<i32>, String) {
    let pid = child
        .id()
        .and_then(|pid| i32::try_from(pid).ok())
        .unwrap_or_else(|| panic!("the child has no pid"));
    // SAFETY: kill has no memory preconditions; pid is our running child.
    let sent = unsafe { libc::kill(pid, signal) };
    assert_eq!(sent, 0, "kill: {}", std::io::Error::last_os_error());
    let out = tokio::time::timeout(LIMIT, child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("nettrace still running {LIMIT:?} after the signal: killed"))
        .unwrap_or_else(|e| panic!("{e}"));
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn spawn(args: &[&str]) -> tokio::process::Child {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_nettrace"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("spawning nettrace: {e}"))
}

fn read_trace(file: &Path, stderr: &str) -> HttpTrace {
    let text = std::fs::read_to_string(file)
        .unwrap_or_else(|e| panic!("no trace at {} ({e}); stderr: {stderr}", file.display()));
    let trace: HttpTrace =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("not a JSON trace ({e}): {text}"));
    check_trace(&trace);
    trace
}

/// A server that accepts, reads a request head and never answers. Its counter counts the
/// request heads read: once it is 1, the client has connected and sent its request.
struct SilentServer {
    addr: std::net::SocketAddr,
    heads: Arc<tokio::sync::watch::Sender<usize>>,
    task: tokio::task::JoinHandle<()>,
}

impl SilentServer {
    async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("bind: {e}"));
        let addr = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("getsockname: {e}"));
        let heads = Arc::new(tokio::sync::watch::Sender::new(0));
        let counter = heads.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(never_answer(stream, counter.clone()));
            }
        });
        Self { addr, heads, task }
    }

    /// Waits until a request head was read; false if `LIMIT` passed first.
    async fn request_read(&self) -> bool {
        let mut seen = self.heads.subscribe();
        tokio::time::timeout(LIMIT, seen.wait_for(|n| *n >= 1))
            .await
            .is_ok_and(|r| r.is_ok())
    }
}

impl Drop for SilentServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Reads the request head, counts it, then reads on until the client goes.
async fn never_answer(mut stream: TcpStream, heads: Arc<tokio::sync::watch::Sender<usize>>) {
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    let mut counted = false;
    loop {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) if !counted => {
                seen.extend_from_slice(&buf[..n]);
                if seen.windows(4).any(|w| w == b"\r\n\r\n") {
                    counted = true;
                    heads.send_modify(|n| *n += 1);
                }
            }
            Ok(_) => {}
        }
    }
}

/// The signal comes once the silent server has read the request.
async fn interrupted_while_waiting_for_the_response(signal: libc::c_int, code: i32) {
    let silent = SilentServer::start().await;
    let dir = TempDir::new("cli-interrupt");
    let file = dir.path("trace.json");
    let url = format!("http://{}/never", silent.addr);
    let child = spawn(&["get", &url, "--output", &file.display().to_string()]);
    assert!(
        silent.request_read().await,
        "nettrace never sent its request"
    );
    let (exit, stderr) = signal_and_wait(child, signal).await;
    assert_eq!(exit, Some(code), "stderr: {stderr}");
    assert!(stderr.contains("request canceled"), "{stderr}");
    let trace = read_trace(&file, &stderr);
    let [req] = trace.http_requests.as_slice() else {
        panic!("one request expected:\n{}", dump(&trace));
    };
    assert_eq!(req.req_url, url);
    assert_eq!(
        req.req_error,
        "canceled before the response arrived",
        "{}",
        dump(&trace)
    );
    assert!(req.resp_recv_at.is_undefined(), "{}", dump(&trace));
    let [conn] = trace.net_trace.tcp_conns.as_slice() else {
        panic!("one TCP connection expected:\n{}", dump(&trace));
    };
    assert!(conn.connected, "{}", dump(&trace));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigint_writes_the_trace_with_the_canceled_request_and_exits_130() {
    interrupted_while_waiting_for_the_response(libc::SIGINT, 130).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_writes_the_trace_with_the_canceled_request_and_exits_143() {
    interrupted_while_waiting_for_the_response(libc::SIGTERM, 143).await;
}

/// A signal in the middle of a body (`/slow-body`: half of it, then a long pause): the part
/// received is saved, the trace says the body was given up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigint_mid_body_keeps_the_part_received_and_the_trace() {
    let server = scenario::plain_server().await;
    let dir = TempDir::new("cli-interrupt-body");
    let file = dir.path("trace.json");
    let body = dir.path("body");
    let url = server.url("/slow-body/60000");
    let child = spawn(&[
        "get",
        &url,
        "-o",
        &file.display().to_string(),
        "--save-body",
        &body.display().to_string(),
    ]);
    // Waits until the first half of the body is saved (a bounded wait on another process's
    // output: there is no event to await across the process boundary).
    let half = nettrace_tests::fixtures::http::SLOW_BODY_LEN / 2;
    let deadline = Instant::now() + LIMIT;
    while std::fs::metadata(&body).map_or(0, |m| m.len()) < half as u64 {
        assert!(Instant::now() < deadline, "the first half never arrived");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let (exit, stderr) = signal_and_wait(child, libc::SIGINT).await;
    assert_eq!(exit, Some(130), "stderr: {stderr}");
    let saved = std::fs::read(&body).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(saved.len(), half);
    let trace = read_trace(&file, &stderr);
    let req = &trace.http_requests[0];
    assert_eq!(req.resp_status_code, 200);
    assert_eq!(
        req.req_error,
        "canceled while reading the response body",
        "{}",
        dump(&trace)
    );
    assert_eq!(req.resp_content_len, half as u64, "{}", dump(&trace));
}
