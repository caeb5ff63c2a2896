//! [`OtlpExporter`]: sends the span trees of traces to an OpenTelemetry collector over OTLP
//! (HTTP/protobuf or gRPC, [`Protocol`]).
//!
//! Export never blocks the traced requests: [`OtlpExporter::export`] only queues a copy of
//! the trace (a bounded queue: when it is full the trace is dropped and counted). Everything
//! else happens on the exporter's own thread, `nettrace-otlp`: it builds the span trees,
//! writes them as OTLP protobuf directly ([`crate::encode`], no message objects), and sends
//! them in batches of up to [`OtlpConfig::max_batch_spans`] spans, or whatever is pending
//! 200 ms after the oldest, each batch retried with backoff (3 retries, 100 to 400 ms).
//! Between bursts the thread naps for 5 ms instead of waiting on the queue, so that a busy
//! client wakes it a few hundred times a second rather than once per trace.
//! [`OtlpExporter::finish`] says how many spans reached the collector, and fails with the
//! collector's address and the last error when any did not (the caller has written its JSON
//! by then).
use std::{
    fmt,
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicBool, AtomicU64, Ordering},
        mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TryRecvError, TrySendError},
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use bytes::Bytes;

use crate::{
    Protocol,
    encode::{Envelope, Ids, SpanBuffer},
    spans::request_trees,
    transport::Transport,
};
use nettrace_model::HttpTrace;

/// How long spans wait for more to fill their batch.
const BATCH_DELAY: Duration = Duration::from_millis(200);
/// How long the thread naps after a burst of work before it looks at the queue again.
const NAP: Duration = Duration::from_millis(5);

/// Where and as what traces are exported.
#[derive(Clone)]
pub struct OtlpConfig {
    /// The collector's OTLP endpoint: for HTTP e.g. `http://127.0.0.1:4318` (`/v1/traces`
    /// is added when the URL has no path), for gRPC e.g. `http://127.0.0.1:4317`.
    pub endpoint: String,
    /// The transport (default HTTP/protobuf).
    pub protocol: Protocol,
    /// `service.name` (default `nettrace`).
    pub service_name: String,
    /// `device.id`: the device or session the traces come from, when set.
    pub device_id: Option<String>,
    /// `host.name`; `None` reads the system's host name.
    pub host_name: Option<String>,
    /// More resource attributes (string values), e.g. from `OTEL_RESOURCE_ATTRIBUTES`
    /// ([`crate::parse_key_values`]); `service_name`, `host_name` and `device_id` win over
    /// entries of the same key (a `host.name` entry wins over the system's name when
    /// `host_name` is `None`), and `telemetry.sdk.*` is always nettrace's.
    pub resource_attributes: Vec<(String, String)>,
    /// Headers (gRPC: metadata) sent with every export request, e.g. a collector's API key
    /// from `OTEL_EXPORTER_OTLP_HEADERS`. Their values are never printed: `Debug` and errors
    /// show the names only.
    pub headers: Vec<(String, String)>,
    /// PEM certificates that an `https` collector's certificate must chain to, instead of
    /// the system's roots (the file `OTEL_EXPORTER_OTLP_CERTIFICATE` names).
    pub ca_pem: Option<Vec<u8>>,
    /// The most spans in one export request (default 512).
    pub max_batch_spans: usize,
    /// The most traces waiting for the exporter's thread (default 1,024); more are dropped
    /// and counted.
    pub max_pending_traces: usize,
    /// Time limit of one export request (default 5 s).
    pub timeout: Duration,
    /// How long [`OtlpExporter::finish`] and [`OtlpExporter::flush`] may take in all
    /// (default 10 s), plus what is left of a request already under way (at most `timeout`):
    /// what is not sent by then is counted as failed, so that a program never hangs at its
    /// end on a collector that does not answer.
    pub finish_timeout: Duration,
}

impl OtlpConfig {
    /// The defaults, sending to `endpoint`.
    pub fn new(endpoint: impl Into<String>) -> Self {
        Self {
            endpoint: endpoint.into(),
            protocol: Protocol::default(),
            service_name: "nettrace".to_owned(),
            device_id: None,
            host_name: None,
            resource_attributes: Vec::new(),
            headers: Vec::new(),
            ca_pem: None,
            max_batch_spans: 512,
            max_pending_traces: 1_024,
            timeout: Duration::from_secs(5),
            finish_timeout: Duration::from_secs(10),
        }
    }
}

