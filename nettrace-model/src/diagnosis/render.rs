//! The findings as text: the verdict, then each finding with its evidence (each ID named with
//! the kind of record it is), its details and what to check next.
use std::collections::HashMap;
use std::fmt::Write as _;

use crate::HttpTrace;

use super::{Finding, verdict};

/// The findings of `trace` as text, verdict first.
///
/// ```text
/// verdict: FAILED: gone.test does not exist: nameserver 127.0.0.1:5353 answered NXDOMAIN
///
/// 1. error dns-nxdomain: gone.test does not exist: nameserver 127.0.0.1:5353 answered NXDOMAIN
///    evidence: dial tid-1, dns query tid-4, request tid-2
///    tid-4 gone.test A @127.0.0.1:5353 -> NXDOMAIN
///    next: check the host name for typos ...
/// ```
pub fn render_text(trace: &HttpTrace, findings: &[Finding]) -> String {
    let kinds = kinds(trace);
    let mut out = String::new();
    let _ = writeln!(out, "verdict: {}", verdict(findings));
    for (i, finding) in findings.iter().enumerate() {
        let _ = writeln!(
            out,
            "\n{}. {} {}: {}",
            i + 1,
            finding.severity,
            finding.code,
            finding.summary
        );
        if !finding.evidence.is_empty() {
            let named: Vec<String> = finding
                .evidence
                .iter()
                .map(|id| {
                    let kind = kinds.get(id.as_str()).copied().unwrap_or("record");
                    format!("{kind} {id}")
                })
                .collect();
            let _ = writeln!(out, "   evidence: {}", named.join(", "));
        }
        for detail in &finding.details {
            let _ = writeln!(out, "   {detail}");
        }
        if !finding.next_step.is_empty() {
            let _ = writeln!(out, "   next: {}", finding.next_step);
        }
    }
    out
}

/// What kind of record each ID of `trace` is (the first kind wins for an ID used twice).
fn kinds(trace: &HttpTrace) -> HashMap<&str, &'static str> {
    let net = &trace.net_trace;
    let mut kinds = HashMap::new();
    let all = [
        (
            trace
                .http_requests
                .iter()
                .map(|r| r.trace_id.as_str())
                .collect::<Vec<_>>(),
            "request",
        ),
        (
            net.dials.iter().map(|r| r.trace_id.as_str()).collect(),
            "dial",
        ),
        (
            net.tcp_conns.iter().map(|r| r.trace_id.as_str()).collect(),
            "tcp",
        ),
        (
            net.udp_conns.iter().map(|r| r.trace_id.as_str()).collect(),
            "udp",
        ),
        (
            net.dns_queries
                .iter()
                .map(|r| r.trace_id.as_str())
                .collect(),
            "dns query",
        ),
        (
            net.tls_tunnels
                .iter()
                .map(|r| r.trace_id.as_str())
                .collect(),
            "tls",
        ),
    ];
    for (ids, kind) in all {
        for id in ids {
            kinds.entry(id).or_insert(kind);
        }
    }
    kinds
}

/// The findings as the HTML report shows them ([`crate::html::render`]'s diagnosis section).
pub fn for_html(findings: &[Finding]) -> Vec<crate::html::Finding> {
    findings
        .iter()
        .map(|f| crate::html::Finding {
            severity: f.severity.as_str().to_owned(),
            code: f.code.as_str().to_owned(),
            summary: f.summary.clone(),
            evidence: f.evidence.iter().map(|id| id.as_str().to_owned()).collect(),
        })
        .collect()
}
