//! Flow control on real actor threads: a long one-way stream through a
//! small credit window arrives whole and in order with nothing refused
//! (back-pressure reaches the host as `Full` invokes it retries), and a
//! burst of requests through a 3-Node chain is answered, each correlated
//! to its caller, with none waiting out a deadline.
#![cfg(not(loom))] // real threads and time; the loom models live in loom-tests/
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::{u64v, PATIENCE};
use nodeflow_actors::{
    ActorConfig, ActorHandle, ActorOutput, Clock, NodeActor, Router, SystemClock,
};
use nodeflow_engine::sync::atomic::{AtomicU64, Ordering};
use nodeflow_engine::sync::Arc;
use nodeflow_engine::{
    Component, DispatchResult, ExecOrigin, FlowConfig, FrameworkConfig, Graph, GraphBuilder,
    IngressConfig, LocalOpId, Node, NodeConfig, OpError, OpErrorKind, OpInputs, OpOutputs, PeerId,
    RuntimeResourceRef, SiteId, U64Value,
};

const SENDER: PeerId = PeerId::new(1);
const RECEIVER: PeerId = PeerId::new(2);

/// Messages in the stream (the figure).
const STREAM: u64 = 1_000_000;

/// Checks that sequence numbers arrive 1, 2, 3, ... and counts them.
#[derive(Clone, Default)]
struct InOrder {
    next: Arc<AtomicU64>,
    wrong: Arc<AtomicU64>,
}

impl Component for InOrder {
    fn kind(&self) -> &str {
        "in_order"
    }

    fn resolve_op(&self, op_type: &str) -> Option<LocalOpId> {
        (op_type == "Check").then_some(LocalOpId(0))
    }

    fn dispatch_atomic(
        &mut self,
        _op: LocalOpId,
        _ctx: &mut RuntimeResourceRef<'_>,
        inputs: &mut OpInputs<'_>,
        _outputs: &mut OpOutputs<'_>,
    ) -> Result<DispatchResult, OpError> {
        let seq = inputs.get_as::<U64Value>(0)?.0;
        // Only this Node's thread writes `next`; the test reads it.
        let expected = self.next.load(Ordering::Relaxed) + 1;
        if seq != expected {
            self.wrong.fetch_add(1, Ordering::Relaxed);
        }
        self.next.store(seq, Ordering::Release);
        Ok(DispatchResult::Immediate)
    }
}

