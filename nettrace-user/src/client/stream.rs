//! The completed-request stream ([`HttpClient::completed_traces`]): each request's trace as
//! soon as the request is complete, after which the tracer forgets what only it used.
//!
//! A request is complete when its response body has been read to the end, failed, been
//! canceled or dropped, or when the request failed without a response. Its trace then holds
//! its hops (a redirect chain is one request), their dials, connections, DNS messages and
//! TLS tunnels, and the socket operations and kernel facts of its connections so far.
//! Connections still open stay in the tracer (the next request on one of them finds it
//! `reused`, its earlier times absolute, its operations those of the new request).
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use nettrace::client::{HttpClient, HttpClientConfig, TraceOptions};
//!
//! let client = HttpClient::new(
//!     HttpClientConfig::default(),
//!     TraceOptions { completed_traces: Some(64), ..Default::default() },
//! )?;
//! let mut completed = client.completed_traces().expect("streaming is on");
//! client.get("http://127.0.0.1:8080/").await?.into_body().bytes().await?;
//! let trace = completed.recv().await.expect("the client is alive");
//! println!("{}", serde_json::to_string(&trace)?);
//! # Ok(()) }
//! ```
use std::{mem, time::Instant};

use http::Response;
use tokio::sync::mpsc;

use super::{HttpClient, RequestError, ResponseBody};
use crate::{
    event::{Event, Sink},
    model::{HttpTrace, TraceId},
};

/// Reports a request complete when dropped (with its body, or at once for a failure).
pub(crate) struct DoneGuard {
    sink: Sink,
    hops: Vec<TraceId>,
}

impl Drop for DoneGuard {
    fn drop(&mut self) {
        self.sink.emit(Event::RequestDone {
            hops: mem::take(&mut self.hops),
            at: Instant::now(),
        });
    }
}

/// The receiving end of the completed-request stream: one [`HttpTrace`] per request, in the
/// order the requests completed. Traces that find it full are dropped and counted in the
/// next trace delivered (`dropped.streamedTraces`).
#[derive(Debug)]
pub struct CompletedTraces {
    receiver: mpsc::Receiver<HttpTrace>,
}

impl CompletedTraces {
    pub(crate) fn new(receiver: mpsc::Receiver<HttpTrace>) -> Self {
        Self { receiver }
    }

    /// The next completed request's trace; `None` once the client is dropped and every
    /// trace has been received.
    pub async fn recv(&mut self) -> Option<HttpTrace> {
        self.receiver.recv().await
    }

    /// The next completed request's trace if one is waiting.
    pub fn try_recv(&mut self) -> Option<HttpTrace> {
        self.receiver.try_recv().ok()
    }

    /// The underlying channel, e.g. for `tokio_stream::wrappers::ReceiverStream`.
    pub fn into_inner(self) -> mpsc::Receiver<HttpTrace> {
        self.receiver
    }
}

impl HttpClient {
    /// The stream of completed requests' traces, when `TraceOptions::completed_traces` turned
    /// it on; `None` otherwise, and for every call after the first (there is one receiver).
    pub fn completed_traces(&self) -> Option<CompletedTraces> {
        self.inner.tracer.take_completed().map(CompletedTraces::new)
    }

    /// Ends a request for the stream: the response's body reports it complete when it
    /// ends; a failure reports it at once. `earlier` are the hops before the last.
    pub(super) fn request_done(
        &self,
        mut earlier: Vec<TraceId>,
        result: Result<Response<ResponseBody>, RequestError>,
    ) -> Result<Response<ResponseBody>, RequestError> {
        if !self.inner.tracer.streams() {
            return result;
        }
        match result {
            Ok(mut response) => {
                earlier.push(response.body().trace_id().clone());
                response.body_mut().set_done(Box::new(DoneGuard {
                    sink: self.inner.sink.clone(),
                    hops: earlier,
                }));
                Ok(response)
            }
            Err(error) => {
                earlier.extend(error.trace_id().cloned());
                drop(DoneGuard {
                    sink: self.inner.sink.clone(),
                    hops: earlier,
                });
                Err(error)
            }
        }
    }
}
