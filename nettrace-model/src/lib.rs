//! nettrace-model: the trace model of nettrace, its Go-compatible JSON, and every pure function
//! of a trace.
//!
//! # What belongs here
//! Everything that needs a trace and nothing else: the records ([`HttpTrace`] and the types it
//! holds), their JSON (byte-for-byte what Go's nettrace writes, and what it reads), and functions
//! that only read a trace ([`waterfall`], and the phases, diagnosis and exporters that need no
//! I/O). No sockets, no eBPF, no async runtime: a program that only reads traces (an EVE
//! controller reading `nettrace.json`, `nettrace show`, an exporter) depends on this crate alone
//! and its few dependencies (serde, serde_json, time, smol_str, itoa). The tracer, the library
//! `nettrace`, re-exports it as `nettrace::model`.
//!
//! # The model
//! An [`HttpTrace`] is a [`NetTrace`] (dials, TCP and UDP connections, DNS queries, TLS tunnels)
//! plus the HTTP requests. Records refer to each other by [`TraceId`] (a dial's
//! `established_conn` is a TCP connection's `trace_id`, and so on), and most timestamps are
//! milliseconds since `trace_begin_at` ([`Timestamp`]).
//!
//! | Go | Rust | file |
//! | --- | --- | --- |
//! | `NetTrace`, `HTTPTrace`, `AnyNetTrace` | [`NetTrace`], [`HttpTrace`], [`AnyNetTrace`] | `trace.rs` |
//! | `DialTrace(s)`, `ResolverDialTrace` | [`DialTrace`], [`DialTraces`], [`ResolverDialTrace`] | `dial.rs` |
//! | `TCPConnTrace(s)`, `UDPConnTrace(s)`, `AddrTuple` (and the extension `ConnProcess`) | [`TcpConnTrace`], [`TcpConnTraces`], [`UdpConnTrace`], [`UdpConnTraces`], [`AddrTuple`], [`ConnProcess`] | `conn.rs` |
//! | `ConntractEntry`, `ConntrackStatus` | [`ConntrackEntry`] (alias [`ConntractEntry`]), [`ConntrackStatus`] | `conntrack.rs` |
//! | `TCPState` | [`TcpState`] | `tcp_state.rs` |
//! | `SocketTrace`, `SocketOp`, `SocketOpType` | [`SocketTrace`], [`SocketOp`], [`SocketOpType`] | `socket.rs` |
//! | `DNSQueryTrace(s)`, `DNSQueryMsg`, `DNSReplyMsg`, `DNSQuestion`, `DNSAnswer` | [`DnsQueryTrace`], [`DnsQueryTraces`], [`DnsQueryMsg`], [`DnsReplyMsg`], [`DnsQuestion`], [`DnsAnswer`] | `dns.rs` |
//! | `DNSResType`, `DNSRCode` | [`DnsResType`], [`DnsRCode`] | `dns_codes.rs` |
//! | `TLSTunnelTrace(s)`, `PeerCert` | [`TlsTunnelTrace`], [`TlsTunnelTraces`], [`PeerCert`] | `tls.rs` |
//! | `HTTPReqTrace(s)`, `HTTPHeader`, `HTTPHeaderKV`, `HdrFieldsOpt` | [`HttpReqTrace`], [`HttpReqTraces`], [`HttpHeader`], [`HttpHeaderKv`], [`HdrFieldsOpt`] | `http.rs` |
//! | `Timestamp` | [`Timestamp`] | `timestamp.rs` |
//! | `TraceID`, `IDGenerator`, `AtomicCounterID` | [`TraceId`], [`set_id_generator`], [`next_trace_id`], [`atomic_counter_id`] | `trace_id.rs` |
//! | `XxxTraces.Get(id)` | [`TraceList::get`] on [`TraceList<T>`], for every [`Traced`] record | `list.rs` |
//!
//! Go's `ToString`/`FromString` maps are `Display`/`FromStr` (plus `as_str`, and `From<u16>`
//! or `TryFrom<u8>` for the numbers, which keep Go's constant values). These name maps share one
//! set of rules (written name, accepted names, lenient JSON reading), stated once in `go_names.rs`.
//!
//! # JSON
//! Byte-for-byte Go's field names (`traceID`, `reqURL`, `conntrack`, `RespContentLen`, ...), key
//! order, enum strings and timestamp forms; fields are omitted exactly where Go has `omitempty`,
//! and lists without `omitempty` are `null` when empty. Reading accepts what Go writes, `[]` as
//! well as `null` for lists, `null` for timestamps, enums and IDs, and missing keys (defaults).
//! Go quirks kept on output for compatibility: the `sync-recv` spelling of [`TcpState::SynRecv`]
//! and the `RespContentLen` key. Go bugs not kept: conntrack flags are written in ascending bit
//! order (Go: random), an unknown IP is written `""` (Go: `"<nil>"`, still read), `"-5ms"` is
//! rejected (Go drops the sign), an unknown rcode name reads as unrecognized (Go: `no-error`).
//!
//! # Extending the model
//! Data beyond Go's model (kernel TCP facts, finer timestamps, ...) is added as new fields with
//! `#[serde(default, skip_serializing_if = ...)]`, so they are absent when empty and Go-era
//! consumers, which ignore unknown keys, keep working; reading already ignores unknown keys.
//! Every struct implements `Default`: build records with `..Default::default()` so added fields
//! do not break your code.
//!
//! # Example
//! ```
//! use nettrace_model::{
//!     AnyNetTrace, DialTrace, HttpReqTrace, HttpTrace, NetTrace, Timestamp, TraceId,
//! };
//! use time::macros::datetime;
//!
//! let dial_id = TraceId::generate();
//! let trace = HttpTrace {
//!     net_trace: NetTrace {
//!         description: "GET https://example.com/".into(),
//!         trace_begin_at: Timestamp::Absolute(datetime!(2026-01-01 10:00:00.5 +01:00)),
//!         trace_end_at: Timestamp::Relative(42),
//!         dials: vec![DialTrace {
//!             trace_id: dial_id.clone(),
//!             dial_begin_at: Timestamp::Relative(1),
//!             dst_address: "example.com:443".into(),
//!             ..Default::default()
//!         }]
//!         .into(),
//!         ..Default::default()
//!     },
//!     http_requests: vec![HttpReqTrace {
//!         trace_id: TraceId::generate(),
//!         req_method: "GET".into(),
//!         ..Default::default()
//!     }]
//!     .into(),
//! };
//!
//! let json = serde_json::to_string(&trace).unwrap();
//! assert!(json.contains(r#""traceBeginAt":"2026-01-01T10:00:00.5+01:00""#));
//! assert!(json.contains(r#""tcpConns":null"#));
//!
//! let read: HttpTrace = serde_json::from_str(&json).unwrap();
//! assert_eq!(read, trace);
//! assert_eq!(read.net_trace().dials.get(&dial_id).unwrap().dst_address, "example.com:443");
//! ```

