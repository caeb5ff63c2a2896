//! Root scenario: the TC capture program itself, run by the kernel on crafted frames
//! (`BPF_PROG_TEST_RUN`) against a flow registered for one client. Every frame is checked for
//! what the program copies of it (nothing, or how many bytes, for whom, which way), so the
//! header parsing is tested on frames no real stack would send: truncated headers, later
//! fragments, IP options, IP lengths that disagree with the frame.
use std::net::SocketAddr;

use nettrace::kernel::{
    CaptureInterfaceInfo, ClientId, Direction, FlowProtocol, KernelConfig, KernelEvent,
    KernelEvents, KernelTracer, PacketRecord, flow_key,
};
use nettrace_common::{CaptureClient, CaptureInterface, TracedFlow, capture_flags, direction};
use nettrace_tests::require_root;

const CLIENT: ClientId = ClientId(3);
const COOKIE: u64 = 0x5eed;
const SNAPLEN: u32 = 96;

/// The flow's two ends: the traced socket's and its peer's.
fn ends() -> (SocketAddr, SocketAddr) {
    (
        "127.0.0.1:40123".parse().unwrap(),
        "127.0.0.1:8443".parse().unwrap(),
    )
}

/// How a crafted IPv4 TCP frame deviates from a plain one.
#[derive(Clone, Copy, Default)]
struct Shape {
    /// IP options, in 4-byte words (IHL above 5).
    options_words: u8,
    /// The fragment offset field (8-byte units).
    fragment_offset: u16,
    /// An IP total length that is not the frame's (None: the right one).
    total_len: Option<u16>,
    /// Cut the frame after this many bytes.
    cut_at: Option<usize>,
}

