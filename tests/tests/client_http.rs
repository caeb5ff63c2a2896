//! HTTP requests as the trace records them: request and response, header capture in every
//! mode, bodies (sizes, gzip), redirects, connection reuse, broken and slow servers, time
//! limits, the per-host connection limit, and one client used from many tasks.
//!
//! Go's tests of the same intent: TestHTTPTracing (HTTP part) and TestReusedTCPConn (reuse);
//! the rest covers `HTTPClientCfg` fields Go's tests leave untested.
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::Request;
use nettrace::client::{
    HttpClient, HttpClientConfig, HttpReqTraceOptions, RequestBody, RequestErrorKind, TimeoutLimit,
    TraceOptions,
};
use nettrace::model::{HdrFieldsOpt, HttpReqTrace, HttpTrace};
use nettrace_tests::fixtures::broken::{BrokenServer, Misbehaviour};
use nettrace_tests::fixtures::http::{INDEX_HTML, SLOW_BODY_LEN, pattern};
use nettrace_tests::scenario::{
    self, bounded, bounded_for, dump, failed_request, get_err, get_ok, only, request_to, tcp_conn,
};

/// GET `url` with extra request headers; returns the response head and body.
async fn get_with_headers(
    client: &HttpClient,
    url: &str,
    headers: &[(&str, &str)],
) -> (http::response::Parts, bytes::Bytes) {
    let mut builder = Request::get(url);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    let request = builder
        .body(RequestBody::empty())
        .unwrap_or_else(|e| panic!("{e}"));
    bounded(&format!("GET {url}"), async {
        let response = client
            .request(request)
            .await
            .unwrap_or_else(|e| panic!("GET {url}: {e}"));
        let (head, body) = response.into_parts();
        let body = body
            .bytes()
            .await
            .unwrap_or_else(|e| panic!("GET {url}: body: {e}"));
        (head, body)
    })
    .await
}

/// The header-exclusion callback of [`HttpReqTraceOptions`].
type Exclude = Arc<dyn Fn(&str) -> bool + Send + Sync>;

/// GET /echo with `X-Test: hello` and `Authorization: secret`, headers captured by `mode`
/// (minus `exclude`); returns the one request record and the trace.
async fn echo_with_capture(
    mode: HdrFieldsOpt,
    exclude: Option<Exclude>,
) -> (HttpReqTrace, HttpTrace) {
    let server = scenario::plain_server().await;
    let options = TraceOptions {
        http_req_trace: Some(HttpReqTraceOptions {
            header_fields: mode,
            exclude_header_field: exclude,
        }),
        ..Default::default()
    };
    let client = scenario::client(HttpClientConfig::default(), options);
    let (head, _) = get_with_headers(
        &client,
        &server.url("/echo"),
        &[("X-Test", "hello"), ("Authorization", "secret")],
    )
    .await;
    assert_eq!(head.status, 200);
    let trace = scenario::trace(&client, &format!("{mode:?}"));
    let req = (**only(&trace.http_requests, "HTTP request", &trace)).clone();
    (req, trace)
}

#[tokio::test]
async fn http1_request_and_response_are_recorded() {
    let server = scenario::plain_server().await;
    let client = scenario::client(HttpClientConfig::default(), scenario::full_options());
    let url = server.url("/bytes/1000");
    let (status, body) = get_ok(&client, &url).await;
    assert_eq!((status, body.len()), (200, 1000));
    let trace = scenario::trace(&client, "HTTP/1.1");
    let req = only(&trace.http_requests, "HTTP request", &trace);
    let dial = only(&trace.net_trace.dials, "dial", &trace);
    assert_eq!(req.tcp_conn, dial.established_conn);
    assert!(req.tls_tunnel.is_empty() && req.proxy_tls_tunnel.is_empty());
    assert!(req.network_proxy.is_empty());
    assert_eq!((req.proto_major, req.proto_minor), (1, 1));
    assert_eq!(req.req_method, "GET");
    assert_eq!(req.req_url, url);
    assert_eq!(req.req_content_len, 0);
    assert!(req.req_error.is_empty(), "{}", dump(&trace));
    assert_eq!(req.resp_status_code, 200);
    assert!(!req.resp_recv_at.is_undefined());
    assert_eq!(req.resp_content_len, 1000);
    let content_type = req.resp_header.get("content-type");
    assert_eq!(
        content_type.map(|kv| kv.field_val.as_str()),
        Some("application/octet-stream"),
        "{}",
        dump(&trace)
    );
    let length = req
        .resp_header
        .get("Content-Length")
        .map(|kv| (kv.field_val.as_str(), kv.field_val_len));
    assert_eq!(length, Some(("1000", 4)));
    assert!(trace.net_trace.tls_tunnels.is_empty());
    assert_eq!(server.request_log()[0].version, http::Version::HTTP_11);
}

#[tokio::test]
async fn header_capture_disabled_records_no_fields() {
    let (req, trace) = echo_with_capture(HdrFieldsOpt::Disabled, None).await;
    assert!(req.req_header.is_empty(), "{}", dump(&trace));
    assert!(req.resp_header.is_empty(), "{}", dump(&trace));
}

