//! [`HttpClient`]: an HTTP client (hyper-util, rustls) that records every network operation
//! behind its requests, the Rust counterpart of Go nettrace's `HTTPClient`.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use nettrace::client::{HttpClient, HttpClientConfig, HttpReqTraceOptions, TraceOptions};
//! use nettrace::model::HdrFieldsOpt;
//!
//! let client = HttpClient::new(
//!     HttpClientConfig { prefer_http2: true, ..Default::default() },
//!     TraceOptions {
//!         sock_trace: true,
//!         dns_query_trace: true,
//!         http_req_trace: Some(HttpReqTraceOptions {
//!             header_fields: HdrFieldsOpt::ValueLenOnly,
//!             ..Default::default()
//!         }),
//!         ..Default::default()
//!     },
//! )?;
//! let response = client.get("https://example.com/").await?;
//! let body = response.into_body().text().await?;
//! let (trace, _captures) = client.get_trace("GET example.com")?;
//! println!("{}", serde_json::to_string_pretty(&trace)?);
//! # let _ = body; Ok(()) }
//! ```
//!
//! Behaviour follows Go's `HTTPClient` and its `HTTPClientCfg` ([`HttpClientConfig`]); what
//! is recorded follows the trace options ([`TraceOptions`]). Differences from Go, all fixes:
//! [`HttpClient::get_trace`] is a snapshot that removes nothing and keeps IDs stable; every
//! reference whose record is known is filled in; every configured nameserver is used.
mod body;
mod config;
mod conn;
mod connector;
mod context;
mod error;
mod expect_continue;
mod idle;
mod redirect;
mod target;
mod tunnel;

use std::{
    sync::{Arc, PoisonError, RwLock},
    time::Instant,
};

use http::{HeaderValue, Method, Request, Response, Uri, header};
use hyper_util::{
    client::legacy::Client,
    rt::{TokioExecutor, TokioTimer},
};

pub use body::{BodyError, BoxError, RequestBody, ResponseBody};
pub use config::{
    HeaderFilter, HttpClientConfig, HttpReqTraceOptions, KernelMode, NameserverSelector,
    ProxySelector, TraceOptions,
};
pub use conn::ConnInfo;
pub use error::{ClientError, RequestError};

use self::{
    connector::{ConnectorSettings, TracedConnector},
    context::RequestContext,
};
use crate::{
    capture::PacketCapture,
    dns::{Resolver, ResolverConfig},
    event::{BodyCounters, Event},
    headers::HeaderCapture,
    kernel::KernelHub,
    model::{HttpTrace, TraceId},
    sock::TcpOptions,
    tls::KeyLogRecorder,
    tracer::{TraceSettings, Tracer},
};

/// A traced HTTP client. Cheap to clone; clones share the connection pool and the trace.
#[derive(Clone)]
pub struct HttpClient {
    inner: Arc<Inner>,
}

struct Inner {
    tracer: Tracer,
    /// `None` once closed: dropping the pool closes its idle connections.
    pool: RwLock<Option<Arc<Client<TracedConnector, RequestBody>>>>,
    config: HttpClientConfig,
    /// `TraceOptions::http_req_trace`, shared with every request's header capture.
    http_trace: Option<Arc<HttpReqTraceOptions>>,
    /// The cap on idle connections across hosts (`max_idle_conns`), when there is one.
    idle: Option<Arc<idle::IdleConns>>,
    /// The TLS secrets of the client's connections, when packet capture asked for them
    /// (`PacketCaptureOptions::tls_keys`): the `key_log` of its one rustls configuration.
    /// `get_trace` copies its `snapshot()` into each capture's `tls_key_log`. `clear_trace`
    /// keeps it: connections carried over into the next trace still need their secrets, and
    /// unused secrets cost Wireshark nothing (the recorder is bounded).
    pub(crate) key_log: Option<Arc<KeyLogRecorder>>,
}

