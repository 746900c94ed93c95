//! The runtime facade: a [`Runtime`] owns the router, the compute pool and the clock, spawns Nodes as actors from [`NodeSpec`]s and stops them all in [`Runtime::shutdown`].
//!
//! ```
//! use nodeflow::{GraphBuilder, Node, NodeSpec, PeerId, Runtime, SiteId, U64Value};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let runtime = Runtime::builder().compute_threads(1).build()?;
//! let node = runtime.spawn_node(NodeSpec::new(|| {
//!     let mut b = GraphBuilder::new("echo");
//!     let x = b.input("x");
//!     let y = b.syscall("PassThrough", [x]).output();
//!     b.output(y, "y");
//!     Node::builder(PeerId::new(1)).graph(b.build().expect("a valid graph"))
//! }))?;
//! let outputs = node.subscribe()?;
//! node.invoke(SiteId::new(0), vec![("x".into(), Box::new(U64Value(7)))], 1)?;
//! let finished = outputs.recv()?;
//! assert_eq!(finished.peer(), PeerId::new(1));
//! let report = runtime.shutdown(std::time::Duration::from_secs(5));
//! assert_eq!(report.totals.nodes_stopped, 1);
//! # Ok(()) }
//! ```
//!
//! # Invariants
//! * Every Node a [`Runtime`] spawned is in its node table until it is
//!   stopped, through [`NodeHandle::stop`] or by the runtime; the table and
//!   every [`NodeHandle`] clone share one entry per Node, so whichever stops
//!   it first gets the [`ActorReport`] and the others see it stopped.
//! * A Node is stopped exactly once: its [`ActorHandle`] is taken out of the
//!   entry under the entry's lock before `stop` is called.
//! * No Node thread outlives the [`Runtime`]: [`Runtime::shutdown`] stops
//!   every Node still in the table, and dropping the runtime without
//!   `shutdown` does the same (discarding the reports).
//! * After shutdown begins, [`Runtime::spawn_node`] refuses with
//!   [`SpawnNodeError::ShutDown`]; a spawn racing with the shutdown stops the
//!   Node it just started instead of leaking it.
//! * Locks: the table lock and an entry's lock are never held together, and
//!   neither is held while a thread is joined.
//!
//! # Lifecycle
//! 1. [`Runtime::builder`] → [`RuntimeBuilder::build`] starts the compute
//!    pool and creates the router (no Node threads yet).
//! 2. [`Runtime::spawn_node`] calls the spec's factory once, builds the
//!    Node, resolves the graph names the spec declared, starts its
//!    supervised actor ([`NodeActor::spawn_supervised_node`]: the factory
//!    rebuilds the Node for a restart) and records it in the table.
//! 3. [`NodeHandle::stop`] stops one Node and removes it from the table
//!    (only its own entry: a Node spawned again for the same peer is kept).
//! 4. [`Runtime::shutdown`] runs in two phases within its deadline:
//!    1. *Stop accepting*: the table refuses spawns, handles refuse input
//!       ([`NodeInputError::ShuttingDown`]) and the router refuses new
//!       requests and one-way envelopes ([`Router::stop_new_work`]);
//!       responses still flow, so work in flight can finish.
//!    2. *Drain*: every Node runs until it is quiescent (no execution, no
//!       op waiting on a compute job or a response) or the deadline
//!       passes, then closes its mailbox and exits
//!       ([`ActorHandle::begin_drain`], [`ActorHandle::finish`]); then the
//!       runtime waits for compute jobs still in flight (their results are
//!       refused by closed mailboxes and counted), and returns a
//!       [`ShutdownReport`] that accounts for every message.
//!
//!    A Node stuck in an op past the deadline (plus its join grace) is
//!    reported as a failure and left detached rather than hang the caller.

use std::collections::HashMap;
use std::fmt;
use std::num::NonZeroUsize;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

use nodeflow_actors::{
    panic_message, ActorConfig, ActorError, ActorHandle, ActorMetrics, ActorOutput, ActorReport,
    ActorStats, Clock, NodeActor, NodeFactory, Router, RouterStats, SnapshotRequestError,
    SpawnError, SubscribeError, SystemClock,
};
use nodeflow_engine::sync::atomic::{AtomicBool, Ordering};
use nodeflow_engine::sync::channel::Receiver;
use nodeflow_engine::sync::{Arc, Mutex};
use nodeflow_engine::{
    BuildError, DeliverError, EventKind, IngressEvent, NodeBuilder, PeerId, SiteId, SlotValue,
};

use crate::compute_pool::{ComputePool, ComputePoolError, ComputePoolStats};

/// Configures a [`Runtime`]; start with [`Runtime::builder`].
#[derive(Clone)]
pub struct RuntimeBuilder {
    compute_threads: Option<usize>,
    clock: Option<Arc<dyn Clock>>,
    actor_config: ActorConfig,
    peer_cap: usize,
}

