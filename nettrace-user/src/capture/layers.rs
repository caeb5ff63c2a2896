//! A decoded view of a captured packet for programs: link, network and transport headers as
//! plain values (etherparse does the parsing, laxly). A packet cut short by the snap length
//! decodes as far as its bytes go; where decoding stopped, and why, is in
//! [`PacketLayers::stopped`].
//!
//! ```
//! use nettrace::capture::{LinkKind, Network, Transport};
//! # fn demo(packet: &nettrace::capture::CapturedPacket) {
//! let layers = packet.layers(LinkKind::Ethernet);
//! if let (Some(Network::Ip(ip)), Some(Transport::Tcp(tcp))) = (&layers.network, &layers.transport) {
//!     println!("{}:{} -> {}:{} syn={}", ip.source, tcp.source_port, ip.destination,
//!         tcp.destination_port, tcp.flags.syn);
//! }
//! # }
//! ```
use std::net::{IpAddr, Ipv4Addr};

use etherparse::{LaxNetSlice, LaxSlicedPacket, LinkSlice, TransportSlice, err::Layer};

use super::{CapturedPacket, LinkKind};

/// The headers of one packet, as far as they could be decoded.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PacketLayers {
    /// The Ethernet header (`None` for raw-IP captures, or when it is cut short).
    pub link: Option<EthernetHeader>,
    /// IPv4, IPv6 or ARP.
    pub network: Option<Network>,
    /// TCP, UDP, ICMPv4 or ICMPv6.
    pub transport: Option<Transport>,
    /// Where decoding stopped before the end of the headers, and why (a packet cut short by
    /// the snap length, a protocol not decoded here, a malformed header).
    pub stopped: Option<DecodeStop>,
}

/// An Ethernet II header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EthernetHeader {
    /// Source MAC address.
    pub source: [u8; 6],
    /// Destination MAC address.
    pub destination: [u8; 6],
    /// What follows (0x0800 IPv4, 0x86dd IPv6, 0x0806 ARP...).
    pub ether_type: u16,
}

/// The network layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Network {
    /// An IPv4 or IPv6 header.
    Ip(IpHeader),
    /// An ARP packet for IPv4 over Ethernet.
    Arp(ArpPacket),
}

/// An IPv4 or IPv6 header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IpHeader {
    /// Source address.
    pub source: IpAddr,
    /// Destination address.
    pub destination: IpAddr,
    /// The protocol of the payload (IANA number: 6 TCP, 17 UDP, 1 ICMP, 58 ICMPv6), after
    /// any IPv6 extension headers.
    pub protocol: u8,
    /// Payload bytes on the wire, from the header's length field.
    pub payload_len: u32,
    /// True when the captured bytes end before the payload does.
    pub truncated: bool,
}

/// An ARP packet (IPv4 over Ethernet).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ArpPacket {
    /// 1 request, 2 reply.
    pub operation: u16,
    /// Sender MAC address.
    pub sender_mac: [u8; 6],
    /// Sender IPv4 address.
    pub sender_ip: Ipv4Addr,
    /// Target MAC address.
    pub target_mac: [u8; 6],
    /// Target IPv4 address.
    pub target_ip: Ipv4Addr,
}

/// The transport layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// A TCP segment.
    Tcp(TcpSegment),
    /// A UDP datagram.
    Udp(UdpDatagram),
    /// An ICMPv4 message.
    Icmpv4(IcmpMessage),
    /// An ICMPv6 message.
    Icmpv6(IcmpMessage),
}

/// A TCP header and the size of its payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcpSegment {
    /// Source port.
    pub source_port: u16,
    /// Destination port.
    pub destination_port: u16,
    /// Sequence number.
    pub seq: u32,
    /// Acknowledgment number (meaningful when `flags.ack`).
    pub ack: u32,
    /// Control flags.
    pub flags: TcpFlags,
    /// Receive window (unscaled).
    pub window: u16,
    /// Payload bytes on the wire (from the IP length), captured or not.
    pub payload_len: u32,
    /// Payload bytes in the capture.
    pub captured_payload_len: u32,
}

