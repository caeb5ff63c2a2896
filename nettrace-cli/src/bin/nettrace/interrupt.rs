//! SIGINT (Ctrl-C) and SIGTERM during `nettrace get`: the request in flight is given up and
//! the trace written, then the process exits with 128 + the signal's number, as a shell
//! reports a program killed by it (130, 143). A second signal while the trace is being
//! written exits at once.
//!
//! ```ignore
//! let mut interrupt = Interrupt::install()?;
//! tokio::select! {
//!     stopped = interrupt.recv() => { /* write the trace, then exit stopped.exit_code() */ }
//!     response = client.request(request) => { /* ... */ }
//! }
//! ```
use anyhow::{Context, Result};
use tokio::signal::unix::{Signal, SignalKind, signal};

/// The signals that end a run, listened to from [`Interrupt::install`] on (until then they
/// kill the process as usual).
pub(crate) struct Interrupt {
    int: Signal,
    term: Signal,
}

/// The signal that ended a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Stopped {
    /// SIGINT.
    Interrupt,
    /// SIGTERM.
    Terminate,
}

impl Stopped {
    /// The exit code a shell shows for a program killed by the signal.
    pub(crate) fn exit_code(self) -> u8 {
        match self {
            Self::Interrupt => 128 + 2,
            Self::Terminate => 128 + 15,
        }
    }

    /// The signal's name.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Interrupt => "SIGINT",
            Self::Terminate => "SIGTERM",
        }
    }
}

impl Interrupt {
    /// Starts listening (inside the runtime).
    pub(crate) fn install() -> Result<Self> {
        Ok(Self {
            int: signal(SignalKind::interrupt()).context("listening for SIGINT")?,
            term: signal(SignalKind::terminate()).context("listening for SIGTERM")?,
        })
    }

    /// Waits for the next signal. Cancel-safe: usable as a `select!` branch again and again.
    pub(crate) async fn recv(&mut self) -> Stopped {
        tokio::select! {
            _ = self.int.recv() => Stopped::Interrupt,
            _ = self.term.recv() => Stopped::Terminate,
        }
    }

    /// After the first signal: a second one exits at once with its code, for when writing
    /// the trace takes too long (a daemon that does not answer).
    pub(crate) fn exit_on_next(mut self) {
        tokio::spawn(async move {
            let stopped = self.recv().await;
            eprintln!(
                "nettrace: {} again: exiting without the trace",
                stopped.name()
            );
            std::process::exit(i32::from(stopped.exit_code()));
        });
    }
}
