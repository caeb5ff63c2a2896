//! Errors of the traced client: building it ([`ClientError`]), and sending a request
//! ([`RequestError`], whose class is a [`RequestErrorKind`]).
//!
//! A failed request says what went wrong as a kind to match on, which request hop of the trace
//! it is ([`RequestError::trace_id`], the `HTTPReqTrace` that records it as `reqError`), and the
//! URL of that hop. Its text is the `reqError`; its `source()` is the typed cause where there is
//! one (an `std::io::Error`, a `rustls::Error`, a [`crate::dns::ResolveError`], hyper's error).
//!
//! See [`RequestError`] for an example of matching on the kind.
use std::{fmt, sync::Arc, time::Duration};

use http::Uri;

use crate::model::TraceId;

/// Why the client could not be built or used. New kinds of failure may be added.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The TLS configuration could not be built.
    #[error("TLS configuration")]
    Tls(#[from] crate::tls::TlsConfigError),
    /// The resolver configuration (/etc/resolv.conf, /etc/hosts) could not be read.
    #[error("resolver configuration")]
    Resolver(#[source] crate::dns::ConfigError),
    /// Kernel tracing was required but could not start.
    #[error("kernel tracing was required but is unavailable")]
    Kernel(#[source] crate::kernel::KernelError),
    /// Packet capture was asked for but cannot start: it needs the eBPF programs (root, or
    /// CAP_BPF + CAP_NET_ADMIN) and existing interfaces.
    #[error("packet capture unavailable: {0}")]
    Capture(String),
    /// Conntrack was asked for (`TraceOptions::conntrack`) but ctnetlink cannot be used
    /// (typically: no CAP_NET_ADMIN).
    #[error("conntrack was asked for but is unavailable")]
    Conntrack(#[source] crate::conntrack::ConntrackError),
    /// The client was closed.
    #[error("the client is closed")]
    Closed,
}

/// A cause kept as `source()`: shared, so that an error handed through the exchange's error
/// (which only lends it) can be taken out as a copy.
type Cause = Arc<dyn std::error::Error + Send + Sync>;

/// Why a request failed.
///
/// - [`kind`](Self::kind): the class of failure, to match on.
/// - [`trace_id`](Self::trace_id): the `HTTPReqTrace` of the request hop that failed (with
///   redirects, each hop has its own; this is the one whose `reqError` holds this error).
/// - [`url`](Self::url): that hop's URL.
/// - `Display`: exactly what the trace records as `reqError`.
/// - `source()`: the typed cause, when there is one.
///
/// Boxed inside: a `Result<Response, RequestError>` is no larger than the response.
///
/// ```no_run
/// # async fn demo(client: nettrace::client::HttpClient) {
/// use nettrace::client::{DnsFailure, RequestErrorKind};
///
/// match client.get("https://example.test/").await {
///     Ok(response) => println!("{}", response.status()),
///     Err(error) => {
///         match error.kind() {
///             RequestErrorKind::NameResolution(DnsFailure::NoSuchHost) => println!("no host"),
///             RequestErrorKind::ConnectRefused => println!("nothing listens there"),
///             RequestErrorKind::TlsCertificate(why) => println!("bad certificate: {why:?}"),
///             RequestErrorKind::Timeout { limit, after } => println!("{limit:?}: {after:?}"),
///             _ => println!("failed: {error}"),
///         }
///         // The request's record in the trace, when HTTP requests are traced.
///         if let Some(id) = error.trace_id() {
///             println!("see HTTPReqTrace {id}");
///         }
///     }
/// }
/// # }
/// ```
#[derive(Clone)]
pub struct RequestError(Box<Inner>);

#[derive(Clone)]
struct Inner {
    kind: RequestErrorKind,
    message: String,
    trace_id: Option<TraceId>,
    url: Option<Uri>,
    source: Option<Cause>,
}

/// The class of a [`RequestError`].
///
/// A failure while connecting to a proxy (its name, TCP or TLS) has the class of that failure;
/// [`Proxy`](Self::Proxy) is for what only proxies do (selection and `CONNECT`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RequestErrorKind {
    /// The host name could not be resolved.
    NameResolution(DnsFailure),
    /// The server refused the TCP connection (nothing listens on the port).
    ConnectRefused,
    /// The TCP handshake did not finish: the kernel gave up, or `tcp_handshake_timeout`
    /// passed.
    ConnectTimedOut,
    /// There is no route to the host or its network.
    ConnectUnreachable,
    /// Connecting failed otherwise (socket setup, address unavailable, not permitted, ...).
    Connect,
    /// The server's certificate was rejected.
    TlsCertificate(CertificateFailure),
    /// The TLS handshake failed for a reason other than the certificate (an alert from the
    /// server, no common protocol version or cipher suite, the connection closed or reset).
    TlsHandshake,
    /// The proxy could not be used.
    Proxy(ProxyFailure),
    /// A time limit of the configuration passed.
    Timeout {
        /// Which limit.
        limit: TimeoutLimit,
        /// Its value.
        after: Duration,
    },
    /// The request's body failed while it was sent (its stream returned an error, or it was
    /// aborted).
    Body,
    /// The HTTP exchange failed once connected: the connection closed or broke before the
    /// response head came, or the response was malformed.
    Http,
    /// The request cannot be sent as it is: a bad URL, an unsupported scheme, no host, a port
    /// out of range (`:99999`), a bad redirect `Location`.
    InvalidRequest,
    /// The redirects did not end within the limit (10 requests in all, as Go).
    TooManyRedirects(usize),
    /// Packet capture was asked for but is unavailable. Requests do not fail this way today:
    /// the client reports it when it is built ([`ClientError::Capture`]).
    CaptureUnavailable,
    /// The client was closed.
    Closed,
}

/// Why a host name could not be resolved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DnsFailure {
    /// The name does not exist (NXDOMAIN).
    NoSuchHost,
    /// The name exists but has no address.
    NoAddresses,
    /// A nameserver answered with an error (SERVFAIL, REFUSED, NOTIMP, ...).
    ServerFailure,
    /// A nameserver did not answer in time.
    Timeout,
    /// No nameserver could be asked (none configured, or all skipped).
    NoNameservers,
    /// The name cannot be put into a query.
    InvalidName,
    /// The nameservers could not be reached or answered nonsense.
    Other,
}

/// Why a server certificate was rejected (rustls's `CertificateError`, by category).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CertificateFailure {
    /// It has expired.
    Expired,
    /// It is not valid yet.
    NotValidYet,
    /// It is not issued by a trusted root.
    UnknownIssuer,
    /// It is not valid for the host name.
    WrongHost,
    /// It was revoked.
    Revoked,
    /// A signature in the chain is wrong or uses an unsupported algorithm.
    BadSignature,
    /// It is not meant for a TLS server.
    InvalidPurpose,
    /// Another problem (bad encoding, unknown critical extension, a custom verifier's
    /// verdict, ...).
    Other,
}

