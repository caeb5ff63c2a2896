//! Request and response bodies that count their bytes for the trace.
//!
//! [`RequestBody`] counts what hyper takes from it (`reqContentLen`). [`ResponseBody`] counts
//! what the caller reads (`RespContentLen`), after decoding gzip when the client asked for it,
//! and enforces the request deadline while the body is read.
//!
//! A gzip body is decoded in frames of at most 64 KiB, and fails with
//! [`BodyError::GzipRatio`] when it expands more than 500:1 past its first 8 MiB decoded (a
//! decompression bomb); see [`super::gunzip`] for why these limits.
use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll, ready},
    time::Instant,
};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::{BodyExt, combinators::UnsyncBoxBody};

use super::{expect_continue::BodyWait, gunzip::Gunzip, pool::ReturnOnEnd};
use crate::{
    event::{Event, RequestCounter, ResponseCounter, Sink},
    model::TraceId,
};

/// A boxed error of a streaming request body.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The body of a request: empty, bytes in memory (replayable for redirects), or a stream.
pub struct RequestBody(Kind);

/// What a [`RequestBody`] holds. At most 32 bytes, so that a request without a body is no
/// larger than hyper's own: the pool moves the request (and its body) about a dozen times on
/// its way to a connection, and `memcpy` takes a slower path above 256 bytes.
enum Kind {
    /// Bytes in memory; empty when there is no body (nothing to count or to wait for).
    Full(Bytes),
    /// A stream, or a body with bytes handed to a request. Boxed: only requests with a body
    /// pay for the counting and the wait.
    Boxed(Box<Sending>),
}

/// A body with bytes: its source, what counts them, and what holds the first frame back.
struct Sending {
    source: Source,
    counters: Option<RequestCounter>,
    wait: Option<BodyWait>,
}

enum Source {
    /// Bytes in memory, taken at the first poll.
    Full(Option<Bytes>),
    Stream(UnsyncBoxBody<Bytes, BoxError>),
}

impl RequestBody {
    /// No body.
    pub fn empty() -> Self {
        Self(Kind::Full(Bytes::new()))
    }

    /// A body streamed from any `http_body::Body` (not replayed on 307/308 redirects).
    pub fn stream<B>(body: B) -> Self
    where
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        Self(Kind::Boxed(Box::new(Sending {
            source: Source::Stream(body.map_err(Into::into).boxed_unsync()),
            counters: None,
            wait: None,
        })))
    }

    /// A copy for another redirect hop, if the body is in memory.
    pub(crate) fn try_clone(&self) -> Option<Self> {
        match &self.0 {
            Kind::Full(bytes) => Some(Self(Kind::Full(bytes.clone()))),
            Kind::Boxed(sending) => match &sending.source {
                Source::Full(bytes) => Some(Self::from(bytes.clone().unwrap_or_default())),
                Source::Stream(_) => None,
            },
        }
    }

    /// The boxed form, made on first need; `None` for an empty body.
    fn sending(&mut self) -> Option<&mut Sending> {
        if let Kind::Full(bytes) = &mut self.0 {
            if bytes.is_empty() {
                return None;
            }
            let bytes = std::mem::take(bytes);
            self.0 = Kind::Boxed(Box::new(Sending {
                source: Source::Full(Some(bytes)),
                counters: None,
                wait: None,
            }));
        }
        match &mut self.0 {
            Kind::Boxed(sending) => Some(sending),
            Kind::Full(_) => None,
        }
    }

    /// Counts the bytes hyper takes with `counter`, if any (an empty body has none to count).
    pub(crate) fn counted(mut self, counter: Option<RequestCounter>) -> Self {
        if let Some(counter) = counter
            && let Some(sending) = self.sending()
        {
            sending.counters = Some(counter);
        }
        self
    }

    /// Holds the first frame back until `wait` is ready (`Expect: 100-continue`).
    pub(crate) fn wait_before_sending(&mut self, wait: Option<BodyWait>) {
        if let Some(wait) = wait
            && let Some(sending) = self.sending()
        {
            sending.wait = Some(wait);
        }
    }

    /// Whether there is a body to send at all.
    pub(crate) fn has_body(&self) -> bool {
        !self.is_end_stream()
    }
}

