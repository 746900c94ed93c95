//! Loom model of the two-phase shutdown of a [`NodeActor`]: a drain order
//! waits for an op parked on a completion handle held by another thread,
//! the result still reaches the Node, and the stop neither hangs nor
//! abandons work.
//!
//! The model runs the real stack on three loom threads: main, the actor
//! ([`NodeActor::spawn`], a [`ManualClock`] that never advances, so the
//! drain deadline never passes and the actor sleeps on its mailbox only)
//! and a "pool" thread holding the completion handle of the parked op
//! (`x -> later.Later -> y`), as a compute job would. Main invokes the op,
//! takes its handle once it has parked and gives it to the pool thread,
//! which completes it while main calls [`ActorHandle::begin_drain`] with a
//! long grace and then [`ActorHandle::finish`] with a far deadline. (Under
//! loom, `finish`'s real-time wait has no timeout: a drain that never ends
//! is a loom deadlock, and the correct protocol must always end it.)
//!
//! # Invariants checked
//! * No deadlock: the actor drains, closes its own mailbox and exits, and
//!   `finish` returns its report in every interleaving.
//! * The pool thread's result is accepted (the mailbox stays open while
//!   the op is parked), the execution finishes exactly once with the
//!   completed value, and its output reaches the subscriber once.
//! * The report: the drain deadline was not hit, nothing abandoned, nothing
//!   dropped at close or lost, `accepted == processed` (the invoke and the
//!   completion), the Node is unregistered.
//!
//! # The broken twin
//! `loom_broken_actor_drain_ignores_parked_work` (compiled only with
//! `--cfg nodeflow_loom_broken`) selects `"drain-ignores-parked-work"`
//! through `ActorConfig::loom_broken`: the actor's drain check treats any
//! Node as quiescent, so it closes the mailbox as soon as it sees the drain
//! order. When that comes before the result, the result is refused (or
//! dropped at close) and the execution abandoned; loom must find it.
#![cfg(loom)]

mod common;

use std::time::{Duration, Instant};

use common::{
    config, finished_left, later_graph, manual_clock, next_finished, on_big_stack, x, Later,
    ModelSize, Parked, PEER,
};
use nodeflow_actors::{ActorHandle, NodeActor, Router};
use nodeflow_engine::sync::channel::unbounded;
use nodeflow_engine::sync::{thread, Arc};
use nodeflow_engine::{Node, SiteId};

/// Longer than any model run: the drain is never cut short by time.
const PATIENCE: Duration = Duration::from_secs(3600);

/// The model; `broken` names a deliberate bug (broken builds only).
fn drain_waits_for_parked_work(name: &'static str, broken: Option<&'static str>) {
    let size = ModelSize::new(name);
    let iterations = size.counter();
    loom::model(move || {
        let iterations = iterations.clone();
        on_big_stack(move || {
            iterations.bump();
            let (parked_tx, parked_rx) = unbounded::<Parked>();
            let node = Node::builder(PEER)
                .component("later", Box::new(Later { parked: parked_tx }))
                .graph(later_graph())
                .build()
                .expect("a valid node");
            let router = Arc::new(Router::new());
            let handle: ActorHandle =
                NodeActor::spawn(node, Arc::clone(&router), manual_clock(), config(broken))
                    .expect("the actor starts");
            let outputs = handle.subscribe().expect("room for a subscriber");
            handle
                .invoke(SiteId::new(0), x(5), 1)
                .expect("the mailbox is open");
            let parked = parked_rx.recv().expect("the op parks");
            let pool = thread::spawn(move || parked.complete_plus(100).is_ok());

            // Phase 1 races the result; phase 2 waits for the thread to exit.
            handle.begin_drain(PATIENCE);
            let report = handle
                .finish(Instant::now() + PATIENCE)
                .expect("the actor drains and exits");
            assert!(
                pool.join().expect("the pool thread ran"),
                "the mailbox took the result: the drain waited for it"
            );
            assert_eq!(next_finished(&outputs), (Some(1), Some(105)));
            assert_eq!(finished_left(&outputs), 0, "the execution finished once");

            assert!(!report.drain_deadline_hit && !report.drain_incomplete);
            assert_eq!(report.abandoned_executions, 0);
            assert_eq!(report.node.executions_finished, 1);
            assert_eq!(report.node.unknown_completions, 0);
            assert_eq!(report.dropped_at_close, 0);
            assert_eq!(report.ingress.data.accepted, 1, "the invoke");
            assert_eq!(report.ingress.control.accepted, 1, "the completion");
            let account = report.account();
            assert_eq!(account.queued, 0, "nothing left in a stopped mailbox");
            assert_eq!(account.processed, 2);
            assert_eq!(
                account.accepted,
                account.processed + account.dropped_at_close + account.lost_in_restart,
                "{account:?}"
            );
            assert!(!router.contains(PEER), "the drained Node unregistered");
        });
    });
}

#[test]
fn loom_actor_shutdown_drain_waits_for_parked_work() {
    drain_waits_for_parked_work("loom_actor_shutdown_drain_waits_for_parked_work", None);
}

#[cfg(nodeflow_loom_broken)]
#[test]
fn loom_broken_actor_drain_ignores_parked_work() {
    drain_waits_for_parked_work(
        "loom_broken_actor_drain_ignores_parked_work",
        Some("drain-ignores-parked-work"),
    );
}
