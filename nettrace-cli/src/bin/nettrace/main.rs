//! `nettrace`: send HTTP requests through a traced client and print the trace, or show a trace
//! written earlier (by this tool or by Go nettrace).
//!
//! ```text
//! nettrace get https://example.com/ --dns-trace --sock-trace --headers lengths
//! nettrace get https://example.com/ --format waterfall
//! nettrace get localhost:8100/upload -d @form.txt --save-body reply.html -o trace.json
//! nettrace show nettrace.json
//! nettrace explain nettrace.json
//! ```
//!
//! This binary and `nettrace-loader` make up the package `nettrace-cli`: what belongs there is
//! argument parsing (clap), output formats and files, and process concerns (exit codes,
//! signals, logs); everything they trace or render comes from the library `nettrace` and
//! the model crate `nettrace-model`.
mod args;
mod explain;
mod get;
mod interrupt;
#[path = "../../logging.rs"]
mod logging;
#[path = "../../otlp.rs"]
mod otlp;
mod output;
mod request;
mod show;
mod tls_args;
mod transfer;

use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = args::Cli::parse_in_order();
    logging::init(cli.verbose);
    let result = match cli.command {
        args::Command::Get(get) => get::run(*get),
        args::Command::Show(show) => show::run(&show),
        args::Command::Explain(explain) => explain::run(&explain),
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
