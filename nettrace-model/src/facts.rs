//! Facts of a trace in one line each, shared by the waterfall and the HTML report: a
//! connection's addresses, its kernel facts (with what they mean), its conntrack entry, a TLS
//! handshake, a DNS exchange.
use std::fmt::Write as _;

use crate::{DnsQueryTrace, HttpTrace, TcpConnTrace, TlsTunnelTrace};

/// The kernel's facts about a connection in one line: RTT, losses, resets, last state.
pub(crate) fn kernel_summary(kernel: &crate::KernelTcpFacts) -> String {
    let mut parts = vec![format!(
        "srtt {}us, min rtt {}us",
        kernel.srtt_us, kernel.min_rtt_us
    )];
    if kernel.retransmits > 0 || kernel.syn_retransmits > 0 || kernel.rto_events > 0 {
        parts.push(format!(
            "{} retransmits ({} SYN), {} RTO",
            kernel.retransmits, kernel.syn_retransmits, kernel.rto_events
        ));
        if kernel.syn_retransmits > 0 && kernel.segs_in == 0 {
            parts.push("SYN never answered: filtered, or the host is down".to_owned());
        } else if kernel.syn_retransmits > 0 {
            parts.push("SYN answered late: the first ones were lost".to_owned());
        } else if kernel.retransmits > 0 && kernel.segs_out > 0 {
            parts.push(format!(
                "{}% of segments resent: loss on the path",
                u64::from(kernel.retransmits) * 100 / u64::from(kernel.segs_out)
            ));
        }
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

/// A conntrack entry in one line: the NAT mapping (original -> reply, when they differ),
/// state, flags and counters.
pub(crate) fn conntrack_summary(ct: &crate::ConntrackEntry) -> String {
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

/// `ip:port` of the local end, `?` when unknown.
pub(crate) fn src(conn: &TcpConnTrace) -> String {
    conn.addr_tuple
        .src()
        .map_or_else(|| "?".to_owned(), |a| a.to_string())
}

/// `ip:port` of the remote end, `?` when unknown.
pub(crate) fn dst(conn: &TcpConnTrace) -> String {
    conn.addr_tuple
        .dst()
        .map_or_else(|| "?".to_owned(), |a| a.to_string())
}

/// ` pid 1234 curl` when the process that opened the connection is known, else nothing.
pub(crate) fn by(conn: &TcpConnTrace) -> String {
    conn.process
        .as_ref()
        .map_or_else(String::new, |process| format!(" {process}"))
}

/// E.g. `example.com TLSv1.3 TLS_AES_128_GCM_SHA256 h2 resumed`.
pub(crate) fn tls_detail(tls: &TlsTunnelTrace) -> String {
    let mut detail = tls.server_name.clone();
    for part in [
        tls.tls_version.clone(),
        tls.cipher_suite_name(),
        tls.negotiated_proto.clone(),
    ] {
        if !part.is_empty() {
            let _ = write!(detail, " {part}");
        }
    }
    if tls.did_resume {
        detail.push_str(" resumed");
    }
    detail
}

/// One line per DNS query of `query`: `question @server -> answers`.
pub(crate) fn dns_lines(trace: &HttpTrace, query: &DnsQueryTrace) -> Vec<String> {
    let net = &trace.net_trace;
    let server = net
        .udp_conns
        .get(&query.connection)
        .and_then(|c| c.addr_tuple.dst().map(|a| a.to_string()))
        .or_else(|| {
            net.tcp_conns
                .get(&query.connection)
                .and_then(|c| c.addr_tuple.dst().map(|a| format!("{a} (tcp)")))
        })
        .unwrap_or_default();
    query
        .dns_query_msgs
        .iter()
        .map(|msg| {
            let question = msg
                .questions
                .iter()
                .map(|q| format!("{} {}", q.name, q.res_type))
                .collect::<Vec<_>>()
                .join(", ");
            let reply = query.dns_reply_msgs.iter().find(|r| r.id == msg.id);
            let answer = match reply {
                Some(r) if r.answers.is_empty() => r.rcode.to_string(),
                Some(r) => r
                    .answers
                    .iter()
                    .map(|a| {
                        if a.resolved_val.is_empty() {
                            a.res_type.to_string()
                        } else {
                            a.resolved_val.clone()
                        }
                    })
                    .collect::<Vec<_>>()
                    .join(", "),
                None => "(no reply)".to_owned(),
            };
            let truncated = if reply.is_some_and(|r| r.truncated) {
                " (truncated)"
            } else {
                ""
            };
            format!("{question} @{server} -> {answer}{truncated}")
        })
        .collect()
}
