//! Entry points of the fuzz targets (`fuzz/` at the repository root): one function per reader
//! of bytes that someone else wrote, which feeds the bytes to the reader and asserts what must
//! hold of the result — a panic is a finding. Hidden, not part of the API: compiled with the
//! `fuzzing` feature (for the fuzz crate) and in unit tests (which run every seed and every
//! former finding through the same checks).
//!
//! | target | reader | invariants |
//! | --- | --- | --- |
//! | `dns_message` | the tolerant DNS decoder | the question section re-encodes and decodes equal |
//! | `connect_reply` | the proxy's `CONNECT` reply | nothing past the head is read; only a 2xx number opens the tunnel |
//! | `copied_packet` | the loader's packet copies: IP headers, a ClientHello's SNI | views stay inside the packet |
//! | `ctnetlink` | ctnetlink datagrams | bounded item count, an error ends the datagram |
//! | `ring_record` | ring-buffer records and the daemon link's frames | wrong sizes are errors and counted, reads stay inside |
//! | `daemon_session` | requests of unprivileged clients to the daemon | a reply per request, the session goes on, no client sees another's sockets |
//! | `trace_json` | trace files (`nettrace show`) | what reads re-emits JSON that reads back equal |
//!
//! ```ignore
//! nettrace::fuzz_api::dns_message(b"\x12\x34\x81\x80\0\0\0\0\0\0\0\0");
//! ```
#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    reason = "assertions for the fuzzer: a panic here is a finding"
)]

mod connect;
mod conntrack;
mod daemon;
mod dns;
mod packet;
mod ring;
#[cfg(test)]
mod seeds;
mod trace;

pub use connect::connect_reply;
pub use conntrack::ctnetlink;
pub use daemon::daemon_session;
pub use dns::dns_message;
pub use packet::copied_packet;
pub use ring::ring_record;
pub use trace::trace_json;

/// A target's entry point.
pub type Target = fn(&[u8]);

/// Every target by its name (the name of its folder under `fuzz/corpus/`).
pub const TARGETS: [(&str, Target); 7] = [
    ("dns_message", dns_message),
    ("connect_reply", connect_reply),
    ("copied_packet", copied_packet),
    ("ctnetlink", ctnetlink),
    ("ring_record", ring_record),
    ("daemon_session", daemon_session),
    ("trace_json", trace_json),
];
