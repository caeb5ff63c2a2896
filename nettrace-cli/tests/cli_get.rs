//! `nettrace get` end to end: the binary against the loopback fixtures (DNS via
//! `--nameserver`, the test CA via `--cacert`), checking exit codes and the trace it prints.
//!
//! Exit codes: 0 when every request got a response, 1 when one failed, 2 on a usage error.
use std::process::Command;
use std::time::Duration;

use nettrace::model::{HttpTrace, TraceId};
use nettrace_tests::fixtures::broken::RefusingPort;
use nettrace_tests::fixtures::dns::DnsServer;
use nettrace_tests::fixtures::http::HttpServer;
use nettrace_tests::fixtures::net::V4;
use nettrace_tests::fixtures::tls::{LeafKind, ServerTlsOptions};
use nettrace_tests::scenario::{self, CommandOutput, EXAMPLE_HOST, TempDir, check_trace, dump};

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

/// Parses one JSON trace and checks its invariants.
fn parse(json: &str, out: &CommandOutput) -> HttpTrace {
    let trace: HttpTrace = serde_json::from_str(json)
        .unwrap_or_else(|e| panic!("not a JSON trace ({e}):\n{json}\nstderr: {}", out.stderr));
    check_trace(&trace);
    trace
}

/// An HTTPS server for example.test, a DNS server, and the test CA as a PEM file.
struct Https {
    server: HttpServer,
    dns: DnsServer,
    dir: TempDir,
}

impl Https {
    async fn start(tls: &ServerTlsOptions) -> Self {
        let pki = scenario::pki();
        let server = scenario::https_server(&pki, LeafKind::Valid, tls).await;
        let dns = scenario::example_dns().await;
        let dir = TempDir::new("cli");
        dir.write("ca.pem", pki.ca_pem());
        Self { server, dns, dir }
    }

