//! `nettrace get URL`: the request(s) through one traced client, then the trace.
//!
//! The request is built as curl builds it ([`crate::request`]), the body streams to
//! `--save-body` or is counted and dropped ([`crate::transfer`]), and SIGINT/SIGTERM end the
//! request in flight and still write the trace ([`crate::interrupt`]).
use std::{
    fs::File,
    io::{self, BufWriter, Write},
    net::{IpAddr, SocketAddr},
    path::{Path, PathBuf},
    process::ExitCode,
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use nettrace::{
    capture::{PacketCapture, PacketCaptureOptions},
    client::{HttpClient, HttpClientConfig, HttpReqTraceOptions, KernelMode, TraceOptions},
    model::{HdrFieldsOpt, HttpTrace, diagnosis::CaptureSummary},
};

use crate::{
    args::{Format, GetArgs, Headers, Kernel},
    interrupt::{Interrupt, Stopped},
    output,
    request::Plan,
    transfer::{self, BodyOutput, Outcome},
};

pub(crate) fn run(args: GetArgs) -> Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let result = runtime.block_on(get(args));
    // Everything was flushed; a write still stuck on a pipe nobody reads (after Ctrl-C) must
    // not hold the exit.
    runtime.shutdown_background();
    result
}

/// How long the body's last bytes may take to flush after a signal (standard output may be
/// a pipe nobody reads).
const FLUSH_AFTER_SIGNAL: Duration = Duration::from_secs(2);

/// Where the trace goes.
enum TraceOutput {
    Stdout,
    /// With `--save-body -` and no `-o`: the body has standard output.
    Stderr,
    File(PathBuf),
}

impl TraceOutput {
    fn of(args: &GetArgs) -> Result<Self> {
        let dash = Path::new("-");
        let body_to_stdout = args.save_body.as_deref() == Some(dash);
        Ok(match args.output.as_deref() {
            Some(path) if path == dash && body_to_stdout => bail!(
                "--save-body - writes the body to standard output: name a file for the trace \
                 with -o FILE (or leave -o out: the trace then goes to standard error)"
            ),
            Some(path) if path == dash => Self::Stdout,
            Some(path) => Self::File(path.to_owned()),
            None if body_to_stdout => Self::Stderr,
            None => Self::Stdout,
        })
    }
}

/// How the requests of a run went.
#[derive(Default)]
struct Run {
    /// A request or its body failed.
    failed: bool,
    /// A signal ended the run.
    stopped: Option<Stopped>,
    /// The reader of the body (standard output) went away.
    output_closed: bool,
}

impl Run {
    /// Whether to send no further request.
    fn over(&self) -> bool {
        self.stopped.is_some() || self.output_closed
    }
}

