//! `nettrace`: send HTTP requests through a traced client and print the trace, or show a trace
//! written earlier (by this tool or by Go nettrace).
//!
//! ```text
//! nettrace get https://example.com/ --dns-trace --sock-trace --headers lengths
//! nettrace get https://example.com/ --format waterfall
//! nettrace show nettrace.json
//! ```
//!
//! This binary and `nettrace-loader` make up the package `nettrace-cli`: what belongs there is
//! argument parsing (clap), output formats and files, and process concerns (exit codes,
//! signals, logs); everything they trace or render comes from the library `nettrace` and
//! the model crate `nettrace-model`.
mod args;
mod get;
mod output;
mod show;
mod tls_args;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = args::Cli::parse();
    let result = match cli.command {
        args::Command::Get(get) => get::run(*get),
        args::Command::Show(show) => show::run(&show),
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("nettrace: {error:#}");
            // Usage-level problems (unreadable files, bad option values) exit 2 like clap's.
            ExitCode::from(2)
        }
    }
}
