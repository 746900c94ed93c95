//! The Node: a sans-IO engine that runs installed graphs, one execution per entry.
//!
//! # Driving rule
//! Inputs arrive through [`Node::invoke`], the `deliver_*` methods,
//! [`Node::report_send_refused`] and the thread-safe [`Node::ingress`];
//! outputs come only from [`Node::poll`],
//! which takes the host's current time. **After every input, poll until
//! [`Node::has_work`] is false**, then sleep until [`Node::next_deadline`]
//! or until the ingress wakes you.
//!
//! # Executions
//! Every entry (an invoke, an inbound envelope for a graph site, a timer
//! tick, a bus event, an app event, a graph call) starts an execution with
//! a fresh [`ExecId`] and its own dense value storage (one slot per value
//! of the graph, indexed by number). An op fires **exactly once** per
//! execution, **only when all its inputs are present** (checked again when
//! it is taken off the frontier), in FIFO order. An execution ends when
//! nothing of it is queued or parked; its graph outputs are then reported
//! in one [`Step::ExecFinished`] and its storage is reused.
//!
//! # The poll cycle
//! [`Node::poll`] runs these phases, in this order, every time:
//! 1. **ingress drain**: completions and failures from other threads, then
//!    (once bootstrap graphs have finished) envelopes, app events, invokes;
//! 2. **frontier**: fire ready ops, at most `ops_per_poll` per poll;
//! 3. **bus routing**: bus events start executions of their event-source
//!    subscribers and are reported;
//! 4. **matured timers**: trigger ticks, timed completions;
//! 5. **deadline expiry**: wire requests past their deadline fail their
//!    `Send` op with [`Step::Timeout`] and count against the peer's health;
//! 6. **completions**: results resume their parked ops;
//! 7. **frontier** again (so a completion's consumers run in the same poll);
//! 8. **outbound**: queued envelopes leave as [`Step::SendEnvelope`].
//!
//! A poll that hits the op budget reports [`Step::BudgetExceeded`] and the
//! next poll resumes where it stopped.
//!
//! # Accounting
//! Bytes that enter from outside (invoke inputs, inbound payloads,
//! completion results) are charged to the Node's [`ByteBudget`] and held by
//! the execution they belong to; they are released exactly once, when that
//! execution ends. After any workload has finished, the budget is back at
//! zero.

mod install;
mod snapshot;

use std::collections::{HashMap, VecDeque};
use std::panic::{catch_unwind, AssertUnwindSafe};

pub use install::{InstallError, CALL_OP, ONNX_SLOT};
pub use snapshot::{RestoreError, SnapshotError, SNAPSHOT_VERSION};

use install::{install, CompiledGraph, Dispatch, GraphEntry};

use crate::budget::{ByteBudget, ByteCharge};
use crate::bus::{AppIngressErrorKind, AppIngressSource, NodeEvent, TypedBus};
use crate::component::{Component, DispatchResult, OpError, OpErrorKind, OpInputs, OpOutputs};
use crate::framework::{BackpressureAction, GovernorError, HealthTransition, TimerId};
use crate::framework_state::{Framework, FrameworkConfig};
use crate::graph::Graph;
use crate::ids::{
    CommandId, ComponentRef, EventKind, ExecId, IdCounter, Incarnation, OpRef, PeerId, SiteId,
};
use crate::ingress::{
    CompletionPayload, IngressConfig, IngressEvent, IngressQueue, Lane, PushError,
};
use crate::resource::{
    AppOutput, ComponentsView, CurrentCallCtx, InboundCtx, PendingCompletion, TimerEvent,
};
use crate::sync::Arc;
use crate::syscall::{dispatch_syscall, trigger_value, Syscall, TriggerSource};
use crate::value::{BytesValue, NamedValues, PeerIdValue, SlotValue, ValueLimits, ValueRegistry};
use crate::wire::{
    decode_envelope, decode_payload, Envelope, EnvelopeKind, FillTarget, WireLimits,
};

/// Caps and settings of one Node. Every field has a documented default.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    /// Framework primitive caps (timers, outbound queue, peer tables, ...).
    pub framework: FrameworkConfig,
    /// Mailbox lanes and completion cap.
    pub ingress: IngressConfig,
    /// Bytes from outside the Node may hold at once (default 256 MiB).
    pub byte_budget: usize,
    /// Most ops fired by one poll (default 4096).
    pub ops_per_poll: usize,
    /// Most ingress events drained by one poll (default 1024).
    pub ingress_per_poll: usize,
    /// Most executions alive at once (default 65 536).
    pub max_executions: usize,
    /// Most ops parked at once; an op that may park is failed without
    /// running when the cap is reached (default 4096).
    pub max_pending_async: usize,
    /// Deadline of a parked op without a `timeout_ns` attribute (default 30 s).
    pub default_async_timeout_ns: u64,
    /// Bus capacity (default [`TypedBus::DEFAULT_CAPACITY`]).
    pub bus_capacity: usize,
    /// Caps of the envelope decoder.
    pub wire: WireLimits,
    /// Caps of the value decoder.
    pub values: ValueLimits,
    /// Report [`Step::OpCompleted`] / [`Step::OpSuspended`] for every op
    /// (default off: failures are always reported).
    pub trace_ops: bool,
}

impl Default for NodeConfig {
    fn default() -> Self {
        Self {
            framework: FrameworkConfig::default(),
            ingress: IngressConfig::default(),
            byte_budget: ByteBudget::DEFAULT_LIMIT,
            ops_per_poll: 4096,
            ingress_per_poll: 1024,
            max_executions: 65_536,
            max_pending_async: 4096,
            default_async_timeout_ns: 30_000_000_000,
            bus_capacity: TypedBus::DEFAULT_CAPACITY,
            wire: WireLimits::default(),
            values: ValueLimits::default(),
            trace_ops: false,
        }
    }
}

/// Collects graphs, components and config, then installs them into a [`Node`].
pub struct NodeBuilder {
    peer: PeerId,
    graphs: Vec<GraphEntry>,
    components: Vec<(String, Box<dyn Component>)>,
    config: NodeConfig,
    registry: Option<Arc<ValueRegistry>>,
    mailbox: Option<Arc<IngressQueue>>,
}

impl std::fmt::Debug for NodeBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeBuilder")
            .field("peer", &self.peer)
            .field("graphs", &self.graphs.len())
            .field("components", &self.components.len())
            .finish_non_exhaustive()
    }
}

impl NodeBuilder {
    /// Adds a graph; it gets the next site id (install order).
    pub fn graph(mut self, graph: Graph) -> Self {
        self.graphs.push(GraphEntry {
            graph,
            bootstrap: false,
        });
        self
    }

    /// Adds a bootstrap graph: it runs once, in install order with the other
    /// bootstrap graphs, before any envelope, app event or invoke is processed.
    pub fn bootstrap_graph(mut self, graph: Graph) -> Self {
        self.graphs.push(GraphEntry {
            graph,
            bootstrap: true,
        });
        self
    }

    /// Binds `component` to `slot`; ops whose domain is `slot` dispatch to it.
    pub fn component(mut self, slot: impl Into<String>, component: Box<dyn Component>) -> Self {
        self.components.push((slot.into(), component));
        self
    }

    /// Replaces the config.
    pub fn config(mut self, config: NodeConfig) -> Self {
        self.config = config;
        self
    }

    /// Uses `registry` to decode inbound payloads (default: built-ins only).
    pub fn registry(mut self, registry: Arc<ValueRegistry>) -> Self {
        self.registry = Some(registry);
        self
    }

    /// Makes the Node use `mailbox` (and the byte budget it charges)
    /// instead of creating its own; `config.ingress` and
    /// `config.byte_budget` are then ignored.
    ///
    /// A supervisor uses it to restart a Node on the same mailbox: mail
    /// queued while the Node is rebuilt stays queued, and completion handles
    /// held by other threads reach the new Node. Build from a Node that has
    /// been dropped (its values release their charges on the shared budget).
    pub fn mailbox(mut self, mailbox: Arc<IngressQueue>) -> Self {
        self.mailbox = Some(mailbox);
        self
    }

    /// Validates everything and builds the Node.
    pub fn build(self) -> Result<Node, BuildError> {
        let mut slots = HashMap::new();
        let mut components = Vec::with_capacity(self.components.len());
        for (index, (slot, component)) in self.components.into_iter().enumerate() {
            let cref = ComponentRef::new(index as u32);
            if slots.insert(slot.clone(), cref).is_some() {
                return Err(InstallError::DuplicateSlot(slot).into());
            }
            components.push(Some(component));
        }
        let graphs = install(self.graphs, &components, &slots)?;
        let framework = Framework::new(&self.config.framework).map_err(BuildError::Config)?;
        let (ingress, budget) = match self.mailbox {
            Some(mailbox) => {
                let budget = mailbox.budget().clone();
                (mailbox, budget)
            }
            None => {
                let budget = ByteBudget::new(self.config.byte_budget);
                let ingress = Arc::new(IngressQueue::new(self.config.ingress, budget.clone()));
                (ingress, budget)
            }
        };
        let registry = self
            .registry
            .unwrap_or_else(|| Arc::new(ValueRegistry::with_builtins()));
        let bootstrap_queue = graphs
            .iter()
            .filter(|g| g.bootstrap)
            .map(|g| g.site)
            .collect();
        let pool = graphs.iter().map(SitePool::for_graph).collect();
        Ok(Node {
            peer: self.peer,
            bus: TypedBus::new(self.config.bus_capacity),
            config: self.config,
            graphs,
            components,
            slots,
            framework,
            ingress,
            budget,
            registry,
            execs: Vec::new(),
            free: Vec::new(),
            live: 0,
            frontier: VecDeque::new(),
            parked: HashMap::new(),
            control_parked: HashMap::new(),
            deferred: HashMap::new(),
            completions: VecDeque::new(),
            cmd_ids: IdCounter::starting_at(1),
            exec_ids: IdCounter::starting_at(1),
            steps: Vec::new(),
            scratch_inputs: Vec::new(),
            scratch_outputs: Vec::new(),
            scratch_completions: Vec::new(),
            scratch_indexed: Vec::new(),
            staged: VecDeque::new(),
            on_trigger: HashMap::new(),
            bootstrap_queue,
            bootstrap_live: None,
            started: false,
            stats: NodeStats::default(),
            pool,
            incarnation: Incarnation::new(0),
        })
    }
}

/// Why [`NodeBuilder::build`] failed.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// Graph or component validation failed.
    #[error(transparent)]
    Install(Box<InstallError>),
    /// The framework config is inconsistent.
    #[error("invalid framework config: {0}")]
    Config(crate::framework::RttConfigError),
}

impl From<InstallError> for BuildError {
    fn from(err: InstallError) -> Self {
        Self::Install(Box::new(err))
    }
}

