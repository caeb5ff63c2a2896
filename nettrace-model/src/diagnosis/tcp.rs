//! TCP findings, per connection: `tcp-refused`, `tcp-syn-unanswered`, `tcp-retransmits`,
//! `tcp-reset`, and `nat` from the conntrack entries. The kernel's facts (SYN and data
//! retransmits, resets, RTT) say it best; without them, the dial's and requests' error texts.
use crate::{AddrTuple, ConntrackEntry, ConntrackStatus, KernelTcpFacts, TcpConnTrace, TraceId};

use super::context::{Ctx, addr, duration, ids, micros};
use super::{Code, Finding, Severity, text};

/// A handshake left unanswered this long is worth a finding even without a timeout error
/// (e.g. a request canceled while connecting).
const SLOW_HANDSHAKE_MS: i64 = 1000;

pub(super) fn diagnose(ctx: &Ctx<'_>, out: &mut Vec<Finding>) {
    let no_facts = KernelTcpFacts::default();
    for conn in ctx.trace.net_trace.tcp_conns.iter() {
        let kernel = conn.kernel.as_ref().unwrap_or(&no_facts);
        if conn.connected {
            syn_retried(ctx, conn, kernel, out);
            retransmits(ctx, conn, kernel, out);
            reset(ctx, conn, kernel, out);
        } else {
            not_connected(ctx, conn, kernel, out);
        }
    }
    nat(ctx, out);
}

/// `connection tid-8 to 127.0.0.1:80` (or `resolver connection`).
fn name(conn: &TcpConnTrace) -> String {
    let what = if conn.from_resolver {
        "resolver connection"
    } else {
        "connection"
    };
    format!(
        "{what} {} to {}",
        conn.trace_id,
        addr(conn.addr_tuple.dst())
    )
}

fn evidence(ctx: &Ctx<'_>, conn: &TcpConnTrace) -> Vec<TraceId> {
    let mut evidence = vec![conn.trace_id.clone(), conn.from_dial.clone()];
    evidence.extend(ids(&ctx.requests_of_tcp(conn)).cloned());
    evidence
}

fn not_connected(
    ctx: &Ctx<'_>,
    conn: &TcpConnTrace,
    kernel: &KernelTcpFacts,
    out: &mut Vec<Finding>,
) {
    let dial = ctx.dial(&conn.from_dial);
    let dial_err = dial.map_or("", |d| d.dial_err.as_str());
    // A failed attempt matters most when its dial connected nothing else.
    let severity = match dial {
        Some(d) if !d.established_conn.is_empty() => Severity::Warning,
        _ => Severity::Error,
    };
    let waited = ctx
        .or_end(&conn.handshake_end_at)
        .zip(ctx.ms(&conn.handshake_begin_at))
        .map(|(end, begin)| end - begin);
    let dst = addr(conn.addr_tuple.dst());
    if kernel.rst_received || text::refused(dial_err) {
        let how = if kernel.rst_received {
            "the kernel saw a reset in answer to the SYN"
        } else {
            dial_err
        };
        out.push(
            Finding::new(
                Code::TcpRefused,
                severity,
                format!("{dst} refused the {} ({how})", name(conn)),
            )
            .with_evidence(&evidence(ctx, conn))
            .next(format!(
                "nothing listens on port {} there, or a firewall rejects the connection: check \
                 that the service runs and listens on that address and port",
                conn.addr_tuple.dst_port
            )),
        );
        return;
    }
    // The connect's own timeout; a request limit that cut the connect short says less (the
    // request-timeout finding covers it unless the SYN was retransmitted or waited long).
    let timed_out =
        text::timeout(dial_err) && !text::dns_timeout(dial_err) && !text::request_timeout(dial_err);
    let slow = waited.is_some_and(|w| w >= SLOW_HANDSHAKE_MS);
    if kernel.syn_retransmits == 0 && !timed_out && !slow {
        return;
    }
    let mut summary = format!("no answer to the SYN of the {}", name(conn));
    if kernel.syn_retransmits > 0 {
        summary.push_str(&format!(": {} SYN retransmits", kernel.syn_retransmits));
        if let Some(waited) = waited {
            summary.push_str(&format!(" over {}", duration(waited)));
        }
    } else if let Some(waited) = waited {
        summary.push_str(&format!(" in {}", duration(waited)));
    }
    summary.push_str(", likely filtered (dropped by a firewall) or the host is down");
    let mut finding = Finding::new(Code::TcpSynUnanswered, severity, summary)
        .with_evidence(&evidence(ctx, conn))
        .next(format!(
            "the SYN got no answer at all: check the address, the route and the firewalls \
             toward {dst} (a rule that drops rather than rejects), and that the host is up"
        ));
    if kernel.rto_events > 0 {
        finding = finding.detail(format!("{} retransmission timeouts", kernel.rto_events));
    }
    if !dial_err.is_empty() {
        finding = finding.detail(format!("dial error: {dial_err}"));
    }
    out.push(finding);
}

