//! [`TracedConnector`]: the pool's connector, which dials through the traced resolver and
//! sockets, runs the proxy and TLS handshakes, and reports the dial.
//!
//! One dial per connection the pool asks for: resolve the host (unless it is an IP literal),
//! try its addresses in order (each attempt a TCP connection record, failed ones
//! `connected: false`), then, by route: TLS with the host; or through a proxy: TLS with an
//! `https://` proxy, `CONNECT` for `https` targets, TLS with the host inside the tunnel.
use std::{
    collections::HashMap,
    future::Future,
    net::SocketAddr,
    pin::Pin,
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, Instant},
};

use http::Uri;
use rustls::{ClientConfig, pki_types::ServerName};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::{
    DnsFailure, ProxyFailure, RequestError, RequestErrorKind, classify,
    conn::{ConnIo, Io, TracedConn},
    context::{self, RequestContext},
    target::Endpoint,
    tunnel,
};
use crate::{
    dns::Resolver,
    event::Sink,
    event::{CANCELED, ConnInfo, Event, OnCancel},
    model::TraceId,
    sock::{SocketOrigin, TcpOptions, connect_tcp},
    tls::{self, HandshakeContext},
};

/// Settings of the connector, from the client configuration.
#[derive(Clone, Debug)]
pub(crate) struct ConnectorSettings {
    pub(crate) source_ip: Option<std::net::IpAddr>,
    pub(crate) tcp: TcpOptions,
    pub(crate) tls_timeout: Option<Duration>,
    /// Certificates are not verified ([`crate::tls::TlsSettings::insecure`]).
    pub(crate) tls_insecure: bool,
    pub(crate) max_conns_per_host: usize,
}

/// The traced connector. Cheap to clone.
#[derive(Clone)]
pub(crate) struct TracedConnector {
    shared: Arc<Shared>,
}

struct Shared {
    sink: Sink,
    resolver: Resolver,
    tls: Arc<ClientConfig>,
    settings: ConnectorSettings,
    host_slots: Mutex<HashMap<String, Arc<Semaphore>>>,
}

impl TracedConnector {
    /// A connector dialing with `resolver` and `tls`, reporting to `sink`.
    pub(crate) fn new(
        sink: Sink,
        resolver: Resolver,
        tls: Arc<ClientConfig>,
        settings: ConnectorSettings,
    ) -> Self {
        Self {
            shared: Arc::new(Shared {
                sink,
                resolver,
                tls,
                settings,
                host_slots: Mutex::new(HashMap::new()),
            }),
        }
    }
}

/// Why a connection could not be made: the request's error, classified where the cause was
/// known. It reaches the request through the exchange's error, which only lends it.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub(crate) struct ConnectFailed(pub(crate) RequestError);

/// A dial in progress.
pub(crate) type Connecting =
    Pin<Box<dyn Future<Output = Result<TracedConn, ConnectFailed>> + Send>>;

impl TracedConnector {
    /// Starts a connection to `uri`'s scheme, host and port for the request being polled
    /// (its context is read now: the returned future may be finished by another task).
    pub(crate) fn connect(&self, uri: Uri) -> Connecting {
        let request = context::current();
        if let Some(dial) = &request.dial {
            dial.started();
        }
        let shared = self.shared.clone();
        Box::pin(async move { shared.connect(uri, request).await })
    }
}

/// Reports the end of a dial's "context" when the dial future finishes or is dropped, to the
/// trace and to the request waiting for it.
struct DialContext<'a> {
    sink: &'a Sink,
    dial: TraceId,
    request: &'a RequestContext,
}

impl Drop for DialContext<'_> {
    fn drop(&mut self) {
        self.sink.emit(Event::DialContextClosed {
            dial: self.dial.clone(),
            at: Instant::now(),
        });
        if let Some(dial) = &self.request.dial {
            dial.ended();
        }
    }
}

