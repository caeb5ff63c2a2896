//! Unit tests of the capture files (read back with pcap-file's readers) and of the decoded
//! layers (packets built with etherparse's `PacketBuilder`).
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use bytes::Bytes;
use etherparse::{ArpEthIpv4Packet, ArpOperation, PacketBuilder};
use pcap_file::{
    DataLink, TsResolution,
    pcap::{PcapReader, RawPcapPacket},
    pcapng::{
        Block, PcapNgReader,
        blocks::{
            enhanced_packet::EnhancedPacketOption,
            interface_description::InterfaceDescriptionOption,
        },
    },
};
use time::{Duration, OffsetDateTime, macros::datetime};

use super::*;
use crate::model::TraceId;

const MAC_A: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0a];
const MAC_B: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0b];
const T0: OffsetDateTime = datetime!(2026-11-26 10:00:00.123456789 UTC);

fn build(builder: impl FnOnce(&mut Vec<u8>)) -> Bytes {
    let mut bytes = Vec::new();
    builder(&mut bytes);
    Bytes::from(bytes)
}

/// Ethernet, IPv4 10.0.0.1:40000 -> 10.0.0.2:443, TCP PSH|ACK with `payload`.
fn eth_ipv4_tcp(payload: &[u8]) -> Bytes {
    build(|out| {
        PacketBuilder::ethernet2(MAC_A, MAC_B)
            .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
            .tcp(40000, 443, 1000, 65535)
            .psh()
            .ack(2000)
            .write(out, payload)
            .expect("building a TCP packet");
    })
}

/// Raw IPv6 fd00::1:5353 -> fd00::2:53, UDP with `payload`.
fn ipv6_udp(payload: &[u8]) -> Bytes {
    build(|out| {
        PacketBuilder::ipv6(
            Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 1).octets(),
            Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 2).octets(),
            64,
        )
        .udp(5353, 53)
        .write(out, payload)
        .expect("building a UDP packet");
    })
}

fn packet(data: Bytes, at: OffsetDateTime, direction: PacketDirection) -> CapturedPacket {
    CapturedPacket {
        timestamp: at,
        original_len: u32::try_from(data.len()).expect("small packet"),
        data,
        direction,
        conn_id: None,
        http_request_id: None,
    }
}

fn capture(link_kind: LinkKind, packets: Vec<CapturedPacket>) -> PacketCapture {
    PacketCapture {
        interface_name: "eth7".to_owned(),
        link_kind,
        snap_len: 1518,
        packets,
        ..PacketCapture::default()
    }
}

fn nanos(at: OffsetDateTime) -> u128 {
    u128::try_from(at.unix_timestamp_nanos()).expect("after 1970")
}

/// Every packet of a pcap file, unchecked: pcap-file 2.0.0's checked reader wrongly rejects
/// a wire length beyond the snap length, which is what a truncated packet has.
fn raw_packets(reader: &mut PcapReader<&[u8]>) -> Vec<RawPcapPacket<'static>> {
    let mut packets = Vec::new();
    while let Some(packet) = reader.next_raw_packet() {
        let packet = packet.expect("a packet");
        packets.push(RawPcapPacket {
            data: packet.data.into_owned().into(),
            ..packet
        });
    }
    packets
}

