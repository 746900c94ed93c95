//! Back-pressure between actor Nodes: a flood of requests against a Node
//! with a small data lane never blocks the sender's thread and loses
//! nothing unaccounted. Every request gets its answer or a typed refusal
//! failure on the sender at once (no deadline wait), and the counts of the
//! sender, the receiver, their mailboxes and the router add up.
//!
//! The receiver is made slow deterministically, without sleeps: a gate op
//! holds its thread until the test opens the gate, so exactly its lane's
//! capacity of requests gets in while it is held. Every wait is bounded by
//! [`PATIENCE`].
#![cfg(not(loom))] // real threads and time; the loom models live in loom-tests/
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use nodeflow_actors::{
    ActorConfig, ActorHandle, ActorOutput, Clock, NodeActor, Router, SystemClock,
};
use nodeflow_engine::sync::channel::{unbounded, Receiver, Sender};
use nodeflow_engine::sync::Arc;
use nodeflow_engine::{
    Component, DispatchResult, ExecOrigin, Graph, GraphBuilder, IngressConfig, LocalOpId, Node,
    NodeConfig, OpError, OpErrorKind, OpInputs, OpOutputs, PeerId, RuntimeResourceRef, SiteId,
    SlotValue, U64Value,
};

/// Upper bound on any single wait.
const PATIENCE: Duration = Duration::from_secs(10);

const CLIENT: PeerId = PeerId::new(0xa);
const SERVER: PeerId = PeerId::new(0xb);
const NOBODY: PeerId = PeerId::new(0xc);

/// Send deadline: far beyond any wait of the test, so no request can end
/// by timing out while the test runs.
const SEND_TIMEOUT_NS: i64 = 120_000_000_000;

/// `x` is sent to `to`'s site 0 as a request; the response is `answer`.
fn client(to: PeerId) -> Graph {
    let mut b = GraphBuilder::new("client");
    let x = b.input("x");
    let answer = b
        .syscall("Send", [x])
        .attr("peer", to.as_u64() as i64)
        .attr("site", 0)
        .attr("input", "x")
        .attr("request", 1)
        .attr("timeout_ns", SEND_TIMEOUT_NS)
        .output();
    b.output(answer, "answer");
    b.build().unwrap()
}

/// Site 0: echoes `x` back to the requester. Site 1: holds the thread in
/// the gate op.
fn server_graphs() -> Vec<Graph> {
    let mut b = GraphBuilder::new("echo");
    let x = b.input("x");
    b.syscall("Reply", [x]).finish();
    let echo = b.build().unwrap();
    let mut b = GraphBuilder::new("hold");
    let x = b.input("x");
    let y = b.op("Hold", [x]).domain("gate").output();
    b.output(y, "held");
    vec![echo, b.build().unwrap()]
}

/// A component whose one op tells the test it has started, then blocks its
/// thread until the test opens the gate (bounded by [`PATIENCE`]).
struct Gate {
    entered: Sender<()>,
    open: Receiver<()>,
}

impl Component for Gate {
    fn kind(&self) -> &str {
        "gate"
    }

    fn resolve_op(&self, op_type: &str) -> Option<LocalOpId> {
        (op_type == "Hold").then_some(LocalOpId(0))
    }

    fn dispatch_atomic(
        &mut self,
        _op: LocalOpId,
        _ctx: &mut RuntimeResourceRef<'_>,
        _inputs: &mut OpInputs<'_>,
        outputs: &mut OpOutputs<'_>,
    ) -> Result<DispatchResult, OpError> {
        let _ = self.entered.send(());
        self.open.recv_timeout(PATIENCE).map_err(|_| {
            OpError::new(
                OpErrorKind::Failed,
                "gate.never_opened",
                "the test never opened the gate",
            )
        })?;
        outputs.push(Box::new(U64Value(0)))?;
        Ok(DispatchResult::Immediate)
    }
}

fn spawn(node: Node, router: &Arc<Router>, clock: &Arc<dyn Clock>) -> ActorHandle {
    NodeActor::spawn(
        node,
        Arc::clone(router),
        Arc::clone(clock),
        ActorConfig::default(),
    )
    .unwrap()
}

fn u64v(v: u64) -> Box<dyn SlotValue> {
    Box::new(U64Value(v))
}

/// Waits (bounded) for the next finished execution of an invoke: its
/// ticket and answer, if it got one.
fn next_finished(rx: &Receiver<ActorOutput>) -> (u64, Option<u64>) {
    loop {
        match rx.recv_timeout(PATIENCE).unwrap() {
            ActorOutput::ExecFinished {
                origin: ExecOrigin::Ticket(ticket),
                outputs,
                missing,
                ..
            } => {
                let answer = outputs
                    .first()
                    .and_then(|(_, v)| v.downcast_ref::<U64Value>())
                    .map(|v| v.0);
                assert_eq!(answer.is_none(), missing == ["answer".to_owned()]);
                return (ticket, answer);
            }
            ActorOutput::ExecFinished { .. } => {}
            other => panic!("unexpected output {other:?}"),
        }
    }
}

