//! Two-phase shutdown: new work is refused upstream, Nodes finish what is
//! in flight (including ops waiting on results from other threads) until
//! quiescent or the deadline, then close; every accepted message is
//! accounted for across senders, router and receiver; nothing deadlocks,
//! and a stuck op cannot hang the caller.
//!
//! Waits are bounded by `PATIENCE`; assertions are on counts and values.
#![cfg(not(loom))] // real threads and time; the loom models live in loom-tests/
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::{echo_graph, later_graph, next_finished, u64v, wait_until, Later, PATIENCE};
use nodeflow_actors::{
    ActorConfig, ActorError, ActorHandle, ActorOutput, Clock, ManualClock, NodeActor, Router,
    SystemClock,
};
use nodeflow_engine::sync::atomic::{AtomicBool, Ordering};
use nodeflow_engine::sync::channel::{bounded, Receiver};
use nodeflow_engine::sync::{thread, Arc, Mutex};
use nodeflow_engine::{
    Component, DispatchResult, Graph, GraphBuilder, IngressConfig, LocalOpId, Node, NodeConfig,
    OpError, OpInputs, OpOutputs, PeerId, RuntimeResourceRef, SiteId,
};

const RECEIVER: PeerId = PeerId::new(100);

/// `x -> Send(one-way to RECEIVER, site 0, input x)`.
fn sender_graph() -> Graph {
    let mut b = GraphBuilder::new("flood");
    let x = b.input("x");
    b.syscall("Send", [x])
        .attr("peer", RECEIVER.as_u64() as i64)
        .attr("site", 0)
        .attr("input", "x")
        .finish();
    b.build().unwrap()
}

fn spawn(node: Node, router: &Arc<Router>, clock: Arc<dyn Clock>) -> ActorHandle {
    NodeActor::spawn(node, Arc::clone(router), clock, ActorConfig::default()).unwrap()
}

fn small_mailbox(capacity: usize) -> NodeConfig {
    NodeConfig {
        ingress: IngressConfig {
            data_capacity: capacity,
            ..IngressConfig::default()
        },
        ..NodeConfig::default()
    }
}

