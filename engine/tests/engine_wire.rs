//! Wire between Nodes, driven by a deterministic sans-IO harness: a
//! simulated clock and envelopes moved by the test. Values are sent,
//! received, answered and correlated; requests time out; deadlines
//! propagate; RTT is learned; back-pressure notices are emitted, honoured
//! and cleared.
#![allow(clippy::unwrap_used)]

mod common;

use common::{as_u64, failures, u64v, Math};
use nodeflow_engine::{
    encode_envelope, Envelope, EnvelopeKind, ExecId, FlowConfig, FrameworkConfig, GraphBuilder,
    IngressConfig, Node, NodeConfig, NodeSiteId, OpErrorKind, PeerId, SiteId, Step, WireLimits,
};

/// Several Nodes, a simulated clock and a one-hop network with a fixed latency.
struct Net {
    nodes: Vec<Node>,
    now: u64,
    latency: u64,
    /// Envelopes in flight: (deliver at, envelope).
    in_flight: Vec<(u64, Envelope)>,
    /// Every step any Node produced, with the Node's index.
    log: Vec<(usize, Step)>,
    /// Alternate in-process and encoded delivery.
    encode_next: bool,
    delivered: usize,
}

impl Net {
    fn new(nodes: Vec<Node>, latency: u64) -> Self {
        Self {
            nodes,
            now: 0,
            latency,
            in_flight: Vec::new(),
            log: Vec::new(),
            encode_next: false,
            delivered: 0,
        }
    }

    fn index_of(&self, peer: PeerId) -> usize {
        self.nodes.iter().position(|n| n.peer() == peer).unwrap()
    }

    /// Polls every Node until idle at the current time, moving sent envelopes into flight.
    fn settle(&mut self) {
        loop {
            let mut busy = false;
            for i in 0..self.nodes.len() {
                while self.nodes[i].has_work()
                    || self.nodes[i].next_deadline().is_some_and(|d| d <= self.now)
                {
                    busy = true;
                    let steps: Vec<Step> = self.nodes[i].poll(self.now).collect();
                    for step in steps {
                        match step {
                            Step::SendEnvelope(envelope) => {
                                self.in_flight.push((self.now + self.latency, envelope));
                            }
                            other => self.log.push((i, other)),
                        }
                    }
                }
            }
            // Deliver what has arrived by now.
            let (due, later): (Vec<_>, Vec<_>) = self
                .in_flight
                .drain(..)
                .partition(|(at, _)| *at <= self.now);
            self.in_flight = later;
            for (_, envelope) in due {
                busy = true;
                let to = self.index_of(envelope.dst);
                self.delivered += 1;
                if self.encode_next {
                    let mut bytes = Vec::new();
                    encode_envelope(&envelope, &WireLimits::default(), &mut bytes).unwrap();
                    self.nodes[to].deliver_envelope_bytes(&bytes).unwrap();
                } else {
                    self.nodes[to].deliver_envelope(envelope).unwrap();
                }
                self.encode_next = !self.encode_next;
            }
            if !busy {
                return;
            }
        }
    }

    /// Runs the network until `limit`: advances the clock from one deadline
    /// or arrival to the next (never past `limit`), settling at each.
    fn run_until(&mut self, limit: u64) {
        for _ in 0..10_000 {
            self.settle();
            let next = self
                .nodes
                .iter()
                .filter_map(Node::next_deadline)
                .chain(self.in_flight.iter().map(|(at, _)| *at))
                .min();
            match next {
                Some(at) if at <= limit => self.now = self.now.max(at),
                _ => {
                    self.now = self.now.max(limit);
                    self.settle();
                    return;
                }
            }
        }
        panic!("the network is still busy at {} ns", self.now);
    }

    /// Outputs of finished executions on Node `i`: (exec, name, value).
    fn outputs(&self, i: usize) -> Vec<(ExecId, String, Option<u64>)> {
        self.log
            .iter()
            .filter(|(n, _)| *n == i)
            .filter_map(|(_, step)| match step {
                Step::ExecFinished { exec, outputs, .. } => Some(
                    outputs
                        .iter()
                        .map(|(name, v)| (*exec, name.clone(), as_u64(v.as_ref())))
                        .collect::<Vec<_>>(),
                ),
                _ => None,
            })
            .flatten()
            .collect()
    }

