//! Gossip learning (asynchronous, serverless): every Node, on its own timer, trains on its data and pushes its model to peers from its PeerSelector; what it receives it merges into its own model, weighted by the models' ages. No rounds, no barrier.
//!
//! Graphs of every Node: `cycle` (an `Interval`: gate → blend the models
//! received since the last cycle into the own one → evaluate it on the
//! test set → `Train` on the local data → age → parameters → `Peers.Sample` →
//! one one-way `Send` per fan-out slot to the peer's `merge` graph),
//! `merge` (`Merge` keeps an incoming model for the next blend) and
//! `evaluate` (blend what arrived, then test loss and accuracy and the
//! counts so far).
//!
//! [`GossipComponent`] keeps the model's age (the local trainings that
//! went into it, merged as the maximum) and counts cycles:
//!
//! | op | inputs | outputs |
//! |---|---|---|
//! | `Cycle` | any trigger | the batch-order seed i64 `cycle << 40 \| node << 16` and the trainings done so far i64; nothing once `cycles` trainings are done, and nothing (the tick is skipped, counted) while the previous cycle has not reached `Trained` — unless it started over 10 s ago and is taken as failed |
//! | `Trained` | the training loss | the model's age i64 after this training, trainings done i64 |
//! | `Merge` | received parameters f32 `[P]`, their age i64 | models received since the last blend i64 (the model is kept, weighted by its age) |
//! | `Blend` | own parameters f32 `[P]` | `(a·own + Σ aᵢ·receivedᵢ) / (a + Σ aᵢ)` over what `Merge` kept, `a`, `aᵢ` the ages (at least 1); the own model when nothing arrived |
//! | `Pick` | peers i64 `[k]` | peer `index` (attribute) as a [`PeerIdValue`]; nothing when there are fewer |
//! | `Status` | any trigger | trainings done i64, merges done i64 |

use std::fmt;
use std::time::{Duration, Instant};

use nodeflow_engine::{
    Component, DispatchResult, Graph, GraphBuildError, GraphBuilder, LocalOpId, Node, OpError,
    OpErrorKind, OpInputs, OpNode, OpOutputs, PeerId, PeerIdValue, RuntimeResourceRef, SiteId,
};

use super::driver::{await_ticket, go, initial_row, spawn_subscribed, LearnError};
use super::fedavg::FederatedData;
use super::report::{MessageTotals, RoundReport, RunReport};
use super::spec::{ModelSpec, OptimizerSpec};
use crate::backend::CpuBackend;
use crate::roles::components::state::{decode_words, encode_words};
use crate::roles::components::{int_attr, tensor_input};
use crate::roles::{DataComponent, ModelComponent, PeersComponent, StaticView};
use crate::runtime::{NodeHandle, NodeSpec, Runtime};
use crate::tensor::Tensor;

/// The [`Component::kind`] of a gossip component.
pub const GOSSIP_KIND: &str = "gossip";

/// Site of a Node's `cycle` graph.
pub const GOSSIP_CYCLE: SiteId = SiteId::new(0);
/// Site of a Node's `merge` graph.
pub const GOSSIP_MERGE: SiteId = SiteId::new(1);
/// Site of a Node's `evaluate` graph.
pub const GOSSIP_EVALUATE: SiteId = SiteId::new(2);

/// The age-weighted merge and the cycle budget of one Node.
pub struct GossipComponent {
    node: u64,
    cycles: u64,
    epochs: u64,
    done: u64,
    merges: u64,
    age: u64,
    picks: Vec<usize>,
    sum: Vec<f64>,
    weight: f64,
    oldest: u64,
    blends: u64,
    refused: u64,
    in_cycle: bool,
    cycle_started_ns: u64,
    stuck_after_ns: u64,
    skipped: u64,
}

impl GossipComponent {
    /// Node number `node` (its batch-order seeds), `cycles` trainings of
    /// `epochs` epochs each.
    pub fn new(node: u64, cycles: u64, epochs: u64) -> Self {
        Self {
            node,
            cycles,
            epochs: epochs.max(1),
            done: 0,
            merges: 0,
            age: 0,
            picks: Vec::new(),
            sum: Vec::new(),
            weight: 0.0,
            oldest: 0,
            blends: 0,
            refused: 0,
            in_cycle: false,
            cycle_started_ns: 0,
            stuck_after_ns: 10_000_000_000,
            skipped: 0,
        }
    }
}

