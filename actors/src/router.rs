//! In-process delivery between Nodes: the [`Router`] maps a [`PeerId`] to
//! that Node's ingress and moves envelopes into it without encoding.
//!
//! # Invariants
//! * [`Router::route`] never blocks: it takes one shard lock for a lookup
//!   and an `Arc` clone, releases it, then pushes on the target's data lane,
//!   which never blocks either. A full lane, an unknown peer or a closed
//!   ingress refuses the envelope and hands it back ([`RouteError`]).
//! * Every route call is counted exactly once, by outcome ([`RouterStats`]).
//! * The table is capped ([`Router::DEFAULT_PEER_CAP`] unless set with
//!   [`Router::with_peer_cap`]); a registration past the cap or for a peer
//!   already present is refused, handed back and counted.
//!
//! * After [`Router::stop_new_work`] (phase 1 of a shutdown) requests and
//!   one-way envelopes are refused with [`RouteError::ShuttingDown`];
//!   responses and back-pressure notices still pass, so work already in
//!   flight can finish.
//!
//! # Why a sharded mutex map
//! Registration is rare (actor spawn/stop) and lookups are frequent and
//! concurrent. The table is split into [`SHARDS`] `Mutex<HashMap>` shards
//! chosen by a hash of the peer id, so actors routing to different peers
//! rarely meet on one lock, and each lock is held only for a hash lookup
//! plus a reference-count increment. Cost: one lock/unlock and two atomic
//! RMWs (the `Arc` clone and its drop) per envelope. A snapshot-on-write
//! `Arc<HashMap>` would avoid the lock on reads but copy the whole table on
//! every registration (quadratic start-up for many Nodes) and still needs
//! a lock or an epoch scheme to swap the snapshot safely.

use std::collections::HashMap;

use nodeflow_engine::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use nodeflow_engine::sync::{Arc, Mutex};
use nodeflow_engine::{Envelope, EnvelopeKind, IngressEvent, IngressQueue, PeerId};

/// Number of shards of the routing table.
pub const SHARDS: usize = 16;

/// One shard of the routing table.
type Shard = Mutex<HashMap<PeerId, Arc<IngressQueue>>>;

/// `PeerId` → ingress table shared by every actor of a process, as `Arc<Router>`.
///
/// Shared state: the shards are written by hosts and actors registering or
/// unregistering and read by every routing actor thread; counters are
/// written by routing threads and read by anyone through [`Router::stats`].
#[derive(Debug)]
pub struct Router {
    shards: Box<[Shard]>,
    cap: usize,
    /// Entries across all shards. Reserved with a `fetch_add` under the
    /// shard lock before inserting and given back on refusal or removal;
    /// `Relaxed`: it guards the cap only, publishes no memory.
    len: AtomicUsize,
    /// Set once by [`Router::stop_new_work`], read by every route.
    /// `Relaxed`: a route that misses the flag delivers into an ingress the
    /// draining Node still empties, so the race loses nothing.
    stopping: AtomicBool,
    counters: RouterCounters,
}

/// Counters of a [`Router`]; all monotonic except `peers`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RouterStats {
    /// Peers registered now.
    pub peers: usize,
    /// Envelopes moved into a target's ingress.
    pub routed: u64,
    /// Envelopes refused: the target's data lane was full.
    pub refused_full: u64,
    /// Envelopes refused: no Node registered for the destination.
    pub refused_unknown_peer: u64,
    /// Envelopes refused: the target's ingress was closed (it is stopping).
    pub refused_closed: u64,
    /// Envelopes refused: the runtime is shutting down and they would
    /// start new work (requests, one-way envelopes).
    pub refused_shutting_down: u64,
    /// Registrations refused because the peer was already registered.
    pub register_duplicate: u64,
    /// Registrations refused at the peer cap.
    pub register_cap: u64,
}

/// An envelope was not delivered; it is handed back.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RouteError {
    /// The target's data lane is full; retry later or slow down.
    #[error("the destination Node's ingress is full; retry after it drains or slow down")]
    Full(Box<Envelope>),
    /// No Node is registered for the destination peer; check the peer id or
    /// wait until its actor is spawned.
    #[error("no Node is registered for the destination peer; check the id or spawn its actor")]
    UnknownPeer(Box<Envelope>),
    /// The destination Node is stopping and accepts no more input.
    #[error("the destination Node is stopping and its ingress is closed")]
    Closed(Box<Envelope>),
    /// The runtime is shutting down: only responses and back-pressure
    /// notices are still routed.
    #[error("the runtime is shutting down and accepts no new requests or one-way envelopes")]
    ShuttingDown(Box<Envelope>),
}

