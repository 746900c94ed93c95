//! Actor Nodes on their own threads exchange requests and responses through
//! the router; refusals (unknown peer, full lane) are typed, counted and
//! never block; a manual clock drives timers deterministically; a panic
//! escaping the engine stops only its actor.
//!
//! Every wait is bounded by [`PATIENCE`]; assertions are on counts, never
//! on elapsed time.
#![cfg(not(loom))] // real threads and time; the loom models live in loom-tests/
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::Grenade;

use nodeflow_actors::{
    ActorConfig, ActorError, ActorHandle, ActorOutput, Clock, ManualClock, NodeActor, Router,
    SystemClock,
};
use nodeflow_engine::sync::channel::Receiver;
use nodeflow_engine::sync::Arc;
use nodeflow_engine::{
    ByteBudget, EventKind, ExecOrigin, Graph, GraphBuilder, IngressConfig, IngressEvent,
    IngressQueue, Node, PeerId, SiteId, SlotValue, U64Value,
};

/// Upper bound on any single wait; generous so a loaded machine never flakes.
const PATIENCE: Duration = Duration::from_secs(5);

const CLIENT: PeerId = PeerId::new(0xa);
const SERVER: PeerId = PeerId::new(0xb);
const NOBODY: PeerId = PeerId::new(0xc);
const SINK: PeerId = PeerId::new(0xd);

/// `x` is sent to `to`'s site 0 as a request; the response is `answer`.
fn client(to: PeerId, timeout_ns: i64) -> Graph {
    client_named("client", to, timeout_ns)
}

fn client_named(name: &str, to: PeerId, timeout_ns: i64) -> Graph {
    let mut b = GraphBuilder::new(name);
    let x = b.input("x");
    let answer = b
        .syscall("Send", [x])
        .attr("peer", to.as_u64() as i64)
        .attr("site", 0)
        .attr("input", "x")
        .attr("request", 1)
        .attr("timeout_ns", timeout_ns)
        .output();
    b.output(answer, "answer");
    b.build().unwrap()
}

/// Echoes `x` back to the requester and also outputs it as `seen`.
fn echo_server() -> Graph {
    let mut b = GraphBuilder::new("server");
    let x = b.input("x");
    let [to_reply, kept] = b.syscall("Tee", [x]).outputs::<2>();
    b.syscall("Reply", [to_reply]).finish();
    b.output(kept, "seen");
    b.build().unwrap()
}

fn node(peer: PeerId, graphs: Vec<Graph>) -> Node {
    graphs
        .into_iter()
        .fold(Node::builder(peer), |b, g| b.graph(g))
        .build()
        .unwrap()
}

fn spawn(node: Node, router: &Arc<Router>, clock: Arc<dyn Clock>) -> ActorHandle {
    NodeActor::spawn(node, Arc::clone(router), clock, ActorConfig::default()).unwrap()
}

fn u64v(v: u64) -> Box<dyn SlotValue> {
    Box::new(U64Value(v))
}

/// Receives `n` finished executions (bounded wait), keyed by invoke ticket:
/// ticket → (output value if any, missing names).
fn finished_by_ticket(
    rx: &Receiver<ActorOutput>,
    n: usize,
) -> HashMap<u64, (Option<u64>, Vec<String>)> {
    let mut seen = HashMap::new();
    while seen.len() < n {
        match rx.recv_timeout(PATIENCE).unwrap() {
            ActorOutput::ExecFinished {
                origin: ExecOrigin::Ticket(ticket),
                outputs,
                missing,
                ..
            } => {
                let value = outputs
                    .first()
                    .and_then(|(_, v)| v.downcast_ref::<U64Value>())
                    .map(|v| v.0);
                assert!(
                    seen.insert(ticket, (value, missing)).is_none(),
                    "ticket {ticket} twice"
                );
            }
            other => panic!("unexpected output {other:?}"),
        }
    }
    seen
}