/// Many Nodes in one process: each on its own actor thread, all sharing one
/// [`Router`], one [`ComputePool`] and one [`Clock`].
pub struct Runtime {
    router: Arc<Router>,
    pool: ComputePool,
    clock: Arc<dyn Clock>,
    actor_config: ActorConfig,
    table: Arc<NodeTable>,
}

/// How to make one Node: a [`NodeFactory`] plus optional per-Node settings.
#[derive(Clone)]
pub struct NodeSpec {
    factory: NodeFactory,
    actor_config: Option<ActorConfig>,
    graph_names: Vec<String>,
}

/// A running (or stopped) Node of a [`Runtime`]; cheap to clone, every
/// clone reaches the same Node.
#[derive(Clone)]
pub struct NodeHandle {
    entry: Arc<NodeEntry>,
    table: Arc<NodeTable>,
}

/// What [`Runtime::shutdown`] accounts for.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ShutdownReport {
    /// Reports of the Nodes that stopped cleanly, by peer.
    pub nodes: Vec<ActorReport>,
    /// Nodes that did not stop cleanly (a panic escaped their engine), by peer.
    pub failures: Vec<ActorError>,
    /// Sums over `nodes` and `failures`.
    pub totals: ShutdownTotals,
    /// Compute jobs still running at the deadline (their results will be
    /// refused by the closed mailboxes).
    pub compute_jobs_abandoned: u64,
    /// The deadline the shutdown was given.
    pub deadline: Duration,
    /// How long the shutdown took.
    pub elapsed: Duration,
    /// The compute pool's counters once every Node had stopped.
    pub compute: ComputePoolStats,
    /// The router's counters once every Node had stopped.
    pub router: RouterStats,
}

/// Sums over the Nodes a shutdown stopped.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ShutdownTotals {
    /// Nodes that stopped cleanly.
    pub nodes_stopped: usize,
    /// Nodes that did not ([`ShutdownReport::failures`]).
    pub nodes_failed: usize,
    /// `SendEnvelope` steps seen by the stopped Nodes' actors.
    pub envelopes_out: u64,
    /// Envelopes the router delivered for them.
    pub routed: u64,
    /// Envelopes refused (full lane, unknown peer, closed destination or
    /// shutting down), each handed back to its sending op.
    pub refused: u64,
    /// Executions the stopped Nodes finished.
    pub executions_finished: u64,
    /// Ops the stopped Nodes fired.
    pub ops_fired: u64,
    /// Ingress events dropped at close (including those of failed Nodes).
    pub dropped_at_close: u64,
    /// Nodes whose stop drain hit [`ActorConfig::max_stop_polls`].
    pub drains_incomplete: usize,
    /// Nodes whose in-flight work was cut short by the deadline.
    pub drain_deadlines_hit: usize,
    /// Executions still alive when their Node stopped.
    pub abandoned_executions: u64,
    /// Restarts from a snapshot, over all Nodes.
    pub restarts: u64,
    /// Messages (mailbox events) accepted, over all Nodes with a report.
    pub accepted: u64,
    /// Accepted messages processed.
    pub processed: u64,
    /// Accepted messages a restart rolled back.
    pub lost_in_restart: u64,
}

/// [`RuntimeBuilder::build`] failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RuntimeError {
    /// The compute pool could not be started.
    #[error("the compute pool could not be started: {0}")]
    ComputePool(#[from] ComputePoolError),
    /// A router peer cap of 0 was asked for; no Node could ever be spawned.
    #[error("a router peer cap of 0 leaves room for no Node; pass 1 or more")]
    ZeroPeerCap,
}

/// [`Runtime::spawn_node`] failed; nothing is left running.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SpawnNodeError {
    /// The runtime is shutting down (or shut down) and spawns no more Nodes.
    #[error("the runtime is shutting down and spawns no more Nodes")]
    ShutDown,
    /// The spec's factory panicked.
    #[error("the Node factory panicked: {message}")]
    FactoryPanicked {
        /// The panic message, when it was a string.
        message: String,
    },
    /// The factory's builder did not build (invalid graph or component).
    #[error("the Node did not build: {0}")]
    Build(#[from] BuildError),
    /// A graph name the spec declared ([`NodeSpec::graph_name`]) is not
    /// installed on the Node; check the name given to `GraphBuilder::new`.
    #[error("peer {peer} has no graph named `{name}`; check the spec's graph names")]
    UnknownGraph {
        /// The Node's peer.
        peer: PeerId,
        /// The name that did not resolve.
        name: String,
    },
    /// The actor could not start: the peer is already running, the router
    /// is at its peer cap, the clock refused to watch it, or the OS refused
    /// the thread (the Node is inside where it can be handed back).
    #[error("the Node's actor could not start: {0}")]
    Spawn(#[from] SpawnError),
}

/// An input for a Node was not queued.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NodeInputError {
    /// The runtime is shutting down and accepts no new input.
    #[error("the runtime is shutting down; peer {peer} accepts no new input")]
    ShuttingDown {
        /// The Node's peer.
        peer: PeerId,
    },
    /// The Node has been stopped (by its handle or by the runtime).
    #[error("peer {peer} has been stopped; spawn it again to send it input")]
    Stopped {
        /// The Node's peer.
        peer: PeerId,
    },
    /// [`NodeHandle::invoke_by_name`] got a name the spec did not declare
    /// with [`NodeSpec::graph_name`].
    #[error("peer {peer} has no declared graph `{name}`; declare it with NodeSpec::graph_name")]
    UnknownGraph {
        /// The Node's peer.
        peer: PeerId,
        /// The name given.
        name: String,
    },
    /// The Node's ingress refused the event (data lane full, or the Node is
    /// stopping); the event is inside, retry after the Node drains.
    #[error("peer {peer} refused the input: {source}")]
    Refused {
        /// The Node's peer.
        peer: PeerId,
        /// The refusal, holding the event.
        source: DeliverError,
    },
}

