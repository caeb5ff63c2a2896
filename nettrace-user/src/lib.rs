//! nettrace: one structured record of every network operation behind an HTTP request.
//!
//! The trace model ([`model`]) re-creates the Go package nettrace (lf-edge/eve-libs) with the
//! same JSON, so existing consumers keep working. The [`kernel`] module loads the eBPF programs
//! that add the kernel's own view of traced sockets (TCP states, and later retransmits and RTT),
//! joined to userspace records by socket cookie. The [`conntrack`] module attaches each
//! connection's netfilter conntrack (NAT) entry, with `TraceOptions::conntrack`. The
//! [`program`] module traces an unmodified program from kernel events alone. A process that
//! may not load the programs gets the kernel facts and the packets of its own sockets from the
//! loader daemon (`nettrace-loader serve`, module [`daemon`]) when its socket exists, by
//! itself.
#![deny(missing_docs)]
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]

#[doc(hidden)]
pub mod bench_support;
pub mod capture;
pub mod client;
mod clock;
pub mod conntrack;
pub mod daemon;
pub mod dns;
mod error_chain;
mod event;
mod headers;
pub mod kernel;
pub mod program;
mod recorder;
mod sock;
mod socket_cookie;
mod sync;
pub mod tls;
mod tracer;

/// The trace model and its Go JSON, and the pure functions of a trace: the crate
/// [`nettrace_model`], re-exported so that `nettrace::model::HttpTrace` keeps working.
pub use nettrace_model as model;
/// The trace as a readable timeline (re-exported from [`nettrace_model::waterfall`]).
pub use nettrace_model::waterfall;

pub use clock::KernelTime;
pub use socket_cookie::SocketCookie;