/// Why an invoke was refused. Nothing was started and nothing was kept.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InvokeError {
    /// No graph is installed at the site.
    #[error("no graph is installed at {0}")]
    UnknownSite(SiteId),
    /// The graph has no input of that name.
    #[error("the graph at {site} has no input named `{name}`")]
    UnknownInput {
        /// The graph.
        site: SiteId,
        /// The name given.
        name: String,
    },
    /// A graph input was not given.
    #[error("the graph at {site} needs input `{name}`")]
    MissingInput {
        /// The graph.
        site: SiteId,
        /// The input not given.
        name: String,
    },
    /// Bootstrap graphs are still running; poll until `is_bootstrapped()`.
    #[error("bootstrap graphs are still running; poll until the Node is bootstrapped")]
    Bootstrapping,
    /// The execution cap is reached; poll to let executions finish.
    #[error("{live} executions are alive, the cap is {cap}; poll to let some finish")]
    TooManyExecutions {
        /// Executions alive.
        live: usize,
        /// The cap.
        cap: usize,
    },
    /// The inputs' bytes do not fit the Node's byte budget.
    #[error("inputs of {requested} bytes do not fit the byte budget ({in_use} of {limit} in use)")]
    Budget {
        /// Bytes asked for.
        requested: usize,
        /// Bytes in use.
        in_use: usize,
        /// The budget.
        limit: usize,
    },
}

/// Why a `deliver_*` call was refused; the input is handed back where it can be.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DeliverError {
    /// The mailbox refused the event (full or closed); the event is inside,
    /// retry after polling.
    #[error("the Node's mailbox refused the input: {0}")]
    Refused(Box<PushError<IngressEvent>>),
    /// The bytes are over a cap or do not fit the byte budget.
    #[error("inbound bytes refused: {0}")]
    Bytes(#[from] crate::budget::CopyInError),
}

impl From<PushError<IngressEvent>> for DeliverError {
    fn from(err: PushError<IngressEvent>) -> Self {
        Self::Refused(Box::new(err))
    }
}

/// What started an execution.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ExecOrigin {
    /// [`Node::invoke`].
    Invoke,
    /// An `Invoke` event through the ingress, with the host's ticket.
    Ticket(u64),
    /// A bootstrap graph.
    Bootstrap,
    /// An inbound envelope from `from`.
    Envelope {
        /// The sender.
        from: PeerId,
    },
    /// A timer trigger source (`Interval`, `Pulse`).
    Timer {
        /// The source op.
        op: OpRef,
    },
    /// An app event of `kind` (`OnTrigger`).
    AppEvent {
        /// The event kind.
        kind: EventKind,
    },
    /// A bus event of `kind` (`EventSource`).
    Bus {
        /// The event kind.
        kind: EventKind,
    },
    /// A `Call` op of another execution.
    Call {
        /// The calling execution.
        parent: ExecId,
    },
}

/// One thing the host must see, produced by [`Node::poll`].
#[derive(Debug)]
#[non_exhaustive]
pub enum Step {
    /// An op finished (only with `trace_ops`).
    OpCompleted {
        /// The execution.
        exec: ExecId,
        /// The op.
        op: OpRef,
    },
    /// An op parked on a command (only with `trace_ops`).
    OpSuspended {
        /// The execution.
        exec: ExecId,
        /// The op.
        op: OpRef,
        /// The command it waits for.
        cmd: CommandId,
    },
    /// An op failed; its outputs stay absent in this execution.
    OpFailed {
        /// The execution.
        exec: ExecId,
        /// The op.
        op: OpRef,
        /// Kind, stable reason and detail.
        error: OpError,
    },
    /// An op wrote fewer outputs than it declares; the rest stay absent.
    OutputsSuppressed {
        /// The execution.
        exec: ExecId,
        /// The op.
        op: OpRef,
        /// Outputs written.
        written: usize,
        /// Outputs declared.
        declared: usize,
    },
    /// A parked op passed its deadline and failed.
    Timeout {
        /// The execution.
        exec: ExecId,
        /// The op.
        op: OpRef,
        /// Its command (a later completion for it is reported as unknown).
        cmd: CommandId,
    },
    /// An execution ended.
    ExecFinished {
        /// The execution.
        exec: ExecId,
        /// Its graph.
        site: SiteId,
        /// What started it.
        origin: ExecOrigin,
        /// The graph outputs that were produced, by name.
        outputs: Vec<(String, Box<dyn SlotValue>)>,
        /// Names of graph outputs that were never produced.
        missing: Vec<String>,
    },
    /// An app-facing output (`AppEmit`, `AppNotify`).
    AppOutput(AppOutput),
    /// An envelope to route to another Node.
    SendEnvelope(Envelope),
    /// The host could not deliver an envelope this Node sent
    /// ([`Node::report_send_refused`]).
    SendRefused {
        /// The destination.
        to: PeerId,
        /// Why the host refused it.
        reason: SendRefusal,
        /// What the envelope was.
        kind: EnvelopeKind,
        /// Its correlation token, if it had one.
        token: Option<u64>,
    },
    /// An inbound envelope (or one of its fills) could not be delivered.
    ReceiveFailed {
        /// The sender, when known.
        from: Option<PeerId>,
        /// Why.
        reason: String,
    },
    /// An entry was refused at the Node's boundary (also published on the bus).
    Refused {
        /// Where it came from.
        source: AppIngressSource,
        /// Why.
        kind: AppIngressErrorKind,
    },
    /// A completion named a command that is not parked (finished, timed
    /// out or never issued).
    UnknownCompletion {
        /// The command.
        cmd: CommandId,
        /// Whether it was a failure rather than a result.
        failure: bool,
    },
    /// A bus event, after it was routed to its subscribers.
    Event(NodeEvent),
    /// The poll stopped at its op budget; poll again to continue.
    BudgetExceeded {
        /// Ready ops left on the frontier.
        ready_left: usize,
    },
    /// Items were dropped by a bounded structure (counted, with reason).
    Dropped {
        /// Which structure dropped them.
        reason: DropReason,
        /// How many since the last report.
        count: u64,
    },
}

/// Which bounded structure dropped items.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DropReason {
    /// The bus was full; its oldest events were dropped.
    BusFull,
    /// The outbound queue was full; its oldest envelopes were dropped.
    OutboundFull,
}

/// Why the host could not hand an envelope to its destination
/// ([`Node::report_send_refused`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub enum SendRefusal {
    /// The destination's inbound lane is full.
    Full,
    /// No Node is known for the destination peer.
    UnknownPeer,
    /// The destination is stopping and accepts no more input.
    Closed,
}

impl SendRefusal {
    /// The stable reason a refused request's `Send` op fails with:
    /// `wire.peer_full`, `wire.unknown_peer` or `wire.peer_closed`.
    pub fn reason(self) -> &'static str {
        match self {
            Self::Full => "wire.peer_full",
            Self::UnknownPeer => "wire.unknown_peer",
            Self::Closed => "wire.peer_closed",
        }
    }

    /// What happened and what to do, for the failed op's detail.
    fn detail(self, to: PeerId) -> String {
        match self {
            Self::Full => format!(
                "{to}'s inbound lane is full; nothing was delivered. \
                 Retry after it drains (sends to it back off until then)"
            ),
            Self::UnknownPeer => {
                format!("no Node is known for {to}; nothing was delivered. Check the peer id")
            }
            Self::Closed => format!("{to} is stopping and accepts no more input"),
        }
    }
}

/// The next ids of a Node ([`Node::id_watermark`]), carried across a restart.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IdWatermark {
    /// Next command id.
    pub command: u64,
    /// Next execution id.
    pub exec: u64,
    /// Next wire request token.
    pub request_token: u64,
}

/// Counters of one Node (monotonic except `live_executions` and `parked`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct NodeStats {
    /// Executions started.
    pub executions_started: u64,
    /// Executions ended.
    pub executions_finished: u64,
    /// Executions alive now.
    pub live_executions: usize,
    /// Ops fired.
    pub ops_fired: u64,
    /// Ops that failed (including panics and timeouts).
    pub ops_failed: u64,
    /// Ops that panicked (caught).
    pub ops_panicked: u64,
    /// Ops parked now.
    pub parked: usize,
    /// Completions applied to parked ops.
    pub completions: u64,
    /// Completions for unknown commands.
    pub unknown_completions: u64,
    /// Parked ops that timed out.
    pub timeouts: u64,
    /// Frontier entries skipped because their op had fired or was not ready.
    pub stale_frontier: u64,
    /// Polls that stopped at the op budget.
    pub budget_exceeded: u64,
    /// Entries refused at the boundary.
    pub refused: u64,
    /// Inbound envelopes or fills that failed to deliver.
    pub receive_failures: u64,
    /// Items dropped by bounded structures.
    pub dropped: u64,
    /// Envelopes the host reported it could not deliver
    /// ([`Node::report_send_refused`]).
    pub sends_refused: u64,
    /// Envelopes taken from the mailbox (typed or encoded).
    pub envelopes_received: u64,
    /// Polls run.
    pub polls: u64,
}

/// A sans-IO Node: installed graphs, their executions and the framework
/// state ops use. Drive it by the rule in the [crate docs](crate): after
/// every input, poll until [`Node::has_work`] is false.
pub struct Node {
    peer: PeerId,
    config: NodeConfig,
    graphs: Vec<CompiledGraph>,
    components: Vec<Option<Box<dyn Component>>>,
    slots: HashMap<String, ComponentRef>,
    framework: Framework,
    bus: TypedBus,
    ingress: Arc<IngressQueue>,
    budget: ByteBudget,
    registry: Arc<ValueRegistry>,
    execs: Vec<ExecSlot>,
    free: Vec<u32>,
    live: usize,
    frontier: VecDeque<Ready>,
    parked: HashMap<CommandId, Parked>,
    /// Control-plane ops (run for a `ComponentOp` fill) parked on a command.
    control_parked: HashMap<CommandId, ControlCall>,
    deferred: HashMap<CommandId, NamedValues>,
    completions: VecDeque<Completion>,
    cmd_ids: IdCounter,
    exec_ids: IdCounter,
    steps: Vec<Step>,
    scratch_inputs: Vec<Option<Box<dyn SlotValue>>>,
    scratch_outputs: Vec<Box<dyn SlotValue>>,
    scratch_completions: Vec<PendingCompletion>,
    scratch_indexed: Vec<(u32, Box<dyn SlotValue>)>,
    /// Ingress events taken off the mailbox but not yet handled (a snapshot
    /// moves queued mail here so it can be captured); drained first.
    staged: VecDeque<IngressEvent>,
    on_trigger: HashMap<EventKind, Vec<OpRef>>,
    bootstrap_queue: VecDeque<SiteId>,
    bootstrap_live: Option<ExecId>,
    started: bool,
    stats: NodeStats,
    /// Per site (one entry per graph, made at build): storage of finished
    /// executions, reused by new ones, and what a new execution starts from.
    pool: Vec<SitePool>,
    /// How many times this Node's state was restored from a snapshot.
    incarnation: Incarnation,
}

/// Most finished-execution buffers kept for reuse, per site.
const POOL_PER_SITE: usize = 32;