const CYCLE: u32 = 0;
const TRAINED: u32 = 1;
const MERGE: u32 = 2;
const STATUS: u32 = 3;
const BLEND: u32 = 4;
const FIRST_PICK: u32 = 16;

fn push_all(outputs: &mut OpOutputs<'_>, values: Vec<Tensor>) -> Result<DispatchResult, OpError> {
    for v in values.into_iter().take(outputs.declared()) {
        outputs.push(Box::new(v))?;
    }
    Ok(DispatchResult::Immediate)
}

impl Component for GossipComponent {
    fn kind(&self) -> &str {
        GOSSIP_KIND
    }

    fn resolve_op(&self, op_type: &str) -> Option<LocalOpId> {
        match op_type {
            "Cycle" => Some(LocalOpId(CYCLE)),
            "Trained" => Some(LocalOpId(TRAINED)),
            "Merge" => Some(LocalOpId(MERGE)),
            "Status" => Some(LocalOpId(STATUS)),
            "Blend" => Some(LocalOpId(BLEND)),
            _ => None,
        }
    }

    fn install_op(&mut self, op: &OpNode) -> Result<Option<LocalOpId>, OpError> {
        if op.op_type != "Pick" {
            return Ok(self.resolve_op(&op.op_type));
        }
        let index = int_attr(&op.attributes, "Pick", "index", 0)?;
        let index = usize::try_from(index).map_err(|_| {
            OpError::new(
                OpErrorKind::InvalidInput,
                "role.bad_attribute",
                "`Pick` index must be ≥ 0",
            )
        })?;
        self.picks.push(index);
        Ok(Some(LocalOpId(FIRST_PICK + self.picks.len() as u32 - 1)))
    }

