//! Packet captures returned with a trace (Go's `PacketCapture`, one per interface), and the
//! options that ask for them (Go's `WithPacketCapture`).
//!
//! Packets are selected in the kernel by a TC program: only packets of the client's traced
//! connections and DNS exchanges (plus ICMP and ARP when asked) ever reach userspace.
//!
//! A capture is written as pcap ([`PacketCapture::write_to`], `pcap.rs`) or as pcapng with
//! directions, connection IDs and TLS secrets ([`PacketCapture::write_pcapng_to`],
//! `pcapng.rs`); a packet's headers decode with [`CapturedPacket::layers`] (`layers.rs`).
mod files;
mod frame;
mod interface;
mod layers;
mod pcap;
mod pcapng;
mod store;
#[cfg(test)]
mod tests;

use bytes::Bytes;
use time::OffsetDateTime;

use crate::model::TraceId;

pub use interface::CaptureInterfaceInfo;
pub(crate) use store::{CaptureStore, PacketOwners};

pub use layers::{
    ArpPacket, DecodeLayer, DecodeStop, EthernetHeader, IcmpMessage, IpHeader, Network,
    PacketLayers, TcpFlags, TcpSegment, Transport, UdpDatagram,
};

/// Default bytes kept of each packet (Go's default `PacketSnaplen`).
pub const DEFAULT_SNAPLEN: u32 = 1518;
/// The largest snap length: what the kernel copies of one packet at most.
pub const MAX_SNAPLEN: u32 = nettrace_common::limits::MAX_PACKET_BYTES;
/// Default limit on the bytes kept per interface (Go's default `TotalSizeLimit`, 1 MiB).
pub const DEFAULT_TOTAL_SIZE_LIMIT: usize = 1024 * 1024;

/// What to capture (Go's `WithPacketCapture`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PacketCaptureOptions {
    /// Interfaces to capture on, by name (`lo`, `eth0`...).
    pub interfaces: Vec<String>,
    /// Bytes kept of each packet at most (default [`DEFAULT_SNAPLEN`]); at most
    /// [`MAX_SNAPLEN`] (loopback carries packets of up to 64 KiB: their first bytes are kept).
    pub snaplen: u32,
    /// Bytes kept per interface at most; further packets are dropped and the capture is
    /// marked `truncated` (default [`DEFAULT_TOTAL_SIZE_LIMIT`]).
    pub total_size_limit: usize,
    /// Also keep every ICMPv4 and ICMPv6 packet on the interfaces.
    pub include_icmp: bool,
    /// Also keep every ARP packet on the interfaces.
    pub include_arp: bool,
    /// Capture only the TCP packets that carry no payload (SYN, FIN, RST, pure ACKs), as
    /// Go's `TCPWithoutPayload`: segments with data are not captured at all.
    pub tcp_without_payload: bool,
    /// Capture every TCP packet but keep only its headers: segments with data are cut after
    /// their TCP header (takes precedence over `tcp_without_payload`).
    pub tcp_headers_only: bool,
    /// Record the TLS session secrets of traced connections , so
    /// that Wireshark can decrypt exactly the traced requests.
    pub tls_keys: bool,
}

impl Default for PacketCaptureOptions {
    fn default() -> Self {
        Self {
            interfaces: Vec::new(),
            snaplen: DEFAULT_SNAPLEN,
            total_size_limit: DEFAULT_TOTAL_SIZE_LIMIT,
            include_icmp: false,
            include_arp: false,
            tcp_without_payload: false,
            tcp_headers_only: false,
            tls_keys: false,
        }
    }
}

/// Why [`PacketCaptureOptions`] were refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CaptureOptionsError {
    /// The snap length is zero or larger than [`MAX_SNAPLEN`].
    #[error("snap length {0} is out of range: it must be 1 to {MAX_SNAPLEN} bytes")]
    Snaplen(u32),
}

impl PacketCaptureOptions {
    /// Checks the options before a capture starts: every way of starting one (the client,
    /// the program tracer of `nettrace-loader`, the daemon) calls it, so out-of-range values
    /// are refused instead of being adjusted silently.
    pub fn validate(&self) -> Result<(), CaptureOptionsError> {
        if self.snaplen == 0 || self.snaplen > MAX_SNAPLEN {
            return Err(CaptureOptionsError::Snaplen(self.snaplen));
        }
        Ok(())
    }

    /// True when TCP payload bytes are captured (neither `tcp_without_payload` nor
    /// `tcp_headers_only`).
    pub fn keeps_tcp_payload(&self) -> bool {
        !self.tcp_without_payload && !self.tcp_headers_only
    }
}

/// How the packets of an interface start (the pcap link type).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum LinkKind {
    /// An Ethernet header (Ethernet and veth devices, and Linux loopback, whose header is
    /// all zeros): pcap `LINKTYPE_ETHERNET` (1).
    #[default]
    Ethernet,
    /// No link-layer header, IPv4 or IPv6 right away (tun, WireGuard): pcap `LINKTYPE_RAW`
    /// (101).
    RawIp,
}

/// Which way a packet went through the interface.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum PacketDirection {
    /// Received by the interface (TC ingress).
    #[default]
    Ingress,
    /// Sent by the interface (TC egress).
    Egress,
}

/// The packets captured on one interface (both directions).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PacketCapture {
    /// Interface the packets were captured on.
    pub interface_name: String,
    /// How each packet starts.
    pub link_kind: LinkKind,
    /// Bytes kept of each packet at most.
    pub snap_len: u32,
    /// The packets, in capture order.
    pub packets: Vec<CapturedPacket>,
    /// True when packets were dropped because the total size limit was reached.
    pub truncated: bool,
    /// Packets of the client the kernel could not hand over because its packet ring buffer
    /// was full (counted per client, for all its interfaces). Not part of `truncated`, which
    /// is only about the size limit.
    pub lost_packets: u64,
    /// True when TCP packets with payload were captured too.
    pub with_tcp_payload: bool,
    /// TLS secrets of the traced connections, in SSLKEYLOGFILE format (empty unless
    /// [`PacketCaptureOptions::tls_keys`]).
    pub tls_key_log: String,
}

/// One captured packet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CapturedPacket {
    /// When it was captured.
    pub timestamp: OffsetDateTime,
    /// Its bytes, at most `snap_len` of them.
    pub data: Bytes,
    /// Its length on the wire.
    pub original_len: u32,
    /// Which way it went.
    pub direction: PacketDirection,
    /// The TCP or UDP connection (or DNS exchange) it belongs to, when known.
    pub conn_id: Option<TraceId>,
    /// The HTTP request it carried, when known.
    pub http_request_id: Option<TraceId>,
}