/// Per-site reuse state: free buffers and the initial per-op counts.
///
/// Buffers are moved field by field between an execution and a pool entry
/// (entries stay in place): `bufs[..spare]` hold emptied vectors with
/// capacity, the rest are empty shells.
#[derive(Debug, Default)]
struct SitePool {
    /// At most [`POOL_PER_SITE`] entries; every vector in them is empty.
    bufs: Vec<ExecBuffers>,
    /// How many of `bufs` hold reusable capacity.
    spare: usize,
    /// Per op: distinct input values it waits for
    /// ([`crate::graph::GraphTopology::required_inputs`]), copied into every
    /// new execution's `missing`.
    required: Vec<u32>,
}

impl SitePool {
    fn for_graph(graph: &CompiledGraph) -> Self {
        let op_count = graph.topo.op_count();
        Self {
            bufs: Vec::new(),
            spare: 0,
            required: (0..op_count)
                .map(|op| graph.topo.required_inputs(op as u32))
                .collect(),
        }
    }
}

/// The dense vectors of an execution, kept (empty) for reuse after it ends.
#[derive(Debug, Default)]
struct ExecBuffers {
    values: Vec<Option<Box<dyn SlotValue>>>,
    reads_left: Vec<u32>,
    missing: Vec<u32>,
    fired: Vec<bool>,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("peer", &self.peer)
            .field("graphs", &self.graphs.len())
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

/// One ready op on the frontier: execution slot, its generation, op index.
#[derive(Clone, Copy, Debug)]
struct Ready {
    slot: u32,
    gen: u32,
    op: u32,
}

#[derive(Debug)]
struct ExecSlot {
    gen: u32,
    exec: Option<Execution>,
}

#[derive(Debug)]
struct Parked {
    slot: u32,
    gen: u32,
    op: u32,
    timer: Option<TimerId>,
}

/// A parked control-plane op: who asked, and where to send its answer.
#[derive(Debug, Clone, Copy, serde::Serialize, serde::Deserialize)]
struct ControlCall {
    exec: ExecId,
    op: OpRef,
    /// The peer to answer and the request token (none for one-way calls).
    reply: Option<(PeerId, u64)>,
    timer: Option<TimerId>,
}

/// Site of the [`OpRef`] reported for control-plane ops (they belong to no
/// graph); the op index is the component's index.
pub const CONTROL_SITE: SiteId = SiteId::new(u32::MAX);

#[derive(Debug)]
enum Completion {
    Values {
        cmd: CommandId,
        results: Vec<(String, Box<dyn SlotValue>)>,
        charge: Option<ByteCharge>,
    },
    Failed {
        cmd: CommandId,
        detail: String,
    },
}

/// Per-execution state; every vector is dense, indexed by value or op number.
#[derive(Debug)]
struct Execution {
    id: ExecId,
    site: SiteId,
    origin: ExecOrigin,
    /// For `Call` children: the parent's command to complete at the end.
    parent_cmd: Option<CommandId>,
    inbound: InboundCtx,
    values: Vec<Option<Box<dyn SlotValue>>>,
    /// Per value: input ports still to read it.
    reads_left: Vec<u32>,
    /// Per op: distinct input values still missing.
    missing: Vec<u32>,
    fired: Vec<bool>,
    /// Frontier entries plus parked ops of this execution.
    pending: u32,
    charges: Vec<ByteCharge>,
}

impl Node {
    /// Starts building the Node of `peer`.
    pub fn builder(peer: PeerId) -> NodeBuilder {
        NodeBuilder {
            peer,
            graphs: Vec::new(),
            components: Vec::new(),
            config: NodeConfig::default(),
            registry: None,
            mailbox: None,
        }
    }

    /// This Node's peer id.
    pub fn peer(&self) -> PeerId {
        self.peer
    }

    /// The Node's mailbox: other threads push envelopes, events and
    /// completions here, and the host waits on it.
    pub fn ingress(&self) -> &Arc<IngressQueue> {
        &self.ingress
    }

    /// How many restores this Node's state has been through (0 when built
    /// fresh; a restore sets the snapshot's incarnation plus one).
    pub fn incarnation(&self) -> Incarnation {
        self.incarnation
    }

    /// The ids this Node would hand out next (commands, executions, wire
    /// request tokens).
    pub fn id_watermark(&self) -> IdWatermark {
        IdWatermark {
            command: self.cmd_ids.peek(),
            exec: self.exec_ids.peek(),
            request_token: self.framework.requests().next_token(),
        }
    }

    /// Moves every id counter to at least `watermark`, so no id an earlier
    /// incarnation handed out is reused. A supervisor calls it on a Node
    /// restored from a snapshot older than the incarnation that crashed:
    /// results and responses still in flight for that incarnation's
    /// commands and requests then match nothing (they are counted as
    /// unknown) instead of being applied to an unrelated op.
    pub fn skip_ids_past(&mut self, watermark: IdWatermark) {
        self.cmd_ids.advance_to(watermark.command);
        self.exec_ids.advance_to(watermark.exec);
        self.framework
            .requests_mut()
            .skip_tokens_below(watermark.request_token);
    }

    /// The Node's byte budget.
    pub fn budget(&self) -> &ByteBudget {
        &self.budget
    }

    /// The site of the graph named `name`.
    pub fn site(&self, name: &str) -> Option<SiteId> {
        self.graphs
            .iter()
            .find(|g| g.graph.name == name)
            .map(|g| g.site)
    }

    /// Whether every bootstrap graph has finished.
    pub fn is_bootstrapped(&self) -> bool {
        self.started && self.bootstrap_queue.is_empty() && self.bootstrap_live.is_none()
    }

    /// Counters.
    pub fn stats(&self) -> NodeStats {
        NodeStats {
            live_executions: self.live,
            parked: self.parked.len(),
            ..self.stats
        }
    }

    /// Starts an execution of the graph at `site` with `inputs` (every graph
    /// input, by name). The execution runs on the next polls.
    pub fn invoke(
        &mut self,
        site: SiteId,
        inputs: Vec<(String, Box<dyn SlotValue>)>,
    ) -> Result<ExecId, InvokeError> {
        if !self.is_bootstrapped() && !self.graphs.iter().all(|g| !g.bootstrap) {
            return Err(InvokeError::Bootstrapping);
        }
        self.start_with_inputs(site, ExecOrigin::Invoke, InboundCtx::default(), inputs)
    }

    /// Queues an inbound envelope, given as borrowed bytes, on the data lane:
    /// capped, charged to the byte budget and copied into fallibly reserved
    /// memory. Decoding happens in the next poll.
    pub fn deliver_envelope_bytes(&self, bytes: &[u8]) -> Result<(), DeliverError> {
        let charged = self
            .budget
            .copy_in(bytes, self.config.wire.max_envelope_bytes)?;
        self.ingress
            .push_data(IngressEvent::EnvelopeBytes(charged))?;
        Ok(())
    }

    /// Queues an in-process envelope (values move without encoding).
    pub fn deliver_envelope(&self, envelope: Envelope) -> Result<(), DeliverError> {
        self.ingress.push_data(IngressEvent::Envelope(envelope))?;
        Ok(())
    }

    /// Queues an app event; it starts the `OnTrigger` ops of its kind.
    pub fn deliver_app_event(
        &self,
        kind: EventKind,
        value: Box<dyn SlotValue>,
    ) -> Result<(), DeliverError> {
        self.ingress
            .push_data(IngressEvent::AppEvent { kind, value })?;
        Ok(())
    }

    /// Refuses all traffic from `peer` (inbound envelopes and `Send`s to it).
    pub fn block_peer(&mut self, peer: PeerId) -> Result<(), GovernorError> {
        self.framework.governor_mut().block(peer)
    }

    /// Lifts a block; `false` if `peer` was not blocked.
    pub fn unblock_peer(&mut self, peer: PeerId) -> bool {
        self.framework.governor_mut().unblock(peer)
    }

    /// Adds `peer` to the allow list (used in allow-list mode).
    pub fn allow_peer(&mut self, peer: PeerId) -> Result<(), GovernorError> {
        self.framework.governor_mut().allow(peer)
    }

    /// Removes `peer` from the allow list; `false` if it was not on it.
    pub fn disallow_peer(&mut self, peer: PeerId) -> bool {
        self.framework.governor_mut().disallow(peer)
    }

    /// In allow-list mode only allowed peers may talk to this Node.
    pub fn set_allowlist_mode(&mut self, on: bool) {
        self.framework.governor_mut().set_allowlist_mode(on);
    }

    /// Tells the Node that the host could not deliver `envelope`, which
    /// this Node emitted as a [`Step::SendEnvelope`], because of `reason`.
    ///
    /// Always counted in [`NodeStats::sends_refused`] and reported as
    /// [`Step::SendRefused`]. If it was a request still in flight, the
    /// request is resolved and its parked `Send` op fails now (no wait for
    /// the deadline) with [`OpErrorKind::Refused`] and the reason
    /// [`SendRefusal::reason`]; its execution then ends as it would after
    /// any failed completion. In addition:
    /// * [`SendRefusal::Full`] applies a back-off advisory for the
    ///   destination of the back-pressure config's `retry_after_ns`: further
    ///   `Send`s to it fail with `wire.backoff` until the advisory passes
    ///   or the destination sends a `BackoffClear`;
    /// * [`SendRefusal::UnknownPeer`] counts as a failure of the
    ///   destination's health (as a timeout does), which may mark it down.
    ///
    /// An envelope whose source is not this Node (a host mistake) is only
    /// counted and reported. A request whose token matches nothing in
    /// flight (already answered or expired) fails no op.
    ///
    /// **Driving rule**: this is an input like the `deliver_*` methods;
    /// afterwards [`Node::has_work`] is true, so poll until it is false:
    /// the steps produced here come out of that poll.
    pub fn report_send_refused(&mut self, envelope: Envelope, reason: SendRefusal, now_ns: u64) {
        let (from, to, kind, token) = (
            envelope.src,
            envelope.dst,
            envelope.kind,
            envelope.wire_req_id,
        );
        // The values die here; their bytes stay charged to the sending
        // execution, which releases them when it ends.
        drop(envelope);
        self.stats.sends_refused = self.stats.sends_refused.saturating_add(1);
        self.steps.push(Step::SendRefused {
            to,
            reason,
            kind,
            token,
        });
        if from != self.peer {
            return;
        }
        match reason {
            SendRefusal::Full => {
                let retry = self.framework.backpressure_mut().config().retry_after_ns;
                self.framework
                    .backoff_mut()
                    .apply_advisory(to, retry, now_ns);
            }
            SendRefusal::UnknownPeer => {
                if let Some(HealthTransition::WentDown(peer)) =
                    self.framework.governor_mut().record_failure(to, now_ns)
                {
                    // A built-in kind: the bus never refuses it.
                    let _ = self.bus.publish(NodeEvent::PeerWentDown { peer });
                }
            }
            SendRefusal::Closed => {}
        }
        let Some(token) = token.filter(|_| kind == EnvelopeKind::Request) else {
            return;
        };
        let ours = self
            .framework
            .requests()
            .peek(token)
            .is_some_and(|pending| pending.target.peer == to);
        if !ours {
            return;
        }
        let Some(pending) = self.framework.requests_mut().resolve(token) else {
            return;
        };
        // The op may already have failed by its own timer.
        if self.parked.contains_key(&pending.cmd) {
            let error = OpError::new(OpErrorKind::Refused, reason.reason(), reason.detail(to));
            self.fail_parked_op(pending.cmd, error);
        }
    }

