//! `nettrace get` streams the response body: a 2 GiB download costs the same memory as a
//! small one (peak RSS of the process under 64 MiB, with and without `--sock-trace`);
//! `--save-body FILE` writes exactly the bytes served, `--save-body -` writes them to
//! standard output (the trace then goes to standard error, or to `-o FILE`), and a reader of
//! standard output that goes away ends the run quietly, for the body as for the trace.
use std::{
    io::{BufRead, BufReader, Read},
    net::SocketAddr,
    process::{Command, Stdio},
    sync::Arc,
    time::{Duration, Instant},
};

use nettrace::model::HttpTrace;
use nettrace_tests::scenario::{self, CommandOutput, TempDir, check_trace, dump};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};

/// The longest one run of the binary may take (a 2 GiB download of a debug build).
const LIMIT: Duration = Duration::from_secs(180);
/// The most memory `nettrace get` may use for a download of any size.
const MAX_RSS_KIB: i64 = 64 << 10;

/// A loopback HTTP/1.1 server answering every request with `chunk` sent `count` times as a
/// chunked body (one buffer, reused: the server itself stays small and fast).
struct StreamServer {
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl StreamServer {
    async fn start(chunk: Vec<u8>, count: usize) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("bind: {e}"));
        let addr = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("getsockname: {e}"));
        let chunk = Arc::new(chunk);
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serve(stream, chunk.clone(), count));
            }
        });
        Self { addr, task }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

impl Drop for StreamServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Reads one request head, then sends the chunked body and closes.
async fn serve(mut stream: TcpStream, chunk: Arc<Vec<u8>>, count: usize) {
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    let framing = format!("{:x}\r\n", chunk.len());
    let answer = async {
        stream
            .write_all(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
            )
            .await?;
        for _ in 0..count {
            stream.write_all(framing.as_bytes()).await?;
            stream.write_all(&chunk).await?;
            stream.write_all(b"\r\n").await?;
        }
        stream.write_all(b"0\r\n\r\n").await?;
        stream.shutdown().await
    };
    // The client may go away early (the closed-pipe tests): nothing to report then.
    let _ = answer.await;
}

/// `n` bytes that do not repeat with a short period (xorshift), so that a lost, doubled or
/// misplaced frame shows.
fn noise(n: usize) -> Vec<u8> {
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..n)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

