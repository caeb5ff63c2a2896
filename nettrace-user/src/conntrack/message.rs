//! [`CtMessage`]: one conntrack entry as ctnetlink sends it, decoded from a datagram.
//!
//! netlink-packet-netfilter types the tuples, status, mark and TCP state; the counters
//! (`CTA_COUNTERS_ORIG/REPLY`) and the entry ID (`CTA_ID`) arrive as raw attributes and are
//! decoded here (nested attributes, big-endian values). Nothing in a datagram can panic this
//! code: every malformed part is an error or a missing field.
//!
//! ```ignore
//! let messages = decode_datagram(&bytes);   // Vec<Result<Decoded, ConntrackError>>
//! ```
use std::net::{IpAddr, SocketAddr};

use netlink_packet_core::{
    NetlinkBuffer, NetlinkMessage, NetlinkPayload, Nla, NlaBuffer, NlasIterator,
};
use netlink_packet_netfilter::{
    NetfilterMessage, NetfilterMessageInner,
    conntrack::{
        ConntrackAttribute, ConntrackMessage, IPTuple, ProtoInfo, ProtoInfoTCP, ProtoTuple, Tuple,
    },
};

use super::ConntrackError;
use crate::model::{AddrTuple, ConntrackEntry, ConntrackStatus, TcpState};

const CTA_COUNTERS_ORIG: u16 = 9;
const CTA_COUNTERS_REPLY: u16 = 10;
const CTA_ID: u16 = 12;
const CTA_COUNTERS_PACKETS: u16 = 1;
const CTA_COUNTERS_BYTES: u16 = 2;
const CTA_COUNTERS32_PACKETS: u16 = 3;
const CTA_COUNTERS32_BYTES: u16 = 4;

/// Size of a netlink message header.
const NLMSG_HDRLEN: usize = 16;

/// One end-to-end tuple: protocol number, source and destination.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct CtTuple {
    /// IP protocol number (6 TCP, 17 UDP).
    pub(crate) proto: u8,
    /// Source address and port.
    pub(crate) src: SocketAddr,
    /// Destination address and port.
    pub(crate) dst: SocketAddr,
}

impl CtTuple {
    fn addr_tuple(self) -> AddrTuple {
        AddrTuple {
            src_ip: Some(self.src.ip()),
            src_port: self.src.port(),
            dst_ip: Some(self.dst.ip()),
            dst_port: self.dst.port(),
        }
    }
}

/// Packet and byte counters of one direction.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct CtCounters {
    pub(crate) packets: u64,
    pub(crate) bytes: u64,
}

/// A decoded conntrack entry.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct CtMessage {
    /// The kernel's ID of the entry (`CTA_ID`).
    pub(crate) id: Option<u32>,
    /// Original direction (client to server, before NAT).
    pub(crate) orig: Option<CtTuple>,
    /// Reply direction (server to client, after NAT).
    pub(crate) reply: Option<CtTuple>,
    pub(crate) status: u32,
    /// `None` for entries without TCP protocol info (UDP).
    pub(crate) tcp_state: Option<u8>,
    pub(crate) mark: u32,
    /// Original- and reply-direction counters; `None` when accounting is off.
    pub(crate) counters: Option<(CtCounters, CtCounters)>,
}

impl CtMessage {
    /// The model's entry (without its capture time).
    pub(crate) fn to_entry(&self) -> ConntrackEntry {
        let (sent, recv) = self.counters.unwrap_or_default();
        ConntrackEntry {
            status: ConntrackStatus::from_bits(self.status),
            tcp_state: self
                .tcp_state
                .and_then(|s| TcpState::try_from(s).ok())
                .unwrap_or_default(),
            mark: self.mark,
            addr_orig: self.orig.map(CtTuple::addr_tuple).unwrap_or_default(),
            addr_reply: self.reply.map(CtTuple::addr_tuple).unwrap_or_default(),
            packets_sent: sent.packets,
            packets_recv: recv.packets,
            bytes_sent: sent.bytes,
            bytes_recv: recv.bytes,
            ..ConntrackEntry::default()
        }
    }
}

/// What one netlink message of a datagram was.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Decoded {
    /// An entry: a GET answer or a NEW event (`destroyed == false`), or a DESTROY event.
    Entry {
        seq: u32,
        msg: CtMessage,
        destroyed: bool,
    },
    /// An error (or, with code 0, an ACK) for the request `seq`.
    Error { seq: u32, code: i32 },
    /// Anything else (DONE, NOOP, other subsystems).
    Other,
}

/// Decodes every netlink message of a datagram; a malformed one ends the datagram (its length
/// cannot be trusted) after an error item.
pub(crate) fn decode_datagram(datagram: &[u8]) -> Vec<Result<Decoded, ConntrackError>> {
    let mut out = Vec::new();
    let mut rest = datagram;
    while rest.len() >= NLMSG_HDRLEN {
        let len = match NetlinkBuffer::new_checked(rest) {
            Ok(buf) => buf.length() as usize,
            Err(e) => {
                out.push(Err(ConntrackError::Malformed(e.to_string())));
                break;
            }
        };
        if len < NLMSG_HDRLEN || len > rest.len() {
            out.push(Err(ConntrackError::Malformed(format!(
                "message length {len} with {} bytes left",
                rest.len()
            ))));
            break;
        }
        out.push(decode_message(&rest[..len]));
        let aligned = (len + 3) & !3;
        rest = rest.get(aligned..).unwrap_or_default();
    }
    out
}

