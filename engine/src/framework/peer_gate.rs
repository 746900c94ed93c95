//! `PeerGate`: a counting semaphore per name (a peer, or a named limit),
//! used by `Limit.Acquire` / `Limit.Release` to bound concurrency.
//!
//! Invariants:
//! * The limit is given on each [`PeerGate::try_acquire`]; an acquire
//!   succeeds only while fewer than `limit` permits of that name are held.
//! * [`PeerGate::release`] never underflows: releasing a name with nothing
//!   held is refused with [`GateError::NotHeld`].
//! * A name whose count drops to 0 is removed, so the table only holds names
//!   in use; at most `max_names` names are held at once, and a new name
//!   beyond that is refused with [`GateError::TooManyNames`].
//! * Every refusal is counted in [`PeerGateStats`].

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Name-table cap a [`PeerGate`] built with [`Default`] uses.
pub const PEER_GATE_DEFAULT_MAX_NAMES: usize = 4_096;

/// Why a gate operation was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GateError {
    /// All `limit` permits of `name` are held.
    #[error("gate `{name}` is exhausted ({limit} permits held); release one first or retry later")]
    Exhausted {
        /// The gate name.
        name: String,
        /// The limit the caller asked for.
        limit: u32,
    },
    /// `name` is not held yet and the name table is full.
    #[error("gate `{name}` refused: {cap} names are already in use; release other names or raise the cap")]
    TooManyNames {
        /// The gate name.
        name: String,
        /// The name-table cap.
        cap: usize,
    },
    /// A release for a name with no permit held.
    #[error("gate `{name}` has no permit held; release only what was acquired")]
    NotHeld {
        /// The gate name.
        name: String,
    },
}

/// Counters a [`PeerGate`] keeps over its lifetime (all saturating).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerGateStats {
    /// Successful acquires.
    pub acquired: u64,
    /// Successful releases.
    pub released: u64,
    /// Acquires refused with [`GateError::Exhausted`].
    pub exhausted: u64,
    /// Acquires refused with [`GateError::TooManyNames`].
    pub too_many_names: u64,
    /// Releases refused with [`GateError::NotHeld`].
    pub not_held: u64,
}

/// A table of named counting semaphores with a cap on the number of names.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PeerGate {
    max_names: usize,
    held: BTreeMap<String, u32>,
    stats: PeerGateStats,
}

impl Default for PeerGate {
    fn default() -> Self {
        Self::new(PEER_GATE_DEFAULT_MAX_NAMES)
    }
}

impl PeerGate {
    /// An empty gate that tracks at most `max_names` names at once.
    pub fn new(max_names: usize) -> Self {
        Self {
            max_names,
            held: BTreeMap::new(),
            stats: PeerGateStats::default(),
        }
    }

    /// Takes one permit of `name` if fewer than `limit` are held. A limit of
    /// 0 always refuses with [`GateError::Exhausted`].
    pub fn try_acquire(&mut self, name: &str, limit: u32) -> Result<(), GateError> {
        let in_use = self.in_use(name);
        if in_use >= limit {
            self.stats.exhausted = self.stats.exhausted.saturating_add(1);
            return Err(GateError::Exhausted {
                name: name.to_owned(),
                limit,
            });
        }
        if let Some(count) = self.held.get_mut(name) {
            // `in_use < limit <= u32::MAX`, so this cannot overflow.
            *count = count.saturating_add(1);
        } else {
            if self.held.len() >= self.max_names {
                self.stats.too_many_names = self.stats.too_many_names.saturating_add(1);
                return Err(GateError::TooManyNames {
                    name: name.to_owned(),
                    cap: self.max_names,
                });
            }
            self.held.insert(name.to_owned(), 1);
        }
        self.stats.acquired = self.stats.acquired.saturating_add(1);
        Ok(())
    }

    /// Gives back one permit of `name`; the name is forgotten when its count
    /// reaches 0.
    pub fn release(&mut self, name: &str) -> Result<(), GateError> {
        let Some(count) = self.held.get_mut(name) else {
            self.stats.not_held = self.stats.not_held.saturating_add(1);
            return Err(GateError::NotHeld {
                name: name.to_owned(),
            });
        };
        *count = count.saturating_sub(1);
        if *count == 0 {
            self.held.remove(name);
        }
        self.stats.released = self.stats.released.saturating_add(1);
        Ok(())
    }

