//! `BackpressureTracker`: receiver-side overload bookkeeping that decides,
//! per refused message, whether to tell the sender to back off, and tells
//! the host whom to clear once the overload has passed.
//!
//! Lifecycle of one overload episode:
//! 1. The queue reaches the high-water mark (reported through
//!    [`BackpressureTracker::observe_depth`]) or a message is refused
//!    ([`BackpressureTracker::on_refused`]; a refusal is itself proof of
//!    overload): the tracker is overloaded.
//! 2. Each refusal from a sender yields [`BackpressureAction::SendNotice`]
//!    (the host sends a `BackoffNotice` with the retry-after hint), unless a
//!    notice went to that sender less than `min_notice_interval_ns` ago
//!    ([`BackpressureAction::Suppressed`]) or the sender has already had
//!    `notices_per_episode` notices ([`BackpressureAction::SilentDrop`]):
//!    a sender that ignores K notices gets no more traffic from us.
//! 3. When an observed depth falls to or below the low-water mark, the
//!    episode ends: `observe_depth` returns every sender that got a notice,
//!    so the host can send each a `BackoffClear`, and all per-sender state
//!    is forgotten.
//!
//! Invariants:
//! * Levels are compared as `depth × 100` against `capacity × percent` in
//!   128-bit arithmetic (no overflow). A capacity of 0 counts as full: it
//!   is always at high water and never at low water.
//! * At most `max_senders` senders are tracked per episode. A refusal from
//!   a new sender beyond that is a silent drop counted in
//!   [`BackpressureStats::untracked_drops`]; tracked senders are never
//!   evicted, so none misses its `BackoffClear`.
//! * Every refusal is counted under exactly one outcome.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::ids::PeerId;

/// Default high-water mark, percent of capacity.
pub const BACKPRESSURE_DEFAULT_HIGH_WATER_PERCENT: u32 = 80;
/// Default low-water mark (recovery), percent of capacity.
pub const BACKPRESSURE_DEFAULT_LOW_WATER_PERCENT: u32 = 50;
/// Default shortest gap between two notices to one sender: 100 ms.
pub const BACKPRESSURE_DEFAULT_MIN_NOTICE_INTERVAL_NS: u64 = 100_000_000;
/// Default notices per sender per episode before silent drops.
pub const BACKPRESSURE_DEFAULT_NOTICES_PER_EPISODE: u32 = 3;
/// Default retry-after hint carried by a notice: 100 ms.
pub const BACKPRESSURE_DEFAULT_RETRY_AFTER_NS: u64 = 100_000_000;
/// Default cap on senders tracked per episode.
pub const BACKPRESSURE_DEFAULT_MAX_SENDERS: usize = 4_096;

/// Tuning for a [`BackpressureTracker`]; [`Default`] gives 80 % / 50 %,
/// 100 ms between notices, 3 notices per episode, 100 ms retry-after and
/// 4096 senders.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackpressureConfig {
    /// Depth (percent of capacity) at or above which the queue is overloaded.
    pub high_water_percent: u32,
    /// Depth (percent of capacity) at or below which an overload ends.
    pub low_water_percent: u32,
    /// Shortest gap between two notices to the same sender.
    pub min_notice_interval_ns: u64,
    /// Notices per sender per episode; further refusals drop silently.
    pub notices_per_episode: u32,
    /// Retry-after hint each notice carries.
    pub retry_after_ns: u64,
    /// Cap on senders tracked in one episode.
    pub max_senders: usize,
}

/// What the host should do about one refused message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum BackpressureAction {
    /// Send a `BackoffNotice` to `to` asking it to wait `retry_after_ns`.
    SendNotice {
        /// The sender to notify.
        to: PeerId,
        /// How long the sender should hold off.
        retry_after_ns: u64,
    },
    /// Drop the message without telling the sender (notice budget spent,
    /// or sender table full).
    SilentDrop,
    /// Drop the message; a notice went to this sender too recently.
    Suppressed,
}

/// Counters a [`BackpressureTracker`] keeps over its lifetime (all
/// saturating).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackpressureStats {
    /// Calls to [`BackpressureTracker::on_refused`].
    pub refusals: u64,
    /// Refusals answered with [`BackpressureAction::SendNotice`].
    pub notices_sent: u64,
    /// Refusals answered with [`BackpressureAction::Suppressed`].
    pub suppressed: u64,
    /// Refusals silently dropped because the sender's notices were spent.
    pub silent_drops: u64,
    /// Refusals silently dropped because the sender table was full.
    pub untracked_drops: u64,
    /// Overload episodes started.
    pub episodes: u64,
    /// Overload episodes ended by falling to low water.
    pub recoveries: u64,
    /// Senders handed back for a `BackoffClear` across all recoveries.
    pub clears: u64,
    /// Highest fill level reported to the tracker, percent of capacity
    /// (rounded down; a zero-capacity queue counts as 100).
    pub peak_fill_percent: u64,
}

