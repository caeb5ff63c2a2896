//! DNS codes: resource record types ([`DnsResType`]) and response codes ([`DnsRCode`]).
//!
//! Both keep the raw 16-bit number from the wire, so a recorder can store any type or rcode
//! (e.g. `TYPE65`/HTTPS, or rcode 9 NOTAUTH), while JSON uses Go's names: the types and rcodes Go
//! knows are written by name, every other one as `"unrecognized-type"` / `"unrecognized-rcode"`
//! (the raw number is not in the JSON; Go consumers know no other names). Reading: Go's names;
//! `null`, `""` and unknown names become [`DnsResType::UNRECOGNIZED`] (0) /
//! [`DnsRCode::UNRECOGNIZED`] (65534). (Go reads an unknown rcode name as `no-error`, a bug not
//! kept.)
//!
//! ```
//! use nettrace_model::{DnsRCode, DnsResType};
//!
//! assert_eq!(DnsResType::from(28).to_string(), "AAAA");
//! assert_eq!(DnsResType::from(65).to_string(), "unrecognized-type");
//! assert_eq!(DnsResType::from(65).code(), 65);
//! assert_eq!(DnsRCode::NX_DOMAIN.to_string(), "non-existent-domain");
//! assert_eq!("query-refused".parse::<DnsRCode>().unwrap(), DnsRCode::REFUSED);
//! ```

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::ModelError;
use super::go_names::{self, GoNamed};

/// A DNS resource record type (IANA "Resource Record (RR) TYPEs"), any 16-bit value.
///
/// JSON: Go's name for the [types Go knows](DnsResType::KNOWN), `"unrecognized-type"` for any
/// other (the number is not written). `null`, `""` and unknown names read as
/// [`DnsResType::UNRECOGNIZED`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DnsResType(pub u16);

impl DnsResType {
    /// Not recognized (0 is reserved). JSON `"unrecognized-type"`.
    pub const UNRECOGNIZED: Self = Self(0);
    /// IPv4 address.
    pub const A: Self = Self(1);
    /// Name server.
    pub const NS: Self = Self(2);
    /// Canonical name.
    pub const CNAME: Self = Self(5);
    /// Start of authority.
    pub const SOA: Self = Self(6);
    /// Well-known services (obsolete).
    pub const WKS: Self = Self(11);
    /// Domain name pointer.
    pub const PTR: Self = Self(12);
    /// Host information.
    pub const HINFO: Self = Self(13);
    /// Mailbox information.
    pub const MINFO: Self = Self(14);
    /// Mail exchange.
    pub const MX: Self = Self(15);
    /// Text.
    pub const TXT: Self = Self(16);
    /// IPv6 address.
    pub const AAAA: Self = Self(28);
    /// Service locator.
    pub const SRV: Self = Self(33);
    /// EDNS pseudo-record.
    pub const OPT: Self = Self(41);
    /// Zone transfer.
    pub const AXFR: Self = Self(252);
    /// All records (`*`).
    pub const ALL: Self = Self(255);

    /// The types Go knows, with their JSON names.
    pub const KNOWN: [(&'static str, Self); 15] = [
        ("A", Self::A),
        ("NS", Self::NS),
        ("CNAME", Self::CNAME),
        ("SOA", Self::SOA),
        ("WKS", Self::WKS),
        ("PTR", Self::PTR),
        ("HINFO", Self::HINFO),
        ("MINFO", Self::MINFO),
        ("MX", Self::MX),
        ("TXT", Self::TXT),
        ("AAAA", Self::AAAA),
        ("SRV", Self::SRV),
        ("OPT", Self::OPT),
        ("AXFR", Self::AXFR),
        ("ALL", Self::ALL),
    ];

    /// The numeric type.
    pub const fn code(self) -> u16 {
        self.0
    }

    /// Go's name for this type, `None` if Go does not know it.
    pub fn name(self) -> Option<&'static str> {
        self.go_name()
    }

    /// The string written to JSON: the name, or `"unrecognized-type"`.
    pub fn as_str(self) -> &'static str {
        self.go_str()
    }
}

impl GoNamed for DnsResType {
    const KIND: &'static str = "DNS resource type";
    const NAMES: &'static [(&'static str, Self)] = &Self::KNOWN;
    const UNRECOGNIZED: Self = Self::UNRECOGNIZED;
    const UNRECOGNIZED_NAME: &'static str = "unrecognized-type";
}

impl From<u16> for DnsResType {
    fn from(code: u16) -> Self {
        Self(code)
    }
}

impl From<DnsResType> for u16 {
    fn from(res_type: DnsResType) -> Self {
        res_type.0
    }
}

impl fmt::Display for DnsResType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for DnsResType {
    type Err = ModelError;

    /// Go's names, plus `""` and `"unrecognized-type"` (unrecognized).
    fn from_str(input: &str) -> Result<Self, ModelError> {
        Self::from_go_name(input)
    }
}

impl Serialize for DnsResType {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        go_names::serialize(self, serializer)
    }
}

impl<'de> Deserialize<'de> for DnsResType {
    /// Reads Go's names; `null` and unknown names read as `UNRECOGNIZED`.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        go_names::deserialize(deserializer)
    }
}

/// A DNS response code (IANA "DNS RCODEs"), any 16-bit value (extended rcodes included).
///
/// JSON: Go's name for the [rcodes Go knows](DnsRCode::KNOWN), `"unrecognized-rcode"` for any
/// other (the number is not written). `null`, `""` and unknown names read as
/// [`DnsRCode::UNRECOGNIZED`] (Go reads an unknown name as `no-error`, a bug not kept).
///
/// The default is [`DnsRCode::NO_ERROR`] (Go's zero value).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DnsRCode(pub u16);