    fn steps(&self, i: usize) -> Vec<&Step> {
        self.log
            .iter()
            .filter(|(n, _)| *n == i)
            .map(|(_, s)| s)
            .collect()
    }
}

const A: PeerId = PeerId::new(0xa);
const B: PeerId = PeerId::new(0xb);
const C: PeerId = PeerId::new(0xc);

/// Client graph: `x` is sent to `to`'s site 0 input `x` as a request; the
/// response is the output `answer`.
fn client(to: PeerId, timeout_ns: i64) -> nodeflow_engine::Graph {
    let mut b = GraphBuilder::new("client");
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

/// Server graph: doubles `x` and replies; the doubled value is also an output.
fn doubler() -> nodeflow_engine::Graph {
    let mut b = GraphBuilder::new("server");
    let x = b.input("x");
    let d = b.op("Double", [x]).domain("math").output();
    let [to_reply, kept] = b.syscall("Tee", [d]).outputs::<2>();
    b.syscall("Reply", [to_reply]).finish();
    b.output(kept, "doubled");
    b.build().unwrap()
}

fn node(peer: PeerId, graph: nodeflow_engine::Graph, config: NodeConfig) -> Node {
    Node::builder(peer)
        .component("math", Box::new(Math::default()))
        .graph(graph)
        .config(config)
        .build()
        .unwrap()
}

#[test]
fn a_request_is_received_answered_and_correlated() {
    let mut net = Net::new(
        vec![
            node(A, client(B, 1_000_000), NodeConfig::default()),
            node(B, doubler(), NodeConfig::default()),
        ],
        1_000,
    );
    let exec = net.nodes[0]
        .invoke(SiteId::new(0), vec![("x".into(), u64v(21))])
        .unwrap();
    net.run_until(10_000);
    // B received 21 and doubled it; A got 42 back as the Send op's output.
    assert_eq!(
        net.outputs(1).iter().map(|o| o.2).collect::<Vec<_>>(),
        vec![Some(42)]
    );
    assert_eq!(net.outputs(0), vec![(exec, "answer".into(), Some(42))]);
    // One request out, one response back; the tracker is empty again.
    assert_eq!(net.delivered, 2);
    assert_eq!(net.nodes[0].framework().requests().stats().resolved, 1);
    assert!(net.nodes[0].framework().requests().is_empty());
    // The round trip (2 × 1 µs latency) fed the RTT tracker.
    let target = NodeSiteId::new(B, SiteId::new(0));
    assert_eq!(
        net.nodes[0]
            .framework()
            .rtt()
            .estimate_budget_ns(target, None, 7),
        500_000_000,
        "the estimate (2 µs + 4 × 1 µs) is clamped up to the 500 ms floor"
    );
    assert_ne!(
        net.nodes[0]
            .framework()
            .rtt()
            .estimate_budget_ns(target, None, 7),
        7,
        "the static default is no longer used"
    );
}

#[test]
fn many_requests_are_correlated_to_their_own_callers() {
    let mut net = Net::new(
        vec![
            node(A, client(B, 1_000_000), NodeConfig::default()),
            node(B, doubler(), NodeConfig::default()),
        ],
        500,
    );
    let execs: Vec<ExecId> = (1..=20u64)
        .map(|x| {
            net.nodes[0]
                .invoke(SiteId::new(0), vec![("x".into(), u64v(x))])
                .unwrap()
        })
        .collect();
    net.run_until(100_000);
    let answers = net.outputs(0);
    assert_eq!(answers.len(), 20);
    for (exec, _, value) in answers {
        let x = execs.iter().position(|e| *e == exec).unwrap() as u64 + 1;
        assert_eq!(value, Some(2 * x));
    }
}

#[test]
fn a_handler_that_never_replies_fails_its_caller_at_once_and_a_late_answer_is_reported() {
    // B's graph receives but has no Reply: A learns so when B's execution
    // ends, long before its 5 000 ns deadline.
    let mut silent = GraphBuilder::new("server");
    let x = silent.input("x");
    let y = silent.syscall("PassThrough", [x]).output();
    silent.output(y, "seen");
    let mut net = Net::new(
        vec![
            node(A, client(B, 5_000), NodeConfig::default()),
            node(B, silent.build().unwrap(), NodeConfig::default()),
        ],
        1_000,
    );
    let exec = net.nodes[0]
        .invoke(SiteId::new(0), vec![("x".into(), u64v(1))])
        .unwrap();
    net.run_until(2_000);
    assert!(net.steps(0).iter().any(|s| matches!(
        s,
        Step::OpFailed { exec: e, error, .. }
            if *e == exec && error.reason == "reply.missing" && error.kind == OpErrorKind::Failed
    )));
    assert!(!net
        .steps(0)
        .iter()
        .any(|s| matches!(s, Step::Timeout { .. })));
    net.run_until(20_000);
    assert!(!net
        .steps(0)
        .iter()
        .any(|s| matches!(s, Step::Timeout { .. })));
    assert_eq!(net.outputs(0), vec![], "the answer output stays missing");
    assert_eq!(net.nodes[0].framework().requests().stats().expired, 0);

    // A response that arrives after the deadline is refused and reported.
    let late = Envelope::new(B, A, EnvelopeKind::Response).with_request_id(1);
    net.nodes[0].deliver_envelope(late).unwrap();
    net.settle();
    assert!(net.steps(0).iter().any(|s| matches!(
        s,
        Step::ReceiveFailed { reason, .. } if reason.contains("no request in flight")
    )));
}

#[test]
fn the_deadline_propagates_to_the_receiver() {
    // B checks the deadline it inherited after a slow op (Sleep 8 µs).
    let mut slow = GraphBuilder::new("server");
    let x = slow.input("x");
    let waited = slow
        .syscall("Sleep", [x])
        .attr("duration_ns", 8_000)
        .output();
    let checked = slow.syscall("DeadlineCheck", [waited]).output();
    slow.syscall("Reply", [checked]).finish();
    let mut net = Net::new(
        vec![
            node(A, client(B, 5_000), NodeConfig::default()),
            node(B, slow.build().unwrap(), NodeConfig::default()),
        ],
        1_000,
    );
    net.nodes[0]
        .invoke(SiteId::new(0), vec![("x".into(), u64v(1))])
        .unwrap();
    net.run_until(50_000);
    // B saw a 5 µs budget, slept 8 µs, and refused to answer late.
    let errors = failures(
        &net.log
            .iter()
            .filter(|(n, _)| *n == 1)
            .map(|(_, s)| clone_step(s))
            .collect::<Vec<_>>(),
    );
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].kind, OpErrorKind::Timeout);
    assert_eq!(errors[0].reason, "deadline.expired");
}