impl RouteError {
    /// The refused envelope.
    pub fn into_envelope(self) -> Envelope {
        match self {
            Self::Full(envelope)
            | Self::UnknownPeer(envelope)
            | Self::Closed(envelope)
            | Self::ShuttingDown(envelope) => *envelope,
        }
    }

    /// The refused envelope, by reference.
    pub fn envelope(&self) -> &Envelope {
        match self {
            Self::Full(envelope)
            | Self::UnknownPeer(envelope)
            | Self::Closed(envelope)
            | Self::ShuttingDown(envelope) => envelope,
        }
    }
}

/// A registration was refused; the queue is handed back.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RegisterError {
    /// The peer already has a Node; unregister it first.
    #[error("peer {peer} is already registered; unregister its Node first")]
    Duplicate {
        /// The peer.
        peer: PeerId,
        /// The queue that was not registered.
        ingress: Arc<IngressQueue>,
    },
    /// The table holds `cap` peers; stop a Node or raise the cap.
    #[error("the router already holds {cap} peers; stop a Node or raise the cap")]
    TooManyPeers {
        /// The cap in force.
        cap: usize,
        /// The queue that was not registered.
        ingress: Arc<IngressQueue>,
    },
}

/// Stats-only counters: every field `Relaxed` (nothing is published
/// through them; readers want totals, not ordering).
#[derive(Debug, Default)]
struct RouterCounters {
    routed: AtomicU64,
    refused_full: AtomicU64,
    refused_unknown_peer: AtomicU64,
    refused_closed: AtomicU64,
    refused_shutting_down: AtomicU64,
    register_duplicate: AtomicU64,
    register_cap: AtomicU64,
}

impl Router {
    /// Default most peers one router holds.
    pub const DEFAULT_PEER_CAP: usize = 65_536;

    /// An empty router with the default peer cap.
    pub fn new() -> Self {
        Self::with_peer_cap(Self::DEFAULT_PEER_CAP)
    }

