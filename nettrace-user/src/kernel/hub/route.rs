//! How a drained batch of kernel events reaches the clients: runs of consecutive events for
//! the same client, each resolved to the client's sink once and handed on in one call.
use std::sync::Arc;

use super::KernelSink;
use crate::{event::UnboxedEvent, kernel::ClientId};

/// Where one event goes, as routing finds it.
pub(super) enum Destination {
    /// Nowhere (a packet of an interface its client does not capture on).
    Nowhere,
    /// The client of this slot, if it is still there.
    Client(ClientId),
    /// A packet of no flow, for every client capturing its kind on its interface.
    Many(Vec<Arc<dyn KernelSink>>),
}

/// Where a run of events goes.
pub(super) enum Recipients {
    None,
    One(Arc<dyn KernelSink>),
    /// A packet of no flow, for every client capturing its kind on its interface.
    Many(Vec<Arc<dyn KernelSink>>),
}

/// The next `count` events of a batch go to `to` (a [`Destination`], then its
/// [`Recipients`]).
pub(super) struct Run<T> {
    to: T,
    count: usize,
}

/// Groups the destinations of a batch's events, in order, into runs: consecutive events of
/// one client (or of none) form one run; a packet for many clients is a run of its own.
/// Inlined into the drain (see [`super::batch`]).
#[inline]
pub(super) fn group(destinations: impl IntoIterator<Item = Destination>) -> Vec<Run<Destination>> {
    let mut runs: Vec<Run<Destination>> = Vec::new();
    for destination in destinations {
        if let Some(last) = runs.last_mut() {
            let same = match (&last.to, &destination) {
                (Destination::Client(last), Destination::Client(id)) => last == id,
                (Destination::Nowhere, Destination::Nowhere) => true,
                _ => false,
            };
            if same {
                last.count += 1;
                continue;
            }
        }
        runs.push(Run {
            to: destination,
            count: 1,
        });
    }
    runs
}

/// The recipients of each run: a client's, as `owner` finds them, once per run (not once per
/// event: a lookup, and a reference count taken and given back).
pub(super) fn resolve(
    runs: Vec<Run<Destination>>,
    mut owner: impl FnMut(ClientId) -> Recipients,
) -> Vec<Run<Recipients>> {
    runs.into_iter()
        .map(|Run { to, count }| Run {
            to: match to {
                Destination::Nowhere => Recipients::None,
                Destination::Client(id) => owner(id),
                Destination::Many(sinks) => Recipients::Many(sinks),
            },
            count,
        })
        .collect()
}

/// Hands `events` (a batch's) on as `runs` (made from the same batch) say: a client's run in
/// one [`KernelSink::kernel_events_unboxed`] call. The events go from the batch to the sink
/// with no list per run; a sock_ops record is boxed, if at all, as it is handed on (see
/// [`crate::event::DecodedRecord`]).
pub(super) fn hand_on<'a>(
    mut events: impl Iterator<Item = (UnboxedEvent<'a>, &'a [u8])>,
    runs: Vec<Run<Recipients>>,
) {
    for Run {
        to: recipients,
        count,
    } in runs
    {
        let mut run = events.by_ref().take(count);
        match recipients {
            Recipients::None => {}
            Recipients::One(sink) => sink.kernel_events_unboxed(&mut run),
            Recipients::Many(sinks) => {
                for (event, record) in run.by_ref() {
                    let event = event.boxed();
                    for sink in &sinks {
                        sink.kernel_event(event.clone(), record);
                    }
                }
            }
        }
        // What a sink left (and a run of no recipient) must not go to the next run's.
        run.for_each(drop);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::{
        KernelTime, SocketCookie,
        event::{KernelEvent, KernelTcpState, TcpStateChange},
    };

    /// Keeps the cookies of the events it is handed, taking at most `take` per call.
    struct Sink {
        take: usize,
        seen: Mutex<Vec<u64>>,
    }

    impl Sink {
        fn new(take: usize) -> Arc<Self> {
            Arc::new(Self {
                take,
                seen: Mutex::new(Vec::new()),
            })
        }

        fn seen(&self) -> Vec<u64> {
            self.seen.lock().unwrap().clone()
        }
    }

    impl KernelSink for Sink {
        fn kernel_event(&self, event: KernelEvent, _record: &[u8]) {
            self.seen.lock().unwrap().push(event.cookie().0);
        }

        fn kernel_events(&self, events: &mut dyn Iterator<Item = (KernelEvent, &[u8])>) {
            for (event, _) in events.take(self.take) {
                self.seen.lock().unwrap().push(event.cookie().0);
            }
        }
    }

    fn event(cookie: u64) -> (UnboxedEvent<'static>, &'static [u8]) {
        let change = TcpStateChange {
            cookie: SocketCookie(cookie),
            client: ClientId(1),
            time: KernelTime(cookie),
            old: KernelTcpState::Established,
            new: KernelTcpState::Close,
        };
        (UnboxedEvent::Event(KernelEvent::TcpState(change)), &[])
    }

    /// The events 1..=8 to a, a, nobody, b, b, a, a and b, a and b (a packet for both).
    fn route(a: &Arc<Sink>, b: &Arc<Sink>) {
        let (to_a, to_b) = (ClientId(1), ClientId(2));
        let many = || Destination::Many(vec![a.clone(), b.clone() as Arc<dyn KernelSink>]);
        let destinations = vec![
            Destination::Client(to_a),
            Destination::Client(to_a),
            Destination::Nowhere,
            Destination::Client(to_b),
            Destination::Client(to_b),
            Destination::Client(to_a),
            many(),
            many(),
        ];
        let mut owners = Vec::new();
        let runs = resolve(group(destinations), |id| {
            owners.push(id);
            let sink = if id == to_a { a.clone() } else { b.clone() };
            Recipients::One(sink)
        });
        let counts: Vec<usize> = runs.iter().map(|run| run.count).collect();
        assert_eq!(counts, [2, 1, 2, 1, 1, 1]);
        // A client's sink is looked up once per run, not per event.
        assert_eq!(owners, [to_a, to_b, to_a]);
        hand_on((1..=8).map(event), runs);
    }

    #[test]
    fn each_client_gets_its_runs_in_order() {
        let (a, b) = (Sink::new(usize::MAX), Sink::new(usize::MAX));
        route(&a, &b);
        assert_eq!(a.seen(), [1, 2, 6, 7, 8]);
        assert_eq!(b.seen(), [4, 5, 7, 8]);
    }

    #[test]
    fn events_a_sink_leaves_do_not_go_to_the_next_run() {
        let (a, b) = (Sink::new(1), Sink::new(1));
        route(&a, &b);
        assert_eq!(a.seen(), [1, 6, 7, 8]);
        assert_eq!(b.seen(), [4, 7, 8]);
    }
}
