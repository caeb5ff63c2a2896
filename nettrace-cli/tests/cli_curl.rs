//! `nettrace get` with curl's habits, through the binary against the loopback server's
//! `/echo` (which answers with the request body and describes the request in `x-echo-*`
//! headers, recorded in the trace with `--headers values`): -d/--data makes a POST unless -X
//! is given, `@file` reads a file (`@-` standard input) without CR/LF for --data and byte for
//! byte for --data-binary, a URL without a scheme is http://, and a zero time limit is none.
use std::{process::Stdio, time::Duration};

use nettrace::model::{HttpHeader, HttpReqTrace, HttpTrace};
use nettrace_tests::fixtures::http::HttpServer;
use nettrace_tests::scenario::{self, TempDir, check_trace, dump};
use tokio::io::AsyncWriteExt;

/// The longest one run of the binary may take.
const LIMIT: Duration = Duration::from_secs(30);

/// What one run gave: exit code, the body it saved, the trace, standard error.
struct Run {
    code: Option<i32>,
    body: Vec<u8>,
    trace: Option<HttpTrace>,
    stderr: String,
}

impl Run {
    /// The one request of the trace.
    fn request(&self) -> &HttpReqTrace {
        let trace = self
            .trace
            .as_ref()
            .unwrap_or_else(|| panic!("no trace; stderr: {}", self.stderr));
        let [req] = trace.http_requests.as_slice() else {
            panic!("one request expected:\n{}", dump(trace));
        };
        req
    }

    /// A response header the echo set (`x-echo-method`, `x-echo-header-content-type`, ...).
    fn echoed(&self, name: &str) -> Option<String> {
        header(&self.request().resp_header, name)
    }
}

fn header(header: &HttpHeader, name: &str) -> Option<String> {
    header.get(name).map(|kv| kv.field_val.clone())
}

