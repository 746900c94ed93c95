//! Inbound duplicate suppression: [`InboundDedup`], a bounded FIFO window of
//! recently seen `(PeerId, id)` keys.
//!
//! Invariants:
//! * The window holds at most `capacity` keys. Inserting a fresh key into a
//!   full window evicts the **oldest inserted** key (FIFO, not LRU: seeing a
//!   duplicate does not refresh its position) and counts the eviction.
//! * A key is reported fresh exactly when it is not in the window. A key
//!   that has been evicted is therefore accepted again: the window trades
//!   perfect dedup for bounded memory, so size it above the number of
//!   messages that can be in flight (retransmissions) at once.
//! * Capacity 0 disables dedup: every key is fresh and nothing is stored.
//! * Snapshots carry only the ordered window; the lookup set is rebuilt on
//!   restore, so the two can never disagree.

use std::collections::{HashSet, VecDeque};

use serde::{Deserialize, Serialize};

use crate::ids::PeerId;

/// Default window size of [`InboundDedup`].
pub const DEFAULT_DEDUP_WINDOW: usize = 4096;

/// Sliding window of recently seen `(source peer, message id)` keys.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(from = "DedupSnapshot", into = "DedupSnapshot")]
pub struct InboundDedup {
    order: VecDeque<(PeerId, u64)>,
    seen: HashSet<(PeerId, u64)>,
    capacity: usize,
    stats: DedupStats,
}

/// Counters of an [`InboundDedup`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DedupStats {
    /// Keys reported fresh.
    pub fresh: u64,
    /// Keys reported as duplicates (already in the window).
    pub duplicates: u64,
    /// Keys pushed out of a full window to make room.
    pub evictions: u64,
}

impl InboundDedup {
    /// An empty window remembering at most `capacity` keys (0 disables dedup).
    pub fn new(capacity: usize) -> Self {
        Self {
            order: VecDeque::new(),
            seen: HashSet::new(),
            capacity,
            stats: DedupStats::default(),
        }
    }

    /// Records `(src, id)` and returns `true` if it was not in the window
    /// (fresh), `false` if it is a duplicate. Duplicates leave the window
    /// unchanged.
    pub fn check_and_insert(&mut self, src: PeerId, id: u64) -> bool {
        let key = (src, id);
        if self.seen.contains(&key) {
            self.stats.duplicates = self.stats.duplicates.saturating_add(1);
            return false;
        }
        self.stats.fresh = self.stats.fresh.saturating_add(1);
        if self.capacity == 0 {
            return true;
        }
        while self.order.len() >= self.capacity {
            let Some(oldest) = self.order.pop_front() else {
                break;
            };
            self.seen.remove(&oldest);
            self.stats.evictions = self.stats.evictions.saturating_add(1);
        }
        self.order.push_back(key);
        self.seen.insert(key);
        true
    }

    /// Whether `(src, id)` is currently in the window (no counters change).
    pub fn contains(&self, src: PeerId, id: u64) -> bool {
        self.seen.contains(&(src, id))
    }

    /// Number of keys in the window.
    pub fn len(&self) -> usize {
        self.order.len()
    }

    /// Whether the window is empty.
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    /// The window size this tracker was built with.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Fresh / duplicate / eviction counts.
    pub fn stats(&self) -> DedupStats {
        self.stats
    }
}

impl Default for InboundDedup {
    /// A window of [`DEFAULT_DEDUP_WINDOW`] keys.
    fn default() -> Self {
        Self::new(DEFAULT_DEDUP_WINDOW)
    }
}

/// Serialized form: the window oldest→newest, the capacity and the counters.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct DedupSnapshot {
    window: Vec<(PeerId, u64)>,
    capacity: usize,
    stats: DedupStats,
}

impl From<InboundDedup> for DedupSnapshot {
    fn from(dedup: InboundDedup) -> Self {
        Self {
            window: dedup.order.into(),
            capacity: dedup.capacity,
            stats: dedup.stats,
        }
    }
}