/// [`NodeHandle::subscribe`] was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NodeSubscribeError {
    /// The Node has been stopped; it produces no more outputs.
    #[error("peer {peer} has been stopped; it produces no more outputs")]
    Stopped {
        /// The Node's peer.
        peer: PeerId,
    },
    /// The actor's subscription cap is reached.
    #[error(transparent)]
    Refused(#[from] SubscribeError),
}

/// [`NodeHandle::stop`] did not return a report.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StopNodeError {
    /// The Node was already stopped (by another handle or by the runtime,
    /// which holds its report).
    #[error("peer {peer} was already stopped")]
    AlreadyStopped {
        /// The Node's peer.
        peer: PeerId,
    },
    /// The actor did not stop cleanly.
    #[error(transparent)]
    Actor(#[from] ActorError),
}

/// The Nodes of one runtime. Shared by the [`Runtime`] and every
/// [`NodeHandle`]: spawns insert, stops and the shutdown remove.
struct NodeTable {
    /// Written by `spawn_node` (insert), `NodeHandle::stop` (remove its own
    /// entry) and the shutdown (close and take all); read by `node`/`peers`.
    state: Mutex<TableState>,
    /// Cleared once by the shutdown's phase 1, read by every input a handle
    /// pushes. `Relaxed`: an input that races the clear is accepted before
    /// the drain and handled by it, so the race loses nothing.
    accepting: AtomicBool,
}

struct TableState {
    /// False once shutdown began: spawns are refused from then on.
    open: bool,
    nodes: HashMap<PeerId, Arc<NodeEntry>>,
}

/// One spawned Node, shared by the table and the Node's handles.
struct NodeEntry {
    peer: PeerId,
    /// How the Node was made (kept so it can be made again).
    spec: NodeSpec,
    /// Sites of the graph names the spec declared.
    sites: HashMap<String, SiteId>,
    /// Taken (Running → Stopping → Stopped) by whoever stops the Node;
    /// read by every handle call.
    actor: Mutex<ActorSlot>,
}

enum ActorSlot {
    Running(ActorHandle),
    /// `stop` is joining the thread; `last` was read just before.
    Stopping {
        last: ActorStats,
    },
    Stopped {
        stats: ActorStats,
    },
}

impl Runtime {
    /// A builder with the defaults: one compute thread per available core,
    /// a [`SystemClock`], [`ActorConfig::default`] and
    /// [`Router::DEFAULT_PEER_CAP`].
    pub fn builder() -> RuntimeBuilder {
        RuntimeBuilder {
            compute_threads: None,
            clock: None,
            actor_config: ActorConfig::default(),
            peer_cap: Router::DEFAULT_PEER_CAP,
        }
    }

    /// Builds the spec's Node and starts it on its own actor thread.
    pub fn spawn_node(&self, spec: NodeSpec) -> Result<NodeHandle, SpawnNodeError> {
        if !self.table.state.lock().open {
            return Err(SpawnNodeError::ShutDown);
        }
        let builder = catch_unwind(AssertUnwindSafe(|| (spec.factory)())).map_err(|payload| {
            SpawnNodeError::FactoryPanicked {
                message: panic_message(payload.as_ref()).to_owned(),
            }
        })?;
        let node = builder.build()?;
        let peer = node.peer();
        let mut sites = HashMap::with_capacity(spec.graph_names.len());
        for name in &spec.graph_names {
            let site = node
                .site(name)
                .ok_or_else(|| SpawnNodeError::UnknownGraph {
                    peer,
                    name: name.clone(),
                })?;
            sites.insert(name.clone(), site);
        }
        let config = spec
            .actor_config
            .clone()
            .unwrap_or_else(|| self.actor_config.clone());
        let actor = NodeActor::spawn_supervised_node(
            node,
            Arc::clone(&spec.factory),
            Arc::clone(&self.router),
            Arc::clone(&self.clock),
            config,
        )?;
        let entry = Arc::new(NodeEntry {
            peer,
            spec,
            sites,
            actor: Mutex::new(ActorSlot::Running(actor)),
        });
        {
            let mut table = self.table.state.lock();
            if table.open {
                // A previous entry for this peer can only be one whose stop
                // is finishing (its actor left the router); ours replaces it.
                table.nodes.insert(peer, Arc::clone(&entry));
                return Ok(NodeHandle {
                    entry,
                    table: Arc::clone(&self.table),
                });
            }
        }
        // Shutdown began while the actor was starting: do not leak it.
        let _ = entry.stop();
        Err(SpawnNodeError::ShutDown)
    }

