//! Root scenarios in network namespaces the tests create: packet capture on a real Ethernet
//! link (a veth pair), a lossy link made with nft (the kernel facts and the capture both show
//! the retransmissions), and capture on the far side of source and destination NAT.
use std::{
    net::{Ipv4Addr, SocketAddr},
    time::Duration,
};

use etherparse::{LaxNetSlice, LaxSlicedPacket, TransportSlice};
use nettrace::{
    capture::{LinkKind, PacketCaptureOptions, PacketDirection},
    client::{HttpClient, HttpClientConfig, KernelMode, TraceOptions},
    model::{HttpTrace, TcpConnTrace},
};
use nettrace_tests::{
    NFT,
    netns::NetNs,
    require_root, require_tools,
    scenario::{self, TempDir, dump},
    tshark::{have_tshark, tshark_fields},
};
use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader},
    net::{TcpListener, TcpStream},
};

const CLIENT_IP: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);
const SERVER_IP: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 2);
const SERVER_PORT: u16 = 8080;
/// The client's end of the veth pair.
const CLIENT_IF: &str = "nt-c0";

/// A client namespace and a server namespace joined by a veth pair, with a small HTTP server
/// on the server side (the loopback fixtures do not bind outside 127.0.0.0/8).
struct VethPair {
    client: NetNs,
    server: NetNs,
}

impl VethPair {
    fn new(tag: &str) -> Self {
        let client = NetNs::new(&format!("{tag}-c")).expect("client namespace");
        let server = NetNs::new(&format!("{tag}-s")).expect("server namespace");
        client
            .veth(
                CLIENT_IF,
                &format!("{CLIENT_IP}/24"),
                Some(&server),
                "nt-s0",
                &format!("{SERVER_IP}/24"),
            )
            .expect("veth pair");
        Self { client, server }
    }

    fn url(path: &str) -> String {
        format!("http://{SERVER_IP}:{SERVER_PORT}{path}")
    }
}

/// Serves every connection: reads one request (headers and a `Content-Length` body) and
/// answers with `response_len` bytes, then closes.
async fn serve(response_len: usize) {
    let listener = TcpListener::bind(SocketAddr::from((SERVER_IP, SERVER_PORT)))
        .await
        .expect("bind in the server namespace");
    for _ in 0..64 {
        let Ok((stream, _)) = listener.accept().await else {
            return;
        };
        tokio::spawn(answer(stream, response_len));
    }
}

async fn answer(stream: TcpStream, response_len: usize) {
    let mut reader = BufReader::new(stream);
    let mut body_len = 0usize;
    for _ in 0..100 {
        let mut line = String::new();
        if reader.read_line(&mut line).await.unwrap_or(0) == 0 {
            return;
        }
        if let Some(value) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            body_len = value.trim().parse().unwrap_or(0);
        }
        if line == "\r\n" {
            break;
        }
    }
    let mut body = vec![0; body_len];
    if reader.read_exact(&mut body).await.is_err() {
        return;
    }
    let mut stream = reader.into_inner();
    let head =
        format!("HTTP/1.1 200 OK\r\nContent-Length: {response_len}\r\nConnection: close\r\n\r\n");
    let _ = stream.write_all(head.as_bytes()).await;
    let _ = stream.write_all(&vec![b'x'; response_len]).await;
    let _ = stream.shutdown().await;
}

fn capturing_client(capture: PacketCaptureOptions) -> HttpClient {
    HttpClient::new(
        HttpClientConfig {
            disable_keep_alive: true,
            ..HttpClientConfig::default()
        },
        TraceOptions {
            kernel: KernelMode::Require,
            packet_capture: Some(capture),
            ..scenario::full_options()
        },
    )
    .unwrap_or_else(|e| panic!("capture must start as root: {e:#?}"))
}

/// TCP headers of a captured packet: (source, destination, flags SYN/ACK/FIN/RST, sequence,
/// payload length on the wire).
#[derive(Debug)]
struct Segment {
    src: SocketAddr,
    dst: SocketAddr,
    syn: bool,
    fin: bool,
    seq: u32,
    payload_len: usize,
}

fn segment(data: &[u8]) -> Option<Segment> {
    let packet = LaxSlicedPacket::from_ethernet(data).ok()?;
    let LaxNetSlice::Ipv4(ip) = packet.net? else {
        return None;
    };
    let Some(TransportSlice::Tcp(tcp)) = packet.transport else {
        return None;
    };
    let header = ip.header();
    let ip_payload = usize::from(header.total_len()) - header.slice().len();
    Some(Segment {
        src: SocketAddr::new(header.source_addr().into(), tcp.source_port()),
        dst: SocketAddr::new(header.destination_addr().into(), tcp.destination_port()),
        syn: tcp.syn(),
        fin: tcp.fin(),
        seq: tcp.sequence_number(),
        payload_len: ip_payload - tcp.header_len(),
    })
}

