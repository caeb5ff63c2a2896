//! `Expect: 100-continue` with a time limit (Go's `ExpectContinueTimeout`): the request body
//! waits until the server's `100 Continue` arrives or the limit passes, whichever is first.
//!
//! hyper reports informational responses through a callback on the request
//! ([`hyper::ext::on_informational`]); the gate opens from there.
use std::{
    future::Future,
    pin::Pin,
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicBool, Ordering},
    },
    task::{Context, Poll, Waker},
    time::Duration,
};

use http::{Request, StatusCode, header};

/// Opens when the server says `100 Continue`.
#[derive(Debug, Default)]
pub(crate) struct ContinueGate {
    open: AtomicBool,
    waker: Mutex<Option<Waker>>,
}

impl ContinueGate {
    fn open(&self) {
        self.open.store(true, Ordering::Release);
        if let Some(waker) = self
            .waker
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            waker.wake();
        }
    }
}

/// What the request body waits on before its first frame.
pub(crate) struct BodyWait {
    gate: Arc<ContinueGate>,
    limit: Duration,
    /// Started at the first poll: hyper polls the body once the request head is written,
    /// which is where Go's limit starts counting.
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl BodyWait {
    /// Ready once the gate is open or the limit has passed.
    pub(crate) fn poll(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if self.gate.open.load(Ordering::Acquire) {
            return Poll::Ready(());
        }
        *self
            .gate
            .waker
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(cx.waker().clone());
        // Checked again after registering, so an opening in between is not missed.
        if self.gate.open.load(Ordering::Acquire) {
            return Poll::Ready(());
        }
        let limit = self.limit;
        let timer = self
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        if timer.as_mut().poll(cx).is_ready() {
            return Poll::Ready(());
        }
        Poll::Pending
    }
}

/// For a request that expects `100 Continue` and has a body: installs the callback and returns
/// what the body must wait on. Otherwise `None` (the body goes out at once, as in Go).
pub(crate) fn install<B>(
    request: &mut Request<B>,
    has_body: bool,
    limit: Option<Duration>,
) -> Option<BodyWait> {
    let limit = limit.filter(|l| !l.is_zero())?;
    let expects = request
        .headers()
        .get(header::EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    if !expects || !has_body {
        return None;
    }
    let gate = Arc::new(ContinueGate::default());
    let opener = gate.clone();
    hyper::ext::on_informational(request, move |response| {
        if response.status() == StatusCode::CONTINUE {
            opener.open();
        }
    });
    Some(BodyWait {
        gate,
        limit,
        timer: None,
    })
}