    /// The Node's framework primitives (read-only), for metrics and tests.
    pub fn framework(&self) -> &Framework {
        &self.framework
    }

    /// Whether a poll now would do work (ready ops, queued mail or results,
    /// or steps an input produced that the next poll reports).
    ///
    /// Timers are not counted here, since they depend on the time: a host
    /// also polls once its clock reaches [`Node::next_deadline`].
    pub fn has_work(&self) -> bool {
        !self.started
            || !self.steps.is_empty()
            || !self.frontier.is_empty()
            || !self.completions.is_empty()
            || !self.staged.is_empty()
            || self.ingress.control_len() > 0
            || (self.ingress.data_len() > 0 && self.is_bootstrapped())
            || !self.bus.is_empty()
    }

    /// Whether the Node has nothing in flight: no work for a poll, no live
    /// execution, no op parked on a command (its own or a control-plane
    /// call for a peer), no result waiting for its time, and no envelope
    /// held back in the outbound queue. Timers may still be armed (an
    /// `Interval` starts new work later). A host draining the Node for
    /// shutdown stops once this holds.
    pub fn is_quiescent(&self) -> bool {
        !self.has_work()
            && self.live == 0
            && self.parked.is_empty()
            && self.control_parked.is_empty()
            && self.deferred.is_empty()
            && self.framework.outbound_len() == 0
    }

    /// The earliest time at which a timer or deadline needs a poll.
    pub fn next_deadline(&self) -> Option<u64> {
        self.framework.next_deadline()
    }

    /// Runs one poll cycle at host time `now_ns` and returns its steps.
    pub fn poll(&mut self, now_ns: u64) -> std::vec::Drain<'_, Step> {
        self.stats.polls += 1;
        if !self.started {
            self.start(now_ns);
        }
        self.drain_ingress(now_ns);
        let mut budget = self.config.ops_per_poll;
        self.run_frontier(now_ns, &mut budget);
        self.route_bus(now_ns);
        // Neither phase can make the other due: one check covers both.
        if self
            .framework
            .next_deadline()
            .is_some_and(|at| at <= now_ns)
        {
            self.fire_timers(now_ns);
            self.expire_requests(now_ns);
        }
        self.apply_completions(now_ns);
        self.run_frontier(now_ns, &mut budget);
        if budget == 0 && !self.frontier.is_empty() {
            self.stats.budget_exceeded += 1;
            self.steps.push(Step::BudgetExceeded {
                ready_left: self.frontier.len(),
            });
        }
        self.flush_outbound();
        self.steps.drain(..)
    }

    // ---- phase helpers -------------------------------------------------

    fn start(&mut self, now_ns: u64) {
        self.started = true;
        for graph in &self.graphs {
            for (op, source) in &graph.sources {
                let op_ref = OpRef::new(graph.site, *op);
                let at = match source {
                    TriggerSource::Interval { period_ns } => {
                        Some(now_ns.saturating_add(*period_ns))
                    }
                    TriggerSource::Pulse { after_ns } => Some(now_ns.saturating_add(*after_ns)),
                    TriggerSource::EventSource { kind } => {
                        if let Err(err) = self.framework.event_source_mut().subscribe(*kind, op_ref)
                        {
                            self.steps.push(Step::OpFailed {
                                exec: ExecId::default(),
                                op: op_ref,
                                error: OpError::new(
                                    OpErrorKind::ResourceExhausted,
                                    "event_source.full",
                                    err.to_string(),
                                ),
                            });
                        }
                        None
                    }
                    TriggerSource::OnTrigger { kind } => {
                        self.on_trigger.entry(*kind).or_default().push(op_ref);
                        None
                    }
                };
                if let Some(at) = at {
                    if self
                        .framework
                        .scheduler()
                        .schedule(at, TimerEvent::Tick { op: op_ref })
                        .is_err()
                    {
                        self.steps.push(Step::OpFailed {
                            exec: ExecId::default(),
                            op: op_ref,
                            error: timers_full(),
                        });
                    }
                }
            }
        }
        self.next_bootstrap();
    }

    fn next_bootstrap(&mut self) {
        while self.bootstrap_live.is_none() {
            let Some(site) = self.bootstrap_queue.pop_front() else {
                return;
            };
            match self.start_execution(site, ExecOrigin::Bootstrap, InboundCtx::default(), None) {
                Ok((slot, _)) => {
                    let id = self.exec_ref(slot).map(|e| e.id);
                    self.bootstrap_live = id;
                    self.finish_if_idle(slot);
                }
                Err(kind) => self.refuse(AppIngressSource::Invoke { site }, kind),
            }
        }
    }

    fn drain_ingress(&mut self, now_ns: u64) {
        for _ in 0..self.config.ingress_per_poll {
            // Data-lane events wait until bootstrap graphs are done; the
            // control lane always drains (bootstrap ops may be parked).
            let bootstrapped = self.is_bootstrapped();
            let staged = match self.staged.front() {
                Some(event) if bootstrapped || event.lane() == Lane::Control => {
                    self.staged.pop_front()
                }
                _ => None,
            };
            let event = match staged {
                Some(event) => Some(event),
                None if bootstrapped => self.ingress.try_pop(),
                None => self.ingress.try_pop_control(),
            };
            let Some(event) = event else { break };
            self.handle_ingress(event, now_ns);
        }
        if self.framework.backpressure_mut().is_overloaded() {
            self.note_recovery(now_ns);
        }
    }

    fn handle_ingress(&mut self, event: IngressEvent, now_ns: u64) {
        match event {
            IngressEvent::Completion { cmd, payload } => {
                let (results, charge) = match payload {
                    CompletionPayload::Bytes(bytes) => {
                        let (bytes, charge) = bytes.into_parts();
                        let value: Box<dyn SlotValue> = Box::new(BytesValue::new(bytes));
                        (vec![(String::new(), value)], Some(charge))
                    }
                    CompletionPayload::Values { values, charge } => (values, Some(charge)),
                };
                self.completions.push_back(Completion::Values {
                    cmd,
                    results,
                    charge,
                });
            }
            IngressEvent::CompletionFailed { cmd, detail } => {
                self.completions
                    .push_back(Completion::Failed { cmd, detail });
            }
            IngressEvent::IngressError(error) => {
                // A completion refused at the boundary fails its op now
                // rather than leaving it to time out.
                if let AppIngressSource::Completion { command } = error.source {
                    self.completions.push_back(Completion::Failed {
                        cmd: command,
                        detail: format!("result refused at the Node boundary: {}", error.kind),
                    });
                }
                self.refuse(error.source, error.kind);
            }
            IngressEvent::Envelope(envelope) => {
                self.stats.envelopes_received += 1;
                self.receive(envelope, now_ns)
            }
            IngressEvent::EnvelopeBytes(bytes) => {
                self.stats.envelopes_received += 1;
                match decode_envelope(bytes.as_slice(), &self.config.wire) {
                    Ok(decoded) => {
                        for rejected in decoded.rejected {
                            self.receive_failed(
                                Some(decoded.envelope.src),
                                format!("fill {} rejected: {}", rejected.index, rejected.reason),
                            );
                        }
                        self.receive(decoded.envelope, now_ns);
                    }
                    Err(err) => self.receive_failed(None, err.to_string()),
                }
            }
            IngressEvent::AppEvent { kind, value } => {
                let ops = self.on_trigger.get(&kind).cloned().unwrap_or_default();
                if ops.is_empty() {
                    self.refuse(
                        AppIngressSource::AppEvent { kind },
                        AppIngressErrorKind::NoSubscriber,
                    );
                }
                for op in ops {
                    self.start_triggered(op, ExecOrigin::AppEvent { kind }, value.clone_value());
                }
            }
            IngressEvent::Invoke {
                site,
                inputs,
                ticket,
            } => {
                if let Err(err) = self.start_with_inputs(
                    site,
                    ExecOrigin::Ticket(ticket),
                    InboundCtx::default(),
                    inputs,
                ) {
                    self.refuse(
                        AppIngressSource::Invoke { site },
                        match err {
                            InvokeError::TooManyExecutions { cap, .. } => {
                                AppIngressErrorKind::TooManyExecutions { cap }
                            }
                            InvokeError::Budget { in_use, limit, .. } => {
                                AppIngressErrorKind::BudgetExceeded { in_use, limit }
                            }
                            _ => AppIngressErrorKind::InvalidInvoke,
                        },
                    );
                }
            }
            _ => {}
        }
    }

    /// Handles one inbound envelope: responses resume their request,
    /// back-off notices and clears update the back-off table, data fills
    /// start one execution per target site.
    fn receive(&mut self, envelope: Envelope, now_ns: u64) {
        let from = envelope.src;
        let governor = self.framework.governor();
        if governor.is_blocked(from) || (governor.allowlist_mode() && !governor.is_allowed(from)) {
            self.receive_failed(Some(from), format!("{from} is refused by peer policy"));
            return;
        }
        match envelope.kind {
            EnvelopeKind::Response => return self.receive_response(envelope, now_ns),
            EnvelopeKind::BackoffNotice { retry_after_ns } => {
                self.framework
                    .backoff_mut()
                    .apply_advisory(from, retry_after_ns, now_ns);
                // A built-in kind: the bus never refuses it.
                let _ = self.bus.publish(NodeEvent::BackoffNotice {
                    peer: from,
                    retry_after_ns,
                });
                return;
            }
            EnvelopeKind::BackoffClear => {
                self.framework.backoff_mut().record_success(from);
                return;
            }
            EnvelopeKind::Request => {
                if let Some(token) = envelope.wire_req_id {
                    if !self.framework.dedup_mut().check_and_insert(from, token) {
                        self.receive_failed(
                            Some(from),
                            format!("duplicate request {token} from {from} dropped"),
                        );
                        return;
                    }
                }
            }
            EnvelopeKind::OneWay => {}
        }
        self.note_load(from, now_ns);
        let inbound = InboundCtx {
            src_peer: Some(from),
            wire_req_id: envelope.wire_req_id,
            arrival_ns: Some(now_ns),
            remaining_deadline_ns: envelope.remaining_deadline_ns,
        };
        let mut by_site: Vec<(SiteId, NamedValues)> = Vec::new();
        let mut control = Vec::new();
        let request = match envelope.kind {
            EnvelopeKind::Request => envelope.wire_req_id,
            _ => None,
        };
        for fill in envelope.fills {
            let target = fill.target;
            let (site, input) = match target {
                FillTarget::Site { site, input } => (site, input),
                FillTarget::ComponentOp { .. } => {
                    control.push((target, fill.payload));
                    continue;
                }
                FillTarget::Response => {
                    self.receive_failed(
                        Some(from),
                        "a response fill in an envelope that is not a response".into(),
                    );
                    continue;
                }
            };
            let value = match fill.payload {
                crate::wire::Payload::Value(value) => value,
                payload => match decode_payload(&payload, &self.registry, &self.config.values) {
                    Ok(value) => value,
                    Err(err) => {
                        self.receive_failed(Some(from), format!("fill for `{input}`: {err}"));
                        continue;
                    }
                },
            };
            match by_site.iter_mut().find(|(s, _)| *s == site) {
                Some((_, inputs)) => inputs.push((input, value)),
                None => by_site.push((site, vec![(input, value)])),
            }
        }
        for (site, inputs) in by_site {
            if let Err(err) =
                self.start_with_inputs(site, ExecOrigin::Envelope { from }, inbound, inputs)
            {
                self.receive_failed(Some(from), err.to_string());
            }
        }
        for (target, payload) in control {
            let FillTarget::ComponentOp { component, op } = target else {
                continue;
            };
            let value = match payload {
                crate::wire::Payload::Value(value) => value,
                payload => match decode_payload(&payload, &self.registry, &self.config.values) {
                    Ok(value) => value,
                    Err(err) => {
                        self.receive_failed(Some(from), format!("fill for `{op}`: {err}"));
                        if let Some(token) = request {
                            self.respond(from, token, None);
                        }
                        continue;
                    }
                },
            };
            self.control_call(from, component, &op, value, inbound, request, now_ns);
        }
    }

