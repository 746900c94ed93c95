//! Push-sum averaging among many actor-hosted Nodes: every Node learns the network's mean value by gossip alone.
//!
//! Each Node `i` starts with a value `x_i` (seeded) and weight 1, and has
//! `k` out-neighbours on a random peer graph (its ring successor, so the
//! graph is strongly connected, plus `k - 1` seeded random peers). In each
//! round every Node runs its `round` graph:
//!
//! 1. `Take` (its `state` component) removes its whole `(s, w)` and picks a
//!    random neighbour with the Node's own seeded generator;
//! 2. `Split` runs on the runtime's compute pool (a [`ComputeComponent`]):
//!    it halves `(s, w)` into the part kept and the share sent, and computes
//!    the estimate `s / w`; its values come back through the Node's
//!    completion sink and wake the Node's actor thread;
//! 3. `Keep` adds the kept half back to the state, and `Send` moves the
//!    share (one [`Composite`] value) through the router to the neighbour's
//!    `absorb` graph, where `Absorb` adds it to that Node's state.
//!
//! `Take` empties the state rather than reading it, so a share absorbed
//! while `Split` is on the pool is never overwritten: the total `Σs` and
//! `Σw` are conserved exactly as long as no envelope is lost, and every
//! estimate `s_i / w_i` converges to the mean of the `x_i`. A refused
//! envelope (a full or closed lane) would lose its share: the example
//! counts refusals and fails if there is any.
//!
//! The example drives rounds itself: it invokes `round` on every Node, then
//! waits until every Node has reported the round's execution and every
//! share sent has been absorbed (the executions started by envelopes), so
//! each round is a clean barrier. Within a round the Nodes run
//! concurrently: whether a share reaches its receiver before or after that
//! receiver's own `Take` depends on thread timing, so the error trajectory
//! varies a little from run to run even with one seed (the seeded parts
//! are the values, the peer graph and each Node's neighbour choices); the
//! mass is conserved either way. At the end it reads every Node's `(s, w)`,
//! checks the mass, and exits non-zero unless the largest relative error is
//! below 1e-6.
//!
//! Run: `cargo run --release -p nodeflow --example gossip -- --nodes 64 --rounds 120 --seed 7`

use std::collections::HashMap;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use nodeflow::{
    ActorOutput, Component, Composite, ComputeComponent, ComputePool, DispatchResult, ExecOrigin,
    F64Value, GraphBuilder, LocalOpId, Node, NodeBuilder, NodeHandle, NodeSpec, OpError, OpInputs,
    OpOutputs, PeerId, PeerIdValue, Receiver, Runtime, RuntimeResourceRef, SlotValue, Trigger,
};

/// Largest relative consensus error accepted at the end.
const TOLERANCE: f64 = 1e-6;
/// How long one wait for an output may take before the example gives up.
const PATIENCE: Duration = Duration::from_secs(10);

/// Command-line settings.
#[derive(Clone, Copy, Debug)]
struct Settings {
    nodes: u64,
    rounds: u64,
    seed: u64,
    degree: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            nodes: 64,
            rounds: 120,
            seed: 7,
            degree: 4,
        }
    }
}

fn main() -> ExitCode {
    let settings = match parse_args(std::env::args().skip(1)) {
        Ok(settings) => settings,
        Err(message) => {
            eprintln!("{message}");
            eprintln!(
                "usage: gossip [--nodes N (>= 2)] [--rounds R] [--seed S] [--degree K (>= 1)]"
            );
            return ExitCode::from(2);
        }
    };
    match run(settings) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(message) => {
            eprintln!("gossip failed: {message}");
            ExitCode::FAILURE
        }
    }
}

