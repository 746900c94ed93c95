//! Per-execution first-arrival latches: [`AnyLatches`] for the `Any`
//! syscall (keyed by group name) and [`DeadlineMatchLatches`] for
//! `DeadlineMatch` (keyed by op).
//!
//! A latch is "fired" for a `(key, exec)` pair at most once: `try_fire`
//! answers `true` only for the first arrival, so exactly one of several
//! racing branches goes on. Latches belong to an execution: the engine
//! calls `clear_exec` when the execution ends, so a fresh execution starts
//! unlatched and memory tracks live executions only.
//!
//! Invariants:
//! * At most [`LatchConfig::max_latches`] latches are held in total across
//!   executions; a first arrival past the cap is refused with
//!   [`LatchError::Full`] and counted (a repeat arrival is still answered
//!   `false`, since it needs no memory).
//! * `AnyLatches` group names are at most [`LatchConfig::max_key_len`]
//!   bytes.
//! * No execution keeps an empty entry.

use super::bump;
use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::ids::{ExecId, OpRef};

/// First-arrival latches for the `Any` syscall, keyed by (group, exec).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnyLatches {
    inner: ExecLatches<String>,
}

/// First-arrival latches for the `DeadlineMatch` syscall, keyed by
/// (op, exec).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadlineMatchLatches {
    inner: ExecLatches<OpRef>,
}

/// Caps of a latch table; [`Default`] gives the documented values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LatchConfig {
    /// Most latches held at once, across executions. Default 65 536.
    pub max_latches: usize,
    /// Longest `Any` group name, in bytes. Default 128.
    pub max_key_len: usize,
}

/// Counters of a latch table; all saturate at `u64::MAX`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LatchStats {
    /// First arrivals (`try_fire` answered `true`).
    pub fired: u64,
    /// Later arrivals (`try_fire` answered `false`).
    pub suppressed: u64,
    /// First arrivals refused at the cap.
    pub refused_full: u64,
    /// Arrivals refused for an over-long key.
    pub refused_key_too_long: u64,
    /// Latches released by `clear_exec`.
    pub cleared: u64,
}

/// Why a `try_fire` could not decide.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LatchError {
    /// `max_latches` latches are held; end executions or raise the cap.
    #[error("latch table is full ({max_latches} latches); finished executions must be cleared, or raise max_latches")]
    Full {
        /// The cap.
        max_latches: usize,
    },
    /// The group name is longer than `max_key_len`.
    #[error("latch group name is {len} bytes, over the cap of {max}; shorten it")]
    KeyTooLong {
        /// The name's length in bytes.
        len: usize,
        /// The cap.
        max: usize,
    },
}

impl AnyLatches {
    /// No latches, under `config`.
    pub fn new(config: LatchConfig) -> Self {
        Self {
            inner: ExecLatches::new(config),
        }
    }

    /// `Ok(true)` the first time `group` fires in `exec`, `Ok(false)` after.
    pub fn try_fire(&mut self, group: &str, exec: ExecId) -> Result<bool, LatchError> {
        let max = self.inner.config.max_key_len;
        if group.len() > max {
            bump(&mut self.inner.stats.refused_key_too_long);
            return Err(LatchError::KeyTooLong {
                len: group.len(),
                max,
            });
        }
        if self.is_fired(group, exec) {
            bump(&mut self.inner.stats.suppressed);
            return Ok(false);
        }
        self.inner.try_fire(group.to_owned(), exec)
    }

    /// Whether `group` has fired in `exec`.
    pub fn is_fired(&self, group: &str, exec: ExecId) -> bool {
        self.inner
            .by_exec
            .get(&exec)
            .is_some_and(|keys| keys.contains(group))
    }

    /// Releases every latch of `exec`; returns how many there were.
    pub fn clear_exec(&mut self, exec: ExecId) -> usize {
        self.inner.clear_exec(exec)
    }

    /// Latches held.
    pub fn len(&self) -> usize {
        self.inner.len
    }

