//! FedAvg with a server Node: the graph builders of the server and of its clients, and [`FedAvgJob`], which spawns them on a [`Runtime`] and runs the rounds.
//!
//! Each round the server's `round` graph reads the global model, opens a
//! round in its [`FederationComponent`] (which samples the clients and
//! publishes one dispatch event each), and parks in `Await`. Per sampled
//! client a `dispatch` execution sends the global model and the client's
//! batch-order seed as a request to the client's `train` graph, which
//! loads the model, trains `epochs` local epochs on its data, and replies
//! with its update (new parameters minus the global ones) through its
//! codec, its sample count and its loss. The server decodes the update,
//! admits it if its round is still open, contributes it to the aggregator
//! weighted by the sample count, and marks the client arrived. When every
//! sampled client has arrived, or the round deadline passes (a `tick`
//! graph on an `Interval` checks it), `Await` completes, the aggregator
//! combines the updates, and the server adds the result to the global
//! model and evaluates it on the test set.
//!
//! Sending the update rather than the parameters lets a lossy codec
//! compress what is small, and is the same average: the weighted mean of
//! `global + Δᵢ` is `global +` the weighted mean of `Δᵢ`, and every robust
//! rule here commutes with that shift.

use nodeflow_engine::sync::atomic::AtomicBool;
use nodeflow_engine::sync::Arc;
use std::time::{Duration, Instant};

use nodeflow_engine::{
    EventKind, Graph, GraphBuildError, GraphBuilder, Node, NodeConfig, PeerId, SiteId,
};

use super::byzantine::ByzantineComponent;
use super::chaos::ChaosComponent;
use super::driver::{await_ticket, go, Answer, LearnError};
use super::federation::{FederationComponent, FederationConfig};
use super::report::{MessageTotals, RoundReport, RunReport};
use super::spec::{AggregatorSpec, CodecSpec, ModelSpec, OptimizerSpec};
use crate::backend::CpuBackend;
use crate::data::Dataset;
use crate::roles::{AggregatorComponent, CodecComponent, DataComponent, ModelComponent};
use crate::runtime::{NodeHandle, NodeSpec, Runtime};
use crate::Receiver;
use nodeflow_actors::ActorOutput;

/// The bus kind of the server's dispatch events.
pub const DISPATCH_KIND: u32 = EventKind::USER_MIN + 0x0F_0A;

/// Site of the server's `round` graph.
pub const SERVER_ROUND: SiteId = SiteId::new(0);
/// Site of the server's `dispatch` graph (started by dispatch events).
pub const SERVER_DISPATCH: SiteId = SiteId::new(1);
/// Site of the server's `tick` graph (started by its interval).
pub const SERVER_TICK: SiteId = SiteId::new(2);
/// Site of the server's `evaluate` graph.
pub const SERVER_EVALUATE: SiteId = SiteId::new(3);
/// Site of a client's `train` graph.
pub const CLIENT_TRAIN: SiteId = SiteId::new(0);

/// Training data split over clients, and the held-out test set.
#[derive(Clone, Debug)]
pub struct FederatedData {
    /// One dataset per client, in client order.
    pub clients: Vec<Arc<Dataset>>,
    /// The test set the server (or every Node) evaluates on.
    pub test: Arc<Dataset>,
    /// How the split was made, for reports (`iid`, `reference:iid-100`, ...).
    pub partition: String,
}

impl FederatedData {
    /// Input features (the same for every client).
    pub fn features(&self) -> usize {
        self.test.feature_dim()
    }

    /// Label classes.
    pub fn classes(&self) -> usize {
        self.clients
            .iter()
            .map(|c| c.classes())
            .chain([self.test.classes()])
            .max()
            .unwrap_or(0)
    }
}

/// How a FedAvg job runs. [`FedAvgConfig::default`] is the reference job:
/// softmax regression from zero, learning rate 0.5, batch 10, one local
/// epoch, every client every round, 20 rounds, plain FedAvg, no codec.
#[derive(Clone, Debug, PartialEq)]
pub struct FedAvgConfig {
    /// Rounds to run.
    pub rounds: usize,
    /// Fraction of the clients sampled per round, in `(0, 1]`.
    pub fraction: f64,
    /// Local epochs per round.
    pub epochs: usize,
    /// Mini-batch size.
    pub batch: usize,
    /// How long a round waits for its clients before it drops the stragglers.
    pub round_timeout: Duration,
    /// Seed of client sampling, model initialisation and garbage.
    pub seed: u64,
    /// The model.
    pub model: ModelSpec,
    /// The optimiser.
    pub optimizer: OptimizerSpec,
    /// The server's aggregation rule.
    pub aggregator: AggregatorSpec,
    /// How clients encode their updates.
    pub codec: CodecSpec,
    /// The last `byzantine` clients send garbage instead of their update.
    pub byzantine: usize,
    /// Standard deviation of the garbage.
    pub byzantine_scale: f32,
    /// Threads of the runtime's compute pool.
    pub compute_threads: usize,
}