    /// The handle of the running Node of `peer`, if this runtime has one.
    pub fn node(&self, peer: PeerId) -> Option<NodeHandle> {
        let entry = self.table.state.lock().nodes.get(&peer).cloned()?;
        Some(NodeHandle {
            entry,
            table: Arc::clone(&self.table),
        })
    }

    /// The peers of the running Nodes, in ascending order.
    pub fn peers(&self) -> Vec<PeerId> {
        let mut peers: Vec<PeerId> = self.table.state.lock().nodes.keys().copied().collect();
        peers.sort_unstable();
        peers
    }

    /// The compute pool, for [`ComputeComponent`](crate::ComputeComponent)s
    /// of the Nodes this runtime spawns.
    pub fn compute_pool(&self) -> &ComputePool {
        &self.pool
    }

    /// The router every Node of this runtime is registered with.
    pub fn router(&self) -> &Arc<Router> {
        &self.router
    }

    /// The clock every Node of this runtime runs on.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// The actor settings used for a spec without its own.
    pub fn actor_config(&self) -> &ActorConfig {
        &self.actor_config
    }

    /// Stops every Node still running and accounts for each (lifecycle
    /// step 4). `deadline` is the time the caller allows; today every Node
    /// is drained however long it takes and the report says whether that
    /// was longer ([`ShutdownReport::deadline_exceeded`]).
    pub fn shutdown(self, deadline: Duration) -> ShutdownReport {
        let started = Instant::now();
        let until = started + deadline;
        let (nodes, failures) = self.stop_all(Some((deadline, until)));
        // Jobs of abandoned ops may still run; give them until the deadline.
        while self.pool.stats().in_flight() > 0 && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(1));
        }
        let compute = self.pool.stats();
        ShutdownReport {
            totals: ShutdownTotals::of(&nodes, &failures),
            nodes,
            failures,
            compute_jobs_abandoned: compute.in_flight(),
            deadline,
            elapsed: started.elapsed(),
            compute,
            router: self.router.stats(),
        }
    }

    /// Closes the table to spawns and input, takes every entry out and
    /// stops each Node: with `drain = Some((grace, until))` in two phases
    /// (lifecycle step 4), otherwise at once. Returns the clean reports and
    /// the failures, by peer.
    fn stop_all(&self, drain: Option<(Duration, Instant)>) -> (Vec<ActorReport>, Vec<ActorError>) {
        self.table.accepting.store(false, Ordering::Relaxed);
        self.router.stop_new_work();
        let mut entries: Vec<Arc<NodeEntry>> = {
            let mut table = self.table.state.lock();
            table.open = false;
            table.nodes.drain().map(|(_, entry)| entry).collect()
        };
        entries.sort_unstable_by_key(|entry| entry.peer);
        // A handle's `stop` may take an actor between our drain and now;
        // that handle holds the report.
        let actors: Vec<(Arc<NodeEntry>, ActorHandle)> = entries
            .into_iter()
            .filter_map(|entry| entry.take_actor().ok().map(|actor| (entry, actor)))
            .collect();
        if let Some((grace, _)) = drain {
            for (_, actor) in &actors {
                actor.begin_drain(grace);
            }
        }
        let mut reports = Vec::with_capacity(actors.len());
        let mut failures = Vec::new();
        for (entry, actor) in actors {
            let result = match drain {
                Some((_, until)) => actor.finish(until),
                None => actor.stop(),
            };
            match entry.record(result) {
                Ok(report) => reports.push(report),
                Err(StopNodeError::Actor(error)) => failures.push(error),
                Err(StopNodeError::AlreadyStopped { .. }) => {}
            }
        }
        (reports, failures)
    }
}

impl Drop for Runtime {
    /// Stops every Node still running (reports discarded), so no thread
    /// outlives the runtime; after [`Runtime::shutdown`] there is none left.
    fn drop(&mut self) {
        let _ = self.stop_all(None);
    }
}

impl fmt::Debug for Runtime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Runtime")
            .field("nodes", &self.table.state.lock().nodes.len())
            .field("pool", &self.pool)
            .field("router", &self.router.stats())
            .finish_non_exhaustive()
    }
}