#[test]
fn n_requests_are_all_answered_correlated_and_accounted_for() {
    const N: u64 = 200;
    let router = Arc::new(Router::new());
    let clock: Arc<dyn Clock> = Arc::new(SystemClock::new());
    let server = spawn(
        node(SERVER, vec![echo_server()]),
        &router,
        Arc::clone(&clock),
    );
    let client = spawn(
        node(CLIENT, vec![client(SERVER, 5_000_000_000)]),
        &router,
        clock,
    );
    let server_rx = server.subscribe().unwrap();
    let rx = client.subscribe().unwrap();
    for ticket in 1..=N {
        client
            .invoke(SiteId::new(0), vec![("x".into(), u64v(ticket * 3))], ticket)
            .unwrap();
    }

    // Every request got its own answer back: ticket t sent 3t.
    let answers = finished_by_ticket(&rx, N as usize);
    for ticket in 1..=N {
        assert_eq!(
            answers[&ticket],
            (Some(ticket * 3), vec![]),
            "ticket {ticket}"
        );
    }
    // The server ran once per request.
    let mut served = 0;
    while served < N {
        let out = server_rx.recv_timeout(PATIENCE).unwrap();
        assert!(matches!(
            out,
            ActorOutput::ExecFinished {
                origin: ExecOrigin::Envelope { from: CLIENT },
                ..
            }
        ));
        served += 1;
    }

    // The metrics snapshot: the server took N envelopes and fired its ops;
    // the client's mailbox took every invoke and answer.
    let give_up = std::time::Instant::now() + PATIENCE;
    let m = loop {
        let m = server.metrics();
        // Node counters are published before the actor sleeps.
        if m.node.envelopes_received == N || std::time::Instant::now() > give_up {
            break m;
        }
        std::thread::sleep(Duration::from_millis(1));
    };
    assert_eq!(m.peer, SERVER);
    assert_eq!(m.node.envelopes_received, N);
    assert!(m.node.ops_fired >= 2 * N, "Tee and Reply per request");
    assert_eq!(m.actor.envelopes_out, N);
    assert!(m.actor.polls >= 1 && m.actor.poll_ns > 0);
    assert!(m.ingress_high_water >= 1 && m.ingress_high_water <= m.ingress_capacity);
    assert_eq!(m.ingress.data.accepted, N);
    let account = m.account(0);
    assert_eq!(account.accepted, account.processed + account.queued);
    let cm = client.metrics();
    // Invokes on the data lane; answers (and credits) on the control lane.
    assert_eq!(cm.ingress.data.accepted, N);
    assert!(cm.ingress.control.accepted >= N);
    assert!(cm.mean_queue_wait_ns() < PATIENCE.as_nanos() as u64);

    let client_report = client.stop().unwrap();
    let server_report = server.stop().unwrap();
    // Client: N requests out, all routed; N answers forwarded.
    let c = client_report.stats;
    assert_eq!((c.envelopes_out, c.routed), (N, N));
    assert_eq!(
        c.refused_full + c.refused_unknown_peer + c.refused_closed,
        0
    );
    assert_eq!((c.outputs_forwarded, c.outputs_unobserved), (N, 0));
    assert!(c.polls >= 1);
    assert_eq!(client_report.node.executions_finished, N);
    // Its data lane took N invokes, its control lane the N responses.
    assert_eq!(client_report.ingress.data.accepted, N);
    assert_eq!(client_report.ingress.data.taken, N);
    assert_eq!(client_report.ingress.control.accepted, N);
    assert_eq!(client_report.dropped_at_close, 0);
    assert!(!client_report.drain_incomplete);
    // Server: N requests in, N responses routed.
    let s = server_report.stats;
    assert_eq!((s.envelopes_out, s.routed, s.outputs_forwarded), (N, N, N));
    assert_eq!(server_report.ingress.data.accepted, N);
    assert_eq!(server_report.node.executions_finished, N);
    // The router saw exactly both directions, and both actors unregistered.
    let r = router.stats();
    assert_eq!((r.routed, r.peers), (2 * N, 0));
}

