//! [`Tracker`]: the conntrack side of one client. It learns each traced connection's
//! original tuple from the connection's events, and reports the connection's conntrack entry
//! to a [`ConntrackSink`] when the connection is established, when it closes, when its
//! entry is destroyed (final counters) and at every snapshot for the others, as late as
//! possible.
//!
//! What cannot be had is logged once per client with the reason: no entry (conntrack not
//! active in the namespace, or the entry already expired), no counters
//! (`net.netfilter.nf_conntrack_acct=0`), lost destroy events. Nothing here changes a
//! system setting.
use crate::sync::lock;
use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{
        Arc, Mutex, Weak,
        atomic::{AtomicBool, Ordering},
    },
    time::Instant,
};

use super::{
    ConntrackError,
    events::{self, Events},
    message::{CtMessage, CtTuple},
    netlink::{EventSocket, Lookup, QuerySocket},
};
use crate::{
    SocketCookie,
    event::{CtSample, Transport},
    model::TraceId,
};

/// Where the tracker reports entries (the client's recorder).
pub(crate) trait ConntrackSink: Send + Sync {
    /// The entry of connection `conn`.
    fn conntrack_sample(&self, conn: &TraceId, sample: CtSample);
}

/// The reply-direction tuple of a traced connection (server to client, after NAT), for
/// selecting its packets after NAT.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ReplyTuple {
    /// The connection.
    pub(crate) conn: TraceId,
    /// TCP or UDP.
    pub(crate) transport: Transport,
    /// Source of reply packets: the server as the client's side of the NAT sees it.
    pub(crate) src: SocketAddr,
    /// Destination of reply packets: the client's address after source NAT.
    pub(crate) dst: SocketAddr,
}

/// A traced connection's flow.
#[derive(Debug)]
struct Flow {
    cookie: Option<SocketCookie>,
    transport: Transport,
    orig: CtTuple,
    /// The kernel's entry ID, once seen: tells a reused tuple's new entry from ours.
    id: Option<u32>,
    reply: Option<CtTuple>,
    closed: bool,
    destroyed: bool,
}

#[derive(Debug, Default)]
struct Flows {
    /// Opened, not connected yet: transport, remote, cookie.
    pending: HashMap<TraceId, (Transport, SocketAddr, Option<SocketCookie>)>,
    flows: HashMap<TraceId, Flow>,
    by_orig: HashMap<CtTuple, TraceId>,
}

impl Flows {
    fn remove(&mut self, conn: &TraceId) {
        if let Some(flow) = self.flows.remove(conn) {
            self.by_orig.remove(&flow.orig);
        }
    }
}

/// State shared with the destroy-event thread.
pub(crate) struct Shared {
    lookup: Mutex<Box<dyn Lookup>>,
    flows: Mutex<Flows>,
    sink: Weak<dyn ConntrackSink>,
    /// Destroy events (none in tests over a fake lookup).
    events: Option<Events>,
    noted_no_entry: AtomicBool,
    noted_no_counters: AtomicBool,
    noted_lost_events: AtomicBool,
}

/// The conntrack side of one client.
pub(crate) struct Tracker {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Tracker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tracker").finish_non_exhaustive()
    }
}

impl Tracker {
    /// Opens ctnetlink in the calling thread's network namespace and starts receiving
    /// destroy events. Fails without CAP_NET_ADMIN ([`ConntrackError::NotPermitted`]).
    pub(crate) fn start(sink: Weak<dyn ConntrackSink>) -> Result<Self, ConntrackError> {
        let query = QuerySocket::open()?;
        let events = EventSocket::open(events::TICK)?;
        note_accounting();
        let events = Events::new(events);
        let socket = events.socket();
        let tracker = Self::with_lookup(Box::new(query), sink, Some(events));
        events::spawn(Arc::downgrade(&tracker.shared), socket)?;
        Ok(tracker)
    }

