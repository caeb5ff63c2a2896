//! Serde helpers that reproduce Go's `encoding/json` conventions in the model.
//!
//! - [`null_when_empty`]: a list that Go declares without `omitempty` is a nil slice when empty,
//!   which `json.Marshal` writes as `null`. Written as `null` when empty; read from `null` or `[]`.
//! - [`nullable_str`]: Go types with a custom `UnmarshalJSON` (timestamps, enums, flags) and plain
//!   strings treat JSON `null` like `""`. Used by the hand-written `Deserialize` impls.
//! - [`opt_ip`]: IP addresses written by Go's `net.IP.String()`; unknown is `""` (Go wrote
//!   `"<nil>"`, which is still read as unknown).
//! - [`is_false`], [`is_zero_u16`], [`is_zero_u32`]: `skip_serializing_if` predicates for
//!   Go's `omitempty` on scalars.
//!
//! Internal to the model; the public types carry these conventions in their own impls.

use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, Deserializer, Visitor};

use super::ModelError;

/// `skip_serializing_if` for Go `bool` fields with `omitempty`.
pub(crate) fn is_false(value: &bool) -> bool {
    !*value
}

/// `skip_serializing_if` for Go `uint16` fields with `omitempty`.
pub(crate) fn is_zero_u16(value: &u16) -> bool {
    *value == 0
}

/// `skip_serializing_if` for Go `uint32` fields with `omitempty`.
pub(crate) fn is_zero_u32(value: &u32) -> bool {
    *value == 0
}

/// Lists written as `null` when empty and read from `null`, `[]` or a non-empty array.
///
/// Use as `#[serde(with = "null_when_empty")]`; for Go's `omitempty` lists combine
/// `skip_serializing_if = "Vec::is_empty"` with `deserialize_with = "null_when_empty::deserialize"`.
pub(crate) mod null_when_empty {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    /// Writes `null` for an empty list, the elements otherwise.
    pub(crate) fn serialize<S, T>(list: &[T], serializer: S) -> Result<S::Ok, S::Error>
    where
        S: Serializer,
        T: Serialize,
    {
        if list.is_empty() {
            serializer.serialize_none()
        } else {
            serializer.collect_seq(list)
        }
    }

    /// Reads `null` as an empty list.
    pub(crate) fn deserialize<'de, D, T>(deserializer: D) -> Result<Vec<T>, D::Error>
    where
        D: Deserializer<'de>,
        T: Deserialize<'de>,
    {
        Ok(Option::<Vec<T>>::deserialize(deserializer)?.unwrap_or_default())
    }
}

/// Deserializes a JSON string (or `null`, passed to `parse` as `""`) through `parse`.
pub(crate) fn nullable_str<'de, D, T, F>(deserializer: D, parse: F) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    F: FnOnce(&str) -> Result<T, ModelError>,
{
    deserializer.deserialize_option(NullableStr {
        parse,
        _value: PhantomData,
    })
}

/// Visitor of [`nullable_str`].
struct NullableStr<F, T> {
    parse: F,
    _value: PhantomData<fn() -> T>,
}

impl<'de, F, T> Visitor<'de> for NullableStr<F, T>
where
    F: FnOnce(&str) -> Result<T, ModelError>,
{
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string or null")
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<T, E> {
        (self.parse)(value).map_err(E::custom)
    }

    fn visit_none<E: de::Error>(self) -> Result<T, E> {
        self.visit_str("")
    }

    fn visit_unit<E: de::Error>(self) -> Result<T, E> {
        self.visit_str("")
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<T, D::Error> {
        deserializer.deserialize_str(self)
    }
}

/// Optional IP addresses as Go's `net.IP.String()` writes them.
///
/// `None` is written as `""` (Go wrote `"<nil>"` for an unknown address, a quirk not kept);
/// `null`, `""` and `"<nil>"` are read as `None`. IPv4-mapped IPv6 addresses are written in
/// dotted IPv4 form, as Go does.
pub(crate) mod opt_ip {
    use std::net::IpAddr;

    use serde::{Deserializer, Serializer};

    use crate::{
        ModelError,
        short_text::{ShortText, write_ip},
    };

    /// Parses the Go string form of an optional IP address.
    pub(crate) fn parse(input: &str) -> Result<Option<IpAddr>, ModelError> {
        match input {
            "" | "<nil>" => Ok(None),
            _ => input
                .parse()
                .map(Some)
                .map_err(|source| ModelError::InvalidIpAddr {
                    input: input.to_owned(),
                    source,
                }),
        }
    }

    /// Writes the address, or `""` when unknown.
    pub(crate) fn serialize<S: Serializer>(
        ip: &Option<IpAddr>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match ip {
            Some(ip) => {
                let ip = ip.to_canonical();
                // The longest IPv6 form takes 39 bytes (45 with an embedded IPv4 address).
                let mut text = ShortText::<45>::new();
                match write_ip(&mut text, ip) {
                    Ok(()) => serializer.serialize_str(text.as_str()),
                    Err(_) => serializer.collect_str(&ip),
                }
            }
            None => serializer.serialize_str(""),
        }
    }

    /// Reads an address; `null`, `""` and `"<nil>"` are unknown.
    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<IpAddr>, D::Error> {
        super::nullable_str(deserializer, parse)
    }
}