    /// Whether no latch is held.
    pub fn is_empty(&self) -> bool {
        self.inner.len == 0
    }

    /// The caps in force.
    pub fn config(&self) -> &LatchConfig {
        &self.inner.config
    }

    /// The counters so far.
    pub fn stats(&self) -> &LatchStats {
        &self.inner.stats
    }
}

impl DeadlineMatchLatches {
    /// No latches, under `config` (`max_key_len` is unused: keys are ids).
    pub fn new(config: LatchConfig) -> Self {
        Self {
            inner: ExecLatches::new(config),
        }
    }

    /// `Ok(true)` the first time `op` fires in `exec`, `Ok(false)` after.
    pub fn try_fire(&mut self, op: OpRef, exec: ExecId) -> Result<bool, LatchError> {
        if self.is_fired(op, exec) {
            bump(&mut self.inner.stats.suppressed);
            return Ok(false);
        }
        self.inner.try_fire(op, exec)
    }

    /// Whether `op` has fired in `exec`.
    pub fn is_fired(&self, op: OpRef, exec: ExecId) -> bool {
        self.inner
            .by_exec
            .get(&exec)
            .is_some_and(|keys| keys.contains(&op))
    }

    /// Releases every latch of `exec`; returns how many there were.
    pub fn clear_exec(&mut self, exec: ExecId) -> usize {
        self.inner.clear_exec(exec)
    }

    /// Latches held.
    pub fn len(&self) -> usize {
        self.inner.len
    }

    /// Whether no latch is held.
    pub fn is_empty(&self) -> bool {
        self.inner.len == 0
    }

    /// The caps in force.
    pub fn config(&self) -> &LatchConfig {
        &self.inner.config
    }

    /// The counters so far.
    pub fn stats(&self) -> &LatchStats {
        &self.inner.stats
    }
}

impl Default for LatchConfig {
    fn default() -> Self {
        Self {
            max_latches: 65_536,
            max_key_len: 128,
        }
    }
}

/// The shared table: fired keys per execution, with a total count.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct ExecLatches<K: Ord> {
    config: LatchConfig,
    by_exec: BTreeMap<ExecId, BTreeSet<K>>,
    len: usize,
    stats: LatchStats,
}

impl<K: Ord> Default for ExecLatches<K> {
    fn default() -> Self {
        Self::new(LatchConfig::default())
    }
}

impl<K: Ord> ExecLatches<K> {
    fn new(config: LatchConfig) -> Self {
        Self {
            config,
            by_exec: BTreeMap::new(),
            len: 0,
            stats: LatchStats::default(),
        }
    }

    /// Fires `key` in `exec`; the caller has checked it is not yet fired.
    fn try_fire(&mut self, key: K, exec: ExecId) -> Result<bool, LatchError> {
        if self.len >= self.config.max_latches {
            bump(&mut self.stats.refused_full);
            return Err(LatchError::Full {
                max_latches: self.config.max_latches,
            });
        }
        if !self.by_exec.entry(exec).or_default().insert(key) {
            bump(&mut self.stats.suppressed);
            return Ok(false);
        }
        self.len += 1;
        bump(&mut self.stats.fired);
        Ok(true)
    }

