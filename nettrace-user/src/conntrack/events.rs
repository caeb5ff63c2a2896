//! The destroy-event reader: a thread that receives the namespace's conntrack destroy events
//! and hands each traced flow's final entry to the tracker, so that an entry that expires
//! before the trace is taken is still caught with its final counters.
//!
//! The thread holds only a weak reference to the tracker's state and ends within one tick
//! after the tracker is dropped.
use std::{
    sync::{Arc, Weak},
    thread,
    time::Duration,
};

use super::{
    ConntrackError,
    message::{Decoded, decode_datagram},
    netlink::{EventSocket, event_buffer},
    tracker::Shared,
};

/// How often the reader checks whether its tracker still exists.
pub(crate) const TICK: Duration = Duration::from_millis(100);

/// Starts the reader of `socket` for `shared`.
pub(crate) fn spawn(socket: EventSocket, shared: Weak<Shared>) -> Result<(), ConntrackError> {
    thread::Builder::new()
        .name("nettrace-conntrack".into())
        .spawn(move || run(&socket, &shared))
        .map(drop)
        .map_err(|e| ConntrackError::Syscall {
            call: "spawn conntrack event thread",
            source: e,
        })
}

fn run(socket: &EventSocket, shared: &Weak<Shared>) {
    let mut buf = event_buffer();
    loop {
        let received = socket.recv(&mut buf);
        let Some(shared) = shared.upgrade() else {
            return;
        };
        match received {
            Ok(None) => {}
            Ok(Some(n)) => handle_datagram(&shared, buf.get(..n).unwrap_or_default()),
            Err(ConntrackError::Syscall { source, .. })
                if source.raw_os_error() == Some(libc::ENOBUFS) =>
            {
                shared.events_lost();
            }
            Err(error) => {
                tracing::warn!(%error, "conntrack: destroy events no longer received");
                return;
            }
        }
    }
}

fn handle_datagram(shared: &Arc<Shared>, datagram: &[u8]) {
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