    /// An empty router holding at most `cap` peers.
    pub fn with_peer_cap(cap: usize) -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            cap,
            len: AtomicUsize::new(0),
            stopping: AtomicBool::new(false),
            counters: RouterCounters::default(),
        }
    }

    /// Makes `peer` reachable through `ingress`.
    pub fn register(&self, peer: PeerId, ingress: Arc<IngressQueue>) -> Result<(), RegisterError> {
        let mut shard = self.shard(peer).lock();
        if shard.contains_key(&peer) {
            self.counters
                .register_duplicate
                .fetch_add(1, Ordering::Relaxed);
            return Err(RegisterError::Duplicate { peer, ingress });
        }
        if self.len.fetch_add(1, Ordering::Relaxed) >= self.cap {
            self.len.fetch_sub(1, Ordering::Relaxed);
            self.counters.register_cap.fetch_add(1, Ordering::Relaxed);
            return Err(RegisterError::TooManyPeers {
                cap: self.cap,
                ingress,
            });
        }
        shard.insert(peer, ingress);
        Ok(())
    }

    /// Removes `peer` if it is still routed to `ingress` (a stale owner
    /// never removes its successor's entry); returns whether it did.
    pub fn unregister(&self, peer: PeerId, ingress: &Arc<IngressQueue>) -> bool {
        let mut shard = self.shard(peer).lock();
        if !shard
            .get(&peer)
            .is_some_and(|current| Arc::ptr_eq(current, ingress))
        {
            return false;
        }
        shard.remove(&peer);
        self.len.fetch_sub(1, Ordering::Relaxed);
        true
    }

    /// Whether `peer` is registered.
    pub fn contains(&self, peer: PeerId) -> bool {
        self.shard(peer).lock().contains_key(&peer)
    }

    /// Moves `envelope` into the ingress of `envelope.dst`. Never blocks.
    pub fn route(&self, envelope: Envelope) -> Result<(), RouteError> {
        self.route_with(envelope, false)
    }

    /// Routes an envelope its sender sent under a flow-control credit of
    /// the destination's window (a Node's `SendEnvelope` step with flow
    /// control on): it is not refused `Full`, since the windows bound what
    /// a receiver can be sent ([`IngressQueue::push_data_credited`]).
    /// Answers, credits and back-off notices ride the destination's
    /// control lane whichever way they are routed: they are bounded by the
    /// requests and windows in flight, and are never refused for room.
    pub fn route_credited(&self, envelope: Envelope) -> Result<(), RouteError> {
        self.route_with(envelope, true)
    }

    fn route_with(&self, envelope: Envelope, credited: bool) -> Result<(), RouteError> {
        if self.stopping.load(Ordering::Relaxed) && starts_work(&envelope) {
            self.counters
                .refused_shutting_down
                .fetch_add(1, Ordering::Relaxed);
            return Err(RouteError::ShuttingDown(Box::new(envelope)));
        }
        let target = self.shard(envelope.dst).lock().get(&envelope.dst).cloned();
        let Some(target) = target else {
            self.counters
                .refused_unknown_peer
                .fetch_add(1, Ordering::Relaxed);
            return Err(RouteError::UnknownPeer(Box::new(envelope)));
        };
        let event = IngressEvent::Envelope(envelope);
        let pushed = match &event {
            IngressEvent::Envelope(envelope) if envelope.is_control() => target.push_control(event),
            _ if credited => target.push_data_credited(event),
            _ => target.push_data(event),
        };
        match pushed {
            Ok(()) => {
                self.counters.routed.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
            Err(err) if err.is_closed() => {
                self.counters.refused_closed.fetch_add(1, Ordering::Relaxed);
                Err(RouteError::Closed(handed_back(err.into_inner())))
            }
            // `Full`, and any refusal added later: the lane would not take it.
            Err(err) => {
                self.counters.refused_full.fetch_add(1, Ordering::Relaxed);
                Err(RouteError::Full(handed_back(err.into_inner())))
            }
        }
    }

    /// Phase 1 of a shutdown: from now on refuse envelopes that would start
    /// new work (requests and one-way envelopes) with
    /// [`RouteError::ShuttingDown`]; responses and back-pressure notices
    /// still pass. Cannot be undone.
    pub fn stop_new_work(&self) {
        self.stopping.store(true, Ordering::Relaxed);
    }

    /// Whether [`Router::stop_new_work`] was called.
    pub fn is_stopping_new_work(&self) -> bool {
        self.stopping.load(Ordering::Relaxed)
    }

    /// A copy of the counters.
    pub fn stats(&self) -> RouterStats {
        let c = &self.counters;
        RouterStats {
            peers: self.len.load(Ordering::Relaxed),
            routed: c.routed.load(Ordering::Relaxed),
            refused_full: c.refused_full.load(Ordering::Relaxed),
            refused_unknown_peer: c.refused_unknown_peer.load(Ordering::Relaxed),
            refused_closed: c.refused_closed.load(Ordering::Relaxed),
            refused_shutting_down: c.refused_shutting_down.load(Ordering::Relaxed),
            register_duplicate: c.register_duplicate.load(Ordering::Relaxed),
            register_cap: c.register_cap.load(Ordering::Relaxed),
        }
    }

    fn shard(&self, peer: PeerId) -> &Shard {
        // Fibonacci hashing: peer ids are often sequential; the multiply
        // spreads them and the top bits pick the shard.
        let mixed = peer.as_u64().wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let index = (mixed >> 60) as usize % self.shards.len();
        &self.shards[index]
    }
}

impl Default for Router {
    fn default() -> Self {
        Self::new()
    }
}

/// Whether `envelope` would start work at its destination (anything but a
/// response or a back-pressure notice).
fn starts_work(envelope: &Envelope) -> bool {
    matches!(envelope.kind, EnvelopeKind::OneWay | EnvelopeKind::Request)
}

