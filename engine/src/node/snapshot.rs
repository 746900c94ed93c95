//! Node snapshot and restore: everything a Node needs to resume, as versioned bytes.
//!
//! [`Node::snapshot`] captures, between polls, the state a Node would carry
//! into its next poll: executions in flight (dense value slots, frontier,
//! parked ops with their deadline timers), timed and ready completions,
//! queued ingress (the mailbox is first moved into the Node's staging
//! queue), framework state (timers, peer tables, RNG, hold/serialize/record
//! values, queued outbound envelopes), bootstrap progress, id counters and
//! each component's own state ([`crate::Component::snapshot_state`]).
//! Code is never captured: [`NodeBuilder::restore`] builds a Node from the
//! same graphs, components and config, then overwrites its state.
//!
//! Format: `[SNAPSHOT_VERSION: u32 LE][FNV-1a 64 of body: u64 LE][body]`,
//! the body being postcard. Values are stored as `(TypeTag, bytes)` through
//! [`SlotValue::encode`] and decoded through the builder's registry.
//!
//! Invariants:
//! * A snapshot never drops state silently: a value without a byte form, a
//!   component that cannot save itself, or undrained bus events / app
//!   outputs make it fail with a typed [`SnapshotError`].
//! * A restore never panics on its input: version, checksum, peer and graph
//!   fingerprint are checked first, then every index in the body is checked
//!   against the installed graphs, and every execution's counters against
//!   the decrements still ahead of them, before anything runs; all failures
//!   are a typed [`RestoreError`].
//! * Byte charges are re-taken from the new Node's budget for the same
//!   amounts, so its budget returns to zero once the restored work drains.
//! * A restored Node's incarnation is the snapshot's plus one; its id
//!   counters continue where the snapshot's stopped, so exec and command ids
//!   match an uninterrupted run.
//!
//! Not captured: [`NodeStats`](super::NodeStats) and the counters of the
//! ingress, bus, byte budget and the three value holders (they restart);
//! the ingress's closed state (a restored mailbox is open); completion
//! handles held by other threads (they still point at the old Node's
//! mailbox; route their results to the new Node's ingress); the per-site
//! buffer pool (a cache).

use std::collections::{HashMap, VecDeque};

use serde::{Deserialize, Serialize};

use super::{
    BuildError, Completion, ControlCall, ExecOrigin, ExecSlot, Execution, Node, NodeBuilder,
    Parked, Ready,
};
use crate::budget::{ByteCharge, CopyInError};
use crate::bus::AppIngressError;
use crate::component::OpError;
use crate::framework::{Address, TimerId};
use crate::framework_state::FrameworkState;
use crate::ids::{CommandId, EventKind, ExecId, IdCounter, Incarnation, OpRef, PeerId, SiteId};
use crate::ingress::{CompletionPayload, IngressEvent};
use crate::resource::{InboundCtx, TimerEvent};
use crate::value::{EncodeError, NamedValues, SlotValue, TypeTag, ValueDecodeError, ValueLimits};
use crate::wire::{Envelope, EnvelopeKind, Fill, FillTarget, Payload};

/// Version of the snapshot layout this build writes and reads.
pub const SNAPSHOT_VERSION: u32 = 1;

/// Header bytes before the body: version (4) and checksum (8).
const HEADER_LEN: usize = 12;

/// Why [`Node::snapshot`] failed. The Node is unchanged except that queued
/// mail was moved to its staging queue (it is still handled in order).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SnapshotError {
    /// A value has no byte form.
    #[error("cannot snapshot {location}: {source}; give the value type a byte encoding")]
    NotEncodable {
        /// Where the value sits (execution and value, op, table entry).
        location: String,
        /// Why the value could not be encoded.
        source: EncodeError,
    },
    /// A component could not save its state.
    #[error("component at slot `{slot}` could not snapshot its state: {error}")]
    Component {
        /// The component's slot.
        slot: String,
        /// What it reported.
        error: OpError,
    },
    /// Work that lives only within a poll is pending.
    #[error("{count} {what} are pending; poll until has_work() is false, then snapshot")]
    Undrained {
        /// What is pending.
        what: &'static str,
        /// How many.
        count: usize,
    },
    /// The body could not be serialized.
    #[error("snapshot could not be serialized: {0}")]
    Encode(String),
}

/// Why [`NodeBuilder::restore`] failed. Nothing was kept.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RestoreError {
    /// The snapshot was written by another snapshot layout.
    #[error("snapshot layout {found} is not the layout {expected} this build reads; restore with the build that wrote it")]
    VersionMismatch {
        /// The version in the snapshot.
        found: u32,
        /// [`SNAPSHOT_VERSION`].
        expected: u32,
    },
    /// The builder's graphs differ from the snapshotted Node's.
    #[error("graph fingerprint {found:#x} does not match the builder's {expected:#x}; install the same graphs in the same order")]
    GraphMismatch {
        /// Fingerprint in the snapshot.
        found: u64,
        /// Fingerprint of the builder's graphs.
        expected: u64,
    },
    /// The snapshot is of another peer's Node.
    #[error("the snapshot is of peer {found}, the builder is for peer {expected}")]
    PeerMismatch {
        /// Peer in the snapshot.
        found: PeerId,
        /// The builder's peer.
        expected: PeerId,
    },
    /// The bytes are truncated, corrupt or inconsistent with the graphs.
    #[error("snapshot bytes are unusable: {0}")]
    Decode(String),
    /// A value could not be decoded through the builder's registry.
    #[error("cannot restore {location}: {source}")]
    Value {
        /// Where the value sits.
        location: String,
        /// Why it could not be decoded.
        source: ValueDecodeError,
    },
    /// A component refused its saved state, or the builder binds no
    /// component at a slot the snapshot has state for.
    #[error("component at slot `{slot}` could not restore its state: {error}")]
    Component {
        /// The component's slot.
        slot: String,
        /// What went wrong.
        error: OpError,
    },
    /// The builder itself is invalid.
    #[error(transparent)]
    Build(BuildError),
    /// The restored state's bytes do not fit the new Node's byte budget.
    #[error("restored state does not fit the byte budget: {0}")]
    Budget(#[from] CopyInError),
}