impl RuntimeBuilder {
    /// Threads of the compute pool (default: the available parallelism,
    /// at most [`ComputePool::MAX_THREADS`]).
    pub fn compute_threads(mut self, threads: usize) -> Self {
        self.compute_threads = Some(threads);
        self
    }

    /// The clock every Node runs on (default: a new [`SystemClock`]).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = Some(clock);
        self
    }

    /// Actor settings for Nodes whose spec sets none
    /// ([`NodeSpec::actor_config`]); default [`ActorConfig::default`].
    pub fn actor_config(mut self, config: ActorConfig) -> Self {
        self.actor_config = config;
        self
    }

    /// Most Nodes registered with the router at once (default
    /// [`Router::DEFAULT_PEER_CAP`]).
    pub fn peer_cap(mut self, cap: usize) -> Self {
        self.peer_cap = cap;
        self
    }

    /// Starts the compute pool and creates the router.
    pub fn build(self) -> Result<Runtime, RuntimeError> {
        if self.peer_cap == 0 {
            return Err(RuntimeError::ZeroPeerCap);
        }
        let threads = self.compute_threads.unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map_or(1, NonZeroUsize::get)
                .min(ComputePool::MAX_THREADS)
        });
        let pool = ComputePool::new(threads)?;
        let clock = self
            .clock
            .unwrap_or_else(|| Arc::new(SystemClock::new()) as Arc<dyn Clock>);
        Ok(Runtime {
            router: Arc::new(Router::with_peer_cap(self.peer_cap)),
            pool,
            clock,
            actor_config: self.actor_config,
            table: Arc::new(NodeTable {
                state: Mutex::new(TableState {
                    open: true,
                    nodes: HashMap::new(),
                }),
                accepting: AtomicBool::new(true),
            }),
        })
    }
}

impl fmt::Debug for RuntimeBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RuntimeBuilder")
            .field("compute_threads", &self.compute_threads)
            .field("clock", &self.clock.as_ref().map(|_| "custom"))
            .field("actor_config", &self.actor_config)
            .field("peer_cap", &self.peer_cap)
            .finish()
    }
}

impl NodeSpec {
    /// A spec whose Node is built from `factory`'s builder. The factory is
    /// called once per spawn and must return a fresh builder each time.
    ///
    /// A builder given no value registry gets [`crate::tensor_registry`],
    /// so the Node decodes [`crate::Tensor`]s in envelope bytes and in its
    /// own snapshots (a supervised restart of a Node with tensors in
    /// flight needs it).
    pub fn new<F>(factory: F) -> Self
    where
        F: Fn() -> NodeBuilder + Send + Sync + 'static,
    {
        let registry = crate::tensor_registry();
        Self::from_factory(Arc::new(move || {
            let builder = factory();
            if builder.has_registry() {
                builder
            } else {
                builder.registry(registry.clone())
            }
        }))
    }

    /// A spec from a factory already shared as an `Arc`.
    pub fn from_factory(factory: NodeFactory) -> Self {
        Self {
            factory,
            actor_config: None,
            graph_names: Vec::new(),
        }
    }

    /// Actor settings for this Node only (default: the runtime's).
    pub fn actor_config(mut self, config: ActorConfig) -> Self {
        self.actor_config = Some(config);
        self
    }

    /// Declares a graph by the name given to its `GraphBuilder`, so that
    /// [`NodeHandle::invoke_by_name`] can reach it; the spawn fails with
    /// [`SpawnNodeError::UnknownGraph`] if the Node has no such graph.
    pub fn graph_name(mut self, name: impl Into<String>) -> Self {
        self.graph_names.push(name.into());
        self
    }

    /// The factory.
    pub fn factory(&self) -> &NodeFactory {
        &self.factory
    }
}

impl fmt::Debug for NodeSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NodeSpec")
            .field("actor_config", &self.actor_config)
            .field("graph_names", &self.graph_names)
            .finish_non_exhaustive()
    }
}

impl NodeHandle {
    /// The Node's peer.
    pub fn peer(&self) -> PeerId {
        self.entry.peer
    }

    /// The spec the Node was made from (its factory can build it again).
    pub fn spec(&self) -> &NodeSpec {
        &self.entry.spec
    }

    /// The site of a graph the spec declared with [`NodeSpec::graph_name`].
    pub fn site(&self, name: &str) -> Option<SiteId> {
        self.entry.sites.get(name).copied()
    }

    /// Queues an invoke of the graph at `site`; its
    /// [`ActorOutput::ExecFinished`] carries `ExecOrigin::Ticket(ticket)`.
    /// Never blocks: a full data lane refuses with the event inside.
    pub fn invoke(
        &self,
        site: SiteId,
        inputs: Vec<(String, Box<dyn SlotValue>)>,
        ticket: u64,
    ) -> Result<(), NodeInputError> {
        self.push(IngressEvent::Invoke {
            site,
            inputs,
            ticket,
        })
    }