impl Default for FedAvgConfig {
    fn default() -> Self {
        Self {
            rounds: 20,
            fraction: 1.0,
            epochs: 1,
            batch: 10,
            round_timeout: Duration::from_secs(10),
            seed: 0,
            model: ModelSpec::Softmax,
            optimizer: OptimizerSpec::default(),
            aggregator: AggregatorSpec::FedAvg,
            codec: CodecSpec::Identity,
            byzantine: 0,
            byzantine_scale: 10.0,
            compute_threads: 1,
        }
    }
}

fn graph_error(e: GraphBuildError) -> LearnError {
    LearnError::Config(format!("a generated graph did not build: {e}"))
}

/// The server's graphs, in site order: `round`, `dispatch`, `tick`, `evaluate`.
pub fn server_graphs(config: &FedAvgConfig) -> Result<Vec<Graph>, GraphBuildError> {
    let timeout_ns = config.round_timeout.as_nanos().min(i64::MAX as u128) as i64;

    let mut b = GraphBuilder::new("round");
    let go = b.input("go");
    let global = b.op("Parameters", [go]).domain("model").output();
    let [round, _sampled] = b.op("Open", [global]).domain("federation").outputs::<2>();
    let [contributors, stragglers, bytes, train_loss] = b
        .op("Await", [round])
        .domain("federation")
        .attr("timeout_ns", timeout_ns.saturating_add(5_000_000_000))
        .outputs::<4>();
    let [delta, _n] = b
        .op("Aggregate", [contributors])
        .domain("aggregator")
        .outputs::<2>();
    let next = b.op("Add", [global, delta]).domain("ai.onnx").output();
    let loaded = b.op("Load", [next]).domain("model").output();
    let [tx, ty] = b.op("Local", [loaded]).domain("data").outputs::<2>();
    let [loss, accuracy] = b.op("Evaluate", [tx, ty]).domain("model").outputs::<2>();
    b.output(round, "round")
        .output(contributors, "contributors")
        .output(stragglers, "stragglers")
        .output(bytes, "bytes")
        .output(train_loss, "train_loss")
        .output(loss, "loss")
        .output(accuracy, "accuracy");
    let round_graph = b.build()?;

    let mut b = GraphBuilder::new("dispatch");
    let event = b
        .syscall("EventSource", [])
        .attr("kind", i64::from(DISPATCH_KIND))
        .output();
    let [peer, peer_id, round, task] = b
        .syscall("Unbundle", [event])
        .attr("names", vec!["peer", "peer_id", "round", "task"])
        .outputs::<4>();
    let answer = b
        .syscall("Send", [task, peer])
        .attr("site", i64::from(CLIENT_TRAIN.as_u32()))
        .attr("input", "task")
        .attr("request", 1)
        .attr("timeout_ns", timeout_ns)
        .attr("fixed_deadline", 1)
        .output();
    let [update, samples, loss, wire] = b
        .syscall("Unbundle", [answer])
        .attr("names", vec!["update", "samples", "loss", "wire"])
        .outputs::<4>();
    let decoded = b.op("Decode", [update]).domain("codec").output();
    let admitted = b
        .op("Admit", [round, peer_id, decoded])
        .domain("federation")
        .output();
    let pending = b
        .op("Contribute", [admitted, samples, peer_id])
        .domain("aggregator")
        .output();
    b.op("Arrived", [round, peer_id, pending, wire, loss])
        .domain("federation")
        .finish();
    let dispatch = b.build()?;

    let mut b = GraphBuilder::new("tick");
    let period = (timeout_ns / 20).clamp(1_000_000, 50_000_000);
    let tick = b.syscall("Interval", []).attr("period_ns", period).output();
    b.op("Tick", [tick]).domain("federation").finish();
    let tick = b.build()?;

    let mut b = GraphBuilder::new("evaluate");
    let go = b.input("go");
    let [tx, ty] = b.op("Local", [go]).domain("data").outputs::<2>();
    let [loss, accuracy] = b.op("Evaluate", [tx, ty]).domain("model").outputs::<2>();
    b.output(loss, "loss").output(accuracy, "accuracy");
    let evaluate = b.build()?;

    Ok(vec![round_graph, dispatch, tick, evaluate])
}

