//! `HoldTable`: named single-value slots behind the `Hold.Stash` /
//! `Hold.Flush` syscalls.
//!
//! Semantics: **stash replaces**. Stashing into an occupied slot keeps the
//! newest value and returns the one it displaced, so the caller decides
//! what happens to it (the engine reports it as a drop); the replacement
//! is counted in [`HoldTableStats::replaced`].
//!
//! Invariants:
//! * At most [`HoldTableConfig::max_slots`] slots are occupied and names are
//!   at most [`HoldTableConfig::max_name_len`] bytes. A refused stash hands
//!   the value back inside the error and is counted; replacing an occupied
//!   slot never counts against the cap.
//! * Flushing empties a slot; an empty slot takes no memory.
//! * Iteration and [`HoldTable::flush_all`] are in name order, so snapshots
//!   and flushes are deterministic.

use super::bump;
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::value::SlotValue;

/// Named single-value slots.
#[derive(Debug, Default)]
pub struct HoldTable {
    config: HoldTableConfig,
    slots: BTreeMap<String, Box<dyn SlotValue>>,
    stats: HoldTableStats,
}

/// Caps of a [`HoldTable`]; [`Default`] gives the documented values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HoldTableConfig {
    /// Most occupied slots at once. Default 1024.
    pub max_slots: usize,
    /// Longest slot name, in bytes. Default 128.
    pub max_name_len: usize,
}

/// Counters of a [`HoldTable`]; all saturate at `u64::MAX`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HoldTableStats {
    /// Values stashed (including replacements).
    pub stashed: u64,
    /// Stashes that displaced an earlier value.
    pub replaced: u64,
    /// Values handed out by a flush.
    pub flushed: u64,
    /// Flushes of an empty slot.
    pub flush_misses: u64,
    /// Stashes refused because `max_slots` slots were occupied.
    pub refused_table_full: u64,
    /// Stashes refused because the name was over `max_name_len`.
    pub refused_name_too_long: u64,
    /// Most slots occupied at once so far.
    pub peak_slots: u64,
}

/// A refused [`HoldTable::stash`]: why, plus the value, handed back.
#[derive(Debug, thiserror::Error)]
#[error("{reason}")]
pub struct HoldTableError {
    /// Why the value was refused.
    pub reason: HoldTableRefusal,
    /// The refused value, returned to the caller.
    pub value: Box<dyn SlotValue>,
}

/// Why [`HoldTable::stash`] refused a value.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HoldTableRefusal {
    /// `max_slots` slots are occupied and the name is new.
    #[error("{max_slots} hold slots are occupied; flush one or raise max_slots")]
    TableFull {
        /// The cap.
        max_slots: usize,
    },
    /// The name is longer than `max_name_len`.
    #[error("hold slot name is {len} bytes, over the cap of {max}; shorten it")]
    NameTooLong {
        /// The name's length in bytes.
        len: usize,
        /// The cap.
        max: usize,
    },
}

impl HoldTable {
    /// An empty table under `config`.
    pub fn new(config: HoldTableConfig) -> Self {
        Self {
            config,
            slots: BTreeMap::new(),
            stats: HoldTableStats::default(),
        }
    }

    /// Puts `value` in the slot called `name`. Returns the value it
    /// displaced, if the slot was occupied; a refusal hands `value` back.
    pub fn stash(
        &mut self,
        name: &str,
        value: Box<dyn SlotValue>,
    ) -> Result<Option<Box<dyn SlotValue>>, HoldTableError> {
        if name.len() > self.config.max_name_len {
            bump(&mut self.stats.refused_name_too_long);
            let reason = HoldTableRefusal::NameTooLong {
                len: name.len(),
                max: self.config.max_name_len,
            };
            return Err(HoldTableError { reason, value });
        }
        if let Some(slot) = self.slots.get_mut(name) {
            bump(&mut self.stats.stashed);
            bump(&mut self.stats.replaced);
            return Ok(Some(std::mem::replace(slot, value)));
        }
        if self.slots.len() >= self.config.max_slots {
            bump(&mut self.stats.refused_table_full);
            let reason = HoldTableRefusal::TableFull {
                max_slots: self.config.max_slots,
            };
            return Err(HoldTableError { reason, value });
        }
        self.slots.insert(name.to_owned(), value);
        bump(&mut self.stats.stashed);
        self.stats.peak_slots = self.stats.peak_slots.max(self.slots.len() as u64);
        Ok(None)
    }

    /// Empties the slot called `name` and returns its value; `None`
    /// (counted) when it was empty.
    pub fn flush(&mut self, name: &str) -> Option<Box<dyn SlotValue>> {
        let value = self.slots.remove(name);
        match value {
            Some(_) => bump(&mut self.stats.flushed),
            None => bump(&mut self.stats.flush_misses),
        }
        value
    }

    /// Empties every slot and returns the values, sorted by name.
    pub fn flush_all(&mut self) -> Vec<(String, Box<dyn SlotValue>)> {
        let all: Vec<_> = std::mem::take(&mut self.slots).into_iter().collect();
        self.stats.flushed = self.stats.flushed.saturating_add(all.len() as u64);
        all
    }

