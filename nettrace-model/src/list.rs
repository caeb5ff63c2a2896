//! [`TraceList`]: the lists of trace records in a `NetTrace`, looked up by [`TraceId`].
//!
//! Go has one slice type per record kind (`DialTraces`, `TCPConnTraces`, ...) each with
//! `Get(id)`. Here one generic newtype does it: `TraceList<T>` for any record that has an ID
//! ([`Traced`]), with the Go names kept as aliases ([`DialTraces`](super::DialTraces) =
//! `TraceList<DialTrace>`, ...). Its records are shared (`Arc`), so that a snapshot of a trace whose
//! records did not change copies pointers, not records; it reads like a `Vec<T>` (iterate, index,
//! push); note that its own [`TraceList::get`] takes an ID, so positional access is `list[i]`
//! or `list.at(i)`.
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

use std::{ops::Deref, sync::Arc};

use serde::{Deserialize, Deserializer, Serialize, Serializer, ser::SerializeSeq};

use super::TraceId;
use super::serde_util::null_when_empty;

/// A trace record that other records refer to by its [`TraceId`].
pub trait Traced {
    /// The record's identifier.
    fn trace_id(&self) -> &TraceId;
}

/// A list of trace records with lookup by ID (Go's `DialTraces`, `TCPConnTraces`, ...).
///
/// The records are shared ([`Arc`]): cloning a list, or taking a snapshot of a trace whose
/// records did not change, copies pointers, not records. Reading looks like a `Vec<T>`:
/// [`iter`](Self::iter) and `&list` iterate `&T`, `list[i]` is a `T`, and the list
/// dereferences to the slice of shared records for the rest (`len`, `is_empty`, `first`,
/// ...). Changing a record ([`get_mut`](Self::get_mut), [`iter_mut`](Self::iter_mut),
/// [`at_mut`](Self::at_mut), `list[i].x = ..`) copies it first if it is shared. Its own [`TraceList::get`]
/// takes an ID, so positional access is `list[i]` or [`list.at(i)`](Self::at). JSON: an array,
/// written as `null` when empty (Go's nil slice), read from `null` or `[]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TraceList<T>(Vec<Arc<T>>);

impl<T> TraceList<T> {
    /// An empty list.
    pub const fn new() -> Self {
        Self(Vec::new())
    }

    /// An empty list with room for `capacity` records.
    pub fn with_capacity(capacity: usize) -> Self {
        Self(Vec::with_capacity(capacity))
    }

    /// A list of shared records (no copy).
    pub fn from_shared(records: Vec<Arc<T>>) -> Self {
        Self(records)
    }

    /// The shared records, in order.
    pub fn as_slice(&self) -> &[Arc<T>] {
        &self.0
    }

    /// The records in order.
    pub fn iter(&self) -> Iter<'_, T> {
        Iter(self.0.iter())
    }

    /// The record at position `i`, if there is one.
    pub fn at(&self, i: usize) -> Option<&T> {
        self.0.get(i).map(|record| &**record)
    }

    /// Appends a record.
    pub fn push(&mut self, record: T) {
        self.0.push(Arc::new(record));
    }

    /// Appends a shared record (no copy).
    pub fn push_shared(&mut self, record: Arc<T>) {
        self.0.push(record);
    }

    /// Keeps only the records for which `keep` is true, in order.
    pub fn retain(&mut self, mut keep: impl FnMut(&T) -> bool) {
        self.0.retain(|record| keep(record));
    }

    /// Keeps the first `len` records.
    pub fn truncate(&mut self, len: usize) {
        self.0.truncate(len);
    }
}

impl<T: Clone> TraceList<T> {
    /// Mutable access to the record at position `i` (copied first if shared).
    pub fn at_mut(&mut self, i: usize) -> Option<&mut T> {
        self.0.get_mut(i).map(Arc::make_mut)
    }

    /// Mutable access to every record in order (each copied first if shared).
    pub fn iter_mut(&mut self) -> impl Iterator<Item = &mut T> {
        self.0.iter_mut().map(Arc::make_mut)
    }

    /// Removes and returns the record at position `i` (copied if shared); panics, as
    /// `Vec::remove` does, when `i` is out of bounds.
    pub fn remove(&mut self, i: usize) -> T {
        Arc::unwrap_or_clone(self.0.remove(i))
    }

    /// A copy of the records.
    pub fn to_vec(&self) -> Vec<T> {
        self.iter().cloned().collect()
    }

