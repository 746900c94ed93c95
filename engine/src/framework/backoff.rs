//! `BackoffTable`: per-peer exponential backoff, so a Node stops hammering a
//! peer that keeps failing and honours a peer's own "back off" advisory.
//!
//! The delay after the n-th consecutive failure is
//! `base_ns × 2^(n-1)`, capped at `max_ns` (defaults: 10 ms, 60 s). A
//! success forgets the peer. A remote `BackoffNotice` moves the peer's
//! ready time to `max(current, now + retry_after)`, with the advisory
//! clamped to `max_ns` so a remote peer cannot silence us for longer.
//!
//! Invariants:
//! * All arithmetic saturates: no input overflows or panics.
//! * A peer's ready time only moves later, except on success (reset).
//! * At most `max_peers` peers are tracked. Tracking a new peer at the cap
//!   first evicts the entry with the earliest ready time (the one closest
//!   to, or already past, the end of its backoff, so the least information
//!   is lost; ties go to the lowest `PeerId`). Evictions are counted in
//!   [`BackoffStats::evicted`]; with `max_peers == 0` nothing is tracked
//!   and every would-be entry counts as evicted.
//! * An untracked peer is always ready.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::ids::PeerId;

/// Delay after the first failure: 10 ms.
pub const BACKOFF_DEFAULT_BASE_NS: u64 = 10_000_000;
/// Longest delay, and the clamp on remote advisories: 60 s.
pub const BACKOFF_DEFAULT_MAX_NS: u64 = 60_000_000_000;
/// Peer-table cap a default [`BackoffConfig`] uses.
pub const BACKOFF_DEFAULT_MAX_PEERS: usize = 4_096;

/// Tuning for a [`BackoffTable`]; [`Default`] gives 10 ms base, 60 s cap,
/// 4096 peers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackoffConfig {
    /// Delay after the first consecutive failure.
    pub base_ns: u64,
    /// Cap on any delay and on remote advisories.
    pub max_ns: u64,
    /// How many peers the table tracks at once.
    pub max_peers: usize,
}

/// Counters a [`BackoffTable`] keeps over its lifetime (all saturating).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackoffStats {
    /// Calls to [`BackoffTable::record_failure`].
    pub failures: u64,
    /// Calls to [`BackoffTable::record_success`] that reset a tracked peer.
    pub resets: u64,
    /// Calls to [`BackoffTable::apply_advisory`].
    pub advisories: u64,
    /// Advisories longer than `max_ns` that were clamped.
    pub advisories_clamped: u64,
    /// Entries evicted (or never stored) because of the peer cap.
    pub evicted: u64,
}

/// Per-peer exponential backoff state.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct BackoffTable {
    config: BackoffConfig,
    peers: BTreeMap<PeerId, Entry>,
    stats: BackoffStats,
}

impl Default for BackoffConfig {
    fn default() -> Self {
        Self {
            base_ns: BACKOFF_DEFAULT_BASE_NS,
            max_ns: BACKOFF_DEFAULT_MAX_NS,
            max_peers: BACKOFF_DEFAULT_MAX_PEERS,
        }
    }
}

impl BackoffConfig {
    /// The delay after `failures` consecutive failures (0 failures: no delay).
    pub fn delay_ns(&self, failures: u32) -> u64 {
        let Some(exponent) = failures.checked_sub(1) else {
            return 0;
        };
        1u64.checked_shl(exponent)
            .and_then(|factor| self.base_ns.checked_mul(factor))
            .map_or(self.max_ns, |delay| delay.min(self.max_ns))
    }
}

impl Default for BackoffTable {
    fn default() -> Self {
        Self::new(BackoffConfig::default())
    }
}

impl BackoffTable {
    /// An empty table.
    pub fn new(config: BackoffConfig) -> Self {
        Self {
            config,
            peers: BTreeMap::new(),
            stats: BackoffStats::default(),
        }
    }

    /// Records a failure talking to `peer` and returns how long from
    /// `now_ns` until it is ready again: normally the exponential delay, or
    /// more if an earlier advisory already pushed the ready time further.
    pub fn record_failure(&mut self, peer: PeerId, now_ns: u64) -> u64 {
        self.stats.failures = self.stats.failures.saturating_add(1);
        let config = self.config;
        let Some(entry) = self.entry(peer) else {
            return config.delay_ns(1);
        };
        entry.failures = entry.failures.saturating_add(1);
        let ready = now_ns.saturating_add(config.delay_ns(entry.failures));
        entry.ready_at_ns = entry.ready_at_ns.max(ready);
        entry.ready_at_ns.saturating_sub(now_ns)
    }