/// Runs the whole example; `Ok(false)` when it did not converge.
fn run(settings: Settings) -> Result<bool, String> {
    let Settings {
        nodes,
        rounds,
        seed,
        degree,
    } = settings;
    let runtime = Runtime::builder().build().map_err(|e| e.to_string())?;
    let pool = runtime.compute_pool().clone();
    let mut rng = SplitMix::new(seed);
    let values: Vec<f64> = (0..nodes).map(|_| 100.0 * rng.unit()).collect();
    let mean = values.iter().sum::<f64>() / nodes as f64;
    let neighbours: Vec<Vec<PeerId>> = (0..nodes)
        .map(|i| pick_neighbours(i, nodes, degree, &mut rng))
        .collect();
    println!(
        "push-sum: {nodes} Nodes, {degree} neighbours each, {rounds} rounds, seed {seed}, \
         {} compute threads; true mean {mean:.9}",
        pool.threads()
    );

    let mut handles = Vec::with_capacity(nodes as usize);
    for i in 0..nodes {
        let spec = node_spec(
            i,
            values[i as usize],
            neighbours[i as usize].clone(),
            seed,
            &pool,
        );
        handles.push(runtime.spawn_node(spec).map_err(|e| e.to_string())?);
    }
    let receivers = handles
        .iter()
        .map(|h| h.subscribe().map_err(|e| e.to_string()))
        .collect::<Result<Vec<_>, _>>()?;
    let driver = Driver {
        handles: &handles,
        receivers: &receivers,
    };

    let started = Instant::now();
    let progress_every = (rounds / 10).max(1);
    for round in 1..=rounds {
        let estimates = driver.round(round)?;
        if round % progress_every == 0 || round == rounds {
            let error = max_relative_error(&estimates, mean);
            println!("round {round:4}: max relative error at round start {error:.3e}");
        }
    }
    let gossip_time = started.elapsed();

    let states = driver.read_all()?;
    let estimates: Vec<f64> = states.iter().map(|(s, w)| s / w).collect();
    let error = max_relative_error(&estimates, mean);
    let mass_s: f64 = states.iter().map(|(s, _)| s).sum();
    let mass_w: f64 = states.iter().map(|(_, w)| w).sum();
    let mass_error = ((mass_s - mean * nodes as f64) / (mean * nodes as f64))
        .abs()
        .max(((mass_w - nodes as f64) / nodes as f64).abs());

    let pool_stats = pool.stats();
    let report = runtime.shutdown(Duration::from_secs(5));
    let totals = report.totals;
    let envelopes = totals.routed;
    let seconds = gossip_time.as_secs_f64();
    println!(
        "consensus error {error:.3e} (max |estimate - mean| / |mean|) after {rounds} rounds; \
         Σs = {mass_s:.9} (want {:.9}), Σw = {mass_w:.9} (want {nodes}), mass off by {mass_error:.1e} (relative)",
        mean * nodes as f64
    );
    println!(
        "gossip took {:.1} ms: {envelopes} envelopes ({:.0}/s), {} compute jobs ({:.0}/s)",
        seconds * 1e3,
        envelopes as f64 / seconds,
        pool_stats.submitted,
        pool_stats.submitted as f64 / seconds
    );
    println!(
        "shutdown in {:.1} ms: {} Nodes stopped, {} failed; {} envelopes out, {} routed, \
         {} refused; {} executions, {} ops; messages: {} accepted = {} processed + {} dropped \
         at close + {} lost in {} restarts; {} drains incomplete; \
         compute {} completed / {} failed / {} panicked",
        report.elapsed.as_secs_f64() * 1e3,
        totals.nodes_stopped,
        totals.nodes_failed,
        totals.envelopes_out,
        totals.routed,
        totals.refused,
        totals.executions_finished,
        totals.ops_fired,
        totals.accepted,
        totals.processed,
        totals.dropped_at_close,
        totals.lost_in_restart,
        totals.restarts,
        totals.drains_incomplete,
        report.compute.completed,
        report.compute.failed,
        report.compute.panicked,
    );
    let lossless = totals.refused == 0
        && totals.dropped_at_close == 0
        && totals.lost_in_restart == 0
        && totals.nodes_failed == 0;
    let converged = error < TOLERANCE && mass_error < 1e-9;
    if !lossless {
        println!("FAILED: messages were lost, push-sum mass is not conserved");
    } else if !converged {
        println!("FAILED: error {error:.3e} is not below {TOLERANCE:.0e}; try more --rounds");
    } else {
        println!("converged: error {error:.3e} < {TOLERANCE:.0e}");
    }
    Ok(lossless && converged)
}

/// Site of the `absorb` graph on every Node (install order: `round`,
/// `absorb`, `read`); a `Send` addresses its peer's graph by site.
const ABSORB: u32 = 1;

