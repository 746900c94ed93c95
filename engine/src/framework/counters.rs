//! Named `u64` counters bumped by the `IncrMetric` syscall: [`MetricCounters`].
//!
//! Invariants:
//! * At most `max_names` distinct names are held; a bump that would add one
//!   more is refused with [`CounterError::TooManyNames`] and counted in
//!   [`CounterStats::refused_names`]. Existing names keep counting at the cap.
//! * Counters saturate at `u64::MAX` instead of wrapping; every bump that
//!   hits the ceiling is counted in [`CounterStats::saturated`].
//! * Iteration is in byte-wise name order (a `BTreeMap`), so snapshots and
//!   reports are deterministic.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Default cap on the number of distinct counter names.
pub const DEFAULT_MAX_METRIC_NAMES: usize = 1024;

/// Per-Node named counters with a cap on the number of names.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetricCounters {
    values: BTreeMap<String, u64>,
    max_names: usize,
    refused_names: u64,
    saturated: u64,
}

/// Why [`MetricCounters::incr`] refused a bump.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CounterError {
    /// The name is new and the table already holds `cap` names.
    #[error("metric `{name}` not created: the counter table is full ({cap} names); reuse an existing name or raise the cap")]
    TooManyNames {
        /// The refused name, handed back.
        name: String,
        /// The cap in force.
        cap: usize,
    },
}

/// Counters about the counter table itself.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CounterStats {
    /// Distinct names currently held.
    pub names: usize,
    /// Bumps refused because the name table was full.
    pub refused_names: u64,
    /// Bumps that hit `u64::MAX` and were clamped.
    pub saturated: u64,
}

impl MetricCounters {
    /// An empty table holding at most `max_names` names (0 refuses every name).
    pub fn new(max_names: usize) -> Self {
        Self {
            values: BTreeMap::new(),
            max_names,
            refused_names: 0,
            saturated: 0,
        }
    }

    /// Adds `by` to counter `name` (creating it at 0 first) and returns the
    /// new value, saturating at `u64::MAX`.
    ///
    /// # Errors
    /// [`CounterError::TooManyNames`] when `name` is new and the table is full;
    /// nothing changes except the refusal counter.
    pub fn incr(&mut self, name: &str, by: u64) -> Result<u64, CounterError> {
        if let Some(value) = self.values.get_mut(name) {
            return Ok(saturating_bump(value, by, &mut self.saturated));
        }
        if self.values.len() >= self.max_names {
            self.refused_names = self.refused_names.saturating_add(1);
            return Err(CounterError::TooManyNames {
                name: name.to_owned(),
                cap: self.max_names,
            });
        }
        let value = self.values.entry(name.to_owned()).or_insert(0);
        Ok(saturating_bump(value, by, &mut self.saturated))
    }

    /// The current value of `name`, or `None` if it was never bumped.
    pub fn value(&self, name: &str) -> Option<u64> {
        self.values.get(name).copied()
    }

    /// All counters in name order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, u64)> + '_ {
        self.values
            .iter()
            .map(|(name, &value)| (name.as_str(), value))
    }

    /// Number of distinct names held.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Whether no counter exists yet.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// The name cap this table was built with.
    pub fn max_names(&self) -> usize {
        self.max_names
    }

    /// Table size and refusal/saturation counts.
    pub fn stats(&self) -> CounterStats {
        CounterStats {
            names: self.values.len(),
            refused_names: self.refused_names,
            saturated: self.saturated,
        }
    }
}

impl Default for MetricCounters {
    /// A table capped at [`DEFAULT_MAX_METRIC_NAMES`].
    fn default() -> Self {
        Self::new(DEFAULT_MAX_METRIC_NAMES)
    }
}

/// Adds `by` to `value`, clamping at `u64::MAX` and counting the clamp.
fn saturating_bump(value: &mut u64, by: u64, saturated: &mut u64) -> u64 {
    match value.checked_add(by) {
        Some(sum) => *value = sum,
        None => {
            *value = u64::MAX;
            *saturated = saturated.saturating_add(1);
        }
    }
    *value
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn incr_creates_at_zero_and_accumulates() {
        let mut c = MetricCounters::new(4);
        assert_eq!(c.value("a"), None);
        assert_eq!(c.incr("a", 3), Ok(3));
        assert_eq!(c.incr("a", 4), Ok(7));
        assert_eq!(c.incr("b", 0), Ok(0));
        assert_eq!(c.value("a"), Some(7));
        assert_eq!(c.value("b"), Some(0));
        assert_eq!(c.len(), 2);
    }

    #[test]
    fn incr_saturates_and_counts_only_real_clamps() {
        let mut c = MetricCounters::new(4);
        assert_eq!(c.incr("x", u64::MAX - 1), Ok(u64::MAX - 1));
        assert_eq!(c.incr("x", 1), Ok(u64::MAX));
        assert_eq!(
            c.stats().saturated,
            0,
            "reaching MAX exactly is not a clamp"
        );
        assert_eq!(c.incr("x", 5), Ok(u64::MAX));
        assert_eq!(c.incr("x", u64::MAX), Ok(u64::MAX));
        assert_eq!(c.stats().saturated, 2);
        assert_eq!(c.incr("x", 0), Ok(u64::MAX));
        assert_eq!(c.stats().saturated, 2, "adding zero never clamps");
    }

    #[test]
    fn new_name_at_cap_is_refused_counted_and_handed_back() {
        let mut c = MetricCounters::new(2);
        c.incr("a", 1).unwrap();
        c.incr("b", 1).unwrap();
        let err = c.incr("c", 1).unwrap_err();
        assert_eq!(
            err,
            CounterError::TooManyNames {
                name: "c".into(),
                cap: 2
            }
        );
        assert!(err.to_string().contains("raise the cap"));
        assert_eq!(c.value("c"), None);
        assert_eq!(c.stats().refused_names, 1);
        // Existing names still count at the cap.
        assert_eq!(c.incr("a", 1), Ok(2));
        assert_eq!(c.stats().refused_names, 1);
        assert_eq!(c.stats().names, 2);
    }

    #[test]
    fn zero_cap_refuses_every_name() {
        let mut c = MetricCounters::new(0);
        assert!(c.incr("a", 1).is_err());
        assert!(c.is_empty());
        assert_eq!(c.stats().refused_names, 1);
    }

    #[test]
    fn iter_is_in_name_order() {
        let mut c = MetricCounters::default();
        for (name, by) in [("zeta", 1), ("alpha", 2), ("Mid", 3), ("beta", 4)] {
            c.incr(name, by).unwrap();
        }
        let got: Vec<(&str, u64)> = c.iter().collect();
        assert_eq!(
            got,
            [("Mid", 3), ("alpha", 2), ("beta", 4), ("zeta", 1)],
            "byte order: uppercase before lowercase"
        );
    }

    #[test]
    fn default_uses_documented_cap() {
        assert_eq!(
            MetricCounters::default().max_names(),
            DEFAULT_MAX_METRIC_NAMES
        );
    }

    #[test]
    fn serde_round_trip_keeps_values_cap_and_stats() {
        let mut c = MetricCounters::new(1);
        c.incr("only", u64::MAX).unwrap();
        c.incr("only", 1).unwrap();
        let _ = c.incr("other", 1);
        let json = serde_json::to_string(&c).unwrap();
        let back: MetricCounters = serde_json::from_str(&json).unwrap();
        assert_eq!(back, c);
        assert_eq!(
            back.stats(),
            CounterStats {
                names: 1,
                refused_names: 1,
                saturated: 1
            }
        );
    }
}