/// Why a proxy could not be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProxyFailure {
    /// The proxy callback failed, or named a proxy that cannot be used (unsupported scheme,
    /// no host).
    Selection,
    /// The proxy answered `CONNECT` with this status rather than 2xx.
    TunnelRefused {
        /// The status code.
        status: u16,
    },
    /// The `CONNECT` exchange failed (I/O, or an unreadable answer).
    TunnelFailed,
}

/// A time limit of [`super::HttpClientConfig`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TimeoutLimit {
    /// `req_timeout`, for the whole request (Go's `ReqTimeout`).
    Request,
    /// `response_header_timeout` (Go's `ResponseHeaderTimeout`).
    ResponseHeader,
    /// `tls_handshake_timeout` (Go's `TLSHandshakeTimeout`).
    TlsHandshake,
}

impl TimeoutLimit {
    /// The limit's Go name, as the error text gives it.
    fn go_name(self) -> &'static str {
        match self {
            Self::Request => "ReqTimeout",
            Self::ResponseHeader => "ResponseHeaderTimeout",
            Self::TlsHandshake => "TLSHandshakeTimeout",
        }
    }
}

impl RequestError {
    /// The class of failure.
    pub fn kind(&self) -> RequestErrorKind {
        self.0.kind
    }

    /// The ID of the `HTTPReqTrace` that records this error as its `reqError`: the request hop
    /// that failed. `None` when HTTP requests are not traced (`TraceOptions::http_req_trace`)
    /// or no request was sent (the URL did not parse). For a redirect whose `Location` cannot
    /// be followed (no `http`/`https` URL, or malformed), the record of that next hop: it
    /// holds the `Location` as its `reqURL` and the error, and was never sent.
    pub fn trace_id(&self) -> Option<&TraceId> {
        self.0.trace_id.as_ref()
    }

    /// The URL of the hop that failed; `None` when the URL given did not parse (also a
    /// redirect `Location` that is no `http`/`https` URL: the hop's record has its text).
    pub fn url(&self) -> Option<&Uri> {
        self.0.url.as_ref()
    }

    /// An error of `kind`, reading `message`.
    pub(crate) fn new(kind: RequestErrorKind, message: impl Into<String>) -> Self {
        Self(Box::new(Inner {
            kind,
            message: message.into(),
            trace_id: None,
            url: None,
            source: None,
        }))
    }

    /// With `source` as its cause.
    pub(crate) fn with_source(
        mut self,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        self.0.source = Some(Arc::from(source.into()));
        self
    }

