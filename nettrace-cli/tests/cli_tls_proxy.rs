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

/// An HTTPS server presenting `config`.
async fn https_with(
    config: std::sync::Arc<rustls::ServerConfig>,
) -> nettrace_tests::fixtures::http::HttpServer {
    nettrace_tests::fixtures::http::HttpServer::start(
        nettrace_tests::fixtures::http::HttpOptions::https(config),
    )
    .await
    .unwrap_or_else(|e| panic!("{e:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn insecure_succeeds_and_records_the_verdict() {
    let pki = scenario::pki();
    let server =
        scenario::https_server(&pki, LeafKind::UntrustedIssuer, &ServerTlsOptions::h1()).await;
    let dns = scenario::example_dns().await;
    let dir = TempDir::new("cli-insecure");
    let ca = dir.write("ca.pem", pki.ca_pem()).display().to_string();
    let url = server.url_with_host(EXAMPLE_HOST, "/");
    let ns = dns.addr().to_string();
    let base = ["get", &url, "--nameserver", &ns, "--cacert", &ca];
    let out = run(nettrace(&base)).await;
    assert_eq!(out.code, Some(1), "{out:?}");
    let out = run(nettrace(&[&base[..], &["-k"]].concat())).await;
    assert_eq!(out.code, Some(0), "{out:?}");
    let trace = parse(&out);
    let tunnel = &trace.net_trace.tls_tunnels[0];
    assert!(
        tunnel.insecure && tunnel.handshake_err.is_empty(),
        "{out:?}"
    );
    assert!(tunnel.cert_verify_err.contains("UnknownIssuer"), "{out:?}");
    let out = run(nettrace(
        &[&base[..], &["--insecure", "--format", "waterfall"]].concat(),
    ))
    .await;
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(
        out.stdout
            .contains("not verified (insecure): invalid peer certificate"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains(" TLS_"),
        "the cipher suite by name: {}",
        out.stdout
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cert_and_key_answer_a_server_asking_for_a_client_certificate() {
    let pki = scenario::pki();
    let config = pki
        .leaf(LeafKind::Valid)
        .and_then(|leaf| {
            leaf.server_config_requiring_client_cert(&ServerTlsOptions::h1(), pki.root_store())
        })
        .unwrap_or_else(|e| panic!("{e:?}"));
    let server = https_with(config).await;
    let identity = pki
        .issue_client("client.test")
        .unwrap_or_else(|e| panic!("{e:?}"));
    let dns = scenario::example_dns().await;
    let dir = TempDir::new("cli-cert");
    let ca = dir.write("ca.pem", pki.ca_pem()).display().to_string();
    let cert = dir
        .write("me.pem", &identity.cert_pem)
        .display()
        .to_string();
    let key = dir.write("me.key", &identity.key_pem).display().to_string();
    let both = dir
        .write(
            "both.pem",
            &format!("{}{}", identity.cert_pem, identity.key_pem),
        )
        .display()
        .to_string();
    let url = server.url_with_host(EXAMPLE_HOST, "/");
    let ns = dns.addr().to_string();
    let base = ["get", &url, "--nameserver", &ns, "--cacert", &ca];
    let out = run(nettrace(&base)).await;
    assert_eq!(out.code, Some(1), "without a client certificate: {out:?}");
    let out = run(nettrace(
        &[&base[..], &["--cert", &cert, "--key", &key]].concat(),
    ))
    .await;
    assert_eq!(out.code, Some(0), "{out:?}");
    assert_eq!(parse(&out).http_requests[0].resp_status_code, 200);
    let out = run(nettrace(&[&base[..], &["--cert", &both]].concat())).await;
    assert_eq!(out.code, Some(0), "key in the certificate's file: {out:?}");
    let out = run(nettrace(
        &[&base[..], &["--cert", &ca, "--key", &ca]].concat(),
    ))
    .await;
    assert_ne!(out.code, Some(0), "a file without a key: {out:?}");
}

/// The lines of an NSS key log, checked for shape.
fn key_log_lines(path: &std::path::Path) -> Vec<String> {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let lines: Vec<String> = text.lines().map(str::to_owned).collect();
    for line in &lines {
        assert_eq!(line.split(' ').count(), 3, "{line}");
    }
    lines
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_logs_go_to_sslkeylogfile_and_beside_the_trace() {
    let pki = scenario::pki();
    let server = scenario::https_server(&pki, LeafKind::Valid, &ServerTlsOptions::h1()).await;
    let dns = scenario::example_dns().await;
    let dir = TempDir::new("cli-keys");
    let ca = dir.write("ca.pem", pki.ca_pem()).display().to_string();
    let url = server.url_with_host(EXAMPLE_HOST, "/");
    let ns = dns.addr().to_string();
    let base = ["get", &url, "--nameserver", &ns, "--cacert", &ca];

    // SSLKEYLOGFILE: appended to, as curl does.
    let sslkeylog = dir.write("ssl.keys", "# earlier\n");
    let mut command = nettrace(&base);
    command.env("SSLKEYLOGFILE", &sslkeylog);
    let out = run(command).await;
    assert_eq!(out.code, Some(0), "{out:?}");
    let text = std::fs::read_to_string(&sslkeylog).unwrap_or_else(|e| panic!("{e}"));
    assert!(text.starts_with("# earlier\n"), "{text}");
    assert!(text.contains("CLIENT_TRAFFIC_SECRET_0 "), "{text}");

    // --tls-keys without --pcap: beside --output.
    let output = dir.path("trace.json");
    let output_arg = output.display().to_string();
    let out = run(nettrace(
        &[&base[..], &["--tls-keys", "-o", &output_arg]].concat(),
    ))
    .await;
    assert_eq!(out.code, Some(0), "{out:?}");
    let lines = key_log_lines(&dir.path("trace.json.keys"));
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("CLIENT_TRAFFIC_SECRET_0 ")),
        "{lines:?}"
    );

    // ... else nettrace.keys in the current folder.
    let mut command = nettrace(&[&base[..], &["--tls-keys"]].concat());
    command.current_dir(dir.path(""));
    let out = run(command).await;
    assert_eq!(out.code, Some(0), "{out:?}");
    let lines = key_log_lines(&dir.path("nettrace.keys"));
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("SERVER_HANDSHAKE_TRAFFIC_SECRET ")),
        "{lines:?}"
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(dir.path("nettrace.keys"))
        .map(|m| m.permissions().mode() & 0o777)
        .unwrap_or_default();
    assert_eq!(mode, 0o600);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cacert_trusts_a_self_signed_server_certificate() {
    let lone = nettrace_tests::fixtures::tls::self_signed_leaf(&[EXAMPLE_HOST])
        .unwrap_or_else(|e| panic!("{e:?}"));
    let config = lone
        .server_config(&ServerTlsOptions::h1())
        .unwrap_or_else(|e| panic!("{e:?}"));
    let server = https_with(config).await;
    let dns = scenario::example_dns().await;
    let dir = TempDir::new("cli-self-signed");
    let pem = dir
        .write("server.pem", &lone.cert_pem)
        .display()
        .to_string();
    let url = server.url_with_host(EXAMPLE_HOST, "/");
    let ns = dns.addr().to_string();
    let out = run(nettrace(&[
        "get",
        &url,
        "--nameserver",
        &ns,
        "--cacert",
        &pem,
    ]))
    .await;
    assert_eq!(out.code, Some(0), "{out:?}");
    assert_eq!(parse(&out).http_requests[0].resp_status_code, 200);
}
