//! `nettrace show FILE` end to end: the Go README example in both formats, and bad input.
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nettrace::model::HttpTrace;
use nettrace_tests::scenario::{self, CommandOutput, TempDir};

const LIMIT: Duration = Duration::from_secs(20);

fn nettrace(args: &[&str]) -> CommandOutput {
    let mut command = Command::new(env!("CARGO_BIN_EXE_nettrace"));
    command.args(args);
    scenario::run_command(command, LIMIT)
}

fn readme_example() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden/go_readme_example.json")
}

#[test]
fn show_json_reemits_the_go_readme_example_unchanged() {
    let path = readme_example();
    let original = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{e}"));
    let out = nettrace(&["show", &path.display().to_string(), "--format", "json"]);
    assert_eq!(out.code, Some(0), "{out:?}");
    assert_eq!(out.stdout, original, "not re-emitted byte for byte");
}

#[test]
fn show_waterfall_of_the_go_readme_example() {
    let path = readme_example();
    let out = nettrace(&["show", &path.display().to_string()]);
    assert_eq!(out.code, Some(0), "{out:?}");
    let text = &out.stdout;
    let trace: HttpTrace =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{e}")))
            .unwrap_or_else(|e| panic!("{e}"));
    assert!(text.contains(&trace.net_trace.description), "{text}");
    assert!(text.contains("www.google.com"), "{text}");
    let step = |label: &str| text.lines().any(|l| l.trim_start().starts_with(label));
    for label in ["dns", "connect", "tls", "wait", "transfer", "summary"] {
        assert!(step(label), "no {label} line in\n{text}");
    }
    assert!(text.contains("142.251.36.132"), "the DNS answer: {text}");
    assert!(text.contains("200"), "{text}");
}

/// Go traces before the `tlsTunnel` field of `httpRequests` (such as the README example) link
/// the handshake to the request only through the TCP connection; the waterfall must still show
/// it.
#[test]
fn show_waterfall_of_the_go_readme_example_includes_its_tls_handshake() {
    let path = readme_example();
    let out = nettrace(&["show", &path.display().to_string()]);
    assert_eq!(out.code, Some(0), "{out:?}");
    let text = &out.stdout;
    assert!(
        text.lines().any(|l| l.trim_start().starts_with("tls")),
        "no tls line in\n{text}"
    );
    assert!(text.contains("h2"), "the negotiated protocol: {text}");
}

#[test]
fn show_rejects_a_missing_file_and_non_traces_with_exit_2() {
    let dir = TempDir::new("cli-show");
    let missing = dir.path("missing.json").display().to_string();
    let not_json = dir
        .write("text.json", "this is not JSON")
        .display()
        .to_string();
    let not_trace = dir
        .write("list.json", r#"{"dials": "should be a list"}"#)
        .display()
        .to_string();
    for file in [missing, not_json, not_trace] {
        let out = nettrace(&["show", &file]);
        assert_eq!(out.code, Some(2), "{file}: {out:?}");
        assert!(out.stdout.is_empty(), "{file}: {}", out.stdout);
        assert!(out.stderr.contains("nettrace"), "{file}: {}", out.stderr);
    }
    let out = nettrace(&["show"]);
    assert_eq!(out.code, Some(2), "{out:?}");
}

#[test]
fn show_dash_reads_the_trace_from_standard_input() {
    let path = readme_example();
    let original = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{e}"));
    let mut child = Command::new(env!("CARGO_BIN_EXE_nettrace"))
        .args(["show", "-", "--format", "json"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{e}"));
    let mut stdin = child.stdin.take().unwrap_or_else(|| panic!("no stdin"));
    stdin
        .write_all(original.as_bytes())
        .unwrap_or_else(|e| panic!("{e}"));
    drop(stdin);
    let out = child.wait_with_output().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), original);
}

/// `nettrace show /dev/zero` must not read without end: it stops past the documented maximum
/// (256 MiB) with a clear error.
#[test]
fn show_refuses_input_past_its_maximum() {
    let out = nettrace(&["show", "/dev/zero"]);
    assert_eq!(out.code, Some(2), "{out:?}");
    assert!(out.stderr.contains("larger than 256 MiB"), "{}", out.stderr);
}

/// `nettrace show big.json | head -1`: the reader goes away after one line; nettrace ends
/// quietly (no panic, no error) instead of dying of the broken pipe.
#[test]
fn a_closed_stdout_ends_show_quietly() {
    let dir = TempDir::new("cli-show-pipe");
    let original = std::fs::read_to_string(readme_example()).unwrap_or_else(|e| panic!("{e}"));
    let trace: HttpTrace = serde_json::from_str(&original).unwrap_or_else(|e| panic!("{e}"));
    // Many requests, so that the waterfall is far larger than a pipe buffer (64 KiB).
    let mut big = trace.clone();
    let requests = trace.http_requests.clone().into_inner();
    let mut all = Vec::new();
    for _ in 0..2000 {
        all.extend(requests.iter().cloned());
    }
    big.http_requests = all.into();
    let file = dir.write(
        "big.json",
        &serde_json::to_string(&big).unwrap_or_else(|e| panic!("{e}")),
    );
    let mut child = Command::new(env!("CARGO_BIN_EXE_nettrace"))
        .args(["show", &file.display().to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{e}"));
    let stdout = child.stdout.take().unwrap_or_else(|| panic!("no stdout"));
    let mut first = String::new();
    BufReader::new(stdout)
        .read_line(&mut first)
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(!first.is_empty());
    // The reader is dropped here: the pipe closes.
    let deadline = Instant::now() + LIMIT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap_or_else(|e| panic!("{e}")) {
            break status;
        }
        assert!(Instant::now() < deadline, "show did not end");
        std::thread::sleep(Duration::from_millis(10));
    };
    let mut stderr = String::new();
    if let Some(mut err) = child.stderr.take() {
        std::io::Read::read_to_string(&mut err, &mut stderr).unwrap_or_else(|e| panic!("{e}"));
    }
    assert_eq!(status.code(), Some(0), "stderr: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}
