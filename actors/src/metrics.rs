//! Per-Node metrics of an actor: live counters ([`ActorStats`]), the
//! snapshot a caller reads at any time ([`ActorMetrics`]), and the account
//! of every message a Node accepted ([`MessageAccount`]).
//!
//! # Invariants
//! * Counters only grow; each is written by the actor thread alone and read
//!   `Relaxed` by anyone (they publish no data).
//! * `envelopes_out == routed + refused_full + refused_unknown_peer +
//!   refused_closed + refused_shutting_down`.
//! * Every message a Node's mailbox accepted is, in its
//!   [`MessageAccount`], either processed, dropped at close, or lost to a
//!   restart (`accepted == processed + dropped_at_close + lost_in_restart`
//!   once the actor has exited); messages refused at the door were handed
//!   back to their senders and are counted separately.

use nodeflow_engine::sync::atomic::{AtomicU64, Ordering};
use nodeflow_engine::{IngressStats, NodeStats, PeerId};

/// Live counters of one actor; every field is monotonic.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ActorStats {
    /// `Node::poll` calls (all incarnations).
    pub polls: u64,
    /// Clock nanoseconds spent in rounds of polls (and routing their steps).
    pub poll_ns: u64,
    /// Waits that ended because mail arrived (or the queue closed).
    pub wakeups: u64,
    /// Waits that ended at the Node's deadline.
    pub timeouts: u64,
    /// `SendEnvelope` steps seen (`routed` plus every `refused_*`).
    pub envelopes_out: u64,
    /// Envelopes the router delivered.
    pub routed: u64,
    /// Envelopes refused: the target's data lane was full.
    pub refused_full: u64,
    /// Envelopes refused: no Node for the destination.
    pub refused_unknown_peer: u64,
    /// Envelopes refused: the target was stopping.
    pub refused_closed: u64,
    /// Envelopes refused: the runtime is shutting down.
    pub refused_shutting_down: u64,
    /// Outputs handed to at least one subscriber.
    pub outputs_forwarded: u64,
    /// Outputs produced while nobody was subscribed (dropped).
    pub outputs_unobserved: u64,
    /// Subscriptions removed because their receiver was dropped.
    pub subscribers_dropped: u64,
    /// Other steps (failures, refusals, events...), counted only.
    pub other_steps: u64,
    /// Panics that escaped the engine.
    pub panics: u64,
    /// Restarts from a snapshot (or from a fresh build when none was taken).
    pub restarts: u64,
    /// Snapshots taken (periodic, on request, and the first one).
    pub snapshots: u64,
    /// Snapshots that failed (the previous one is kept).
    pub snapshot_failures: u64,
    /// Mailbox events the Node took after its last snapshot and that a
    /// restart rolled back (their effects are gone).
    pub lost_in_restart: u64,
    /// Sum over time of the mailbox depth, sampled at the start of every
    /// round (depth × clock nanoseconds until the next sample).
    pub queue_depth_ns: u64,
}

/// A snapshot of one Node's metrics (see [`crate::ActorHandle::metrics`]).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ActorMetrics {
    /// The Node's peer.
    pub peer: PeerId,
    /// The actor's counters.
    pub actor: ActorStats,
    /// The Node's counters as last published by the actor thread (before
    /// each sleep and every 64 rounds); they restart with each incarnation.
    pub node: NodeStats,
    /// The mailbox's counters (read now; they survive restarts).
    pub ingress: IngressStats,
    /// Events queued now, both lanes.
    pub ingress_depth: usize,
    /// Most data-lane slots in use at once.
    pub ingress_high_water: usize,
    /// The data lane's capacity.
    pub ingress_capacity: usize,
}

/// What happened to the messages of one Node (see [`ActorMetrics::account`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct MessageAccount {
    /// Events the mailbox accepted (both lanes: envelopes, invokes, app
    /// events, completions).
    pub accepted: u64,
    /// Accepted events a Node took and handled.
    pub processed: u64,
    /// Accepted events still queued when the mailbox closed; the Node never
    /// saw them.
    pub dropped_at_close: u64,
    /// Accepted events a Node took after its last snapshot and a restart
    /// rolled back.
    pub lost_in_restart: u64,
    /// Events queued now (not yet taken).
    pub queued: u64,
    /// Pushes refused because the data lane was full (handed back to the
    /// sender, never accepted).
    pub refused_full: u64,
    /// Pushes refused because the mailbox was closed (handed back).
    pub refused_closed: u64,
}

impl ActorMetrics {
    /// The account of every message this Node's mailbox accepted, with
    /// `dropped_at_close` as counted by the actor.
    pub fn account(&self, dropped_at_close: u64) -> MessageAccount {
        account(&self.ingress, self.actor.lost_in_restart, dropped_at_close)
    }

    /// Mean time an event waited in the mailbox, in clock nanoseconds, by
    /// Little's law: time-weighted mean depth ÷ arrival rate, that is
    /// `queue_depth_ns / events taken`. The depth is sampled once per round,
    /// so waits shorter than a round are partly missed; 0 before any event.
    pub fn mean_queue_wait_ns(&self) -> u64 {
        let taken = self
            .ingress
            .control
            .taken
            .saturating_add(self.ingress.data.taken);
        self.actor.queue_depth_ns.checked_div(taken).unwrap_or(0)
    }
}