/// A client's graph (site 0, `train`). A byzantine client replaces its
/// update with garbage; a client given `chaos` passes its trained
/// parameters through a [`ChaosComponent`] (fault injection).
pub fn client_graph(
    config: &FedAvgConfig,
    byzantine: bool,
    chaos: bool,
) -> Result<Graph, GraphBuildError> {
    let mut b = GraphBuilder::new("train");
    let task = b.input("task");
    let [model, seed] = b
        .syscall("Unbundle", [task])
        .attr("names", vec!["model", "seed"])
        .outputs::<2>();
    let loaded = b.op("Load", [model]).domain("model").output();
    let [x, y] = b.op("Local", [loaded]).domain("data").outputs::<2>();
    let [loss, samples] = b
        .op("Train", [x, y, seed])
        .domain("model")
        .attr("epochs", config.epochs as i64)
        .attr("batch", config.batch as i64)
        .outputs::<2>();
    let mut trained = b.op("Parameters", [loss]).domain("model").output();
    if chaos {
        trained = b.op("Maybe", [trained]).domain("chaos").output();
    }
    let mut delta = b.op("Sub", [trained, model]).domain("ai.onnx").output();
    if byzantine {
        delta = b.op("Corrupt", [delta]).domain("byzantine").output();
    }
    let [encoded, wire] = b.op("Encode", [delta]).domain("codec").outputs::<2>();
    let answer = b
        .syscall("Bundle", [encoded, samples, loss, wire])
        .attr("names", vec!["update", "samples", "loss", "wire"])
        .output();
    b.syscall("Reply", [answer]).finish();
    b.build()
}

/// A prepared FedAvg job: validated config, data and graphs.
#[derive(Debug)]
pub struct FedAvgJob {
    config: FedAvgConfig,
    data: FederatedData,
    server_graphs: Vec<Graph>,
    client_graph: Graph,
    byzantine_graph: Graph,
    chaos_graph: Graph,
}

/// The server's peer id; clients are `2 ..= K + 1` (client `c` is peer `c + 2`).
pub const SERVER: PeerId = PeerId::new(1);

/// The peer id of client `c`.
pub fn client_peer(c: usize) -> PeerId {
    PeerId::new(c as u64 + 2)
}

impl FedAvgJob {
    /// Checks the config against the data and builds every graph.
    pub fn new(config: FedAvgConfig, data: FederatedData) -> Result<Self, LearnError> {
        let k = data.clients.len();
        if k == 0 {
            return Err(LearnError::Config("no clients".into()));
        }
        if config.byzantine > k {
            return Err(LearnError::Config(format!(
                "{} byzantine clients of {k}",
                config.byzantine
            )));
        }
        if config.epochs == 0 || config.batch == 0 {
            return Err(LearnError::Config(
                "epochs and batch must be positive".into(),
            ));
        }
        if let Some(c) = data.clients.iter().position(|d| d.is_empty()) {
            return Err(LearnError::Config(format!("client {c} has no data")));
        }
        let (features, classes) = (data.features(), data.classes());
        config
            .model
            .build(features, classes, &config.optimizer, config.seed)
            .map_err(|e| LearnError::Config(format!("model: {e}")))?;
        config
            .aggregator
            .build()
            .map_err(|e| LearnError::Config(format!("aggregator: {e}")))?;
        config
            .codec
            .build()
            .map_err(|e| LearnError::Config(format!("codec: {e}")))?;
        let fed = FederationConfig {
            clients: (0..k).map(client_peer).collect(),
            fraction: config.fraction,
            seed: config.seed,
            round_timeout_ns: config.round_timeout.as_nanos().min(u64::MAX as u128) as u64,
            dispatch_kind: EventKind::new(DISPATCH_KIND),
        };
        FederationComponent::new(fed).map_err(|e| LearnError::Config(e.to_string()))?;
        Ok(Self {
            server_graphs: server_graphs(&config).map_err(graph_error)?,
            client_graph: client_graph(&config, false, false).map_err(graph_error)?,
            byzantine_graph: client_graph(&config, true, false).map_err(graph_error)?,
            chaos_graph: client_graph(&config, false, true).map_err(graph_error)?,
            config,
            data,
        })
    }

    /// The job's config.
    pub fn config(&self) -> &FedAvgConfig {
        &self.config
    }

