//! `nettrace get --stream`: one JSON line per request as each completes, `--repeat`
//! included; the connection kept alive shows as reused in the later lines.
use std::process::Command;
use std::time::Duration;

use nettrace::model::HttpTrace;
use nettrace_tests::scenario::{self, check_trace};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_prints_one_trace_per_request() {
    let server = scenario::plain_server().await;
    let mut command = Command::new(env!("CARGO_BIN_EXE_nettrace"));
    command.args([
        "get",
        &server.url("/"),
        "--repeat",
        "3",
        "--stream",
        "--sock-trace",
    ]);
    let out = tokio::task::spawn_blocking(move || {
        scenario::run_command(command, Duration::from_secs(20))
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(out.code, Some(0), "{out:?}");
    let traces: Vec<HttpTrace> = out
        .stdout
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect();
    assert_eq!(traces.len(), 3, "{}", out.stdout);
    for (i, trace) in traces.iter().enumerate() {
        check_trace(trace);
        assert_eq!(trace.http_requests.len(), 1, "line {i}");
        let conn = &trace.net_trace.tcp_conns[0];
        assert_eq!(conn.reused, i > 0, "line {i}: {}", out.stdout);
        assert_eq!(trace.net_trace.dials.len(), usize::from(i == 0), "line {i}");
        assert!(
            conn.socket_trace
                .as_ref()
                .is_some_and(|s| !s.socket_ops.is_empty())
        );
    }
    let conn = |i: usize| traces[i].net_trace.tcp_conns[0].trace_id.clone();
    assert_eq!(conn(0), conn(2), "one keep-alive connection");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_to_a_file_keeps_every_line() {
    let server = scenario::plain_server().await;
    let dir = scenario::TempDir::new("cli-stream");
    let file = dir.path("trace.jsonl");
    let mut command = Command::new(env!("CARGO_BIN_EXE_nettrace"));
    command.args(["get", &server.url("/"), "--repeat", "2", "--stream", "-o"]);
    command.arg(&file);
    let out = tokio::task::spawn_blocking(move || {
        scenario::run_command(command, Duration::from_secs(20))
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(out.code, Some(0), "{out:?}");
    let text = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(text.lines().count(), 2, "{text}");
}
