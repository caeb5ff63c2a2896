//! [`IdMap`]: values by record ID, sized for the few records of a typical trace.
//!
//! A streamed trace holds one request, one connection and perhaps one dial, and its phases are
//! computed once per trace: there a hash map costs more (a hasher seed and a table
//! allocation each) than the lookups it saves. An `IdMap` is a list searched in order while it
//! holds at most 16 entries, and a hash map past that, so large traces keep O(1)
//! lookups. A map of at most two entries (most maps of a streamed trace) allocates nothing.
//!
//! ```
//! use nettrace_model::IdMap;
//!
//! let mut map = IdMap::default();
//! map.insert_first("conn-1", 0);
//! map.insert_first("conn-1", 5); // the first value of an ID stays
//! assert_eq!(map.get("conn-1"), Some(&0));
//! ```
use foldhash::{HashMap, HashMapExt as _};
use smallvec::SmallVec;

/// The most entries kept in a list searched in order; one more turns the map into a hash map.
pub(crate) const LINEAR_MAX: usize = 16;

/// Entries kept in the map itself before its list is allocated.
const INLINE: usize = 2;

/// Values by ID (`&str`), any ID accepted, the empty one included.
#[derive(Debug)]
pub struct IdMap<'a, V>(Repr<'a, V>);