impl From<Bytes> for RequestBody {
    fn from(bytes: Bytes) -> Self {
        Self(Kind::Full(bytes))
    }
}

impl From<Vec<u8>> for RequestBody {
    fn from(bytes: Vec<u8>) -> Self {
        Self::from(Bytes::from(bytes))
    }
}

impl From<String> for RequestBody {
    fn from(text: String) -> Self {
        Self::from(Bytes::from(text))
    }
}

impl From<&'static str> for RequestBody {
    fn from(text: &'static str) -> Self {
        Self::from(Bytes::from_static(text.as_bytes()))
    }
}

impl From<()> for RequestBody {
    fn from((): ()) -> Self {
        Self::empty()
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let sending = match &mut self.get_mut().0 {
            Kind::Full(bytes) if bytes.is_empty() => return Poll::Ready(None),
            Kind::Full(bytes) => return Poll::Ready(Some(Ok(Frame::data(std::mem::take(bytes))))),
            Kind::Boxed(sending) => &mut **sending,
        };
        if let Some(wait) = &mut sending.wait {
            ready!(wait.poll(cx));
            sending.wait = None;
        }
        let frame = match &mut sending.source {
            Source::Full(bytes) => bytes.take().map(|b| Ok(Frame::data(b))),
            Source::Stream(body) => ready!(Pin::new(body).poll_frame(cx)),
        };
        if let (Some(Ok(frame)), Some(counter)) = (&frame, &mut sending.counters)
            && let Some(data) = frame.data_ref()
        {
            counter.add(data.len() as u64);
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        match &self.0 {
            Kind::Full(bytes) => bytes.is_empty(),
            Kind::Boxed(sending) => match &sending.source {
                Source::Full(bytes) => bytes.is_none(),
                Source::Stream(body) => body.is_end_stream(),
            },
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.0 {
            Kind::Full(bytes) => SizeHint::with_exact(bytes.len() as u64),
            Kind::Boxed(sending) => match &sending.source {
                Source::Full(bytes) => {
                    SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64))
                }
                Source::Stream(body) => body.size_hint(),
            },
        }
    }
}

/// Why reading a response body failed. New kinds of failure may be added.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BodyError {
    /// The connection failed while the body was read (reset, closed early, protocol error).
    #[error("reading the response body failed: {0}")]
    Read(#[source] hyper::Error),
    /// The gzip-encoded body did not decode.
    #[error("decoding the gzip response body failed: {0}")]
    Gzip(#[source] std::io::Error),
    /// The gzip-encoded body expanded more than [`MAX_GZIP_RATIO`](super::MAX_GZIP_RATIO)
    /// times its compressed size, past its first
    /// [`GZIP_RATIO_FROM`](super::GZIP_RATIO_FROM) bytes: a decompression bomb, or a body that
    /// is almost all one repeated byte (read those without decoding: `disable_compression`).
    #[error(
        "decoding the gzip response body stopped: {decoded} bytes from {encoded} compressed \
         bytes, more than {}:1 (the limit against decompression bombs)",
        super::MAX_GZIP_RATIO
    )]
    GzipRatio {
        /// Compressed bytes decoded so far.
        encoded: u64,
        /// Bytes they expanded to.
        decoded: u64,
    },
    /// The request's time limit (`req_timeout`) passed while the body was read.
    #[error("request timed out while reading the response body (ReqTimeout)")]
    Timeout,
}

/// The body of a response, as the caller reads it.
pub struct ResponseBody {
    inner: hyper::body::Incoming,
    /// Hands the connection back to the pool when the body is read to the end (one pointer).
    on_end: Option<ReturnOnEnd>,
    /// Boxed: rare, and large (the body is moved with every response).
    gzip: Option<Box<Gunzip>>,
    /// Where the bytes read are counted, with HTTP records.
    counters: Option<ResponseCounter>,
    deadline: Option<Pin<Box<tokio::time::Sleep>>>,
    sink: Sink,
    req: TraceId,
    finished: bool,
    /// The caller has read body bytes (their first instant is noted).
    read_any: bool,
    /// With streaming: reports the request complete when the body ends or is dropped.
    done: Option<Box<super::stream::DoneGuard>>,
}