impl Shared {
    async fn connect(
        &self,
        uri: Uri,
        request: RequestContext,
    ) -> Result<TracedConn, ConnectFailed> {
        let target = Endpoint::from_uri(&uri)
            .map_err(|error| RequestError::new(RequestErrorKind::InvalidRequest, error));
        let proxy = request
            .proxy
            .as_deref()
            .map(|proxy| Endpoint::from_uri(&proxy.uri))
            .transpose()
            .map_err(|error| {
                RequestError::new(RequestErrorKind::Proxy(ProxyFailure::Selection), error)
            });
        let (target, proxy) = match (target, proxy) {
            (Ok(target), Ok(proxy)) => (target, proxy),
            (Err(error), _) | (_, Err(error)) => {
                if let Some(dial) = &request.dial {
                    dial.ended();
                }
                return Err(ConnectFailed(error));
            }
        };
        let first_hop = proxy.as_ref().unwrap_or(&target);
        let dial = TraceId::generate();
        self.sink.emit(Event::DialStarted {
            dial: dial.clone(),
            at: Instant::now(),
            dst_address: first_hop.authority(),
            source_ip: self.settings.source_ip,
            http_req: request.http_req.clone(),
        });
        let _context = DialContext {
            sink: &self.sink,
            dial: dial.clone(),
            request: &request,
        };
        // Dropped before the dial ends (the request timed out or was dropped): the dial ends
        // then, with that error. Declared after `_context`, so reported before it closes.
        let unfinished = OnCancel::new(|| {
            self.sink.emit(Event::DialEnded {
                dial: dial.clone(),
                at: Instant::now(),
                result: Err(CANCELED.to_owned()),
            });
        });
        let slot = self.host_slot(&target.authority()).await;
        let dialled = self.dial(&dial, first_hop).await;
        unfinished.disarm();
        let stream = match dialled {
            Ok(stream) => stream,
            Err(error) => {
                self.sink.emit(Event::DialEnded {
                    dial,
                    at: Instant::now(),
                    result: Err(error.to_string()),
                });
                return Err(ConnectFailed(error));
            }
        };
        let tcp_conn = stream.conn().clone();
        self.sink.emit(Event::DialEnded {
            dial,
            at: Instant::now(),
            result: Ok(tcp_conn.clone()),
        });
        let handshake = |for_proxy| HandshakeContext {
            conn: tcp_conn.clone(),
            for_proxy,
            http_req: request.http_req.clone(),
            timeout: self.settings.tls_timeout,
            insecure: self.settings.tls_insecure,
        };
        let mut info = ConnInfo {
            tcp_conn: tcp_conn.clone(),
            tls_tunnel: None,
            proxy_tls_tunnel: None,
        };
        // The proxy leg: TLS with an https:// proxy, then CONNECT for https targets.
        let mut io = ConnIo::Tcp(stream);
        let mut proxied = false;
        if let Some(proxy) = &proxy {
            if proxy.tls {
                let layered = io.into_layered();
                let (tls_io, id) = self.tls_handshake(proxy, layered, handshake(true)).await?;
                info.proxy_tls_tunnel = Some(id);
                io = ConnIo::Layered(tls_io);
            }
            if target.tls {
                let authorization = request
                    .proxy
                    .as_deref()
                    .and_then(|p| p.authorization.as_ref());
                tunnel::connect(&mut io, &target.authority(), authorization)
                    .await
                    .map_err(ConnectFailed)?;
            } else {
                proxied = true;
            }
        }
        let mut negotiated_h2 = false;
        if target.tls {
            let layered = io.into_layered();
            let (tls_io, id, alpn) = self
                .tls_to_target(&target, layered, handshake(false))
                .await?;
            info.tls_tunnel = Some(id);
            negotiated_h2 = alpn.as_deref() == Some(b"h2".as_slice());
            io = ConnIo::Layered(tls_io);
        }
        Ok(TracedConn {
            io,
            info,
            proxied,
            negotiated_h2,
            _slot: slot,
        })
    }