#[derive(Debug)]
enum Repr<'a, V> {
    /// At most [`LINEAR_MAX`] entries, one per ID, in the order of insertion.
    Linear(SmallVec<[(&'a str, V); INLINE]>),
    /// More than [`LINEAR_MAX`] entries.
    Hashed(HashMap<&'a str, V>),
}

impl<V> Default for IdMap<'_, V> {
    fn default() -> Self {
        Self(Repr::Linear(SmallVec::new()))
    }
}

impl<'a> IdMap<'a, usize> {
    /// The first position of each non-empty ID among `ids` (as [`crate::TraceList::get`]
    /// finds a record: the empty ID means "no record").
    pub fn first_positions(ids: impl Iterator<Item = &'a str>) -> Self {
        let mut map = Self::default();
        for (i, id) in ids.enumerate() {
            if !id.is_empty() {
                map.insert_first(id, i);
            }
        }
        map
    }
}

impl<'a, V> IdMap<'a, V> {
    /// The value of `id`, if any.
    pub fn get(&self, id: &str) -> Option<&V> {
        match &self.0 {
            Repr::Linear(entries) => entries.iter().find(|(k, _)| *k == id).map(|(_, v)| v),
            Repr::Hashed(map) => map.get(id),
        }
    }

    /// The value of `id`, inserted as `make()` if it had none.
    pub fn get_or_insert_with(&mut self, id: &'a str, make: impl FnOnce() -> V) -> &mut V {
        if let Repr::Linear(entries) = &mut self.0
            && entries.len() >= LINEAR_MAX
            && !entries.iter().any(|(k, _)| *k == id)
        {
            let mut map = HashMap::with_capacity(LINEAR_MAX * 2);
            map.extend(entries.drain(..));
            self.0 = Repr::Hashed(map);
        }
        match &mut self.0 {
            Repr::Linear(entries) => {
                let at = match entries.iter().position(|(k, _)| *k == id) {
                    Some(at) => at,
                    None => {
                        entries.push((id, make()));
                        entries.len() - 1
                    }
                };
                &mut entries[at].1
            }
            Repr::Hashed(map) => map.entry(id).or_insert_with(make),
        }
    }

    /// Sets the value of `id` unless it has one: the first value of each ID wins.
    pub fn insert_first(&mut self, id: &'a str, value: V) {
        self.get_or_insert_with(id, || value);
    }

    /// Whether `id` has a value.
    pub fn contains(&self, id: &str) -> bool {
        self.get(id).is_some()
    }

    /// Calls `change` with each value, in no particular order.
    pub fn for_each_value_mut(&mut self, mut change: impl FnMut(&mut V)) {
        match &mut self.0 {
            Repr::Linear(entries) => entries.iter_mut().for_each(|(_, v)| change(v)),
            Repr::Hashed(map) => map.values_mut().for_each(change),
        }
    }

    /// Whether no ID has a value.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many IDs have a value.
    pub fn len(&self) -> usize {
        match &self.0 {
            Repr::Linear(entries) => entries.len(),
            Repr::Hashed(map) => map.len(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{IdMap, LINEAR_MAX, Repr};

    /// IDs `id0`, `id1`, ... for `n` records.
    fn ids(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("id{i}")).collect()
    }

    #[test]
    fn first_value_of_an_id_wins() {
        let mut map = IdMap::default();
        map.insert_first("a", 1);
        map.insert_first("b", 2);
        map.insert_first("a", 3);
        assert_eq!(map.get("a"), Some(&1));
        assert_eq!(map.get("b"), Some(&2));
        assert_eq!(map.get("c"), None);
        assert_eq!(map.len(), 2);
    }

    /// Past `LINEAR_MAX` IDs the map is hashed, and keeps every value, first and last alike.
    #[test]
    fn past_the_threshold_it_is_hashed_and_answers_the_same() {
        for n in [LINEAR_MAX - 1, LINEAR_MAX, LINEAR_MAX + 1, LINEAR_MAX * 4] {
            let ids = ids(n);
            let mut first = IdMap::default();
            let mut last = IdMap::default();
            for round in 0..2 {
                for (i, id) in ids.iter().enumerate() {
                    first.insert_first(id.as_str(), (round, i));
                    *last.get_or_insert_with(id.as_str(), || (round, i)) = (round, i);
                }
            }
            assert_eq!(
                matches!(first.0, Repr::Hashed(_)),
                n > LINEAR_MAX,
                "{n} IDs"
            );
            assert_eq!(first.len(), n);
            assert_eq!(last.len(), n);
            for (i, id) in ids.iter().enumerate() {
                assert_eq!(first.get(id), Some(&(0, i)), "{n} IDs, first of {id}");
                assert_eq!(last.get(id), Some(&(1, i)), "{n} IDs, last of {id}");
            }
            assert_eq!(first.get("other"), None);
        }
    }

    #[test]
    fn get_or_insert_with_makes_a_value_once() {
        for n in [3, LINEAR_MAX * 2] {
            let ids = ids(n);
            let mut counts: IdMap<'_, u32> = IdMap::default();
            for id in ids.iter().chain(&ids).chain(&ids[..1]) {
                *counts.get_or_insert_with(id, || 0) += 1;
            }
            assert_eq!(counts.get("id0"), Some(&3));
            assert_eq!(counts.get(&ids[n - 1]), Some(&2));
        }
    }

    /// The map itself takes the empty ID like any other; `first_positions` skips it, as
    /// `TraceList::get` finds no record for it.
    #[test]
    fn empty_id() {
        let mut map = IdMap::default();
        map.insert_first("", 7);
        assert_eq!(map.get(""), Some(&7));

        for n in [2, LINEAR_MAX * 2] {
            let mut ids = vec![String::new()];
            ids.extend(self::ids(n));
            ids.push("id0".into());
            ids.push(String::new());
            let positions = IdMap::first_positions(ids.iter().map(String::as_str));
            assert_eq!(positions.get(""), None, "{n} IDs");
            assert_eq!(positions.get("id0"), Some(&1), "{n} IDs");
            assert_eq!(positions.get(&format!("id{}", n - 1)), Some(&n), "{n} IDs");
            assert_eq!(positions.len(), n);
        }
    }

    #[test]
    fn every_value_can_be_changed_in_place() {
        for n in [3, LINEAR_MAX * 2] {
            let ids = ids(n);
            let mut map = IdMap::default();
            for (i, id) in ids.iter().enumerate() {
                map.insert_first(id.as_str(), i);
            }
            map.for_each_value_mut(|v| *v += 100);
            for (i, id) in ids.iter().enumerate() {
                assert!(map.contains(id));
                assert_eq!(map.get(id), Some(&(i + 100)), "{n} IDs");
            }
            assert!(!map.contains("other") && !map.is_empty());
        }
    }

    #[test]
    fn a_map_of_two_entries_allocates_nothing() {
        let mut map: IdMap<'_, usize> = IdMap::default();
        assert_eq!(map.get("a"), None);
        for (i, id) in ["a", "b"].into_iter().enumerate() {
            map.insert_first(id, i);
            assert!(matches!(&map.0, Repr::Linear(entries) if !entries.spilled()));
        }
        map.insert_first("c", 2);
        assert!(matches!(&map.0, Repr::Linear(entries) if entries.spilled()));
        assert_eq!((map.get("a"), map.get("c")), (Some(&0), Some(&2)));
    }
}
