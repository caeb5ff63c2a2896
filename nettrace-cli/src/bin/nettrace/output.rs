//! Standard output and input as a pipeline expects them: a reader that went away (`| head`)
//! ends the output quietly, output is written as it is made (a trace of any size is never
//! held whole as text), and input is read up to a stated size.
use std::io::{self, BufWriter, IsTerminal, Read, Write};

use anyhow::{Context, Result, bail};
use nettrace::model::{
    HttpTrace,
    diagnosis::{self, CaptureSummary},
    har, html, waterfall,
};

use crate::args::Format;

/// Whether to colour what goes to `stream`: only a terminal, and never with `NO_COLOR` set
/// (to anything but the empty string, as no-color.org asks).
pub(crate) fn use_color(stream: &impl IsTerminal) -> bool {
    stream.is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// Writes `traces` in a format other than JSON: a waterfall per trace, each followed by its
/// diagnosis, or one HAR archive, or one HTML report for them all with the diagnosis on top.
/// `captures`: what the packet captures of the last trace missed (for the diagnosis).
pub(crate) fn write_rendered(
    out: &mut dyn Write,
    format: Format,
    traces: &[HttpTrace],
    color: bool,
    captures: &[CaptureSummary],
) -> io::Result<()> {
    let captures_of = |i: usize| if i + 1 == traces.len() { captures } else { &[] };
    match format {
        Format::Json => {
            for trace in traces {
                serde_json::to_writer_pretty(&mut *out, trace)?;
                out.write_all(b"\n")?;
            }
        }
        Format::Waterfall => {
            let options = waterfall::Options {
                color,
                ..waterfall::Options::default()
            };
            for (i, trace) in traces.iter().enumerate() {
                out.write_all(waterfall::render_with(trace, &options).as_bytes())?;
                crate::explain::write_after_waterfall(out, trace, captures_of(i))?;
            }
        }
        Format::Har => {
            serde_json::to_writer_pretty(&mut *out, &har::to_har(traces))?;
            out.write_all(b"\n")?;
        }
        Format::Html => {
            let findings: Vec<diagnosis::Finding> = traces
                .iter()
                .enumerate()
                .flat_map(|(i, trace)| diagnosis::diagnose_with_captures(trace, captures_of(i)))
                .collect();
            let shown = diagnosis::for_html(&findings);
            out.write_all(html::render(traces, Some(&shown)).as_bytes())?;
        }
    }
    Ok(())
}

/// Writes `text` to standard output. A closed pipe is not an error: whoever read the output
/// has what they wanted.
pub(crate) fn write_stdout(text: &str) -> Result<()> {
    to_stdout(|out| out.write_all(text.as_bytes()))
}

/// Lets `write` write to (buffered) standard output, then flushes it. A closed pipe is not
/// an error.
pub(crate) fn to_stdout(write: impl FnOnce(&mut dyn Write) -> io::Result<()>) -> Result<()> {
    quiet_on_broken_pipe(
        BufWriter::with_capacity(64 << 10, io::stdout().lock()),
        write,
        "standard output",
    )
}

/// As [`to_stdout`], to standard error.
pub(crate) fn to_stderr(write: impl FnOnce(&mut dyn Write) -> io::Result<()>) -> Result<()> {
    quiet_on_broken_pipe(
        BufWriter::with_capacity(64 << 10, io::stderr().lock()),
        write,
        "standard error",
    )
}

fn quiet_on_broken_pipe<W: Write>(
    mut out: BufWriter<W>,
    write: impl FnOnce(&mut dyn Write) -> io::Result<()>,
    what: &str,
) -> Result<()> {
    match write(&mut out).and_then(|()| out.flush()) {
        Err(error) if error.kind() == io::ErrorKind::BrokenPipe => {
            // What is still buffered has nowhere to go: drop it without a second error.
            let _ = out.into_parts();
            Ok(())
        }
        result => result.with_context(|| format!("writing to {what}")),
    }
}

/// Reads `input` whole as UTF-8 text, refusing more than `limit` bytes (`what` names the
/// input in errors).
pub(crate) fn read_bounded(input: impl Read, limit: u64, what: &str) -> Result<String> {
    let mut bytes = Vec::new();
    input
        .take(limit.saturating_add(1))
        .read_to_end(&mut bytes)
        .with_context(|| format!("reading {what}"))?;
    if bytes.len() as u64 > limit {
        bail!(
            "{what} is larger than {} MiB, the most a trace file may hold",
            limit >> 20
        );
    }
    String::from_utf8(bytes).with_context(|| format!("{what} is not UTF-8 text"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_up_to_the_limit_is_read_and_beyond_it_refused() {
        assert_eq!(read_bounded(&b"abcd"[..], 4, "x").unwrap(), "abcd");
        let error = read_bounded(&b"abcde"[..], 4, "x").unwrap_err();
        assert!(error.to_string().contains("larger than"), "{error}");
        assert!(read_bounded(&[0xff_u8][..], 4, "x").is_err());
    }

    /// A writer whose reader went away after `room` bytes.
    struct ClosedAfter {
        room: usize,
    }

    impl Write for ClosedAfter {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if self.room == 0 {
                return Err(io::ErrorKind::BrokenPipe.into());
            }
            let n = buf.len().min(self.room);
            self.room -= n;
            Ok(n)
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_reader_gone_mid_output_ends_it_quietly_and_other_errors_are_reported() {
        let big = vec![b'x'; 1 << 20];
        let out = BufWriter::new(ClosedAfter { room: 1000 });
        assert!(quiet_on_broken_pipe(out, |w| w.write_all(&big), "x").is_ok());
        let out = BufWriter::new(ClosedAfter { room: 1000 });
        let failed = quiet_on_broken_pipe(out, |_| Err(io::ErrorKind::StorageFull.into()), "x");
        assert!(failed.is_err());
    }
}
