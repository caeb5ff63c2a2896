//! [`PreciseTimes`]: a record's timestamps in microseconds, beside Go's whole milliseconds.
//!
//! Go's JSON keeps relative timestamps in whole milliseconds (`"+12ms"`), which turns every step
//! on loopback into `0ms`. A tracer that knows better (this project's recorder keeps monotonic
//! instants) adds the same timestamps in microseconds since `traceBeginAt` under the extension
//! key `preciseUs`, keyed by the JSON name of the timestamp they refine. Go-era readers ignore
//! the key; it is omitted when empty (traces written by Go, the loader's traces).
//!
//! Every record of every snapshot carries one, so it is built without touching the heap: the
//! names the recorder writes are a table (`KNOWN`) and a record holds at most four (`INLINE`) of
//! them, stored inline as indexes into the table beside their values. Other names (read from
//! JSON written by someone else), or more names than fit, move the whole set to a sorted vector
//! on the heap, so that any object of string -> u64 still round-trips. Lookups are a short
//! linear scan inline (a binary search on the heap), and the JSON is the one a
//! `BTreeMap<String, u64>` writes: keys in byte order.
//!
//! ```
//! use nettrace_model::{HttpReqTrace, PreciseTimes, Timestamp};
//!
//! let mut req = HttpReqTrace { req_sent_at: Timestamp::Relative(3), ..Default::default() };
//! req.precise_us.set("reqSentAt", 3_417);
//! let json = serde_json::to_value(&req).unwrap();
//! assert_eq!(json["reqSentAt"], "+3ms");
//! assert_eq!(json["preciseUs"]["reqSentAt"], 3417);
//! assert_eq!(req.precise_us.get("reqSentAt"), Some(3_417));
//! ```
use std::{borrow::Cow, fmt};

use serde::{
    Deserialize, Deserializer, Serialize, Serializer,
    de::{self, MapAccess, Visitor},
};

/// The timestamp names stored without allocation: those the recorder writes (and `connCloseAt`,
/// which readers ask for), in byte order so that sorting indexes sorts names.
const KNOWN: [&str; 11] = [
    "connCloseAt",
    "dialBeginAt",
    "dialEndAt",
    "handshakeBeginAt",
    "handshakeEndAt",
    "recvAt",
    "reqSentAt",
    "respBodyFirstByteAt",
    "respBodyLastByteAt",
    "respRecvAt",
    "sentAt",
];

/// The most names one record holds (an HTTP request's four), all stored inline.
const INLINE: usize = 4;

/// The index of `key` in [`KNOWN`], if there.
fn known(key: &str) -> Option<u8> {
    // Lengths differ for most pairs, so this is mostly length compares and one `bcmp`.
    KNOWN.iter().position(|name| *name == key).map(|i| i as u8)
}

/// Microseconds since the trace began, per timestamp of a record, keyed by the timestamp's JSON
/// name (`reqSentAt`, `handshakeEndAt`, ...). JSON: an object, e.g. `{"reqSentAt": 3417}`, keys
/// in byte order.
#[derive(Clone)]
pub struct PreciseTimes(Repr);

/// The storage: inline for known names, else a vector. Which one depends only on the set of
/// names (there is no removal), never on the order they were set in.
#[derive(Clone)]
enum Repr {
    /// Only names of [`KNOWN`], at most [`INLINE`]: the first `len` of `keys` (indexes into
    /// [`KNOWN`], ascending) and of `us`; the rest unused.
    Inline {
        len: u8,
        keys: [u8; INLINE],
        us: [u64; INLINE],
    },
    /// Any names, sorted by name, each once; known names borrowed from [`KNOWN`].
    Heap(Vec<(Cow<'static, str>, u64)>),
}

impl Default for PreciseTimes {
    fn default() -> Self {
        Self::new()
    }
}

/// A name being set: an index into [`KNOWN`], or another name.
enum Key<'a> {
    Known(u8),
    Borrowed(&'a str),
    Owned(String),
}

impl Key<'_> {
    fn as_str(&self) -> &str {
        match self {
            Key::Known(i) => KNOWN[usize::from(*i)],
            Key::Borrowed(name) => name,
            Key::Owned(name) => name,
        }
    }

    fn into_cow(self) -> Cow<'static, str> {
        match self {
            Key::Known(i) => Cow::Borrowed(KNOWN[usize::from(i)]),
            Key::Borrowed(name) => Cow::Owned(name.to_owned()),
            Key::Owned(name) => Cow::Owned(name),
        }
    }
}