/// TCP control flags.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TcpFlags {
    /// SYN.
    pub syn: bool,
    /// ACK.
    pub ack: bool,
    /// FIN.
    pub fin: bool,
    /// RST.
    pub rst: bool,
    /// PSH.
    pub psh: bool,
    /// URG.
    pub urg: bool,
    /// ECE.
    pub ece: bool,
    /// CWR.
    pub cwr: bool,
}

/// A UDP header and the size of its payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UdpDatagram {
    /// Source port.
    pub source_port: u16,
    /// Destination port.
    pub destination_port: u16,
    /// Payload bytes on the wire (from the UDP length), captured or not.
    pub payload_len: u32,
    /// Payload bytes in the capture.
    pub captured_payload_len: u32,
}

/// An ICMP message's type and code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IcmpMessage {
    /// Message type (8 echo request, 0 echo reply, 3 destination unreachable...; ICMPv6: 128
    /// echo request, 1 destination unreachable...).
    pub icmp_type: u8,
    /// Code within the type.
    pub code: u8,
}

/// The layer decoding stopped at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecodeLayer {
    /// The Ethernet header, or what follows it (VLAN tags, an unknown ether type).
    Link,
    /// The IP or ARP header.
    Network,
    /// The TCP, UDP or ICMP header.
    Transport,
}

/// Where and why decoding stopped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecodeStop {
    /// The layer that could not be decoded.
    pub layer: DecodeLayer,
    /// Why (etherparse's message).
    pub reason: String,
}

impl CapturedPacket {
    /// Decodes the packet's headers; `link` is the capture's
    /// [`link_kind`](super::PacketCapture::link_kind). Never fails: what cannot be decoded is
    /// `None`, and [`PacketLayers::stopped`] says why.
    pub fn layers(&self, link: LinkKind) -> PacketLayers {
        let sliced = match link {
            LinkKind::Ethernet => {
                LaxSlicedPacket::from_ethernet(&self.data).map_err(|e| stop(DecodeLayer::Link, e))
            }
            LinkKind::RawIp => {
                LaxSlicedPacket::from_ip(&self.data).map_err(|e| stop(DecodeLayer::Network, e))
            }
        };
        match sliced {
            Ok(sliced) => PacketLayers::from_sliced(&sliced),
            Err(stopped) => PacketLayers {
                stopped: Some(stopped),
                ..PacketLayers::default()
            },
        }
    }
}

impl PacketLayers {
    fn from_sliced(sliced: &LaxSlicedPacket<'_>) -> Self {
        let link = match &sliced.link {
            Some(LinkSlice::Ethernet2(eth)) => Some(EthernetHeader {
                source: eth.source(),
                destination: eth.destination(),
                ether_type: eth.ether_type().0,
            }),
            _ => None,
        };
        let mut stopped = sliced.stop_err.as_ref().map(|(error, layer)| DecodeStop {
            layer: stop_layer(*layer),
            reason: error.to_string(),
        });
        let (network, ip_payload_len) = match sliced.net.as_ref().map(network) {
            Some(Ok((network, payload_len))) => (Some(network), payload_len),
            Some(Err(problem)) => {
                stopped = stopped.or(Some(problem));
                (None, 0)
            }
            None => (None, 0),
        };
        let transport = sliced
            .transport
            .as_ref()
            .map(|transport| self::transport(transport, ip_payload_len));
        if let (None, None, Some(link)) = (&stopped, &network, link) {
            // etherparse keeps an unknown ether type as a bare payload, with no error.
            stopped = Some(DecodeStop {
                layer: DecodeLayer::Link,
                reason: format!("ether type {:#06x} is not decoded", link.ether_type),
            });
        }
        Self {
            link,
            network,
            transport,
            stopped,
        }
    }
}

/// Our name for the layer etherparse stopped at.
fn stop_layer(layer: Layer) -> DecodeLayer {
    match layer {
        Layer::LinuxSllHeader
        | Layer::Ethernet2Header
        | Layer::EtherPayload
        | Layer::VlanHeader
        | Layer::MacsecHeader
        | Layer::MacsecPacket => DecodeLayer::Link,
        Layer::IpHeader
        | Layer::Ipv4Header
        | Layer::Ipv4Packet
        | Layer::IpAuthHeader
        | Layer::Ipv6Header
        | Layer::Ipv6Packet
        | Layer::Ipv6ExtHeader
        | Layer::Ipv6HopByHopHeader
        | Layer::Ipv6DestOptionsHeader
        | Layer::Ipv6RouteHeader
        | Layer::Ipv6FragHeader
        | Layer::Arp => DecodeLayer::Network,
        Layer::UdpHeader
        | Layer::UdpPayload
        | Layer::TcpHeader
        | Layer::Icmpv4
        | Layer::Icmpv4Timestamp
        | Layer::Icmpv4TimestampReply
        | Layer::Icmpv6 => DecodeLayer::Transport,
    }
}