impl ResponseBody {
    pub(crate) fn new(
        inner: hyper::body::Incoming,
        gunzip: bool,
        counters: Option<ResponseCounter>,
        deadline: Option<Instant>,
        sink: Sink,
        req: TraceId,
    ) -> Self {
        Self {
            inner,
            on_end: None,
            gzip: gunzip.then(|| Box::new(Gunzip::new())),
            counters,
            deadline: deadline.map(|d| Box::pin(tokio::time::sleep_until(d.into()))),
            sink,
            req,
            finished: false,
            read_any: false,
            done: None,
        }
    }

    /// Reports the request complete through `done` once this body ends (or is dropped).
    pub(crate) fn set_done(&mut self, done: Box<super::stream::DoneGuard>) {
        self.done = Some(done);
    }

    /// Hands the connection back through `on_end` once the body has been read to the end,
    /// before the caller sees the end.
    pub(crate) fn on_end(mut self, on_end: Option<ReturnOnEnd>) -> Self {
        self.on_end = on_end;
        self
    }

    /// The trace ID of the request this body answers (the `traceID` of its `HTTPReqTrace`).
    pub fn trace_id(&self) -> &TraceId {
        &self.req
    }

    /// Reads the whole body.
    pub async fn bytes(self) -> Result<Bytes, BodyError> {
        Ok(self.collect().await?.to_bytes())
    }

    /// Reads the whole body as text (invalid UTF-8 replaced).
    pub async fn text(self) -> Result<String, BodyError> {
        let bytes = self.bytes().await?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    /// Stops reading before the end of the body and records the request as canceled
    /// (`reqError`), as a caller does that gives up on a transfer (Ctrl-C). Dropping the body
    /// records nothing, as in Go, where closing a body early is no error. A body read to its
    /// end (or that failed) is left as it is.
    pub fn cancel(mut self) {
        if !self.finished {
            self.finished = true;
            self.mark_stop();
            self.sink.emit(Event::HttpFailed {
                req: self.req.clone(),
                error: "canceled while reading the response body".to_owned(),
            });
        }
    }

    fn fail(&mut self, error: BodyError) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        self.finished = true;
        self.mark_stop();
        self.sink.emit(Event::HttpFailed {
            req: self.req.clone(),
            error: error.to_string(),
        });
        self.done.take();
        Poll::Ready(Some(Err(error)))
    }

    /// Counts `bytes` read by the caller; the first bytes are stamped with the time (the
    /// last ones are when reading stops: [`Self::mark_end`], [`Self::mark_stop`]).
    fn count(&mut self, bytes: usize) {
        if let Some(counter) = &mut self.counters {
            counter.add(bytes as u64);
            if !self.read_any {
                self.read_any = true;
                counter.first_read(Instant::now());
            }
        }
    }

    /// Notes that the caller reached the end of the body, now (the last byte's time).
    fn mark_end(&mut self) {
        if let Some(counter) = &mut self.counters {
            counter.last_read(Instant::now());
        }
    }

    /// The end, after [`Self::mark_end`]: the request is reported complete.
    fn finish(&mut self) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        self.finished = true;
        self.done.take();
        Poll::Ready(None)
    }

    /// Reading stopped before the end (a failure, a cancel, a drop): after bytes were read,
    /// now is the last byte's time.
    fn mark_stop(&mut self) {
        if let (true, Some(counter)) = (self.read_any, &mut self.counters) {
            counter.last_read(Instant::now());
        }
    }
}

