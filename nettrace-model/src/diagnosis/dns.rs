//! Name resolution findings, per dial: `dns-nxdomain`, `dns-servfail`, `dns-timeout`,
//! `dns-truncated`. From the DNS messages when the trace has them (which nameserver said what,
//! when), else from the dial's error text (Go's `no such host`, `server misbehaving`,
//! `i/o timeout`).
use crate::{DialTrace, DnsQueryTrace, DnsRCode};

use super::context::{Ctx, duration, ids};
use super::{Code, Finding, Severity, text};

/// An unanswered query that waited this long is worth a warning even when another nameserver
/// answered in the end.
const SLOW_QUERY_MS: i64 = 500;

pub(super) fn diagnose(ctx: &Ctx<'_>, out: &mut Vec<Finding>) {
    for dial in ctx.trace.net_trace.dials.iter() {
        let queries = ctx.queries_of_dial(&dial.trace_id);
        let dial_ctx = DialDns {
            ctx,
            dial,
            queries,
            failed: dial.established_conn.is_empty(),
        };
        dial_ctx.nxdomain(out);
        dial_ctx.servfail(out);
        dial_ctx.timeout(out);
        dial_ctx.truncated(out);
    }
}

/// The DNS side of one dial.
struct DialDns<'c, 'a> {
    ctx: &'c Ctx<'a>,
    dial: &'a DialTrace,
    queries: Vec<&'a DnsQueryTrace>,
    /// The dial connected nothing.
    failed: bool,
}

impl DialDns<'_, '_> {
    /// The host part of the dial's destination.
    fn host(&self) -> &str {
        let dst = self.dial.dst_address.as_str();
        match dst.rsplit_once(':') {
            Some((host, port)) if port.chars().all(|c| c.is_ascii_digit()) => {
                host.trim_start_matches('[').trim_end_matches(']')
            }
            _ => dst,
        }
    }

    /// The nameserver a query went to, `ip:port` (` over TCP` for TCP).
    fn nameserver(&self, query: &DnsQueryTrace) -> String {
        if let Some(udp) = self.ctx.udp(&query.connection)
            && let Some(dst) = udp.addr_tuple.dst()
        {
            return dst.to_string();
        }
        if let Some(tcp) = self.ctx.tcp(&query.connection)
            && let Some(dst) = tcp.addr_tuple.dst()
        {
            return format!("{dst} over TCP");
        }
        self.dial
            .resolver_dials
            .iter()
            .find(|rd| rd.established_conn == query.connection)
            .map_or_else(|| "?".to_owned(), |rd| rd.nameserver.clone())
    }

    /// `name TYPE` of a query's first question.
    fn question(query: &DnsQueryTrace) -> String {
        query
            .dns_query_msgs
            .first()
            .and_then(|m| m.questions.first())
            .map_or_else(
                || "?".to_owned(),
                |q| format!("{} {}", q.name.trim_end_matches('.'), q.res_type),
            )
    }

    fn evidence_of(&self, queries: &[&DnsQueryTrace]) -> Vec<crate::TraceId> {
        let mut evidence = vec![self.dial.trace_id.clone()];
        evidence.extend(queries.iter().map(|q| q.trace_id.clone()));
        evidence.extend(ids(&self.ctx.requests_of_dial(self.dial)).cloned());
        evidence
    }

