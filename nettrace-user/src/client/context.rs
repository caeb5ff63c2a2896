//! The request a connection is dialed for, passed from the request to the connector.
//!
//! hyper-util's connector sees only a URI. The client runs each request inside a task-local
//! [`RequestContext`]; the connector reads it when hyper asks for a connection, which happens
//! while the request's own future is polled.
use std::sync::{
    Arc,
    atomic::{AtomicBool, Ordering},
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
    pub(crate) proxy: Option<Box<http::Uri>>,
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

tokio::task_local! {
    static CURRENT: RequestContext;
}

/// A future that runs with a request context (see [`scope`]).
pub(crate) type Scoped<F> = tokio::task::futures::TaskLocalFuture<RequestContext, F>;

/// Runs `future` with `context` as the current request context. Not an `async fn`: its
/// future would hold the arguments and the scoped future side by side.
pub(crate) fn scope<F: std::future::Future>(context: RequestContext, future: F) -> Scoped<F> {
    CURRENT.scope(context, future)
}

/// The context of the request being polled, or an empty one outside a traced request.
pub(crate) fn current() -> RequestContext {
    CURRENT.try_with(Clone::clone).unwrap_or_default()
}
