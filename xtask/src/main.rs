//! Developer chores for nettrace, run as `cargo xtask <command>`.
//!
//! - `build-ebpf`: installs what the eBPF build needs (nightly `rust-src` and `llvm-tools`,
//!   bpf-linker built against the nightly's own LLVM), builds `nettrace-ebpf`, strips debug
//!   info (BTF stays) and writes the object and its source stamp where `nettrace-user` embeds
//!   them.
//! - `check-ebpf`: fails when the committed object is stale against the eBPF and common sources.
//! - `check-layers`: fails when the top-level modules of a library crate (`nettrace-user`,
//!   `nettrace-model`) depend on each other in a cycle, naming the `file:line` of each edge.
//!
//! ```text
//! cargo xtask build-ebpf            # regenerate nettrace-user/ebpf/nettrace.bpf.o
//! cargo xtask build-ebpf --out-dir target/ebpf-check   # build elsewhere, leave the tree alone
//! cargo xtask check-ebpf
//! cargo xtask check-layers --graph   # also list each module's dependencies
//! ```
mod build_ebpf;
mod layers;
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
    /// Fail when the top-level modules of a library crate depend on each other in a cycle.
    CheckLayers {
        /// Crate folder to check; repeat for several (default: nettrace-user and nettrace-model).
        #[arg(long = "crate-dir", value_name = "PATH")]
        crate_dirs: Vec<PathBuf>,
        /// Also print each module's dependencies.
        #[arg(long)]
        graph: bool,
    },
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
        Command::CheckLayers { crate_dirs, graph } => layers::run(&root, &crate_dirs, graph),
    }
}