impl OtlpConfig {
    /// The value of the resource attribute `key` among [`Self::resource_attributes`] (the
    /// first, when several have it).
    pub fn resource_attribute(&self, key: &str) -> Option<&str> {
        self.resource_attributes
            .iter()
            .find(|(name, _)| name == key)
            .map(|(_, value)| value.as_str())
    }
}

impl fmt::Debug for OtlpConfig {
    /// Everything but the headers' values, which may be credentials.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let header_names: Vec<&str> = self.headers.iter().map(|(name, _)| name.as_str()).collect();
        f.debug_struct("OtlpConfig")
            .field("endpoint", &self.endpoint)
            .field("protocol", &self.protocol)
            .field("service_name", &self.service_name)
            .field("device_id", &self.device_id)
            .field("host_name", &self.host_name)
            .field("resource_attributes", &self.resource_attributes)
            .field("header_names", &header_names)
            .field("ca_pem", &self.ca_pem.as_ref().map(Vec::len))
            .field("max_batch_spans", &self.max_batch_spans)
            .field("max_pending_traces", &self.max_pending_traces)
            .field("timeout", &self.timeout)
            .field("finish_timeout", &self.finish_timeout)
            .finish()
    }
}

/// Why export did not start or did not deliver everything.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The endpoint is no URL the protocol can use, or the exporter could not be built.
    #[error("OTLP exporter for {endpoint}: {reason}")]
    Setup {
        /// The endpoint given.
        endpoint: String,
        /// What was wrong.
        reason: String,
    },
    /// Spans did not reach the collector (unreachable, refused, or the queue was full).
    #[error(
        "OTLP export to {endpoint}: {report}{}",
        last_error.as_deref().map(|e| format!("; last error: {e}")).unwrap_or_default()
    )]
    Incomplete {
        /// The endpoint.
        endpoint: String,
        /// What was delivered.
        report: ExportReport,
        /// The last export error.
        last_error: Option<String>,
    },
}

/// What an exporter delivered.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExportReport {
    /// Spans built (one tree per HTTP request).
    pub spans: u64,
    /// Spans the collector accepted.
    pub exported: u64,
    /// Export requests that failed after their retries.
    pub failed_batches: u64,
    /// Traces dropped because the queue for the exporter's thread was full.
    pub dropped_traces: u64,
}

impl fmt::Display for ExportReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} of {} spans exported", self.exported, self.spans)?;
        if self.failed_batches > 0 {
            write!(f, ", {} batches failed", self.failed_batches)?;
        }
        if self.dropped_traces > 0 {
            write!(f, ", {} traces dropped (queue full)", self.dropped_traces)?;
        }
        Ok(())
    }
}

/// What the exporter and its thread count.
#[derive(Debug, Default)]
struct Stats {
    spans: AtomicU64,
    exported: AtomicU64,
    failed_batches: AtomicU64,
    dropped_traces: AtomicU64,
    last_error: Mutex<Option<String>>,
    /// Set when the exporter is dropped unfinished: the thread then stops without sending.
    discard: AtomicBool,
    /// While a flush or the finish runs: when the thread stops trying to send.
    give_up_at: Mutex<Option<Instant>>,
}