impl Node {
    /// Captures everything needed to resume this Node, as versioned bytes
    /// for [`NodeBuilder::restore`].
    ///
    /// Call it between polls (after a poll's steps are consumed); queued
    /// mail is first moved off the mailbox into the Node's staging queue,
    /// where it is captured and still handled first, in order.
    ///
    /// Captured: executions in flight (values, frontier, parked ops and
    /// their deadlines), timed and ready completions, queued ingress, every
    /// framework primitive (timers, peer tables, RNG, latches, hold /
    /// serialize / record values, outbound envelopes), bootstrap progress,
    /// trigger subscriptions, id counters, the incarnation and each
    /// component's [`Component::snapshot_state`](crate::Component::snapshot_state).
    /// Not captured: graphs, components' code and the config (the restoring
    /// builder supplies them), [`NodeStats`](super::NodeStats) and the
    /// counters of the mailbox, bus, byte budget and the three value holders
    /// (they restart), whether the mailbox was closed, and completion
    /// handles held by other threads (they still point at this Node's
    /// mailbox: route their results to the restored Node's ingress).
    ///
    /// # Errors
    /// [`SnapshotError::NotEncodable`] names a value without a byte form,
    /// [`SnapshotError::Component`] a component that could not save itself,
    /// [`SnapshotError::Undrained`] bus events or app outputs that a poll
    /// has not routed yet. Nothing is dropped on failure.
    pub fn snapshot(&mut self) -> Result<Vec<u8>, SnapshotError> {
        // Every field is named so that a new one cannot be forgotten here;
        // each comment says how the field is captured or why it is not.
        let Node {
            peer: _,
            config: _,              // supplied by the restoring builder
            graphs: _,              // fingerprinted, supplied by the builder
            components: _,          // state via `snapshot_state`
            slots: _,               // supplied by the builder
            framework: _,           // serde state + value holders
            bus: _,                 // must be empty (checked below)
            ingress: _,             // drained into `staged` below
            budget: _,              // charges re-taken on restore
            registry: _,            // supplied by the builder
            execs: _,               // captured
            free: _,                // captured
            live: _,                // recomputed from `execs`
            frontier: _,            // captured
            parked: _,              // captured
            control_parked: _,      // captured
            deferred: _,            // captured
            completions: _,         // captured
            cmd_ids: _,             // captured
            exec_ids: _,            // captured
            steps: _,               // drained by every poll
            scratch_inputs: _,      // empty between dispatches
            scratch_outputs: _,     // empty between dispatches
            scratch_completions: _, // empty between dispatches
            scratch_indexed: _,     // empty between calls
            staged: _,              // captured
            on_trigger: _,          // captured
            bootstrap_queue: _,     // captured
            bootstrap_live: _,      // captured
            started: _,             // captured
            stats: _,               // not captured: counters restart
            pool: _,                // a cache of free buffers
            incarnation: _,         // captured
        } = self;
        if !self.steps.is_empty() {
            // Steps waiting for the next poll (e.g. after
            // `report_send_refused`) are not captured: poll first.
            return Err(SnapshotError::Undrained {
                what: "steps",
                count: self.steps.len(),
            });
        }
        if !self.bus.is_empty() {
            return Err(SnapshotError::Undrained {
                what: "bus events",
                count: self.bus.len(),
            });
        }
        let holders = self.framework.holders();
        if holders.app_outputs > 0 {
            return Err(SnapshotError::Undrained {
                what: "app outputs",
                count: holders.app_outputs,
            });
        }
        while let Some(event) = self.ingress.try_pop() {
            self.staged.push_back(event);
        }

        let mut slots = Vec::with_capacity(self.execs.len());
        for (index, slot) in self.execs.iter().enumerate() {
            let exec = match &slot.exec {
                Some(exec) => Some(ExecSnap::capture(exec, index)?),
                None => None,
            };
            slots.push(SlotSnap {
                gen: slot.gen,
                exec,
            });
        }
        let mut parked: Vec<ParkedSnap> = self
            .parked
            .iter()
            .map(|(cmd, p)| ParkedSnap {
                cmd: *cmd,
                slot: p.slot,
                gen: p.gen,
                op: p.op,
                timer: p.timer,
            })
            .collect();
        parked.sort_by_key(|p| p.cmd);
        let mut control_parked: Vec<(CommandId, ControlCall)> = self
            .control_parked
            .iter()
            .map(|(cmd, call)| (*cmd, *call))
            .collect();
        control_parked.sort_by_key(|(cmd, _)| *cmd);
        let mut deferred = Vec::with_capacity(self.deferred.len());
        for (cmd, results) in &self.deferred {
            deferred.push((
                *cmd,
                encode_named(results, || format!("timed result of {cmd}"))?,
            ));
        }
        deferred.sort_by_key(|(cmd, _)| *cmd);
        let completions = self
            .completions
            .iter()
            .map(CompletionSnap::capture)
            .collect::<Result<_, _>>()?;
        let staged = self
            .staged
            .iter()
            .map(StagedSnap::capture)
            .collect::<Result<_, _>>()?;

        let holders = self.framework.holders();
        let hold = holders
            .hold_table
            .iter()
            .map(|(name, value)| {
                Ok((
                    name.to_owned(),
                    encode_value(value, || format!("hold slot `{name}`"))?,
                ))
            })
            .collect::<Result<_, SnapshotError>>()?;
        let serialize = holders
            .serialize_queue
            .iter()
            .map(|(name, value)| {
                Ok((
                    name.to_owned(),
                    encode_value(value, || format!("serialize queue `{name}`"))?,
                ))
            })
            .collect::<Result<_, SnapshotError>>()?;
        let mut records = Vec::new();
        for name in holders.record_buffer.names() {
            for recorded in holders.record_buffer.iter(name) {
                let value = encode_value(&*recorded.value, || format!("record `{name}`"))?;
                records.push((name.to_owned(), recorded.recorded_at_ns, value));
            }
        }
        let outbound = holders
            .outbound
            .iter()
            .map(|envelope| EnvelopeSnap::capture(envelope, "outbound envelope"))
            .collect::<Result<_, _>>()?;

        let mut on_trigger: Vec<(EventKind, Vec<OpRef>)> = self
            .on_trigger
            .iter()
            .map(|(kind, ops)| (*kind, ops.clone()))
            .collect();
        on_trigger.sort_by_key(|(kind, _)| *kind);
        let mut components = Vec::with_capacity(self.slots.len());
        for (slot, cref) in &self.slots {
            let Some(Some(component)) = self.components.get(cref.index()) else {
                continue;
            };
            let state = component
                .snapshot_state()
                .map_err(|error| SnapshotError::Component {
                    slot: slot.clone(),
                    error,
                })?;
            components.push((slot.clone(), state));
        }
        components.sort();

        let body = NodeSnapshot {
            peer: self.peer,
            graphs: graph_fingerprint(self),
            incarnation: self.incarnation,
            exec_ids: self.exec_ids,
            cmd_ids: self.cmd_ids,
            slots,
            free: self.free.clone(),
            frontier: self
                .frontier
                .iter()
                .map(|r| (r.slot, r.gen, r.op))
                .collect(),
            parked,
            control_parked,
            deferred,
            completions,
            staged,
            framework: self.framework.serde_state(),
            hold,
            serialize,
            records,
            outbound,
            on_trigger,
            bootstrap_queue: self.bootstrap_queue.iter().copied().collect(),
            bootstrap_live: self.bootstrap_live,
            started: self.started,
            components,
        };
        let body =
            postcard::to_allocvec(&body).map_err(|e| SnapshotError::Encode(e.to_string()))?;
        let mut out = Vec::with_capacity(HEADER_LEN + body.len());
        out.extend_from_slice(&SNAPSHOT_VERSION.to_le_bytes());
        out.extend_from_slice(&fnv1a(FNV_OFFSET, &body).to_le_bytes());
        out.extend_from_slice(&body);
        Ok(out)
    }
}

impl NodeBuilder {
    /// Builds the Node from this builder's graphs, components and config,
    /// then resumes it from `snapshot` (written by [`Node::snapshot`] of a
    /// Node built the same way). The Node's incarnation is the snapshot's
    /// plus one.
    pub fn restore(self, snapshot: &[u8]) -> Result<Node, RestoreError> {
        let body = read_header(snapshot)?;
        let snap: NodeSnapshot =
            postcard::from_bytes(body).map_err(|e| RestoreError::Decode(e.to_string()))?;
        let mut node = self.build().map_err(RestoreError::Build)?;
        if snap.peer != node.peer {
            return Err(RestoreError::PeerMismatch {
                found: snap.peer,
                expected: node.peer,
            });
        }
        let expected = graph_fingerprint(&node);
        if snap.graphs != expected {
            return Err(RestoreError::GraphMismatch {
                found: snap.graphs,
                expected,
            });
        }
        validate(&node, &snap)?;
        node.apply(snap)?;
        Ok(node)
    }
}