#[test]
fn a_flood_against_a_slow_small_lane_node_is_answered_or_refused_and_accounted_for() {
    const N: u64 = 200;
    const LANE: usize = 5;
    let router = Arc::new(Router::new());
    let clock: Arc<dyn Clock> = Arc::new(SystemClock::new());
    let (entered_tx, entered) = unbounded();
    let (open, open_rx) = unbounded();
    let server_node = server_graphs()
        .into_iter()
        .fold(Node::builder(SERVER), |b, g| b.graph(g))
        .component(
            "gate",
            Box::new(Gate {
                entered: entered_tx,
                open: open_rx,
            }),
        )
        .config(NodeConfig {
            ingress: IngressConfig {
                data_capacity: LANE,
                ..IngressConfig::default()
            },
            ..NodeConfig::default()
        })
        .build()
        .unwrap();
    let server = spawn(server_node, &router, &clock);
    // Hold the server's thread: from now on nothing leaves its lane.
    server
        .invoke(SiteId::new(1), vec![("x".into(), u64v(0))], 0)
        .unwrap();
    entered.recv_timeout(PATIENCE).unwrap();

    let client_node = Node::builder(CLIENT).graph(client(SERVER)).build().unwrap();
    let client = spawn(client_node, &router, &clock);
    let rx = client.subscribe().unwrap();
    for ticket in 1..=N {
        client
            .invoke(SiteId::new(0), vec![("x".into(), u64v(ticket * 7))], ticket)
            .unwrap();
    }

    // While the server is held, every request that did not fit in its lane
    // fails on the client at once: the client's thread never waited on it.
    let held = N - LANE as u64;
    let mut refused = Vec::new();
    for _ in 0..held {
        let (ticket, answer) = next_finished(&rx);
        assert_eq!(
            answer, None,
            "ticket {ticket} was answered while the server was held"
        );
        refused.push(ticket);
    }
    let stats = client.stats();
    assert_eq!(
        stats.routed, LANE as u64,
        "exactly the lane's capacity got in"
    );
    assert!(stats.refused_full >= 1);

    // Open the gate: the server drains its lane and answers what got in.
    open.send(()).unwrap();
    let mut answered = Vec::new();
    for _ in 0..LANE {
        let (ticket, answer) = next_finished(&rx);
        assert_eq!(answer, Some(ticket * 7), "ticket {ticket}");
        answered.push(ticket);
    }
    // Every request accounted for exactly once: answered or refused.
    let mut all: Vec<u64> = refused.iter().chain(&answered).copied().collect();
    all.sort_unstable();
    assert_eq!(all, (1..=N).collect::<Vec<_>>());
    assert_eq!(answered.len() + refused.len(), N as usize);

    // Stop the server first, so nothing it sends finds the client closed.
    let s = server.stop().unwrap();
    let c = client.stop().unwrap();
    let r = router.stats();

    // The client: every envelope routed or refused; every refusal handed
    // back to its Node and counted there; no request waited for a deadline.
    assert_eq!(c.stats.envelopes_out, c.stats.routed + c.stats.refused_full);
    assert_eq!(c.stats.routed, LANE as u64);
    assert_eq!(
        (c.stats.refused_unknown_peer, c.stats.refused_closed),
        (0, 0)
    );
    assert_eq!(c.node.sends_refused, c.stats.refused_full);
    assert_eq!(c.node.timeouts, 0);
    // Each refused request failed its Send op (refused by the router, or
    // by the back-off a refusal set, before it was even sent).
    assert_eq!(c.node.ops_failed, held);
    assert!(c.node.ops_failed >= c.node.sends_refused);
    assert_eq!(c.node.executions_finished, N);
    assert_eq!((c.node.live_executions, c.node.parked), (0, 0));
    // Its mailbox took the N invokes and everything the server routed to it.
    assert_eq!(c.ingress.data.accepted, N + s.stats.routed);
    assert_eq!(c.ingress.data.taken, c.ingress.data.accepted);
    assert_eq!((c.dropped_at_close, c.drain_incomplete), (0, false));

    // The server: its lane refused exactly what the client was told about,
    // took the gate invoke plus what fit, and ran each of them once.
    assert_eq!(s.ingress.data.refused_full, c.node.sends_refused);
    assert_eq!(s.ingress.data.accepted, LANE as u64 + 1);
    assert_eq!(s.ingress.data.taken, s.ingress.data.accepted);
    assert_eq!(s.ingress.data.high_water, LANE);
    assert_eq!(s.node.executions_finished, LANE as u64 + 1);
    // It answered every request (plus any back-off notice and clear) and
    // none of its envelopes was refused.
    assert!(s.stats.routed >= LANE as u64);
    assert_eq!(s.stats.envelopes_out, s.stats.routed);
    assert_eq!(s.node.sends_refused, 0);
    assert_eq!((s.dropped_at_close, s.drain_incomplete), (0, false));

    // The router: both directions, and the same refusals.
    assert_eq!(r.routed, c.stats.routed + s.stats.routed);
    assert_eq!(r.refused_full, c.stats.refused_full);
    assert_eq!(
        (r.refused_unknown_peer, r.refused_closed, r.peers),
        (0, 0, 0)
    );
}

#[test]
fn a_request_to_an_unknown_peer_fails_at_once_not_at_its_deadline() {
    const N: u64 = 3;
    let router = Arc::new(Router::new());
    let clock: Arc<dyn Clock> = Arc::new(SystemClock::new());
    let node = Node::builder(CLIENT).graph(client(NOBODY)).build().unwrap();
    let client = spawn(node, &router, &clock);
    let rx = client.subscribe().unwrap();
    for ticket in 1..=N {
        client
            .invoke(SiteId::new(0), vec![("x".into(), u64v(ticket))], ticket)
            .unwrap();
    }
    // The deadline is two minutes away; each ends within the bounded wait.
    for _ in 0..N {
        assert_eq!(next_finished(&rx).1, None);
    }
    let report = client.stop().unwrap();
    assert!(report.stats.refused_unknown_peer >= 1);
    assert_eq!(report.node.sends_refused, report.stats.refused_unknown_peer);
    assert_eq!(
        report.stats.envelopes_out,
        report.stats.routed + report.stats.refused_unknown_peer
    );
    assert_eq!(report.node.timeouts, 0);
    assert_eq!(report.node.ops_failed, N);
    assert_eq!(
        router.stats().refused_unknown_peer,
        report.stats.refused_unknown_peer
    );
}
