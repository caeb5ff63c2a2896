//! `--otlp URL` and its companions, shared by `nettrace get`, `nettrace show` and
//! `nettrace-loader trace`: each HTTP request of the trace goes to an OpenTelemetry
//! collector as a span tree (see the `nettrace-otel` crate), after the JSON is written.
use anyhow::{Context, Result};
use clap::Args;
use nettrace::model::HttpTrace;
use nettrace_otel::{OtlpConfig, OtlpExporter, Protocol, parse_key_values};

/// The environment variables of OpenTelemetry's SDKs that `--otlp` reads; in each pair the
/// traces-only variable wins over the general one.
const PROTOCOL_ENVS: [&str; 2] = [
    "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
    "OTEL_EXPORTER_OTLP_PROTOCOL",
];
const SERVICE_NAME_ENV: &str = "OTEL_SERVICE_NAME";
const RESOURCE_ENV: &str = "OTEL_RESOURCE_ATTRIBUTES";
const HEADERS_ENVS: [&str; 2] = [
    "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
    "OTEL_EXPORTER_OTLP_HEADERS",
];
const CERTIFICATE_ENVS: [&str; 2] = [
    "OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE",
    "OTEL_EXPORTER_OTLP_CERTIFICATE",
];
/// The `service.name` when neither the flag nor the environment names one.
const DEFAULT_SERVICE_NAME: &str = "nettrace";

/// Where spans go.
#[derive(Args, Clone, Debug, Default)]
pub(crate) struct OtlpArgs {
    /// Send each request's span tree to this OpenTelemetry collector (OTLP over
    /// HTTP/protobuf, e.g. http://127.0.0.1:4318 or https://..., /v1/traces added when the URL
    /// has no path; or gRPC with --otlp-protocol grpc, e.g. http://127.0.0.1:4317). The JSON
    /// is written as usual; an unreachable collector is reported at the end (exit code 1).
    #[arg(long, value_name = "URL")]
    pub(crate) otlp: Option<String>,
    /// The OTLP protocol: http/protobuf or grpc [default: $OTEL_EXPORTER_OTLP_TRACES_PROTOCOL
    /// or $OTEL_EXPORTER_OTLP_PROTOCOL, else http/protobuf].
    #[arg(long, value_name = "PROTOCOL", requires = "otlp")]
    pub(crate) otlp_protocol: Option<Protocol>,
    /// The `service.name` of the exported spans [default: $OTEL_SERVICE_NAME, else
    /// service.name in $OTEL_RESOURCE_ATTRIBUTES, else nettrace]. More resource attributes
    /// come from $OTEL_RESOURCE_ATTRIBUTES, headers (e.g. an API key) from
    /// $OTEL_EXPORTER_OTLP_TRACES_HEADERS or $OTEL_EXPORTER_OTLP_HEADERS (key=value,...), the
    /// CA of an https collector from $OTEL_EXPORTER_OTLP_(TRACES_)CERTIFICATE (a PEM file).
    #[arg(long, value_name = "NAME", requires = "otlp")]
    pub(crate) otlp_service_name: Option<String>,
    /// A device or session identifier, exported as the `device.id` resource attribute.
    #[arg(long, value_name = "ID", requires = "otlp")]
    pub(crate) otlp_device_id: Option<String>,
}

impl OtlpArgs {
    /// The exporter, with `--otlp`.
    pub(crate) fn exporter(&self) -> Result<Option<OtlpExporter>> {
        let Some(config) = self.config(|name| std::env::var(name).ok())? else {
            return Ok(None);
        };
        OtlpExporter::new(&config).map(Some).context("--otlp")
    }

    /// The exporter's configuration, with `--otlp`: the flags, then what `env` (the
    /// process environment) gives.
    fn config(&self, env: impl Fn(&str) -> Option<String>) -> Result<Option<OtlpConfig>> {
        let Some(endpoint) = &self.otlp else {
            return Ok(None);
        };
        // Set but blank counts as unset, as the SDKs do.
        let env = |name: &str| env(name).filter(|value| !value.trim().is_empty());
        // The first of `names` that is set, with its value.
        let first_set = |names: &[&'static str]| {
            names
                .iter()
                .find_map(|&name| env(name).map(|value| (name, value)))
        };
        let mut config = OtlpConfig::new(endpoint.clone());
        config.protocol = match (self.otlp_protocol, first_set(&PROTOCOL_ENVS)) {
            (Some(protocol), _) => protocol,
            (None, Some((name, value))) => {
                value.parse().map_err(|e| anyhow::anyhow!("{name}: {e}"))?
            }
            (None, None) => Protocol::default(),
        };
        if let Some(list) = env(RESOURCE_ENV) {
            config.resource_attributes =
                parse_key_values(&list).map_err(|e| anyhow::anyhow!("{RESOURCE_ENV}: {e}"))?;
        }
        if let Some((name, list)) = first_set(&HEADERS_ENVS) {
            // The error names the entry, never a value (it may be a credential).
            config.headers = parse_key_values(&list).map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
        }
        // Only an https collector uses it: a stale variable does not stop a plain run.
        let https = endpoint.trim_start().starts_with("https:");
        if let Some((name, path)) = first_set(&CERTIFICATE_ENVS).filter(|_| https) {
            config.ca_pem = Some(
                std::fs::read(path.trim())
                    .with_context(|| format!("{name}: reading {}", path.trim()))?,
            );
        }
        config.service_name = self
            .otlp_service_name
            .clone()
            .or_else(|| env(SERVICE_NAME_ENV))
            .or_else(|| config.resource_attribute("service.name").map(str::to_owned))
            .unwrap_or_else(|| DEFAULT_SERVICE_NAME.to_owned());
        config.device_id.clone_from(&self.otlp_device_id);
        Ok(Some(config))
    }
}