#[tokio::test]
async fn header_capture_names_only_records_names_without_values() {
    let (req, trace) = echo_with_capture(HdrFieldsOpt::NamesOnly, None).await;
    assert!(req.req_header.get("X-Test").is_some(), "{}", dump(&trace));
    assert!(req.req_header.get("Authorization").is_some());
    assert!(
        req.resp_header.get("X-Echo-Method").is_some(),
        "{}",
        dump(&trace)
    );
    for kv in req.req_header.iter().chain(req.resp_header.iter()) {
        assert!(kv.field_val.is_empty() && kv.field_val_len == 0, "{kv:?}");
    }
}

#[tokio::test]
async fn header_capture_value_lengths_records_lengths_without_values() {
    let (req, trace) = echo_with_capture(HdrFieldsOpt::ValueLenOnly, None).await;
    let x_test = req
        .req_header
        .get("x-test")
        .unwrap_or_else(|| panic!("{}", dump(&trace)));
    assert_eq!((x_test.field_val.as_str(), x_test.field_val_len), ("", 5));
    let auth = req
        .req_header
        .get("authorization")
        .unwrap_or_else(|| panic!("{}", dump(&trace)));
    assert_eq!(auth.field_val_len, 6);
    let method = req
        .resp_header
        .get("X-Echo-Method")
        .unwrap_or_else(|| panic!("{}", dump(&trace)));
    assert_eq!(method.field_val_len, 3);
    for kv in req.req_header.iter().chain(req.resp_header.iter()) {
        assert!(kv.field_val.is_empty(), "{kv:?}");
    }
}

#[tokio::test]
async fn header_capture_with_values_records_values_and_lengths() {
    let (req, trace) = echo_with_capture(HdrFieldsOpt::WithValues, None).await;
    let x_test = req
        .req_header
        .get("X-Test")
        .unwrap_or_else(|| panic!("{}", dump(&trace)));
    assert_eq!(
        (
            x_test.field_name.as_str(),
            x_test.field_val.as_str(),
            x_test.field_val_len
        ),
        ("X-Test", "hello", 5)
    );
    let echoed = req
        .resp_header
        .get("X-Echo-Header-X-Test")
        .unwrap_or_else(|| panic!("{}", dump(&trace)));
    assert_eq!(
        (echoed.field_val.as_str(), echoed.field_val_len),
        ("hello", 5)
    );
    for kv in req.req_header.iter().chain(req.resp_header.iter()) {
        assert_eq!(kv.field_val.len(), kv.field_val_len as usize, "{kv:?}");
    }
}

#[tokio::test]
async fn excluded_header_fields_are_not_recorded() {
    let exclude: Exclude = Arc::new(|name: &str| {
        name.eq_ignore_ascii_case("authorization") || name.eq_ignore_ascii_case("date")
    });
    let (req, trace) = echo_with_capture(HdrFieldsOpt::WithValues, Some(exclude)).await;
    assert!(
        req.req_header.get("Authorization").is_none(),
        "{}",
        dump(&trace)
    );
    assert!(req.req_header.get("X-Test").is_some(), "{}", dump(&trace));
    assert!(req.resp_header.get("Date").is_none(), "{}", dump(&trace));
    assert!(req.resp_header.get("X-Echo-Method").is_some());
}

/// As Go: only the fields the caller put in the request are recorded, not those the client
/// adds itself (Accept-Encoding, Connection, Host, ...).
#[tokio::test]
async fn request_header_capture_records_only_the_callers_fields() {
    let server = scenario::plain_server().await;
    let config = HttpClientConfig {
        disable_keep_alive: true,
        ..Default::default()
    };
    let client = scenario::client(config, scenario::full_options());
    let (head, _) = get_with_headers(&client, &server.url("/echo"), &[("X-Test", "hello")]).await;
    // The client did add fields: the server saw them.
    assert_eq!(head.headers["x-echo-header-accept-encoding"], "gzip");
    let trace = scenario::trace(&client, "caller's headers");
    let req = only(&trace.http_requests, "HTTP request", &trace);
    let names: Vec<&str> = req
        .req_header
        .iter()
        .map(|kv| kv.field_name.as_str())
        .collect();
    assert_eq!(names, vec!["X-Test"], "{}", dump(&trace));
}

#[tokio::test]
async fn post_body_is_counted_in_req_content_len() {
    const LEN: usize = 1234;
    let server = scenario::plain_server().await;
    let client = scenario::client(HttpClientConfig::default(), scenario::full_options());
    let url = server.url("/echo");
    let (status, length, body) = bounded("POST /echo", async {
        let response = client
            .post(&url, "application/octet-stream", vec![b'x'; LEN])
            .await
            .unwrap_or_else(|e| panic!("POST: {e}"));
        let length = response.headers()["x-echo-body-length"]
            .to_str()
            .unwrap_or_default()
            .to_owned();
        let status = response.status();
        let body = response
            .into_body()
            .bytes()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        (status, length, body)
    })
    .await;
    assert_eq!(
        (status.as_u16(), length.as_str(), body.len()),
        (200, "1234", LEN)
    );
    let trace = scenario::trace(&client, "POST");
    let req = only(&trace.http_requests, "HTTP request", &trace);
    assert_eq!(req.req_method, "POST");
    assert_eq!(req.req_content_len, LEN as u64);
    assert_eq!(req.resp_content_len, LEN as u64);
    let content_type = req
        .req_header
        .get("Content-Type")
        .map(|kv| kv.field_val.as_str());
    assert_eq!(content_type, Some("application/octet-stream"));
}