impl Node {
    /// Overwrites the freshly built Node's state with a validated snapshot.
    fn apply(&mut self, snap: NodeSnapshot) -> Result<(), RestoreError> {
        let limits = ValueLimits {
            max_value_bytes: usize::MAX,
            ..self.config.values
        };
        let cx = DecodeCx {
            node: self,
            limits: &limits,
        };
        let mut execs = Vec::with_capacity(snap.slots.len());
        let mut live = 0;
        for (index, slot) in snap.slots.into_iter().enumerate() {
            let exec = match slot.exec {
                Some(exec) => {
                    live += 1;
                    Some(exec.restore(&cx, index)?)
                }
                None => None,
            };
            execs.push(ExecSlot {
                gen: slot.gen,
                exec,
            });
        }
        let mut deferred = HashMap::with_capacity(snap.deferred.len());
        for (cmd, results) in snap.deferred {
            deferred.insert(cmd, cx.named(results, || format!("timed result of {cmd}"))?);
        }
        let completions = snap
            .completions
            .into_iter()
            .map(|c| c.restore(&cx))
            .collect::<Result<VecDeque<_>, _>>()?;
        let staged = snap
            .staged
            .into_iter()
            .map(|s| s.restore(&cx))
            .collect::<Result<VecDeque<_>, _>>()?;
        let hold = cx.named(snap.hold, || "hold slot".to_owned())?;
        let serialize = cx.named(snap.serialize, || "serialize queue".to_owned())?;
        let mut records = Vec::with_capacity(snap.records.len());
        for (name, at, value) in snap.records {
            let value = cx.value(value, || format!("record `{name}`"))?;
            records.push((name, at, value));
        }
        let outbound = snap
            .outbound
            .into_iter()
            .map(|e| e.restore(&cx))
            .collect::<Result<Vec<_>, _>>()?;
        let slots = self.slots.clone();
        for (slot, state) in snap.components {
            let component = slots
                .get(&slot)
                .and_then(|cref| self.components.get_mut(cref.index()))
                .and_then(Option::as_mut)
                .ok_or_else(|| RestoreError::Component {
                    slot: slot.clone(),
                    error: OpError::new(
                        crate::component::OpErrorKind::InvalidInput,
                        "snapshot.unbound_slot",
                        "the builder binds no component at this slot",
                    ),
                })?;
            component
                .restore_state(&state)
                .map_err(|error| RestoreError::Component { slot, error })?;
        }

        // Nothing below can fail except budget charges; they are taken last.
        self.framework.restore_serde_state(snap.framework);
        let holders = self.framework.holders_mut();
        for (name, value) in hold {
            // The fresh table holds at most what the old one did under the
            // same config; a refusal (smaller caps) is a decode problem.
            holders
                .hold_table
                .stash(&name, value)
                .map_err(|e| RestoreError::Decode(format!("hold slot `{name}`: {e}")))?;
        }
        for (name, value) in serialize {
            holders
                .serialize_queue
                .enqueue(&name, value)
                .map_err(|e| RestoreError::Decode(format!("serialize queue `{name}`: {e}")))?;
        }
        for (name, at, value) in records {
            holders
                .record_buffer
                .record(&name, value, at)
                .map_err(|e| RestoreError::Decode(format!("record `{name}`: {e}")))?;
        }
        for envelope in outbound {
            holders.outbound.push(envelope);
        }
        self.execs = execs;
        self.free = snap.free;
        self.live = live;
        self.frontier = snap
            .frontier
            .into_iter()
            .map(|(slot, gen, op)| Ready { slot, gen, op })
            .collect();
        self.control_parked = snap.control_parked.into_iter().collect();
        self.parked = snap
            .parked
            .into_iter()
            .map(|p| {
                (
                    p.cmd,
                    Parked {
                        slot: p.slot,
                        gen: p.gen,
                        op: p.op,
                        timer: p.timer,
                    },
                )
            })
            .collect();
        self.deferred = deferred;
        self.completions = completions;
        self.staged = staged;
        self.on_trigger = snap.on_trigger.into_iter().collect();
        self.bootstrap_queue = snap.bootstrap_queue.into_iter().collect();
        self.bootstrap_live = snap.bootstrap_live;
        self.started = snap.started;
        self.exec_ids = snap.exec_ids;
        self.cmd_ids = snap.cmd_ids;
        self.incarnation = snap.incarnation.next();
        Ok(())
    }
}

// ---- format --------------------------------------------------------------

/// The snapshot body.
#[derive(Serialize, Deserialize)]
struct NodeSnapshot {
    peer: PeerId,
    graphs: u64,
    incarnation: Incarnation,
    exec_ids: IdCounter,
    cmd_ids: IdCounter,
    slots: Vec<SlotSnap>,
    free: Vec<u32>,
    frontier: Vec<(u32, u32, u32)>,
    parked: Vec<ParkedSnap>,
    control_parked: Vec<(CommandId, ControlCall)>,
    deferred: Vec<(CommandId, Vec<(String, ValueSnap)>)>,
    completions: Vec<CompletionSnap>,
    staged: Vec<StagedSnap>,
    framework: FrameworkState,
    hold: Vec<(String, ValueSnap)>,
    serialize: Vec<(String, ValueSnap)>,
    records: Vec<(String, u64, ValueSnap)>,
    outbound: Vec<EnvelopeSnap>,
    on_trigger: Vec<(EventKind, Vec<OpRef>)>,
    bootstrap_queue: Vec<SiteId>,
    bootstrap_live: Option<ExecId>,
    started: bool,
    components: Vec<(String, Vec<u8>)>,
}

/// One encoded value.
#[derive(Serialize, Deserialize)]
struct ValueSnap {
    tag: TypeTag,
    bytes: Vec<u8>,
}

#[derive(Serialize, Deserialize)]
struct SlotSnap {
    gen: u32,
    exec: Option<ExecSnap>,
}

#[derive(Serialize, Deserialize)]
struct ParkedSnap {
    cmd: CommandId,
    slot: u32,
    gen: u32,
    op: u32,
    timer: Option<TimerId>,
}

#[derive(Serialize, Deserialize)]
struct ExecSnap {
    id: ExecId,
    site: SiteId,
    origin: OriginSnap,
    parent_cmd: Option<CommandId>,
    inbound: InboundSnap,
    values: Vec<Option<ValueSnap>>,
    reads_left: Vec<u32>,
    missing: Vec<u32>,
    fired: Vec<bool>,
    pending: u32,
    /// Bytes the execution holds against the budget.
    charged: usize,
}

#[derive(Clone, Copy, Serialize, Deserialize)]
enum OriginSnap {
    Invoke,
    Ticket(u64),
    Bootstrap,
    Envelope { from: PeerId },
    Timer { op: OpRef },
    AppEvent { kind: EventKind },
    Bus { kind: EventKind },
    Call { parent: ExecId },
}

#[derive(Clone, Copy, Serialize, Deserialize)]
struct InboundSnap {
    src_peer: Option<PeerId>,
    wire_req_id: Option<u64>,
    arrival_ns: Option<u64>,
    remaining_deadline_ns: Option<u64>,
}

#[derive(Serialize, Deserialize)]
enum CompletionSnap {
    Values {
        cmd: CommandId,
        results: Vec<(String, ValueSnap)>,
        charged: Option<usize>,
    },
    Failed {
        cmd: CommandId,
        detail: String,
    },
}

