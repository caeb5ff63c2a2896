//! A new connection for the pool: dialed by the traced connector (which records it), then
//! hyper's HTTP/1 or HTTP/2 handshake, with the connection's driver in a task of its own.
use std::{future::Future, pin::Pin, sync::Arc};

use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};

use super::{
    Pool, PoolKey,
    conn::{PooledConn, Sender},
};
use crate::client::{
    RequestError, RequestErrorKind, conn::TracedConn, connector::ConnectFailed,
    exchange_error::ExchangeError,
};

/// A dial in progress.
pub(super) type Dialing = Pin<Box<dyn Future<Output = Result<PooledConn, ExchangeError>> + Send>>;

impl Pool {
    /// Starts a dial for `key`. Called while the request is polled: the connector reads the
    /// request's context now. A new HTTP/2 connection is shared at once.
    pub(super) fn dial(self: &Arc<Self>, key: &PoolKey) -> Dialing {
        let connecting = key.dial_uri().map(|uri| self.connector.connect(uri));
        let pool = self.clone();
        let key = key.clone();
        Box::pin(async move {
            let Some(connecting) = connecting else {
                return Err(ExchangeError::Connect(ConnectFailed(RequestError::new(
                    RequestErrorKind::InvalidRequest,
                    "no URI to dial for the request",
                ))));
            };
            let io = connecting.await.map_err(ExchangeError::Connect)?;
            let conn = handshake(io).await?;
            if let Some(copy) = conn.share() {
                pool.share(&key, copy);
            }
            Ok(conn)
        })
    }
}

/// hyper's handshake over `io`: HTTP/2 when ALPN chose it, else HTTP/1.1. Returns once the
/// connection can take a request.
async fn handshake(io: TracedConn) -> Result<PooledConn, ExchangeError> {
    let info = Arc::new(io.info.clone());
    let proxied = io.proxied;
    let sender = if io.negotiated_h2 {
        let (mut sender, driver) = http2::Builder::new(TokioExecutor::new())
            .timer(TokioTimer::new())
            .handshake(TokioIo::new(io))
            .await
            .map_err(ExchangeError::send)?;
        tokio::spawn(async move {
            if let Err(error) = driver.await {
                tracing::debug!(%error, "nettrace: HTTP/2 connection ended");
            }
        });
        sender.ready().await.map_err(ExchangeError::send)?;
        Sender::Http2(sender)
    } else {
        let (mut sender, driver) = http1::Builder::new()
            .handshake(TokioIo::new(io))
            .await
            .map_err(ExchangeError::send)?;
        // The driver's own error says more than the sender's "connection closed".
        let (failed, failure) = tokio::sync::oneshot::channel();
        tokio::spawn(async move {
            if let Err(error) = driver.with_upgrades().await {
                tracing::debug!(%error, "nettrace: HTTP/1 connection ended");
                let _ = failed.send(error);
            }
        });
        match sender.ready().await {
            Ok(()) => {}
            Err(error) if error.is_closed() => {
                return Err(ExchangeError::send(failure.await.unwrap_or(error)));
            }
            Err(error) => return Err(ExchangeError::send(error)),
        }
        Sender::Http1(sender)
    };
    Ok(PooledConn {
        sender,
        info,
        proxied,
    })
}
