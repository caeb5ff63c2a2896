//! Capture files as the real reader sees them: packets built with etherparse are written as
//! pcap and pcapng, and `tshark` reads them back (link types, lengths, timestamps, directions,
//! comments, the TLS key log block). Also: a traced HTTPS request whose client asks for TLS
//! keys leaves the session's secrets in the client's key log.
//!
//! Without `tshark` the file tests are skipped loudly.
use std::sync::Arc;

use bytes::Bytes;
use etherparse::{ArpEthIpv4Packet, ArpOperation, PacketBuilder};
use nettrace::capture::{
    CapturedPacket, LinkKind, PacketCapture, PacketCaptureOptions, PacketDirection,
};
use nettrace::client::{HttpClient, TraceOptions};
use nettrace::model::TraceId;
use nettrace::tls::KeyLogRecorder;
use nettrace_tests::fixtures::http::{HttpOptions, HttpServer};
use nettrace_tests::fixtures::tls::{LeafKind, ServerTlsOptions};
use nettrace_tests::scenario::{self, EXAMPLE_HOST, TempDir, get_ok};
use nettrace_tests::skip;
use nettrace_tests::tshark::{have_tshark, tshark_fields};
use time::{OffsetDateTime, macros::datetime};

const T0: OffsetDateTime = datetime!(2026-11-26 10:00:00.123456789 UTC);
const MAC_A: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0a];
const MAC_B: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0b];

fn built(build: impl FnOnce(&mut Vec<u8>)) -> Bytes {
    let mut bytes = Vec::new();
    build(&mut bytes);
    Bytes::from(bytes)
}

fn packet(
    data: Bytes,
    nanos_after_t0: i64,
    direction: PacketDirection,
    conn: Option<&str>,
    http: Option<&str>,
) -> CapturedPacket {
    CapturedPacket {
        timestamp: T0 + time::Duration::nanoseconds(nanos_after_t0),
        original_len: u32::try_from(data.len()).expect("small packet"),
        data,
        direction,
        conn_id: conn.map(TraceId::new),
        http_request_id: http.map(TraceId::new),
    }
}

/// An Ethernet capture: IPv4/TCP with payload (outbound, conn and request known), IPv6/UDP
/// (inbound, conn known), ARP and ICMP (nothing known), and a TCP packet cut to the snap
/// length (96 bytes).
fn ethernet_capture() -> PacketCapture {
    let tcp = built(|out| {
        PacketBuilder::ethernet2(MAC_A, MAC_B)
            .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
            .tcp(40000, 8080, 1, 65535)
            .ack(1)
            .psh()
            .write(out, b"GET / HTTP/1.1\r\nHost: example.test\r\n\r\n")
            .expect("TCP packet");
    });
    let udp = built(|out| {
        PacketBuilder::ethernet2(MAC_B, MAC_A)
            .ipv6(
                "fd00::2"
                    .parse::<std::net::Ipv6Addr>()
                    .expect("v6")
                    .octets(),
                "fd00::1"
                    .parse::<std::net::Ipv6Addr>()
                    .expect("v6")
                    .octets(),
                64,
            )
            .udp(53, 5353)
            .write(out, &[0; 12])
            .expect("UDP packet");
    });
    let arp = built(|out| {
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
            .expect("ARP packet");
    });
    let icmp = built(|out| {
        PacketBuilder::ethernet2(MAC_B, MAC_A)
            .ipv4([10, 0, 0, 2], [10, 0, 0, 1], 64)
            .icmpv4_echo_reply(7, 1)
            .write(out, b"ping")
            .expect("ICMP packet");
    });
    let big = built(|out| {
        PacketBuilder::ethernet2(MAC_B, MAC_A)
            .ipv4([10, 0, 0, 2], [10, 0, 0, 1], 64)
            .tcp(8080, 40000, 1, 65535)
            .ack(40)
            .write(out, &[0x41; 1000])
            .expect("big TCP packet");
    });
    let mut cut = packet(
        big.slice(..96),
        4_000_000,
        PacketDirection::Ingress,
        Some("tid-12"),
        Some("tid-15"),
    );
    cut.original_len = u32::try_from(big.len()).expect("small packet");
    PacketCapture {
        interface_name: "veth-test".to_owned(),
        link_kind: LinkKind::Ethernet,
        snap_len: 96,
        packets: vec![
            packet(
                tcp,
                0,
                PacketDirection::Egress,
                Some("tid-12"),
                Some("tid-15"),
            ),
            packet(udp, 1, PacketDirection::Ingress, Some("tid-3"), None),
            packet(arp, 1_000, PacketDirection::Egress, None, None),
            packet(icmp, 1_000_000_007, PacketDirection::Ingress, None, None),
            cut,
        ],
        ..PacketCapture::default()
    }
}

