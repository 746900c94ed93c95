//! The runtime facade end to end: three Nodes spawned from specs ask each
//! other for work that runs on the shared compute pool, deliver app events,
//! stream their outputs to subscribers, and are accounted for by the
//! shutdown report.
//!
//! Every wait is bounded by [`PATIENCE`]; assertions are on counts and
//! values, never on elapsed time.
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::time::{Duration, Instant};

use nodeflow::engine::sync::Arc;
use nodeflow::engine::{EncodeError, IngressConfig, IngressEvent, TypeTag};
use nodeflow::{
    ActorConfig, ActorError, ActorOutput, ComputeComponent, ComputePool, DeliverError, EventKind,
    ExecOrigin, GraphBuilder, ManualClock, Node, NodeConfig, NodeInputError, NodeSpec, PeerId,
    Receiver, Runtime, SiteId, SlotValue, StopNodeError, SupervisionConfig, U64Value,
};

/// Upper bound on any single wait; generous so a loaded machine never flakes.
const PATIENCE: Duration = Duration::from_secs(10);

const NODES: u64 = 3;
const ASK: SiteId = SiteId::new(0);
const SERVE: SiteId = SiteId::new(1);
const EVENT: EventKind = EventKind::new(EventKind::USER_MIN);

fn u64v(v: u64) -> Box<dyn SlotValue> {
    Box::new(U64Value(v))
}

fn u64_of(value: &dyn SlotValue) -> u64 {
    value.downcast_ref::<U64Value>().unwrap().0
}

/// `Double` (x → 2x) and `Inc` (x → x + 1), on the pool.
fn arithmetic(pool: &ComputePool) -> ComputeComponent {
    ComputeComponent::new("math", pool.clone())
        .op("Double", |inputs| Ok(vec![u64v(2 * u64_of(inputs[0]))]))
        .op("Inc", |inputs| Ok(vec![u64v(u64_of(inputs[0]) + 1)]))
}

/// Peer `i` (1-based) of a ring: `ask` doubles `x` on the pool and asks the
/// next peer's `serve`, which adds one on the pool and replies; `on_event`
/// outputs every app event of kind [`EVENT`].
fn ring_node(peer: u64, pool: ComputePool) -> NodeSpec {
    let next = peer % NODES + 1;
    NodeSpec::new(move || {
        let mut b = GraphBuilder::new("ask");
        let x = b.input("x");
        let doubled = b.op("Double", [x]).domain("math").output();
        let answer = b
            .syscall("Send", [doubled])
            .attr("peer", next as i64)
            .attr("site", i64::from(SERVE.as_u32()))
            .attr("input", "x")
            .attr("request", 1)
            .output();
        b.output(answer, "answer");
        let ask = b.build().unwrap();

        let mut b = GraphBuilder::new("serve");
        let x = b.input("x");
        let plus_one = b.op("Inc", [x]).domain("math").output();
        let [to_reply, kept] = b.syscall("Tee", [plus_one]).outputs::<2>();
        b.syscall("Reply", [to_reply]).finish();
        b.output(kept, "served");
        let serve = b.build().unwrap();

        let mut b = GraphBuilder::new("on_event");
        let event = b
            .syscall("OnTrigger", [])
            .attr("kind", i64::from(EVENT.as_u32()))
            .output();
        let y = b.syscall("PassThrough", [event]).output();
        b.output(y, "event");
        let on_event = b.build().unwrap();

        Node::builder(PeerId::new(peer))
            .config(patient_config())
            .component("math", Box::new(arithmetic(&pool)))
            .graph(ask)
            .graph(serve)
            .graph(on_event)
    })
    .graph_name("ask")
    .graph_name("serve")
}

/// Request deadlines follow the measured round-trip time (clamped to at
/// least `min_budget_ns`, 1 ms by default), so on a loaded machine a request
/// queued behind fifty others could time out; these tests count answers,
/// so they give every request [`PATIENCE`].
fn patient_config() -> NodeConfig {
    let mut config = NodeConfig::default();
    config.framework.rtt.min_budget_ns = PATIENCE.as_nanos() as u64;
    config
}