fn http_conn(trace: &HttpTrace) -> &TcpConnTrace {
    trace
        .net_trace
        .tcp_conns
        .iter()
        .find(|c| !c.from_resolver)
        .unwrap_or_else(|| panic!("no HTTP connection: {}", dump(trace)))
}

#[test]
fn veth_capture_holds_the_traced_connection_and_tshark_reads_it() {
    if !require_root("veth_capture_holds_the_traced_connection_and_tshark_reads_it") {
        return;
    }
    let pair = VethPair::new("cap-veth");
    let _server = pair.server.spawn(|| serve(5000));
    let (trace, captures, untraced_local) = pair.client.block_on(|| async {
        let client = capturing_client(PacketCaptureOptions {
            interfaces: vec![CLIENT_IF.to_owned()],
            ..PacketCaptureOptions::default()
        });
        let target = SocketAddr::from((SERVER_IP, SERVER_PORT));
        // An untraced connection over the same link at the same time.
        let mut untraced = scenario::bounded("untraced connect", TcpStream::connect(target))
            .await
            .expect("untraced connect");
        let untraced_local = untraced.local_addr().unwrap();
        untraced
            .write_all(b"GET / HTTP/1.1\r\nContent-Length: 0\r\n\r\n")
            .await
            .unwrap();
        scenario::get_ok(&client, &VethPair::url("/")).await;
        let mut sink = Vec::new();
        scenario::bounded("untraced read", untraced.read_to_end(&mut sink))
            .await
            .unwrap();
        let (trace, captures) = scenario::trace_once_closed(&client).await;
        (trace, captures, untraced_local)
    });
    assert_eq!(captures.len(), 1);
    let capture = &captures[0];
    assert_eq!(capture.interface_name, CLIENT_IF);
    assert_eq!(capture.link_kind, LinkKind::Ethernet);
    let conn = http_conn(&trace);
    let local = conn.addr_tuple.src().unwrap();
    let (mut syn, mut fin, mut payload) = (0, 0, 0);
    for packet in &capture.packets {
        let seg = segment(&packet.data).unwrap_or_else(|| panic!("not TCP/IPv4: {packet:?}"));
        assert!(
            seg.src != untraced_local && seg.dst != untraced_local,
            "untraced packet captured: {seg:?}"
        );
        assert_eq!(packet.conn_id.as_ref(), Some(&conn.trace_id));
        let expected = if seg.src == local {
            PacketDirection::Egress
        } else {
            assert_eq!(seg.dst, local, "{seg:?}");
            PacketDirection::Ingress
        };
        assert_eq!(packet.direction, expected, "{seg:?}");
        syn += usize::from(seg.syn);
        fin += usize::from(seg.fin);
        payload += seg.payload_len;
    }
    assert_eq!((syn, fin), (2, 2), "handshake and both FINs");
    assert_eq!(
        payload as u64,
        conn.total_sent_bytes + conn.total_recv_bytes,
        "every byte of the request and the response"
    );

    if !have_tshark("veth_capture_holds_the_traced_connection_and_tshark_reads_it (tshark part)") {
        return;
    }
    let dir = TempDir::new("capture-veth");
    let pcap = dir.path("veth.pcap");
    capture.write_to_file(&pcap).expect("pcap");
    let rows = tshark_fields(
        &pcap,
        &[
            "eth.type",
            "ip.src",
            "tcp.srcport",
            "tcp.flags.syn",
            "tcp.flags.fin",
        ],
    );
    assert_eq!(
        rows.len(),
        capture.packets.len(),
        "tshark reads every packet"
    );
    let tshark_syn = rows.iter().filter(|r| r[3] == "1").count();
    let tshark_fin = rows.iter().filter(|r| r[4] == "1").count();
    assert_eq!((tshark_syn, tshark_fin), (2, 2), "{rows:?}");
    assert!(
        rows.iter().all(|r| r[0] == "0x0800"),
        "Ethernet/IPv4: {rows:?}"
    );
    let pcapng = dir.path("veth.pcapng");
    capture.write_pcapng_to_file(&pcapng).expect("pcapng");
    let comments = tshark_fields(&pcapng, &["frame.comment"]);
    let expected = format!("conn={}", conn.trace_id);
    assert!(
        comments.iter().all(|r| r[0].contains(&expected)),
        "every packet names its connection: {comments:?}"
    );
}