#[derive(Serialize, Deserialize)]
enum StagedSnap {
    CompletionBytes {
        cmd: CommandId,
        bytes: Vec<u8>,
    },
    CompletionValues {
        cmd: CommandId,
        values: Vec<(String, ValueSnap)>,
        charged: usize,
    },
    CompletionFailed {
        cmd: CommandId,
        detail: String,
    },
    IngressError(AppIngressError),
    Wake,
    Shutdown,
    Envelope(EnvelopeSnap),
    EnvelopeBytes(Vec<u8>),
    AppEvent {
        kind: EventKind,
        value: ValueSnap,
    },
    Invoke {
        site: SiteId,
        inputs: Vec<(String, ValueSnap)>,
        ticket: u64,
    },
}

#[derive(Serialize, Deserialize)]
struct EnvelopeSnap {
    schema: u16,
    src: PeerId,
    dst: PeerId,
    kind: KindSnap,
    wire_req_id: Option<u64>,
    remaining_deadline_ns: Option<u64>,
    reply_to: Vec<Address>,
    fills: Vec<FillSnap>,
}

#[derive(Clone, Copy, Serialize, Deserialize)]
enum KindSnap {
    OneWay,
    Request,
    Response,
    BackoffNotice { retry_after_ns: u64 },
    BackoffClear,
}

#[derive(Serialize, Deserialize)]
struct FillSnap {
    target: TargetSnap,
    /// `true`: a live value (restored live); `false`: already encoded.
    live: bool,
    value: ValueSnap,
}

#[derive(Serialize, Deserialize)]
enum TargetSnap {
    Site {
        site: SiteId,
        input: String,
    },
    ComponentOp {
        component: crate::ids::ComponentRef,
        op: String,
    },
    Response,
}

// ---- capture -------------------------------------------------------------

fn encode_value(
    value: &dyn SlotValue,
    location: impl FnOnce() -> String,
) -> Result<ValueSnap, SnapshotError> {
    let mut bytes = Vec::new();
    match value.encode(&mut bytes) {
        Ok(()) => Ok(ValueSnap {
            tag: value.type_tag(),
            bytes,
        }),
        Err(source) => Err(SnapshotError::NotEncodable {
            location: location(),
            source,
        }),
    }
}

fn encode_named(
    values: &[(String, Box<dyn SlotValue>)],
    location: impl Fn() -> String,
) -> Result<Vec<(String, ValueSnap)>, SnapshotError> {
    values
        .iter()
        .map(|(name, value)| {
            Ok((
                name.clone(),
                encode_value(&**value, || format!("{}, `{name}`", location()))?,
            ))
        })
        .collect()
}

fn charged(charges: &[ByteCharge]) -> usize {
    charges.iter().map(ByteCharge::bytes).sum()
}

impl ExecSnap {
    fn capture(exec: &Execution, slot: usize) -> Result<Self, SnapshotError> {
        let values = exec
            .values
            .iter()
            .enumerate()
            .map(|(index, value)| {
                value
                    .as_deref()
                    .map(|v| {
                        encode_value(v, || {
                            format!("value {index} of execution {} (slot {slot})", exec.id)
                        })
                    })
                    .transpose()
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            id: exec.id,
            site: exec.site,
            origin: exec.origin.into(),
            parent_cmd: exec.parent_cmd,
            inbound: InboundSnap {
                src_peer: exec.inbound.src_peer,
                wire_req_id: exec.inbound.wire_req_id,
                arrival_ns: exec.inbound.arrival_ns,
                remaining_deadline_ns: exec.inbound.remaining_deadline_ns,
            },
            values,
            reads_left: exec.reads_left.clone(),
            missing: exec.missing.clone(),
            fired: exec.fired.clone(),
            pending: exec.pending,
            charged: charged(&exec.charges),
        })
    }
}

impl From<ExecOrigin> for OriginSnap {
    fn from(origin: ExecOrigin) -> Self {
        match origin {
            ExecOrigin::Invoke => Self::Invoke,
            ExecOrigin::Ticket(t) => Self::Ticket(t),
            ExecOrigin::Bootstrap => Self::Bootstrap,
            ExecOrigin::Envelope { from } => Self::Envelope { from },
            ExecOrigin::Timer { op } => Self::Timer { op },
            ExecOrigin::AppEvent { kind } => Self::AppEvent { kind },
            ExecOrigin::Bus { kind } => Self::Bus { kind },
            ExecOrigin::Call { parent } => Self::Call { parent },
        }
    }
}

impl From<OriginSnap> for ExecOrigin {
    fn from(origin: OriginSnap) -> Self {
        match origin {
            OriginSnap::Invoke => Self::Invoke,
            OriginSnap::Ticket(t) => Self::Ticket(t),
            OriginSnap::Bootstrap => Self::Bootstrap,
            OriginSnap::Envelope { from } => Self::Envelope { from },
            OriginSnap::Timer { op } => Self::Timer { op },
            OriginSnap::AppEvent { kind } => Self::AppEvent { kind },
            OriginSnap::Bus { kind } => Self::Bus { kind },
            OriginSnap::Call { parent } => Self::Call { parent },
        }
    }
}

impl CompletionSnap {
    fn capture(completion: &Completion) -> Result<Self, SnapshotError> {
        Ok(match completion {
            Completion::Values {
                cmd,
                results,
                charge,
            } => Self::Values {
                cmd: *cmd,
                results: encode_named(results, || format!("result of {cmd}"))?,
                charged: charge.as_ref().map(ByteCharge::bytes),
            },
            Completion::Failed { cmd, detail } => Self::Failed {
                cmd: *cmd,
                detail: detail.clone(),
            },
        })
    }
}

impl StagedSnap {
    fn capture(event: &IngressEvent) -> Result<Self, SnapshotError> {
        Ok(match event {
            IngressEvent::Completion { cmd, payload } => match payload {
                CompletionPayload::Bytes(bytes) => Self::CompletionBytes {
                    cmd: *cmd,
                    bytes: bytes.as_slice().to_vec(),
                },
                CompletionPayload::Values { values, charge } => Self::CompletionValues {
                    cmd: *cmd,
                    values: encode_named(values, || format!("queued result of {cmd}"))?,
                    charged: charge.bytes(),
                },
            },
            IngressEvent::CompletionFailed { cmd, detail } => Self::CompletionFailed {
                cmd: *cmd,
                detail: detail.clone(),
            },
            IngressEvent::IngressError(error) => Self::IngressError(error.clone()),
            IngressEvent::Wake => Self::Wake,
            IngressEvent::Shutdown => Self::Shutdown,
            IngressEvent::Envelope(envelope) => {
                Self::Envelope(EnvelopeSnap::capture(envelope, "queued envelope")?)
            }
            IngressEvent::EnvelopeBytes(bytes) => Self::EnvelopeBytes(bytes.as_slice().to_vec()),
            IngressEvent::AppEvent { kind, value } => Self::AppEvent {
                kind: *kind,
                value: encode_value(&**value, || format!("queued app event of kind {kind}"))?,
            },
            IngressEvent::Invoke {
                site,
                inputs,
                ticket,
            } => Self::Invoke {
                site: *site,
                inputs: encode_named(inputs, || format!("queued invoke of {site}"))?,
                ticket: *ticket,
            },
        })
    }
}

