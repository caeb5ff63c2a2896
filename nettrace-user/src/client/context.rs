//! The request a connection is dialed for, passed from the request to the connector.
//!
//! hyper-util's connector sees only a URI. The client runs each request inside a task-local
//! [`RequestContext`]; the connector reads it when hyper asks for a connection, which happens
//! while the request's own future is polled.
use crate::model::TraceId;

/// What the connector needs to know about the request that asked for a connection.
#[derive(Clone, Debug, Default)]
pub(crate) struct RequestContext {
    /// The HTTP request's trace ID (for `DialTrace` -> request back-references).
    pub(crate) http_req: Option<TraceId>,
    /// The proxy chosen for the request.
    pub(crate) proxy: Option<http::Uri>,
}

tokio::task_local! {
    static CURRENT: RequestContext;
}

/// Runs `future` with `context` as the current request context.
pub(crate) async fn scope<F: std::future::Future>(context: RequestContext, future: F) -> F::Output {
    CURRENT.scope(context, future).await
}

/// The context of the request being polled, or an empty one outside a traced request.
pub(crate) fn current() -> RequestContext {
    CURRENT.try_with(Clone::clone).unwrap_or_default()
}
