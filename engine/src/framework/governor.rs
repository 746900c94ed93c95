//! `PeerGovernor`: decides whether a peer may be talked to, from a
//! blocklist, an optional allowlist and the peer's observed health.
//!
//! [`PeerGovernor::admit`] checks, in this order: blocked → refused
//! [`Refusal::Blocked`]; allowlist mode on and peer not listed → refused
//! [`Refusal::NotAllowed`]; peer down → refused [`Refusal::Down`]. Every
//! refusal is counted by reason.
//!
//! Health: a peer goes down when its consecutive failures reach the
//! threshold ([`HealthTransition::WentDown`] is reported exactly once), and
//! comes back up on its next success ([`HealthTransition::CameUp`]).
//!
//! Invariants:
//! * The blocklist and allowlist each hold at most their cap; adding a new
//!   peer beyond it is refused with a typed [`GovernorError`] and counted.
//! * The health table holds at most `max_tracked` peers and only peers with
//!   failures (a success removes the entry). Tracking a new peer at the cap
//!   evicts the up peer whose last failure is oldest (ties: lowest
//!   `PeerId`); if every tracked peer is down, the new peer is left
//!   untracked instead, so a down peer is never forgotten. Both outcomes
//!   are counted.
//! * A failure threshold of 0 behaves as 1.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::ids::PeerId;

/// Consecutive failures after which a peer is down, by default.
pub const GOVERNOR_DEFAULT_FAILURE_THRESHOLD: u32 = 3;
/// Default cap on each of the blocklist, allowlist and health table.
pub const GOVERNOR_DEFAULT_SET_CAP: usize = 4_096;

/// Tuning for a [`PeerGovernor`]; [`Default`] gives threshold 3 and 4096
/// entries per set.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GovernorConfig {
    /// Consecutive failures that take a peer down (0 behaves as 1).
    pub failure_threshold: u32,
    /// Cap on the blocklist.
    pub max_blocked: usize,
    /// Cap on the allowlist.
    pub max_allowed: usize,
    /// Cap on the health table.
    pub max_tracked: usize,
}

/// A change in a peer's health, reported once per change.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum HealthTransition {
    /// The peer reached the failure threshold and is now down.
    WentDown(PeerId),
    /// A down peer succeeded and is up again.
    CameUp(PeerId),
}

/// Why [`PeerGovernor::admit`] refused a peer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    /// The peer is on the blocklist.
    #[error("peer is blocklisted; unblock it to talk to it")]
    Blocked,
    /// Allowlist mode is on and the peer is not on the allowlist.
    #[error("peer is not on the allowlist; allow it or turn allowlist mode off")]
    NotAllowed,
    /// The peer is down after repeated failures.
    #[error("peer is down after repeated failures; it is admitted again after a success")]
    Down,
}

/// Why a blocklist or allowlist change was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GovernorError {
    /// The blocklist is at its cap.
    #[error("cannot block {peer}: blocklist is full ({cap} peers); unblock some or raise the cap")]
    BlocklistFull {
        /// The peer that was not added.
        peer: PeerId,
        /// The blocklist cap.
        cap: usize,
    },
    /// The allowlist is at its cap.
    #[error(
        "cannot allow {peer}: allowlist is full ({cap} peers); disallow some or raise the cap"
    )]
    AllowlistFull {
        /// The peer that was not added.
        peer: PeerId,
        /// The allowlist cap.
        cap: usize,
    },
}

/// Counters a [`PeerGovernor`] keeps over its lifetime (all saturating).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GovernorStats {
    /// Peers admitted.
    pub admitted: u64,
    /// Refusals with [`Refusal::Blocked`].
    pub refused_blocked: u64,
    /// Refusals with [`Refusal::NotAllowed`].
    pub refused_not_allowed: u64,
    /// Refusals with [`Refusal::Down`].
    pub refused_down: u64,
    /// [`HealthTransition::WentDown`] reported.
    pub went_down: u64,
    /// [`HealthTransition::CameUp`] reported.
    pub came_up: u64,
    /// Blocks refused with [`GovernorError::BlocklistFull`].
    pub blocklist_full: u64,
    /// Allows refused with [`GovernorError::AllowlistFull`].
    pub allowlist_full: u64,
    /// Up peers evicted from the full health table.
    pub health_evicted: u64,
    /// Failures not tracked because the health table was full of down peers.
    pub health_untracked: u64,
}

