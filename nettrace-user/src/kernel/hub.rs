//! [`KernelHub`]: one loaded set of programs per process, shared by every traced client.
//!
//! Programs are attached once, however many clients trace. Each client gets a slot
//! ([`KernelClient`]); its sockets are registered with the slot's id, the kernel tags their
//! events with it, and the hub hands each event to that client only. A background task drains
//! the ring buffer as events arrive; [`KernelHub::drain`] does the same on demand, so a trace
//! taken right after a request holds every kernel event that happened before it.
use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, Mutex, MutexGuard, PoisonError, Weak},
};

use nettrace_common::limits;

use super::{ClientId, KernelConfig, KernelError, KernelEvent, KernelEvents, KernelTracer};
use crate::SocketCookie;

/// Receives the kernel events of one client.
pub(crate) trait KernelSink: Send + Sync {
    /// One event about one of the client's sockets.
    fn kernel_event(&self, event: KernelEvent);
}

/// The process-wide hub, alive while some client holds it.
static HUB: Mutex<Weak<KernelHub>> = Mutex::new(Weak::new());

/// The loaded programs and the clients using them.
pub(crate) struct KernelHub {
    tracer: KernelTracer,
    events: Mutex<KernelEvents>,
    clients: Mutex<HashMap<ClientId, ClientEntry>>,
    /// Tells the ring-watching thread to end.
    stop: Mutex<Option<tokio::sync::oneshot::Sender<()>>>,
}

struct ClientEntry {
    sink: Weak<dyn KernelSink>,
    sockets: HashSet<SocketCookie>,
}

impl KernelHub {
    /// The process's hub, loading and attaching the programs if no client holds them now.
    ///
    /// The ring buffer is watched by a thread of the hub's own ("nettrace-kernel"), so this
    /// works inside or outside any async runtime and outlives the caller's.
    pub(crate) fn shared(config: &KernelConfig) -> Result<Arc<Self>, KernelError> {
        let mut slot = lock(&HUB);
        if let Some(hub) = slot.upgrade() {
            return Ok(hub);
        }
        let (loaded_tx, loaded_rx) = std::sync::mpsc::channel();
        let (hub_tx, hub_rx) = tokio::sync::oneshot::channel::<Weak<KernelHub>>();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let config = config.clone();
        std::thread::Builder::new()
            .name("nettrace-kernel".to_owned())
            .spawn(move || watch_ring(config, loaded_tx, hub_rx, stop_rx))
            .map_err(KernelError::Thread)?;
        let (tracer, events) = loaded_rx
            .recv()
            .map_err(|_| KernelError::Thread(std::io::Error::other("the kernel thread ended")))??;
        let hub = Arc::new(Self {
            tracer,
            events: Mutex::new(events),
            clients: Mutex::new(HashMap::new()),
            stop: Mutex::new(Some(stop_tx)),
        });
        // If the thread is gone, events are still drained by every snapshot.
        let _ = hub_tx.send(Arc::downgrade(&hub));
        *slot = Arc::downgrade(&hub);
        Ok(hub)
    }

    /// Gives `sink` a client slot.
    pub(crate) fn attach(
        self: &Arc<Self>,
        sink: Weak<dyn KernelSink>,
    ) -> Result<KernelClient, KernelError> {
        let mut clients = lock(&self.clients);
        let id = (0..limits::MAX_CLIENTS)
            .map(ClientId)
            .find(|id| !clients.contains_key(id))
            .ok_or(KernelError::NoClientSlot)?;
        self.tracer.reset_lost_events(id)?;
        clients.insert(
            id,
            ClientEntry {
                sink,
                sockets: HashSet::new(),
            },
        );
        Ok(KernelClient {
            hub: self.clone(),
            id,
        })
    }

    /// Takes every event in the ring buffer now and hands each to its client.
    pub(crate) fn drain(&self) {
        let events = lock(&self.events).drain();
        for event in events {
            match event {
                Ok(event) => self.dispatch(event),
                Err(error) => tracing::warn!(%error, "skipping a kernel event"),
            }
        }
    }