/// What one Node's subscriber saw, keyed by what started each execution.
#[derive(Default)]
struct Seen {
    /// Invoke ticket → `answer`.
    answers: HashMap<u64, u64>,
    /// `(requester, served value)` of each `serve` execution.
    served: Vec<(PeerId, u64)>,
    /// Values of app events.
    events: Vec<u64>,
}

/// Receives `n` outputs from `rx` (bounded wait) into `seen`.
fn receive(rx: &Receiver<ActorOutput>, n: usize, seen: &mut Seen) {
    for _ in 0..n {
        match rx.recv_timeout(PATIENCE).unwrap() {
            ActorOutput::ExecFinished {
                origin,
                outputs,
                missing,
                ..
            } => {
                assert!(missing.is_empty(), "missing outputs {missing:?}");
                let value = u64_of(outputs[0].1.as_ref());
                match origin {
                    ExecOrigin::Ticket(ticket) => {
                        assert!(seen.answers.insert(ticket, value).is_none());
                    }
                    ExecOrigin::Envelope { from } => seen.served.push((from, value)),
                    ExecOrigin::AppEvent { kind } => {
                        assert_eq!(kind, EVENT);
                        seen.events.push(value);
                    }
                    other => panic!("unexpected origin {other:?}"),
                }
            }
            other => panic!("unexpected output {other:?}"),
        }
    }
}

#[test]
fn three_nodes_ask_each_other_through_the_pool_and_the_shutdown_accounts_for_everything() {
    const ASKS: u64 = 50;
    const EVENTS: u64 = 4;
    let runtime = Runtime::builder().compute_threads(2).build().unwrap();
    let nodes: Vec<_> = (1..=NODES)
        .map(|peer| {
            runtime
                .spawn_node(ring_node(peer, runtime.compute_pool().clone()))
                .unwrap()
        })
        .collect();
    assert_eq!(runtime.peers(), [1, 2, 3].map(PeerId::new));
    let receivers: Vec<_> = nodes.iter().map(|n| n.subscribe().unwrap()).collect();

    for (i, node) in nodes.iter().enumerate() {
        for ticket in 1..=ASKS {
            let x = 1000 * (i as u64 + 1) + ticket;
            if ticket % 2 == 0 {
                node.invoke(ASK, vec![("x".into(), u64v(x))], ticket)
                    .unwrap();
            } else {
                node.invoke_by_name("ask", vec![("x".into(), u64v(x))], ticket)
                    .unwrap();
            }
        }
        for e in 0..EVENTS {
            node.deliver_event(EVENT, u64v(e)).unwrap();
        }
    }

    for (i, (node, rx)) in nodes.iter().zip(&receivers).enumerate() {
        let mut seen = Seen::default();
        // Its own answers, the requests of its predecessor, its events.
        receive(rx, (2 * ASKS + EVENTS) as usize, &mut seen);
        for ticket in 1..=ASKS {
            let x = 1000 * (i as u64 + 1) + ticket;
            assert_eq!(seen.answers[&ticket], 2 * x + 1, "node {i} ticket {ticket}");
        }
        let previous = PeerId::new((i as u64 + NODES - 1) % NODES + 1);
        assert_eq!(seen.served.len(), ASKS as usize);
        assert!(seen.served.iter().all(|(from, _)| *from == previous));
        let prev_index = previous.as_u64() - 1;
        let mut served: Vec<u64> = seen.served.iter().map(|(_, v)| *v).collect();
        served.sort_unstable();
        let expected: Vec<u64> = (1..=ASKS)
            .map(|t| 2 * (1000 * (prev_index + 1) + t) + 1)
            .collect();
        assert_eq!(served, expected);
        seen.events.sort_unstable();
        assert_eq!(seen.events, (0..EVENTS).collect::<Vec<_>>());
        // Every request was counted before its answer came back; the last
        // responses may still be on their way out (the report counts them).
        assert!(node.stats().envelopes_out >= ASKS);
    }

    let report = runtime.shutdown(PATIENCE);
    let t = report.totals;
    let total_asks = NODES * ASKS;
    assert_eq!((t.nodes_stopped, t.nodes_failed), (3, 0));
    assert!(report.failures.is_empty());
    assert_eq!(
        report.nodes.iter().map(|r| r.peer).collect::<Vec<_>>(),
        [1, 2, 3].map(PeerId::new)
    );
    // Each ask is one request and one response, all delivered.
    assert_eq!(
        (t.envelopes_out, t.routed, t.refused),
        (2 * total_asks, 2 * total_asks, 0)
    );
    assert_eq!(report.router.routed, 2 * total_asks);
    assert_eq!(report.router.peers, 0, "every actor unregistered");
    // Asks, serves and events each ran one execution.
    assert_eq!(t.executions_finished, 2 * total_asks + NODES * EVENTS);
    assert_eq!((t.dropped_at_close, t.drains_incomplete), (0, 0));
    // Every Double and every Inc ran on the pool and was delivered.
    assert_eq!(report.compute.submitted, 2 * total_asks);
    assert_eq!(report.compute.completed, 2 * total_asks);
    assert_eq!(report.compute.undelivered, 0);
    assert!(!report.deadline_exceeded() || report.elapsed > report.deadline);
    // Handles outlive the runtime and say so.
    assert!(nodes.iter().all(|n| !n.is_running()));
    assert!(matches!(
        nodes[0].invoke(ASK, vec![("x".into(), u64v(1))], 0),
        Err(NodeInputError::Stopped { .. })
    ));
    for rx in &receivers {
        assert!(
            rx.recv_timeout(PATIENCE).is_err(),
            "subscriptions disconnect"
        );
    }
}

