//! The resource handle every op receives while it runs: [`RuntimeResourceRef`].
//!
//! The engine owns all framework primitives in one [`Framework`] bundle.
//! Before each dispatch it **split-borrows** that bundle into the handle's
//! groups ([`PeerCtx`], [`NetCtx`], [`TimeCtx`], [`SyscallCtx`]) plus the
//! bus, the ingress, a read-only [`ComponentsView`] and the per-call
//! [`CurrentCallCtx`]. Every field is its own `&mut`, so the borrow checker
//! proves an op touches each primitive exclusively, and an op may use any
//! subset of them without locks.
//!
//! Invariants:
//! * The handle lives for one dispatch; nothing in it outlives the call
//!   except a [`CompletionHandle`] opened through it, which holds only a
//!   thread-safe sink.
//! * Completions recorded with [`RuntimeResourceRef::complete_command`] are
//!   drained by the engine after the dispatch returns and resume their
//!   parked op in the same poll cycle.
//! * Command ids are minted from one per-Node counter and never repeat;
//!   exhaustion is a typed error, not a wrap-around.

use std::collections::HashMap;

use crate::bus::{NodeEvent, ReservedEventKind, TypedBus};
use crate::completion::{completion_sink, CompletionHandle};
use crate::component::{Component, OpError, OpErrorKind};
use crate::framework::{
    chain_id_from_targets, Address, AddressBook, AddressBookConfig, AnyLatches, BackoffConfig,
    BackoffTable, BackpressureConfig, BackpressureTracker, ChainContext, DeadlineMatchLatches,
    EventSource, EventSourceConfig, FlowConfig, FlowControl, GovernorConfig, HoldTable,
    HoldTableConfig, InboundDedup, LatchConfig, MetricCounters, OutboundQueue, PeerGate,
    PeerGovernor, RecordBuffer, RequestTracker, RngU64Source, RttConfig, RttConfigError,
    RttTracker, Scheduler, SeededRng, SerializeQueue, SerializeQueueConfig, DEFAULT_DEDUP_WINDOW,
    DEFAULT_MAX_METRIC_NAMES, DEFAULT_MAX_PENDING_REQUESTS, DEFAULT_MAX_RECORD_NAMES,
    DEFAULT_RECORD_CAPACITY, OUTBOUND_QUEUE_DEFAULT_CAPACITY, PEER_GATE_DEFAULT_MAX_NAMES,
    SCHEDULER_DEFAULT_CAPACITY,
};
use crate::graph::{Attribute, MetadataEntry};
use crate::ids::{CommandId, ComponentRef, ExecId, IdCounter, NodeSiteId, OpRef, PeerId};
use crate::ingress::IngressQueue;
use crate::sync::Arc;
use crate::value::SlotValue;
use crate::wire::Envelope;

/// Caps and settings of every framework primitive of one Node.
///
/// Every field defaults to the primitive's own documented default.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct FrameworkConfig {
    /// Most timers pending at once.
    pub scheduler_capacity: usize,
    /// Most envelopes queued to leave; beyond it the oldest is dropped (counted).
    pub outbound_capacity: usize,
    /// Most distinct names the peer gate tracks.
    pub peer_gate_max_names: usize,
    /// Back-off schedule and table cap.
    pub backoff: BackoffConfig,
    /// Peer policy and health settings.
    pub governor: GovernorConfig,
    /// Address book caps.
    pub address_book: AddressBookConfig,
    /// Overload thresholds and notice pacing.
    pub backpressure: BackpressureConfig,
    /// RTT estimation and failure-detection settings.
    pub rtt: RttConfig,
    /// Most wire requests in flight.
    pub max_pending_requests: usize,
    /// Inbound dedup window length.
    pub dedup_window: usize,
    /// `Serialize.*` queue caps.
    pub serialize_queue: SerializeQueueConfig,
    /// `Hold.*` table caps.
    pub hold_table: HoldTableConfig,
    /// Most names `Record` keeps.
    pub record_max_names: usize,
    /// Values kept per `Record` name (older ones are overwritten, counted).
    pub record_capacity: usize,
    /// Event-source subscription caps.
    pub event_source: EventSourceConfig,
    /// Most names `IncrMetric` keeps.
    pub metric_max_names: usize,
    /// `Any` / `DeadlineMatch` latch caps.
    pub latches: LatchConfig,
    /// Seed of the Node's deterministic random source.
    pub rng_seed: u64,
    /// Credit windows between Nodes ([`FlowControl`]).
    pub flow: FlowConfig,
}

impl Default for FrameworkConfig {
    fn default() -> Self {
        Self {
            scheduler_capacity: SCHEDULER_DEFAULT_CAPACITY,
            outbound_capacity: OUTBOUND_QUEUE_DEFAULT_CAPACITY,
            peer_gate_max_names: PEER_GATE_DEFAULT_MAX_NAMES,
            backoff: BackoffConfig::default(),
            governor: GovernorConfig::default(),
            address_book: AddressBookConfig::default(),
            backpressure: BackpressureConfig::default(),
            rtt: RttConfig::default(),
            max_pending_requests: DEFAULT_MAX_PENDING_REQUESTS,
            dedup_window: DEFAULT_DEDUP_WINDOW,
            serialize_queue: SerializeQueueConfig::default(),
            hold_table: HoldTableConfig::default(),
            record_max_names: DEFAULT_MAX_RECORD_NAMES,
            record_capacity: DEFAULT_RECORD_CAPACITY,
            event_source: EventSourceConfig::default(),
            metric_max_names: DEFAULT_MAX_METRIC_NAMES,
            latches: LatchConfig::default(),
            rng_seed: 0,
            flow: FlowConfig::default(),
        }
    }
}