impl Stats {
    fn give_up_at(&self) -> Option<Instant> {
        *self
            .give_up_at
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn set_give_up_at(&self, at: Option<Instant>) {
        *self
            .give_up_at
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = at;
    }
}

/// What the exporter's thread is asked to do.
enum Job {
    /// Build, encode and queue the spans of a trace.
    Trace(Box<HttpTrace>),
    /// Send every span queued before, and say when done.
    Flush(SyncSender<()>),
}

/// Sends traces to a collector as span trees (see [`crate::spans`]).
pub struct OtlpExporter {
    /// To the exporter's thread; `None` once finished.
    jobs: Option<SyncSender<Job>>,
    thread: Option<JoinHandle<()>>,
    endpoint: String,
    stats: Arc<Stats>,
    finish_timeout: Duration,
}

impl fmt::Debug for OtlpExporter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OtlpExporter")
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

impl OtlpExporter {
    /// An exporter to `config.endpoint`. Connects nothing yet: an unreachable collector
    /// shows in [`Self::finish`].
    pub fn new(config: &OtlpConfig) -> Result<Self, ExportError> {
        let setup = |endpoint: &str, reason: String| ExportError::Setup {
            endpoint: endpoint.to_owned(),
            reason,
        };
        let endpoint = config
            .protocol
            .traces_url(&config.endpoint)
            .map_err(|reason| setup(&config.endpoint, reason))?;
        let envelope = Envelope::new(
            &config.service_name,
            &host_name_of(config),
            config.device_id.as_deref(),
            &config.resource_attributes,
        );
        let stats = Arc::new(Stats::default());
        let (jobs, queue) = mpsc::sync_channel::<Job>(config.max_pending_traces.max(1));
        let (ready, built) = mpsc::sync_channel(1);
        let batch = SpanBuffer::new(envelope);
        let worker = Worker {
            queue,
            stats: stats.clone(),
            batch_spans: config.max_batch_spans.max(1),
        };
        let (url, transport_config) = (endpoint.clone(), config.clone());
        let thread = std::thread::Builder::new()
            .name("nettrace-otlp".to_owned())
            .spawn(move || {
                // The clients are made (and later dropped) here, never on the caller's
                // thread, which may be inside an async runtime.
                match Transport::new(&transport_config, &url) {
                    Ok(transport) => {
                        let _ = ready.send(Ok(()));
                        worker.run(transport, batch);
                    }
                    Err(reason) => {
                        let _ = ready.send(Err(reason));
                    }
                }
            })
            .map_err(|e| setup(&endpoint, format!("exporter thread: {e}")))?;
        match built.recv() {
            Ok(Ok(())) => {}
            Ok(Err(reason)) => return Err(setup(&endpoint, reason)),
            Err(_) => return Err(setup(&endpoint, "exporter thread ended".to_owned())),
        }
        Ok(Self {
            jobs: Some(jobs),
            thread: Some(thread),
            endpoint,
            stats,
            finish_timeout: config.finish_timeout,
        })
    }

    /// The URL spans are sent to.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Queues `trace` for export (its span trees, one per HTTP request, are built on the
    /// exporter's thread); `false` when the queue was full and the trace was dropped
    /// (counted in [`ExportReport::dropped_traces`]). Never blocks.
    pub fn export(&self, trace: &HttpTrace) -> bool {
        self.jobs.is_some() && self.export_owned(trace.clone())
    }

    /// [`Self::export`] for a trace the caller has no further use for: it is handed over,
    /// not copied (a streamed trace, once written).
    pub fn export_owned(&self, trace: HttpTrace) -> bool {
        let Some(jobs) = &self.jobs else {
            return false;
        };
        match jobs.try_send(Job::Trace(Box::new(trace))) {
            Ok(()) => true,
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.stats.dropped_traces.fetch_add(1, Ordering::Relaxed);
                false
            }
        }
    }

    /// Sends what is queued and waits for it (blocking; call it outside async code or in
    /// `spawn_blocking`).
    pub fn flush(&self) -> ExportReport {
        if let Some(jobs) = &self.jobs {
            self.stats
                .set_give_up_at(Instant::now().checked_add(self.finish_timeout));
            let (done, finished) = mpsc::sync_channel(1);
            if jobs.send(Job::Flush(done)).is_ok() {
                let _ = finished.recv();
            }
            self.stats.set_give_up_at(None);
        }
        self.report()
    }

    /// What was delivered so far.
    pub fn report(&self) -> ExportReport {
        ExportReport {
            spans: self.stats.spans.load(Ordering::Relaxed),
            exported: self.stats.exported.load(Ordering::Relaxed),
            failed_batches: self.stats.failed_batches.load(Ordering::Relaxed),
            dropped_traces: self.stats.dropped_traces.load(Ordering::Relaxed),
        }
    }

