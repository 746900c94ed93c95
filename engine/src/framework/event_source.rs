//! `EventSource`: which ops listen to which bus event kinds, for the
//! `EventSource` syscall and bus routing.
//!
//! Invariants:
//! * A kind's subscribers are distinct and listed in subscription order;
//!   subscribing twice is a counted no-op.
//! * No kind has an empty subscriber list: the last unsubscribe removes
//!   the kind, so memory tracks live subscriptions.
//! * At most [`EventSourceConfig::max_kinds`] kinds have subscribers and
//!   each has at most [`EventSourceConfig::max_subscribers_per_kind`];
//!   refusals are typed and counted.

use super::bump;
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::ids::{EventKind, OpRef, SiteId};

/// Subscriptions of ops to bus event kinds.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventSource {
    config: EventSourceConfig,
    subscribers: BTreeMap<EventKind, Vec<OpRef>>,
    stats: EventSourceStats,
}

/// Caps of an [`EventSource`]; [`Default`] gives the documented values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventSourceConfig {
    /// Most kinds with at least one subscriber. Default 256.
    pub max_kinds: usize,
    /// Most subscribers of one kind. Default 1024.
    pub max_subscribers_per_kind: usize,
}

/// Counters of an [`EventSource`]; all saturate at `u64::MAX`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventSourceStats {
    /// Subscriptions added.
    pub subscribed: u64,
    /// Subscribe calls for a subscription that already existed.
    pub duplicate_subscribes: u64,
    /// Subscriptions removed (by either unsubscribe method).
    pub unsubscribed: u64,
    /// Subscribes refused because `max_kinds` kinds were in use.
    pub refused_too_many_kinds: u64,
    /// Subscribes refused because the kind had `max_subscribers_per_kind`.
    pub refused_too_many_subscribers: u64,
}

/// Why [`EventSource::subscribe`] refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EventSourceError {
    /// `max_kinds` kinds have subscribers and this kind is new.
    #[error("cannot subscribe to {kind}: {max_kinds} event kinds already have subscribers; raise max_kinds")]
    TooManyKinds {
        /// The kind asked for.
        kind: EventKind,
        /// The cap.
        max_kinds: usize,
    },
    /// The kind already has `max_subscribers_per_kind` subscribers.
    #[error("cannot subscribe to {kind}: it already has {max_subscribers} subscribers; raise max_subscribers_per_kind")]
    TooManySubscribers {
        /// The kind asked for.
        kind: EventKind,
        /// The cap.
        max_subscribers: usize,
    },
}

impl EventSource {
    /// No subscriptions, under `config`.
    pub fn new(config: EventSourceConfig) -> Self {
        Self {
            config,
            subscribers: BTreeMap::new(),
            stats: EventSourceStats::default(),
        }
    }

    /// Subscribes `op` to `kind`. Returns `Ok(true)` when added and
    /// `Ok(false)` when `op` was already subscribed (nothing changes).
    pub fn subscribe(&mut self, kind: EventKind, op: OpRef) -> Result<bool, EventSourceError> {
        if !self.subscribers.contains_key(&kind) && self.subscribers.len() >= self.config.max_kinds
        {
            bump(&mut self.stats.refused_too_many_kinds);
            return Err(EventSourceError::TooManyKinds {
                kind,
                max_kinds: self.config.max_kinds,
            });
        }
        let list = self.subscribers.entry(kind).or_default();
        if list.contains(&op) {
            bump(&mut self.stats.duplicate_subscribes);
            return Ok(false);
        }
        if list.len() >= self.config.max_subscribers_per_kind {
            if list.is_empty() {
                self.subscribers.remove(&kind);
            }
            bump(&mut self.stats.refused_too_many_subscribers);
            return Err(EventSourceError::TooManySubscribers {
                kind,
                max_subscribers: self.config.max_subscribers_per_kind,
            });
        }
        list.push(op);
        bump(&mut self.stats.subscribed);
        Ok(true)
    }

    /// Removes `op`'s subscription to `kind`; returns whether it existed.
    pub fn unsubscribe(&mut self, kind: EventKind, op: OpRef) -> bool {
        let Some(list) = self.subscribers.get_mut(&kind) else {
            return false;
        };
        let Some(at) = list.iter().position(|o| *o == op) else {
            return false;
        };
        list.remove(at);
        if list.is_empty() {
            self.subscribers.remove(&kind);
        }
        bump(&mut self.stats.unsubscribed);
        true
    }

    /// Removes every subscription of every op of graph `site` (when the
    /// graph is uninstalled); returns how many were removed.
    pub fn unsubscribe_site(&mut self, site: SiteId) -> usize {
        let mut removed = 0;
        self.subscribers.retain(|_, list| {
            let before = list.len();
            list.retain(|op| op.site != site);
            removed += before - list.len();
            !list.is_empty()
        });
        self.stats.unsubscribed = self.stats.unsubscribed.saturating_add(removed as u64);
        removed
    }

    /// The ops subscribed to `kind`, in subscription order.
    pub fn subscribers(&self, kind: EventKind) -> &[OpRef] {
        self.subscribers.get(&kind).map_or(&[], Vec::as_slice)
    }