#[tokio::test]
async fn gzip_body_is_decoded_and_counted_decoded() {
    const LEN: usize = 50_000;
    let server = scenario::plain_server().await;
    let client = scenario::client(HttpClientConfig::default(), scenario::full_options());
    let (head, body) = get_with_headers(&client, &server.url(&format!("/gzip/{LEN}")), &[]).await;
    assert_eq!(head.status, 200);
    assert_eq!(
        body.as_ref(),
        pattern(LEN).as_slice(),
        "the caller gets decoded bytes"
    );
    assert!(!head.headers.contains_key("content-encoding"));
    let trace = scenario::trace(&client, "gzip");
    let req = only(&trace.http_requests, "HTTP request", &trace);
    assert_eq!(req.resp_content_len, LEN as u64, "{}", dump(&trace));
    assert!(
        req.resp_header.get("Content-Encoding").is_none(),
        "{}",
        dump(&trace)
    );
    // What crossed the wire was the compressed body.
    let conn = tcp_conn(&trace, &req.tcp_conn);
    assert!(conn.total_recv_bytes < LEN as u64 / 4, "{}", dump(&trace));
}

/// The process's resident set size, in bytes.
fn rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_else(|e| panic!("{e}"));
    let kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .unwrap_or_else(|| panic!("no VmRSS in /proc/self/status"));
    kib * 1024
}

/// Serves one gzip bomb over HTTP/1.1 on loopback: 10 GiB of zeros in about 10 MB, made
/// with bounded memory (1 MiB of zeros deflated once, from a fresh dictionary thanks to the
/// full flush, so the block can be repeated), until the client goes away.
async fn gzip_bomb_server() -> std::net::SocketAddr {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut compress = flate2::Compress::new(flate2::Compression::best(), false);
    let zeros = vec![0u8; 1 << 20];
    let mut block = Vec::with_capacity(64 * 1024);
    compress
        .compress_vec(&zeros, &mut block, flate2::FlushCompress::Full)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(compress.total_in(), zeros.len() as u64);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
    tokio::spawn(async move {
        let Ok((mut stream, _)) = listener.accept().await else {
            return;
        };
        let mut head = Vec::new();
        let mut buf = [0u8; 1024];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => head.extend_from_slice(&buf[..n]),
            }
        }
        let mut out = b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n\
            Content-Encoding: gzip\r\nConnection: close\r\n\r\n"
            .to_vec();
        out.extend_from_slice(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff]);
        if stream.write_all(&out).await.is_err() {
            return;
        }
        for _ in 0..10 * 1024 {
            if stream.write_all(&block).await.is_err() {
                return;
            }
        }
    });
    addr
}

/// A gzip bomb fails the body with the ratio error once past the limit, in frames of at most
/// 64 KiB, without the process growing (it used to decode ~325 MB frames: 460 MiB of RSS).
#[tokio::test]
async fn a_gzip_bomb_fails_the_body_in_small_frames() {
    use http_body_util::BodyExt;
    use nettrace::client::{BodyError, GZIP_RATIO_FROM};
    let addr = gzip_bomb_server().await;
    let client = scenario::client(HttpClientConfig::default(), scenario::full_options());
    let url = format!("http://{addr}/bomb");
    let before = rss();
    let (largest, decoded, error, peak) = bounded("reading a gzip bomb", async {
        let response = client
            .get(&url)
            .await
            .unwrap_or_else(|e| panic!("GET {url}: {e}"));
        assert_eq!(response.status(), 200);
        let mut body = response.into_body();
        let (mut largest, mut decoded, mut peak, mut frames) = (0, 0, before, 0u64);
        loop {
            match body.frame().await {
                Some(Ok(frame)) => {
                    let len = frame.data_ref().map_or(0, |d| d.len());
                    largest = largest.max(len);
                    decoded += len as u64;
                    frames += 1;
                    if frames % 16 == 0 {
                        peak = peak.max(rss());
                    }
                }
                Some(Err(error)) => return (largest, decoded, error, peak.max(rss())),
                None => panic!("the bomb was read to the end: {decoded} bytes"),
            }
        }
    })
    .await;
    assert!(
        matches!(error, BodyError::GzipRatio { .. }),
        "{error:?}: {error}"
    );
    assert!(error.to_string().contains("decompression bombs"), "{error}");
    assert!(largest <= 64 * 1024, "a frame of {largest} bytes");
    assert!(
        (GZIP_RATIO_FROM - 64 * 1024..2 * GZIP_RATIO_FROM).contains(&decoded),
        "stopped after {decoded} bytes"
    );
    let growth = peak.saturating_sub(before);
    assert!(growth < 64 << 20, "RSS grew by {growth} bytes");
    let trace = scenario::trace(&client, "gzip bomb");
    let req = only(&trace.http_requests, "HTTP request", &trace);
    assert_eq!(req.req_error, error.to_string(), "{}", dump(&trace));
    assert_eq!(req.resp_content_len, decoded, "{}", dump(&trace));
}