    fn server_spec(&self) -> NodeSpec {
        let config = self.config.clone();
        let graphs = self.server_graphs.clone();
        let test = self.data.test.clone();
        let (features, classes) = (self.data.features(), self.data.classes());
        let k = self.data.clients.len();
        NodeSpec::new(move || {
            let model = config
                .model
                .build(features, classes, &config.optimizer, config.seed)
                .expect("the model spec was checked when the job was built");
            let rule = config.aggregator.build().expect("checked at job build");
            let codec = config.codec.build().expect("checked at job build");
            let federation = FederationComponent::new(FederationConfig {
                clients: (0..k).map(client_peer).collect(),
                fraction: config.fraction,
                seed: config.seed,
                round_timeout_ns: config.round_timeout.as_nanos().min(u64::MAX as u128) as u64,
                dispatch_kind: EventKind::new(DISPATCH_KIND),
            })
            .expect("checked at job build");
            let data = DataComponent::new(test.clone()).expect("a non-empty test set");
            let node_config = NodeConfig {
                bus_capacity: (2 * k + 64).max(1024),
                max_pending_async: (2 * k + 64).max(4096),
                ..NodeConfig::default()
            };
            let mut b = Node::builder(SERVER)
                .config(node_config)
                .component("ai.onnx", Box::new(CpuBackend::inline()))
                .component("model", Box::new(ModelComponent::new(model, None)))
                .component("data", Box::new(data))
                .component("codec", Box::new(CodecComponent::new(codec)))
                .component("aggregator", Box::new(AggregatorComponent::new(rule, None)))
                .component("federation", Box::new(federation));
            for g in &graphs {
                b = b.graph(g.clone());
            }
            b
        })
    }

    fn client_spec(&self, c: usize, chaos: Option<Arc<AtomicBool>>) -> NodeSpec {
        let k = self.data.clients.len();
        let byzantine = c >= k - self.config.byzantine;
        let graph = match (&chaos, byzantine) {
            (Some(_), _) => self.chaos_graph.clone(),
            (None, true) => self.byzantine_graph.clone(),
            (None, false) => self.client_graph.clone(),
        };
        let config = self.config.clone();
        let data = self.data.clients[c].clone();
        let (features, classes) = (self.data.features(), self.data.classes());
        NodeSpec::new(move || {
            let model = config
                .model
                .build(features, classes, &config.optimizer, config.seed)
                .expect("the model spec was checked when the job was built");
            let codec = config.codec.build().expect("checked at job build");
            let data = DataComponent::new(data.clone()).expect("checked non-empty at job build");
            let mut b = Node::builder(client_peer(c))
                .component("ai.onnx", Box::new(CpuBackend::inline()))
                .component("model", Box::new(ModelComponent::new(model, None)))
                .component("data", Box::new(data))
                .component("codec", Box::new(CodecComponent::new(codec)));
            if byzantine {
                let seed = config.seed ^ (0xB1_2A_47 + c as u64);
                b = b.component(
                    "byzantine",
                    Box::new(ByzantineComponent::new(seed, config.byzantine_scale)),
                );
            }
            if let Some(armed) = &chaos {
                b = b.component("chaos", Box::new(ChaosComponent::panic_once(armed.clone())));
            }
            b.graph(graph.clone())
        })
    }

    /// Spawns the server and the clients on a fresh runtime; client `c` in
    /// `chaos` panics once in its next training (fault injection).
    pub fn start(&self, chaos: &[(usize, Arc<AtomicBool>)]) -> Result<FedAvgRun, LearnError> {
        let started = Instant::now();
        let runtime = Runtime::builder()
            .compute_threads(self.config.compute_threads.max(1))
            .peer_cap(self.data.clients.len() + 16)
            .build()
            .map_err(|e| LearnError::Runtime(e.to_string()))?;
        let spawn = |spec: NodeSpec| {
            runtime
                .spawn_node(spec)
                .map_err(|e| LearnError::Runtime(e.to_string()))
        };
        let mut clients = Vec::with_capacity(self.data.clients.len());
        for c in 0..self.data.clients.len() {
            let armed = chaos.iter().find(|(i, _)| *i == c).map(|(_, a)| a.clone());
            clients.push(spawn(self.client_spec(c, armed))?);
        }
        let server = spawn(self.server_spec())?;
        let outputs = server
            .subscribe()
            .map_err(|e| LearnError::Runtime(e.to_string()))?;
        Ok(FedAvgRun {
            runtime: Some(runtime),
            server,
            outputs,
            clients,
            started,
            round: 0,
            ticket: 0,
            rows: Vec::new(),
            patience: self.config.round_timeout * 2 + Duration::from_secs(30),
            job: self.describe(),
        })
    }

