//! TLS findings, per tunnel: `tls-cert-expired`, `tls-cert-not-yet-valid`, `tls-unknown-ca`,
//! `tls-wrong-host`, `tls-handshake-timeout`, `tls-not-tls`. The handshake error says which;
//! the peer certificate (subject, issuer, validity) says what to fix. A tunnel made with
//! verification off (`insecure`) whose certificate would have failed is a warning.
use crate::{HttpReqTrace, PeerCert, TlsTunnelTrace, TraceId};

use super::context::{Ctx, addr, duration, ids};
use super::{Code, Finding, Severity, text};

pub(super) fn diagnose(ctx: &Ctx<'_>, out: &mut Vec<Finding>) {
    for tunnel in ctx.trace.net_trace.tls_tunnels.iter() {
        let (error, severity) = if !tunnel.handshake_err.is_empty() {
            (tunnel.handshake_err.as_str(), Severity::Error)
        } else if tunnel.insecure && !tunnel.cert_verify_err.is_empty() {
            (tunnel.cert_verify_err.as_str(), Severity::Warning)
        } else {
            continue;
        };
        if let Some(finding) = classify(ctx, tunnel, error, severity) {
            out.push(finding);
        }
    }
}

/// The requests that went, or were to go, through `tunnel`.
fn requests<'a>(ctx: &Ctx<'a>, tunnel: &TlsTunnelTrace) -> Vec<&'a HttpReqTrace> {
    let named = ctx.requests_through_tunnel(&tunnel.trace_id);
    if named.is_empty() {
        ctx.requests_on_conn(&tunnel.tcp_conn)
    } else {
        named
    }
}

/// `CN=x,O=y (issuer CN=z), valid 2026-01-01 to 2026-01-31`.
fn describe(cert: &PeerCert) -> String {
    let day = |ts: &crate::Timestamp| {
        ts.as_absolute()
            .map_or_else(|| ts.to_string(), |at| at.date().to_string())
    };
    format!(
        "{} (issuer {}), valid {} to {}",
        cert.subject,
        cert.issuer,
        day(&cert.not_before),
        day(&cert.not_after)
    )
}

fn classify(
    ctx: &Ctx<'_>,
    tunnel: &TlsTunnelTrace,
    error: &str,
    severity: Severity,
) -> Option<Finding> {
    let leaf = tunnel.peer_certs.first();
    let at = ctx.absolute(&tunnel.handshake_begin_at);
    let before_start = leaf
        .and_then(|c| c.not_before.as_absolute())
        .zip(at)
        .is_some_and(|(not_before, at)| at < not_before);
    // Go says `expired or is not yet valid` for both: the dates tell.
    let (expired_word, early_word) = (text::cert_expired(error), text::cert_not_yet_valid(error));
    let not_yet_valid = if expired_word && early_word {
        before_start
    } else {
        early_word || (expired_word && before_start)
    };
    let host = if tunnel.server_name.is_empty() {
        ctx.tcp(&tunnel.tcp_conn)
            .map_or_else(|| "?".to_owned(), |c| addr(c.addr_tuple.dst()))
    } else {
        tunnel.server_name.clone()
    };
    let proxy = ctx
        .requests_through_tunnel(&tunnel.trace_id)
        .iter()
        .any(|r| r.proxy_tls_tunnel == tunnel.trace_id);
    let whose = if proxy {
        format!("the proxy {host}")
    } else {
        host.clone()
    };
    let cert = leaf.map_or_else(|| "no certificate recorded".to_owned(), describe);
    let (code, summary, next) = if text::wrong_host(error) {
        let names = text::presented_names(error)
            .map_or_else(String::new, |names| format!(" (it names {names})"));
        (
            Code::TlsWrongHost,
            format!("the certificate presented by {whose} does not cover that name{names}: {cert}"),
            "use a host name the certificate covers, or fix the server's certificate (its \
             subject alternative names) or its virtual host for this name"
                .to_owned(),
        )
    } else if text::unknown_ca(error) {
        let issuer = leaf.map_or("its issuer", |c| c.issuer.as_str());
        (
            Code::TlsUnknownCa,
            format!(
                "the certificate of {whose} is issued by {issuer}, which is not trusted: {cert}"
            ),
            "install the issuing CA as trusted (--cacert), or have the server send its \
             intermediate certificates; a TLS-intercepting proxy on the path also causes this"
                .to_owned(),
        )
    } else if not_yet_valid {
        (
            Code::TlsCertNotYetValid,
            format!("the certificate of {whose} is not valid yet: {cert}"),
            "check this host's clock, then the certificate's start date".to_owned(),
        )
    } else if text::cert_expired(error) {
        let expired = leaf
            .and_then(|c| c.not_after.as_absolute())
            .zip(at)
            .map_or_else(String::new, |(not_after, at)| {
                match (at - not_after).whole_days() {
                    0 => " (less than a day before the handshake)".to_owned(),
                    1 => " (1 day before the handshake)".to_owned(),
                    days => format!(" ({days} days before the handshake)"),
                }
            });
        (
            Code::TlsCertExpired,
            format!("the certificate of {whose} has expired{expired}: {cert}"),
            "renew the server's certificate; if it is current, check this host's clock".to_owned(),
        )
    } else if text::timeout(error) {
        let conn = ctx.tcp(&tunnel.tcp_conn);
        let received = conn.map_or(0, |c| c.total_recv_bytes);
        let waited = ctx
            .span(&tunnel.handshake_begin_at, &tunnel.handshake_end_at)
            .map_or_else(String::new, |ms| format!(" in {}", duration(ms)));
        let answer = if received == 0 {
            "the server accepted the TCP connection but sent no byte".to_owned()
        } else {
            format!("the server sent {received} bytes")
        };
        (
            Code::TlsHandshakeTimeout,
            format!("the TLS handshake with {whose} did not finish{waited}: {answer}"),
            "check that the port serves TLS and that the server is not overloaded; a \
             middlebox that drops TLS (a filtering firewall) also causes this"
                .to_owned(),
        )
    } else if text::not_tls(error) {
        (
            Code::TlsNotTls,
            format!(
                "{whose} does not speak TLS on this port: its answer to the ClientHello is not \
                 TLS ({error})"
            ),
            "the port serves something else (plain HTTP?): use http:// or the TLS port".to_owned(),
        )
    } else {
        return None;
    };
    let mut evidence: Vec<TraceId> = vec![tunnel.trace_id.clone(), tunnel.tcp_conn.clone()];
    evidence.extend(ids(&requests(ctx, tunnel)).cloned());
    let mut finding = Finding::new(code, severity, summary)
        .with_evidence(&evidence)
        .detail(format!("handshake error: {error}"))
        .next(next);
    if severity == Severity::Warning {
        finding = finding.detail("verification was off (insecure): the request went on anyway");
    }
    for cert in tunnel.peer_certs.iter().skip(1) {
        finding = finding.detail(format!("chain: {}", describe(cert)));
    }
    Some(finding)
}
