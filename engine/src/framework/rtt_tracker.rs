//! Round-trip-time estimation and peer liveness: [`RttTracker`] turns observed
//! wire round trips into timeout budgets and heartbeats into phi-accrual
//! suspicion levels.
//!
//! # RTT estimates
//! Each estimate is the RFC 6298 pair `srtt` / `rttvar` in integer
//! nanoseconds. The first sample `s` sets `srtt = s`, `rttvar = s / 2`; each
//! later sample updates `rttvar = (3·rttvar + |srtt − s|) / 4` (beta 1/4,
//! using the old `srtt`) and then `srtt = (7·srtt + s) / 8` (alpha 1/8), in
//! 128-bit arithmetic so no input overflows. Divisions truncate, so `srtt`
//! may trail a constant sample by up to 7 ns. The budget of an estimate is
//! `srtt + 4·rttvar` (saturating).
//!
//! Every sample updates all applicable tiers at once:
//! 1. **edge**: the exact target ([`NodeSiteId`]);
//! 2. **site**: the target's [`SiteId`], pooled over all peers;
//! 3. **chain**: the sender's chain position ([`ChainContext`]: chain id and
//!    hop index), only when a chain context is given;
//! 4. **global**: every sample.
//!
//! [`RttTracker::estimate_budget_ns`] answers from the first tier in that
//! order that holds at least one sample, clamped to
//! [`RttConfig::min_budget_ns`]`..=`[`RttConfig::max_budget_ns`]; with no
//! sample anywhere it returns the caller's static default **unclamped**
//! (the caller chose it). The chain tier is skipped when no chain context
//! is given, or when the context's `(chain_id, hop_index)` has no sample.
//!
//! # Liveness (phi accrual)
//! Per peer, [`RttTracker::heartbeat`] records the interval since the peer's
//! previous heartbeat in a window of the last [`RttConfig::heartbeat_window`]
//! intervals. [`RttTracker::phi`] is `−log10(P(interval > elapsed))` under a
//! normal distribution with the window's mean and (population) standard
//! deviation, using the logistic approximation of the normal CDF from
//! Hayashibara et al. / Akka:
//! `y = (t − μ)/σ`, `e = exp(−y·(1.5976 + 0.070566·y²))`,
//! `phi = −log10(e / (1 + e))` when `t > μ`, else `−log10(1 − 1/(1 + e))`.
//! Guards: with fewer than [`RttConfig::min_heartbeat_samples`] intervals the
//! distribution is bootstrapped as `μ =` [`RttConfig::bootstrap_interval_ns`],
//! `σ = μ / 4`; `σ` is never below [`RttConfig::min_std_dev_ns`] nor 1 ns, so
//! zero variance cannot divide by zero. Phi is never NaN; it is `+∞` once the
//! silence is far beyond the history. A peer that never sent a heartbeat has
//! phi 0 and is [`Liveness::Live`]: phi accrual has no evidence about it (the
//! peer governor judges peers that never spoke).
//!
//! # Caps
//! Edges, sites, chains and peers each live in a table capped by
//! [`RttConfig`]. A new key at the cap evicts the least-recently-updated
//! entry (oldest `now_ns` of its last sample or heartbeat; ties evict the
//! smallest key) and counts the eviction. A cap of 0 disables that table.
//!
//! All tables are ordered maps, so snapshots are deterministic; maps with
//! struct keys serialize as sequences of pairs so text formats work too.

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};

use crate::ids::{NodeSiteId, PeerId, SiteId};

/// Where a hop sits in a compiler-stamped multi-hop send chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ChainContext {
    /// Stable id of the chain ([`chain_id_from_targets`] of its targets).
    pub chain_id: u64,
    /// The hop's position in the chain, from 0.
    pub hop_index: u8,
}

/// The stable id of a chain: 64-bit FNV-1a of the UTF-8 bytes of its
/// `chain_targets` metadata string.
///
/// Written out (offset basis `0xcbf29ce484222325`, prime `0x100000001b3`) so
/// the id never changes across Rust versions or platforms, unlike std's
/// `DefaultHasher`.
pub fn chain_id_from_targets(targets: &str) -> u64 {
    const OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    targets.bytes().fold(OFFSET_BASIS, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(PRIME)
    })
}

/// One RFC 6298 estimate: smoothed RTT and its variation, in nanoseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RttEstimate {
    /// Smoothed round-trip time.
    pub srtt_ns: u64,
    /// Round-trip time variation.
    pub rttvar_ns: u64,
    /// Samples folded in so far (saturating).
    pub samples: u64,
}

impl RttEstimate {
    /// The estimate after one sample: `srtt = s`, `rttvar = s / 2`.
    pub fn first(sample_ns: u64) -> Self {
        Self {
            srtt_ns: sample_ns,
            rttvar_ns: sample_ns / 2,
            samples: 1,
        }
    }