/// Ticket of the final `read` invokes (round tickets are the round number).
const READ_TICKET: u64 = u64::MAX;

/// The spec of Node `i`: its `state` and `compute` components and its three graphs.
fn node_spec(i: u64, x: f64, neighbours: Vec<PeerId>, seed: u64, pool: &ComputePool) -> NodeSpec {
    let pool = pool.clone();
    NodeSpec::new(move || -> NodeBuilder {
        let state = PushSumState {
            s: x,
            w: 1.0,
            neighbours: neighbours.clone(),
            rng: SplitMix::new(seed ^ (i + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15)),
        };
        Node::builder(PeerId::new(i))
            .component("state", Box::new(state))
            .component("compute", Box::new(split_component(&pool)))
            .graph(round_graph())
            .graph(absorb_graph())
            .graph(read_graph())
    })
    .graph_name("round")
    .graph_name("absorb")
    .graph_name("read")
}

/// `go` → Take → Split (pool) → Keep + Send(share → neighbour's `absorb`);
/// outputs the estimate at round start and the neighbour chosen.
fn round_graph() -> nodeflow::Graph {
    let mut b = GraphBuilder::new("round");
    let go = b.input("go");
    let [s, w, to] = b.op("Take", [go]).domain("state").outputs::<3>();
    let [keep_s, keep_w, share, estimate] = b.op("Split", [s, w]).domain("compute").outputs::<4>();
    b.op("Keep", [keep_s, keep_w]).domain("state").finish();
    let [to_send, to_report] = b.syscall("Tee", [to]).outputs::<2>();
    b.syscall("Send", [share, to_send])
        .attr("site", i64::from(ABSORB))
        .attr("input", "share")
        .finish();
    b.output(estimate, "estimate");
    b.output(to_report, "to");
    b.build().expect("the round graph is valid")
}

/// `share` (from a neighbour's `round`) → Absorb; outputs the new estimate.
fn absorb_graph() -> nodeflow::Graph {
    let mut b = GraphBuilder::new("absorb");
    let share = b.input("share");
    let estimate = b.op("Absorb", [share]).domain("state").output();
    b.output(estimate, "estimate");
    b.build().expect("the absorb graph is valid")
}

/// `go` → the Node's `(s, w)`.
fn read_graph() -> nodeflow::Graph {
    let mut b = GraphBuilder::new("read");
    let go = b.input("go");
    let [s, w] = b.op("Read", [go]).domain("state").outputs::<2>();
    b.output(s, "s");
    b.output(w, "w");
    b.build().expect("the read graph is valid")
}

/// The pool half of a round: `(s, w)` → kept `s`, kept `w`, the share sent
/// (a composite of `s` and `w`), and the estimate `s / w`.
fn split_component(pool: &ComputePool) -> ComputeComponent {
    ComputeComponent::new("compute", pool.clone()).op("Split", |inputs| {
        let s = f64_of(inputs[0]).ok_or("Split takes s as an f64")?;
        let w = f64_of(inputs[1]).ok_or("Split takes w as an f64")?;
        if w <= 0.0 {
            return Err(format!("Split got a non-positive weight {w}"));
        }
        let (half_s, half_w) = (s / 2.0, w / 2.0);
        let share = Composite::new()
            .with("s", F64Value(half_s))
            .with("w", F64Value(half_w));
        Ok(vec![
            Box::new(F64Value(half_s)) as Box<dyn SlotValue>,
            Box::new(F64Value(half_w)),
            Box::new(share),
            Box::new(F64Value(s / w)),
        ])
    })
}

fn f64_of(value: &dyn SlotValue) -> Option<f64> {
    value.downcast_ref::<F64Value>().map(|v| v.0)
}

/// One Node's push-sum state and its random choice of neighbour.
struct PushSumState {
    s: f64,
    w: f64,
    neighbours: Vec<PeerId>,
    rng: SplitMix,
}

const TAKE: LocalOpId = LocalOpId(0);
const KEEP: LocalOpId = LocalOpId(1);
const ABSORB_OP: LocalOpId = LocalOpId(2);
const READ_OP: LocalOpId = LocalOpId(3);

impl Component for PushSumState {
    fn kind(&self) -> &str {
        "push-sum-state"
    }