impl From<DedupSnapshot> for InboundDedup {
    /// Rebuilds the lookup set; repeated keys and keys beyond the capacity
    /// (keeping the newest) are dropped, so a hand-edited snapshot cannot
    /// break the invariants.
    fn from(snapshot: DedupSnapshot) -> Self {
        let mut dedup = Self::new(snapshot.capacity);
        let skip = snapshot.window.len().saturating_sub(snapshot.capacity);
        for key in snapshot.window.into_iter().skip(skip) {
            if dedup.seen.insert(key) {
                dedup.order.push_back(key);
            }
        }
        dedup.stats = snapshot.stats;
        dedup
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(n: u64) -> PeerId {
        PeerId::new(n)
    }

    #[test]
    fn first_sighting_is_fresh_second_is_duplicate() {
        let mut d = InboundDedup::new(8);
        assert!(d.check_and_insert(p(1), 10));
        assert!(!d.check_and_insert(p(1), 10));
        assert!(!d.check_and_insert(p(1), 10));
        assert_eq!(
            d.stats(),
            DedupStats {
                fresh: 1,
                duplicates: 2,
                evictions: 0
            }
        );
        assert_eq!(d.len(), 1);
    }

    #[test]
    fn same_id_from_different_peers_is_distinct() {
        let mut d = InboundDedup::new(8);
        assert!(d.check_and_insert(p(1), 7));
        assert!(d.check_and_insert(p(2), 7));
        assert!(d.check_and_insert(p(1), 8));
        assert_eq!(d.len(), 3);
    }

    #[test]
    fn full_window_evicts_oldest_and_evicted_key_is_fresh_again() {
        let mut d = InboundDedup::new(3);
        for id in 1..=3 {
            assert!(d.check_and_insert(p(1), id));
        }
        assert!(d.check_and_insert(p(1), 4)); // evicts id 1
        assert_eq!(d.len(), 3);
        assert_eq!(d.stats().evictions, 1);
        assert!(!d.contains(p(1), 1));
        assert!(d.contains(p(1), 2));
        // Documented trade-off: the evicted key is accepted again.
        assert!(d.check_and_insert(p(1), 1)); // evicts id 2
        assert!(!d.contains(p(1), 2));
        assert_eq!(d.stats().evictions, 2);
        assert!(!d.check_and_insert(p(1), 3));
    }

    #[test]
    fn duplicate_does_not_refresh_position() {
        let mut d = InboundDedup::new(2);
        d.check_and_insert(p(1), 1);
        d.check_and_insert(p(1), 2);
        assert!(!d.check_and_insert(p(1), 1)); // duplicate, stays oldest
        d.check_and_insert(p(1), 3);
        assert!(!d.contains(p(1), 1), "FIFO: id 1 was oldest inserted");
        assert!(d.contains(p(1), 2));
    }

    #[test]
    fn zero_capacity_disables_dedup() {
        let mut d = InboundDedup::new(0);
        assert!(d.check_and_insert(p(1), 1));
        assert!(d.check_and_insert(p(1), 1));
        assert!(d.is_empty());
        assert_eq!(d.stats().fresh, 2);
        assert_eq!(d.stats().duplicates, 0);
        assert_eq!(d.stats().evictions, 0);
    }

    #[test]
    fn extreme_ids_are_ordinary_keys() {
        let mut d = InboundDedup::new(4);
        assert!(d.check_and_insert(p(u64::MAX), u64::MAX));
        assert!(d.check_and_insert(p(0), 0));
        assert!(!d.check_and_insert(p(u64::MAX), u64::MAX));
    }

    #[test]
    fn default_uses_documented_window() {
        assert_eq!(InboundDedup::default().capacity(), DEFAULT_DEDUP_WINDOW);
    }

    #[test]
    fn snapshot_round_trip_preserves_window_order_and_stats() {
        let mut d = InboundDedup::new(3);
        for id in 1..=5 {
            d.check_and_insert(p(9), id);
        }
        d.check_and_insert(p(9), 5);
        let json = serde_json::to_string(&d).unwrap();
        let mut back: InboundDedup = serde_json::from_str(&json).unwrap();
        assert_eq!(back.stats(), d.stats());
        assert_eq!(back.len(), 3);
        assert!(!back.check_and_insert(p(9), 3));
        // Order survived: the next fresh key evicts id 3, the oldest.
        assert!(back.check_and_insert(p(9), 6));
        assert!(!back.contains(p(9), 3));
        assert!(back.contains(p(9), 4));
    }

    #[test]
    fn restore_repairs_oversized_or_repeated_window() {
        let json = r#"{"window":[[1,1],[1,2],[1,2],[1,3]],"capacity":2,"stats":{"fresh":0,"duplicates":0,"evictions":0}}"#;
        let d: InboundDedup = serde_json::from_str(json).unwrap();
        assert_eq!(d.len(), 2);
        assert!(d.contains(p(1), 2));
        assert!(d.contains(p(1), 3));
        assert!(!d.contains(p(1), 1));
    }
}
