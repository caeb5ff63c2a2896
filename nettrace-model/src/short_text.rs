//! Short texts written without `core::fmt`'s padding machinery and without serde_json's
//! escaping adapter: a trace's timestamps and addresses, written to JSON once per record
//! (through `collect_str` each cost about 1,400–1,700 instructions; BENCHMARKS.md).
//!
//! ```
//! use std::{fmt::Write as _, net::IpAddr};
//! use nettrace_model::{ShortText, write_ip};
//!
//! let mut text = ShortText::<45>::new();
//! write_ip(&mut text, IpAddr::from([192, 0, 2, 10])).unwrap();
//! write!(text, ":{}", 443).unwrap();
//! assert_eq!(text.as_str(), "192.0.2.10:443");
//! ```
use std::{fmt, net::IpAddr};

/// A string of at most `N` bytes kept on the stack; writing past its room fails (`fmt::Error`)
/// and keeps what was written before.
#[derive(Clone, Copy)]
pub struct ShortText<const N: usize> {
    len: usize,
    bytes: [u8; N],
}

impl<const N: usize> ShortText<N> {
    /// An empty text.
    pub const fn new() -> Self {
        Self {
            len: 0,
            bytes: [0; N],
        }
    }

    /// The text written so far.
    pub fn as_str(&self) -> &str {
        // Only whole `str`s are copied in (`write_str`), so the bytes are UTF-8.
        std::str::from_utf8(&self.bytes[..self.len]).unwrap_or_default()
    }
}

impl<const N: usize> Default for ShortText<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> fmt::Write for ShortText<N> {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        let end = self.len + text.len();
        let slot = self.bytes.get_mut(self.len..end).ok_or(fmt::Error)?;
        slot.copy_from_slice(text.as_bytes());
        self.len = end;
        Ok(())
    }
}

impl<const N: usize> fmt::Debug for ShortText<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

/// Writes `ip` in its usual text form (`Display`'s, RFC 5952 for IPv6); IPv4 addresses, the
/// common case, digit by digit.
pub fn write_ip(out: &mut impl fmt::Write, ip: IpAddr) -> fmt::Result {
    match ip {
        IpAddr::V4(v4) => {
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    out.write_str(".")?;
                }
                write_decimal(out, u64::from(octet), 1)?;
            }
            Ok(())
        }
        IpAddr::V6(v6) => write!(out, "{v6}"),
    }
}

/// Writes `value` in decimal, with leading zeros up to `width` digits (at most 20).
pub(crate) fn write_decimal(out: &mut impl fmt::Write, value: u64, width: usize) -> fmt::Result {
    const ZEROS: &str = "00000000000000000000";
    let mut buffer = itoa::Buffer::new();
    let digits = buffer.format(value);
    let pad = width.saturating_sub(digits.len()).min(ZEROS.len());
    if pad > 0 {
        out.write_str(&ZEROS[..pad])?;
    }
    out.write_str(digits)
}

#[cfg(test)]
mod tests {
    use std::{
        fmt::Write as _,
        net::{IpAddr, Ipv4Addr, Ipv6Addr},
    };

    use super::{ShortText, write_decimal, write_ip};

    #[test]
    fn addresses_read_as_their_display_form() {
        let addresses: [IpAddr; 6] = [
            Ipv4Addr::new(0, 0, 0, 0).into(),
            Ipv4Addr::new(255, 255, 255, 255).into(),
            Ipv4Addr::new(10, 0, 99, 100).into(),
            Ipv6Addr::LOCALHOST.into(),
            "2001:db8::ff00:42:8329".parse().unwrap(),
            "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff".parse().unwrap(),
        ];
        for ip in addresses {
            let mut text = ShortText::<45>::new();
            write_ip(&mut text, ip).unwrap();
            assert_eq!(text.as_str(), ip.to_string());
        }
    }

    #[test]
    fn decimals_are_padded_to_their_width() {
        for (value, width, expected) in [
            (0, 1, "0"),
            (7, 2, "07"),
            (2026, 4, "2026"),
            (12345, 4, "12345"),
            (42, 9, "000000042"),
            (u64::MAX, 1, "18446744073709551615"),
            (5, 20, "00000000000000000005"),
        ] {
            let mut text = ShortText::<32>::new();
            write_decimal(&mut text, value, width).unwrap();
            assert_eq!(text.as_str(), expected, "{value} in {width}");
        }
    }

    #[test]
    fn writing_past_the_room_fails_and_keeps_what_fit() {
        let mut text = ShortText::<4>::new();
        assert!(write!(text, "abc").is_ok());
        assert!(write!(text, "de").is_err());
        assert_eq!(text.as_str(), "abc");
    }
}
