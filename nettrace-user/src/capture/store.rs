//! [`CaptureStore`]: the packets one client captured, per interface, within its limits.
use std::time::Instant;

use bytes::Bytes;
use time::OffsetDateTime;

use super::{
    CaptureInterfaceInfo, CapturedPacket, PacketCapture, PacketCaptureOptions, PacketDirection,
};
use crate::{
    SocketCookie,
    event::{Direction, PacketRecord},
    model::TraceId,
};

/// The packets of one client's capture interfaces, in the order they arrived.
#[derive(Debug)]
pub(crate) struct CaptureStore {
    options: PacketCaptureOptions,
    interfaces: Vec<StoredInterface>,
}

#[derive(Debug)]
struct StoredInterface {
    info: CaptureInterfaceInfo,
    packets: Vec<StoredPacket>,
    /// Captured bytes kept (counted against the total size limit).
    bytes: usize,
    truncated: bool,
}

/// A packet as kept until a snapshot names its connection and request.
#[derive(Debug)]
struct StoredPacket {
    at: Instant,
    /// The traced socket of its flow (none for ICMP/ARP).
    cookie: Option<SocketCookie>,
    direction: PacketDirection,
    original_len: u32,
    data: Bytes,
}

/// Names, for a snapshot, the connection and HTTP request of a packet of `cookie` seen at an
/// instant.
pub(crate) trait PacketOwners {
    /// The connection's trace ID and the request it carried then, when known.
    fn owners(&self, cookie: SocketCookie, at: Instant) -> (Option<TraceId>, Option<TraceId>);
    /// The wall-clock time of `at`.
    fn wall_time(&self, at: Instant) -> OffsetDateTime;
}

impl CaptureStore {
    /// An empty store for `interfaces`, with the limits of `options`.
    pub(crate) fn new(
        options: PacketCaptureOptions,
        interfaces: Vec<CaptureInterfaceInfo>,
    ) -> Self {
        Self {
            options,
            interfaces: interfaces
                .into_iter()
                .map(|info| StoredInterface {
                    info,
                    packets: Vec::new(),
                    bytes: 0,
                    truncated: false,
                })
                .collect(),
        }
    }

    /// Keeps a packet, unless its interface's total size limit is reached (the capture is
    /// then marked truncated and keeps nothing more).
    pub(crate) fn add(&mut self, packet: PacketRecord) {
        let Some(interface) = self
            .interfaces
            .iter_mut()
            .find(|i| i.info.index == packet.ifindex)
        else {
            return;
        };
        if interface.truncated {
            return;
        }
        // ICMP and ARP may come with another client's larger snap length.
        let kept = packet.data.len().min(self.options.snaplen as usize);
        if interface.bytes + kept > self.options.total_size_limit {
            interface.truncated = true;
            return;
        }
        interface.bytes += kept;
        let direction = match packet.direction {
            Direction::Sent => PacketDirection::Egress,
            Direction::Received => PacketDirection::Ingress,
        };
        interface.packets.push(StoredPacket {
            at: packet.time.to_instant(),
            cookie: (packet.cookie.0 != 0).then_some(packet.cookie),
            direction,
            original_len: packet.packet_len,
            // A copy of just the kept bytes: the packet is a view of a whole drained batch
            // (other packets and clients included), which must not stay alive with it.
            data: Bytes::copy_from_slice(&packet.data[..kept]),
        });
    }

    /// Forgets every packet (a new trace begins).
    pub(crate) fn clear(&mut self) {
        for interface in &mut self.interfaces {
            interface.packets = Vec::new();
            interface.bytes = 0;
            interface.truncated = false;
        }
    }

    /// One capture per interface, with each packet's connection and request named.
    /// `lost_packets` is the client's count of packets the kernel could not hand over.
    pub(crate) fn captures(
        &self,
        owners: &dyn PacketOwners,
        lost_packets: u64,
    ) -> Vec<PacketCapture> {
        self.interfaces
            .iter()
            .map(|interface| PacketCapture {
                interface_name: interface.info.name.clone(),
                link_kind: interface.info.link_kind,
                snap_len: self.options.snaplen,
                packets: interface
                    .packets
                    .iter()
                    .map(|packet| {
                        let (conn_id, http_request_id) = match packet.cookie {
                            Some(cookie) => owners.owners(cookie, packet.at),
                            None => (None, None),
                        };
                        CapturedPacket {
                            timestamp: owners.wall_time(packet.at),
                            data: packet.data.clone(),
                            original_len: packet.original_len,
                            direction: packet.direction,
                            conn_id,
                            http_request_id,
                        }
                    })
                    .collect(),
                truncated: interface.truncated,
                lost_packets,
                with_tcp_payload: self.options.keeps_tcp_payload(),
                tls_key_log: String::new(),
            })
            .collect()
    }
}