    /// [`NodeHandle::invoke`] of the graph declared under `name`.
    pub fn invoke_by_name(
        &self,
        name: &str,
        inputs: Vec<(String, Box<dyn SlotValue>)>,
        ticket: u64,
    ) -> Result<(), NodeInputError> {
        let site = self
            .site(name)
            .ok_or_else(|| NodeInputError::UnknownGraph {
                peer: self.entry.peer,
                name: name.to_owned(),
            })?;
        self.invoke(site, inputs, ticket)
    }

    /// Queues an app event: it starts the Node's `OnTrigger` ops of `kind`.
    /// Never blocks: a full data lane refuses with the event inside.
    pub fn deliver_event(
        &self,
        kind: EventKind,
        value: Box<dyn SlotValue>,
    ) -> Result<(), NodeInputError> {
        self.push(IngressEvent::AppEvent { kind, value })
    }

    /// A new receiver of every output the Node produces from now on (see
    /// [`ActorHandle::subscribe`]); it disconnects when the Node stops.
    pub fn subscribe(&self) -> Result<Receiver<ActorOutput>, NodeSubscribeError> {
        match &*self.entry.actor.lock() {
            ActorSlot::Running(actor) => Ok(actor.subscribe()?),
            _ => Err(NodeSubscribeError::Stopped {
                peer: self.entry.peer,
            }),
        }
    }

    /// The actor's counters: live while it runs, final once it has stopped.
    pub fn stats(&self) -> ActorStats {
        match &*self.entry.actor.lock() {
            ActorSlot::Running(actor) => actor.stats(),
            ActorSlot::Stopping { last } => *last,
            ActorSlot::Stopped { stats } => *stats,
        }
    }

    /// The Node's metrics now (mailbox depth and high-water mark, envelopes
    /// in and out, drops by reason, ops fired, poll time, time in queue);
    /// `None` once it has been stopped (its report has the final counts).
    pub fn metrics(&self) -> Option<ActorMetrics> {
        match &*self.entry.actor.lock() {
            ActorSlot::Running(actor) => Some(actor.metrics()),
            _ => None,
        }
    }

    /// A fresh snapshot of the Node, taken by its actor between polls
    /// (waits at most `timeout`); it also becomes the Node's restart base.
    /// Restore it with [`NodeBuilder::restore`] on a builder from the same
    /// factory.
    pub fn snapshot(&self, timeout: Duration) -> Result<Vec<u8>, SnapshotRequestError> {
        // The request is sent with the entry lock released: the actor may
        // take a while to answer.
        let waiting = match &*self.entry.actor.lock() {
            ActorSlot::Running(actor) => actor.snapshot_request(),
            _ => return Err(SnapshotRequestError::Stopped),
        };
        waiting?.wait(timeout)
    }

    /// Whether the Node has not been stopped (its thread may still have
    /// died of a panic; [`NodeHandle::stop`] then reports it).
    pub fn is_running(&self) -> bool {
        matches!(&*self.entry.actor.lock(), ActorSlot::Running(_))
    }

    /// Stops the Node (its queued mail is handled first), removes it from
    /// the runtime and returns its report. Only the first stop of a Node,
    /// from any handle or the runtime, gets the report.
    pub fn stop(&self) -> Result<ActorReport, StopNodeError> {
        let result = self.entry.stop();
        let mut table = self.table.state.lock();
        if table
            .nodes
            .get(&self.entry.peer)
            .is_some_and(|current| Arc::ptr_eq(current, &self.entry))
        {
            table.nodes.remove(&self.entry.peer);
        }
        result
    }

    /// Pushes `event` on the running Node's data lane.
    fn push(&self, event: IngressEvent) -> Result<(), NodeInputError> {
        let peer = self.entry.peer;
        match &*self.entry.actor.lock() {
            ActorSlot::Running(_) if !self.table.accepting.load(Ordering::Relaxed) => {
                Err(NodeInputError::ShuttingDown { peer })
            }
            ActorSlot::Running(actor) => {
                actor
                    .ingress()
                    .push_data(event)
                    .map_err(|refused| NodeInputError::Refused {
                        peer,
                        source: refused.into(),
                    })
            }
            _ => Err(NodeInputError::Stopped { peer }),
        }
    }
}

impl fmt::Debug for NodeHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NodeHandle")
            .field("peer", &self.entry.peer)
            .field("running", &self.is_running())
            .finish()
    }
}

impl NodeEntry {
    /// Takes the actor out (under the entry lock), stops it (lock released)
    /// and records its final counters.
    fn stop(&self) -> Result<ActorReport, StopNodeError> {
        let actor = self.take_actor()?;
        self.record(actor.stop())
    }