    /// The kinds with at least one subscriber, ascending.
    pub fn kinds(&self) -> impl Iterator<Item = EventKind> + '_ {
        self.subscribers.keys().copied()
    }

    /// Number of kinds with at least one subscriber.
    pub fn kind_count(&self) -> usize {
        self.subscribers.len()
    }

    /// The caps in force.
    pub fn config(&self) -> &EventSourceConfig {
        &self.config
    }

    /// The counters so far.
    pub fn stats(&self) -> &EventSourceStats {
        &self.stats
    }
}

impl Default for EventSourceConfig {
    fn default() -> Self {
        Self {
            max_kinds: 256,
            max_subscribers_per_kind: 1024,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(site: u32, index: u32) -> OpRef {
        OpRef::new(SiteId::new(site), index)
    }

    fn small(max_kinds: usize, max_subscribers_per_kind: usize) -> EventSource {
        EventSource::new(EventSourceConfig {
            max_kinds,
            max_subscribers_per_kind,
        })
    }

    const K1: EventKind = EventKind::new(1);
    const K2: EventKind = EventKind::new(2);
    const K3: EventKind = EventKind::new(3);

    #[test]
    fn subscribers_keep_subscription_order_and_dedup() {
        let mut es = EventSource::default();
        assert_eq!(es.subscribe(K1, op(0, 5)), Ok(true));
        assert_eq!(es.subscribe(K1, op(0, 1)), Ok(true));
        assert_eq!(es.subscribe(K1, op(0, 5)), Ok(false));
        assert_eq!(es.subscribers(K1), [op(0, 5), op(0, 1)]);
        assert_eq!(es.stats().subscribed, 2);
        assert_eq!(es.stats().duplicate_subscribes, 1);
        assert!(es.subscribers(K2).is_empty());
    }

    #[test]
    fn last_unsubscribe_removes_kind() {
        let mut es = EventSource::default();
        es.subscribe(K1, op(0, 1)).unwrap();
        es.subscribe(K1, op(0, 2)).unwrap();
        assert!(es.unsubscribe(K1, op(0, 1)));
        assert!(!es.unsubscribe(K1, op(0, 1)));
        assert!(!es.unsubscribe(K2, op(0, 1)));
        assert_eq!(es.subscribers(K1), [op(0, 2)]);
        assert!(es.unsubscribe(K1, op(0, 2)));
        assert_eq!(es.kind_count(), 0);
        assert_eq!(es.stats().unsubscribed, 2);
    }

    #[test]
    fn kind_cap_refuses_new_kinds_only() {
        let mut es = small(2, 4);
        es.subscribe(K1, op(0, 1)).unwrap();
        es.subscribe(K2, op(0, 1)).unwrap();
        assert_eq!(
            es.subscribe(K3, op(0, 1)),
            Err(EventSourceError::TooManyKinds {
                kind: K3,
                max_kinds: 2
            })
        );
        assert_eq!(es.stats().refused_too_many_kinds, 1);
        assert_eq!(es.subscribe(K1, op(0, 2)), Ok(true));
        // A duplicate on an existing kind is still fine at the cap.
        assert_eq!(es.subscribe(K2, op(0, 1)), Ok(false));
        assert_eq!(es.kinds().collect::<Vec<_>>(), [K1, K2]);
    }

    #[test]
    fn subscriber_cap_refuses_and_counts() {
        let mut es = small(4, 2);
        es.subscribe(K1, op(0, 1)).unwrap();
        es.subscribe(K1, op(0, 2)).unwrap();
        assert_eq!(
            es.subscribe(K1, op(0, 3)),
            Err(EventSourceError::TooManySubscribers {
                kind: K1,
                max_subscribers: 2
            })
        );
        assert_eq!(es.stats().refused_too_many_subscribers, 1);
        assert_eq!(es.subscribers(K1).len(), 2);
    }

    #[test]
    fn zero_subscriber_cap_leaves_no_empty_kind() {
        let mut es = small(4, 0);
        assert!(es.subscribe(K1, op(0, 1)).is_err());
        assert_eq!(es.kind_count(), 0);
    }

    #[test]
    fn unsubscribe_site_drops_only_that_site() {
        let mut es = EventSource::default();
        es.subscribe(K1, op(1, 0)).unwrap();
        es.subscribe(K1, op(2, 0)).unwrap();
        es.subscribe(K2, op(1, 3)).unwrap();
        assert_eq!(es.unsubscribe_site(SiteId::new(1)), 2);
        assert_eq!(es.subscribers(K1), [op(2, 0)]);
        assert_eq!(es.kind_count(), 1);
        assert_eq!(es.stats().unsubscribed, 2);
    }

    #[test]
    fn serde_round_trip_keeps_state() {
        let mut es = EventSource::default();
        es.subscribe(K2, op(1, 2)).unwrap();
        es.subscribe(K1, op(3, 4)).unwrap();
        let json = serde_json::to_string(&es).unwrap();
        let back: EventSource = serde_json::from_str(&json).unwrap();
        assert_eq!(back, es);
        assert_eq!(back.subscribers(K1), [op(3, 4)]);
    }
}