/// `nettrace get <args> --headers values --save-body DIR/body -o DIR/trace.json`, with
/// `stdin` as its standard input.
async fn nettrace(dir: &TempDir, args: &[&str], stdin: Option<&[u8]>) -> Run {
    let body = dir.path("body");
    let trace = dir.path("trace.json");
    let _ = std::fs::remove_file(&body);
    let _ = std::fs::remove_file(&trace);
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_nettrace"))
        .args(args)
        .args(["--headers", "values", "--save-body"])
        .arg(&body)
        .arg("-o")
        .arg(&trace)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("spawning nettrace: {e}"));
    if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(input)
            .await
            .unwrap_or_else(|e| panic!("writing stdin: {e}"));
        // Dropped: standard input ends.
    }
    let out = tokio::time::timeout(LIMIT, child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("nettrace {args:?} still running after {LIMIT:?}: killed"))
        .unwrap_or_else(|e| panic!("{e}"));
    let trace = std::fs::read_to_string(&trace).ok().map(|text| {
        let trace: HttpTrace =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("not a JSON trace ({e})"));
        check_trace(&trace);
        trace
    });
    Run {
        code: out.status.code(),
        body: std::fs::read(&body).unwrap_or_default(),
        trace,
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

async fn setup(tag: &str) -> (HttpServer, TempDir) {
    (scenario::plain_server().await, TempDir::new(tag))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_makes_a_form_post_unless_x_says_otherwise() {
    let (server, dir) = setup("curl-data").await;
    let url = server.url("/echo");
    let run = nettrace(&dir, &["get", &url, "-d", "a=1", "-d", "b=2"], None).await;
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_eq!(run.request().req_method, "POST");
    assert_eq!(run.echoed("x-echo-method").as_deref(), Some("POST"));
    assert_eq!(run.body, b"a=1&b=2", "the parts joined with '&'");
    assert_eq!(
        run.echoed("x-echo-header-content-type").as_deref(),
        Some("application/x-www-form-urlencoded")
    );

    let run = nettrace(&dir, &["get", &url, "-X", "PUT", "-d", "x"], None).await;
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_eq!(run.echoed("x-echo-method").as_deref(), Some("PUT"));
    assert_eq!(run.body, b"x");

    // A content type given with -H wins.
    let run = nettrace(
        &dir,
        &[
            "get",
            &url,
            "--data-raw",
            "{}",
            "-H",
            "Content-Type: application/json",
        ],
        None,
    )
    .await;
    assert_eq!(
        run.echoed("x-echo-header-content-type").as_deref(),
        Some("application/json")
    );

    // Without a body: GET.
    let run = nettrace(&dir, &["get", &url], None).await;
    assert_eq!(run.echoed("x-echo-method").as_deref(), Some("GET"));
    assert!(run.body.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_file_loses_cr_lf_and_data_binary_file_keeps_every_byte() {
    let (server, dir) = setup("curl-files").await;
    let url = server.url("/echo");
    let contents: &[u8] = b"name=a\r\nb=\x00\xff\n\rend\n";
    let file = dir.path("input.bin");
    std::fs::write(&file, contents).unwrap_or_else(|e| panic!("{e}"));
    let at_file = format!("@{}", file.display());

    let run = nettrace(&dir, &["get", &url, "-d", &at_file], None).await;
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_eq!(run.body, b"name=ab=\x00\xffend");
    assert_eq!(run.request().req_content_len, run.body.len() as u64);

    let run = nettrace(&dir, &["get", &url, "--data-binary", &at_file], None).await;
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_eq!(run.body, contents);
    assert_eq!(run.echoed("x-echo-method").as_deref(), Some("POST"));

    // `@-`: standard input, the same two ways.
    let run = nettrace(&dir, &["get", &url, "--data-binary", "@-"], Some(contents)).await;
    assert_eq!(run.body, contents, "{}", run.stderr);
    let run = nettrace(
        &dir,
        &["get", &url, "-d", "@-", "-d", "z=9"],
        Some(contents),
    )
    .await;
    assert_eq!(run.body, b"name=ab=\x00\xffend&z=9", "{}", run.stderr);

    // A file that cannot be read: a usage error, nothing sent.
    let run = nettrace(&dir, &["get", &url, "-d", "@/no/such/file"], None).await;
    assert_eq!(run.code, Some(2), "{}", run.stderr);
    assert!(run.stderr.contains("/no/such/file"), "{}", run.stderr);
    assert_eq!(server.requests().get(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_url_without_scheme_is_http() {
    let (server, dir) = setup("curl-scheme").await;
    let url = format!("localhost:{}/echo", server.addr().port());
    let run = nettrace(&dir, &["get", &url], None).await;
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_eq!(run.request().req_url, format!("http://{url}"));
    assert_eq!(run.request().resp_status_code, 200);
    let trace = run.trace.as_ref().unwrap_or_else(|| panic!("no trace"));
    assert_eq!(trace.net_trace.description, format!("GET http://{url}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zero_time_limits_mean_none_and_negative_or_nan_are_usage_errors() {
    let (server, dir) = setup("curl-timeouts").await;
    let url = server.url("/slow-headers/300");
    let zero = [
        "--timeout",
        "0",
        "--connect-timeout",
        "0",
        "--tls-timeout",
        "0",
    ];
    let mut args = vec!["get", url.as_str()];
    args.extend(zero);
    let run = nettrace(&dir, &args, None).await;
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_eq!(run.request().resp_status_code, 200);
    // A small limit still applies.
    let run = nettrace(&dir, &["get", &url, "--timeout", "0.05"], None).await;
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    assert!(
        run.request().req_error.contains("timed out"),
        "{}",
        run.stderr
    );
    for option in ["--timeout", "--connect-timeout", "--tls-timeout"] {
        for value in ["-1", "NaN", "-0.5", "soon"] {
            let run = nettrace(&dir, &["get", &url, option, value], None).await;
            assert_eq!(run.code, Some(2), "{option} {value}: {}", run.stderr);
            assert!(run.trace.is_none(), "{option} {value}: a trace was written");
            assert!(
                run.stderr.contains(option),
                "{option} {value}: {}",
                run.stderr
            );
        }
    }
}