/// Peer policy (block/allow lists) and health in one place.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PeerGovernor {
    config: GovernorConfig,
    blocked: BTreeSet<PeerId>,
    allowed: BTreeSet<PeerId>,
    allowlist_mode: bool,
    health: BTreeMap<PeerId, Health>,
    stats: GovernorStats,
}

impl Default for GovernorConfig {
    fn default() -> Self {
        Self {
            failure_threshold: GOVERNOR_DEFAULT_FAILURE_THRESHOLD,
            max_blocked: GOVERNOR_DEFAULT_SET_CAP,
            max_allowed: GOVERNOR_DEFAULT_SET_CAP,
            max_tracked: GOVERNOR_DEFAULT_SET_CAP,
        }
    }
}

impl Default for PeerGovernor {
    fn default() -> Self {
        Self::new(GovernorConfig::default())
    }
}

impl PeerGovernor {
    /// A governor with empty lists, allowlist mode off, every peer up.
    pub fn new(config: GovernorConfig) -> Self {
        Self {
            config,
            blocked: BTreeSet::new(),
            allowed: BTreeSet::new(),
            allowlist_mode: false,
            health: BTreeMap::new(),
            stats: GovernorStats::default(),
        }
    }

    /// Whether `peer` may be talked to now; refusals are counted by reason.
    pub fn admit(&mut self, peer: PeerId) -> Result<(), Refusal> {
        let refusal = if self.blocked.contains(&peer) {
            Refusal::Blocked
        } else if self.allowlist_mode && !self.allowed.contains(&peer) {
            Refusal::NotAllowed
        } else if self.is_down(peer) {
            Refusal::Down
        } else {
            self.stats.admitted = self.stats.admitted.saturating_add(1);
            return Ok(());
        };
        let counter = match refusal {
            Refusal::Blocked => &mut self.stats.refused_blocked,
            Refusal::NotAllowed => &mut self.stats.refused_not_allowed,
            Refusal::Down => &mut self.stats.refused_down,
        };
        *counter = counter.saturating_add(1);
        Err(refusal)
    }

    /// Records a failure with `peer`; returns [`HealthTransition::WentDown`]
    /// when this failure reaches the threshold (only on that failure).
    pub fn record_failure(&mut self, peer: PeerId, now_ns: u64) -> Option<HealthTransition> {
        let threshold = self.config.failure_threshold.max(1);
        let health = self.health_entry(peer)?;
        health.failures = health.failures.saturating_add(1);
        health.last_failure_ns = now_ns;
        if health.down || health.failures < threshold {
            return None;
        }
        health.down = true;
        health.changed_at_ns = now_ns;
        self.stats.went_down = self.stats.went_down.saturating_add(1);
        Some(HealthTransition::WentDown(peer))
    }

    /// Records a success with `peer`, clearing its failures; returns
    /// [`HealthTransition::CameUp`] if it was down. The time is taken for
    /// symmetry with [`PeerGovernor::record_failure`]; a healthy peer keeps
    /// no entry, so nothing about it is stored.
    pub fn record_success(&mut self, peer: PeerId, _now_ns: u64) -> Option<HealthTransition> {
        let health = self.health.remove(&peer)?;
        if !health.down {
            return None;
        }
        self.stats.came_up = self.stats.came_up.saturating_add(1);
        Some(HealthTransition::CameUp(peer))
    }

    /// Puts `peer` on the blocklist (idempotent).
    pub fn block(&mut self, peer: PeerId) -> Result<(), GovernorError> {
        if self.blocked.contains(&peer) {
            return Ok(());
        }
        if self.blocked.len() >= self.config.max_blocked {
            self.stats.blocklist_full = self.stats.blocklist_full.saturating_add(1);
            return Err(GovernorError::BlocklistFull {
                peer,
                cap: self.config.max_blocked,
            });
        }
        self.blocked.insert(peer);
        Ok(())
    }

    /// Takes `peer` off the blocklist; returns whether it was on it.
    pub fn unblock(&mut self, peer: PeerId) -> bool {
        self.blocked.remove(&peer)
    }

    /// Puts `peer` on the allowlist (idempotent).
    pub fn allow(&mut self, peer: PeerId) -> Result<(), GovernorError> {
        if self.allowed.contains(&peer) {
            return Ok(());
        }
        if self.allowed.len() >= self.config.max_allowed {
            self.stats.allowlist_full = self.stats.allowlist_full.saturating_add(1);
            return Err(GovernorError::AllowlistFull {
                peer,
                cap: self.config.max_allowed,
            });
        }
        self.allowed.insert(peer);
        Ok(())
    }

