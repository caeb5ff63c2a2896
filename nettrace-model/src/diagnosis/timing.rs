//! Where a request's time went, as the HTTP findings need it: the wait for the first response
//! byte, the body's transfer, the total, and the phase that was running when a request failed.
use crate::{HttpReqTrace, SocketOpType, TraceId};

use super::context::Ctx;

/// A step of a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Phase {
    /// Resolving the host name.
    Dns,
    /// The TCP handshake.
    Connect,
    /// The TLS handshake.
    Tls,
    /// Waiting for the response's head.
    Wait,
    /// Receiving the body.
    Transfer,
}

impl Phase {
    /// `resolving the name`, ...
    pub(super) fn describe(self) -> &'static str {
        match self {
            Self::Dns => "resolving the host name (dns)",
            Self::Connect => "connecting (TCP handshake)",
            Self::Tls => "in the TLS handshake",
            Self::Wait => "waiting for the response (wait)",
            Self::Transfer => "receiving the body (transfer)",
        }
    }
}

/// A request's times in milliseconds, where the trace holds them.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Times {
    /// From the connection being ready (and the request sent) to the response head.
    pub(super) wait: Option<i64>,
    /// From the response head to the last body byte read.
    pub(super) transfer: Option<i64>,
    /// From the request to its last byte.
    pub(super) total: Option<i64>,
}

/// The times of `req`.
pub(super) fn of(ctx: &Ctx<'_>, req: &HttpReqTrace) -> Times {
    let net = &ctx.trace.net_trace;
    let Some(sent) = ctx.ms(&req.req_sent_at) else {
        return Times::default();
    };
    let conn = net.tcp_conns.get(&req.tcp_conn);
    let tunnels = [&req.tls_tunnel, &req.proxy_tls_tunnel];
    let ready = conn
        .and_then(|c| ctx.ms(&c.handshake_end_at))
        .into_iter()
        .chain(
            tunnels
                .iter()
                .filter_map(|id| net.tls_tunnels.get(*id))
                .filter_map(|t| ctx.ms(&t.handshake_end_at)),
        )
        .fold(sent, i64::max);
    let headers = ctx.ms(&req.resp_recv_at);
    let last_byte = headers.and_then(|head| last_read(ctx, req, head));
    let end = last_byte.or(headers);
    Times {
        wait: headers.map(|h| h - ready),
        transfer: last_byte.zip(headers).map(|(last, head)| last - head),
        total: end.map(|e| e - sent),
    }
}

/// The end of the last read with data on the request's connection after its head arrived and
/// before the next request on that connection was sent.
fn last_read(ctx: &Ctx<'_>, req: &HttpReqTrace, head: i64) -> Option<i64> {
    let conn = ctx.trace.net_trace.tcp_conns.get(&req.tcp_conn)?;
    let next = ctx
        .trace
        .http_requests
        .iter()
        .filter(|r| r.tcp_conn == req.tcp_conn && r.trace_id != req.trace_id)
        .filter_map(|r| ctx.ms(&r.req_sent_at))
        .filter(|s| *s > head)
        .min()
        .unwrap_or(i64::MAX);
    conn.socket_trace
        .as_ref()?
        .socket_ops
        .iter()
        .filter(|op| op.op_type == SocketOpType::Read && op.data_len > 0)
        .filter_map(|op| ctx.ms(&op.return_at))
        .filter(|at| *at >= head && *at < next)
        .max()
}

/// The phase `req` was in when it failed, and the record of that phase.
pub(super) fn running_phase(ctx: &Ctx<'_>, req: &HttpReqTrace) -> Option<(Phase, TraceId)> {
    let net = &ctx.trace.net_trace;
    let Some(conn) = net.tcp_conns.get(&req.tcp_conn) else {
        let dial = ctx.dials_of_failed_request(req).into_iter().next()?;
        let attempt = net
            .tcp_conns
            .iter()
            .rfind(|c| c.from_dial == dial.trace_id && !c.from_resolver);
        return Some(match attempt {
            Some(conn) => (Phase::Connect, conn.trace_id.clone()),
            None => {
                let silent = net.dns_queries.iter().find(|q| {
                    q.from_dial == dial.trace_id && q.dns_reply_msgs.len() < q.dns_query_msgs.len()
                });
                (
                    Phase::Dns,
                    silent.map_or_else(|| dial.trace_id.clone(), |q| q.trace_id.clone()),
                )
            }
        });
    };
    let stuck_tunnel = [&req.proxy_tls_tunnel, &req.tls_tunnel]
        .into_iter()
        .filter_map(|id| net.tls_tunnels.get(id))
        .find(|t| t.handshake_end_at.is_undefined() || !t.handshake_err.is_empty());
    Some(if let Some(tunnel) = stuck_tunnel {
        (Phase::Tls, tunnel.trace_id.clone())
    } else if !conn.connected {
        (Phase::Connect, conn.trace_id.clone())
    } else if req.resp_recv_at.is_undefined() {
        (Phase::Wait, req.trace_id.clone())
    } else {
        (Phase::Transfer, req.trace_id.clone())
    })
}