    /// Resumes the `Send` op waiting for this response, and learns from it.
    fn receive_response(&mut self, envelope: Envelope, now_ns: u64) {
        let from = envelope.src;
        let Some(token) = envelope.wire_req_id else {
            self.receive_failed(Some(from), "a response without a correlation token".into());
            return;
        };
        match self.framework.requests().peek(token) {
            Some(pending) if pending.target.peer == from => {}
            Some(_) => {
                self.receive_failed(
                    Some(from),
                    format!("response {token} came from {from}, not from the peer asked"),
                );
                return;
            }
            None => {
                self.receive_failed(
                    Some(from),
                    format!("response {token} matches no request in flight (late or duplicate)"),
                );
                return;
            }
        }
        let Some(pending) = self.framework.requests_mut().resolve(token) else {
            return;
        };
        let elapsed = now_ns.saturating_sub(pending.sent_at_ns);
        self.framework
            .rtt_mut()
            .observe_round_trip(pending.target, None, elapsed, now_ns);
        if let Some(HealthTransition::CameUp(peer)) =
            self.framework.governor_mut().record_success(from, now_ns)
        {
            let _ = self.bus.publish(NodeEvent::PeerCameUp { peer });
        }
        let completion = match envelope.fills.into_iter().next() {
            None => Completion::Failed {
                cmd: pending.cmd,
                detail: format!(
                    "{from} answered without a value: its op failed or produced nothing"
                ),
            },
            Some(fill) => {
                let value = match fill.payload {
                    crate::wire::Payload::Value(value) => Ok(value),
                    payload => decode_payload(&payload, &self.registry, &self.config.values),
                };
                match value {
                    Ok(value) => Completion::Values {
                        cmd: pending.cmd,
                        results: vec![(String::new(), value)],
                        charge: None,
                    },
                    Err(err) => Completion::Failed {
                        cmd: pending.cmd,
                        detail: format!("the response from {from} could not be decoded: {err}"),
                    },
                }
            }
        };
        self.completions.push_back(completion);
    }

    /// Emits a back-off notice to `from` when the data lane is at its
    /// high-water mark.
    fn note_load(&mut self, from: PeerId, now_ns: u64) {
        let depth = self.ingress.data_len();
        let capacity = self.ingress.data_capacity().max(1);
        let high_water = self
            .framework
            .backpressure_mut()
            .config()
            .high_water_percent;
        if (depth as u128) * 100 < (capacity as u128) * u128::from(high_water) {
            return;
        }
        let action = self
            .framework
            .backpressure_mut()
            .on_refused(from, depth, capacity, now_ns);
        if let BackpressureAction::SendNotice { to, retry_after_ns } = action {
            let notice = Envelope::new(
                self.peer,
                to,
                EnvelopeKind::BackoffNotice { retry_after_ns },
            );
            self.framework.outbound().push(notice);
        }
    }

    /// Tells every sender that got a notice that the overload is over.
    fn note_recovery(&mut self, now_ns: u64) {
        let depth = self.ingress.data_len();
        let capacity = self.ingress.data_capacity().max(1);
        let recovered = self
            .framework
            .backpressure_mut()
            .observe_depth(depth, capacity, now_ns);
        for peer in recovered {
            let clear = Envelope::new(self.peer, peer, EnvelopeKind::BackoffClear);
            self.framework.outbound().push(clear);
        }
    }

    /// Phase 5: wire requests past their deadline fail their `Send` op and
    /// count as a failure of the peer asked.
    fn expire_requests(&mut self, now_ns: u64) {
        for request in self.framework.requests_mut().drain_expired(now_ns) {
            if let Some(HealthTransition::WentDown(peer)) = self
                .framework
                .governor_mut()
                .record_failure(request.target.peer, now_ns)
            {
                let _ = self.bus.publish(NodeEvent::PeerWentDown { peer });
            }
            self.expire(request.cmd);
        }
    }

    /// Moves completions recorded during a dispatch to where they wait:
    /// same-cycle ones to the completion queue, timed ones until their timer.
    fn stash_completions(&mut self) {
        for completion in self.scratch_completions.drain(..) {
            match completion.due_ns {
                Some(_) => {
                    self.deferred.insert(completion.cmd_id, completion.results);
                }
                None => self.completions.push_back(Completion::Values {
                    cmd: completion.cmd_id,
                    results: completion.results,
                    charge: None,
                }),
            }
        }
    }

    /// Control plane: runs op `op` of `component` on a value sent by `from`.
    /// For a request, the op's first output is the response; an op that
    /// fails (or parks and then fails) is answered with an empty response,
    /// which the requester reports as a failure.
    #[allow(clippy::too_many_arguments)]
    fn control_call(
        &mut self,
        from: PeerId,
        component: ComponentRef,
        op: &str,
        value: Box<dyn SlotValue>,
        inbound: InboundCtx,
        request: Option<u64>,
        now_ns: u64,
    ) {
        let local = self
            .components
            .get(component.index())
            .and_then(Option::as_deref)
            .and_then(|c| c.resolve_op(op));
        let (Some(local), Some(exec_id)) = (local, self.exec_ids.mint().map(ExecId::new)) else {
            self.receive_failed(
                Some(from),
                format!("{component} has no op `{op}` (or ids are exhausted)"),
            );
            if let Some(token) = request {
                self.respond(from, token, None);
            }
            return;
        };
        let op_ref = OpRef::new(CONTROL_SITE, component.as_u32());
        let dispatch = Dispatch::Component {
            cref: component,
            local,
        };
        let names = [String::from("response")];
        self.scratch_inputs.clear();
        self.scratch_inputs.push(Some(value));
        self.stats.ops_fired += 1;
        let result = Dispatcher {
            peer: self.peer,
            framework: &mut self.framework,
            bus: &mut self.bus,
            ingress: &self.ingress,
            components: &mut self.components,
            slots: &self.slots,
            inputs: &mut self.scratch_inputs,
            outputs: &mut self.scratch_outputs,
            completions: &mut self.scratch_completions,
            cmd_ids: &mut self.cmd_ids,
        }
        .run(OpCall {
            dispatch: &dispatch,
            op_ref,
            exec_id,
            attributes: &[],
            metadata: &[],
            output_names: &names,
            declared: 1,
            inbound,
            now_ns,
        });
        let reply = request.map(|token| (from, token));
        match result {
            Ok(Ok(DispatchResult::Immediate)) => {
                let value = self.scratch_outputs.drain(..).next();
                if let Some((to, token)) = reply {
                    self.respond(to, token, value);
                }
            }
            Ok(Ok(DispatchResult::Async(cmd))) => {
                let timer = self
                    .framework
                    .scheduler()
                    .schedule(
                        now_ns.saturating_add(self.config.default_async_timeout_ns),
                        TimerEvent::Deadline { cmd },
                    )
                    .ok();
                self.control_parked.insert(
                    cmd,
                    ControlCall {
                        exec: exec_id,
                        op: op_ref,
                        reply,
                        timer,
                    },
                );
            }
            Ok(Err(error)) => self.control_failed(exec_id, op_ref, reply, error),
            Err(panic) => {
                self.stats.ops_panicked += 1;
                let error =
                    OpError::new(OpErrorKind::Panicked, "op.panicked", panic_detail(&*panic));
                self.control_failed(exec_id, op_ref, reply, error);
            }
        }
        self.scratch_outputs.clear();
        self.stash_completions();
    }

    fn control_failed(
        &mut self,
        exec: ExecId,
        op: OpRef,
        reply: Option<(PeerId, u64)>,
        error: OpError,
    ) {
        self.stats.ops_failed += 1;
        self.steps.push(Step::OpFailed { exec, op, error });
        if let Some((to, token)) = reply {
            self.respond(to, token, None);
        }
    }

    /// Queues a response to request `token` of `to` (empty: the op failed).
    fn respond(&mut self, to: PeerId, token: u64, value: Option<Box<dyn SlotValue>>) {
        let mut response =
            Envelope::new(self.peer, to, EnvelopeKind::Response).with_request_id(token);
        if let Some(value) = value {
            response = response.with_fill(crate::wire::Fill {
                target: FillTarget::Response,
                payload: crate::wire::Payload::Value(value),
            });
        }
        self.framework.outbound().push(response);
    }

    /// Finishes a parked control-plane op; `false` if `cmd` is not one.
    fn finish_control(&mut self, cmd: CommandId, outcome: ControlOutcome) -> bool {
        let Some(call) = self.control_parked.remove(&cmd) else {
            return false;
        };
        if let Some(timer) = call.timer {
            self.framework.scheduler().cancel(timer);
        }
        match outcome {
            ControlOutcome::Value(value) => {
                self.stats.completions += 1;
                if let Some((to, token)) = call.reply {
                    self.respond(to, token, value);
                }
            }
            ControlOutcome::Failed(detail) => {
                let error = OpError::new(OpErrorKind::Failed, "completion.failed", detail);
                self.control_failed(call.exec, call.op, call.reply, error);
            }
            ControlOutcome::TimedOut => {
                self.stats.timeouts += 1;
                self.stats.ops_failed += 1;
                self.steps.push(Step::Timeout {
                    exec: call.exec,
                    op: call.op,
                    cmd,
                });
                if let Some((to, token)) = call.reply {
                    self.respond(to, token, None);
                }
            }
        }
        true
    }