#[test]
fn a_full_data_lane_refuses_input_with_the_event_inside_until_the_clock_moves() {
    // The runtime's clock is virtual: the Node's bootstrap graph sleeps
    // until t = 1000 ns, and no invoke is taken before it has finished, so
    // the one-slot data lane fills deterministically.
    let clock = Arc::new(ManualClock::new());
    let runtime = Runtime::builder()
        .compute_threads(1)
        .clock(clock.clone())
        .build()
        .unwrap();
    let node = runtime
        .spawn_node(NodeSpec::new(|| {
            let mut b = GraphBuilder::new("boot");
            let seed = b.syscall("Constant", []).attr("value", 1).output();
            let woke = b
                .syscall("Sleep", [seed])
                .attr("duration_ns", 1000)
                .output();
            b.output(woke, "woke");
            let boot = b.build().unwrap();
            let mut b = GraphBuilder::new("echo");
            let x = b.input("x");
            let y = b.syscall("PassThrough", [x]).output();
            b.output(y, "y");
            Node::builder(PeerId::new(9))
                .config(NodeConfig {
                    ingress: IngressConfig {
                        data_capacity: 1,
                        ..IngressConfig::default()
                    },
                    ..NodeConfig::default()
                })
                .bootstrap_graph(boot)
                .graph(b.build().unwrap())
        }))
        .unwrap();
    let rx = node.subscribe().unwrap();
    // The sleep starts at the actor's first poll, which must see t = 0.
    let patience = Instant::now() + PATIENCE;
    while node.stats().polls == 0 {
        assert!(Instant::now() < patience, "the actor never polled");
        std::thread::sleep(Duration::from_millis(1));
    }
    let echo = SiteId::new(1);
    node.invoke(echo, vec![("x".into(), u64v(1))], 1).unwrap();
    match node.invoke(echo, vec![("x".into(), u64v(2))], 2) {
        Err(NodeInputError::Refused {
            peer,
            source: DeliverError::Refused(push),
        }) => {
            assert_eq!(peer, PeerId::new(9));
            assert!(!push.is_closed(), "the lane was full, not closed");
            assert!(matches!(
                push.into_inner(),
                IngressEvent::Invoke { ticket: 2, .. }
            ));
        }
        other => panic!("expected a full lane, got {other:?}"),
    }
    clock.set(1000);
    let mut tickets = Vec::new();
    while tickets.is_empty() {
        if let ActorOutput::ExecFinished {
            origin: ExecOrigin::Ticket(ticket),
            outputs,
            ..
        } = rx.recv_timeout(PATIENCE).unwrap()
        {
            assert_eq!(u64_of(outputs[0].1.as_ref()), 1);
            tickets.push(ticket);
        }
    }
    assert_eq!(tickets, [1], "the queued invoke ran once the Node woke");
    let report = runtime.shutdown(PATIENCE);
    assert_eq!(report.totals.nodes_stopped, 1);
    assert_eq!(report.totals.executions_finished, 2, "bootstrap and echo");
    assert_eq!(report.nodes[0].ingress.data.accepted, 1);
}