    /// Takes `peer` off the allowlist; returns whether it was on it.
    pub fn disallow(&mut self, peer: PeerId) -> bool {
        self.allowed.remove(&peer)
    }

    /// Turns allowlist mode on (only listed peers pass) or off.
    pub fn set_allowlist_mode(&mut self, on: bool) {
        self.allowlist_mode = on;
    }

    /// Whether allowlist mode is on.
    pub fn allowlist_mode(&self) -> bool {
        self.allowlist_mode
    }

    /// Whether `peer` is blocklisted.
    pub fn is_blocked(&self, peer: PeerId) -> bool {
        self.blocked.contains(&peer)
    }

    /// Whether `peer` is on the allowlist.
    pub fn is_allowed(&self, peer: PeerId) -> bool {
        self.allowed.contains(&peer)
    }

    /// Whether `peer` is down.
    pub fn is_down(&self, peer: PeerId) -> bool {
        self.health.get(&peer).is_some_and(|health| health.down)
    }

    /// Consecutive failures recorded for `peer` since its last success.
    pub fn consecutive_failures(&self, peer: PeerId) -> u32 {
        self.health.get(&peer).map_or(0, |health| health.failures)
    }

    /// When `peer` last went down, if it is down.
    pub fn down_since(&self, peer: PeerId) -> Option<u64> {
        self.health
            .get(&peer)
            .filter(|health| health.down)
            .map(|health| health.changed_at_ns)
    }

    /// The configuration in force.
    pub fn config(&self) -> &GovernorConfig {
        &self.config
    }

    /// Lifetime counters.
    pub fn stats(&self) -> GovernorStats {
        self.stats
    }

    /// The health entry for `peer`, created (evicting at the cap) if
    /// missing; `None` when the table is full of down peers.
    fn health_entry(&mut self, peer: PeerId) -> Option<&mut Health> {
        if !self.health.contains_key(&peer) && self.health.len() >= self.config.max_tracked {
            let victim = self
                .health
                .iter()
                .filter(|(_, health)| !health.down)
                .min_by_key(|(id, health)| (health.last_failure_ns, **id))
                .map(|(id, _)| *id);
            let Some(victim) = victim else {
                self.stats.health_untracked = self.stats.health_untracked.saturating_add(1);
                return None;
            };
            self.health.remove(&victim);
            self.stats.health_evicted = self.stats.health_evicted.saturating_add(1);
        }
        Some(self.health.entry(peer).or_default())
    }
}

