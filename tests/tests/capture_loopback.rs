//! Root scenarios: packet capture on loopback through the traced client. The TC programs must
//! hand over exactly the packets of the traced connections and DNS exchanges, each named with
//! its connection, and nothing of an untraced connection running at the same time.
use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use etherparse::{NetSlice, SlicedPacket, TransportSlice};
use nettrace::{
    capture::{PacketCapture, PacketCaptureOptions, PacketDirection},
    client::{HttpClient, HttpClientConfig, KernelMode, TraceOptions},
    model::HttpTrace,
};
use nettrace_tests::{
    fixtures::{
        dns::{DnsServer, Zone},
        http::{HttpOptions, HttpServer},
        net::V6,
    },
    require_root,
    scenario::{self, dump, get_ok},
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn capturing_client(config: HttpClientConfig, capture: PacketCaptureOptions) -> HttpClient {
    HttpClient::new(
        config,
        TraceOptions {
            kernel: KernelMode::Require,
            packet_capture: Some(capture),
            ..scenario::full_options()
        },
    )
    .unwrap_or_else(|e| panic!("capture must start as root: {e:#?}"))
}

fn on_loopback() -> PacketCaptureOptions {
    PacketCaptureOptions {
        interfaces: vec!["lo".to_owned()],
        ..PacketCaptureOptions::default()
    }
}

/// The decoded headers of one captured packet.
#[derive(Debug)]
struct Seen {
    src: SocketAddr,
    dst: SocketAddr,
    tcp_flags: Option<(bool, bool, bool, bool)>,
    payload_len: usize,
}

fn decode(data: &[u8]) -> Seen {
    let packet = SlicedPacket::from_ethernet(data)
        .unwrap_or_else(|e| panic!("captured packet does not decode: {e}"));
    let (src_ip, dst_ip) = match packet.net.expect("an IP packet") {
        NetSlice::Ipv4(ip) => (
            ip.header().source_addr().into(),
            ip.header().destination_addr().into(),
        ),
        NetSlice::Ipv6(ip) => (
            ip.header().source_addr().into(),
            ip.header().destination_addr().into(),
        ),
        NetSlice::Arp(_) => panic!("ARP was not asked for"),
    };
    match packet.transport.expect("a TCP or UDP packet") {
        TransportSlice::Tcp(tcp) => Seen {
            src: SocketAddr::new(src_ip, tcp.source_port()),
            dst: SocketAddr::new(dst_ip, tcp.destination_port()),
            tcp_flags: Some((tcp.syn(), tcp.ack(), tcp.fin(), tcp.rst())),
            payload_len: tcp.payload().len(),
        },
        TransportSlice::Udp(udp) => Seen {
            src: SocketAddr::new(src_ip, udp.source_port()),
            dst: SocketAddr::new(dst_ip, udp.destination_port()),
            tcp_flags: None,
            payload_len: udp.payload().len(),
        },
        other => panic!("unexpected transport {other:?}"),
    }
}

fn lo_capture<'a>(captures: &'a [PacketCapture], trace: &HttpTrace) -> &'a PacketCapture {
    assert_eq!(captures.len(), 1, "{}", dump(trace));
    let capture = &captures[0];
    assert_eq!(capture.interface_name, "lo");
    assert!(!capture.truncated);
    assert_eq!(capture.lost_packets, 0);
    capture
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loopback_capture_holds_exactly_the_traced_flows() {
    if !require_root("loopback_capture_holds_exactly_the_traced_flows") {
        return;
    }
    let dns = scenario::example_dns().await;
    let server = scenario::plain_server().await;
    let client = capturing_client(
        HttpClientConfig {
            disable_keep_alive: true,
            ..scenario::config_with_dns(&dns)
        },
        PacketCaptureOptions {
            // Whole packets: loopback sends the 3000-byte response as one.
            snaplen: 9216,
            ..on_loopback()
        },
    );
    // An untraced connection to the same server, talking while the traced request runs.
    let mut untraced = tokio::net::TcpStream::connect(server.addr()).await.unwrap();
    untraced
        .write_all(b"GET /bytes/100 HTTP/1.1\r\nHost: untraced\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let untraced_local = untraced.local_addr().unwrap();
    let url = server.url_with_host(scenario::EXAMPLE_HOST, "/bytes/3000");
    get_ok(&client, &url).await;
    let mut sink = Vec::new();
    scenario::bounded("untraced read", untraced.read_to_end(&mut sink))
        .await
        .unwrap();
    drop(untraced);

    let (trace, captures) = scenario::trace_once_closed(&client).await;
    let capture = lo_capture(&captures, &trace);
    let tcp = trace
        .net_trace
        .tcp_conns
        .iter()
        .find(|c| !c.from_resolver)
        .expect("the HTTP connection");
    let udp = &trace.net_trace.udp_conns;
    assert!(!udp.is_empty(), "no DNS exchange: {}", dump(&trace));
    let request = &trace.http_requests[0];
    let (mut syn, mut fin, mut data, mut dns_packets) = (0, 0, 0, 0);
    for packet in &capture.packets {
        let seen = decode(&packet.data);
        assert!(
            seen.src != untraced_local && seen.dst != untraced_local,
            "a packet of the untraced connection was captured: {seen:?}"
        );
        let conn = packet
            .conn_id
            .as_ref()
            .unwrap_or_else(|| panic!("packet without connection: {seen:?}"));
        let tuple = if *conn == tcp.trace_id {
            (tcp.addr_tuple.src().unwrap(), tcp.addr_tuple.dst().unwrap())
        } else if let Some(udp) = udp.iter().find(|u| u.trace_id == *conn) {
            dns_packets += 1;
            (udp.addr_tuple.src().unwrap(), udp.addr_tuple.dst().unwrap())
        } else {
            panic!("packet of unknown connection {conn}: {}", dump(&trace));
        };
        let sent = (seen.src, seen.dst) == tuple;
        assert!(
            sent || (seen.dst, seen.src) == tuple,
            "{seen:?} is not of {tuple:?}"
        );
        let expected = if sent {
            PacketDirection::Egress
        } else {
            PacketDirection::Ingress
        };
        assert_eq!(packet.direction, expected, "{seen:?}");
        assert_eq!(packet.original_len as usize, packet.data.len(), "{seen:?}");
        if let Some((is_syn, _, is_fin, _)) = seen.tcp_flags {
            assert_eq!(
                packet.http_request_id.as_ref(),
                Some(&request.trace_id),
                "{seen:?}"
            );
            syn += usize::from(is_syn);
            fin += usize::from(is_fin);
            data += seen.payload_len;
        }
    }
    // SYN and SYN-ACK, a FIN each way, and every byte of request and response.
    assert_eq!(syn, 2, "{:#?}", capture.packets.len());
    assert_eq!(fin, 2);
    assert_eq!(
        data as u64,
        tcp.total_sent_bytes + tcp.total_recv_bytes,
        "payload captured vs bytes the connection moved"
    );
    // One query and one reply per record type asked (A and AAAA).
    assert_eq!(dns_packets, 4, "{}", dump(&trace));
    let first = &capture.packets[0];
    let last = &capture.packets[capture.packets.len() - 1];
    assert!(first.timestamp <= last.timestamp);
    assert!(first.timestamp >= scenario::begin_of(&trace));
    // The trace's end is written in whole milliseconds.
    let end = scenario::end_of(&trace) + time::Duration::milliseconds(1);
    assert!(last.timestamp <= end, "{} > {end}", last.timestamp);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipv6_connection_is_captured_whole() {
    if !require_root("ipv6_connection_is_captured_whole") {
        return;
    }
    let server = HttpServer::start(HttpOptions {
        bind: V6,
        ..Default::default()
    })
    .await
    .unwrap_or_else(|e| panic!("HTTP fixture on ::1: {e:?}"));
    let dns = scenario::dns_with(Zone::new().aaaa("six.test", [Ipv6Addr::LOCALHOST])).await;
    let url = server.url_with_host("six.test", "/bytes/3000");
    let capture = PacketCaptureOptions {
        snaplen: 9216,
        ..on_loopback()
    };
    let (trace, captures) = capture_get(&dns, &url, capture).await;
    let capture = lo_capture(&captures, &trace);
    let tcp = trace
        .net_trace
        .tcp_conns
        .iter()
        .find(|c| !c.from_resolver)
        .expect("the HTTP connection");
    let tuple = (tcp.addr_tuple.src().unwrap(), tcp.addr_tuple.dst().unwrap());
    assert_eq!(
        tuple.1.ip(),
        IpAddr::V6(Ipv6Addr::LOCALHOST),
        "{}",
        dump(&trace)
    );
    let (mut syn, mut fin, mut data) = (0, 0, 0);
    for packet in &capture.packets {
        if packet.conn_id.as_ref() != Some(&tcp.trace_id) {
            continue;
        }
        let seen = decode(&packet.data);
        assert!(
            (seen.src, seen.dst) == tuple || (seen.dst, seen.src) == tuple,
            "{seen:?} is not of {tuple:?}"
        );
        let (is_syn, _, is_fin, _) = seen.tcp_flags.expect("a TCP segment");
        syn += usize::from(is_syn);
        fin += usize::from(is_fin);
        data += seen.payload_len;
    }
    // The IPv6 header parse finds every segment of the connection, as for IPv4.
    assert_eq!((syn, fin), (2, 2), "{} packets", capture.packets.len());
    assert_eq!(
        data as u64,
        tcp.total_sent_bytes + tcp.total_recv_bytes,
        "payload captured vs bytes the connection moved"
    );
}

/// One traced GET of a 3000-byte body on loopback with `capture`, and its closed trace.
async fn capture_one_request(capture: PacketCaptureOptions) -> (HttpTrace, Vec<PacketCapture>) {
    let dns = scenario::example_dns().await;
    let server = scenario::plain_server().await;
    let url = server.url_with_host(scenario::EXAMPLE_HOST, "/bytes/3000");
    capture_get(&dns, &url, capture).await
}

/// One traced GET of `url` (its name resolved by `dns`, no keep-alive) with `capture`, and
/// its closed trace.
async fn capture_get(
    dns: &DnsServer,
    url: &str,
    capture: PacketCaptureOptions,
) -> (HttpTrace, Vec<PacketCapture>) {
    let client = capturing_client(
        HttpClientConfig {
            disable_keep_alive: true,
            ..scenario::config_with_dns(dns)
        },
        capture,
    );
    get_ok(&client, url).await;
    scenario::trace_once_closed(&client).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snaplen_and_tcp_headers_only_cut_packets() {
    if !require_root("snaplen_and_tcp_headers_only_cut_packets") {
        return;
    }
    let (trace, captures) = capture_one_request(PacketCaptureOptions {
        snaplen: 120,
        ..on_loopback()
    })
    .await;
    let capture = lo_capture(&captures, &trace);
    assert_eq!(capture.snap_len, 120);
    assert!(capture.with_tcp_payload);
    assert!(capture.packets.iter().all(|p| p.data.len() <= 120));
    assert!(
        capture.packets.iter().any(|p| p.original_len > 3000),
        "the response packet keeps its length on the wire"
    );

    let (trace, captures) = capture_one_request(PacketCaptureOptions {
        tcp_headers_only: true,
        ..on_loopback()
    })
    .await;
    let capture = lo_capture(&captures, &trace);
    assert!(!capture.with_tcp_payload);
    let mut cut = 0;
    for packet in &capture.packets {
        let sliced = etherparse::LaxSlicedPacket::from_ethernet(&packet.data).unwrap();
        match sliced.transport {
            Some(TransportSlice::Tcp(tcp)) => {
                // Ethernet, IPv4 and TCP headers only.
                let headers = 14 + 20 + tcp.header_len();
                assert_eq!(packet.data.len(), headers, "{packet:?}");
                cut += usize::from(packet.original_len as usize > headers);
            }
            Some(TransportSlice::Udp(_)) => {
                assert_eq!(
                    packet.data.len(),
                    packet.original_len as usize,
                    "DNS is whole"
                );
            }
            other => panic!("unexpected packet {other:?}"),
        }
    }
    assert!(cut >= 2, "request and response lost their payload");
}

/// A TCP segment read back from a pcap file: its flags and the payload its IP header declares.
#[derive(Debug)]
struct PcapSegment {
    syn: bool,
    fin: bool,
    ack: bool,
    payload_len: usize,
    whole: bool,
}

/// The TCP segments of `capture` as its pcap file holds them (written, then read back with
/// pcap-file, not from the in-memory packets).
fn pcap_tcp_segments(capture: &PacketCapture) -> Vec<PcapSegment> {
    let mut file = Vec::new();
    capture.write_to(&mut file).unwrap();
    let mut reader = pcap_file::pcap::PcapReader::new(file.as_slice()).unwrap();
    let mut segments = Vec::new();
    // Raw records: pcap-file's checked reader refuses an original length beyond the snap
    // length, which is what a cut packet has.
    while let Some(packet) = reader.next_raw_packet() {
        let packet = packet.unwrap();
        let sliced = etherparse::LaxSlicedPacket::from_ethernet(&packet.data)
            .unwrap_or_else(|e| panic!("a captured packet does not decode: {e}"));
        let Some(etherparse::LaxNetSlice::Ipv4(ip)) = sliced.net else {
            panic!("loopback IPv4 only here: {sliced:?}");
        };
        if let Some(TransportSlice::Tcp(tcp)) = sliced.transport {
            // What the IP header declares, not what was kept of the packet.
            let header = ip.header();
            let payload_len =
                usize::from(header.total_len()) - header.ihl() as usize * 4 - tcp.header_len();
            segments.push(PcapSegment {
                syn: tcp.syn(),
                fin: tcp.fin(),
                ack: tcp.ack(),
                payload_len,
                whole: packet.incl_len == packet.orig_len,
            });
        }
    }
    segments
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_without_payload_captures_only_segments_without_data() {
    if !require_root("tcp_without_payload_captures_only_segments_without_data") {
        return;
    }
    let (trace, captures) = capture_one_request(PacketCaptureOptions {
        tcp_without_payload: true,
        ..on_loopback()
    })
    .await;
    let capture = lo_capture(&captures, &trace);
    assert!(!capture.with_tcp_payload);
    let segments = pcap_tcp_segments(capture);
    assert!(
        segments.iter().all(|s| s.payload_len == 0 && s.whole),
        "no segment with data, none cut: {segments:#?}"
    );
    // Both SYNs, both FINs and the pure ACKs between them.
    assert_eq!(
        segments.iter().filter(|s| s.syn).count(),
        2,
        "{segments:#?}"
    );
    assert!(
        segments.iter().filter(|s| s.fin).count() >= 2,
        "{segments:#?}"
    );
    assert!(
        segments.iter().any(|s| s.ack && !s.syn && !s.fin),
        "a pure ACK: {segments:#?}"
    );

    // The same exchange with payload: its data segments are there.
    let (trace, captures) = capture_one_request(on_loopback()).await;
    let segments = pcap_tcp_segments(lo_capture(&captures, &trace));
    assert!(
        segments.iter().filter(|s| s.payload_len > 0).count() >= 2,
        "request and response carry data: {segments:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn total_size_limit_truncates_the_capture() {
    if !require_root("total_size_limit_truncates_the_capture") {
        return;
    }
    const LIMIT: usize = 600;
    let (trace, captures) = capture_one_request(PacketCaptureOptions {
        total_size_limit: LIMIT,
        ..on_loopback()
    })
    .await;
    let capture = &captures[0];
    assert!(capture.truncated, "{}", dump(&trace));
    let kept: usize = capture.packets.iter().map(|p| p.data.len()).sum();
    assert!(kept <= LIMIT && kept > 0, "kept {kept} bytes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn icmp_port_unreachable_is_captured_with_include_icmp() {
    if !require_root("icmp_port_unreachable_is_captured_with_include_icmp") {
        return;
    }
    // A nameserver port nobody listens on: the query gets ICMP port unreachable.
    let closed = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let nameserver = closed.local_addr().unwrap();
    drop(closed);
    let client = capturing_client(
        HttpClientConfig {
            nameservers: vec![nameserver],
            ..HttpClientConfig::default()
        },
        PacketCaptureOptions {
            include_icmp: true,
            ..on_loopback()
        },
    );
    let url = format!("http://{}:1/", scenario::EXAMPLE_HOST);
    scenario::get_err(&client, &url).await;
    let (trace, captures) = client.get_trace("icmp").unwrap();
    let capture = lo_capture(&captures, &trace);
    let unreachable: Vec<_> = capture
        .packets
        .iter()
        .filter_map(|p| {
            let sliced = SlicedPacket::from_ethernet(&p.data).ok()?;
            match sliced.transport? {
                TransportSlice::Icmpv4(icmp) => Some((p, icmp.icmp_type())),
                _ => None,
            }
        })
        .collect();
    assert!(!unreachable.is_empty(), "{:#?}", capture.packets);
    for (packet, icmp_type) in unreachable {
        assert!(
            matches!(
                icmp_type,
                etherparse::Icmpv4Type::DestinationUnreachable(
                    etherparse::icmpv4::DestUnreachableHeader::Port
                )
            ),
            "{icmp_type:?}"
        );
        assert_eq!(packet.conn_id, None, "ICMP belongs to no connection");
    }
    // The queries themselves are there too, named with their UDP connection.
    let udp = &trace.net_trace.udp_conns;
    assert!(capture.packets.iter().any(|p| {
        p.conn_id
            .as_ref()
            .is_some_and(|id| udp.iter().any(|u| &u.trace_id == id))
    }));
}

/// The library's entry point refuses a snap length out of range at construction, before it
/// loads anything (so without privileges too), with an error that names it.
#[tokio::test]
async fn client_refuses_snap_lengths_out_of_range() {
    for snaplen in [0, nettrace::capture::MAX_SNAPLEN + 1] {
        let built = HttpClient::new(
            HttpClientConfig::default(),
            TraceOptions {
                kernel: KernelMode::Require,
                packet_capture: Some(PacketCaptureOptions {
                    snaplen,
                    ..on_loopback()
                }),
                ..scenario::full_options()
            },
        );
        let Err(error) = built else {
            panic!("snap length {snaplen} accepted");
        };
        let message = error.to_string();
        assert!(message.contains("snap length"), "{message}");
        assert!(message.contains(&snaplen.to_string()), "{message}");
    }
}