/// Receiver-side overload and notice bookkeeping for one queue.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct BackpressureTracker {
    config: BackpressureConfig,
    overloaded_since_ns: Option<u64>,
    senders: BTreeMap<PeerId, SenderState>,
    stats: BackpressureStats,
}

impl Default for BackpressureConfig {
    fn default() -> Self {
        Self {
            high_water_percent: BACKPRESSURE_DEFAULT_HIGH_WATER_PERCENT,
            low_water_percent: BACKPRESSURE_DEFAULT_LOW_WATER_PERCENT,
            min_notice_interval_ns: BACKPRESSURE_DEFAULT_MIN_NOTICE_INTERVAL_NS,
            notices_per_episode: BACKPRESSURE_DEFAULT_NOTICES_PER_EPISODE,
            retry_after_ns: BACKPRESSURE_DEFAULT_RETRY_AFTER_NS,
            max_senders: BACKPRESSURE_DEFAULT_MAX_SENDERS,
        }
    }
}

impl BackpressureTracker {
    /// A tracker that is not overloaded and knows no sender.
    pub fn new(config: BackpressureConfig) -> Self {
        Self {
            config,
            overloaded_since_ns: None,
            senders: BTreeMap::new(),
            stats: BackpressureStats::default(),
        }
    }

    /// Records that a message from `sender` was refused while the queue held
    /// `depth` of `capacity` items (which feeds
    /// [`BackpressureStats::peak_fill_percent`]), and says how to answer the
    /// sender. The tracker is overloaded afterwards whatever the depth.
    pub fn on_refused(
        &mut self,
        sender: PeerId,
        depth: usize,
        capacity: usize,
        now_ns: u64,
    ) -> BackpressureAction {
        self.stats.refusals = self.stats.refusals.saturating_add(1);
        self.note_level(depth, capacity);
        self.enter_overload(now_ns);
        let config = self.config;
        let tracked = self.senders.len();
        let state = match self.senders.get_mut(&sender) {
            Some(state) => state,
            None if tracked >= config.max_senders => {
                self.stats.untracked_drops = self.stats.untracked_drops.saturating_add(1);
                return BackpressureAction::SilentDrop;
            }
            None => self.senders.entry(sender).or_default(),
        };
        if state.notices >= config.notices_per_episode {
            self.stats.silent_drops = self.stats.silent_drops.saturating_add(1);
            return BackpressureAction::SilentDrop;
        }
        let too_soon = state
            .last_notice_ns
            .is_some_and(|last| now_ns.saturating_sub(last) < config.min_notice_interval_ns);
        if too_soon {
            self.stats.suppressed = self.stats.suppressed.saturating_add(1);
            return BackpressureAction::Suppressed;
        }
        state.notices = state.notices.saturating_add(1);
        state.last_notice_ns = Some(now_ns);
        self.stats.notices_sent = self.stats.notices_sent.saturating_add(1);
        BackpressureAction::SendNotice {
            to: sender,
            retry_after_ns: config.retry_after_ns,
        }
    }

    /// Feeds the queue's current depth. At or above high water the tracker
    /// becomes overloaded. If it was overloaded and the depth is at or
    /// below low water, the episode ends and the senders that got notices
    /// are returned (ascending `PeerId`) for a `BackoffClear`; otherwise the
    /// result is empty.
    pub fn observe_depth(&mut self, depth: usize, capacity: usize, now_ns: u64) -> Vec<PeerId> {
        self.note_level(depth, capacity);
        if at_or_above(depth, capacity, self.config.high_water_percent) {
            self.enter_overload(now_ns);
            return Vec::new();
        }
        if !self.is_overloaded() || !at_or_below(depth, capacity, self.config.low_water_percent) {
            return Vec::new();
        }
        self.overloaded_since_ns = None;
        let notified: Vec<PeerId> = std::mem::take(&mut self.senders)
            .into_iter()
            .filter(|(_, state)| state.notices > 0)
            .map(|(peer, _)| peer)
            .collect();
        self.stats.recoveries = self.stats.recoveries.saturating_add(1);
        let cleared = u64::try_from(notified.len()).unwrap_or(u64::MAX);
        self.stats.clears = self.stats.clears.saturating_add(cleared);
        notified
    }

