//! A trace as a readable timeline, like a browser's network panel: per HTTP request, its phases
//! ([`crate::phases`]) as bars on one time axis, with what happened in each (DNS answers, the
//! connection, the TLS handshake), a curl-`-w`-like summary line, and the facts of its
//! connection (bytes, kernel, conntrack). Then every connection no request used (a
//! `nettrace-loader trace` file has only those).
//!
//! Bars start at each request's own start and share one scale, set by the slowest request, so
//! that a request late in a long trace is as readable as the first. Durations adapt their unit
//! (µs, ms, s) and never claim more precision than the trace holds. Colour (ANSI) only when
//! asked ([`Options::color`]; the CLI asks on a terminal without `NO_COLOR`); long details are
//! cut to keep the columns aligned.
//!
//! ```
//! use nettrace_model::HttpTrace;
//! use nettrace_model::waterfall::{render, render_with, Options};
//! let text = render(&HttpTrace::default());
//! assert!(text.contains("no HTTP requests"));
//! let plain = render_with(&HttpTrace::default(), &Options { color: false, ..Options::default() });
//! assert!(!plain.contains('\x1b'));
//! ```
use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;

use crate::facts::{by, conntrack_summary, dns_lines, dst, kernel_summary, src, tls_detail};
use crate::phases::{Phase, Precision, RequestPhases, Span, request_phases};
use crate::units::duration;
use crate::{
    DialTrace, DnsQueryTrace, HttpReqTrace, HttpTrace, TcpConnTrace, Timestamp, TlsTunnelTrace,
};

#[cfg(test)]
mod tests;

/// How to render.
#[derive(Clone, Debug)]
pub struct Options {
    /// Colour the bars and errors with ANSI escapes.
    pub color: bool,
    /// Width of the bar column, characters.
    pub bar_width: usize,
    /// Width of the detail column; longer details are cut with `…`.
    pub detail_width: usize,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            color: false,
            bar_width: 30,
            detail_width: 60,
        }
    }
}

/// Renders `trace` as plain text (no colour).
pub fn render(trace: &HttpTrace) -> String {
    render_with(trace, &Options::default())
}

/// Renders `trace` as text with `options`.
pub fn render_with(trace: &HttpTrace, options: &Options) -> String {
    let net = &trace.net_trace;
    let phases = request_phases(trace);
    let precision = if !phases.is_empty() && phases.iter().all(|p| p.precision == Precision::Micros)
    {
        Precision::Micros
    } else {
        Precision::Millis
    };
    let end = crate::phases::Clock::of(trace).us(&net.trace_end_at);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "trace {:?}: began {}, lasted {}{}",
        net.description,
        display_absolute(&net.trace_begin_at),
        end.map_or_else(|| "(unknown)".to_owned(), |us| duration(us, precision)),
        match precision {
            Precision::Millis => ", times in whole milliseconds",
            Precision::Micros => "",
        }
    );
    if let Some(kernel) = &net.kernel_data {
        if !kernel.available {
            let _ = writeln!(out, "  kernel data unavailable: {}", kernel.reason);
        } else if !kernel.complete || kernel.lost_events > 0 {
            let _ = writeln!(
                out,
                "  kernel data INCOMPLETE: {} events lost (ring buffer full)",
                kernel.lost_events
            );
        }
    }
    // One scale for every request: the slowest one fills the bar column.
    let longest = phases
        .iter()
        .filter_map(|p| p.total.map(|t| t.duration_us()))
        .max()
        .unwrap_or(0)
        .max(1);
    let view = View {
        options,
        longest,
        trace,
        ix: Lookups::of(trace, &phases),
    };
    if trace.http_requests.is_empty() {
        let _ = writeln!(out, "  (no HTTP requests recorded)");
    }
    let mut shown_conns: HashSet<String> = HashSet::new();
    for (req, phases) in trace.http_requests.iter().zip(&phases) {
        view.request(&mut out, req, phases, &mut shown_conns);
    }
    view.other_connections(&mut out, &shown_conns);
    out
}