/// The account of a mailbox with `ingress` counters.
pub(crate) fn account(
    ingress: &IngressStats,
    lost_in_restart: u64,
    dropped_at_close: u64,
) -> MessageAccount {
    let accepted = ingress
        .control
        .accepted
        .saturating_add(ingress.data.accepted);
    let taken = ingress.control.taken.saturating_add(ingress.data.taken);
    MessageAccount {
        accepted,
        processed: taken
            .saturating_sub(dropped_at_close)
            .saturating_sub(lost_in_restart),
        dropped_at_close,
        lost_in_restart,
        queued: accepted.saturating_sub(taken),
        refused_full: ingress.data.refused_full,
        refused_closed: ingress
            .control
            .refused_closed
            .saturating_add(ingress.data.refused_closed),
    }
}

/// The atomics behind [`ActorStats`]. Memory ordering: `Relaxed`
/// everywhere; a reader that has received an output sees every count made
/// before it was sent (the channel's send/receive orders them).
#[derive(Debug, Default)]
pub(crate) struct ActorCounters {
    pub(crate) polls: AtomicU64,
    pub(crate) poll_ns: AtomicU64,
    pub(crate) wakeups: AtomicU64,
    pub(crate) timeouts: AtomicU64,
    pub(crate) envelopes_out: AtomicU64,
    pub(crate) routed: AtomicU64,
    pub(crate) refused_full: AtomicU64,
    pub(crate) refused_unknown_peer: AtomicU64,
    pub(crate) refused_closed: AtomicU64,
    pub(crate) refused_shutting_down: AtomicU64,
    pub(crate) outputs_forwarded: AtomicU64,
    pub(crate) outputs_unobserved: AtomicU64,
    pub(crate) subscribers_dropped: AtomicU64,
    pub(crate) other_steps: AtomicU64,
    pub(crate) panics: AtomicU64,
    pub(crate) restarts: AtomicU64,
    pub(crate) snapshots: AtomicU64,
    pub(crate) snapshot_failures: AtomicU64,
    pub(crate) lost_in_restart: AtomicU64,
    pub(crate) queue_depth_ns: AtomicU64,
}

impl ActorCounters {
    /// Adds `n` to `counter` (the actor thread is the only writer).
    pub(crate) fn bump(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> ActorStats {
        let read = |c: &AtomicU64| c.load(Ordering::Relaxed);
        ActorStats {
            polls: read(&self.polls),
            poll_ns: read(&self.poll_ns),
            wakeups: read(&self.wakeups),
            timeouts: read(&self.timeouts),
            envelopes_out: read(&self.envelopes_out),
            routed: read(&self.routed),
            refused_full: read(&self.refused_full),
            refused_unknown_peer: read(&self.refused_unknown_peer),
            refused_closed: read(&self.refused_closed),
            refused_shutting_down: read(&self.refused_shutting_down),
            outputs_forwarded: read(&self.outputs_forwarded),
            outputs_unobserved: read(&self.outputs_unobserved),
            subscribers_dropped: read(&self.subscribers_dropped),
            other_steps: read(&self.other_steps),
            panics: read(&self.panics),
            restarts: read(&self.restarts),
            snapshots: read(&self.snapshots),
            snapshot_failures: read(&self.snapshot_failures),
            lost_in_restart: read(&self.lost_in_restart),
            queue_depth_ns: read(&self.queue_depth_ns),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nodeflow_engine::LaneStats;

    fn ingress(control: (u64, u64), data: (u64, u64)) -> IngressStats {
        IngressStats {
            control: LaneStats {
                accepted: control.0,
                taken: control.1,
                refused_closed: 1,
                ..LaneStats::default()
            },
            data: LaneStats {
                accepted: data.0,
                taken: data.1,
                refused_full: 4,
                refused_closed: 2,
                ..LaneStats::default()
            },
            ..IngressStats::default()
        }
    }

    #[test]
    fn the_account_splits_accepted_into_processed_dropped_lost_and_queued() {
        let a = account(&ingress((3, 3), (10, 9)), 2, 1);
        assert_eq!(a.accepted, 13);
        assert_eq!(a.queued, 1);
        assert_eq!(a.processed, 12 - 1 - 2);
        assert_eq!(
            a.processed + a.dropped_at_close + a.lost_in_restart + a.queued,
            a.accepted
        );
        assert_eq!((a.refused_full, a.refused_closed), (4, 3));
    }

    #[test]
    fn mean_queue_wait_is_depth_time_over_events_taken() {
        let mut m = ActorMetrics {
            peer: PeerId::new(1),
            actor: ActorStats::default(),
            node: NodeStats::default(),
            ingress: ingress((0, 0), (0, 0)),
            ingress_depth: 0,
            ingress_high_water: 0,
            ingress_capacity: 1,
        };
        assert_eq!(m.mean_queue_wait_ns(), 0, "no event yet");
        m.actor.queue_depth_ns = 1_000;
        m.ingress = ingress((2, 2), (8, 8));
        assert_eq!(m.mean_queue_wait_ns(), 100);
    }

    #[test]
    fn counters_snapshot_reads_every_field() {
        let c = ActorCounters::default();
        ActorCounters::bump(&c.restarts, 2);
        ActorCounters::bump(&c.refused_shutting_down, 3);
        ActorCounters::bump(&c.queue_depth_ns, 5);
        let s = c.snapshot();
        assert_eq!(
            (s.restarts, s.refused_shutting_down, s.queue_depth_ns),
            (2, 3, 5)
        );
    }
}