    /// Sends what is queued, stops the exporter, and says whether every span was delivered
    /// (blocking, as [`Self::flush`]).
    pub fn finish(mut self) -> Result<ExportReport, ExportError> {
        self.stats
            .set_give_up_at(Instant::now().checked_add(self.finish_timeout));
        drop(self.jobs.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        let report = self.report();
        if report.exported == report.spans
            && report.failed_batches == 0
            && report.dropped_traces == 0
        {
            return Ok(report);
        }
        let last_error = self
            .stats
            .last_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        Err(ExportError::Incomplete {
            endpoint: std::mem::take(&mut self.endpoint),
            report,
            last_error,
        })
    }
}

impl Drop for OtlpExporter {
    /// Dropped unfinished: what is queued is discarded, and the thread ends on its own (it is
    /// not waited for, so dropping never blocks on a slow collector).
    fn drop(&mut self) {
        self.stats.discard.store(true, Ordering::Relaxed);
    }
}

/// The exporter's thread: builds and encodes the spans of queued traces, and sends them.
struct Worker {
    queue: Receiver<Job>,
    stats: Arc<Stats>,
    batch_spans: usize,
}

impl Worker {
    /// Takes jobs until every sender is gone, encoding into `batch`.
    fn run(self, mut transport: Transport, mut batch: SpanBuffer) {
        let mut ids = Ids::new();
        // When the oldest span of the batch was queued.
        let mut oldest: Option<Instant> = None;
        let mut busy = false;
        loop {
            if self.stats.discard.load(Ordering::Relaxed) {
                return;
            }
            let job = match self.queue.try_recv() {
                Ok(job) => Some(job),
                Err(TryRecvError::Disconnected) => break,
                Err(TryRecvError::Empty) if busy => {
                    // Senders do not wake a napping thread: jobs arriving now are taken
                    // together after the nap.
                    busy = false;
                    std::thread::sleep(NAP);
                    continue;
                }
                Err(TryRecvError::Empty) => match oldest {
                    Some(since) => {
                        match self
                            .queue
                            .recv_timeout(BATCH_DELAY.saturating_sub(since.elapsed()))
                        {
                            Ok(job) => Some(job),
                            Err(RecvTimeoutError::Timeout) => None,
                            Err(RecvTimeoutError::Disconnected) => break,
                        }
                    }
                    None => match self.queue.recv() {
                        Ok(job) => Some(job),
                        Err(_) => break,
                    },
                },
            };
            match job {
                Some(Job::Trace(trace)) => {
                    busy = true;
                    let mut spans = 0;
                    oldest.get_or_insert_with(Instant::now);
                    for tree in request_trees(&trace) {
                        spans += batch.append_tree(&mut ids, &tree);
                        // A trace of many requests (not streamed) fills several batches: the
                        // full ones go now, the rest (spans of this trace) waits for more.
                        if batch.len() >= self.batch_spans {
                            self.send_full(&mut transport, &mut batch);
                            oldest = (!batch.is_empty()).then(Instant::now);
                        }
                    }
                    self.stats.spans.fetch_add(spans, Ordering::Relaxed);
                    // Traces arriving steadily never leave the queue empty for the timed
                    // wait below: the batch's age is checked here too.
                    if oldest.is_some_and(|since| since.elapsed() >= BATCH_DELAY) {
                        self.send(&mut transport, &mut batch);
                        oldest = None;
                    } else if oldest.is_none() && !batch.is_empty() {
                        oldest = Some(Instant::now());
                    }
                }
                Some(Job::Flush(done)) => {
                    self.send(&mut transport, &mut batch);
                    oldest = None;
                    let _ = done.send(());
                }
                None => {
                    self.send(&mut transport, &mut batch);
                    oldest = None;
                }
            }
        }
        // Every sender is gone: what is batched goes out, unless the exporter was dropped.
        if !self.stats.discard.load(Ordering::Relaxed) {
            self.send(&mut transport, &mut batch);
        }
    }

    /// Sends the batch (emptied) in requests of at most `batch_spans` spans (a tree may be
    /// split: its spans carry their trace and parent IDs), counting what the collector
    /// accepted.
    fn send(&self, transport: &mut Transport, batch: &mut SpanBuffer) {
        while !batch.is_empty() {
            let (request, count) = batch.take_request(self.batch_spans);
            self.send_request(transport, request, count);
        }
    }

