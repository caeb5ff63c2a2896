//! [`OtlpExporter`]: sends the span trees of traces to an OpenTelemetry collector over OTLP
//! (HTTP/protobuf or gRPC, [`Protocol`]), batched in a bounded queue by the SDK's batch
//! processor on a thread of its own, each batch retried with backoff (3 retries, 100 ms to
//! 1.6 s). gRPC (tonic) needs a Tokio runtime: the exporter then owns a one-thread runtime
//! that its exports run on, whatever thread or runtime the caller is on.
//!
//! Export never blocks the traced requests: [`OtlpExporter::export`] only queues the trace
//! for the exporter's own thread, which builds its span trees and hands them to the batch
//! processor (building the spans on the caller's thread cost the traced requests about a
//! quarter of their rate, see BENCHMARKS.md); a full queue drops traces or spans, counted,
//! and [`OtlpExporter::finish`] says how many of those queued
//! reached the collector, and fails with the collector's address and the last error when any
//! did not (the caller has written its JSON by then).
use std::{
    fmt,
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicU64, Ordering},
        mpsc::{self, SyncSender, TrySendError},
    },
    thread::JoinHandle,
    time::Duration,
};

use nettrace_model::HttpTrace;
use opentelemetry::{
    Context, KeyValue,
    trace::{
        Event, Span as _, SpanKind, Status, TraceContextExt as _, Tracer as _, TracerProvider as _,
    },
};
use opentelemetry_otlp::WithExportConfig as _;
use opentelemetry_sdk::{
    Resource,
    error::OTelSdkResult,
    trace::{
        BatchConfigBuilder, BatchSpanProcessor, SdkTracer, SdkTracerProvider, SpanData,
        SpanExporter,
    },
};

use crate::{
    Protocol,
    spans::{SpanNode, Value, request_trees},
};

/// Where and as what traces are exported.
#[derive(Clone, Debug)]
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
    /// The most spans waiting for export (default 65,536); more are dropped and counted.
    pub max_queue: usize,
    /// The most traces waiting for their spans to be built (default 1,024); more are
    /// dropped and counted.
    pub max_pending_traces: usize,
    /// Time limit of one export request (default 5 s).
    pub timeout: Duration,
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
            max_queue: 65_536,
            max_pending_traces: 1_024,
            timeout: Duration::from_secs(5),
        }
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
    /// Spans queued (one tree per HTTP request).
    pub spans: u64,
    /// Spans the collector accepted.
    pub exported: u64,
    /// Export requests that failed after their retries.
    pub failed_batches: u64,
    /// Traces dropped because the queue for building their spans was full.
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

/// What the exporter wrapper and the span thread count.
#[derive(Debug, Default)]
struct Stats {
    /// Spans handed to the batch processor.
    spans: AtomicU64,
    dropped_traces: AtomicU64,
    exported: AtomicU64,
    failed_batches: AtomicU64,
    last_error: Mutex<Option<String>>,
}

/// The OTLP exporter, counting what it delivers; with `runtime`, each export runs on that
/// Tokio runtime (gRPC's client needs one).
#[derive(Debug)]
struct Counted {
    inner: Arc<opentelemetry_otlp::SpanExporter>,
    runtime: Option<tokio::runtime::Handle>,
    stats: Arc<Stats>,
}

impl SpanExporter for Counted {
    fn export(
        &self,
        batch: Vec<SpanData>,
    ) -> impl std::future::Future<Output = OTelSdkResult> + Send {
        let spans = batch.len() as u64;
        let stats = self.stats.clone();
        let inner = self.inner.clone();
        let export = async move { inner.export(batch).await };
        let runtime = self.runtime.clone();
        async move {
            let result = match runtime {
                Some(runtime) => runtime.spawn(export).await.unwrap_or_else(|e| {
                    Err(opentelemetry_sdk::error::OTelSdkError::InternalFailure(
                        e.to_string(),
                    ))
                }),
                None => export.await,
            };
            match &result {
                Ok(()) => {
                    stats.exported.fetch_add(spans, Ordering::Relaxed);
                }
                Err(error) => {
                    stats.failed_batches.fetch_add(1, Ordering::Relaxed);
                    *stats
                        .last_error
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner) = Some(error.to_string());
                }
            }
            result
        }
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        let _entered = self.runtime.as_ref().map(|r| r.enter());
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &Resource) {
        // Called once, when the provider is built: before any export holds a clone.
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.set_resource(resource);
        }
    }
}

/// The runtime gRPC exports run on, shut down without waiting when the exporter goes.
#[derive(Debug)]
struct OwnedRuntime(Option<tokio::runtime::Runtime>);

impl Drop for OwnedRuntime {
    fn drop(&mut self) {
        if let Some(runtime) = self.0.take() {
            // Never blocks, so the exporter may be dropped on any thread, async or not.
            runtime.shutdown_background();
        }
    }
}

/// What the span thread is asked to do.
enum Job {
    /// Build and queue the spans of a trace.
    Trace(Box<HttpTrace>),
    /// Say when every trace queued before is in the batch processor.
    Flush(SyncSender<()>),
}

