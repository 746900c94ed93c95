//! Back-pressure between actor Nodes: a flood of requests against a Node
//! with a small data lane never blocks the sender's thread and loses
//! nothing: sends beyond the credit window wait at the sender, nothing is
//! refused, every request is answered, and the counts of the sender, the
//! receiver, their mailboxes and the router add up. A request to an
//! unknown peer fails at once (no deadline wait).
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
    Component, DispatchResult, ExecOrigin, FlowConfig, FrameworkConfig, Graph, GraphBuilder,
    IngressConfig, LocalOpId, Node, NodeConfig, OpError, OpErrorKind, OpInputs, OpOutputs, PeerId,
    RuntimeResourceRef, SiteId, SlotValue, U64Value,
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
fn a_flood_against_a_held_small_lane_node_waits_for_credit_and_every_request_is_answered() {
    const N: u64 = 200;
    const LANE: usize = 5;
    const WINDOW: u32 = 8;
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

    let client_node = Node::builder(CLIENT)
        .graph(client(SERVER))
        .config(NodeConfig {
            framework: FrameworkConfig {
                flow: FlowConfig {
                    window: WINDOW,
                    return_batch: 2,
                    ..FlowConfig::default()
                },
                ..FrameworkConfig::default()
            },
            ..NodeConfig::default()
        })
        .build()
        .unwrap();
    let client = spawn(client_node, &router, &clock);
    let rx = client.subscribe().unwrap();
    for ticket in 1..=N {
        client
            .invoke(SiteId::new(0), vec![("x".into(), u64v(ticket * 7))], ticket)
            .unwrap();
    }
    // While the server is held, a window's worth of requests gets in (past
    // the lane's capacity: they came with credit) and the rest wait at the
    // client for credit; nothing is refused and nothing finishes.
    let deadline = std::time::Instant::now() + PATIENCE;
    while client.stats().routed < u64::from(WINDOW) {
        assert!(
            std::time::Instant::now() < deadline,
            "the window never filled"
        );
        std::thread::yield_now();
    }
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(
        client.stats().routed,
        u64::from(WINDOW),
        "one window, no more"
    );
    assert_eq!(client.stats().refused_full, 0);
    assert!(rx.try_recv().is_err(), "nothing was answered or failed yet");

    // Open the gate: credit flows back and every request is answered.
    open.send(()).unwrap();
    let mut answered = Vec::new();
    for _ in 0..N {
        let (ticket, answer) = next_finished(&rx);
        assert_eq!(answer, Some(ticket * 7), "ticket {ticket}");
        answered.push(ticket);
    }
    answered.sort_unstable();
    assert_eq!(answered, (1..=N).collect::<Vec<_>>());

    // Stop the server first, so nothing it sends finds the client closed.
    let s = server.stop().unwrap();
    let c = client.stop().unwrap();
    let r = router.stats();

    // The client: every envelope routed, nothing refused, failed or timed out.
    assert_eq!(c.stats.envelopes_out, c.stats.routed);
    assert_eq!(
        (
            c.stats.refused_full,
            c.node.sends_refused,
            c.node.ops_failed
        ),
        (0, 0, 0)
    );
    assert_eq!(c.node.timeouts, 0);
    assert_eq!(c.node.executions_finished, N);
    assert_eq!((c.node.live_executions, c.node.parked), (0, 0));
    // Answers and credits came on the control lane, the invokes on data.
    assert_eq!(c.ingress.data.accepted, N);
    assert_eq!(c.ingress.control.accepted, s.stats.routed);
    assert_eq!((c.dropped_at_close, c.drain_incomplete), (0, false));

    // The server: it took the gate invoke plus every request, refused none,
    // and never held more than one window beside the invoke.
    assert_eq!(s.ingress.data.refused_full, 0);
    assert_eq!(s.ingress.data.accepted, N + 1);
    assert_eq!(s.ingress.data.taken, s.ingress.data.accepted);
    assert!(s.ingress.data.high_water <= WINDOW as usize + 1);
    assert_eq!(s.node.executions_finished, N + 1);
    assert_eq!(s.stats.envelopes_out, s.stats.routed);
    assert_eq!(s.node.sends_refused, 0);

    // The router: both directions, no refusals.
    assert_eq!(r.routed, c.stats.routed + s.stats.routed);
    assert_eq!(
        (
            r.refused_full,
            r.refused_unknown_peer,
            r.refused_closed,
            r.peers
        ),
        (0, 0, 0, 0)
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