/// Every framework primitive of one Node, owned in one place so a dispatch
/// can split-borrow them into a [`RuntimeResourceRef`].
#[derive(Debug)]
pub struct Framework {
    gate: PeerGate,
    backoff: BackoffTable,
    governor: PeerGovernor,
    addresses: AddressBook,
    backpressure: BackpressureTracker,
    outbound: OutboundQueue<Envelope>,
    outbound_dropped_reported: u64,
    rtt: RttTracker,
    requests: RequestTracker,
    dedup: InboundDedup,
    flow: FlowControl,
    peer_resolve_failures: Vec<(Option<PeerId>, OpRef)>,
    scheduler: Scheduler<TimerEvent>,
    serialize_queue: SerializeQueue,
    hold_table: HoldTable,
    record_buffer: RecordBuffer,
    event_source: EventSource,
    counters: MetricCounters,
    any_latches: AnyLatches,
    deadline_match: DeadlineMatchLatches,
    rng: SeededRng,
    app_outputs: Vec<AppOutput>,
}

impl Framework {
    /// Builds every primitive from `config`; fails only on an inconsistent
    /// RTT configuration.
    pub fn new(config: &FrameworkConfig) -> Result<Self, RttConfigError> {
        Ok(Self {
            gate: PeerGate::new(config.peer_gate_max_names),
            backoff: BackoffTable::new(config.backoff),
            governor: PeerGovernor::new(config.governor),
            addresses: AddressBook::new(config.address_book),
            backpressure: BackpressureTracker::new(config.backpressure),
            outbound: OutboundQueue::new(config.outbound_capacity),
            outbound_dropped_reported: 0,
            rtt: RttTracker::new(config.rtt.clone())?,
            requests: RequestTracker::new(config.max_pending_requests),
            dedup: InboundDedup::new(config.dedup_window),
            flow: FlowControl::new(config.flow),
            peer_resolve_failures: Vec::new(),
            scheduler: Scheduler::new(config.scheduler_capacity),
            serialize_queue: SerializeQueue::new(config.serialize_queue),
            hold_table: HoldTable::new(config.hold_table),
            record_buffer: RecordBuffer::new(config.record_max_names, config.record_capacity),
            event_source: EventSource::new(config.event_source),
            counters: MetricCounters::new(config.metric_max_names),
            any_latches: AnyLatches::new(config.latches),
            deadline_match: DeadlineMatchLatches::new(config.latches),
            rng: SeededRng::new(config.rng_seed),
            app_outputs: Vec::new(),
        })
    }

    /// Split-borrows every primitive into the handle for one dispatch.
    pub fn resource_ref<'a>(
        &'a mut self,
        now_ns: u64,
        bus: &'a mut TypedBus,
        ingress: &'a Arc<IngressQueue>,
        components: ComponentsView<'a>,
        current: CurrentCallCtx<'a>,
    ) -> RuntimeResourceRef<'a> {
        RuntimeResourceRef {
            peers: PeerCtx {
                gate: &mut self.gate,
                backoff: &mut self.backoff,
                governor: &mut self.governor,
                addresses: &mut self.addresses,
                backpressure: &mut self.backpressure,
            },
            net: NetCtx {
                outbound: &mut self.outbound,
                rtt: &mut self.rtt,
                requests: &mut self.requests,
                flow: &mut self.flow,
                dedup: &mut self.dedup,
                pending_peer_resolve_failures: &mut self.peer_resolve_failures,
            },
            time: TimeCtx {
                now_ns,
                scheduler: &mut self.scheduler,
            },
            syscall: SyscallCtx {
                serialize_queue: &mut self.serialize_queue,
                hold_table: &mut self.hold_table,
                record_buffer: &mut self.record_buffer,
                event_source: &mut self.event_source,
                counters: &mut self.counters,
                any_latches: &mut self.any_latches,
                deadline_match: &mut self.deadline_match,
                rng: &mut self.rng,
                pending_app_events: &mut self.app_outputs,
            },
            bus,
            ingress,
            components,
            current,
        }
    }

    /// The earliest timer or request deadline, if any.
    pub fn next_deadline(&self) -> Option<u64> {
        match (
            self.scheduler.next_deadline(),
            self.requests.next_deadline(),
        ) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Forgets per-execution state (the `Any` and `DeadlineMatch` latches)
    /// of an execution that has ended, so those tables do not grow.
    pub fn end_execution(&mut self, exec: ExecId) {
        // Most graphs use no latch: skip the table lookups when nothing is held.
        if !self.any_latches.is_empty() {
            self.any_latches.clear_exec(exec);
        }
        if !self.deadline_match.is_empty() {
            self.deadline_match.clear_exec(exec);
        }
    }

    /// Per-peer back-off (advisories from notices, resets from clears).
    pub(crate) fn backoff_mut(&mut self) -> &mut BackoffTable {
        &mut self.backoff
    }

    /// Receiver-side overload tracking.
    pub(crate) fn backpressure_mut(&mut self) -> &mut BackpressureTracker {
        &mut self.backpressure
    }

    /// Peer policy and health.
    pub(crate) fn governor_mut(&mut self) -> &mut PeerGovernor {
        &mut self.governor
    }

    /// In-flight wire requests.
    pub(crate) fn requests_mut(&mut self) -> &mut RequestTracker {
        &mut self.requests
    }

    /// Round-trip estimates.
    pub(crate) fn rtt_mut(&mut self) -> &mut RttTracker {
        &mut self.rtt
    }

    /// Inbound request dedup window.
    pub(crate) fn dedup_mut(&mut self) -> &mut InboundDedup {
        &mut self.dedup
    }

    /// Round-trip estimates (read-only), e.g. for the host's metrics.
    pub fn rtt(&self) -> &RttTracker {
        &self.rtt
    }

    /// Peer policy and health (read-only).
    pub fn governor(&self) -> &PeerGovernor {
        &self.governor
    }

    /// Back-off state (read-only).
    pub fn backoff(&self) -> &BackoffTable {
        &self.backoff
    }

    /// In-flight wire requests (read-only).
    pub fn requests(&self) -> &RequestTracker {
        &self.requests
    }

    /// Credit windows (read-only).
    pub fn flow(&self) -> &FlowControl {
        &self.flow
    }

    /// Credit windows.
    pub(crate) fn flow_mut(&mut self) -> &mut FlowControl {
        &mut self.flow
    }

    /// The outbound queue and the credit windows at once (credits are
    /// attached to queued envelopes).
    pub(crate) fn outbound_and_flow(&mut self) -> (&mut OutboundQueue<Envelope>, &mut FlowControl) {
        (&mut self.outbound, &mut self.flow)
    }

    /// Event-source subscriptions (the engine subscribes source ops at start).
    pub fn event_source_mut(&mut self) -> &mut EventSource {
        &mut self.event_source
    }

    /// Envelopes the outbound queue dropped since the last call.
    pub fn take_outbound_dropped(&mut self) -> u64 {
        let total = self.outbound.stats().dropped_oldest;
        let new = total - self.outbound_dropped_reported;
        self.outbound_dropped_reported = total;
        new
    }

    /// Envelopes waiting in the outbound queue.
    pub fn outbound_len(&self) -> usize {
        self.outbound.len()
    }

    /// The Node's outbound envelope queue.
    pub fn outbound(&mut self) -> &mut OutboundQueue<Envelope> {
        &mut self.outbound
    }

    /// The Node's timer heap.
    pub fn scheduler(&mut self) -> &mut Scheduler<TimerEvent> {
        &mut self.scheduler
    }

    /// App events emitted since the last drain.
    pub fn drain_app_outputs(&mut self) -> std::vec::Drain<'_, AppOutput> {
        self.app_outputs.drain(..)
    }
}

