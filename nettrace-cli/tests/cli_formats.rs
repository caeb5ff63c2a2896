//! `--format waterfall|har|html|json` of `show` and `get`: every golden trace (Go-written ones
//! included) in every format; HAR checked by the `har-validator` npm package (node), HTML
//! loaded in a real headless Chromium. Without node + har-validator or chromium those tests
//! say SKIPPED and pass (`.ci/run` installs both).
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use nettrace::model::HttpTrace;
use nettrace_tests::fixtures::broken::RefusingPort;
use nettrace_tests::fixtures::net::V4;
use nettrace_tests::fixtures::tls::{LeafKind, ServerTlsOptions};
use nettrace_tests::scenario::{self, CommandOutput, EXAMPLE_HOST, TempDir};
use nettrace_tests::skip;

/// The longest one run of a program may take.
const LIMIT: Duration = Duration::from_secs(60);

const FORMATS: [&str; 4] = ["waterfall", "har", "html", "json"];

fn run(program: &str, args: &[String]) -> CommandOutput {
    let mut command = Command::new(program);
    command.args(args);
    scenario::run_command(command, LIMIT)
}

fn nettrace(args: &[String]) -> CommandOutput {
    run(env!("CARGO_BIN_EXE_nettrace"), args)
}

/// Runs `nettrace` off the runtime's threads (the fixtures keep serving meanwhile).
async fn nettrace_async(args: Vec<String>) -> CommandOutput {
    tokio::task::spawn_blocking(move || nettrace(&args))
        .await
        .unwrap_or_else(|e| panic!("the runner panicked: {e}"))
}

fn goldens() -> Vec<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    assert!(files.len() >= 3, "{files:?}");
    files
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|a| a.to_string()).collect()
}

#[test]
fn show_renders_every_golden_trace_in_every_format() {
    for file in goldens() {
        let trace: HttpTrace =
            serde_json::from_str(&std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{e}")))
                .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let requests = trace.http_requests.len();
        for format in FORMATS {
            let path = file.display().to_string();
            let out = nettrace(&strings(&["show", &path, "--format", format]));
            assert_eq!(out.code, Some(0), "{path} {format}: {out:?}");
            let text = &out.stdout;
            match format {
                "waterfall" => {
                    assert_eq!(text.matches("\n  summary   ").count(), requests, "{text}");
                    assert!(!text.contains('\x1b'), "colour into a pipe: {text}");
                }
                "har" => {
                    let har: serde_json::Value =
                        serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"));
                    let entries = har["log"]["entries"].as_array().map_or(0, Vec::len);
                    assert_eq!(entries, requests, "{text}");
                }
                "html" => {
                    assert_eq!(text.matches("class=\"wf-row\"").count(), requests);
                    assert!(!text.contains("src=\"http"), "fetches something: {text}");
                }
                _ => assert!(serde_json::from_str::<HttpTrace>(text).is_ok()),
            }
        }
    }
}

/// Live traces of `get`: success over HTTP/2, a redirect, a refused connection.
async fn live_traces(format: &str, dir: &TempDir) -> Vec<PathBuf> {
    let pki = scenario::pki();
    let https = scenario::https_server(&pki, LeafKind::Valid, &ServerTlsOptions::h2_and_h1()).await;
    let dns = scenario::example_dns().await;
    let ca = dir.write("ca.pem", pki.ca_pem());
    let plain = scenario::plain_server().await;
    let refusing = RefusingPort::new(V4).unwrap_or_else(|e| panic!("{e:?}"));
    let https_args = |path: &str| {
        strings(&[
            "get",
            &https.url_with_host(EXAMPLE_HOST, path),
            "--nameserver",
            &dns.addr().to_string(),
            "--cacert",
            &ca.display().to_string(),
            "--dns-trace",
            "--http2",
            "--headers",
            "values",
        ])
    };
    let cases = [
        ("h2", https_args("/"), Some(0)),
        ("redirect", https_args("/redirect/2"), Some(0)),
        (
            "plain-redirect",
            strings(&["get", &plain.url("/redirect/1"), "--sock-trace"]),
            Some(0),
        ),
        (
            "refused",
            strings(&["get", &format!("http://{}/", refusing.addr())]),
            Some(1),
        ),
    ];
    let mut files = Vec::new();
    for (name, mut args, code) in cases {
        args.extend(strings(&["--format", format]));
        let out = nettrace_async(args.clone()).await;
        assert_eq!(out.code, code, "{args:?}: {out:?}");
        files.push(dir.write(&format!("{name}.{format}"), &out.stdout));
    }
    files
}

/// The har-validator package, if node and the package are installed.
fn har_validator(test: &str) -> Option<PathBuf> {
    let dir = std::env::var_os("NETTRACE_NPM_DIR")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/nettrace/npm"))
        })?;
    let node_ok = Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !node_ok || !dir.join("node_modules/har-validator").is_dir() {
        skip(
            test,
            "needs node + har-validator (npm install har-validator)",
        );
        return None;
    }
    Some(dir)
}

