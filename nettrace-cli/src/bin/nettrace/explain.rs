//! `nettrace explain FILE`: the diagnosis of a trace JSON file (`-` reads standard input) as
//! text (a verdict, then the findings with their evidence and what to check next) or as a
//! JSON array of findings. Exit code 0 without an error finding, 1 with one, 2 when the file
//! cannot be read.
use std::{fs::File, io, io::Write, path::Path, process::ExitCode};

use anyhow::{Context, Result};
use nettrace::model::{
    HttpTrace,
    diagnosis::{self, CaptureSummary, Finding, Severity},
};

use crate::{
    args::{ExplainArgs, ExplainFormat},
    output::{read_bounded, write_stdout},
    show::MAX_TRACE_BYTES,
};

pub(crate) fn run(args: &ExplainArgs) -> Result<ExitCode> {
    let trace = read_trace(&args.file)?;
    let findings = diagnosis::diagnose(&trace);
    match args.format {
        ExplainFormat::Text => write_stdout(&diagnosis::render_text(&trace, &findings))?,
        ExplainFormat::Json => {
            let mut json = serde_json::to_string_pretty(&findings)?;
            json.push('\n');
            write_stdout(&json)?;
        }
    }
    Ok(if has_error(&findings) {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// Reads and parses a trace file as `show` does, at most [`MAX_TRACE_BYTES`].
fn read_trace(file: &Path) -> Result<HttpTrace> {
    let (text, name) = if file == Path::new("-") {
        let text = read_bounded(io::stdin().lock(), MAX_TRACE_BYTES, "standard input")?;
        (text, "standard input".to_owned())
    } else {
        let name = file.display().to_string();
        let opened = File::open(file).with_context(|| format!("opening {name}"))?;
        (read_bounded(opened, MAX_TRACE_BYTES, &name)?, name)
    };
    serde_json::from_str(&text).with_context(|| format!("{name} is not a nettrace trace"))
}

fn has_error(findings: &[Finding]) -> bool {
    findings.iter().any(|f| f.severity == Severity::Error)
}

/// The findings section after a waterfall: a blank line, then the diagnosis as text.
pub(crate) fn write_after_waterfall(
    out: &mut dyn Write,
    trace: &HttpTrace,
    captures: &[CaptureSummary],
) -> io::Result<()> {
    let findings = diagnosis::diagnose_with_captures(trace, captures);
    out.write_all(b"\n")?;
    out.write_all(diagnosis::render_text(trace, &findings).as_bytes())
}
