//! HAR 1.2 (HTTP Archive), what browser devtools, Charles, Fiddler and many viewers import:
//! [`to_har`] turns traces into one archive, one page per trace and one entry per HTTP request.
//!
//! Each entry's `timings` come from [`crate::phases`] (`blocked`, `dns`, `connect`, `ssl`,
//! `send`, `wait`, `receive`, in ms with the trace's precision; `-1` where a phase does not
//! apply, e.g. no `connect` on a reused connection; as HAR asks, `connect` includes `ssl`).
//! Headers are those the trace captured (names only, or values too, as the header mode
//! allowed); `serverIPAddress` and `connection` (the TCP connection's trace ID) name the
//! connection. What HAR has no field for goes under `_nettrace`: the trace IDs, the request's
//! error and the phase it ended in, the connection's kernel facts and conntrack entry, the
//! precision of the times.
//!
//! ```
//! use nettrace_model::{HttpReqTrace, HttpTrace, Timestamp};
//! let trace = HttpTrace {
//!     http_requests: vec![HttpReqTrace {
//!         req_method: "GET".into(),
//!         req_url: "http://example.test/?q=1".into(),
//!         req_sent_at: Timestamp::Relative(1),
//!         resp_recv_at: Timestamp::Relative(5),
//!         resp_status_code: 200,
//!         ..Default::default()
//!     }]
//!     .into(),
//!     ..Default::default()
//! };
//! let har = nettrace_model::har::to_har(&[trace]);
//! assert_eq!(har["log"]["version"], "1.2");
//! assert_eq!(har["log"]["entries"][0]["timings"]["wait"], 4.0);
//! assert_eq!(har["log"]["entries"][0]["request"]["queryString"][0]["value"], "1");
//! ```
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::phases::{Phase, Precision, RequestPhases, Span, request_phases};
use crate::{HttpHeader, HttpReqTrace, HttpTrace, TcpConnTrace};

/// The traces as one HAR 1.2 archive (a JSON value; write it with `serde_json`).
pub fn to_har(traces: &[HttpTrace]) -> Value {
    let mut pages = Vec::new();
    let mut entries = Vec::new();
    for (index, trace) in traces.iter().enumerate() {
        let page_id = format!("trace-{}", index + 1);
        let begin = trace
            .net_trace
            .trace_begin_at
            .as_absolute()
            .unwrap_or(OffsetDateTime::UNIX_EPOCH);
        pages.push(json!({
            "startedDateTime": date_time(begin, 0),
            "id": page_id,
            "title": trace.net_trace.description,
            "pageTimings": {"onContentLoad": -1, "onLoad": -1},
        }));
        let conns = trace.net_trace.tcp_conns.by_id();
        for (req, phases) in trace.http_requests.iter().zip(request_phases(trace)) {
            let conn = conns.get(phases.tcp_conn.as_str()).copied();
            entries.push(entry(conn, req, &phases, begin, &page_id));
        }
    }
    json!({
        "log": {
            "version": "1.2",
            "creator": {"name": "nettrace", "version": env!("CARGO_PKG_VERSION")},
            "pages": pages,
            "entries": entries,
        }
    })
}

/// `begin` + `us` as ISO 8601 (HAR's `startedDateTime`).
fn date_time(begin: OffsetDateTime, us: u64) -> String {
    let at = begin
        .checked_add(time::Duration::microseconds(
            i64::try_from(us).unwrap_or(i64::MAX),
        ))
        .unwrap_or(begin);
    at.format(&Rfc3339)
        .unwrap_or_else(|_| "1970-01-01T00:00:00Z".to_owned())
}

/// Milliseconds of a span, or `-1` when the phase did not apply.
fn ms(span: Option<Span>) -> f64 {
    span.map_or(-1.0, |s| s.duration_us() as f64 / 1000.0)
}

