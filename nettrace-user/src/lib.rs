//! nettrace: one structured record of every network operation behind an HTTP request.
//!
//! The trace model ([`model`], the crate `nettrace-model`) re-creates the Go package nettrace
//! (lf-edge/eve-libs) with the same JSON, so existing consumers keep working. The [`client`]
//! module is the traced HTTP client. The [`kernel`] module loads the eBPF programs that add
//! the kernel's own view of traced sockets (TCP states, retransmits, RTT), joined to
//! userspace records by socket cookie. The [`conntrack`] module attaches each connection's
//! netfilter conntrack (NAT) entry, with `TraceOptions::conntrack`. The [`program`] module
//! traces an unmodified program from kernel events alone. A process that may not load the
//! programs gets the kernel facts and the packets of its own sockets from the loader daemon
//! (`nettrace-loader serve`, module [`daemon`]) when its socket exists, by itself.
//!
//! # What belongs in this crate
//! Everything that observes the network: the events and the recorder that folds them into a
//! trace, the hooks that emit events (client, DNS resolver, TLS, socket wrappers), the
//! producers (kernel programs and their rings, conntrack, packet capture, the daemon link) and
//! the driver that wires them. Pure functions of a finished trace go to `nettrace-model`;
//! command-line parsing and output go to `nettrace-cli`.
//!
//! # Layers
//! Dependencies between the top-level modules point one way (`cargo xtask check-layers`
//! fails on a cycle), bottom to top:
//! - `model` (re-exported), `clock`, `socket_cookie`, `sync`, `headers`;
//! - `event`: the event enum *and* its payload types (kernel records, socket records,
//!   conntrack samples), and the narrow `EventSink` the hooks report through;
//! - `recorder` (sans-I/O: events in, snapshot out) and `translate` (kernel events of a
//!   traced program in, events out);
//! - hooks (`sock`, `dns`, `tls`) and producers (`capture`, `kernel`, `conntrack`, `daemon`),
//!   which never import the recorder or the client;
//! - `tracer`, the driver (its lock order is in its module doc);
//! - the entry points: [`client`], [`program`].
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
#[cfg(any(test, feature = "fuzzing"))]
#[doc(hidden)]
pub mod fuzz_api;
mod headers;
mod ids;
pub mod kernel;
pub mod limits;
pub mod program;
mod recorder;
mod sock;
mod socket_cookie;
mod sync;
#[cfg(test)]
mod test_support;
pub mod tls;
mod tracer;
mod translate;

/// The trace model and its Go JSON, and the pure functions of a trace: the crate
/// [`nettrace_model`], re-exported so that `nettrace::model::HttpTrace` keeps working.
pub use nettrace_model as model;
/// The trace as a readable timeline (re-exported from [`nettrace_model::waterfall`]).
pub use nettrace_model::waterfall;

pub use clock::KernelTime;
pub use socket_cookie::SocketCookie;
