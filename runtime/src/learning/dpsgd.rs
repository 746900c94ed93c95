//! D-PSGD (synchronous, serverless): every round each Node trains on its data, sends its parameters to its neighbours on a topology, waits for theirs, and averages with Metropolis–Hastings weights.
//!
//! Graphs of every Node: `round` (`Next` → train → `Share` the new
//! parameters → `Await` the neighbours' → `Load` the mix → evaluate),
//! `send` (started by `Share`'s events: one one-way `Send` per neighbour
//! to its `receive` graph), `receive` (`Receive` keeps a neighbour's
//! parameters for their round) and `tick` (an `Interval` that lets
//! `Await` give up on a silent neighbour at the round deadline).
//!
//! [`MixComponent`]:
//!
//! | op | inputs | outputs |
//! |---|---|---|
//! | `Next` | any trigger | the batch-order seed i64 `(round + 1) << 40 \| node << 16` |
//! | `Share` | parameters f32 `[P]` | the round i64; publishes one event per neighbour |
//! | `Await` | the round | the mix f32 `[P]`, neighbours heard i64, neighbours missed i64 |
//! | `Receive` | parameters, their round i64, the sender i64 | parameters kept for that round i64 |
//! | `Tick` | any trigger | 1 when it closed a round at its deadline, else 0 |
//!
//! The mix is `wᵢᵢ·xᵢ + Σⱼ wᵢⱼ·xⱼ`; a neighbour missed at the deadline
//! gives its weight to the Node itself (so the weights still sum to 1).
//! Parameters of a past round are refused (counted); of a future round
//! (a faster neighbour) kept until then.

use std::collections::BTreeMap;
use std::fmt;
use std::time::{Duration, Instant};

use nodeflow_engine::{
    CommandId, Component, Composite, DispatchResult, EventKind, Graph, GraphBuildError,
    GraphBuilder, LocalOpId, Node, NodeConfig, NodeEvent, OpError, OpErrorKind, OpInputs,
    OpOutputs, PeerId, PeerIdValue, RuntimeResourceRef, SiteId, SlotValue,
};

use super::driver::{await_ticket, go, initial_row, spawn_subscribed, LearnError};
use super::fedavg::FederatedData;
use super::report::{MessageTotals, RoundReport, RunReport};
use super::spec::{ModelSpec, OptimizerSpec};
use super::topology::{metropolis_hastings, Topology};
use crate::backend::CpuBackend;
use crate::roles::components::state::{decode_words, encode_words};
use crate::roles::components::tensor_input;
use crate::roles::{DataComponent, ModelComponent};
use crate::runtime::{NodeSpec, Runtime};
use crate::tensor::Tensor;

/// The [`Component::kind`] of a mix component.
pub const MIX_KIND: &str = "mix";
/// The bus kind of `Share`'s events.
pub const SHARE_KIND: u32 = EventKind::USER_MIN + 0x0F_0B;

/// Site of a Node's `round` graph.
pub const DPSGD_ROUND: SiteId = SiteId::new(0);
/// Site of a Node's `receive` graph.
pub const DPSGD_RECEIVE: SiteId = SiteId::new(2);

struct Waiter {
    round: u64,
    cmd: CommandId,
    names: Vec<String>,
    deadline_ns: u64,
}

/// One Node's side of D-PSGD's neighbour averaging.
pub struct MixComponent {
    node: u64,
    neighbours: Vec<(PeerId, f64)>,
    own_weight: f64,
    round_timeout_ns: u64,
    round: u64,
    own: Option<Vec<f32>>,
    inbox: BTreeMap<(u64, u64), Vec<f32>>,
    waiter: Option<Waiter>,
    late: u64,
    missed: u64,
}

impl MixComponent {
    /// Node `node` mixing with `neighbours` (peer, weight) and keeping
    /// `own_weight` for itself; a round waits at most `round_timeout`.
    pub fn new(
        node: u64,
        neighbours: Vec<(PeerId, f64)>,
        own_weight: f64,
        round_timeout: Duration,
    ) -> Self {
        Self {
            node,
            neighbours,
            own_weight,
            round_timeout_ns: round_timeout.as_nanos().min(u64::MAX as u128) as u64,
            round: 0,
            own: None,
            inbox: BTreeMap::new(),
            waiter: None,
            late: 0,
            missed: 0,
        }
    }

    fn heard(&self, round: u64) -> usize {
        self.neighbours
            .iter()
            .filter(|(p, _)| self.inbox.contains_key(&(round, p.as_u64())))
            .count()
    }