    fn dispatch_atomic(
        &mut self,
        op: LocalOpId,
        ctx: &mut RuntimeResourceRef<'_>,
        inputs: &mut OpInputs<'_>,
        outputs: &mut OpOutputs<'_>,
    ) -> Result<DispatchResult, OpError> {
        match op.0 {
            CYCLE => {
                let now = ctx.time.now_ns;
                if self.in_cycle && now.saturating_sub(self.cycle_started_ns) < self.stuck_after_ns
                {
                    self.skipped += 1;
                    return Ok(DispatchResult::Immediate);
                }
                if self.done >= self.cycles {
                    return Ok(DispatchResult::Immediate);
                }
                self.in_cycle = true;
                self.cycle_started_ns = now;
                let seed = ((self.done + 1) << 40) | (self.node << 16);
                push_all(
                    outputs,
                    vec![
                        Tensor::scalar_i64(seed as i64),
                        Tensor::scalar_i64(self.done as i64),
                    ],
                )
            }
            TRAINED => {
                self.in_cycle = false;
                self.done += 1;
                self.age += self.epochs;
                push_all(
                    outputs,
                    vec![
                        Tensor::scalar_i64(self.age as i64),
                        Tensor::scalar_i64(self.done as i64),
                    ],
                )
            }
            MERGE => {
                let theirs = tensor_input(inputs, 0, "Merge")?;
                let their_age = tensor_input(inputs, 1, "Merge")?
                    .to_i64_vec()
                    .and_then(|v| v.first().copied())
                    .unwrap_or(0)
                    .max(0) as u64;
                let Some(values) = theirs
                    .to_f32_vec()
                    .filter(|v| v.iter().all(|x| x.is_finite()))
                else {
                    self.refused += 1;
                    return Err(OpError::new(
                        OpErrorKind::InvalidInput,
                        "gossip.bad_model",
                        "`Merge` takes finite f32 parameters",
                    ));
                };
                if !self.sum.is_empty() && self.sum.len() != values.len() {
                    self.refused += 1;
                    return Err(OpError::new(
                        OpErrorKind::InvalidInput,
                        "gossip.bad_model",
                        format!(
                            "`Merge` of {} parameters into {}",
                            values.len(),
                            self.sum.len()
                        ),
                    ));
                }
                if self.sum.is_empty() {
                    self.sum = vec![0.0; values.len()];
                }
                let w = their_age.max(1) as f64;
                for (acc, v) in self.sum.iter_mut().zip(&values) {
                    *acc += w * f64::from(*v);
                }
                self.weight += w;
                self.oldest = self.oldest.max(their_age);
                self.merges += 1;
                push_all(outputs, vec![Tensor::scalar_i64(self.merges as i64)])
            }
            BLEND => {
                let own = tensor_input(inputs, 0, "Blend")?;
                if self.weight == 0.0 {
                    outputs.push(Box::new(own))?;
                    return Ok(DispatchResult::Immediate);
                }
                let values = own
                    .to_f32_vec()
                    .filter(|v| v.len() == self.sum.len())
                    .ok_or_else(|| {
                        OpError::new(
                            OpErrorKind::InvalidInput,
                            "gossip.bad_model",
                            format!(
                                "`Blend` of a model of shape {:?} with {} received parameters",
                                own.shape(),
                                self.sum.len()
                            ),
                        )
                    })?;
                let a = self.age.max(1) as f64;
                let total = a + self.weight;
                let blended: Vec<f32> = values
                    .iter()
                    .zip(&self.sum)
                    .map(|(&x, &acc)| ((a * f64::from(x) + acc) / total) as f32)
                    .collect();
                self.age = self.age.max(self.oldest);
                self.sum.clear();
                self.weight = 0.0;
                self.oldest = 0;
                self.blends += 1;
                let t = Tensor::from_f32(own.shape().to_vec(), blended).map_err(|e| {
                    OpError::new(OpErrorKind::Internal, "gossip.tensor", e.to_string())
                })?;
                push_all(outputs, vec![t])
            }
            STATUS => push_all(
                outputs,
                vec![
                    Tensor::scalar_i64(self.done as i64),
                    Tensor::scalar_i64(self.merges as i64),
                ],
            ),
            n if n >= FIRST_PICK => {
                let index = self.picks[(n - FIRST_PICK) as usize];
                let peers = tensor_input(inputs, 0, "Pick")?
                    .to_i64_vec()
                    .unwrap_or_default();
                if let Some(&p) = peers.get(index) {
                    outputs.push(Box::new(PeerIdValue(PeerId::new(p as u64))))?;
                }
                Ok(DispatchResult::Immediate)
            }
            _ => Err(OpError::new(
                OpErrorKind::Internal,
                "gossip.unknown_op",
                format!("{op:?} is not a gossip op"),
            )),
        }
    }

    fn snapshot_state(&self) -> Result<Vec<u8>, OpError> {
        encode_words(&[self.done, self.merges, self.age])
    }

    fn restore_state(&mut self, bytes: &[u8]) -> Result<(), OpError> {
        let w = decode_words(bytes, 3)?;
        (self.done, self.merges, self.age) = (w[0], w[1], w[2]);
        Ok(())
    }
}

impl fmt::Debug for GossipComponent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GossipComponent")
            .field("node", &self.node)
            .field("done", &self.done)
            .field("age", &self.age)
            .field("merges", &self.merges)
            .field("blends", &self.blends)
            .field("refused", &self.refused)
            .field("skipped", &self.skipped)
            .finish()
    }
}

/// How a gossip-learning job runs.
#[derive(Clone, Debug, PartialEq)]
pub struct GossipConfig {
    /// Trainings per Node (each of `epochs` local epochs): the job's "rounds".
    pub cycles: usize,
    /// Local epochs per training.
    pub epochs: usize,
    /// Mini-batch size.
    pub batch: usize,
    /// Each Node's timer period: it trains and pushes once per period.
    pub period: Duration,
    /// Peers each push goes to (default 8: on the digits job, 100 Nodes at
    /// fan-out 1 end about 6 points below FedAvg after 20 cycles, at 4
    /// about 1 point, at 8 level with it).
    pub fanout: usize,
    /// Seed of the peer sampling and the model initialisation.
    pub seed: u64,
    /// The model.
    pub model: ModelSpec,
    /// The optimiser.
    pub optimizer: OptimizerSpec,
    /// Threads of the runtime's compute pool.
    pub compute_threads: usize,
}

