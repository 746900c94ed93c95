//! Pairwise-averaging gossip between sans-IO Nodes, driven by hand.
//!
//! Eight Nodes each hold a number. Every round pairs them up at random; in
//! each pair the initiator runs its `gossip` graph: it reads its value,
//! sends it as a control-plane request to the partner's `Exchange` op, and
//! absorbs the partner's reply. Both ends end up holding the pair's mean,
//! so the total is conserved and every value converges to the global mean.
//! Envelopes are moved between Nodes by this program (no threads): it is
//! the engine alone, polled by the driving rule.
//!
//! Run: `cargo run --release -p nodeflow-engine --example gossip_sansio`

use std::time::Instant;

use nodeflow_engine::{
    Component, DispatchResult, F64Value, GraphBuilder, LocalOpId, Node, OpError, OpInputs,
    OpOutputs, PeerId, PeerIdValue, RuntimeResourceRef, SiteId, Step, Trigger,
};

const NODES: u64 = 8;
const ROUNDS: usize = 12;

/// A Node's local model: one number.
struct Model {
    value: f64,
}

const CURRENT: LocalOpId = LocalOpId(0);
const EXCHANGE: LocalOpId = LocalOpId(1);
const ABSORB: LocalOpId = LocalOpId(2);

impl Component for Model {
    fn kind(&self) -> &str {
        "model"
    }

    fn resolve_op(&self, op_type: &str) -> Option<LocalOpId> {
        match op_type {
            "Current" => Some(CURRENT),
            "Exchange" => Some(EXCHANGE),
            "Absorb" => Some(ABSORB),
            _ => None,
        }
    }

    fn dispatch_atomic(
        &mut self,
        op: LocalOpId,
        _ctx: &mut RuntimeResourceRef<'_>,
        inputs: &mut OpInputs<'_>,
        outputs: &mut OpOutputs<'_>,
    ) -> Result<DispatchResult, OpError> {
        match op {
            // Read the local value.
            CURRENT => outputs.push(Box::new(F64Value(self.value)))?,
            // A partner sent its value: answer with ours, keep the mean.
            EXCHANGE => {
                let remote = inputs.get_as::<F64Value>(0)?.0;
                outputs.push(Box::new(F64Value(self.value)))?;
                self.value = (self.value + remote) / 2.0;
            }
            // The partner answered: keep the mean.
            _ => {
                let remote = inputs.get_as::<F64Value>(0)?.0;
                self.value = (self.value + remote) / 2.0;
                outputs.push(Box::new(F64Value(self.value)))?;
            }
        }
        Ok(DispatchResult::Immediate)
    }
}

fn gossip_graph() -> nodeflow_engine::Graph {
    let mut b = GraphBuilder::new("gossip");
    let go = b.input("go");
    let partner = b.input("partner");
    let mine = b.op("Current", [go]).domain("model").output();
    let theirs = b
        .syscall("Send", [mine, partner])
        .attr("component", 0)
        .attr("op", "Exchange")
        .attr("request", 1)
        .output();
    let updated = b.op("Absorb", [theirs]).domain("model").output();
    b.output(updated, "value");
    b.build().expect("the gossip graph is valid")
}

/// `go` → the Node's current value, as output `value`.
fn read_graph() -> nodeflow_engine::Graph {
    let mut b = GraphBuilder::new("read");
    let go = b.input("go");
    let value = b.op("Current", [go]).domain("model").output();
    b.output(value, "value");
    b.build().expect("the read graph is valid")
}

/// The driving rule for every Node: poll until idle, move every envelope to
/// its destination's mailbox, repeat until nothing moves. Returns the number
/// of envelopes moved and records each Node's last `value` output.
fn run_network(nodes: &mut [Node], now: u64, values: &mut [f64]) -> u64 {
    let mut envelopes = 0;
    loop {
        let mut moved = false;
        for i in 0..nodes.len() {
            while nodes[i].has_work() {
                let steps: Vec<Step> = nodes[i].poll(now).collect();
                for step in steps {
                    match step {
                        Step::SendEnvelope(envelope) => {
                            let to = envelope.dst.as_u64() as usize;
                            nodes[to]
                                .deliver_envelope(envelope)
                                .expect("mailbox has room");
                            envelopes += 1;
                            moved = true;
                        }
                        Step::ExecFinished { outputs, .. } => {
                            if let Some(v) =
                                outputs.first().and_then(|o| o.1.downcast_ref::<F64Value>())
                            {
                                values[i] = v.0;
                            }
                        }
                        Step::OpFailed { error, .. } => panic!("op failed: {error}"),
                        _ => {}
                    }
                }
            }
        }
        if !moved {
            return envelopes;
        }
    }
}

fn main() {
    #[allow(clippy::disallowed_methods)] // the host, not the engine, reads the clock
    let started = Instant::now();
    let mut nodes: Vec<Node> = (0..NODES)
        .map(|i| {
            Node::builder(PeerId::new(i))
                .component(
                    "model",
                    Box::new(Model {
                        value: (i * i) as f64,
                    }),
                )
                .graph(gossip_graph())
                .graph(read_graph())
                .build()
                .expect("the Node installs")
        })
        .collect();
    let mut values: Vec<f64> = (0..NODES).map(|i| (i * i) as f64).collect();
    let mean = values.iter().sum::<f64>() / NODES as f64;
    println!("{NODES} Nodes, start values {values:?}, mean {mean}");

    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    let mut envelopes = 0u64;
    let mut now = 0u64;
    for round in 1..=ROUNDS {
        // A random perfect matching: shuffle, then pair neighbours.
        let mut order: Vec<u64> = (0..NODES).collect();
        for i in (1..order.len()).rev() {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            order.swap(i, (rng % (i as u64 + 1)) as usize);
        }
        for pair in order.chunks(2) {
            let (me, partner) = (pair[0], pair[1]);
            nodes[me as usize]
                .invoke(
                    SiteId::new(0),
                    vec![
                        ("go".into(), Box::new(Trigger)),
                        (
                            "partner".into(),
                            Box::new(PeerIdValue(PeerId::new(partner))),
                        ),
                    ],
                )
                .expect("invoke");
        }
        envelopes += run_network(&mut nodes, now, &mut values);
        // Read every Node's value back from its engine.
        for node in nodes.iter_mut() {
            node.invoke(SiteId::new(1), vec![("go".into(), Box::new(Trigger))])
                .expect("invoke");
        }
        run_network(&mut nodes, now, &mut values);
        now += 1_000_000;
        let total: f64 = values.iter().sum();
        let error = values.iter().map(|v| (v - mean).abs()).fold(0.0, f64::max);
        println!(
            "round {round:2}: max |value - mean| = {error:10.6}, total {total:.6} (conserved: {})",
            (total - mean * NODES as f64).abs() < 1e-9
        );
    }
    let error = values.iter().map(|v| (v - mean).abs()).fold(0.0, f64::max);
    let elapsed = started.elapsed();
    println!(
        "consensus error {error:.3e} after {ROUNDS} rounds; {envelopes} envelopes in {:.2} ms ({:.0} envelopes/s)",
        elapsed.as_secs_f64() * 1e3,
        envelopes as f64 / elapsed.as_secs_f64()
    );
}