    /// The mix of `round` from what arrived; takes those parameters out of the inbox.
    fn mix(&mut self, round: u64) -> Result<Vec<Box<dyn SlotValue>>, OpError> {
        let own = self.own.take().unwrap_or_default();
        let mut acc: Vec<f64> = own.iter().map(|&x| f64::from(x)).collect();
        let mut own_w = self.own_weight;
        let (mut heard, mut missed) = (0i64, 0i64);
        for (peer, w) in &self.neighbours {
            match self.inbox.remove(&(round, peer.as_u64())) {
                Some(theirs) if theirs.len() == acc.len() => {
                    heard += 1;
                    for (a, t) in acc.iter_mut().zip(&theirs) {
                        *a += w * f64::from(*t);
                    }
                }
                _ => {
                    missed += 1;
                    own_w += w;
                }
            }
        }
        // acc holds x_i once; scale it to its weight.
        let mixed: Vec<f32> = acc
            .iter()
            .zip(&own)
            .map(|(a, &x)| (a - f64::from(x) + own_w * f64::from(x)) as f32)
            .collect();
        self.missed += missed as u64;
        let len = mixed.len();
        let tensor = Tensor::from_f32(vec![len], mixed)
            .map_err(|e| OpError::new(OpErrorKind::Internal, "mix.tensor", e.to_string()))?;
        Ok(vec![
            Box::new(tensor),
            Box::new(Tensor::scalar_i64(heard)),
            Box::new(Tensor::scalar_i64(missed)),
        ])
    }

    fn finish_waiter(&mut self, ctx: &mut RuntimeResourceRef<'_>) -> Result<(), OpError> {
        if let Some(w) = self.waiter.take() {
            let values = self.mix(w.round)?;
            ctx.complete_command(w.cmd, w.names.into_iter().zip(values).collect());
        }
        Ok(())
    }
}

fn scalar(inputs: &OpInputs<'_>, index: usize, op: &str) -> Result<i64, OpError> {
    tensor_input(inputs, index, op)?
        .to_i64_vec()
        .and_then(|v| v.first().copied())
        .ok_or_else(|| {
            OpError::new(
                OpErrorKind::InvalidInput,
                "mix.not_a_scalar",
                format!("`{op}` input {index} must be an i64 scalar"),
            )
        })
}

const NEXT: u32 = 0;
const SHARE: u32 = 1;
const AWAIT: u32 = 2;
const RECEIVE: u32 = 3;
const TICK: u32 = 4;

impl Component for MixComponent {
    fn kind(&self) -> &str {
        MIX_KIND
    }

    fn resolve_op(&self, op_type: &str) -> Option<LocalOpId> {
        match op_type {
            "Next" => Some(LocalOpId(NEXT)),
            "Share" => Some(LocalOpId(SHARE)),
            "Await" => Some(LocalOpId(AWAIT)),
            "Receive" => Some(LocalOpId(RECEIVE)),
            "Tick" => Some(LocalOpId(TICK)),
            _ => None,
        }
    }

