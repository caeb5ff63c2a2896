//! `nettrace show FILE`: checks and shows a trace JSON file.
use std::{fs, process::ExitCode};

use anyhow::{Context, Result};
use nettrace::model::HttpTrace;

use crate::args::{Format, ShowArgs};

pub(crate) fn run(args: &ShowArgs) -> Result<ExitCode> {
    let text = fs::read_to_string(&args.file)
        .with_context(|| format!("reading {}", args.file.display()))?;
    let trace: HttpTrace = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a nettrace trace", args.file.display()))?;
    match args.format {
        Format::Json => print!("{text}"),
        Format::Waterfall => print!("{}", nettrace::waterfall::render(&trace)),
    }
    Ok(ExitCode::SUCCESS)
}
