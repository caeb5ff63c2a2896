//! `nettrace get --kernel ...`: kernel facts in the trace as root, and a clean fallback to
//! userspace-only tracing for an unprivileged user.
use std::{path::Path, process::Command, time::Duration};

use nettrace::model::HttpTrace;
use nettrace_tests::{
    require_root,
    scenario::{self, CommandOutput},
    unprivileged::{NOBODY, RunnableCopy, as_user},
};

const LIMIT: Duration = Duration::from_secs(20);

async fn run(command: Command) -> CommandOutput {
    tokio::task::spawn_blocking(move || scenario::run_command(command, LIMIT))
        .await
        .unwrap_or_else(|e| panic!("the runner panicked: {e}"))
}

fn parse(out: &CommandOutput) -> HttpTrace {
    serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("not a JSON trace ({e}): {out:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn as_root_the_trace_holds_the_kernel_view_of_the_connection() {
    if !require_root("as_root_the_trace_holds_the_kernel_view_of_the_connection") {
        return;
    }
    let server = scenario::plain_server().await;
    let mut command = Command::new(env!("CARGO_BIN_EXE_nettrace"));
    command.args([
        "get",
        &server.url("/bytes/3000"),
        "--kernel",
        "require",
        "--no-keepalive",
    ]);
    let out = run(command).await;
    assert_eq!(out.code, Some(0), "{out:?}");
    let trace = parse(&out);
    let status = trace.net_trace.kernel_data.clone().expect("kernelData");
    assert!(status.available && status.complete, "{status:?}");
    assert_eq!(status.lost_events, 0);
    let conn = &trace.net_trace.tcp_conns[0];
    let kernel = conn
        .kernel
        .as_ref()
        .unwrap_or_else(|| panic!("no kernel facts: {out:?}"));
    let states: Vec<(&str, &str)> = kernel
        .states
        .iter()
        .map(|s| (s.from.as_str(), s.to.as_str()))
        .collect();
    assert_eq!(
        states[..2],
        [("close", "syn-sent"), ("syn-sent", "established")],
        "{states:?}"
    );
    for state in &kernel.states {
        assert!(state.at.as_relative_ms().is_some(), "{state:?}");
    }
    assert!(kernel.min_rtt_us > 0 && kernel.srtt_us > 0, "{kernel:?}");
    assert!(kernel.segs_out > 0 && kernel.segs_in > 0, "{kernel:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unprivileged_user_gets_the_userspace_trace_and_the_reason() {
    if !require_root(
        "an_unprivileged_user_gets_the_userspace_trace_and_the_reason (switches to nobody)",
    ) {
        return;
    }
    let server = scenario::plain_server().await;
    let binary = RunnableCopy::of(Path::new(env!("CARGO_BIN_EXE_nettrace")));
    let mut command = as_user(NOBODY, binary.path());
    command.args(["get", &server.url("/bytes/10"), "--sock-trace"]);
    let out = run(command).await;
    assert_eq!(out.code, Some(0), "{out:?}");
    let trace = parse(&out);
    assert_eq!(trace.http_requests[0].resp_status_code, 200);
    assert!(trace.net_trace.tcp_conns[0].socket_trace.is_some());
    assert!(trace.net_trace.tcp_conns[0].kernel.is_none());
    let status = trace.net_trace.kernel_data.clone().expect("kernelData");
    assert!(!status.available, "{status:?}");
    assert!(status.reason.contains("not permitted"), "{status:?}");

    let mut command = as_user(NOBODY, binary.path());
    command.args(["get", &server.url("/bytes/10"), "--kernel", "require"]);
    let out = run(command).await;
    assert_eq!(
        out.code,
        Some(2),
        "--kernel require fails to start: {out:?}"
    );
    assert!(
        out.stderr.contains("kernel tracing was required"),
        "{out:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn as_root_the_waterfall_shows_the_kernel_line() {
    if !require_root("as_root_the_waterfall_shows_the_kernel_line") {
        return;
    }
    let server = scenario::plain_server().await;
    let mut command = Command::new(env!("CARGO_BIN_EXE_nettrace"));
    command.args([
        "get",
        &server.url("/bytes/100"),
        "--kernel",
        "require",
        "--no-keepalive",
        "--format",
        "waterfall",
    ]);
    let out = run(command).await;
    assert_eq!(out.code, Some(0), "{out:?}");
    let kernel = out
        .stdout
        .lines()
        .find(|l| l.trim_start().starts_with("kernel"))
        .unwrap_or_else(|| panic!("no kernel line in\n{}", out.stdout));
    assert!(
        kernel.contains("srtt") && kernel.contains("min rtt"),
        "{kernel}"
    );
    assert!(kernel.contains("no retransmits"), "{kernel}");
}
