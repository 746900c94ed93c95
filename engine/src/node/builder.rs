//! Building a Node: its [`NodeConfig`], the [`NodeBuilder`] that installs
//! graphs and components, and the [`BuildError`] a build can end in.

use std::collections::{HashMap, VecDeque};

use super::executions::SitePool;
use super::install::{install, GraphEntry, InstallError};
use super::{Node, NodeStats};
use crate::budget::ByteBudget;
use crate::bus::TypedBus;
use crate::component::Component;
use crate::framework_state::{Framework, FrameworkConfig};
use crate::graph::Graph;
use crate::ids::{ComponentRef, IdCounter, Incarnation, PeerId};
use crate::ingress::{IngressConfig, IngressQueue};
use crate::sync::Arc;
use crate::value::{ValueLimits, ValueRegistry};
use crate::wire::WireLimits;

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
    /// Report [`Step::OpCompleted`](super::Step::OpCompleted) /
    /// [`Step::OpSuspended`](super::Step::OpSuspended) for every op
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

    /// Whether [`NodeBuilder::registry`] was called (a host that adds its
    /// own value types uses this to leave a user's choice alone).
    pub fn has_registry(&self) -> bool {
        self.registry.is_some()
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
        let graphs = install(self.graphs, &mut components, &slots)?;
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
