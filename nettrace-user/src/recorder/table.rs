//! [`Table`]: records in insertion order with lookup by trace ID.
use std::collections::hash_map::Entry;

use rustc_hash::FxHashMap;

use crate::model::TraceId;

/// The most rows whose room [`Table::clear`] keeps.
const KEPT_ROWS: usize = 4096;

/// Records kept in the order they were created, found by ID in O(1). The index uses a fast
/// non-cryptographic hash: the IDs are generated here, not chosen by an attacker.
#[derive(Debug)]
pub(crate) struct Table<T> {
    rows: Vec<(TraceId, T)>,
    index: FxHashMap<TraceId, usize>,
}

impl<T> Default for Table<T> {
    fn default() -> Self {
        Self {
            rows: Vec::new(),
            index: FxHashMap::default(),
        }
    }
}

impl<T> Table<T> {
    /// Adds a record; a record with the same ID is replaced in place.
    pub(crate) fn insert(&mut self, id: TraceId, row: T) {
        match self.index.entry(id) {
            Entry::Occupied(slot) => self.rows[*slot.get()].1 = row,
            Entry::Vacant(slot) => {
                let id = slot.key().clone();
                slot.insert(self.rows.len());
                self.rows.push((id, row));
            }
        }
    }

    /// Whether a new record `id` would exceed `limit` records (replacing one never does).
    pub(crate) fn is_full(&self, id: &TraceId, limit: usize) -> bool {
        self.rows.len() >= limit && !self.index.contains_key(id)
    }

    /// Whether there is no record.
    pub(crate) fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    pub(crate) fn get(&self, id: &TraceId) -> Option<&T> {
        self.index.get(id).map(|&i| &self.rows[i].1)
    }

    pub(crate) fn get_mut(&mut self, id: &TraceId) -> Option<&mut T> {
        self.index.get(id).map(|&i| &mut self.rows[i].1)
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (&TraceId, &T)> {
        self.rows.iter().map(|(id, row)| (id, row))
    }

    pub(crate) fn iter_mut(&mut self) -> impl Iterator<Item = (&TraceId, &mut T)> {
        self.rows.iter_mut().map(|(id, row)| (&*id, row))
    }

    /// Removes every record, keeping the room of up to [`KEPT_ROWS`] of them for the next
    /// trace (growing the table again after every clear costs copies and allocations).
    pub(crate) fn clear(&mut self) {
        self.rows.clear();
        self.index.clear();
        self.rows.shrink_to(KEPT_ROWS);
        self.index.shrink_to(KEPT_ROWS);
    }

    /// Removes the records for which `remove` is true (it may also change the others),
    /// keeping the order; the index is rebuilt in place only when something went.
    pub(crate) fn remove_where(&mut self, mut remove: impl FnMut(&TraceId, &mut T) -> bool) {
        let before = self.rows.len();
        self.rows.retain_mut(|(id, row)| !remove(id, row));
        if self.rows.len() != before {
            self.index.clear();
            for (i, (id, _)) in self.rows.iter().enumerate() {
                self.index.insert(id.clone(), i);
            }
        }
    }

    /// Keeps only the records for which `keep` is true, in order.
    pub(crate) fn retain(&mut self, mut keep: impl FnMut(&TraceId, &mut T) -> bool) {
        self.rows.retain_mut(|(id, row)| keep(id, row));
        self.index = self
            .rows
            .iter()
            .enumerate()
            .map(|(i, (id, _))| (id.clone(), i))
            .collect();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_order_and_finds_by_id() {
        let mut table = Table::default();
        for (id, v) in [("a", 1), ("b", 2), ("c", 3)] {
            table.insert(TraceId::new(id), v);
        }
        table.insert(TraceId::new("b"), 20);
        table.retain(|_, v| *v != 1);
        assert_eq!(table.get(&TraceId::new("b")), Some(&20));
        let rows: Vec<_> = table
            .iter()
            .map(|(id, v)| (id.as_str().to_owned(), *v))
            .collect();
        assert_eq!(rows, [("b".to_owned(), 20), ("c".to_owned(), 3)]);
        assert_eq!(table.get(&TraceId::new("c")), Some(&3));
        assert_eq!(table.get(&TraceId::new("a")), None);
    }

    #[test]
    fn clear_empties_and_keeps_bounded_room() {
        let mut table = Table::default();
        for i in 0..(KEPT_ROWS + 10) {
            table.insert(TraceId::new(format!("tid-{i}")), i);
        }
        table.clear();
        assert_eq!(table.iter().count(), 0);
        assert_eq!(table.get(&TraceId::new("tid-1")), None);
        assert!(table.rows.capacity() <= KEPT_ROWS.next_power_of_two());
        table.insert(TraceId::new("tid-1"), 1);
        assert_eq!(table.get(&TraceId::new("tid-1")), Some(&1));
    }
}
