//! [`GoNamed`]: the one mechanism behind the model's string-coded enums.
//!
//! Go writes several model enums as names (`"sync-recv"`, `"read-from"`, `"AAAA"`, ...) through a
//! `ToString`/`FromString` map pair. Each Rust type states that map once, as a [`GoNamed`] impl
//! (error kind, name table, unrecognized value and name, aliases), and its `Display`, `FromStr`,
//! `Serialize` and `Deserialize` impls are one-line calls to the provided methods and to
//! [`serialize`] / [`deserialize`] here. The rules, shared by every such type:
//! - written: the value's name in [`GoNamed::NAMES`], [`GoNamed::UNRECOGNIZED_NAME`] for a value
//!   without one (DNS codes keep numbers Go has no name for);
//! - parsed (`FromStr`): the names, the [aliases](GoNamed::ALIASES), `""` and the unrecognized
//!   name; any other string is [`ModelError::UnknownName`];
//! - read (JSON): as parsed, with `null` like `""` and unknown names as
//!   [`GoNamed::UNRECOGNIZED`] (Go's lenient `UnmarshalJSON`).
//!
//! For the `repr(u8)` enums, whose tables list every variant in numeric order, [`values`] derives
//! the public `ALL` array from the table and [`from_u8`] implements `TryFrom<u8>`.

use serde::{Deserializer, Serializer};

use super::ModelError;
use super::serde_util::nullable_str;

/// A model type whose string and JSON form is one of Go's names.
///
/// Implemented by [`DnsResType`](super::DnsResType), [`DnsRCode`](super::DnsRCode),
/// [`SocketOpType`](super::SocketOpType) and [`TcpState`](super::TcpState).
pub(crate) trait GoNamed: Copy + PartialEq + 'static {
    /// What is parsed, for [`ModelError::UnknownName`] (e.g. `"TCP state"`).
    const KIND: &'static str;
    /// The named values with the names written for them (one entry per value).
    const NAMES: &'static [(&'static str, Self)];
    /// Further names accepted when parsing (never written), e.g. a correct spelling of a name
    /// Go misspells.
    const ALIASES: &'static [(&'static str, Self)] = &[];
    /// The value of `""`, `null`, [`GoNamed::UNRECOGNIZED_NAME`] and (in JSON) unknown names.
    const UNRECOGNIZED: Self;
    /// The name written for [`GoNamed::UNRECOGNIZED`] and for values without a name.
    const UNRECOGNIZED_NAME: &'static str;

    /// The name of `self` in [`GoNamed::NAMES`], `None` if it has none.
    fn go_name(self) -> Option<&'static str> {
        Self::NAMES
            .iter()
            .find(|(_, value)| *value == self)
            .map(|(name, _)| *name)
    }

    /// The name written for `self`: its name, or [`GoNamed::UNRECOGNIZED_NAME`].
    fn go_str(self) -> &'static str {
        self.go_name().unwrap_or(Self::UNRECOGNIZED_NAME)
    }

    /// Parses a name, an alias, `""` or the unrecognized name (the `FromStr` rules).
    fn from_go_name(input: &str) -> Result<Self, ModelError> {
        if input.is_empty() || input == Self::UNRECOGNIZED_NAME {
            return Ok(Self::UNRECOGNIZED);
        }
        Self::NAMES
            .iter()
            .chain(Self::ALIASES)
            .find(|(name, _)| *name == input)
            .map(|(_, value)| *value)
            .ok_or_else(|| ModelError::UnknownName {
                kind: Self::KIND,
                name: input.to_owned(),
            })
    }

    /// Parses as [`GoNamed::from_go_name`], reading unknown names as [`GoNamed::UNRECOGNIZED`]
    /// (the JSON rules).
    fn from_go_name_lenient(input: &str) -> Self {
        Self::from_go_name(input).unwrap_or(Self::UNRECOGNIZED)
    }
}

/// Writes `value` as its Go name, for a type's `Serialize` impl.
pub(crate) fn serialize<T: GoNamed, S: Serializer>(
    value: &T,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(value.go_str())
}

/// Reads a Go name leniently (`null`, `""` and unknown names are unrecognized), for a type's
/// `Deserialize` impl.
pub(crate) fn deserialize<'de, T: GoNamed, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<T, D::Error> {
    nullable_str(deserializer, |s| Ok(T::from_go_name_lenient(s)))
}