impl PreciseTimes {
    /// No times recorded (the same as [`Default::default`], usable in constants).
    pub const fn new() -> Self {
        Self(Repr::Inline {
            len: 0,
            keys: [0; INLINE],
            us: [0; INLINE],
        })
    }

    /// The time of the timestamp named `key`, µs since the trace began, if recorded.
    #[inline]
    pub fn get(&self, key: &str) -> Option<u64> {
        // Inlined into the readers: a few compares, mostly of lengths, and one `bcmp` on a hit.
        match &self.0 {
            Repr::Inline { len, keys, us } => keys[..usize::from(*len)]
                .iter()
                .position(|&i| KNOWN[usize::from(i)] == key)
                .map(|at| us[at]),
            Repr::Heap(entries) => get_sorted(entries, key),
        }
    }

    /// Records the timestamp named `key` as `us` µs since the trace began, replacing any time
    /// it had. Allocates nothing for the names the recorder writes.
    pub fn set(&mut self, key: &str, us: u64) {
        match known(key) {
            Some(i) => self.set_known(i, us),
            None => self.insert(Key::Borrowed(key), us),
        }
    }

    /// True when nothing is recorded (the key is then omitted).
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many timestamps are recorded.
    #[inline]
    pub fn len(&self) -> usize {
        match &self.0 {
            Repr::Inline { len, .. } => usize::from(*len),
            Repr::Heap(entries) => entries.len(),
        }
    }

    /// The recorded times with their names, in the JSON's order (names in byte order).
    pub fn iter(&self) -> Iter<'_> {
        Iter(match &self.0 {
            Repr::Inline { len, keys, us } => {
                let len = usize::from(*len);
                IterRepr::Inline(keys[..len].iter().zip(&us[..len]))
            }
            Repr::Heap(entries) => IterRepr::Heap(entries.iter()),
        })
    }

    /// Sets the known name `i` to `us`: in place when present or when it fits inline, else on
    /// the heap. Inline, the names stay sorted by a few swaps (no `memmove` for four bytes).
    fn set_known(&mut self, i: u8, us: u64) {
        if let Repr::Inline {
            len,
            keys,
            us: values,
        } = &mut self.0
        {
            let n = usize::from(*len);
            if let Some(at) = keys[..n].iter().position(|&k| k == i) {
                values[at] = us;
                return;
            }
            if n < INLINE {
                keys[n] = i;
                values[n] = us;
                let mut at = n;
                while at > 0 && keys[at - 1] > keys[at] {
                    keys.swap(at - 1, at);
                    values.swap(at - 1, at);
                    at -= 1;
                }
                *len += 1;
                return;
            }
        }
        self.insert(Key::Known(i), us);
    }

    /// Sets `key` to `us` on the heap, moving the inline names there first.
    fn insert(&mut self, key: Key<'_>, us: u64) {
        match &mut self.0 {
            Repr::Heap(entries) => insert_sorted(entries, key, us),
            Repr::Inline {
                len,
                keys,
                us: values,
            } => {
                let n = usize::from(*len);
                let mut entries = Vec::with_capacity(INLINE * 2);
                entries.extend(
                    keys[..n]
                        .iter()
                        .zip(&values[..n])
                        .map(|(&i, &us)| (Cow::Borrowed(KNOWN[usize::from(i)]), us)),
                );
                insert_sorted(&mut entries, key, us);
                self.0 = Repr::Heap(entries);
            }
        }
    }
}

/// The time named `key` in `entries`, sorted by name (kept out of the readers' code).
#[inline(never)]
fn get_sorted(entries: &[(Cow<'static, str>, u64)], key: &str) -> Option<u64> {
    entries
        .binary_search_by(|(name, _)| (**name).cmp(key))
        .ok()
        .map(|at| entries[at].1)
}

/// Sets `key` to `us` in `entries`, sorted by name.
fn insert_sorted(entries: &mut Vec<(Cow<'static, str>, u64)>, key: Key<'_>, us: u64) {
    match entries.binary_search_by(|(name, _)| (**name).cmp(key.as_str())) {
        Ok(at) => entries[at].1 = us,
        Err(at) => entries.insert(at, (key.into_cow(), us)),
    }
}

impl PartialEq for PreciseTimes {
    fn eq(&self, other: &Self) -> bool {
        self.iter().eq(other.iter())
    }
}

impl Eq for PreciseTimes {}

impl fmt::Debug for PreciseTimes {
    /// `PreciseTimes({"reqSentAt": 3417})`, as when it wrapped a map.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        struct Map<'a>(&'a PreciseTimes);
        impl fmt::Debug for Map<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_map().entries(self.0.iter()).finish()
            }
        }
        f.debug_tuple("PreciseTimes").field(&Map(self)).finish()
    }
}