    /// Folds in one more sample (beta 1/4 on `rttvar`, then alpha 1/8 on `srtt`).
    pub fn observe(&mut self, sample_ns: u64) {
        let diff = u128::from(self.srtt_ns.abs_diff(sample_ns));
        let rttvar = (3 * u128::from(self.rttvar_ns) + diff) / 4;
        let srtt = (7 * u128::from(self.srtt_ns) + u128::from(sample_ns)) / 8;
        // Both are weighted means of u64 values, so they fit; saturate anyway.
        self.rttvar_ns = u64::try_from(rttvar).unwrap_or(u64::MAX);
        self.srtt_ns = u64::try_from(srtt).unwrap_or(u64::MAX);
        self.samples = self.samples.saturating_add(1);
    }

    /// The unclamped timeout budget `srtt + 4·rttvar` (saturating).
    pub fn budget_ns(&self) -> u64 {
        self.srtt_ns
            .saturating_add(self.rttvar_ns.saturating_mul(4))
    }
}

/// Which tier an estimate came from, most specific first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum RttTier {
    /// The exact (peer, site) target.
    Edge,
    /// The target's site, pooled over peers.
    Site,
    /// The sender's (chain id, hop index).
    Chain,
    /// Every sample of this tracker.
    Global,
    /// No sample: the caller's static default.
    Static,
}

/// A peer's liveness verdict from its phi value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Liveness {
    /// Phi below the suspect threshold (or no heartbeat ever seen).
    Live,
    /// Phi at or above the suspect threshold, below the down threshold.
    Suspect,
    /// Phi at or above the down threshold.
    Down,
}

/// Settings of an [`RttTracker`]; [`RttConfig::default`] documents the defaults.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RttConfig {
    /// Smallest budget an estimate may yield (default 500 ms: in-process
    /// round trips are microseconds, but a busy host can deschedule an actor
    /// thread for many milliseconds, and a floor below that turns scheduling
    /// jitter into request timeouts).
    pub min_budget_ns: u64,
    /// Largest budget an estimate may yield (default 60 s).
    pub max_budget_ns: u64,
    /// Cap on (peer, site) edges tracked (default 4096).
    pub max_edges: usize,
    /// Cap on sites tracked (default 1024).
    pub max_sites: usize,
    /// Cap on (chain id, hop) positions tracked (default 1024).
    pub max_chains: usize,
    /// Cap on peers with heartbeat history (default 4096).
    pub max_peers: usize,
    /// Heartbeat intervals kept per peer (default 64; at least 1).
    pub heartbeat_window: usize,
    /// Intervals needed before the window's own statistics replace the
    /// bootstrap (default 3; from 1 to `heartbeat_window`).
    pub min_heartbeat_samples: usize,
    /// Assumed mean heartbeat interval until enough samples exist (default 1 s).
    pub bootstrap_interval_ns: u64,
    /// Floor of the standard deviation used by phi (default 100 ms, as Akka).
    pub min_std_dev_ns: u64,
    /// Phi at which a peer becomes [`Liveness::Suspect`] (default 3).
    pub suspect_phi: f64,
    /// Phi at which a peer becomes [`Liveness::Down`] (default 8).
    pub down_phi: f64,
}

impl Default for RttConfig {
    fn default() -> Self {
        Self {
            min_budget_ns: 500_000_000,
            max_budget_ns: 60_000_000_000,
            max_edges: 4096,
            max_sites: 1024,
            max_chains: 1024,
            max_peers: 4096,
            heartbeat_window: 64,
            min_heartbeat_samples: 3,
            bootstrap_interval_ns: 1_000_000_000,
            min_std_dev_ns: 100_000_000,
            suspect_phi: 3.0,
            down_phi: 8.0,
        }
    }
}

/// Why an [`RttConfig`] was refused.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum RttConfigError {
    /// `min_budget_ns` is above `max_budget_ns`.
    #[error(
        "budget range is empty: min_budget_ns {min} > max_budget_ns {max}; swap or widen them"
    )]
    BudgetRange {
        /// The configured minimum.
        min: u64,
        /// The configured maximum.
        max: u64,
    },
    /// The phi thresholds are not finite, not positive, or suspect > down.
    #[error("phi thresholds must be finite with 0 < suspect_phi <= down_phi; got suspect {suspect}, down {down}")]
    PhiThresholds {
        /// The configured suspect threshold.
        suspect: f64,
        /// The configured down threshold.
        down: f64,
    },
    /// The heartbeat window is 0, or needs more samples than it can hold.
    #[error("heartbeat settings need 1 <= min_heartbeat_samples <= heartbeat_window; got {min_samples} and {window}")]
    HeartbeatWindow {
        /// The configured window.
        window: usize,
        /// The configured minimum sample count.
        min_samples: usize,
    },
}

