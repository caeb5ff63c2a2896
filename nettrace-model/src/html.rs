//! A self-contained HTML report of traces: [`render`] writes one page with inline CSS and SVG
//! (no scripts, fonts or anything fetched), readable offline and attachable to a ticket.
//!
//! From top to bottom: the diagnosis (findings passed in by the caller, most important first:
//! the slot for `nettrace explain`), an SVG waterfall row per request with the phases in colour
//! and details on hover (each request links to its connection), then the DNS queries, the
//! connections with their kernel facts and conntrack entries, the TLS handshakes with their
//! certificates, and whether the kernel data is complete.
//!
//! ```
//! use nettrace_model::HttpTrace;
//! use nettrace_model::html::{render, Finding};
//! let page = render(&[HttpTrace::default()], Some(&[Finding {
//!     severity: "error".into(),
//!     code: "tcp-refused".into(),
//!     summary: "connection refused".into(),
//!     evidence: vec!["tid-3".into()],
//! }]));
//! assert!(page.starts_with("<!DOCTYPE html>"));
//! assert!(page.contains("tcp-refused"));
//! assert!(!page.contains("<script src"));
//! ```
use std::fmt::Write as _;

use crate::facts::{by, conntrack_summary, dns_lines, dst, kernel_summary, src, tls_detail};
use crate::phases::{Phase, RequestPhases, request_phases};
use crate::units::duration;
use crate::waterfall::summary;
use crate::{HttpTrace, Timestamp};

/// One finding of a diagnosis, as the report shows it (the diagnosis module maps its own
/// findings into these).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Finding {
    /// `error`, `warning` or `info`.
    pub severity: String,
    /// A short stable code, e.g. `tcp-refused`.
    pub code: String,
    /// One line: what went wrong.
    pub summary: String,
    /// The trace IDs of the records that show it (linked when the page has them).
    pub evidence: Vec<String>,
}

/// Width of the waterfall's bar area, SVG user units.
const BAR_WIDTH: f64 = 600.0;

/// The report of `traces` as one HTML page. `findings`: the diagnosis to put on top, most
/// important first; `None` when no diagnosis was made (the section says so).
pub fn render(traces: &[HttpTrace], findings: Option<&[Finding]>) -> String {
    let title = traces
        .first()
        .map_or("nettrace", |t| t.net_trace.description.as_str());
    let mut page = String::with_capacity(16 << 10);
    let _ = write!(
        page,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width\">\
         <title>nettrace: {}</title><style>{STYLE}</style></head><body>\n\
         <h1>nettrace report: {}</h1>\n",
        esc(title),
        esc(title)
    );
    diagnosis(&mut page, findings);
    for (index, trace) in traces.iter().enumerate() {
        if traces.len() > 1 {
            let _ = writeln!(
                page,
                "<h2>Trace {}: {}</h2>",
                index + 1,
                esc(&trace.net_trace.description)
            );
        }
        trace_sections(&mut page, trace, index);
    }
    page.push_str("</body></html>\n");
    page
}

const STYLE: &str = "body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222}\
h1{font-size:1.3em}h2{font-size:1.15em;margin-top:1.5em;border-bottom:1px solid #ccc}\
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ddd;padding:2px 6px;\
text-align:left;vertical-align:top;font-size:13px}th{background:#f4f4f4}\
.error{color:#b00}.warning{color:#a60}.info{color:#06c}.muted{color:#777}\
.wf-row{margin:.6em 0}.wf-label{font-family:monospace}.summary{font-family:monospace;\
color:#444}.legend span{display:inline-block;padding:0 6px;margin-right:4px;color:#fff;\
border-radius:3px}code{font-size:12px}";

/// The colour of a phase (also the legend's).
fn color(phase: Phase) -> &'static str {
    match phase {
        Phase::Blocked => "#999999",
        Phase::Dns => "#1b9aaa",
        Phase::Connect => "#e09f1f",
        Phase::ProxyTls => "#b05fc9",
        Phase::Tls => "#8e44ad",
        Phase::Send => "#3a6fd8",
        Phase::Wait => "#2e9e4f",
        Phase::Transfer => "#1f4fa0",
    }
}

