//! The log of both binaries: one line per event on standard error, through `tracing`.
//!
//! By default the warnings, and the library's info-level degradations (no kernel data and
//! why, conntrack inactive or without counters, capture limits), show; `-v` adds the debug
//! lines of the nettrace crates, `-vv` their trace lines (every event the recorder folds).
//! `RUST_LOG`, when set, replaces all of this (`RUST_LOG=off` silences the log).
//!
//! ```text
//! nettrace get http://localhost:8100/ -v          # debug lines of nettrace
//! RUST_LOG=nettrace::dns=trace nettrace get ...   # what RUST_LOG says, alone
//! ```
//!
//! Shared by `nettrace` and `nettrace-loader` (each includes this file as its `logging`
//! module). What a command reports as its result (a failed request, an interrupted run) is
//! printed by the command itself, not logged: `RUST_LOG=off` does not hide it.
use tracing_subscriber::EnvFilter;

/// The filter for `-v` given `verbose` times, when `RUST_LOG` is not set. The target
/// `nettrace` matches every nettrace crate (`nettrace`, `nettrace_loader`, ...): directives
/// match target prefixes.
fn default_filter(verbose: u8) -> &'static str {
    match verbose {
        0 => "warn,nettrace=info",
        1 => "warn,nettrace=debug",
        _ => "warn,nettrace=trace",
    }
}

/// Installs the subscriber writing to standard error. A `RUST_LOG` that does not parse is
/// reported and the default is used.
pub(crate) fn init(verbose: u8) {
    let from_env = std::env::var("RUST_LOG")
        .ok()
        .filter(|spec| !spec.trim().is_empty());
    let filter = match from_env.as_deref().map(EnvFilter::try_new) {
        Some(Ok(filter)) => filter,
        Some(Err(error)) => {
            eprintln!("ignoring RUST_LOG ({error}); using the default log level");
            EnvFilter::new(default_filter(verbose))
        }
        None => EnvFilter::new(default_filter(verbose)),
    };
    // Another subscriber set already (none is, in these binaries) keeps its place.
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(filter)
        .without_time()
        .with_target(verbose > 0 || from_env.is_some())
        .try_init();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_default_filter_parses() {
        for verbose in 0..4 {
            assert!(EnvFilter::try_new(default_filter(verbose)).is_ok());
        }
    }
}