#[test]
fn pcap_has_link_type_snaplen_microsecond_times_and_lengths() {
    let tcp = eth_ipv4_tcp(&[0x42; 200]);
    let mut second = packet(
        tcp.clone(),
        T0 + Duration::nanoseconds(1_500),
        PacketDirection::Egress,
    );
    second.original_len = 2000;
    let capture = PacketCapture {
        snap_len: 96,
        ..capture(
            LinkKind::Ethernet,
            vec![packet(tcp.clone(), T0, PacketDirection::Ingress), second],
        )
    };
    let mut file = Vec::new();
    capture.write_to(&mut file).expect("writing pcap");

    let mut reader = PcapReader::new(&file[..]).expect("reading pcap back");
    let header = reader.header();
    assert_eq!(header.datalink, DataLink::ETHERNET);
    assert_eq!(header.snaplen, 96);
    assert_eq!(header.ts_resolution, TsResolution::MicroSecond);
    let read = raw_packets(&mut reader);
    assert_eq!(read.len(), 2);
    // Microseconds: the nanoseconds are cut.
    let micros = |p: &RawPcapPacket<'_>| u128::from(p.ts_sec) * 1_000_000 + u128::from(p.ts_frac);
    assert_eq!(micros(&read[0]), nanos(T0) / 1000);
    assert_eq!(micros(&read[1]), (nanos(T0) + 1_500) / 1000);
    assert_eq!(&read[0].data[..], &tcp[..96]);
    assert_eq!(read[0].orig_len as usize, tcp.len());
    // Kept bytes beyond the snap length are cut, the wire length stays.
    assert_eq!(read[1].incl_len, 96);
    assert_eq!(&read[1].data[..], &tcp[..96]);
    assert_eq!(read[1].orig_len, 2000);
}

#[test]
fn pcap_of_raw_ip_and_bytes_beyond_the_snaplen() {
    let udp = ipv6_udp(&[7; 100]);
    let capture = PacketCapture {
        snap_len: 64,
        ..capture(
            LinkKind::RawIp,
            vec![packet(udp.clone(), T0, PacketDirection::Egress)],
        )
    };
    let mut file = Vec::new();
    capture.write_to(&mut file).expect("writing pcap");
    let mut reader = PcapReader::new(&file[..]).expect("reading pcap back");
    assert_eq!(reader.header().datalink, DataLink::RAW);
    let read = raw_packets(&mut reader).remove(0);
    // The kernel should never hand over more than the snap length; if it does, the file
    // stays valid.
    assert_eq!(&read.data[..], &udp[..64]);
    assert_eq!(read.orig_len as usize, udp.len());
}

#[test]
fn pre_epoch_timestamp_is_an_error_not_a_panic() {
    let capture = capture(
        LinkKind::RawIp,
        vec![packet(
            ipv6_udp(b"x"),
            datetime!(1969-12-31 23:59:59 UTC),
            PacketDirection::Egress,
        )],
    );
    let error = capture
        .write_to(Vec::new())
        .expect_err("pcap cannot store 1969");
    assert_eq!(error.kind(), std::io::ErrorKind::InvalidInput);
    assert!(capture.write_pcapng_to(Vec::new()).is_err());
}

/// Every block of a pcapng file.
fn pcapng_blocks(file: &[u8]) -> Vec<Block<'static>> {
    let mut reader = PcapNgReader::new(file).expect("reading pcapng back");
    let mut blocks = Vec::new();
    while let Some(block) = reader.next_block() {
        blocks.push(block.expect("a valid block").into_owned());
    }
    blocks
}

#[test]
fn pcapng_interface_packets_flags_comments_and_nanoseconds() {
    let tcp = eth_ipv4_tcp(b"GET / HTTP/1.1\r\n\r\n");
    let mut first = packet(tcp.clone(), T0, PacketDirection::Egress);
    first.conn_id = Some(TraceId::new("tid-12"));
    first.http_request_id = Some(TraceId::new("tid-15"));
    let mut second = packet(
        tcp.clone(),
        T0 + Duration::nanoseconds(7),
        PacketDirection::Ingress,
    );
    second.conn_id = Some(TraceId::new("tid-12"));
    let third = packet(tcp.clone(), T0, PacketDirection::Ingress);
    let capture = capture(LinkKind::Ethernet, vec![first, second, third]);
    let mut file = Vec::new();
    capture.write_pcapng_to(&mut file).expect("writing pcapng");

    let blocks = pcapng_blocks(&file);
    let Block::InterfaceDescription(interface) = &blocks[0] else {
        panic!("first block after the section: {:?}", blocks[0]);
    };
    assert_eq!(interface.linktype, DataLink::ETHERNET);
    assert_eq!(interface.snaplen, 1518);
    assert!(
        interface
            .options
            .contains(&InterfaceDescriptionOption::IfName("eth7".into()))
    );
    assert!(
        interface
            .options
            .contains(&InterfaceDescriptionOption::IfTsResol(9))
    );
    let packets: Vec<_> = blocks
        .iter()
        .filter_map(|b| match b {
            Block::EnhancedPacket(p) => Some(p),
            _ => None,
        })
        .collect();
    assert_eq!(
        packets.len(),
        3,
        "no secrets block without a key log: {blocks:?}"
    );
    assert_eq!(blocks.len(), 4);
    assert_eq!(packets[0].timestamp.as_nanos(), nanos(T0));
    assert_eq!(packets[1].timestamp.as_nanos(), nanos(T0) + 7);
    assert_eq!(&packets[0].data[..], &tcp[..]);
    let options = |i: usize| packets[i].options.clone();
    assert_eq!(
        options(0),
        vec![
            EnhancedPacketOption::Flags(0b10),
            EnhancedPacketOption::Comment("conn=tid-12 http=tid-15".into())
        ]
    );
    assert_eq!(
        options(1),
        vec![
            EnhancedPacketOption::Flags(0b01),
            EnhancedPacketOption::Comment("conn=tid-12".into())
        ]
    );
    assert_eq!(options(2), vec![EnhancedPacketOption::Flags(0b01)]);
}

