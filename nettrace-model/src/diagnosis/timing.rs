//! Where a request's time went, as the HTTP findings need it, from its phases
//! ([`crate::phases`]): the wait for the response head, the body's transfer, the total, and
//! the phase that was running when a request failed (with the record of that phase).
use crate::phases::{Phase, Precision, RequestPhases};
use crate::{HttpReqTrace, TraceId};

use super::context::Ctx;

/// What the phase was doing, for a sentence: `resolving the host name (dns)`.
pub(super) fn describe(phase: Phase) -> &'static str {
    match phase {
        Phase::Blocked => "waiting for a connection (blocked)",
        Phase::Dns => "resolving the host name (dns)",
        Phase::Connect => "connecting (TCP handshake)",
        Phase::ProxyTls => "in the TLS handshake with the proxy (proxy-tls)",
        Phase::Tls => "in the TLS handshake (tls)",
        Phase::Send => "sending the request (send)",
        Phase::Wait => "waiting for the response (wait)",
        Phase::Transfer => "receiving the body (transfer)",
    }
}

/// A request's times in microseconds, where the trace holds them.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Times {
    /// From the request being sent to the response head.
    pub(super) wait_us: Option<u64>,
    /// From the response head to the last body byte.
    pub(super) transfer_us: Option<u64>,
    /// From the request to its last byte.
    pub(super) total_us: Option<u64>,
    /// How precise they are.
    pub(super) precision: Precision,
}

/// The times of `req`.
pub(super) fn of(ctx: &Ctx<'_>, req: &HttpReqTrace) -> Times {
    let Some(phases) = ctx.phases(req) else {
        return Times::default();
    };
    Times {
        wait_us: phases.wait.map(|s| s.duration_us()),
        transfer_us: phases.transfer.map(|s| s.duration_us()),
        total_us: phases.total.map(|s| s.duration_us()),
        precision: phases.precision,
    }
}

/// The phase `req` was in when it failed, and the record of that phase.
pub(super) fn running_phase(ctx: &Ctx<'_>, req: &HttpReqTrace) -> Option<(Phase, TraceId)> {
    let phases = ctx.phases(req)?;
    let phase = phases.unfinished?;
    Some((phase, record_of(ctx, req, phases, phase)))
}

/// The record that shows `phase` of `req`: the silent DNS query (or the dial), the TCP
/// connection, the TLS tunnel, or the request itself.
fn record_of(ctx: &Ctx<'_>, req: &HttpReqTrace, phases: &RequestPhases, phase: Phase) -> TraceId {
    let net = &ctx.trace.net_trace;
    match phase {
        Phase::Dns => net
            .dns_queries
            .iter()
            .find(|q| {
                !phases.dial.is_empty()
                    && q.from_dial == phases.dial
                    && q.dns_reply_msgs.len() < q.dns_query_msgs.len()
            })
            .map_or_else(|| phases.dial.clone(), |q| q.trace_id.clone()),
        Phase::Connect => phases.tcp_conn.clone(),
        Phase::ProxyTls => req.proxy_tls_tunnel.clone(),
        Phase::Tls if !req.tls_tunnel.is_empty() => req.tls_tunnel.clone(),
        Phase::Tls => net
            .tls_tunnels
            .iter()
            .rfind(|t| !phases.tcp_conn.is_empty() && t.tcp_conn == phases.tcp_conn)
            .map_or_else(|| req.trace_id.clone(), |t| t.trace_id.clone()),
        Phase::Blocked | Phase::Send | Phase::Wait | Phase::Transfer => req.trace_id.clone(),
    }
}
