//! A response body as it arrives: frame by frame, written to `--save-body FILE` (`-`:
//! standard output) or counted and dropped, never held whole, so that a download of any
//! size costs the same memory. A progress line (bytes, rate, elapsed) shows on standard
//! error for a transfer that lasts over a second, when standard error is a terminal.
//!
//! ```ignore
//! let mut out = BodyOutput::open(Some(Path::new("big.iso"))).await?;
//! let outcome = receive(response.into_body(), &mut out, &mut interrupt, started).await;
//! out.finish().await?;
//! ```
//!
//! A signal, or a reader of standard output that went away (`| head -c 100`), ends the
//! transfer: the body is given up with `ResponseBody::cancel`, which the trace records.
use std::{
    io::{self, IsTerminal},
    path::{Path, PathBuf},
    pin::Pin,
    time::{Duration, Instant},
};

use anyhow::{Context, Result};
use http_body::Body as _;
use http_body_util::BodyExt;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use nettrace::client::{BodyError, ResponseBody};
use tokio::io::{AsyncWrite, AsyncWriteExt};

use crate::interrupt::{Interrupt, Stopped};

/// How the transfer of a body ended.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// Read to its end.
    Complete,
    /// Reading failed (the trace has the error).
    Failed(BodyError),
    /// A signal came; the body was given up.
    Interrupted(Stopped),
    /// The body's destination is standard output and its reader went away; the body was
    /// given up. Not an error, as with any pipe.
    OutputClosed,
    /// Writing the body failed (a full disk); the body was given up.
    WriteFailed(io::Error),
}

/// Where the bodies go: a file, standard output, or nowhere (counted and dropped).
pub(crate) struct BodyOutput {
    writer: Option<Pin<Box<dyn AsyncWrite + Send>>>,
    /// How errors name it.
    name: String,
    to_stdout: bool,
}

impl BodyOutput {
    /// Opens `path` (created or truncated; `-`: standard output), or nothing when `None`.
    pub(crate) async fn open(path: Option<&Path>) -> Result<Self> {
        let Some(path) = path else {
            return Ok(Self {
                writer: None,
                name: String::new(),
                to_stdout: false,
            });
        };
        if path == Path::new("-") {
            return Ok(Self {
                writer: Some(Box::pin(tokio::io::stdout())),
                name: "standard output".to_owned(),
                to_stdout: true,
            });
        }
        let file = tokio::fs::File::create(path)
            .await
            .with_context(|| format!("creating {}", path.display()))?;
        Ok(Self {
            writer: Some(Box::pin(file)),
            name: PathBuf::from(path).display().to_string(),
            to_stdout: false,
        })
    }

    /// The destination as errors name it.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    async fn write(&mut self, data: &[u8]) -> io::Result<()> {
        match &mut self.writer {
            Some(writer) => writer.write_all(data).await,
            None => Ok(()),
        }
    }

    /// Writes out what is buffered (a file's last bytes). A reader of standard output that
    /// went away is not an error.
    pub(crate) async fn finish(&mut self) -> Result<()> {
        let Some(writer) = &mut self.writer else {
            return Ok(());
        };
        match writer.flush().await {
            Err(error) if self.to_stdout && error.kind() == io::ErrorKind::BrokenPipe => Ok(()),
            result => result.with_context(|| format!("writing the body to {}", self.name)),
        }
    }
}

/// Reads `body` to its end into `out`, unless a signal comes first or writing fails.
/// `started` is when the request was sent (the progress line counts from there).
pub(crate) async fn receive(
    mut body: ResponseBody,
    out: &mut BodyOutput,
    interrupt: &mut Interrupt,
    started: Instant,
) -> Outcome {
    let mut progress = Progress::new(started, body.size_hint().exact());
    let outcome = loop {
        let frame = tokio::select! {
            biased;
            stopped = interrupt.recv() => break Outcome::Interrupted(stopped),
            frame = body.frame() => frame,
        };
        let data = match frame {
            None => break Outcome::Complete,
            Some(Err(error)) => break Outcome::Failed(error),
            Some(Ok(frame)) => match frame.into_data() {
                Ok(data) => data,
                // Trailers.
                Err(_) => continue,
            },
        };
        progress.advance(data.len());
        let written = tokio::select! {
            biased;
            stopped = interrupt.recv() => break Outcome::Interrupted(stopped),
            written = out.write(&data) => written,
        };
        match written {
            Ok(()) => {}
            Err(error) if out.to_stdout && error.kind() == io::ErrorKind::BrokenPipe => {
                break Outcome::OutputClosed;
            }
            Err(error) => break Outcome::WriteFailed(error),
        }
    };
    if !matches!(outcome, Outcome::Complete | Outcome::Failed(_)) {
        body.cancel();
    }
    progress.finish();
    outcome
}

/// The progress line of one transfer: drawn from its first second on, and only on a
/// terminal.
struct Progress {
    started: Instant,
    /// The body's length, when the response says it (`Content-Length`, not gzip).
    total: Option<u64>,
    received: u64,
    /// Whether standard error is a terminal.
    terminal: bool,
    bar: Option<ProgressBar>,
}

/// How long a transfer lasts before its progress line shows.
const QUIET_FOR: Duration = Duration::from_secs(1);

impl Progress {
    fn new(started: Instant, total: Option<u64>) -> Self {
        Self {
            started,
            total,
            received: 0,
            terminal: io::stderr().is_terminal(),
            bar: None,
        }
    }

    fn advance(&mut self, bytes: usize) {
        self.received += bytes as u64;
        match &self.bar {
            Some(bar) => bar.set_position(self.received),
            None if self.terminal && self.started.elapsed() >= QUIET_FOR => {
                self.bar = Some(self.draw());
            }
            None => {}
        }
    }

    /// The progress bar, shown from now on.
    fn draw(&self) -> ProgressBar {
        let template = match self.total {
            Some(_) => {
                "{bytes}/{total_bytes} ({percent}%) at {binary_bytes_per_sec}, {elapsed} (eta {eta})"
            }
            None => "{bytes} at {binary_bytes_per_sec}, {elapsed}",
        };
        let bar = ProgressBar::with_draw_target(self.total, ProgressDrawTarget::stderr())
            .with_elapsed(self.started.elapsed());
        if let Ok(style) = ProgressStyle::with_template(template) {
            bar.set_style(style);
        }
        bar.set_position(self.received);
        // The rate and the ETA count from here, not from a jump from 0 to what was received
        // before the bar showed.
        bar.reset_eta();
        bar
    }

    /// Leaves the last state of the line on the terminal, as curl does.
    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.abandon();
        }
    }
}