impl DnsRCode {
    /// No error. JSON `"no-error"`.
    pub const NO_ERROR: Self = Self(0);
    /// Format error. JSON `"format-error"`.
    pub const FORMAT_ERR: Self = Self(1);
    /// Server failure. JSON `"server-fail"`.
    pub const SERV_FAIL: Self = Self(2);
    /// Non-existent domain. JSON `"non-existent-domain"`.
    pub const NX_DOMAIN: Self = Self(3);
    /// Not implemented. JSON `"not-implemented"`.
    pub const NOT_IMP: Self = Self(4);
    /// Query refused. JSON `"query-refused"`.
    pub const REFUSED: Self = Self(5);
    /// Go's value for every other rcode (65534, not assigned by IANA).
    /// JSON `"unrecognized-rcode"`.
    pub const UNRECOGNIZED: Self = Self(65534);

    /// The rcodes Go knows, with their JSON names.
    pub const KNOWN: [(&'static str, Self); 6] = [
        ("no-error", Self::NO_ERROR),
        ("format-error", Self::FORMAT_ERR),
        ("server-fail", Self::SERV_FAIL),
        ("non-existent-domain", Self::NX_DOMAIN),
        ("not-implemented", Self::NOT_IMP),
        ("query-refused", Self::REFUSED),
    ];

    /// The numeric rcode.
    pub const fn code(self) -> u16 {
        self.0
    }

    /// Go's name for this rcode, `None` if Go does not know it.
    pub fn name(self) -> Option<&'static str> {
        self.go_name()
    }

    /// The string written to JSON: the name, or `"unrecognized-rcode"`.
    pub fn as_str(self) -> &'static str {
        self.go_str()
    }
}

impl GoNamed for DnsRCode {
    const KIND: &'static str = "DNS rcode";
    const NAMES: &'static [(&'static str, Self)] = &Self::KNOWN;
    const UNRECOGNIZED: Self = Self::UNRECOGNIZED;
    const UNRECOGNIZED_NAME: &'static str = "unrecognized-rcode";
}

impl From<u16> for DnsRCode {
    fn from(code: u16) -> Self {
        Self(code)
    }
}

impl From<DnsRCode> for u16 {
    fn from(rcode: DnsRCode) -> Self {
        rcode.0
    }
}

impl fmt::Display for DnsRCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for DnsRCode {
    type Err = ModelError;

    /// Go's names, plus `""` and `"unrecognized-rcode"` (unrecognized).
    fn from_str(input: &str) -> Result<Self, ModelError> {
        Self::from_go_name(input)
    }
}

impl Serialize for DnsRCode {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        go_names::serialize(self, serializer)
    }
}

impl<'de> Deserialize<'de> for DnsRCode {
    /// Reads Go's names; `null` and unknown names read as `UNRECOGNIZED`.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        go_names::deserialize(deserializer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn res_type_numbers_and_names() {
        let expected = [
            (1, "A"),
            (2, "NS"),
            (5, "CNAME"),
            (6, "SOA"),
            (11, "WKS"),
            (12, "PTR"),
            (13, "HINFO"),
            (14, "MINFO"),
            (15, "MX"),
            (16, "TXT"),
            (28, "AAAA"),
            (33, "SRV"),
            (41, "OPT"),
            (252, "AXFR"),
            (255, "ALL"),
        ];
        for (code, name) in expected {
            let res_type = DnsResType::from(code);
            assert_eq!(serde_json::to_value(res_type).unwrap(), name);
            let read: DnsResType = serde_json::from_value(name.into()).unwrap();
            assert_eq!(read.code(), code);
        }
        assert_eq!(DnsResType::from(0).as_str(), "unrecognized-type");
        assert_eq!(
            serde_json::to_value(DnsResType(65)).unwrap(),
            "unrecognized-type"
        );
        assert_eq!(DnsResType(65).name(), None);
        assert!("TYPE65".parse::<DnsResType>().is_err());
        for lenient in ["null", r#""""#, r#""unrecognized-type""#, r#""TYPE65""#] {
            let read: DnsResType = serde_json::from_str(lenient).unwrap();
            assert_eq!(read, DnsResType::UNRECOGNIZED, "{lenient}");
        }
    }

    #[test]
    fn rcode_numbers_and_names() {
        let names = [
            "no-error",
            "format-error",
            "server-fail",
            "non-existent-domain",
            "not-implemented",
            "query-refused",
        ];
        for (code, name) in names.into_iter().enumerate() {
            let rcode = DnsRCode::from(u16::try_from(code).unwrap());
            assert_eq!(serde_json::to_value(rcode).unwrap(), name);
            assert_eq!(
                serde_json::from_value::<DnsRCode>(name.into()).unwrap(),
                rcode
            );
        }
        assert_eq!(DnsRCode::UNRECOGNIZED.code(), 65534);
        assert_eq!(DnsRCode::default(), DnsRCode::NO_ERROR);
        assert_eq!(
            serde_json::to_value(DnsRCode(9)).unwrap(),
            "unrecognized-rcode"
        );
        assert_eq!(DnsRCode(9).code(), 9);
        for lenient in ["null", r#""""#, r#""unrecognized-rcode""#, r#""not-auth""#] {
            let read: DnsRCode = serde_json::from_str(lenient).unwrap();
            assert_eq!(read, DnsRCode::UNRECOGNIZED, "{lenient}");
        }
    }
}