/// Table sizes and lifetime counters of an [`RttTracker`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RttStats {
    /// Round-trip samples observed.
    pub round_trips: u64,
    /// Edges currently tracked.
    pub edges: usize,
    /// Sites currently tracked.
    pub sites: usize,
    /// Chain positions currently tracked.
    pub chains: usize,
    /// Peers with heartbeat history.
    pub peers: usize,
    /// Edges evicted at the cap.
    pub edge_evictions: u64,
    /// Sites evicted at the cap.
    pub site_evictions: u64,
    /// Chain positions evicted at the cap.
    pub chain_evictions: u64,
    /// Peers evicted at the cap.
    pub peer_evictions: u64,
    /// Heartbeats ignored because they were older than the peer's last one.
    pub stale_heartbeats: u64,
}

/// Hierarchical RTT estimator and phi-accrual failure detector; see the
/// module docs for the rules.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RttTracker {
    config: RttConfig,
    edges: LruTable<NodeSiteId, RttEstimate>,
    sites: LruTable<SiteId, RttEstimate>,
    chains: LruTable<ChainContext, RttEstimate>,
    global: Option<RttEstimate>,
    peers: LruTable<PeerId, Heartbeats>,
    round_trips: u64,
    stale_heartbeats: u64,
}

impl RttTracker {
    /// An empty tracker with the given settings.
    ///
    /// # Errors
    /// [`RttConfigError`] when the settings contradict each other.
    pub fn new(config: RttConfig) -> Result<Self, RttConfigError> {
        validate(&config)?;
        Ok(Self {
            edges: LruTable::new(config.max_edges),
            sites: LruTable::new(config.max_sites),
            chains: LruTable::new(config.max_chains),
            global: None,
            peers: LruTable::new(config.max_peers),
            round_trips: 0,
            stale_heartbeats: 0,
            config,
        })
    }

    /// Folds one round trip of `elapsed_ns` to `target` into the edge, site,
    /// chain (when `chain` is given) and global estimates, stamping them
    /// with `now_ns` for least-recently-updated eviction.
    pub fn observe_round_trip(
        &mut self,
        target: NodeSiteId,
        chain: Option<ChainContext>,
        elapsed_ns: u64,
        now_ns: u64,
    ) {
        self.round_trips = self.round_trips.saturating_add(1);
        self.edges.upsert(
            target,
            now_ns,
            || RttEstimate::first(elapsed_ns),
            |e| e.observe(elapsed_ns),
        );
        self.sites.upsert(
            target.site,
            now_ns,
            || RttEstimate::first(elapsed_ns),
            |e| e.observe(elapsed_ns),
        );
        if let Some(chain) = chain {
            self.chains.upsert(
                chain,
                now_ns,
                || RttEstimate::first(elapsed_ns),
                |e| e.observe(elapsed_ns),
            );
        }
        match &mut self.global {
            Some(global) => global.observe(elapsed_ns),
            None => self.global = Some(RttEstimate::first(elapsed_ns)),
        }
    }

    /// The timeout budget for a round trip to `target`: `srtt + 4·rttvar` of
    /// the most specific tier with a sample (edge → site → chain → global),
    /// clamped to the configured range, else `static_default_ns` unclamped.
    pub fn estimate_budget_ns(
        &self,
        target: NodeSiteId,
        chain: Option<ChainContext>,
        static_default_ns: u64,
    ) -> u64 {
        match self.estimate(target, chain) {
            // max-then-min, not `clamp`: a restored snapshot could carry
            // min > max, and `clamp` would panic on it.
            Some((_, estimate)) => estimate
                .budget_ns()
                .max(self.config.min_budget_ns)
                .min(self.config.max_budget_ns),
            None => static_default_ns,
        }
    }

    /// The estimate [`RttTracker::estimate_budget_ns`] would use and its
    /// tier, or `None` when it would fall back to the static default.
    pub fn estimate(
        &self,
        target: NodeSiteId,
        chain: Option<ChainContext>,
    ) -> Option<(RttTier, RttEstimate)> {
        if let Some(e) = self.edges.value(&target) {
            return Some((RttTier::Edge, *e));
        }
        if let Some(e) = self.sites.value(&target.site) {
            return Some((RttTier::Site, *e));
        }
        if let Some(e) = chain.and_then(|c| self.chains.value(&c)) {
            return Some((RttTier::Chain, *e));
        }
        self.global.map(|e| (RttTier::Global, e))
    }

    /// The tier [`RttTracker::estimate_budget_ns`] would answer from.
    pub fn tier(&self, target: NodeSiteId, chain: Option<ChainContext>) -> RttTier {
        self.estimate(target, chain)
            .map_or(RttTier::Static, |(tier, _)| tier)
    }

    /// Records a heartbeat from `peer` at `now_ns`. A heartbeat older than
    /// the peer's last one is ignored and counted as stale.
    pub fn heartbeat(&mut self, peer: PeerId, now_ns: u64) {
        let window = self.config.heartbeat_window;
        let mut stale = false;
        self.peers.upsert(
            peer,
            now_ns,
            || Heartbeats {
                last_ns: now_ns,
                intervals: VecDeque::new(),
            },
            |h| {
                if now_ns < h.last_ns {
                    stale = true;
                    return;
                }
                if h.intervals.len() >= window {
                    h.intervals.pop_front();
                }
                h.intervals.push_back(now_ns - h.last_ns);
                h.last_ns = now_ns;
            },
        );
        if stale {
            self.stale_heartbeats = self.stale_heartbeats.saturating_add(1);
        }
    }

