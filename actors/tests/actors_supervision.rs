//! Supervision: a panic that escapes a Node's engine restarts that Node
//! from its last snapshot on the same mailbox; work parked in the snapshot
//! finishes in the new incarnation (its completion handle, held by another
//! thread, still reaches it); mail sent during a restart is held, or refused
//! with a typed error and handed back; past the restart intensity the Node
//! is stopped for good and reported, with every message accounted for.
//!
//! Waits are bounded by `PATIENCE`; assertions are on counts and values.
#![cfg(not(loom))] // real threads and time; the loom models live in loom-tests/
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{
    echo_graph, grenade_graph, later_graph, next_finished, one_way, u64v, wait_until, Grenade,
    Later, GRENADE, PATIENCE,
};
use nodeflow_actors::{
    ActorConfig, ActorError, ActorHandle, NodeActor, NodeFactory, RouteError, Router,
    SupervisionConfig, SystemClock,
};
use nodeflow_engine::sync::atomic::{AtomicUsize, Ordering};
use nodeflow_engine::sync::channel::{bounded, Receiver};
use nodeflow_engine::sync::{Arc, Mutex};
use nodeflow_engine::{IngressConfig, Node, NodeConfig, PeerId, SiteId};

const PEER: PeerId = PeerId::new(7);

fn supervised(factory: NodeFactory, max_restarts: u32) -> (ActorHandle, Arc<Router>) {
    let router = Arc::new(Router::new());
    let config = ActorConfig {
        supervision: SupervisionConfig {
            snapshot_every_ns: None,
            max_restarts,
            restart_window_ns: 3_600_000_000_000,
        },
        ..ActorConfig::default()
    };
    let handle = NodeActor::spawn_supervised(
        factory,
        Arc::clone(&router),
        Arc::new(SystemClock::new()),
        config,
    )
    .unwrap();
    (handle, router)
}

fn throw_grenade(handle: &ActorHandle) {
    handle.deliver_event(GRENADE, Box::new(Grenade)).unwrap();
}

fn assert_balanced(report: &nodeflow_actors::ActorReport) {
    let a = report.account();
    assert_eq!(a.queued, 0, "nothing left in a stopped mailbox");
    assert_eq!(
        a.accepted,
        a.processed + a.dropped_at_close + a.lost_in_restart,
        "{a:?}"
    );
}

#[test]
fn a_panicking_node_restarts_from_its_snapshot_and_finishes_its_parked_work() {
    let later = Later::default();
    let factory: NodeFactory = {
        let later = later.clone();
        Arc::new(move || {
            Node::builder(PEER)
                .component("later", Box::new(later.clone()))
                .graph(later_graph())
                .graph(grenade_graph())
        })
    };
    let (handle, router) = supervised(factory, 3);
    let rx = handle.subscribe().unwrap();
    handle
        .invoke(SiteId::new(0), vec![("x".into(), u64v(5))], 1)
        .unwrap();
    wait_until("the op to park", || later.parked.lock().len() == 1);
    let snapshot = handle.snapshot(PATIENCE).unwrap();
    assert!(!snapshot.is_empty());

    throw_grenade(&handle);
    wait_until("the restart", || handle.stats().restarts == 1);
    assert!(router.contains(PEER), "the router entry survives a restart");

    // The handle was opened by the dead incarnation; its result reaches the
    // restored one, whose snapshot holds the parked op.
    let parked = later.parked.lock().pop().unwrap();
    parked.complete_plus(100);
    assert_eq!(next_finished(&rx), (Some(1), Some(105)));
    // The new incarnation serves new work too.
    handle
        .invoke(SiteId::new(0), vec![("x".into(), u64v(1))], 2)
        .unwrap();
    wait_until("the second op to park", || later.parked.lock().len() == 1);
    later.parked.lock().pop().unwrap().complete_plus(1);
    assert_eq!(next_finished(&rx), (Some(2), Some(2)));

    let metrics = handle.metrics();
    assert_eq!((metrics.actor.panics, metrics.actor.restarts), (1, 1));
    assert_eq!(metrics.actor.lost_in_restart, 1, "the grenade itself");
    let report = handle.stop().unwrap();
    assert_eq!(report.node.executions_finished, 2);
    assert_eq!(report.node.unknown_completions, 0);
    assert_balanced(&report);
    assert!(
        report.stats.snapshots >= 2,
        "the first one and the requested one"
    );
}

#[test]
fn past_the_restart_intensity_the_node_is_stopped_for_good_and_reported() {
    let factory: NodeFactory = Arc::new(|| {
        Node::builder(PEER)
            .graph(echo_graph())
            .graph(grenade_graph())
    });
    let (handle, router) = supervised(factory, 2);
    let rx = handle.subscribe().unwrap();
    for round in 1..=2u64 {
        throw_grenade(&handle);
        wait_until("a restart", || handle.stats().restarts == round);
        handle
            .invoke(SiteId::new(0), vec![("x".into(), u64v(round))], round)
            .unwrap();
        assert_eq!(next_finished(&rx), (Some(round), Some(round)));
    }
    throw_grenade(&handle);
    wait_until("the actor to stop", || handle.is_finished());
    assert!(!router.contains(PEER), "a stopped Node leaves the router");
    let refused = handle.invoke(SiteId::new(0), vec![("x".into(), u64v(9))], 9);
    assert!(refused.is_err(), "its mailbox is closed");
    match handle.stop() {
        Err(ActorError::GaveUp { message, report }) => {
            assert_eq!(message, "grenade copied");
            assert_eq!((report.stats.panics, report.stats.restarts), (3, 2));
            assert_eq!(report.peer, PEER);
            assert_balanced(&report);
        }
        other => panic!("expected GaveUp, got {other:?}"),
    }
}