#[test]
fn pcapng_carries_the_tls_key_log_before_the_packets() {
    // 5 bytes of text: the block needs 3 bytes of padding.
    for key_log in ["A 1 2", "CLIENT_RANDOM 00 11\n"] {
        let capture = PacketCapture {
            tls_key_log: key_log.to_owned(),
            ..capture(
                LinkKind::RawIp,
                vec![packet(ipv6_udp(b"q"), T0, PacketDirection::Egress)],
            )
        };
        let mut file = Vec::new();
        capture.write_pcapng_to(&mut file).expect("writing pcapng");
        let blocks = pcapng_blocks(&file);
        assert!(matches!(blocks[0], Block::InterfaceDescription(_)));
        let Block::Unknown(secrets) = &blocks[1] else {
            panic!("second block: {:?}", blocks[1]);
        };
        assert_eq!(secrets.type_, 0x0000_000A);
        assert_eq!(secrets.length % 4, 0);
        let body = &secrets.value[..];
        assert_eq!(&body[0..4], &0x544c_534b_u32.to_le_bytes());
        assert_eq!(&body[4..8], &(key_log.len() as u32).to_le_bytes());
        assert_eq!(&body[8..8 + key_log.len()], key_log.as_bytes());
        assert!(body[8 + key_log.len()..].iter().all(|&b| b == 0), "padding");
        assert_eq!(body.len() % 4, 0);
        assert!(matches!(blocks[2], Block::EnhancedPacket(_)));
    }
}

#[test]
fn files_and_key_log_file_on_disk() {
    let dir = std::env::temp_dir().join(format!("nettrace-capture-unit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let capture = PacketCapture {
        tls_key_log: "CLIENT_RANDOM 00 11\n".to_owned(),
        ..capture(
            LinkKind::Ethernet,
            vec![packet(eth_ipv4_tcp(b""), T0, PacketDirection::Egress)],
        )
    };
    let (pcap, pcapng, keys) = (dir.join("a.pcap"), dir.join("a.pcapng"), dir.join("a.keys"));
    capture.write_to_file(&pcap).expect("pcap file");
    capture.write_pcapng_to_file(&pcapng).expect("pcapng file");
    capture.write_key_log_to_file(&keys).expect("key log file");
    let mut in_memory = Vec::new();
    capture.write_to(&mut in_memory).expect("pcap");
    assert_eq!(std::fs::read(&pcap).expect("pcap file"), in_memory);
    in_memory.clear();
    capture.write_pcapng_to(&mut in_memory).expect("pcapng");
    assert_eq!(std::fs::read(&pcapng).expect("pcapng file"), in_memory);
    assert_eq!(
        std::fs::read_to_string(&keys).expect("key log"),
        capture.tls_key_log
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&keys)
        .expect("key log")
        .permissions()
        .mode();
    assert_eq!(
        mode & 0o077,
        0,
        "the key log is for its owner only: {mode:o}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

fn decode(data: Bytes, link: LinkKind) -> PacketLayers {
    packet(data, T0, PacketDirection::Ingress).layers(link)
}

#[test]
fn layers_of_ethernet_ipv4_tcp() {
    let layers = decode(eth_ipv4_tcp(b"hello"), LinkKind::Ethernet);
    assert_eq!(
        layers.link,
        Some(EthernetHeader {
            source: MAC_A,
            destination: MAC_B,
            ether_type: 0x0800
        })
    );
    let Some(Network::Ip(ip)) = layers.network else {
        panic!("{layers:?}");
    };
    assert_eq!(ip.source, IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)));
    assert_eq!(ip.destination, IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)));
    assert_eq!(ip.protocol, 6);
    assert_eq!(ip.payload_len, 20 + 5);
    assert!(!ip.truncated);
    let Some(Transport::Tcp(tcp)) = layers.transport else {
        panic!("{layers:?}");
    };
    assert_eq!((tcp.source_port, tcp.destination_port), (40000, 443));
    assert_eq!((tcp.seq, tcp.ack, tcp.window), (1000, 2000, 65535));
    assert_eq!(
        tcp.flags,
        TcpFlags {
            psh: true,
            ack: true,
            ..TcpFlags::default()
        }
    );
    assert_eq!((tcp.payload_len, tcp.captured_payload_len), (5, 5));
    assert_eq!(layers.stopped, None);
}

