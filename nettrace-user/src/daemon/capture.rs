//! The daemon's capture requests: starting a client's packet capture, and capturing the flow
//! of a connected UDP socket whose descriptor the client passes.
//!
//! A client only ever gets the packets of its own sockets. TCP flows are registered by the
//! kernel at connect, from the socket itself. A UDP flow is registered here, from the
//! descriptor the client passes (`SCM_RIGHTS`): the daemon checks that the socket is one the
//! client registered, and reads both ends with `getsockname`/`getpeername` — a request can
//! name no address. ICMP and ARP packets belong to no socket (they would carry other users'
//! packets) and the conntrack reply tuple of a NAT-ed flow is the client's own word: neither
//! is captured through the daemon.
//!
//! ```ignore
//! let interfaces = start(&client, &request)?;        // Request::Capture
//! udp_flow(&client, &fd, own_cookie)?;              // Request::CaptureFlow, after connect()
//! ```
use std::{net::SocketAddr, os::fd::OwnedFd};

use socket2::{Protocol, SockRef, Type};

use super::{
    protocol::{CaptureInterface, CaptureRequest},
    slot::KernelSlot,
};
use crate::{
    SocketCookie,
    capture::{LinkKind, PacketCaptureOptions},
    error_chain::error_chain,
    kernel::FlowProtocol,
};

/// Why ICMP and ARP capture is refused through the daemon.
pub(crate) const NO_ICMP_ARP: &str = "ICMP and ARP capture is not available through the \
     nettrace-loader daemon: those packets belong to no socket and would carry other users' \
     traffic (capture them as root)";

/// Starts the capture of `request` in `client`'s slot (interfaces of the daemon's network
/// namespace); returns the interfaces found.
pub(super) fn start(
    client: &impl KernelSlot,
    request: &CaptureRequest,
) -> Result<Vec<CaptureInterface>, String> {
    if request.include_icmp || request.include_arp {
        return Err(NO_ICMP_ARP.to_owned());
    }
    if request.interfaces.is_empty() {
        return Err("capture names no interface".to_owned());
    }
    let options = PacketCaptureOptions {
        interfaces: request.interfaces.clone(),
        snaplen: request.snaplen,
        tcp_without_payload: request.tcp_without_payload,
        tcp_headers_only: request.tcp_headers_only,
        ..PacketCaptureOptions::default()
    };
    options.validate().map_err(|e| e.to_string())?;
    let found = client
        .start_capture(&options)
        .map_err(|e| format!("starting the capture failed: {}", error_chain(&e)))?;
    Ok(found
        .into_iter()
        .map(|info| CaptureInterface {
            name: info.name,
            index: info.index,
            raw_ip: info.link_kind == LinkKind::RawIp,
            loopback: info.loopback,
        })
        .collect())
}

/// Captures the flow of the connected UDP socket `fd` as its own: a socket this client
/// registered as `cookie` (checked by the caller).
pub(super) fn udp_flow(
    client: &impl KernelSlot,
    fd: &OwnedFd,
    cookie: SocketCookie,
) -> Result<(), String> {
    let socket = SockRef::from(fd);
    let udp = matches!(
        (socket.r#type(), socket.protocol()),
        (Ok(Type::DGRAM), Ok(Some(Protocol::UDP)))
    );
    if !udp {
        return Err("capture-flow takes a UDP socket (the kernel registers TCP flows)".to_owned());
    }
    let local = address(socket.local_addr()).ok_or("the socket has no local address")?;
    let remote = address(socket.peer_addr()).ok_or("the socket is not connected")?;
    client
        .register_flow(cookie, FlowProtocol::Udp, local, remote)
        .map_err(|e| format!("registering the flow failed: {}", error_chain(&e)))
}

/// An IP socket address, when the call succeeded.
fn address(addr: std::io::Result<socket2::SockAddr>) -> Option<SocketAddr> {
    addr.ok()?.as_socket()
}