/// What every line needs.
struct View<'a> {
    options: &'a Options,
    /// The longest request, µs: the width of the bar column.
    longest: u64,
    trace: &'a HttpTrace,
    /// The trace's records by ID, built once.
    ix: Lookups<'a>,
}

/// The lookups the rendering makes per request, built once per trace so that a trace of
/// many requests renders in O(n) lookups rather than a scan per request.
struct Lookups<'a> {
    conns: HashMap<&'a str, &'a TcpConnTrace>,
    dials: HashMap<&'a str, &'a DialTrace>,
    tunnels: HashMap<&'a str, &'a TlsTunnelTrace>,
    /// The last TLS tunnel on each connection.
    last_tunnel_on: HashMap<&'a str, &'a TlsTunnelTrace>,
    /// The requests on each connection ID, in the trace's order.
    users: HashMap<&'a str, Vec<&'a HttpReqTrace>>,
    /// DNS queries of each dial, in the trace's order.
    dns_of_dial: HashMap<&'a str, Vec<&'a DnsQueryTrace>>,
    /// Connections of each dial (not for the resolver), in the trace's order.
    attempts_of_dial: HashMap<&'a str, Vec<&'a TcpConnTrace>>,
    /// The dials that made a request's connection.
    phase_dials: HashSet<String>,
}

impl<'a> Lookups<'a> {
    fn of(trace: &'a HttpTrace, phases: &[RequestPhases]) -> Self {
        let net = &trace.net_trace;
        let mut last_tunnel_on = HashMap::new();
        for t in net.tls_tunnels.iter() {
            last_tunnel_on.insert(t.tcp_conn.as_str(), t);
        }
        let mut users: HashMap<&str, Vec<&HttpReqTrace>> = HashMap::new();
        for r in trace.http_requests.iter() {
            users.entry(r.tcp_conn.as_str()).or_default().push(r);
        }
        let mut dns_of_dial: HashMap<&str, Vec<&DnsQueryTrace>> = HashMap::new();
        for q in net.dns_queries.iter() {
            dns_of_dial.entry(q.from_dial.as_str()).or_default().push(q);
        }
        let mut attempts_of_dial: HashMap<&str, Vec<&TcpConnTrace>> = HashMap::new();
        for c in net.tcp_conns.iter().filter(|c| !c.from_resolver) {
            attempts_of_dial
                .entry(c.from_dial.as_str())
                .or_default()
                .push(c);
        }
        Self {
            conns: net.tcp_conns.by_id(),
            dials: net.dials.by_id(),
            tunnels: net.tls_tunnels.by_id(),
            last_tunnel_on,
            users,
            dns_of_dial,
            attempts_of_dial,
            phase_dials: phases.iter().map(|p| p.dial.as_str().to_owned()).collect(),
        }
    }

    fn conn(&self, id: &str) -> Option<&'a TcpConnTrace> {
        self.conns.get(id).copied()
    }

    fn dial(&self, id: &str) -> Option<&'a DialTrace> {
        self.dials.get(id).copied()
    }

    fn tunnel(&self, id: &str) -> Option<&'a TlsTunnelTrace> {
        self.tunnels.get(id).copied()
    }

    /// The TLS tunnel of `req`, as `phases::tls_of` finds it.
    fn tls_of(&self, req: &HttpReqTrace) -> Option<&'a TlsTunnelTrace> {
        self.tunnel(req.tls_tunnel.as_str()).or_else(|| {
            let unnamed = req.tls_tunnel.is_empty() && req.proxy_tls_tunnel.is_empty();
            if unnamed && !req.tcp_conn.is_empty() {
                self.last_tunnel_on.get(req.tcp_conn.as_str()).copied()
            } else {
                None
            }
        })
    }
}

/// Where a request's bars start (µs since the trace began) and how precise its times are.
#[derive(Clone, Copy)]
struct Axis {
    origin: u64,
    precision: Precision,
}

