//! Loom models of a supervised [`NodeActor`] restarting its Node while
//! other threads reach it: mail routed and results completed during a
//! restart reach the new incarnation, exactly once, and every message is
//! accounted for.
//!
//! Both models run the real stack on loom threads: a Node built by a
//! [`NodeFactory`], driven by [`NodeActor::spawn_supervised`] with a
//! [`ManualClock`] (no deadline: the actor sleeps on its mailbox only),
//! snapshots only at start and on request, at most one restart. The Node is
//! made to panic by an app event carrying a [`Grenade`], whose copy panics
//! as the Node takes it from its mailbox (so mail queued behind it is not
//! taken by the dying incarnation).
//!
//! * `loom_actor_restart_routes_mail_to_the_new_incarnation` (2 threads:
//!   main, actor): main delivers the grenade, then routes a one-way
//!   envelope through the [`Router`] while the actor takes the grenade,
//!   panics and restarts. The design keeps the mailbox and the router entry
//!   across the restart, so the route is accepted in every interleaving and
//!   the envelope is handled by the new incarnation; main blocks on its
//!   output, so a lost envelope is a loom deadlock.
//! * `loom_actor_restart_completion_resumes_once` (3 threads: main, actor,
//!   pool): an op parks on a completion handle, main requests a snapshot
//!   (which then holds the parked op) and throws the grenade; the pool
//!   thread completes the handle as soon as the restart has begun (the
//!   factory's second call tells it), racing the rest of the restart. The
//!   handle, opened by the dead incarnation, must reach the restored op,
//!   which finishes exactly once.
//!
//! # Invariants checked
//! * The envelope's / the op's output reaches the subscriber exactly once
//!   (and no other execution finishes); the Node stays registered.
//! * The report after `stop`: one panic, one restart; `lost_in_restart` is
//!   exactly 1 (the grenade: the only event taken after the last snapshot
//!   by the dead incarnation); nothing dropped at close, nothing abandoned,
//!   no unknown completion; `accepted == processed + dropped_at_close +
//!   lost_in_restart` with the exact counts; the Node is unregistered.
//!
//! # The broken twins
//! Compiled only with `--cfg nodeflow_loom_broken`; each selects a
//! deliberate bug in the real restart code through `ActorConfig::loom_broken`:
//! * `loom_broken_actor_restart_discards_mail_sent_in_the_window`
//!   (`"restart-discards-mail"`): the restart throws away the mail still
//!   queued when it rebuilds the Node (as if it belonged to the dead
//!   incarnation). An envelope queued behind the grenade before that point
//!   is lost (the output never comes: a deadlock); one routed after the
//!   restart still arrives, so only some interleavings fail (loom's first
//!   schedule, which queues both events before the actor runs, is one).
//! * `loom_broken_actor_restart_on_fresh_mailbox_loses_routed_mail` and
//!   `loom_broken_actor_restart_completion_on_fresh_mailbox`
//!   (`"restart-on-fresh-mailbox"`): the Node is rebuilt on a fresh mailbox
//!   and the router entry swapped without moving queued mail. An envelope
//!   that hit the old mailbox, and the completion whose handle is bound to
//!   it, never reach the new incarnation (and the handle's `stop` closes a
//!   mailbox nobody reads): loom reports a deadlock.
#![cfg(loom)]

mod common;

use std::time::Duration;

use common::{
    config, echo_graph, factory, finished_left, grenade_graph, later_graph, manual_clock,
    next_finished, on_big_stack, one_way, x, Grenade, Later, ModelSize, Parked, GRENADE, PEER,
};
use nodeflow_actors::{ActorReport, NodeActor, Router};
use nodeflow_engine::sync::atomic::{AtomicUsize, Ordering};
use nodeflow_engine::sync::channel::unbounded;
use nodeflow_engine::sync::{thread, Arc};
use nodeflow_engine::{Node, PeerId, SiteId};

/// The sender of the routed envelope (not a Node: the router only needs
/// the destination).
const FROM: PeerId = PeerId::new(99);

/// The model of mail routed during a restart; `broken` names a deliberate
/// bug (broken builds only).
fn routed_during_restart(name: &'static str, broken: Option<&'static str>) {
    let size = ModelSize::new(name);
    let iterations = size.counter();
    loom::model(move || {
        let iterations = iterations.clone();
        on_big_stack(move || {
            iterations.bump();
            let router = Arc::new(Router::new());
            let handle = NodeActor::spawn_supervised(
                factory(|| {
                    Node::builder(PEER)
                        .graph(echo_graph())
                        .graph(grenade_graph())
                }),
                Arc::clone(&router),
                manual_clock(),
                config(broken),
            )
            .expect("the actor starts");
            let outputs = handle.subscribe().expect("room for a subscriber");
            handle
                .deliver_event(GRENADE, Box::new(Grenade))
                .expect("the mailbox is open");
            // Races the actor taking the grenade, panicking and restarting.
            router
                .route(one_way(FROM, PEER, 5))
                .expect("the mailbox and its router entry survive a restart");
            // Blocks in the loom channel: a lost envelope is a loom deadlock.
            assert_eq!(next_finished(&outputs), (None, Some(5)));
            assert!(router.contains(PEER), "a restart keeps the router entry");

            let report = handle.stop().expect("restarted once, then stopped");
            assert_eq!(finished_left(&outputs), 0, "the envelope ran once");
            assert_restarted_once(&report, 2, 0);
            assert_eq!(report.node.envelopes_received, 1);
            assert!(!router.contains(PEER), "stop unregisters the Node");
        });
    });
}

