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

/// Decodes every netlink message of a datagram. A message whose content is malformed is an
/// error item and the next one is read (its length held); one whose length is broken ends the
/// datagram (nothing after it can be located) after an error item.
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

/// The netfilter subsystem of ctnetlink messages (`NFNL_SUBSYS_CTNETLINK`, the high byte of
/// the netlink message type).
const NFNL_SUBSYS_CTNETLINK: u16 = 1;
/// Netlink's own message types (NOOP, ERROR, DONE, OVERRUN) are below this.
const NLMSG_MIN_TYPE: u16 = 0x10;

fn decode_message(bytes: &[u8]) -> Result<Decoded, ConntrackError> {
    let message_type = NetlinkBuffer::new_checked(bytes)
        .map_err(|e| ConntrackError::Malformed(e.to_string()))?
        .message_type();
    // Only ctnetlink's messages are read: netlink-packet-netfilter 0.4.0 panics on some
    // malformed messages of other subsystems (an nftables attribute whose length passes its
    // buffer; found by the `ctnetlink` fuzz target), and nothing else is ours anyway.
    if message_type >= NLMSG_MIN_TYPE && message_type >> 8 != NFNL_SUBSYS_CTNETLINK {
        return Ok(Decoded::Other);
    }
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

#[cfg(test)]
pub(crate) mod tests {
    use netlink_packet_core::{DefaultNla, NLA_F_NESTED, NetlinkHeader};
    use netlink_packet_netfilter::{
        NetfilterHeader, NetfilterProtoFamily,
        conntrack::{Protocol, Status},
    };
    use proptest::prelude::*;

    use super::*;

    /// One raw attribute: length and kind (native endian), value, padding to 4 bytes.
    pub(crate) fn nla(kind: u16, value: &[u8]) -> Vec<u8> {
        let len = u16::try_from(4 + value.len()).unwrap();
        let mut out = [len.to_ne_bytes(), kind.to_ne_bytes()].concat();
        out.extend_from_slice(value);
        out.resize((out.len() + 3) & !3, 0);
        out
    }

    fn counters_attr(kind: u16, packets: u64, bytes: u64) -> ConntrackAttribute {
        let value = [
            nla(CTA_COUNTERS_PACKETS, &packets.to_be_bytes()),
            nla(CTA_COUNTERS_BYTES, &bytes.to_be_bytes()),
        ]
        .concat();
        ConntrackAttribute::Other(DefaultNla::new(kind | NLA_F_NESTED, value))
    }

    pub(crate) fn tuple(
        src: [u8; 4],
        sport: u16,
        dst: [u8; 4],
        dport: u16,
        proto: Protocol,
    ) -> Vec<Tuple> {
        vec![
            Tuple::Ip(vec![
                IPTuple::SourceAddress(src.into()),
                IPTuple::DestinationAddress(dst.into()),
            ]),
            Tuple::Proto(vec![
                ProtoTuple::Protocol(proto),
                ProtoTuple::SourcePort(sport),
                ProtoTuple::DestinationPort(dport),
            ]),
        ]
    }

    /// One netlink message of a conntrack `message` (a fuzz seed too).
    pub(crate) fn datagram(seq: u32, message: ConntrackMessage) -> Vec<u8> {
        let mut header = NetlinkHeader::default();
        header.sequence_number = seq;
        let mut msg = NetlinkMessage::new(
            header,
            NetlinkPayload::from(NetfilterMessage::new(
                NetfilterHeader::new(NetfilterProtoFamily::IPv4, 0, 0),
                message,
            )),
        );
        msg.finalize();
        let mut buf = vec![0; msg.buffer_len()];
        msg.serialize(&mut buf);
        buf
    }

    /// The attributes of a NAT-ed TCP entry with counters and an ID.
    pub(crate) fn nat_entry_attrs() -> Vec<ConntrackAttribute> {
        vec![
            ConntrackAttribute::CtaTupleOrig(tuple(
                [10, 0, 0, 1],
                40000,
                [192, 0, 2, 7],
                80,
                Protocol::Tcp,
            )),
            ConntrackAttribute::CtaTupleReply(tuple(
                [10, 1, 0, 9],
                8080,
                [10, 0, 0, 100],
                40001,
                Protocol::Tcp,
            )),
            ConntrackAttribute::CtaStatus(Status::from_bits_retain(0x1be)),
            ConntrackAttribute::CtaMark(7),
            ConntrackAttribute::CtaProtoInfo(vec![ProtoInfo::TCP(vec![ProtoInfoTCP::State(7)])]),
            counters_attr(CTA_COUNTERS_ORIG, 6, 399),
            counters_attr(CTA_COUNTERS_REPLY, 5, 9327),
            ConntrackAttribute::Other(DefaultNla::new(
                CTA_ID,
                0xdead_beef_u32.to_be_bytes().to_vec(),
            )),
        ]
    }

    #[test]
    fn decodes_typed_and_raw_attributes() {
        let bytes = datagram(9, ConntrackMessage::Delete(nat_entry_attrs()));
        let decoded = decode_datagram(&bytes);
        let [
            Ok(Decoded::Entry {
                seq: 9,
                msg,
                destroyed: true,
            }),
        ] = decoded.as_slice()
        else {
            panic!("{decoded:?}");
        };
        assert_eq!(msg.id, Some(0xdead_beef));
        let entry = msg.to_entry();
        assert_eq!(entry.status.bits(), 0x1be);
        assert_eq!(entry.tcp_state, TcpState::TimeWait);
        assert_eq!(entry.mark, 7);
        assert_eq!(entry.addr_orig.dst_ip, Some([192, 0, 2, 7].into()));
        assert_eq!(entry.addr_reply.dst_port, 40001);
        assert_eq!(
            (
                entry.packets_sent,
                entry.bytes_sent,
                entry.packets_recv,
                entry.bytes_recv
            ),
            (6, 399, 5, 9327)
        );
    }

    #[test]
    fn udp_entry_without_counters_or_tcp_state() {
        let attrs = vec![ConntrackAttribute::CtaTupleOrig(tuple(
            [127, 0, 0, 1],
            5353,
            [127, 0, 0, 1],
            53,
            Protocol::Udp,
        ))];
        let bytes = datagram(1, ConntrackMessage::New(attrs));
        let decoded = decode_datagram(&bytes);
        let [
            Ok(Decoded::Entry {
                msg,
                destroyed: false,
                ..
            }),
        ] = decoded.as_slice()
        else {
            panic!("{decoded:?}");
        };
        assert_eq!(msg.counters, None);
        assert_eq!(msg.orig.map(|t| t.proto), Some(17));
        assert!(msg.to_entry().tcp_state.is_none());
    }

    #[test]
    fn short_counter_values_are_errors_not_panics() {
        let mut attrs = nat_entry_attrs();
        attrs.push(ConntrackAttribute::Other(DefaultNla::new(
            CTA_COUNTERS_ORIG | NLA_F_NESTED,
            nla(CTA_COUNTERS_BYTES, &[1, 2, 3]),
        )));
        let bytes = datagram(1, ConntrackMessage::New(attrs));
        assert!(matches!(
            decode_datagram(&bytes).as_slice(),
            [Err(ConntrackError::Malformed(_))]
        ));
    }

    #[test]
    fn messages_of_other_netfilter_subsystems_are_skipped_unread() {
        // Found by the `ctnetlink` fuzz target: an nftables (subsystem 10) message with an
        // attribute length past its buffer made netlink-packet-netfilter 0.4.0 panic.
        let crash: [u8; 76] = [
            0x48, 0x00, 0x00, 0x00, 0x0a, 0x0a, 0x0c, 0x04, 0x00, 0x65, 0x71, 0x2d, 0x61, 0x9c,
            0x8e, 0x75, 0x73, 0x74, 0x01, 0x80, 0x05, 0x00, 0x81, 0x00, 0x07, 0x00, 0x00, 0x00,
            0x1c, 0x00, 0x11, 0x00, 0x06, 0x22, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x0d,
            0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
            0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
            0x00, 0x00, 0x2e, 0x5d, 0x00, 0x64,
        ];
        let decoded = decode_datagram(&crash);
        assert_eq!(decoded.len(), 1);
        assert!(matches!(decoded[0], Ok(Decoded::Other)));
        // A ctnetlink entry after it in the same datagram is still read.
        let mut datagram = crash[..72].to_vec();
        datagram.extend(self::datagram(7, ConntrackMessage::New(nat_entry_attrs())));
        let decoded = decode_datagram(&datagram);
        assert_eq!(decoded.len(), 2);
        assert!(matches!(decoded[1], Ok(Decoded::Entry { seq: 7, .. })));
    }

    #[test]
    fn every_truncation_and_bit_flip_is_handled() {
        let bytes = datagram(3, ConntrackMessage::New(nat_entry_attrs()));
        for len in 0..bytes.len() {
            let _ = decode_datagram(&bytes[..len]);
        }
        for bit in 0..bytes.len() * 8 {
            let mut flipped = bytes.clone();
            flipped[bit / 8] ^= 1 << (bit % 8);
            let _ = decode_datagram(&flipped);
        }
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode_datagram(&bytes);
        }
    }
}