/// A value whose copy panics: the engine copies app-event values outside
/// any op, so this panic escapes the engine and stops its actor.
#[derive(Debug)]
struct Grenade;

impl SlotValue for Grenade {
    fn type_tag(&self) -> TypeTag {
        TypeTag::new(TypeTag::USER_MIN)
    }
    fn clone_value(&self) -> Box<dyn SlotValue> {
        panic!("grenade copied")
    }
    fn encode(&self, _out: &mut Vec<u8>) -> Result<(), EncodeError> {
        Ok(())
    }
    fn eq_value(&self, _other: &dyn SlotValue) -> bool {
        false
    }
}

#[test]
fn a_node_whose_engine_panicked_restarts_from_its_snapshot_and_keeps_serving() {
    let runtime = Runtime::builder().compute_threads(1).build().unwrap();
    let nodes: Vec<_> = (1..=NODES)
        .map(|peer| {
            runtime
                .spawn_node(ring_node(peer, runtime.compute_pool().clone()))
                .unwrap()
        })
        .collect();
    let snapshot = nodes[1].snapshot(PATIENCE).unwrap();
    assert!(!snapshot.is_empty());
    nodes[1].deliver_event(EVENT, Box::new(Grenade)).unwrap();
    let give_up = Instant::now() + PATIENCE;
    while nodes[1].stats().restarts == 0 {
        assert!(Instant::now() < give_up, "no restart");
        std::thread::sleep(Duration::from_millis(1));
    }
    // Peer 1 asks peer 2, which was restarted: 5 doubled, plus one.
    let rx = nodes[0].subscribe().unwrap();
    nodes[0]
        .invoke(ASK, vec![("x".into(), u64v(5))], 1)
        .unwrap();
    match rx.recv_timeout(PATIENCE).unwrap() {
        ActorOutput::ExecFinished {
            origin: ExecOrigin::Ticket(1),
            outputs,
            missing,
            ..
        } => {
            assert!(missing.is_empty(), "{missing:?}");
            assert_eq!(u64_of(outputs[0].1.as_ref()), 11);
        }
        other => panic!("unexpected {other:?}"),
    }
    let metrics = nodes[1].metrics().unwrap();
    assert_eq!((metrics.actor.panics, metrics.actor.restarts), (1, 1));

    let report = runtime.shutdown(PATIENCE);
    assert_eq!(
        (report.totals.nodes_stopped, report.totals.nodes_failed),
        (3, 0)
    );
    assert_eq!(report.totals.restarts, 1);
    assert_eq!(report.totals.lost_in_restart, 1, "the grenade");
    assert_eq!(
        report.totals.accepted,
        report.totals.processed + report.totals.dropped_at_close + report.totals.lost_in_restart
    );
}

