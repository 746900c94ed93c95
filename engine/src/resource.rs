//! The resource handle every op receives while it runs: [`RuntimeResourceRef`].
//!
//! The engine owns all framework primitives in one [`Framework`] bundle
//! (`framework_state.rs`).
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
    chain_id_from_targets, Address, AddressBook, AnyLatches, BackoffTable, BackpressureTracker,
    ChainContext, DeadlineMatchLatches, EventSource, FlowControl, HoldTable, InboundDedup,
    MetricCounters, OutboundQueue, PeerGate, PeerGovernor, RecordBuffer, RequestTracker,
    RngU64Source, RttTracker, Scheduler, SerializeQueue,
};
#[cfg(doc)]
use crate::framework_state::Framework;
use crate::graph::{Attribute, MetadataEntry};
use crate::ids::{CommandId, ComponentRef, ExecId, IdCounter, NodeSiteId, OpRef, PeerId};
use crate::ingress::IngressQueue;
use crate::sync::Arc;
use crate::value::SlotValue;
use crate::wire::Envelope;

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::budget::ByteBudget;
    use crate::component::{DispatchResult, LocalOpId, OpInputs, OpOutputs};
    use crate::framework_state::{Framework, FrameworkConfig};
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