/// Health of one peer that has failed at least once since its last success.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Health {
    failures: u32,
    down: bool,
    last_failure_ns: u64,
    changed_at_ns: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: PeerId = PeerId::new(7);

    fn small(max: usize) -> PeerGovernor {
        PeerGovernor::new(GovernorConfig {
            failure_threshold: 2,
            max_blocked: max,
            max_allowed: max,
            max_tracked: max,
        })
    }

    #[test]
    fn goes_down_once_at_threshold_and_up_on_success() {
        let mut g = PeerGovernor::default();
        assert_eq!(g.record_failure(P, 1), None);
        assert_eq!(g.record_failure(P, 2), None);
        assert_eq!(g.record_failure(P, 3), Some(HealthTransition::WentDown(P)));
        assert_eq!(g.record_failure(P, 4), None, "reported once only");
        assert!(g.is_down(P));
        assert_eq!(g.down_since(P), Some(3));
        assert_eq!(g.consecutive_failures(P), 4);
        assert_eq!(g.record_success(P, 5), Some(HealthTransition::CameUp(P)));
        assert!(!g.is_down(P));
        assert_eq!(g.consecutive_failures(P), 0);
        assert_eq!((g.stats().went_down, g.stats().came_up), (1, 1));
    }

    #[test]
    fn success_while_up_resets_the_count_without_transition() {
        let mut g = PeerGovernor::default();
        g.record_failure(P, 0);
        g.record_failure(P, 0);
        assert_eq!(g.record_success(P, 0), None);
        assert_eq!(g.record_failure(P, 0), None, "count restarted from zero");
        assert_eq!(g.record_success(PeerId::new(99), 0), None);
        assert_eq!(g.stats().came_up, 0);
    }

    #[test]
    fn zero_threshold_behaves_as_one() {
        let mut g = PeerGovernor::new(GovernorConfig {
            failure_threshold: 0,
            ..GovernorConfig::default()
        });
        assert_eq!(g.record_failure(P, 0), Some(HealthTransition::WentDown(P)));
    }

    #[test]
    fn admit_checks_block_then_allowlist_then_health_and_counts() {
        let mut g = small(8);
        assert_eq!(g.admit(P), Ok(()));
        g.record_failure(P, 0);
        g.record_failure(P, 0);
        assert_eq!(g.admit(P), Err(Refusal::Down));
        g.set_allowlist_mode(true);
        assert_eq!(g.admit(P), Err(Refusal::NotAllowed));
        g.block(P).unwrap();
        assert_eq!(g.admit(P), Err(Refusal::Blocked));
        let st = g.stats();
        assert_eq!(
            (
                st.admitted,
                st.refused_down,
                st.refused_not_allowed,
                st.refused_blocked
            ),
            (1, 1, 1, 1)
        );
    }

    #[test]
    fn allowlist_mode_admits_only_listed_peers() {
        let mut g = PeerGovernor::default();
        let other = PeerId::new(8);
        g.allow(P).unwrap();
        assert_eq!(g.admit(other), Ok(()), "mode off: everyone passes");
        g.set_allowlist_mode(true);
        assert!(g.allowlist_mode());
        assert_eq!(g.admit(P), Ok(()));
        assert_eq!(g.admit(other), Err(Refusal::NotAllowed));
        assert!(g.disallow(P));
        assert!(!g.disallow(P));
        assert_eq!(g.admit(P), Err(Refusal::NotAllowed));
    }

    #[test]
    fn unblock_restores_admission() {
        let mut g = PeerGovernor::default();
        g.block(P).unwrap();
        assert!(g.is_blocked(P));
        assert!(g.unblock(P));
        assert!(!g.unblock(P));
        assert_eq!(g.admit(P), Ok(()));
    }

    #[test]
    fn list_caps_refuse_new_peers_with_typed_errors() {
        let mut g = small(1);
        let (a, b) = (PeerId::new(1), PeerId::new(2));
        g.block(a).unwrap();
        g.block(a).unwrap();
        assert_eq!(
            g.block(b),
            Err(GovernorError::BlocklistFull { peer: b, cap: 1 })
        );
        g.allow(a).unwrap();
        assert_eq!(
            g.allow(b),
            Err(GovernorError::AllowlistFull { peer: b, cap: 1 })
        );
        assert!(g.is_allowed(a) && !g.is_allowed(b));
        assert_eq!((g.stats().blocklist_full, g.stats().allowlist_full), (1, 1));
    }

    #[test]
    fn health_cap_evicts_oldest_up_peer() {
        let mut g = small(2);
        let (a, b, c) = (PeerId::new(1), PeerId::new(2), PeerId::new(3));
        g.record_failure(a, 10);
        g.record_failure(b, 20);
        g.record_failure(c, 30);
        assert_eq!(g.consecutive_failures(a), 0, "a was the oldest up entry");
        assert_eq!(g.consecutive_failures(b), 1);
        assert_eq!(g.consecutive_failures(c), 1);
        assert_eq!(g.stats().health_evicted, 1);
    }

    #[test]
    fn health_cap_never_forgets_down_peers() {
        let mut g = small(1);
        let (a, b) = (PeerId::new(1), PeerId::new(2));
        g.record_failure(a, 0);
        g.record_failure(a, 0);
        assert!(g.is_down(a));
        assert_eq!(g.record_failure(b, 1), None);
        assert!(g.is_down(a), "down peer kept");
        assert_eq!(g.consecutive_failures(b), 0);
        assert_eq!(g.stats().health_untracked, 1);
        assert_eq!(g.admit(b), Ok(()));
    }

    #[test]
    fn failure_count_saturates() {
        let mut g = PeerGovernor::default();
        g.record_failure(P, 0);
        if let Some(h) = g.health.get_mut(&P) {
            h.failures = u32::MAX;
            h.down = true;
        }
        assert_eq!(g.record_failure(P, 0), None);
        assert_eq!(g.consecutive_failures(P), u32::MAX);
    }

    #[test]
    fn serde_round_trip() {
        let mut g = small(4);
        g.block(PeerId::new(1)).unwrap();
        g.set_allowlist_mode(true);
        g.record_failure(P, 0);
        g.record_failure(P, 0);
        let mut back: PeerGovernor =
            serde_json::from_str(&serde_json::to_string(&g).unwrap()).unwrap();
        assert!(back.is_blocked(PeerId::new(1)));
        assert!(back.allowlist_mode());
        assert!(back.is_down(P));
        assert_eq!(back.record_success(P, 1), Some(HealthTransition::CameUp(P)));
    }
}
