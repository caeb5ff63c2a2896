//! `nettrace explain` end to end: a trace written by `nettrace get -o` against a loopback
//! fixture, explained as text and as JSON; the findings at the end of `get`'s waterfall; a
//! Go-written trace; and unreadable input.
//!
//! Exit codes of `explain`: 0 without an error finding, 1 with one, 2 when the file cannot be
//! read.
use std::process::Command;
use std::time::Duration;

use nettrace::model::HttpTrace;
use nettrace_tests::fixtures::broken::RefusingPort;
use nettrace_tests::fixtures::dns::{Behaviour, Zone};
use nettrace_tests::fixtures::net::V4;
use nettrace_tests::scenario::{self, CommandOutput, TempDir};
use serde_json::Value;

/// The longest one run of the binary may take.
const LIMIT: Duration = Duration::from_secs(20);

/// Runs `nettrace <args>` off the runtime's threads (the fixtures keep serving meanwhile).
async fn nettrace<I, S>(args: I) -> CommandOutput
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let mut command = Command::new(env!("CARGO_BIN_EXE_nettrace"));
    command.args(args);
    tokio::task::spawn_blocking(move || scenario::run_command(command, LIMIT))
        .await
        .unwrap_or_else(|e| panic!("the runner panicked: {e}"))
}

/// Reads the trace file `get -o` wrote.
fn read_trace(path: &std::path::Path) -> HttpTrace {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("not a trace ({e}):\n{text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explain_of_a_get_trace_names_the_nxdomain_and_its_records() {
    let dns = scenario::dns_with(Zone::new().behaviour("gone.test", Behaviour::NxDomain)).await;
    let dir = TempDir::new("cli-explain");
    let file = dir.path("trace.json");
    let ns = dns.addr().to_string();
    let file_arg = file.display().to_string();
    let out = nettrace([
        "get",
        "http://gone.test:8080/",
        "--nameserver",
        &ns,
        "--dns-trace",
        "-o",
        &file_arg,
    ])
    .await;
    assert_eq!(out.code, Some(1), "{out:?}");
    let trace = read_trace(&file);
    let dial = &trace.net_trace.dials[0];
    let req = &trace.http_requests[0];

    let text = nettrace(["explain", &file_arg]).await;
    assert_eq!(text.code, Some(1), "an error finding: {text:?}");
    let first = text.stdout.lines().next().unwrap_or_default();
    assert!(
        first.starts_with("verdict: FAILED") && first.contains("gone.test"),
        "{}",
        text.stdout
    );
    assert!(
        text.stdout.contains("1. error dns-nxdomain: "),
        "{}",
        text.stdout
    );
    assert!(
        text.stdout.contains(&format!("dial {}", dial.trace_id))
            && text.stdout.contains(&format!("request {}", req.trace_id)),
        "evidence with record kinds: {}",
        text.stdout
    );
    assert!(text.stdout.contains("   next: "), "{}", text.stdout);

    let json = nettrace(["explain", "--format", "json", &file_arg]).await;
    assert_eq!(json.code, Some(1), "{json:?}");
    let findings: Value = serde_json::from_str(&json.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", json.stdout));
    let first = &findings[0];
    assert_eq!(first["code"], "dns-nxdomain", "{findings:#}");
    assert_eq!(first["severity"], "error");
    assert!(
        first["summary"]
            .as_str()
            .is_some_and(|s| s.contains("gone.test"))
    );
    let evidence: Vec<&str> = first["evidence"]
        .as_array()
        .unwrap_or_else(|| panic!("{first:#}"))
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        evidence.contains(&dial.trace_id.as_str()) && evidence.contains(&req.trace_id.as_str()),
        "{first:#}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_waterfall_of_get_ends_with_the_findings() {
    let refusing = RefusingPort::new(V4).unwrap_or_else(|e| panic!("{e:?}"));
    let url = format!("http://{}/", refusing.addr());
    let out = nettrace(["get", &url, "--format", "waterfall"]).await;
    assert_eq!(out.code, Some(1), "{out:?}");
    let verdict = out
        .stdout
        .find("verdict: FAILED")
        .unwrap_or_else(|| panic!("no verdict: {}", out.stdout));
    let connect = out
        .stdout
        .find("connect")
        .unwrap_or_else(|| panic!("no waterfall: {}", out.stdout));
    assert!(
        connect < verdict,
        "the findings come after the waterfall: {}",
        out.stdout
    );
    assert!(out.stdout.contains("error tcp-refused: "), "{}", out.stdout);

    // A healthy request: the verdict is OK and there is no finding.
    let server = scenario::plain_server().await;
    let out = nettrace(["get", &server.url("/"), "--format", "waterfall"]).await;
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(out.stdout.contains("verdict: OK"), "{}", out.stdout);
    assert!(!out.stdout.contains("1. "), "{}", out.stdout);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explain_reads_go_traces_and_refuses_what_is_no_trace() {
    let golden = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/golden/go_readme_example.json"
    );
    let out = nettrace(["explain", golden]).await;
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(out.stdout.starts_with("verdict: OK"), "{}", out.stdout);
    // Go's example has conntrack entries with a translated source.
    assert!(out.stdout.contains("info nat: "), "{}", out.stdout);
    let failed = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/golden/failed_tls.json");
    let out = nettrace(["explain", "--format", "json", failed]).await;
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(
        out.stdout.contains("\"code\": \"tls-unknown-ca\""),
        "{}",
        out.stdout
    );
    // `show` puts the same diagnosis after its waterfall and on top of its HTML report.
    let out = nettrace(["show", failed]).await;
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(
        out.stdout.contains("verdict: FAILED") && out.stdout.contains("error tls-unknown-ca: "),
        "{}",
        out.stdout
    );
    let out = nettrace(["show", "--format", "html", failed]).await;
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(out.stdout.contains("tls-unknown-ca"), "{}", out.stdout);
    assert!(
        !out.stdout.contains("No diagnosis was made"),
        "{}",
        out.stdout
    );
    let dir = TempDir::new("cli-explain-bad");
    let bad = dir.write("bad.json", "{\"dials\": 7}");
    let out = nettrace(["explain", &bad.display().to_string()]).await;
    assert_eq!(out.code, Some(2), "{out:?}");
    assert!(out.stderr.contains("not a nettrace trace"), "{out:?}");
    let out = nettrace(["explain", "/nonexistent/trace.json"]).await;
    assert_eq!(out.code, Some(2), "{out:?}");
}
