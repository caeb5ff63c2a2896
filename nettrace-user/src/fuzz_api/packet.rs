//! The `copied_packet` target: what a program trace reads from the packets the loader's
//! cgroup programs copy (`translate::packet`): IP and transport headers, and the server name
//! of a TLS ClientHello.
use crate::translate::packet::{client_hello_sni, parse_ip};

/// Parses `data` as a copied IP packet and looks for a ClientHello's server name in its
/// payload and in `data` itself, checking that every view stays inside the packet and that a
/// server name is bytes of the packet.
pub fn copied_packet(data: &[u8]) {
    if let Some(ip) = parse_ip(data) {
        let inside = data.as_ptr_range();
        let payload = ip.payload.as_ptr_range();
        assert!(
            ip.payload.is_empty() || (inside.start <= payload.start && payload.end <= inside.end),
            "the payload lies inside the packet"
        );
        assert_eq!(ip.src.is_ipv4(), ip.dst.is_ipv4(), "one address family");
        if let Some(name) = client_hello_sni(ip.payload) {
            assert!(contains(ip.payload, name.as_bytes()));
        }
    }
    if let Some(name) = client_hello_sni(data) {
        assert!(
            contains(data, name.as_bytes()),
            "the name is bytes of the record"
        );
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || haystack.windows(needle.len()).any(|w| w == needle)
}