#[test]
fn lossy_link_retransmissions_show_in_kernel_facts_and_capture() {
    if !require_root("lossy_link_retransmissions_show_in_kernel_facts_and_capture")
        || !require_tools(
            "lossy_link_retransmissions_show_in_kernel_facts_and_capture",
            &[NFT],
        )
    {
        return;
    }
    let pair = VethPair::new("cap-lossy");
    // On the server side: drop the first SYN-ACK (the first reply packet of a flow) and one
    // of the first data segments the client sends (its 3rd or 4th packet, longer than an
    // ACK). conntrack counts packets before the filter, so the retransmissions pass.
    pair.server.sysctl("net.netfilter.nf_conntrack_acct", "1");
    pair.server.nft(&format!(
        "table inet lossy {{
            chain pre {{ type filter hook prerouting priority 0;
                tcp dport {SERVER_PORT} ct original packets 3-4 meta length > 200 drop; }}
            chain out {{ type filter hook output priority 0;
                tcp sport {SERVER_PORT} tcp flags & (syn | ack) == syn | ack ct reply packets 1 drop; }}
        }}"
    ));
    let _server = pair.server.spawn(|| serve(100));
    let (trace, captures) = pair.client.block_on(|| async {
        let client = capturing_client(PacketCaptureOptions {
            interfaces: vec![CLIENT_IF.to_owned()],
            ..PacketCaptureOptions::default()
        });
        let body = vec![b'p'; 20_000];
        let request = http::Request::post(VethPair::url("/upload"))
            .body(nettrace::client::RequestBody::from(body))
            .unwrap();
        let response = scenario::bounded("lossy POST", client.request(request))
            .await
            .expect("the POST succeeds despite the losses");
        assert_eq!(response.status(), 200);
        scenario::bounded("lossy body", response.into_body().bytes())
            .await
            .expect("body");
        scenario::trace_once_closed(&client).await
    });
    let conn = http_conn(&trace);
    let kernel = conn
        .kernel
        .as_ref()
        .unwrap_or_else(|| panic!("no kernel facts: {}", dump(&trace)));
    assert!(kernel.syn_retransmits >= 1, "{kernel:?}");
    assert!(
        kernel.retransmits > kernel.syn_retransmits,
        "a data retransmission too: {kernel:?}"
    );
    let local = conn.addr_tuple.src().unwrap();
    let sent: Vec<Segment> = captures[0]
        .packets
        .iter()
        .filter_map(|p| segment(&p.data))
        .filter(|s| s.src == local)
        .collect();
    let syns = sent.iter().filter(|s| s.syn).count();
    assert!(syns >= 2, "the SYN and its retransmission: {sent:?}");
    let mut data_seqs: Vec<u32> = sent
        .iter()
        .filter(|s| s.payload_len > 0)
        .map(|s| s.seq)
        .collect();
    let all = data_seqs.len();
    data_seqs.sort_unstable();
    data_seqs.dedup();
    assert!(
        data_seqs.len() < all,
        "a data segment was captured twice (sent, lost, resent): {sent:?}"
    );
}

#[test]
fn capture_holds_the_connection_after_nat_by_its_reply_tuple() {
    if !require_root("capture_holds_the_connection_after_nat_by_its_reply_tuple")
        || !require_tools(
            "capture_holds_the_connection_after_nat_by_its_reply_tuple",
            &[NFT],
        )
    {
        return;
    }
    // On loopback in a namespace: 127.0.0.3 is DNATed to the fixture on 127.0.0.1 and the
    // connection is SNATed to 127.0.0.2. Loopback egress sees the packets after NAT only.
    const VIRTUAL_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 3);
    const SNAT_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);
    let ns = NetNs::new("cap-nat").expect("namespace");
    let (trace, captures) = ns.block_on(|| async {
        let server = scenario::plain_server().await;
        let port = server.addr().port();
        ns.nft(&format!(
            "table ip nat_capture {{
                chain out {{ type nat hook output priority -100;
                    ip daddr {VIRTUAL_IP} dnat to 127.0.0.1; }}
                chain post {{ type nat hook postrouting priority 100;
                    ip daddr 127.0.0.1 tcp dport {port} snat to {SNAT_IP}; }}
            }}"
        ));
        let client = HttpClient::new(
            HttpClientConfig {
                disable_keep_alive: true,
                ..HttpClientConfig::default()
            },
            TraceOptions {
                kernel: KernelMode::Require,
                conntrack: true,
                packet_capture: Some(PacketCaptureOptions {
                    interfaces: vec!["lo".to_owned()],
                    snaplen: 9216,
                    ..PacketCaptureOptions::default()
                }),
                ..scenario::full_options()
            },
        )
        .unwrap_or_else(|e| panic!("capture and conntrack must start as root: {e:#?}"));
        let url = format!("http://{VIRTUAL_IP}:{port}/bytes/4000");
        scenario::get_ok(&client, &url).await;
        scenario::trace_once_closed(&client).await
    });
    let conn = http_conn(&trace);
    let ct = conn
        .conntrack
        .as_ref()
        .unwrap_or_else(|| panic!("no conntrack entry: {}", dump(&trace)));
    let server = ct.addr_reply.src().expect("reply source");
    let client_side = ct.addr_reply.dst().expect("reply destination");
    assert_eq!(client_side.ip(), SNAT_IP, "{ct:?}");
    // Loopback egress shows some packets under the original tuple and others under the reply
    // tuple, depending on where netfilter applied each mapping.
    let (local, remote) = (
        conn.addr_tuple.src().unwrap(),
        conn.addr_tuple.dst().unwrap(),
    );
    let mut payload = 0;
    let mut after_nat = 0;
    for packet in &captures[0].packets {
        let seg = segment(&packet.data).unwrap_or_else(|| panic!("not TCP/IPv4: {packet:?}"));
        let sent = [(local, remote), (client_side, server)].contains(&(seg.src, seg.dst));
        let received = [(remote, local), (server, client_side)].contains(&(seg.src, seg.dst));
        assert!(sent || received, "only the connection's packets: {seg:?}");
        after_nat += usize::from(seg.src == client_side || seg.dst == client_side);
        assert_eq!(packet.conn_id.as_ref(), Some(&conn.trace_id));
        let expected = if sent {
            PacketDirection::Egress
        } else {
            PacketDirection::Ingress
        };
        assert_eq!(packet.direction, expected, "{seg:?}");
        payload += seg.payload_len;
    }
    assert!(after_nat > 0, "packets under the reply tuple are captured");
    // The reply tuple is known once the connection is established: everything after the
    // handshake is there, request and response included.
    assert_eq!(
        payload as u64,
        conn.total_sent_bytes + conn.total_recv_bytes,
        "{}",
        dump(&trace)
    );
}