fn diagnosis(page: &mut String, findings: Option<&[Finding]>) {
    page.push_str("<section id=\"diagnosis\"><h2>Diagnosis</h2>\n");
    match findings {
        None => page.push_str("<p class=\"muted\">No diagnosis was made for this report.</p>\n"),
        Some([]) => page.push_str("<p>No problem found.</p>\n"),
        Some(findings) => {
            page.push_str("<ol>\n");
            for f in findings {
                let evidence = f
                    .evidence
                    .iter()
                    .map(|id| format!("<a href=\"#{0}\">{0}</a>", esc(id)))
                    .collect::<Vec<_>>()
                    .join(", ");
                let _ = writeln!(
                    page,
                    "<li class=\"{sev}\"><b>{sev}</b> <code>{code}</code> {summary}{ev}</li>",
                    sev = esc(&f.severity),
                    code = esc(&f.code),
                    summary = esc(&f.summary),
                    ev = if evidence.is_empty() {
                        String::new()
                    } else {
                        format!(" <span class=\"muted\">(evidence: {evidence})</span>")
                    }
                );
            }
            page.push_str("</ol>\n");
        }
    }
    page.push_str("</section>\n");
}

fn trace_sections(page: &mut String, trace: &HttpTrace, index: usize) {
    let net = &trace.net_trace;
    let phases = request_phases(trace);
    let _ = writeln!(
        page,
        "<p class=\"muted\">Began {}, ended at {}.</p>",
        esc(&absolute(&net.trace_begin_at)),
        esc(&net.trace_end_at.to_string())
    );
    waterfall(page, trace, &phases, index);
    dns(page, trace);
    connections(page, trace);
    tls(page, trace);
    kernel(page, trace);
}

fn waterfall(page: &mut String, trace: &HttpTrace, phases: &[RequestPhases], index: usize) {
    page.push_str("<section class=\"waterfall\"><h2>Requests</h2>\n<p class=\"legend\">");
    for phase in Phase::ALL {
        let _ = write!(
            page,
            "<span style=\"background:{}\">{phase}</span>",
            color(phase)
        );
    }
    page.push_str("</p>\n");
    if trace.http_requests.is_empty() {
        page.push_str("<p class=\"muted\">No HTTP requests recorded.</p>\n");
    }
    let longest = phases
        .iter()
        .filter_map(|p| p.total.map(|t| t.duration_us()))
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    for (req, p) in trace.http_requests.iter().zip(phases) {
        let origin = p.total.map_or(0, |t| t.start_us);
        let outcome = if req.req_error.is_empty() {
            format!("{} ({} bytes)", req.resp_status_code, req.resp_content_len)
        } else {
            format!(
                "<span class=\"error\">failed: {}</span>",
                esc(&req.req_error)
            )
        };
        let conn = if p.tcp_conn.is_empty() {
            String::new()
        } else {
            format!(
                " over <a href=\"#{0}\">{0}</a>{1}",
                esc(p.tcp_conn.as_str()),
                if p.reused_conn.is_some() {
                    " (reused)"
                } else {
                    ""
                }
            )
        };
        let _ = writeln!(
            page,
            "<div class=\"wf-row\" id=\"{id}\"><div class=\"wf-label\">{method} {url} &rarr; \
             {outcome}{conn} <span class=\"muted\">[{id}{trace}]</span></div>",
            id = esc(req.trace_id.as_str()),
            method = esc(&req.req_method),
            url = esc(&req.req_url),
            trace = if index > 0 {
                format!(", trace {}", index + 1)
            } else {
                String::new()
            },
        );
        let _ = write!(
            page,
            "<svg width=\"{w}\" height=\"18\" viewBox=\"0 0 {w} 18\" role=\"img\">\
             <rect x=\"0\" y=\"8\" width=\"{w}\" height=\"2\" fill=\"#eee\"/>",
            w = BAR_WIDTH
        );
        for (phase, span) in p.iter() {
            let x = (span.start_us.saturating_sub(origin)) as f64 * BAR_WIDTH / longest;
            let width = (span.duration_us() as f64 * BAR_WIDTH / longest).max(1.0);
            let _ = write!(
                page,
                "<rect x=\"{x:.1}\" y=\"2\" width=\"{width:.1}\" height=\"14\" fill=\"{}\">\
                 <title>{phase}: {} (from +{})</title></rect>",
                color(phase),
                duration(span.duration_us(), p.precision),
                duration(span.start_us.saturating_sub(origin), p.precision),
            );
        }
        let ended = p.unfinished.map_or_else(String::new, |phase| {
            format!(" <span class=\"error\">ended during {phase}</span>")
        });
        let _ = writeln!(
            page,
            "</svg><div class=\"summary\">{}{ended}</div></div>",
            esc(&summary(p))
        );
    }
    page.push_str("</section>\n");
}

