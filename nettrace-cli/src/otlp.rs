//! `--otlp URL` and its companions, shared by `nettrace get`, `nettrace show` and
//! `nettrace-loader trace`: each HTTP request of the trace goes to an OpenTelemetry
//! collector as a span tree (see the `nettrace-otel` crate), after the JSON is written.
use anyhow::{Context, Result};
use clap::Args;
use nettrace::model::HttpTrace;
use nettrace_otel::{OtlpConfig, OtlpExporter, Protocol};

/// The environment variable OpenTelemetry's SDKs read the protocol from.
const PROTOCOL_ENV: &str = "OTEL_EXPORTER_OTLP_PROTOCOL";

/// Where spans go.
#[derive(Args, Clone, Debug, Default)]
pub(crate) struct OtlpArgs {
    /// Send each request's span tree to this OpenTelemetry collector (OTLP over
    /// HTTP/protobuf, e.g. http://127.0.0.1:4318, /v1/traces added when the URL has no path;
    /// or gRPC with --otlp-protocol grpc, e.g. http://127.0.0.1:4317). The JSON is written
    /// as usual; an unreachable collector is reported at the end (exit code 1).
    #[arg(long, value_name = "URL")]
    pub(crate) otlp: Option<String>,
    /// The OTLP protocol: http/protobuf or grpc [default: $OTEL_EXPORTER_OTLP_PROTOCOL, else
    /// http/protobuf].
    #[arg(long, value_name = "PROTOCOL", requires = "otlp")]
    pub(crate) otlp_protocol: Option<Protocol>,
    /// The `service.name` of the exported spans.
    #[arg(
        long,
        value_name = "NAME",
        default_value = "nettrace",
        requires = "otlp"
    )]
    pub(crate) otlp_service_name: String,
    /// A device or session identifier, exported as the `device.id` resource attribute.
    #[arg(long, value_name = "ID", requires = "otlp")]
    pub(crate) otlp_device_id: Option<String>,
}

impl OtlpArgs {
    /// The exporter, with `--otlp`.
    pub(crate) fn exporter(&self) -> Result<Option<OtlpExporter>> {
        let Some(endpoint) = &self.otlp else {
            return Ok(None);
        };
        let mut config = OtlpConfig::new(endpoint.clone());
        config.protocol = match (self.otlp_protocol, std::env::var(PROTOCOL_ENV)) {
            (Some(protocol), _) => protocol,
            (None, Ok(name)) if !name.trim().is_empty() => name
                .parse()
                .map_err(|e| anyhow::anyhow!("{PROTOCOL_ENV}: {e}"))?,
            (None, _) => Protocol::default(),
        };
        config.service_name.clone_from(&self.otlp_service_name);
        config.device_id.clone_from(&self.otlp_device_id);
        OtlpExporter::new(&config).map(Some).context("--otlp")
    }
}

/// Queues `trace`'s spans when exporting.
pub(crate) fn export(exporter: Option<&OtlpExporter>, trace: &HttpTrace) {
    if let Some(exporter) = exporter {
        exporter.export(trace);
    }
}

/// Sends what is queued and says how it went: `true` when every span reached the collector
/// (or nothing was exported); otherwise the error is printed. Blocks (the exporter sends
/// from its own thread).
pub(crate) fn finish(exporter: Option<OtlpExporter>, program: &str) -> bool {
    let Some(exporter) = exporter else {
        return true;
    };
    match exporter.finish() {
        Ok(report) => {
            tracing::info!(%report, "OTLP export");
            true
        }
        Err(error) => {
            eprintln!("{program}: {error}");
            false
        }
    }
}