const VALIDATE_JS: &str = "const v = require(process.argv[2] + '/node_modules/har-validator');\n\
const data = JSON.parse(require('fs').readFileSync(process.argv[3], 'utf8'));\n\
v.har(data).then(() => console.log('valid'))\n\
  .catch((e) => { console.error(JSON.stringify(e.errors || e.message)); process.exit(1); });\n";

fn validate_har(npm: &Path, dir: &TempDir, file: &Path) {
    let script = dir.write("validate.js", VALIDATE_JS);
    let out = run(
        "node",
        &[
            script.display().to_string(),
            npm.display().to_string(),
            file.display().to_string(),
        ],
    );
    assert_eq!(
        out.code,
        Some(0),
        "{} is not valid HAR 1.2: {out:?}",
        file.display()
    );
    assert!(out.stdout.contains("valid"), "{out:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn har_passes_har_validator() {
    const TEST: &str = "har_passes_har_validator";
    let Some(npm) = har_validator(TEST) else {
        return;
    };
    let dir = TempDir::new("har");
    // The validator must fail on a broken archive, or it proves nothing.
    let broken = dir.write(
        "broken.har",
        r#"{"log": {"version": "1.2", "entries": [{}]}}"#,
    );
    let script = dir.write("validate.js", VALIDATE_JS);
    let out = run(
        "node",
        &[
            script.display().to_string(),
            npm.display().to_string(),
            broken.display().to_string(),
        ],
    );
    assert_eq!(out.code, Some(1), "a broken HAR passed: {out:?}");
    for file in goldens() {
        let out = nettrace(&strings(&[
            "show",
            &file.display().to_string(),
            "--format",
            "har",
        ]));
        assert_eq!(out.code, Some(0), "{out:?}");
        let name = file.file_name().map(|n| n.to_string_lossy().into_owned());
        let har = dir.write(&format!("{}.har", name.unwrap_or_default()), &out.stdout);
        validate_har(&npm, &dir, &har);
    }
    let live = live_traces("har", &dir).await;
    for file in &live {
        validate_har(&npm, &dir, file);
    }
    // The redirect over HTTP/2: two entries, the second on the reused connection.
    let redirect: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&live[1]).unwrap_or_else(|e| panic!("{e}")))
            .unwrap_or_else(|e| panic!("{e}"));
    let entries = redirect["log"]["entries"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(entries.len(), 3, "{redirect}");
    assert_eq!(entries[0]["response"]["httpVersion"], "HTTP/2.0");
    assert_eq!(entries[0]["connection"], entries[1]["connection"]);
    assert_eq!(entries[1]["timings"]["connect"], -1.0, "{redirect}");
    assert_eq!(entries[1]["timings"]["ssl"], -1.0, "{redirect}");
    assert!(entries[0]["timings"]["connect"].as_f64() >= Some(0.0));
    assert_eq!(entries[0]["serverIPAddress"], "127.0.0.1");
    let refused: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&live[3]).unwrap_or_else(|e| panic!("{e}")))
            .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(refused["log"]["entries"][0]["response"]["status"], 0);
    assert_eq!(
        refused["log"]["entries"][0]["_nettrace"]["endedDuring"],
        "connect"
    );
}