/// A connection that got through only after its SYN was retransmitted.
fn syn_retried(
    ctx: &Ctx<'_>,
    conn: &TcpConnTrace,
    kernel: &KernelTcpFacts,
    out: &mut Vec<Finding>,
) {
    if kernel.syn_retransmits == 0 {
        return;
    }
    let took = ctx
        .span(&conn.handshake_begin_at, &conn.handshake_end_at)
        .map_or_else(String::new, |ms| {
            format!("; the handshake took {}", duration(ms))
        });
    out.push(
        Finding::new(
            Code::TcpSynUnanswered,
            Severity::Warning,
            format!(
                "the SYN of the {} was retransmitted {} times before the peer answered{took}",
                name(conn),
                kernel.syn_retransmits
            ),
        )
        .with_evidence(&evidence(ctx, conn))
        .next("the first SYNs were lost: look for packet loss or a rate limit toward the peer"),
    );
}

fn retransmits(
    ctx: &Ctx<'_>,
    conn: &TcpConnTrace,
    kernel: &KernelTcpFacts,
    out: &mut Vec<Finding>,
) {
    let data = kernel.retransmits.saturating_sub(kernel.syn_retransmits);
    if data == 0 {
        return;
    }
    let share = f64::from(data) * 100.0 / f64::from(kernel.segs_out.max(data));
    let severity = if share < 1.0 && kernel.rto_events == 0 {
        Severity::Info
    } else {
        Severity::Warning
    };
    let mut summary = format!(
        "{data} of {} segments sent on the {} were retransmitted ({share:.1}%)",
        kernel.segs_out,
        name(conn)
    );
    if kernel.rto_events > 0 {
        summary.push_str(&format!(", {} retransmission timeouts", kernel.rto_events));
    }
    let mut finding = Finding::new(Code::TcpRetransmits, severity, summary)
        .with_evidence(&evidence(ctx, conn))
        .next(
            "packets are lost on the path: check the link and its error counters (ip -s link), \
             the MTU, and queues or shapers in between (mtr toward the peer)",
        );
    if kernel.srtt_us > 0 {
        finding = finding.detail(format!(
            "smoothed RTT {}, min RTT {}",
            micros(kernel.srtt_us),
            micros(kernel.min_rtt_us)
        ));
    }
    finding = finding.detail(format!(
        "{} bytes sent, {} received",
        conn.total_sent_bytes, conn.total_recv_bytes
    ));
    out.push(finding);
}