    fn run_frontier(&mut self, now_ns: u64, budget: &mut usize) {
        while *budget > 0 {
            let Some(ready) = self.frontier.pop_front() else {
                return;
            };
            *budget -= 1;
            self.fire(ready, now_ns);
        }
    }

    fn route_bus(&mut self, _now_ns: u64) {
        let dropped = self.bus.take_dropped();
        if dropped > 0 {
            self.report_drop(DropReason::BusFull, dropped);
        }
        // Only the events queued when the phase starts: events published
        // while routing wait for the next poll, so one poll stays bounded.
        for _ in 0..self.bus.len() {
            let Some(event) = self.bus.pop() else { break };
            let kind = event.kind();
            let subscribers = self.framework.event_source_mut().subscribers(kind).to_vec();
            for op in subscribers {
                let value: Box<dyn SlotValue> = match &event {
                    NodeEvent::App { value, .. } => value.clone_value(),
                    NodeEvent::PeerWentDown { peer } | NodeEvent::PeerCameUp { peer } => {
                        Box::new(PeerIdValue(*peer))
                    }
                    _ => trigger_value(),
                };
                self.start_triggered(op, ExecOrigin::Bus { kind }, value);
            }
            self.steps.push(Step::Event(event));
        }
    }

    fn fire_timers(&mut self, now_ns: u64) {
        while let Some(timer) = self.framework.scheduler().pop_due(now_ns) {
            match timer.payload {
                TimerEvent::Resume { cmd } => {
                    if let Some(results) = self.deferred.remove(&cmd) {
                        self.completions.push_back(Completion::Values {
                            cmd,
                            results,
                            charge: None,
                        });
                    }
                }
                TimerEvent::Deadline { cmd } => self.expire(cmd),
                TimerEvent::Tick { op } => {
                    let period = self.source_of(op).and_then(|source| match source {
                        TriggerSource::Interval { period_ns } => Some(*period_ns),
                        _ => None,
                    });
                    if let Some(period) = period {
                        let next = timer.at_ns.saturating_add(period);
                        if self
                            .framework
                            .scheduler()
                            .schedule(next, TimerEvent::Tick { op })
                            .is_err()
                        {
                            self.steps.push(Step::OpFailed {
                                exec: ExecId::default(),
                                op,
                                error: timers_full(),
                            });
                        }
                    }
                    self.start_triggered(op, ExecOrigin::Timer { op }, trigger_value());
                }
                _ => {}
            }
        }
    }

    fn expire(&mut self, cmd: CommandId) {
        if self.finish_control(cmd, ControlOutcome::TimedOut) {
            return;
        }
        let Some(parked) = self.parked.remove(&cmd) else {
            return;
        };
        if let Some(timer) = parked.timer {
            self.framework.scheduler().cancel(timer);
        }
        self.deferred.remove(&cmd);
        self.stats.timeouts += 1;
        self.stats.ops_failed += 1;
        let Some(exec) = self.exec_mut(parked.slot, parked.gen) else {
            return;
        };
        exec.pending -= 1;
        let exec_id = exec.id;
        let op = OpRef::new(exec.site, parked.op);
        self.steps.push(Step::Timeout {
            exec: exec_id,
            op,
            cmd,
        });
        self.finish_if_idle(parked.slot);
    }

    fn apply_completions(&mut self, _now_ns: u64) {
        while let Some(completion) = self.completions.pop_front() {
            match completion {
                Completion::Values {
                    cmd,
                    results,
                    charge,
                } => self.complete(cmd, results, charge),
                Completion::Failed { cmd, detail } => self.fail_parked(cmd, detail),
            }
        }
    }

    fn complete(
        &mut self,
        cmd: CommandId,
        results: Vec<(String, Box<dyn SlotValue>)>,
        charge: Option<ByteCharge>,
    ) {
        if self.control_parked.contains_key(&cmd) {
            let value = results.into_iter().next().map(|(_, value)| value);
            self.finish_control(cmd, ControlOutcome::Value(value));
            drop(charge);
            return;
        }
        let Some(parked) = self.take_parked(cmd, false) else {
            return;
        };
        self.stats.completions += 1;
        let Some(exec) = exec_slot(&mut self.execs, parked.slot, parked.gen) else {
            return;
        };
        exec.pending -= 1;
        if let Some(charge) = charge {
            exec.charges.push(charge);
        }
        let graph = &self.graphs[exec.site.as_u32() as usize];
        let compiled = &graph.ops[parked.op as usize];
        let declared = compiled.output_names.len();
        let mut written = 0;
        let mut unknown = None;
        for (name, value) in results {
            // Bytes completions carry no name: they fill the first output.
            let position = if name.is_empty() {
                (declared > 0).then_some(0)
            } else {
                compiled.output_names.iter().position(|n| *n == name)
            };
            match position {
                Some(position) => {
                    if let Some(value_index) = graph.topo.op_outputs(parked.op)[position] {
                        write_value(
                            exec,
                            graph,
                            value_index.index(),
                            value,
                            parked.slot,
                            parked.gen,
                            &mut self.frontier,
                        );
                    }
                    written += 1;
                }
                None => unknown = Some(name),
            }
        }
        let exec_id = exec.id;
        let op = compiled.op_ref;
        if let Some(name) = unknown {
            self.stats.ops_failed += 1;
            self.steps.push(Step::OpFailed {
                exec: exec_id,
                op,
                error: OpError::new(
                    OpErrorKind::InvalidOutput,
                    "completion.unknown_output",
                    format!("the completion names output `{name}`, which the op does not declare"),
                ),
            });
        } else if written < declared {
            self.steps.push(Step::OutputsSuppressed {
                exec: exec_id,
                op,
                written,
                declared,
            });
        } else if self.config.trace_ops {
            self.steps.push(Step::OpCompleted { exec: exec_id, op });
        }
        self.finish_if_idle(parked.slot);
    }

    fn fail_parked(&mut self, cmd: CommandId, detail: String) {
        if self.control_parked.contains_key(&cmd) {
            self.finish_control(cmd, ControlOutcome::Failed(detail));
            return;
        }
        let error = OpError::new(OpErrorKind::Failed, "completion.failed", detail);
        self.fail_parked_op(cmd, error);
    }

    /// Fails the graph op parked on `cmd` with `error`; its execution ends
    /// if nothing else of it is queued or parked.
    fn fail_parked_op(&mut self, cmd: CommandId, error: OpError) {
        let Some(parked) = self.take_parked(cmd, true) else {
            return;
        };
        self.stats.ops_failed += 1;
        let Some(exec) = exec_slot(&mut self.execs, parked.slot, parked.gen) else {
            return;
        };
        exec.pending -= 1;
        let exec_id = exec.id;
        let op = OpRef::new(exec.site, parked.op);
        self.steps.push(Step::OpFailed {
            exec: exec_id,
            op,
            error,
        });
        self.finish_if_idle(parked.slot);
    }

    /// Removes a parked op and cancels its deadline; reports unknown commands.
    fn take_parked(&mut self, cmd: CommandId, failure: bool) -> Option<Parked> {
        let Some(parked) = self.parked.remove(&cmd) else {
            self.stats.unknown_completions += 1;
            self.steps.push(Step::UnknownCompletion { cmd, failure });
            // The bus only refuses user events in the reserved range; this is a built-in event.
            let _ = self
                .bus
                .publish(NodeEvent::UnknownCompletion { cmd, failure });
            return None;
        };
        if let Some(timer) = parked.timer {
            self.framework.scheduler().cancel(timer);
        }
        Some(parked)
    }

    fn flush_outbound(&mut self) {
        let dropped_before = self.stats.dropped;
        let outbound_dropped = self.framework.take_outbound_dropped();
        if outbound_dropped > 0 {
            self.report_drop(DropReason::OutboundFull, outbound_dropped);
        }
        debug_assert!(self.stats.dropped >= dropped_before);
        if !self.framework.outbound().is_empty() {
            for envelope in self.framework.outbound().drain() {
                self.steps.push(Step::SendEnvelope(envelope));
            }
        }
        if self.framework.holders().app_outputs > 0 {
            self.steps
                .extend(self.framework.drain_app_outputs().map(Step::AppOutput));
        }
    }

    // ---- executions ----------------------------------------------------

    fn start_with_inputs(
        &mut self,
        site: SiteId,
        origin: ExecOrigin,
        inbound: InboundCtx,
        inputs: Vec<(String, Box<dyn SlotValue>)>,
    ) -> Result<ExecId, InvokeError> {
        let graph = self
            .graphs
            .get(site.as_u32() as usize)
            .ok_or(InvokeError::UnknownSite(site))?;
        let mut indexed = std::mem::take(&mut self.scratch_indexed);
        indexed.clear();
        let mut bytes = 0usize;
        for (name, value) in inputs {
            let Some(index) = graph.input_index(&name) else {
                self.scratch_indexed = indexed;
                return Err(InvokeError::UnknownInput { site, name });
            };
            bytes = bytes.saturating_add(value.heap_bytes());
            indexed.push((index, value));
        }
        if matches!(origin, ExecOrigin::Invoke | ExecOrigin::Ticket(_)) {
            for (position, input) in graph.graph.inputs.iter().enumerate() {
                let index = graph.topo.graph_inputs()[position].as_u32();
                if !indexed.iter().any(|(i, _)| *i == index) {
                    self.scratch_indexed = indexed;
                    return Err(InvokeError::MissingInput {
                        site,
                        name: input.name.clone(),
                    });
                }
            }
        }
        // Values without heap bytes cost the budget nothing: skip the charge.
        let charge = if bytes == 0 {
            None
        } else {
            match self.budget.try_charge(bytes) {
                Ok(charge) => Some(charge),
                Err(e) => {
                    self.scratch_indexed = indexed;
                    return Err(InvokeError::Budget {
                        requested: e.requested,
                        in_use: e.in_use,
                        limit: e.limit,
                    });
                }
            }
        };
        let (slot, gen) = match self.start_execution(site, origin, inbound, None) {
            Ok(started) => started,
            Err(_) => {
                self.scratch_indexed = indexed;
                return Err(InvokeError::TooManyExecutions {
                    live: self.live,
                    cap: self.config.max_executions,
                });
            }
        };
        let exec = exec_slot(&mut self.execs, slot, gen).expect("just started");
        exec.charges.extend(charge);
        let graph = &self.graphs[site.as_u32() as usize];
        for (index, value) in indexed.drain(..) {
            write_value(
                exec,
                graph,
                index as usize,
                value,
                slot,
                gen,
                &mut self.frontier,
            );
        }
        self.scratch_indexed = indexed;
        let id = exec.id;
        if exec.pending == 0 {
            self.finish_if_idle(slot);
        }
        Ok(id)
    }