/// Runs `nettrace <args>` (output discarded) and returns its exit code and peak RSS in KiB,
/// from `wait4`'s resource usage of the child.
fn peak_rss(args: &[String]) -> (Option<i32>, i64) {
    #[expect(
        clippy::zombie_processes,
        reason = "reaped by wait4 below, which also gives its resource usage"
    )]
    let child = Command::new(env!("CARGO_BIN_EXE_nettrace"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("spawning nettrace: {e}"));
    let pid = i32::try_from(child.id()).unwrap_or_else(|e| panic!("{e}"));
    // A watchdog: kills the child if it outlives LIMIT (it is not reaped before wait4
    // returns, so the pid is still its own).
    let (done, watched) = std::sync::mpsc::channel::<()>();
    let watchdog = std::thread::spawn(move || {
        if watched.recv_timeout(LIMIT).is_err() {
            // SAFETY: kill has no memory preconditions.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    });
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value of the plain C struct.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: valid pointers to locals; pid is our unreaped child.
    let reaped = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let _ = done.send(());
    let _ = watchdog.join();
    assert_eq!(reaped, pid, "wait4: {}", std::io::Error::last_os_error());
    let code = libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status));
    (code, usage.ru_maxrss)
}

fn parse(json: &str, what: &str) -> HttpTrace {
    let trace: HttpTrace =
        serde_json::from_str(json).unwrap_or_else(|e| panic!("{what}: not a JSON trace ({e})"));
    check_trace(&trace);
    trace
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_2_gib_download_stays_under_64_mib_with_and_without_sock_trace() {
    const GIB2: u64 = 2 << 30;
    let server = StreamServer::start(vec![b'x'; 1 << 20], 2048).await;
    let dir = TempDir::new("cli-body-rss");
    let url = server.url("/big");
    for extra in [&[][..], &["--sock-trace"][..]] {
        let trace_file = dir.path("trace.json").display().to_string();
        let mut args = vec!["get", url.as_str(), "-o", trace_file.as_str()];
        args.extend_from_slice(extra);
        let started = Instant::now();
        let owned: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        let (code, rss) = tokio::task::spawn_blocking(move || peak_rss(&owned))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        eprintln!(
            "nettrace {}: peak RSS {} KiB, {:.1} s",
            args.join(" "),
            rss,
            started.elapsed().as_secs_f64()
        );
        assert_eq!(code, Some(0), "{args:?}");
        let text =
            std::fs::read_to_string(dir.path("trace.json")).unwrap_or_else(|e| panic!("{e}"));
        let trace = parse(&text, "the 2 GiB trace");
        let [req] = trace.http_requests.as_slice() else {
            panic!("one request expected:\n{}", dump(&trace));
        };
        assert_eq!(req.resp_content_len, GIB2, "{}", dump(&trace));
        if !extra.is_empty() {
            let ops = trace.net_trace.tcp_conns[0]
                .socket_trace
                .as_ref()
                .map_or(0, |s| s.socket_ops.len());
            eprintln!("  {ops} socket operations recorded");
            assert!(ops > 100, "{}", dump(&trace));
        }
        assert!(
            rss < MAX_RSS_KIB,
            "{args:?}: peak RSS {rss} KiB, over {MAX_RSS_KIB} KiB"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn save_body_writes_exactly_the_bytes_served() {
    let chunk = noise((1 << 20) + 7);
    let server = StreamServer::start(chunk.clone(), 5).await;
    let dir = TempDir::new("cli-body-save");
    let body = dir.path("body.bin").display().to_string();
    let url = server.url("/file");
    let out = nettrace(&["get", &url, "--save-body", &body]).await;
    assert_eq!(out.code, Some(0), "{out:?}");
    let trace = parse(&out.stdout, "stdout");
    let saved = std::fs::read(&body).unwrap_or_else(|e| panic!("{e}"));
    let expected = chunk.repeat(5);
    assert_eq!(saved.len(), expected.len());
    assert!(
        saved == expected,
        "the saved body differs from the one served"
    );
    assert_eq!(
        trace.http_requests[0].resp_content_len,
        expected.len() as u64
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn save_body_dash_writes_the_body_to_stdout_and_the_trace_elsewhere() {
    let chunk = noise(100_003);
    let server = StreamServer::start(chunk.clone(), 3).await;
    let url = server.url("/");
    // Without -o: the trace goes to standard error.
    let out = nettrace_bytes(&["get", &url, "--save-body", "-"]).await;
    assert_eq!(out.0, Some(0), "stderr: {}", out.2);
    assert!(
        out.1 == chunk.repeat(3),
        "stdout is the body, and only the body"
    );
    let trace = parse(&out.2, "stderr");
    assert_eq!(trace.http_requests.len(), 1);
    // With -o FILE: the trace goes there.
    let dir = TempDir::new("cli-body-dash");
    let file = dir.path("trace.json").display().to_string();
    let out = nettrace_bytes(&["get", &url, "--save-body", "-", "-o", &file]).await;
    assert_eq!(out.0, Some(0), "stderr: {}", out.2);
    assert!(out.1 == chunk.repeat(3));
    let text = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(parse(&text, "trace file").http_requests.len(), 1);
    // Both on standard output: refused.
    let out = nettrace(&["get", &url, "--save-body", "-", "-o", "-"]).await;
    assert_eq!(out.code, Some(2), "{out:?}");
    assert!(out.stderr.contains("-o FILE"), "{}", out.stderr);
}

/// `nettrace get URL --save-body - -o trace.json | head -c 1000`: the reader goes away; the
/// transfer ends, the trace is written (the body recorded as given up), the exit code is 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_stdout_ends_the_body_quietly_and_the_trace_is_still_written() {
    // Large enough (64 MiB) that the transfer cannot end before the reader goes away.
    let server = StreamServer::start(noise(1 << 20), 64).await;
    let dir = TempDir::new("cli-body-pipe");
    let file = dir.path("trace.json").display().to_string();
    let url = server.url("/");
    let args = ["get", url.as_str(), "--save-body", "-", "-o", file.as_str()];
    let (code, stderr) = read_a_little_then_close(&args).await;
    assert_eq!(code, Some(0), "stderr: {stderr}");
    assert!(
        !stderr.contains("panicked") && !stderr.contains("Broken pipe"),
        "{stderr}"
    );
    let text = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{e}"));
    let trace = parse(&text, "trace file");
    let req = &trace.http_requests[0];
    assert_eq!(
        req.req_error,
        "canceled while reading the response body",
        "{}",
        dump(&trace)
    );
    assert!(req.resp_content_len < 64 << 20, "{}", dump(&trace));
}

/// `nettrace get URL --repeat 300 | head -1`: the trace is far larger than a pipe buffer; the
/// reader goes away after one line and nettrace ends quietly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_stdout_ends_the_trace_quietly() {
    let server = StreamServer::start(b"hello".to_vec(), 1).await;
    let url = server.url("/");
    let args = ["get", url.as_str(), "--repeat", "300", "--no-keepalive"];
    let (code, stderr) = read_a_little_then_close(&args).await;
    assert_eq!(code, Some(0), "stderr: {stderr}");
    assert!(
        !stderr.contains("panicked") && !stderr.contains("Broken pipe"),
        "{stderr}"
    );
}

/// Runs `nettrace <args>`, reads one line of its standard output and closes it; returns the
/// exit code and standard error.
async fn read_a_little_then_close(args: &[&str]) -> (Option<i32>, String) {
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        let mut child = Command::new(env!("CARGO_BIN_EXE_nettrace"))
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{e}"));
        let stdout = child.stdout.take().unwrap_or_else(|| panic!("no stdout"));
        let mut first = Vec::new();
        BufReader::new(stdout)
            .take(1000)
            .read_until(b'\n', &mut first)
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(!first.is_empty());
        // The reader is dropped here: the pipe closes.
        let deadline = Instant::now() + Duration::from_secs(60);
        let status = loop {
            if let Some(status) = child.try_wait().unwrap_or_else(|e| panic!("{e}")) {
                break status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("nettrace did not end");
            }
            // A timeout guard on another process, not synchronisation.
            std::thread::sleep(Duration::from_millis(10));
        };
        let mut stderr = String::new();
        if let Some(mut err) = child.stderr.take() {
            err.read_to_string(&mut stderr)
                .unwrap_or_else(|e| panic!("{e}"));
        }
        (status.code(), stderr)
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"))
}

/// Runs `nettrace <args>` and returns its output as text.
async fn nettrace(args: &[&str]) -> CommandOutput {
    let mut command = Command::new(env!("CARGO_BIN_EXE_nettrace"));
    command.args(args);
    tokio::task::spawn_blocking(move || scenario::run_command(command, Duration::from_secs(60)))
        .await
        .unwrap_or_else(|e| panic!("the runner panicked: {e}"))
}

/// Runs `nettrace <args>`; returns the exit code, standard output as bytes, standard error.
async fn nettrace_bytes(args: &[&str]) -> (Option<i32>, Vec<u8>, String) {
    let run = tokio::process::Command::new(env!("CARGO_BIN_EXE_nettrace"))
        .args(args)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(60), run)
        .await
        .unwrap_or_else(|_| panic!("nettrace {args:?} still running after 60 s: killed"))
        .unwrap_or_else(|e| panic!("{e}"));
    (
        out.status.code(),
        out.stdout,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
