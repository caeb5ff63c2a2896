//! The request a connection is dialed for, passed from the request to the connector.
//!
//! The connector sees only a URI. The client polls each request's exchange inside [`scope`],
//! which makes its [`RequestContext`] the current one while it is polled; the connector reads
//! it ([`current`]) when the pool starts a dial, which happens while the request's own future
//! is polled.
//!
//! Like a tokio task-local, but the context stays in the scoped future: polling only points a
//! thread-local at it (and back), where a task-local would move the context in and out.
//!
//! ```ignore
//! let response = context::scope(context, exchange::send(pool, request, proxy)).await;
//! // Inside, during a poll: the connector's `call` sees it.
//! let context = context::current();
//! ```
use std::{
    cell::Cell,
    future::Future,
    pin::Pin,
    ptr,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    task::{Context, Poll},
};

use tokio::sync::Notify;

use crate::model::TraceId;

/// What the connector needs to know about the request that asked for a connection.
#[derive(Clone, Debug, Default)]
pub(crate) struct RequestContext {
    /// The HTTP request's trace ID (for `DialTrace` -> request back-references).
    pub(crate) http_req: Option<TraceId>,
    /// The proxy chosen for the request. Boxed: rare, and the context is swapped in and out
    /// of the task-local slot at every poll of the request.
    pub(crate) proxy: Option<Box<super::proxy::ProxyRoute>>,
    /// Tells the request when a connection dialed for it is ready (only when it has a
    /// response-header limit to start).
    pub(crate) dial: Option<Arc<DialProgress>>,
}

/// Tells a request when the connection dialed for it is ready (or failed), so that its
/// response-header timer starts when the request can be written.
#[derive(Debug, Default)]
pub(crate) struct DialProgress {
    dialing: AtomicBool,
    ended: Notify,
}

impl DialProgress {
    /// The connector started a dial for the request.
    pub(crate) fn started(&self) {
        self.dialing.store(true, Ordering::Release);
    }

    /// The dial ended.
    pub(crate) fn ended(&self) {
        self.dialing.store(false, Ordering::Release);
        // Stores a permit when nobody waits yet, so the end is not missed.
        self.ended.notify_one();
    }

    /// Returns when no dial for the request is in progress.
    pub(crate) async fn connected(&self) {
        while self.dialing.load(Ordering::Acquire) {
            self.ended.notified().await;
        }
    }
}

thread_local! {
    /// The context of the [`Scoped`] future being polled on this thread; null outside one.
    static CURRENT: Cell<*const RequestContext> = const { Cell::new(ptr::null()) };
}

/// A future polled with its request context as the current one (see [`scope`]).
pub(crate) struct Scoped<F> {
    context: RequestContext,
    future: F,
}

/// Runs `future` with `context` as the current request context.
pub(crate) fn scope<F: Future + Unpin>(context: RequestContext, future: F) -> Scoped<F> {
    Scoped { context, future }
}

impl<F: Future + Unpin> Future for Scoped<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.get_mut();
        let _current = Enter::new(&this.context);
        Pin::new(&mut this.future).poll(cx)
    }
}

/// Makes a context the current one until dropped (also when the poll panics), then restores
/// the one before (scopes can nest).
struct Enter {
    previous: *const RequestContext,
}

impl Enter {
    fn new(context: &RequestContext) -> Self {
        let previous = CURRENT.with(|current| current.replace(context));
        Self { previous }
    }
}

impl Drop for Enter {
    fn drop(&mut self) {
        CURRENT.with(|current| current.set(self.previous));
    }
}

/// The context of the request being polled, or an empty one outside a traced request.
pub(crate) fn current() -> RequestContext {
    CURRENT.with(|current| {
        // SAFETY: the pointer is null, or was set by an `Enter` that is still alive: `Enter`
        // lives only for one poll of the `Scoped` future that owns the context, on this
        // thread, and restores the previous value when dropped. During that poll the context
        // is neither moved (the future is borrowed) nor mutated (only the `future` field is
        // borrowed mutably), so the shared reference made here is valid while it is used.
        let context = unsafe { current.get().as_ref() };
        context.cloned().unwrap_or_default()
    })
}

#[cfg(test)]
mod tests {
    use std::{future::Future, pin::Pin, task::Poll};

    use super::*;
    use crate::model::TraceId;

    /// A future that reads the current context's request ID when polled.
    struct Peek;

    impl Future for Peek {
        type Output = Option<TraceId>;

        fn poll(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Self::Output> {
            Poll::Ready(current().http_req)
        }
    }

    fn with_req(id: &str) -> RequestContext {
        RequestContext {
            http_req: Some(TraceId::new(id)),
            ..RequestContext::default()
        }
    }

    #[tokio::test]
    async fn current_only_while_polled_and_nested_scopes_restore() {
        assert_eq!(current().http_req, None);
        assert_eq!(scope(with_req("a"), Peek).await, Some(TraceId::new("a")));
        assert_eq!(current().http_req, None, "cleared after the poll");
        let outer = scope(
            with_req("outer"),
            Box::pin(async {
                let inner = scope(with_req("inner"), Peek).await;
                (inner, current().http_req)
            }),
        );
        let (inner, after) = outer.await;
        assert_eq!(inner, Some(TraceId::new("inner")));
        assert_eq!(
            after,
            Some(TraceId::new("outer")),
            "restored after the nested poll"
        );
    }
}
