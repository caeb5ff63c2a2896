//! One request hop of [`HttpClient`]: recorded and handed to the pool ([`HttpClient::start_hop`]),
//! then awaited within the time limits, its response recorded and its body wrapped
//! ([`HttpClient::complete_hop`]).
//!
//! `start_hop` is a plain function, not `async`: the request's future (`HttpClient::request`)
//! then only holds what crosses the `await` ([`Hop`], [`Exchange`]). That future is moved, so
//! copied, with every request, and its size is part of what tracing costs.
//!
//! ```ignore
//! let (hop, exchange) = client.start_hop(parts, body, deadline)?;
//! let response = client.complete_hop(hop, exchange, deadline).await?;
//! ```
use std::{sync::Arc, time::Instant};

use http::{HeaderValue, Method, Request, Response, header};

use super::{
    ConnInfo, HttpClient, RequestBody, RequestError, ResponseBody, TimeoutLimit, classify,
    connector,
    context::{self, RequestContext},
    exchange::{self, ExchangeFuture, Exchanged},
    exchange_error::ExchangeError,
    expect_continue,
    proxy::ProxyRoute,
    redirect, target,
};
use crate::{
    error_chain::error_chain,
    event::{BodyCounters, Event, RequestUrl, ResponseCounter},
    headers::HeaderCapture,
    model::TraceId,
};

/// What a request hop keeps for its response while the exchange runs.
pub(super) struct Hop {
    req: TraceId,
    /// The client asked for gzip (the response may come encoded).
    gunzip: bool,
    /// With HTTP records: the count of the response body's bytes and times (the request
    /// body has its own writer).
    counters: Option<ResponseCounter>,
    deadline: Option<Instant>,
}

/// The exchange of a hop, running in its request context.
pub(super) struct Exchange {
    pub(super) future: context::Scoped<ExchangeFuture>,
    /// Tells a response-header limit when a dial for the request ends.
    pub(super) dial: Option<Arc<context::DialProgress>>,
}