    /// A tracker over any [`Lookup`], with destroy events when `events` is given (its thread
    /// is started by the caller).
    fn with_lookup(
        lookup: Box<dyn Lookup>,
        sink: Weak<dyn ConntrackSink>,
        events: Option<Events>,
    ) -> Self {
        Self {
            shared: Arc::new(Shared {
                lookup: Mutex::new(lookup),
                flows: Mutex::default(),
                sink,
                events,
                noted_no_entry: AtomicBool::new(false),
                noted_no_counters: AtomicBool::new(false),
                noted_lost_events: AtomicBool::new(false),
            }),
        }
    }

    /// A socket was opened towards `remote`.
    pub(crate) fn opened(
        &self,
        conn: &TraceId,
        transport: Transport,
        remote: SocketAddr,
        cookie: Option<SocketCookie>,
    ) {
        lock(&self.shared.flows)
            .pending
            .insert(conn.clone(), (transport, remote, cookie));
    }

    /// The connection is established from `local`: its tuple is complete; the entry is
    /// looked up at once (its reply tuple is wanted early).
    pub(crate) fn established(&self, conn: &TraceId, local: SocketAddr) {
        let orig = {
            let mut flows = lock(&self.shared.flows);
            let Some((transport, remote, cookie)) = flows.pending.remove(conn) else {
                return;
            };
            let orig = CtTuple {
                proto: proto_of(transport),
                src: local,
                dst: remote,
            };
            flows.by_orig.insert(orig, conn.clone());
            flows.flows.insert(
                conn.clone(),
                Flow {
                    cookie,
                    transport,
                    orig,
                    id: None,
                    reply: None,
                    closed: false,
                    destroyed: false,
                },
            );
            orig
        };
        self.shared.query(conn, &orig);
    }

    /// The application closed the connection: its entry now, and later ones until it is
    /// destroyed or the trace is cleared.
    pub(crate) fn closed(&self, conn: &TraceId) {
        let orig = {
            let mut flows = lock(&self.shared.flows);
            flows.pending.remove(conn);
            let Some(flow) = flows.flows.get_mut(conn) else {
                return;
            };
            flow.closed = true;
            if flow.destroyed {
                flows.remove(conn);
                return;
            }
            flow.orig
        };
        self.shared.query(conn, &orig);
    }

    /// Handles the destroy events queued so far and looks up the entry of every flow not
    /// destroyed yet (before a snapshot).
    pub(crate) fn refresh(&self) {
        self.shared.drain_events();
        let live: Vec<(TraceId, CtTuple)> = lock(&self.shared.flows)
            .flows
            .iter()
            .filter(|(_, flow)| !flow.destroyed)
            .map(|(conn, flow)| (conn.clone(), flow.orig))
            .collect();
        for (conn, orig) in live {
            self.shared.query(&conn, &orig);
        }
        // A lookup of an expired entry makes the kernel remove it: its destroy event is
        // queued by now.
        self.shared.drain_events();
    }

    /// Forgets closed connections (the trace was cleared; only open ones carry over).
    pub(crate) fn clear(&self) {
        let mut flows = lock(&self.shared.flows);
        let closed: Vec<TraceId> = flows
            .flows
            .iter()
            .filter(|(_, f)| f.closed)
            .map(|(id, _)| id.clone())
            .collect();
        for conn in closed {
            flows.remove(&conn);
        }
    }

    /// The reply tuple of every traced connection whose entry has been seen, by socket
    /// cookie (connections without a cookie are left out).
    pub(crate) fn reply_tuples(&self) -> HashMap<SocketCookie, ReplyTuple> {
        lock(&self.shared.flows)
            .flows
            .iter()
            .filter_map(|(conn, flow)| {
                let reply = flow.reply?;
                Some((
                    flow.cookie?,
                    ReplyTuple {
                        conn: conn.clone(),
                        transport: flow.transport,
                        src: reply.src,
                        dst: reply.dst,
                    },
                ))
            })
            .collect()
    }
}