    fn describe(&self) -> RunReport {
        RunReport {
            algo: "fedavg".into(),
            nodes: self.data.clients.len(),
            partition: self.data.partition.clone(),
            model: self.config.model.to_string(),
            aggregator: self.config.aggregator.to_string(),
            codec: self.config.codec.to_string(),
            rounds: Vec::new(),
            final_accuracy: f64::NAN,
            wall_seconds: 0.0,
            messages: MessageTotals::default(),
            restarts: 0,
            bytes_sent: 0,
        }
    }

    /// Runs every round, calling `progress` after each (round 0 is the
    /// untrained model), and shuts the runtime down.
    pub fn run(&self, progress: &mut dyn FnMut(&RoundReport)) -> Result<RunReport, LearnError> {
        let mut run = self.start(&[])?;
        progress(&run.evaluate()?);
        for _ in 0..self.config.rounds {
            progress(&run.round()?);
        }
        Ok(run.finish(Duration::from_secs(30)))
    }
}

/// A FedAvg job in progress: its runtime, server and clients.
#[derive(Debug)]
pub struct FedAvgRun {
    runtime: Option<Runtime>,
    server: NodeHandle,
    outputs: Receiver<ActorOutput>,
    clients: Vec<NodeHandle>,
    started: Instant,
    round: u64,
    ticket: u64,
    rows: Vec<RoundReport>,
    patience: Duration,
    job: RunReport,
}

impl FedAvgRun {
    /// Client `c`'s Node.
    pub fn client(&self, c: usize) -> Option<&NodeHandle> {
        self.clients.get(c)
    }

    /// The server's Node.
    pub fn server(&self) -> &NodeHandle {
        &self.server
    }

    /// The rounds run so far (round 0 first, once evaluated).
    pub fn rows(&self) -> &[RoundReport] {
        &self.rows
    }

    fn ask(&mut self, site: SiteId, what: &str) -> Result<Answer, LearnError> {
        self.ticket += 1;
        self.server
            .invoke(site, go(), self.ticket)
            .map_err(|e| LearnError::Runtime(e.to_string()))?;
        await_ticket(&self.outputs, self.ticket, self.patience, what)
    }

    /// Evaluates the global model as it is (round 0 before any training).
    pub fn evaluate(&mut self) -> Result<RoundReport, LearnError> {
        let answer = self.ask(SERVER_EVALUATE, "the server's evaluation")?;
        let row = RoundReport {
            round: self.round,
            accuracy: answer.scalar("accuracy").unwrap_or(f64::NAN),
            loss: answer.scalar("loss").unwrap_or(f64::NAN),
            seconds: self.started.elapsed().as_secs_f64(),
            bytes_sent: 0,
            contributors: 0,
            stragglers: 0,
        };
        self.rows.push(row.clone());
        Ok(row)
    }

    /// Runs one round. A round no update reached keeps the global model
    /// (its accuracy and loss are the previous round's).
    pub fn round(&mut self) -> Result<RoundReport, LearnError> {
        let answer = self.ask(SERVER_ROUND, "the server's round")?;
        self.round = answer.scalar("round").map_or(self.round + 1, |r| r as u64);
        let last = self.rows.last();
        let row = RoundReport {
            round: self.round,
            accuracy: answer
                .scalar("accuracy")
                .or(last.map(|r| r.accuracy))
                .unwrap_or(f64::NAN),
            loss: answer
                .scalar("loss")
                .or(last.map(|r| r.loss))
                .unwrap_or(f64::NAN),
            seconds: self.started.elapsed().as_secs_f64(),
            bytes_sent: answer.scalar("bytes").unwrap_or(0.0) as u64,
            contributors: answer.scalar("contributors").unwrap_or(0.0) as u64,
            stragglers: answer.scalar("stragglers").unwrap_or(0.0) as u64,
        };
        self.rows.push(row.clone());
        Ok(row)
    }

    /// Shuts the runtime down and returns the run's report.
    pub fn finish(mut self, deadline: Duration) -> RunReport {
        let mut report = self.job.clone();
        if let Some(runtime) = self.runtime.take() {
            let shutdown = runtime.shutdown(deadline);
            report.messages = MessageTotals::from_shutdown(&shutdown);
            report.restarts = shutdown.totals.restarts;
        }
        report.wall_seconds = self.started.elapsed().as_secs_f64();
        report.final_accuracy = self.rows.last().map_or(f64::NAN, |r| r.accuracy);
        report.bytes_sent = self.rows.iter().map(|r| r.bytes_sent).sum();
        report.rounds = std::mem::take(&mut self.rows);
        report
    }
}