impl EnvelopeSnap {
    fn capture(envelope: &Envelope, what: &str) -> Result<Self, SnapshotError> {
        let kind = match envelope.kind {
            EnvelopeKind::OneWay => KindSnap::OneWay,
            EnvelopeKind::Request => KindSnap::Request,
            EnvelopeKind::Response => KindSnap::Response,
            EnvelopeKind::BackoffNotice { retry_after_ns } => {
                KindSnap::BackoffNotice { retry_after_ns }
            }
            EnvelopeKind::BackoffClear => KindSnap::BackoffClear,
        };
        let mut fills = Vec::with_capacity(envelope.fills.len());
        for (index, fill) in envelope.fills.iter().enumerate() {
            let target = match &fill.target {
                FillTarget::Site { site, input } => TargetSnap::Site {
                    site: *site,
                    input: input.clone(),
                },
                FillTarget::ComponentOp { component, op } => TargetSnap::ComponentOp {
                    component: *component,
                    op: op.clone(),
                },
                FillTarget::Response => TargetSnap::Response,
            };
            let (live, value) = match &fill.payload {
                Payload::Encoded { tag, bytes } => (
                    false,
                    ValueSnap {
                        tag: *tag,
                        bytes: bytes.clone(),
                    },
                ),
                Payload::Value(value) => (
                    true,
                    encode_value(&**value, || {
                        format!("fill {index} of {what} from {}", envelope.src)
                    })?,
                ),
            };
            fills.push(FillSnap {
                target,
                live,
                value,
            });
        }
        Ok(Self {
            schema: envelope.schema,
            src: envelope.src,
            dst: envelope.dst,
            kind,
            wire_req_id: envelope.wire_req_id,
            remaining_deadline_ns: envelope.remaining_deadline_ns,
            reply_to: envelope.reply_to.clone(),
            fills,
        })
    }
}

// ---- restore -------------------------------------------------------------

/// What decoding needs: the new Node's registry, budget and caps.
struct DecodeCx<'a> {
    node: &'a Node,
    limits: &'a ValueLimits,
}

impl DecodeCx<'_> {
    fn value(
        &self,
        snap: ValueSnap,
        location: impl FnOnce() -> String,
    ) -> Result<Box<dyn SlotValue>, RestoreError> {
        self.node
            .registry
            .decode(snap.tag, &snap.bytes, self.limits)
            .map_err(|source| RestoreError::Value {
                location: location(),
                source,
            })
    }

    fn named(
        &self,
        values: Vec<(String, ValueSnap)>,
        location: impl Fn() -> String,
    ) -> Result<NamedValues, RestoreError> {
        values
            .into_iter()
            .map(|(name, value)| {
                let value = self.value(value, || format!("{}, `{name}`", location()))?;
                Ok((name, value))
            })
            .collect()
    }

    fn charge(&self, bytes: usize) -> Result<Option<ByteCharge>, RestoreError> {
        if bytes == 0 {
            return Ok(None);
        }
        let charge = self
            .node
            .budget
            .try_charge(bytes)
            .map_err(CopyInError::from)?;
        Ok(Some(charge))
    }
}

impl ExecSnap {
    fn restore(self, cx: &DecodeCx<'_>, slot: usize) -> Result<Execution, RestoreError> {
        let id = self.id;
        let mut values = Vec::with_capacity(self.values.len());
        for (index, value) in self.values.into_iter().enumerate() {
            values.push(
                value
                    .map(|v| {
                        cx.value(v, || {
                            format!("value {index} of execution {id} (slot {slot})")
                        })
                    })
                    .transpose()?,
            );
        }
        Ok(Execution {
            id,
            site: self.site,
            origin: self.origin.into(),
            parent_cmd: self.parent_cmd,
            inbound: InboundCtx {
                src_peer: self.inbound.src_peer,
                wire_req_id: self.inbound.wire_req_id,
                arrival_ns: self.inbound.arrival_ns,
                remaining_deadline_ns: self.inbound.remaining_deadline_ns,
            },
            values,
            reads_left: self.reads_left,
            missing: self.missing,
            fired: self.fired,
            pending: self.pending,
            charges: cx.charge(self.charged)?.into_iter().collect(),
        })
    }
}

impl CompletionSnap {
    fn restore(self, cx: &DecodeCx<'_>) -> Result<Completion, RestoreError> {
        Ok(match self {
            Self::Values {
                cmd,
                results,
                charged,
            } => Completion::Values {
                cmd,
                results: cx.named(results, || format!("result of {cmd}"))?,
                charge: match charged {
                    Some(bytes) => cx.charge(bytes)?,
                    None => None,
                },
            },
            Self::Failed { cmd, detail } => Completion::Failed { cmd, detail },
        })
    }
}

impl StagedSnap {
    fn restore(self, cx: &DecodeCx<'_>) -> Result<IngressEvent, RestoreError> {
        Ok(match self {
            Self::CompletionBytes { cmd, bytes } => IngressEvent::Completion {
                cmd,
                payload: CompletionPayload::Bytes(cx.node.budget.copy_in(&bytes, bytes.len())?),
            },
            Self::CompletionValues {
                cmd,
                values,
                charged,
            } => {
                let values = cx.named(values, || format!("queued result of {cmd}"))?;
                let charge = cx
                    .node
                    .budget
                    .try_charge(charged)
                    .map_err(CopyInError::from)?;
                IngressEvent::Completion {
                    cmd,
                    payload: CompletionPayload::Values { values, charge },
                }
            }
            Self::CompletionFailed { cmd, detail } => {
                IngressEvent::CompletionFailed { cmd, detail }
            }
            Self::IngressError(error) => IngressEvent::IngressError(error),
            Self::Wake => IngressEvent::Wake,
            Self::Shutdown => IngressEvent::Shutdown,
            Self::Envelope(envelope) => IngressEvent::Envelope(envelope.restore(cx)?),
            Self::EnvelopeBytes(bytes) => IngressEvent::EnvelopeBytes(
                cx.node
                    .budget
                    .copy_in(&bytes, cx.node.config.wire.max_envelope_bytes)?,
            ),
            Self::AppEvent { kind, value } => IngressEvent::AppEvent {
                kind,
                value: cx.value(value, || format!("queued app event of kind {kind}"))?,
            },
            Self::Invoke {
                site,
                inputs,
                ticket,
            } => IngressEvent::Invoke {
                site,
                inputs: cx.named(inputs, || format!("queued invoke of {site}"))?,
                ticket,
            },
        })
    }
}

impl EnvelopeSnap {
    fn restore(self, cx: &DecodeCx<'_>) -> Result<Envelope, RestoreError> {
        let kind = match self.kind {
            KindSnap::OneWay => EnvelopeKind::OneWay,
            KindSnap::Request => EnvelopeKind::Request,
            KindSnap::Response => EnvelopeKind::Response,
            KindSnap::BackoffNotice { retry_after_ns } => {
                EnvelopeKind::BackoffNotice { retry_after_ns }
            }
            KindSnap::BackoffClear => EnvelopeKind::BackoffClear,
        };
        let src = self.src;
        let mut fills = Vec::with_capacity(self.fills.len());
        for (index, fill) in self.fills.into_iter().enumerate() {
            let target = match fill.target {
                TargetSnap::Site { site, input } => FillTarget::Site { site, input },
                TargetSnap::ComponentOp { component, op } => {
                    FillTarget::ComponentOp { component, op }
                }
                TargetSnap::Response => FillTarget::Response,
            };
            let payload = if fill.live {
                Payload::Value(cx.value(fill.value, || {
                    format!("fill {index} of an envelope from {src}")
                })?)
            } else {
                Payload::Encoded {
                    tag: fill.value.tag,
                    bytes: fill.value.bytes,
                }
            };
            fills.push(Fill { target, payload });
        }
        Ok(Envelope {
            schema: self.schema,
            src,
            dst: self.dst,
            kind,
            wire_req_id: self.wire_req_id,
            remaining_deadline_ns: self.remaining_deadline_ns,
            reply_to: self.reply_to,
            fills,
        })
    }
}

