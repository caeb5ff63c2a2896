//! Flow keys: how the capture programs recognise the packets of a traced socket.
use std::net::{IpAddr, SocketAddr};

use nettrace_common::{FlowKey, direction, family, ip_protocol};

/// Transport protocols whose flows are captured.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FlowProtocol {
    /// TCP (IP protocol 6).
    Tcp,
    /// UDP (IP protocol 17).
    Udp,
}

impl FlowProtocol {
    fn number(self) -> u8 {
        match self {
            Self::Tcp => ip_protocol::TCP,
            Self::Udp => ip_protocol::UDP,
        }
    }
}

/// The key of packets going from `src` to `dst`. IPv4-mapped IPv6 addresses are keyed as the
/// IPv4 packets they travel in.
pub fn flow_key(protocol: FlowProtocol, src: SocketAddr, dst: SocketAddr) -> FlowKey {
    let (src_ip, dst_ip) = (src.ip().to_canonical(), dst.ip().to_canonical());
    let family = match (src_ip, dst_ip) {
        (IpAddr::V4(_), IpAddr::V4(_)) => family::INET,
        _ => family::INET6,
    };
    FlowKey {
        src_addr: address_words(src_ip, family),
        dst_addr: address_words(dst_ip, family),
        src_port: src.port(),
        dst_port: dst.port(),
        protocol: protocol.number(),
        family: family as u8,
        _pad: 0,
    }
}

/// Both directions of the flow of a socket at `local` connected to `remote`, each with the
/// direction its packets have from the socket's point of view.
pub fn flow_directions(
    protocol: FlowProtocol,
    local: SocketAddr,
    remote: SocketAddr,
) -> [(FlowKey, u32); 2] {
    [
        (flow_key(protocol, local, remote), direction::SENT),
        (flow_key(protocol, remote, local), direction::RECEIVED),
    ]
}

/// The address as the programs read it from packet headers: network byte order in native
/// words, IPv4 in the first word.
fn address_words(ip: IpAddr, family: u32) -> [u32; 4] {
    let v6 = match ip {
        IpAddr::V4(v4) if family == family::INET => {
            return [u32::from_ne_bytes(v4.octets()), 0, 0, 0];
        }
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        IpAddr::V6(v6) => v6,
    };
    let octets = v6.octets();
    let mut words = [0u32; 4];
    for (word, chunk) in words.iter_mut().zip(octets.chunks_exact(4)) {
        *word = u32::from_ne_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
    }
    words
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_two_directions_mirror_each_other() {
        let local: SocketAddr = "127.0.0.1:40000".parse().unwrap();
        let remote: SocketAddr = "127.0.0.2:80".parse().unwrap();
        let [(sent, d1), (received, d2)] = flow_directions(FlowProtocol::Tcp, local, remote);
        assert_eq!((d1, d2), (direction::SENT, direction::RECEIVED));
        assert_eq!(sent.src_addr, received.dst_addr);
        assert_eq!(sent.src_port, 40000);
        assert_eq!(received.src_port, 80);
        assert_eq!(sent.src_addr[0].to_ne_bytes(), [127, 0, 0, 1]);
        assert_eq!(sent.family as u32, family::INET);
        assert_eq!(sent.protocol, 6);
    }

    #[test]
    fn mapped_ipv6_is_keyed_as_ipv4_and_ipv6_keeps_all_words() {
        let mapped = flow_key(
            FlowProtocol::Udp,
            "[::ffff:10.0.0.1]:5353".parse().unwrap(),
            "10.0.0.2:53".parse().unwrap(),
        );
        assert_eq!(mapped.family as u32, family::INET);
        assert_eq!(
            mapped.src_addr,
            [u32::from_ne_bytes([10, 0, 0, 1]), 0, 0, 0]
        );
        let v6 = flow_key(
            FlowProtocol::Udp,
            "[::1]:5353".parse().unwrap(),
            "[fd00::2]:53".parse().unwrap(),
        );
        assert_eq!(v6.family as u32, family::INET6);
        assert_eq!(v6.src_addr[3].to_ne_bytes(), [0, 0, 0, 1]);
        assert_eq!(v6.dst_addr[0].to_ne_bytes(), [0xfd, 0, 0, 0]);
    }
}
