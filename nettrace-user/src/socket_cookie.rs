//! The kernel socket cookie: the one key that joins kernel events to userspace records.
//!
//! A cookie is a 64-bit number the kernel assigns to a socket once and never reuses while the
//! system runs (`SO_COOKIE`). nettrace reads it right after creating a socket and before
//! `connect()`, so the kernel programs can recognise the socket from its first packet on.
//!
//! ```no_run
//! # fn main() -> std::io::Result<()> {
//! let socket = std::net::UdpSocket::bind("127.0.0.1:0")?;
//! let cookie = nettrace::SocketCookie::of(&socket)?;
//! println!("{cookie}");
//! # Ok(()) }
//! ```
use std::{fmt, io, os::fd::AsFd};

/// A kernel socket cookie (`SO_COOKIE`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SocketCookie(pub u64);

impl SocketCookie {
    /// Reads the cookie of an open socket.
    pub fn of(socket: &impl AsFd) -> io::Result<Self> {
        socket2::SockRef::from(socket).cookie().map(Self)
    }
}

impl fmt::Display for SocketCookie {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cookie:{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_socket_has_its_own_cookie() {
        let a = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let (ca, cb) = (SocketCookie::of(&a).unwrap(), SocketCookie::of(&b).unwrap());
        assert_ne!(ca, cb);
        assert_eq!(SocketCookie::of(&a).unwrap(), ca, "a cookie is stable");
    }
}