impl HttpClient {
    /// Records the request and hands it to the pool; returns what the response needs and the
    /// exchange to await.
    pub(super) fn start_hop(
        &self,
        mut parts: http::request::Parts,
        body: RequestBody,
        deadline: Option<Instant>,
    ) -> Result<(Hop, Exchange), RequestError> {
        let inner = &*self.inner;
        let req = TraceId::generate();
        let proxy = match &inner.config.proxy {
            Some(select) if parts.uri.scheme().is_some() => select(&parts)
                .map(|proxy| proxy.map(|uri| ProxyRoute::new(&uri)))
                .map_err(|reason| RequestError::proxy_selection(&reason)),
            _ => Ok(None),
        };
        // As in Go, the trace records the caller's header fields, not the ones added below.
        let captured = inner
            .http_trace
            .as_ref()
            .map(|http| HeaderCapture::new(&parts.headers, http));
        let gunzip = !inner.config.disable_compression
            && parts.method != Method::HEAD
            && !parts.headers.contains_key(header::ACCEPT_ENCODING)
            && !parts.headers.contains_key(header::RANGE);
        if gunzip {
            parts
                .headers
                .insert(header::ACCEPT_ENCODING, HeaderValue::from_static("gzip"));
        }
        if inner.config.disable_keep_alive {
            parts
                .headers
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        // Only the HTTP records read the start time and the body counts: without them, no
        // clock read (tens of nanoseconds here) and no counters. The start's one clock read
        // is the counters' base too. The counters are freshly allocated: the allocator hands
        // back memory still in the cache (counters kept for reuse across `clear_trace` were
        // not, and the cache miss cost more).
        let (request_counter, counters) = captured
            .map(|header| {
                let at = Instant::now();
                let (counters, request, response) = BodyCounters::with_writers(at);
                inner.sink.emit(Event::HttpRequestStarted {
                    req: req.clone(),
                    at,
                    method: parts.method.clone(),
                    url: RequestUrl::Uri(parts.uri.clone()),
                    header,
                    network_proxy: match &proxy {
                        Ok(Some(proxy)) => proxy.display.clone(),
                        _ => String::new(),
                    },
                    body: counters,
                });
                (request, response)
            })
            .unzip();
        let fail = |error: RequestError| self.fail(&req, error);
        let proxy = proxy.map_err(fail)?;
        // Plain http through a proxy: the proxy reads its credentials from the request (an
        // https request carries them on the CONNECT instead). Added after the header capture:
        // the trace never holds them.
        if let Some(ProxyRoute {
            authorization: Some(authorization),
            ..
        }) = &proxy
            && parts.uri.scheme() == Some(&http::uri::Scheme::HTTP)
            && !parts.headers.contains_key(header::PROXY_AUTHORIZATION)
        {
            parts
                .headers
                .insert(header::PROXY_AUTHORIZATION, authorization.clone());
        }
        if parts.uri.scheme().is_none() {
            return Err(fail(RequestError::invalid(format_args!(
                "URL {} is not absolute",
                parts.uri
            ))));
        }
        // Checked before the pool sees the URL: it would dial the scheme's default port.
        target::port_of(&parts.uri).map_err(|reason| fail(RequestError::invalid(reason)))?;
        if self.is_closed() {
            return Err(fail(RequestError::closed()));
        }
        let pool = inner.pool.clone();
        let has_body = body.has_body();
        let mut request = Request::from_parts(parts, body.counted(request_counter));
        let wait =
            expect_continue::install(&mut request, has_body, inner.config.expect_continue_timeout);
        request.body_mut().wait_before_sending(wait);
        // Only a response-header limit needs to know when the connection is ready.
        let dial = inner
            .config
            .response_header_timeout
            .map(|_| Arc::new(context::DialProgress::default()));
        let future = exchange::send(pool, request, proxy.as_ref());
        let context = RequestContext {
            http_req: Some(req.clone()),
            proxy: proxy.map(Box::new),
            dial: dial.clone(),
        };
        let exchange = Exchange {
            future: context::scope(context, future),
            dial,
        };
        let hop = Hop {
            req,
            gunzip,
            counters,
            deadline,
        };
        Ok((hop, exchange))
    }

    /// Records a redirect hop that cannot be sent (its `Location` is unusable) as a request
    /// that failed at once, with the `Location` as its URL, as Go records a redirect to a
    /// scheme its transport refuses. Returns the error, naming that record.
    pub(super) fn unsent_hop(
        &self,
        headers: &http::HeaderMap,
        bad: redirect::BadLocation,
    ) -> RequestError {
        let error = RequestError::invalid(&bad.reason);
        let Some(http) = &self.inner.http_trace else {
            return error;
        };
        let req = TraceId::generate();
        self.inner.sink.emit(Event::HttpRequestStarted {
            req: req.clone(),
            at: Instant::now(),
            method: bad.method,
            url: RequestUrl::Text(bad.location),
            header: HeaderCapture::new(headers, http),
            network_proxy: String::new(),
            body: Arc::new(BodyCounters::default()),
        });
        self.fail(&req, error)
    }

    /// Waits for the exchange of a hop, within the request's time limits, and records its
    /// response (or its failure).
    pub(super) async fn complete_hop(
        &self,
        hop: Hop,
        exchange: Exchange,
        deadline: Option<Instant>,
    ) -> Result<Response<ResponseBody>, RequestError> {
        let config = &self.inner.config;
        // A caller that drops the request future here (Ctrl-C, a `select!` that took another
        // branch) gets no answer, and the trace says so: `reqError` becomes "canceled".
        let in_flight = InFlight {
            client: self,
            req: &hop.req,
        };
        let result = if deadline.is_none() && config.response_header_timeout.is_none() {
            Ok(exchange.future.await)
        } else {
            // Boxed: the limits' timers would double the size of every request's future.
            let dial = exchange.dial.as_deref();
            Box::pin(self.with_limits(exchange.future, dial, deadline)).await
        };
        std::mem::forget(in_flight);
        self.finish_hop(hop, result)
    }

    /// Records the response (or the failure) and wraps its body.
    fn finish_hop(
        &self,
        hop: Hop,
        result: Result<Result<Exchanged, ExchangeError>, RequestError>,
    ) -> Result<Response<ResponseBody>, RequestError> {
        let inner = &*self.inner;
        let Exchanged { response, on_end } = match result {
            Ok(Ok(exchanged)) => exchanged,
            Ok(Err(error)) => return Err(self.fail(&hop.req, transport_error(error))),
            Err(timeout) => return Err(self.fail(&hop.req, timeout)),
        };
        let gunzip = hop.gunzip
            && response
                .headers()
                .get(header::CONTENT_ENCODING)
                .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"gzip"));
        let (mut head, incoming) = response.into_parts();
        if gunzip {
            // As Go: the caller sees the decoded body, without the encoding's headers.
            head.headers.remove(header::CONTENT_ENCODING);
            head.headers.remove(header::CONTENT_LENGTH);
        }
        if inner.http_trace.is_some() {
            let at = Instant::now();
            let conn = head.extensions.get::<ConnInfo>().cloned();
            inner.sink.emit_response(
                &head.headers,
                Event::HttpResponse {
                    req: hop.req.clone(),
                    at,
                    conn,
                    proto: proto(head.version),
                    status: head.status.as_u16(),
                    header: None,
                },
            );
        }
        let body = ResponseBody::new(
            incoming,
            gunzip,
            hop.counters,
            hop.deadline,
            inner.sink.clone(),
            hop.req,
        )
        .on_end(on_end);
        Ok(Response::from_parts(head, body))
    }

    /// Records that request `req` failed with `error`; returns the error, naming the request's
    /// record.
    pub(super) fn fail(&self, req: &TraceId, error: RequestError) -> RequestError {
        self.inner.sink.emit(Event::HttpFailed {
            req: req.clone(),
            error: error.to_string(),
        });
        self.at_hop(req, error)
    }

    /// `error` naming the record of request hop `req`, when HTTP requests are recorded.
    pub(super) fn at_hop(&self, req: &TraceId, error: RequestError) -> RequestError {
        if self.inner.http_trace.is_some() {
            error.at_hop(req.clone())
        } else {
            error
        }
    }

    /// Applies the whole-request and response-header time limits to an exchange. The header
    /// limit counts from when the request can be written: at once on a pooled connection,
    /// when the dial ends on a new one.
    async fn with_limits<F: std::future::Future>(
        &self,
        exchange: F,
        dial: Option<&context::DialProgress>,
        deadline: Option<Instant>,
    ) -> Result<F::Output, RequestError> {
        let config = &self.inner.config;
        if deadline.is_none() && config.response_header_timeout.is_none() {
            return Ok(exchange.await);
        }
        let request_limit = async {
            match deadline.zip(config.req_timeout) {
                Some((at, limit)) => {
                    tokio::time::sleep_until(at.into()).await;
                    RequestError::timeout(TimeoutLimit::Request, limit)
                }
                None => std::future::pending().await,
            }
        };
        let header_limit = async {
            match config.response_header_timeout {
                Some(limit) => {
                    if let Some(dial) = dial {
                        dial.connected().await;
                    }
                    tokio::time::sleep(limit).await;
                    RequestError::timeout(TimeoutLimit::ResponseHeader, limit)
                }
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            output = exchange => Ok(output),
            timeout = request_limit => Err(timeout),
            timeout = header_limit => Err(timeout),
        }
    }
}