    fn clear_exec(&mut self, exec: ExecId) -> usize {
        let removed = self.by_exec.remove(&exec).map_or(0, |keys| keys.len());
        self.len = self.len.saturating_sub(removed);
        self.stats.cleared = self.stats.cleared.saturating_add(removed as u64);
        removed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::SiteId;

    const E1: ExecId = ExecId::new(1);
    const E2: ExecId = ExecId::new(2);

    fn config(max_latches: usize) -> LatchConfig {
        LatchConfig {
            max_latches,
            max_key_len: 4,
        }
    }

    fn op(i: u32) -> OpRef {
        OpRef::new(SiteId::new(0), i)
    }

    #[test]
    fn any_fires_once_per_group_and_exec() {
        let mut l = AnyLatches::default();
        assert_eq!(l.try_fire("g", E1), Ok(true));
        assert_eq!(l.try_fire("g", E1), Ok(false));
        assert_eq!(l.try_fire("h", E1), Ok(true));
        assert_eq!(l.try_fire("g", E2), Ok(true));
        assert!(l.is_fired("g", E1));
        assert!(!l.is_fired("x", E1));
        assert_eq!(l.len(), 3);
        assert_eq!(l.stats().fired, 3);
        assert_eq!(l.stats().suppressed, 1);
    }

    #[test]
    fn clear_exec_releases_only_that_exec_and_refires() {
        let mut l = AnyLatches::default();
        l.try_fire("g", E1).unwrap();
        l.try_fire("h", E1).unwrap();
        l.try_fire("g", E2).unwrap();
        assert_eq!(l.clear_exec(E1), 2);
        assert_eq!(l.clear_exec(E1), 0);
        assert_eq!(l.len(), 1);
        assert!(l.is_fired("g", E2));
        assert_eq!(
            l.try_fire("g", E1),
            Ok(true),
            "a cleared exec starts unlatched"
        );
        assert_eq!(l.stats().cleared, 2);
    }

    #[test]
    fn any_cap_refuses_new_latches_but_answers_repeats() {
        let mut l = AnyLatches::new(config(2));
        l.try_fire("a", E1).unwrap();
        l.try_fire("b", E1).unwrap();
        assert_eq!(
            l.try_fire("c", E1),
            Err(LatchError::Full { max_latches: 2 })
        );
        assert_eq!(
            l.try_fire("a", E2),
            Err(LatchError::Full { max_latches: 2 })
        );
        assert_eq!(l.try_fire("a", E1), Ok(false));
        assert_eq!(l.stats().refused_full, 2);
        l.clear_exec(E1);
        assert_eq!(l.try_fire("c", E1), Ok(true));
        assert_eq!(l.len(), 1);
    }

    #[test]
    fn any_long_group_is_refused() {
        let mut l = AnyLatches::new(config(8));
        assert_eq!(l.try_fire("abcd", E1), Ok(true));
        assert_eq!(
            l.try_fire("abcde", E1),
            Err(LatchError::KeyTooLong { len: 5, max: 4 })
        );
        assert_eq!(l.stats().refused_key_too_long, 1);
        assert_eq!(l.len(), 1);
    }

    #[test]
    fn deadline_match_fires_once_per_op_and_exec() {
        let mut l = DeadlineMatchLatches::new(config(2));
        assert_eq!(l.try_fire(op(1), E1), Ok(true));
        assert_eq!(l.try_fire(op(1), E1), Ok(false));
        assert_eq!(l.try_fire(op(1), E2), Ok(true));
        assert_eq!(
            l.try_fire(op(2), E2),
            Err(LatchError::Full { max_latches: 2 })
        );
        assert_eq!(l.clear_exec(E2), 1);
        assert!(!l.is_fired(op(1), E2));
        assert!(l.is_fired(op(1), E1));
        assert_eq!(l.try_fire(op(2), E2), Ok(true));
        assert_eq!(l.stats().fired, 3);
        assert_eq!(l.stats().refused_full, 1);
    }

    #[test]
    fn zero_cap_refuses_first_arrival() {
        let mut l = DeadlineMatchLatches::new(config(0));
        assert!(l.try_fire(op(0), E1).is_err());
        assert!(l.is_empty());
    }

    #[test]
    fn latches_survive_serde_round_trip() {
        let mut any = AnyLatches::default();
        any.try_fire("g", E1).unwrap();
        let back: AnyLatches = serde_json::from_str(&serde_json::to_string(&any).unwrap()).unwrap();
        assert_eq!(back, any);
        assert!(back.is_fired("g", E1));

        let mut dm = DeadlineMatchLatches::default();
        dm.try_fire(op(3), E2).unwrap();
        let back: DeadlineMatchLatches =
            serde_json::from_str(&serde_json::to_string(&dm).unwrap()).unwrap();
        assert_eq!(back, dm);
        assert_eq!(back.len(), 1);
    }
}