#[tokio::test]
async fn disable_compression_sends_no_accept_encoding() {
    const LEN: usize = 3000;
    let server = scenario::plain_server().await;
    let config = HttpClientConfig {
        disable_compression: true,
        ..Default::default()
    };
    let client = scenario::client(config, scenario::full_options());
    let (head, _) = get_with_headers(&client, &server.url("/echo"), &[]).await;
    assert!(
        !head.headers.contains_key("x-echo-header-accept-encoding"),
        "{:?}",
        head.headers
    );
    let (head, body) = get_with_headers(&client, &server.url(&format!("/gzip/{LEN}")), &[]).await;
    assert!(!head.headers.contains_key("content-encoding"));
    assert_eq!(body.as_ref(), pattern(LEN).as_slice());
    let trace = scenario::trace(&client, "no compression");
    let conn = only(&trace.net_trace.tcp_conns, "TCP conn", &trace);
    assert!(conn.total_recv_bytes > LEN as u64, "{}", dump(&trace));
    let req = request_to(&trace, &server.url(&format!("/gzip/{LEN}")));
    assert_eq!(req.resp_content_len, LEN as u64);
    assert!(req.req_header.get("Accept-Encoding").is_none());
}

#[tokio::test]
async fn each_redirect_hop_is_its_own_request_record() {
    let server = scenario::plain_server().await;
    let client = scenario::client(HttpClientConfig::default(), scenario::full_options());
    let (status, body) = get_ok(&client, &server.url("/redirect/3")).await;
    assert_eq!(status, 200);
    assert_eq!(body.as_ref(), INDEX_HTML.as_bytes());
    let trace = scenario::trace(&client, "redirects");
    let hops: Vec<(&str, u16)> = trace
        .http_requests
        .iter()
        .map(|r| (r.req_url.as_str(), r.resp_status_code))
        .collect();
    let expected_urls = [
        server.url("/redirect/3"),
        server.url("/redirect/2"),
        server.url("/redirect/1"),
        server.url("/"),
    ];
    let expected: Vec<(&str, u16)> = expected_urls
        .iter()
        .map(String::as_str)
        .zip([302, 302, 302, 200])
        .collect();
    assert_eq!(hops, expected, "{}", dump(&trace));
    for pair in trace.http_requests.windows(2) {
        scenario::assert_not_after(&trace, &pair[0].resp_recv_at, &pair[1].req_sent_at, "hops");
        assert_eq!(
            pair[0].tcp_conn, pair[1].tcp_conn,
            "hops share the keep-alive conn"
        );
    }
    assert_eq!(server.connections().get(), 1);
    assert_eq!(
        trace.http_requests[3].resp_content_len,
        INDEX_HTML.len() as u64
    );
}

/// Go's client sends at most 10 requests for one call: the 10th redirect response is an error.
#[tokio::test]
async fn nine_redirects_are_followed() {
    let server = scenario::plain_server().await;
    let client = scenario::client(HttpClientConfig::default(), scenario::full_options());
    let (status, _) = get_ok(&client, &server.url("/redirect/9")).await;
    assert_eq!(status, 200);
    let trace = scenario::trace(&client, "nine redirects");
    assert_eq!(trace.http_requests.len(), 10, "{}", dump(&trace));
}

#[tokio::test]
async fn a_redirect_loop_stops_after_10_requests() {
    let server = scenario::plain_server().await;
    let client = scenario::client(HttpClientConfig::default(), scenario::full_options());
    let failure = get_err(&client, &server.url("/redirect-loop")).await;
    assert_eq!(failure.kind(), RequestErrorKind::TooManyRedirects(10));
    let error = failure.to_string();
    assert!(error.contains("10 redirects"), "{error}");
    let trace = scenario::trace(&client, "redirect loop");
    assert_eq!(trace.http_requests.len(), 10, "{}", dump(&trace));
    // The error names the last hop, the one whose record holds it.
    let last = failed_request(&trace, &failure);
    let with_error: Vec<_> = trace
        .http_requests
        .iter()
        .filter(|r| !r.req_error.is_empty())
        .collect();
    assert_eq!(with_error.len(), 1, "{}", dump(&trace));
    assert_eq!(with_error[0].trace_id, last.trace_id);
    assert_eq!(server.requests().get(), 10);
    for req in trace.http_requests.iter() {
        assert_eq!(req.req_url, server.url("/redirect-loop"));
        assert_eq!(req.resp_status_code, 302);
    }
}