/// The values of a name table in table order: the `ALL` array of a `repr(u8)` enum whose
/// [`GoNamed::NAMES`] lists every variant in numeric order. Fails to compile if `N` is not the
/// table's length.
pub(crate) const fn values<T: Copy, const N: usize>(table: &[(&'static str, T)]) -> [T; N] {
    assert!(table.len() == N, "name table and array lengths differ");
    let mut all = [table[0].1; N];
    let mut i = 1;
    while i < N {
        all[i] = table[i].1;
        i += 1;
    }
    all
}

/// `TryFrom<u8>` for a `repr(u8)` enum numbered `0..`: `all[value]`, or
/// [`ModelError::OutOfRange`] naming `kind`.
pub(crate) fn from_u8<T: Copy>(all: &[T], kind: &'static str, value: u8) -> Result<T, ModelError> {
    all.get(usize::from(value))
        .copied()
        .ok_or(ModelError::OutOfRange {
            kind,
            value: u64::from(value),
        })
}

#[cfg(test)]
mod tests {
    use serde::{Deserialize, Serialize};

    use super::*;
    use crate::{DnsRCode, DnsResType, SocketOpType, TcpState};

    /// A test enum with an alias and a value without a name.
    #[derive(Clone, Copy, Debug, PartialEq)]
    enum Color {
        /// Unknown: `"no-color"`.
        Unknown,
        /// `"red"`, also read from `"rouge"`.
        Red,
        /// No name: written as `"no-color"`.
        Blue,
    }

    impl GoNamed for Color {
        const KIND: &'static str = "color";
        const NAMES: &'static [(&'static str, Self)] = &[("red", Self::Red)];
        const ALIASES: &'static [(&'static str, Self)] = &[("rouge", Self::Red)];
        const UNRECOGNIZED: Self = Self::Unknown;
        const UNRECOGNIZED_NAME: &'static str = "no-color";
    }

    impl Serialize for Color {
        fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            serialize(self, serializer)
        }
    }

    impl<'de> Deserialize<'de> for Color {
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            deserialize(deserializer)
        }
    }

    #[test]
    fn names_aliases_and_unrecognized() {
        assert_eq!(Color::Red.go_name(), Some("red"));
        assert_eq!(Color::Blue.go_name(), None);
        assert_eq!(Color::Blue.go_str(), "no-color");
        assert_eq!(Color::Unknown.go_str(), "no-color");
        for (input, color) in [
            ("red", Color::Red),
            ("rouge", Color::Red),
            ("", Color::Unknown),
            ("no-color", Color::Unknown),
        ] {
            assert_eq!(Color::from_go_name(input).unwrap(), color, "{input}");
        }
        let err = Color::from_go_name("green").unwrap_err();
        assert!(
            matches!(err, ModelError::UnknownName { kind: "color", ref name } if name == "green")
        );
        assert_eq!(Color::from_go_name_lenient("green"), Color::Unknown);
    }

    #[test]
    fn json_written_as_name_and_read_leniently() {
        assert_eq!(serde_json::to_string(&Color::Red).unwrap(), r#""red""#);
        assert_eq!(
            serde_json::to_string(&Color::Blue).unwrap(),
            r#""no-color""#
        );
        for (json, color) in [
            (r#""rouge""#, Color::Red),
            ("null", Color::Unknown),
            (r#""""#, Color::Unknown),
            (r#""green""#, Color::Unknown),
        ] {
            assert_eq!(
                serde_json::from_str::<Color>(json).unwrap(),
                color,
                "{json}"
            );
        }
        assert!(serde_json::from_str::<Color>("1").is_err());
    }

    #[test]
    fn values_and_from_u8() {
        const ALL: [u8; 3] = values(&[("a", 10), ("b", 20), ("c", 30)]);
        assert_eq!(ALL, [10, 20, 30]);
        assert_eq!(from_u8(&ALL, "letter", 2).unwrap(), 30);
        let err = from_u8(&ALL, "letter", 3).unwrap_err();
        assert!(matches!(
            err,
            ModelError::OutOfRange {
                kind: "letter",
                value: 3
            }
        ));
    }

    /// The `repr(u8)` enums index their tables by number: entry `i` must be variant `i`.
    #[test]
    fn enum_tables_in_numeric_order() {
        for (i, (_, op)) in <SocketOpType as GoNamed>::NAMES.iter().enumerate() {
            assert_eq!(usize::from(op.as_u8()), i);
        }
        for (i, (_, state)) in <TcpState as GoNamed>::NAMES.iter().enumerate() {
            assert_eq!(usize::from(state.as_u8()), i);
        }
    }

    /// Every table name round-trips, and no name is listed twice.
    #[test]
    fn tables_round_trip_without_duplicates() {
        fn check<T: GoNamed + std::fmt::Debug>() {
            let mut seen = std::collections::HashSet::new();
            for (name, value) in T::NAMES.iter().chain(T::ALIASES) {
                assert!(seen.insert(*name), "{name} listed twice");
                assert_eq!(T::from_go_name(name).unwrap(), *value);
            }
            for (name, value) in T::NAMES {
                assert_eq!(value.go_str(), *name);
            }
        }
        check::<DnsResType>();
        check::<DnsRCode>();
        check::<SocketOpType>();
        check::<TcpState>();
    }
}