    fn dispatch(&self, event: KernelEvent) {
        let sink = lock(&self.clients)
            .get(&event.client())
            .and_then(|entry| entry.sink.upgrade());
        // Outside the lock: the sink takes its own (the recorder's).
        if let Some(sink) = sink {
            sink.kernel_event(event);
        }
    }
}

impl Drop for KernelHub {
    fn drop(&mut self) {
        // Not joined: the last reference may be dropped on the watching thread itself.
        if let Some(stop) = lock(&self.stop).take() {
            let _ = stop.send(());
        }
    }
}

/// The body of the "nettrace-kernel" thread: loads the programs, reports the result, then
/// drains the ring into the hub whenever it becomes readable, until told to stop.
fn watch_ring(
    config: KernelConfig,
    loaded: std::sync::mpsc::Sender<Result<(KernelTracer, KernelEvents), KernelError>>,
    hub: tokio::sync::oneshot::Receiver<Weak<KernelHub>>,
    mut stop: tokio::sync::oneshot::Receiver<()>,
) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            let _ = loaded.send(Err(KernelError::Thread(error)));
            return;
        }
    };
    runtime.block_on(async move {
        let opened = KernelTracer::load(&config)
            .and_then(|(tracer, events)| Ok((events.readiness()?, tracer, events)));
        let mut readiness = match opened {
            Ok((readiness, tracer, events)) => {
                let _ = loaded.send(Ok((tracer, events)));
                readiness
            }
            Err(error) => {
                let _ = loaded.send(Err(error));
                return;
            }
        };
        let Ok(hub) = hub.await else {
            return;
        };
        // The programs wake this thread only once a batch has built up; the tick picks up
        // the rest (snapshots drain the ring themselves, so they never wait for it).
        let mut tick = tokio::time::interval(super::events::READ_TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = &mut stop => return,
                ready = readiness.readable_mut() => {
                    let Ok(mut ready) = ready else { return };
                    let Some(hub) = hub.upgrade() else { return };
                    hub.drain();
                    ready.clear_ready();
                }
                _ = tick.tick() => {
                    let Some(hub) = hub.upgrade() else { return };
                    hub.drain();
                }
            }
        }
    });
}

/// One client's slot in the hub. Dropping it forgets the client's sockets.
pub(crate) struct KernelClient {
    hub: Arc<KernelHub>,
    id: ClientId,
}

impl KernelClient {
    /// Traces a socket (call before `connect()`).
    pub(crate) fn register(&self, cookie: SocketCookie) -> Result<(), KernelError> {
        self.hub.tracer.register(cookie, self.id)?;
        if let Some(entry) = lock(&self.hub.clients).get_mut(&self.id) {
            entry.sockets.insert(cookie);
        }
        Ok(())
    }

    /// Stops tracing a socket.
    pub(crate) fn unregister(&self, cookie: SocketCookie) -> Result<(), KernelError> {
        if let Some(entry) = lock(&self.hub.clients).get_mut(&self.id) {
            entry.sockets.remove(&cookie);
        }
        self.hub.tracer.unregister(cookie)
    }

    /// Hands every pending kernel event to its client (this one included).
    pub(crate) fn drain(&self) {
        self.hub.drain();
    }

    /// Events of this client lost because the ring buffer was full.
    pub(crate) fn lost_events(&self) -> Result<u64, KernelError> {
        self.hub.tracer.lost_events(self.id)
    }
}

impl Drop for KernelClient {
    fn drop(&mut self) {
        let entry = lock(&self.hub.clients).remove(&self.id);
        for cookie in entry.map(|e| e.sockets).unwrap_or_default() {
            // The programs may have forgotten it at CLOSE already.
            let _ = self.hub.tracer.unregister(cookie);
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section here is a few map operations that cannot leave the data
    // half-updated, so a poisoned lock is still consistent.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
