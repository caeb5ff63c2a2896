//! `nettrace-loader probe` (hidden): a client of `serve` for tests and checks. Registers one
//! TCP socket, connects it, exchanges a few bytes and prints the events it receives; with
//! `--steal COOKIE` it first tries to register another client's socket by cookie and by
//! descriptor number (both must be refused).
use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpStream},
    path::PathBuf,
    process::ExitCode,
    time::Duration,
};

use anyhow::{Context, Result};
use clap::Args;
use nettrace::{
    daemon::{DaemonClient, protocol::Message},
    kernel::KernelEvent,
};

/// Arguments of `probe`.
#[derive(Args, Debug)]
pub(crate) struct ProbeArgs {
    /// The daemon's socket.
    #[arg(long, value_name = "PATH")]
    socket: PathBuf,
    /// Where to connect the registered TCP socket.
    #[arg(long, value_name = "ADDR")]
    connect: SocketAddr,
    /// Wait this long after registering before connecting.
    #[arg(long, default_value_t = 0)]
    hold_ms: u64,
    /// Try to register this cookie (another client's) first.
    #[arg(long)]
    steal: Option<u64>,
}

pub(crate) fn run(args: &ProbeArgs) -> Result<ExitCode> {
    let mut daemon = DaemonClient::connect(&args.socket).context("connecting to the daemon")?;
    if let Some(cookie) = args.steal {
        let by_cookie = format!(r#"{{"op":"register","cookie":{cookie}}}"#);
        report_steal(daemon.send_raw(by_cookie.as_bytes(), None)?);
        // Descriptor numbers mean nothing across processes: only SCM_RIGHTS carries one.
        report_steal(daemon.send_raw(br#"{"op":"register","fd":3}"#, None)?);
        // A descriptor that is not a socket.
        let stdin = std::io::stdin();
        report_steal(daemon.send_raw(
            br#"{"op":"register"}"#,
            Some(std::os::fd::AsFd::as_fd(&stdin)),
        )?);
        report_steal(daemon.send_raw(b"\xff garbage", None)?);
    }
    let domain = socket2::Domain::for_address(args.connect);
    let socket = socket2::Socket::new(domain, socket2::Type::STREAM, None)?;
    let cookie = daemon.register(&socket).context("registering")?;
    println!("cookie {cookie}");
    std::io::stdout().flush()?;
    std::thread::sleep(Duration::from_millis(args.hold_ms));
    socket.connect(&args.connect.into())?;
    let mut stream: TcpStream = socket.into();
    stream.write_all(b"probe")?;
    stream.shutdown(std::net::Shutdown::Write)?;
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    drop(stream);
    // Every event so far is queued once the daemon answers the sync.
    let report = daemon.sync().context("syncing")?;
    println!(
        "synced dropped {} lost {}",
        report.dropped, report.lost_events
    );
    for _ in 0..100_000 {
        match daemon.next_event(Duration::ZERO)? {
            Some(event) => println!("event {} {}", event.cookie().0, kind(&event)),
            None => break,
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The event's kind as the test output names it.
fn kind(event: &KernelEvent) -> &'static str {
    match event {
        KernelEvent::TcpState(_) => "tcp-state",
        KernelEvent::SockOps(_) => "sock-ops",
        KernelEvent::SockMsg(_) => "sock-msg",
        KernelEvent::SockCalls(_) => "sock-calls",
        KernelEvent::TcpReset(_) => "tcp-reset",
        KernelEvent::Packet(_) => "packet",
        KernelEvent::SocketCreated(_) => "socket-created",
        KernelEvent::SocketReleased(_) => "socket-released",
        KernelEvent::Connect(_) => "connect",
    }
}

fn report_steal(answer: Message) {
    match answer {
        Message::Error { error, .. } => println!("steal refused: {error}"),
        other => println!("steal ACCEPTED: {other:?}"),
    }
}