/// Queues `trace`'s spans when exporting, handing the trace over (no copy).
pub(crate) fn export(exporter: Option<&OtlpExporter>, trace: HttpTrace) {
    if let Some(exporter) = exporter {
        exporter.export_owned(trace);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn args(service_name: Option<&str>) -> OtlpArgs {
        OtlpArgs {
            otlp: Some("https://127.0.0.1:4318".to_owned()),
            otlp_service_name: service_name.map(str::to_owned),
            ..OtlpArgs::default()
        }
    }

    fn config(args: &OtlpArgs, vars: &[(&str, &str)]) -> Result<OtlpConfig> {
        let env = |name: &str| {
            vars.iter()
                .find(|(key, _)| *key == name)
                .map(|(_, value)| (*value).to_owned())
        };
        args.config(env)?.context("--otlp was given")
    }

    #[test]
    fn the_service_name_comes_from_the_flag_then_the_environment() {
        let resource = ("OTEL_RESOURCE_ATTRIBUTES", "service.name=res,team=net");
        let named = ("OTEL_SERVICE_NAME", "svc");
        let name = |args: &OtlpArgs, vars: &[(&str, &str)]| {
            config(args, vars)
                .map(|c| c.service_name)
                .unwrap_or_default()
        };
        assert_eq!(name(&args(Some("flag")), &[named, resource]), "flag");
        assert_eq!(name(&args(None), &[named, resource]), "svc");
        assert_eq!(name(&args(None), &[resource]), "res");
        assert_eq!(name(&args(None), &[("OTEL_SERVICE_NAME", " ")]), "nettrace");
        let attrs = config(&args(None), &[resource])
            .map(|c| c.resource_attributes)
            .unwrap_or_default();
        assert!(
            attrs.contains(&("team".to_owned(), "net".to_owned())),
            "{attrs:?}"
        );
    }

    #[test]
    fn the_certificate_file_is_read_and_a_missing_one_is_an_error() {
        let path =
            std::env::temp_dir().join(format!("nettrace-otlp-ca-{}.pem", std::process::id()));
        std::fs::write(&path, "PEM").unwrap_or_else(|e| panic!("{e}"));
        let file = path.to_string_lossy().into_owned();
        let read = config(&args(None), &[("OTEL_EXPORTER_OTLP_CERTIFICATE", &file)])
            .map(|c| c.ca_pem)
            .unwrap_or_default();
        let _ = std::fs::remove_file(&path);
        assert_eq!(read.as_deref(), Some(&b"PEM"[..]));
        let missing = config(
            &args(None),
            &[("OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE", &file)],
        );
        assert!(format!("{:#}", missing.map(|_| ()).unwrap_err()).contains("TRACES_CERTIFICATE"));
    }

    #[test]
    fn the_traces_protocol_wins_over_the_general_one() {
        let protocol = |vars: &[(&str, &str)]| config(&args(None), vars).map(|c| c.protocol);
        let general = ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf");
        let traces = ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "grpc");
        assert!(matches!(protocol(&[general, traces]), Ok(Protocol::Grpc)));
        assert!(matches!(protocol(&[general]), Ok(Protocol::HttpProtobuf)));
        let plain = OtlpArgs {
            otlp: Some("http://127.0.0.1:4318".to_owned()),
            ..OtlpArgs::default()
        };
        // A plain-HTTP collector does not read the certificate file, gone or not.
        let gone = ("OTEL_EXPORTER_OTLP_CERTIFICATE", "/nonexistent/ca.pem");
        assert!(config(&plain, &[gone]).is_ok_and(|c| c.ca_pem.is_none()));
    }

    #[test]
    fn traces_headers_win_over_general_ones_and_errors_hide_values() {
        let general = ("OTEL_EXPORTER_OTLP_HEADERS", "api-key=general");
        let traces = ("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "api-key=traces%3D1");
        let headers = |vars: &[(&str, &str)]| {
            config(&args(None), vars)
                .map(|c| c.headers)
                .unwrap_or_default()
        };
        assert_eq!(
            headers(&[general, traces]),
            [("api-key".to_owned(), "traces=1".to_owned())]
        );
        assert_eq!(
            headers(&[general]),
            [("api-key".to_owned(), "general".to_owned())]
        );
        let error = config(
            &args(None),
            &[("OTEL_EXPORTER_OTLP_HEADERS", "ok=1,s3cr3t")],
        )
        .map(|_| ())
        .unwrap_err();
        let text = format!("{error:#}");
        assert!(
            text.contains("OTEL_EXPORTER_OTLP_HEADERS") && !text.contains("s3cr3t"),
            "{text}"
        );
    }
}