fn dns(page: &mut String, trace: &HttpTrace) {
    let net = &trace.net_trace;
    if net.dns_queries.is_empty() {
        return;
    }
    page.push_str("<section><h2>DNS</h2><table><tr><th>ID</th><th>dial</th><th>query</th></tr>\n");
    for query in net.dns_queries.iter() {
        for line in dns_lines(trace, query) {
            let _ = writeln!(
                page,
                "<tr><td id=\"{0}\">{0}</td><td>{1}</td><td>{2}</td></tr>",
                esc(query.trace_id.as_str()),
                esc(query.from_dial.as_str()),
                esc(&line)
            );
        }
    }
    page.push_str("</table></section>\n");
}

fn connections(page: &mut String, trace: &HttpTrace) {
    let net = &trace.net_trace;
    page.push_str(
        "<section><h2>Connections</h2><table><tr><th>ID</th><th>endpoints</th><th>state</th>\
         <th>bytes sent / received</th><th>kernel</th><th>conntrack</th></tr>\n",
    );
    for conn in net.tcp_conns.iter() {
        let state = match (conn.connected, conn.reused, conn.from_resolver) {
            (false, _, _) => "<span class=\"error\">failed</span>",
            (true, true, _) => "reused from an earlier trace",
            (true, false, true) => "connected (resolver)",
            (true, false, false) => "connected",
        };
        let _ = writeln!(
            page,
            "<tr id=\"{id}\"><td>tcp {id}</td><td>{} &rarr; {}{}</td><td>{state}</td>\
             <td>{} / {}</td><td>{}</td><td>{}</td></tr>",
            esc(&src(conn)),
            esc(&dst(conn)),
            esc(&by(conn)),
            conn.total_sent_bytes,
            conn.total_recv_bytes,
            esc(&conn.kernel.as_ref().map(kernel_summary).unwrap_or_default()),
            esc(&conn
                .conntrack
                .as_ref()
                .map(conntrack_summary)
                .unwrap_or_default()),
            id = esc(conn.trace_id.as_str()),
        );
    }
    for conn in net.udp_conns.iter() {
        let ends = |a: Option<std::net::SocketAddr>| a.map_or("?".to_owned(), |a| a.to_string());
        let _ = writeln!(
            page,
            "<tr id=\"{id}\"><td>udp {id}</td><td>{} &rarr; {}</td><td>{}</td>\
             <td>{} / {}</td><td></td><td>{}</td></tr>",
            esc(&ends(conn.addr_tuple.src())),
            esc(&ends(conn.addr_tuple.dst())),
            if conn.from_resolver { "resolver" } else { "" },
            conn.total_sent_bytes,
            conn.total_recv_bytes,
            esc(&conn
                .conntrack
                .as_ref()
                .map(conntrack_summary)
                .unwrap_or_default()),
            id = esc(conn.trace_id.as_str()),
        );
    }
    page.push_str("</table></section>\n");
}