#[test]
fn unknown_peers_are_refused_typed_and_an_undrained_peer_costs_a_window_and_deadlines() {
    let router = Arc::new(Router::new());
    // A registered Node nobody drains, with room for one envelope.
    let sink = Arc::new(IngressQueue::new(
        IngressConfig {
            data_capacity: 1,
            ..IngressConfig::default()
        },
        ByteBudget::new(1 << 20),
    ));
    router.register(SINK, Arc::clone(&sink)).unwrap();
    // Requests to nobody fail at once (typed); those to the sink come with
    // credit, so its full lane takes them, and they wait for their short
    // deadline, since nobody drains it.
    let timeout_ns = 20_000_000;
    let sender = spawn(
        node(
            CLIENT,
            vec![
                client_named("to_nobody", NOBODY, timeout_ns),
                client_named("to_sink", SINK, timeout_ns),
            ],
        ),
        &router,
        Arc::new(SystemClock::new()),
    );
    let rx = sender.subscribe().unwrap();
    for ticket in 1..=3 {
        sender
            .invoke(SiteId::new(0), vec![("x".into(), u64v(ticket))], ticket)
            .unwrap();
    }
    for ticket in 11..=13 {
        sender
            .invoke(SiteId::new(1), vec![("x".into(), u64v(ticket))], ticket)
            .unwrap();
    }
    // All six executions end, each missing its answer: nothing blocked.
    let done = finished_by_ticket(&rx, 6);
    assert!(done
        .values()
        .all(|(v, missing)| v.is_none() && missing == &["answer".to_owned()]));

    let stats = sender.stats();
    assert!(
        stats.timeouts >= 1,
        "the routed request's deadline was awaited, not spun on"
    );
    assert_eq!(stats.envelopes_out, 6);
    assert_eq!(stats.refused_unknown_peer, 3);
    assert_eq!(
        (stats.routed, stats.refused_full),
        (3, 0),
        "credited requests are not refused for the lane's room"
    );
    assert_eq!(stats.refused_closed, 0);
    let r = router.stats();
    assert_eq!(
        (r.routed, r.refused_full, r.refused_unknown_peer),
        (3, 0, 3)
    );
    assert_eq!(sink.data_len(), 3, "one window bounds what it holds");
    // The first is the first request to the sink, moved as a value.
    assert!(
        matches!(sink.try_pop(), Some(IngressEvent::Envelope(e)) if e.src == CLIENT && e.dst == SINK)
    );

    let report = sender.stop().unwrap();
    assert_eq!(
        report.stats.envelopes_out,
        report.stats.routed
            + report.stats.refused_full
            + report.stats.refused_unknown_peer
            + report.stats.refused_closed
    );
}

#[test]
fn an_interval_fires_only_when_the_manual_clock_reaches_it() {
    let mut b = GraphBuilder::new("tick");
    let t = b.syscall("Interval", []).attr("period_ns", 100).output();
    let y = b.syscall("PassThrough", [t]).output();
    b.output(y, "tick");
    let tick = b.build().unwrap();
    let mut b = GraphBuilder::new("echo");
    let x = b.input("x");
    let y = b.syscall("PassThrough", [x]).output();
    b.output(y, "y");
    let echo = b.build().unwrap();

    let router = Arc::new(Router::new());
    let clock = Arc::new(ManualClock::new());
    let actor = spawn(node(SERVER, vec![tick, echo]), &router, clock.clone());
    let rx = actor.subscribe().unwrap();
    let echo_site = SiteId::new(1);
    let mut ticks = 0;
    // Mail is handled in order, so once the echo is back every tick of an
    // earlier poll has been forwarded.
    let sync = |ticks: &mut u64| {
        actor
            .invoke(echo_site, vec![("x".into(), u64v(0))], 0)
            .unwrap();
        loop {
            match rx.recv_timeout(PATIENCE).unwrap() {
                ActorOutput::ExecFinished {
                    origin: ExecOrigin::Timer { .. },
                    ..
                } => *ticks += 1,
                ActorOutput::ExecFinished {
                    origin: ExecOrigin::Ticket(_),
                    ..
                } => return,
                other => panic!("unexpected {other:?}"),
            }
        }
    };
    sync(&mut ticks);
    assert_eq!(ticks, 0, "no time has passed");
    clock.set(99);
    sync(&mut ticks);
    assert_eq!(ticks, 0, "one nanosecond early");

    clock.set(100);
    let wait_ticks = |want: u64, ticks: &mut u64| {
        while *ticks < want {
            match rx.recv_timeout(PATIENCE).unwrap() {
                ActorOutput::ExecFinished {
                    origin: ExecOrigin::Timer { .. },
                    ..
                } => *ticks += 1,
                other => panic!("unexpected {other:?}"),
            }
        }
    };
    wait_ticks(1, &mut ticks);
    // A jump over 2.5 periods catches up the two missed ticks, no more.
    clock.advance(250);
    wait_ticks(3, &mut ticks);
    sync(&mut ticks);
    assert_eq!(ticks, 3);

    let report = actor.stop().unwrap();
    assert_eq!(
        report.node.executions_finished,
        3 + 3,
        "three ticks, three echoes"
    );
    assert_eq!(
        report.stats.timeouts, 0,
        "a manual clock never times a wait out"
    );
    // The stopped actor's queue is pruned from the clock on the next advance.
    clock.advance(1);
    assert_eq!(clock.stats().watchers, 0);
}