    /// Resolves `endpoint` and connects to its addresses in order until one answers. When
    /// none does, the error reads every attempt's failure and has the first one's class and
    /// cause (as Go reports the first error).
    async fn dial(
        &self,
        dial: &TraceId,
        endpoint: &Endpoint,
    ) -> Result<crate::sock::TracedStream<tokio::net::TcpStream>, RequestError> {
        let addresses = match endpoint.ip() {
            Some(ip) => vec![ip],
            None => self
                .resolver
                .lookup_ip(&self.sink, dial, &endpoint.host)
                .await
                .map_err(|e| {
                    RequestError::new(
                        RequestErrorKind::NameResolution(classify::dns_failure(&e)),
                        format!("lookup {}: {e}", endpoint.host),
                    )
                    .with_source(e)
                })?,
        };
        let origin = SocketOrigin {
            dial: dial.clone(),
            from_resolver: false,
            source_ip: self.settings.source_ip,
        };
        let mut errors = Vec::new();
        let mut first = None;
        for ip in addresses {
            let remote = SocketAddr::new(ip, endpoint.port);
            match connect_tcp(&self.sink, &origin, remote, self.settings.tcp).await {
                Ok(stream) => return Ok(stream),
                Err(error) => {
                    let message = format!("dial tcp {remote}: {error}");
                    if first.is_none() {
                        let (kind, cause) = classify::connect_error(error);
                        let failure = RequestError::new(kind, message.clone());
                        first = Some(match cause {
                            Some(cause) => failure.with_source(cause),
                            None => failure,
                        });
                    }
                    errors.push(message);
                }
            }
        }
        Err(match first {
            Some(first) => first.with_message(errors.join("; ")),
            None => RequestError::new(
                RequestErrorKind::NameResolution(DnsFailure::NoAddresses),
                format!("lookup {}: no addresses", endpoint.host),
            ),
        })
    }

    async fn tls_handshake(
        &self,
        endpoint: &Endpoint,
        io: Box<dyn Io>,
        context: HandshakeContext,
    ) -> Result<(Box<dyn Io>, TraceId), ConnectFailed> {
        let (io, id, _) = self.tls_to_target(endpoint, io, context).await?;
        Ok((io, id))
    }

    async fn tls_to_target(
        &self,
        endpoint: &Endpoint,
        io: Box<dyn Io>,
        context: HandshakeContext,
    ) -> Result<(Box<dyn Io>, TraceId, Option<Vec<u8>>), ConnectFailed> {
        let server_name = ServerName::try_from(endpoint.host.clone()).map_err(|e| {
            ConnectFailed(
                RequestError::new(
                    RequestErrorKind::InvalidRequest,
                    format!("invalid TLS server name {}: {e}", endpoint.host),
                )
                .with_source(e),
            )
        })?;
        let config = if context.for_proxy {
            // The proxy speaks HTTP/1.1 (CONNECT or absolute-form requests).
            let mut config = (*self.tls).clone();
            config.alpn_protocols = vec![b"http/1.1".to_vec()];
            Arc::new(config)
        } else {
            self.tls.clone()
        };
        let (stream, id) = tls::handshake(&self.sink, config, server_name, io, context)
            .await
            .map_err(|error| ConnectFailed(handshake_failed(error)))?;
        let alpn = stream.get_ref().1.alpn_protocol().map(<[u8]>::to_vec);
        Ok((Box::new(stream), id, alpn))
    }

    /// Waits for a connection slot of `host` when connections per host are limited.
    async fn host_slot(&self, host: &str) -> Option<OwnedSemaphorePermit> {
        let limit = self.settings.max_conns_per_host;
        if limit == 0 {
            return None;
        }
        let semaphore = self
            .host_slots
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(host.to_owned())
            .or_insert_with(|| Arc::new(Semaphore::new(limit)))
            .clone();
        // The semaphore is never closed, so acquiring only waits.
        semaphore.acquire_owned().await.ok()
    }
}

/// A failed TLS handshake as the request's error, with the rustls or I/O error as its cause.
fn handshake_failed(error: tls::HandshakeError) -> RequestError {
    let failure = RequestError::new(classify::tls_failure(&error), error.to_string());
    match error {
        tls::HandshakeError::Tls(cause) => failure.with_source(cause),
        tls::HandshakeError::Io(cause) => failure.with_source(cause),
        tls::HandshakeError::Timeout(_) => failure,
    }
}