    /// The phi-accrual suspicion level of `peer` at `now_ns` (0 for a peer
    /// with no heartbeat; never NaN; `+∞` for silence far beyond history).
    pub fn phi(&self, peer: PeerId, now_ns: u64) -> f64 {
        let Some(h) = self.peers.value(&peer) else {
            return 0.0;
        };
        let (mean, std_dev) = self.interval_distribution(h);
        let elapsed = now_ns.saturating_sub(h.last_ns) as f64;
        let phi = phi_normal(elapsed, mean, std_dev);
        if phi.is_nan() {
            return 0.0;
        }
        phi.max(0.0)
    }

    /// The verdict for `peer` at `now_ns` from [`RttTracker::phi`] and the
    /// configured thresholds.
    pub fn liveness(&self, peer: PeerId, now_ns: u64) -> Liveness {
        let phi = self.phi(peer, now_ns);
        if phi >= self.config.down_phi {
            return Liveness::Down;
        }
        if phi >= self.config.suspect_phi {
            return Liveness::Suspect;
        }
        Liveness::Live
    }

    /// Drops `peer`'s heartbeat history; returns whether it had any.
    pub fn forget_peer(&mut self, peer: PeerId) -> bool {
        self.peers.remove(&peer)
    }

    /// The settings in force.
    pub fn config(&self) -> &RttConfig {
        &self.config
    }

    /// Table sizes and lifetime counters.
    pub fn stats(&self) -> RttStats {
        RttStats {
            round_trips: self.round_trips,
            edges: self.edges.len(),
            sites: self.sites.len(),
            chains: self.chains.len(),
            peers: self.peers.len(),
            edge_evictions: self.edges.evictions,
            site_evictions: self.sites.evictions,
            chain_evictions: self.chains.evictions,
            peer_evictions: self.peers.evictions,
            stale_heartbeats: self.stale_heartbeats,
        }
    }

    /// Mean and floored standard deviation of `h`'s intervals, or the
    /// bootstrap distribution while the window is too short.
    fn interval_distribution(&self, h: &Heartbeats) -> (f64, f64) {
        let floor = (self.config.min_std_dev_ns as f64).max(1.0);
        if h.intervals.len() < self.config.min_heartbeat_samples.max(1) {
            let mean = self.config.bootstrap_interval_ns as f64;
            return (mean, (mean / 4.0).max(floor));
        }
        let n = h.intervals.len() as f64;
        let mean = h.intervals.iter().map(|&i| i as f64).sum::<f64>() / n;
        let variance = h
            .intervals
            .iter()
            .map(|&i| (i as f64 - mean).powi(2))
            .sum::<f64>()
            / n;
        (mean, variance.sqrt().max(floor))
    }
}

impl Default for RttTracker {
    /// A tracker with [`RttConfig::default`].
    fn default() -> Self {
        Self::new(RttConfig::default()).expect("the default RttConfig passes validation")
    }
}

/// Checks the cross-field rules of an [`RttConfig`].
fn validate(config: &RttConfig) -> Result<(), RttConfigError> {
    if config.min_budget_ns > config.max_budget_ns {
        return Err(RttConfigError::BudgetRange {
            min: config.min_budget_ns,
            max: config.max_budget_ns,
        });
    }
    let (suspect, down) = (config.suspect_phi, config.down_phi);
    if !(suspect.is_finite() && down.is_finite() && suspect > 0.0 && suspect <= down) {
        return Err(RttConfigError::PhiThresholds { suspect, down });
    }
    let (window, min_samples) = (config.heartbeat_window, config.min_heartbeat_samples);
    if min_samples == 0 || min_samples > window {
        return Err(RttConfigError::HeartbeatWindow {
            window,
            min_samples,
        });
    }
    Ok(())
}

/// `−log10(P(X > t))` for `X ~ N(mean, std_dev)` via the logistic
/// approximation of the normal CDF; `std_dev` must be positive.
fn phi_normal(t: f64, mean: f64, std_dev: f64) -> f64 {
    let y = (t - mean) / std_dev;
    let e = (-y * (1.5976 + 0.070566 * y * y)).exp();
    if t > mean {
        -(e / (1.0 + e)).log10()
    } else {
        -(1.0 - 1.0 / (1.0 + e)).log10()
    }
}

/// A peer's heartbeat history.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Heartbeats {
    last_ns: u64,
    intervals: VecDeque<u64>,
}

/// A capped map whose entries remember when they were last updated, evicting
/// the least recently updated one to admit a new key at the cap.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(bound(
    serialize = "K: Serialize, V: Serialize",
    deserialize = "K: Deserialize<'de> + Ord, V: Deserialize<'de>"
))]
struct LruTable<K, V> {
    #[serde(with = "entries_as_seq")]
    entries: BTreeMap<K, Stamped<V>>,
    cap: usize,
    evictions: u64,
}