/// `seconds.nanoseconds` since the epoch, as tshark prints `frame.time_epoch`.
fn epoch(packet: &CapturedPacket) -> String {
    let nanos = packet.timestamp.unix_timestamp_nanos();
    format!("{}.{:09}", nanos / 1_000_000_000, nanos % 1_000_000_000)
}

#[test]
fn pcapng_read_by_tshark() {
    if !have_tshark("pcapng_read_by_tshark") {
        return;
    }
    let capture = ethernet_capture();
    let dir = TempDir::new("capture-pcapng");
    let file = dir.path("eth.pcapng");
    capture.write_pcapng_to_file(&file).expect("writing pcapng");
    let rows = tshark_fields(
        &file,
        &[
            "frame.interface_name",
            "frame.encap_type",
            "frame.time_epoch",
            "frame.len",
            "frame.cap_len",
            "frame.packet_flags_direction",
            "frame.comment",
            "ip.src",
            "ipv6.src",
            "tcp.srcport",
            "udp.srcport",
            "arp.src.proto_ipv4",
            "icmp.type",
        ],
    );
    assert_eq!(rows.len(), capture.packets.len(), "{rows:?}");
    for (row, packet) in rows.iter().zip(&capture.packets) {
        assert_eq!(row[0], "veth-test", "{row:?}");
        assert_eq!(row[1], "1", "Ethernet encapsulation: {row:?}");
        assert_eq!(row[2], epoch(packet), "nanosecond timestamp: {row:?}");
        assert_eq!(row[3], packet.original_len.to_string(), "{row:?}");
        assert_eq!(row[4], packet.data.len().to_string(), "{row:?}");
        let direction = match packet.direction {
            PacketDirection::Ingress => "0x00000001",
            PacketDirection::Egress => "0x00000002",
        };
        assert_eq!(row[5], direction, "epb_flags direction: {row:?}");
        let mut comment = Vec::new();
        if let Some(conn) = &packet.conn_id {
            comment.push(format!("conn={conn}"));
        }
        if let Some(http) = &packet.http_request_id {
            comment.push(format!("http={http}"));
        }
        assert_eq!(row[6], comment.join(" "), "{row:?}");
    }
    let column = |i: usize| rows.iter().map(|r| r[i].as_str()).collect::<Vec<_>>();
    assert_eq!(column(7), ["10.0.0.1", "", "", "10.0.0.2", "10.0.0.2"]);
    assert_eq!(column(8), ["", "fd00::2", "", "", ""]);
    assert_eq!(column(9), ["40000", "", "", "", "8080"]);
    assert_eq!(column(10), ["", "53", "", "", ""]);
    assert_eq!(column(11), ["", "", "10.0.0.1", "", ""]);
    assert_eq!(column(12), ["", "", "", "0", ""]);
    // The cut packet: the snap length kept of more than 1000 bytes.
    assert_eq!(rows[4][4], "96");
    assert!(rows[4][3].parse::<u32>().expect("frame.len") > 1000);
}

#[test]
fn pcap_read_by_tshark() {
    if !have_tshark("pcap_read_by_tshark") {
        return;
    }
    let capture = ethernet_capture();
    let dir = TempDir::new("capture-pcap");
    let file = dir.path("eth.pcap");
    capture.write_to_file(&file).expect("writing pcap");
    let rows = tshark_fields(
        &file,
        &[
            "frame.encap_type",
            "frame.time_epoch",
            "frame.len",
            "frame.cap_len",
            "ip.src",
        ],
    );
    assert_eq!(rows.len(), capture.packets.len(), "{rows:?}");
    for (row, packet) in rows.iter().zip(&capture.packets) {
        assert_eq!(row[0], "1", "{row:?}");
        // Microseconds in pcap: the last three digits are gone.
        let nanos = epoch(packet);
        let micros = format!("{}000", &nanos[..nanos.len() - 3]);
        assert_eq!(row[1], micros, "{row:?}");
        assert_eq!(row[2], packet.original_len.to_string(), "{row:?}");
        assert_eq!(row[3], packet.data.len().to_string(), "{row:?}");
    }
    assert_eq!(rows[0][4], "10.0.0.1");
}