impl<'a> IntoIterator for &'a PreciseTimes {
    type Item = (&'a str, u64);
    type IntoIter = Iter<'a>;

    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

/// The names and times of a [`PreciseTimes`], names in byte order ([`PreciseTimes::iter`]).
#[derive(Clone, Debug)]
pub struct Iter<'a>(IterRepr<'a>);

#[derive(Clone, Debug)]
enum IterRepr<'a> {
    Inline(std::iter::Zip<std::slice::Iter<'a, u8>, std::slice::Iter<'a, u64>>),
    Heap(std::slice::Iter<'a, (Cow<'static, str>, u64)>),
}

impl<'a> Iterator for Iter<'a> {
    type Item = (&'a str, u64);

    fn next(&mut self) -> Option<Self::Item> {
        match &mut self.0 {
            IterRepr::Inline(entries) => {
                entries.next().map(|(&i, &us)| (KNOWN[usize::from(i)], us))
            }
            IterRepr::Heap(entries) => entries.next().map(|(name, us)| (&**name, *us)),
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        match &self.0 {
            IterRepr::Inline(entries) => entries.size_hint(),
            IterRepr::Heap(entries) => entries.size_hint(),
        }
    }
}

impl ExactSizeIterator for Iter<'_> {}

impl Serialize for PreciseTimes {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.iter())
    }
}

/// A name read from JSON: known names become indexes, others are kept.
struct ParsedKey<'de>(Key<'de>);

impl<'de> Deserialize<'de> for ParsedKey<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = ParsedKey<'de>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a timestamp name")
            }

            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(ParsedKey(known(v).map_or(Key::Borrowed(v), Key::Known)))
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(ParsedKey(
                    known(v).map_or_else(|| Key::Owned(v.to_owned()), Key::Known),
                ))
            }

            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(ParsedKey(match known(&v) {
                    Some(i) => Key::Known(i),
                    None => Key::Owned(v),
                }))
            }

            fn visit_borrowed_bytes<E: de::Error>(self, v: &'de [u8]) -> Result<Self::Value, E> {
                match std::str::from_utf8(v) {
                    Ok(v) => self.visit_borrowed_str(v),
                    Err(_) => Err(E::invalid_value(de::Unexpected::Bytes(v), &self)),
                }
            }

            fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Self::Value, E> {
                match std::str::from_utf8(v) {
                    Ok(v) => self.visit_str(v),
                    Err(_) => Err(E::invalid_value(de::Unexpected::Bytes(v), &self)),
                }
            }

            fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<Self::Value, E> {
                match String::from_utf8(v) {
                    Ok(v) => self.visit_string(v),
                    Err(e) => Err(E::invalid_value(
                        de::Unexpected::Bytes(&e.into_bytes()),
                        &self,
                    )),
                }
            }
        }
        // As `String` asks (the key of the `BTreeMap<String, u64>` this replaced).
        deserializer.deserialize_string(KeyVisitor)
    }
}

impl<'de> Deserialize<'de> for PreciseTimes {
    /// Any map of string -> u64; a repeated name keeps its last time (as a `BTreeMap` does).
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TimesVisitor;
        impl<'de> Visitor<'de> for TimesVisitor {
            type Value = PreciseTimes;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map of timestamp names to microseconds")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<PreciseTimes, A::Error> {
                let mut times = PreciseTimes::new();
                while let Some((ParsedKey(key), us)) = map.next_entry::<ParsedKey<'de>, u64>()? {
                    match key {
                        Key::Known(i) => times.set_known(i, us),
                        key => times.insert(key, us),
                    }
                }
                Ok(times)
            }
        }
        deserializer.deserialize_map(TimesVisitor)
    }
}

#[cfg(test)]
mod tests;