/// An Ethernet frame with an IPv4 TCP segment (20-byte TCP header) from `from` to `to`
/// carrying `payload` bytes.
fn frame(from: SocketAddr, to: SocketAddr, payload: usize, shape: Shape) -> Vec<u8> {
    let (SocketAddr::V4(from), SocketAddr::V4(to)) = (from, to) else {
        panic!("IPv4 ends expected");
    };
    let ip_len = 20 + usize::from(shape.options_words) * 4;
    let total = ip_len + 20 + payload;
    let mut frame = vec![0u8; 14 + total];
    frame[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
    let ip = &mut frame[14..14 + ip_len];
    ip[0] = 0x40 | (5 + shape.options_words);
    let total_field = shape.total_len.unwrap_or(total as u16);
    ip[2..4].copy_from_slice(&total_field.to_be_bytes());
    ip[6..8].copy_from_slice(&shape.fragment_offset.to_be_bytes());
    ip[8] = 64;
    ip[9] = 6;
    ip[12..16].copy_from_slice(&from.ip().octets());
    ip[16..20].copy_from_slice(&to.ip().octets());
    let tcp = &mut frame[14 + ip_len..14 + ip_len + 20];
    tcp[0..2].copy_from_slice(&from.port().to_be_bytes());
    tcp[2..4].copy_from_slice(&to.port().to_be_bytes());
    tcp[12] = 5 << 4;
    tcp[13] = 0x10;
    if let Some(cut) = shape.cut_at {
        frame.truncate(cut);
    }
    frame
}

/// Sets `CLIENT` up to capture with `snaplen` and `flags`.
fn capture_with(tracer: &KernelTracer, snaplen: u32, flags: u32) {
    tracer
        .set_capture_client(CLIENT, CaptureClient { snaplen, flags })
        .unwrap();
}

/// The programs loaded, `CLIENT` capturing with `flags`, and the flow of [`ends`] registered
/// in both directions.
fn setup(test: &str, flags: u32) -> Option<(KernelTracer, KernelEvents)> {
    if !require_root(test) {
        return None;
    }
    let (tracer, _events, packets) =
        KernelTracer::load_with_packets(&KernelConfig::default()).expect("loading the programs");
    capture_with(&tracer, SNAPLEN, flags);
    let (local, peer) = ends();
    for (from, to, way) in [
        (local, peer, direction::SENT),
        (peer, local, direction::RECEIVED),
    ] {
        let flow = TracedFlow {
            cookie: COOKIE,
            client_id: CLIENT.0,
            direction: way,
        };
        tracer
            .register_flow(flow_key(FlowProtocol::Tcp, from, to), flow)
            .unwrap();
    }
    Some((tracer, packets))
}

/// Runs the program of `hook` once on `frame`; the packet records it wrote. The test run
/// returns after the program did, with its copy in a lane or the ring: one drain finds it.
/// Anything else the drain gives (another event, a malformed record) fails the test.
fn run(
    tracer: &KernelTracer,
    packets: &mut KernelEvents,
    hook: Direction,
    frame: &[u8],
) -> Vec<PacketRecord> {
    if let Err(error) = tracer.run_capture_program(hook, frame, 1) {
        panic!("test run of a {}-byte frame: {error:?}", frame.len());
    }
    packets
        .drain()
        .into_iter()
        .map(|event| match event {
            Ok(KernelEvent::Packet(packet)) => packet,
            other => panic!("not a packet: {other:?}"),
        })
        .collect()
}

#[tokio::test]
async fn a_traced_frame_is_copied_for_its_flow_up_to_the_snap_length() {
    let Some((tracer, mut packets)) = setup(
        "a_traced_frame_is_copied_for_its_flow_up_to_the_snap_length",
        capture_flags::TCP_PAYLOAD,
    ) else {
        return;
    };
    let (local, peer) = ends();
    // The direction is the flow's, whichever hook saw the frame (on loopback both ways pass
    // egress).
    for (from, to, hook, way, payload) in [
        (local, peer, Direction::Sent, Direction::Sent, 10),
        (peer, local, Direction::Received, Direction::Received, 10),
        (peer, local, Direction::Sent, Direction::Received, 10),
        (local, peer, Direction::Received, Direction::Sent, 500),
    ] {
        let sent = frame(from, to, payload, Shape::default());
        let copies = run(&tracer, &mut packets, hook, &sent);
        assert_eq!(copies.len(), 1, "{payload} bytes at {hook:?}: one copy");
        let copy = &copies[0];
        assert_eq!(copy.cookie.0, COOKIE);
        assert_eq!(copy.client, CLIENT);
        assert_eq!(copy.direction, way, "{from} -> {to}");
        assert_eq!(copy.packet_len as usize, sent.len());
        let kept = sent.len().min(SNAPLEN as usize);
        assert_eq!(
            &copy.data[..],
            &sent[..kept],
            "the first bytes, snap length {SNAPLEN}"
        );
    }

    // A copy longer than a lane slot (256 bytes) goes through the ring, whole.
    capture_with(&tracer, 2048, capture_flags::TCP_PAYLOAD);
    let long = frame(local, peer, 700, Shape::default());
    let copies = run(&tracer, &mut packets, Direction::Sent, &long);
    assert_eq!(copies.len(), 1, "a 754-byte frame");
    assert_eq!(&copies[0].data[..], &long[..], "copied whole");
    assert_eq!(tracer.lost_packets(CLIENT).unwrap(), 0);
}

#[tokio::test]
async fn an_icmp_frame_is_copied_for_any_client_when_its_interface_asks() {
    let Some((tracer, mut packets)) = setup(
        "an_icmp_frame_is_copied_for_any_client_when_its_interface_asks",
        capture_flags::TCP_PAYLOAD,
    ) else {
        return;
    };
    // An echo request from 127.0.0.1 to itself; the test run's frames are on loopback.
    let mut icmp = frame(ends().0, ends().1, 0, Shape::default());
    icmp.truncate(14 + 20 + 8);
    icmp[14 + 2..14 + 4].copy_from_slice(&28u16.to_be_bytes());
    icmp[14 + 9] = 1;
    icmp[14 + 20..].copy_from_slice(&[8, 0, 0, 0, 0, 1, 0, 1]);
    assert!(
        run(&tracer, &mut packets, Direction::Sent, &icmp).is_empty(),
        "not asked for: not copied"
    );
    let lo = CaptureInterfaceInfo::lookup("lo").unwrap();
    tracer
        .set_capture_interface(
            lo.index,
            CaptureInterface {
                icmp_snaplen: 30,
                arp_snaplen: 0,
            },
        )
        .unwrap();
    let copies = run(&tracer, &mut packets, Direction::Sent, &icmp);
    assert_eq!(copies.len(), 1, "asked for on lo: copied");
    assert_eq!(copies[0].client, ClientId::ANY);
    assert_eq!(copies[0].cookie.0, 0);
    assert_eq!(&copies[0].data[..], &icmp[..30], "up to its snap length");
}

#[tokio::test]
async fn without_payload_capture_the_ip_length_decides_what_is_payload() {
    let Some((tracer, mut packets)) = setup(
        "without_payload_capture_the_ip_length_decides_what_is_payload",
        0,
    ) else {
        return;
    };
    let (local, peer) = ends();
    let plain = Shape::default();
    let headers = 14 + 20 + 20;
    let copied = |packets: &mut KernelEvents, name: &str, sent: &[u8]| -> Option<usize> {
        let copies = run(&tracer, packets, Direction::Sent, sent);
        assert!(copies.len() <= 1, "{name}: at most one copy");
        copies.first().map(|copy| {
            assert_eq!(copy.packet_len as usize, sent.len(), "{name}");
            copy.data.len()
        })
    };
    let ack = frame(local, peer, 0, plain);
    let data = frame(local, peer, 40, plain);
    assert_eq!(copied(&mut packets, "a pure ACK", &ack), Some(headers));
    assert_eq!(copied(&mut packets, "a data segment", &data), None);
    // The Ethernet padding of a short frame is not payload: the IP length says what is.
    let mut padded = ack.clone();
    padded.resize(ack.len() + 6, 0);
    assert_eq!(
        copied(&mut packets, "a padded pure ACK", &padded),
        Some(headers)
    );
    // The IP length is believed over the frame: one that counts data makes a pure ACK a data
    // segment, one that counts only the headers makes a data segment a pure ACK (cut after
    // its headers), one below the IP header's own size counts nothing.
    let with_length = |payload: usize, total_len: u16| {
        frame(
            local,
            peer,
            payload,
            Shape {
                total_len: Some(total_len),
                ..plain
            },
        )
    };
    assert_eq!(
        copied(
            &mut packets,
            "an ACK said to carry data",
            &with_length(0, 1400)
        ),
        None
    );
    assert_eq!(
        copied(&mut packets, "data said to be none", &with_length(40, 40)),
        Some(headers)
    );
    assert_eq!(
        copied(&mut packets, "an IP length of 10", &with_length(40, 10)),
        Some(headers)
    );
    // A zero IP length (a GSO packet too big for the field) leaves the frame's length to say.
    assert_eq!(
        copied(&mut packets, "a zero-length ACK", &with_length(0, 0)),
        Some(headers)
    );
    assert_eq!(
        copied(&mut packets, "zero-length data", &with_length(40, 0)),
        None
    );

    capture_with(&tracer, SNAPLEN, capture_flags::TCP_HEADERS_ONLY);
    assert_eq!(
        copied(&mut packets, "headers only: a data segment", &data),
        Some(headers),
        "cut after its TCP header"
    );
}

#[tokio::test]
async fn odd_frames_of_a_traced_flow_are_parsed_or_passed_over_never_misread() {
    let Some((tracer, mut packets)) = setup(
        "odd_frames_of_a_traced_flow_are_parsed_or_passed_over_never_misread",
        capture_flags::TCP_PAYLOAD,
    ) else {
        return;
    };
    let (local, peer) = ends();
    let plain = Shape::default();

    // IP options move the ports: still found, still this flow's.
    let with_options = frame(
        local,
        peer,
        10,
        Shape {
            options_words: 3,
            ..plain
        },
    );
    let copies = run(&tracer, &mut packets, Direction::Sent, &with_options);
    assert_eq!(copies.len(), 1, "IP options");
    assert_eq!(copies[0].cookie.0, COOKIE);

    // Not copied: a later fragment (its first bytes are no TCP header), a frame cut inside
    // the TCP ports (the kernel's test run takes no frame shorter than an IP header), an IHL
    // below 5, a segment of the flow's ports from another address (their pair marked, no
    // flow), a segment to another port of the peer (its pair not marked).
    let later_fragment = frame(
        local,
        peer,
        10,
        Shape {
            fragment_offset: 185,
            ..plain
        },
    );
    let cut_in_ports = frame(
        local,
        peer,
        10,
        Shape {
            cut_at: Some(14 + 20 + 3),
            ..plain
        },
    );
    let mut short_ihl = frame(local, peer, 10, plain);
    short_ihl[14] = 0x44;
    let other_address = frame(
        SocketAddr::new("127.0.0.2".parse().unwrap(), local.port()),
        peer,
        10,
        plain,
    );
    let other_port = frame(local, "127.0.0.1:8444".parse().unwrap(), 10, plain);
    for (name, odd) in [
        ("a later fragment", later_fragment),
        ("cut inside the ports", cut_in_ports),
        ("an IHL of 4", short_ihl),
        ("the flow's ports from another address", other_address),
        ("another port of the peer", other_port),
    ] {
        assert!(
            run(&tracer, &mut packets, Direction::Sent, &odd).is_empty(),
            "{name}: not copied"
        );
    }
    assert_eq!(tracer.lost_packets(CLIENT).unwrap(), 0);
}

#[tokio::test]
async fn a_flow_replaced_or_removed_is_not_taken_from_the_cache() {
    let Some((tracer, mut packets)) = setup(
        "a_flow_replaced_or_removed_is_not_taken_from_the_cache",
        capture_flags::TCP_PAYLOAD,
    ) else {
        return;
    };
    // Every test run on one CPU: the second finds the flow in the CPU's cache.
    nettrace_tests::cpu::pin(nettrace_tests::cpu::allowed()[0]);
    let (local, peer) = ends();
    let sent = frame(local, peer, 10, Shape::default());
    let cookies_of = |packets: &mut KernelEvents, frame: &[u8]| -> Vec<u64> {
        run(&tracer, packets, Direction::Sent, frame)
            .iter()
            .map(|packet| packet.cookie.0)
            .collect()
    };
    assert_eq!(
        cookies_of(&mut packets, &sent),
        [COOKIE],
        "found in the map"
    );
    assert_eq!(
        cookies_of(&mut packets, &sent),
        [COOKIE],
        "found in the cache"
    );
    // Same ports from other addresses: the same cache slot. Another flow there, and a frame of
    // no flow: each gets what is its own, and the first flow stays found.
    let other = SocketAddr::new("127.0.0.2".parse().unwrap(), local.port());
    let stranger = SocketAddr::new("127.0.0.3".parse().unwrap(), local.port());
    let other_flow = TracedFlow {
        cookie: COOKIE + 2,
        client_id: CLIENT.0,
        direction: direction::SENT,
    };
    tracer
        .register_flow(flow_key(FlowProtocol::Tcp, other, peer), other_flow)
        .unwrap();
    let from_other = frame(other, peer, 10, Shape::default());
    let from_stranger = frame(stranger, peer, 10, Shape::default());
    for _ in 0..2 {
        assert_eq!(
            cookies_of(&mut packets, &from_other),
            [COOKIE + 2],
            "the other flow"
        );
        assert_eq!(cookies_of(&mut packets, &sent), [COOKIE], "the first flow");
        assert!(
            cookies_of(&mut packets, &from_stranger).is_empty(),
            "no flow"
        );
        assert_eq!(
            cookies_of(&mut packets, &sent),
            [COOKIE],
            "the first flow, again"
        );
    }
    let mut cookies = || cookies_of(&mut packets, &sent);
    // Another socket of the same ends (its entry replaces the first's): its packets at once.
    let key = flow_key(FlowProtocol::Tcp, local, peer);
    let replacement = TracedFlow {
        cookie: COOKIE + 1,
        client_id: CLIENT.0,
        direction: direction::SENT,
    };
    tracer.register_flow(key, replacement).unwrap();
    assert_eq!(
        cookies(),
        [COOKIE + 1],
        "the replacement, not the cached flow"
    );
    assert_eq!(cookies(), [COOKIE + 1], "the replacement, cached");
    // Removed: nothing is copied any more.
    tracer.unregister_flow(&key).unwrap();
    assert_eq!(cookies(), [0u64; 0], "a removed flow, not the cached one");
}