fn entry(
    conn: Option<&TcpConnTrace>,
    req: &HttpReqTrace,
    phases: &RequestPhases,
    begin: OffsetDateTime,
    page_id: &str,
) -> Value {
    let tls = phases.get(Phase::Tls);
    // HAR counts the TLS handshake in `connect` too.
    let connect = match (phases.connect, tls) {
        (Some(c), Some(t)) => Some(Span::new(
            c.start_us.min(t.start_us),
            c.end_us.max(t.end_us),
        )),
        (connect, _) => connect,
    };
    let send = ms(phases.send).max(0.0);
    let wait = ms(phases.wait).max(0.0);
    let receive = ms(phases.transfer).max(0.0);
    let blocked = ms(phases.blocked);
    let dns = ms(phases.dns);
    let connect = ms(connect);
    let total: f64 = [blocked, dns, connect, send, wait, receive]
        .iter()
        .filter(|v| **v > 0.0)
        .sum();
    let http_version = format!("HTTP/{}.{}", req.proto_major, req.proto_minor);
    let mime =
        header_value(&req.resp_header, "content-type").unwrap_or_else(|| "x-unknown".to_owned());
    let mut entry = json!({
        "pageref": page_id,
        "startedDateTime": date_time(begin, phases.total.map_or(0, |t| t.start_us)),
        "time": total,
        "request": {
            "method": req.req_method,
            "url": req.req_url,
            "httpVersion": http_version,
            "cookies": [],
            "headers": headers(&req.req_header),
            "queryString": query_string(&req.req_url),
            "headersSize": -1,
            "bodySize": req.req_content_len,
        },
        "response": {
            "status": req.resp_status_code,
            "statusText": status_text(req.resp_status_code),
            "httpVersion": if req.resp_recv_at.is_undefined() { String::new() } else { http_version },
            "cookies": [],
            "headers": headers(&req.resp_header),
            "content": {"size": req.resp_content_len, "mimeType": mime},
            "redirectURL": header_value(&req.resp_header, "location").unwrap_or_default(),
            "headersSize": -1,
            "bodySize": -1,
        },
        "cache": {},
        "timings": {
            "blocked": blocked,
            "dns": dns,
            "connect": connect,
            "send": send,
            "wait": wait,
            "receive": receive,
            "ssl": ms(tls),
        },
        "_nettrace": {
            "traceID": req.trace_id.as_str(),
            "tcpConn": phases.tcp_conn.as_str(),
            "tlsTunnel": req.tls_tunnel.as_str(),
            "reusedConn": phases.reused_conn.as_ref().map(|c| c.as_str()),
            "error": req.req_error,
            "endedDuring": phases.unfinished.map(|p| p.as_str()),
            "precision": match phases.precision {
                Precision::Millis => "ms",
                Precision::Micros => "us",
            },
            "kernel": conn.and_then(|c| c.kernel.as_ref()),
            "conntrack": conn.and_then(|c| c.conntrack.as_ref()),
        },
    });
    if let Some(conn) = conn {
        if let Some(ip) = conn.addr_tuple.dst_ip {
            entry["serverIPAddress"] = json!(ip.to_string());
        }
        entry["connection"] = json!(conn.trace_id.as_str());
    }
    entry
}

/// HAR headers: name and value (empty when only names were captured).
fn headers(header: &HttpHeader) -> Value {
    header
        .iter()
        .map(|kv| json!({"name": kv.field_name, "value": kv.field_val}))
        .collect()
}

fn header_value(header: &HttpHeader, name: &str) -> Option<String> {
    header
        .get(name)
        .map(|kv| kv.field_val.clone())
        .filter(|v| !v.is_empty())
}

/// The query of `url` as name/value pairs, as written.
fn query_string(url: &str) -> Value {
    let query = url
        .split_once('?')
        .map_or("", |(_, q)| q.split('#').next().unwrap_or(""));
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            json!({"name": name, "value": value})
        })
        .collect()
}

/// The reason phrase of common status codes (the trace records only the number).
fn status_text(code: u16) -> &'static str {
    match code {
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        206 => "Partial Content",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        407 => "Proxy Authentication Required",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn go_readme_example() -> HttpTrace {
        let json = include_str!("../../nettrace-cli/tests/golden/go_readme_example.json");
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn go_readme_example_entry() {
        let har = to_har(&[go_readme_example()]);
        let entry = &har["log"]["entries"][0];
        assert_eq!(
            entry["startedDateTime"],
            "2022-12-23T10:17:45.332618344+01:00"
        );
        assert_eq!(
            entry["timings"],
            json!({"blocked": 0.0, "dns": 42.0, "connect": 57.0, "send": 11.0, "wait": 56.0,
                "receive": 1.0, "ssl": 46.0})
        );
        assert_eq!(entry["time"], 167.0);
        assert_eq!(entry["serverIPAddress"], "142.251.36.132");
        assert_eq!(entry["connection"], "tid-8");
        assert_eq!(entry["response"]["status"], 200);
        assert_eq!(entry["response"]["httpVersion"], "HTTP/2.0");
        assert_eq!(entry["_nettrace"]["precision"], "ms");
        assert_eq!(entry["_nettrace"]["conntrack"]["tcpState"], "last-ack");
        assert_eq!(
            har["log"]["pages"][0]["title"],
            "GET https://www.google.com/"
        );
    }

    #[test]
    fn failed_request_has_no_response_and_names_its_error() {
        let json = include_str!("../../nettrace-cli/tests/golden/failed_tls.json");
        let trace: HttpTrace = serde_json::from_str(json).unwrap();
        let har = to_har(&[trace]);
        let entry = &har["log"]["entries"][0];
        assert_eq!(entry["response"]["status"], 0);
        assert!(
            !entry["_nettrace"]["error"].as_str().unwrap().is_empty(),
            "{entry}"
        );
        assert_eq!(entry["timings"]["wait"], 0.0);
    }

    #[test]
    fn query_strings_split() {
        assert_eq!(
            query_string("http://h/p?a=1&b&c=x%20y#frag"),
            json!([{"name": "a", "value": "1"}, {"name": "b", "value": ""},
                {"name": "c", "value": "x%20y"}])
        );
        assert_eq!(query_string("http://h/"), json!([]));
    }
}
