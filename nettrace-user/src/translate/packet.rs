//! The little a program trace reads from the packets the cgroup programs copy: the IP and
//! transport headers, through etherparse (to find a DNS payload and the local address of a
//! UDP socket), and the server name of a TLS ClientHello. Every read is bounds-checked: a
//! short or hostile packet yields `None`, never a panic.
use std::net::{IpAddr, SocketAddr};

use etherparse::{LaxNetSlice, LaxSlicedPacket, TransportSlice};

/// Transport protocol of a parsed packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Proto {
    Tcp,
    Udp,
}

/// A packet that starts with an IP header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct IpPacket<'a> {
    pub(crate) proto: Proto,
    pub(crate) src: SocketAddr,
    pub(crate) dst: SocketAddr,
    /// The transport payload (as much as was copied).
    pub(crate) payload: &'a [u8],
}

/// Parses an IPv4 or IPv6 TCP or UDP packet (with etherparse, as the capture's
/// [`crate::capture::CapturedPacket::layers`] does). A packet cut before the end of its
/// transport header yields `None`; the payload is what was copied of it.
pub(crate) fn parse_ip(data: &[u8]) -> Option<IpPacket<'_>> {
    let packet = LaxSlicedPacket::from_ip(data).ok()?;
    let (src, dst): (IpAddr, IpAddr) = match packet.net? {
        LaxNetSlice::Ipv4(ip) => (
            ip.header().source_addr().into(),
            ip.header().destination_addr().into(),
        ),
        LaxNetSlice::Ipv6(ip) => (
            ip.header().source_addr().into(),
            ip.header().destination_addr().into(),
        ),
        _ => return None,
    };
    let (proto, src_port, dst_port, payload) = match packet.transport? {
        TransportSlice::Tcp(tcp) => (
            Proto::Tcp,
            tcp.source_port(),
            tcp.destination_port(),
            tcp.payload(),
        ),
        TransportSlice::Udp(udp) => (
            Proto::Udp,
            udp.source_port(),
            udp.destination_port(),
            udp.payload(),
        ),
        _ => return None,
    };
    Some(IpPacket {
        proto,
        src: SocketAddr::new(src, src_port),
        dst: SocketAddr::new(dst, dst_port),
        payload,
    })
}

/// The server name (SNI) of a TLS ClientHello at the start of `record`, if it holds one.
pub(crate) fn client_hello_sni(record: &[u8]) -> Option<String> {
    let mut r = Reader(record);
    // Record header: handshake (22), version, length.
    if r.u8()? != 0x16 {
        return None;
    }
    r.skip(4)?;
    // Handshake header: client_hello (1), 24-bit length.
    if r.u8()? != 1 {
        return None;
    }
    r.skip(3)?;
    r.skip(2 + 32)?; // legacy_version, random
    let session = usize::from(r.u8()?);
    r.skip(session)?;
    let suites = usize::from(r.u16()?);
    r.skip(suites)?;
    let compression = usize::from(r.u8()?);
    r.skip(compression)?;
    let extensions_len = usize::from(r.u16()?);
    // A ClientHello cut short by the copy still shows its first extensions.
    let rest = r.0;
    let mut extensions = Reader(r.take(extensions_len).unwrap_or(rest));
    while let (Some(kind), Some(len)) = (extensions.u16(), extensions.u16()) {
        let body = extensions.take(usize::from(len))?;
        if kind != 0 {
            continue;
        }
        let mut names = Reader(body);
        let list_len = usize::from(names.u16()?);
        let mut list = Reader(names.take(list_len)?);
        while let Some(name_type) = list.u8() {
            let name_len = usize::from(list.u16()?);
            let name = list.take(name_len)?;
            if name_type == 0 {
                return std::str::from_utf8(name).ok().map(str::to_owned);
            }
        }
        return None;
    }
    None
}

/// A cursor over bytes whose reads fail at the end instead of panicking.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, tail) = (self.0.get(..n)?, self.0.get(n..)?);
        self.0 = tail;
        Some(head)
    }

    fn skip(&mut self, n: usize) -> Option<()> {
        self.take(n).map(|_| ())
    }

    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }

    fn u16(&mut self) -> Option<u16> {
        self.take(2).map(|b| u16::from_be_bytes([b[0], b[1]]))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn udp_v4(payload: &[u8]) -> Vec<u8> {
        let mut p = vec![
            0x45, 0, 0, 0, 0, 0, 0, 0, 64, 17, 0, 0, 127, 0, 0, 1, 127, 0, 0, 2,
        ];
        let len = (8 + payload.len()) as u16;
        p.extend_from_slice(&[0xc0, 0x00, 0, 53]);
        p.extend_from_slice(&len.to_be_bytes());
        p.extend_from_slice(&[0, 0]);
        p.extend_from_slice(payload);
        p
    }

    #[test]
    fn parses_udp_and_rejects_short_packets() {
        let packet = udp_v4(b"hello");
        let parsed = parse_ip(&packet).expect("parses");
        assert_eq!(parsed.proto, Proto::Udp);
        assert_eq!(parsed.src, "127.0.0.1:49152".parse().expect("addr"));
        assert_eq!(parsed.dst.port(), 53);
        assert_eq!(parsed.payload, b"hello");
        for cut in 0..28 {
            assert!(parse_ip(&packet[..cut]).is_none(), "cut at {cut}");
        }
        assert!(parse_ip(&[0x41; 40]).is_none());
    }

    /// A TLS ClientHello naming `name` (SNI), in one TLS record.
    pub(crate) fn client_hello(name: &str) -> Vec<u8> {
        let mut sni = Vec::new();
        sni.extend_from_slice(&((name.len() + 3) as u16).to_be_bytes());
        sni.push(0);
        sni.extend_from_slice(&(name.len() as u16).to_be_bytes());
        sni.extend_from_slice(name.as_bytes());
        let mut ext = vec![0, 0];
        ext.extend_from_slice(&(sni.len() as u16).to_be_bytes());
        ext.extend_from_slice(&sni);
        let mut body = vec![3, 3];
        body.extend_from_slice(&[0; 32]);
        body.extend_from_slice(&[0, 0, 2, 0x13, 0x01, 1, 0]);
        body.extend_from_slice(&(ext.len() as u16).to_be_bytes());
        body.extend_from_slice(&ext);
        let mut hs = vec![1, 0];
        hs.extend_from_slice(&(body.len() as u16).to_be_bytes());
        hs.extend_from_slice(&body);
        let mut rec = vec![0x16, 3, 1];
        rec.extend_from_slice(&(hs.len() as u16).to_be_bytes());
        rec.extend_from_slice(&hs);
        rec
    }

    #[test]
    fn finds_the_server_name_and_survives_truncation() {
        let hello = client_hello("example.test");
        assert_eq!(client_hello_sni(&hello).as_deref(), Some("example.test"));
        for cut in 0..hello.len() {
            let _ = client_hello_sni(&hello[..cut]);
        }
        assert_eq!(client_hello_sni(&[0x17, 3, 3, 0, 0]), None);
    }
}