    fn nxdomain(&self, out: &mut Vec<Finding>) {
        if !self.failed {
            return;
        }
        let answered: Vec<&DnsQueryTrace> = self
            .queries
            .iter()
            .copied()
            .filter(|q| {
                q.dns_reply_msgs
                    .iter()
                    .any(|r| r.rcode == DnsRCode::NX_DOMAIN)
            })
            .collect();
        if answered.is_empty() && !text::nxdomain(&self.dial.dial_err) {
            return;
        }
        let summary = if answered.is_empty() {
            format!("{} does not exist ({})", self.host(), self.dial.dial_err)
        } else {
            format!(
                "{} does not exist: nameserver {} answered NXDOMAIN",
                self.host(),
                self.nameservers(&answered)
            )
        };
        let mut finding = Finding::new(Code::DnsNxdomain, Severity::Error, summary)
            .with_evidence(&self.evidence_of(&answered))
            .next(format!(
                "check the host name for typos and the search domains of the resolver; ask \
                 the nameserver directly (dig {} @<nameserver>)",
                self.host()
            ));
        for query in &answered {
            finding = finding.detail(format!(
                "{} {} @{} -> NXDOMAIN",
                query.trace_id,
                Self::question(query),
                self.nameserver(query)
            ));
        }
        out.push(finding);
    }

    fn nameservers(&self, queries: &[&DnsQueryTrace]) -> String {
        let mut names: Vec<String> = Vec::new();
        for query in queries {
            let name = self.nameserver(query);
            if !names.contains(&name) {
                names.push(name);
            }
        }
        names.join(", ")
    }

    fn servfail(&self, out: &mut Vec<Finding>) {
        let failing: Vec<&DnsQueryTrace> = self
            .queries
            .iter()
            .copied()
            .filter(|q| {
                q.dns_reply_msgs
                    .iter()
                    .any(|r| r.rcode != DnsRCode::NO_ERROR && r.rcode != DnsRCode::NX_DOMAIN)
            })
            .collect();
        let by_text = self.failed && text::servfail(&self.dial.dial_err);
        if failing.is_empty() && !by_text {
            return;
        }
        let rcode = failing
            .iter()
            .flat_map(|q| q.dns_reply_msgs.iter())
            .map(|r| r.rcode)
            .find(|r| *r != DnsRCode::NO_ERROR && *r != DnsRCode::NX_DOMAIN)
            .map_or_else(|| "an error".to_owned(), rcode_name);
        let (severity, summary) = match (self.failed, failing.is_empty()) {
            (true, true) => (
                Severity::Error,
                format!("resolving {} failed: {}", self.host(), self.dial.dial_err),
            ),
            (true, false) => (
                Severity::Error,
                format!(
                    "resolving {} failed: nameserver {} answered {rcode}",
                    self.host(),
                    self.nameservers(&failing)
                ),
            ),
            (false, _) => (
                Severity::Warning,
                format!(
                    "nameserver {} answered {rcode} for {}; another nameserver answered",
                    self.nameservers(&failing),
                    self.host()
                ),
            ),
        };
        out.push(
            Finding::new(Code::DnsServfail, severity, summary)
                .with_evidence(&self.evidence_of(&failing))
                .next(
                    "the nameserver could not resolve the name (the zone's servers fail, or it \
                     refuses this client): try another nameserver and check the failing one",
                ),
        );
    }

