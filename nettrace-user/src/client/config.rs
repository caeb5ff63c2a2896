//! [`HttpClientConfig`]: how the traced client behaves (Go's `HTTPClientCfg`), and
//! [`TraceOptions`]: what it records beyond the always-on records (Go's `TraceOpt`s).
use std::{
    fmt,
    net::{IpAddr, SocketAddr},
    sync::Arc,
    time::Duration,
};

use crate::{capture::PacketCaptureOptions, kernel::KernelConfig, tls::TlsSettings};

pub use crate::limits::TraceLimits;

pub use crate::{
    dns::NameserverSelector,
    headers::{HeaderFilter, HttpReqTraceOptions},
};

/// Chooses the proxy for a request: `Ok(Some(url))` proxies through `url` (`http://` or
/// `https://`), `Ok(None)` goes direct, `Err(reason)` fails the request. Go's `Proxy`.
pub type ProxySelector =
    Arc<dyn Fn(&http::request::Parts) -> Result<Option<http::Uri>, String> + Send + Sync>;

/// How the client behaves. Every field has Go's meaning; `Default` is Go's zero value.
#[derive(Clone, Default)]
pub struct HttpClientConfig {
    /// Offer HTTP/2 first in ALPN (`h2`, then `http/1.1`); otherwise only `http/1.1`.
    pub prefer_http2: bool,
    /// Source address for every TCP connection and every DNS query (not bound for loopback
    /// nameservers, so a local stub resolver keeps working).
    pub source_ip: Option<IpAddr>,
    /// Called for each nameserver before it is queried; see [`NameserverSelector`].
    pub skip_nameserver: Option<NameserverSelector>,
    /// Nameservers to use instead of /etc/resolv.conf's, every one in order.
    pub nameservers: Vec<SocketAddr>,
    /// The proxy for each request; see [`ProxySelector`].
    pub proxy: Option<ProxySelector>,
    /// TLS roots and verification.
    pub tls: TlsSettings,
    /// Time limit for a whole request: connecting, redirects and reading the response body.
    pub req_timeout: Option<Duration>,
    /// Time limit for a TCP handshake.
    pub tcp_handshake_timeout: Option<Duration>,
    /// TCP keep-alive probe interval. `None` probes every 15 seconds (Go's default for zero);
    /// `Some(Duration::ZERO)` turns probes off (Go's negative value).
    pub tcp_keep_alive_interval: Option<Duration>,
    /// Time limit for a TLS handshake.
    pub tls_handshake_timeout: Option<Duration>,
    /// One request per connection (sends `Connection: close`, keeps no idle connections).
    pub disable_keep_alive: bool,
    /// Do not ask for gzip (and so do not decode it).
    pub disable_compression: bool,
    /// Idle (keep-alive) connections kept across all hosts; 0 means no limit. Over the limit,
    /// the connection idle longest is closed. HTTP/2 connections are not counted.
    pub max_idle_conns: usize,
    /// Idle connections kept per host; 0 means Go's default of 2.
    pub max_idle_conns_per_host: usize,
    /// Connections per host (dialing, active and idle); 0 means no limit. Dials wait for a slot.
    pub max_conns_per_host: usize,
    /// How long an idle connection is kept; `None` means no limit.
    pub idle_conn_timeout: Option<Duration>,
    /// Time limit for the response head, counted from when the request could be written: at
    /// once on a pooled connection, when connecting ends on a new one.
    pub response_header_timeout: Option<Duration>,
    /// With `Expect: 100-continue`, how long to wait for the server's `100 Continue` before
    /// sending the body anyway.
    pub expect_continue_timeout: Option<Duration>,
}

impl fmt::Debug for HttpClientConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpClientConfig")
            .field("prefer_http2", &self.prefer_http2)
            .field("source_ip", &self.source_ip)
            .field("skip_nameserver", &self.skip_nameserver.is_some())
            .field("nameservers", &self.nameservers)
            .field("proxy", &self.proxy.is_some())
            .field("req_timeout", &self.req_timeout)
            .field("tcp_handshake_timeout", &self.tcp_handshake_timeout)
            .field("tls_handshake_timeout", &self.tls_handshake_timeout)
            .field("disable_keep_alive", &self.disable_keep_alive)
            .field("disable_compression", &self.disable_compression)
            .finish_non_exhaustive()
    }
}

/// Whether the kernel side (eBPF) traces the client's sockets.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum KernelMode {
    /// When the process may load eBPF programs (root, or CAP_BPF + CAP_NET_ADMIN), or else
    /// through the loader daemon (`nettrace-loader serve`) when its socket exists (see
    /// [`TraceOptions::kernel_daemon`]); otherwise the trace says why not
    /// (`kernelData.reason`) and everything else works as usual.
    #[default]
    Auto,
    /// Never.
    Off,
    /// Always, loaded here or through the daemon: building the client fails when neither
    /// works.
    Require,
}

/// What is recorded beyond dials, connections, TLS tunnels and requests (always on).
#[derive(Clone, Debug, Default)]
pub struct TraceOptions {
    /// Log through the `tracing` crate (Go's `WithLogging`); route it with any subscriber.
    pub logging: bool,
    /// Record every socket read and write (Go's `WithSockTrace`).
    pub sock_trace: bool,
    /// Record every DNS query and reply (Go's `WithDNSQueryTrace`).
    pub dns_query_trace: bool,
    /// Record HTTP requests and responses, with this header capture (Go's
    /// `WithHTTPReqTrace`). `None` records no requests, as in Go; TLS tunnels are recorded
    /// either way (Go loses them without this option).
    pub http_req_trace: Option<HttpReqTraceOptions>,
    /// Kernel facts (TCP states, retransmits, RTT) from the eBPF programs.
    pub kernel: KernelMode,
    /// How the eBPF programs are loaded (ring buffer size) when this client is the first of
    /// the process to load them.
    pub kernel_config: KernelConfig,
    /// The loader daemon's socket, used for kernel facts when this process may not load the
    /// programs itself. `None`: `$NETTRACE_DAEMON_SOCKET`, else
    /// [`DEFAULT_SOCKET_PATH`](crate::daemon::DEFAULT_SOCKET_PATH) (see
    /// [`socket_path`](crate::daemon::socket_path)). The daemon gives kernel facts and the
    /// packet capture of the client's own flows (see [`crate::daemon`]).
    pub kernel_daemon: Option<std::path::PathBuf>,
    /// Capture the packets of traced connections (Go's `WithPacketCapture`). Needs the
    /// privilege to load eBPF programs, or the loader daemon ([`Self::kernel_daemon`]; then
    /// without `include_icmp`/`include_arp`, and without the NAT side of a flow): with
    /// neither, building the client fails.
    pub packet_capture: Option<PacketCaptureOptions>,
    /// Attach the netfilter conntrack entry to every TCP and UDP connection (Go's
    /// `WithConntrack`). Needs CAP_NET_ADMIN: without it, building the client fails.
    pub conntrack: bool,
    /// The most records of each kind one trace keeps; what a limit leaves out is counted in
    /// the trace (see [`TraceLimits`]).
    pub limits: TraceLimits,
    /// Streams each request's trace once it is complete, through a channel holding up to
    /// this many traces (see [`HttpClient::completed_traces`](super::HttpClient::completed_traces));
    /// `None`: no streaming. The tracer then forgets what only that request used, so that
    /// a client that runs forever keeps a bounded trace.
    pub completed_traces: Option<usize>,
}