    /// Records a success with `peer`: its failure count and ready time are
    /// forgotten, including any advisory.
    pub fn record_success(&mut self, peer: PeerId) {
        if self.peers.remove(&peer).is_some() {
            self.stats.resets = self.stats.resets.saturating_add(1);
        }
    }

    /// Applies a remote `BackoffNotice`: `peer` is not ready before
    /// `now_ns + retry_after_ns` (advisory clamped to `max_ns`). Does not
    /// change the failure count.
    pub fn apply_advisory(&mut self, peer: PeerId, retry_after_ns: u64, now_ns: u64) {
        self.stats.advisories = self.stats.advisories.saturating_add(1);
        if retry_after_ns > self.config.max_ns {
            self.stats.advisories_clamped = self.stats.advisories_clamped.saturating_add(1);
        }
        let ready = now_ns.saturating_add(retry_after_ns.min(self.config.max_ns));
        if let Some(entry) = self.entry(peer) {
            entry.ready_at_ns = entry.ready_at_ns.max(ready);
        }
    }

    /// When `peer` is ready again, if it is tracked (the time may be past).
    pub fn ready_at(&self, peer: PeerId) -> Option<u64> {
        self.peers.get(&peer).map(|entry| entry.ready_at_ns)
    }

    /// Whether `peer` may be contacted at `now_ns`.
    pub fn is_ready(&self, peer: PeerId, now_ns: u64) -> bool {
        self.ready_at(peer).is_none_or(|ready| now_ns >= ready)
    }

    /// Consecutive failures recorded for `peer` since its last success.
    pub fn failures(&self, peer: PeerId) -> u32 {
        self.peers.get(&peer).map_or(0, |entry| entry.failures)
    }

    /// Number of tracked peers.
    pub fn len(&self) -> usize {
        self.peers.len()
    }

    /// Whether no peer is tracked.
    pub fn is_empty(&self) -> bool {
        self.peers.is_empty()
    }

    /// The configuration in force.
    pub fn config(&self) -> &BackoffConfig {
        &self.config
    }

    /// Lifetime counters.
    pub fn stats(&self) -> BackoffStats {
        self.stats
    }

    /// The entry for `peer`, created (evicting at the cap) if missing;
    /// `None` only when `max_peers == 0`.
    fn entry(&mut self, peer: PeerId) -> Option<&mut Entry> {
        if !self.peers.contains_key(&peer) {
            if self.peers.len() >= self.config.max_peers {
                self.stats.evicted = self.stats.evicted.saturating_add(1);
                let victim = self
                    .peers
                    .iter()
                    .min_by_key(|(id, entry)| (entry.ready_at_ns, **id))
                    .map(|(id, _)| *id)?;
                self.peers.remove(&victim);
            }
            self.peers.insert(peer, Entry::default());
        }
        self.peers.get_mut(&peer)
    }
}