    fn dispatch_atomic(
        &mut self,
        op: LocalOpId,
        ctx: &mut RuntimeResourceRef<'_>,
        inputs: &mut OpInputs<'_>,
        outputs: &mut OpOutputs<'_>,
    ) -> Result<DispatchResult, OpError> {
        match op.0 {
            NEXT => {
                let seed = ((self.round + 1) << 40) | (self.node << 16);
                outputs.push(Box::new(Tensor::scalar_i64(seed as i64)))?;
                Ok(DispatchResult::Immediate)
            }
            SHARE => {
                let params = tensor_input(inputs, 0, "Share")?;
                let values = params.to_f32_vec().ok_or_else(|| {
                    OpError::new(
                        OpErrorKind::InvalidInput,
                        "mix.not_f32",
                        "`Share` takes f32 parameters",
                    )
                })?;
                if self.waiter.is_some() {
                    return Err(OpError::new(
                        OpErrorKind::Refused,
                        "mix.round_open",
                        format!("round {} is still waiting for its neighbours", self.round),
                    ));
                }
                self.round += 1;
                let round = self.round;
                self.own = Some(values);
                let me = ctx.current.self_peer;
                for (peer, _) in &self.neighbours {
                    let message = Composite::new()
                        .with("params", params.clone())
                        .with("round", Tensor::scalar_i64(round as i64))
                        .with("from", Tensor::scalar_i64(me.as_u64() as i64));
                    let event = Composite::new()
                        .with("peer", PeerIdValue(*peer))
                        .with("message", message);
                    ctx.publish_bus(NodeEvent::App {
                        kind: EventKind::new(SHARE_KIND),
                        value: Box::new(event),
                    })
                    .map_err(|e| {
                        OpError::new(OpErrorKind::Refused, "mix.reserved_kind", e.to_string())
                    })?;
                }
                outputs.push(Box::new(Tensor::scalar_i64(round as i64)))?;
                Ok(DispatchResult::Immediate)
            }
            AWAIT => {
                let round = scalar(inputs, 0, "Await")? as u64;
                if round != self.round || self.own.is_none() {
                    return Err(OpError::new(
                        OpErrorKind::Refused,
                        "mix.no_round",
                        format!(
                            "`Await` of round {round}, which is not the shared round {}",
                            self.round
                        ),
                    ));
                }
                if self.heard(round) == self.neighbours.len() {
                    for v in self.mix(round)?.into_iter().take(outputs.declared()) {
                        outputs.push(v)?;
                    }
                    return Ok(DispatchResult::Immediate);
                }
                let cmd = ctx.allocate_command_id()?;
                self.waiter = Some(Waiter {
                    round,
                    cmd,
                    names: ctx.current.outputs.to_vec(),
                    deadline_ns: ctx.time.now_ns.saturating_add(self.round_timeout_ns),
                });
                Ok(DispatchResult::Async(cmd))
            }
            RECEIVE => {
                let params = tensor_input(inputs, 0, "Receive")?;
                let round = scalar(inputs, 1, "Receive")? as u64;
                let from = scalar(inputs, 2, "Receive")? as u64;
                let known = self.neighbours.iter().any(|(p, _)| p.as_u64() == from);
                let past = round < self.round || (round == self.round && self.own.is_none());
                let values = params
                    .to_f32_vec()
                    .filter(|v| v.iter().all(|x| x.is_finite()));
                match values {
                    Some(values) if known && !past => {
                        self.inbox.insert((round, from), values);
                    }
                    _ => {
                        self.late += 1;
                        return Ok(DispatchResult::Immediate);
                    }
                }
                let complete = self.waiter.as_ref().is_some_and(|w| {
                    w.round == round && self.heard(round) == self.neighbours.len()
                });
                if complete {
                    self.finish_waiter(ctx)?;
                }
                outputs.push(Box::new(Tensor::scalar_i64(self.heard(round) as i64)))?;
                Ok(DispatchResult::Immediate)
            }
            TICK => {
                let due = self
                    .waiter
                    .as_ref()
                    .is_some_and(|w| ctx.time.now_ns >= w.deadline_ns);
                if due {
                    self.finish_waiter(ctx)?;
                }
                if outputs.declared() > 0 {
                    outputs.push(Box::new(Tensor::scalar_i64(i64::from(due))))?;
                }
                Ok(DispatchResult::Immediate)
            }
            _ => Err(OpError::new(
                OpErrorKind::Internal,
                "mix.unknown_op",
                format!("{op:?} is not a mix op"),
            )),
        }
    }

    fn snapshot_state(&self) -> Result<Vec<u8>, OpError> {
        encode_words(&[self.round, self.late, self.missed])
    }

    fn restore_state(&mut self, bytes: &[u8]) -> Result<(), OpError> {
        let w = decode_words(bytes, 3)?;
        (self.round, self.late, self.missed) = (w[0], w[1], w[2]);
        self.own = None;
        self.waiter = None;
        Ok(())
    }
}

impl fmt::Debug for MixComponent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MixComponent")
            .field("node", &self.node)
            .field("neighbours", &self.neighbours.len())
            .field("round", &self.round)
            .field("late", &self.late)
            .field("missed", &self.missed)
            .finish()
    }
}

/// How a D-PSGD job runs.
#[derive(Clone, Debug, PartialEq)]
pub struct DpsgdConfig {
    /// Rounds.
    pub rounds: usize,
    /// Local epochs per round.
    pub epochs: usize,
    /// Mini-batch size.
    pub batch: usize,
    /// Who averages with whom.
    pub topology: Topology,
    /// How long a Node waits for its neighbours in a round.
    pub round_timeout: Duration,
    /// Seed of the topology and the model initialisation.
    pub seed: u64,
    /// The model.
    pub model: ModelSpec,
    /// The optimiser.
    pub optimizer: OptimizerSpec,
    /// Threads of the runtime's compute pool.
    pub compute_threads: usize,
}

