//! `nettrace get URL`: the request(s) through one traced client, then the trace.
use std::{
    fs,
    net::{IpAddr, SocketAddr},
    process::ExitCode,
    sync::Arc,
    time::Duration,
};

use anyhow::{Context, Result, bail};
use http::{HeaderName, HeaderValue, Method, Request};
use nettrace::{
    capture::{PacketCapture, PacketCaptureOptions},
    client::{
        HttpClient, HttpClientConfig, HttpReqTraceOptions, KernelMode, RequestBody, TraceOptions,
    },
    model::{HdrFieldsOpt, HttpTrace},
};

use crate::args::{Format, GetArgs, Headers, Kernel};

pub(crate) fn run(args: GetArgs) -> Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(get(args))
}

async fn get(args: GetArgs) -> Result<ExitCode> {
    let client = HttpClient::new(config(&args)?, options(&args))?;
    let description = args
        .description
        .clone()
        .unwrap_or_else(|| format!("{} {}", args.method, args.url));
    let mut traces = Vec::new();
    let mut captures = Vec::new();
    let mut failed = false;
    for _ in 0..args.repeat.max(1) {
        let request = build_request(&args)?;
        match client.request(request).await {
            Ok(response) => {
                if let Err(error) = response.into_body().bytes().await {
                    eprintln!("nettrace: {error}");
                    failed = true;
                }
            }
            Err(error) => {
                eprintln!("nettrace: request failed: {error}");
                failed = true;
            }
        }
        if args.clear_trace {
            let (trace, captured) = client.get_trace(&description)?;
            traces.push(trace);
            captures = captured;
            client.clear_trace()?;
        }
    }
    if !args.clear_trace {
        let (trace, captured) = client.get_trace(&description)?;
        traces.push(trace);
        captures = captured;
    }
    client.close()?;
    write_output(&args, &traces)?;
    if !args.pcap.is_empty() {
        // With --clear-trace, the captures of the last trace.
        let dir = args.pcap_dir.clone().unwrap_or_else(|| ".".into());
        write_captures(&dir, &captures)?;
    }
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn write_output(args: &GetArgs, traces: &[HttpTrace]) -> Result<()> {
    let mut text = String::new();
    for trace in traces {
        match args.format {
            Format::Json if args.clear_trace => {
                text.push_str(&serde_json::to_string(trace)?);
                text.push('\n');
            }
            Format::Json => {
                text.push_str(&serde_json::to_string_pretty(trace)?);
                text.push('\n');
            }
            Format::Waterfall => text.push_str(&nettrace::waterfall::render(trace)),
        }
    }
    match &args.output {
        Some(path) => fs::write(path, text).with_context(|| format!("writing {}", path.display())),
        None => crate::output::write_stdout(&text),
    }
}

fn build_request(args: &GetArgs) -> Result<Request<RequestBody>> {
    let method = Method::from_bytes(args.method.as_bytes())
        .with_context(|| format!("invalid method {:?}", args.method))?;
    let mut builder = Request::builder().method(method).uri(&args.url);
    for header in &args.headers {
        let Some((name, value)) = header.split_once(':') else {
            bail!("header {header:?} is not 'Name: value'");
        };
        let name = HeaderName::from_bytes(name.trim().as_bytes())
            .with_context(|| format!("invalid header name in {header:?}"))?;
        let value = HeaderValue::from_str(value.trim())
            .with_context(|| format!("invalid header value in {header:?}"))?;
        builder = builder.header(name, value);
    }
    let body = match &args.data {
        Some(data) => RequestBody::from(data.clone()),
        None => RequestBody::empty(),
    };
    builder.body(body).context("invalid request")
}

fn config(args: &GetArgs) -> Result<HttpClientConfig> {
    let seconds = |secs: Option<f64>, what: &str| -> Result<Option<Duration>> {
        secs.map(|s| Duration::try_from_secs_f64(s).with_context(|| format!("invalid {what} {s}")))
            .transpose()
    };
    let nameservers = args
        .nameservers
        .iter()
        .map(|n| {
            n.parse::<SocketAddr>()
                .or_else(|_| n.parse::<IpAddr>().map(|ip| SocketAddr::new(ip, 53)))
                .with_context(|| format!("invalid nameserver {n:?} (expected IP:PORT)"))
        })
        .collect::<Result<Vec<_>>>()?;
    let skipped = args
        .skip_nameservers
        .iter()
        .map(|s| {
            s.parse::<SocketAddr>()
                .map(|a| (a.ip(), Some(a.port())))
                .or_else(|_| s.parse::<IpAddr>().map(|ip| (ip, None)))
                .with_context(|| format!("invalid --skip-nameserver {s:?} (expected IP[:PORT])"))
        })
        .collect::<Result<Vec<_>>>()?;
    let mut config = HttpClientConfig {
        prefer_http2: args.http2,
        source_ip: args.source_ip,
        nameservers,
        req_timeout: seconds(args.timeout, "--timeout")?,
        tcp_handshake_timeout: seconds(args.connect_timeout, "--connect-timeout")?,
        tls_handshake_timeout: seconds(args.tls_timeout, "--tls-timeout")?,
        disable_keep_alive: args.no_keepalive,
        ..HttpClientConfig::default()
    };
    if !skipped.is_empty() {
        config.skip_nameserver = Some(Arc::new(move |ip, port| {
            skipped
                .iter()
                .any(|(s_ip, s_port)| *s_ip == ip && s_port.is_none_or(|p| p == port))
                .then(|| "skipped by --skip-nameserver".to_owned())
        }));
    }
    if let Some(proxy) = &args.proxy {
        let proxy: http::Uri = proxy.parse().with_context(|| {
            let shown = nettrace::client::redact_userinfo(proxy);
            format!("invalid --proxy {shown:?}")
        })?;
        config.proxy = Some(Arc::new(move |_| Ok(Some(proxy.clone()))));
    }
    crate::tls_args::apply(args, &mut config)?;
    Ok(config)
}

fn options(args: &GetArgs) -> TraceOptions {
    let excluded: Vec<String> = args
        .exclude_headers
        .iter()
        .map(|h| h.to_ascii_lowercase())
        .collect();
    TraceOptions {
        logging: false,
        sock_trace: args.sock_trace,
        dns_query_trace: args.dns_trace,
        http_req_trace: Some(HttpReqTraceOptions {
            header_fields: match args.headers_mode {
                Headers::None => HdrFieldsOpt::Disabled,
                Headers::Names => HdrFieldsOpt::NamesOnly,
                Headers::Lengths => HdrFieldsOpt::ValueLenOnly,
                Headers::Values => HdrFieldsOpt::WithValues,
            },
            exclude_header_field: (!excluded.is_empty()).then(|| {
                Arc::new(move |name: &str| excluded.contains(&name.to_ascii_lowercase()))
                    as Arc<dyn Fn(&str) -> bool + Send + Sync>
            }),
        }),
        kernel: match args.kernel {
            Kernel::Auto => KernelMode::Auto,
            Kernel::Off => KernelMode::Off,
            Kernel::Require => KernelMode::Require,
        },
        kernel_config: Default::default(),
        kernel_daemon: args.daemon_socket.clone(),
        packet_capture: (!args.pcap.is_empty()).then(|| PacketCaptureOptions {
            interfaces: args.pcap.clone(),
            snaplen: args.snaplen,
            total_size_limit: args.pcap_limit,
            include_icmp: args.icmp,
            include_arp: args.arp,
            tcp_without_payload: args.tcp_no_payload,
            tls_keys: args.tls_keys,
        }),
        conntrack: args.conntrack,
    }
}

/// Writes each capture as DIR/<iface>.pcap and DIR/<iface>.pcapng, and its TLS secrets as
/// DIR/<iface>.keys when there are any.
fn write_captures(dir: &std::path::Path, captures: &[PacketCapture]) -> Result<()> {
    for capture in captures {
        capture.write_files(dir).context("writing the capture")?;
        for shortfall in capture.shortfalls() {
            eprintln!("nettrace: {shortfall}");
        }
    }
    Ok(())
}
