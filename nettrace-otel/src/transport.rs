//! How an export request reaches the collector: OTLP/HTTP (a protobuf body posted with a
//! blocking client) or OTLP/gRPC (tonic, on a one-thread Tokio runtime the transport owns),
//! each request retried with backoff when the failure is one a retry can mend.
//!
//! Built and used on the exporter's own thread only: neither blocking client may be made or
//! dropped inside an async runtime, which the caller's thread may be.
use std::time::{Duration, Instant};

use bytes::{BufMut as _, Bytes};
use http::{Extensions, HeaderMap, HeaderName, HeaderValue};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use prost::Message as _;
use tonic::{
    Code, Status,
    client::Grpc,
    codec::{Codec, EncodeBuf, Encoder},
    metadata::MetadataMap,
    transport::Channel,
};
use tonic_prost::ProstDecoder;

use crate::{OtlpConfig, Protocol, tls};

/// Retries after the first attempt, and the delay before the first retry (doubled for each
/// next one: 100, 200, 400 ms).
const RETRIES: u32 = 3;
const FIRST_BACKOFF: Duration = Duration::from_millis(100);

/// The client of one collector, and the time limit of each request to it.
pub(crate) struct Transport {
    client: Client,
    timeout: Duration,
}

/// How requests travel.
enum Client {
    /// OTLP/HTTP to `url` (`.../v1/traces`).
    Http {
        client: reqwest::blocking::Client,
        url: String,
    },
    /// OTLP/gRPC; the runtime runs the channel's worker and each call.
    Grpc {
        runtime: tokio::runtime::Runtime,
        client: Box<Grpc<Channel>>,
        metadata: MetadataMap,
    },
}

/// Why one attempt failed, and whether another may succeed.
struct Failure {
    retry: bool,
    reason: String,
}

impl Transport {
    /// A client for `url` (`config.endpoint` checked by [`Protocol::traces_url`]) with
    /// `config`'s protocol, time limit, headers and TLS roots; connects nothing yet.
    pub(crate) fn new(config: &OtlpConfig, url: &str) -> Result<Self, String> {
        let headers = header_map(&config.headers)?;
        let timeout = config.timeout;
        match config.protocol {
            Protocol::HttpProtobuf => {
                // reqwest is built without a crypto provider of its own: it takes this
                // configuration, which plain HTTP never uses (so no roots are read for it).
                let https = url.starts_with("https:");
                let tls = if https {
                    tls::client_config(config.ca_pem.as_deref())?
                } else {
                    tls::unused_config()?
                };
                // No redirects: reqwest would carry the headers (API keys) to wherever a
                // redirect points, and turn the POST into a bodiless GET whose 2xx would count
                // the batch as delivered. A 3xx is a failed export, with its status.
                let builder = reqwest::blocking::Client::builder()
                    .timeout(timeout)
                    .default_headers(headers)
                    .redirect(reqwest::redirect::Policy::none())
                    .https_only(https)
                    .tls_backend_preconfigured(tls);
                let client = builder.build().map_err(|e| format!("HTTP client: {e}"))?;
                Ok(Self {
                    client: Client::Http {
                        client,
                        url: url.to_owned(),
                    },
                    timeout,
                })
            }
            Protocol::Grpc => {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| format!("runtime: {e}"))?;
                let endpoint = Channel::from_shared(url.to_owned())
                    .map_err(|e| format!("gRPC endpoint: {e}"))?
                    .timeout(timeout)
                    .connect_timeout(timeout);
                let channel = {
                    let _entered = runtime.enter();
                    endpoint.connect_lazy()
                };
                Ok(Self {
                    client: Client::Grpc {
                        runtime,
                        client: Box::new(Grpc::new(channel)),
                        metadata: MetadataMap::from_headers(headers),
                    },
                    timeout,
                })
            }
        }
    }

    /// Sends `request` (an encoded `ExportTraceServiceRequest`), retrying what a retry can
    /// mend; the number of spans the collector rejected (its partial success), or the last
    /// attempt's error.
    ///
    /// Each attempt has the configured time limit; once `deadline` gives a time (it is asked
    /// before every attempt), no attempt starts after it and none outlasts it.
    pub(crate) fn send(
        &mut self,
        request: Bytes,
        deadline: impl Fn() -> Option<Instant>,
    ) -> Result<u64, String> {
        let timeout = self.timeout;
        let mut backoff = FIRST_BACKOFF;
        let mut attempt = 0;
        loop {
            let limit = match deadline().map(|at| at.saturating_duration_since(Instant::now())) {
                Some(left) if left.is_zero() => {
                    return Err(format!(
                        "the time to finish ran out after {attempt} retries"
                    ));
                }
                Some(left) => left.min(timeout),
                None => timeout,
            };
            // Each attempt shares the bytes (a reference count, no copy).
            let result = match &mut self.client {
                Client::Http { client, url } => post(client, url, request.clone(), limit),
                Client::Grpc {
                    runtime,
                    client,
                    metadata,
                } => runtime.block_on(async {
                    tokio::time::timeout(limit, call(client, metadata, request.clone()))
                        .await
                        .unwrap_or_else(|_| {
                            Err(Failure {
                                retry: true,
                                reason: format!("no answer within {limit:?}"),
                            })
                        })
                }),
            };
            match result {
                Ok(rejected) => return Ok(rejected),
                Err(failure)
                    if failure.retry
                        && attempt < RETRIES
                        && deadline().is_none_or(|at| Instant::now() + backoff < at) =>
                {
                    attempt += 1;
                    std::thread::sleep(backoff);
                    backoff *= 2;
                }
                Err(failure) => {
                    return Err(if attempt > 0 {
                        format!("{} (after {attempt} retries)", failure.reason)
                    } else {
                        failure.reason
                    });
                }
            }
        }
    }
}

