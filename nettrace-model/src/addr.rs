//! [`AddrTuple`]: the source and destination of a connection (the socket's ends, or a
//! conntrack entry's original or reply direction), as Go writes them.
//!
//! ```
//! use nettrace_model::AddrTuple;
//!
//! let tuple = AddrTuple::new("10.0.0.2:40000".parse().unwrap(), "10.0.0.1:443".parse().unwrap());
//! assert_eq!(serde_json::to_value(tuple).unwrap()["dstPort"], 443);
//! ```
use std::net::{IpAddr, SocketAddr};

use serde::{Deserialize, Serialize};

use super::serde_util::opt_ip;

/// Source and destination addresses of a connection. Whether from our side or the remote one,
/// before or after NAT, depends on where it appears.
///
/// JSON: IPs as strings (IPv4-mapped IPv6 in dotted IPv4 form, as Go), an unknown IP as `""`;
/// `"<nil>"` (what Go writes for an unknown source IP) reads as unknown.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(default)]
pub struct AddrTuple {
    /// Source IP address; `None` (JSON `""`) if unknown.
    #[serde(rename = "srcIP", with = "opt_ip")]
    pub src_ip: Option<IpAddr>,
    /// Source port; 0 if unknown.
    #[serde(rename = "srcPort")]
    pub src_port: u16,
    /// Destination IP address; `None` (JSON `""`) if unknown.
    #[serde(rename = "dstIP", with = "opt_ip")]
    pub dst_ip: Option<IpAddr>,
    /// Destination port.
    #[serde(rename = "dstPort")]
    pub dst_port: u16,
}

impl AddrTuple {
    /// The tuple of a source and a destination socket address.
    pub fn new(src: SocketAddr, dst: SocketAddr) -> Self {
        Self {
            src_ip: Some(src.ip()),
            src_port: src.port(),
            dst_ip: Some(dst.ip()),
            dst_port: dst.port(),
        }
    }

    /// The source socket address, if its IP is known.
    pub fn src(&self) -> Option<SocketAddr> {
        self.src_ip.map(|ip| SocketAddr::new(ip, self.src_port))
    }

    /// The destination socket address, if its IP is known.
    pub fn dst(&self) -> Option<SocketAddr> {
        self.dst_ip.map(|ip| SocketAddr::new(ip, self.dst_port))
    }
}