fn clone_step(step: &Step) -> Step {
    match step {
        Step::OpFailed { exec, op, error } => Step::OpFailed {
            exec: *exec,
            op: *op,
            error: error.clone(),
        },
        _ => Step::BudgetExceeded { ready_left: 0 },
    }
}

#[test]
fn one_way_values_travel_a_chain_of_three_nodes() {
    // A → B → C: each forwards one way, C keeps the value.
    let forward = |to: PeerId| {
        let mut b = GraphBuilder::new("hop");
        let x = b.input("x");
        b.syscall("Send", [x])
            .attr("peer", to.as_u64() as i64)
            .attr("site", 0)
            .attr("input", "x")
            .finish();
        b.build().unwrap()
    };
    let mut sink = GraphBuilder::new("hop");
    let x = sink.input("x");
    let y = sink.op("Double", [x]).domain("math").output();
    sink.output(y, "arrived");
    let mut net = Net::new(
        vec![
            node(A, forward(B), NodeConfig::default()),
            node(B, forward(C), NodeConfig::default()),
            node(C, sink.build().unwrap(), NodeConfig::default()),
        ],
        100,
    );
    for x in [1u64, 2, 3] {
        net.nodes[0]
            .invoke(SiteId::new(0), vec![("x".into(), u64v(x))])
            .unwrap();
    }
    net.run_until(10_000);
    let mut arrived: Vec<_> = net.outputs(2).into_iter().map(|o| o.2).collect();
    arrived.sort();
    assert_eq!(arrived, vec![Some(2), Some(4), Some(6)]);
    assert_eq!(net.delivered, 6);
}