/// Loads `file` in headless Chromium: the DOM it built, and the console messages it logged.
fn chromium(file: &Path) -> (String, Vec<String>) {
    let url = format!("file://{}", file.display());
    let out = run(
        "chromium",
        &strings(&[
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--enable-logging=stderr",
            "--v=0",
            "--dump-dom",
            &url,
        ]),
    );
    assert_eq!(out.code, Some(0), "chromium failed on {url}: {out:?}");
    let console = out
        .stderr
        .lines()
        .filter(|l| l.contains(":CONSOLE"))
        .map(str::to_owned)
        .collect();
    (out.stdout, console)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn html_loads_in_headless_chromium_with_one_row_per_request() {
    const TEST: &str = "html_loads_in_headless_chromium_with_one_row_per_request";
    let present = Command::new("chromium")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !present {
        skip(TEST, "needs chromium (apt-get install chromium)");
        return;
    }
    let dir = TempDir::new("html");
    // Chromium reports a script error on the console: the check below can fail.
    let bad = dir.write(
        "bad.html",
        "<html><body><script>noSuchFunction();</script></body></html>",
    );
    let (_, console) = chromium(&bad);
    assert!(!console.is_empty(), "a console error went unseen");
    let mut pages: Vec<(PathBuf, usize)> = Vec::new();
    for file in goldens() {
        let trace: HttpTrace =
            serde_json::from_str(&std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{e}")))
                .unwrap_or_else(|e| panic!("{e}"));
        let out = nettrace(&strings(&[
            "show",
            &file.display().to_string(),
            "--format",
            "html",
        ]));
        assert_eq!(out.code, Some(0), "{out:?}");
        let name = file.file_name().map(|n| n.to_string_lossy().into_owned());
        let page = dir.write(&format!("{}.html", name.unwrap_or_default()), &out.stdout);
        pages.push((page, trace.http_requests.len()));
    }
    let live = live_traces("html", &dir).await;
    pages.extend(live.into_iter().zip([1, 3, 2, 1]));
    for (page, requests) in pages {
        let (dom, console) = chromium(&page);
        assert!(console.is_empty(), "{}: {console:?}", page.display());
        assert_eq!(
            dom.matches("class=\"wf-row\"").count(),
            requests,
            "{}: {dom}",
            page.display()
        );
        assert!(dom.contains("<svg"), "{dom}");
    }
}

/// The issue's case: a body that arrives late is a long transfer phase (not "0ms"), and a
/// slow response head a long wait, in the JSON's body times and in the waterfall.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_body_is_transfer_and_slow_head_is_wait() {
    use nettrace::model::phases::{Precision, request_phases};
    let server = scenario::plain_server().await;
    for (path, slow_transfer) in [("/slow-body/300", true), ("/slow-headers/300", false)] {
        let out = nettrace_async(strings(&["get", &server.url(path)])).await;
        assert_eq!(out.code, Some(0), "{out:?}");
        let trace: HttpTrace =
            serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {out:?}"));
        let req = &trace.http_requests[0];
        assert!(!req.resp_body_last_byte_at.is_undefined(), "{}", out.stdout);
        let phases = &request_phases(&trace)[0];
        assert_eq!(phases.precision, Precision::Micros, "{}", out.stdout);
        let transfer = phases.transfer.map_or(0, |s| s.duration_us());
        let wait = phases.wait.map_or(0, |s| s.duration_us());
        let (slow, fast) = if slow_transfer {
            (transfer, wait)
        } else {
            (wait, transfer)
        };
        // The server's 300 ms start when it writes the head; a loaded client may read the
        // head tens of ms later, so the slow phase is only known to be well over half of it,
        // and to dominate.
        assert!(slow >= 150_000, "{path}: {phases:?}");
        assert!(fast < slow / 2, "{path}: {phases:?}");
        let total = phases.total.map_or(0, |s| s.duration_us());
        assert!(total >= 300_000, "{path}: {phases:?}");
        let text = nettrace_async(strings(&[
            "get",
            &server.url(path),
            "--format",
            "waterfall",
        ]))
        .await
        .stdout;
        let label = if slow_transfer { "transfer" } else { "wait" };
        let summary = text
            .lines()
            .find(|l| l.trim_start().starts_with("summary"))
            .unwrap_or_default();
        let value = summary
            .split("  ")
            .find_map(|part| part.trim().strip_prefix(&format!("{label} ")))
            .unwrap_or_default();
        assert!(
            value.ends_with("ms") && !value.contains('µ'),
            "{label} {value}: {text}"
        );
    }
}
