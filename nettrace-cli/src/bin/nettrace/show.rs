//! `nettrace show FILE`: checks and shows a trace JSON file (`-` reads standard input).
use std::{fs::File, io, path::Path, process::ExitCode};

use anyhow::{Context, Result};
use nettrace::model::HttpTrace;

use crate::{
    args::{Format, ShowArgs},
    output::{read_bounded, to_stdout, use_color, write_rendered, write_stdout},
};

/// The largest trace `show` reads: far above any real trace (a 20,000-request trace with
/// every option is about 30 MiB), and a bound on what a wrong file (`/dev/zero`) can cost.
pub(crate) const MAX_TRACE_BYTES: u64 = 256 << 20;

pub(crate) fn run(args: &ShowArgs) -> Result<ExitCode> {
    let (text, name) = if args.file == Path::new("-") {
        let text = read_bounded(io::stdin().lock(), MAX_TRACE_BYTES, "standard input")?;
        (text, "standard input".to_owned())
    } else {
        let name = args.file.display().to_string();
        let file = File::open(&args.file).with_context(|| format!("opening {name}"))?;
        (read_bounded(file, MAX_TRACE_BYTES, &name)?, name)
    };
    let trace: HttpTrace =
        serde_json::from_str(&text).with_context(|| format!("{name} is not a nettrace trace"))?;
    let exporter = args.otlp.exporter()?;
    match args.format {
        Format::Json => write_stdout(&text)?,
        format => {
            let color = use_color(&io::stdout());
            to_stdout(|out| write_rendered(out, format, std::slice::from_ref(&trace), color, &[]))?;
        }
    }
    crate::otlp::export(exporter.as_ref(), trace);
    Ok(if crate::otlp::finish(exporter, "nettrace") {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