    /// Permits of `name` currently held (0 for an unknown name).
    pub fn in_use(&self, name: &str) -> u32 {
        self.held.get(name).copied().unwrap_or(0)
    }

    /// Number of names with at least one permit held.
    pub fn len(&self) -> usize {
        self.held.len()
    }

    /// Whether no permit of any name is held.
    pub fn is_empty(&self) -> bool {
        self.held.is_empty()
    }

    /// The name-table cap.
    pub fn max_names(&self) -> usize {
        self.max_names
    }

    /// Lifetime counters.
    pub fn stats(&self) -> PeerGateStats {
        self.stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acquires_up_to_limit_then_refuses() {
        let mut g = PeerGate::new(4);
        assert!(g.try_acquire("p", 2).is_ok());
        assert!(g.try_acquire("p", 2).is_ok());
        assert_eq!(
            g.try_acquire("p", 2),
            Err(GateError::Exhausted {
                name: "p".into(),
                limit: 2
            })
        );
        assert_eq!(g.in_use("p"), 2);
        assert_eq!(g.stats().exhausted, 1);
        assert_eq!(g.stats().acquired, 2);
    }

    #[test]
    fn names_are_independent() {
        let mut g = PeerGate::new(4);
        g.try_acquire("a", 1).unwrap();
        assert!(g.try_acquire("b", 1).is_ok());
        assert_eq!((g.in_use("a"), g.in_use("b"), g.in_use("c")), (1, 1, 0));
    }

    #[test]
    fn zero_limit_always_refuses() {
        let mut g = PeerGate::new(4);
        assert!(matches!(
            g.try_acquire("x", 0),
            Err(GateError::Exhausted { limit: 0, .. })
        ));
        assert!(g.is_empty(), "a refused acquire leaves no entry behind");
    }

    #[test]
    fn release_frees_a_permit_and_removes_empty_entries() {
        let mut g = PeerGate::new(4);
        g.try_acquire("p", 1).unwrap();
        g.release("p").unwrap();
        assert_eq!(g.len(), 0, "entry removed at zero");
        assert!(g.try_acquire("p", 1).is_ok());
        assert_eq!(g.stats().released, 1);
    }

    #[test]
    fn release_without_hold_is_refused_and_never_underflows() {
        let mut g = PeerGate::new(4);
        assert_eq!(
            g.release("ghost"),
            Err(GateError::NotHeld {
                name: "ghost".into()
            })
        );
        g.try_acquire("p", 5).unwrap();
        g.release("p").unwrap();
        assert!(g.release("p").is_err());
        assert_eq!(g.in_use("p"), 0);
        assert_eq!(g.stats().not_held, 2);
    }

    #[test]
    fn name_table_cap_refuses_new_names_only() {
        let mut g = PeerGate::new(2);
        g.try_acquire("a", 9).unwrap();
        g.try_acquire("b", 9).unwrap();
        assert_eq!(
            g.try_acquire("c", 9),
            Err(GateError::TooManyNames {
                name: "c".into(),
                cap: 2
            })
        );
        assert!(
            g.try_acquire("a", 9).is_ok(),
            "held names still work at cap"
        );
        assert_eq!(g.stats().too_many_names, 1);
        g.release("b").unwrap();
        assert!(g.try_acquire("c", 9).is_ok(), "freed slot is reusable");
    }

    #[test]
    fn max_limit_saturates_cleanly() {
        let mut g = PeerGate::new(1);
        g.held.insert("p".into(), u32::MAX - 1);
        assert!(g.try_acquire("p", u32::MAX).is_ok());
        assert!(g.try_acquire("p", u32::MAX).is_err());
        assert_eq!(g.in_use("p"), u32::MAX);
    }

    #[test]
    fn serde_round_trip() {
        let mut g = PeerGate::new(3);
        g.try_acquire("p", 2).unwrap();
        let back: PeerGate = serde_json::from_str(&serde_json::to_string(&g).unwrap()).unwrap();
        assert_eq!(back.in_use("p"), 1);
        assert_eq!(back.max_names(), 3);
        assert_eq!(back.stats(), g.stats());
    }
}