/// Metadata key holding the chain's target list, stamped on wire ops.
pub const CHAIN_TARGETS_KEY: &str = "ai.nodeflow.wire.chain_targets";
/// Metadata key holding the op's hop index within its chain.
pub const CHAIN_HOP_INDEX_KEY: &str = "ai.nodeflow.wire.chain_hop_index";

/// Per-peer policy and state, borrowed for one dispatch.
#[derive(Debug)]
pub struct PeerCtx<'a> {
    /// Named counting semaphores (`Limit.Acquire` / `Limit.Release`).
    pub gate: &'a mut PeerGate,
    /// Exponential back-off per peer, including remote advisories.
    pub backoff: &'a mut BackoffTable,
    /// Block list, allow list and peer health.
    pub governor: &'a mut PeerGovernor,
    /// Known addresses per peer, reference counted.
    pub addresses: &'a mut AddressBook,
    /// Receiver-side overload tracking and back-off notices.
    pub backpressure: &'a mut BackpressureTracker,
}

/// Network state, borrowed for one dispatch.
#[derive(Debug)]
pub struct NetCtx<'a> {
    /// Envelopes waiting to leave the Node at the end of the cycle.
    pub outbound: &'a mut OutboundQueue<Envelope>,
    /// Round-trip estimates and peer liveness.
    pub rtt: &'a mut RttTracker,
    /// In-flight wire requests by correlation token.
    pub requests: &'a mut RequestTracker,
    /// Credit windows: a credited envelope leaves only with credit.
    pub flow: &'a mut FlowControl,
    /// Recently seen inbound messages.
    pub dedup: &'a mut InboundDedup,
    /// Peers an op could not resolve during this cycle (reported as steps).
    pub pending_peer_resolve_failures: &'a mut Vec<(Option<PeerId>, OpRef)>,
}

/// Time and timers, borrowed for one dispatch.
#[derive(Debug)]
pub struct TimeCtx<'a> {
    /// The host-supplied time of this poll cycle, in nanoseconds.
    pub now_ns: u64,
    /// The Node's timer heap.
    pub scheduler: &'a mut Scheduler<TimerEvent>,
}

/// State used by the built-in syscall ops, borrowed for one dispatch.
pub struct SyscallCtx<'a> {
    /// Named FIFOs for `Serialize.Enqueue` / `Serialize.Dequeue`.
    pub serialize_queue: &'a mut SerializeQueue,
    /// Named value slots for `Hold.Stash` / `Hold.Flush`.
    pub hold_table: &'a mut HoldTable,
    /// Per-name ring buffers for `Record`.
    pub record_buffer: &'a mut RecordBuffer,
    /// Event-kind subscriptions for `EventSource` ops.
    pub event_source: &'a mut EventSource,
    /// Named counters bumped by `IncrMetric`.
    pub counters: &'a mut MetricCounters,
    /// First-arrival latches of the `Any` syscall.
    pub any_latches: &'a mut AnyLatches,
    /// Per-execution latches of the `DeadlineMatch` syscall.
    pub deadline_match: &'a mut DeadlineMatchLatches,
    /// Random numbers for `RngU64`.
    pub rng: &'a mut dyn RngU64Source,
    /// App-facing outputs emitted during this cycle.
    pub pending_app_events: &'a mut Vec<AppOutput>,
}

impl std::fmt::Debug for SyscallCtx<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SyscallCtx")
            .field("serialize_queue", &self.serialize_queue)
            .field("hold_table", &self.hold_table)
            .field("record_buffer", &self.record_buffer)
            .field("event_source", &self.event_source)
            .field("counters", &self.counters)
            .field("pending_app_events", &self.pending_app_events.len())
            .finish_non_exhaustive()
    }
}