#[test]
fn mail_sent_during_a_restart_is_held_or_refused_with_a_typed_error() {
    const CAPACITY: usize = 4;
    // The second factory call (the restart) waits for the test's go.
    let (go_tx, go_rx) = bounded::<()>(1);
    let go: Arc<Mutex<Receiver<()>>> = Arc::new(Mutex::new(go_rx));
    let calls = Arc::new(AtomicUsize::new(0));
    let factory: NodeFactory = {
        let calls = Arc::clone(&calls);
        Arc::new(move || {
            if calls.fetch_add(1, Ordering::SeqCst) == 1 {
                let _ = go.lock().recv_timeout(PATIENCE);
            }
            let config = NodeConfig {
                ingress: IngressConfig {
                    data_capacity: CAPACITY,
                    ..IngressConfig::default()
                },
                ..NodeConfig::default()
            };
            Node::builder(PEER)
                .config(config)
                .graph(echo_graph())
                .graph(grenade_graph())
        })
    };
    let (handle, router) = supervised(factory, 3);
    let rx = handle.subscribe().unwrap();
    throw_grenade(&handle);
    wait_until("the restart to begin", || calls.load(Ordering::SeqCst) == 2);

    // The Node is being rebuilt: its mailbox still takes mail.
    let from = PeerId::new(99);
    let mut held = Vec::new();
    for value in 0..CAPACITY as u64 {
        router.route(one_way(from, PEER, value)).unwrap();
        held.push(value);
    }
    let refused = router.route(one_way(from, PEER, 1000)).unwrap_err();
    match refused {
        RouteError::Full(envelope) => assert_eq!(envelope.dst, PEER, "handed back"),
        other => panic!("expected Full, got {other:?}"),
    }
    go_tx.send(()).unwrap();

    let mut served: Vec<u64> = (0..CAPACITY)
        .map(|_| next_finished(&rx).1.unwrap())
        .collect();
    served.sort_unstable();
    assert_eq!(
        served, held,
        "every held envelope reached the new incarnation"
    );
    let report = handle.shutdown(Duration::from_secs(5)).unwrap();
    assert_eq!(report.stats.restarts, 1);
    assert_eq!(report.ingress.data.refused_full, 1);
    assert_eq!(report.node.envelopes_received, CAPACITY as u64);
    assert_balanced(&report);
    assert_eq!(router.stats().refused_full, 1);
}

/// A component whose `snapshot_state` panics.
struct Unsaveable;

impl nodeflow_engine::Component for Unsaveable {
    fn kind(&self) -> &str {
        "unsaveable"
    }
    fn resolve_op(&self, _op_type: &str) -> Option<nodeflow_engine::LocalOpId> {
        None
    }
    fn dispatch_atomic(
        &mut self,
        _op: nodeflow_engine::LocalOpId,
        _ctx: &mut nodeflow_engine::RuntimeResourceRef<'_>,
        _inputs: &mut nodeflow_engine::OpInputs<'_>,
        _outputs: &mut nodeflow_engine::OpOutputs<'_>,
    ) -> Result<nodeflow_engine::DispatchResult, nodeflow_engine::OpError> {
        Ok(nodeflow_engine::DispatchResult::Immediate)
    }
    fn snapshot_state(&self) -> Result<Vec<u8>, nodeflow_engine::OpError> {
        panic!("cannot save")
    }
}

#[test]
fn a_first_snapshot_that_panics_refuses_the_spawn_and_leaves_nothing_registered() {
    let factory: NodeFactory = Arc::new(|| {
        Node::builder(PEER)
            .component("u", Box::new(Unsaveable))
            .graph(echo_graph())
    });
    let router = Arc::new(Router::new());
    let spawned = NodeActor::spawn_supervised(
        factory,
        Arc::clone(&router),
        Arc::new(SystemClock::new()),
        ActorConfig::default(),
    );
    match spawned {
        Err(nodeflow_actors::SpawnError::SnapshotPanicked(message)) => {
            assert_eq!(message, "cannot save")
        }
        other => panic!("expected SnapshotPanicked, got {other:?}"),
    }
    assert!(!router.contains(PEER));
}

#[test]
fn periodic_snapshots_follow_the_clock() {
    let clock = Arc::new(nodeflow_actors::ManualClock::new());
    let dyn_clock: Arc<dyn nodeflow_actors::Clock> = clock.clone();
    let factory: NodeFactory = Arc::new(|| Node::builder(PEER).graph(echo_graph()));
    let handle = NodeActor::spawn_supervised(
        factory,
        Arc::new(Router::new()),
        dyn_clock,
        ActorConfig {
            supervision: SupervisionConfig {
                snapshot_every_ns: Some(1_000),
                ..SupervisionConfig::default()
            },
            ..ActorConfig::default()
        },
    )
    .unwrap();
    wait_until("the actor to sleep", || handle.is_idle());
    assert_eq!(handle.stats().snapshots, 1, "the first one, at spawn");
    clock.advance(999);
    wait_until("the actor to sleep", || handle.is_idle());
    handle
        .invoke(SiteId::new(0), vec![("x".into(), u64v(1))], 1)
        .unwrap();
    wait_until("the invoke to run", || handle.is_idle());
    assert_eq!(handle.stats().snapshots, 1, "999 ns is not a period");
    clock.advance(1);
    handle
        .invoke(SiteId::new(0), vec![("x".into(), u64v(2))], 2)
        .unwrap();
    wait_until("a periodic snapshot", || handle.stats().snapshots == 2);
    let report = handle.stop().unwrap();
    assert_eq!(report.stats.snapshot_failures, 0);
}
