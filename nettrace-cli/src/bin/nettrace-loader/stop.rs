//! The signals that end `nettrace-loader trace`: SIGINT (Ctrl-C) and SIGTERM (`kill`, a
//! service manager stopping it). Either ends the wait (and a traced command is killed); the
//! trace of what was seen is then written before the loader exits.
//!
//! ```ignore
//! let mut stop = StopSignals::install()?;
//! tokio::select! {
//!     signal = stop.recv() => eprintln!("{signal}: writing the trace"),
//!     status = child.wait() => { /* ... */ }
//! }
//! ```
use anyhow::{Context, Result};
use tokio::signal::unix::{Signal, SignalKind, signal};

/// SIGINT and SIGTERM, listened to from [`StopSignals::install`] on: one that comes earlier
/// (while the programs load) is kept and ends the next wait at once.
pub(crate) struct StopSignals {
    int: Signal,
    term: Signal,
}

impl StopSignals {
    /// Starts listening (inside the runtime).
    pub(crate) fn install() -> Result<Self> {
        Ok(Self {
            int: signal(SignalKind::interrupt()).context("listening for SIGINT")?,
            term: signal(SignalKind::terminate()).context("listening for SIGTERM")?,
        })
    }

    /// Waits for the next signal; returns its name. Cancel-safe (a `select!` branch).
    pub(crate) async fn recv(&mut self) -> &'static str {
        tokio::select! {
            _ = self.int.recv() => "SIGINT",
            _ = self.term.recv() => "SIGTERM",
        }
    }
}