/// What was canceled, as `reqError` records it: the request's future was dropped before
/// the response head arrived (Go records its `context canceled` there).
const CANCELED: &str = "canceled before the response arrived";

/// A hop awaiting its response: records the request as [`CANCELED`] when dropped, that is
/// when the caller drops the request's future. Forgotten once the exchange ends.
struct InFlight<'a> {
    client: &'a HttpClient,
    req: &'a TraceId,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.client.inner.sink.emit(Event::HttpFailed {
            req: self.req.clone(),
            error: CANCELED.to_owned(),
        });
    }
}

fn proto(version: http::Version) -> (u8, u8) {
    match version {
        http::Version::HTTP_09 => (0, 9),
        http::Version::HTTP_10 => (1, 0),
        http::Version::HTTP_2 => (2, 0),
        http::Version::HTTP_3 => (3, 0),
        _ => (1, 1),
    }
}

/// The exchange's error as the request's: the connector's own when connecting failed, else
/// classified from hyper's error and with the exchange's as its cause.
fn transport_error(error: ExchangeError) -> RequestError {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&error);
    while let Some(e) = source {
        if let Some(failed) = e.downcast_ref::<connector::ConnectFailed>() {
            return failed.0.clone();
        }
        source = e.source();
    }
    RequestError::new(classify::exchange_failure(&error), error_chain(&error)).with_source(error)
}
