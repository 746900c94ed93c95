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
//!
//! # Layout
//! This file holds the [`Node`], its public API and [`Node::poll`] with its
//! phase order; the phases and the rest live beside it, one concern a file:
//! * `builder.rs`: [`NodeConfig`], [`NodeBuilder`], [`BuildError`];
//! * `step.rs`: [`Step`] and its parts, [`NodeStats`], input errors;
//! * `install.rs`: graphs compiled for execution;
//! * `executions.rs`: starting and ending executions, values, the frontier;
//! * `dispatch.rs`: firing a ready op (syscall, component op or `Call`);
//! * `inbound.rs`: the ingress phase (mail, envelopes, inbound load);
//! * `correlation.rs`: wire requests, responses and control-plane calls;
//! * `parking.rs`: completions and failures of parked ops, expiry;
//! * `triggers.rs`: trigger sources, matured timers, bus routing;
//! * `snapshot.rs`: snapshot and restore.

mod builder;
mod correlation;
mod dispatch;
mod executions;
mod flow;
mod inbound;
mod install;
mod parking;
mod snapshot;
mod step;
mod triggers;

use std::collections::{HashMap, VecDeque};

pub use builder::{BuildError, NodeBuilder, NodeConfig};
pub use install::{InstallError, CALL_OP, ONNX_SLOT};
pub use snapshot::{RestoreError, SnapshotError, SNAPSHOT_VERSION};
pub use step::{
    DeliverError, DropReason, ExecOrigin, IdWatermark, InvokeError, NodeStats, SendRefusal, Step,
};

use executions::SitePool;
use install::CompiledGraph;

use crate::budget::{ByteBudget, ByteCharge};
use crate::bus::{AppIngressErrorKind, AppIngressSource, NodeEvent, TypedBus};
use crate::component::Component;
use crate::component::OpError;
use crate::framework::{GovernorError, TimerId};
use crate::framework_state::Framework;
use crate::ids::{
    CommandId, ComponentRef, EventKind, ExecId, IdCounter, Incarnation, OpRef, PeerId, SiteId,
};
use crate::ingress::{IngressEvent, IngressQueue};
use crate::resource::{InboundCtx, PendingCompletion};
use crate::sync::Arc;
use crate::value::{NamedValues, SlotValue, ValueRegistry};
use crate::wire::Envelope;

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
        error: OpError,
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
            credit_envelopes: self.framework.flow().stats().credit_envelopes,
            sends_held: self.framework.flow().stats().held,
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
            || (self.ingress.data_len() > 0 && self.takes_data())
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

    // ---- phase 8, and the reports every phase makes ---------------------

    fn flush_outbound(&mut self) {
        let dropped_before = self.stats.dropped;
        let outbound_dropped = self.framework.take_outbound_dropped();
        if outbound_dropped > 0 {
            self.report_drop(DropReason::OutboundFull, outbound_dropped);
        }
        debug_assert!(self.stats.dropped >= dropped_before);
        self.return_credits(false);
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
