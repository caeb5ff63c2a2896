//! Destroy events: the namespace's conntrack destroy events bring the final state and
//! counters of each traced flow, so that an entry that expires before the trace is taken is
//! still caught.
//!
//! A thread waits for events and drains them; a snapshot drains them too, first, so that it
//! holds every event queued before it. Datagrams are only taken under the drain lock and
//! handled before it is released, so a snapshot never misses one that the thread is holding.
//! The thread holds only a weak reference to the tracker's state and ends within one tick
//! after the tracker is dropped.
use std::{
    sync::{Arc, Mutex, PoisonError, Weak},
    thread,
    time::Duration,
};

use super::{
    ConntrackError,
    message::{Decoded, decode_datagram},
    netlink::{EventSocket, event_buffer},
    tracker::Shared,
};

/// How often the thread checks whether its tracker still exists.
pub(crate) const TICK: Duration = Duration::from_millis(100);

/// The event socket and the buffer it is drained into (the drain lock).
#[derive(Debug)]
pub(crate) struct Events {
    socket: Arc<EventSocket>,
    buf: Mutex<Vec<u8>>,
}

impl Events {
    /// Wraps the subscribed socket.
    pub(crate) fn new(socket: EventSocket) -> Self {
        Self {
            socket: Arc::new(socket),
            buf: Mutex::new(event_buffer()),
        }
    }

    /// Handles every queued event; false when the socket failed for good.
    pub(crate) fn drain(&self, shared: &Shared) -> bool {
        let mut buf = self.buf.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            match self.socket.try_recv(&mut buf) {
                Ok(None) => return true,
                Ok(Some(n)) => handle_datagram(shared, buf.get(..n).unwrap_or_default()),
                Err(ConntrackError::Syscall { source, .. })
                    if source.raw_os_error() == Some(libc::ENOBUFS) =>
                {
                    shared.events_lost();
                }
                Err(error) => {
                    tracing::warn!(%error, "conntrack: destroy events no longer received");
                    return false;
                }
            }
        }
    }
}

/// Starts the thread that drains the events of `shared` as they come.
pub(crate) fn spawn(shared: Weak<Shared>, socket: Arc<EventSocket>) -> Result<(), ConntrackError> {
    thread::Builder::new()
        .name("nettrace-conntrack".into())
        .spawn(move || run(&socket, &shared))
        .map(drop)
        .map_err(|e| ConntrackError::Syscall {
            call: "spawn conntrack event thread",
            source: e,
        })
}

impl Events {
    /// The socket, for the thread's waits.
    pub(crate) fn socket(&self) -> Arc<EventSocket> {
        self.socket.clone()
    }
}

fn run(socket: &EventSocket, shared: &Weak<Shared>) {
    loop {
        let ready = socket.wait();
        let Some(shared) = shared.upgrade() else {
            return;
        };
        let alive = match ready {
            Ok(false) => true,
            // ENOBUFS shows in the wait too: the drain reports and clears it.
            Ok(true) | Err(ConntrackError::Syscall { .. }) => shared.drain_events(),
            Err(error) => {
                tracing::warn!(%error, "conntrack: destroy events no longer received");
                false
            }
        };
        if !alive {
            return;
        }
    }
}

fn handle_datagram(shared: &Shared, datagram: &[u8]) {
    for item in decode_datagram(datagram) {
        match item {
            Ok(Decoded::Entry {
                msg,
                destroyed: true,
                ..
            }) => shared.destroyed(&msg),
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "conntrack: skipping a destroy event"),
        }
    }
}