/// Checks the header and returns the body.
fn read_header(bytes: &[u8]) -> Result<&[u8], RestoreError> {
    let (Some(version), Some(checksum)) = (bytes.get(..4), bytes.get(4..HEADER_LEN)) else {
        return Err(RestoreError::Decode(format!(
            "{} bytes are shorter than the {HEADER_LEN}-byte header",
            bytes.len()
        )));
    };
    let version = u32::from_le_bytes(version.try_into().expect("slice of 4 bytes"));
    if version != SNAPSHOT_VERSION {
        return Err(RestoreError::VersionMismatch {
            found: version,
            expected: SNAPSHOT_VERSION,
        });
    }
    let checksum = u64::from_le_bytes(checksum.try_into().expect("slice of 8 bytes"));
    let body = &bytes[HEADER_LEN..];
    if fnv1a(FNV_OFFSET, body) != checksum {
        return Err(RestoreError::Decode(
            "checksum mismatch: the bytes are truncated or corrupt".to_owned(),
        ));
    }
    Ok(body)
}

/// Checks every index in the body against the installed graphs, so that
/// running the restored Node cannot index out of bounds or underflow a count.
fn validate(node: &Node, snap: &NodeSnapshot) -> Result<(), RestoreError> {
    let bad = |what: String| Err(RestoreError::Decode(what));
    let site_ok = |site: SiteId| (site.as_u32() as usize) < node.graphs.len();
    let op_ok = |op: OpRef| {
        node.graphs
            .get(op.site.as_u32() as usize)
            .is_some_and(|g| (op.index as usize) < g.topo.op_count())
    };
    // Per live slot: frontier entries plus parked ops that refer to it.
    let mut refs = vec![0u64; snap.slots.len()];
    let mut refer = |slot: u32, gen: u32, op: u32, what: &str| -> Result<(), RestoreError> {
        let Some(SlotSnap {
            gen: g,
            exec: Some(exec),
        }) = snap.slots.get(slot as usize)
        else {
            return bad(format!("{what} refers to empty slot {slot}"));
        };
        let ops = node
            .graphs
            .get(exec.site.as_u32() as usize)
            .map_or(0, |graph| graph.topo.op_count());
        if *g != gen || op as usize >= ops {
            return bad(format!("{what} refers to a stale slot or a missing op"));
        }
        refs[slot as usize] += 1;
        Ok(())
    };
    for &(slot, gen, op) in &snap.frontier {
        if snap
            .slots
            .get(slot as usize)
            .is_some_and(|s| s.exec.is_some() && s.gen == gen)
        {
            refer(slot, gen, op, "a frontier entry")?;
        }
    }
    for parked in &snap.parked {
        refer(parked.slot, parked.gen, parked.op, "a parked op")?;
    }
    for (index, slot) in snap.slots.iter().enumerate() {
        let Some(exec) = &slot.exec else { continue };
        if !site_ok(exec.site) {
            return bad(format!("execution {} runs unknown {}", exec.id, exec.site));
        }
        let graph = &node.graphs[exec.site.as_u32() as usize];
        let (values, ops) = (graph.topo.value_count(), graph.topo.op_count());
        if exec.values.len() != values
            || exec.reads_left.len() != values
            || exec.missing.len() != ops
            || exec.fired.len() != ops
        {
            return bad(format!("execution {} does not fit its graph", exec.id));
        }
        if u64::from(exec.pending) != refs[index] {
            return bad(format!(
                "execution {} counts {} pending ops, the snapshot holds {}",
                exec.id, exec.pending, refs[index]
            ));
        }
        if !counts_ok(graph, exec, index, &snap.parked) {
            return bad(format!("execution {} has impossible counts", exec.id));
        }
        if let OriginSnap::Timer { op } = exec.origin {
            if !op_ok(op) {
                return bad(format!("execution {} names unknown op {op}", exec.id));
            }
        }
    }
    if snap.free.iter().any(|&f| {
        snap.slots
            .get(f as usize)
            .is_none_or(|slot| slot.exec.is_some())
    }) {
        return bad("the free list names a slot in use".to_owned());
    }
    let free_slots = snap.slots.iter().filter(|s| s.exec.is_none()).count();
    if free_slots != snap.free.len() {
        return bad("the free list does not match the empty slots".to_owned());
    }
    for (_, ops) in &snap.on_trigger {
        if !ops.iter().all(|op| op_ok(*op)) {
            return bad("an app-event trigger names an unknown op".to_owned());
        }
    }
    let events = snap.framework.event_source();
    for kind in events.kinds() {
        if !events.subscribers(kind).iter().all(|op| op_ok(*op)) {
            return bad("a bus subscription names an unknown op".to_owned());
        }
    }
    for timer in snap.framework.timer_events() {
        if let TimerEvent::Tick { op } = timer {
            if !op_ok(op) {
                return bad(format!("a timer ticks unknown op {op}"));
            }
        }
    }
    if !snap.bootstrap_queue.iter().all(|s| site_ok(*s)) {
        return bad("the bootstrap queue names an unknown site".to_owned());
    }
    Ok(())
}