impl Drop for ResponseBody {
    /// A body dropped before its end: its last byte's time is now (before the request is
    /// reported complete, when the `done` guard is dropped).
    fn drop(&mut self) {
        if !self.finished {
            self.mark_stop();
        }
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = self.get_mut();
        if this.finished {
            return Poll::Ready(None);
        }
        loop {
            if let Some(deadline) = &mut this.deadline
                && deadline.as_mut().poll(cx).is_ready()
            {
                return this.fail(BodyError::Timeout);
            }
            if let Some(gzip) = this.gzip.as_deref_mut() {
                let next = gzip.next_frame();
                let done = gzip.is_done();
                match next {
                    Ok(Some(decoded)) => {
                        this.count(decoded.len());
                        return Poll::Ready(Some(Ok(Frame::data(decoded))));
                    }
                    Ok(None) if done => {
                        this.mark_end();
                        return this.finish();
                    }
                    Ok(None) => {}
                    Err(error) => return this.fail(error),
                }
            }
            let frame = match ready!(Pin::new(&mut this.inner).poll_frame(cx)) {
                Some(Ok(frame)) => frame,
                Some(Err(error)) => return this.fail(BodyError::Read(error)),
                None => {
                    if this.gzip.is_none() {
                        this.mark_end();
                    }
                    if let Some(on_end) = this.on_end.take() {
                        on_end.report();
                    }
                    match &mut this.gzip {
                        // The decoder's rest comes out in the next rounds.
                        Some(gzip) => {
                            gzip.end_input();
                            continue;
                        }
                        None => return this.finish(),
                    }
                }
            };
            // The last bytes of a body of known length: the connection is idle from here,
            // also for a caller that stops reading once it has them all.
            if this.on_end.is_some()
                && this.inner.is_end_stream()
                && let Some(on_end) = this.on_end.take()
            {
                on_end.report();
            }
            match frame.into_data() {
                Ok(data) => match &mut this.gzip {
                    Some(gzip) => gzip.push(data),
                    None if data.is_empty() => {}
                    None => {
                        this.count(data.len());
                        return Poll::Ready(Some(Ok(Frame::data(data))));
                    }
                },
                Err(frame) => return Poll::Ready(Some(Ok(frame))),
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.finished
    }

    fn size_hint(&self) -> SizeHint {
        match self.gzip {
            Some(_) => SizeHint::default(),
            None => self.inner.size_hint(),
        }
    }
}

#[cfg(test)]
mod tests {
    use http_body_util::{BodyExt, Full};

    use super::*;
    use crate::event::BodyCounters;

    /// Reads `body` to the end; returns the bytes.
    async fn read_all(body: RequestBody) -> Vec<u8> {
        body.collect()
            .await
            .map(|collected| collected.to_bytes().to_vec())
            .unwrap_or_else(|e| panic!("reading the body failed: {e}"))
    }

    #[test]
    fn a_request_body_is_no_larger_than_hyper_moves_cheaply() {
        // `Request<RequestBody>` then stays within 256 bytes (see `Kind`).
        assert!(std::mem::size_of::<RequestBody>() <= 32);
        assert!(std::mem::size_of::<http::Request<RequestBody>>() <= 256);
    }

    #[test]
    fn a_response_is_moved_cheaply_too() {
        // The response is moved about ten times on its way to the caller; above 256 bytes
        // each `memcpy` takes its slower path (see `ReturnOnEnd`).
        assert!(std::mem::size_of::<http::Response<ResponseBody>>() <= 256);
    }

    #[tokio::test]
    async fn bodies_count_what_is_taken_and_replay_only_from_memory() {
        let (counters, counter, _) = BodyCounters::with_writers(Instant::now());
        let full = RequestBody::from("hello").counted(Some(counter));
        let replay = full.try_clone().map(read_all);
        assert_eq!(read_all(full).await, b"hello");
        assert_eq!(counters.request(), 5);
        assert_eq!(replay.expect("in memory").await, b"hello");
        assert_eq!(
            counters.request(),
            5,
            "a replay counts with its own hop's counter"
        );

        let (_, counter, _) = BodyCounters::with_writers(Instant::now());
        let empty = RequestBody::empty().counted(Some(counter));
        assert!(!empty.has_body());
        assert!(matches!(empty.0, Kind::Full(_)), "nothing boxed");

        let stream = RequestBody::stream(Full::new(Bytes::from("abcde")));
        assert!(stream.try_clone().is_none(), "a stream is not replayed");
        let (counters, counter, _) = BodyCounters::with_writers(Instant::now());
        let stream = stream.counted(Some(counter));
        assert_eq!(read_all(stream).await, b"abcde");
        assert_eq!(counters.request(), 5);
    }
}