fn flow_config(window: u32, lane: usize) -> NodeConfig {
    NodeConfig {
        ingress: IngressConfig {
            data_capacity: lane,
            ..IngressConfig::default()
        },
        framework: FrameworkConfig {
            flow: FlowConfig {
                window,
                return_batch: window / 2,
                ..FlowConfig::default()
            },
            ..FrameworkConfig::default()
        },
        ..NodeConfig::default()
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

/// Invokes `handle`'s site 0 with `x`, retrying while its lane is full
/// (the host being slowed down); returns how many times it was refused.
fn invoke_patiently(handle: &ActorHandle, x: u64, ticket: u64) -> u64 {
    let give_up = Instant::now() + PATIENCE;
    let mut refused = 0;
    while handle
        .invoke(SiteId::new(0), vec![("x".into(), u64v(x))], ticket)
        .is_err()
    {
        refused += 1;
        assert!(Instant::now() < give_up, "the sender never drained");
        std::thread::yield_now();
    }
    refused
}

fn send_graph(to: PeerId, request: bool) -> Graph {
    let mut b = GraphBuilder::new("send");
    let x = b.input("x");
    let mut send = b
        .syscall("Send", [x])
        .attr("peer", to.as_u64() as i64)
        .attr("site", 0)
        .attr("input", "x");
    if request {
        send = send.attr("request", 1);
    }
    let out = send.output();
    b.output(out, "answer");
    b.build().unwrap()
}

#[test]
fn a_million_message_stream_through_a_small_window_arrives_whole_and_in_order() {
    let router = Arc::new(Router::new());
    let clock: Arc<dyn Clock> = Arc::new(SystemClock::new());
    let check = InOrder::default();
    let mut b = GraphBuilder::new("sink");
    let x = b.input("x");
    b.op("Check", [x]).domain("in_order").finish();
    let receiver = Node::builder(RECEIVER)
        .graph(b.build().unwrap())
        .component("in_order", Box::new(check.clone()))
        .config(flow_config(16, 8))
        .build()
        .unwrap();
    let receiver = spawn(receiver, &router, &clock);
    let sender = Node::builder(SENDER)
        .graph(send_graph(RECEIVER, false))
        .config(flow_config(16, 64))
        .build()
        .unwrap();
    let sender = spawn(sender, &router, &clock);

    let mut host_refused = 0;
    for seq in 1..=STREAM {
        host_refused += invoke_patiently(&sender, seq, seq);
    }
    let give_up = Instant::now() + PATIENCE * 3;
    while check.next.load(Ordering::Acquire) < STREAM {
        assert!(
            Instant::now() < give_up,
            "the stream stalled at {} of {STREAM}: sender {:?} receiver {:?}",
            check.next.load(Ordering::Acquire),
            sender.metrics(),
            receiver.metrics()
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    let s = sender.stop().unwrap();
    let r = receiver.stop().unwrap();
    assert_eq!(check.next.load(Ordering::Acquire), STREAM);
    assert_eq!(check.wrong.load(Ordering::Relaxed), 0, "in order, no gaps");
    // Nothing refused anywhere on the path, nothing failed.
    assert_eq!(
        (
            s.stats.refused_full,
            s.node.sends_refused,
            s.node.ops_failed
        ),
        (0, 0, 0)
    );
    assert_eq!(router.stats().refused_full, 0);
    assert_eq!(s.stats.routed, STREAM);
    assert_eq!(r.node.envelopes_received, STREAM);
    assert_eq!(r.ingress.data.refused_full, 0);
    // The window bounded the receiver's queue (plus nothing else: no host
    // input goes to it).
    assert!(r.ingress.data.high_water <= 16);
    // The sender's Sends waited for credit (the window, not the lane, set
    // the pace) and none is left waiting.
    assert!(s.node.sends_held > 0, "the window never ran out");
    assert!(s.node.parked == 0 && s.node.live_executions == 0);
    eprintln!("host invokes refused (and retried): {host_refused}");
}

/// B: forwards `x` to C as a request and replies with C's answer.
fn relay_graph(to: PeerId) -> Graph {
    let mut b = GraphBuilder::new("relay");
    let x = b.input("x");
    let answer = b
        .syscall("Send", [x])
        .attr("peer", to.as_u64() as i64)
        .attr("site", 0)
        .attr("input", "x")
        .attr("request", 1)
        .output();
    b.syscall("Reply", [answer]).finish();
    b.build().unwrap()
}

/// C: triples `x` and replies.
struct Triple;

impl Component for Triple {
    fn kind(&self) -> &str {
        "triple"
    }

    fn resolve_op(&self, op_type: &str) -> Option<LocalOpId> {
        (op_type == "Triple").then_some(LocalOpId(0))
    }

    fn dispatch_atomic(
        &mut self,
        _op: LocalOpId,
        _ctx: &mut RuntimeResourceRef<'_>,
        inputs: &mut OpInputs<'_>,
        outputs: &mut OpOutputs<'_>,
    ) -> Result<DispatchResult, OpError> {
        let x = inputs.get_as::<U64Value>(0)?.0;
        if x % 97 == 0 {
            // Some requests fail at the far end: their callers must learn
            // why at once, two hops away.
            return Err(OpError::new(
                OpErrorKind::InvalidInput,
                "triple.refused",
                format!("{x} is a multiple of 97"),
            ));
        }
        outputs.push(Box::new(U64Value(3 * x)))?;
        Ok(DispatchResult::Immediate)
    }
}

#[test]
fn a_burst_through_a_three_node_chain_is_answered_or_failed_typed_never_by_deadline() {
    const BURST: u64 = 1_200;
    const A: PeerId = PeerId::new(0xa);
    const B: PeerId = PeerId::new(0xb);
    const C: PeerId = PeerId::new(0xc);
    let router = Arc::new(Router::new());
    let clock: Arc<dyn Clock> = Arc::new(SystemClock::new());
    let mut b = GraphBuilder::new("triple");
    let x = b.input("x");
    let y = b.op("Triple", [x]).domain("triple").output();
    b.syscall("Reply", [y]).finish();
    // Small lanes and windows everywhere, so the burst presses on all of them.
    let c = Node::builder(C)
        .graph(b.build().unwrap())
        .component("triple", Box::new(Triple))
        .config(flow_config(8, 4))
        .build()
        .unwrap();
    let c = spawn(c, &router, &clock);
    let b = Node::builder(B)
        .graph(relay_graph(C))
        .config(flow_config(8, 4))
        .build()
        .unwrap();
    let b = spawn(b, &router, &clock);
    let a = Node::builder(A)
        .graph(send_graph(B, true))
        .config(flow_config(8, 16))
        .build()
        .unwrap();
    let a = spawn(a, &router, &clock);
    let outputs = a.subscribe().unwrap();
    let started = Instant::now();
    for ticket in 1..=BURST {
        invoke_patiently(&a, ticket, ticket);
    }
    let mut answered = 0;
    let mut failed = 0;
    let mut seen = vec![false; BURST as usize + 1];
    while answered + failed < BURST {
        if let ActorOutput::ExecFinished {
            origin: ExecOrigin::Ticket(ticket),
            outputs,
            ..
        } = outputs.recv_timeout(PATIENCE).unwrap()
        {
            assert!(!seen[ticket as usize], "ticket {ticket} finished twice");
            seen[ticket as usize] = true;
            match outputs.first() {
                Some((_, value)) => {
                    // Correlated: each answer is its own request's.
                    assert_eq!(
                        value.downcast_ref::<U64Value>(),
                        Some(&U64Value(3 * ticket))
                    );
                    answered += 1;
                }
                None => {
                    assert_eq!(ticket % 97, 0, "ticket {ticket} failed");
                    failed += 1;
                }
            }
        }
    }
    let elapsed = started.elapsed();
    let ra = a.stop().unwrap();
    let rb = b.stop().unwrap();
    let rc = c.stop().unwrap();
    assert_eq!(failed, BURST / 97);
    // Nobody timed out, nothing was refused for room: every failure was
    // the far end's typed answer, relayed.
    for report in [&ra, &rb, &rc] {
        assert_eq!(
            report.node.timeouts, 0,
            "{}: a deadline was awaited",
            report.peer
        );
        assert_eq!(report.stats.refused_full, 0);
        assert_eq!(report.node.sends_refused, 0);
    }
    assert_eq!(
        ra.node.ops_failed, failed,
        "each failure once, at the caller"
    );
    assert!(
        elapsed < Duration::from_millis(500 * 4),
        "the burst took {elapsed:?}: failures must not wait for deadlines"
    );
}