impl Shared {
    /// Looks up `orig` and reports what was found.
    fn query(&self, conn: &TraceId, orig: &CtTuple) {
        let result = lock(&self.lookup).get(orig);
        let at = Instant::now();
        match result {
            Ok(Some(msg)) => self.found(conn, &msg, at, false),
            Ok(None) => {
                if !self.noted_no_entry.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        %conn,
                        "conntrack: no entry for a traced connection (conntrack is not active \
                         in this network namespace, or the entry already expired); the trace \
                         keeps what was obtained earlier, if anything"
                    );
                }
            }
            Err(error) => tracing::warn!(%error, %conn, "conntrack: lookup failed"),
        }
    }

    /// Handles the queued destroy events; false when they can no longer be received.
    pub(crate) fn drain_events(&self) -> bool {
        self.events.as_ref().is_none_or(|events| events.drain(self))
    }

    /// A destroy event: the final entry of a traced flow, if it is one.
    pub(crate) fn destroyed(&self, msg: &CtMessage) {
        let Some(orig) = msg.orig else {
            return;
        };
        let conn = {
            let mut flows = lock(&self.flows);
            let Some(conn) = flows.by_orig.get(&orig).cloned() else {
                return;
            };
            let Some(flow) = flows.flows.get_mut(&conn) else {
                return;
            };
            // Same tuple, another entry (the port was reused): not ours.
            if let (Some(ours), Some(theirs)) = (flow.id, msg.id)
                && ours != theirs
            {
                return;
            }
            flow.destroyed = true;
            if flow.closed {
                flows.remove(&conn);
            }
            conn
        };
        self.found(&conn, msg, Instant::now(), true);
    }

    /// Destroy events were dropped (the socket buffer overflowed).
    pub(crate) fn events_lost(&self) {
        if !self.noted_lost_events.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                "conntrack: destroy events were lost (receive buffer overflow); an entry that \
                 expires before the trace is taken may be missing its final counters"
            );
        }
    }

    fn found(&self, conn: &TraceId, msg: &CtMessage, at: Instant, destroyed: bool) {
        if let Some(flow) = lock(&self.flows).flows.get_mut(conn) {
            flow.id = msg.id.or(flow.id);
            flow.reply = msg.reply.or(flow.reply);
        }
        if msg.counters.is_none() && !self.noted_no_counters.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                "conntrack: entries carry no packet/byte counters: accounting is off in this \
                 network namespace (sysctl net.netfilter.nf_conntrack_acct=0; nettrace does \
                 not change it)"
            );
        }
        if let Some(sink) = self.sink.upgrade() {
            sink.conntrack_sample(
                conn,
                CtSample {
                    at,
                    entry: msg.to_entry(),
                    destroyed,
                },
            );
        }
    }
}

fn proto_of(transport: Transport) -> u8 {
    match transport {
        Transport::Tcp => libc::IPPROTO_TCP as u8,
        Transport::Udp => libc::IPPROTO_UDP as u8,
    }
}

