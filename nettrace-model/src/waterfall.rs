//! A trace as a readable timeline, like a browser's network panel: per HTTP request, the DNS
//! queries, TCP connects and TLS handshake behind it, the request and the response, with
//! milliseconds, a bar per step and every error.
//!
//! ```
//! use nettrace_model::HttpTrace;
//! let text = nettrace_model::waterfall::render(&HttpTrace::default());
//! assert!(text.contains("no HTTP requests"));
//! ```
use std::fmt::Write as _;

use crate::{DialTrace, HttpReqTrace, HttpTrace, Timestamp};

/// Width of the bar column.
const BAR_WIDTH: usize = 30;

/// Renders `trace` as text.
pub fn render(trace: &HttpTrace) -> String {
    let net = &trace.net_trace;
    let end = net.trace_end_at.as_relative_ms().unwrap_or(0).max(1);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "trace {:?}: began {}, {} ms",
        net.description,
        display_absolute(&net.trace_begin_at),
        end
    );
    let timeline = Timeline { end };
    if trace.http_requests.is_empty() {
        let _ = writeln!(out, "  (no HTTP requests recorded)");
        for dial in net.dials.iter() {
            render_dial(&mut out, &timeline, trace, dial);
        }
    }
    for request in trace.http_requests.iter() {
        render_request(&mut out, &timeline, trace, request);
    }
    out
}

struct Timeline {
    end: u32,
}

impl Timeline {
    /// One step: label, detail, time span and bar.
    fn line(&self, out: &mut String, label: &str, detail: &str, from: &Timestamp, to: &Timestamp) {
        let (span, bar) = match (from.as_relative_ms(), to.as_relative_ms()) {
            (Some(a), Some(b)) => (
                format!("+{a}ms..+{b}ms ({}ms)", b.saturating_sub(a)),
                self.bar(a, b),
            ),
            (Some(a), None) if to.is_undefined() => {
                (format!("+{a}ms..(unfinished)"), self.bar(a, self.end))
            }
            (Some(a), None) => (format!("+{a}ms"), self.bar(a, a)),
            (None, _) if from.is_undefined() => (String::new(), String::new()),
            (None, _) => ("before this trace".to_owned(), String::new()),
        };
        let _ = writeln!(
            out,
            "  {label:<9} {detail:<52} {span:<26} |{bar:<BAR_WIDTH$}|"
        );
    }

    fn bar(&self, from: u32, to: u32) -> String {
        let scale = |ms: u32| (ms as usize * BAR_WIDTH / self.end as usize).min(BAR_WIDTH);
        let (a, b) = (scale(from), scale(to).max(scale(from) + 1).min(BAR_WIDTH));
        format!("{}{}", " ".repeat(a), "#".repeat(b.saturating_sub(a)))
    }
}