fn decode_message(bytes: &[u8]) -> Result<Decoded, ConntrackError> {
    let message = NetlinkMessage::<NetfilterMessage>::deserialize(bytes)
        .map_err(|e| ConntrackError::Malformed(e.to_string()))?;
    let seq = message.header.sequence_number;
    Ok(match message.payload {
        NetlinkPayload::Error(error) => Decoded::Error {
            seq,
            code: error.raw_code(),
        },
        NetlinkPayload::InnerMessage(NetfilterMessage {
            inner: NetfilterMessageInner::Conntrack(ct),
            ..
        }) => match ct {
            ConntrackMessage::New(attrs) | ConntrackMessage::Get(attrs) => Decoded::Entry {
                seq,
                msg: entry(&attrs)?,
                destroyed: false,
            },
            ConntrackMessage::Delete(attrs) => Decoded::Entry {
                seq,
                msg: entry(&attrs)?,
                destroyed: true,
            },
            _ => Decoded::Other,
        },
        _ => Decoded::Other,
    })
}

fn entry(attrs: &[ConntrackAttribute]) -> Result<CtMessage, ConntrackError> {
    let mut msg = CtMessage::default();
    let (mut orig_counters, mut reply_counters) = (None, None);
    for attr in attrs {
        match attr {
            ConntrackAttribute::CtaTupleOrig(tuple) => msg.orig = ct_tuple(tuple),
            ConntrackAttribute::CtaTupleReply(tuple) => msg.reply = ct_tuple(tuple),
            ConntrackAttribute::CtaStatus(status) => msg.status = status.bits(),
            ConntrackAttribute::CtaMark(mark) => msg.mark = *mark,
            ConntrackAttribute::CtaProtoInfo(infos) => {
                msg.tcp_state = infos.iter().find_map(|info| match info {
                    ProtoInfo::TCP(tcp) => tcp.iter().find_map(|t| match t {
                        ProtoInfoTCP::State(state) => Some(*state),
                        _ => None,
                    }),
                    _ => None,
                });
            }
            ConntrackAttribute::Other(raw) => {
                let value = raw_value(raw);
                match raw.kind() & netlink_packet_core::NLA_TYPE_MASK {
                    CTA_ID => msg.id = Some(be_u32(&value)?),
                    CTA_COUNTERS_ORIG => orig_counters = Some(counters(&value)?),
                    CTA_COUNTERS_REPLY => reply_counters = Some(counters(&value)?),
                    _ => {}
                }
            }
            _ => {}
        }
    }
    if let (Some(orig), Some(reply)) = (orig_counters, reply_counters) {
        msg.counters = Some((orig, reply));
    }
    Ok(msg)
}

fn raw_value(raw: &netlink_packet_core::DefaultNla) -> Vec<u8> {
    let mut value = vec![0; raw.value_len()];
    raw.emit_value(&mut value);
    value
}

/// A tuple with both addresses and, for port-based protocols, both ports.
fn ct_tuple(parts: &[Tuple]) -> Option<CtTuple> {
    let (mut src_ip, mut dst_ip, mut proto) = (None, None, None);
    let (mut src_port, mut dst_port) = (0, 0);
    for part in parts {
        match part {
            Tuple::Ip(ips) => {
                for ip in ips {
                    match ip {
                        IPTuple::SourceAddress(a) => src_ip = Some(*a),
                        IPTuple::DestinationAddress(a) => dst_ip = Some(*a),
                        _ => {}
                    }
                }
            }
            Tuple::Proto(items) => {
                for item in items {
                    match item {
                        ProtoTuple::Protocol(p) => proto = Some(u8::from(*p)),
                        ProtoTuple::SourcePort(p) => src_port = *p,
                        ProtoTuple::DestinationPort(p) => dst_port = *p,
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    let (src_ip, dst_ip): (IpAddr, IpAddr) = (src_ip?, dst_ip?);
    Some(CtTuple {
        proto: proto?,
        src: SocketAddr::new(src_ip, src_port),
        dst: SocketAddr::new(dst_ip, dst_port),
    })
}

/// `CTA_COUNTERS_*`: nested packets and bytes, 64-bit (or 32-bit on old kernels) big-endian.
fn counters(value: &[u8]) -> Result<CtCounters, ConntrackError> {
    let mut counters = CtCounters::default();
    for nla in NlasIterator::new(value) {
        let nla: NlaBuffer<&[u8]> = nla.map_err(|e| ConntrackError::Malformed(e.to_string()))?;
        let v = nla.value();
        match nla.kind() {
            CTA_COUNTERS_PACKETS => counters.packets = be_u64(v)?,
            CTA_COUNTERS_BYTES => counters.bytes = be_u64(v)?,
            CTA_COUNTERS32_PACKETS => counters.packets = u64::from(be_u32(v)?),
            CTA_COUNTERS32_BYTES => counters.bytes = u64::from(be_u32(v)?),
            _ => {}
        }
    }
    Ok(counters)
}

fn be_u32(value: &[u8]) -> Result<u32, ConntrackError> {
    value
        .try_into()
        .map(u32::from_be_bytes)
        .map_err(|_| ConntrackError::Malformed(format!("{} bytes for a u32", value.len())))
}

fn be_u64(value: &[u8]) -> Result<u64, ConntrackError> {
    value
        .try_into()
        .map(u64::from_be_bytes)
        .map_err(|_| ConntrackError::Malformed(format!("{} bytes for a u64", value.len())))
}
