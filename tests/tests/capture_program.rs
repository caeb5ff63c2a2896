//! Root scenario: the TC capture program itself, run by the kernel on crafted frames
//! (`BPF_PROG_TEST_RUN`) against a flow registered for one client. Every frame is checked for
//! what the program copies of it (nothing, or how many bytes, for whom, which way), so the
//! header parsing is tested on frames no real stack would send: truncated headers, later
//! fragments, IP options, lengths that disagree with the frame.
use std::net::SocketAddr;

use nettrace::kernel::{
    ClientId, Direction, FlowProtocol, KernelConfig, KernelEvent, KernelEvents, KernelTracer,
    PacketRecord, flow_key,
};
use nettrace_common::{CaptureClient, TracedFlow, capture_flags, direction};
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

/// The programs loaded, `CLIENT` capturing with `flags`, and the flow of [`ends`] registered
/// in both directions.
fn setup(test: &str, flags: u32) -> Option<(KernelTracer, KernelEvents)> {
    if !require_root(test) {
        return None;
    }
    let (tracer, _events, packets) =
        KernelTracer::load_with_packets(&KernelConfig::default()).expect("loading the programs");
    tracer
        .set_capture_client(
            CLIENT,
            CaptureClient {
                snaplen: SNAPLEN,
                flags,
            },
        )
        .unwrap();
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

/// Runs the program of hook `way` once on `frame`; the packet records it wrote. The test run
/// returns after the program did, and a copy of at most a lane slot's size is in the lane by
/// then: one drain finds it.
fn run(
    tracer: &KernelTracer,
    packets: &mut KernelEvents,
    way: u32,
    frame: &[u8],
) -> Vec<PacketRecord> {
    if let Err(error) = tracer.run_capture_program(way, frame, 1) {
        panic!("test run of a {}-byte frame: {error:?}", frame.len());
    }
    packets
        .drain()
        .into_iter()
        .filter_map(|event| match event {
            Ok(KernelEvent::Packet(packet)) => Some(packet),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn a_traced_frame_is_copied_for_its_client_up_to_the_snap_length() {
    let Some((tracer, mut packets)) = setup(
        "a_traced_frame_is_copied_for_its_client_up_to_the_snap_length",
        capture_flags::TCP_PAYLOAD,
    ) else {
        return;
    };
    let (local, peer) = ends();
    for (from, to, way, payload) in [
        (local, peer, direction::SENT, 10),
        (peer, local, direction::RECEIVED, 10),
        (local, peer, direction::SENT, 500),
    ] {
        let sent = frame(from, to, payload, Shape::default());
        let copies = run(&tracer, &mut packets, way, &sent);
        assert_eq!(copies.len(), 1, "{payload} bytes {way}: one copy");
        let copy = &copies[0];
        assert_eq!(copy.cookie.0, COOKIE);
        assert_eq!(copy.client, CLIENT);
        let expected_way = if way == direction::SENT {
            Direction::Sent
        } else {
            Direction::Received
        };
        assert_eq!(copy.direction, expected_way);
        assert_eq!(copy.packet_len as usize, sent.len());
        let kept = sent.len().min(SNAPLEN as usize);
        assert_eq!(
            &copy.data[..],
            &sent[..kept],
            "the first bytes, snap length {SNAPLEN}"
        );
    }
}

#[tokio::test]
async fn without_payload_capture_data_segments_are_skipped_and_headers_cut_when_asked() {
    let Some((tracer, mut packets)) = setup(
        "without_payload_capture_data_segments_are_skipped_and_headers_cut_when_asked",
        0,
    ) else {
        return;
    };
    let (local, peer) = ends();
    let ack = frame(local, peer, 0, Shape::default());
    let copies = run(&tracer, &mut packets, direction::SENT, &ack);
    assert_eq!(copies.len(), 1, "a pure ACK is copied");
    assert_eq!(&copies[0].data[..], &ack[..]);
    let data = frame(local, peer, 40, Shape::default());
    assert!(
        run(&tracer, &mut packets, direction::SENT, &data).is_empty(),
        "a segment with data is not"
    );
    // The Ethernet padding of a short frame is not payload: the IP length says what is.
    let mut padded = ack.clone();
    padded.resize(ack.len() + 6, 0);
    assert_eq!(
        run(&tracer, &mut packets, direction::SENT, &padded).len(),
        1,
        "a padded pure ACK is copied"
    );

    tracer
        .set_capture_client(
            CLIENT,
            CaptureClient {
                snaplen: SNAPLEN,
                flags: capture_flags::TCP_HEADERS_ONLY,
            },
        )
        .unwrap();
    let copies = run(&tracer, &mut packets, direction::SENT, &data);
    assert_eq!(copies.len(), 1, "headers only: the data segment is copied");
    assert_eq!(
        copies[0].data.len(),
        14 + 20 + 20,
        "cut after its TCP header"
    );
    assert_eq!(copies[0].packet_len as usize, data.len());
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
    let copies = run(&tracer, &mut packets, direction::SENT, &with_options);
    assert_eq!(copies.len(), 1, "IP options");
    assert_eq!(copies[0].cookie.0, COOKIE);

    // Not copied: a later fragment (its first bytes are no TCP header), a frame cut inside
    // the TCP ports (the kernel's test run takes no frame shorter than an IP header), an IHL
    // below 5, a segment to another port of the peer (no flow).
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
    let other_flow = frame(local, "127.0.0.1:8444".parse().unwrap(), 10, plain);
    for (name, odd) in [
        ("a later fragment", later_fragment),
        ("cut inside the ports", cut_in_ports),
        ("an IHL of 4", short_ihl),
        ("another flow", other_flow),
    ] {
        assert!(
            run(&tracer, &mut packets, direction::SENT, &odd).is_empty(),
            "{name}: not copied"
        );
    }

    // An IP length larger than the frame (a lie): the copy stops at the frame's end.
    let lying = frame(
        local,
        peer,
        10,
        Shape {
            total_len: Some(1400),
            ..plain
        },
    );
    let copies = run(&tracer, &mut packets, direction::SENT, &lying);
    assert_eq!(copies.len(), 1, "a lying IP length");
    assert_eq!(copies[0].data.len(), lying.len().min(SNAPLEN as usize));
    assert_eq!(tracer.lost_packets(CLIENT).unwrap(), 0);
}
