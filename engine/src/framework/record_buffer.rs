//! Storage for the `Record` syscall: [`RecordBuffer`], one bounded ring
//! buffer of timestamped slot values per record name.
//!
//! Invariants:
//! * Each name holds at most `per_name_capacity` values (at least 1); recording
//!   into a full ring drops its oldest value and counts the overwrite.
//! * At most `max_names` names exist at once; recording under a new name at
//!   the cap is refused with [`RecordError::TooManyNames`], which hands the
//!   value back, and is counted. [`RecordBuffer::drain`] removes the name,
//!   freeing its place.
//! * Values of one name are kept and yielded oldest → newest (insertion
//!   order, whatever their timestamps say); names iterate in byte order.
//! * Values are `Box<dyn SlotValue>`, so this type has no serde form; a
//!   snapshot encodes the values through the value registry instead.

use std::collections::{BTreeMap, VecDeque};

use crate::value::SlotValue;

/// Default cap on distinct record names.
pub const DEFAULT_MAX_RECORD_NAMES: usize = 256;
/// Default number of values kept per record name.
pub const DEFAULT_RECORD_CAPACITY: usize = 64;

/// One recorded value and when it was recorded.
#[derive(Clone, Debug)]
pub struct RecordedValue {
    /// The recorded value.
    pub value: Box<dyn SlotValue>,
    /// Host monotonic time of the `Record` call, in nanoseconds.
    pub recorded_at_ns: u64,
}

/// Why [`RecordBuffer::record`] refused a value.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RecordError {
    /// The name is new and the buffer already holds `cap` names.
    #[error(
        "record `{name}` not created: {cap} record names already exist; drain one or raise the cap"
    )]
    TooManyNames {
        /// The refused name, handed back.
        name: String,
        /// The refused value, handed back.
        value: Box<dyn SlotValue>,
        /// The cap in force.
        cap: usize,
    },
}

/// Counters of a [`RecordBuffer`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RecordStats {
    /// Names currently held.
    pub names: usize,
    /// Values currently held, over all names.
    pub values: usize,
    /// Values accepted by `record`.
    pub recorded: u64,
    /// Oldest values dropped because their ring was full.
    pub overwritten: u64,
    /// Values refused because the name table was full.
    pub refused_names: u64,
}

/// Per-name bounded ring buffers of recorded values.
#[derive(Clone, Debug)]
pub struct RecordBuffer {
    rings: BTreeMap<String, VecDeque<RecordedValue>>,
    max_names: usize,
    per_name_capacity: usize,
    values: usize,
    recorded: u64,
    overwritten: u64,
    refused_names: u64,
}

impl RecordBuffer {
    /// An empty buffer with at most `max_names` names (0 refuses every
    /// name), each keeping its last `per_name_capacity` values (0 is raised
    /// to 1, since a ring that keeps nothing would drop every record).
    pub fn new(max_names: usize, per_name_capacity: usize) -> Self {
        Self {
            rings: BTreeMap::new(),
            max_names,
            per_name_capacity: per_name_capacity.max(1),
            values: 0,
            recorded: 0,
            overwritten: 0,
            refused_names: 0,
        }
    }

    /// Appends `value` to ring `name`, dropping (and counting) the ring's
    /// oldest value if it is full.
    ///
    /// # Errors
    /// [`RecordError::TooManyNames`] when `name` is new and the name table
    /// is full; the value comes back in the error.
    pub fn record(
        &mut self,
        name: &str,
        value: Box<dyn SlotValue>,
        now_ns: u64,
    ) -> Result<(), RecordError> {
        let entry = RecordedValue {
            value,
            recorded_at_ns: now_ns,
        };
        if !self.rings.contains_key(name) && self.rings.len() >= self.max_names {
            self.refused_names = self.refused_names.saturating_add(1);
            return Err(RecordError::TooManyNames {
                name: name.to_owned(),
                value: entry.value,
                cap: self.max_names,
            });
        }
        let ring = self.rings.entry(name.to_owned()).or_default();
        if ring.len() >= self.per_name_capacity {
            ring.pop_front();
            self.values = self.values.saturating_sub(1);
            self.overwritten = self.overwritten.saturating_add(1);
        }
        ring.push_back(entry);
        self.values = self.values.saturating_add(1);
        self.recorded = self.recorded.saturating_add(1);
        Ok(())
    }

    /// The values of `name`, oldest → newest (empty for an unknown name).
    pub fn iter(&self, name: &str) -> impl Iterator<Item = &RecordedValue> + '_ {
        self.rings.get(name).into_iter().flatten()
    }

    /// Removes ring `name` and returns its values oldest → newest (empty for
    /// an unknown name). The name no longer counts against the cap.
    pub fn drain(&mut self, name: &str) -> Vec<RecordedValue> {
        let Some(ring) = self.rings.remove(name) else {
            return Vec::new();
        };
        self.values = self.values.saturating_sub(ring.len());
        ring.into()
    }

    /// Number of values held for `name` (0 for an unknown name).
    pub fn len(&self, name: &str) -> usize {
        self.rings.get(name).map_or(0, VecDeque::len)
    }

    /// Whether no value is held under any name.
    pub fn is_empty(&self) -> bool {
        self.values == 0
    }

    /// Names that hold values, in byte order.
    pub fn names(&self) -> impl Iterator<Item = &str> + '_ {
        self.rings.keys().map(String::as_str)
    }

    /// The per-name capacity in force (after raising 0 to 1).
    pub fn per_name_capacity(&self) -> usize {
        self.per_name_capacity
    }

    /// The name cap this buffer was built with.
    pub fn max_names(&self) -> usize {
        self.max_names
    }

    /// Sizes and lifetime counters.
    pub fn stats(&self) -> RecordStats {
        RecordStats {
            names: self.rings.len(),
            values: self.values,
            recorded: self.recorded,
            overwritten: self.overwritten,
            refused_names: self.refused_names,
        }
    }
}