/// One tracked peer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Entry {
    failures: u32,
    ready_at_ns: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;
    const P: PeerId = PeerId::new(1);

    #[test]
    fn delays_double_from_base_and_cap_at_max() {
        let mut t = BackoffTable::default();
        assert_eq!(t.record_failure(P, 0), 10 * MS);
        assert_eq!(t.record_failure(P, 0), 20 * MS);
        assert_eq!(t.record_failure(P, 0), 40 * MS);
        for _ in 0..20 {
            t.record_failure(P, 0);
        }
        assert_eq!(t.record_failure(P, 0), BACKOFF_DEFAULT_MAX_NS);
        assert_eq!(t.ready_at(P), Some(BACKOFF_DEFAULT_MAX_NS));
        assert_eq!(t.failures(P), 24);
    }

    #[test]
    fn delay_formula_saturates_for_huge_counts() {
        let c = BackoffConfig::default();
        assert_eq!(c.delay_ns(0), 0);
        assert_eq!(
            c.delay_ns(64),
            c.max_ns,
            "shift of 63 overflows the multiply"
        );
        assert_eq!(c.delay_ns(65), c.max_ns, "shift of 64 overflows the shift");
        assert_eq!(c.delay_ns(u32::MAX), c.max_ns);
        let uncapped = BackoffConfig {
            max_ns: u64::MAX,
            ..c
        };
        assert_eq!(uncapped.delay_ns(200), u64::MAX);
    }

    #[test]
    fn ready_time_gates_is_ready() {
        let mut t = BackoffTable::default();
        assert!(t.is_ready(P, 0), "untracked peers are ready");
        t.record_failure(P, 100);
        assert!(!t.is_ready(P, 100 + 10 * MS - 1));
        assert!(t.is_ready(P, 100 + 10 * MS));
    }

    #[test]
    fn success_resets_everything() {
        let mut t = BackoffTable::default();
        t.record_failure(P, 0);
        t.record_failure(P, 0);
        t.record_success(P);
        assert_eq!(t.ready_at(P), None);
        assert_eq!(t.record_failure(P, 0), 10 * MS, "sequence restarts at base");
        assert_eq!(t.stats().resets, 1);
    }

    #[test]
    fn advisory_only_extends_and_is_clamped() {
        let mut t = BackoffTable::default();
        t.apply_advisory(P, 500 * MS, 1_000);
        assert_eq!(t.ready_at(P), Some(1_000 + 500 * MS));
        t.apply_advisory(P, MS, 1_000);
        assert_eq!(
            t.ready_at(P),
            Some(1_000 + 500 * MS),
            "shorter advisory ignored"
        );
        t.apply_advisory(P, u64::MAX, 1_000);
        assert_eq!(t.ready_at(P), Some(1_000 + BACKOFF_DEFAULT_MAX_NS));
        assert_eq!(t.failures(P), 0, "advisories are not failures");
        assert_eq!((t.stats().advisories, t.stats().advisories_clamped), (3, 1));
    }

    #[test]
    fn failure_never_shortens_an_advisory() {
        let mut t = BackoffTable::default();
        t.apply_advisory(P, 5_000 * MS, 0);
        assert_eq!(t.record_failure(P, 0), 5_000 * MS);
        assert_eq!(t.failures(P), 1);
    }

    #[test]
    fn saturates_near_end_of_time() {
        let mut t = BackoffTable::default();
        assert_eq!(t.record_failure(P, u64::MAX - 1), 1);
        assert_eq!(t.ready_at(P), Some(u64::MAX));
        t.apply_advisory(P, BACKOFF_DEFAULT_MAX_NS, u64::MAX);
        assert_eq!(t.ready_at(P), Some(u64::MAX));
        assert!(t.is_ready(P, u64::MAX));
    }

    #[test]
    fn cap_evicts_earliest_ready_entry() {
        let config = BackoffConfig {
            max_peers: 2,
            ..BackoffConfig::default()
        };
        let mut t = BackoffTable::new(config);
        let (a, b, c) = (PeerId::new(1), PeerId::new(2), PeerId::new(3));
        t.apply_advisory(a, 900 * MS, 0);
        t.apply_advisory(b, 100 * MS, 0);
        t.record_failure(c, 0);
        assert_eq!(t.len(), 2);
        assert_eq!(t.ready_at(b), None, "b had the earliest ready time");
        assert!(t.ready_at(a).is_some() && t.ready_at(c).is_some());
        assert_eq!(t.stats().evicted, 1);
    }

    #[test]
    fn zero_peer_cap_tracks_nothing_but_still_answers() {
        let mut t = BackoffTable::new(BackoffConfig {
            max_peers: 0,
            ..BackoffConfig::default()
        });
        assert_eq!(t.record_failure(P, 0), 10 * MS);
        t.apply_advisory(P, MS, 0);
        assert!(t.is_empty());
        assert!(t.is_ready(P, 0));
        assert_eq!(t.stats().evicted, 2);
    }

    #[test]
    fn custom_config_is_used() {
        let mut t = BackoffTable::new(BackoffConfig {
            base_ns: 3,
            max_ns: 10,
            max_peers: 8,
        });
        let delays: Vec<u64> = (0..4).map(|_| t.record_failure(P, 0)).collect();
        assert_eq!(delays, [3, 6, 10, 10]);
    }

    #[test]
    fn serde_round_trip() {
        let mut t = BackoffTable::default();
        t.record_failure(P, 7);
        let back: BackoffTable = serde_json::from_str(&serde_json::to_string(&t).unwrap()).unwrap();
        assert_eq!(back.ready_at(P), t.ready_at(P));
        assert_eq!(back.failures(P), 1);
        assert_eq!(back.config(), t.config());
    }
}