    /// Takes the running actor out of the slot (now `Stopping`).
    fn take_actor(&self) -> Result<ActorHandle, StopNodeError> {
        let actor = {
            let mut slot = self.actor.lock();
            let placeholder = ActorSlot::Stopping {
                last: ActorStats::default(),
            };
            match std::mem::replace(&mut *slot, placeholder) {
                ActorSlot::Running(actor) => {
                    *slot = ActorSlot::Stopping {
                        last: actor.stats(),
                    };
                    actor
                }
                other => {
                    *slot = other;
                    return Err(StopNodeError::AlreadyStopped { peer: self.peer });
                }
            }
        };
        Ok(actor)
    }

    /// Records how the actor taken by [`NodeEntry::take_actor`] stopped.
    fn record(
        &self,
        result: Result<ActorReport, ActorError>,
    ) -> Result<ActorReport, StopNodeError> {
        let mut slot = self.actor.lock();
        let stats = match (&result, &*slot) {
            (Ok(report), _) => report.stats,
            (Err(_), ActorSlot::Stopping { last }) => *last,
            (Err(_), _) => ActorStats::default(),
        };
        *slot = ActorSlot::Stopped { stats };
        result.map_err(StopNodeError::from)
    }
}

impl ShutdownReport {
    /// Whether the shutdown took longer than its deadline.
    pub fn deadline_exceeded(&self) -> bool {
        self.elapsed > self.deadline
    }
}

impl ShutdownTotals {
    fn of(nodes: &[ActorReport], failures: &[ActorError]) -> Self {
        let mut totals = Self {
            nodes_stopped: nodes.len(),
            nodes_failed: failures.len(),
            ..Self::default()
        };
        for report in nodes {
            let stats = &report.stats;
            totals.envelopes_out += stats.envelopes_out;
            totals.routed += stats.routed;
            totals.refused += stats.refused_full
                + stats.refused_unknown_peer
                + stats.refused_closed
                + stats.refused_shutting_down;
            totals.executions_finished += report.node.executions_finished;
            totals.ops_fired += report.node.ops_fired;
            totals.drains_incomplete += usize::from(report.drain_incomplete);
            totals.add_account(report);
        }
        for report in failures.iter().filter_map(ActorError::report) {
            totals.add_account(report);
        }
        totals
    }

