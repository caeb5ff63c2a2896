//! The request span's attributes (semantic conventions where they have a name) and its
//! error class.
use nettrace_model::{HttpReqTrace, TcpConnTrace};

use super::{Attr, Text, Value, int, s};

/// A short, low-cardinality class of an error text (semantic conventions' `error.type`).
pub(super) fn error_type(error: &str) -> &'static str {
    let lower = error.to_ascii_lowercase();
    let known = [
        ("timed out", "timeout"),
        ("timeout", "timeout"),
        ("refused", "connection_refused"),
        ("reset", "connection_reset"),
        ("certificate", "tls_certificate"),
        ("tls", "tls"),
        ("dns", "dns"),
        ("resolv", "dns"),
        ("canceled", "canceled"),
    ];
    known
        .iter()
        .find(|(needle, _)| lower.contains(needle))
        .map_or("_OTHER", |(_, kind)| kind)
}

/// The attributes of a request span: the request, its response, and the connection it went
/// over (`conn`; `reused` when it was opened for something earlier).
pub(super) fn request_attrs<'a>(
    hop: &'a HttpReqTrace,
    conn: Option<&'a TcpConnTrace>,
    reused: bool,
) -> Vec<Attr<'a>> {
    // The request's attributes, those of its address and connection, and the few its span
    // and tree add (precision, error, the trace's description): one allocation of 1,008
    // bytes, which glibc serves from its per-thread cache. That holds the usual request;
    // one through a proxy that failed, in a trace with a session ID, grows it (at most 24).
    let mut attrs = Vec::with_capacity(21);
    attrs.extend([
        ("http.request.method", s(&hop.req_method)),
        ("url.full", s(&hop.req_url)),
        ("nettrace.trace_id", s(hop.trace_id.as_str())),
        ("network.protocol.name", s("http")),
        (
            "network.protocol.version",
            s(match (hop.proto_major, hop.proto_minor) {
                (1, 1) => Text::from("1.1"),
                (1, 0) => Text::from("1.0"),
                (2, _) => Text::from("2"),
                (major, minor) => Text::format(format_args!("{major}.{minor}")),
            }),
        ),
        ("http.request.body.size", int(hop.req_content_len)),
        ("http.response.body.size", int(hop.resp_content_len)),
    ]);
    if hop.resp_status_code != 0 {
        attrs.push(("http.response.status_code", int(hop.resp_status_code)));
    }
    if let Some((host, port)) = server_of(&hop.req_url) {
        attrs.push(("server.address", s(host)));
        attrs.push(("server.port", int(port)));
    }
    if !hop.network_proxy.is_empty() {
        attrs.push(("nettrace.network_proxy", s(&hop.network_proxy)));
    }
    if let Some(conn) = conn {
        let tuple = &conn.addr_tuple;
        if let Some(ip) = tuple.dst_ip {
            attrs.push(("network.peer.address", s(Text::ip(ip))));
            attrs.push(("network.peer.port", int(tuple.dst_port)));
        }
        if let Some(ip) = tuple.src_ip {
            attrs.push(("network.local.address", s(Text::ip(ip))));
            attrs.push(("network.local.port", int(tuple.src_port)));
        }
        attrs.push(("network.transport", s("tcp")));
        attrs.push(("nettrace.conn.reused", Value::Bool(reused)));
        attrs.push(("nettrace.conn.trace_id", s(conn.trace_id.as_str())));
    }
    attrs
}

/// Host and port of an `http(s)://` URL.
pub(super) fn server_of(url: &str) -> Option<(&str, u16)> {
    // A scheme holds no ':', so the first one starts "://" (a byte search: this runs for
    // every exported request).
    let colon = url.find(':')?;
    let (scheme, rest) = (&url[..colon], url[colon + 1..].strip_prefix("//")?);
    let end = rest
        .bytes()
        .position(|b| matches!(b, b'/' | b'?' | b'#'))
        .unwrap_or(rest.len());
    let authority = &rest[..end];
    let authority = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    let default = if scheme.eq_ignore_ascii_case("https") {
        443
    } else {
        80
    };
    if let Some(v6) = authority.strip_prefix('[') {
        let (host, after) = v6.split_once(']')?;
        let port = after.strip_prefix(':').and_then(|p| p.parse().ok());
        return Some((host, port.unwrap_or(default)));
    }
    match authority.rsplit_once(':') {
        Some((host, port)) => Some((host, port.parse().ok()?)),
        None => Some((authority, default)),
    }
}
