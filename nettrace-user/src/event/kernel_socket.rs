//! Events of the programs attached to a traced cgroup: a socket created there, released, and
//! each `connect()` it makes (with the calling process).
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use nettrace_common::{ConnectEvent, SockCreateEvent, SockReleaseEvent, family, ip_protocol};

use super::kernel::{ClientId, MalformedRecord};
use crate::{KernelTime, SocketCookie};

/// The process that made a call, as the kernel saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KernelProcess {
    /// Process (thread group) id.
    pub pid: u32,
    /// Command name (at most 15 bytes).
    pub comm: String,
}

impl KernelProcess {
    fn new(pid: u32, comm: &[u8; 16]) -> Self {
        let end = comm.iter().position(|b| *b == 0).unwrap_or(comm.len());
        Self {
            pid,
            comm: String::from_utf8_lossy(&comm[..end]).into_owned(),
        }
    }
}

/// Transport protocol of a socket created in a traced cgroup.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SocketProtocol {
    /// A TCP socket.
    Tcp,
    /// A UDP socket.
    Udp,
}

/// A TCP or UDP socket created in a traced cgroup (and registered there by the kernel).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SocketCreated {
    /// The socket.
    pub cookie: SocketCookie,
    /// The client tracing the cgroup.
    pub client: ClientId,
    /// When it was created.
    pub time: KernelTime,
    /// TCP or UDP.
    pub protocol: SocketProtocol,
    /// True for an IPv6 socket.
    pub ipv6: bool,
    /// Who created it.
    pub process: KernelProcess,
}

/// A traced socket whose last descriptor was closed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SocketReleased {
    /// The socket.
    pub cookie: SocketCookie,
    /// The client tracing it.
    pub client: ClientId,
    /// When it was released.
    pub time: KernelTime,
}

/// A `connect()` call on a traced socket, seen before the kernel acted on it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectCall {
    /// The socket.
    pub cookie: SocketCookie,
    /// The client tracing it.
    pub client: ClientId,
    /// When it was called.
    pub time: KernelTime,
    /// TCP or UDP (`None` for another protocol number).
    pub protocol: Option<SocketProtocol>,
    /// The destination (an IPv4-mapped IPv6 address is given as IPv4).
    pub remote: SocketAddr,
    /// Who called it.
    pub process: KernelProcess,
}

fn protocol(number: u32) -> Option<SocketProtocol> {
    match u8::try_from(number) {
        Ok(ip_protocol::TCP) => Some(SocketProtocol::Tcp),
        Ok(ip_protocol::UDP) => Some(SocketProtocol::Udp),
        _ => None,
    }
}

impl SocketCreated {
    pub(crate) fn from_raw(e: &SockCreateEvent) -> Result<Self, MalformedRecord> {
        let protocol = protocol(e.protocol).ok_or_else(|| {
            MalformedRecord(format!("socket created with protocol {}", e.protocol))
        })?;
        Ok(Self {
            cookie: SocketCookie(e.header.cookie),
            client: ClientId(e.header.client_id),
            time: KernelTime(e.header.timestamp_ns),
            protocol,
            ipv6: e.family == family::INET6,
            process: KernelProcess::new(e.pid, &e.comm),
        })
    }
}

impl SocketReleased {
    pub(crate) fn from_raw(e: &SockReleaseEvent) -> Self {
        Self {
            cookie: SocketCookie(e.header.cookie),
            client: ClientId(e.header.client_id),
            time: KernelTime(e.header.timestamp_ns),
        }
    }
}

impl ConnectCall {
    pub(crate) fn from_raw(e: &ConnectEvent) -> Result<Self, MalformedRecord> {
        let ip = match e.family {
            family::INET => IpAddr::V4(Ipv4Addr::from(e.remote_addr[0].to_ne_bytes())),
            family::INET6 => {
                let mut bytes = [0u8; 16];
                for (chunk, word) in bytes.chunks_exact_mut(4).zip(&e.remote_addr) {
                    chunk.copy_from_slice(&word.to_ne_bytes());
                }
                IpAddr::V6(Ipv6Addr::from(bytes)).to_canonical()
            }
            other => {
                return Err(MalformedRecord(format!(
                    "connect event with address family {other}"
                )));
            }
        };
        Ok(Self {
            cookie: SocketCookie(e.header.cookie),
            client: ClientId(e.header.client_id),
            time: KernelTime(e.header.timestamp_ns),
            protocol: protocol(e.protocol),
            remote: SocketAddr::new(ip, e.remote_port as u16),
            process: KernelProcess::new(e.pid, &e.comm),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nettrace_common::EventHeader;

    #[test]
    fn decodes_connect_and_create_records() {
        let header = EventHeader {
            kind: nettrace_common::event_kind::CONNECT,
            client_id: 3,
            timestamp_ns: 7,
            cookie: 42,
        };
        let mut comm = [0u8; 16];
        comm[..4].copy_from_slice(b"curl");
        let connect = ConnectEvent {
            header,
            family: family::INET,
            protocol: 6,
            remote_addr: [u32::from_ne_bytes([127, 0, 0, 1]), 0, 0, 0],
            remote_port: 8080,
            pid: 99,
            comm,
        };
        let call = ConnectCall::from_raw(&connect).expect("decodes");
        assert_eq!(call.remote, "127.0.0.1:8080".parse().expect("addr"));
        assert_eq!(call.protocol, Some(SocketProtocol::Tcp));
        assert_eq!(call.process.comm, "curl");
        let bad = ConnectEvent {
            family: 99,
            ..connect
        };
        assert!(ConnectCall::from_raw(&bad).is_err());
        let create = SockCreateEvent {
            header,
            family: family::INET6,
            sock_type: 2,
            protocol: 17,
            pid: 1,
            comm: [b'x'; 16],
        };
        let created = SocketCreated::from_raw(&create).expect("decodes");
        assert!(created.ipv6);
        assert_eq!(created.protocol, SocketProtocol::Udp);
        assert_eq!(created.process.comm.len(), 16);
    }
}