impl HttpClient {
    /// Builds a client; tracing starts at once (`traceBeginAt` is now).
    pub fn new(config: HttpClientConfig, options: TraceOptions) -> Result<Self, ClientError> {
        let tracer = Tracer::new(TraceSettings {
            sock_ops: options.sock_trace,
            dns_messages: options.dns_query_trace,
        });
        attach_kernel(&tracer, &options)?;
        if options.conntrack {
            tracer.attach_conntrack().map_err(ClientError::Conntrack)?;
        }
        let alpn: &[&[u8]] = if config.prefer_http2 {
            &[b"h2", b"http/1.1"]
        } else {
            &[b"http/1.1"]
        };
        let key_log = options
            .packet_capture
            .as_ref()
            .filter(|capture| capture.tls_keys)
            .map(|_| Arc::new(KeyLogRecorder::default()));
        let tls = crate::tls::client_config(&config.tls, alpn, key_log.clone())?;
        let resolver_config = if config.nameservers.is_empty() {
            ResolverConfig::from_system().map_err(ClientError::Resolver)?
        } else {
            // Explicit nameservers: the system's file only contributes search rules, if it
            // can be read at all.
            ResolverConfig::from_system()
                .unwrap_or_default()
                .with_nameservers(config.nameservers.clone())
        };
        let resolver = Resolver::new(
            resolver_config,
            config.source_ip,
            config.skip_nameserver.clone(),
        );
        let connector = TracedConnector::new(
            tracer.clone(),
            resolver,
            tls,
            ConnectorSettings {
                source_ip: config.source_ip,
                tcp: TcpOptions {
                    connect_timeout: config.tcp_handshake_timeout,
                    keepalive: config.tcp_keep_alive_interval,
                },
                tls_timeout: config.tls_handshake_timeout,
                max_conns_per_host: config.max_conns_per_host,
                track_idle: config.max_idle_conns > 0,
            },
        );
        let mut builder = Client::builder(TokioExecutor::new());
        builder
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .pool_idle_timeout(config.idle_conn_timeout)
            .pool_max_idle_per_host(if config.disable_keep_alive {
                0
            } else if config.max_idle_conns_per_host == 0 {
                2
            } else {
                config.max_idle_conns_per_host
            });
        let pool = builder.build(connector);
        if options.logging {
            tracing::info!(?config, "nettrace: traced HTTP client created");
        }
        let http_trace = options.http_req_trace.clone().map(Arc::new);
        if let Some(http) = &http_trace {
            tracer.record_http_headers(http.clone());
        }
        // The trace begins now, not before the (slow) loading of trust roots above.
        tracer.clear();
        Ok(Self {
            inner: Arc::new(Inner {
                tracer,
                pool: RwLock::new(Some(Arc::new(pool))),
                http_trace,
                idle: (config.max_idle_conns > 0)
                    .then(|| Arc::new(idle::IdleConns::new(config.max_idle_conns))),
                key_log,
                config,
            }),
        })
    }

    /// `GET url`.
    pub async fn get(&self, url: &str) -> Result<Response<ResponseBody>, RequestError> {
        let request = Request::get(url)
            .body(RequestBody::empty())
            .map_err(|e| RequestError::Invalid(e.to_string()))?;
        self.request(request).await
    }

    /// `POST url` with `body` of `content_type`.
    pub async fn post(
        &self,
        url: &str,
        content_type: &str,
        body: impl Into<RequestBody>,
    ) -> Result<Response<ResponseBody>, RequestError> {
        let request = Request::post(url)
            .header(header::CONTENT_TYPE, content_type)
            .body(body.into())
            .map_err(|e| RequestError::Invalid(e.to_string()))?;
        self.request(request).await
    }

    /// Sends a request, following redirects (each hop its own `HTTPReqTrace`) up to 10 requests
    /// in all, as Go does, and returns the response with a streaming body.
    pub async fn request<B: Into<RequestBody>>(
        &self,
        request: Request<B>,
    ) -> Result<Response<ResponseBody>, RequestError> {
        let deadline = self
            .inner
            .config
            .req_timeout
            .map(|limit| Instant::now() + limit);
        let (mut parts, body) = request.into_parts();
        let mut body = body.into();
        for sent in 1..=redirect::MAX_REQUESTS {
            let replay = body.try_clone();
            let hop_parts = parts.clone();
            let response = self.send_hop(hop_parts, body, deadline).await?;
            let Some(next) = redirect::next_hop(
                &parts.uri,
                &parts.method,
                response.status(),
                response.headers(),
            ) else {
                return Ok(response);
            };
            let next = next.map_err(RequestError::Invalid)?;
            if sent == redirect::MAX_REQUESTS {
                let error = RequestError::TooManyRedirects(sent);
                self.inner.tracer.emit(Event::HttpFailed {
                    req: response.body().trace_id().clone(),
                    error: error.to_string(),
                });
                return Err(error);
            }
            body = match (next.keep_body, replay) {
                (false, _) => RequestBody::empty(),
                (true, Some(replay)) => replay,
                // A streamed body cannot be sent again: the redirect is the answer.
                (true, None) => return Ok(response),
            };
            // Read the redirect's body so its connection can be reused.
            let _ = http_body_util::BodyExt::collect(response.into_body()).await;
            if !next.keep_body {
                parts.headers.remove(header::CONTENT_TYPE);
                parts.headers.remove(header::CONTENT_LENGTH);
            }
            parts.uri = next.uri;
            parts.method = next.method;
        }
        Err(RequestError::TooManyRedirects(redirect::MAX_REQUESTS))
    }