    /// Sends requests of `batch_spans` spans while the batch holds that many; fewer wait.
    fn send_full(&self, transport: &mut Transport, batch: &mut SpanBuffer) {
        while batch.len() >= self.batch_spans {
            let (request, count) = batch.take_request(self.batch_spans);
            self.send_request(transport, request, count);
        }
    }

    fn send_request(&self, transport: &mut Transport, request: Bytes, count: u64) {
        match transport.send(request, || self.stats.give_up_at()) {
            Ok(rejected) => {
                self.stats
                    .exported
                    .fetch_add(count.saturating_sub(rejected), Ordering::Relaxed);
                if rejected > 0 {
                    self.fail(format!("the collector rejected {rejected} spans"));
                }
            }
            Err(reason) => self.fail(reason),
        }
    }

    fn fail(&self, reason: String) {
        self.stats.failed_batches.fetch_add(1, Ordering::Relaxed);
        *self
            .stats
            .last_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(reason);
    }
}

/// The `host.name` of `config`'s resource: set, else a `host.name` resource attribute, else
/// the system's.
fn host_name_of(config: &OtlpConfig) -> String {
    config
        .host_name
        .clone()
        .or_else(|| config.resource_attribute("host.name").map(str::to_owned))
        .unwrap_or_else(host_name)
}

/// The system's host name (empty when unreadable).
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim().to_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{otlp_sink, tests_support::one_request};

    /// The trees of a trace that overflow a batch go out in full requests at once; the rest
    /// waits for more spans instead of going out short (only the last request is short).
    #[test]
    fn only_full_requests_go_before_the_end() {
        let trace = one_request();
        let sizes: Vec<usize> = crate::spans::request_trees(&trace)
            .iter()
            .map(|tree| tree.walk().len())
            .collect();
        let total: usize = sizes.iter().sum();
        // A batch size at which sending each tree's rest at once would take more requests.
        let batch = (2..total)
            .find(|b| sizes.iter().map(|s| s.div_ceil(*b)).sum::<usize>() > total.div_ceil(*b))
            .expect("the fixture has trees of several sizes");
        let (url, seen) = otlp_sink::recording();
        let mut config = OtlpConfig::new(url);
        config.max_batch_spans = batch;
        let exporter = OtlpExporter::new(&config).expect("exporter");
        exporter.export(&trace);
        let report = exporter.finish().expect("delivered");
        assert_eq!(report.spans, total as u64);
        let posts = seen
            .lock()
            .map(|lines| lines.iter().filter(|l| l.starts_with("post ")).count())
            .unwrap_or_default();
        assert_eq!(posts, total.div_ceil(batch), "{batch} spans per request");
    }

    #[test]
    fn headers_reach_the_collector_and_are_never_printed() {
        let (url, seen) = otlp_sink::recording();
        let mut config = OtlpConfig::new(url);
        config.headers = vec![
            ("Authorization".to_owned(), "Bearer s3cr3t-token".to_owned()),
            ("x-tenant".to_owned(), "t1".to_owned()),
        ];
        assert!(!format!("{config:?}").contains("s3cr3t"), "{config:?}");
        let exporter = OtlpExporter::new(&config).expect("exporter");
        assert!(!format!("{exporter:?}").contains("s3cr3t"));
        exporter.export(&one_request());
        let report = exporter.finish().expect("delivered");
        assert!(report.exported > 0, "{report}");
        let seen = seen.lock().map(|lines| lines.clone()).unwrap_or_default();
        assert!(
            seen.contains(&"authorization: bearer s3cr3t-token".to_owned()),
            "{seen:?}"
        );
        assert!(seen.contains(&"x-tenant: t1".to_owned()), "{seen:?}");
    }

    #[test]
    fn an_https_collector_is_reached_with_its_ca_and_refused_without() {
        let (url, ca_pem) = otlp_sink::start_tls();
        let mut config = OtlpConfig::new(url);
        config.ca_pem = Some(ca_pem.into_bytes());
        let exporter = OtlpExporter::new(&config).expect("exporter");
        exporter.export(&one_request());
        let report = exporter.finish().expect("delivered over TLS");
        assert!(report.exported > 0, "{report}");
        // The system's roots do not know the self-signed certificate.
        config.ca_pem = None;
        config.timeout = Duration::from_secs(2);
        let exporter = OtlpExporter::new(&config).expect("exporter");
        exporter.export(&one_request());
        let error = exporter.finish().expect_err("untrusted").to_string();
        assert!(error.contains("certificate"), "{error}");
    }