fn render_request(out: &mut String, timeline: &Timeline, trace: &HttpTrace, req: &HttpReqTrace) {
    let net = &trace.net_trace;
    let outcome = if req.req_error.is_empty() {
        format!(
            "{} HTTP/{}.{}, {} bytes",
            req.resp_status_code, req.proto_major, req.proto_minor, req.resp_content_len
        )
    } else if req.resp_status_code != 0 {
        format!("{} then FAILED: {}", req.resp_status_code, req.req_error)
    } else {
        format!("FAILED: {}", req.req_error)
    };
    let _ = writeln!(out, "\n{} {} -> {}", req.req_method, req.req_url, outcome);
    if !req.network_proxy.is_empty() {
        let _ = writeln!(out, "  via proxy {}", req.network_proxy);
    }
    let conn = net.tcp_conns.get(&req.tcp_conn);
    let dial = conn
        .and_then(|c| net.dials.get(&c.from_dial))
        .or_else(|| dial_of_failed_request(trace, req));
    match (conn, dial) {
        (Some(conn), _) if conn.reused => {
            let _ = writeln!(
                out,
                "  reused connection {} ({} -> {}{})",
                conn.trace_id,
                src(conn),
                dst(conn),
                by(conn)
            );
        }
        (_, Some(dial)) => render_dial(out, timeline, trace, dial),
        _ => {}
    }
    // Older Go traces name no tunnel in the request: fall back to the one on its connection.
    let on_conn = || {
        net.tls_tunnels
            .iter()
            .rfind(|t| !req.tcp_conn.is_empty() && t.tcp_conn == req.tcp_conn)
    };
    let tls = net.tls_tunnels.get(&req.tls_tunnel).or_else(|| {
        if req.tls_tunnel.is_empty() && req.proxy_tls_tunnel.is_empty() {
            on_conn()
        } else {
            None
        }
    });
    let tunnels = [
        ("proxy tls", net.tls_tunnels.get(&req.proxy_tls_tunnel)),
        ("tls", tls),
    ];
    for (label, tunnel) in tunnels {
        if let Some(tls) = tunnel {
            // E.g. `example.com TLSv1.3 TLS_AES_128_GCM_SHA256 h2`.
            let mut detail = tls.server_name.clone();
            for part in [tls.tls_version.clone(), tls.cipher_suite_name()] {
                if !part.is_empty() {
                    let _ = write!(detail, " {part}");
                }
            }
            if !tls.negotiated_proto.is_empty() {
                let _ = write!(detail, " {}", tls.negotiated_proto);
            }
            if tls.did_resume {
                detail.push_str(" resumed");
            }
            timeline.line(
                out,
                label,
                &detail,
                &tls.handshake_begin_at,
                &tls.handshake_end_at,
            );
            if !tls.handshake_err.is_empty() {
                let _ = writeln!(out, "            error: {}", tls.handshake_err);
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
    }
    timeline.line(
        out,
        "request",
        &format!("{} bytes of body", req.req_content_len),
        &req.req_sent_at,
        &req.resp_recv_at,
    );
    if !req.resp_recv_at.is_undefined() {
        timeline.line(
            out,
            "response",
            &format!("status {}", req.resp_status_code),
            &req.resp_recv_at,
            &req.resp_recv_at,
        );
    }
    if let Some(conn) = conn {
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
}

/// The kernel's facts about a connection in one line: RTT, losses, resets, last state.
fn kernel_summary(kernel: &crate::KernelTcpFacts) -> String {
    let mut parts = vec![format!(
        "srtt {}us, min rtt {}us",
        kernel.srtt_us, kernel.min_rtt_us
    )];
    if kernel.retransmits > 0 || kernel.syn_retransmits > 0 || kernel.rto_events > 0 {
        parts.push(format!(
            "{} retransmits ({} SYN), {} RTO",
            kernel.retransmits, kernel.syn_retransmits, kernel.rto_events
        ));
    } else {
        parts.push("no retransmits".to_owned());
    }
    match (kernel.rst_sent, kernel.rst_received) {
        (true, true) => parts.push("reset sent and received".to_owned()),
        (true, false) => parts.push("reset sent".to_owned()),
        (false, true) => parts.push("reset by peer".to_owned()),
        (false, false) => {}
    }
    if let Some(last) = kernel.states.last() {
        parts.push(format!("state {}", last.to));
    }
    if !kernel.calls.last_error.is_empty() {
        parts.push(format!("last error: {}", kernel.calls.last_error));
    }
    parts.join(", ")
}

/// The dial of a request that got no connection, found through its failed connection attempts
/// or, failing that, the only dial of the trace.
fn dial_of_failed_request<'a>(trace: &'a HttpTrace, _req: &HttpReqTrace) -> Option<&'a DialTrace> {
    let dials = &trace.net_trace.dials;
    (dials.len() == 1).then(|| &dials[0])
}

fn render_dial(out: &mut String, timeline: &Timeline, trace: &HttpTrace, dial: &DialTrace) {
    let net = &trace.net_trace;
    for skipped in &dial.skipped_nameservers {
        let _ = writeln!(out, "  dns       skipped nameserver {skipped}");
    }
    for query in net
        .dns_queries
        .iter()
        .filter(|q| q.from_dial == dial.trace_id)
    {
        let server = net
            .udp_conns
            .get(&query.connection)
            .map(|c| {
                c.addr_tuple
                    .dst_ip
                    .map(|ip| format!("{ip}:{}", c.addr_tuple.dst_port))
            })
            .or_else(|| {
                net.tcp_conns.get(&query.connection).map(|c| {
                    c.addr_tuple
                        .dst_ip
                        .map(|ip| format!("{ip}:{} (tcp)", c.addr_tuple.dst_port))
                })
            })
            .flatten()
            .unwrap_or_default();
        for msg in &query.dns_query_msgs {
            let question = msg
                .questions
                .iter()
                .map(|q| format!("{} {}", q.name, q.res_type))
                .collect::<Vec<_>>()
                .join(", ");
            let reply = query.dns_reply_msgs.iter().find(|r| r.id == msg.id);
            let answer = match reply {
                Some(r) if r.answers.is_empty() => format!(" -> {}", r.rcode),
                Some(r) => format!(
                    " -> {}",
                    r.answers
                        .iter()
                        .map(|a| if a.resolved_val.is_empty() {
                            a.res_type.to_string()
                        } else {
                            a.resolved_val.clone()
                        })
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                None => " -> (no reply)".to_owned(),
            };
            let until = reply.map_or(Timestamp::Undefined, |r| r.recv_at);
            timeline.line(
                out,
                "dns",
                &format!("{question} @{server}{answer}"),
                &msg.sent_at,
                &until,
            );
        }
    }
    if net.dns_queries.is_empty() {
        for resolver in &dial.resolver_dials {
            timeline.line(
                out,
                "dns",
                &format!("nameserver {}", resolver.nameserver),
                &resolver.dial_begin_at,
                &resolver.dial_end_at,
            );
        }
    }
    for conn in net
        .tcp_conns
        .iter()
        .filter(|c| c.from_dial == dial.trace_id && !c.from_resolver)
    {
        let state = if conn.connected { "" } else { " (failed)" };
        timeline.line(
            out,
            "connect",
            &format!("{} -> {}{state}{}", src(conn), dst(conn), by(conn)),
            &conn.handshake_begin_at,
            &conn.handshake_end_at,
        );
    }
    if !dial.dial_err.is_empty() {
        let _ = writeln!(out, "  dial      error: {}", dial.dial_err);
    }
    if dial.established_conn.is_empty()
        && dial.dial_err.is_empty()
        && !dial.dial_end_at.is_undefined()
    {
        let _ = writeln!(out, "  dial      ended without a connection");
    }
}

/// A conntrack entry in one line: the NAT mapping (original -> reply, when they differ),
/// state, flags and counters.
fn conntrack_summary(ct: &crate::ConntrackEntry) -> String {
    let tuple = |t: &crate::AddrTuple| {
        let ip = |ip: Option<std::net::IpAddr>| ip.map_or("?".to_owned(), |ip| ip.to_string());
        (
            format!("{}:{}", ip(t.src_ip), t.src_port),
            format!("{}:{}", ip(t.dst_ip), t.dst_port),
        )
    };
    let (orig_src, orig_dst) = tuple(&ct.addr_orig);
    let (reply_src, reply_dst) = tuple(&ct.addr_reply);
    let mut line = format!("{orig_src} -> {orig_dst}");
    // Without NAT the reply tuple mirrors the original one.
    if reply_src != orig_dst || reply_dst != orig_src {
        let _ = write!(line, " NAT: reply {reply_src} -> {reply_dst}");
    }
    if !ct.tcp_state.is_none() {
        let _ = write!(line, ", {}", ct.tcp_state);
    }
    let _ = write!(
        line,
        " [{}], sent {} pkts/{} B, received {} pkts/{} B",
        ct.status, ct.packets_sent, ct.bytes_sent, ct.packets_recv, ct.bytes_recv
    );
    line
}

fn src(conn: &crate::TcpConnTrace) -> String {
    match conn.addr_tuple.src_ip {
        Some(ip) => format!("{ip}:{}", conn.addr_tuple.src_port),
        None => "?".to_owned(),
    }
}

fn dst(conn: &crate::TcpConnTrace) -> String {
    match conn.addr_tuple.dst_ip {
        Some(ip) => format!("{ip}:{}", conn.addr_tuple.dst_port),
        None => "?".to_owned(),
    }
}

/// ` pid 1234 curl` when the process that opened the connection is known, else nothing.
fn by(conn: &crate::TcpConnTrace) -> String {
    conn.process
        .as_ref()
        .map_or_else(String::new, |process| format!(" {process}"))
}

fn display_absolute(ts: &Timestamp) -> String {
    match ts.as_absolute() {
        Some(at) => at.to_string(),
        None => "(unknown)".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{AddrTuple, ConntrackEntry, ConntrackStatus, TcpState};

    fn tuple(src: &str, sport: u16, dst: &str, dport: u16) -> AddrTuple {
        AddrTuple {
            src_ip: src.parse().ok(),
            src_port: sport,
            dst_ip: dst.parse().ok(),
            dst_port: dport,
        }
    }

    #[test]
    fn connect_line_names_the_process() {
        use crate::{ConnProcess, DialTrace, TcpConnTrace, TraceId};
        let dial = DialTrace {
            trace_id: TraceId::new("dial-1"),
            dial_begin_at: Timestamp::Relative(1),
            dial_end_at: Timestamp::Relative(3),
            established_conn: TraceId::new("conn-1"),
            ..DialTrace::default()
        };
        let conn = TcpConnTrace {
            trace_id: TraceId::new("conn-1"),
            from_dial: TraceId::new("dial-1"),
            handshake_begin_at: Timestamp::Relative(1),
            handshake_end_at: Timestamp::Relative(3),
            connected: true,
            addr_tuple: tuple("127.0.0.1", 40000, "127.0.0.1", 8080),
            process: Some(ConnProcess {
                pid: 1234,
                comm: "curl".into(),
            }),
            ..TcpConnTrace::default()
        };
        let mut trace = HttpTrace::default();
        trace.net_trace.trace_end_at = Timestamp::Relative(10);
        trace.net_trace.dials = vec![dial].into();
        trace.net_trace.tcp_conns = vec![conn.clone()].into();
        let text = render(&trace);
        assert!(
            text.contains("connect   127.0.0.1:40000 -> 127.0.0.1:8080 pid 1234 curl "),
            "{text}"
        );
        trace.net_trace.tcp_conns = vec![TcpConnTrace {
            process: None,
            ..conn
        }]
        .into();
        assert!(!render(&trace).contains("pid"));
    }

    #[test]
    fn conntrack_line_shows_nat_only_when_reply_differs() {
        let mut ct = ConntrackEntry {
            status: ConntrackStatus::SEEN_REPLY | ConntrackStatus::SRC_NAT,
            tcp_state: TcpState::TimeWait,
            addr_orig: tuple("10.0.0.1", 40000, "192.0.2.7", 80),
            addr_reply: tuple("10.1.0.9", 8080, "10.0.0.100", 40001),
            packets_sent: 6,
            bytes_sent: 399,
            ..ConntrackEntry::default()
        };
        assert_eq!(
            conntrack_summary(&ct),
            "10.0.0.1:40000 -> 192.0.2.7:80 NAT: reply 10.1.0.9:8080 -> 10.0.0.100:40001, \
             time-wait [seen-reply|src-nat], sent 6 pkts/399 B, received 0 pkts/0 B"
        );
        ct.addr_reply = tuple("192.0.2.7", 80, "10.0.0.1", 40000);
        ct.tcp_state = TcpState::None;
        assert!(!conntrack_summary(&ct).contains("NAT"));
        assert!(!conntrack_summary(&ct).contains("none"));
    }
}