#[test]
fn raw_ip_interface_capture_has_the_raw_ip_link_type() {
    if !require_root("raw_ip_interface_capture_has_the_raw_ip_link_type") {
        return;
    }
    // A tun device (no link-layer header) routes 10.88.0.0/24; nobody answers, so the
    // client's SYNs leave through it and the connection attempt times out.
    const TUN: &str = "nt-tun0";
    let ns = NetNs::new("cap-tun").expect("namespace");
    ns.run(&["ip", "tuntap", "add", "dev", TUN, "mode", "tun"]);
    ns.run(&["ip", "addr", "add", "10.88.0.1/24", "dev", TUN]);
    ns.run(&["ip", "link", "set", TUN, "up"]);
    let (trace, captures) = ns.block_on(|| async {
        let client = HttpClient::new(
            HttpClientConfig {
                tcp_handshake_timeout: Some(Duration::from_millis(300)),
                ..HttpClientConfig::default()
            },
            TraceOptions {
                kernel: KernelMode::Require,
                packet_capture: Some(PacketCaptureOptions {
                    interfaces: vec![TUN.to_owned()],
                    ..PacketCaptureOptions::default()
                }),
                ..scenario::full_options()
            },
        )
        .unwrap_or_else(|e| panic!("capture must start as root: {e:#?}"));
        scenario::get_err(&client, "http://10.88.0.2:80/").await;
        client.get_trace("tun").unwrap()
    });
    assert_eq!(captures.len(), 1);
    let capture = &captures[0];
    assert_eq!(capture.link_kind, LinkKind::RawIp);
    let conn = &trace.net_trace.tcp_conns[0];
    assert!(!capture.packets.is_empty(), "{}", dump(&trace));
    for packet in &capture.packets {
        let sliced = etherparse::SlicedPacket::from_ip(&packet.data)
            .unwrap_or_else(|e| panic!("not a raw IP packet ({e}): {packet:?}"));
        let Some(TransportSlice::Tcp(tcp)) = sliced.transport else {
            panic!("not TCP: {packet:?}");
        };
        assert!(tcp.syn() && !tcp.ack(), "only SYNs leave: {packet:?}");
        assert_eq!(tcp.destination_port(), 80);
        assert_eq!(packet.direction, PacketDirection::Egress);
        assert_eq!(packet.conn_id.as_ref(), Some(&conn.trace_id));
    }
    if !have_tshark("raw_ip_interface_capture_has_the_raw_ip_link_type (tshark part)") {
        return;
    }
    let dir = TempDir::new("capture-tun");
    let pcap = dir.path("tun.pcap");
    capture.write_to_file(&pcap).expect("pcap");
    let rows = tshark_fields(&pcap, &["frame.encap_type", "ip.dst", "tcp.dstport"]);
    assert_eq!(rows.len(), capture.packets.len());
    for row in rows {
        // Wireshark's encapsulation 7 is raw IP.
        assert_eq!(row, ["7", "10.88.0.2", "80"], "{row:?}");
    }
}