    /// `get URL --nameserver DNS --cacert CA` plus `extra`.
    fn args(&self, path: &str, extra: &[&str]) -> Vec<String> {
        let mut args = vec![
            "get".to_owned(),
            self.server.url_with_host(EXAMPLE_HOST, path),
            "--nameserver".to_owned(),
            self.dns.addr().to_string(),
            "--cacert".to_owned(),
            self.dir.path("ca.pem").display().to_string(),
        ];
        args.extend(extra.iter().map(|a| a.to_string()));
        args
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_prints_the_json_trace_and_exits_0() {
    let https = Https::start(&ServerTlsOptions::h2_and_h1()).await;
    let out = nettrace(https.args("/", &["--dns-trace", "--sock-trace", "--http2"])).await;
    assert_eq!(out.code, Some(0), "{out:?}");
    let trace = parse(&out.stdout, &out);
    let url = https.server.url_with_host(EXAMPLE_HOST, "/");
    assert_eq!(trace.net_trace.description, format!("GET {url}"));
    let [req] = trace.http_requests.as_slice() else {
        panic!("one request expected:\n{}", dump(&trace));
    };
    assert_eq!((req.resp_status_code, req.proto_major), (200, 2));
    assert_eq!(req.req_url, url);
    assert!(req.resp_content_len > 0);
    let net = &trace.net_trace;
    assert_eq!(net.dns_queries.len(), 2, "{}", dump(&trace));
    assert_eq!(
        net.dials[0].resolver_dials[0].nameserver,
        https.dns.addr().to_string()
    );
    let [tunnel] = net.tls_tunnels.as_slice() else {
        panic!("one TLS tunnel expected:\n{}", dump(&trace));
    };
    assert_eq!(tunnel.negotiated_proto, "h2");
    assert_eq!(tunnel.server_name, EXAMPLE_HOST);
    assert!(net.tcp_conns.iter().all(|c| c.socket_trace.is_some()));
    assert_eq!(https.server.requests().get(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_request_exits_1_and_still_prints_the_trace() {
    let refusing = RefusingPort::new(V4).unwrap_or_else(|e| panic!("{e:?}"));
    let url = format!("http://{}/", refusing.addr());
    let out = nettrace(["get", url.as_str()]).await;
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(out.stderr.contains("request failed"), "{}", out.stderr);
    let trace = parse(&out.stdout, &out);
    let [req] = trace.http_requests.as_slice() else {
        panic!("one request expected:\n{}", dump(&trace));
    };
    assert!(
        req.req_error.to_lowercase().contains("refused"),
        "{}",
        dump(&trace)
    );
    let [conn] = trace.net_trace.tcp_conns.as_slice() else {
        panic!("one TCP conn expected:\n{}", dump(&trace));
    };
    assert!(!conn.connected);
    assert_eq!(conn.addr_tuple.dst(), Some(refusing.addr()));
}

/// A URL whose port is out of range is a failed request (exit 1, recorded as the request's
/// `reqError`), not a request to port 80.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_port_out_of_range_fails_the_request_with_exit_1() {
    let out = nettrace(["get", "http://127.0.0.1:99999/"]).await;
    assert_eq!(out.code, Some(1), "{out:?}");
    let trace = parse(&out.stdout, &out);
    let [req] = trace.http_requests.as_slice() else {
        panic!("one request expected:\n{}", dump(&trace));
    };
    assert!(req.req_error.contains("invalid port"), "{}", dump(&trace));
    assert!(trace.net_trace.dials.is_empty(), "{}", dump(&trace));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_errors_exit_2() {
    let cases: [&[&str]; 7] = [
        &["get"],
        // The kernel keeps at most 9216 bytes of a packet; 0 would keep nothing.
        &["get", "http://127.0.0.1:1/", "--snaplen", "0"],
        &["get", "http://127.0.0.1:1/", "--snaplen", "100000"],
        &["get", "http://127.0.0.1:1/", "--no-such-option"],
        &[
            "get",
            "http://127.0.0.1:1/",
            "--nameserver",
            "not-an-address",
        ],
        &["get", "http://127.0.0.1:1/", "-H", "no colon here"],
        &["frobnicate"],
    ];
    for args in cases {
        let out = nettrace(args).await;
        assert_eq!(out.code, Some(2), "{args:?}: {out:?}");
        assert!(
            out.stdout.is_empty(),
            "{args:?} printed a trace: {}",
            out.stdout
        );
        assert!(!out.stderr.is_empty(), "{args:?}: no explanation");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waterfall_format_shows_dns_connect_and_tls_steps() {
    let https = Https::start(&ServerTlsOptions::h1()).await;
    let out = nettrace(https.args("/", &["--dns-trace", "--format", "waterfall"])).await;
    assert_eq!(out.code, Some(0), "{out:?}");
    let text = &out.stdout;
    assert!(
        serde_json::from_str::<serde_json::Value>(text).is_err(),
        "JSON, not a waterfall"
    );
    let step = |label: &str| text.lines().any(|l| l.trim_start().starts_with(label));
    for label in ["dns", "connect", "tls", "wait", "transfer", "summary"] {
        assert!(step(label), "no {label} line in\n{text}");
    }
    // The client's own trace holds microseconds: no phase of a loopback request is "0ms".
    assert!(!text.contains("whole milliseconds"), "{text}");
    let summary = text
        .lines()
        .find(|l| l.trim_start().starts_with("summary"))
        .unwrap_or_default();
    assert!(
        summary.contains("µs") && summary.contains("total "),
        "{summary}"
    );
    assert!(text.contains(EXAMPLE_HOST), "{text}");
    assert!(text.contains("-> 200"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeat_with_clear_trace_prints_one_trace_per_request() {
    let server = scenario::plain_server().await;
    let url = server.url("/bytes/7");
    let out = nettrace(["get", url.as_str(), "--repeat", "3", "--clear-trace"]).await;
    assert_eq!(out.code, Some(0), "{out:?}");
    let lines: Vec<&str> = out
        .stdout
        .lines()
        .filter(|l| !l.trim().is_empty())
        .collect();
    assert_eq!(lines.len(), 3, "{}", out.stdout);
    let traces: Vec<HttpTrace> = lines.iter().map(|l| parse(l, &out)).collect();
    let [req] = traces[0].http_requests.as_slice() else {
        panic!("one request per trace:\n{}", dump(&traces[0]));
    };
    let conn: &TraceId = &req.tcp_conn;
    assert_eq!(traces[0].net_trace.dials.len(), 1);
    assert!(!traces[0].net_trace.tcp_conns[0].reused);
    // The connection is back in the pool before the body's end is read, so every later
    // request goes over it: carried over from the first trace (marked reused), no dial.
    for later in &traces[1..] {
        let [req] = later.http_requests.as_slice() else {
            panic!("one request per trace:\n{}", dump(later));
        };
        assert_eq!(req.resp_status_code, 200);
        assert_eq!(&req.tcp_conn, conn, "{}", dump(later));
        let used = later
            .net_trace
            .tcp_conns
            .get(&req.tcp_conn)
            .unwrap_or_else(|| panic!("the connection is missing:\n{}", dump(later)));
        assert!(used.reused, "{}", dump(later));
        assert!(later.net_trace.dials.is_empty(), "{}", dump(later));
    }
    assert!(
        traces
            .windows(2)
            .all(|w| w[0].net_trace.trace_begin_at.as_absolute()
                < w[1].net_trace.trace_begin_at.as_absolute()),
        "each trace begins after the previous one"
    );
    assert_eq!(server.connections().get(), 1);
    assert_eq!(server.requests().get(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn method_headers_and_body_reach_the_server_and_the_trace() {
    let server = scenario::plain_server().await;
    let url = server.url("/echo");
    let out = nettrace([
        "get",
        url.as_str(),
        "-X",
        "PUT",
        "-H",
        "X-Test: one",
        "-H",
        "X-Secret: hidden",
        "-d",
        "hello",
        "--headers",
        "values",
        "--exclude-header",
        "x-secret",
    ])
    .await;
    assert_eq!(out.code, Some(0), "{out:?}");
    let trace = parse(&out.stdout, &out);
    let [req] = trace.http_requests.as_slice() else {
        panic!("one request expected:\n{}", dump(&trace));
    };
    assert_eq!(req.req_method, "PUT");
    assert_eq!(req.req_content_len, 5);
    assert_eq!(req.resp_content_len, 5);
    let value = |header: &nettrace::model::HttpHeader, name: &str| {
        header
            .get(name)
            .map(|kv| (kv.field_val.clone(), kv.field_val_len))
    };
    assert_eq!(
        value(&req.req_header, "X-Test"),
        Some(("one".to_owned(), 3))
    );
    assert_eq!(value(&req.req_header, "X-Secret"), None, "excluded");
    // What the server saw, as it echoed it back (recorded as response headers).
    assert_eq!(
        value(&req.resp_header, "X-Echo-Method"),
        Some(("PUT".to_owned(), 3))
    );
    assert_eq!(
        value(&req.resp_header, "X-Echo-Header-X-Test"),
        Some(("one".to_owned(), 3))
    );
    assert_eq!(
        value(&req.resp_header, "X-Echo-Body-Length"),
        Some(("5".to_owned(), 1))
    );
    assert_eq!(server.request_log()[0].method, "PUT");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headers_names_mode_records_names_only() {
    let server = scenario::plain_server().await;
    let url = server.url("/echo");
    let out = nettrace([
        "get",
        url.as_str(),
        "-H",
        "X-Test: one",
        "--headers",
        "names",
    ])
    .await;
    assert_eq!(out.code, Some(0), "{out:?}");
    let trace = parse(&out.stdout, &out);
    let req = &trace.http_requests[0];
    let field = req
        .req_header
        .get("X-Test")
        .unwrap_or_else(|| panic!("{}", dump(&trace)));
    assert!(
        field.field_val.is_empty() && field.field_val_len == 0,
        "{field:?}"
    );
    assert!(req.resp_header.get("X-Echo-Method").is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn output_option_writes_the_trace_to_a_file() {
    let server = scenario::plain_server().await;
    let dir = TempDir::new("cli-output");
    let file = dir.path("trace.json");
    let url = server.url("/");
    let file_arg = file.display().to_string();
    let out = nettrace([
        "get",
        url.as_str(),
        "-o",
        file_arg.as_str(),
        "--description",
        "to a file",
    ])
    .await;
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(out.stdout.is_empty(), "{}", out.stdout);
    let text = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{e}"));
    let trace = parse(&text, &out);
    assert_eq!(trace.net_trace.description, "to a file");
    assert_eq!(trace.http_requests.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skipped_nameserver_is_reported_and_the_request_fails() {
    let https = Https::start(&ServerTlsOptions::h1()).await;
    let dns = https.dns.addr().to_string();
    let out = nettrace(https.args("/", &["--skip-nameserver", dns.as_str()])).await;
    assert_eq!(out.code, Some(1), "{out:?}");
    let trace = parse(&out.stdout, &out);
    let dial = &trace.net_trace.dials[0];
    assert_eq!(
        dial.skipped_nameservers,
        vec![dns.clone()],
        "{}",
        dump(&trace)
    );
    assert!(dial.resolver_dials.is_empty());
    assert!(
        dial.dial_err.contains("skipped by --skip-nameserver"),
        "{}",
        dump(&trace)
    );
    assert_eq!(https.dns.udp_queries().get(), 0);
}
