//! HTTP findings, per request: `proxy-auth-required`, `http-redirect-loop`,
//! `http-slow-server`, `http-slow-transfer`, `request-timeout`, and `request-failed` for a
//! failure that no other finding explains. Where the time went comes from the request's
//! phases ([`super::timing`]).
use crate::{HttpReqTrace, TraceId};

use std::collections::HashSet;

use crate::phases::Phase;
use crate::units;

use super::context::{Ctx, micros, rate};
use super::timing;
use super::{Code, Finding, Severity, text};

/// A wait or a transfer this long (µs), and at least half of the request's time, is slow.
const SLOW_US: u64 = 1_000_000;

pub(super) fn diagnose(ctx: &Ctx<'_>, out: &mut Vec<Finding>) {
    for req in ctx.trace.http_requests.iter() {
        proxy_auth(req, out);
        request_timeout(ctx, req, out);
        slow(ctx, req, out);
    }
    redirect_loops(ctx, out);
}

fn proxy_auth(req: &HttpReqTrace, out: &mut Vec<Finding>) {
    let refused_connect =
        text::proxy_auth(&req.req_error) && text::says(&req.req_error, &["proxy"]);
    if req.resp_status_code != 407 && !refused_connect {
        return;
    }
    let proxy = if req.network_proxy.is_empty() {
        "the proxy".to_owned()
    } else {
        format!("proxy {}", req.network_proxy)
    };
    let mut finding = Finding::new(
        Code::ProxyAuthRequired,
        Severity::Error,
        format!(
            "{proxy} asks for credentials (407 Proxy Authentication Required) for {}",
            req.req_url
        ),
    )
    .with_evidence([&req.trace_id, &req.tcp_conn])
    .next("give the proxy's user and password (--proxy-user, or user:password@ in the proxy URL), and check that they are accepted");
    if !req.req_error.is_empty() {
        finding = finding.detail(format!("request error: {}", req.req_error));
    }
    out.push(finding);
}

fn request_timeout(ctx: &Ctx<'_>, req: &HttpReqTrace, out: &mut Vec<Finding>) {
    if !text::request_timeout(&req.req_error) {
        return;
    }
    let running = timing::running_phase(ctx, req);
    let (phase, record) = running
        .as_ref()
        .map_or(("in an unknown phase", TraceId::default()), |(p, id)| {
            (timing::describe(*p), id.clone())
        });
    out.push(
        Finding::new(
            Code::RequestTimeout,
            Severity::Error,
            format!(
                "the request to {} hit its time limit while {phase} ({})",
                req.req_url, req.req_error
            ),
        )
        .with_evidence([&req.trace_id, &record])
        .next(match running.map(|(p, _)| p) {
            Some(Phase::Blocked) => "every connection to the host was busy: allow more connections per host, or send fewer requests at once",
            Some(Phase::Dns) => "the nameservers are slow or silent: see the DNS findings",
            Some(Phase::Connect) => "the server does not accept the connection in time: see the TCP findings",
            Some(Phase::Tls | Phase::ProxyTls) => "the TLS handshake is stuck: check the server's TLS port",
            Some(Phase::Send) => "the request could not be sent in time: check the upload's throughput",
            Some(Phase::Wait) => "the server takes too long to answer: check its load and logs, or raise the limit",
            Some(Phase::Transfer) => "the body arrives too slowly for the limit: check the throughput, or raise the limit",
            None => "raise the limit, or look at where the time went in the waterfall",
        }),
    );
}

fn slow(ctx: &Ctx<'_>, req: &HttpReqTrace, out: &mut Vec<Finding>) {
    if !req.req_error.is_empty() {
        return;
    }
    let times = timing::of(ctx, req);
    let Some(total) = times.total_us.filter(|t| *t > 0) else {
        return;
    };
    let show = |us: u64| units::duration(us, times.precision);
    let evidence = [&req.trace_id, &req.tcp_conn];
    if let Some(wait) = times.wait_us
        && wait >= SLOW_US
        && wait.saturating_mul(2) >= total
    {
        out.push(
            Finding::new(
                Code::HttpSlowServer,
                Severity::Warning,
                format!(
                    "the server took {} to start answering {} ({}% of the request's {})",
                    show(wait),
                    req.req_url,
                    percent(wait, total),
                    show(total)
                ),
            )
            .with_evidence(evidence)
            .detail(rtt_detail(ctx, req))
            .next("the time is spent in the server (or its backends) before it answers: check its load, logs and slow queries"),
        );
    }
    if let Some(transfer) = times.transfer_us
        && transfer >= SLOW_US
        && transfer.saturating_mul(2) >= total
    {
        let received = ctx.tcp(&req.tcp_conn).map_or(0, |c| c.total_recv_bytes);
        let body = req.resp_content_len;
        out.push(
            Finding::new(
                Code::HttpSlowTransfer,
                Severity::Warning,
                format!(
                    "the body of {} ({body} bytes) took {} to arrive after the headers ({}% of \
                     the request's {}), {}; {}",
                    req.req_url,
                    show(transfer),
                    percent(transfer, total),
                    show(total),
                    rate(body, transfer),
                    rtt_detail(ctx, req)
                ),
            )
            .with_evidence(evidence)
            .detail(format!("{received} bytes received on the connection"))
            .next("with a short RTT the sender is the bottleneck (a slow server or upstream); with a long RTT or retransmits, the path: compare with the TCP findings"),
        );
    }
}