impl Default for GossipConfig {
    fn default() -> Self {
        Self {
            cycles: 20,
            epochs: 1,
            batch: 10,
            period: Duration::from_millis(10),
            fanout: 8,
            seed: 0,
            model: ModelSpec::Softmax,
            optimizer: OptimizerSpec::default(),
            compute_threads: 1,
        }
    }
}

/// Every Node's graphs, in site order: `cycle`, `merge`, `evaluate`.
pub fn gossip_graphs(config: &GossipConfig) -> Result<Vec<Graph>, GraphBuildError> {
    let period = config.period.as_nanos().clamp(1, i64::MAX as u128) as i64;
    let mut b = GraphBuilder::new("cycle");
    let tick = b.syscall("Interval", []).attr("period_ns", period).output();
    let [seed, before] = b.op("Cycle", [tick]).domain("gossip").outputs::<2>();
    let own = b.op("Parameters", [seed]).domain("model").output();
    let blended = b.op("Blend", [own]).domain("gossip").output();
    let loaded = b.op("Load", [blended]).domain("model").output();
    let [tx, ty] = b.op("Local", [loaded]).domain("test").outputs::<2>();
    let [test_loss, accuracy] = b.op("Evaluate", [tx, ty]).domain("model").outputs::<2>();
    b.output(before, "trained")
        .output(test_loss, "loss")
        .output(accuracy, "accuracy");
    let [x, y] = b.op("Local", [accuracy]).domain("data").outputs::<2>();
    let [loss, _samples] = b
        .op("Train", [x, y, seed])
        .domain("model")
        .attr("epochs", config.epochs as i64)
        .attr("batch", config.batch as i64)
        .outputs::<2>();
    let [age, _trained] = b.op("Trained", [loss]).domain("gossip").outputs::<2>();
    let params = b.op("Parameters", [age]).domain("model").output();
    let peers = b
        .op("Sample", [params])
        .domain("peers")
        .attr("k", config.fanout as i64)
        .output();
    let message = b
        .syscall("Bundle", [params, age])
        .attr("names", vec!["params", "age"])
        .output();
    for i in 0..config.fanout {
        let peer = b
            .op("Pick", [peers])
            .domain("gossip")
            .attr("index", i as i64)
            .output();
        b.syscall("Send", [message, peer])
            .attr("site", i64::from(GOSSIP_MERGE.as_u32()))
            .attr("input", "model")
            .finish();
    }
    let cycle = b.build()?;

    let mut b = GraphBuilder::new("merge");
    let message = b.input("model");
    let [theirs, age] = b
        .syscall("Unbundle", [message])
        .attr("names", vec!["params", "age"])
        .outputs::<2>();
    b.op("Merge", [theirs, age]).domain("gossip").finish();
    let merge = b.build()?;

    let mut b = GraphBuilder::new("evaluate");
    let go = b.input("go");
    let own = b.op("Parameters", [go]).domain("model").output();
    let blended = b.op("Blend", [own]).domain("gossip").output();
    let loaded = b.op("Load", [blended]).domain("model").output();
    let [tx, ty] = b.op("Local", [loaded]).domain("test").outputs::<2>();
    let [loss, accuracy] = b.op("Evaluate", [tx, ty]).domain("model").outputs::<2>();
    let [done, merges] = b.op("Status", [go]).domain("gossip").outputs::<2>();
    b.output(loss, "loss")
        .output(accuracy, "accuracy")
        .output(done, "trained")
        .output(merges, "merges");
    let evaluate = b.build()?;
    Ok(vec![cycle, merge, evaluate])
}

/// The peer id of gossip Node `i`.
pub fn gossip_peer(i: usize) -> PeerId {
    PeerId::new(i as u64 + 1)
}

/// A prepared gossip-learning job.
#[derive(Debug)]
pub struct GossipJob {
    config: GossipConfig,
    data: FederatedData,
    graphs: Vec<Graph>,
}