    fn resolve_op(&self, op_type: &str) -> Option<LocalOpId> {
        match op_type {
            "Take" => Some(TAKE),
            "Keep" => Some(KEEP),
            "Absorb" => Some(ABSORB_OP),
            "Read" => Some(READ_OP),
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
            TAKE => {
                let pick = self.rng.below(self.neighbours.len() as u64) as usize;
                outputs.push(Box::new(F64Value(std::mem::take(&mut self.s))))?;
                outputs.push(Box::new(F64Value(std::mem::take(&mut self.w))))?;
                outputs.push(Box::new(PeerIdValue(self.neighbours[pick])))?;
            }
            KEEP => {
                self.s += inputs.get_as::<F64Value>(0)?.0;
                self.w += inputs.get_as::<F64Value>(1)?.0;
            }
            ABSORB_OP => {
                let share = inputs.get_as::<Composite>(0)?;
                let part = |name: &str| share.get(name).and_then(f64_of).unwrap_or(0.0);
                self.s += part("s");
                self.w += part("w");
                outputs.push(Box::new(F64Value(self.s / self.w)))?;
            }
            _ => {
                outputs.push(Box::new(F64Value(self.s)))?;
                outputs.push(Box::new(F64Value(self.w)))?;
            }
        }
        Ok(DispatchResult::Immediate)
    }
}

/// Invokes graphs on every Node and waits for what they cause.
struct Driver<'a> {
    handles: &'a [NodeHandle],
    receivers: &'a [Receiver<ActorOutput>],
}

/// One output, as far as the driver cares.
enum Seen {
    /// The `round` (or `read`) execution invoked with this ticket.
    Invoked {
        ticket: u64,
        outputs: HashMap<String, Box<dyn SlotValue>>,
    },
    /// An `absorb` execution (a share arrived).
    Absorbed,
}

impl Driver<'_> {
    /// Runs round `round` on every Node as a barrier: invokes `round`
    /// everywhere, collects each Node's round output, then waits until each
    /// Node has absorbed every share sent to it. Returns the estimates.
    fn round(&self, round: u64) -> Result<Vec<f64>, String> {
        let n = self.handles.len();
        for handle in self.handles {
            handle
                .invoke_by_name("round", vec![("go".into(), Box::new(Trigger))], round)
                .map_err(|e| e.to_string())?;
        }
        let mut absorbed = vec![0usize; n];
        let mut expected = vec![0usize; n];
        let mut estimates = Vec::with_capacity(n);
        for i in 0..n {
            let outputs = self.await_invoked(i, round, &mut absorbed)?;
            let to = outputs
                .get("to")
                .and_then(|v| v.downcast_ref::<PeerIdValue>())
                .ok_or_else(|| format!("Node {i} ended round {round} without a destination"))?;
            *expected
                .get_mut(to.0.as_u64() as usize)
                .ok_or_else(|| format!("Node {i} sent to {}, which is not a Node here", to.0))? +=
                1;
            estimates.push(
                outputs
                    .get("estimate")
                    .and_then(|v| f64_of(v.as_ref()))
                    .ok_or_else(|| format!("Node {i} ended round {round} without an estimate"))?,
            );
        }
        for j in 0..n {
            while absorbed[j] < expected[j] {
                match self.next(j)? {
                    Seen::Absorbed => absorbed[j] += 1,
                    Seen::Invoked { ticket, .. } => {
                        return Err(format!("Node {j}: unexpected invoke output {ticket}"))
                    }
                }
            }
        }
        Ok(estimates)
    }

    /// Invokes `read` on every Node; returns each Node's `(s, w)`.
    fn read_all(&self) -> Result<Vec<(f64, f64)>, String> {
        for handle in self.handles {
            handle
                .invoke_by_name("read", vec![("go".into(), Box::new(Trigger))], READ_TICKET)
                .map_err(|e| e.to_string())?;
        }
        let mut unused = vec![0usize; self.handles.len()];
        (0..self.handles.len())
            .map(|i| {
                let outputs = self.await_invoked(i, READ_TICKET, &mut unused)?;
                let get = |name: &str| outputs.get(name).and_then(|v| f64_of(v.as_ref()));
                match (get("s"), get("w")) {
                    (Some(s), Some(w)) => Ok((s, w)),
                    _ => Err(format!("Node {i}'s read is missing s or w")),
                }
            })
            .collect()
    }

    /// Receives from Node `i` until its invoke with `ticket` has finished,
    /// counting the absorbs seen on the way.
    fn await_invoked(
        &self,
        i: usize,
        ticket: u64,
        absorbed: &mut [usize],
    ) -> Result<HashMap<String, Box<dyn SlotValue>>, String> {
        loop {
            match self.next(i)? {
                Seen::Absorbed => absorbed[i] += 1,
                Seen::Invoked { ticket: t, outputs } if t == ticket => return Ok(outputs),
                Seen::Invoked { ticket: t, .. } => {
                    return Err(format!("Node {i}: expected ticket {ticket}, got {t}"))
                }
            }
        }
    }

    /// The next output of Node `i` (bounded wait).
    fn next(&self, i: usize) -> Result<Seen, String> {
        let output = self.receivers[i].recv_timeout(PATIENCE).map_err(|_| {
            let stats = self.handles[i].stats();
            let refused: u64 = self
                .handles
                .iter()
                .map(|h| {
                    let s = h.stats();
                    s.refused_full + s.refused_unknown_peer + s.refused_closed
                })
                .sum();
            format!(
                "Node {i} produced nothing for {PATIENCE:?} ({refused} sends refused in all, \
                 which would lose push-sum mass; its stats: {stats:?})"
            )
        })?;
        match output {
            ActorOutput::ExecFinished {
                origin,
                outputs,
                missing,
                ..
            } => {
                if !missing.is_empty() {
                    return Err(format!("Node {i}: an execution lacks outputs {missing:?}"));
                }
                match origin {
                    ExecOrigin::Ticket(ticket) => Ok(Seen::Invoked {
                        ticket,
                        outputs: outputs.into_iter().collect(),
                    }),
                    ExecOrigin::Envelope { .. } => Ok(Seen::Absorbed),
                    other => Err(format!("Node {i}: unexpected origin {other:?}")),
                }
            }
            other => Err(format!("Node {i}: unexpected output {other:?}")),
        }
    }
}