fn stop(layer: DecodeLayer, error: impl std::fmt::Display) -> DecodeStop {
    DecodeStop {
        layer,
        reason: error.to_string(),
    }
}

/// The network layer and the IP payload's length on the wire (0 for ARP); an ARP packet
/// that is not IPv4 over Ethernet is not decoded.
fn network(net: &LaxNetSlice<'_>) -> Result<(Network, u32), DecodeStop> {
    let ip = match net {
        LaxNetSlice::Ipv4(ip) => {
            let header = ip.header();
            let header_len = u32::from(header.ihl()) * 4;
            IpHeader {
                source: IpAddr::V4(header.source_addr()),
                destination: IpAddr::V4(header.destination_addr()),
                protocol: ip.payload().ip_number.0,
                payload_len: u32::from(header.total_len())
                    .saturating_sub(header_len)
                    .saturating_sub(ip.extensions().auth.map_or(0, |a| len(a.slice()))),
                truncated: ip.payload().incomplete,
            }
        }
        LaxNetSlice::Ipv6(ip) => {
            let header = ip.header();
            IpHeader {
                source: IpAddr::V6(header.source_addr()),
                destination: IpAddr::V6(header.destination_addr()),
                protocol: ip.payload().ip_number.0,
                payload_len: u32::from(header.payload_length())
                    .saturating_sub(len(ip.extensions().slice())),
                truncated: ip.payload().incomplete,
            }
        }
        LaxNetSlice::Arp(arp) => {
            let arp = arp
                .to_packet()
                .try_eth_ipv4()
                .map_err(|e| stop(DecodeLayer::Network, e))?;
            let arp = ArpPacket {
                operation: arp.operation.0,
                sender_mac: arp.sender_mac,
                sender_ip: Ipv4Addr::from(arp.sender_ipv4),
                target_mac: arp.target_mac,
                target_ip: Ipv4Addr::from(arp.target_ipv4),
            };
            return Ok((Network::Arp(arp), 0));
        }
    };
    Ok((Network::Ip(ip), ip.payload_len))
}

fn len(bytes: &[u8]) -> u32 {
    u32::try_from(bytes.len()).unwrap_or(u32::MAX)
}

/// The transport layer; `ip_payload_len` is the IP payload's length on the wire.
fn transport(transport: &TransportSlice<'_>, ip_payload_len: u32) -> Transport {
    match transport {
        TransportSlice::Tcp(tcp) => Transport::Tcp(TcpSegment {
            source_port: tcp.source_port(),
            destination_port: tcp.destination_port(),
            seq: tcp.sequence_number(),
            ack: tcp.acknowledgment_number(),
            flags: TcpFlags {
                syn: tcp.syn(),
                ack: tcp.ack(),
                fin: tcp.fin(),
                rst: tcp.rst(),
                psh: tcp.psh(),
                urg: tcp.urg(),
                ece: tcp.ece(),
                cwr: tcp.cwr(),
            },
            window: tcp.window_size(),
            payload_len: ip_payload_len.saturating_sub(len(tcp.header_slice())),
            captured_payload_len: len(tcp.payload()),
        }),
        TransportSlice::Udp(udp) => Transport::Udp(UdpDatagram {
            source_port: udp.source_port(),
            destination_port: udp.destination_port(),
            // The UDP length covers its 8-byte header.
            payload_len: u32::from(udp.length()).saturating_sub(8),
            captured_payload_len: len(udp.payload()),
        }),
        TransportSlice::Icmpv4(icmp) => Transport::Icmpv4(IcmpMessage {
            icmp_type: icmp.type_u8(),
            code: icmp.code_u8(),
        }),
        TransportSlice::Icmpv6(icmp) => Transport::Icmpv6(IcmpMessage {
            icmp_type: icmp.type_u8(),
            code: icmp.code_u8(),
        }),
    }
}
