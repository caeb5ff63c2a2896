//! The strings of span trees: borrowed from the trace where the trace has them, made only
//! where the span needs a text the trace does not hold (an address, a joined list). Short
//! made texts (addresses, protocol versions) are kept inline: building a span tree was mostly
//! allocations and frees (BENCHMARKS.md, issue 15).
use std::{
    fmt::{self, Write as _},
    net::IpAddr,
    ops::Deref,
};

use nettrace_model::ShortText;

/// The longest text kept inline: any IPv4 address (at most 15 bytes), a version, a status
/// code, short IPv6 forms (`::1`, `::ffff:10.0.0.1`). 22 bytes keep a `Text` as small as
/// the enum of a `String` allows; longer texts (IPv6 up to 39 bytes) are allocated.
const INLINE: usize = 22;

/// A string of a span tree.
#[derive(Clone)]
pub struct Text<'a>(Repr<'a>);

#[derive(Clone)]
enum Repr<'a> {
    Borrowed(&'a str),
    Owned(String),
    Inline { len: u8, bytes: [u8; INLINE] },
}

impl<'a> Text<'a> {
    /// The text as a string slice.
    pub fn as_str(&self) -> &str {
        match &self.0 {
            Repr::Borrowed(text) => text,
            Repr::Owned(text) => text,
            // Only a whole `ShortText` is copied in (`inline`), which holds UTF-8.
            Repr::Inline { len, bytes } => {
                std::str::from_utf8(&bytes[..usize::from(*len)]).unwrap_or_default()
            }
        }
    }

    /// The text's bytes (UTF-8), without the check `as_str` makes of an inline text: what
    /// the encoder writes.
    pub fn as_bytes(&self) -> &[u8] {
        match &self.0 {
            Repr::Borrowed(text) => text.as_bytes(),
            Repr::Owned(text) => text.as_bytes(),
            Repr::Inline { len, bytes } => &bytes[..usize::from(*len)],
        }
    }

    /// The text's length in bytes.
    pub fn len(&self) -> usize {
        self.as_bytes().len()
    }

    /// Whether the text is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// What `args` writes: inline when it fits, else allocated (formatted a second time
    /// then: only long texts, which are rare here).
    pub fn format(args: fmt::Arguments<'_>) -> Self {
        let mut written = ShortText::<INLINE>::new();
        if written.write_fmt(args).is_ok() {
            return inline(&written);
        }
        Self(Repr::Owned(fmt::format(args)))
    }

    /// An IP address in its usual text form (RFC 5952 for IPv6), without an allocation.
    pub fn ip(ip: IpAddr) -> Self {
        let mut written = ShortText::<INLINE>::new();
        match nettrace_model::write_ip(&mut written, ip) {
            Ok(()) => inline(&written),
            Err(_) => Self(Repr::Owned(ip.to_string())),
        }
    }
}

impl Deref for Text<'_> {
    type Target = str;

    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl fmt::Debug for Text<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for Text<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PartialEq for Text<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl PartialEq<str> for Text<'_> {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for Text<'_> {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl<'a> From<&'a str> for Text<'a> {
    fn from(text: &'a str) -> Self {
        Self(Repr::Borrowed(text))
    }
}

impl<'a> From<&'a String> for Text<'a> {
    fn from(text: &'a String) -> Self {
        Self(Repr::Borrowed(text))
    }
}

impl From<String> for Text<'_> {
    fn from(text: String) -> Self {
        Self(Repr::Owned(text))
    }
}

/// The text `written` holds, kept inline (it holds at most [`INLINE`] bytes).
fn inline<'a>(written: &ShortText<INLINE>) -> Text<'a> {
    let text = written.as_str().as_bytes();
    let mut bytes = [0; INLINE];
    bytes[..text.len()].copy_from_slice(text);
    Text(Repr::Inline {
        len: text.len() as u8,
        bytes,
    })
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use super::*;

    #[test]
    fn addresses_read_as_their_display_form() {
        let samples: [IpAddr; 7] = [
            Ipv4Addr::new(0, 0, 0, 0).into(),
            Ipv4Addr::new(127, 0, 0, 1).into(),
            Ipv4Addr::new(10, 99, 100, 255).into(),
            Ipv4Addr::new(255, 255, 255, 255).into(),
            Ipv6Addr::LOCALHOST.into(),
            "2001:db8::8a2e:370:7334".parse().expect("v6"),
            "::ffff:255.255.255.255".parse().expect("mapped"),
        ];
        for ip in samples {
            assert_eq!(Text::ip(ip).as_str(), ip.to_string());
        }
        let longest = Ipv6Addr::from([0xffff; 8]);
        assert_eq!(Text::ip(longest.into()).as_str(), longest.to_string());
        assert!(
            matches!(Text::ip(longest.into()).0, Repr::Owned(_)),
            "39 bytes: allocated"
        );
        assert!(matches!(Text::ip([255; 4].into()).0, Repr::Inline { .. }));
    }

    #[test]
    fn a_text_is_no_larger_than_a_string_and_its_tag() {
        assert!(std::mem::size_of::<Text<'_>>() <= std::mem::size_of::<String>() + 8);
    }

    #[test]
    fn formatted_text_is_inline_when_short_and_whole_when_long() {
        assert_eq!(Text::format(format_args!("{}.{}", 1, 1)), "1.1");
        let long = "é".repeat(40);
        assert_eq!(
            Text::format(format_args!("{long}!")).as_str(),
            format!("{long}!")
        );
        assert!(matches!(
            Text::format(format_args!("{long}")).0,
            Repr::Owned(_)
        ));
    }

    #[test]
    fn texts_compare_by_content_whatever_holds_them() {
        let owned = String::from("GET");
        assert_eq!(Text::from(&owned), Text::from("GET".to_owned()));
        assert_eq!(Text::from("GET"), "GET");
        let inline = Text::ip("10.0.0.1".parse().expect("v4"));
        assert_eq!(inline.as_bytes(), b"10.0.0.1");
        assert_eq!((inline.len(), inline.is_empty()), (8, false));
        assert!(Text::from("").is_empty());
        assert_eq!(format!("{:?}", Text::from("a\"b")), "\"a\\\"b\"");
    }
}