async fn get(args: GetArgs) -> Result<ExitCode> {
    if args.stream && matches!(args.format, Format::Har | Format::Html) {
        anyhow::bail!(
            "--stream writes one JSON line or waterfall per request; HAR and HTML are one \
             document for the whole run: drop --stream or use --format json"
        );
    }
    let trace_output = TraceOutput::of(&args)?;
    let plan = Plan::new(&args)?;
    let mut interrupt = Interrupt::install()?;
    let client = HttpClient::new(config(&args)?, options(&args))?;
    let exporter = args.otlp.exporter()?;
    // With --stream: each request's trace, written (and exported) as it completes.
    let mut stream = match client.completed_traces() {
        Some(completed) => Some((completed, StreamOutput::open(&trace_output)?)),
        None => None,
    };
    let description = args
        .description
        .clone()
        .unwrap_or_else(|| format!("{} {}", plan.method, plan.url));
    let mut body_output = BodyOutput::open(args.save_body.as_deref()).await?;
    let mut traces = Vec::new();
    let mut captures = Vec::new();
    let mut run = Run::default();
    for _ in 0..args.repeat.max(1) {
        exchange(&client, &plan, &mut body_output, &mut interrupt, &mut run).await?;
        if let Some((completed, out)) = &mut stream {
            // A request is complete when its body is read or dropped: its trace is waiting.
            while let Some(trace) = completed.try_recv() {
                out.write(args.format, &trace)?;
                crate::otlp::export(exporter.as_ref(), trace);
            }
        }
        if args.clear_trace {
            let (trace, captured) = client.get_trace(&description)?;
            traces.push(trace);
            captures = captured;
            client.clear_trace()?;
        }
        if run.over() {
            break;
        }
    }
    if let Some(stopped) = run.stopped {
        eprintln!(
            "nettrace: {}: request canceled, writing the trace",
            stopped.name()
        );
        interrupt.exit_on_next();
    }
    let flushed = match run.stopped {
        None => body_output.finish().await,
        Some(_) => tokio::time::timeout(FLUSH_AFTER_SIGNAL, body_output.finish())
            .await
            .unwrap_or_else(|_| {
                Err(anyhow::anyhow!(
                    "the body's last bytes are not written: {} is not being read",
                    body_output.name()
                ))
            }),
    };
    if let Err(error) = flushed {
        eprintln!("nettrace: {error:#}");
        run.failed = true;
    }
    if let Some((completed, out)) = &mut stream {
        while let Some(trace) = completed.try_recv() {
            out.write(args.format, &trace)?;
            crate::otlp::export(exporter.as_ref(), trace);
        }
        out.flush()?;
        if !args.pcap.is_empty() {
            captures = client.get_trace(&description)?.1;
        }
    } else if !args.clear_trace {
        let (trace, captured) = client.get_trace(&description)?;
        traces.push(trace);
        captures = captured;
    }
    client.close()?;
    if stream.is_none() {
        write_traces(&trace_output, &args, &traces, &capture_summaries(&captures))?;
    }
    for trace in traces {
        crate::otlp::export(exporter.as_ref(), trace);
    }
    // The exporter sends from its own thread; waiting for it blocks.
    let exported = tokio::task::spawn_blocking(move || crate::otlp::finish(exporter, "nettrace"))
        .await
        .unwrap_or(false);
    if !exported {
        run.failed = true;
    }
    if !args.pcap.is_empty() {
        // With --clear-trace, the captures of the last trace.
        let dir = args.pcap_dir.clone().unwrap_or_else(|| ".".into());
        write_captures(&dir, &captures)?;
    }
    Ok(match run.stopped {
        Some(stopped) => ExitCode::from(stopped.exit_code()),
        None if run.failed => ExitCode::from(1),
        None => ExitCode::SUCCESS,
    })
}

/// One request and its body, unless a signal comes first (the request is then given up:
/// the trace records it as canceled).
async fn exchange(
    client: &HttpClient,
    plan: &Plan,
    body_output: &mut BodyOutput,
    interrupt: &mut Interrupt,
    run: &mut Run,
) -> Result<()> {
    let request = plan.request()?;
    let started = Instant::now();
    let response = tokio::select! {
        biased;
        stopped = interrupt.recv() => {
            run.stopped = Some(stopped);
            return Ok(());
        }
        response = client.request(request) => response,
    };
    let response = match response {
        Ok(response) => response,
        Err(error) => {
            eprintln!("nettrace: request failed: {error}");
            run.failed = true;
            return Ok(());
        }
    };
    match transfer::receive(response.into_body(), body_output, interrupt, started).await {
        Outcome::Complete => {}
        Outcome::Failed(error) => {
            eprintln!("nettrace: {error}");
            run.failed = true;
        }
        Outcome::Interrupted(stopped) => run.stopped = Some(stopped),
        Outcome::OutputClosed => run.output_closed = true,
        Outcome::WriteFailed(error) => {
            eprintln!(
                "nettrace: writing the body to {}: {error}",
                body_output.name()
            );
            run.failed = true;
            run.output_closed = true;
        }
    }
    Ok(())
}

/// How many completed traces wait for the writer at most (`--stream`); more would be
/// dropped and counted in the next one (the writer drains them after every request).
const STREAM_CAPACITY: usize = 1024;

/// Where `--stream` writes, opened once for the whole run.
enum StreamOutput {
    Stdout(io::Stdout),
    Stderr(io::Stderr),
    File(PathBuf, BufWriter<File>),
}