#[test]
fn back_pressure_notices_are_honoured_and_cleared() {
    let send = {
        let mut b = GraphBuilder::new("client");
        let x = b.input("x");
        let sent = b
            .syscall("Send", [x])
            .attr("peer", B.as_u64() as i64)
            .attr("site", 0)
            .attr("input", "x")
            .output();
        b.output(sent, "sent");
        b.build().unwrap()
    };
    let mut sink = GraphBuilder::new("server");
    let x = sink.input("x");
    let y = sink.syscall("PassThrough", [x]).output();
    sink.output(y, "got");
    // B's data lane holds 10 envelopes and B drains 2 per poll. Back-off
    // notices are for senders outside flow control (other processes, hosts
    // that do their own): both run without credit windows here.
    let no_credit = || FrameworkConfig {
        flow: FlowConfig {
            enabled: false,
            ..FlowConfig::default()
        },
        ..FrameworkConfig::default()
    };
    let b_config = NodeConfig {
        ingress: IngressConfig {
            data_capacity: 10,
            ..IngressConfig::default()
        },
        ingress_per_poll: 2,
        framework: no_credit(),
        ..NodeConfig::default()
    };
    let a_config = NodeConfig {
        framework: no_credit(),
        ..NodeConfig::default()
    };
    let mut a = node(A, send, a_config);
    let mut b = node(B, sink.build().unwrap(), b_config);
    let sent_by = |steps: Vec<Step>| -> Vec<Envelope> {
        steps
            .into_iter()
            .filter_map(|s| match s {
                Step::SendEnvelope(e) => Some(e),
                _ => None,
            })
            .collect()
    };

    for x in 0..11 {
        a.invoke(SiteId::new(0), vec![("x".into(), u64v(x))])
            .unwrap();
    }
    let burst = sent_by(common::drive(&mut a, 0));
    assert_eq!(burst.len(), 11);
    let mut burst = burst.into_iter();
    for envelope in burst.by_ref().take(10) {
        b.deliver_envelope(envelope).unwrap();
    }
    // The 11th does not fit: it is handed back, never lost.
    let refused = b.deliver_envelope(burst.next().unwrap()).unwrap_err();
    assert!(matches!(refused, nodeflow_engine::DeliverError::Refused(_)));

    // One poll drains 2 of 10: the lane is at 80 %, so B tells A to back off.
    let notices = sent_by(b.poll(0).collect());
    assert_eq!(notices.len(), 1);
    assert!(matches!(
        notices[0].kind,
        EnvelopeKind::BackoffNotice { .. }
    ));
    assert_eq!(notices[0].dst, A);
    a.deliver_envelope(notices.into_iter().next().unwrap())
        .unwrap();
    let steps = common::drive(&mut a, 10);
    assert!(steps.iter().any(|s| matches!(
        s,
        Step::Event(nodeflow_engine::NodeEvent::BackoffNotice { peer, .. }) if *peer == B
    )));

    // A honours it: a Send to B is refused while the back-off lasts.
    assert!(!a.framework().backoff().is_ready(B, 20));
    a.invoke(SiteId::new(0), vec![("x".into(), u64v(99))])
        .unwrap();
    let steps = common::drive(&mut a, 20);
    assert_eq!(failures(&steps)[0].reason, "wire.backoff");
    assert!(sent_by(steps).is_empty());

    // B drains the rest; once below the low-water mark it clears A.
    let clears = sent_by(common::drive(&mut b, 30));
    assert_eq!(clears.len(), 1);
    assert_eq!(clears[0].kind, EnvelopeKind::BackoffClear);
    assert_eq!(b.stats().executions_finished, 10);
    a.deliver_envelope(clears.into_iter().next().unwrap())
        .unwrap();
    common::drive(&mut a, 40);

    // A recovered: sends go out again.
    assert!(a.framework().backoff().is_ready(B, 40));
    a.invoke(SiteId::new(0), vec![("x".into(), u64v(100))])
        .unwrap();
    assert_eq!(sent_by(common::drive(&mut a, 50)).len(), 1);
}

