//! Finding a capture interface by name in the calling thread's network namespace: its index
//! and how its packets start (the hardware type, `ARPHRD_*`).
//!
//! Both come from ioctls on a socket the calling thread opens, so they see that thread's
//! network namespace (unlike `/sys/class/net`, which shows the namespace sysfs was mounted in).
use std::{ffi::CString, io, os::fd::AsRawFd};

use super::LinkKind;

/// A network interface packets can be captured on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CaptureInterfaceInfo {
    /// Its name.
    pub name: String,
    /// Its index in the namespace.
    pub index: u32,
    /// How its packets start.
    pub link_kind: LinkKind,
    /// True for a loopback device: every packet on it passes egress once, so the capture
    /// watches egress only (ingress would show each packet a second time).
    pub loopback: bool,
}

const ARPHRD_ETHER: u16 = 1;
const ARPHRD_LOOPBACK: u16 = 772;
const ARPHRD_NONE: u16 = 0xfffe;
const ARPHRD_RAWIP: u16 = 519;

impl CaptureInterfaceInfo {
    /// Looks the interface up. Fails when it does not exist or its link layer is neither
    /// Ethernet, loopback nor raw IP.
    pub fn lookup(name: &str) -> io::Result<Self> {
        let hardware = hardware_type(name)?;
        let (link_kind, loopback) = match hardware {
            ARPHRD_ETHER => (LinkKind::Ethernet, false),
            ARPHRD_LOOPBACK => (LinkKind::Ethernet, true),
            ARPHRD_NONE | ARPHRD_RAWIP => (LinkKind::RawIp, false),
            other => {
                return Err(io::Error::new(
                    io::ErrorKind::Unsupported,
                    format!("its link type ({other}) cannot be captured"),
                ));
            }
        };
        let c_name = c_name(name)?;
        // SAFETY: `c_name` is a valid NUL-terminated string for the duration of the call.
        let index = unsafe { libc::if_nametoindex(c_name.as_ptr()) };
        if index == 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Self {
            name: name.to_owned(),
            index,
            link_kind,
            loopback,
        })
    }
}

fn c_name(name: &str) -> io::Result<CString> {
    if name.is_empty() || name.len() >= libc::IFNAMSIZ {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{name:?} is not a valid interface name"),
        ));
    }
    CString::new(name).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))
}

/// The interface's `ARPHRD_*` hardware type (`SIOCGIFHWADDR`).
fn hardware_type(name: &str) -> io::Result<u16> {
    let c_name = c_name(name)?;
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None)?;
    // SAFETY: `ifreq` is plain old data; all zeros is a valid value.
    let mut request: libc::ifreq = unsafe { std::mem::zeroed() };
    for (slot, byte) in request.ifr_name.iter_mut().zip(c_name.as_bytes()) {
        *slot = *byte as libc::c_char;
    }
    // SAFETY: the socket is open, `request` is a properly initialised ifreq that outlives the
    // call, and SIOCGIFHWADDR writes only inside it.
    let result = unsafe { libc::ioctl(socket.as_raw_fd(), libc::SIOCGIFHWADDR, &mut request) };
    if result != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: SIOCGIFHWADDR filled the hardware-address member of the union.
    Ok(unsafe { request.ifr_ifru.ifru_hwaddr.sa_family })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_is_found_as_ethernet_and_loopback() {
        let lo = CaptureInterfaceInfo::lookup("lo").unwrap();
        assert_eq!(lo.link_kind, LinkKind::Ethernet);
        assert!(lo.loopback);
        assert!(lo.index > 0);
    }

    #[test]
    fn a_missing_interface_is_an_error() {
        let error = CaptureInterfaceInfo::lookup("nettrace-nope0").unwrap_err();
        assert_eq!(error.raw_os_error(), Some(libc::ENODEV), "{error}");
        assert!(CaptureInterfaceInfo::lookup("").is_err());
    }
}