    fn timeout(&self, out: &mut Vec<Finding>) {
        let canceled = self.dial.dial_err.to_lowercase().contains("cancel");
        let said_timeout = text::dns_timeout(&self.dial.dial_err);
        let mut silent: Vec<(&DnsQueryTrace, i64)> = Vec::new();
        for query in &self.queries {
            let Some(msg) = query
                .dns_query_msgs
                .iter()
                .find(|m| !query.dns_reply_msgs.iter().any(|r| r.id == m.id))
            else {
                continue;
            };
            let closed = self
                .ctx
                .udp(&query.connection)
                .map(|c| c.conn_close_at)
                .or_else(|| self.ctx.tcp(&query.connection).map(|c| c.conn_close_at))
                .filter(|t| !t.is_undefined())
                .unwrap_or(self.dial.dial_end_at);
            let Some(waited) = self
                .ctx
                .or_end(&closed)
                .zip(self.ctx.ms(&msg.sent_at))
                .map(|(end, sent)| end - sent)
            else {
                continue;
            };
            let counts = waited >= SLOW_QUERY_MS || (self.failed && (said_timeout || canceled));
            if counts {
                silent.push((query, waited));
            }
        }
        // Go's traces hold no messages: the resolver dials and the error say it.
        let go_style = self.queries.is_empty() && self.failed && said_timeout;
        if silent.is_empty() && !go_style {
            return;
        }
        let queries: Vec<&DnsQueryTrace> = silent.iter().map(|(q, _)| *q).collect();
        let longest = silent.iter().map(|(_, w)| *w).max().unwrap_or(0);
        let summary = if go_style {
            format!(
                "no answer resolving {}: {}",
                self.host(),
                self.dial.dial_err
            )
        } else if self.failed {
            format!(
                "no answer from nameserver {} for {} (waited {})",
                self.nameservers(&queries),
                self.host(),
                duration(longest)
            )
        } else {
            format!(
                "nameserver {} did not answer for {} within {}; another nameserver answered",
                self.nameservers(&queries),
                self.host(),
                duration(longest)
            )
        };
        let severity = if self.failed {
            Severity::Error
        } else {
            Severity::Warning
        };
        let mut finding = Finding::new(Code::DnsTimeout, severity, summary)
            .with_evidence(&self.evidence_of(&queries))
            .next(
                "check that the nameserver is reachable from here (UDP and TCP port 53 through \
                 firewalls) and that it is up; remove a dead nameserver from the configuration",
            );
        for (query, waited) in &silent {
            finding = finding.detail(format!(
                "{} {} @{}: no reply after {}",
                query.trace_id,
                Self::question(query),
                self.nameserver(query),
                duration(*waited)
            ));
        }
        for rd in self
            .dial
            .resolver_dials
            .iter()
            .filter(|rd| text::timeout(&rd.dial_err))
        {
            finding = finding.detail(format!("nameserver {}: {}", rd.nameserver, rd.dial_err));
        }
        out.push(finding);
    }

    fn truncated(&self, out: &mut Vec<Finding>) {
        for query in &self.queries {
            if self.ctx.udp(&query.connection).is_none() {
                continue;
            }
            let Some(reply) = query.dns_reply_msgs.iter().find(|r| r.truncated) else {
                continue;
            };
            let question = Self::question(query);
            // The retry: the same question on a resolver TCP connection of this dial.
            let retry = self.queries.iter().find(|q| {
                q.trace_id != query.trace_id
                    && self.ctx.tcp(&q.connection).is_some()
                    && Self::question(q) == question
            });
            let answered = retry.is_some_and(|q| {
                q.dns_reply_msgs
                    .iter()
                    .any(|r| !r.truncated && r.rcode == DnsRCode::NO_ERROR)
            });
            let (severity, outcome) = match retry {
                Some(_) if answered => (Severity::Info, "it answered over TCP".to_owned()),
                Some(_) => (Severity::Warning, "the TCP retry got no answer".to_owned()),
                None => (Severity::Warning, "no TCP retry was recorded".to_owned()),
            };
            let mut evidence = vec![self.dial.trace_id.clone(), query.trace_id.clone()];
            if let Some(retry) = retry {
                evidence.push(retry.trace_id.clone());
                evidence.push(retry.connection.clone());
            }
            out.push(
                Finding::new(
                    Code::DnsTruncated,
                    severity,
                    format!(
                        "nameserver {} truncated its UDP answer for {question} ({} bytes); the \
                         resolver fell back to TCP and {outcome}",
                        self.nameserver(query),
                        reply.size
                    ),
                )
                .with_evidence(&evidence)
                .next(
                    "large answers need DNS over TCP (port 53/tcp) or EDNS0 buffers: make sure \
                     firewalls let TCP port 53 through",
                ),
            );
        }
    }
}

/// An rcode as DNS people name it.
fn rcode_name(rcode: DnsRCode) -> String {
    match rcode.code() {
        1 => "FORMERR".to_owned(),
        2 => "SERVFAIL".to_owned(),
        4 => "NOTIMP".to_owned(),
        5 => "REFUSED".to_owned(),
        code => format!("rcode {code}"),
    }
}