impl StreamOutput {
    fn open(output: &TraceOutput) -> Result<Self> {
        Ok(match output {
            TraceOutput::Stdout => Self::Stdout(io::stdout()),
            TraceOutput::Stderr => Self::Stderr(io::stderr()),
            TraceOutput::File(path) => {
                let file =
                    File::create(path).with_context(|| format!("creating {}", path.display()))?;
                Self::File(path.clone(), BufWriter::with_capacity(64 << 10, file))
            }
        })
    }

    /// Writes one trace: a JSON line, or its waterfall; standard output and error are
    /// flushed at once, so a reader sees each request as it completes.
    fn write(&mut self, format: Format, trace: &HttpTrace) -> Result<()> {
        let write = |out: &mut dyn Write| -> io::Result<()> {
            match format {
                Format::Waterfall => {
                    out.write_all(nettrace::waterfall::render(trace).as_bytes())?;
                }
                // HAR and HTML are refused with --stream (see `get`).
                Format::Json | Format::Har | Format::Html => {
                    serde_json::to_writer(&mut *out, trace)?;
                    out.write_all(b"\n")?;
                }
            }
            out.flush()
        };
        match self {
            Self::Stdout(out) => write(&mut out.lock()).context("writing standard output"),
            Self::Stderr(out) => write(&mut out.lock()).context("writing standard error"),
            Self::File(path, out) => {
                // A file is flushed at the end (or when its buffer fills).
                let result = match format {
                    Format::Waterfall => {
                        out.write_all(nettrace::waterfall::render(trace).as_bytes())
                    }
                    Format::Json | Format::Har | Format::Html => {
                        serde_json::to_writer(&mut *out, trace)
                            .map_err(io::Error::from)
                            .and_then(|()| out.write_all(b"\n"))
                    }
                };
                result.with_context(|| format!("writing {}", path.display()))
            }
        }
    }

    fn flush(&mut self) -> Result<()> {
        match self {
            Self::File(path, out) => out
                .flush()
                .with_context(|| format!("writing {}", path.display())),
            _ => Ok(()),
        }
    }
}

/// Writes the traces as they are serialized (a trace with a socket operation per read of a
/// large download is never held whole as text); a waterfall or HTML report with the diagnosis
/// (`captures`: those of the last trace).
fn write_traces(
    output: &TraceOutput,
    args: &GetArgs,
    traces: &[HttpTrace],
    captures: &[CaptureSummary],
) -> Result<()> {
    let color = match output {
        TraceOutput::Stdout => output::use_color(&io::stdout()),
        TraceOutput::Stderr => output::use_color(&io::stderr()),
        TraceOutput::File(_) => false,
    };
    let write = |out: &mut dyn Write| -> io::Result<()> {
        match args.format {
            Format::Json if args.clear_trace => {
                for trace in traces {
                    serde_json::to_writer(&mut *out, trace)?;
                    out.write_all(b"\n")?;
                }
                Ok(())
            }
            format => output::write_rendered(out, format, traces, color, captures),
        }
    };
    match output {
        TraceOutput::Stdout => output::to_stdout(write),
        TraceOutput::Stderr => output::to_stderr(write),
        TraceOutput::File(path) => {
            let file =
                File::create(path).with_context(|| format!("creating {}", path.display()))?;
            let mut out = BufWriter::with_capacity(64 << 10, file);
            write(&mut out)
                .and_then(|()| out.flush())
                .with_context(|| format!("writing {}", path.display()))
        }
    }
}