/// A redirect that cannot be followed (another scheme, a malformed `Location`, a port out of
/// range) is in the trace the way Go records a redirect to `file://`: the 302's record as
/// sent and answered, then a record of the next hop, never sent, with the `Location` as its
/// URL and the error as its `reqError`; the error names that record.
#[tokio::test]
async fn a_redirect_that_cannot_be_followed_is_a_failed_hop_record() {
    let server = scenario::plain_server().await;
    let cases = [
        (
            "file:///etc/passwd",
            "file:///etc/passwd",
            "unsupported URL scheme",
        ),
        (
            "ftp://127.0.0.1:21/x",
            "ftp://127.0.0.1:21/x",
            "unsupported URL scheme",
        ),
        (
            "http://exa%20mple.test/",
            "http://exa mple.test/",
            "invalid redirect Location",
        ),
        (
            "http://127.0.0.1:99999/",
            "http://127.0.0.1:99999/",
            "invalid port",
        ),
    ];
    for (query, location, reason) in cases {
        let client = scenario::client(HttpClientConfig::default(), scenario::full_options());
        let url = server.url(&format!("/redirect-to?{query}"));
        let failure = get_err(&client, &url).await;
        assert_eq!(
            failure.kind(),
            RequestErrorKind::InvalidRequest,
            "{failure:?}"
        );
        assert!(
            failure.to_string().contains(reason),
            "{location}: {failure}"
        );
        let trace = scenario::trace(&client, location);
        let [redirect, next] = trace.http_requests.as_slice() else {
            panic!(
                "{location}: two request records expected:\n{}",
                dump(&trace)
            );
        };
        assert_eq!(redirect.req_url, url);
        assert_eq!(redirect.resp_status_code, 302);
        assert!(redirect.req_error.is_empty(), "{}", dump(&trace));
        assert_eq!(failure.trace_id(), Some(&next.trace_id));
        assert_eq!(next.req_error, failure.to_string(), "{}", dump(&trace));
        assert_eq!(next.req_url, location, "{}", dump(&trace));
        assert_eq!(next.req_method, "GET");
        assert!(next.tcp_conn.is_empty() && next.resp_recv_at.is_undefined());
        assert_eq!(trace.net_trace.dials.len(), 1, "{}", dump(&trace));
    }
}

#[tokio::test]
async fn keep_alive_reuses_one_connection_for_two_requests() {
    let server = scenario::plain_server().await;
    let client = scenario::client(HttpClientConfig::default(), scenario::full_options());
    for path in ["/bytes/10", "/bytes/20"] {
        let (status, _) = get_ok(&client, &server.url(path)).await;
        assert_eq!(status, 200);
    }
    let trace = scenario::trace(&client, "keep-alive");
    let dial = only(&trace.net_trace.dials, "dial", &trace);
    let conn = only(&trace.net_trace.tcp_conns, "TCP conn", &trace);
    assert_eq!(dial.established_conn, conn.trace_id);
    assert!(
        conn.conn_close_at.is_undefined(),
        "the idle connection is still open"
    );
    assert!(
        trace
            .http_requests
            .iter()
            .all(|r| r.tcp_conn == conn.trace_id),
        "{}",
        dump(&trace)
    );
    assert_eq!(trace.http_requests.len(), 2);
    assert_eq!(server.connections().get(), 1);
    let log = server.request_log();
    assert_eq!((log[0].connection, log[1].connection), (0, 0));
}

#[tokio::test]
async fn disable_keep_alive_uses_a_connection_per_request() {
    let server = scenario::plain_server().await;
    let config = HttpClientConfig {
        disable_keep_alive: true,
        ..Default::default()
    };
    let client = scenario::client(config, scenario::full_options());
    for _ in 0..2 {
        let (head, _) = get_with_headers(&client, &server.url("/echo"), &[]).await;
        assert_eq!(head.headers["x-echo-header-connection"], "close");
    }
    let trace = scenario::trace(&client, "no keep-alive");
    assert_eq!(trace.net_trace.dials.len(), 2, "{}", dump(&trace));
    assert_eq!(trace.net_trace.tcp_conns.len(), 2, "{}", dump(&trace));
    let [first, second] = trace.http_requests.as_slice() else {
        panic!("two requests expected:\n{}", dump(&trace));
    };
    assert_ne!(first.tcp_conn, second.tcp_conn);
    assert_eq!(server.connections().get(), 2);
}

#[tokio::test]
async fn reset_in_the_middle_of_the_body_records_the_read_error() {
    let broken = BrokenServer::start(Misbehaviour::ResetMidBody {
        declared: 1000,
        sent: 100,
    })
    .await
    .unwrap_or_else(|e| panic!("{e:?}"));
    let client = scenario::client(HttpClientConfig::default(), scenario::full_options());
    let url = broken.url("/");
    let (status, read) = bounded("GET a resetting server", async {
        let response = client
            .get(&url)
            .await
            .unwrap_or_else(|e| panic!("GET {url}: {e}"));
        (response.status(), response.into_body().bytes().await)
    })
    .await;
    assert_eq!(status, 200);
    let error = read
        .err()
        .unwrap_or_else(|| panic!("the body read should fail"))
        .to_string();
    let trace = scenario::trace(&client, "reset mid-body");
    let req = only(&trace.http_requests, "HTTP request", &trace);
    assert_eq!(req.resp_status_code, 200);
    assert!(!req.resp_recv_at.is_undefined());
    assert_eq!(req.req_error, error, "{}", dump(&trace));
    assert_eq!(req.resp_content_len, 100, "bytes read before the reset");
    let conn = tcp_conn(&trace, &req.tcp_conn);
    assert!(conn.total_recv_bytes >= 100);
}

