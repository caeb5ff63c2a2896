//! `nettrace-loader trace`: the trace of every socket of a command (started in a fresh
//! cgroup), a cgroup or a process and its descendants (moved into a cgroup of their own, see
//! `pid_cgroup.rs`), from kernel events alone, written as NetTrace JSON with
//! the packet captures beside it.
use std::{fs, io::Write, path::Path, process::ExitCode, time::Duration};

use anyhow::{Context, Result, bail};
use nettrace::{
    capture::{PacketCapture, PacketCaptureOptions},
    model::HttpTrace,
    program::{ProgramTraceOptions, ProgramTracer},
};

use crate::{
    TraceArgs, cgroup,
    pid_cgroup::{self, MovedProcess},
};

/// Time given to the kernel after the traced command ends, for the last events of its
/// sockets (FIN/ACK exchanges, releases) to arrive before the trace is taken.
const SETTLE: Duration = Duration::from_millis(200);
/// How often `--pid` checks whether the process still runs.
const PID_POLL: Duration = Duration::from_millis(200);

pub(crate) async fn run(args: TraceArgs) -> Result<ExitCode> {
    if args.command.is_empty() && args.cgroup.is_none() && args.pid.is_none() {
        bail!("nothing to trace: give -- COMMAND [ARGS], --cgroup PATH or --pid PID");
    }
    let options = ProgramTraceOptions {
        sock_trace: !args.no_sock_trace,
        packet_capture: (!args.pcap.is_empty()).then(|| PacketCaptureOptions {
            interfaces: args.pcap.clone(),
            total_size_limit: args.pcap_limit,
            ..PacketCaptureOptions::default()
        }),
        conntrack: args.conntrack,
        ..ProgramTraceOptions::default()
    };
    let tracer = ProgramTracer::new(&options).context("starting the trace")?;
    let exporter = args.otlp.exporter()?;
    let mut moved_process = None;
    let (code, target) = if let Some(path) = &args.cgroup {
        tracer
            .trace_cgroup(path)
            .with_context(|| format!("tracing cgroup {}", path.display()))?;
        eprintln!(
            "nettrace-loader: tracing cgroup {}; Ctrl-C ends",
            path.display()
        );
        let _ = tokio::signal::ctrl_c().await;
        (ExitCode::SUCCESS, format!("cgroup {}", path.display()))
    } else if let Some(pid) = args.pid {
        // P and its descendants alone, in a child cgroup of P's; moved back when dropped,
        // after the trace is taken.
        let moved = MovedProcess::move_in(pid)?;
        tracer
            .trace_cgroup(moved.path())
            .with_context(|| format!("tracing cgroup {}", moved.path().display()))?;
        eprintln!(
            "nettrace-loader: tracing process {pid} and its descendants (moved from cgroup {} \
             to {}); Ctrl-C ends",
            moved.original().display(),
            moved.path().display()
        );
        wait_for_pid(pid).await;
        moved_process = Some(moved);
        (ExitCode::SUCCESS, format!("process {pid}"))
    } else {
        let code = run_command(&tracer, &args.command).await?;
        (code, args.command.join(" "))
    };
    tokio::time::sleep(SETTLE).await;
    let description = args.description.clone().unwrap_or(target);
    let (trace, captures) = tracer.trace(&description);
    write_trace(args.output.as_deref(), &trace)?;
    if !args.pcap.is_empty() {
        let dir = args.pcap_dir.clone().unwrap_or_else(|| ".".into());
        write_captures(&dir, &captures)?;
    }
    drop(moved_process);
    crate::otlp::export(exporter.as_ref(), &trace);
    let exported =
        tokio::task::spawn_blocking(move || crate::otlp::finish(exporter, "nettrace-loader"))
            .await
            .unwrap_or(false);
    Ok(if exported { code } else { ExitCode::FAILURE })
}

/// Runs the command in a fresh cgroup (joined before `exec`, so that every socket it makes
/// is seen) and returns its exit code (128 + signal when killed). Ctrl-C stops it.
async fn run_command(tracer: &ProgramTracer, argv: &[String]) -> Result<ExitCode> {
    let group = cgroup::FreshCgroup::create()?;
    tracer
        .trace_cgroup(group.path())
        .with_context(|| format!("tracing cgroup {}", group.path().display()))?;
    let procs = group.procs_file()?;
    let fd = cgroup::raw(&procs);
    let (program, rest) = argv.split_first().context("empty command")?;
    let mut command = tokio::process::Command::new(program);
    command.args(rest);
    // SAFETY: the closure only calls write(2) on an inherited descriptor, which is
    // async-signal-safe, and allocates nothing.
    unsafe {
        command.pre_exec(move || cgroup::join(fd));
    }
    let mut child = command
        .spawn()
        .with_context(|| format!("starting {program}"))?;
    drop(procs);
    let status = tokio::select! {
        status = child.wait() => status,
        _ = tokio::signal::ctrl_c() => {
            let _ = child.start_kill();
            child.wait().await
        }
    }
    .with_context(|| format!("waiting for {program}"))?;
    use std::os::unix::process::ExitStatusExt;
    let code = match (status.code(), status.signal()) {
        (Some(code), _) => code,
        (None, Some(signal)) => 128 + signal,
        (None, None) => 1,
    };
    if !status.success() {
        eprintln!("nettrace-loader: {program} ended with {status}; the trace is written anyway");
    }
    Ok(ExitCode::from(u8::try_from(code).unwrap_or(1)))
}

/// Until the process ends (a zombie has ended) or Ctrl-C.
async fn wait_for_pid(pid: u32) {
    let alive = || pid_cgroup::is_running(pid);
    let mut tick = tokio::time::interval(PID_POLL);
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => return,
            _ = tick.tick() => if !alive() { return },
        }
    }
}

fn write_trace(output: Option<&Path>, trace: &HttpTrace) -> Result<()> {
    let mut text = serde_json::to_string_pretty(trace).context("encoding the trace")?;
    text.push('\n');
    match output {
        Some(path) => fs::write(path, text).with_context(|| format!("writing {}", path.display())),
        None => std::io::stdout()
            .write_all(text.as_bytes())
            .context("writing the trace"),
    }
}

/// Writes each capture as `DIR/<iface>.pcap` and `DIR/<iface>.pcapng`.
fn write_captures(dir: &Path, captures: &[PacketCapture]) -> Result<()> {
    for capture in captures {
        capture.write_files(dir).context("writing the capture")?;
        for shortfall in capture.shortfalls() {
            eprintln!("nettrace-loader: {shortfall}");
        }
    }
    Ok(())
}