/// Whether an execution's counters can absorb every future decrement:
/// each value keeps a read for every port of an op that has not fired, and
/// each op still misses every distinct input whose producer has not fired
/// or is parked. Counts within these bounds never underflow.
fn counts_ok(
    graph: &super::install::CompiledGraph,
    exec: &ExecSnap,
    slot: usize,
    parked: &[ParkedSnap],
) -> bool {
    let ops = exec.fired.len();
    let mut unwritten = vec![false; exec.values.len()];
    for op in 0..ops {
        let parked_here = parked
            .iter()
            .any(|p| p.slot as usize == slot && p.op as usize == op);
        if !exec.fired[op] || parked_here {
            for value in graph.topo.op_outputs(op as u32).iter().flatten() {
                unwritten[value.index()] = true;
            }
        }
    }
    let mut future_reads = vec![0u32; exec.values.len()];
    for op in 0..ops {
        let inputs = graph.topo.op_inputs(op as u32);
        if !exec.fired[op] {
            for value in inputs.iter().flatten() {
                future_reads[value.index()] += 1;
            }
        }
        let mut waiting: Vec<usize> = inputs
            .iter()
            .flatten()
            .map(|value| value.index())
            .filter(|&value| unwritten[value])
            .collect();
        waiting.sort_unstable();
        waiting.dedup();
        if (exec.missing[op] as usize) < waiting.len() {
            return false;
        }
    }
    exec.reads_left
        .iter()
        .zip(&future_reads)
        .all(|(left, needed)| left >= needed)
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

fn fnv1a(mut hash: u64, bytes: &[u8]) -> u64 {
    for &byte in bytes {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(FNV_PRIME);
    }
    hash
}

/// FNV-1a 64 over each installed graph's postcard form and bootstrap flag,
/// in site order.
fn graph_fingerprint(node: &Node) -> u64 {
    node.graphs.iter().fold(FNV_OFFSET, |hash, graph| {
        // A graph is plain data; postcard cannot fail on it. An empty form
        // would still separate graphs by the flag byte below.
        let bytes = postcard::to_allocvec(&graph.graph).unwrap_or_default();
        fnv1a(fnv1a(hash, &bytes), &[u8::from(graph.bootstrap)])
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::bus::NodeEvent;
    use crate::component::{
        Component, DispatchResult, LocalOpId, OpErrorKind, OpInputs, OpOutputs,
    };
    use crate::graph::{Graph, GraphBuilder};
    use crate::resource::RuntimeResourceRef;
    use crate::value::U64Value;

    /// Counts its firings; the count is its snapshot state.
    #[derive(Default)]
    struct Counter {
        count: u64,
    }

    impl Component for Counter {
        fn kind(&self) -> &str {
            "counter"
        }

        fn resolve_op(&self, op_type: &str) -> Option<LocalOpId> {
            (op_type == "Inc").then_some(LocalOpId(0))
        }

        fn dispatch_atomic(
            &mut self,
            _op: LocalOpId,
            _ctx: &mut RuntimeResourceRef<'_>,
            _inputs: &mut OpInputs<'_>,
            outputs: &mut OpOutputs<'_>,
        ) -> Result<DispatchResult, OpError> {
            self.count += 1;
            outputs.push(Box::new(U64Value(self.count)))?;
            Ok(DispatchResult::Immediate)
        }

        fn snapshot_state(&self) -> Result<Vec<u8>, OpError> {
            Ok(self.count.to_le_bytes().to_vec())
        }

        fn restore_state(&mut self, bytes: &[u8]) -> Result<(), OpError> {
            let raw: [u8; 8] = bytes.try_into().map_err(|_| {
                OpError::new(OpErrorKind::InvalidInput, "counter.state", "need 8 bytes")
            })?;
            self.count = u64::from_le_bytes(raw);
            Ok(())
        }
    }

    /// A value with no byte form.
    #[derive(Clone, Debug, PartialEq)]
    struct Opaque;

    impl SlotValue for Opaque {
        fn type_tag(&self) -> TypeTag {
            TypeTag::new(TypeTag::USER_MIN + 7)
        }
        fn clone_value(&self) -> Box<dyn SlotValue> {
            Box::new(self.clone())
        }
        fn encode(&self, _out: &mut Vec<u8>) -> Result<(), EncodeError> {
            Err(EncodeError::NotEncodable {
                type_name: "Opaque",
                reason: "a local handle".to_owned(),
            })
        }
        fn eq_value(&self, other: &dyn SlotValue) -> bool {
            other.is::<Opaque>()
        }
    }

    /// `x -> Inc -> Sleep(1000) -> PassThrough -> y`.
    fn graph(name: &str) -> Graph {
        let mut b = GraphBuilder::new(name);
        let x = b.input("x");
        let n = b.op("Inc", [x]).domain("c").output();
        let y = b
            .syscall("Sleep", [n])
            .attr("duration_ns", 1_000i64)
            .output();
        let y = b.syscall("PassThrough", [y]).output();
        b.output(y, "y");
        b.build().unwrap()
    }

    fn builder(peer: u64, name: &str) -> NodeBuilder {
        Node::builder(PeerId::new(peer))
            .component("c", Box::<Counter>::default())
            .graph(graph(name))
    }

    /// A Node with one execution parked in `Sleep`.
    fn parked_node() -> Node {
        let mut node = builder(1, "g").build().unwrap();
        node.invoke(SiteId::new(0), vec![("x".into(), Box::new(U64Value(5)))])
            .unwrap();
        while node.has_work() {
            node.poll(0).for_each(drop);
        }
        assert_eq!(node.parked.len(), 1);
        node
    }

    fn finished_values(node: &mut Node, now_ns: u64) -> Vec<(ExecId, Option<u64>)> {
        let mut out = Vec::new();
        loop {
            for step in node.poll(now_ns) {
                if let super::super::Step::ExecFinished { exec, outputs, .. } = step {
                    let value = outputs
                        .first()
                        .and_then(|(_, v)| v.downcast_ref::<U64Value>())
                        .map(|v| v.0);
                    out.push((exec, value));
                }
            }
            if !node.has_work() {
                return out;
            }
        }
    }

    #[test]
    fn a_parked_execution_and_component_state_survive_a_round_trip() {
        let mut node = parked_node();
        let bytes = node.snapshot().unwrap();
        let mut restored = builder(1, "g").restore(&bytes).unwrap();
        assert_eq!(restored.incarnation(), Incarnation::new(1));
        assert_eq!(restored.stats().parked, 1);
        assert_eq!(restored.next_deadline(), node.next_deadline());
        let a = finished_values(&mut node, 1_000);
        let b = finished_values(&mut restored, 1_000);
        assert_eq!(a, b);
        assert_eq!(b.len(), 1);
        assert_eq!(b[0].1, Some(1));
        // The component's counter continues from the snapshot.
        restored
            .invoke(SiteId::new(0), vec![("x".into(), Box::new(U64Value(1)))])
            .unwrap();
        finished_values(&mut restored, 2_000);
        assert_eq!(finished_values(&mut restored, 3_000)[0].1, Some(2));
        assert_eq!(restored.budget().in_use(), 0);
    }

    #[test]
    fn each_restore_bumps_the_incarnation() {
        let mut node = parked_node();
        let mut once = builder(1, "g").restore(&node.snapshot().unwrap()).unwrap();
        let twice = builder(1, "g").restore(&once.snapshot().unwrap()).unwrap();
        assert_eq!(node.incarnation(), Incarnation::new(0));
        assert_eq!(twice.incarnation(), Incarnation::new(2));
    }

    #[test]
    fn another_version_is_a_typed_mismatch() {
        let mut bytes = parked_node().snapshot().unwrap();
        bytes[..4].copy_from_slice(&(SNAPSHOT_VERSION + 1).to_le_bytes());
        let err = builder(1, "g").restore(&bytes).unwrap_err();
        assert!(matches!(
            err,
            RestoreError::VersionMismatch { found, expected }
                if found == SNAPSHOT_VERSION + 1 && expected == SNAPSHOT_VERSION
        ));
    }

    #[test]
    fn other_graphs_or_another_peer_are_refused() {
        let bytes = parked_node().snapshot().unwrap();
        let err = builder(1, "renamed").restore(&bytes).unwrap_err();
        assert!(
            matches!(err, RestoreError::GraphMismatch { found, expected } if found != expected)
        );
        let err = builder(2, "g").restore(&bytes).unwrap_err();
        assert!(matches!(
            err,
            RestoreError::PeerMismatch { found, expected }
                if found == PeerId::new(1) && expected == PeerId::new(2)
        ));
    }

    #[test]
    fn truncated_or_corrupt_bytes_are_typed_errors() {
        let bytes = parked_node().snapshot().unwrap();
        for len in 0..bytes.len() {
            let err = builder(1, "g").restore(&bytes[..len]).unwrap_err();
            assert!(
                matches!(err, RestoreError::Decode(_)),
                "prefix {len}: {err}"
            );
        }
        let mut flipped = bytes.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 0xff;
        assert!(matches!(
            builder(1, "g").restore(&flipped),
            Err(RestoreError::Decode(_))
        ));
        // Garbage behind a valid header and checksum fails to decode.
        let garbage: Vec<u8> = (0..200u32).map(|i| (i * 37 % 251) as u8).collect();
        let mut forged = SNAPSHOT_VERSION.to_le_bytes().to_vec();
        forged.extend_from_slice(&fnv1a(FNV_OFFSET, &garbage).to_le_bytes());
        forged.extend_from_slice(&garbage);
        assert!(matches!(
            builder(1, "g").restore(&forged),
            Err(RestoreError::Decode(_))
        ));
    }

    /// Re-encodes `bytes` with `edit` applied to the body.
    fn forge(bytes: &[u8], edit: impl FnOnce(&mut NodeSnapshot)) -> Vec<u8> {
        let mut snap: NodeSnapshot = postcard::from_bytes(&bytes[HEADER_LEN..]).unwrap();
        edit(&mut snap);
        let body = postcard::to_allocvec(&snap).unwrap();
        let mut out = SNAPSHOT_VERSION.to_le_bytes().to_vec();
        out.extend_from_slice(&fnv1a(FNV_OFFSET, &body).to_le_bytes());
        out.extend_from_slice(&body);
        out
    }

    #[test]
    fn well_formed_but_inconsistent_state_is_refused_before_it_runs() {
        let bytes = parked_node().snapshot().unwrap();
        type Edit = Box<dyn FnOnce(&mut NodeSnapshot)>;
        let edits: Vec<Edit> = vec![
            Box::new(|s| s.slots[0].exec.as_mut().unwrap().pending = 0),
            Box::new(|s| s.slots[0].exec.as_mut().unwrap().site = SiteId::new(9)),
            Box::new(|s| {
                s.slots[0].exec.as_mut().unwrap().missing.push(0);
            }),
            Box::new(|s| {
                let exec = s.slots[0].exec.as_mut().unwrap();
                exec.reads_left.iter_mut().for_each(|r| *r = 0);
            }),
            Box::new(|s| {
                let exec = s.slots[0].exec.as_mut().unwrap();
                exec.missing.iter_mut().for_each(|m| *m = 0);
            }),
            Box::new(|s| s.parked[0].gen += 1),
            Box::new(|s| s.free.push(0)),
            Box::new(|s| {
                s.on_trigger
                    .push((EventKind::new(1), vec![OpRef::new(SiteId::new(3), 0)]))
            }),
            Box::new(|s| s.bootstrap_queue.push(SiteId::new(4))),
        ];
        for (index, edit) in edits.into_iter().enumerate() {
            let err = builder(1, "g").restore(&forge(&bytes, edit)).unwrap_err();
            assert!(
                matches!(err, RestoreError::Decode(_)),
                "edit {index}: {err}"
            );
        }
        // Unedited, the same path restores.
        assert!(builder(1, "g").restore(&forge(&bytes, |_| {})).is_ok());
    }

    #[test]
    fn a_value_without_a_byte_form_fails_the_snapshot_naming_it() {
        let mut node = builder(1, "g").build().unwrap();
        node.ingress()
            .push_data(IngressEvent::Invoke {
                site: SiteId::new(0),
                inputs: vec![("x".into(), Box::new(Opaque))],
                ticket: 3,
            })
            .unwrap();
        let err = node.snapshot().unwrap_err();
        let SnapshotError::NotEncodable { location, .. } = err else {
            panic!("expected NotEncodable, got {err}");
        };
        assert!(location.contains("queued invoke of site:0"), "{location}");
        // The queued invoke was kept (staged), not dropped.
        assert_eq!(node.staged.len(), 1);
        assert!(node.has_work());
    }

    #[test]
    fn undrained_bus_events_refuse_the_snapshot() {
        let mut node = builder(1, "g").build().unwrap();
        node.bus
            .publish(NodeEvent::PeerCameUp {
                peer: PeerId::new(4),
            })
            .unwrap();
        assert!(matches!(
            node.snapshot(),
            Err(SnapshotError::Undrained { count: 1, .. })
        ));
    }

    #[test]
    fn steps_waiting_for_a_poll_must_be_drained_before_a_snapshot() {
        let mut node = parked_node();
        let envelope = crate::wire::Envelope::new(
            node.peer(),
            crate::ids::PeerId::new(99),
            crate::wire::EnvelopeKind::OneWay,
        );
        node.report_send_refused(envelope, crate::node::SendRefusal::Full, 0);
        assert!(matches!(
            node.snapshot(),
            Err(SnapshotError::Undrained {
                what: "steps",
                count: 1
            })
        ));
        let _ = node.poll(0).count();
        assert!(node.snapshot().is_ok());
    }

    #[test]
    fn unknown_slot_or_bad_component_state_is_a_component_error() {
        let bytes = parked_node().snapshot().unwrap();
        let bad = forge(&bytes, |s| s.components[0].1 = vec![1, 2, 3]);
        assert!(matches!(
            builder(1, "g").restore(&bad),
            Err(RestoreError::Component { slot, .. }) if slot == "c"
        ));
        let unknown = forge(&bytes, |s| s.components.push(("z".into(), Vec::new())));
        assert!(matches!(
            builder(1, "g").restore(&unknown),
            Err(RestoreError::Component { slot, .. }) if slot == "z"
        ));
    }

    #[test]
    fn restore_recharges_the_bytes_executions_hold() {
        let mut node = builder(1, "g").build().unwrap();
        let input: Box<dyn SlotValue> = Box::new(crate::value::BytesValue::new(vec![7u8; 100]));
        node.invoke(SiteId::new(0), vec![("x".into(), input)])
            .unwrap();
        while node.has_work() {
            node.poll(0).for_each(drop);
        }
        let held = node.budget().in_use();
        assert!(held >= 100);
        let mut restored = builder(1, "g").restore(&node.snapshot().unwrap()).unwrap();
        assert_eq!(restored.budget().in_use(), held);
        finished_values(&mut restored, 1_000);
        assert_eq!(restored.budget().in_use(), 0);
    }

    #[test]
    fn value_holders_and_outbound_envelopes_are_restored_value_by_value() {
        let mut b = GraphBuilder::new("keep");
        let x = b.input("x");
        b.syscall("Hold.Stash", [x]).attr("slot", "h").finish();
        b.syscall("Serialize.Enqueue", [x])
            .attr("queue", "q")
            .finish();
        b.syscall("Record", [x]).attr("name", "rec").finish();
        let keep = b.build().unwrap();
        let build = || Node::builder(PeerId::new(1)).graph(keep.clone());
        let mut node = build().build().unwrap();
        for (now, v) in [(5, 1u64), (6, 2)] {
            node.invoke(SiteId::new(0), vec![("x".into(), Box::new(U64Value(v)))])
                .unwrap();
            while node.has_work() {
                node.poll(now).for_each(drop);
            }
        }
        let envelope = Envelope::new(PeerId::new(1), PeerId::new(2), EnvelopeKind::Request)
            .with_request_id(4)
            .with_fill(Fill::site(SiteId::new(0), "x", Payload::value(U64Value(3))));
        node.framework.outbound().push(envelope.clone());

        let mut restored = build().restore(&node.snapshot().unwrap()).unwrap();
        let holders = restored.framework.holders();
        assert!(holders
            .hold_table
            .peek("h")
            .is_some_and(|v| v.eq_value(&U64Value(2))));
        let queued: Vec<_> = holders
            .serialize_queue
            .iter()
            .map(|(_, v)| v.clone_value())
            .collect();
        assert_eq!(queued.len(), 2);
        assert!(queued[0].eq_value(&U64Value(1)) && queued[1].eq_value(&U64Value(2)));
        let records: Vec<u64> = holders
            .record_buffer
            .iter("rec")
            .map(|r| r.recorded_at_ns)
            .collect();
        assert_eq!(records, vec![5, 6]);
        let sent: Vec<Envelope> = restored
            .poll(7)
            .filter_map(|step| match step {
                super::super::Step::SendEnvelope(e) => Some(e),
                _ => None,
            })
            .collect();
        assert_eq!(sent, vec![envelope]);
    }
}