/// One OTLP/HTTP attempt. Retried: connection failures, timeouts, and the statuses OTLP
/// names retryable (429, 502, 503, 504).
fn post(
    client: &reqwest::blocking::Client,
    url: &str,
    body: Bytes,
    timeout: Duration,
) -> Result<u64, Failure> {
    let response = client
        .post(url)
        .timeout(timeout)
        .header("content-type", "application/x-protobuf")
        .body(body)
        .send()
        .map_err(|e| Failure {
            retry: e.is_connect() || e.is_timeout(),
            reason: error_chain(&e),
        })?;
    let status = response.status();
    if !status.is_success() {
        return Err(Failure {
            retry: matches!(status.as_u16(), 429 | 502 | 503 | 504),
            reason: format!("the collector answered {status}"),
        });
    }
    // An empty or unreadable body is a full success.
    let body = response.bytes().unwrap_or_default();
    Ok(rejected(ExportTraceServiceResponse::decode(body).ok()))
}

/// The gRPC method of OTLP trace export.
const EXPORT_PATH: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

/// One OTLP/gRPC attempt. Retried: the codes OTLP names retryable.
async fn call(
    client: &mut Grpc<Channel>,
    metadata: &MetadataMap,
    request: Bytes,
) -> Result<u64, Failure> {
    let request = tonic::Request::from_parts(metadata.clone(), Extensions::default(), request);
    let exported = async {
        client
            .ready()
            .await
            .map_err(|e| Status::unavailable(format!("channel not ready: {e}")))?;
        client
            .unary(
                request,
                http::uri::PathAndQuery::from_static(EXPORT_PATH),
                PreEncoded,
            )
            .await
    };
    match exported.await {
        Ok(response) => Ok(rejected(Some(response.into_inner()))),
        Err(status) => Err(Failure {
            retry: matches!(
                status.code(),
                Code::Cancelled
                    | Code::DeadlineExceeded
                    | Code::ResourceExhausted
                    | Code::Aborted
                    | Code::OutOfRange
                    | Code::Unavailable
                    | Code::DataLoss
            ),
            reason: format!("gRPC {:?}: {}", status.code(), status.message()),
        }),
    }
}

/// `headers` as HTTP headers, marked sensitive (their values may be credentials); an
/// invalid one is an error that names it by position or valid name, never by its value.
fn header_map(headers: &[(String, String)]) -> Result<HeaderMap, String> {
    let mut map = HeaderMap::new();
    for (index, (name, value)) in headers.iter().enumerate() {
        // An invalid name is not shown either: `Authorization: Bearer ...` written with a
        // colon would put the token in it.
        let header = HeaderName::from_bytes(name.trim().as_bytes())
            .map_err(|_| format!("header {}: not a valid header name", index + 1))?;
        let mut value = HeaderValue::from_str(value)
            .map_err(|_| format!("header {header}: its value is not a valid header value"))?;
        value.set_sensitive(true);
        map.append(header, value);
    }
    Ok(map)
}

/// A gRPC codec whose requests are already encoded (by [`crate::encode`]); the replies
/// are decoded with prost.
#[derive(Clone, Copy, Debug, Default)]
struct PreEncoded;

impl Codec for PreEncoded {
    type Encode = Bytes;
    type Decode = ExportTraceServiceResponse;
    type Encoder = Self;
    type Decoder = ProstDecoder<ExportTraceServiceResponse>;

    fn encoder(&mut self) -> Self::Encoder {
        Self
    }

    fn decoder(&mut self) -> Self::Decoder {
        ProstDecoder::default()
    }
}

impl Encoder for PreEncoded {
    type Item = Bytes;
    type Error = Status;

    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put(item);
        Ok(())
    }
}

fn rejected(response: Option<ExportTraceServiceResponse>) -> u64 {
    response
        .and_then(|r| r.partial_success)
        .map_or(0, |p| u64::try_from(p.rejected_spans).unwrap_or(0))
}

/// An error with its causes (reqwest's own message omits why a connection failed).
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