fn tls(page: &mut String, trace: &HttpTrace) {
    let net = &trace.net_trace;
    if net.tls_tunnels.is_empty() {
        return;
    }
    page.push_str(
        "<section><h2>TLS</h2><table><tr><th>ID</th><th>connection</th><th>handshake</th>\
         <th>outcome</th><th>certificates</th></tr>\n",
    );
    for tunnel in net.tls_tunnels.iter() {
        let outcome = if tunnel.handshake_err.is_empty() {
            "ok".to_owned()
        } else {
            format!(
                "<span class=\"error\">{}</span>",
                esc(&tunnel.handshake_err)
            )
        };
        let certs = tunnel
            .peer_certs
            .iter()
            .map(|c| {
                format!(
                    "{} <span class=\"muted\">(issuer {}; valid {} to {}{})</span>",
                    esc(&c.subject),
                    esc(&c.issuer),
                    esc(&absolute(&c.not_before)),
                    esc(&absolute(&c.not_after)),
                    if c.is_ca { "; CA" } else { "" }
                )
            })
            .collect::<Vec<_>>()
            .join("<br>");
        let _ = writeln!(
            page,
            "<tr id=\"{id}\"><td>{id}</td><td><a href=\"#{conn}\">{conn}</a></td><td>{}</td>\
             <td>{outcome}</td><td>{certs}</td></tr>",
            esc(&tls_detail(tunnel)),
            id = esc(tunnel.trace_id.as_str()),
            conn = esc(tunnel.tcp_conn.as_str()),
        );
    }
    page.push_str("</table></section>\n");
}

fn kernel(page: &mut String, trace: &HttpTrace) {
    page.push_str("<section><h2>Kernel data</h2><p>");
    match &trace.net_trace.kernel_data {
        None => page.push_str("Not recorded in this trace."),
        Some(k) if !k.available => {
            let _ = write!(page, "Unavailable: {}", esc(&k.reason));
        }
        Some(k) if k.complete && k.lost_events == 0 => page.push_str("Complete."),
        Some(k) => {
            let _ = write!(
                page,
                "<span class=\"warning\">Incomplete: {} events lost.</span>",
                k.lost_events
            );
        }
    }
    page.push_str("</p></section>\n");
}

fn absolute(ts: &Timestamp) -> String {
    ts.as_absolute()
        .map_or_else(|| ts.to_string(), |at| at.to_string())
}

/// Escapes text for HTML content and attribute values.
fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn go_readme_example() -> HttpTrace {
        let json = include_str!("../../nettrace-cli/tests/golden/go_readme_example.json");
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn one_row_per_request_and_sections() {
        let page = render(&[go_readme_example()], None);
        assert_eq!(page.matches("class=\"wf-row\"").count(), 1);
        for section in [
            "Diagnosis",
            "Requests",
            "DNS",
            "Connections",
            "TLS",
            "Kernel data",
        ] {
            assert!(page.contains(&format!("<h2>{section}</h2>")), "{section}");
        }
        assert!(page.contains("No diagnosis was made"));
        assert!(page.contains("<a href=\"#tid-8\">tid-8</a>"));
        assert!(page.contains("CN=GTS Root R1"));
        assert!(
            page.contains("<title>tls: 46ms (from +54ms)</title>"),
            "{page}"
        );
        assert!(!page.contains("http://") || !page.contains("src=\"http"));
    }

    #[test]
    fn findings_on_top_and_text_escaped() {
        let mut trace = go_readme_example();
        trace.http_requests[0].req_url = "https://x/<script>".into();
        let findings = [Finding {
            severity: "error".into(),
            code: "tls-unknown-ca".into(),
            summary: "unknown <CA>".into(),
            evidence: vec!["tid-9".into()],
        }];
        let page = render(&[trace], Some(&findings));
        assert!(page.contains("unknown &lt;CA&gt;"));
        assert!(!page.contains("<script>"));
        assert!(page.find("tls-unknown-ca") < page.find("class=\"wf-row\""));
        assert!(page.contains("<a href=\"#tid-9\">tid-9</a>"));
        assert!(render(&[HttpTrace::default()], Some(&[])).contains("No problem found"));
    }
}
