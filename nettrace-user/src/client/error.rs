//! Errors of the traced client: building it, and sending a request.
use std::time::Duration;

/// Why the client could not be built or used.
#[derive(Debug, thiserror::Error)]
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

/// Why a request failed. Its text is what the trace records as `reqError`.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    /// The request cannot be sent as it is (bad URL, unsupported scheme, ...).
    #[error("invalid request: {0}")]
    Invalid(String),
    /// Connecting, sending the request or receiving the response head failed.
    #[error("{0}")]
    Transport(String),
    /// The proxy callback refused the request.
    #[error("proxy selection failed: {0}")]
    Proxy(String),
    /// A time limit passed: which one, and how long it was.
    #[error("{what} timed out after {limit:?}")]
    Timeout {
        /// The limit's name (`ReqTimeout`, `ResponseHeaderTimeout`).
        what: &'static str,
        /// Its value.
        limit: Duration,
    },
    /// More than 10 redirects.
    #[error("stopped after {0} redirects")]
    TooManyRedirects(usize),
    /// Packet capture was asked for but cannot start: it needs the eBPF programs (root, or
    /// CAP_BPF + CAP_NET_ADMIN) and existing interfaces.
    #[error("packet capture unavailable: {0}")]
    Capture(String),
    /// The client was closed.
    #[error("the client is closed")]
    Closed,
}