    /// Starts an execution seeded by a trigger-source op's output.
    fn start_triggered(&mut self, op: OpRef, origin: ExecOrigin, value: Box<dyn SlotValue>) {
        let site = op.site;
        match self.start_execution(site, origin, InboundCtx::default(), None) {
            Ok((slot, gen)) => {
                let exec = exec_slot(&mut self.execs, slot, gen).expect("just started");
                exec.fired[op.index as usize] = true;
                let graph = &self.graphs[site.as_u32() as usize];
                if let Some(Some(index)) = graph.topo.op_outputs(op.index).first() {
                    write_value(
                        exec,
                        graph,
                        index.index(),
                        value,
                        slot,
                        gen,
                        &mut self.frontier,
                    );
                }
                self.finish_if_idle(slot);
            }
            Err(kind) => {
                let source = match origin {
                    ExecOrigin::AppEvent { kind } => AppIngressSource::AppEvent { kind },
                    _ => AppIngressSource::Trigger { op },
                };
                // A start refused while routing the bus is not republished on
                // the bus: an ingress-error subscriber refused at the cap
                // would otherwise trigger itself forever.
                let publish = !matches!(origin, ExecOrigin::Bus { .. });
                self.refuse_with(source, kind, publish);
            }
        }
    }

    /// Allocates an execution of `site` and queues its root ops.
    fn start_execution(
        &mut self,
        site: SiteId,
        origin: ExecOrigin,
        inbound: InboundCtx,
        parent_cmd: Option<CommandId>,
    ) -> Result<(u32, u32), AppIngressErrorKind> {
        if self.live >= self.config.max_executions {
            return Err(AppIngressErrorKind::TooManyExecutions {
                cap: self.config.max_executions,
            });
        }
        let Some(id) = self.exec_ids.mint() else {
            return Err(AppIngressErrorKind::IdsExhausted);
        };
        let site_index = site.as_u32() as usize;
        let graph = &self.graphs[site_index];
        let slot = match self.free.pop() {
            Some(slot) => slot,
            None => {
                self.execs.push(ExecSlot { gen: 0, exec: None });
                (self.execs.len() - 1) as u32
            }
        };
        let entry = &mut self.execs[slot as usize];
        let gen = entry.gen;
        // One pool entry per graph, made at build.
        let pool = &mut self.pool[site_index];
        let spare = match pool.spare.checked_sub(1) {
            Some(last) => {
                pool.spare = last;
                pool.bufs.get_mut(last)
            }
            None => None,
        };
        let (values, reads_left, missing, fired) = match spare {
            Some(b) => (
                std::mem::take(&mut b.values),
                std::mem::take(&mut b.reads_left),
                std::mem::take(&mut b.missing),
                std::mem::take(&mut b.fired),
            ),
            None => Default::default(),
        };
        // Built in place: an `Execution` is large, a move costs a memcpy.
        let exec = entry.exec.insert(Execution {
            id: ExecId::new(id),
            site,
            origin,
            parent_cmd,
            inbound,
            values,
            reads_left,
            missing,
            fired,
            // Roots are distinct op indices (u32), so their count fits.
            pending: graph.roots.len() as u32,
            charges: Vec::new(),
        });
        // Pooled vectors are empty (emptied when their execution ended).
        exec.values.resize_with(graph.topo.value_count(), || None);
        exec.reads_left.extend_from_slice(&graph.port_reads);
        exec.missing.extend_from_slice(&pool.required);
        exec.fired.resize(pool.required.len(), false);
        self.live += 1;
        self.stats.executions_started += 1;
        for &op in &graph.roots {
            self.frontier.push_back(Ready { slot, gen, op });
        }
        Ok((slot, gen))
    }

    fn fire(&mut self, ready: Ready, now_ns: u64) {
        let Some(exec) = exec_slot(&mut self.execs, ready.slot, ready.gen) else {
            self.stats.stale_frontier += 1;
            return;
        };
        exec.pending -= 1;
        let op = ready.op as usize;
        if exec.fired[op] || exec.missing[op] != 0 {
            self.stats.stale_frontier += 1;
            self.finish_if_idle(ready.slot);
            return;
        }
        exec.fired[op] = true;
        self.stats.ops_fired += 1;
        let graph = &self.graphs[exec.site.as_u32() as usize];
        let compiled = &graph.ops[op];
        let exec_id = exec.id;

        if let Dispatch::Syscall(Syscall::PassThrough) = compiled.dispatch {
            // Fast path: the value moves from the input slot to the output
            // slot without the scratch vectors; no resource handle is built
            // (PassThrough touches none). It has one input port (checked
            // when the syscall parses); the last port's value is forwarded.
            let mut value = None;
            for port in graph.topo.op_inputs(ready.op) {
                value = port.and_then(|value| read_input(exec, graph, value.index()));
            }
            let op_ref = compiled.op_ref;
            match (value, graph.topo.op_outputs(ready.op).first()) {
                (Some(value), Some(Some(index))) => {
                    write_value(
                        exec,
                        graph,
                        index.index(),
                        value,
                        ready.slot,
                        ready.gen,
                        &mut self.frontier,
                    );
                    if self.config.trace_ops {
                        self.steps.push(Step::OpCompleted {
                            exec: exec_id,
                            op: op_ref,
                        });
                    }
                }
                (Some(_), _) => {}
                (None, _) => {
                    self.stats.ops_failed += 1;
                    self.steps.push(Step::OpFailed {
                        exec: exec_id,
                        op: op_ref,
                        error: OpError::new(
                            OpErrorKind::InvalidInput,
                            "input.missing",
                            "input 0 is absent",
                        ),
                    });
                }
            }
            if exec.pending == 0 {
                self.finish_if_idle(ready.slot);
            }
            return;
        }

        // Gather inputs: the last reader of a value takes it, earlier ones clone.
        self.scratch_inputs.clear();
        for port in graph.topo.op_inputs(ready.op) {
            let value = port.and_then(|value| read_input(exec, graph, value.index()));
            self.scratch_inputs.push(value);
        }

        if let Dispatch::Call { callee } = compiled.dispatch {
            self.call(ready, exec_id, callee);
            return;
        }
        if compiled.may_park && self.parked.len() >= self.config.max_pending_async {
            self.stats.ops_failed += 1;
            self.steps.push(Step::OpFailed {
                exec: exec_id,
                op: compiled.op_ref,
                error: OpError::new(
                    OpErrorKind::ResourceExhausted,
                    "async.cap",
                    format!(
                        "{} ops are parked, the cap is {}; the op was not run",
                        self.parked.len(),
                        self.config.max_pending_async
                    ),
                ),
            });
            self.finish_if_idle(ready.slot);
            return;
        }

        let node_op = &graph.graph.ops[op];
        let declared = compiled.output_names.len();
        let result = Dispatcher {
            peer: self.peer,
            framework: &mut self.framework,
            bus: &mut self.bus,
            ingress: &self.ingress,
            components: &mut self.components,
            slots: &self.slots,
            inputs: &mut self.scratch_inputs,
            outputs: &mut self.scratch_outputs,
            completions: &mut self.scratch_completions,
            cmd_ids: &mut self.cmd_ids,
        }
        .run(OpCall {
            dispatch: &compiled.dispatch,
            op_ref: compiled.op_ref,
            exec_id,
            attributes: &node_op.attributes,
            metadata: &node_op.metadata,
            output_names: &compiled.output_names,
            declared,
            inbound: exec.inbound,
            now_ns,
        });
        self.scratch_inputs.clear();

        let op_ref = compiled.op_ref;
        match result {
            Ok(Ok(DispatchResult::Immediate)) => {
                let written = self.scratch_outputs.len();
                for (position, value) in self.scratch_outputs.drain(..).enumerate() {
                    if let Some(index) = graph.topo.op_outputs(ready.op)[position] {
                        write_value(
                            exec,
                            graph,
                            index.index(),
                            value,
                            ready.slot,
                            ready.gen,
                            &mut self.frontier,
                        );
                    }
                }
                if written < declared {
                    self.steps.push(Step::OutputsSuppressed {
                        exec: exec_id,
                        op: op_ref,
                        written,
                        declared,
                    });
                } else if self.config.trace_ops {
                    self.steps.push(Step::OpCompleted {
                        exec: exec_id,
                        op: op_ref,
                    });
                }
            }
            Ok(Ok(DispatchResult::Async(cmd))) => {
                exec.pending += 1;
                let timeout = node_op
                    .attr_int("timeout_ns")
                    .ok()
                    .and_then(|t| u64::try_from(t).ok())
                    .unwrap_or(self.config.default_async_timeout_ns);
                let timer = self
                    .framework
                    .scheduler()
                    .schedule(now_ns.saturating_add(timeout), TimerEvent::Deadline { cmd })
                    .ok();
                self.parked.insert(
                    cmd,
                    Parked {
                        slot: ready.slot,
                        gen: ready.gen,
                        op: ready.op,
                        timer,
                    },
                );
                if self.config.trace_ops {
                    self.steps.push(Step::OpSuspended {
                        exec: exec_id,
                        op: op_ref,
                        cmd,
                    });
                }
            }
            Ok(Err(error)) => {
                self.scratch_outputs.clear();
                self.stats.ops_failed += 1;
                self.steps.push(Step::OpFailed {
                    exec: exec_id,
                    op: op_ref,
                    error,
                });
            }
            Err(panic) => {
                self.scratch_outputs.clear();
                self.stats.ops_failed += 1;
                self.stats.ops_panicked += 1;
                let detail = panic_detail(&*panic);
                self.steps.push(Step::OpFailed {
                    exec: exec_id,
                    op: op_ref,
                    error: OpError::new(OpErrorKind::Panicked, "op.panicked", detail),
                });
            }
        }
        self.stash_completions();
        self.finish_if_idle(ready.slot);
    }

    /// Fires a `Call` op: the callee runs as a child execution and the
    /// caller parks until it ends.
    fn call(&mut self, ready: Ready, exec_id: ExecId, callee: SiteId) {
        let Some(cmd) = self.cmd_ids.mint().map(CommandId::new) else {
            self.stats.ops_failed += 1;
            self.steps.push(Step::OpFailed {
                exec: exec_id,
                op: OpRef::new(
                    self.exec_ref(ready.slot)
                        .map_or(SiteId::default(), |e| e.site),
                    ready.op,
                ),
                error: OpError::new(
                    OpErrorKind::ResourceExhausted,
                    "command_id.exhausted",
                    "command ids exhausted",
                ),
            });
            self.finish_if_idle(ready.slot);
            return;
        };
        let inputs: Vec<Option<Box<dyn SlotValue>>> = self.scratch_inputs.drain(..).collect();
        let inbound = self
            .exec_ref(ready.slot)
            .map(|e| e.inbound)
            .unwrap_or_default();
        match self.start_execution(
            callee,
            ExecOrigin::Call { parent: exec_id },
            inbound,
            Some(cmd),
        ) {
            Ok((slot, gen)) => {
                if let Some(parent) = exec_slot(&mut self.execs, ready.slot, ready.gen) {
                    parent.pending += 1;
                }
                self.parked.insert(
                    cmd,
                    Parked {
                        slot: ready.slot,
                        gen: ready.gen,
                        op: ready.op,
                        timer: None,
                    },
                );
                let child = exec_slot(&mut self.execs, slot, gen).expect("just started");
                let graph = &self.graphs[callee.as_u32() as usize];
                for (position, value) in inputs.into_iter().enumerate() {
                    if let Some(value) = value {
                        let index = graph.topo.graph_inputs()[position].index();
                        write_value(child, graph, index, value, slot, gen, &mut self.frontier);
                    }
                }
                self.finish_if_idle(slot);
            }
            Err(kind) => {
                self.stats.ops_failed += 1;
                let site = self
                    .exec_ref(ready.slot)
                    .map_or(SiteId::default(), |e| e.site);
                self.steps.push(Step::OpFailed {
                    exec: exec_id,
                    op: OpRef::new(site, ready.op),
                    error: OpError::new(
                        OpErrorKind::ResourceExhausted,
                        "call.refused",
                        kind.to_string(),
                    ),
                });
                self.finish_if_idle(ready.slot);
            }
        }
    }