    /// Whether an overload episode is in progress.
    pub fn is_overloaded(&self) -> bool {
        self.overloaded_since_ns.is_some()
    }

    /// When the current overload episode started, if one is in progress.
    pub fn overloaded_since(&self) -> Option<u64> {
        self.overloaded_since_ns
    }

    /// Notices `sender` has had in the current episode.
    pub fn notices_to(&self, sender: PeerId) -> u32 {
        self.senders.get(&sender).map_or(0, |state| state.notices)
    }

    /// Number of senders tracked in the current episode.
    pub fn tracked_senders(&self) -> usize {
        self.senders.len()
    }

    /// The configuration in force.
    pub fn config(&self) -> &BackpressureConfig {
        &self.config
    }

    /// Lifetime counters.
    pub fn stats(&self) -> BackpressureStats {
        self.stats
    }

    fn enter_overload(&mut self, now_ns: u64) {
        if self.overloaded_since_ns.is_none() {
            self.overloaded_since_ns = Some(now_ns);
            self.stats.episodes = self.stats.episodes.saturating_add(1);
        }
    }

    fn note_level(&mut self, depth: usize, capacity: usize) {
        self.stats.peak_fill_percent = self
            .stats
            .peak_fill_percent
            .max(fill_percent(depth, capacity));
    }
}

/// What the tracker remembers about one sender during an episode.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct SenderState {
    notices: u32,
    last_notice_ns: Option<u64>,
}

/// `depth` is at least `percent` % of `capacity` (capacity 0 is full).
fn at_or_above(depth: usize, capacity: usize, percent: u32) -> bool {
    capacity == 0 || depth as u128 * 100 >= capacity as u128 * u128::from(percent)
}

/// `depth` as a percent of `capacity`, rounded down, saturating at
/// `u64::MAX` (capacity 0 is 100 %).
fn fill_percent(depth: usize, capacity: usize) -> u64 {
    if capacity == 0 {
        return 100;
    }
    u64::try_from(depth as u128 * 100 / capacity as u128).unwrap_or(u64::MAX)
}

