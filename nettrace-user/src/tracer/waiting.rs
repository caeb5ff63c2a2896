//! [`WaitingRequests`]: completed requests whose streamed trace waits for the kernel's last
//! word on a socket the application already closed.
use std::time::{Duration, Instant};

use crate::{
    SocketCookie,
    model::{KernelDataStatus, TraceId},
};

/// How long a completed request's trace waits for the kernel's CLOSE of a socket that the
/// application closed before the request completed. The CLOSE follows the `close()` by about
/// one round trip (the FIN and its answer); a peer slow to answer makes the trace go without
/// the socket's final states and totals.
pub(super) const CLOSE_WAIT: Duration = Duration::from_secs(1);

/// A completed request, not streamed yet.
#[derive(Debug)]
pub(super) struct WaitingRequest {
    /// The request's hops, as the recorder knows them.
    pub(super) hops: Vec<TraceId>,
    /// When it completed.
    pub(super) at: Instant,
    /// The kernel data status when it completed.
    pub(super) kernel_data: Option<KernelDataStatus>,
    /// Its sockets whose CLOSE it waits for.
    sockets: Vec<SocketCookie>,
}

/// Completed requests whose sockets' kernel facts are not all in yet: a socket that counts
/// its calls in the kernel (the library's TCP sockets) sends its transitions, final counters
/// and call totals only with the record of its CLOSE, and once the application has closed it
/// they cannot be read from it either. Its requests are streamed when that record has come,
/// or after [`CLOSE_WAIT`], in the order they completed.
#[derive(Debug, Default)]
pub(super) struct WaitingRequests {
    requests: Vec<WaitingRequest>,
}

impl WaitingRequests {
    /// Holds the request `hops`, completed `at`, until the kernel's CLOSE of `sockets`.
    pub(super) fn wait(
        &mut self,
        hops: Vec<TraceId>,
        at: Instant,
        kernel_data: Option<KernelDataStatus>,
        sockets: Vec<SocketCookie>,
    ) {
        self.requests.push(WaitingRequest {
            hops,
            at,
            kernel_data,
            sockets,
        });
    }

    /// The requests to stream at `now`: the oldest ones, up to the first that still waits
    /// for a socket that `awaits_close` and completed less than [`CLOSE_WAIT`] before. Every
    /// request with `all`.
    pub(super) fn ready(
        &mut self,
        now: Instant,
        all: bool,
        awaits_close: impl Fn(&SocketCookie) -> bool,
    ) -> Vec<WaitingRequest> {
        let waiting = |request: &WaitingRequest| {
            !all && now.saturating_duration_since(request.at) < CLOSE_WAIT
                && request.sockets.iter().any(&awaits_close)
        };
        let ready = self
            .requests
            .iter()
            .position(waiting)
            .unwrap_or(self.requests.len());
        self.requests.drain(..ready).collect()
    }

    /// Whether no request waits.
    pub(super) fn is_empty(&self) -> bool {
        self.requests.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: SocketCookie = SocketCookie(1);
    const B: SocketCookie = SocketCookie(2);

    fn hops(name: &str) -> Vec<TraceId> {
        vec![TraceId::from(name)]
    }

    fn names(ready: Vec<WaitingRequest>) -> Vec<String> {
        ready.into_iter().map(|r| r.hops[0].to_string()).collect()
    }

    /// Requests leave in the order they completed: one waiting for its socket's CLOSE holds
    /// back those after it, until the CLOSE comes or [`CLOSE_WAIT`] has passed.
    #[test]
    fn requests_leave_in_order_once_their_sockets_closed_or_the_wait_is_over() {
        let t = Instant::now();
        let mut waiting = WaitingRequests::default();
        waiting.wait(hops("r1"), t, None, vec![A]);
        waiting.wait(hops("r2"), t, None, vec![B]);
        let open = |open: &'static [SocketCookie]| move |c: &SocketCookie| open.contains(c);
        // B's CLOSE came, A's not yet: r2 waits behind r1.
        assert!(waiting.ready(t, false, open(&[A])).is_empty());
        assert_eq!(names(waiting.ready(t, false, open(&[]))), ["r1", "r2"]);
        assert!(waiting.is_empty());

        waiting.wait(hops("r3"), t, None, vec![A]);
        waiting.wait(hops("r4"), t + CLOSE_WAIT, None, vec![B]);
        // Waited long enough: r3 goes without its CLOSE; r4 still waits for B.
        let later = t + CLOSE_WAIT;
        assert_eq!(names(waiting.ready(later, false, open(&[A, B]))), ["r3"]);
        assert_eq!(names(waiting.ready(later, true, open(&[A, B]))), ["r4"]);
        assert!(waiting.is_empty());
    }
}