    fn finish_if_idle(&mut self, slot: u32) {
        let Some(entry) = self.execs.get_mut(slot as usize) else {
            return;
        };
        // Worked on in place: taking the (large) `Execution` out would copy it.
        let Some(exec) = entry.exec.as_mut() else {
            return;
        };
        if exec.pending > 0 {
            return;
        }
        entry.gen = entry.gen.wrapping_add(1);
        self.free.push(slot);
        self.live -= 1;
        self.stats.executions_finished += 1;
        let (id, site, origin, parent_cmd) = (exec.id, exec.site, exec.origin, exec.parent_cmd);
        let site_index = site.as_u32() as usize;
        let graph = &self.graphs[site_index];
        let mut outputs = Vec::with_capacity(graph.graph.outputs.len());
        let mut missing = Vec::new();
        for (position, info) in graph.graph.outputs.iter().enumerate() {
            let index = graph.topo.graph_outputs()[position].index();
            match exec.values[index].take() {
                Some(value) => outputs.push((info.name.clone(), value)),
                None => missing.push(info.name.clone()),
            }
        }
        self.framework.end_execution(id);
        // Taking the charges out releases them exactly once, below.
        let charges = std::mem::take(&mut exec.charges);
        // One pool entry per graph, made at build.
        let pool = &mut self.pool[site_index];
        if pool.spare < POOL_PER_SITE {
            if pool.spare == pool.bufs.len() {
                pool.bufs.push(ExecBuffers::default());
            }
            if let Some(b) = pool.bufs.get_mut(pool.spare) {
                pool.spare += 1;
                // Values left behind (read by nobody after a failure) die here.
                exec.values.clear();
                exec.reads_left.clear();
                exec.missing.clear();
                exec.fired.clear();
                b.values = std::mem::take(&mut exec.values);
                b.reads_left = std::mem::take(&mut exec.reads_left);
                b.missing = std::mem::take(&mut exec.missing);
                b.fired = std::mem::take(&mut exec.fired);
            }
        }
        entry.exec = None;
        if self.bootstrap_live == Some(id) {
            self.bootstrap_live = None;
        }
        match parent_cmd {
            Some(cmd) => {
                // A callee's outputs complete the caller's `Call` op by position.
                let names = self
                    .parked
                    .get(&cmd)
                    .and_then(|p| {
                        let parent = self.execs[p.slot as usize].exec.as_ref()?;
                        Some(
                            self.graphs[parent.site.as_u32() as usize].ops[p.op as usize]
                                .output_names
                                .clone(),
                        )
                    })
                    .unwrap_or_default();
                let mut results = Vec::new();
                for (position, info) in graph.graph.outputs.iter().enumerate() {
                    if let Some(at) = outputs.iter().position(|(n, _)| *n == info.name) {
                        let (_, value) = outputs.swap_remove(at);
                        if let Some(name) = names.get(position) {
                            results.push((name.clone(), value));
                        }
                    }
                }
                let charge = charges.into_iter().reduce(|a, b| {
                    let bytes = b.into_raw();
                    a.budget().release_raw(bytes);
                    a
                });
                self.completions.push_back(Completion::Values {
                    cmd,
                    results,
                    charge,
                });
            }
            None => {
                drop(charges);
                self.steps.push(Step::ExecFinished {
                    exec: id,
                    site,
                    origin,
                    outputs,
                    missing,
                });
            }
        }
        if self.bootstrap_live.is_none() && !self.bootstrap_queue.is_empty() {
            self.next_bootstrap();
        }
    }

    fn source_of(&self, op: OpRef) -> Option<&TriggerSource> {
        self.graphs
            .get(op.site.as_u32() as usize)?
            .sources
            .iter()
            .find(|(index, _)| *index == op.index)
            .map(|(_, source)| source)
    }

    fn exec_ref(&self, slot: u32) -> Option<&Execution> {
        self.execs.get(slot as usize)?.exec.as_ref()
    }

    fn exec_mut(&mut self, slot: u32, gen: u32) -> Option<&mut Execution> {
        exec_slot(&mut self.execs, slot, gen)
    }

    fn refuse(&mut self, source: AppIngressSource, kind: AppIngressErrorKind) {
        self.refuse_with(source, kind, true);
    }

    /// Counts and reports a refused entry; `publish` also puts it on the bus.
    fn refuse_with(&mut self, source: AppIngressSource, kind: AppIngressErrorKind, publish: bool) {
        self.stats.refused += 1;
        if publish {
            // A built-in kind: the bus never refuses it.
            let _ = self
                .bus
                .publish(NodeEvent::AppIngressError(crate::bus::AppIngressError {
                    source,
                    byte_count: 0,
                    kind,
                }));
        }
        self.steps.push(Step::Refused { source, kind });
    }

    fn receive_failed(&mut self, from: Option<PeerId>, reason: String) {
        self.stats.receive_failures += 1;
        self.steps.push(Step::ReceiveFailed { from, reason });
    }

    fn report_drop(&mut self, reason: DropReason, count: u64) {
        self.stats.dropped = self.stats.dropped.saturating_add(count);
        self.steps.push(Step::Dropped { reason, count });
    }
}

/// One op dispatch: what it is and the context it runs in.
struct OpCall<'a> {
    dispatch: &'a Dispatch,
    op_ref: OpRef,
    exec_id: ExecId,
    attributes: &'a [crate::graph::Attribute],
    metadata: &'a [crate::graph::MetadataEntry],
    output_names: &'a [String],
    declared: usize,
    inbound: InboundCtx,
    now_ns: u64,
}

/// The parts of a Node a dispatch borrows: it builds the resource handle,
/// takes the dispatching component out of the table for the call, runs the
/// op with panics caught, and puts the component back.
struct Dispatcher<'a> {
    peer: PeerId,
    framework: &'a mut Framework,
    bus: &'a mut TypedBus,
    ingress: &'a Arc<IngressQueue>,
    components: &'a mut [Option<Box<dyn Component>>],
    slots: &'a HashMap<String, ComponentRef>,
    inputs: &'a mut Vec<Option<Box<dyn SlotValue>>>,
    outputs: &'a mut Vec<Box<dyn SlotValue>>,
    completions: &'a mut Vec<PendingCompletion>,
    cmd_ids: &'a mut IdCounter,
}

impl Dispatcher<'_> {
    /// Runs `call`; the outer `Err` is a caught panic. Inputs are consumed.
    fn run(self, call: OpCall<'_>) -> std::thread::Result<Result<DispatchResult, OpError>> {
        let cref = match call.dispatch {
            Dispatch::Component { cref, .. } => Some(*cref),
            _ => None,
        };
        let mut component = cref.and_then(|cref| self.components.get_mut(cref.index())?.take());
        let result = {
            let current = CurrentCallCtx {
                op_ref: call.op_ref,
                exec_id: call.exec_id,
                self_peer: self.peer,
                attributes: call.attributes,
                metadata: call.metadata,
                outputs: call.output_names,
                inbound: call.inbound,
                pending_completions: self.completions,
                next_command_id: self.cmd_ids,
            };
            let view = ComponentsView {
                instances: Some(self.components),
                slots: Some(self.slots),
            };
            let mut ctx =
                self.framework
                    .resource_ref(call.now_ns, self.bus, self.ingress, view, current);
            let mut inputs = OpInputs::new(self.inputs);
            let mut outputs = OpOutputs::new(self.outputs, call.declared);
            catch_unwind(AssertUnwindSafe(|| {
                match (call.dispatch, component.as_mut()) {
                    (Dispatch::Syscall(syscall), _) => {
                        dispatch_syscall(syscall, &mut ctx, &mut inputs, &mut outputs)
                    }
                    (Dispatch::Component { local, .. }, Some(component)) => {
                        component.dispatch_atomic(*local, &mut ctx, &mut inputs, &mut outputs)
                    }
                    _ => Err(OpError::new(
                        OpErrorKind::Internal,
                        "component.missing",
                        "the op's component is not in the table",
                    )),
                }
            }))
        };
        if let Some(cref) = cref {
            self.components[cref.index()] = component;
        }
        self.inputs.clear();
        result
    }
}

fn exec_slot(execs: &mut [ExecSlot], slot: u32, gen: u32) -> Option<&mut Execution> {
    let entry = execs.get_mut(slot as usize)?;
    if entry.gen != gen {
        return None;
    }
    entry.exec.as_mut()
}

/// One input port's read of value `v`: the last reader takes the value,
/// earlier ones clone it (graph outputs are always cloned: they are kept
/// until the execution ends).
fn read_input(exec: &mut Execution, graph: &CompiledGraph, v: usize) -> Option<Box<dyn SlotValue>> {
    exec.reads_left[v] -= 1;
    if exec.reads_left[v] == 0 && !graph.is_output[v] {
        exec.values[v].take()
    } else {
        exec.values[v].as_ref().map(|value| value.clone_value())
    }
}

/// Stores `value` and queues every consumer that became ready.
fn write_value(
    exec: &mut Execution,
    graph: &CompiledGraph,
    index: usize,
    value: Box<dyn SlotValue>,
    slot: u32,
    gen: u32,
    frontier: &mut VecDeque<Ready>,
) {
    if exec.values[index].is_some() {
        // Install guarantees one producer per value; a second write is
        // impossible, and dropping it keeps the first.
        return;
    }
    if graph.port_reads[index] == 0 && !graph.is_output[index] {
        // Nobody reads this value: it dies here.
        return;
    }
    exec.values[index] = Some(value);
    for &op in graph
        .topo
        .consumers(crate::graph::ValueIndex::new(index as u32))
    {
        let missing = &mut exec.missing[op as usize];
        *missing -= 1;
        if *missing == 0 && !exec.fired[op as usize] {
            exec.pending += 1;
            frontier.push_back(Ready { slot, gen, op });
        }
    }
}

/// The message of a caught panic.
fn panic_detail(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-string panic payload".to_owned())
}

/// How a parked control-plane op ended.
enum ControlOutcome {
    Value(Option<Box<dyn SlotValue>>),
    Failed(String),
    TimedOut,
}

fn timers_full() -> OpError {
    OpError::new(
        OpErrorKind::ResourceExhausted,
        "timers.full",
        "the Node's timer heap is full",
    )
}