#![deny(missing_docs)]
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]

mod addr;
mod conn;
mod conntrack;
pub mod diagnosis;
mod dial;
mod dns;
mod dns_codes;
mod dropped;
mod error;
mod facts;
mod go_names;
pub mod har;
pub mod html;
mod http;
mod id_map;
mod kernel;
mod list;
pub mod phases;
mod precise;
mod serde_util;
mod short_text;
mod socket;
mod tcp_state;
mod timestamp;
mod tls;
mod trace;
mod trace_id;
pub mod units;
pub mod waterfall;

pub use addr::AddrTuple;
pub use conn::{ConnProcess, TcpConnTrace, TcpConnTraces, UdpConnTrace, UdpConnTraces};
pub use conntrack::{ConntrackEntry, ConntrackStatus, ConntractEntry};
pub use dial::{DialTrace, DialTraces, ResolverDialTrace};
pub use dns::{DnsAnswer, DnsQueryMsg, DnsQueryTrace, DnsQueryTraces, DnsQuestion, DnsReplyMsg};
pub use dns_codes::{DnsRCode, DnsResType};
pub use dropped::DroppedRecords;
pub use error::ModelError;
pub use http::{HdrFieldsOpt, HttpHeader, HttpHeaderKv, HttpReqTrace, HttpReqTraces};
pub use id_map::IdMap;
pub use kernel::{
    KernelDataStatus, KernelSocketCalls, KernelStateChange, KernelTcpFacts, KernelUdpFacts,
};
pub use list::{Iter as TraceListIter, TraceList, Traced};
pub use precise::{Iter as PreciseTimesIter, PreciseTimes};
pub use short_text::{ShortText, write_ip};
pub use socket::{SocketOp, SocketOpType, SocketTrace};
pub use tcp_state::TcpState;
pub use timestamp::Timestamp;
pub use tls::{PeerCert, TlsTunnelTrace, TlsTunnelTraces, cipher_suite_name};
pub use trace::{AnyNetTrace, HttpTrace, NetTrace};
pub use trace_id::{
    TraceId, atomic_counter_id, next_trace_id, reset_id_generator, set_id_generator,
};
