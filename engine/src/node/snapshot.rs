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
//! the body being postcard (its types, with their capture and decoding, are
//! in `snapshot/format.rs`). Values are stored as `(TypeTag, bytes)` through
//! [`SlotValue::encode`](crate::SlotValue::encode) and decoded through the
//! builder's registry.
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

mod format;

use std::collections::{HashMap, VecDeque};

use format::{
    encode_named, encode_value, CompletionSnap, DecodeCx, EnvelopeSnap, ExecSnap, HeldSnap,
    NodeSnapshot, OriginSnap, ParkedSnap, SlotSnap, StagedSnap,
};

use super::{BuildError, ControlCall, ExecSlot, Node, NodeBuilder, Parked, Ready};
use crate::budget::CopyInError;
use crate::component::OpError;
use crate::framework::Held;
use crate::ids::{CommandId, EventKind, OpRef, PeerId, SiteId};
use crate::resource::TimerEvent;
use crate::value::{EncodeError, ValueDecodeError, ValueLimits};

/// Version of the snapshot layout this build writes and reads.
pub const SNAPSHOT_VERSION: u32 = 3;

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
        let held = self
            .framework
            .flow()
            .held()
            .map(|held| {
                Ok(HeldSnap {
                    cmd: held.cmd,
                    completes: held.completes,
                    envelope: EnvelopeSnap::capture(&held.envelope, "envelope waiting for credit")?,
                })
            })
            .collect::<Result<_, SnapshotError>>()?;

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
            held,
            flow: self.framework.flow().ledger(),
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
        let held = snap
            .held
            .into_iter()
            .map(|h| {
                Ok(Held {
                    cmd: h.cmd,
                    completes: h.completes,
                    envelope: h.envelope.restore(&cx)?,
                })
            })
            .collect::<Result<Vec<_>, RestoreError>>()?;
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
        for held in held {
            self.framework
                .flow_mut()
                .restore_held(held)
                .map_err(|e| RestoreError::Decode(format!("envelope waiting for credit: {e}")))?;
        }
        self.framework.flow_mut().adopt(&snap.flow);
        let mut released = Vec::new();
        self.framework.flow_mut().release_ready(&mut released);
        self.release_held(released);
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
mod tests;
