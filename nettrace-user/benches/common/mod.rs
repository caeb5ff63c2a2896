//! Shared setup of the client benchmarks (`client.rs`, `summary.rs`): one loopback fixture
//! server (plain HTTP/1.1, keep-alive), the plain hyper-util baseline client, the traced
//! [`HttpClient`] with every userspace option on, and the timed request loops.
//!
//! Both clients run on the same 2-worker tokio runtime as the server, send the same bytes
//! (the traced client adds `accept-encoding: gzip`, so the plain one sends it too) and drain
//! response bodies frame by frame. Timed loops run inside a spawned task, so the client is
//! polled by a runtime worker as in an application, not by the bench thread.
//!
//! ```ignore
//! let rt = common::runtime();
//! let server = rt.block_on(common::server());
//! let url = common::url(&server, "/bytes/1024");
//! let elapsed = rt.block_on(common::sample(Kind::Traced, Conns::KeepAlive, url, 1000));
//! ```
// Each bench target uses part of this module.
#![allow(dead_code)]

use std::{
    future::Future,
    net::{Ipv4Addr, SocketAddr},
    sync::OnceLock,
    time::{Duration, Instant},
};

use bytes::Bytes;
use http::{HeaderValue, Request, Uri, header};
use http_body::Body;
use http_body_util::{BodyExt, Empty};
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::{TokioExecutor, TokioTimer},
};
use nettrace::{
    client::{
        HttpClient, HttpClientConfig, HttpReqTraceOptions, KernelMode, RequestBody, TraceOptions,
    },
    limits::TraceLimits,
    model::HdrFieldsOpt,
    tls::TlsSettings,
};
use nettrace_tests::cpu::{self, Process};
use nettrace_tests::fixtures::{
    http::{HttpOptions, HttpServer, HttpVersions},
    net,
    tls::TestPki,
};

/// The keep-alive GET body size.
pub(crate) const SMALL: usize = 1024;
/// The download size.
pub(crate) const LARGE: usize = 1 << 20;
/// The traced client's records are dropped (`clear_trace`, untimed) every this many requests.
pub(crate) const CLEAR_EVERY: u64 = 1000;

/// Which client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// hyper-util legacy `Client` over `HttpConnector` (TCP_NODELAY), no tracing.
    Plain = 0,
    /// nettrace `HttpClient`: `sock_trace`, `dns_query_trace`, `http_req_trace` with values;
    /// kernel (eBPF) tracing off.
    Traced = 1,
    /// As `Traced` but without `sock_trace` (for the socket-op recording cost).
    TracedNoSockOps = 2,
    /// As `Traced` with kernel (eBPF) tracing required (root only).
    TracedKernel = 3,
}

impl Kind {
    /// The bench ID.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Plain => "plain",
            Self::Traced => "traced",
            Self::TracedNoSockOps => "traced_no_sock_trace",
            Self::TracedKernel => "traced_kernel",
        }
    }
}

/// How connections are used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Conns {
    /// Pooled connection, reused for every request.
    KeepAlive,
    /// `Connection: close` and no idle pool: a new TCP connection per request.
    NewPerRequest,
}

/// The runtime of every benchmark: multi-thread, 2 workers (the machine has 2 vCPUs).
pub(crate) fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// The fixture server: plain HTTP/1.1 with keep-alive on 127.0.0.1 (must run in a runtime).
pub(crate) async fn server() -> HttpServer {
    HttpServer::start(HttpOptions {
        versions: HttpVersions::Http1Only,
        keep_alive: true,
        tls: None,
        bind: net::V4,
    })
    .await
    .expect("fixture server")
}

/// `http://127.0.0.1:<port><path>`.
pub(crate) fn url(server: &HttpServer, path: &str) -> Uri {
    server.url(path).parse().expect("fixture URL")
}

/// A client of either kind.
#[derive(Clone)]
pub(crate) enum AnyClient {
    /// The baseline.
    Plain(Box<Client<HttpConnector, Empty<Bytes>>>, Conns),
    /// The traced client.
    Traced(HttpClient),
}

impl AnyClient {
    /// A new client (no connection yet).
    pub(crate) fn new(kind: Kind, conns: Conns) -> Self {
        match kind {
            Kind::Plain => Self::plain(conns),
            Kind::Traced => Self::traced(conns, true, KernelMode::Off),
            Kind::TracedNoSockOps => Self::traced(conns, false, KernelMode::Off),
            Kind::TracedKernel => Self::traced(conns, true, KernelMode::Require),
        }
    }