/// The envelope inside an event [`Router::route`] pushed and got back.
fn handed_back(event: IngressEvent) -> Box<Envelope> {
    match event {
        IngressEvent::Envelope(envelope) => Box::new(envelope),
        // Invariant: `PushError` hands back the very event pushed, and
        // `route` pushes only `IngressEvent::Envelope`.
        other => unreachable!("push_data handed back a different event: {other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nodeflow_engine::{ByteBudget, EnvelopeKind, IngressConfig};

    fn queue(capacity: usize) -> Arc<IngressQueue> {
        Arc::new(IngressQueue::new(
            IngressConfig {
                data_capacity: capacity,
                ..IngressConfig::default()
            },
            ByteBudget::new(1 << 20),
        ))
    }

    fn envelope(to: u64) -> Envelope {
        Envelope::new(PeerId::new(1), PeerId::new(to), EnvelopeKind::OneWay)
    }

    #[test]
    fn stopping_new_work_refuses_requests_and_one_ways_but_passes_responses() {
        let router = Router::new();
        let q = queue(8);
        router.register(PeerId::new(2), Arc::clone(&q)).unwrap();
        assert!(!router.is_stopping_new_work());
        router.stop_new_work();
        assert!(router.is_stopping_new_work());
        for kind in [EnvelopeKind::OneWay, EnvelopeKind::Request] {
            let refused = router
                .route(Envelope::new(PeerId::new(1), PeerId::new(2), kind))
                .unwrap_err();
            assert!(matches!(refused, RouteError::ShuttingDown(_)));
            assert_eq!(refused.into_envelope().kind, kind);
        }
        for kind in [
            EnvelopeKind::Response,
            EnvelopeKind::BackoffNotice { retry_after_ns: 5 },
            EnvelopeKind::BackoffClear,
        ] {
            router
                .route(Envelope::new(PeerId::new(1), PeerId::new(2), kind))
                .unwrap();
        }
        assert_eq!(q.len(), 3);
        let stats = router.stats();
        assert_eq!((stats.routed, stats.refused_shutting_down), (3, 2));
    }

    #[test]
    fn routes_by_destination_and_refuses_with_the_envelope_back() {
        let router = Router::new();
        let q = queue(1);
        router.register(PeerId::new(2), Arc::clone(&q)).unwrap();
        router.route(envelope(2)).unwrap();
        assert!(matches!(q.try_pop(), Some(IngressEvent::Envelope(e)) if e.dst == PeerId::new(2)));

        let unknown = router.route(envelope(3)).unwrap_err();
        assert!(matches!(unknown, RouteError::UnknownPeer(_)));
        assert_eq!(unknown.into_envelope().dst, PeerId::new(3));

        router.route(envelope(2)).unwrap();
        let full = router.route(envelope(2)).unwrap_err();
        assert!(matches!(full, RouteError::Full(_)));
        assert_eq!(full.envelope().dst, PeerId::new(2));

        q.close();
        assert!(matches!(
            router.route(envelope(2)),
            Err(RouteError::Closed(_))
        ));
        let stats = router.stats();
        assert_eq!(
            (
                stats.routed,
                stats.refused_unknown_peer,
                stats.refused_full,
                stats.refused_closed
            ),
            (2, 1, 1, 1)
        );
    }

    #[test]
    fn registration_is_capped_unique_and_counted() {
        let router = Router::with_peer_cap(2);
        router.register(PeerId::new(1), queue(1)).unwrap();
        assert!(matches!(
            router.register(PeerId::new(1), queue(1)),
            Err(RegisterError::Duplicate { .. })
        ));
        router.register(PeerId::new(2), queue(1)).unwrap();
        assert!(matches!(
            router.register(PeerId::new(3), queue(1)),
            Err(RegisterError::TooManyPeers { cap: 2, .. })
        ));
        let stats = router.stats();
        assert_eq!(
            (stats.peers, stats.register_duplicate, stats.register_cap),
            (2, 1, 1)
        );
    }

    #[test]
    fn unregister_removes_only_the_owners_entry_and_frees_a_slot() {
        let router = Router::with_peer_cap(1);
        let (old, new) = (queue(1), queue(1));
        router.register(PeerId::new(7), Arc::clone(&new)).unwrap();
        assert!(!router.unregister(PeerId::new(7), &old));
        assert!(router.contains(PeerId::new(7)));
        assert!(router.unregister(PeerId::new(7), &new));
        assert!(!router.contains(PeerId::new(7)));
        assert_eq!(router.stats().peers, 0);
        router.register(PeerId::new(8), old).unwrap();
    }

    #[test]
    fn sequential_peers_spread_over_several_shards() {
        let router = Router::new();
        let used: std::collections::HashSet<usize> = (0..64u64)
            .map(|p| {
                let shard = router.shard(PeerId::new(p)) as *const _;
                router
                    .shards
                    .iter()
                    .position(|s| std::ptr::eq(s, shard))
                    .unwrap()
            })
            .collect();
        assert!(used.len() > SHARDS / 2, "only {} shards used", used.len());
    }
}
