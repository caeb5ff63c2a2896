//! `nettrace-loader trace`: the trace of every socket of a command (started in a fresh
//! cgroup), a cgroup or a process and its descendants (moved into a cgroup of their own, see
//! `pid_cgroup.rs`), from kernel events alone, written as NetTrace JSON with
//! the packet captures beside it.
use std::{
    fs,
    io::{BufWriter, Write},
    path::{Path, PathBuf},
    process::ExitCode,
    sync::Arc,
    time::Duration,
};

use anyhow::{Context, Result, bail};
use nettrace::{
    capture::{PacketCapture, PacketCaptureOptions},
    client::CompletedTraces,
    model::HttpTrace,
    program::{ProgramTraceOptions, ProgramTracer},
};
use nettrace_otel::OtlpExporter;
use tokio::{sync::oneshot, task::JoinHandle};

use crate::{
    TraceArgs, cgroup,
    pid_cgroup::{self, MovedProcess},
    stop::StopSignals,
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
    // From here on, SIGINT and SIGTERM end the trace instead of the process.
    let mut stop = StopSignals::install()?;
    let options = ProgramTraceOptions {
        sock_trace: !args.no_sock_trace,
        packet_capture: (!args.pcap.is_empty()).then(|| PacketCaptureOptions {
            interfaces: args.pcap.clone(),
            total_size_limit: args.pcap_limit,
            ..PacketCaptureOptions::default()
        }),
        conntrack: args.conntrack,
        completed_connections: args.stream.then_some(STREAM_CAPACITY),
        ..ProgramTraceOptions::default()
    };
    let tracer = ProgramTracer::new(&options).context("starting the trace")?;
    let exporter = args.otlp.exporter()?.map(Arc::new);
    let streamer = match tracer.completed_traces() {
        Some(completed) => Some(Streamer::start(
            completed,
            args.output.clone(),
            exporter.clone(),
        )?),
        None => None,
    };
    let mut moved_process = None;
    let (code, target) = if let Some(path) = &args.cgroup {
        tracer
            .trace_cgroup(path)
            .with_context(|| format!("tracing cgroup {}", path.display()))?;
        eprintln!(
            "nettrace-loader: tracing cgroup {}; Ctrl-C (or SIGTERM) ends",
            path.display()
        );
        stopped(stop.recv().await);
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
             to {}); Ctrl-C (or SIGTERM) ends",
            moved.original().display(),
            moved.path().display()
        );
        wait_for_pid(pid, &mut stop).await;
        moved_process = Some(moved);
        (ExitCode::SUCCESS, format!("process {pid}"))
    } else {
        let code = run_command(&tracer, &args.command, &mut stop).await?;
        (code, args.command.join(" "))
    };
    tokio::time::sleep(SETTLE).await;
    let description = args.description.clone().unwrap_or(target);
    let (trace, captures) = tracer.trace(&description);
    match streamer {
        // The last line: what is still open (or was never closed) at the end.
        Some(streamer) => streamer.finish(trace).await?,
        None => {
            write_trace(args.output.as_deref(), &trace)?;
            crate::otlp::export(exporter.as_deref(), trace);
        }
    }
    if !args.pcap.is_empty() {
        let dir = args.pcap_dir.clone().unwrap_or_else(|| ".".into());
        write_captures(&dir, &captures)?;
    }
    drop(moved_process);
    // Every clone went with the streamer; were one left, dropping it would discard its spans.
    let exporter = match exporter.map(Arc::try_unwrap) {
        Some(Err(_)) => {
            eprintln!(
                "nettrace-loader: the OTLP exporter is still in use; its spans were not sent"
            );
            return Ok(ExitCode::FAILURE);
        }
        other => other.and_then(Result::ok),
    };
    let exported =
        tokio::task::spawn_blocking(move || crate::otlp::finish(exporter, "nettrace-loader"))
            .await
            .unwrap_or(false);
    Ok(if exported { code } else { ExitCode::FAILURE })
}

/// Runs the command in a fresh cgroup (joined before `exec`, so that every socket it makes
/// is seen) and returns its exit code (128 + signal when killed). SIGINT or SIGTERM kills it.
async fn run_command(
    tracer: &ProgramTracer,
    argv: &[String],
    stop: &mut StopSignals,
) -> Result<ExitCode> {
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
        signal = stop.recv() => {
            stopped(signal);
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

/// Until the process ends (a zombie has ended), SIGINT or SIGTERM.
async fn wait_for_pid(pid: u32, stop: &mut StopSignals) {
    let alive = || pid_cgroup::is_running(pid);
    let mut tick = tokio::time::interval(PID_POLL);
    loop {
        tokio::select! {
            signal = stop.recv() => return stopped(signal),
            _ = tick.tick() => if !alive() { return },
        }
    }
}

/// Says that `signal` ends the trace.
fn stopped(signal: &str) {
    eprintln!("nettrace-loader: {signal}: stopping, writing the trace");
}

/// How many closed connections' traces wait for the writer at most (`--stream`).
const STREAM_CAPACITY: usize = 4096;

/// `--stream`: writes each closed connection's trace as a JSON line as it comes (and exports
/// it), in a task of its own until told to stop.
struct Streamer {
    stop: oneshot::Sender<()>,
    task: JoinHandle<Result<BufWriter<Box<dyn Write + Send>>>>,
    exporter: Option<Arc<OtlpExporter>>,
}

impl Streamer {
    fn start(
        mut completed: CompletedTraces,
        output: Option<PathBuf>,
        exporter: Option<Arc<OtlpExporter>>,
    ) -> Result<Self> {
        let sink: Box<dyn Write + Send> = match &output {
            Some(path) => Box::new(
                fs::File::create(path).with_context(|| format!("creating {}", path.display()))?,
            ),
            None => Box::new(std::io::stdout()),
        };
        let mut out = BufWriter::new(sink);
        let (stop, mut stopped) = oneshot::channel::<()>();
        let task_exporter = exporter.clone();
        let task = tokio::spawn(async move {
            let mut stopping = false;
            loop {
                let trace = if stopping {
                    completed.try_recv()
                } else {
                    tokio::select! {
                        trace = completed.recv() => trace,
                        _ = &mut stopped => {
                            stopping = true;
                            completed.try_recv()
                        }
                    }
                };
                let Some(trace) = trace else {
                    return Ok(out);
                };
                write_line(&mut out, &trace)?;
                crate::otlp::export(task_exporter.as_deref(), trace);
            }
        });
        Ok(Self {
            stop,
            task,
            exporter,
        })
    }

    /// Writes what is still queued, then `last` (when it holds anything), and flushes.
    async fn finish(self, last: HttpTrace) -> Result<()> {
        let _ = self.stop.send(());
        let mut out = self.task.await.context("the stream writer failed")??;
        let net = &last.net_trace;
        if !net.dials.is_empty() || !net.tcp_conns.is_empty() || !net.udp_conns.is_empty() {
            write_line(&mut out, &last)?;
            crate::otlp::export(self.exporter.as_deref(), last);
        }
        out.flush().context("writing the stream")
    }
}

/// One trace as a JSON line, flushed so a reader sees it at once.
fn write_line(out: &mut impl Write, trace: &HttpTrace) -> Result<()> {
    serde_json::to_writer(&mut *out, trace).context("encoding a trace")?;
    out.write_all(b"\n")
        .and_then(|()| out.flush())
        .context("writing the stream")
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
