//! `nettrace show FILE` end to end: the Go README example in both formats, and bad input.
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

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
    for label in ["dns", "connect", "request", "response"] {
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