impl Default for RecordBuffer {
    /// [`DEFAULT_MAX_RECORD_NAMES`] names of [`DEFAULT_RECORD_CAPACITY`] values.
    fn default() -> Self {
        Self::new(DEFAULT_MAX_RECORD_NAMES, DEFAULT_RECORD_CAPACITY)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::U64Value;

    fn num(n: u64) -> Box<dyn SlotValue> {
        Box::new(U64Value(n))
    }

    fn nums<'a>(it: impl Iterator<Item = &'a RecordedValue>) -> Vec<(u64, u64)> {
        it.map(|r| {
            let n = r.value.downcast_ref::<U64Value>().map_or(u64::MAX, |n| n.0);
            (n, r.recorded_at_ns)
        })
        .collect()
    }

    #[test]
    fn record_and_iter_oldest_to_newest_with_timestamps() {
        let mut b = RecordBuffer::new(4, 8);
        b.record("loss", num(3), 30).unwrap();
        b.record("loss", num(1), 10).unwrap();
        b.record("acc", num(9), 20).unwrap();
        assert_eq!(
            nums(b.iter("loss")),
            [(3, 30), (1, 10)],
            "insertion order, not time order"
        );
        assert_eq!(nums(b.iter("acc")), [(9, 20)]);
        assert_eq!(b.len("loss"), 2);
        assert_eq!(b.len("missing"), 0);
        assert_eq!(b.iter("missing").count(), 0);
        assert_eq!(b.names().collect::<Vec<_>>(), ["acc", "loss"]);
    }

    #[test]
    fn full_ring_overwrites_oldest_and_counts() {
        let mut b = RecordBuffer::new(4, 3);
        for n in 1..=5 {
            b.record("x", num(n), n * 10).unwrap();
        }
        assert_eq!(nums(b.iter("x")), [(3, 30), (4, 40), (5, 50)]);
        let s = b.stats();
        assert_eq!(s.overwritten, 2);
        assert_eq!(s.recorded, 5);
        assert_eq!(s.values, 3);
    }

    #[test]
    fn zero_per_name_capacity_is_raised_to_one() {
        let mut b = RecordBuffer::new(4, 0);
        assert_eq!(b.per_name_capacity(), 1);
        b.record("x", num(1), 1).unwrap();
        b.record("x", num(2), 2).unwrap();
        assert_eq!(nums(b.iter("x")), [(2, 2)]);
        assert_eq!(b.stats().overwritten, 1);
    }

    #[test]
    fn new_name_at_cap_is_refused_with_value_back_and_counted() {
        let mut b = RecordBuffer::new(1, 4);
        b.record("a", num(1), 1).unwrap();
        let err = b.record("b", num(42), 2).unwrap_err();
        let msg = err.to_string();
        let RecordError::TooManyNames { name, value, cap } = err;
        assert_eq!(name, "b");
        assert_eq!(cap, 1);
        assert!(value.eq_value(&U64Value(42)));
        assert!(msg.contains("raise the cap"), "{msg}");
        assert_eq!(b.stats().refused_names, 1);
        assert_eq!(b.len("b"), 0);
        // Existing names keep recording at the cap.
        b.record("a", num(2), 3).unwrap();
        assert_eq!(b.len("a"), 2);
    }

    #[test]
    fn zero_name_cap_refuses_everything() {
        let mut b = RecordBuffer::new(0, 4);
        assert!(b.record("a", num(1), 1).is_err());
        assert!(b.is_empty());
    }

    #[test]
    fn drain_returns_in_order_and_frees_the_name() {
        let mut b = RecordBuffer::new(1, 4);
        b.record("a", num(1), 1).unwrap();
        b.record("a", num(2), 2).unwrap();
        let drained = b.drain("a");
        assert_eq!(nums(drained.iter()), [(1, 1), (2, 2)]);
        assert_eq!(b.len("a"), 0);
        assert!(b.is_empty());
        assert_eq!(b.stats().names, 0);
        assert!(b.drain("a").is_empty());
        // The freed place takes a new name.
        b.record("b", num(3), 3).unwrap();
        assert_eq!(b.stats().refused_names, 0);
    }

    #[test]
    fn stats_track_values_across_names() {
        let mut b = RecordBuffer::new(4, 2);
        b.record("a", num(1), 1).unwrap();
        b.record("b", num(2), 1).unwrap();
        b.record("b", num(3), 1).unwrap();
        b.record("b", num(4), 1).unwrap();
        assert_eq!(
            b.stats(),
            RecordStats {
                names: 2,
                values: 3,
                recorded: 4,
                overwritten: 1,
                refused_names: 0
            }
        );
        b.drain("b");
        assert_eq!(b.stats().values, 1);
    }

    #[test]
    fn default_uses_documented_caps() {
        let b = RecordBuffer::default();
        assert_eq!(b.max_names(), DEFAULT_MAX_RECORD_NAMES);
        assert_eq!(b.per_name_capacity(), DEFAULT_RECORD_CAPACITY);
    }
}
