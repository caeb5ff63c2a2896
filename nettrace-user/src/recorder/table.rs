//! [`Table`]: records in insertion order with lookup by trace ID, and with what a snapshot
//! needs to reuse its last conversion of a record that did not change.
//!
//! Every way to change a record goes through the table (`get_mut`, `iter_mut`, `insert`,
//! `remove_where`, `retain`), which bumps the record's version; a snapshot keeps its model
//! value of the record in the row's slot with the version it was converted at
//! ([`Table::rows_for_snapshot`]). The table's generation moves on with any change to any row
//! or to the set of rows.
use std::collections::hash_map::Entry;

use rustc_hash::FxHashMap;

use crate::model::TraceId;

/// The most rows whose room [`Table::clear`] keeps.
const KEPT_ROWS: usize = 4096;

/// One record, its version and the snapshot's slot.
#[derive(Debug)]
struct Row<T, S> {
    id: TraceId,
    rec: T,
    /// Bumped on every change of `rec`.
    version: u64,
    slot: S,
}

/// Records kept in the order they were created, found by ID in O(1). The index uses a fast
/// non-cryptographic hash: the IDs are generated here, not chosen by an attacker. `S` is the
/// snapshot's slot of each row (see the [module](self) documentation).
#[derive(Debug)]
pub(crate) struct Table<T, S = ()> {
    rows: Vec<Row<T, S>>,
    index: FxHashMap<TraceId, usize>,
    /// Bumped on every change of any row or of the set of rows.
    generation: u64,
    /// Bumped whenever rows may have moved (removed, cleared): a [`RowHint`] taken since
    /// still points at its record.
    moves: u64,
}

/// Where a record was found last ([`Table::get_mut_hinted`]): finds it again without
/// hashing its ID while no row has moved. The default hint points nowhere.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct RowHint {
    row: usize,
    /// The table's `moves` when taken (tables start at 1).
    moves: u64,
}

impl<T, S> Default for Table<T, S> {
    fn default() -> Self {
        Self {
            rows: Vec::new(),
            index: FxHashMap::default(),
            generation: 0,
            moves: 1,
        }
    }
}

impl<T, S: Default> Table<T, S> {
    /// Adds a record; a record with the same ID is replaced in place.
    pub(crate) fn insert(&mut self, id: TraceId, rec: T) {
        self.insert_hinted(id, rec);
    }

    /// [`Self::insert`], with a hint to the record's row for [`Self::get_mut_hinted`] (taken
    /// here for nothing, where a first hinted lookup would hash the ID).
    pub(crate) fn insert_hinted(&mut self, id: TraceId, rec: T) -> RowHint {
        self.generation += 1;
        let row = match self.index.entry(id) {
            Entry::Occupied(slot) => {
                let row = *slot.get();
                let kept = &mut self.rows[row];
                kept.rec = rec;
                kept.version += 1;
                row
            }
            Entry::Vacant(slot) => {
                let id = slot.key().clone();
                let row = self.rows.len();
                slot.insert(row);
                self.rows.push(Row {
                    id,
                    rec,
                    version: 0,
                    slot: S::default(),
                });
                row
            }
        };
        RowHint {
            row,
            moves: self.moves,
        }
    }
}

impl<T, S> Table<T, S> {
    /// Whether a new record `id` would exceed `limit` records (replacing one never does).
    pub(crate) fn is_full(&self, id: &TraceId, limit: usize) -> bool {
        self.rows.len() >= limit && !self.index.contains_key(id)
    }

    /// How many records there are.
    pub(crate) fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether there is no record.
    pub(crate) fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The generation: equal generations mean that nothing in the table changed between.
    pub(crate) fn generation(&self) -> u64 {
        self.generation
    }

    pub(crate) fn get(&self, id: &TraceId) -> Option<&T> {
        self.index.get(id).map(|&i| &self.rows[i].rec)
    }

    /// The record to change (its version moves on).
    pub(crate) fn get_mut(&mut self, id: &TraceId) -> Option<&mut T> {
        let row = &mut self.rows[*self.index.get(id)?];
        row.version += 1;
        self.generation += 1;
        Some(&mut row.rec)
    }