fn reset(ctx: &Ctx<'_>, conn: &TcpConnTrace, kernel: &KernelTcpFacts, out: &mut Vec<Finding>) {
    let requests = ctx.requests_on_conn(&conn.trace_id);
    let op_error = conn
        .socket_trace
        .as_ref()
        .and_then(|s| s.socket_ops.iter().find(|op| text::reset(&op.return_err)))
        .map(|op| op.return_err.as_str());
    let request_error = requests
        .iter()
        .find(|r| text::reset(&r.req_error))
        .map(|r| r.req_error.as_str());
    let call_error = Some(kernel.calls.last_error.as_str()).filter(|e| text::reset(e));
    let seen = op_error.or(call_error).or(request_error);
    if !kernel.rst_received && seen.is_none() {
        return;
    }
    // The reset broke something: a read or write failed on it, or a request failed. Not
    // when a TLS handshake on the connection failed: the reset follows that failure (a peer
    // that does not speak TLS resets the connection after its own error).
    let tls_failed = ctx
        .trace
        .net_trace
        .tls_tunnels
        .iter()
        .any(|t| t.tcp_conn == conn.trace_id && !t.handshake_err.is_empty());
    let harmful = !tls_failed
        && (seen.is_some()
            || kernel.calls.recv_errors > 0
            || kernel.calls.send_errors > 0
            || requests.iter().any(|r| !r.req_error.is_empty()));
    let severity = if harmful {
        Severity::Error
    } else {
        Severity::Warning
    };
    let mut summary = format!(
        "the peer reset the {} after {} bytes received, {} sent",
        name(conn),
        conn.total_recv_bytes,
        conn.total_sent_bytes
    );
    if let Some(error) = seen {
        summary.push_str(&format!(" ({error})"));
    }
    let mut finding = Finding::new(Code::TcpReset, severity, summary)
        .with_evidence(&evidence(ctx, conn))
        .next(
            "the server or a middlebox aborted the connection: check the server's logs, its \
             timeouts and connection limits, and any load balancer or firewall in between",
        );
    if let Some(last) = kernel.states.last() {
        finding = finding.detail(format!("last TCP state {} -> {}", last.from, last.to));
    }
    out.push(finding);
}

/// Connections whose conntrack entry shows an address translation.
fn nat(ctx: &Ctx<'_>, out: &mut Vec<Finding>) {
    let net = &ctx.trace.net_trace;
    let entries = net
        .tcp_conns
        .iter()
        .filter_map(|c| c.conntrack.as_ref().map(|ct| (&c.trace_id, ct)))
        .chain(
            net.udp_conns
                .iter()
                .filter_map(|c| c.conntrack.as_ref().map(|ct| (&c.trace_id, ct))),
        );
    let mut translated: Vec<(&TraceId, String)> = Vec::new();
    for (id, entry) in entries {
        if let Some(how) = translation(entry) {
            translated.push((id, how));
        }
    }
    let Some((first_id, first)) = translated.first() else {
        return;
    };
    let summary = if translated.len() == 1 {
        format!("NAT on the path of connection {first_id}: {first}")
    } else {
        format!(
            "NAT on the path of {} connections, e.g. {first_id}: {first}",
            translated.len()
        )
    };
    let mut finding = Finding::new(Code::Nat, Severity::Info, summary)
        .with_evidence(translated.iter().map(|(id, _)| *id))
        .next(
            "the peer sees other addresses than this host used: when it fails, check the NAT \
             rules (nft list ruleset, iptables -t nat -L) and the load balancer or gateway",
        );
    for (id, how) in &translated {
        finding = finding.detail(format!("{id}: {how}"));
    }
    out.push(finding);
}

/// How a conntrack entry's reply tuple differs from the mirror of its original one.
fn translation(entry: &ConntrackEntry) -> Option<String> {
    let (orig, reply) = (&entry.addr_orig, &entry.addr_reply);
    let sock = |ip: Option<std::net::IpAddr>, port: u16| {
        addr(ip.map(|ip| std::net::SocketAddr::new(ip, port)))
    };
    let mut parts = Vec::new();
    let dnat = reply.src_ip != orig.dst_ip || reply.src_port != orig.dst_port;
    let snat = reply.dst_ip != orig.src_ip || reply.dst_port != orig.src_port;
    if known(orig) && known(reply) {
        if dnat {
            parts.push(format!(
                "destination {} translated to {} (DNAT)",
                sock(orig.dst_ip, orig.dst_port),
                sock(reply.src_ip, reply.src_port)
            ));
        }
        if snat {
            parts.push(format!(
                "source {} translated to {} (SNAT)",
                sock(orig.src_ip, orig.src_port),
                sock(reply.dst_ip, reply.dst_port)
            ));
        }
    }
    if parts.is_empty() {
        let flagged = entry.status.contains(ConntrackStatus::SRC_NAT)
            || entry.status.contains(ConntrackStatus::DST_NAT);
        if !flagged {
            return None;
        }
        parts.push(format!("conntrack status {}", entry.status));
    }
    Some(parts.join("; "))
}

/// Both addresses of a tuple are known.
fn known(tuple: &AddrTuple) -> bool {
    tuple.src_ip.is_some() && tuple.dst_ip.is_some()
}