#[tokio::test]
async fn a_server_closing_after_the_request_fails_the_request() {
    let broken = BrokenServer::start(Misbehaviour::CloseAfterRequest)
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));
    let client = scenario::client(HttpClientConfig::default(), scenario::full_options());
    let failure = get_err(&client, &broken.url("/")).await;
    assert_eq!(failure.kind(), RequestErrorKind::Http, "{failure:?}");
    let error = failure.to_string();
    let trace = scenario::trace(&client, "closed after request");
    let req = only(&trace.http_requests, "HTTP request", &trace);
    assert_eq!(req.req_error, error);
    assert_eq!(failed_request(&trace, &failure).trace_id, req.trace_id);
    assert_eq!(req.resp_status_code, 0);
    let conn = tcp_conn(&trace, &req.tcp_conn);
    assert!(
        conn.connected && conn.total_sent_bytes > 0,
        "{}",
        dump(&trace)
    );
    assert_eq!(
        broken.connections().get(),
        1,
        "no retry on a fresh connection"
    );
}

#[tokio::test]
async fn req_timeout_with_slow_headers_names_the_timeout() {
    let server = scenario::plain_server().await;
    let config = HttpClientConfig {
        req_timeout: Some(Duration::from_millis(300)),
        ..Default::default()
    };
    let client = scenario::client(config, scenario::full_options());
    let started = Instant::now();
    let failure = get_err(&client, &server.url("/slow-headers/5000")).await;
    let elapsed = started.elapsed();
    assert_eq!(
        failure.kind(),
        RequestErrorKind::Timeout {
            limit: TimeoutLimit::Request,
            after: Duration::from_millis(300),
        }
    );
    let error = failure.to_string();
    assert!(
        (Duration::from_millis(300)..Duration::from_secs(3)).contains(&elapsed),
        "{elapsed:?}"
    );
    assert!(error.contains("ReqTimeout"), "{error}");
    let trace = scenario::trace(&client, "ReqTimeout");
    let req = only(&trace.http_requests, "HTTP request", &trace);
    assert_eq!(req.req_error, error);
    assert_eq!(failed_request(&trace, &failure).trace_id, req.trace_id);
    assert_eq!(req.resp_status_code, 0);
    assert!(req.resp_recv_at.is_undefined());
}

/// GET `url` with `req_timeout` 300 ms, expecting the request limit to fail it; the trace.
async fn timed_out(
    config: HttpClientConfig,
    url: &str,
) -> (nettrace::client::RequestError, HttpTrace) {
    let limit = Duration::from_millis(300);
    let config = HttpClientConfig {
        req_timeout: Some(limit),
        ..config
    };
    let client = scenario::client(config, scenario::full_options());
    let failure = get_err(&client, url).await;
    assert_eq!(
        failure.kind(),
        RequestErrorKind::Timeout {
            limit: TimeoutLimit::Request,
            after: limit,
        },
        "{failure:?}"
    );
    let trace = scenario::trace(&client, "request timeout");
    failed_request(&trace, &failure);
    (failure, trace)
}

/// The request limit passing during a TLS handshake (a server that never answers the
/// ClientHello) ends the tunnel then, with the cancel error; no record stays open.
#[tokio::test]
async fn req_timeout_during_the_tls_handshake_ends_the_tunnel() {
    let stall = BrokenServer::start(Misbehaviour::Stall)
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));
    let pki = scenario::pki();
    let config = HttpClientConfig {
        tls: scenario::trust(&pki),
        ..Default::default()
    };
    let (_, trace) = timed_out(config, &format!("https://{}/", stall.addr())).await;
    let tunnel = only(&trace.net_trace.tls_tunnels, "TLS tunnel", &trace);
    assert!(!tunnel.handshake_end_at.is_undefined(), "{}", dump(&trace));
    assert!(
        tunnel.handshake_err.starts_with("canceled: "),
        "{}",
        dump(&trace)
    );
    let dial = only(&trace.net_trace.dials, "dial", &trace);
    assert!(dial.dial_err.is_empty(), "{}", dump(&trace));
    assert!(!dial.dial_end_at.is_undefined() && !dial.ctx_close_at.is_undefined());
    let waited = tunnel
        .handshake_end_at
        .sub(&tunnel.handshake_begin_at)
        .unwrap_or_else(|| panic!("handshake times not comparable:\n{}", dump(&trace)));
    assert!(waited >= time::Duration::milliseconds(250), "{waited}");
}

/// The request limit passing while the only nameserver stays silent ends the dial then,
/// with the cancel error, and its resolver dials and sockets too.
#[tokio::test]
async fn req_timeout_during_a_dns_wait_ends_the_dial() {
    use nettrace_tests::fixtures::dns::{Behaviour, Zone};
    let silent =
        scenario::dns_with(Zone::new().behaviour(scenario::EXAMPLE_HOST, Behaviour::Silence)).await;
    let config = scenario::config_with_dns(&silent);
    let url = format!("http://{}:9/", scenario::EXAMPLE_HOST);
    let (_, trace) = timed_out(config, &url).await;
    let dial = only(&trace.net_trace.dials, "dial", &trace);
    assert!(!dial.dial_end_at.is_undefined(), "{}", dump(&trace));
    assert!(dial.dial_err.starts_with("canceled: "), "{}", dump(&trace));
    assert!(!dial.ctx_close_at.is_undefined(), "{}", dump(&trace));
    assert!(!dial.resolver_dials.is_empty(), "{}", dump(&trace));
    for rd in &dial.resolver_dials {
        assert!(!rd.dial_end_at.is_undefined(), "{}", dump(&trace));
    }
    for udp in &trace.net_trace.udp_conns {
        assert!(!udp.conn_close_at.is_undefined(), "{}", dump(&trace));
    }
    assert!(trace.net_trace.tcp_conns.is_empty(), "{}", dump(&trace));
}