/// ANSI colour of a phase's bar.
fn phase_color(phase: Phase) -> &'static str {
    match phase {
        Phase::Blocked => "\x1b[90m",
        Phase::Dns => "\x1b[36m",
        Phase::Connect => "\x1b[33m",
        Phase::ProxyTls | Phase::Tls => "\x1b[35m",
        Phase::Send => "\x1b[34m",
        Phase::Wait => "\x1b[32m",
        Phase::Transfer => "\x1b[94m",
    }
}

const RESET: &str = "\x1b[0m";
const RED: &str = "\x1b[31m";
const BOLD: &str = "\x1b[1m";

impl View<'_> {
    fn paint(&self, color: &str, text: &str) -> String {
        if self.options.color {
            format!("{color}{text}{RESET}")
        } else {
            text.to_owned()
        }
    }

    /// Cuts `detail` to the detail column.
    fn cut(&self, detail: &str) -> String {
        let width = self.options.detail_width;
        if detail.chars().count() <= width {
            detail.to_owned()
        } else {
            let mut cut: String = detail.chars().take(width.saturating_sub(1)).collect();
            cut.push('…');
            cut
        }
    }

    /// One step: label, detail, start (from the request's start), duration and bar.
    fn line(
        &self,
        out: &mut String,
        label: &str,
        detail: &str,
        phase: Option<Phase>,
        span: Option<Span>,
        axis: Axis,
    ) {
        let Axis { origin, precision } = axis;
        let detail = self.cut(detail);
        let pad = self
            .options
            .detail_width
            .saturating_sub(detail.chars().count());
        let (at, took, bar) = match span {
            Some(span) => (
                format!(
                    "+{}",
                    duration(span.start_us.saturating_sub(origin), precision)
                ),
                duration(span.duration_us(), precision),
                self.bar(span, origin, phase),
            ),
            None => (String::new(), String::new(), String::new()),
        };
        let bar = if bar.is_empty() {
            String::new()
        } else {
            format!(" |{bar}|")
        };
        let line = format!("  {label:<9} {detail}{:pad$} {at:>9} {took:>7}{bar}", "");
        let _ = writeln!(out, "{}", line.trim_end());
    }

    fn bar(&self, span: Span, origin: u64, phase: Option<Phase>) -> String {
        let width = self.options.bar_width;
        let scale = |us: u64| {
            let cells =
                u128::from(us.saturating_sub(origin)) * width as u128 / u128::from(self.longest);
            usize::try_from(cells).unwrap_or(width).min(width)
        };
        let a = scale(span.start_us).min(width.saturating_sub(1));
        let b = scale(span.end_us).max(a + 1).min(width);
        let fill = "#".repeat(b - a);
        let fill = match phase {
            Some(phase) => self.paint(phase_color(phase), &fill),
            None => fill,
        };
        format!("{}{fill}{}", " ".repeat(a), " ".repeat(width - b))
    }

    fn request(
        &self,
        out: &mut String,
        req: &HttpReqTrace,
        phases: &RequestPhases,
        shown: &mut HashSet<String>,
    ) {
        let precision = phases.precision;
        let origin = phases.total.map_or(0, |t| t.start_us);
        let outcome = if req.req_error.is_empty() {
            format!(
                "{} HTTP/{}.{}, {} bytes",
                req.resp_status_code, req.proto_major, req.proto_minor, req.resp_content_len
            )
        } else if req.resp_status_code != 0 {
            self.paint(
                RED,
                &format!("{} then FAILED: {}", req.resp_status_code, req.req_error),
            )
        } else {
            self.paint(RED, &format!("FAILED: {}", req.req_error))
        };
        let started = phases.total.map_or_else(String::new, |t| {
            format!(" (at +{})", duration(t.start_us, precision))
        });
        let _ = writeln!(
            out,
            "\n{} -> {outcome}{started}",
            self.paint(BOLD, &format!("{} {}", req.req_method, req.req_url))
        );
        if !req.network_proxy.is_empty() {
            let _ = writeln!(out, "  via proxy {}", req.network_proxy);
        }
        let line = |out: &mut String, label: &str, detail: &str, phase: Phase| {
            self.line(
                out,
                label,
                detail,
                Some(phase),
                phases.get(phase),
                Axis { origin, precision },
            );
        };
        if let Some(blocked) = phases.blocked
            && blocked.duration_us() > 0
        {
            line(out, "blocked", "waiting before the dial", Phase::Blocked);
        }
        if let Some(conn_id) = &phases.reused_conn {
            let conn = self.ix.conn(conn_id.as_str());
            let first_user = self
                .ix
                .users
                .get(conn_id.as_str())
                .into_iter()
                .flatten()
                .find(|r| r.trace_id != req.trace_id)
                .map(|r| format!(", opened for {}", r.trace_id))
                .unwrap_or_default();
            let carried = if conn.is_some_and(|c| c.reused) {
                ", from an earlier trace"
            } else {
                ""
            };
            let ends = conn.map_or_else(String::new, |c| {
                format!(" ({} -> {}{})", src(c), dst(c), by(c))
            });
            let _ = writeln!(
                out,
                "  reused    connection {conn_id}{ends}{first_user}{carried}"
            );
        } else if let Some(dial) = self.ix.dial(phases.dial.as_str()) {
            self.dial(out, dial, phases, origin);
        }
        if phases.reused_conn.is_none() {
            let tls = self.ix.tls_of(req);
            let tunnels = [
                (
                    "proxy tls",
                    Phase::ProxyTls,
                    self.ix.tunnel(req.proxy_tls_tunnel.as_str()),
                ),
                ("tls", Phase::Tls, tls),
            ];
            for (label, phase, tunnel) in tunnels {
                if let Some(tls) = tunnel {
                    let detail = tls_detail(tls);
                    line(out, label, &detail, phase);
                    if detail.chars().count() > self.options.detail_width {
                        // Cut above: the whole of it (version and cipher suite) here.
                        let _ = writeln!(out, "            {detail}");
                    }
                    self.tls_facts(out, tls);
                }
            }
        }
        if phases.send.is_some() {
            line(
                out,
                "send",
                &format!("request, {} bytes of body", req.req_content_len),
                Phase::Send,
            );
        }
        if phases.wait.is_some() {
            let detail = if req.resp_recv_at.is_undefined() {
                "no response".to_owned()
            } else {
                format!("until the response head: status {}", req.resp_status_code)
            };
            line(out, "wait", &detail, Phase::Wait);
        }
        if phases.transfer.is_some() {
            line(
                out,
                "transfer",
                &format!("{} bytes of body", req.resp_content_len),
                Phase::Transfer,
            );
        }
        let _ = writeln!(out, "  summary   {}", summary(phases));
        if let Some(phase) = phases.unfinished {
            let _ = writeln!(
                out,
                "  {}",
                self.paint(RED, &format!("ended during: {phase}"))
            );
        }
        if let Some(conn) = self.ix.conn(phases.tcp_conn.as_str()) {
            // A connection's facts are printed once, under its first request.
            if !shown.insert(conn.trace_id.as_str().to_owned()) {
                return;
            }
            self.conn_facts(out, conn);
        }
    }

    fn tls_facts(&self, out: &mut String, tls: &TlsTunnelTrace) {
        if !tls.handshake_err.is_empty() {
            let _ = writeln!(
                out,
                "            {}",
                self.paint(RED, &format!("error: {}", tls.handshake_err))
            );
        }
        if tls.insecure {
            let verdict = if tls.cert_verify_err.is_empty() {
                "would have passed"
            } else {
                tls.cert_verify_err.as_str()
            };
            let _ = writeln!(out, "            not verified (insecure): {verdict}");
        }
        if let Some(leaf) = tls.peer_certs.first() {
            let _ = writeln!(
                out,
                "            certificate: {} (issuer {})",
                leaf.subject, leaf.issuer
            );
        }
    }

    /// The DNS and connect lines of the dial that made a request's connection.
    fn dial(&self, out: &mut String, dial: &DialTrace, phases: &RequestPhases, origin: u64) {
        let precision = phases.precision;
        for skipped in &dial.skipped_nameservers {
            let _ = writeln!(out, "  dns       skipped nameserver {skipped}");
        }
        let mut dns_shown = false;
        for query in self
            .ix
            .dns_of_dial
            .get(dial.trace_id.as_str())
            .into_iter()
            .flatten()
        {
            for text in dns_lines(self.trace, query) {
                let span = if dns_shown { None } else { phases.dns };
                self.line(
                    out,
                    "dns",
                    &text,
                    Some(Phase::Dns),
                    span,
                    Axis { origin, precision },
                );
                dns_shown = true;
            }
        }
        if !dns_shown {
            let detail = match dial.resolver_dials.first() {
                Some(resolver) => format!("nameserver {}", resolver.nameserver),
                None if phases.dns.is_some() => format!("resolving {}", dial.dst_address),
                None => String::new(),
            };
            if phases.dns.is_some() || !detail.is_empty() {
                self.line(
                    out,
                    "dns",
                    &detail,
                    Some(Phase::Dns),
                    phases.dns,
                    Axis { origin, precision },
                );
            }
        }
        let attempts: Vec<&TcpConnTrace> = self
            .ix
            .attempts_of_dial
            .get(dial.trace_id.as_str())
            .cloned()
            .unwrap_or_default();
        let clock = crate::phases::Clock::of(self.trace);
        for conn in &attempts {
            let state = if conn.connected { "" } else { " (failed)" };
            let span = match (
                clock.us(&conn.handshake_begin_at),
                clock.us(&conn.handshake_end_at),
            ) {
                _ if attempts.len() == 1 => phases.connect,
                (Some(a), Some(b)) => Some(Span::new(a, b)),
                (Some(a), None) => Some(Span::new(a, a)),
                _ => None,
            };
            self.line(
                out,
                "connect",
                &format!("{} -> {}{state}{}", src(conn), dst(conn), by(conn)),
                Some(Phase::Connect),
                span,
                Axis { origin, precision },
            );
            if !conn.connected
                && let Some(kernel) = &conn.kernel
            {
                let _ = writeln!(out, "  kernel    {}", kernel_summary(kernel));
            }
        }
        if !dial.dial_err.is_empty() {
            let _ = writeln!(
                out,
                "  dial      {}",
                self.paint(RED, &format!("error: {}", dial.dial_err))
            );
        }
        if dial.established_conn.is_empty()
            && dial.dial_err.is_empty()
            && !dial.dial_end_at.is_undefined()
        {
            let _ = writeln!(out, "  dial      ended without a connection");
        }
    }

    /// Bytes, kernel facts and conntrack entry of a connection.
    fn conn_facts(&self, out: &mut String, conn: &TcpConnTrace) {
        let _ = writeln!(
            out,
            "  bytes     sent {} / received {} on {}",
            conn.total_sent_bytes, conn.total_recv_bytes, conn.trace_id
        );
        if let Some(kernel) = &conn.kernel {
            let _ = writeln!(out, "  kernel    {}", kernel_summary(kernel));
        }
        if let Some(ct) = &conn.conntrack {
            let _ = writeln!(out, "  conntrack {}", conntrack_summary(ct));
        }
    }

    /// Every connection no request went over: TCP (not the resolver's) and UDP.
    fn other_connections(&self, out: &mut String, shown: &HashSet<String>) {
        let net = &self.trace.net_trace;
        let used = |id: &str| shown.contains(id) || self.ix.users.contains_key(id);
        let tcp: Vec<&TcpConnTrace> = net
            .tcp_conns
            .iter()
            .filter(|c| !c.from_resolver && !used(c.trace_id.as_str()))
            // Failed attempts of a request's dial were shown with it.
            .filter(|c| {
                self.trace.http_requests.is_empty()
                    || c.connected
                    || !self
                        .ix
                        .dial(c.from_dial.as_str())
                        .is_some_and(|d| self.ix.phase_dials.contains(d.trace_id.as_str()))
            })
            .collect();
        let udp: Vec<_> = net.udp_conns.iter().filter(|c| !c.from_resolver).collect();
        if tcp.is_empty() && udp.is_empty() {
            return;
        }
        let _ = writeln!(out, "\nconnections without an HTTP request:");
        let clock = crate::phases::Clock::of(self.trace);
        for conn in tcp {
            let state = if conn.connected { "" } else { " (failed)" };
            let begin = clock.us(&conn.handshake_begin_at);
            let span = begin.map(|b| Span::new(b, clock.us(&conn.handshake_end_at).unwrap_or(b)));
            let _ = writeln!(
                out,
                "\ntcp {} {} -> {}{state}{}{}",
                conn.trace_id,
                src(conn),
                dst(conn),
                by(conn),
                begin.map_or_else(String::new, |b| format!(
                    " (at +{})",
                    duration(b, Precision::Millis)
                ))
            );
            if let Some(dial) = self.ix.dial(conn.from_dial.as_str()) {
                let _ = writeln!(out, "  dial      {}", dial.dst_address);
                if !dial.dial_err.is_empty() {
                    let _ = writeln!(out, "  dial      error: {}", dial.dial_err);
                }
            }
            if let Some(span) = span {
                let _ = writeln!(
                    out,
                    "  connect   took {}",
                    duration(span.duration_us(), Precision::Millis)
                );
            }
            for tls in net
                .tls_tunnels
                .iter()
                .filter(|t| t.tcp_conn == conn.trace_id)
            {
                let took = match (
                    clock.us(&tls.handshake_begin_at),
                    clock.us(&tls.handshake_end_at),
                ) {
                    (Some(a), Some(b)) => {
                        format!(
                            ", took {}",
                            duration(b.saturating_sub(a), Precision::Millis)
                        )
                    }
                    _ => String::new(),
                };
                let _ = writeln!(out, "  tls       {}{took}", tls_detail(tls));
                self.tls_facts(out, tls);
            }
            self.conn_facts(out, conn);
        }
        for conn in udp {
            let ends = format!(
                "{} -> {}",
                conn.addr_tuple
                    .src()
                    .map_or_else(|| "?".to_owned(), |a| a.to_string()),
                conn.addr_tuple
                    .dst()
                    .map_or_else(|| "?".to_owned(), |a| a.to_string())
            );
            let by = conn
                .process
                .as_ref()
                .map_or_else(String::new, |p| format!(" {p}"));
            let _ = writeln!(out, "\nudp {} {ends}{by}", conn.trace_id);
            let _ = writeln!(
                out,
                "  bytes     sent {} / received {}",
                conn.total_sent_bytes, conn.total_recv_bytes
            );
            if let Some(ct) = &conn.conntrack {
                let _ = writeln!(out, "  conntrack {}", conntrack_summary(ct));
            }
        }
    }
}

/// The curl-`-w`-like summary of a request: `dns 1.2ms  connect 0.3ms  ...  total 2.73s`.
pub fn summary(phases: &RequestPhases) -> String {
    let mut parts: Vec<String> = phases
        .iter()
        .filter(|(phase, span)| *phase != Phase::Blocked || span.duration_us() > 0)
        .map(|(phase, span)| format!("{phase} {}", duration(span.duration_us(), phases.precision)))
        .collect();
    if let Some(conn) = &phases.reused_conn {
        parts.push(format!("(reused {conn})"));
    }
    if let Some(total) = phases.total {
        parts.push(format!(
            "total {}",
            duration(total.duration_us(), phases.precision)
        ));
    }
    parts.join("  ")
}

fn display_absolute(ts: &Timestamp) -> String {
    match ts.as_absolute() {
        Some(at) => at.to_string(),
        None => "(unknown)".to_owned(),
    }
}