#[test]
fn duplicate_requests_are_dropped_and_reported() {
    let mut b = node(B, doubler(), NodeConfig::default());
    let request = Envelope::new(A, B, EnvelopeKind::Request)
        .with_request_id(7)
        .with_fill(nodeflow_engine::Fill::site(
            SiteId::new(0),
            "x",
            nodeflow_engine::Payload::value(nodeflow_engine::U64Value(1)),
        ));
    b.deliver_envelope(request.clone()).unwrap();
    b.deliver_envelope(request).unwrap();
    let steps = common::drive(&mut b, 0);
    let replies = steps
        .iter()
        .filter(|s| matches!(s, Step::SendEnvelope(e) if e.kind == EnvelopeKind::Response))
        .count();
    assert_eq!(replies, 1);
    assert!(steps.iter().any(|s| matches!(
        s,
        Step::ReceiveFailed { reason, .. } if reason.contains("duplicate request 7")
    )));
}

#[test]
fn a_blocked_peer_is_refused_both_ways() {
    let mut a = node(A, client(B, 1_000_000), NodeConfig::default());
    a.block_peer(B).unwrap();
    a.invoke(SiteId::new(0), vec![("x".into(), u64v(1))])
        .unwrap();
    let steps = common::drive(&mut a, 0);
    assert_eq!(failures(&steps)[0].reason, "gate.peer_blocked");
    a.deliver_envelope(Envelope::new(B, A, EnvelopeKind::OneWay))
        .unwrap();
    let steps = common::drive(&mut a, 0);
    assert!(steps.iter().any(
        |s| matches!(s, Step::ReceiveFailed { reason, .. } if reason.contains("peer policy"))
    ));
}

/// Client graph for the control plane: sends `x` to op `op` of component 0 on B.
fn control_client(op: &str) -> nodeflow_engine::Graph {
    let mut b = GraphBuilder::new("client");
    let x = b.input("x");
    let answer = b
        .syscall("Send", [x])
        .attr("peer", B.as_u64() as i64)
        .attr("component", 0)
        .attr("op", op)
        .attr("request", 1)
        .attr("timeout_ns", 1_000_000)
        .output();
    b.output(answer, "answer");
    b.build().unwrap()
}

fn idle_server(math: &Math) -> Node {
    Node::builder(B)
        .component("math", Box::new(math.clone()))
        .build()
        .unwrap()
}

#[test]
fn a_control_plane_request_runs_a_remote_component_op() {
    let math = Math::default();
    let mut net = Net::new(
        vec![
            node(A, control_client("Double"), NodeConfig::default()),
            idle_server(&math),
        ],
        1_000,
    );
    let exec = net.nodes[0]
        .invoke(SiteId::new(0), vec![("x".into(), u64v(8))])
        .unwrap();
    net.run_until(100_000);
    assert_eq!(net.outputs(0), vec![(exec, "answer".into(), Some(16))]);
    assert_eq!(
        math.fired
            .load(nodeflow_engine::sync::atomic::Ordering::SeqCst),
        1
    );
}