/// Sends traces to a collector as span trees (see [`crate::spans`]).
pub struct OtlpExporter {
    /// To the span thread; `None` once finished.
    jobs: Option<SyncSender<Job>>,
    span_thread: Option<JoinHandle<()>>,
    provider: SdkTracerProvider,
    endpoint: String,
    stats: Arc<Stats>,
    /// Last: dropped after the provider has shut down.
    _runtime: OwnedRuntime,
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
        let (exporter, runtime) = match config.protocol {
            Protocol::HttpProtobuf => {
                let exporter = opentelemetry_otlp::SpanExporter::builder()
                    .with_http()
                    .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
                    .with_endpoint(endpoint.clone())
                    .with_timeout(config.timeout)
                    .build();
                (exporter, None)
            }
            Protocol::Grpc => {
                let runtime = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(1)
                    .thread_name("nettrace-otlp")
                    .enable_all()
                    .build()
                    .map_err(|e| setup(&endpoint, format!("runtime: {e}")))?;
                // The channel's worker is spawned on the runtime as the client is built.
                let exporter = {
                    let _entered = runtime.enter();
                    opentelemetry_otlp::SpanExporter::builder()
                        .with_tonic()
                        .with_endpoint(endpoint.clone())
                        .with_timeout(config.timeout)
                        .with_protocol(opentelemetry_otlp::Protocol::Grpc)
                        .build()
                };
                (exporter, Some(runtime))
            }
        };
        let exporter = exporter.map_err(|e| setup(&endpoint, e.to_string()))?;
        let stats = Arc::new(Stats::default());
        let counted = Counted {
            inner: Arc::new(exporter),
            runtime: runtime.as_ref().map(|r| r.handle().clone()),
            stats: stats.clone(),
        };
        let batch = BatchConfigBuilder::default()
            .with_max_queue_size(config.max_queue.max(1))
            .with_max_export_batch_size(512.min(config.max_queue.max(1)))
            .with_scheduled_delay(Duration::from_millis(200))
            .build();
        let processor = BatchSpanProcessor::builder(counted)
            .with_batch_config(batch)
            .build();
        let mut attributes = vec![KeyValue::new(
            "host.name",
            config.host_name.clone().unwrap_or_else(host_name),
        )];
        if let Some(device) = &config.device_id {
            attributes.push(KeyValue::new("device.id", device.clone()));
        }
        let resource = Resource::builder()
            .with_service_name(config.service_name.clone())
            .with_attributes(attributes)
            .build();
        let provider = SdkTracerProvider::builder()
            .with_span_processor(processor)
            .with_resource(resource)
            .build();
        let tracer = provider.tracer("nettrace");
        let (jobs, queue) = mpsc::sync_channel::<Job>(config.max_pending_traces.max(1));
        let thread_stats = stats.clone();
        let span_thread = std::thread::Builder::new()
            .name("nettrace-otlp-spans".to_owned())
            .spawn(move || {
                for job in queue {
                    match job {
                        Job::Trace(trace) => {
                            let spans = request_trees(&trace)
                                .iter()
                                .map(|tree| emit(&tracer, tree, &Context::new()))
                                .sum();
                            thread_stats.spans.fetch_add(spans, Ordering::Relaxed);
                        }
                        Job::Flush(done) => {
                            let _ = done.send(());
                        }
                    }
                }
            })
            .map_err(|e| setup(&endpoint, format!("span thread: {e}")))?;
        Ok(Self {
            jobs: Some(jobs),
            span_thread: Some(span_thread),
            provider,
            endpoint,
            stats,
            _runtime: OwnedRuntime(runtime),
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
        let Some(jobs) = &self.jobs else {
            return false;
        };
        match jobs.try_send(Job::Trace(Box::new(trace.clone()))) {
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
            let (done, finished) = mpsc::sync_channel(1);
            if jobs.send(Job::Flush(done)).is_ok() {
                let _ = finished.recv();
            }
        }
        let _ = self.provider.force_flush();
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
        self.stop_span_thread();
        let _ = self.provider.force_flush();
        let _ = self.provider.shutdown();
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

    /// Lets the span thread build what is queued, and waits for it to end.
    fn stop_span_thread(&mut self) {
        drop(self.jobs.take());
        if let Some(thread) = self.span_thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for OtlpExporter {
    fn drop(&mut self) {
        self.stop_span_thread();
    }
}

/// Starts `node` under `parent`, its children under it, and ends it; returns the number of
/// spans.
fn emit(tracer: &SdkTracer, node: &SpanNode, parent: &Context) -> u64 {
    let events = node
        .events
        .iter()
        .map(|e| Event::new(e.name.clone(), e.at, key_values(&e.attrs), 0))
        .collect();
    let mut span = tracer
        .span_builder(node.name.clone())
        .with_kind(if node.client {
            SpanKind::Client
        } else {
            SpanKind::Internal
        })
        .with_start_time(node.start)
        .with_attributes(key_values(&node.attrs))
        .with_events(events)
        .start_with_context(tracer, parent);
    if let Some(error) = &node.error {
        span.set_status(Status::error(error.clone()));
    }
    let cx = parent.with_span(span);
    let mut count = 1;
    for child in &node.children {
        count += emit(tracer, child, &cx);
    }
    cx.span().end_with_timestamp(node.end);
    count
}

fn key_values(attrs: &[(&'static str, Value)]) -> Vec<KeyValue> {
    attrs
        .iter()
        .map(|(key, value)| match value {
            Value::Str(v) => KeyValue::new(*key, v.clone()),
            Value::Int(v) => KeyValue::new(*key, *v),
            Value::Bool(v) => KeyValue::new(*key, *v),
        })
        .collect()
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
        let trace: HttpTrace =
            serde_json::from_str(crate::tests_support::ONE_REQUEST).expect("trace");
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
        let trace: HttpTrace =
            serde_json::from_str(crate::tests_support::ONE_REQUEST).expect("trace");
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
