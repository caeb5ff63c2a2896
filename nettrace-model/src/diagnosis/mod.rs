//! Diagnosis: why a traced request failed or was slow, as [`Finding`]s (a code, a severity, a
//! one-line summary, the trace IDs that show it, and what to check next), most important
//! first.
//!
//! A pure function of a trace: it works on this project's traces, `nettrace-loader trace`
//! files and Go-written ones, with whatever facts each holds (DNS messages, kernel TCP facts,
//! conntrack entries, certificates). Where a fact is missing the finding rests on the error
//! texts, which this crate reads in both this project's and Go's wording.
//!
//! ```
//! use nettrace_model::diagnosis::{self, Code, Severity};
//! use nettrace_model::{DialTrace, HttpReqTrace, HttpTrace, NetTrace, TraceId};
//!
//! let trace = HttpTrace {
//!     net_trace: NetTrace {
//!         dials: vec![DialTrace {
//!             trace_id: TraceId::new("tid-1"),
//!             dst_address: "gone.test:80".into(),
//!             dial_err: "lookup gone.test on 10.0.0.1:53: no such host".into(),
//!             ..Default::default()
//!         }]
//!         .into(),
//!         ..Default::default()
//!     },
//!     http_requests: vec![HttpReqTrace {
//!         trace_id: TraceId::new("tid-2"),
//!         req_url: "http://gone.test/".into(),
//!         req_error: "dial tcp: lookup gone.test on 10.0.0.1:53: no such host".into(),
//!         ..Default::default()
//!     }]
//!     .into(),
//! };
//! let findings = diagnosis::diagnose(&trace);
//! assert_eq!(findings[0].code, Code::DnsNxdomain);
//! assert_eq!(findings[0].severity, Severity::Error);
//! assert_eq!(findings[0].evidence, [TraceId::new("tid-1"), TraceId::new("tid-2")]);
//! assert!(diagnosis::verdict(&findings).starts_with("FAILED"));
//! ```
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::{HttpTrace, TraceId};

mod context;
mod dns;
mod http;
mod render;
mod tcp;
mod text;
mod timing;
mod tls;
mod trust;

pub use render::{for_html, render_text};

/// How bad a finding is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Worth knowing; nothing failed (e.g. a NAT on the path).
    Info,
    /// Something went wrong or slowly, but the request got through (or the data may be
    /// incomplete).
    Warning,
    /// The cause, or a consequence, of a failure.
    Error,
}

impl Severity {
    /// `error`, `warning` or `info`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Info => "info",
            Self::Warning => "warning",
            Self::Error => "error",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a finding is about. The order is the path of a request (name, TCP, TLS, proxy, HTTP,
/// limits, then the trust in the data): findings of one severity are listed in this order, so
/// that a cause comes before its consequence.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Code {
    /// The name does not exist (NXDOMAIN).
    DnsNxdomain,
    /// A nameserver answered with an error (SERVFAIL, REFUSED, ...).
    DnsServfail,
    /// A nameserver did not answer.
    DnsTimeout,
    /// A UDP answer was truncated and the resolver fell back to TCP.
    DnsTruncated,
    /// The peer refused the TCP connection (a reset in answer to the SYN).
    TcpRefused,
    /// The SYN was never answered: retransmitted until the connection gave up.
    TcpSynUnanswered,
    /// Segments were lost and retransmitted during the exchange.
    TcpRetransmits,
    /// The peer reset an established connection.
    TcpReset,
    /// The server's certificate has expired.
    TlsCertExpired,
    /// The server's certificate is not valid yet.
    TlsCertNotYetValid,
    /// The server's certificate is not issued by a trusted authority.
    TlsUnknownCa,
    /// The server's certificate does not name the host asked for.
    TlsWrongHost,
    /// The TLS handshake did not finish in time.
    TlsHandshakeTimeout,
    /// The peer does not speak TLS.
    TlsNotTls,
    /// The proxy asks for credentials (407).
    ProxyAuthRequired,
    /// The server took long to start answering (waiting dominates).
    HttpSlowServer,
    /// The body took long to arrive (transfer dominates).
    HttpSlowTransfer,
    /// Redirects went round in a loop, or past the limit.
    HttpRedirectLoop,
    /// A time limit of the request passed.
    RequestTimeout,
    /// A request failed for a reason no other code explains.
    RequestFailed,
    /// A connection was translated by NAT (its conntrack entry shows it).
    Nat,
    /// The kernel lost events: its facts about the connections may be incomplete.
    KernelEventsLost,
    /// The packet capture missed packets (size limit or a full ring).
    CaptureTruncated,
}

impl Code {
    /// The code as written in JSON and text, e.g. `dns-nxdomain`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::DnsNxdomain => "dns-nxdomain",
            Self::DnsServfail => "dns-servfail",
            Self::DnsTimeout => "dns-timeout",
            Self::DnsTruncated => "dns-truncated",
            Self::TcpRefused => "tcp-refused",
            Self::TcpSynUnanswered => "tcp-syn-unanswered",
            Self::TcpRetransmits => "tcp-retransmits",
            Self::TcpReset => "tcp-reset",
            Self::TlsCertExpired => "tls-cert-expired",
            Self::TlsCertNotYetValid => "tls-cert-not-yet-valid",
            Self::TlsUnknownCa => "tls-unknown-ca",
            Self::TlsWrongHost => "tls-wrong-host",
            Self::TlsHandshakeTimeout => "tls-handshake-timeout",
            Self::TlsNotTls => "tls-not-tls",
            Self::ProxyAuthRequired => "proxy-auth-required",
            Self::HttpSlowServer => "http-slow-server",
            Self::HttpSlowTransfer => "http-slow-transfer",
            Self::HttpRedirectLoop => "http-redirect-loop",
            Self::RequestTimeout => "request-timeout",
            Self::RequestFailed => "request-failed",
            Self::Nat => "nat",
            Self::KernelEventsLost => "kernel-events-lost",
            Self::CaptureTruncated => "capture-truncated",
        }
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One thing the trace shows. JSON: `{"code", "severity", "summary", "evidence": [traceIDs],
/// "details": [...], "nextStep"}`, the last two omitted when empty.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Finding {
    /// What it is about.
    pub code: Code,
    /// How bad it is.
    pub severity: Severity,
    /// One line, with the numbers that matter.
    pub summary: String,
    /// The records that show it (dials, connections, DNS queries, TLS tunnels, requests), the
    /// root record first.
    pub evidence: Vec<TraceId>,
    /// Further facts, one line each.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub details: Vec<String>,
    /// What to check next.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub next_step: String,
}

impl Finding {
    /// A finding without details or next step.
    pub fn new(code: Code, severity: Severity, summary: impl Into<String>) -> Self {
        Self {
            code,
            severity,
            summary: summary.into(),
            evidence: Vec::new(),
            details: Vec::new(),
            next_step: String::new(),
        }
    }