    fn plain(conns: Conns) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let mut builder = Client::builder(TokioExecutor::new());
        builder
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .pool_idle_timeout(None)
            // The traced client's settings: Go's default of 2 idle per host, or none.
            .pool_max_idle_per_host(match conns {
                Conns::KeepAlive => 2,
                Conns::NewPerRequest => 0,
            });
        Self::Plain(Box::new(builder.build(connector)), conns)
    }

    fn traced(conns: Conns, sock_trace: bool, kernel: KernelMode) -> Self {
        let config = HttpClientConfig {
            disable_keep_alive: conns == Conns::NewPerRequest,
            // Never queried (the URL is an IP literal); set so /etc/resolv.conf is not needed.
            nameservers: vec![SocketAddr::from((Ipv4Addr::LOCALHOST, 53))],
            // No system trust store to load per client: the benchmarks are plain HTTP.
            tls: TlsSettings {
                roots: Some(test_roots()),
                ..Default::default()
            },
            ..Default::default()
        };
        let options = TraceOptions {
            sock_trace,
            dns_query_trace: true,
            http_req_trace: Some(HttpReqTraceOptions {
                header_fields: HdrFieldsOpt::WithValues,
                ..Default::default()
            }),
            // `Off` for userspace tracing only (no eBPF programs, even when run as root).
            kernel,
            // Record every socket op and request, however many: the default limits (1,000 ops
            // per connection, 10,000 requests) would stop recording part-way through a round
            // and measure the cheaper path of dropping instead.
            limits: TraceLimits::UNLIMITED,
            ..Default::default()
        };
        Self::Traced(HttpClient::new(config, options).expect("traced client"))
    }

    /// `GET url`, reads the whole body; returns its length. Panics on any error.
    pub(crate) async fn get(&self, url: &Uri) -> usize {
        match self {
            Self::Plain(client, conns) => {
                let mut request = Request::get(url.clone())
                    .header(header::ACCEPT_ENCODING, HeaderValue::from_static("gzip"));
                if *conns == Conns::NewPerRequest {
                    request = request.header(header::CONNECTION, HeaderValue::from_static("close"));
                }
                let request = request.body(Empty::new()).expect("request");
                let response = client.request(request).await.expect("plain GET");
                drain(response.into_body()).await
            }
            Self::Traced(client) => {
                // `request` with the parsed URI, as the plain client gets it (`get(&str)`
                // would add a URL parse per request).
                let request = Request::get(url.clone())
                    .body(RequestBody::empty())
                    .expect("request");
                let response = client.request(request).await.expect("traced GET");
                drain(response.into_body()).await
            }
        }
    }

    /// Drops the trace so far (traced client; untimed by the callers).
    pub(crate) fn clear(&self) {
        if let Self::Traced(client) = self {
            client.clear_trace().expect("clear_trace");
        }
    }

    /// The traced client, if it is one.
    pub(crate) fn traced_client(&self) -> Option<&HttpClient> {
        match self {
            Self::Traced(client) => Some(client),
            Self::Plain(..) => None,
        }
    }
}

/// The fixtures' test CA, generated once (rustls refuses an empty root store).
fn test_roots() -> rustls::RootCertStore {
    static ROOTS: OnceLock<rustls::RootCertStore> = OnceLock::new();
    ROOTS
        .get_or_init(|| TestPki::new().expect("test PKI").root_store())
        .clone()
}

/// Reads a body to its end, frame by frame; returns the data length.
pub(crate) async fn drain<B>(mut body: B) -> usize
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: std::fmt::Debug,
{
    let mut len = 0;
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame.expect("body frame").into_data() {
            len += data.len();
        }
    }
    len
}

/// Wall-clock and process CPU time (client, server and runtime threads together).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Timing {
    /// Elapsed wall-clock time.
    pub(crate) wall: Duration,
    /// CPU time of the whole process.
    pub(crate) cpu: Duration,
    /// Of it, the kernel hub's ring-reading thread (`nettrace-kernel`), when there is one.
    pub(crate) hub_cpu: Duration,
}

impl std::ops::AddAssign for Timing {
    fn add_assign(&mut self, other: Self) {
        self.wall += other.wall;
        self.cpu += other.cpu;
        self.hub_cpu += other.hub_cpu;
    }
}

/// The process's CPU time so far (`CLOCK_PROCESS_CPUTIME_ID`).
pub(crate) fn process_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; the clock ID is a constant Linux supports.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_PROCESS_CPUTIME_ID)");
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// The name of the kernel hub's thread.
const HUB_THREAD: &str = "nettrace-kernel";

/// `iters` sequential GETs of `url`; returns the time spent in them. Every [`CLEAR_EVERY`]
/// requests the trace is cleared outside the timed sections.
pub(crate) async fn timed(client: &AnyClient, url: &Uri, iters: u64) -> Timing {
    let mut total = Timing::default();
    let mut left = iters;
    while left > 0 {
        let chunk = left.min(CLEAR_EVERY);
        client.clear();
        let hub_cpu = cpu::named_threads(Process::This, HUB_THREAD);
        let cpu = process_cpu();
        let start = Instant::now();
        for _ in 0..chunk {
            std::hint::black_box(client.get(url).await);
        }
        total += Timing {
            wall: start.elapsed(),
            cpu: process_cpu() - cpu,
            hub_cpu: cpu::named_threads(Process::This, HUB_THREAD).saturating_sub(hub_cpu),
        };
        left -= chunk;
    }
    total
}

/// One measurement: a fresh client, one untimed warm-up GET (so a keep-alive sample does not
/// time its connect), then `iters` timed GETs. Runs on a runtime worker.
pub(crate) async fn sample(kind: Kind, conns: Conns, url: Uri, iters: u64) -> Timing {
    on_worker(async move {
        let client = AnyClient::new(kind, conns);
        client.get(&url).await;
        timed(&client, &url, iters).await
    })
    .await
}

/// Runs `task` on a runtime worker and waits for it.
pub(crate) async fn on_worker<F>(task: F) -> F::Output
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    tokio::spawn(task).await.expect("benchmark task")
}