#[test]
fn raw_ip_captures_and_the_key_log_block() {
    if !have_tshark("raw_ip_captures_and_the_key_log_block") {
        return;
    }
    let udp = built(|out| {
        PacketBuilder::ipv4([192, 0, 2, 1], [192, 0, 2, 53], 64)
            .udp(5353, 53)
            .write(out, &[1; 20])
            .expect("UDP packet");
    });
    let capture = PacketCapture {
        interface_name: "wg0".to_owned(),
        link_kind: LinkKind::RawIp,
        snap_len: 1518,
        packets: vec![packet(udp, 0, PacketDirection::Egress, Some("tid-1"), None)],
        tls_key_log: format!("CLIENT_RANDOM {} {}\n", "ab".repeat(32), "cd".repeat(47)),
        ..PacketCapture::default()
    };
    // Not a multiple of 4: the secrets block is padded, and the packets after it still read.
    assert_ne!(capture.tls_key_log.len() % 4, 0);
    let dir = TempDir::new("capture-raw");
    for (name, pcapng) in [("wg0.pcap", false), ("wg0.pcapng", true)] {
        let file = dir.path(name);
        if pcapng {
            capture.write_pcapng_to_file(&file).expect("writing pcapng");
        } else {
            capture.write_to_file(&file).expect("writing pcap");
        }
        let rows = tshark_fields(
            &file,
            &["frame.encap_type", "ip.src", "udp.dstport", "frame.comment"],
        );
        // 7: WTAP_ENCAP_RAW_IP.
        assert_eq!(rows[0][..3], ["7", "192.0.2.1", "53"], "{name}: {rows:?}");
        let comment = if pcapng { "conn=tid-1" } else { "" };
        assert_eq!(rows[0][3], comment, "{name}: {rows:?}");
    }
    let keys = dir.path("wg0.keys");
    capture.write_key_log_to_file(&keys).expect("key log file");
    assert_eq!(
        std::fs::read_to_string(&keys).expect("key log"),
        capture.tls_key_log
    );
}

/// One line of a key log: label, client random, secret.
fn key_log_lines(text: &str) -> Vec<(String, String, String)> {
    text.lines()
        .map(|line| {
            let parts: Vec<&str> = line.split(' ').collect();
            assert_eq!(parts.len(), 3, "not an SSLKEYLOGFILE line: {line:?}");
            (
                parts[0].to_owned(),
                parts[1].to_owned(),
                parts[2].to_owned(),
            )
        })
        .collect()
}

#[tokio::test]
async fn tls_keys_of_a_traced_https_request() {
    let test = "tls_keys_of_a_traced_https_request";
    let pki = scenario::pki();
    // The server logs the same secrets: what the client records must match them.
    let server_log = Arc::new(KeyLogRecorder::default());
    let mut server_config = (*pki
        .leaf(LeafKind::Valid)
        .and_then(|leaf| leaf.server_config(&ServerTlsOptions::h1()))
        .unwrap_or_else(|e| panic!("server TLS config: {e:?}")))
    .clone();
    server_config.key_log = server_log.clone();
    let server = HttpServer::start(HttpOptions::https(Arc::new(server_config)))
        .await
        .unwrap_or_else(|e| panic!("starting the HTTPS fixture: {e:?}"));
    let dns = scenario::example_dns().await;
    let options = TraceOptions {
        packet_capture: Some(PacketCaptureOptions {
            tls_keys: true,
            ..PacketCaptureOptions::default()
        }),
        ..scenario::full_options()
    };
    let client = match HttpClient::new(scenario::config_with_dns_and_pki(&dns, &pki), options) {
        Ok(client) => client,
        // Packet capture needs eBPF privileges: only root may fail the test for it.
        Err(error) if !nettrace_tests::is_root() => {
            skip(
                test,
                &format!("a capturing client needs privileges: {error}"),
            );
            return;
        }
        Err(error) => panic!("building the client: {error:?}"),
    };
    let (status, _) = get_ok(&client, &server.url_with_host(EXAMPLE_HOST, "/")).await;
    assert_eq!(status, 200);

    let recorded = client.tls_key_log().expect("tls_keys asks for a key log");
    let lines = key_log_lines(&recorded);
    let labels: Vec<&str> = lines.iter().map(|(label, _, _)| label.as_str()).collect();
    for label in [
        "CLIENT_HANDSHAKE_TRAFFIC_SECRET",
        "SERVER_HANDSHAKE_TRAFFIC_SECRET",
        "CLIENT_TRAFFIC_SECRET_0",
        "SERVER_TRAFFIC_SECRET_0",
    ] {
        assert_eq!(
            labels.iter().filter(|l| **l == label).count(),
            1,
            "{label} once, for the one TLS 1.3 handshake:\n{recorded}"
        );
    }
    let random = &lines[0].1;
    assert_eq!(random.len(), 64, "a 32-byte client random: {recorded}");
    assert!(lines.iter().all(|(_, r, _)| r == random), "{recorded}");
    assert!(
        lines
            .iter()
            .all(|(_, _, secret)| secret.len() >= 64
                && secret.bytes().all(|b| b.is_ascii_hexdigit())),
        "{recorded}"
    );
    let mut ours = lines.clone();
    let mut theirs = key_log_lines(&server_log.snapshot());
    ours.sort();
    theirs.sort();
    assert_eq!(
        ours, theirs,
        "the client logged the secrets the server used"
    );

    // Without `tls_keys`, no key log.
    let plain = scenario::client(
        scenario::config_with_dns_and_pki(&dns, &pki),
        scenario::full_options(),
    );
    assert_eq!(plain.tls_key_log(), None);
}