/// `part` as a whole percentage of `total` (not zero).
fn percent(part: u64, total: u64) -> u128 {
    u128::from(part) * 100 / u128::from(total)
}

/// `RTT 0.1 ms` from the kernel's facts about the request's connection.
fn rtt_detail(ctx: &Ctx<'_>, req: &HttpReqTrace) -> String {
    ctx.tcp(&req.tcp_conn)
        .and_then(|c| c.kernel.as_ref())
        .filter(|k| k.srtt_us > 0)
        .map_or_else(
            || "RTT not measured (no kernel facts)".to_owned(),
            |k| format!("RTT {} (min {})", micros(k.srtt_us), micros(k.min_rtt_us)),
        )
}

/// Chains of redirects (consecutive 3xx answers) that visit a URL twice or end at the limit.
fn redirect_loops(ctx: &Ctx<'_>, out: &mut Vec<Finding>) {
    let mut chain: Vec<&HttpReqTrace> = Vec::new();
    for req in ctx.trace.http_requests.iter() {
        chain.push(req);
        let redirect = (300..400).contains(&req.resp_status_code);
        if !redirect || !req.req_error.is_empty() {
            loop_in(&chain, out);
            chain.clear();
        }
    }
    loop_in(&chain, out);
}

fn loop_in(chain: &[&HttpReqTrace], out: &mut Vec<Finding>) {
    let Some(last) = chain.last() else {
        return;
    };
    let repeated = chain.iter().enumerate().find_map(|(i, req)| {
        chain[..i]
            .iter()
            .position(|earlier| earlier.req_url == req.req_url)
            .map(|first| (first, i))
    });
    let limit = text::too_many_redirects(&last.req_error);
    if repeated.is_none() && !limit {
        return;
    }
    let summary = match repeated {
        Some((first, again)) => format!(
            "redirect loop: {} redirects back to itself after {} hop(s) ({} requests in all{})",
            chain[first].req_url,
            again - first,
            chain.len(),
            if limit {
                format!(", {}", last.req_error)
            } else {
                String::new()
            }
        ),
        None => format!(
            "redirects did not end: {} ({} requests from {})",
            last.req_error,
            chain.len(),
            chain[0].req_url
        ),
    };
    let severity = if limit || !last.req_error.is_empty() {
        Severity::Error
    } else {
        Severity::Warning
    };
    let mut finding = Finding::new(Code::HttpRedirectLoop, severity, summary)
        .with_evidence(chain.iter().map(|r| &r.trace_id))
        .next("the server (or a proxy) keeps redirecting: check its redirect rules, e.g. http<->https or with/without www, and cookies it expects");
    for req in chain.iter().take(4) {
        finding = finding.detail(format!(
            "{} {} -> {}",
            req.trace_id, req.req_url, req.resp_status_code
        ));
    }
    out.push(finding);
}

/// A failed request that no error finding names gets one of its own, so that a failure is
/// never reported as "no problem found".
pub(super) fn unexplained_failures(ctx: &Ctx<'_>, out: &mut Vec<Finding>) {
    let explained: HashSet<&TraceId> = out
        .iter()
        .filter(|f| f.severity == Severity::Error)
        .flat_map(|f| f.evidence.iter())
        .collect();
    let mut extra = Vec::new();
    for req in ctx.trace.http_requests.iter() {
        if req.req_error.is_empty() || explained.contains(&req.trace_id) {
            continue;
        }
        let mut evidence = vec![req.trace_id.clone(), req.tcp_conn.clone()];
        evidence.extend(
            ctx.dials_of_failed_request(req)
                .iter()
                .map(|d| d.trace_id.clone()),
        );
        extra.push(
            Finding::new(
                Code::RequestFailed,
                Severity::Error,
                format!("the request to {} failed: {}", req.req_url, req.req_error),
            )
            .with_evidence(&evidence)
            .next("no known pattern matches: read the error and the records named as evidence"),
        );
    }
    out.extend(extra);
}