#[test]
fn shutdown_under_load_accounts_for_every_message() {
    const SENDERS: u64 = 3;
    let router = Arc::new(Router::new());
    let clock: Arc<dyn Clock> = Arc::new(SystemClock::new());
    let receiver_node = Node::builder(RECEIVER)
        .config(small_mailbox(8))
        .graph(echo_graph())
        .build()
        .unwrap();
    let receiver = spawn(receiver_node, &router, Arc::clone(&clock));
    let seen = receiver.subscribe().unwrap();
    let senders: Vec<ActorHandle> = (1..=SENDERS)
        .map(|i| {
            let node = Node::builder(PeerId::new(i))
                .config(small_mailbox(256))
                .graph(sender_graph())
                .build()
                .unwrap();
            spawn(node, &router, Arc::clone(&clock))
        })
        .collect();

    // Flood: one thread per sender invokes as fast as its mailbox takes it.
    let stop = Arc::new(AtomicBool::new(false));
    let senders = Arc::new(senders);
    let flooders: Vec<_> = (0..SENDERS as usize)
        .map(|i| {
            let (stop, senders) = (Arc::clone(&stop), Arc::clone(&senders));
            thread::spawn(move || {
                let (mut accepted, mut refused) = (0u64, 0u64);
                let mut value = 0;
                while !stop.load(Ordering::Relaxed) {
                    value += 1;
                    match senders[i].invoke(SiteId::new(0), vec![("x".into(), u64v(value))], value)
                    {
                        Ok(()) => accepted += 1,
                        Err(_) => {
                            refused += 1;
                            thread::yield_now();
                        }
                    }
                }
                (accepted, refused)
            })
        })
        .collect();
    // Credit windows slow the senders down instead of losing their mail:
    // their sends park, their lanes fill, and the flood's invokes are refused.
    wait_until("back-pressure to reach the flooding hosts", || {
        router.stats().routed > 100
            && senders
                .iter()
                .any(|s| s.ingress().stats().data.refused_full > 0)
    });
    stop.store(true, Ordering::Relaxed);
    let invoked: Vec<(u64, u64)> = flooders.into_iter().map(|f| f.join().unwrap()).collect();

    // Phase 1 while mail is still queued everywhere, then phase 2.
    router.stop_new_work();
    let senders = Arc::try_unwrap(senders).unwrap();
    for handle in senders.iter().chain(std::iter::once(&receiver)) {
        handle.begin_drain(Duration::from_secs(5));
    }
    let deadline = Instant::now() + PATIENCE;
    let sender_reports: Vec<_> = senders
        .into_iter()
        .map(|h| h.finish(deadline).unwrap())
        .collect();
    let r = receiver.finish(deadline).unwrap();

    // Senders' data lanes take the test's invokes, their control lanes the
    // receiver's credit returns (envelopes); the receiver's data lane takes
    // the senders' envelopes. Each side's counts must match the other's.
    let (mut routed, mut refused_full, mut refused_shutting_down) = (0, 0, 0);
    let (mut notices_in, mut invokes_refused) = (0, 0);
    let mut sender_lane_full = 0;
    for (report, (accepted, refused)) in sender_reports.iter().zip(&invoked) {
        let s = &report.stats;
        assert!(!report.drain_deadline_hit && !report.drain_incomplete);
        assert_eq!(
            report.ingress.data.accepted, *accepted,
            "every invoke counted"
        );
        assert_eq!(
            report.ingress.control.accepted, report.node.envelopes_received,
            "every credit return counted"
        );
        let account = report.account();
        assert_eq!(
            account.processed,
            report.ingress.data.accepted + report.ingress.control.accepted,
            "all ran"
        );
        assert_eq!(account.dropped_at_close + account.lost_in_restart, 0);
        assert_eq!(report.node.executions_finished, *accepted);
        assert_eq!(
            s.envelopes_out,
            s.routed
                + s.refused_full
                + s.refused_unknown_peer
                + s.refused_closed
                + s.refused_shutting_down,
            "every envelope routed or refused with a reason"
        );
        routed += s.routed;
        refused_full += s.refused_full;
        refused_shutting_down += s.refused_shutting_down;
        notices_in += report.node.envelopes_received;
        invokes_refused += refused;
        sender_lane_full += report.ingress.data.refused_full;
    }
    let router_stats = router.stats();
    assert_eq!(refused_full, 0, "credited mail is never refused for room");
    assert!(sender_lane_full > 0, "the hosts were slowed down instead");
    assert_eq!(
        r.ingress.data.accepted, routed,
        "routed == accepted by the receiver"
    );
    assert_eq!(r.ingress.data.refused_full, refused_full);
    assert_eq!(
        r.stats.routed, notices_in,
        "credit returns routed == taken by senders"
    );
    assert_eq!(
        sender_lane_full,
        invokes_refused + r.stats.refused_full,
        "senders' full lanes refused invokes and notices"
    );
    assert_eq!(
        router_stats.refused_full,
        refused_full + r.stats.refused_full
    );
    assert_eq!(
        router_stats.refused_shutting_down,
        refused_shutting_down + r.stats.refused_shutting_down
    );
    let account = r.account();
    assert_eq!(account.dropped_at_close + account.lost_in_restart, 0);
    assert_eq!(account.processed, routed);
    assert_eq!(r.node.envelopes_received, routed);
    let mut outputs = 0;
    while let Ok(output) = seen.try_recv() {
        if matches!(output, ActorOutput::ExecFinished { .. }) {
            outputs += 1;
        }
    }
    assert_eq!(outputs, routed, "every routed envelope produced its output");
    assert_eq!(router_stats.peers, 0, "every actor unregistered");
}

/// Peer 1 with the `later` graph, and the component's shared parking lot.
fn later_node() -> (Later, Node) {
    let later = Later::default();
    let node = Node::builder(PeerId::new(1))
        .component("later", Box::new(later.clone()))
        .graph(later_graph())
        .build()
        .unwrap();
    (later, node)
}