/// Facts about the inbound envelope that started the current execution.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct InboundCtx {
    /// The peer the envelope came from; `None` outside inbound delivery.
    pub src_peer: Option<PeerId>,
    /// The envelope's correlation token, if it was a request or response.
    pub wire_req_id: Option<u64>,
    /// Node time at which the envelope arrived, in nanoseconds.
    pub arrival_ns: Option<u64>,
    /// Deadline budget the sender had left, in nanoseconds.
    pub remaining_deadline_ns: Option<u64>,
}

/// A completion recorded during a dispatch: resumed in the same cycle, or
/// at `due_ns` when a timer matures.
#[derive(Debug)]
pub struct PendingCompletion {
    /// The parked command being completed.
    pub cmd_id: CommandId,
    /// Output values by output value name of the parked op.
    pub results: Vec<(String, Box<dyn SlotValue>)>,
    /// `None`: resume in this cycle. `Some(t)`: hold the results until the
    /// timer scheduled for `t` matures (see
    /// [`RuntimeResourceRef::complete_command_at`]).
    pub due_ns: Option<u64>,
}

/// State scoped to the op being dispatched.
#[derive(Debug)]
pub struct CurrentCallCtx<'a> {
    /// The op being dispatched.
    pub op_ref: OpRef,
    /// The execution the dispatch belongs to.
    pub exec_id: ExecId,
    /// This Node's own peer id.
    pub self_peer: PeerId,
    /// The op's attributes from the graph.
    pub attributes: &'a [Attribute],
    /// The op's metadata entries from the graph.
    pub metadata: &'a [MetadataEntry],
    /// The op's output value names, in declaration order (the names
    /// completions use to address outputs).
    pub outputs: &'a [String],
    /// Inbound-envelope context of the execution.
    pub inbound: InboundCtx,
    /// Completions recorded during this dispatch (drained by the engine).
    pub pending_completions: &'a mut Vec<PendingCompletion>,
    /// The Node's command-id source.
    pub next_command_id: &'a mut IdCounter,
}

/// Read-only view of the Node's other components, by table index and slot name.
///
/// The dispatching component's own entry is `None` during its call.
#[derive(Clone, Copy, Default)]
pub struct ComponentsView<'a> {
    /// Component table indexed by [`ComponentRef::index`]; `None` outside an engine.
    pub instances: Option<&'a [Option<Box<dyn Component>>]>,
    /// Slot name → component; `None` outside an engine.
    pub slots: Option<&'a HashMap<String, ComponentRef>>,
}

impl std::fmt::Debug for ComponentsView<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ComponentsView")
            .field("instances", &self.instances.map(<[_]>::len))
            .field("slots", &self.slots.map(HashMap::len))
            .finish()
    }
}

impl<'a> ComponentsView<'a> {
    /// The component bound at `slot`, unless unbound or currently dispatching.
    pub fn for_slot(&self, slot: &str) -> Option<&'a dyn Component> {
        let cref = self.slots?.get(slot)?;
        self.instances?.get(cref.index())?.as_deref()
    }

    /// The component bound at `slot` as a `&T`, if it is one.
    pub fn for_slot_as<T: Component>(&self, slot: &str) -> Option<&'a T> {
        let any: &dyn std::any::Any = self.for_slot(slot)?;
        any.downcast_ref::<T>()
    }
}

/// Why [`RuntimeResourceRef::dependency`] found no usable component.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DependencyError {
    /// Nothing is bound at the slot (or it is the component asking).
    #[error("no component is bound at slot `{slot}`; bind one when installing the Node")]
    NotBound {
        /// The requested slot.
        slot: String,
    },
    /// A component is bound, but it is not of the requested type.
    #[error("the component at slot `{slot}` is not a `{expected}`")]
    TypeMismatch {
        /// The requested slot.
        slot: String,
        /// The Rust type that was asked for.
        expected: &'static str,
    },
}

impl From<DependencyError> for OpError {
    fn from(err: DependencyError) -> Self {
        let reason = match err {
            DependencyError::NotBound { .. } => "dependency.not_bound",
            DependencyError::TypeMismatch { .. } => "dependency.type_mismatch",
        };
        OpError::new(OpErrorKind::Dependency, reason, err.to_string())
    }
}

/// The Node ran out of command ids (after 2^64 - 1 of them).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the Node's command-id space is exhausted; restart the Node")]
pub struct CommandIdsExhausted;

impl From<CommandIdsExhausted> for OpError {
    fn from(err: CommandIdsExhausted) -> Self {
        OpError::new(
            OpErrorKind::ResourceExhausted,
            "command_id.exhausted",
            err.to_string(),
        )
    }
}

/// An app-facing output produced by `AppEmit` / `AppNotify` ops.
#[derive(Debug)]
pub struct AppOutput {
    /// The execution that produced it.
    pub exec: ExecId,
    /// The op that produced it.
    pub op: OpRef,
    /// Emit (data output) or notify (signal).
    pub kind: AppOutputKind,
    /// The output's name, from the op's attributes.
    pub name: String,
    /// The value.
    pub value: Box<dyn SlotValue>,
}

/// Kind of an [`AppOutput`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum AppOutputKind {
    /// A data output for subscribers.
    Emit,
    /// A notification without data semantics.
    Notify,
}

/// A component-chosen timer kind, handed back when the timer matures.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct ComponentTimerKind(pub u32);

/// What a matured timer means to the engine.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub enum TimerEvent {
    /// Resume the op parked on `cmd` (`After`, `Sleep`).
    Resume {
        /// The parked command.
        cmd: CommandId,
    },
    /// The deadline of the op parked on `cmd` has passed.
    Deadline {
        /// The parked command.
        cmd: CommandId,
    },
    /// A periodic trigger (`Interval`, `Pulse`) of `op` is due.
    Tick {
        /// The trigger op.
        op: OpRef,
    },
    /// A timer a component scheduled for itself.
    Component {
        /// The component that asked.
        component: ComponentRef,
        /// Its own kind tag.
        kind: ComponentTimerKind,
    },
}

