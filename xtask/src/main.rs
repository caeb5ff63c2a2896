//! Developer chores for nettrace, run as `cargo xtask <command>`.
//!
//! - `build-ebpf`: installs what the eBPF build needs (nightly `rust-src` and `llvm-tools`,
//!   bpf-linker built against the nightly's own LLVM), builds `nettrace-ebpf`, strips debug
//!   info (BTF stays) and writes the object and its source stamp where `nettrace-user` embeds
//!   them.
//! - `check-ebpf`: fails when the committed object is stale against the eBPF and common sources.
//!
//! ```text
//! cargo xtask build-ebpf            # regenerate nettrace-user/ebpf/nettrace.bpf.o
//! cargo xtask build-ebpf --out-dir target/ebpf-check   # build elsewhere, leave the tree alone
//! cargo xtask check-ebpf
//! ```
mod build_ebpf;
mod stamp;
mod toolchain;

use std::path::PathBuf;

use anyhow::Result;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(about = "nettrace developer chores")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Build the eBPF object (installing the toolchain pieces it needs) and write it with its stamp.
    BuildEbpf {
        /// Where to write `nettrace.bpf.o` and its stamp (default: the committed location).
        #[arg(long)]
        out_dir: Option<PathBuf>,
    },
    /// Fail when the committed eBPF object does not match the current eBPF and common sources.
    CheckEbpf,
}

fn main() -> Result<()> {
    let root = stamp::workspace_root()?;
    match Cli::parse().command {
        Command::BuildEbpf { out_dir } => {
            let out_dir = out_dir.unwrap_or_else(|| root.join(stamp::OBJECT_DIR));
            build_ebpf::run(&root, &out_dir)
        }
        Command::CheckEbpf => {
            stamp::check_committed(&root)?;
            println!("eBPF object is fresh");
            Ok(())
        }
    }
}
