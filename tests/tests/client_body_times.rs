//! When the caller read a response body (`respBodyFirstByteAt`, `respBodyLastByteAt` and
//! their µs in `preciseUs`): the first bytes when they were read, the last when the caller
//! saw the end, or stopped reading (dropped the body); none for a body left unread. A
//! snapshot taken while the body is still being read has its first byte only.
use bytes::Bytes;
use http_body_util::BodyExt;
use nettrace::client::{HttpClient, HttpClientConfig, ResponseBody};
use nettrace::model::{HttpReqTrace, HttpTrace};
use nettrace_tests::fixtures::http::SLOW_BODY_LEN;
use nettrace_tests::scenario::{self, bounded, dump, only};

/// µs since the trace began of the request's timestamp `key`, if recorded.
fn us(req: &HttpReqTrace, key: &str) -> Option<u64> {
    req.precise_us.get(key)
}

fn the_request(trace: &HttpTrace) -> &HttpReqTrace {
    only::<std::sync::Arc<HttpReqTrace>>(&trace.http_requests, "HTTP request", trace)
}

/// Reads one data frame of `body`; returns its length.
async fn one_frame(body: &mut ResponseBody) -> usize {
    let frame = bounded("the first body frame", body.frame())
        .await
        .unwrap_or_else(|| panic!("the body ended at once"))
        .unwrap_or_else(|e| panic!("reading the body: {e}"));
    frame.data_ref().map_or(0, |d| d.len())
}

/// GETs `url` and reads the whole body.
async fn get_whole(client: &HttpClient, url: &str) -> Bytes {
    let response = bounded("GET", client.get(url))
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    bounded("the body", response.into_body().bytes())
        .await
        .unwrap_or_else(|e| panic!("reading the body: {e}"))
}

#[tokio::test]
async fn a_body_read_to_its_end_spans_its_first_and_last_bytes() {
    let server = scenario::plain_server().await;
    let client = scenario::client(HttpClientConfig::default(), scenario::full_options());
    // Half the body at once, the other half 300 ms later.
    let url = server.url("/slow-body/300");
    let body = get_whole(&client, &url).await;
    assert_eq!(body.len(), SLOW_BODY_LEN);
    let trace = scenario::trace(&client, "body read to its end");
    let req = the_request(&trace);
    assert_eq!(req.resp_content_len, SLOW_BODY_LEN as u64);
    let head = us(req, "respRecvAt").unwrap_or_else(|| panic!("{}", dump(&trace)));
    let first = us(req, "respBodyFirstByteAt").unwrap_or_else(|| panic!("{}", dump(&trace)));
    let last = us(req, "respBodyLastByteAt").unwrap_or_else(|| panic!("{}", dump(&trace)));
    assert!(head <= first, "{}", dump(&trace));
    // The second half came after the server's pause (some of which the first half's
    // delivery may have taken).
    assert!(last >= first + 100_000, "{}", dump(&trace));
    assert!(!req.resp_body_last_byte_at.is_undefined());
}

#[tokio::test]
async fn a_gzip_body_read_to_its_end_has_both_times() {
    const LEN: usize = 200_000;
    let server = scenario::plain_server().await;
    let client = scenario::client(HttpClientConfig::default(), scenario::full_options());
    let url = server.url(&format!("/gzip/{LEN}"));
    let body = get_whole(&client, &url).await;
    assert_eq!(body.len(), LEN);
    let trace = scenario::trace(&client, "gzip body");
    let req = the_request(&trace);
    assert_eq!(req.resp_content_len, LEN as u64);
    let first = us(req, "respBodyFirstByteAt").unwrap_or_else(|| panic!("{}", dump(&trace)));
    let last = us(req, "respBodyLastByteAt").unwrap_or_else(|| panic!("{}", dump(&trace)));
    assert!(first <= last, "{}", dump(&trace));
}

#[tokio::test]
async fn a_body_dropped_after_its_first_bytes_ends_where_reading_stopped() {
    let server = scenario::plain_server().await;
    let client = scenario::client(HttpClientConfig::default(), scenario::full_options());
    // The second half would come in a minute.
    let url = server.url("/slow-body/60000");
    let response = bounded("GET", client.get(&url))
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let mut body = response.into_body();
    let mut read = 0;
    while read < SLOW_BODY_LEN / 2 {
        read += one_frame(&mut body).await;
    }
    assert_eq!(read, SLOW_BODY_LEN / 2);

    // While the body is held: its first byte, no last one yet.
    let trace = scenario::trace(&client, "body being read");
    let req = the_request(&trace);
    assert_eq!(req.resp_content_len, read as u64);
    let first = us(req, "respBodyFirstByteAt").unwrap_or_else(|| panic!("{}", dump(&trace)));
    assert_eq!(us(req, "respBodyLastByteAt"), None, "{}", dump(&trace));

    // Dropped (no error, as in Go): the last byte's time is when reading stopped.
    drop(body);
    let trace = scenario::trace(&client, "body dropped");
    let req = the_request(&trace);
    assert_eq!(req.resp_content_len, read as u64);
    assert_eq!(req.req_error, "", "{}", dump(&trace));
    assert_eq!(us(req, "respBodyFirstByteAt"), Some(first));
    let last = us(req, "respBodyLastByteAt").unwrap_or_else(|| panic!("{}", dump(&trace)));
    assert!(last >= first, "{}", dump(&trace));
}

#[tokio::test]
async fn a_body_left_unread_has_no_body_times() {
    let server = scenario::plain_server().await;
    let client = scenario::client(HttpClientConfig::default(), scenario::full_options());
    let url = server.url("/bytes/100");
    let response = bounded("GET", client.get(&url))
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    drop(response);
    let trace = scenario::trace(&client, "body unread");
    let req = the_request(&trace);
    assert_eq!(req.resp_content_len, 0);
    assert_eq!(us(req, "respBodyFirstByteAt"), None, "{}", dump(&trace));
    assert_eq!(us(req, "respBodyLastByteAt"), None, "{}", dump(&trace));
    assert!(req.resp_body_first_byte_at.is_undefined());
    assert!(req.resp_body_last_byte_at.is_undefined());
}