/// A table value with the `now_ns` of its last update.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Stamped<V> {
    updated_ns: u64,
    value: V,
}

impl<K: Ord + Copy, V> LruTable<K, V> {
    fn new(cap: usize) -> Self {
        Self {
            entries: BTreeMap::new(),
            cap,
            evictions: 0,
        }
    }

    /// Updates `key` with `update`, or inserts `insert()` (evicting the least
    /// recently updated entry at the cap); stamps it with `now_ns` (an update
    /// keeps the later of the two stamps). Does nothing when the cap is 0.
    fn upsert(
        &mut self,
        key: K,
        now_ns: u64,
        insert: impl FnOnce() -> V,
        update: impl FnOnce(&mut V),
    ) {
        if let Some(entry) = self.entries.get_mut(&key) {
            update(&mut entry.value);
            // Never move a stamp backwards (a stale heartbeat is not news).
            entry.updated_ns = entry.updated_ns.max(now_ns);
            return;
        }
        if self.cap == 0 {
            return;
        }
        while self.entries.len() >= self.cap {
            let Some(oldest) = self
                .entries
                .iter()
                .min_by_key(|(k, e)| (e.updated_ns, **k))
                .map(|(k, _)| *k)
            else {
                break;
            };
            self.entries.remove(&oldest);
            self.evictions = self.evictions.saturating_add(1);
        }
        self.entries.insert(
            key,
            Stamped {
                updated_ns: now_ns,
                value: insert(),
            },
        );
    }

    fn value(&self, key: &K) -> Option<&V> {
        self.entries.get(key).map(|e| &e.value)
    }

    fn remove(&mut self, key: &K) -> bool {
        self.entries.remove(key).is_some()
    }

    fn len(&self) -> usize {
        self.entries.len()
    }
}

/// Serializes a map as a sequence of `(key, value)` pairs, so struct keys
/// work in formats (like JSON) whose map keys must be strings.
mod entries_as_seq {
    use std::collections::BTreeMap;

    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub(super) fn serialize<S, K, V>(map: &BTreeMap<K, V>, s: S) -> Result<S::Ok, S::Error>
    where
        S: Serializer,
        K: Serialize,
        V: Serialize,
    {
        s.collect_seq(map.iter())
    }

