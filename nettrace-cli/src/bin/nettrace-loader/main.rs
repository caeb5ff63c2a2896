//! `nettrace-loader`: nettrace's eBPF side, run as root.
//!
//! - `check`: loads the programs, traces one loopback connection of its own, prints the
//!   kernel's events.
//! - `trace [--pcap IFACE ...] [--conntrack] [-o FILE] -- COMMAND [ARGS]`: runs COMMAND in a
//!   fresh cgroup and writes the trace of all its sockets, from kernel events alone;
//!   `--cgroup PATH` / `--pid PID` trace what already runs, until Ctrl-C or SIGTERM (or the
//!   process ends); SIGINT and SIGTERM always end the trace, which is written before exit;
//!   `--pid` moves the process into a cgroup of its own for that time (`pid_cgroup.rs`).
//! - `serve [--socket PATH] [--group GROUP]`: the daemon through which unprivileged processes
//!   get the kernel events of the sockets they hold (descriptors passed with `SCM_RIGHTS`).
//!
//! Part of the package `nettrace-cli` (see the `nettrace` binary): argument parsing, output
//! and process concerns only; the tracing itself is the library's (`nettrace::program`,
//! `nettrace::daemon`, `nettrace::kernel`).
use std::{path::PathBuf, process::ExitCode};

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use nettrace::kernel::KernelConfig;

mod cgroup;
mod check;
#[path = "../../logging.rs"]
mod logging;
#[path = "../../otlp.rs"]
mod otlp;
mod pid_cgroup;
mod probe;
mod serve;
mod stop;
mod trace;

#[derive(Parser)]
#[command(version, about = "Loads nettrace's eBPF programs (run as root)")]
struct Cli {
    /// More log lines on standard error: -v debug, -vv trace (RUST_LOG, when set, decides
    /// instead).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Load and attach the programs, trace one loopback connection, print the kernel's events.
    Check {
        /// Size of the event ring buffer in bytes (a power of two, multiple of the page size).
        #[arg(long, default_value_t = KernelConfig::default().ring_bytes)]
        ring_bytes: u32,
    },
    /// Trace every socket of a command (run in a fresh cgroup), a cgroup or a process.
    Trace(TraceArgs),
    /// Serve unprivileged clients on a Unix socket: the kernel facts of their own sockets.
    Serve(serve::ServeArgs),
    /// A client of `serve`, for tests and checks.
    #[command(hide = true)]
    Probe(probe::ProbeArgs),
}

/// Arguments of `trace`.
#[derive(Args, Debug)]
pub(crate) struct TraceArgs {
    /// Capture the traced connections' packets on this interface (repeatable); written as
    /// `DIR/<iface>.pcap` and `DIR/<iface>.pcapng`.
    #[arg(long = "pcap", value_name = "IFACE")]
    pub(crate) pcap: Vec<String>,
    /// Folder for the captures (default: the current folder).
    #[arg(long, value_name = "DIR")]
    pub(crate) pcap_dir: Option<PathBuf>,
    /// Bytes kept per interface at most.
    #[arg(long, value_name = "BYTES", default_value_t = nettrace::capture::DEFAULT_TOTAL_SIZE_LIMIT)]
    pub(crate) pcap_limit: usize,
    /// Attach each connection's conntrack entry.
    #[arg(long)]
    pub(crate) conntrack: bool,
    /// Do not record each send/receive call as a socket operation.
    #[arg(long)]
    pub(crate) no_sock_trace: bool,
    /// Write the trace (JSON) here instead of standard output.
    #[arg(short = 'o', long, value_name = "FILE")]
    pub(crate) output: Option<PathBuf>,
    /// Description of the trace (default: the command line or the target).
    #[arg(long)]
    pub(crate) description: Option<String>,
    /// Trace the sockets created from now on in this cgroup (v2 path), until Ctrl-C.
    #[arg(long, value_name = "PATH", conflicts_with_all = ["pid", "command"])]
    pub(crate) cgroup: Option<PathBuf>,
    /// Trace the sockets created from now on by this process and its descendants, until
    /// Ctrl-C or its end. They are moved into a child cgroup of their cgroup for that time
    /// (and back afterwards); refused, naming the cgroup, when they cannot be moved.
    #[arg(long, value_name = "PID", conflicts_with = "command")]
    pub(crate) pid: Option<u32>,
    /// The command to run and trace.
    #[arg(last = true, value_name = "COMMAND")]
    pub(crate) command: Vec<String>,
    /// Write each connection's trace as one JSON line when it closes (what is still open at
    /// the end comes last), and let the tracer forget it: memory stays bounded on long runs.
    #[arg(long)]
    pub(crate) stream: bool,
    /// OpenTelemetry export.
    #[command(flatten)]
    pub(crate) otlp: otlp::OtlpArgs,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    logging::init(cli.verbose);
    match run(cli) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("nettrace-loader: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    match cli.command {
        Command::Check { ring_bytes } => runtime
            .block_on(check::check(KernelConfig {
                ring_bytes,
                ..KernelConfig::default()
            }))
            .map(|()| ExitCode::SUCCESS),
        Command::Trace(args) => runtime.block_on(trace::run(args)),
        Command::Serve(args) => runtime.block_on(serve::run(args)),
        Command::Probe(args) => probe::run(&args),
    }
}