#[test]
fn a_node_past_its_restart_intensity_is_reported_as_a_failure() {
    let runtime = Runtime::builder().compute_threads(1).build().unwrap();
    let config = ActorConfig {
        supervision: SupervisionConfig {
            max_restarts: 0,
            ..SupervisionConfig::default()
        },
        ..ActorConfig::default()
    };
    let victim = runtime
        .spawn_node(ring_node(2, runtime.compute_pool().clone()).actor_config(config))
        .unwrap();
    let outputs = victim.subscribe().unwrap();
    victim.deliver_event(EVENT, Box::new(Grenade)).unwrap();
    assert!(
        outputs.recv_timeout(PATIENCE).is_err(),
        "the actor stopped for good and disconnected its subscribers"
    );
    let report = runtime.shutdown(PATIENCE);
    match &report.failures[..] {
        [ActorError::GaveUp { message, report }] => {
            assert_eq!(report.peer, PeerId::new(2));
            assert_eq!(message, "grenade copied");
        }
        other => panic!("expected one GaveUp, got {other:?}"),
    }
    assert_eq!(report.totals.nodes_failed, 1);
}

#[test]
fn only_one_of_two_racing_stops_gets_the_report() {
    let runtime = Runtime::builder().compute_threads(1).build().unwrap();
    let node = runtime
        .spawn_node(ring_node(1, runtime.compute_pool().clone()))
        .unwrap();
    let other = node.clone();
    let racer = std::thread::spawn(move || other.stop());
    let mine = node.stop();
    let theirs = racer.join().unwrap();
    let reports = [&mine, &theirs].iter().filter(|r| r.is_ok()).count();
    assert_eq!(reports, 1, "{mine:?} / {theirs:?}");
    assert!([&mine, &theirs]
        .iter()
        .any(|r| matches!(r, Err(StopNodeError::AlreadyStopped { .. }))));
    assert!(runtime.peers().is_empty());
    let report = runtime.shutdown(PATIENCE);
    assert_eq!(report.totals.nodes_stopped, 0, "nothing left to stop");
}

#[test]
fn shutdown_waits_for_compute_jobs_in_flight_and_refuses_new_input() {
    let runtime = Runtime::builder().compute_threads(1).build().unwrap();
    let pool = runtime.compute_pool().clone();
    let node = runtime
        .spawn_node(NodeSpec::new(move || {
            let slow = ComputeComponent::new("slow", pool.clone()).op("Slow", |inputs| {
                // Long enough that the shutdown begins while it runs.
                std::thread::sleep(Duration::from_millis(30));
                Ok(vec![u64v(u64_of(inputs[0]) * 10)])
            });
            let mut b = GraphBuilder::new("slow");
            let x = b.input("x");
            let y = b.op("Slow", [x]).domain("slow").output();
            b.output(y, "y");
            Node::builder(PeerId::new(1))
                .component("slow", Box::new(slow))
                .graph(b.build().unwrap())
        }))
        .unwrap();
    let rx = node.subscribe().unwrap();
    for ticket in 1..=3 {
        node.invoke(SiteId::new(0), vec![("x".into(), u64v(ticket))], ticket)
            .unwrap();
    }
    let late = node.clone();
    let report = runtime.shutdown(PATIENCE);
    assert!(matches!(
        late.invoke(SiteId::new(0), vec![("x".into(), u64v(9))], 9),
        Err(NodeInputError::Stopped { .. } | NodeInputError::ShuttingDown { .. })
    ));
    let t = report.totals;
    assert_eq!(t.executions_finished, 3, "every op on the pool finished");
    assert_eq!((t.drain_deadlines_hit, t.abandoned_executions), (0, 0));
    assert_eq!(report.compute.completed, 3);
    assert_eq!(report.compute.undelivered, 0);
    assert_eq!(report.compute_jobs_abandoned, 0);
    assert_eq!(t.accepted, t.processed);
    let mut values = Vec::new();
    while let Ok(ActorOutput::ExecFinished { outputs, .. }) = rx.recv_timeout(PATIENCE) {
        values.push(u64_of(outputs[0].1.as_ref()));
    }
    values.sort_unstable();
    assert_eq!(values, [10, 20, 30]);
}
