//! `nettrace get` with the proxy and TLS options a curl user expects: a proxy URL with
//! credentials (never printed), `-k/--insecure`, `--cert/--key`, `SSLKEYLOGFILE` and
//! `--tls-keys` without a capture, `--cacert` naming a self-signed server certificate.
use std::collections::HashMap;
use std::process::Command;
use std::time::Duration;

use nettrace::model::HttpTrace;
use nettrace_tests::fixtures::net::V4;
use nettrace_tests::fixtures::proxy::{ProxyOptions, ProxyServer};
use nettrace_tests::fixtures::tls::{LeafKind, ServerTlsOptions};
use nettrace_tests::scenario::{self, CommandOutput, EXAMPLE_HOST, TempDir, check_trace};

/// The longest one run of the binary may take.
const LIMIT: Duration = Duration::from_secs(20);

/// Runs `command` off the runtime's threads (the fixtures keep serving meanwhile).
async fn run(command: Command) -> CommandOutput {
    tokio::task::spawn_blocking(move || scenario::run_command(command, LIMIT))
        .await
        .unwrap_or_else(|e| panic!("the runner panicked: {e}"))
}

fn nettrace<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_nettrace"));
    command.args(args).env_remove("SSLKEYLOGFILE");
    command
}

/// Parses one JSON trace and checks its invariants.
fn parse(out: &CommandOutput) -> HttpTrace {
    let trace: HttpTrace = serde_json::from_str(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not a JSON trace ({e}):\n{}\nstderr: {}",
            out.stdout, out.stderr
        )
    });
    check_trace(&trace);
    trace
}

const PROXY_PASSWORD: &str = "s3cr3t-pa55";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proxy_password_logs_in_and_is_never_printed() {
    let pki = scenario::pki();
    let server = scenario::https_server(&pki, LeafKind::Valid, &ServerTlsOptions::h1()).await;
    let plain = scenario::plain_server().await;
    let proxy = ProxyServer::start(ProxyOptions {
        hosts: HashMap::from([(EXAMPLE_HOST.to_owned(), V4)]),
        required_auth: Some("Basic YWxpY2U6czNjcjN0LXBhNTU=".to_owned()),
        ..Default::default()
    })
    .await
    .unwrap_or_else(|e| panic!("{e:?}"));
    let dir = TempDir::new("cli-proxy");
    let ca = dir.write("ca.pem", pki.ca_pem());
    let ca = ca.display().to_string();
    let good = format!("http://alice:{PROXY_PASSWORD}@{}", proxy.addr());
    let bad = format!("http://alice:{PROXY_PASSWORD}x@{}", proxy.addr());
    for url in [
        server.url_with_host(EXAMPLE_HOST, "/"),
        plain.url_with_host(EXAMPLE_HOST, "/"),
    ] {
        for format in ["json", "waterfall"] {
            // A refused login: the CONNECT fails (exit 1); a plain request gets the proxy's 407.
            let refused = if url.starts_with("https") { 1 } else { 0 };
            for (proxy_url, code) in [(&good, 0), (&bad, refused)] {
                let args = [
                    "get",
                    &url,
                    "--proxy",
                    proxy_url,
                    "--cacert",
                    &ca,
                    "--format",
                    format,
                    "--headers",
                    "values",
                ];
                let out = run(nettrace(&args)).await;
                assert_eq!(out.code, Some(code), "{args:?}: {out:?}");
                for text in [&out.stdout, &out.stderr] {
                    assert!(!text.contains(PROXY_PASSWORD), "{args:?}: {out:?}");
                    assert!(!text.contains("YWxpY2U6"), "{args:?}: {out:?}");
                }
                if format == "json" {
                    let trace = parse(&out);
                    let shown = format!("http://alice:***@{}", proxy.addr());
                    let req = &trace.http_requests[0];
                    assert_eq!(req.network_proxy, shown);
                    let status = if proxy_url == &good { 200 } else { 407 };
                    if code == 0 {
                        assert_eq!(req.resp_status_code, status, "{args:?}");
                    }
                }
            }
        }
    }
    // A URL that does not parse is shown masked too.
    let broken = format!("http://alice:{PROXY_PASSWORD}@[::1");
    let out = run(nettrace(&[
        "get",
        "http://127.0.0.1:9/",
        "--proxy",
        &broken,
    ]))
    .await;
    assert_ne!(out.code, Some(0), "{out:?}");
    assert!(!out.stderr.contains(PROXY_PASSWORD), "{out:?}");
}