    #[test]
    fn the_host_name_is_set_then_a_resource_attribute_then_the_systems() {
        let mut config = OtlpConfig::new("http://127.0.0.1:9");
        assert_eq!(host_name_of(&config), host_name());
        config.resource_attributes = vec![("host.name".to_owned(), "from-env".to_owned())];
        assert_eq!(host_name_of(&config), "from-env");
        config.host_name = Some("set".to_owned());
        assert_eq!(host_name_of(&config), "set");
    }

    #[test]
    fn a_redirecting_collector_is_a_failed_export_and_gets_no_second_request() {
        let (elsewhere, seen) = otlp_sink::recording();
        let mut config = OtlpConfig::new(otlp_sink::redirecting(&elsewhere));
        config.headers = vec![("x-api-key".to_owned(), "s3cr3t".to_owned())];
        let exporter = OtlpExporter::new(&config).expect("exporter");
        exporter.export(&one_request());
        let error = exporter
            .finish()
            .expect_err("a redirect is no delivery")
            .to_string();
        assert!(error.contains("307"), "{error}");
        let seen = seen.lock().map(|lines| lines.len()).unwrap_or_default();
        assert_eq!(seen, 0, "the redirect was followed");
    }

    #[test]
    fn an_invalid_header_fails_the_setup_without_showing_its_value() {
        for protocol in [Protocol::HttpProtobuf, Protocol::Grpc] {
            let mut config = OtlpConfig::new("http://127.0.0.1:9");
            config.protocol = protocol;
            config.headers = vec![("api-key".to_owned(), "s3cr3t\nInjected: 1".to_owned())];
            let error = OtlpExporter::new(&config).expect_err("refused").to_string();
            assert!(
                error.contains("api-key") && !error.contains("s3cr3t"),
                "{error}"
            );
        }
    }

    #[test]
    fn an_unreachable_collector_is_a_clear_error() {
        // A port nobody listens on: bound, then closed.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("port");
        let mut config = OtlpConfig::new(format!("http://127.0.0.1:{port}"));
        config.timeout = Duration::from_secs(2);
        let exporter = OtlpExporter::new(&config).expect("exporter");
        let trace: HttpTrace = one_request();
        assert!(exporter.export(&trace), "queued");
        let error = exporter.finish().expect_err("unreachable");
        let text = error.to_string();
        assert!(
            text.contains(&format!("127.0.0.1:{port}/v1/traces")),
            "{text}"
        );
        assert!(text.contains("0 of"), "{text}");
    }

    #[test]
    fn a_full_queue_drops_traces_counts_them_and_fails_the_finish() {
        let collector = otlp_sink::held();
        let mut config = OtlpConfig::new(&collector.url);
        config.max_pending_traces = 1;
        config.max_batch_spans = 1;
        let exporter = OtlpExporter::new(&config).expect("exporter");
        let trace: HttpTrace = one_request();
        assert!(exporter.export(&trace), "the first is taken by the thread");
        // The thread now waits for the collector's answer to the first batch.
        collector
            .accepted
            .recv_timeout(Duration::from_secs(10))
            .expect("the exporter connected");
        assert!(exporter.export(&trace), "the second waits in the queue");
        assert!(!exporter.export(&trace), "the third finds the queue full");
        collector.release.send(()).expect("release");
        let Err(ExportError::Incomplete { report, .. }) = exporter.finish() else {
            panic!("a dropped trace fails the finish");
        };
        assert_eq!(report.dropped_traces, 1, "{report}");
        assert_eq!(report.exported, report.spans, "{report}");
        assert_eq!(report.failed_batches, 0, "{report}");
        assert!(report.to_string().contains("1 traces dropped"), "{report}");
    }