    pub(super) fn deserialize<'de, D, K, V>(d: D) -> Result<BTreeMap<K, V>, D::Error>
    where
        D: Deserializer<'de>,
        K: Deserialize<'de> + Ord,
        V: Deserialize<'de>,
    {
        let pairs = Vec::<(K, V)>::deserialize(d)?;
        Ok(pairs.into_iter().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;
    const S: u64 = 1_000_000_000;

    fn edge(peer: u64, site: u32) -> NodeSiteId {
        NodeSiteId::new(PeerId::new(peer), SiteId::new(site))
    }

    fn chain(id: u64, hop: u8) -> Option<ChainContext> {
        Some(ChainContext {
            chain_id: id,
            hop_index: hop,
        })
    }

    fn tracker(config: RttConfig) -> RttTracker {
        RttTracker::new(config).unwrap()
    }

    /// A config with no budget clamping, to check raw EMA arithmetic.
    fn unclamped() -> RttConfig {
        RttConfig {
            min_budget_ns: 0,
            max_budget_ns: u64::MAX,
            ..RttConfig::default()
        }
    }

    #[test]
    fn chain_id_is_fnv1a_64() {
        // Published FNV-1a 64 test vectors.
        assert_eq!(chain_id_from_targets(""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(chain_id_from_targets("a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(chain_id_from_targets("foobar"), 0x8594_4171_f739_67e8);
        assert_ne!(
            chain_id_from_targets("peer:1,peer:2"),
            chain_id_from_targets("peer:2,peer:1")
        );
    }

    #[test]
    fn first_sample_sets_srtt_and_half_rttvar() {
        let e = RttEstimate::first(100);
        assert_eq!((e.srtt_ns, e.rttvar_ns, e.samples), (100, 50, 1));
        assert_eq!(e.budget_ns(), 300);
    }

    #[test]
    fn later_samples_follow_rfc6298_with_old_srtt() {
        let mut e = RttEstimate::first(100);
        e.observe(200);
        // rttvar = (3*50 + |100-200|)/4 = 62 (62.5 truncated); srtt = (700+200)/8 = 112.
        assert_eq!((e.srtt_ns, e.rttvar_ns, e.samples), (112, 62, 2));
        assert_eq!(e.budget_ns(), 112 + 4 * 62);
        e.observe(112);
        // rttvar = (186 + 0)/4 = 46; srtt = (784 + 112)/8 = 112.
        assert_eq!((e.srtt_ns, e.rttvar_ns), (112, 46));
    }

    #[test]
    fn extreme_samples_do_not_overflow() {
        let mut e = RttEstimate::first(u64::MAX);
        assert_eq!(e.budget_ns(), u64::MAX, "saturates");
        e.observe(u64::MAX);
        assert_eq!(e.srtt_ns, u64::MAX);
        e.observe(0);
        assert!(e.srtt_ns < u64::MAX);
        let mut zero = RttEstimate::first(0);
        zero.observe(0);
        assert_eq!(zero.budget_ns(), 0);
    }

    #[test]
    fn empty_tracker_returns_static_default_unclamped() {
        let t = RttTracker::default();
        assert_eq!(t.tier(edge(1, 1), chain(1, 0)), RttTier::Static);
        assert_eq!(t.estimate_budget_ns(edge(1, 1), chain(1, 0), 5), 5);
        assert_eq!(t.estimate_budget_ns(edge(1, 1), None, u64::MAX), u64::MAX);
    }

    #[test]
    fn fallback_walks_edge_site_chain_global() {
        let mut t = tracker(unclamped());
        t.observe_round_trip(edge(1, 1), chain(7, 0), 10 * MS, 1);
        t.observe_round_trip(edge(2, 1), None, 30 * MS, 2);

        // Edge: the exact target, one 10 ms sample -> 10 + 4*5.
        assert_eq!(t.tier(edge(1, 1), chain(7, 0)), RttTier::Edge);
        assert_eq!(t.estimate_budget_ns(edge(1, 1), chain(7, 0), 0), 30 * MS);
        // Site: unknown peer on site 1, which pooled 10 then 30 ms:
        // rttvar = (3*5 + 20)/4 = 8.75 ms, srtt = (70 + 30)/8 = 12.5 ms.
        assert_eq!(t.tier(edge(9, 1), None), RttTier::Site);
        assert_eq!(t.estimate_budget_ns(edge(9, 1), None, 0), 47_500_000);
        // Chain: unknown site, known chain position (only the 10 ms sample).
        assert_eq!(t.tier(edge(9, 9), chain(7, 0)), RttTier::Chain);
        assert_eq!(t.estimate_budget_ns(edge(9, 9), chain(7, 0), 0), 30 * MS);
        // Global: another hop of the chain, or no chain at all.
        assert_eq!(t.tier(edge(9, 9), chain(7, 1)), RttTier::Global);
        assert_eq!(t.tier(edge(9, 9), None), RttTier::Global);
        assert_eq!(t.estimate_budget_ns(edge(9, 9), None, 0), 47_500_000);
        // The edge tier wins even when the chain has data.
        assert_eq!(t.tier(edge(2, 1), chain(7, 0)), RttTier::Edge);
        assert_eq!(t.stats().round_trips, 2);
        assert_eq!(t.stats().chains, 1, "no chain context, no chain sample");
    }

    #[test]
    fn budget_is_clamped_to_configured_range() {
        let mut t = tracker(RttConfig {
            min_budget_ns: 5 * MS,
            max_budget_ns: 2 * S,
            ..RttConfig::default()
        });
        t.observe_round_trip(edge(1, 1), None, 1, 0);
        assert_eq!(t.estimate_budget_ns(edge(1, 1), None, 0), 5 * MS);
        t.observe_round_trip(edge(2, 2), None, 10 * S, 0);
        assert_eq!(t.estimate_budget_ns(edge(2, 2), None, 0), 2 * S);
        t.observe_round_trip(edge(3, 3), None, 100 * MS, 0);
        assert_eq!(t.estimate_budget_ns(edge(3, 3), None, 0), 300 * MS);
    }

    #[test]
    fn restored_inverted_budget_range_does_not_panic() {
        let mut t = RttTracker::default();
        t.observe_round_trip(edge(1, 1), None, 10 * MS, 0);
        let mut json: serde_json::Value = serde_json::to_value(&t).unwrap();
        json["config"]["min_budget_ns"] = 9.into();
        json["config"]["max_budget_ns"] = 5.into();
        let back: RttTracker = serde_json::from_value(json).unwrap();
        assert_eq!(back.estimate_budget_ns(edge(1, 1), None, 0), 5, "max wins");
    }

    #[test]
    fn invalid_configs_are_refused() {
        let bad_range = RttConfig {
            min_budget_ns: 2,
            max_budget_ns: 1,
            ..RttConfig::default()
        };
        assert_eq!(
            RttTracker::new(bad_range).unwrap_err(),
            RttConfigError::BudgetRange { min: 2, max: 1 }
        );
        for (suspect, down) in [
            (9.0, 8.0),
            (0.0, 8.0),
            (3.0, f64::NAN),
            (3.0, f64::INFINITY),
        ] {
            let cfg = RttConfig {
                suspect_phi: suspect,
                down_phi: down,
                ..RttConfig::default()
            };
            assert!(
                matches!(
                    RttTracker::new(cfg),
                    Err(RttConfigError::PhiThresholds { .. })
                ),
                "{suspect} {down}"
            );
        }
        for (window, min_samples) in [(0, 0), (4, 0), (4, 5)] {
            let cfg = RttConfig {
                heartbeat_window: window,
                min_heartbeat_samples: min_samples,
                ..RttConfig::default()
            };
            assert_eq!(
                RttTracker::new(cfg).unwrap_err(),
                RttConfigError::HeartbeatWindow {
                    window,
                    min_samples
                }
            );
        }
        assert!(RttTracker::new(RttConfig::default()).is_ok());
    }

    #[test]
    fn edge_cap_evicts_least_recently_updated_and_counts() {
        let mut t = tracker(RttConfig {
            max_edges: 2,
            ..unclamped()
        });
        t.observe_round_trip(edge(1, 1), None, 10, 1);
        t.observe_round_trip(edge(2, 1), None, 10, 2);
        t.observe_round_trip(edge(1, 1), None, 10, 3); // refresh edge 1
        t.observe_round_trip(edge(3, 1), None, 10, 4); // evicts edge 2
        assert_eq!(t.stats().edges, 2);
        assert_eq!(t.stats().edge_evictions, 1);
        assert_eq!(t.tier(edge(1, 1), None), RttTier::Edge);
        assert_eq!(t.tier(edge(3, 1), None), RttTier::Edge);
        assert_eq!(
            t.tier(edge(2, 1), None),
            RttTier::Site,
            "evicted edge falls back"
        );
    }

    #[test]
    fn eviction_ties_remove_smallest_key() {
        let mut t = tracker(RttConfig {
            max_sites: 2,
            ..unclamped()
        });
        t.observe_round_trip(edge(1, 5), None, 10, 7);
        t.observe_round_trip(edge(1, 3), None, 10, 7);
        t.observe_round_trip(edge(1, 9), None, 10, 8);
        assert_eq!(t.stats().site_evictions, 1);
        assert!(t.sites.value(&SiteId::new(3)).is_none());
        assert!(t.sites.value(&SiteId::new(5)).is_some());
    }

    #[test]
    fn chain_cap_evicts_and_zero_cap_disables_tier() {
        let mut t = tracker(RttConfig {
            max_chains: 1,
            max_edges: 0,
            ..unclamped()
        });
        t.observe_round_trip(edge(1, 1), chain(1, 0), 10, 1);
        t.observe_round_trip(edge(1, 1), chain(2, 0), 10, 2);
        assert_eq!(t.stats().chain_evictions, 1);
        assert_eq!(t.stats().chains, 1);
        assert_eq!(t.tier(edge(9, 9), chain(1, 0)), RttTier::Global);
        assert_eq!(t.tier(edge(9, 9), chain(2, 0)), RttTier::Chain);
        assert_eq!(t.stats().edges, 0);
        assert_eq!(t.stats().edge_evictions, 0);
        assert_eq!(
            t.tier(edge(1, 1), None),
            RttTier::Site,
            "edge tier disabled"
        );
    }

    #[test]
    fn unknown_peer_has_zero_phi_and_is_live() {
        let t = RttTracker::default();
        assert_eq!(t.phi(PeerId::new(1), u64::MAX), 0.0);
        assert_eq!(t.liveness(PeerId::new(1), u64::MAX), Liveness::Live);
    }

    #[test]
    fn phi_at_the_mean_is_log10_two() {
        let mut t = RttTracker::default();
        let p = PeerId::new(1);
        t.heartbeat(p, 0);
        // Bootstrap: mean 1 s. At exactly the mean, P(later) = 1/2.
        let phi = t.phi(p, S);
        assert!((phi - 2f64.log10()).abs() < 1e-9, "{phi}");
    }

    #[test]
    fn bootstrap_distribution_moves_live_suspect_down() {
        // Bootstrap mean 1 s, sigma 250 ms (above the 100 ms floor).
        let mut t = RttTracker::default();
        let p = PeerId::new(4);
        t.heartbeat(p, 10 * S);
        let at = |secs_x10: u64| 10 * S + secs_x10 * S / 10;
        assert_eq!(t.liveness(p, at(0)), Liveness::Live);
        assert_eq!(t.liveness(p, at(15)), Liveness::Live); // y = 2, phi ~ 1.6
        assert_eq!(t.liveness(p, at(20)), Liveness::Suspect); // y = 4, phi ~ 4.7
        assert_eq!(t.liveness(p, at(25)), Liveness::Down); // y = 6, phi ~ 10.8
        let phi_2s = t.phi(p, at(20));
        assert!((4.5..5.0).contains(&phi_2s), "{phi_2s}");
    }

    #[test]
    fn phi_grows_with_silence_and_resets_on_heartbeat() {
        let mut t = RttTracker::default();
        let p = PeerId::new(2);
        for i in 0..10 {
            t.heartbeat(p, i * 500 * MS);
        }
        let last = 9 * 500 * MS;
        let mut prev = -1.0;
        for step in 0..40 {
            let phi = t.phi(p, last + step * 50 * MS);
            assert!(phi >= prev, "phi must not decrease with silence");
            prev = phi;
        }
        assert_eq!(t.liveness(p, last + 2 * S), Liveness::Down);
        t.heartbeat(p, last + 2 * S);
        assert_eq!(t.liveness(p, last + 2 * S), Liveness::Live);
    }

    #[test]
    fn zero_variance_is_guarded_by_the_floor() {
        let mut t = tracker(RttConfig {
            min_std_dev_ns: 0,
            ..RttConfig::default()
        });
        let p = PeerId::new(3);
        for i in 0..8 {
            t.heartbeat(p, i * 100 * MS);
        }
        let last = 7 * 100 * MS;
        // sigma floors at 1 ns: just past the mean is already infinite suspicion.
        let before = t.phi(p, last + 100 * MS - 1_000);
        assert!(before.is_finite() && before < 1.0, "{before}");
        let after = t.phi(p, last + 101 * MS);
        assert!(!after.is_nan());
        assert!(after > 8.0, "{after}");
        assert_eq!(t.liveness(p, last + 101 * MS), Liveness::Down);
        assert_eq!(t.phi(p, u64::MAX), f64::INFINITY);
    }

    #[test]
    fn too_few_samples_use_bootstrap_not_history() {
        let mut t = tracker(RttConfig {
            min_heartbeat_samples: 3,
            ..RttConfig::default()
        });
        let p = PeerId::new(5);
        // Two 10 ms intervals: history alone would make 1 s of silence "Down".
        t.heartbeat(p, 0);
        t.heartbeat(p, 10 * MS);
        t.heartbeat(p, 20 * MS);
        assert_eq!(t.liveness(p, 20 * MS + S), Liveness::Live);
        // A third interval switches to the window's own statistics.
        t.heartbeat(p, 30 * MS);
        assert_eq!(t.liveness(p, 30 * MS + S), Liveness::Down);
    }

    #[test]
    fn window_keeps_only_recent_intervals() {
        let mut t = tracker(RttConfig {
            heartbeat_window: 4,
            min_heartbeat_samples: 1,
            min_std_dev_ns: MS,
            ..RttConfig::default()
        });
        let p = PeerId::new(6);
        let mut now = 0;
        t.heartbeat(p, now);
        for _ in 0..10 {
            now += 10 * S;
            t.heartbeat(p, now);
        }
        for _ in 0..4 {
            now += 100 * MS;
            t.heartbeat(p, now);
        }
        let h = t.peers.value(&p).unwrap();
        assert_eq!(h.intervals, [100 * MS; 4]);
        // With the 10 s intervals forgotten, 1 s of silence is Down.
        assert_eq!(t.liveness(p, now + S), Liveness::Down);
    }

    #[test]
    fn out_of_order_heartbeat_is_ignored_and_counted() {
        let mut t = RttTracker::default();
        let p = PeerId::new(7);
        t.heartbeat(p, 100);
        t.heartbeat(p, 50);
        let h = t.peers.value(&p).unwrap();
        assert_eq!(h.last_ns, 100);
        assert!(h.intervals.is_empty());
        assert_eq!(t.stats().stale_heartbeats, 1);
    }

    #[test]
    fn peer_cap_evicts_and_forget_removes() {
        let mut t = tracker(RttConfig {
            max_peers: 2,
            ..RttConfig::default()
        });
        t.heartbeat(PeerId::new(1), 1);
        t.heartbeat(PeerId::new(2), 2);
        t.heartbeat(PeerId::new(3), 3);
        assert_eq!(t.stats().peers, 2);
        assert_eq!(t.stats().peer_evictions, 1);
        assert!(!t.forget_peer(PeerId::new(1)), "peer 1 was evicted");
        assert!(t.forget_peer(PeerId::new(2)));
        assert!(!t.forget_peer(PeerId::new(2)));
        assert_eq!(t.stats().peers, 1);
        assert_eq!(t.phi(PeerId::new(2), 10 * S), 0.0);
    }

    #[test]
    fn snapshot_round_trip_keeps_estimates_and_heartbeats() {
        let mut t = tracker(RttConfig {
            max_edges: 2,
            ..RttConfig::default()
        });
        t.observe_round_trip(edge(1, 1), chain(3, 2), 40 * MS, 1);
        t.observe_round_trip(edge(2, 1), None, 20 * MS, 2);
        t.observe_round_trip(edge(3, 2), None, 60 * MS, 3);
        for i in 0..5 {
            t.heartbeat(PeerId::new(1), i * S);
        }
        let json = serde_json::to_string(&t).unwrap();
        let from_json: RttTracker = serde_json::from_str(&json).unwrap();
        let bytes = postcard::to_allocvec(&t).unwrap();
        let from_postcard: RttTracker = postcard::from_bytes(&bytes).unwrap();
        for back in [from_json, from_postcard] {
            assert_eq!(back.stats(), t.stats());
            assert_eq!(back.config(), t.config());
            for (target, ch) in [
                (edge(1, 1), chain(3, 2)),
                (edge(9, 1), None),
                (edge(9, 9), chain(3, 2)),
            ] {
                assert_eq!(back.estimate(target, ch), t.estimate(target, ch));
            }
            assert_eq!(
                back.phi(PeerId::new(1), 6 * S),
                t.phi(PeerId::new(1), 6 * S)
            );
        }
    }
}