impl GossipJob {
    /// Checks the config against the data and builds the graphs.
    pub fn new(config: GossipConfig, data: FederatedData) -> Result<Self, LearnError> {
        let n = data.clients.len();
        if n < 2 {
            return Err(LearnError::Config("gossip needs at least two Nodes".into()));
        }
        if config.fanout == 0 || config.fanout >= n {
            return Err(LearnError::Config(format!(
                "fan-out {} must be in 1..{n}",
                config.fanout
            )));
        }
        if config.epochs == 0 || config.batch == 0 || config.period.is_zero() {
            return Err(LearnError::Config(
                "epochs, batch and period must be positive".into(),
            ));
        }
        if let Some(c) = data.clients.iter().position(|d| d.is_empty()) {
            return Err(LearnError::Config(format!("Node {c} has no data")));
        }
        config
            .model
            .build(
                data.features(),
                data.classes(),
                &config.optimizer,
                config.seed,
            )
            .map_err(|e| LearnError::Config(format!("model: {e}")))?;
        let graphs = gossip_graphs(&config)
            .map_err(|e| LearnError::Config(format!("a generated graph did not build: {e}")))?;
        Ok(Self {
            config,
            data,
            graphs,
        })
    }

    fn spec(&self, i: usize) -> NodeSpec {
        let n = self.data.clients.len();
        let config = self.config.clone();
        let graphs = self.graphs.clone();
        let train = self.data.clients[i].clone();
        let test = self.data.test.clone();
        let (features, classes) = (self.data.features(), self.data.classes());
        NodeSpec::new(move || {
            let model = config
                .model
                .build(features, classes, &config.optimizer, config.seed)
                .expect("the model spec was checked when the job was built");
            let others = (0..n).filter(|&j| j != i).map(gossip_peer);
            let view = StaticView::new(others, config.seed ^ (i as u64).wrapping_mul(0x9E37_79B9));
            let mut b = Node::builder(gossip_peer(i))
                .component("ai.onnx", Box::new(CpuBackend::inline()))
                .component("model", Box::new(ModelComponent::new(model, None)))
                .component(
                    "data",
                    Box::new(DataComponent::new(train.clone()).expect("checked non-empty")),
                )
                .component(
                    "test",
                    Box::new(DataComponent::new(test.clone()).expect("a test set")),
                )
                .component("peers", Box::new(PeersComponent::new(Box::new(view))))
                .component(
                    "gossip",
                    Box::new(GossipComponent::new(
                        i as u64,
                        config.cycles as u64,
                        config.epochs as u64,
                    )),
                );
            for g in &graphs {
                b = b.graph(g.clone());
            }
            b
        })
    }