    /// The records as a `Vec` (each copied if shared).
    pub fn into_inner(self) -> Vec<T> {
        self.0.into_iter().map(Arc::unwrap_or_clone).collect()
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
        self.iter().find(|record| record.trace_id().as_str() == id)
    }

    /// Every record by ID (the first one of each non-empty ID, as [`TraceList::get`] finds
    /// it): for looking up many IDs in O(1) each rather than a scan each.
    pub fn by_id(&self) -> std::collections::HashMap<&str, &T> {
        let mut map = std::collections::HashMap::with_capacity(self.0.len());
        for record in self {
            let id = record.trace_id().as_str();
            if !id.is_empty() {
                map.entry(id).or_insert(record);
            }
        }
        map
    }
}

impl<T: Traced + Clone> TraceList<T> {
    /// Mutable access to the record with the given ID (copied first if shared); see
    /// [`TraceList::get`].
    pub fn get_mut(&mut self, id: impl AsRef<str>) -> Option<&mut T> {
        let id = id.as_ref();
        if id.is_empty() {
            return None;
        }
        self.0
            .iter_mut()
            .find(|record| record.trace_id().as_str() == id)
            .map(Arc::make_mut)
    }
}

/// An iterator over the records of a [`TraceList`], by reference.
#[derive(Clone, Debug)]
pub struct Iter<'a, T>(std::slice::Iter<'a, Arc<T>>);

impl<'a, T> Iterator for Iter<'a, T> {
    type Item = &'a T;

    fn next(&mut self) -> Option<&'a T> {
        self.0.next().map(|record| &**record)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.0.size_hint()
    }
}

impl<T> DoubleEndedIterator for Iter<'_, T> {
    fn next_back(&mut self) -> Option<Self::Item> {
        self.0.next_back().map(|record| &**record)
    }
}

impl<T> ExactSizeIterator for Iter<'_, T> {}

impl<T> Default for TraceList<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> Deref for TraceList<T> {
    type Target = [Arc<T>];

    fn deref(&self) -> &[Arc<T>] {
        &self.0
    }
}

impl<T> std::ops::Index<usize> for TraceList<T> {
    type Output = T;

    fn index(&self, i: usize) -> &T {
        &self.0[i]
    }
}

/// `&list[..]`: the shared records, for slice patterns (`let [a, b] = &list[..]`).
impl<T> std::ops::Index<std::ops::RangeFull> for TraceList<T> {
    type Output = [Arc<T>];

    fn index(&self, _: std::ops::RangeFull) -> &[Arc<T>] {
        &self.0
    }
}

/// Copies the record first if it is shared.
impl<T: Clone> std::ops::IndexMut<usize> for TraceList<T> {
    fn index_mut(&mut self, i: usize) -> &mut T {
        Arc::make_mut(&mut self.0[i])
    }
}

impl<T> From<Vec<T>> for TraceList<T> {
    fn from(records: Vec<T>) -> Self {
        records.into_iter().collect()
    }
}

impl<T> FromIterator<T> for TraceList<T> {
    fn from_iter<I: IntoIterator<Item = T>>(iter: I) -> Self {
        Self(iter.into_iter().map(Arc::new).collect())
    }
}

impl<T> Extend<T> for TraceList<T> {
    fn extend<I: IntoIterator<Item = T>>(&mut self, iter: I) {
        self.0.extend(iter.into_iter().map(Arc::new));
    }
}

impl<T: Clone> IntoIterator for TraceList<T> {
    type Item = T;
    type IntoIter = std::vec::IntoIter<T>;

    fn into_iter(self) -> Self::IntoIter {
        self.into_inner().into_iter()
    }
}

impl<'a, T> IntoIterator for &'a TraceList<T> {
    type Item = &'a T;
    type IntoIter = Iter<'a, T>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl<T: Serialize> Serialize for TraceList<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if self.0.is_empty() {
            return serializer.serialize_none();
        }
        let mut seq = serializer.serialize_seq(Some(self.0.len()))?;
        for record in self {
            seq.serialize_element(record)?;
        }
        seq.end()
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for TraceList<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        null_when_empty::deserialize::<_, T>(deserializer)
            .map(|records| records.into_iter().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
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
        let shared = list.clone();
        if let Some(r) = list.get_mut("tid-1") {
            r.n = 10;
        }
        assert_eq!(list[0].n, 10);
        assert_eq!(shared[0].n, 1, "a change copies a shared record");
        assert!(Arc::ptr_eq(&list.as_slice()[1], &shared.as_slice()[1]));
        assert_eq!(list.at(1).map(|r| r.n), Some(2));
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