#[tokio::test]
async fn response_header_timeout_limits_the_head_but_not_the_body() {
    let server = scenario::plain_server().await;
    let config = HttpClientConfig {
        response_header_timeout: Some(Duration::from_millis(300)),
        ..Default::default()
    };
    let client = scenario::client(config, scenario::full_options());
    let slow_head = server.url("/slow-headers/5000");
    let failure = get_err(&client, &slow_head).await;
    assert_eq!(
        failure.kind(),
        RequestErrorKind::Timeout {
            limit: TimeoutLimit::ResponseHeader,
            after: Duration::from_millis(300),
        }
    );
    let error = failure.to_string();
    assert!(error.contains("ResponseHeaderTimeout"), "{error}");
    // The head comes at once, the body's second half 600 ms later: no timeout.
    let slow_body = server.url("/slow-body/600");
    let (status, body) = get_ok(&client, &slow_body).await;
    assert_eq!((status, body.len()), (200, SLOW_BODY_LEN));
    let trace = scenario::trace(&client, "ResponseHeaderTimeout");
    assert_eq!(request_to(&trace, &slow_head).req_error, error);
    let ok = request_to(&trace, &slow_body);
    assert!(ok.req_error.is_empty(), "{}", dump(&trace));
    assert_eq!(ok.resp_content_len, SLOW_BODY_LEN as u64);
}

/// URLs the client cannot use: one that does not parse (no request is sent, so no record),
/// one that is not absolute and one with a scheme other than http/https (both recorded).
#[tokio::test]
async fn invalid_urls_are_invalid_requests() {
    let client = scenario::client(HttpClientConfig::default(), scenario::full_options());
    let unparsable = get_err(&client, "http://exa mple.test/").await;
    assert_eq!(unparsable.kind(), RequestErrorKind::InvalidRequest);
    assert!(unparsable.trace_id().is_none() && unparsable.url().is_none());
    assert!(
        unparsable.to_string().starts_with("invalid request: "),
        "{unparsable}"
    );
    let relative = get_err(&client, "/index.html").await;
    assert_eq!(relative.kind(), RequestErrorKind::InvalidRequest);
    let unsupported = get_err(&client, "ftp://127.0.0.1:21/file").await;
    assert_eq!(unsupported.kind(), RequestErrorKind::InvalidRequest);
    assert!(
        unsupported.to_string().contains("unsupported URL scheme"),
        "{unsupported}"
    );
    let trace = scenario::trace(&client, "invalid URLs");
    assert_eq!(trace.http_requests.len(), 2, "{}", dump(&trace));
    failed_request(&trace, &relative);
    failed_request(&trace, &unsupported);
    assert!(trace.net_trace.dials.is_empty(), "{}", dump(&trace));
}

/// A port past 65535 fails the request (`http::Uri` keeps its text but gives no number, which
/// used to mean the scheme's default port: the request went to port 80). Nothing is dialled.
#[tokio::test]
async fn a_port_out_of_range_is_an_invalid_request_not_port_80() {
    let client = scenario::client(HttpClientConfig::default(), scenario::full_options());
    let url = "http://127.0.0.1:99999/";
    let failure = get_err(&client, url).await;
    assert_eq!(
        failure.kind(),
        RequestErrorKind::InvalidRequest,
        "{failure:?}"
    );
    let text = failure.to_string();
    assert!(text.contains("invalid port \"99999\""), "{text}");
    let trace = scenario::trace(&client, "port out of range");
    let req = failed_request(&trace, &failure);
    assert_eq!(req.req_url, url);
    assert!(trace.net_trace.dials.is_empty(), "{}", dump(&trace));
    assert!(trace.net_trace.tcp_conns.is_empty(), "{}", dump(&trace));
}

/// A request body stream that yields one chunk, then fails.
struct FailingBody {
    sent: bool,
}

impl http_body::Body for FailingBody {
    type Data = bytes::Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<bytes::Bytes>, std::io::Error>>> {
        if self.sent {
            return std::task::Poll::Ready(Some(Err(std::io::Error::other("source went away"))));
        }
        self.sent = true;
        std::task::Poll::Ready(Some(Ok(http_body::Frame::data(bytes::Bytes::from_static(
            b"first chunk",
        )))))
    }
}

#[tokio::test]
async fn a_failing_request_body_is_a_body_error() {
    let server = scenario::plain_server().await;
    let client = scenario::client(HttpClientConfig::default(), scenario::full_options());
    let url = server.url("/echo");
    let request = Request::post(&url)
        .body(RequestBody::stream(FailingBody { sent: false }))
        .unwrap_or_else(|e| panic!("{e}"));
    let failure = match bounded("POST a failing body", client.request(request)).await {
        Ok(response) => panic!("POST should fail, got {}", response.status()),
        Err(error) => error,
    };
    assert_eq!(failure.kind(), RequestErrorKind::Body, "{failure:?}");
    let trace = scenario::trace(&client, "failing body");
    let req = failed_request(&trace, &failure);
    assert_eq!(req.req_method, "POST");
}