    /// Adds evidence IDs, skipping empty and repeated ones.
    pub fn with_evidence<'a>(mut self, ids: impl IntoIterator<Item = &'a TraceId>) -> Self {
        for id in ids {
            if !id.is_empty() && !self.evidence.contains(id) {
                self.evidence.push(id.clone());
            }
        }
        self
    }

    /// Adds a line of details.
    pub fn detail(mut self, line: impl Into<String>) -> Self {
        self.details.push(line.into());
        self
    }

    /// Sets what to check next.
    pub fn next(mut self, step: impl Into<String>) -> Self {
        self.next_step = step.into();
        self
    }
}

/// What a packet capture of the trace missed (captures are not part of the trace JSON; the
/// program that captured passes this to [`diagnose_with_captures`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CaptureSummary {
    /// The interface captured.
    pub interface: String,
    /// Packets kept.
    pub packets: usize,
    /// True when packets were dropped past the capture's size limit.
    pub truncated: bool,
    /// Packets the kernel could not hand over (its ring buffer was full).
    pub lost_packets: u64,
}

/// The findings of `trace`, most important first: errors, then warnings, then information;
/// within one severity in the order of a request's path ([`Code`]), then in trace order.
pub fn diagnose(trace: &HttpTrace) -> Vec<Finding> {
    diagnose_with_captures(trace, &[])
}

/// [`diagnose`], plus what the packet captures taken with the trace missed.
pub fn diagnose_with_captures(trace: &HttpTrace, captures: &[CaptureSummary]) -> Vec<Finding> {
    let ctx = context::Ctx::new(trace);
    let mut findings = Vec::new();
    dns::diagnose(&ctx, &mut findings);
    tcp::diagnose(&ctx, &mut findings);
    tls::diagnose(&ctx, &mut findings);
    http::diagnose(&ctx, &mut findings);
    trust::diagnose(&ctx, captures, &mut findings);
    http::unexplained_failures(&ctx, &mut findings);
    // Stable: equal keys keep trace order.
    findings.sort_by_key(|f| (std::cmp::Reverse(f.severity), f.code));
    findings
}

/// One line for the whole trace: `FAILED: ...`, `WARNING: ...` or `OK: ...`, from the most
/// important finding.
pub fn verdict(findings: &[Finding]) -> String {
    match findings.first() {
        Some(top) if top.severity == Severity::Error => format!("FAILED: {}", top.summary),
        Some(top) if top.severity == Severity::Warning => format!("WARNING: {}", top.summary),
        _ => "OK: no problem found".to_owned(),
    }
}

#[cfg(test)]
mod tests;
