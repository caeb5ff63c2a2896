//! [`HttpClient`]: an HTTP client (hyper, rustls) that records every network operation
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
//! reference whose record is known is filled in; every configured nameserver is used; a request
//! that times out or is dropped ends every record it left open (the dial, its resolver dials,
//! a TCP connect, a TLS handshake) at that moment, with the error `canceled: ...` (Go leaves
//! them without an end).
//!
//! A failed request returns a [`RequestError`]: its [`kind`](RequestError::kind) says what
//! failed ([`RequestErrorKind`]: name resolution, a refused or timed-out connection, a
//! certificate, a proxy, a time limit, ...), its [`trace_id`](RequestError::trace_id) names the
//! request's `HTTPReqTrace` in [`HttpClient::get_trace`] (also among concurrent requests), and
//! its text is that record's `reqError`.
mod body;
mod classify;
mod config;
mod conn;
mod connector;
mod context;
mod error;
mod exchange;
mod exchange_error;
mod expect_continue;
mod gunzip;
mod hop;
mod pool;
mod proxy;
mod redirect;
mod stream;
mod target;
pub(crate) mod tunnel;

use std::{
    future::Future,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Instant,
};

use http::{Request, Response, header};

pub use crate::event::ConnInfo;
pub use body::{BodyError, BoxError, RequestBody, ResponseBody};
pub use config::{
    HeaderFilter, HttpClientConfig, HttpReqTraceOptions, KernelMode, NameserverSelector,
    ProxySelector, TraceLimits, TraceOptions,
};
pub use error::{
    CertificateFailure, ClientError, DnsFailure, ProxyFailure, RequestError, RequestErrorKind,
    TimeoutLimit,
};
pub use gunzip::{MAX_RATIO as MAX_GZIP_RATIO, RATIO_FROM as GZIP_RATIO_FROM};
pub use proxy::redact_userinfo;
pub use stream::CompletedTraces;

use self::{
    connector::{ConnectorSettings, TracedConnector},
    pool::{Pool, PoolSettings},
};
use crate::{
    capture::PacketCapture,
    dns::{Resolver, ResolverConfig},
    error_chain::error_chain,
    event::{Sink, TraceSettings},
    kernel::KernelHub,
    model::{HttpTrace, TraceId},
    sock::TcpOptions,
    tls::KeyLogRecorder,
    tracer::Tracer,
};

/// A traced HTTP client. Cheap to clone; clones share the connection pool and the trace.
#[derive(Clone)]
pub struct HttpClient {
    inner: Arc<Inner>,
}