impl Default for DpsgdConfig {
    fn default() -> Self {
        Self {
            rounds: 20,
            epochs: 1,
            batch: 10,
            topology: Topology::Regular(8),
            round_timeout: Duration::from_secs(10),
            seed: 0,
            model: ModelSpec::Softmax,
            optimizer: OptimizerSpec::default(),
            compute_threads: 1,
        }
    }
}

/// Every Node's graphs, in site order: `round`, `send`, `receive`, `tick`.
pub fn dpsgd_graphs(config: &DpsgdConfig) -> Result<Vec<Graph>, GraphBuildError> {
    let timeout_ns = config.round_timeout.as_nanos().min(i64::MAX as u128) as i64;
    let mut b = GraphBuilder::new("round");
    let go = b.input("go");
    let seed = b.op("Next", [go]).domain("mix").output();
    let [x, y] = b.op("Local", [seed]).domain("data").outputs::<2>();
    let [train_loss, _n] = b
        .op("Train", [x, y, seed])
        .domain("model")
        .attr("epochs", config.epochs as i64)
        .attr("batch", config.batch as i64)
        .outputs::<2>();
    let params = b.op("Parameters", [train_loss]).domain("model").output();
    let round = b.op("Share", [params]).domain("mix").output();
    let [mixed, heard, missed] = b
        .op("Await", [round])
        .domain("mix")
        .attr("timeout_ns", timeout_ns.saturating_add(5_000_000_000))
        .outputs::<3>();
    let loaded = b.op("Load", [mixed]).domain("model").output();
    let [tx, ty] = b.op("Local", [loaded]).domain("test").outputs::<2>();
    let [loss, accuracy] = b.op("Evaluate", [tx, ty]).domain("model").outputs::<2>();
    b.output(round, "round")
        .output(heard, "heard")
        .output(missed, "missed")
        .output(loss, "loss")
        .output(accuracy, "accuracy");
    let round_graph = b.build()?;

    let mut b = GraphBuilder::new("send");
    let event = b
        .syscall("EventSource", [])
        .attr("kind", i64::from(SHARE_KIND))
        .output();
    let [peer, message] = b
        .syscall("Unbundle", [event])
        .attr("names", vec!["peer", "message"])
        .outputs::<2>();
    b.syscall("Send", [message, peer])
        .attr("site", i64::from(DPSGD_RECEIVE.as_u32()))
        .attr("input", "message")
        .attr("timeout_ns", timeout_ns)
        .finish();
    let send = b.build()?;

    let mut b = GraphBuilder::new("receive");
    let message = b.input("message");
    let [params, round, from] = b
        .syscall("Unbundle", [message])
        .attr("names", vec!["params", "round", "from"])
        .outputs::<3>();
    b.op("Receive", [params, round, from])
        .domain("mix")
        .finish();
    let receive = b.build()?;

    let mut b = GraphBuilder::new("tick");
    let period = (timeout_ns / 20).clamp(1_000_000, 50_000_000);
    let tick = b.syscall("Interval", []).attr("period_ns", period).output();
    b.op("Tick", [tick]).domain("mix").finish();
    let tick = b.build()?;
    Ok(vec![round_graph, send, receive, tick])
}

/// The peer id of D-PSGD Node `i`.
pub fn dpsgd_peer(i: usize) -> PeerId {
    PeerId::new(i as u64 + 1)
}

/// A prepared D-PSGD job.
#[derive(Debug)]
pub struct DpsgdJob {
    config: DpsgdConfig,
    data: FederatedData,
    graphs: Vec<Graph>,
    neighbours: Vec<Vec<usize>>,
}

impl DpsgdJob {
    /// Builds the topology and the graphs and checks the config against the data.
    pub fn new(config: DpsgdConfig, data: FederatedData) -> Result<Self, LearnError> {
        let n = data.clients.len();
        if config.epochs == 0 || config.batch == 0 {
            return Err(LearnError::Config(
                "epochs and batch must be positive".into(),
            ));
        }
        if let Some(c) = data.clients.iter().position(|d| d.is_empty()) {
            return Err(LearnError::Config(format!("Node {c} has no data")));
        }
        let neighbours = config
            .topology
            .neighbours(n, config.seed)
            .map_err(|e| LearnError::Config(e.to_string()))?;
        config
            .model
            .build(
                data.features(),
                data.classes(),
                &config.optimizer,
                config.seed,
            )
            .map_err(|e| LearnError::Config(format!("model: {e}")))?;
        let graphs = dpsgd_graphs(&config)
            .map_err(|e| LearnError::Config(format!("a generated graph did not build: {e}")))?;
        Ok(Self {
            config,
            data,
            graphs,
            neighbours,
        })
    }