    /// Spawns the Nodes and lets them gossip until each has trained
    /// `cycles` times. Each Node evaluates its model on the test set right
    /// after each of its trainings; progress row `c` is the mean over the
    /// Nodes of those evaluations after their `c`-th training, reported
    /// once every Node has got there (row 0: the untrained model). Nodes
    /// run at their own pace: when row `c` is reported, some are past it.
    pub fn run(&self, progress: &mut dyn FnMut(&RoundReport)) -> Result<RunReport, LearnError> {
        let started = Instant::now();
        let n = self.data.clients.len();
        let target = self.config.cycles;
        let runtime = Runtime::builder()
            .compute_threads(self.config.compute_threads.max(1))
            .peer_cap(n + 16)
            .build()
            .map_err(|e| LearnError::Runtime(e.to_string()))?;
        let nodes = spawn_subscribed(&runtime, (0..n).map(|i| self.spec(i)))?;
        // Every Node starts from the same model: row 0 is its evaluation.
        let (first, params) = initial_row(
            &self.config.model,
            &self.config.optimizer,
            self.config.seed,
            &self.data,
            started,
        )?;
        let mut rows = vec![first];
        progress(&rows[0]);
        let per_cycle_bytes = (4 * params + 16) as u64 * (self.config.fanout * n) as u64;
        // sums[c - 1] = (accuracy, loss, Nodes) of the blended models after c trainings.
        let mut sums = vec![(0.0f64, 0.0f64, 0usize); target];
        let mut finished = vec![false; n];
        let patience = Duration::from_secs(120) + self.config.period * (target as u32 * 50);
        while rows.len() < target || finished.iter().any(|f| !f) {
            if started.elapsed() > patience {
                return Err(LearnError::NoAnswer {
                    what: format!("gossip cycle {}", rows.len()),
                    patience,
                });
            }
            let mut idle = true;
            for (i, (_, rx)) in nodes.iter().enumerate() {
                while let Ok(out) = rx.try_recv() {
                    idle = false;
                    let nodeflow_actors::ActorOutput::ExecFinished { site, outputs, .. } = out
                    else {
                        continue;
                    };
                    if site != GOSSIP_CYCLE {
                        continue;
                    }
                    let answer = super::driver::Answer {
                        outputs,
                        missing: Vec::new(),
                    };
                    let Some(c) = answer.scalar("trained").map(|c| c as usize) else {
                        continue;
                    };
                    if c + 1 == target {
                        finished[i] = true;
                    }
                    if (1..target).contains(&c) {
                        let slot = &mut sums[c - 1];
                        slot.0 += answer.scalar("accuracy").unwrap_or(f64::NAN);
                        slot.1 += answer.scalar("loss").unwrap_or(f64::NAN);
                        slot.2 += 1;
                    }
                }
            }
            while rows.len() < target && sums[rows.len() - 1].2 == n {
                let (acc, loss, count) = sums[rows.len() - 1];
                let row = RoundReport {
                    round: rows.len() as u64,
                    accuracy: acc / count as f64,
                    loss: loss / count as f64,
                    seconds: started.elapsed().as_secs_f64(),
                    bytes_sent: per_cycle_bytes,
                    contributors: n as u64,
                    stragglers: 0,
                };
                progress(&row);
                rows.push(row);
            }
            if idle {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        // Every Node has started its last training: wait for the trainings
        // and the last pushes to land, then blend and evaluate everywhere.
        let mut ticket = 0u64;
        let last = loop {
            std::thread::sleep(self.config.period * 3);
            let snapshot = poll(&nodes, &mut ticket)?;
            if snapshot.iter().all(|s| s.2 >= target as u64) {
                break snapshot;
            }
            if started.elapsed() > patience {
                return Err(LearnError::NoAnswer {
                    what: "the gossip Nodes' last trainings".into(),
                    patience,
                });
            }
        };
        let row = RoundReport {
            round: target as u64,
            accuracy: mean(last.iter().map(|s| s.0)),
            loss: mean(last.iter().map(|s| s.1)),
            seconds: started.elapsed().as_secs_f64(),
            bytes_sent: per_cycle_bytes,
            contributors: n as u64,
            stragglers: 0,
        };
        progress(&row);
        rows.push(row);
        drop(nodes);
        let shutdown = runtime.shutdown(Duration::from_secs(30));
        let final_accuracy = rows.last().map_or(f64::NAN, |r| r.accuracy);
        Ok(RunReport {
            algo: "gossip".into(),
            nodes: n,
            partition: self.data.partition.clone(),
            model: self.config.model.to_string(),
            aggregator: "age-weighted".into(),
            codec: "identity".into(),
            bytes_sent: rows.iter().map(|r| r.bytes_sent).sum(),
            rounds: rows,
            final_accuracy,
            wall_seconds: started.elapsed().as_secs_f64(),
            messages: MessageTotals::from_shutdown(&shutdown),
            restarts: shutdown.totals.restarts,
        })
    }
}

fn mean(values: impl Iterator<Item = f64>) -> f64 {
    let (sum, n) = values.fold((0.0, 0usize), |(s, n), v| (s + v, n + 1));
    if n == 0 {
        f64::NAN
    } else {
        sum / n as f64
    }
}

/// Every Node's (accuracy, loss, trainings) now, its received models blended in.
fn poll(
    nodes: &[(NodeHandle, crate::Receiver<nodeflow_actors::ActorOutput>)],
    ticket: &mut u64,
) -> Result<Vec<(f64, f64, u64)>, LearnError> {
    let first = *ticket + 1;
    for (node, _) in nodes {
        *ticket += 1;
        node.invoke(GOSSIP_EVALUATE, go(), *ticket)
            .map_err(|e| LearnError::Runtime(e.to_string()))?;
    }
    nodes
        .iter()
        .enumerate()
        .map(|(i, (_, rx))| {
            let a = await_ticket(
                rx,
                first + i as u64,
                Duration::from_secs(60),
                "a gossip Node's evaluation",
            )?;
            Ok((
                a.scalar("accuracy").unwrap_or(f64::NAN),
                a.scalar("loss").unwrap_or(f64::NAN),
                a.scalar("trained").unwrap_or(0.0) as u64,
            ))
        })
        .collect()
}