struct Inner {
    /// The driver: snapshots, clearing.
    tracer: Tracer,
    /// The hooks' view of `tracer`, through which requests report.
    sink: Sink,
    pool: Arc<Pool>,
    /// Set by [`HttpClient::close`], which closes the pool's idle connections: requests,
    /// `get_trace` and `clear_trace` fail from then on. A flag read with one load, not a
    /// lock around the pool: every request checks it, and a lock and its release are two
    /// `lock`-prefixed instructions (tens of nanoseconds each here).
    closed: AtomicBool,
    config: HttpClientConfig,
    /// `TraceOptions::http_req_trace`, shared with every request's header capture.
    http_trace: Option<Arc<HttpReqTraceOptions>>,
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
            limits: options.limits,
            stream: options.completed_traces.is_some(),
            stream_connections: false,
        });
        tracer.stream_to(options.completed_traces);
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
            tracer.sink(),
            resolver,
            tls,
            ConnectorSettings {
                source_ip: config.source_ip,
                tcp: TcpOptions {
                    connect_timeout: config.tcp_handshake_timeout,
                    keepalive: config.tcp_keep_alive_interval,
                },
                tls_timeout: config.tls_handshake_timeout,
                tls_insecure: config.tls.insecure,
                max_conns_per_host: config.max_conns_per_host,
            },
        );
        let pool = Pool::new(
            connector,
            PoolSettings {
                keep_alive: !config.disable_keep_alive,
                max_idle_per_host: match config.max_idle_conns_per_host {
                    0 => 2,
                    limit => limit,
                },
                max_idle: config.max_idle_conns,
                idle_timeout: config.idle_conn_timeout,
            },
        );
        if options.logging {
            tracing::debug!(?config, "nettrace: traced HTTP client created");
        }
        let http_trace = options.http_req_trace.clone().map(Arc::new);
        if let Some(http) = &http_trace {
            tracer.record_http_headers(http.clone());
        }
        // The trace begins now, not before the (slow) loading of trust roots above.
        tracer.clear();
        Ok(Self {
            inner: Arc::new(Inner {
                sink: tracer.sink(),
                tracer,
                pool: Arc::new(pool),
                closed: AtomicBool::new(false),
                http_trace,
                key_log,
                config,
            }),
        })
    }

    /// `GET url`.
    pub async fn get(&self, url: &str) -> Result<Response<ResponseBody>, RequestError> {
        let request = Request::get(url)
            .body(RequestBody::empty())
            .map_err(|e| RequestError::invalid(&e).with_source(e))?;
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
            .map_err(|e| RequestError::invalid(&e).with_source(e))?;
        self.request(request).await
    }

    /// Sends a request, following redirects (each hop its own `HTTPReqTrace`) up to 10 requests
    /// in all, as Go does, and returns the response with a streaming body.
    pub fn request<B: Into<RequestBody>>(
        &self,
        request: Request<B>,
    ) -> impl Future<Output = Result<Response<ResponseBody>, RequestError>> + '_ {
        // This future is moved (copied) with every request, so its size is part of what
        // tracing costs. Hence an `async` block rather than an `async fn`, which would keep
        // both its arguments and the locals they are moved into (rust-lang/rust#62958); and
        // redirects are followed in a boxed future of their own.
        let (parts, body) = request.into_parts();
        let body: RequestBody = body.into();
        async move {
            // The hops before the last, for the completed-request stream (`stream.rs`).
            let mut hops = Vec::new();
            let result = async {
                let deadline = self
                    .inner
                    .config
                    .req_timeout
                    .map(|limit| Instant::now() + limit);
                let replay = body.try_clone();
                let (hop, exchange) = self
                    .start_hop(parts.clone(), body, deadline)
                    .map_err(|e| e.for_url(&parts.uri))?;
                let response = self
                    .complete_hop(hop, exchange, deadline)
                    .await
                    .map_err(|e| e.for_url(&parts.uri))?;
                if redirect::next_hop(
                    &parts.uri,
                    &parts.method,
                    response.status(),
                    response.headers(),
                )
                .is_none()
                {
                    return Ok(response);
                }
                Box::pin(self.follow_redirects(parts, replay, response, deadline, &mut hops)).await
            }
            .await;
            self.request_done(hops, result)
        }
    }

    /// Follows the redirects from `response`, the answer to the first request (`parts`, whose
    /// body `replay` is, if it is in memory). Each hop is recorded and handed to the pool by
    /// [`Self::start_hop`], and its response recorded by [`Self::complete_hop`].
    async fn follow_redirects(
        &self,
        mut parts: http::request::Parts,
        mut replay: Option<RequestBody>,
        mut response: Response<ResponseBody>,
        deadline: Option<Instant>,
        hops: &mut Vec<TraceId>,
    ) -> Result<Response<ResponseBody>, RequestError> {
        for sent in 1..=redirect::MAX_REQUESTS {
            let Some(next) = redirect::next_hop(
                &parts.uri,
                &parts.method,
                response.status(),
                response.headers(),
            ) else {
                return Ok(response);
            };
            // The redirect's own exchange succeeded: the failure is the next hop's, recorded
            // as a request that was not sent (Go: the same for a scheme it cannot send).
            let next = match next {
                Ok(next) => next,
                Err(bad) => return Err(self.unsent_hop(&parts.headers, bad)),
            };
            if sent == redirect::MAX_REQUESTS {
                let error = RequestError::too_many_redirects(sent).for_url(&parts.uri);
                return Err(self.fail(response.body().trace_id(), error));
            }
            let body = match (next.keep_body, replay.take()) {
                (false, _) => RequestBody::empty(),
                (true, Some(replay)) => replay,
                // A streamed body cannot be sent again: the redirect is the answer.
                (true, None) => return Ok(response),
            };
            // Read the redirect's body so its connection can be reused.
            if self.inner.tracer.streams() {
                hops.push(response.body().trace_id().clone());
            }
            let _ = http_body_util::BodyExt::collect(response.into_body()).await;
            if !next.keep_body {
                parts.headers.remove(header::CONTENT_TYPE);
                parts.headers.remove(header::CONTENT_LENGTH);
            }
            parts.uri = next.uri;
            parts.method = next.method;
            replay = body.try_clone();
            let (hop, exchange) = self
                .start_hop(parts.clone(), body, deadline)
                .map_err(|e| e.for_url(&parts.uri))?;
            response = self
                .complete_hop(hop, exchange, deadline)
                .await
                .map_err(|e| e.for_url(&parts.uri))?;
        }
        Err(RequestError::too_many_redirects(redirect::MAX_REQUESTS).for_url(&parts.uri))
    }

    /// The trace so far and the packet captures (Go's `GetTrace`). A snapshot: nothing is
    /// removed, IDs stay the same across calls. Every kernel event and packet that happened
    /// before the call is in it (no sleep needed). There is one capture per interface asked
    /// for, also one that saw no packet (Go leaves those out), in the order they were named.
    ///
    /// The trace's records are shared (`Arc`) with the client, which keeps each record's
    /// model value until the record changes: a repeated call costs the records that changed
    /// since the last one plus a pointer per record, not a copy of the whole trace (the
    /// packet captures are still built in full). Changing a record of the returned trace
    /// copies it first.
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
        if self.inner.closed.swap(true, Ordering::AcqRel) {
            return Err(ClientError::Closed);
        }
        self.inner.pool.close();
        Ok(())
    }

    fn ensure_open(&self) -> Result<(), ClientError> {
        if self.is_closed() {
            Err(ClientError::Closed)
        } else {
            Ok(())
        }
    }

    /// Whether [`Self::close`] was called.
    fn is_closed(&self) -> bool {
        self.inner.closed.load(Ordering::Acquire)
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

/// Connects the tracer to the kernel programs as `options.kernel` says: loaded here, or else
/// through the loader daemon, or else none (the trace says why). Packet capture needs one of
/// the first two (through the daemon: the client's own flows only, no ICMP/ARP).
fn attach_kernel(tracer: &Tracer, options: &TraceOptions) -> Result<(), ClientError> {
    if let Some(capture) = &options.packet_capture {
        capture
            .validate()
            .map_err(|e| ClientError::Capture(e.to_string()))?;
    }
    let attached = match options.kernel {
        KernelMode::Off if options.packet_capture.is_some() => {
            return Err(ClientError::Capture(
                "it needs the kernel programs, and kernel tracing is turned off".to_owned(),
            ));
        }
        KernelMode::Off => {
            return tracer
                .kernel_unavailable("kernel tracing is turned off".to_owned())
                .map_err(ClientError::Kernel);
        }
        KernelMode::Auto | KernelMode::Require => {
            KernelHub::shared(&options.kernel_config).and_then(|hub| tracer.attach_kernel(&hub))
        }
    };
    let error = match attached {
        Ok(()) => {
            return match &options.packet_capture {
                Some(capture) => tracer
                    .start_capture(capture)
                    .map_err(|e| ClientError::Capture(error_chain(&e))),
                None => Ok(()),
            };
        }
        Err(error) => error,
    };
    let daemon = crate::daemon::socket_path(options.kernel_daemon.as_deref());
    let through_daemon = if daemon.exists() {
        tracer
            .attach_daemon(&daemon)
            .map_err(|e| format!("daemon at {}: {}", daemon.display(), error_chain(&e)))
    } else {
        Err(format!("no daemon at {}", daemon.display()))
    };
    match (through_daemon, &options.packet_capture) {
        // The daemon captures the client's own flows.
        (Ok(()), Some(capture)) => tracer
            .start_capture(capture)
            .map_err(|e| ClientError::Capture(error_chain(&e))),
        (Err(daemon), Some(_)) => Err(ClientError::Capture(format!(
            "needs the privilege to load eBPF programs (root, or CAP_BPF + CAP_NET_ADMIN), \
             or the nettrace-loader daemon: {}; {daemon}",
            error_chain(&error)
        ))),
        (Ok(()), None) => Ok(()),
        (Err(_), None) if options.kernel == KernelMode::Require => Err(ClientError::Kernel(error)),
        (Err(daemon), None) => {
            let reason = format!("{}; {daemon}", error_chain(&error));
            if options.logging {
                tracing::info!(%reason, "nettrace: no kernel data");
            }
            tracer
                .kernel_unavailable(reason)
                .map_err(ClientError::Kernel)
        }
    }
}