/// Logs, once at start, when accounting is off in this namespace (read-only check; the
/// sysctl is per network namespace and `/proc/sys/net` shows the caller's).
fn note_accounting() {
    match std::fs::read_to_string("/proc/sys/net/netfilter/nf_conntrack_acct") {
        Ok(value) if value.trim() == "0" => tracing::warn!(
            "conntrack: net.netfilter.nf_conntrack_acct is 0 in this network namespace: \
             entries will have no packet/byte counters (nettrace does not change the setting)"
        ),
        Ok(_) => {}
        Err(error) => tracing::debug!(%error, "conntrack: accounting setting unreadable"),
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;
    use crate::conntrack::message::CtCounters;

    /// Answers every lookup with `entry` (its orig set to the asked tuple), counting lookups.
    struct FakeLookup {
        entry: Option<CtMessage>,
        asked: Arc<Mutex<Vec<CtTuple>>>,
    }

    impl Lookup for FakeLookup {
        fn get(&mut self, tuple: &CtTuple) -> Result<Option<CtMessage>, ConntrackError> {
            lock(&self.asked).push(*tuple);
            Ok(self.entry.clone().map(|msg| CtMessage {
                orig: Some(*tuple),
                ..msg
            }))
        }
    }

    #[derive(Default)]
    struct Samples(Mutex<Vec<(TraceId, CtSample)>>);

    impl ConntrackSink for Samples {
        fn conntrack_sample(&self, conn: &TraceId, sample: CtSample) {
            lock(&self.0).push((conn.clone(), sample));
        }
    }

    fn nat_reply() -> CtMessage {
        CtMessage {
            id: Some(42),
            reply: Some(CtTuple {
                proto: 6,
                src: (Ipv4Addr::new(10, 1, 0, 9), 8080).into(),
                dst: (Ipv4Addr::new(10, 0, 0, 100), 40001).into(),
            }),
            counters: Some((
                CtCounters {
                    packets: 1,
                    bytes: 60,
                },
                CtCounters::default(),
            )),
            ..CtMessage::default()
        }
    }

    #[test]
    fn follows_a_connection_until_destroyed() {
        let samples = Arc::new(Samples::default());
        let asked = Arc::new(Mutex::new(Vec::new()));
        let sink: Weak<dyn ConntrackSink> = Arc::downgrade(&samples) as _;
        let lookup = FakeLookup {
            entry: Some(nat_reply()),
            asked: asked.clone(),
        };
        let tracker = Tracker::with_lookup(Box::new(lookup), sink, None);
        let conn = TraceId::new("tid-1");
        let cookie = SocketCookie(77);
        let local: SocketAddr = (Ipv4Addr::new(10, 0, 0, 1), 40000).into();
        let remote: SocketAddr = (Ipv4Addr::new(192, 0, 2, 7), 80).into();

        tracker.opened(&conn, Transport::Tcp, remote, Some(cookie));
        assert!(
            lock(&asked).is_empty(),
            "no lookup before the tuple is known"
        );
        tracker.established(&conn, local);
        let orig = CtTuple {
            proto: 6,
            src: local,
            dst: remote,
        };
        assert_eq!(*lock(&asked), [orig]);
        let replies = tracker.reply_tuples();
        let reply = &replies[&cookie];
        assert_eq!(
            (reply.src, reply.dst),
            (
                nat_reply().reply.unwrap().src,
                nat_reply().reply.unwrap().dst
            )
        );
        assert_eq!(reply.conn, conn);

        // Another entry with the same tuple (different ID) is not ours.
        tracker.shared.destroyed(&CtMessage {
            id: Some(43),
            orig: Some(orig),
            ..CtMessage::default()
        });
        assert!(lock(&samples.0).iter().all(|(_, s)| !s.destroyed));
        tracker.shared.destroyed(&CtMessage {
            orig: Some(orig),
            ..nat_reply()
        });
        assert!(
            lock(&samples.0)
                .last()
                .is_some_and(|(c, s)| c == &conn && s.destroyed)
        );

        // Destroyed: no more lookups, and closing forgets the flow.
        tracker.refresh();
        assert_eq!(lock(&asked).len(), 1);
        tracker.closed(&conn);
        assert_eq!(lock(&asked).len(), 1);
        assert!(tracker.reply_tuples().is_empty());
    }

    #[test]
    fn closed_flows_are_looked_up_until_cleared() {
        let samples = Arc::new(Samples::default());
        let asked = Arc::new(Mutex::new(Vec::new()));
        let sink: Weak<dyn ConntrackSink> = Arc::downgrade(&samples) as _;
        let lookup = FakeLookup {
            entry: None,
            asked: asked.clone(),
        };
        let tracker = Tracker::with_lookup(Box::new(lookup), sink, None);
        let conn = TraceId::new("tid-2");
        tracker.opened(
            &conn,
            Transport::Udp,
            (Ipv4Addr::LOCALHOST, 53).into(),
            None,
        );
        tracker.established(&conn, (Ipv4Addr::LOCALHOST, 5353).into());
        tracker.closed(&conn);
        tracker.refresh();
        assert_eq!(lock(&asked).len(), 3);
        assert!(lock(&asked).iter().all(|t| t.proto == 17));
        assert!(
            lock(&samples.0).is_empty(),
            "nothing found, nothing reported"
        );
        tracker.clear();
        tracker.refresh();
        assert_eq!(lock(&asked).len(), 3);
    }
}