    /// The value in the slot called `name`, left in place.
    pub fn peek(&self, name: &str) -> Option<&dyn SlotValue> {
        self.slots.get(name).map(|v| &**v)
    }

    /// Whether the slot called `name` is occupied.
    pub fn contains(&self, name: &str) -> bool {
        self.slots.contains_key(name)
    }

    /// Occupied slots.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Whether no slot is occupied.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Every occupied slot, in name order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &dyn SlotValue)> + '_ {
        self.slots.iter().map(|(n, v)| (n.as_str(), &**v))
    }

    /// The caps in force.
    pub fn config(&self) -> &HoldTableConfig {
        &self.config
    }

    /// The counters so far.
    pub fn stats(&self) -> &HoldTableStats {
        &self.stats
    }
}

impl Default for HoldTableConfig {
    fn default() -> Self {
        Self {
            max_slots: 1024,
            max_name_len: 128,
        }
    }
}

impl HoldTableError {
    /// The refused value, for a retry.
    pub fn into_value(self) -> Box<dyn SlotValue> {
        self.value
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::U64Value;

    fn num(n: u64) -> Box<dyn SlotValue> {
        Box::new(U64Value(n))
    }

    fn unnum(v: &dyn SlotValue) -> u64 {
        v.downcast_ref::<U64Value>()
            .expect("test values are U64Value")
            .0
    }

    fn small() -> HoldTable {
        HoldTable::new(HoldTableConfig {
            max_slots: 2,
            max_name_len: 4,
        })
    }

    #[test]
    fn stash_then_flush_returns_value_once() {
        let mut t = HoldTable::default();
        assert!(t.stash("a", num(7)).unwrap().is_none());
        assert!(t.contains("a"));
        assert_eq!(t.peek("a").map(unnum), Some(7));
        assert_eq!(t.flush("a").as_deref().map(unnum), Some(7));
        assert!(t.flush("a").is_none());
        assert!(t.is_empty());
        assert_eq!(t.stats().flushed, 1);
        assert_eq!(t.stats().flush_misses, 1);
    }

    #[test]
    fn stash_replaces_and_returns_displaced_value() {
        let mut t = HoldTable::default();
        t.stash("a", num(1)).unwrap();
        let old = t.stash("a", num(2)).unwrap();
        assert_eq!(old.as_deref().map(unnum), Some(1));
        assert_eq!(t.len(), 1);
        assert_eq!(t.flush("a").as_deref().map(unnum), Some(2));
        assert_eq!(t.stats().stashed, 2);
        assert_eq!(t.stats().replaced, 1);
    }

    #[test]
    fn full_table_refuses_new_names_but_allows_replacement() {
        let mut t = small();
        t.stash("a", num(1)).unwrap();
        t.stash("b", num(2)).unwrap();
        let err = t.stash("c", num(3)).unwrap_err();
        assert_eq!(err.reason, HoldTableRefusal::TableFull { max_slots: 2 });
        assert_eq!(unnum(&*err.into_value()), 3);
        assert_eq!(t.stats().refused_table_full, 1);
        assert!(!t.contains("c"));
        // Replacing an occupied slot is fine at the cap.
        assert!(t.stash("a", num(4)).unwrap().is_some());
        assert_eq!(t.stats().peak_slots, 2);
    }

    #[test]
    fn long_name_is_refused() {
        let mut t = small();
        t.stash("abcd", num(1)).unwrap();
        let err = t.stash("abcde", num(2)).unwrap_err();
        assert_eq!(err.reason, HoldTableRefusal::NameTooLong { len: 5, max: 4 });
        assert_eq!(t.stats().refused_name_too_long, 1);
    }

    #[test]
    fn flush_all_is_sorted_and_empties_table() {
        let mut t = HoldTable::default();
        t.stash("c", num(3)).unwrap();
        t.stash("a", num(1)).unwrap();
        t.stash("b", num(2)).unwrap();
        let all: Vec<(String, u64)> = t
            .flush_all()
            .into_iter()
            .map(|(n, v)| (n, unnum(&*v)))
            .collect();
        assert_eq!(all, [("a".into(), 1), ("b".into(), 2), ("c".into(), 3)]);
        assert!(t.is_empty());
        assert_eq!(t.stats().flushed, 3);
        assert!(t.flush_all().is_empty());
    }

    #[test]
    fn zero_slots_refuses_everything() {
        let mut t = HoldTable::new(HoldTableConfig {
            max_slots: 0,
            max_name_len: 4,
        });
        assert!(t.stash("a", num(1)).is_err());
        assert_eq!(t.len(), 0);
    }

    #[test]
    fn iter_is_in_name_order() {
        let mut t = HoldTable::default();
        t.stash("b", num(2)).unwrap();
        t.stash("a", num(1)).unwrap();
        let names: Vec<&str> = t.iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["a", "b"]);
    }
}