#[test]
fn a_failing_control_op_fails_the_remote_caller_with_a_typed_error() {
    let math = Math::default();
    let mut net = Net::new(
        vec![
            node(A, control_client("Fail"), NodeConfig::default()),
            idle_server(&math),
        ],
        1_000,
    );
    net.nodes[0]
        .invoke(SiteId::new(0), vec![("x".into(), u64v(8))])
        .unwrap();
    net.run_until(100_000);
    let a_errors: Vec<_> = net
        .steps(0)
        .into_iter()
        .filter_map(|s| match s {
            Step::OpFailed { error, .. } => Some(error.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(a_errors.len(), 1);
    // The caller fails with the handler's own reason, not a generic one.
    assert_eq!(a_errors[0].reason, "math.fail");
    assert!(a_errors[0].detail.contains("answered with a failure"));
    // B reported its own failure too, as a control-plane op.
    assert!(net.steps(1).iter().any(|s| matches!(
        s,
        Step::OpFailed { op, error, .. } if op.site == nodeflow_engine::CONTROL_SITE && error.reason == "math.fail"
    )));
}

#[test]
fn an_async_control_op_answers_when_its_completion_lands() {
    let math = Math::default();
    let mut net = Net::new(
        vec![
            node(A, control_client("Later"), NodeConfig::default()),
            idle_server(&math),
        ],
        1_000,
    );
    let exec = net.nodes[0]
        .invoke(SiteId::new(0), vec![("x".into(), u64v(8))])
        .unwrap();
    net.run_until(10_000);
    assert!(net.outputs(0).is_empty(), "still waiting on B's parked op");
    math.handles.lock().pop().unwrap().complete(&5u64).unwrap();
    net.run_until(20_000);
    let answer = net
        .log
        .iter()
        .find_map(|(n, s)| match s {
            Step::ExecFinished {
                exec: e, outputs, ..
            } if *n == 0 && *e == exec => Some(outputs[0].1.clone_value()),
            _ => None,
        })
        .expect("A finished");
    // The completion was bytes (postcard of 5): they travel back as bytes.
    let bytes = answer
        .downcast_ref::<nodeflow_engine::BytesValue>()
        .unwrap();
    assert_eq!(bytes.as_bytes(), &[5]);
}

#[test]
fn a_control_request_for_an_unknown_op_is_refused_and_answered() {
    let math = Math::default();
    let mut net = Net::new(
        vec![
            node(A, control_client("Teleport"), NodeConfig::default()),
            idle_server(&math),
        ],
        1_000,
    );
    net.nodes[0]
        .invoke(SiteId::new(0), vec![("x".into(), u64v(8))])
        .unwrap();
    net.run_until(100_000);
    assert!(net.steps(1).iter().any(|s| matches!(
        s,
        Step::ReceiveFailed { reason, .. } if reason.contains("no op `Teleport`")
    )));
    assert!(net
        .steps(0)
        .iter()
        .any(|s| matches!(s, Step::OpFailed { error, .. }
            if error.kind == OpErrorKind::InvalidInput && error.reason == "request.no_such_op")));
}

/// The client graph with `fixed_deadline` set.
fn fixed_client(to: PeerId, timeout_ns: i64) -> nodeflow_engine::Graph {
    let mut b = GraphBuilder::new("fixed-client");
    let x = b.input("x");
    let answer = b
        .syscall("Send", [x])
        .attr("peer", to.as_u64() as i64)
        .attr("site", 0)
        .attr("input", "x")
        .attr("request", 1)
        .attr("timeout_ns", timeout_ns)
        .attr("fixed_deadline", 1)
        .output();
    b.output(answer, "answer");
    b.build().unwrap()
}

#[test]
fn a_fixed_deadline_outlasts_a_learned_rtt_budget() {
    let a = Node::builder(A)
        .component("math", Box::new(Math::default()))
        .graph(client(B, 2_000_000_000))
        .graph(fixed_client(B, 2_000_000_000))
        .build()
        .unwrap();
    let mut net = Net::new(vec![a, node(B, doubler(), NodeConfig::default())], 1_000);
    // A fast round trip teaches A a budget of the 500 ms floor for B.
    net.nodes[0]
        .invoke(SiteId::new(0), vec![("x".into(), u64v(1))])
        .unwrap();
    net.run_until(100_000);
    assert_eq!(net.outputs(0).len(), 1);
    // Now the link is slow: 400 ms each way.
    net.latency = 400_000_000;
    let learned = net.nodes[0]
        .invoke(SiteId::new(0), vec![("x".into(), u64v(2))])
        .unwrap();
    let fixed = net.nodes[0]
        .invoke(SiteId::new(1), vec![("x".into(), u64v(3))])
        .unwrap();
    net.run_until(net.now + 3_000_000_000);
    let answers: Vec<_> = net.outputs(0).into_iter().skip(1).collect();
    assert_eq!(
        answers,
        vec![(fixed, "answer".into(), Some(6))],
        "only the request with a fixed 2 s deadline is answered"
    );
    let timeouts = net
        .steps(0)
        .iter()
        .filter(|s| matches!(s, Step::Timeout { .. }))
        .count();
    assert_eq!(
        timeouts, 1,
        "the RTT-budgeted request ({learned:?}) timed out at 500 ms"
    );
}
