//! `nettrace-loader serve`: the daemon through which unprivileged processes get the kernel
//! facts of their own sockets (see `nettrace::daemon`). SIGINT (Ctrl-C) and SIGTERM (`kill`,
//! systemd's stop) end it alike: its socket file is removed and it exits 0.
use std::{path::PathBuf, process::ExitCode};

use anyhow::{Context, Result, bail};
use clap::Args;
use nettrace::daemon::{DEFAULT_SOCKET_PATH, ServeOptions, serve};
use tokio::signal::unix::{SignalKind, signal};

/// Arguments of `serve`.
#[derive(Args, Debug)]
pub(crate) struct ServeArgs {
    /// The Unix socket to listen on.
    #[arg(long, value_name = "PATH", default_value = DEFAULT_SOCKET_PATH)]
    socket: PathBuf,
    /// Group allowed to connect (name or number); everyone when not given.
    #[arg(long, value_name = "GROUP")]
    group: Option<String>,
}

pub(crate) async fn run(args: ServeArgs) -> Result<ExitCode> {
    let group = args.group.as_deref().map(group_id).transpose()?;
    let options = ServeOptions {
        socket_path: args.socket.clone(),
        group,
        kernel_config: Default::default(),
    };
    // Listened to before the daemon starts: a stop that comes while it loads still removes
    // the socket.
    let mut interrupt = signal(SignalKind::interrupt()).context("listening for SIGINT")?;
    let mut terminate = signal(SignalKind::terminate()).context("listening for SIGTERM")?;
    let (failed_tx, failed_rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("nettrace-serve".to_owned())
        .spawn(move || {
            let result = serve(&options, || {
                tracing::info!("listening on {}", options.socket_path.display());
            });
            let _ = failed_tx.send(result);
        })
        .context("starting the daemon thread")?;
    tokio::select! {
        _ = interrupt.recv() => tracing::info!("SIGINT: stopping"),
        _ = terminate.recv() => tracing::info!("SIGTERM: stopping"),
        result = failed_rx => match result {
            Ok(Err(error)) => return Err(error).context("serving"),
            _ => bail!("the daemon thread ended"),
        },
    }
    let _ = std::fs::remove_file(&args.socket);
    Ok(ExitCode::SUCCESS)
}

fn group_id(group: &str) -> Result<u32> {
    if let Ok(gid) = group.parse() {
        return Ok(gid);
    }
    let name = std::ffi::CString::new(group).context("group name")?;
    // SAFETY: `name` is a valid C string; getgrnam returns null or a pointer to static data
    // that is read at once (the loader is single-threaded here).
    let entry = unsafe { libc::getgrnam(name.as_ptr()) };
    if entry.is_null() {
        bail!("no group {group:?}");
    }
    // SAFETY: non-null pointer returned by getgrnam, valid until the next call.
    Ok(unsafe { (*entry).gr_gid })
}