/// The resource handle passed to every op dispatch.
pub struct RuntimeResourceRef<'a> {
    /// Per-peer policy and state.
    pub peers: PeerCtx<'a>,
    /// Network state.
    pub net: NetCtx<'a>,
    /// Time and timers.
    pub time: TimeCtx<'a>,
    /// Syscall state.
    pub syscall: SyscallCtx<'a>,
    /// The Node's typed event bus.
    pub bus: &'a mut TypedBus,
    /// The Node's ingress (its completion sink for other threads).
    pub ingress: &'a Arc<IngressQueue>,
    /// Read-only view of sibling components.
    pub components: ComponentsView<'a>,
    /// State of the op being dispatched.
    pub current: CurrentCallCtx<'a>,
}

impl std::fmt::Debug for RuntimeResourceRef<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RuntimeResourceRef")
            .field("current", &self.current)
            .field("now_ns", &self.time.now_ns)
            .finish_non_exhaustive()
    }
}

impl<'a> RuntimeResourceRef<'a> {
    /// This Node's own addresses from the address book (empty if none).
    pub fn local_addresses(&self) -> &[Address] {
        self.peers
            .addresses
            .lookup(self.current.self_peer)
            .unwrap_or(&[])
    }

    /// The component bound at `slot` as a `&T`, with a typed error when it
    /// is unbound or of another type.
    pub fn dependency<T: Component>(&self, slot: &str) -> Result<&'a T, DependencyError> {
        let Some(found) = self.components.for_slot(slot) else {
            return Err(DependencyError::NotBound {
                slot: slot.to_owned(),
            });
        };
        let any: &dyn std::any::Any = found;
        any.downcast_ref::<T>()
            .ok_or_else(|| DependencyError::TypeMismatch {
                slot: slot.to_owned(),
                expected: std::any::type_name::<T>(),
            })
    }

    /// How long to wait for a round trip to `target`, from the most
    /// specific RTT estimate available (edge, site, chain, global), or
    /// `static_default_ns` when there is none.
    pub fn estimate_wire_budget_ns(
        &self,
        target: NodeSiteId,
        chain: Option<ChainContext>,
        static_default_ns: u64,
    ) -> u64 {
        self.net
            .rtt
            .estimate_budget_ns(target, chain, static_default_ns)
    }

    /// The chain this op belongs to, read from its
    /// [`CHAIN_TARGETS_KEY`] / [`CHAIN_HOP_INDEX_KEY`] metadata; `None` when
    /// the op carries no chain targets. A malformed hop index counts as 0.
    pub fn read_chain_context(&self) -> Option<ChainContext> {
        let mut targets = None;
        let mut hop_index = 0;
        for entry in self.current.metadata {
            match entry.key.as_str() {
                CHAIN_TARGETS_KEY => targets = Some(entry.value.as_str()),
                CHAIN_HOP_INDEX_KEY => hop_index = entry.value.parse().unwrap_or(0),
                _ => {}
            }
        }
        targets.map(|targets| ChainContext {
            chain_id: chain_id_from_targets(targets),
            hop_index,
        })
    }

    /// Feeds one measured round trip into every RTT tier it belongs to.
    pub fn observe_wire_round_trip(
        &mut self,
        target: NodeSiteId,
        chain: Option<ChainContext>,
        elapsed_ns: u64,
    ) {
        let now_ns = self.time.now_ns;
        self.net
            .rtt
            .observe_round_trip(target, chain, elapsed_ns, now_ns);
    }

    /// Mints a fresh command id for an op that is about to park.
    pub fn allocate_command_id(&mut self) -> Result<CommandId, CommandIdsExhausted> {
        self.current
            .next_command_id
            .mint()
            .map(CommandId::new)
            .ok_or(CommandIdsExhausted)
    }

    /// Completes `cmd_id` now; the engine resumes its op in this cycle.
    pub fn complete_command(
        &mut self,
        cmd_id: CommandId,
        results: Vec<(String, Box<dyn SlotValue>)>,
    ) {
        self.current.pending_completions.push(PendingCompletion {
            cmd_id,
            results,
            due_ns: None,
        });
    }

    /// Completes `cmd_id` with `results` when the Node's time reaches
    /// `at_ns` (used by `Sleep` and `After`): schedules a
    /// [`TimerEvent::Resume`] and hands the results to the engine, which
    /// holds them until the timer matures. A full timer heap is a typed
    /// [`OpErrorKind::ResourceExhausted`] error and nothing is scheduled.
    pub fn complete_command_at(
        &mut self,
        cmd_id: CommandId,
        at_ns: u64,
        results: Vec<(String, Box<dyn SlotValue>)>,
    ) -> Result<(), OpError> {
        self.time
            .scheduler
            .schedule(at_ns, TimerEvent::Resume { cmd: cmd_id })
            .map_err(|full| {
                OpError::new(
                    OpErrorKind::ResourceExhausted,
                    "timers.full",
                    format!("the Node's timer heap is full ({} timers)", full.capacity),
                )
            })?;
        self.current.pending_completions.push(PendingCompletion {
            cmd_id,
            results,
            due_ns: Some(at_ns),
        });
        Ok(())
    }

    /// Publishes an event on the Node's bus. A user event with a kind in
    /// nodeflow's reserved range is refused with a typed error.
    pub fn publish_bus(&mut self, event: NodeEvent) -> Result<(), ReservedEventKind> {
        self.bus.publish(event)
    }

    /// Mints a command id and returns a handle another thread can complete
    /// it through. Return `DispatchResult::Async(handle.cmd_id())` from the
    /// dispatch and move the handle to the worker.
    pub fn open_completion<R, E>(&mut self) -> Result<CompletionHandle<R, E>, CommandIdsExhausted>
    where
        R: serde::Serialize,
        E: std::fmt::Display,
    {
        let cmd = self.allocate_command_id()?;
        Ok(CompletionHandle::new(cmd, completion_sink(self.ingress)))
    }
}