/// The model of a completion arriving during a restart; `broken` names a
/// deliberate bug (broken builds only).
fn completion_during_restart(name: &'static str, broken: Option<&'static str>) {
    let size = ModelSize::new(name);
    let iterations = size.counter();
    loom::model(move || {
        let iterations = iterations.clone();
        on_big_stack(move || {
            iterations.bump();
            let (parked_tx, parked_rx) = unbounded::<Parked>();
            let (restarting_tx, restarting_rx) = unbounded::<()>();
            let builds = Arc::new(AtomicUsize::new(0));
            let node_factory = factory(move || {
                // Every build after the first one (at spawn) is a restart.
                if builds.fetch_add(1, Ordering::SeqCst) > 0 {
                    let _ = restarting_tx.send(());
                }
                Node::builder(PEER)
                    .component(
                        "later",
                        Box::new(Later {
                            parked: parked_tx.clone(),
                        }),
                    )
                    .graph(later_graph())
                    .graph(grenade_graph())
            });
            let router = Arc::new(Router::new());
            let handle = NodeActor::spawn_supervised(
                node_factory,
                Arc::clone(&router),
                manual_clock(),
                config(broken),
            )
            .expect("the actor starts");
            let outputs = handle.subscribe().expect("room for a subscriber");
            handle
                .invoke(SiteId::new(0), x(5), 1)
                .expect("the mailbox is open");
            let parked = parked_rx.recv().expect("the op parks");
            // Answered between polls, after the op parked: the restart base.
            let snapshot = handle
                .snapshot(Duration::from_secs(3600))
                .expect("the Node snapshots");
            assert!(!snapshot.is_empty());

            let pool = thread::spawn(move || {
                restarting_rx.recv().expect("the Node restarts");
                parked.complete_plus(100)
            });
            handle
                .deliver_event(GRENADE, Box::new(Grenade))
                .expect("the mailbox is open");
            // Blocks: a completion lost in the restart is a loom deadlock.
            assert_eq!(next_finished(&outputs), (Some(1), Some(105)));
            pool.join()
                .expect("the pool thread ran")
                .expect("the restored Node's mailbox took the result");

            let report = handle.stop().expect("restarted once, then stopped");
            assert_eq!(finished_left(&outputs), 0, "the op resumed once");
            assert_restarted_once(&report, 2, 1);
            assert_eq!(report.node.unknown_completions, 0);
            assert!(!router.contains(PEER), "stop unregisters the Node");
        });
    });
}

/// The report of an actor whose Node died once on the grenade (taken after
/// the last snapshot) and whose new incarnation finished one execution:
/// `data` events and `control` events accepted in all.
fn assert_restarted_once(report: &ActorReport, data: u64, control: u64) {
    assert_eq!((report.stats.panics, report.stats.restarts), (1, 1));
    assert_eq!(report.stats.lost_in_restart, 1, "the grenade only");
    assert_eq!(report.node.executions_finished, 1);
    assert_eq!(report.abandoned_executions, 0);
    assert_eq!(report.dropped_at_close, 0);
    assert!(!report.drain_incomplete);
    assert_eq!(report.ingress.data.accepted, data);
    assert_eq!(report.ingress.control.accepted, control);
    let account = report.account();
    assert_eq!(account.queued, 0, "nothing left in a stopped mailbox");
    assert_eq!(account.accepted, data + control);
    assert_eq!(account.processed, data + control - 1);
    assert_eq!(
        account.accepted,
        account.processed + account.dropped_at_close + account.lost_in_restart,
        "{account:?}"
    );
}

#[test]
fn loom_actor_restart_routes_mail_to_the_new_incarnation() {
    routed_during_restart(
        "loom_actor_restart_routes_mail_to_the_new_incarnation",
        None,
    );
}

#[test]
fn loom_actor_restart_completion_resumes_once() {
    completion_during_restart("loom_actor_restart_completion_resumes_once", None);
}

#[cfg(nodeflow_loom_broken)]
#[test]
fn loom_broken_actor_restart_discards_mail_sent_in_the_window() {
    routed_during_restart(
        "loom_broken_actor_restart_discards_mail_sent_in_the_window",
        Some("restart-discards-mail"),
    );
}

#[cfg(nodeflow_loom_broken)]
#[test]
fn loom_broken_actor_restart_on_fresh_mailbox_loses_routed_mail() {
    routed_during_restart(
        "loom_broken_actor_restart_on_fresh_mailbox_loses_routed_mail",
        Some("restart-on-fresh-mailbox"),
    );
}

#[cfg(nodeflow_loom_broken)]
#[test]
fn loom_broken_actor_restart_completion_on_fresh_mailbox() {
    completion_during_restart(
        "loom_broken_actor_restart_completion_on_fresh_mailbox",
        Some("restart-on-fresh-mailbox"),
    );
}