#[tokio::test]
async fn req_timeout_while_reading_the_body_is_recorded() {
    let server = scenario::plain_server().await;
    let config = HttpClientConfig {
        req_timeout: Some(Duration::from_millis(500)),
        ..Default::default()
    };
    let client = scenario::client(config, scenario::full_options());
    let url = server.url("/slow-body/5000");
    let started = Instant::now();
    let (status, read) = bounded("GET a slow body", async {
        let response = client
            .get(&url)
            .await
            .unwrap_or_else(|e| panic!("GET {url}: {e}"));
        (response.status(), response.into_body().bytes().await)
    })
    .await;
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_eq!(status, 200);
    let error = read
        .err()
        .unwrap_or_else(|| panic!("the body read should time out"))
        .to_string();
    assert!(error.contains("ReqTimeout"), "{error}");
    let trace = scenario::trace(&client, "ReqTimeout in body");
    let req = only(&trace.http_requests, "HTTP request", &trace);
    assert_eq!(req.resp_status_code, 200);
    assert_eq!(req.req_error, error);
    assert_eq!(req.resp_content_len, (SLOW_BODY_LEN / 2) as u64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_conns_per_host_serialises_connections() {
    let server = scenario::plain_server().await;
    let config = HttpClientConfig {
        max_conns_per_host: 1,
        disable_keep_alive: true,
        ..Default::default()
    };
    let client = scenario::client(config, scenario::full_options());
    let url = server.url("/slow-headers/100");
    let (a, b, c) = bounded("three concurrent requests", async {
        tokio::join!(
            get_ok(&client, &url),
            get_ok(&client, &url),
            get_ok(&client, &url)
        )
    })
    .await;
    assert_eq!((a.0, b.0, c.0), (200, 200, 200));
    let trace = scenario::trace(&client, "max conns per host");
    let mut conns: Vec<_> = trace.net_trace.tcp_conns.iter().collect();
    assert_eq!(conns.len(), 3, "{}", dump(&trace));
    conns.sort_by_key(|c| c.handshake_begin_at.as_relative_ms());
    for pair in conns.windows(2) {
        assert!(!pair[0].conn_close_at.is_undefined(), "{}", dump(&trace));
        scenario::assert_not_after(
            &trace,
            &pair[0].conn_close_at,
            &pair[1].handshake_begin_at,
            "at most one connection at a time",
        );
    }
    assert_eq!(server.connections().get(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_client_used_from_many_tasks_records_every_request() {
    const TASKS: usize = 16;
    let dns = scenario::example_dns().await;
    let server = scenario::plain_server().await;
    let client = scenario::client(scenario::config_with_dns(&dns), scenario::full_options());
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..TASKS {
        let (client, url) = (
            client.clone(),
            server.url_with_host(scenario::EXAMPLE_HOST, &format!("/bytes/{}", 100 + i)),
        );
        tasks.spawn(async move { get_ok(&client, &url).await });
    }
    let results = bounded_for(
        Duration::from_secs(20),
        "16 concurrent requests",
        tasks.join_all(),
    )
    .await;
    for (i, (status, _)) in results.iter().enumerate() {
        assert_eq!(*status, 200, "task {i}");
    }
    let trace = scenario::trace(&client, "many tasks");
    assert_eq!(trace.http_requests.len(), TASKS, "{}", dump(&trace));
    for i in 0..TASKS {
        let n = 100 + i;
        let req = request_to(
            &trace,
            &server.url_with_host(scenario::EXAMPLE_HOST, &format!("/bytes/{n}")),
        );
        assert_eq!(req.resp_status_code, 200);
        assert_eq!(req.resp_content_len, n as u64);
        assert!(!req.tcp_conn.is_empty());
    }
    // The pool may still be finishing spare dials in the background, so the trace and the
    // server can disagree on how many connections exist right now; every connection that
    // carried a request, though, is a connected record that the server accepted.
    let used: std::collections::HashSet<_> = trace
        .http_requests
        .iter()
        .map(|r| r.tcp_conn.clone())
        .collect();
    for conn in &used {
        let record = trace.net_trace.tcp_conns.get(conn).unwrap();
        assert!(
            record.connected && !record.from_resolver,
            "{}",
            dump(&trace)
        );
    }
    assert!(server.connections().get() >= used.len(), "{}", dump(&trace));
    assert_eq!(server.requests().get(), TASKS);
}

#[tokio::test]
async fn an_error_status_is_a_response_not_a_request_error() {
    let server = scenario::plain_server().await;
    let client = scenario::client(HttpClientConfig::default(), scenario::full_options());
    let (status, _) = get_ok(&client, &server.url("/status/404")).await;
    assert_eq!(status, 404);
    let trace = scenario::trace(&client, "404");
    let req = only(&trace.http_requests, "HTTP request", &trace);
    assert_eq!(req.resp_status_code, 404);
    assert!(req.req_error.is_empty(), "{}", dump(&trace));
}