// ---- snapshot support ---------------------------------------------------
// Used only by the Node's snapshot and restore (`node/snapshot.rs`).

/// The serde-encodable primitives of a [`Framework`], as a Node snapshot
/// captures them. The value holders (hold table, serialize queues, record
/// buffer, outbound envelopes) are captured separately, value by value.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub(crate) struct FrameworkState {
    gate: PeerGate,
    backoff: BackoffTable,
    governor: PeerGovernor,
    addresses: AddressBook,
    backpressure: BackpressureTracker,
    rtt: RttTracker,
    requests: RequestTracker,
    dedup: InboundDedup,
    peer_resolve_failures: Vec<(Option<PeerId>, OpRef)>,
    scheduler: Scheduler<TimerEvent>,
    event_source: EventSource,
    counters: MetricCounters,
    any_latches: AnyLatches,
    deadline_match: DeadlineMatchLatches,
    rng: SeededRng,
}

impl FrameworkState {
    /// Payloads of every live timer, in firing order (for validation).
    pub(crate) fn timer_events(&self) -> Vec<TimerEvent> {
        let mut timers = self.scheduler.clone();
        std::iter::from_fn(|| timers.pop_due(u64::MAX))
            .map(|timer| timer.payload)
            .collect()
    }

    /// Event-source subscriptions (for validation).
    pub(crate) fn event_source(&self) -> &EventSource {
        &self.event_source
    }
}

/// Borrowed value holders of a [`Framework`], for a snapshot.
pub(crate) struct FrameworkHolders<'a> {
    pub hold_table: &'a HoldTable,
    pub serialize_queue: &'a SerializeQueue,
    pub record_buffer: &'a RecordBuffer,
    pub outbound: &'a OutboundQueue<Envelope>,
    /// App outputs not yet handed to the host (empty between polls).
    pub app_outputs: usize,
}

/// Mutable value holders of a [`Framework`], for a restore.
pub(crate) struct FrameworkHoldersMut<'a> {
    pub hold_table: &'a mut HoldTable,
    pub serialize_queue: &'a mut SerializeQueue,
    pub record_buffer: &'a mut RecordBuffer,
    pub outbound: &'a mut OutboundQueue<Envelope>,
}

impl Framework {
    /// A copy of every serde-encodable primitive.
    pub(crate) fn serde_state(&self) -> FrameworkState {
        // Every field is named so that a new primitive cannot be forgotten
        // by snapshots; a comment marks what is captured elsewhere or not.
        let Framework {
            gate: _,
            backoff: _,
            governor: _,
            addresses: _,
            backpressure: _,
            outbound: _,                  // value by value (`holders`)
            outbound_dropped_reported: _, // restarts with the queue's stats
            rtt: _,
            requests: _,
            dedup: _,
            flow: _,
            peer_resolve_failures: _,
            scheduler: _,
            serialize_queue: _, // value by value (`holders`)
            hold_table: _,      // value by value (`holders`)
            record_buffer: _,   // value by value (`holders`)
            event_source: _,
            counters: _,
            any_latches: _,
            deadline_match: _,
            rng: _,
            app_outputs: _, // empty between polls (checked)
        } = self;
        FrameworkState {
            gate: self.gate.clone(),
            backoff: self.backoff.clone(),
            governor: self.governor.clone(),
            addresses: self.addresses.clone(),
            backpressure: self.backpressure.clone(),
            rtt: self.rtt.clone(),
            requests: self.requests.clone(),
            dedup: self.dedup.clone(),
            peer_resolve_failures: self.peer_resolve_failures.clone(),
            scheduler: self.scheduler.clone(),
            event_source: self.event_source.clone(),
            counters: self.counters.clone(),
            any_latches: self.any_latches.clone(),
            deadline_match: self.deadline_match.clone(),
            rng: self.rng.clone(),
        }
    }

    /// Replaces every serde-encodable primitive with `state`.
    pub(crate) fn restore_serde_state(&mut self, state: FrameworkState) {
        self.gate = state.gate;
        self.backoff = state.backoff;
        self.governor = state.governor;
        self.addresses = state.addresses;
        self.backpressure = state.backpressure;
        self.rtt = state.rtt;
        self.requests = state.requests;
        self.dedup = state.dedup;
        self.peer_resolve_failures = state.peer_resolve_failures;
        self.scheduler = state.scheduler;
        self.event_source = state.event_source;
        self.counters = state.counters;
        self.any_latches = state.any_latches;
        self.deadline_match = state.deadline_match;
        self.rng = state.rng;
    }