#[test]
fn layers_of_raw_ipv6_udp() {
    let layers = decode(ipv6_udp(b"query"), LinkKind::RawIp);
    assert_eq!(layers.link, None);
    let Some(Network::Ip(ip)) = layers.network else {
        panic!("{layers:?}");
    };
    assert_eq!(ip.source, "fd00::1".parse::<IpAddr>().expect("address"));
    assert_eq!(ip.protocol, 17);
    assert_eq!(
        layers.transport,
        Some(Transport::Udp(UdpDatagram {
            source_port: 5353,
            destination_port: 53,
            payload_len: 5,
            captured_payload_len: 5
        }))
    );
    assert_eq!(layers.stopped, None);
}

#[test]
fn layers_of_arp_and_icmp() {
    let arp = build(|out| {
        PacketBuilder::ethernet2(MAC_A, [0xff; 6])
            .arp(
                ArpEthIpv4Packet {
                    operation: ArpOperation::REQUEST,
                    sender_mac: MAC_A,
                    sender_ipv4: [10, 0, 0, 1],
                    target_mac: [0; 6],
                    target_ipv4: [10, 0, 0, 2],
                }
                .into(),
            )
            .write(out)
            .expect("building ARP");
    });
    let layers = decode(arp, LinkKind::Ethernet);
    assert_eq!(
        layers.network,
        Some(Network::Arp(ArpPacket {
            operation: 1,
            sender_mac: MAC_A,
            sender_ip: Ipv4Addr::new(10, 0, 0, 1),
            target_mac: [0; 6],
            target_ip: Ipv4Addr::new(10, 0, 0, 2),
        }))
    );
    assert_eq!(layers.transport, None);
    assert_eq!(layers.stopped, None);

    let ping = build(|out| {
        PacketBuilder::ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
            .icmpv4_echo_request(1, 2)
            .write(out, b"ping")
            .expect("building ICMP");
    });
    let layers = decode(ping, LinkKind::RawIp);
    assert_eq!(
        layers.transport,
        Some(Transport::Icmpv4(IcmpMessage {
            icmp_type: 8,
            code: 0
        }))
    );
    let ping6 = build(|out| {
        PacketBuilder::ipv6([0; 16], [0; 16], 64)
            .icmpv6_echo_reply(1, 2)
            .write(out, b"pong")
            .expect("building ICMPv6");
    });
    assert_eq!(
        decode(ping6, LinkKind::RawIp).transport,
        Some(Transport::Icmpv6(IcmpMessage {
            icmp_type: 129,
            code: 0
        }))
    );
}

