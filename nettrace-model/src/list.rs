//! [`TraceList`]: the lists of trace records in a `NetTrace`, looked up by [`TraceId`].
//!
//! Go has one slice type per record kind (`DialTraces`, `TCPConnTraces`, ...) each with
//! `Get(id)`. Here one generic newtype does it: `TraceList<T>` for any record that has an ID
//! ([`Traced`]), with the Go names kept as aliases ([`DialTraces`](super::DialTraces) =
//! `TraceList<DialTrace>`, ...). It dereferences to `Vec<T>` for everything else (push, iterate,
//! index); note that its own [`TraceList::get`] takes an ID, so positional access is `list[i]`
//! or `list.as_slice().get(i)`.
//!
//! JSON: an array, written as `null` when empty (Go's nil slice); read from `null` or `[]`.
//!
//! ```
//! use nettrace_model::{DialTrace, DialTraces, TraceId};
//!
//! let mut dials = DialTraces::default();
//! assert_eq!(serde_json::to_string(&dials).unwrap(), "null");
//! dials.push(DialTrace { trace_id: TraceId::new("tid-3"), ..Default::default() });
//! assert!(dials.get("tid-3").is_some());
//! assert!(dials.get(&TraceId::new("tid-4")).is_none());
//! ```

use std::ops::{Deref, DerefMut};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::TraceId;
use super::serde_util::null_when_empty;

/// A trace record that other records refer to by its [`TraceId`].
pub trait Traced {
    /// The record's identifier.
    fn trace_id(&self) -> &TraceId;
}

/// A list of trace records with lookup by ID (Go's `DialTraces`, `TCPConnTraces`, ...).
///
/// Dereferences to `Vec<T>` for everything else (push, iterate, index). Its own
/// [`TraceList::get`] takes an ID, so positional access is `list[i]` or
/// `list.as_slice().get(i)`. JSON: an array, written as `null` when empty (Go's nil slice), read
/// from `null` or `[]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TraceList<T>(pub Vec<T>);

impl<T> TraceList<T> {
    /// An empty list.
    pub const fn new() -> Self {
        Self(Vec::new())
    }

    /// The records as a slice.
    pub fn as_slice(&self) -> &[T] {
        &self.0
    }

    /// The records as a `Vec`.
    pub fn into_inner(self) -> Vec<T> {
        self.0
    }
}

impl<T: Traced> TraceList<T> {
    /// The record with the given ID (Go's `Get`), the first one if several have it.
    ///
    /// Accepts `&TraceId`, `&str` and `String`. The empty ID matches nothing: it means
    /// "no record".
    pub fn get(&self, id: impl AsRef<str>) -> Option<&T> {
        let id = id.as_ref();
        if id.is_empty() {
            return None;
        }
        self.0
            .iter()
            .find(|record| record.trace_id().as_str() == id)
    }

    /// Every record by ID (the first one of each non-empty ID, as [`TraceList::get`] finds
    /// it): for looking up many IDs in O(1) each rather than a scan each.
    pub fn by_id(&self) -> std::collections::HashMap<&str, &T> {
        let mut map = std::collections::HashMap::with_capacity(self.0.len());
        for record in &self.0 {
            let id = record.trace_id().as_str();
            if !id.is_empty() {
                map.entry(id).or_insert(record);
            }
        }
        map
    }

    /// Mutable access to the record with the given ID; see [`TraceList::get`].
    pub fn get_mut(&mut self, id: impl AsRef<str>) -> Option<&mut T> {
        let id = id.as_ref();
        if id.is_empty() {
            return None;
        }
        self.0
            .iter_mut()
            .find(|record| record.trace_id().as_str() == id)
    }
}

impl<T> Default for TraceList<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> Deref for TraceList<T> {
    type Target = Vec<T>;

    fn deref(&self) -> &Vec<T> {
        &self.0
    }
}

impl<T> DerefMut for TraceList<T> {
    fn deref_mut(&mut self) -> &mut Vec<T> {
        &mut self.0
    }
}

impl<T> From<Vec<T>> for TraceList<T> {
    fn from(records: Vec<T>) -> Self {
        Self(records)
    }
}

impl<T> FromIterator<T> for TraceList<T> {
    fn from_iter<I: IntoIterator<Item = T>>(iter: I) -> Self {
        Self(iter.into_iter().collect())
    }
}

impl<T> Extend<T> for TraceList<T> {
    fn extend<I: IntoIterator<Item = T>>(&mut self, iter: I) {
        self.0.extend(iter);
    }
}

impl<T> IntoIterator for TraceList<T> {
    type Item = T;
    type IntoIter = std::vec::IntoIter<T>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl<'a, T> IntoIterator for &'a TraceList<T> {
    type Item = &'a T;
    type IntoIter = std::slice::Iter<'a, T>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl<'a, T> IntoIterator for &'a mut TraceList<T> {
    type Item = &'a mut T;
    type IntoIter = std::slice::IterMut<'a, T>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter_mut()
    }
}

impl<T: Serialize> Serialize for TraceList<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        null_when_empty::serialize(&self.0, serializer)
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for TraceList<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        null_when_empty::deserialize(deserializer).map(Self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Rec {
        id: TraceId,
        n: u32,
    }

    impl Traced for Rec {
        fn trace_id(&self) -> &TraceId {
            &self.id
        }
    }

    fn rec(id: &str, n: u32) -> Rec {
        Rec {
            id: TraceId::new(id),
            n,
        }
    }

    #[test]
    fn get_by_id() {
        let mut list: TraceList<Rec> = [rec("tid-1", 1), rec("tid-2", 2), rec("", 3)]
            .into_iter()
            .collect();
        assert_eq!(list.get("tid-2").map(|r| r.n), Some(2));
        assert_eq!(list.get(TraceId::new("tid-1")).map(|r| r.n), Some(1));
        assert!(list.get("tid-9").is_none());
        assert!(list.get("").is_none(), "the empty ID refers to nothing");
        if let Some(r) = list.get_mut("tid-1") {
            r.n = 10;
        }
        assert_eq!(list[0].n, 10);
        assert_eq!(list.as_slice().get(1).map(|r| r.n), Some(2));
    }

    #[test]
    fn json_null_when_empty_and_reads_both() {
        let empty: TraceList<Rec> = TraceList::new();
        assert_eq!(serde_json::to_string(&empty).unwrap(), "null");
        for input in ["null", "[]"] {
            let read: TraceList<Rec> = serde_json::from_str(input).unwrap();
            assert!(read.is_empty(), "{input}");
        }
        let list = TraceList::from(vec![rec("tid-1", 1)]);
        let json = serde_json::to_string(&list).unwrap();
        assert_eq!(json, r#"[{"id":"tid-1","n":1}]"#);
        assert_eq!(serde_json::from_str::<TraceList<Rec>>(&json).unwrap(), list);
    }
}