fn config(args: &GetArgs) -> Result<HttpClientConfig> {
    // Zero is no limit, as in Go (the parser refused negative numbers and NaN).
    let limit = |secs: Option<Duration>| secs.filter(|d| !d.is_zero());
    let nameservers = args
        .nameservers
        .iter()
        .map(|n| {
            n.parse::<SocketAddr>()
                .or_else(|_| n.parse::<IpAddr>().map(|ip| SocketAddr::new(ip, 53)))
                .with_context(|| format!("invalid nameserver {n:?} (expected IP:PORT)"))
        })
        .collect::<Result<Vec<_>>>()?;
    let skipped = args
        .skip_nameservers
        .iter()
        .map(|s| {
            s.parse::<SocketAddr>()
                .map(|a| (a.ip(), Some(a.port())))
                .or_else(|_| s.parse::<IpAddr>().map(|ip| (ip, None)))
                .with_context(|| format!("invalid --skip-nameserver {s:?} (expected IP[:PORT])"))
        })
        .collect::<Result<Vec<_>>>()?;
    let mut config = HttpClientConfig {
        prefer_http2: args.http2,
        source_ip: args.source_ip,
        nameservers,
        req_timeout: limit(args.timeout),
        tcp_handshake_timeout: limit(args.connect_timeout),
        tls_handshake_timeout: limit(args.tls_timeout),
        disable_keep_alive: args.no_keepalive,
        ..HttpClientConfig::default()
    };
    if !skipped.is_empty() {
        config.skip_nameserver = Some(Arc::new(move |ip, port| {
            skipped
                .iter()
                .any(|(s_ip, s_port)| *s_ip == ip && s_port.is_none_or(|p| p == port))
                .then(|| "skipped by --skip-nameserver".to_owned())
        }));
    }
    if let Some(proxy) = &args.proxy {
        let proxy: http::Uri = proxy.parse().with_context(|| {
            let shown = nettrace::client::redact_userinfo(proxy);
            format!("invalid --proxy {shown:?}")
        })?;
        config.proxy = Some(Arc::new(move |_| Ok(Some(proxy.clone()))));
    }
    crate::tls_args::apply(args, &mut config)?;
    Ok(config)
}

fn options(args: &GetArgs) -> TraceOptions {
    let excluded: Vec<String> = args
        .exclude_headers
        .iter()
        .map(|h| h.to_ascii_lowercase())
        .collect();
    TraceOptions {
        // The degradations (no kernel data and why) are logged at info (see crate::logging).
        logging: true,
        sock_trace: args.sock_trace,
        dns_query_trace: args.dns_trace,
        http_req_trace: Some(HttpReqTraceOptions {
            header_fields: match args.headers_mode {
                Headers::None => HdrFieldsOpt::Disabled,
                Headers::Names => HdrFieldsOpt::NamesOnly,
                Headers::Lengths => HdrFieldsOpt::ValueLenOnly,
                Headers::Values => HdrFieldsOpt::WithValues,
            },
            exclude_header_field: (!excluded.is_empty()).then(|| {
                Arc::new(move |name: &str| excluded.contains(&name.to_ascii_lowercase()))
                    as Arc<dyn Fn(&str) -> bool + Send + Sync>
            }),
        }),
        kernel: match args.kernel {
            Kernel::Auto => KernelMode::Auto,
            Kernel::Off => KernelMode::Off,
            Kernel::Require => KernelMode::Require,
        },
        kernel_config: Default::default(),
        kernel_daemon: args.daemon_socket.clone(),
        packet_capture: (!args.pcap.is_empty()).then(|| PacketCaptureOptions {
            interfaces: args.pcap.clone(),
            snaplen: args.snaplen,
            total_size_limit: args.pcap_limit,
            include_icmp: args.icmp,
            include_arp: args.arp,
            tcp_without_payload: args.tcp_no_payload,
            tcp_headers_only: args.tcp_headers_only,
            tls_keys: args.tls_keys,
        }),
        conntrack: args.conntrack,
        limits: Default::default(),
        completed_traces: args.stream.then_some(STREAM_CAPACITY),
    }
}

/// What each capture missed, for the diagnosis.
fn capture_summaries(captures: &[PacketCapture]) -> Vec<CaptureSummary> {
    captures
        .iter()
        .map(|c| CaptureSummary {
            interface: c.interface_name.clone(),
            packets: c.packets.len(),
            truncated: c.truncated,
            lost_packets: c.lost_packets,
        })
        .collect()
}

/// Writes each capture as DIR/<iface>.pcap and DIR/<iface>.pcapng, and its TLS secrets as
/// DIR/<iface>.keys when there are any.
fn write_captures(dir: &std::path::Path, captures: &[PacketCapture]) -> Result<()> {
    for capture in captures {
        capture.write_files(dir).context("writing the capture")?;
        for shortfall in capture.shortfalls() {
            tracing::warn!("{shortfall}");
        }
    }
    Ok(())
}
