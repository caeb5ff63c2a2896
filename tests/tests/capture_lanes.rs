//! Root scenario: captured packets small enough for the per-CPU packet lanes (handshakes,
//! ACKs: up to 256 bytes) need no room in the packet ring buffer. With a ring of one page,
//! which two full-size packets fill, every SYN and SYN-ACK of a series of connections is
//! still captured. Alone in its binary: the first client of a process sizes the rings.
use nettrace_tests::{
    require_root,
    scenario::{self, get_ok},
    tiny_rings,
};

/// Connections made one after another (about ten packets each, all within one lane).
const CONNECTIONS: usize = 12;

/// Whether a captured `lo` frame (an Ethernet header, then IPv4) is a TCP segment with SYN.
fn is_syn(frame: &[u8]) -> bool {
    let Some(ip) = frame.get(14..) else {
        return false;
    };
    if ip.first().is_none_or(|v| v >> 4 != 4) || ip.get(9) != Some(&6) {
        return false;
    }
    let header_len = usize::from(ip[0] & 0x0f) * 4;
    ip.get(header_len + 13)
        .is_some_and(|flags| flags & 0x02 != 0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_packets_go_through_the_lanes_and_none_is_lost() {
    if !require_root("small_packets_go_through_the_lanes_and_none_is_lost") {
        return;
    }
    let server = scenario::plain_server().await;
    let client = tiny_rings::client_with_lanes(64 << 20);
    for _ in 0..CONNECTIONS {
        get_ok(&client, &server.url("/bytes/10")).await;
    }
    let (_trace, captures) = client.get_trace("lanes").unwrap();
    let capture = &captures[0];
    let syns = capture.packets.iter().filter(|p| is_syn(&p.data)).count();
    assert_eq!(
        syns,
        2 * CONNECTIONS,
        "each connection's SYN and SYN-ACK (lost packets: {})",
        capture.lost_packets
    );
}