#[test]
fn truncated_packets_decode_as_far_as_their_bytes_go() {
    let full = eth_ipv4_tcp(&[0x55; 1000]);
    // Cut in the payload: every header, the payload length from the IP header.
    let layers = decode(full.slice(..14 + 20 + 20 + 10), LinkKind::Ethernet);
    let Some(Network::Ip(ip)) = layers.network else {
        panic!("{layers:?}");
    };
    assert!(ip.truncated);
    assert_eq!(ip.payload_len, 1020);
    let Some(Transport::Tcp(tcp)) = layers.transport else {
        panic!("{layers:?}");
    };
    assert_eq!((tcp.payload_len, tcp.captured_payload_len), (1000, 10));

    // Cut in the TCP header: IP yes, TCP no, and why.
    let layers = decode(full.slice(..14 + 20 + 8), LinkKind::Ethernet);
    assert!(matches!(layers.network, Some(Network::Ip(_))), "{layers:?}");
    assert_eq!(layers.transport, None);
    assert_eq!(
        layers.stopped.as_ref().map(|s| s.layer),
        Some(DecodeLayer::Transport),
        "{layers:?}"
    );

    // Cut in the IP header.
    let layers = decode(full.slice(..14 + 10), LinkKind::Ethernet);
    assert!(layers.link.is_some());
    assert_eq!(layers.network, None);
    assert_eq!(layers.stopped.map(|s| s.layer), Some(DecodeLayer::Network));

    // Cut in the Ethernet header, and raw IP that is not IP.
    let layers = decode(full.slice(..10), LinkKind::Ethernet);
    assert_eq!(layers.link, None);
    assert_eq!(layers.stopped.map(|s| s.layer), Some(DecodeLayer::Link));
    let layers = decode(Bytes::from_static(&[0x00; 30]), LinkKind::RawIp);
    assert_eq!(layers.network, None);
    assert!(!layers.stopped.expect("stopped").reason.is_empty());
}

#[test]
fn unknown_ether_type_says_so() {
    let mut frame = MAC_B.to_vec();
    frame.extend_from_slice(&MAC_A);
    frame.extend_from_slice(&0x88b5_u16.to_be_bytes());
    frame.extend_from_slice(&[0; 46]);
    let layers = decode(Bytes::from(frame), LinkKind::Ethernet);
    assert_eq!(layers.link.map(|l| l.ether_type), Some(0x88b5));
    assert_eq!(layers.network, None);
    let stopped = layers.stopped.expect("stopped");
    assert_eq!(stopped.layer, DecodeLayer::Link);
    assert!(stopped.reason.contains("0x88b5"), "{}", stopped.reason);
}

#[test]
fn shortfalls_name_what_the_capture_misses() {
    let mut missing = capture(LinkKind::Ethernet, Vec::new());
    assert!(missing.shortfalls().is_empty());
    missing.truncated = true;
    missing.lost_packets = 3;
    assert_eq!(
        missing.shortfalls(),
        [
            "capture on eth7 reached its total size limit; later packets were dropped",
            "capture on eth7 lost 3 packets (the packet ring buffer was full)",
        ]
    );
}

#[test]
fn options_refuse_snap_lengths_out_of_range() {
    let with = |snaplen| PacketCaptureOptions {
        snaplen,
        ..PacketCaptureOptions::default()
    };
    for bad in [0, MAX_SNAPLEN + 1, u32::MAX] {
        assert_eq!(with(bad).validate(), Err(CaptureOptionsError::Snaplen(bad)));
    }
    for good in [1, DEFAULT_SNAPLEN, MAX_SNAPLEN] {
        assert_eq!(with(good).validate(), Ok(()));
    }
    let message = CaptureOptionsError::Snaplen(0).to_string();
    assert!(message.contains("1 to 9216"), "{message}");
}

#[test]
fn tcp_payload_is_kept_only_without_either_option() {
    let options = PacketCaptureOptions::default();
    assert!(options.keeps_tcp_payload());
    for options in [
        PacketCaptureOptions {
            tcp_without_payload: true,
            ..options.clone()
        },
        PacketCaptureOptions {
            tcp_headers_only: true,
            ..options.clone()
        },
    ] {
        assert!(!options.keeps_tcp_payload());
    }
}