/// `depth` is at most `percent` % of `capacity` (capacity 0 never is).
fn at_or_below(depth: usize, capacity: usize, percent: u32) -> bool {
    capacity != 0 && depth as u128 * 100 <= capacity as u128 * u128::from(percent)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;
    const A: PeerId = PeerId::new(1);
    const B: PeerId = PeerId::new(2);

    fn notice(to: PeerId) -> BackpressureAction {
        BackpressureAction::SendNotice {
            to,
            retry_after_ns: BACKPRESSURE_DEFAULT_RETRY_AFTER_NS,
        }
    }

    #[test]
    fn high_water_enters_overload_at_threshold() {
        let mut t = BackpressureTracker::default();
        assert!(t.observe_depth(79, 100, 0).is_empty());
        assert!(!t.is_overloaded());
        t.observe_depth(80, 100, 7);
        assert!(t.is_overloaded());
        assert_eq!(t.overloaded_since(), Some(7));
        t.observe_depth(90, 100, 0);
        assert_eq!(t.stats().episodes, 1, "one episode, not one per sample");
    }

    #[test]
    fn notices_respect_min_interval() {
        let mut t = BackpressureTracker::default();
        assert_eq!(t.on_refused(A, 100, 100, 0), notice(A));
        assert_eq!(
            t.on_refused(A, 100, 100, 100 * MS - 1),
            BackpressureAction::Suppressed
        );
        assert_eq!(
            t.on_refused(B, 100, 100, 1),
            notice(B),
            "interval is per sender"
        );
        assert_eq!(t.on_refused(A, 100, 100, 100 * MS), notice(A));
        let st = t.stats();
        assert_eq!((st.notices_sent, st.suppressed, st.refusals), (3, 1, 4));
    }

    #[test]
    fn after_k_notices_refusals_drop_silently() {
        let mut t = BackpressureTracker::default();
        for i in 0..3 {
            assert_eq!(t.on_refused(A, 100, 100, i * 100 * MS), notice(A));
        }
        assert_eq!(
            t.on_refused(A, 100, 100, 1_000 * MS),
            BackpressureAction::SilentDrop
        );
        assert_eq!(
            t.on_refused(A, 100, 100, 2_000 * MS),
            BackpressureAction::SilentDrop
        );
        assert_eq!(t.notices_to(A), 3);
        assert_eq!(t.stats().silent_drops, 2);
    }

    #[test]
    fn recovery_returns_notified_senders_once_at_low_water() {
        let mut t = BackpressureTracker::default();
        t.on_refused(B, 100, 100, 0);
        t.on_refused(A, 100, 100, 0);
        assert!(
            t.observe_depth(51, 100, 1).is_empty(),
            "above low water: still overloaded"
        );
        assert!(t.is_overloaded());
        assert_eq!(t.observe_depth(50, 100, 2), vec![A, B]);
        assert!(!t.is_overloaded());
        assert_eq!(t.tracked_senders(), 0);
        assert!(t.observe_depth(0, 100, 3).is_empty(), "no second clear");
        let st = t.stats();
        assert_eq!((st.recoveries, st.clears), (1, 2));
    }

    #[test]
    fn new_episode_restores_the_notice_budget() {
        let mut t = BackpressureTracker::default();
        for i in 0..4 {
            t.on_refused(A, 100, 100, i * 100 * MS);
        }
        assert_eq!(t.observe_depth(0, 100, 0), vec![A]);
        assert_eq!(
            t.on_refused(A, 100, 100, 0),
            notice(A),
            "budget and interval reset"
        );
        assert_eq!(t.stats().episodes, 2);
    }

    #[test]
    fn recovery_without_notices_returns_nobody() {
        let mut t = BackpressureTracker::new(BackpressureConfig {
            notices_per_episode: 0,
            ..BackpressureConfig::default()
        });
        assert_eq!(t.on_refused(A, 100, 100, 0), BackpressureAction::SilentDrop);
        assert!(t.observe_depth(0, 100, 0).is_empty());
        assert_eq!(t.stats().recoveries, 1);
    }

    #[test]
    fn sender_cap_drops_new_senders_but_keeps_tracked_ones() {
        let mut t = BackpressureTracker::new(BackpressureConfig {
            max_senders: 1,
            ..BackpressureConfig::default()
        });
        assert_eq!(t.on_refused(A, 100, 100, 0), notice(A));
        assert_eq!(t.on_refused(B, 100, 100, 0), BackpressureAction::SilentDrop);
        assert_eq!(t.stats().untracked_drops, 1);
        assert_eq!(t.stats().silent_drops, 0);
        assert_eq!(t.observe_depth(0, 100, 0), vec![A]);
    }

    #[test]
    fn peak_fill_tracks_the_highest_level_seen() {
        let mut t = BackpressureTracker::default();
        t.observe_depth(30, 200, 0);
        t.on_refused(A, 150, 200, 0);
        t.observe_depth(10, 200, 0);
        assert_eq!(t.stats().peak_fill_percent, 75);
        t.observe_depth(5, 0, 0);
        assert_eq!(t.stats().peak_fill_percent, 100);
    }

    #[test]
    fn zero_capacity_is_always_full() {
        let mut t = BackpressureTracker::default();
        t.observe_depth(0, 0, 0);
        assert!(t.is_overloaded());
        assert!(t.observe_depth(0, 0, 0).is_empty());
        assert!(t.is_overloaded(), "a zero-capacity queue never recovers");
    }

    #[test]
    fn huge_depths_do_not_overflow() {
        let mut t = BackpressureTracker::default();
        t.observe_depth(usize::MAX, usize::MAX, 0);
        assert!(t.is_overloaded());
        assert!(t.observe_depth(usize::MAX / 2, usize::MAX, 0).is_empty());
        assert!(!t.is_overloaded(), "half of max is at or below 50 %");
    }

    #[test]
    fn clock_going_backwards_suppresses_instead_of_panicking() {
        let mut t = BackpressureTracker::default();
        t.on_refused(A, 1, 1, 1_000 * MS);
        assert_eq!(t.on_refused(A, 1, 1, 0), BackpressureAction::Suppressed);
    }

    #[test]
    fn serde_round_trip_keeps_the_episode() {
        let mut t = BackpressureTracker::default();
        t.on_refused(A, 100, 100, 0);
        let mut back: BackpressureTracker =
            serde_json::from_str(&serde_json::to_string(&t).unwrap()).unwrap();
        assert!(back.is_overloaded());
        assert_eq!(
            back.on_refused(A, 100, 100, 1),
            BackpressureAction::Suppressed
        );
        assert_eq!(back.observe_depth(0, 100, 2), vec![A]);
    }
}
