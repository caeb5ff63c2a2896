//! OpenTelemetry export of nettrace traces.
//!
//! Each HTTP request of a trace becomes a span tree ([`spans`]): the request, with its name
//! resolution, TCP connect, TLS handshake, send, wait and transfer as children, redirects as
//! child requests, socket operations and kernel state changes as events, and the kernel's and
//! conntrack's facts as attributes. [`OtlpExporter`] sends the trees to a collector over OTLP
//! (HTTP/protobuf or gRPC), from where they go to Jaeger, Tempo or any other backend.
//!
//! A crate of its own, so that programs that trace without exporting do not build the
//! OTLP clients; it depends on the trace model only, and exports any trace (this
//! tool's, the loader's, a JSON file written by Go's nettrace).
//!
//! ```no_run
//! use nettrace_otel::{OtlpConfig, OtlpExporter};
//! # fn demo(trace: &nettrace_model::HttpTrace) -> Result<(), nettrace_otel::ExportError> {
//! let exporter = OtlpExporter::new(&OtlpConfig::new("http://127.0.0.1:4318"))?;
//! exporter.export(trace);
//! let report = exporter.finish()?; // blocks until the collector has the spans
//! println!("{report}");
//! # Ok(()) }
//! ```
#![deny(missing_docs)]
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]

mod encode;
mod export;
mod key_values;
#[cfg(test)]
mod otlp_sink;
mod protocol;
pub mod spans;
#[cfg(test)]
mod tests_support;
mod tls;
mod transport;

pub use export::{ExportError, ExportReport, OtlpConfig, OtlpExporter};
pub use key_values::parse_key_values;
pub use protocol::Protocol;