    /// The topology's neighbour lists.
    pub fn neighbours(&self) -> &[Vec<usize>] {
        &self.neighbours
    }

    fn spec(&self, i: usize, weights: &(f64, Vec<f64>)) -> NodeSpec {
        let config = self.config.clone();
        let graphs = self.graphs.clone();
        let train = self.data.clients[i].clone();
        let test = self.data.test.clone();
        let (features, classes) = (self.data.features(), self.data.classes());
        let mine: Vec<(PeerId, f64)> = self.neighbours[i]
            .iter()
            .zip(&weights.1)
            .map(|(&j, &w)| (dpsgd_peer(j), w))
            .collect();
        let own_weight = weights.0;
        let degree = mine.len();
        NodeSpec::new(move || {
            let model = config
                .model
                .build(features, classes, &config.optimizer, config.seed)
                .expect("the model spec was checked when the job was built");
            let node_config = NodeConfig {
                bus_capacity: (4 * degree + 64).max(1024),
                ..NodeConfig::default()
            };
            let mut b = Node::builder(dpsgd_peer(i))
                .config(node_config)
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
                .component(
                    "mix",
                    Box::new(MixComponent::new(
                        i as u64,
                        mine.clone(),
                        own_weight,
                        config.round_timeout,
                    )),
                );
            for g in &graphs {
                b = b.graph(g.clone());
            }
            b
        })
    }

    /// Runs every round on every Node; row `r` is the mean over the Nodes
    /// of their mixed models' test accuracy and loss after round `r`.
    pub fn run(&self, progress: &mut dyn FnMut(&RoundReport)) -> Result<RunReport, LearnError> {
        let started = Instant::now();
        let n = self.data.clients.len();
        let runtime = Runtime::builder()
            .compute_threads(self.config.compute_threads.max(1))
            .peer_cap(n + 16)
            .build()
            .map_err(|e| LearnError::Runtime(e.to_string()))?;
        let weights = metropolis_hastings(&self.neighbours);
        let nodes = spawn_subscribed(
            &runtime,
            weights.iter().enumerate().map(|(i, w)| self.spec(i, w)),
        )?;
        let (first, params) = initial_row(
            &self.config.model,
            &self.config.optimizer,
            self.config.seed,
            &self.data,
            started,
        )?;
        let mut rows = vec![first];
        progress(&rows[0]);
        let edges: usize = self.neighbours.iter().map(Vec::len).sum();
        let round_bytes = ((4 * params + 24) * edges) as u64;
        let patience = self.config.round_timeout * 2 + Duration::from_secs(60);
        for r in 1..=self.config.rounds as u64 {
            for (node, _) in &nodes {
                node.invoke(DPSGD_ROUND, go(), r)
                    .map_err(|e| LearnError::Runtime(e.to_string()))?;
            }
            let (mut acc, mut loss, mut missed) = (0.0, 0.0, 0u64);
            for (_, rx) in &nodes {
                let a = await_ticket(rx, r, patience, "a D-PSGD Node's round")?;
                acc += a.scalar("accuracy").unwrap_or(f64::NAN);
                loss += a.scalar("loss").unwrap_or(f64::NAN);
                missed += a.scalar("missed").unwrap_or(0.0) as u64;
            }
            let row = RoundReport {
                round: r,
                accuracy: acc / n as f64,
                loss: loss / n as f64,
                seconds: started.elapsed().as_secs_f64(),
                bytes_sent: round_bytes,
                contributors: n as u64,
                stragglers: missed,
            };
            progress(&row);
            rows.push(row);
        }
        drop(nodes);
        let shutdown = runtime.shutdown(Duration::from_secs(30));
        Ok(RunReport {
            algo: "dpsgd".into(),
            nodes: n,
            partition: self.data.partition.clone(),
            model: self.config.model.to_string(),
            aggregator: format!("metropolis-hastings/{}", self.config.topology),
            codec: "identity".into(),
            bytes_sent: rows.iter().map(|r| r.bytes_sent).sum(),
            final_accuracy: rows.last().map_or(f64::NAN, |r| r.accuracy),
            rounds: rows,
            wall_seconds: started.elapsed().as_secs_f64(),
            messages: MessageTotals::from_shutdown(&shutdown),
            restarts: shutdown.totals.restarts,
        })
    }
}