    /// Adds what every report has, clean or failed: the message account.
    fn add_account(&mut self, report: &ActorReport) {
        let account = report.account();
        self.accepted += account.accepted;
        self.processed += account.processed;
        self.dropped_at_close += account.dropped_at_close;
        self.lost_in_restart += account.lost_in_restart;
        self.restarts += report.stats.restarts;
        self.drain_deadlines_hit += usize::from(report.drain_deadline_hit);
        self.abandoned_executions += report.abandoned_executions as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nodeflow_actors::RegisterError;
    use nodeflow_engine::{GraphBuilder, Node, U64Value};

    const PEER: PeerId = PeerId::new(7);

    /// A spec for `peer` whose graph `echo` (site 0) passes `x` to `y`.
    fn echo(peer: PeerId) -> NodeSpec {
        NodeSpec::new(move || {
            let mut b = GraphBuilder::new("echo");
            let x = b.input("x");
            let y = b.syscall("PassThrough", [x]).output();
            b.output(y, "y");
            Node::builder(peer).graph(b.build().expect("a valid graph"))
        })
        .graph_name("echo")
    }

    fn runtime() -> Runtime {
        Runtime::builder().compute_threads(1).build().unwrap()
    }

    fn x(value: u64) -> Vec<(String, Box<dyn SlotValue>)> {
        vec![("x".to_owned(), Box::new(U64Value(value)))]
    }

    #[test]
    fn the_builder_defaults_to_one_compute_thread_per_core_and_refuses_bad_settings() {
        let cores = std::thread::available_parallelism().map_or(1, NonZeroUsize::get);
        let runtime = Runtime::builder().build().unwrap();
        assert_eq!(runtime.compute_pool().threads(), cores);
        assert_eq!(runtime.actor_config(), &ActorConfig::default());
        assert!(runtime.peers().is_empty());
        assert_eq!(
            Runtime::builder().peer_cap(0).build().err(),
            Some(RuntimeError::ZeroPeerCap)
        );
        assert_eq!(
            Runtime::builder().compute_threads(0).build().err(),
            Some(RuntimeError::ComputePool(ComputePoolError::ZeroThreads))
        );
    }

    #[test]
    fn the_router_peer_cap_is_the_one_configured() {
        let runtime = Runtime::builder()
            .compute_threads(1)
            .peer_cap(1)
            .build()
            .unwrap();
        runtime.spawn_node(echo(PeerId::new(1))).unwrap();
        let refused = runtime.spawn_node(echo(PeerId::new(2)));
        assert!(matches!(
            refused,
            Err(SpawnNodeError::Spawn(SpawnError::Register {
                source: RegisterError::TooManyPeers { cap: 1, .. },
                ..
            }))
        ));
        assert_eq!(runtime.peers(), [PeerId::new(1)]);
    }

    #[test]
    fn spawn_refusals_are_typed_and_leave_nothing_running() {
        let runtime = runtime();
        let panicking = NodeSpec::new(|| panic!("no builder today"));
        match runtime.spawn_node(panicking) {
            Err(SpawnNodeError::FactoryPanicked { message }) => {
                assert_eq!(message, "no builder today");
            }
            other => panic!("expected a factory panic, got {other:?}"),
        }
        match runtime.spawn_node(echo(PEER).graph_name("missing")) {
            Err(SpawnNodeError::UnknownGraph { peer, name }) => {
                assert_eq!((peer, name.as_str()), (PEER, "missing"));
            }
            other => panic!("expected an unknown graph, got {other:?}"),
        }
        let invalid = NodeSpec::new(|| {
            let mut b = GraphBuilder::new("bad");
            let x = b.input("x");
            let y = b.op("Nope", [x]).domain("nobody").output();
            b.output(y, "y");
            Node::builder(PEER).graph(b.build().expect("structurally valid"))
        });
        assert!(matches!(
            runtime.spawn_node(invalid),
            Err(SpawnNodeError::Build(_))
        ));
        assert!(runtime.peers().is_empty());
        assert_eq!(runtime.router().stats().peers, 0);

        let _running = runtime.spawn_node(echo(PEER)).unwrap();
        assert!(matches!(
            runtime.spawn_node(echo(PEER)),
            Err(SpawnNodeError::Spawn(SpawnError::Register {
                source: RegisterError::Duplicate { .. },
                ..
            }))
        ));
        assert_eq!(runtime.peers(), [PEER]);
    }

    #[test]
    fn a_stopped_node_leaves_the_table_once_and_refuses_input() {
        let runtime = runtime();
        let handle = runtime.spawn_node(echo(PEER)).unwrap();
        let other = runtime.node(PEER).expect("the table holds it");
        assert_eq!(handle.site("echo"), Some(SiteId::new(0)));
        for ticket in 0..3 {
            handle.invoke_by_name("echo", x(ticket), ticket).unwrap();
        }
        let report = other.stop().unwrap();
        assert_eq!(report.node.executions_finished, 3);
        assert_eq!(handle.stats(), report.stats, "final counters are kept");
        assert!(!handle.is_running());
        assert!(runtime.node(PEER).is_none());
        assert_eq!(
            handle.stop(),
            Err(StopNodeError::AlreadyStopped { peer: PEER })
        );
        assert!(matches!(
            handle.invoke(SiteId::new(0), x(9), 9),
            Err(NodeInputError::Stopped { peer: PEER })
        ));
        assert!(matches!(
            handle.subscribe(),
            Err(NodeSubscribeError::Stopped { peer: PEER })
        ));
        // The peer can be spawned again, and the shutdown sees only that one.
        let again = runtime.spawn_node(echo(PEER)).unwrap();
        assert!(again.is_running());
        let report = runtime.shutdown(Duration::from_secs(5));
        assert_eq!(report.totals.nodes_stopped, 1);
        assert_eq!(report.totals.executions_finished, 0);
    }

    #[test]
    fn an_undeclared_graph_name_is_refused_with_its_name() {
        let runtime = runtime();
        let handle = runtime.spawn_node(echo(PEER)).unwrap();
        match handle.invoke_by_name("other", x(1), 1) {
            Err(NodeInputError::UnknownGraph { peer, name }) => {
                assert_eq!((peer, name.as_str()), (PEER, "other"));
            }
            other => panic!("expected an unknown graph, got {other:?}"),
        }
    }

    #[test]
    fn dropping_the_runtime_stops_every_node() {
        let runtime = runtime();
        let router = Arc::clone(runtime.router());
        let handles: Vec<NodeHandle> = (1..=3)
            .map(|i| runtime.spawn_node(echo(PeerId::new(i))).unwrap())
            .collect();
        let outputs = handles[0].subscribe().unwrap();
        assert_eq!(router.stats().peers, 3);
        drop(runtime);
        assert_eq!(
            router.stats().peers,
            0,
            "every actor exited and unregistered"
        );
        assert!(handles.iter().all(|h| !h.is_running()));
        assert!(outputs.recv().is_err(), "the subscription disconnected");
    }

    #[test]
    fn a_node_spec_keeps_its_factory_and_settings() {
        let config = ActorConfig {
            thread_name_prefix: "spec-".to_owned(),
            ..ActorConfig::default()
        };
        let spec = echo(PEER).actor_config(config.clone());
        let node = (spec.factory())().build().unwrap();
        assert_eq!(node.peer(), PEER);
        assert_eq!(spec.actor_config, Some(config));
        let runtime = runtime();
        let handle = runtime.spawn_node(spec).unwrap();
        assert_eq!(handle.spec().graph_names, ["echo"]);
    }
}