/// The largest `|estimate - mean| / |mean|`.
fn max_relative_error(estimates: &[f64], mean: f64) -> f64 {
    estimates
        .iter()
        .map(|e| (e - mean).abs() / mean.abs())
        .fold(0.0, f64::max)
}

/// Node `i`'s out-neighbours: its ring successor plus `degree - 1` distinct
/// random others.
fn pick_neighbours(i: u64, nodes: u64, degree: usize, rng: &mut SplitMix) -> Vec<PeerId> {
    let degree = degree.min(nodes as usize - 1);
    let mut picked = vec![(i + 1) % nodes];
    while picked.len() < degree {
        let candidate = rng.below(nodes);
        if candidate != i && !picked.contains(&candidate) {
            picked.push(candidate);
        }
    }
    picked.into_iter().map(PeerId::new).collect()
}

/// A small seeded generator (SplitMix64).
#[derive(Clone, Debug)]
struct SplitMix(u64);

impl SplitMix {
    fn new(seed: u64) -> Self {
        Self(seed)
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`.
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in `0..bound` (`bound > 0`; the tiny modulo bias is fine here).
    fn below(&mut self, bound: u64) -> u64 {
        self.next_u64() % bound.max(1)
    }
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Settings, String> {
    let mut settings = Settings::default();
    while let Some(flag) = args.next() {
        if flag == "--help" || flag == "-h" {
            return Err("push-sum gossip among actor-hosted Nodes".to_owned());
        }
        let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let number: u64 = value
            .parse()
            .map_err(|_| format!("{flag} takes a non-negative integer, got `{value}`"))?;
        match flag.as_str() {
            "--nodes" if number >= 2 => settings.nodes = number,
            "--rounds" => settings.rounds = number,
            "--seed" => settings.seed = number,
            "--degree" if number >= 1 => settings.degree = number as usize,
            "--nodes" | "--degree" => return Err(format!("{flag} {number} is too small")),
            _ => return Err(format!("unknown flag {flag}")),
        }
    }
    Ok(settings)
}