    /// The value holders, borrowed for a snapshot.
    pub(crate) fn holders(&self) -> FrameworkHolders<'_> {
        FrameworkHolders {
            hold_table: &self.hold_table,
            serialize_queue: &self.serialize_queue,
            record_buffer: &self.record_buffer,
            outbound: &self.outbound,
            app_outputs: self.app_outputs.len(),
        }
    }

    /// The value holders, borrowed mutably for a restore.
    pub(crate) fn holders_mut(&mut self) -> FrameworkHoldersMut<'_> {
        FrameworkHoldersMut {
            hold_table: &mut self.hold_table,
            serialize_queue: &mut self.serialize_queue,
            record_buffer: &mut self.record_buffer,
            outbound: &mut self.outbound,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::budget::ByteBudget;
    use crate::component::{DispatchResult, LocalOpId, OpInputs, OpOutputs};
    use crate::graph::MetadataEntry;
    use crate::ids::{EventKind, SiteId};
    use crate::ingress::{CompletionPayload, IngressConfig, IngressEvent};
    use crate::value::U64Value;

    /// A component that only exists to be looked up.
    #[derive(Debug)]
    struct Backend(u32);
    #[derive(Debug)]
    struct Other;

    impl Component for Backend {
        fn kind(&self) -> &str {
            "compute"
        }
        fn resolve_op(&self, _: &str) -> Option<LocalOpId> {
            None
        }
        fn dispatch_atomic(
            &mut self,
            _: LocalOpId,
            _: &mut RuntimeResourceRef<'_>,
            _: &mut OpInputs<'_>,
            _: &mut OpOutputs<'_>,
        ) -> Result<DispatchResult, OpError> {
            Ok(DispatchResult::Immediate)
        }
    }

    impl Component for Other {
        fn kind(&self) -> &str {
            "other"
        }
        fn resolve_op(&self, _: &str) -> Option<LocalOpId> {
            None
        }
        fn dispatch_atomic(
            &mut self,
            _: LocalOpId,
            _: &mut RuntimeResourceRef<'_>,
            _: &mut OpInputs<'_>,
            _: &mut OpOutputs<'_>,
        ) -> Result<DispatchResult, OpError> {
            Ok(DispatchResult::Immediate)
        }
    }

    /// Everything a handle borrows, owned by the test.
    struct Rig {
        framework: Framework,
        bus: TypedBus,
        ingress: Arc<IngressQueue>,
        completions: Vec<PendingCompletion>,
        ids: IdCounter,
        metadata: Vec<MetadataEntry>,
        table: Vec<Option<Box<dyn Component>>>,
        slots: HashMap<String, ComponentRef>,
    }

    const SELF: PeerId = PeerId::new(7);

    impl Rig {
        fn new() -> Self {
            let budget = ByteBudget::new(1 << 20);
            Self {
                framework: Framework::new(&FrameworkConfig::default()).unwrap(),
                bus: TypedBus::new(16),
                ingress: Arc::new(IngressQueue::new(IngressConfig::default(), budget)),
                completions: Vec::new(),
                ids: IdCounter::starting_at(1),
                metadata: Vec::new(),
                // Slot 1 is "being dispatched": taken out of the table.
                table: vec![Some(Box::new(Backend(42))), None, Some(Box::new(Other))],
                slots: [("compute", 0), ("self", 1), ("other", 2)]
                    .into_iter()
                    .map(|(name, i)| (name.to_owned(), ComponentRef::new(i)))
                    .collect(),
            }
        }

        fn handle(&mut self, now_ns: u64) -> RuntimeResourceRef<'_> {
            let current = CurrentCallCtx {
                op_ref: OpRef::new(SiteId::new(1), 3),
                exec_id: ExecId::new(9),
                self_peer: SELF,
                attributes: &[],
                metadata: &self.metadata,
                outputs: &[],
                inbound: InboundCtx::default(),
                pending_completions: &mut self.completions,
                next_command_id: &mut self.ids,
            };
            let components = ComponentsView {
                instances: Some(&self.table),
                slots: Some(&self.slots),
            };
            self.framework
                .resource_ref(now_ns, &mut self.bus, &self.ingress, components, current)
        }
    }

    #[test]
    fn local_addresses_reads_the_self_entry_of_the_address_book() {
        let mut rig = Rig::new();
        let ctx = rig.handle(0);
        assert!(ctx.local_addresses().is_empty());
        let mine = Address::site(SELF, SiteId::new(1));
        ctx.peers.addresses.insert(SELF, mine.clone()).unwrap();
        ctx.peers
            .addresses
            .insert(PeerId::new(8), Address::peer(PeerId::new(8)))
            .unwrap();
        assert_eq!(ctx.local_addresses(), &[mine]);
    }

    #[test]
    fn dependency_is_typed_and_never_reaches_the_dispatching_component() {
        let mut rig = Rig::new();
        let ctx = rig.handle(0);
        assert_eq!(ctx.dependency::<Backend>("compute").unwrap().0, 42);
        assert_eq!(
            ctx.dependency::<Backend>("other").unwrap_err(),
            DependencyError::TypeMismatch {
                slot: "other".into(),
                expected: std::any::type_name::<Backend>(),
            }
        );
        assert_eq!(
            ctx.dependency::<Backend>("missing").unwrap_err(),
            DependencyError::NotBound {
                slot: "missing".into()
            }
        );
        // The dispatching component's own slot is empty during its call.
        assert!(matches!(
            ctx.dependency::<Backend>("self"),
            Err(DependencyError::NotBound { .. })
        ));
        let as_op_error: OpError = ctx.dependency::<Other>("compute").unwrap_err().into();
        assert_eq!(as_op_error.kind, OpErrorKind::Dependency);
        assert_eq!(as_op_error.reason, "dependency.type_mismatch");
    }

    #[test]
    fn view_outside_an_engine_finds_nothing() {
        let view = ComponentsView::default();
        assert!(view.for_slot("compute").is_none());
        assert!(view.for_slot_as::<Backend>("compute").is_none());
    }

    #[test]
    fn chain_context_comes_from_the_op_metadata() {
        let mut rig = Rig::new();
        assert_eq!(rig.handle(0).read_chain_context(), None);
        rig.metadata = vec![
            MetadataEntry {
                key: CHAIN_TARGETS_KEY.into(),
                value: "a,b,c".into(),
            },
            MetadataEntry {
                key: CHAIN_HOP_INDEX_KEY.into(),
                value: "2".into(),
            },
        ];
        assert_eq!(
            rig.handle(0).read_chain_context(),
            Some(ChainContext {
                chain_id: chain_id_from_targets("a,b,c"),
                hop_index: 2
            })
        );
        rig.metadata[1].value = "not a number".into();
        assert_eq!(rig.handle(0).read_chain_context().unwrap().hop_index, 0);
    }

    #[test]
    fn wire_budget_falls_back_to_static_then_learns_from_round_trips() {
        let mut rig = Rig::new();
        let mut config = FrameworkConfig::default();
        config.rtt.min_budget_ns = 1_000_000;
        rig.framework = Framework::new(&config).unwrap();
        let target = NodeSiteId::new(PeerId::new(2), SiteId::new(1));
        let mut ctx = rig.handle(5_000_000);
        assert_eq!(ctx.estimate_wire_budget_ns(target, None, 777), 777);
        ctx.observe_wire_round_trip(target, None, 10_000_000);
        // First sample: srtt = 10 ms, rttvar = 5 ms, budget = srtt + 4 * rttvar.
        assert_eq!(ctx.estimate_wire_budget_ns(target, None, 777), 30_000_000);
        // The default floor (500 ms) lifts small estimates.
        let mut rig = Rig::new();
        let mut ctx = rig.handle(5_000_000);
        ctx.observe_wire_round_trip(target, None, 10_000_000);
        assert_eq!(ctx.estimate_wire_budget_ns(target, None, 777), 500_000_000);
    }

    #[test]
    fn command_ids_are_minted_in_order_and_exhaustion_is_typed() {
        let mut rig = Rig::new();
        let mut ctx = rig.handle(0);
        assert_eq!(ctx.allocate_command_id().unwrap(), CommandId::new(1));
        assert_eq!(ctx.allocate_command_id().unwrap(), CommandId::new(2));
        rig.ids = IdCounter::starting_at(u64::MAX);
        let err = rig.handle(0).allocate_command_id().unwrap_err();
        assert_eq!(OpError::from(err).kind, OpErrorKind::ResourceExhausted);
    }

    #[test]
    fn same_cycle_completions_are_recorded_for_the_engine() {
        let mut rig = Rig::new();
        let mut ctx = rig.handle(0);
        let cmd = ctx.allocate_command_id().unwrap();
        ctx.complete_command(cmd, vec![("out".into(), Box::new(U64Value(5)))]);
        assert_eq!(rig.completions.len(), 1);
        assert_eq!(rig.completions[0].cmd_id, cmd);
        assert_eq!(rig.completions[0].results[0].0, "out");
    }

    #[test]
    fn bus_publish_goes_through_and_reserved_user_kinds_are_refused() {
        let mut rig = Rig::new();
        let mut ctx = rig.handle(0);
        ctx.publish_bus(NodeEvent::PeerWentDown {
            peer: PeerId::new(3),
        })
        .unwrap();
        let reserved = NodeEvent::App {
            kind: EventKind::new(1),
            value: Box::new(U64Value(1)),
        };
        assert!(ctx.publish_bus(reserved).is_err());
        assert_eq!(rig.bus.len(), 1);
    }

    #[test]
    fn completion_opened_through_the_handle_arrives_from_another_thread() {
        let mut rig = Rig::new();
        let handle = rig.handle(0).open_completion::<u64, String>().unwrap();
        let cmd = handle.cmd_id();
        assert_eq!(cmd, CommandId::new(1));
        // A test-only thread plays the compute pool.
        std::thread::scope(|s| {
            s.spawn(move || handle.complete(&99).unwrap());
        });
        match rig.ingress.try_pop() {
            Some(IngressEvent::Completion {
                cmd: got,
                payload: CompletionPayload::Bytes(bytes),
            }) => {
                assert_eq!(got, cmd);
                assert_eq!(postcard::from_bytes::<u64>(&bytes).unwrap(), 99);
            }
            other => panic!("expected a byte completion, got {other:?}"),
        }
    }

    #[test]
    fn timers_scheduled_through_the_handle_reach_the_framework() {
        let mut rig = Rig::new();
        let ctx = rig.handle(100);
        let at = ctx.time.now_ns + 50;
        ctx.time
            .scheduler
            .schedule(
                at,
                TimerEvent::Resume {
                    cmd: CommandId::new(4),
                },
            )
            .unwrap();
        assert_eq!(rig.framework.scheduler().next_deadline(), Some(150));
    }

    #[test]
    fn timed_completions_schedule_a_resume_and_refuse_when_timers_are_full() {
        let mut rig = Rig::new();
        let mut ctx = rig.handle(1_000);
        let cmd = ctx.allocate_command_id().unwrap();
        ctx.complete_command_at(cmd, 5_000, vec![("out".into(), Box::new(U64Value(1)))])
            .unwrap();
        assert_eq!(rig.completions[0].due_ns, Some(5_000));
        assert_eq!(rig.framework.scheduler().next_deadline(), Some(5_000));
        assert_eq!(
            rig.framework.scheduler().pop_due(5_000).unwrap().payload,
            TimerEvent::Resume { cmd }
        );

        let config = FrameworkConfig {
            scheduler_capacity: 0,
            ..FrameworkConfig::default()
        };
        rig.framework = Framework::new(&config).unwrap();
        rig.completions.clear();
        let mut ctx = rig.handle(1_000);
        let err = ctx.complete_command_at(cmd, 5_000, Vec::new()).unwrap_err();
        assert_eq!(err.kind, OpErrorKind::ResourceExhausted);
        assert!(
            rig.completions.is_empty(),
            "nothing is held for a timer that was refused"
        );
    }
}