#[test]
fn a_drain_waits_for_ops_parked_on_other_threads() {
    let (later, node) = later_node();
    let router = Arc::new(Router::new());
    let handle = spawn(node, &router, Arc::new(SystemClock::new()));
    let rx = handle.subscribe().unwrap();
    handle
        .invoke(SiteId::new(0), vec![("x".into(), u64v(4))], 1)
        .unwrap();
    wait_until("the op to park", || later.parked.lock().len() == 1);
    handle.begin_drain(Duration::from_secs(60));
    // However long we look, it cannot exit with the op still parked.
    std::thread::sleep(Duration::from_millis(20));
    assert!(!handle.is_finished(), "the drain waits for parked work");
    later.parked.lock().pop().unwrap().complete_plus(10);
    assert_eq!(next_finished(&rx), (Some(1), Some(14)));
    let report = handle.finish(Instant::now() + PATIENCE).unwrap();
    assert!(!report.drain_deadline_hit);
    assert_eq!(report.abandoned_executions, 0);
    assert_eq!(report.node.executions_finished, 1);
}

#[test]
fn past_the_drain_deadline_parked_work_is_abandoned_and_reported() {
    let (later, node) = later_node();
    let clock = Arc::new(ManualClock::new());
    let router = Arc::new(Router::new());
    let dyn_clock: Arc<dyn Clock> = clock.clone();
    let handle = spawn(node, &router, dyn_clock);
    handle
        .invoke(SiteId::new(0), vec![("x".into(), u64v(4))], 1)
        .unwrap();
    wait_until("the op to park", || later.parked.lock().len() == 1);
    handle.begin_drain(Duration::from_nanos(1_000));
    clock.advance(1_000);
    let report = handle.finish(Instant::now() + PATIENCE).unwrap();
    assert!(report.drain_deadline_hit);
    assert_eq!(report.abandoned_executions, 1);
    assert_eq!(report.node.executions_finished, 0);
    // The late result is refused with a typed error, not lost silently.
    let parked = later.parked.lock().pop().unwrap();
    assert!(parked
        .handle
        .complete_values(vec![(parked.output, u64v(0))])
        .is_err());
}

/// Component `stuck`: op `Block` waits for the test's release.
struct Stuck {
    release: Arc<Mutex<Receiver<()>>>,
}

impl Component for Stuck {
    fn kind(&self) -> &str {
        "stuck"
    }
    fn resolve_op(&self, op_type: &str) -> Option<LocalOpId> {
        (op_type == "Block").then_some(LocalOpId(0))
    }
    fn dispatch_atomic(
        &mut self,
        _op: LocalOpId,
        _ctx: &mut RuntimeResourceRef<'_>,
        _inputs: &mut OpInputs<'_>,
        outputs: &mut OpOutputs<'_>,
    ) -> Result<DispatchResult, OpError> {
        let _ = self.release.lock().recv_timeout(PATIENCE);
        outputs.push(u64v(1))?;
        Ok(DispatchResult::Immediate)
    }
}

#[test]
fn a_stuck_op_cannot_hang_finish() {
    let (release_tx, release_rx) = bounded::<()>(1);
    let mut b = GraphBuilder::new("stuck");
    let x = b.input("x");
    let y = b.op("Block", [x]).domain("stuck").output();
    b.output(y, "y");
    let node = Node::builder(PeerId::new(1))
        .component(
            "stuck",
            Box::new(Stuck {
                release: Arc::new(Mutex::new(release_rx)),
            }),
        )
        .graph(b.build().unwrap())
        .build()
        .unwrap();
    let router = Arc::new(Router::new());
    let handle = NodeActor::spawn(
        node,
        Arc::clone(&router),
        Arc::new(SystemClock::new()),
        ActorConfig {
            join_grace: Duration::from_millis(50),
            ..ActorConfig::default()
        },
    )
    .unwrap();
    handle
        .invoke(SiteId::new(0), vec![("x".into(), u64v(1))], 1)
        .unwrap();
    handle.begin_drain(Duration::from_millis(10));
    match handle.finish(Instant::now() + Duration::from_millis(50)) {
        Err(ActorError::JoinTimedOut { peer }) => assert_eq!(peer, PeerId::new(1)),
        other => panic!("expected JoinTimedOut, got {other:?}"),
    }
    // Let the detached thread finish its op and exit.
    release_tx.send(()).unwrap();
    wait_until("the detached actor to unregister", || {
        !router.contains(PeerId::new(1))
    });
}
