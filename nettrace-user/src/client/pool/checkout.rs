//! The checkout: a connection for one request, from the pool or dialed.
use std::sync::Arc;

use super::{Found, Pool, PoolKey, PooledConn, dial::Dialing};
use crate::client::exchange_error::ExchangeError;

/// Connections taken from the pool that turned out closed, at most, before dialing anyway.
const MAX_TAKES: usize = 16;

/// What ended a wait for a connection.
enum Next {
    Dialed(Result<PooledConn, ExchangeError>),
    HandedBack(Option<PooledConn>),
}

impl Pool {
    /// A connection for a request to `key`, and whether it was used before (a request that
    /// it gives back unsent may then be retried on another).
    ///
    /// An idle connection is used when there is one (after waiting for hyper to finish the
    /// previous exchange on it). Otherwise a dial starts, and a connection handed back to the
    /// pool meanwhile is taken if it comes first; the dial then finishes in the background
    /// and its connection goes to the pool (as in Go's transport and hyper-util).
    pub(crate) async fn checkout(
        self: &Arc<Self>,
        key: &PoolKey,
    ) -> Result<(PooledConn, bool), ExchangeError> {
        let mut dialing: Option<Dialing> = None;
        for _ in 0..MAX_TAKES {
            let waiter = match self.find(key) {
                Found::Conn(mut conn) => {
                    if conn.ready().await.is_ok() {
                        self.finish_in_background(key, dialing);
                        return Ok((conn, true));
                    }
                    continue;
                }
                Found::Dial(waiter) => waiter,
            };
            let dial = dialing.get_or_insert_with(|| self.dial(key));
            let Some(mut waiter) = waiter else {
                return dial.await.map(|conn| (conn, false));
            };
            // The dial first: it is started (and recorded) in any case.
            let next = tokio::select! {
                biased;
                dialed = &mut *dial => Next::Dialed(dialed),
                handed = &mut waiter => Next::HandedBack(handed.ok()),
            };
            match next {
                Next::Dialed(dialed) => return dialed.map(|conn| (conn, false)),
                Next::HandedBack(Some(mut conn)) => {
                    if conn.ready().await.is_ok() {
                        self.finish_in_background(key, dialing);
                        return Ok((conn, true));
                    }
                }
                // The pool was closed: only the dial is left.
                Next::HandedBack(None) => return dial.await.map(|conn| (conn, false)),
            }
        }
        let dial = dialing.unwrap_or_else(|| self.dial(key));
        dial.await.map(|conn| (conn, false))
    }

    /// Lets a dial no longer needed finish, and pools its connection.
    fn finish_in_background(self: &Arc<Self>, key: &PoolKey, dialing: Option<Dialing>) {
        let Some(dialing) = dialing else {
            return;
        };
        let pool = self.clone();
        let key = key.clone();
        tokio::spawn(async move {
            if let Ok(conn) = dialing.await {
                pool.put(&key, conn);
            }
        });
    }
}