    /// One request/response exchange.
    async fn send_hop(
        &self,
        mut parts: http::request::Parts,
        body: RequestBody,
        deadline: Option<Instant>,
    ) -> Result<Response<ResponseBody>, RequestError> {
        let inner = &*self.inner;
        let req = TraceId::generate();
        let started = Instant::now();
        let proxy = match &inner.config.proxy {
            Some(select) if parts.uri.scheme().is_some() => {
                select(&parts).map_err(RequestError::Proxy)
            }
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
        let counters = Arc::new(BodyCounters::default());
        if let Some(header) = captured {
            inner.tracer.emit(Event::HttpRequestStarted {
                req: req.clone(),
                at: started,
                method: parts.method.clone(),
                url: parts.uri.clone(),
                header,
                network_proxy: match &proxy {
                    Ok(Some(proxy)) => proxy_name(proxy),
                    _ => String::new(),
                },
                body: counters.clone(),
            });
        }
        let fail = |error: RequestError| {
            inner.tracer.emit(Event::HttpFailed {
                req: req.clone(),
                error: error.to_string(),
            });
            error
        };
        let proxy = proxy.map_err(fail)?;
        if parts.uri.scheme().is_none() {
            return Err(fail(RequestError::Invalid(format!(
                "URL {} is not absolute",
                parts.uri
            ))));
        }
        let pool = inner
            .pool
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
            .ok_or_else(|| fail(RequestError::Closed))?;
        let has_body = body.has_body();
        let mut request = Request::from_parts(parts, body.counted(counters.clone()));
        let wait =
            expect_continue::install(&mut request, has_body, inner.config.expect_continue_timeout);
        request.body_mut().wait_before_sending(wait);
        let capture = inner
            .idle
            .as_ref()
            .map(|_| hyper_util::client::legacy::connect::capture_connection(&mut request));
        // Only a response-header limit needs to know when the connection is ready.
        let dial = inner
            .config
            .response_header_timeout
            .map(|_| Arc::new(context::DialProgress::default()));
        let context = RequestContext {
            http_req: Some(req.clone()),
            proxy,
            dial: dial.clone(),
        };
        let exchange = context::scope(context, pool.request(request));
        let result = self.with_limits(exchange, dial.as_deref(), deadline).await;
        let response = match result {
            Ok(Ok(response)) => response,
            Ok(Err(error)) => return Err(fail(transport_error(&error))),
            Err(timeout) => return Err(fail(timeout)),
        };
        let at = Instant::now();
        let gunzip = gunzip
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
        if let Some(http) = &inner.http_trace {
            inner.tracer.emit(Event::HttpResponse {
                req: req.clone(),
                at,
                conn: head.extensions.get::<ConnInfo>().cloned(),
                proto: proto(head.version),
                status: head.status.as_u16(),
                header: HeaderCapture::new(&head.headers, http),
            });
        }
        let on_end = match (
            &inner.idle,
            capture,
            head.extensions.get::<idle::IdleHandle>(),
        ) {
            (Some(conns), Some(capture), Some(handle)) if head.version != http::Version::HTTP_2 => {
                Some(idle::IdleOnEnd {
                    conns: conns.clone(),
                    signal: handle.0.clone(),
                    capture,
                })
            }
            _ => None,
        };
        let body = ResponseBody::new(
            incoming,
            gunzip,
            counters,
            deadline,
            inner.tracer.clone(),
            req,
        )
        .on_end(on_end);
        Ok(Response::from_parts(head, body))
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
                    RequestError::Timeout {
                        what: "ReqTimeout",
                        limit,
                    }
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
                    RequestError::Timeout {
                        what: "ResponseHeaderTimeout",
                        limit,
                    }
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

    /// The trace so far and the packet captures (Go's `GetTrace`). A snapshot: nothing is
    /// removed, IDs stay the same across calls.
    pub fn get_trace(
        &self,
        description: &str,
    ) -> Result<(HttpTrace, Vec<PacketCapture>), ClientError> {
        self.ensure_open()?;
        let (trace, mut captures) = self.inner.tracer.snapshot_with_captures(description);
        if let Some(key_log) = &self.inner.key_log {
            let secrets = key_log.snapshot();
            for capture in &mut captures {
                capture.tls_key_log.clone_from(&secrets);
            }
        }
        Ok((trace, captures))
    }

    /// Starts a new trace (Go's `ClearTrace`): records so far are dropped, connections still
    /// open carry over marked `reused`.
    pub fn clear_trace(&self) -> Result<(), ClientError> {
        self.ensure_open()?;
        self.inner.tracer.clear();
        Ok(())
    }

    /// Stops tracing and closes the idle connections (Go's `Close`). Requests, `get_trace`
    /// and `clear_trace` fail afterwards.
    pub fn close(&self) -> Result<(), ClientError> {
        let pool = self
            .inner
            .pool
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        match pool {
            Some(_) => Ok(()),
            None => Err(ClientError::Closed),
        }
    }

    fn ensure_open(&self) -> Result<(), ClientError> {
        let open = self
            .inner
            .pool
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some();
        if open {
            Ok(())
        } else {
            Err(ClientError::Closed)
        }
    }
}

impl HttpClient {
    /// The TLS secrets of the client's connections so far, in SSLKEYLOGFILE format, when
    /// `TraceOptions::packet_capture` asked for them (`tls_keys`); `None` otherwise. The
    /// packet captures of [`get_trace`](Self::get_trace) carry the same text.
    pub fn tls_key_log(&self) -> Option<String> {
        self.inner.key_log.as_ref().map(|log| log.snapshot())
    }
}

/// Connects the tracer to the kernel programs as `options.kernel` says.
fn attach_kernel(tracer: &Tracer, options: &TraceOptions) -> Result<(), ClientError> {
    let attached = match options.kernel {
        KernelMode::Off if options.packet_capture.is_some() => {
            return Err(ClientError::Capture(
                "it needs the kernel programs, and kernel tracing is turned off".to_owned(),
            ));
        }
        KernelMode::Off => {
            tracer.kernel_unavailable("kernel tracing is turned off".to_owned());
            return Ok(());
        }
        KernelMode::Auto | KernelMode::Require => {
            KernelHub::shared(&options.kernel_config).and_then(|hub| tracer.attach_kernel(&hub))
        }
    };
    match attached {
        Ok(()) => match &options.packet_capture {
            Some(capture) => tracer
                .start_capture(capture)
                .map_err(|e| ClientError::Capture(error::chain(&e))),
            None => Ok(()),
        },
        Err(error) if options.kernel == KernelMode::Require => Err(ClientError::Kernel(error)),
        Err(error) if options.packet_capture.is_some() => Err(ClientError::Capture(format!(
            "needs the privilege to load eBPF programs (root, or CAP_BPF + CAP_NET_ADMIN): {}",
            error::chain(&error)
        ))),
        Err(error) => {
            let reason = error::chain(&error);
            if options.logging {
                tracing::info!(%reason, "nettrace: no kernel data");
            }
            tracer.kernel_unavailable(reason);
            Ok(())
        }
    }
}

/// The proxy as Go records it in `networkProxy` (`scheme://host:port`).
fn proxy_name(proxy: &Uri) -> String {
    let scheme = proxy.scheme_str().unwrap_or("http");
    let authority = proxy.authority().map(|a| a.as_str()).unwrap_or_default();
    format!("{scheme}://{authority}")
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

/// hyper-util's error, with the connector's own message when connecting failed.
fn transport_error(error: &hyper_util::client::legacy::Error) -> RequestError {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = source {
        if let Some(failed) = e.downcast_ref::<connector::ConnectFailed>() {
            return RequestError::Transport(failed.0.clone());
        }
        source = e.source();
    }
    RequestError::Transport(error::chain(error))
}
