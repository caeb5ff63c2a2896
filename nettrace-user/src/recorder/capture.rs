//! Packet captures in a snapshot: each packet named with its connection and HTTP request.
use std::{collections::HashMap, time::Instant};

use time::OffsetDateTime;

use super::Recorder;
use crate::{
    SocketCookie,
    capture::{PacketCapture, PacketOwners},
    model::TraceId,
};

/// What a snapshot knows about who owns a packet.
struct Owners<'a> {
    recorder: &'a Recorder,
    /// Per connection, its requests by the time they were sent (ascending).
    requests: HashMap<&'a TraceId, Vec<(Instant, &'a TraceId)>>,
}

impl PacketOwners for Owners<'_> {
    fn owners(&self, cookie: SocketCookie, at: Instant) -> (Option<TraceId>, Option<TraceId>) {
        let Some(conn) = self.recorder.by_cookie.get(&cookie).map(|at| &at.id) else {
            return (None, None);
        };
        // The request being sent or answered then: the last one sent before the packet; for
        // the handshake, the request the connection was dialed for.
        let request = self
            .requests
            .get(conn)
            .and_then(|sent| sent.iter().rev().find(|(when, _)| *when <= at))
            .map(|(_, id)| (*id).clone())
            .or_else(|| {
                let dial = &self.recorder.conns.get(conn)?.dial;
                self.recorder.dials.get(dial)?.http_req.clone()
            });
        (Some(conn.clone()), request)
    }

    fn wall_time(&self, at: Instant) -> OffsetDateTime {
        self.recorder.clock.wall_time(at)
    }
}

impl Recorder {
    /// The packet captures of this trace (empty when the client does not capture).
    pub(crate) fn captures(&self, lost_packets: u64) -> Vec<PacketCapture> {
        let Some(store) = &self.capture else {
            return Vec::new();
        };
        let mut requests: HashMap<&TraceId, Vec<(Instant, &TraceId)>> = HashMap::new();
        for (id, rec) in self.http.iter() {
            if let Some(conn) = &rec.conn {
                requests.entry(conn).or_default().push((rec.sent, id));
            }
        }
        for sent in requests.values_mut() {
            sent.sort_by_key(|(when, _)| *when);
        }
        let owners = Owners {
            recorder: self,
            requests,
        };
        store.captures(&owners, lost_packets)
    }
}