    #[test]
    fn a_batch_never_passes_its_bound_even_within_one_trace() {
        let collector = otlp_sink::held();
        collector.release.send(()).expect("release");
        let mut config = OtlpConfig::new(&collector.url);
        config.max_batch_spans = 2;
        let exporter = OtlpExporter::new(&config).expect("exporter");
        let trace: HttpTrace = one_request();
        assert!(exporter.export(&trace));
        let report = exporter.finish().expect("delivered");
        assert!(report.spans > 2, "{report}");
        assert_eq!(
            collector
                .requests
                .load(std::sync::atomic::Ordering::Relaxed) as u64,
            report.spans.div_ceil(2),
            "{report}"
        );
    }

    #[test]
    fn dropping_an_unfinished_exporter_does_not_wait_for_the_collector() {
        let collector = otlp_sink::held();
        let mut config = OtlpConfig::new(&collector.url);
        config.max_batch_spans = 1;
        let exporter = OtlpExporter::new(&config).expect("exporter");
        let trace: HttpTrace = one_request();
        assert!(exporter.export(&trace));
        collector
            .accepted
            .recv_timeout(Duration::from_secs(10))
            .expect("the exporter connected");
        // The collector never answers: a drop that waited for the send would take the 5 s
        // timeout and its retries; the bound is far from both.
        let started = std::time::Instant::now();
        drop(exporter);
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
    }

    #[test]
    fn finishing_gives_up_at_its_time_limit_on_a_collector_that_never_answers() {
        for protocol in [Protocol::HttpProtobuf, Protocol::Grpc] {
            let collector = otlp_sink::held();
            let mut config = OtlpConfig::new(&collector.url);
            config.protocol = protocol;
            config.max_batch_spans = 1;
            config.timeout = Duration::from_secs(1);
            config.finish_timeout = Duration::from_millis(300);
            let exporter = OtlpExporter::new(&config).expect("exporter");
            assert!(exporter.export(&one_request()));
            collector
                .accepted
                .recv_timeout(Duration::from_secs(10))
                .expect("the exporter connected");
            // Without the limit: a 1 s attempt and 3 retries per one-span batch, about 19 s in
            // all. With it: the attempt under way, then nothing; the bound is far from both.
            let started = std::time::Instant::now();
            let error = exporter.finish().expect_err("nothing was answered");
            let took = started.elapsed();
            assert!(took < Duration::from_secs(3), "{protocol:?}: {took:?}");
            let ExportError::Incomplete {
                report, last_error, ..
            } = &error
            else {
                panic!("{error}");
            };
            assert_eq!(report.exported, 0, "{error}");
            assert!(report.failed_batches > 1, "{error}");
            assert!(
                last_error.as_deref().is_some_and(|e| e.contains("ran out")),
                "{error}"
            );
            let _ = collector.release.send(());
        }
    }

    #[test]
    fn an_unreachable_grpc_collector_is_a_clear_error_and_needs_no_runtime_of_the_caller() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("port");
        let mut config = OtlpConfig::new(format!("http://127.0.0.1:{port}"));
        config.protocol = Protocol::Grpc;
        config.timeout = Duration::from_secs(2);
        let exporter = OtlpExporter::new(&config).expect("exporter");
        assert_eq!(exporter.endpoint(), format!("http://127.0.0.1:{port}"));
        let trace: HttpTrace = one_request();
        assert!(exporter.export(&trace), "queued");
        let text = exporter.finish().expect_err("unreachable").to_string();
        assert!(text.contains(&format!("127.0.0.1:{port}")), "{text}");
        assert!(text.contains("0 of"), "{text}");
    }

    #[test]
    fn a_grpc_exporter_may_be_made_and_dropped_inside_async_code() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async {
            let mut config = OtlpConfig::new("http://127.0.0.1:9");
            config.protocol = Protocol::Grpc;
            let exporter = OtlpExporter::new(&config).expect("exporter");
            drop(exporter);
        });
    }

    #[test]
    fn grpc_over_tls_is_refused_at_setup() {
        let mut config = OtlpConfig::new("https://collector.test:4317");
        config.protocol = Protocol::Grpc;
        let error = OtlpExporter::new(&config).expect_err("no TLS for gRPC");
        assert!(error.to_string().contains("gRPC over TLS"), "{error}");
    }
}
