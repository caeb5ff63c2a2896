//! `--otlp` against a real OpenTelemetry collector: `rotel-agent` (PyPI package `rotel`),
//! started by the test on loopback ports with its debug log printing every span received
//! (OTLP/HTTP, and gRPC with `--otlp-protocol grpc` or `OTEL_EXPORTER_OTLP_PROTOCOL=grpc`).
//! The spans of a traced request must arrive with their parent/child structure, their
//! attributes and the resource attributes; an unreachable collector is a clear error with
//! the JSON still written.
//!
//! Without `rotel-agent` (on PATH, in the `rotel` Python package, or named by
//! `$NETTRACE_ROTEL_AGENT`), the collector test prints `SKIPPED` with the install command.
use std::{
    collections::HashMap,
    net::{Ipv4Addr, TcpListener, TcpStream},
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use nettrace::model::HttpTrace;
use nettrace_tests::fixtures::tls::{LeafKind, ServerTlsOptions};
use nettrace_tests::scenario::{self, CommandOutput, EXAMPLE_HOST, TempDir};

/// The longest one run of the binary may take.
const LIMIT: Duration = Duration::from_secs(30);
/// How long the collector may take to listen, and to print what it received.
const COLLECTOR_WAIT: Duration = Duration::from_secs(15);

async fn nettrace(args: Vec<String>) -> CommandOutput {
    nettrace_with_env(args, &[]).await
}

async fn nettrace_with_env(args: Vec<String>, env: &[(&str, &str)]) -> CommandOutput {
    let mut command = Command::new(env!("CARGO_BIN_EXE_nettrace"));
    command.args(args).env_remove("OTEL_EXPORTER_OTLP_PROTOCOL");
    command.envs(env.iter().copied());
    tokio::task::spawn_blocking(move || scenario::run_command(command, LIMIT))
        .await
        .unwrap_or_else(|e| panic!("the runner panicked: {e}"))
}

/// Where `rotel-agent` is, if installed.
fn rotel_agent() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("NETTRACE_ROTEL_AGENT") {
        return Some(path.into());
    }
    let on_path = Command::new("rotel-agent")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if on_path {
        return Some("rotel-agent".into());
    }
    // pip installs the binary inside the package.
    let out = Command::new("python3")
        .args([
            "-c",
            "import os, rotel; print(os.path.join(os.path.dirname(rotel.__file__), 'rotel-agent'))",
        ])
        .output()
        .ok()?;
    let path = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    (out.status.success() && path.is_file()).then_some(path)
}

/// A free loopback port (bound, then released).
fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("no free port: {e}"))
}

/// A running collector, killed when dropped.
struct Collector {
    child: Child,
    log: PathBuf,
    http_port: u16,
    grpc_port: u16,
    _dir: TempDir,
}

impl Collector {
    fn start(agent: &PathBuf) -> Self {
        let dir = TempDir::new("rotel");
        let log = dir.path("rotel.log");
        let (http_port, grpc_port) = (free_port(), free_port());
        let file = std::fs::File::create(&log).unwrap_or_else(|e| panic!("log: {e}"));
        let err = file.try_clone().unwrap_or_else(|e| panic!("log: {e}"));
        let child = Command::new(agent)
            .args(["start", "--otlp-http-endpoint"])
            .arg(format!("127.0.0.1:{http_port}"))
            .arg("--otlp-grpc-endpoint")
            .arg(format!("127.0.0.1:{grpc_port}"))
            .args(["--exporter", "blackhole", "--debug-log", "traces"])
            .args(["--debug-log-verbosity", "detailed", "--pid-file"])
            .arg(dir.path("rotel.pid"))
            .stdin(Stdio::null())
            .stdout(file)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", agent.display()));
        let collector = Self {
            child,
            log,
            http_port,
            grpc_port,
            _dir: dir,
        };
        let deadline = Instant::now() + COLLECTOR_WAIT;
        for port in [http_port, grpc_port] {
            while TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_err() {
                assert!(
                    Instant::now() < deadline,
                    "the collector does not listen on {port}: {}",
                    collector.output()
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        collector
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.http_port)
    }

    fn grpc_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.grpc_port)
    }

    fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The spans printed, once `done` holds for them (bounded wait).
    fn spans_when(&self, done: impl Fn(&[Span]) -> bool) -> (Vec<Span>, String) {
        let deadline = Instant::now() + COLLECTOR_WAIT;
        loop {
            let text = self.output();
            let spans = parse_spans(&text);
            if done(&spans) || Instant::now() >= deadline {
                return (spans, text);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One span of the collector's debug log.
#[derive(Debug, Default)]
struct Span {
    trace_id: String,
    parent: String,
    id: String,
    name: String,
    kind: String,
    status: String,
    /// Start and end, ns since the Unix epoch.
    start_ns: u64,
    end_ns: u64,
    attrs: HashMap<String, String>,
}

/// Reads rotel's detailed debug log: `Span #n` blocks of `Key : value` lines, attributes
/// as `-> key: Type(value)` up to `Events:`.
fn parse_spans(text: &str) -> Vec<Span> {
    let mut spans = Vec::new();
    let mut current: Option<Span> = None;
    let mut in_attrs = false;
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with("Span #") {
            spans.extend(current.take());
            current = Some(Span::default());
            in_attrs = false;
            continue;
        }
        if trimmed.starts_with("ResourceSpans #") {
            spans.extend(current.take());
            continue;
        }
        let Some(span) = current.as_mut() else {
            continue;
        };
        if let Some(ns) = trimmed.strip_prefix("Start time:") {
            span.start_ns = ns.trim().parse().unwrap_or_default();
            continue;
        }
        if let Some(ns) = trimmed.strip_prefix("End time:") {
            span.end_ns = ns.trim().parse().unwrap_or_default();
            continue;
        }
        if let Some((key, value)) = trimmed.split_once(" : ").or_else(|| {
            trimmed
                .strip_suffix(':')
                .map(|k| (k, ""))
                .filter(|_| trimmed.ends_with(" :"))
        }) {
            let value = value.trim().to_owned();
            match key.trim() {
                "Trace ID" => span.trace_id = value,
                "Parent ID" => span.parent = value,
                "ID" => span.id = value,
                "Name" => span.name = value,
                "Kind" => span.kind = value,
                "Status code" => span.status = value,
                _ => {}
            }
            continue;
        }
        match trimmed {
            "Attributes:" => in_attrs = true,
            "Events:" | "Links:" => in_attrs = false,
            _ if in_attrs => {
                if let Some((key, value)) = trimmed
                    .strip_prefix("-> ")
                    .and_then(|kv| kv.split_once(": "))
                {
                    span.attrs.insert(key.to_owned(), value.to_owned());
                }
            }
            _ => {}
        }
    }
    spans.extend(current);
    spans
}

/// A running collector, or `None` after saying loudly that `test` is skipped without one.
async fn start_collector(test: &str) -> Option<Collector> {
    let Some(agent) = rotel_agent() else {
        nettrace_tests::skip(test, "needs rotel-agent (pip install rotel)");
        return None;
    };
    let collector = tokio::task::spawn_blocking(move || Collector::start(&agent))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    Some(collector)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_spans_of_a_traced_request_reach_a_real_collector() {
    let Some(collector) =
        start_collector("the_spans_of_a_traced_request_reach_a_real_collector").await
    else {
        return;
    };
    let pki = scenario::pki();
    let server = scenario::https_server(&pki, LeafKind::Valid, &ServerTlsOptions::h1()).await;
    let dns = scenario::example_dns().await;
    let dir = TempDir::new("otlp");
    dir.write("ca.pem", pki.ca_pem());
    let url = server.url_with_host(EXAMPLE_HOST, "/redirect/1");
    let args = vec![
        "get".to_owned(),
        url.clone(),
        "--nameserver".to_owned(),
        dns.addr().to_string(),
        "--cacert".to_owned(),
        dir.path("ca.pem").display().to_string(),
        "--dns-trace".to_owned(),
        "--sock-trace".to_owned(),
        "--otlp".to_owned(),
        collector.url(),
        "--otlp-service-name".to_owned(),
        "probe".to_owned(),
        "--otlp-device-id".to_owned(),
        "device-7".to_owned(),
    ];
    let out = nettrace(args).await;
    assert_eq!(out.code, Some(0), "{out:?}");
    let trace: HttpTrace = serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(trace.http_requests.len(), 2, "a redirect and its target");

    let (spans, log) = tokio::task::spawn_blocking(move || {
        let found = collector.spans_when(|spans| spans.len() >= 9);
        drop(collector);
        found
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let roots: Vec<_> = spans.iter().filter(|s| s.parent.is_empty()).collect();
    assert_eq!(roots.len(), 1, "one request, one root span:\n{log}");
    let root = roots[0];
    assert_eq!(root.name, "GET");
    assert_eq!(root.kind, "SPAN_KIND_CLIENT");
    assert_eq!(
        root.attrs.get("url.full"),
        Some(&format!("Str({url})")),
        "{log}"
    );
    assert_eq!(
        root.attrs.get("http.request.method").map(String::as_str),
        Some("Str(GET)")
    );
    assert_eq!(
        root.attrs
            .get("http.response.status_code")
            .map(String::as_str),
        Some("Int(302)"),
        "{log}"
    );
    assert_eq!(
        root.attrs.get("server.address"),
        Some(&format!("Str({EXAMPLE_HOST})"))
    );
    assert_eq!(
        root.attrs.get("network.peer.address").map(String::as_str),
        Some("Str(127.0.0.1)")
    );
    let children: Vec<&str> = spans
        .iter()
        .filter(|s| s.parent == root.id)
        .map(|s| s.name.as_str())
        .collect();
    for phase in ["dns", "connect", "tls", "send", "wait", "GET"] {
        assert!(
            children.contains(&phase),
            "{phase} under the root: {children:?}\n{log}"
        );
    }
    // Span times keep the trace's precision: the recorder's microseconds (`preciseUs`).
    assert_eq!(
        root.attrs
            .get("nettrace.time_precision")
            .map(String::as_str),
        Some("Str(us)"),
        "{log}"
    );
    let durations: Vec<u64> = spans
        .iter()
        .filter(|s| s.parent == root.id && s.name != "GET")
        .map(|s| s.end_ns.saturating_sub(s.start_ns))
        .collect();
    assert!(
        durations.iter().any(|ns| ns % 1_000_000 != 0),
        "phase durations in whole ms only: {durations:?}\n{log}"
    );
    assert!(
        spans
            .iter()
            .all(|s| s.start_ns > 0 && s.end_ns >= s.start_ns),
        "{log}"
    );
    assert!(
        spans.iter().all(|s| s.trace_id == root.trace_id),
        "one trace:\n{log}"
    );
    // The redirect's target: a child request with its own phases.
    let hop = spans
        .iter()
        .find(|s| s.parent == root.id && s.name == "GET")
        .unwrap_or_else(|| panic!("no child request:\n{log}"));
    assert_eq!(
        hop.attrs
            .get("http.response.status_code")
            .map(String::as_str),
        Some("Int(200)")
    );
    assert!(
        spans.iter().any(|s| s.parent == hop.id && s.name == "wait"),
        "{log}"
    );
    let tls = spans.iter().find(|s| s.name == "tls").expect("tls span");
    assert_eq!(
        tls.attrs.get("tls.server.name"),
        Some(&format!("Str({EXAMPLE_HOST})"))
    );
    // Resource attributes.
    assert!(log.contains("service.name: Str(probe)"), "{log}");
    assert!(log.contains("device.id: Str(device-7)"), "{log}");
    assert!(log.contains("host.name: Str("), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_reach_the_collector_over_grpc_by_flag_or_environment() {
    let Some(collector) =
        start_collector("spans_reach_the_collector_over_grpc_by_flag_or_environment").await
    else {
        return;
    };
    let server = scenario::plain_server().await;
    let args = |path: &str| {
        vec![
            "get".to_owned(),
            server.url(path),
            "--otlp".to_owned(),
            collector.grpc_url(),
        ]
    };
    let mut by_flag = args("/?by=flag");
    by_flag.extend(["--otlp-protocol".to_owned(), "grpc".to_owned()]);
    let out = nettrace(by_flag).await;
    assert_eq!(out.code, Some(0), "{out:?}");
    // The SDKs' environment: protocol, service name, more resource attributes, and a
    // header sent as gRPC metadata.
    let env = [
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
        ("OTEL_SERVICE_NAME", "from-env"),
        (
            "OTEL_RESOURCE_ATTRIBUTES",
            "deployment.environment=ci%20run",
        ),
        ("OTEL_EXPORTER_OTLP_HEADERS", "x-tenant=t1"),
    ];
    let out = nettrace_with_env(args("/?by=env"), &env).await;
    assert_eq!(out.code, Some(0), "{out:?}");
    let (by_flag, by_env) = (server.url("/?by=flag"), server.url("/?by=env"));
    let (spans, log) = tokio::task::spawn_blocking(move || {
        let found =
            collector.spans_when(|spans| spans.iter().filter(|s| s.parent.is_empty()).count() >= 2);
        drop(collector);
        found
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    for url in [by_flag, by_env] {
        let root = spans
            .iter()
            .find(|s| {
                s.parent.is_empty() && s.attrs.get("url.full") == Some(&format!("Str({url})"))
            })
            .unwrap_or_else(|| panic!("no span of {url}:\n{log}"));
        assert_eq!(root.name, "GET");
        assert!(
            spans
                .iter()
                .any(|s| s.parent == root.id && s.name == "wait"),
            "{log}"
        );
    }
    assert!(log.contains("service.name: Str(from-env)"), "{log}");
    assert!(log.contains("deployment.environment: Str(ci run)"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_collector_is_reported_and_the_json_still_written() {
    let server = scenario::plain_server().await;
    let port = free_port();
    let out = nettrace(vec![
        "get".to_owned(),
        server.url("/"),
        "--otlp".to_owned(),
        format!("http://127.0.0.1:{port}"),
    ])
    .await;
    assert_eq!(out.code, Some(1), "{out:?}");
    let trace: HttpTrace = serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(trace.http_requests.len(), 1);
    assert!(
        out.stderr
            .contains(&format!("OTLP export to http://127.0.0.1:{port}/v1/traces")),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("0 of "), "{}", out.stderr);
}
