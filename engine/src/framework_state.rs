//! The Node's framework state: every framework primitive of one Node,
//! owned in one [`Framework`] bundle and built from one [`FrameworkConfig`].
//!
//! Invariants:
//! * A dispatch reaches the primitives only through
//!   [`Framework::resource_ref`], which split-borrows each into its own
//!   `&mut` field of a [`RuntimeResourceRef`].
//! * A snapshot names every field of [`Framework`] (see
//!   [`Framework::serde_state`]), so a new primitive cannot be forgotten.

use crate::bus::TypedBus;
use crate::framework::{
    AddressBook, AddressBookConfig, AnyLatches, BackoffConfig, BackoffTable, BackpressureConfig,
    BackpressureTracker, DeadlineMatchLatches, EventSource, EventSourceConfig, FlowConfig,
    FlowControl, GovernorConfig, HoldTable, HoldTableConfig, InboundDedup, LatchConfig,
    MetricCounters, OutboundQueue, PeerGate, PeerGovernor, RecordBuffer, RequestTracker, RttConfig,
    RttConfigError, RttTracker, Scheduler, SeededRng, SerializeQueue, SerializeQueueConfig,
    DEFAULT_DEDUP_WINDOW, DEFAULT_MAX_METRIC_NAMES, DEFAULT_MAX_PENDING_REQUESTS,
    DEFAULT_MAX_RECORD_NAMES, DEFAULT_RECORD_CAPACITY, OUTBOUND_QUEUE_DEFAULT_CAPACITY,
    PEER_GATE_DEFAULT_MAX_NAMES, SCHEDULER_DEFAULT_CAPACITY,
};
use crate::ids::{ExecId, OpRef, PeerId};
use crate::ingress::IngressQueue;
use crate::resource::{
    AppOutput, ComponentsView, CurrentCallCtx, NetCtx, PeerCtx, RuntimeResourceRef, SyscallCtx,
    TimeCtx, TimerEvent,
};
use crate::sync::Arc;
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
    flow: FlowControl,
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