#[test]
fn a_panic_escaping_the_engine_stops_only_that_actor() {
    let kind = EventKind::new(EventKind::USER_MIN);
    let mut b = GraphBuilder::new("on_event");
    let t = b
        .syscall("OnTrigger", [])
        .attr("kind", i64::from(kind.as_u32()))
        .output();
    let y = b.syscall("PassThrough", [t]).output();
    b.output(y, "y");
    let router = Arc::new(Router::new());
    let clock: Arc<dyn Clock> = Arc::new(SystemClock::new());
    let victim = spawn(
        node(CLIENT, vec![b.build().unwrap()]),
        &router,
        Arc::clone(&clock),
    );
    let server = spawn(node(SERVER, vec![echo_server()]), &router, clock);
    let rx = victim.subscribe().unwrap();

    victim
        .ingress()
        .push_data(IngressEvent::AppEvent {
            kind,
            value: Box::new(Grenade),
        })
        .unwrap();
    // The actor thread exits: its subscription disconnects.
    assert!(rx.recv_timeout(PATIENCE).is_err());
    assert!(
        !router.contains(CLIENT),
        "the dead actor unregistered itself"
    );
    assert!(router.contains(SERVER));
    match victim.stop() {
        Err(ActorError::Panicked {
            message, report, ..
        }) => {
            assert_eq!(report.peer, CLIENT);
            assert_eq!(message, "grenade copied");
        }
        other => panic!("expected a panic report, got {other:?}"),
    }
    // The other actor is unaffected.
    assert!(server.stop().is_ok());
}

#[test]
fn data_queued_while_the_node_bootstraps_does_not_make_the_actor_spin() {
    let mut boot = GraphBuilder::new("boot");
    let seed = boot.syscall("Constant", []).attr("value", 7).output();
    let slept = boot
        .syscall("Sleep", [seed])
        .attr("duration_ns", 1_000i64)
        .output();
    boot.output(slept, "ready");
    let node = Node::builder(CLIENT)
        .bootstrap_graph(boot.build().unwrap())
        .graph(echo_server())
        .build()
        .unwrap();
    let clock = Arc::new(ManualClock::new());
    let router = Arc::new(Router::new());
    let dyn_clock: Arc<dyn Clock> = clock.clone();
    let handle = spawn(node, &router, dyn_clock);
    let rx = handle.subscribe().unwrap();
    let body = SiteId::new(1);
    handle.invoke(body, vec![("x".into(), u64v(5))], 1).unwrap();
    // However long the bootstrap waits on its timer, the queued invoke must
    // not wake the actor again and again (it cannot take data yet).
    std::thread::sleep(Duration::from_millis(30));
    let stats = handle.stats();
    assert!(stats.wakeups <= 3, "the actor spun: {stats:?}");
    assert!(stats.polls <= 4, "the actor spun: {stats:?}");
    clock.advance(1_000);
    let mut tickets = Vec::new();
    while tickets.is_empty() {
        if let ActorOutput::ExecFinished {
            origin: ExecOrigin::Ticket(t),
            ..
        } = rx.recv_timeout(PATIENCE).unwrap()
        {
            tickets.push(t);
        }
    }
    assert_eq!(tickets, vec![1], "the body ran once the bootstrap finished");
    handle.stop().unwrap();
}