    /// The same error reading `message` instead.
    pub(crate) fn with_message(mut self, message: String) -> Self {
        self.0.message = message;
        self
    }

    /// An invalid request: "invalid request: {reason}".
    pub(crate) fn invalid(reason: impl fmt::Display) -> Self {
        Self::new(
            RequestErrorKind::InvalidRequest,
            format!("invalid request: {reason}"),
        )
    }

    /// The proxy callback failed with `reason`.
    pub(crate) fn proxy_selection(reason: &str) -> Self {
        Self::new(
            RequestErrorKind::Proxy(ProxyFailure::Selection),
            format!("proxy selection failed: {reason}"),
        )
    }

    /// The request or response-header limit passed.
    pub(crate) fn timeout(limit: TimeoutLimit, after: Duration) -> Self {
        Self::new(
            RequestErrorKind::Timeout { limit, after },
            format!("{} timed out after {after:?}", limit.go_name()),
        )
    }

    /// `requests` were sent and the last answer was a redirect too.
    pub(crate) fn too_many_redirects(requests: usize) -> Self {
        Self::new(
            RequestErrorKind::TooManyRedirects(requests),
            format!("stopped after {requests} redirects"),
        )
    }

    /// The client was closed.
    pub(crate) fn closed() -> Self {
        Self::new(RequestErrorKind::Closed, "the client is closed")
    }

    /// Names the hop's `HTTPReqTrace`.
    pub(crate) fn at_hop(mut self, trace_id: TraceId) -> Self {
        self.0.trace_id = Some(trace_id);
        self
    }

    /// With the hop's URL, unless it has one.
    pub(crate) fn for_url(mut self, url: &Uri) -> Self {
        if self.0.url.is_none() {
            self.0.url = Some(url.clone());
        }
        self
    }
}

impl fmt::Display for RequestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.message)
    }
}

impl fmt::Debug for RequestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequestError")
            .field("kind", &self.0.kind)
            .field("message", &self.0.message)
            .field("trace_id", &self.0.trace_id)
            .field("url", &self.0.url)
            .field("source", &self.0.source)
            .finish()
    }
}

impl std::error::Error for RequestError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0
            .source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

#[cfg(test)]
mod tests {
    use std::error::Error as _;

    use super::*;

    #[test]
    fn texts_are_the_recorded_ones() {
        let cases = [
            (
                RequestError::invalid("URL /x is not absolute"),
                "invalid request: URL /x is not absolute",
            ),
            (
                RequestError::proxy_selection("no proxy"),
                "proxy selection failed: no proxy",
            ),
            (
                RequestError::timeout(TimeoutLimit::Request, Duration::from_millis(300)),
                "ReqTimeout timed out after 300ms",
            ),
            (
                RequestError::timeout(TimeoutLimit::ResponseHeader, Duration::from_secs(1)),
                "ResponseHeaderTimeout timed out after 1s",
            ),
            (
                RequestError::too_many_redirects(10),
                "stopped after 10 redirects",
            ),
            (RequestError::closed(), "the client is closed"),
        ];
        for (error, text) in cases {
            assert_eq!(error.to_string(), text);
        }
    }

    #[test]
    fn the_source_is_the_cause_itself() {
        let io = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        let error = RequestError::new(RequestErrorKind::ConnectRefused, "dial tcp: refused")
            .with_source(io);
        let source = error.source().unwrap_or_else(|| panic!("no source"));
        let io = source
            .downcast_ref::<std::io::Error>()
            .unwrap_or_else(|| panic!("source {source:?} is not the io::Error"));
        assert_eq!(io.kind(), std::io::ErrorKind::ConnectionRefused);
        // A copy shares the cause.
        assert!(error.clone().source().is_some());
    }

    #[test]
    fn the_first_url_stays() {
        let first: Uri = "http://a.test/".parse().unwrap_or_else(|e| panic!("{e}"));
        let second: Uri = "http://b.test/".parse().unwrap_or_else(|e| panic!("{e}"));
        let error = RequestError::closed().for_url(&first).for_url(&second);
        assert_eq!(error.url(), Some(&first));
        assert_eq!(error.trace_id(), None);
        let id = TraceId::new("hop");
        assert_eq!(error.at_hop(id.clone()).trace_id(), Some(&id));
    }

    #[test]
    fn the_error_goes_anywhere_an_error_may() {
        fn boxable<E: std::error::Error + Send + Sync + Clone + 'static>() {}
        boxable::<RequestError>();
    }

    #[test]
    fn the_error_is_one_pointer() {
        assert_eq!(
            std::mem::size_of::<RequestError>(),
            std::mem::size_of::<usize>()
        );
    }
}