    /// [`Self::get_mut`] of record `id`, found through `hint` while no row has moved since
    /// it was taken, by its ID otherwise (the hint then points at it). The ID's hash is the
    /// costly part of a lookup on the kernel events' path, several per connection.
    /// The row's ID is compared too (cheaper than its hash), so a hint can never hand out
    /// another record, whatever a later method forgets to count as a move.
    pub(crate) fn get_mut_hinted(&mut self, id: &TraceId, hint: &mut RowHint) -> Option<&mut T> {
        let still_there =
            hint.moves == self.moves && self.rows.get(hint.row).is_some_and(|row| row.id == *id);
        if !still_there {
            *hint = RowHint {
                row: *self.index.get(id)?,
                moves: self.moves,
            };
        }
        let row = self.rows.get_mut(hint.row)?;
        row.version += 1;
        self.generation += 1;
        Some(&mut row.rec)
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (&TraceId, &T)> {
        self.rows.iter().map(|row| (&row.id, &row.rec))
    }

    /// Every record to change (their versions move on).
    pub(crate) fn iter_mut(&mut self) -> impl Iterator<Item = (&TraceId, &mut T)> {
        self.generation += 1;
        self.rows.iter_mut().map(|row| {
            row.version += 1;
            (&row.id, &mut row.rec)
        })
    }

    /// Every record with its version and the snapshot's slot (the records do not change).
    pub(crate) fn rows_for_snapshot(
        &mut self,
    ) -> impl Iterator<Item = (&TraceId, &T, u64, &mut S)> {
        self.rows
            .iter_mut()
            .map(|row| (&row.id, &row.rec, row.version, &mut row.slot))
    }

    /// Removes every record, keeping the room of up to [`KEPT_ROWS`] of them for the next
    /// trace (growing the table again after every clear costs copies and allocations).
    pub(crate) fn clear(&mut self) {
        self.generation += 1;
        self.moves += 1;
        self.rows.clear();
        self.index.clear();
        self.rows.shrink_to(KEPT_ROWS);
        self.index.shrink_to(KEPT_ROWS);
    }

    /// Removes the records for which `remove` is true (it may also change the others),
    /// keeping the order; the index is rebuilt in place only when something went.
    pub(crate) fn remove_where(&mut self, mut remove: impl FnMut(&TraceId, &mut T) -> bool) {
        self.generation += 1;
        let before = self.rows.len();
        self.rows.retain_mut(|row| {
            row.version += 1;
            !remove(&row.id, &mut row.rec)
        });
        if self.rows.len() != before {
            self.moves += 1;
            self.index.clear();
            for (i, row) in self.rows.iter().enumerate() {
                self.index.insert(row.id.clone(), i);
            }
        }
    }

    /// Keeps only the records for which `keep` is true (it may also change them), in order.
    pub(crate) fn retain(&mut self, mut keep: impl FnMut(&TraceId, &mut T) -> bool) {
        self.generation += 1;
        self.moves += 1;
        self.rows.retain_mut(|row| {
            row.version += 1;
            keep(&row.id, &mut row.rec)
        });
        self.index = self
            .rows
            .iter()
            .enumerate()
            .map(|(i, row)| (row.id.clone(), i))
            .collect();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_order_and_finds_by_id() {
        let mut table: Table<i32> = Table::default();
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
    fn every_change_moves_the_version_and_the_generation_on() {
        let mut table: Table<i32, u8> = Table::default();
        let a = TraceId::new("a");
        table.insert(a.clone(), 1);
        let version = |t: &mut Table<i32, u8>| t.rows_for_snapshot().map(|r| r.2).next();
        let start = (version(&mut table), table.generation());
        // Reading changes nothing.
        assert_eq!(table.get(&a), Some(&1));
        assert_eq!(table.iter().count(), 1);
        assert_eq!((version(&mut table), table.generation()), start);
        let mut seen = vec![start];
        if let Some(v) = table.get_mut(&a) {
            *v = 2;
        }
        seen.push((version(&mut table), table.generation()));
        table.insert(a.clone(), 3);
        seen.push((version(&mut table), table.generation()));
        for (_, v) in table.iter_mut() {
            *v = 4;
        }
        seen.push((version(&mut table), table.generation()));
        table.remove_where(|_, _| false);
        seen.push((version(&mut table), table.generation()));
        table.retain(|_, _| true);
        seen.push((version(&mut table), table.generation()));
        for pair in seen.windows(2) {
            assert!(pair[0].0 < pair[1].0 && pair[0].1 < pair[1].1, "{seen:?}");
        }
        // The slot survives changes (a snapshot compares versions).
        if let Some((_, _, _, slot)) = table.rows_for_snapshot().next() {
            *slot = 7;
        }
        let _ = table.get_mut(&a);
        assert_eq!(table.rows_for_snapshot().map(|r| *r.3).next(), Some(7));
        let generation = table.generation();
        table.insert(TraceId::new("b"), 5);
        assert!(table.generation() > generation);
        let generation = table.generation();
        table.clear();
        assert!(table.generation() > generation);
    }

    #[test]
    fn a_hint_finds_its_record_until_rows_move() {
        let mut table: Table<i32> = Table::default();
        let (a, b, c) = (TraceId::new("a"), TraceId::new("b"), TraceId::new("c"));
        table.insert(a.clone(), 1);
        table.insert(b.clone(), 2);
        let mut hint = RowHint::default();
        assert_eq!(table.get_mut_hinted(&b, &mut hint).copied(), Some(2));
        table.insert(c.clone(), 3);
        table.insert(b.clone(), 20);
        assert_eq!(table.get_mut_hinted(&b, &mut hint).copied(), Some(20));
        // `a` goes: `b` moves down a row, and the hint follows it.
        table.remove_where(|id, _| *id == a);
        assert_eq!(table.get_mut_hinted(&b, &mut hint).copied(), Some(20));
        table.retain(|id, _| *id != b);
        assert_eq!(table.get_mut_hinted(&b, &mut hint), None);
        assert_eq!(table.get_mut_hinted(&c, &mut hint).copied(), Some(3));
        table.clear();
        assert_eq!(table.get_mut_hinted(&c, &mut hint), None);
        let mut nowhere = RowHint::default();
        assert_eq!(table.get_mut_hinted(&a, &mut nowhere), None);
    }

    #[test]
    fn clear_empties_and_keeps_bounded_room() {
        let mut table: Table<usize> = Table::default();
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
