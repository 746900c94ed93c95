//! The snapshot's wire format: the serde types of a Node snapshot body,
//! how each piece of live state is captured into them, and how each is
//! decoded back (values re-checked, byte charges re-taken) on restore.

use serde::{Deserialize, Serialize};

use super::super::{Completion, ControlCall, ExecOrigin, Execution, Node};
use super::{RestoreError, SnapshotError};
use crate::budget::{ByteCharge, CopyInError};
use crate::bus::AppIngressError;
use crate::component::OpError;
use crate::framework::{Address, FlowLedger, TimerId};
use crate::framework_state::FrameworkState;
use crate::ids::{CommandId, EventKind, ExecId, IdCounter, Incarnation, OpRef, PeerId, SiteId};
use crate::ingress::{CompletionPayload, IngressEvent};
use crate::resource::InboundCtx;
use crate::value::{NamedValues, SlotValue, TypeTag, ValueLimits};
use crate::wire::{Envelope, EnvelopeKind, Fill, FillTarget, Payload};

/// The snapshot body.
#[derive(Serialize, Deserialize)]
pub(super) struct NodeSnapshot {
    pub(super) peer: PeerId,
    pub(super) graphs: u64,
    pub(super) incarnation: Incarnation,
    pub(super) exec_ids: IdCounter,
    pub(super) cmd_ids: IdCounter,
    pub(super) slots: Vec<SlotSnap>,
    pub(super) free: Vec<u32>,
    pub(super) frontier: Vec<(u32, u32, u32)>,
    pub(super) parked: Vec<ParkedSnap>,
    pub(super) control_parked: Vec<(CommandId, ControlCall)>,
    pub(super) deferred: Vec<(CommandId, Vec<(String, ValueSnap)>)>,
    pub(super) completions: Vec<CompletionSnap>,
    pub(super) staged: Vec<StagedSnap>,
    pub(super) framework: FrameworkState,
    pub(super) hold: Vec<(String, ValueSnap)>,
    pub(super) serialize: Vec<(String, ValueSnap)>,
    pub(super) records: Vec<(String, u64, ValueSnap)>,
    pub(super) outbound: Vec<EnvelopeSnap>,
    /// Envelopes waiting for flow-control credit, in order per receiver.
    pub(super) held: Vec<HeldSnap>,
    pub(super) flow: FlowLedger,
    pub(super) on_trigger: Vec<(EventKind, Vec<OpRef>)>,
    pub(super) bootstrap_queue: Vec<SiteId>,
    pub(super) bootstrap_live: Option<ExecId>,
    pub(super) started: bool,
    pub(super) components: Vec<(String, Vec<u8>)>,
}

/// An envelope waiting for credit and the command parked on it.
#[derive(Serialize, Deserialize)]
pub(super) struct HeldSnap {
    pub(super) cmd: CommandId,
    pub(super) completes: Option<u8>,
    pub(super) envelope: EnvelopeSnap,
}

/// One encoded value.
#[derive(Serialize, Deserialize)]
pub(super) struct ValueSnap {
    pub(super) tag: TypeTag,
    pub(super) bytes: Vec<u8>,
}

#[derive(Serialize, Deserialize)]
pub(super) struct SlotSnap {
    pub(super) gen: u32,
    pub(super) exec: Option<ExecSnap>,
}

#[derive(Serialize, Deserialize)]
pub(super) struct ParkedSnap {
    pub(super) cmd: CommandId,
    pub(super) slot: u32,
    pub(super) gen: u32,
    pub(super) op: u32,
    pub(super) timer: Option<TimerId>,
}

#[derive(Serialize, Deserialize)]
pub(super) struct ExecSnap {
    pub(super) id: ExecId,
    pub(super) site: SiteId,
    pub(super) origin: OriginSnap,
    pub(super) parent_cmd: Option<CommandId>,
    pub(super) inbound: InboundSnap,
    pub(super) values: Vec<Option<ValueSnap>>,
    pub(super) reads_left: Vec<u32>,
    pub(super) missing: Vec<u32>,
    pub(super) fired: Vec<bool>,
    pub(super) pending: u32,
    /// Bytes the execution holds against the budget.
    pub(super) charged: usize,
}

#[derive(Clone, Copy, Serialize, Deserialize)]
pub(super) enum OriginSnap {
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
pub(super) struct InboundSnap {
    pub(super) src_peer: Option<PeerId>,
    pub(super) wire_req_id: Option<u64>,
    pub(super) arrival_ns: Option<u64>,
    pub(super) remaining_deadline_ns: Option<u64>,
}

#[derive(Serialize, Deserialize)]
pub(super) enum CompletionSnap {
    Values {
        cmd: CommandId,
        results: Vec<(String, ValueSnap)>,
        charged: Option<usize>,
    },
    Failed {
        cmd: CommandId,
        /// Kind index (the wire's), reason, detail.
        error: (u8, String, String),
    },
}

#[derive(Serialize, Deserialize)]
pub(super) enum StagedSnap {
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
        /// Kind index (the wire's), reason, detail.
        error: (u8, String, String),
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
pub(super) struct EnvelopeSnap {
    pub(super) schema: u16,
    pub(super) src: PeerId,
    pub(super) dst: PeerId,
    pub(super) kind: KindSnap,
    pub(super) wire_req_id: Option<u64>,
    pub(super) remaining_deadline_ns: Option<u64>,
    pub(super) reply_to: Vec<Address>,
    pub(super) fills: Vec<FillSnap>,
    pub(super) credit: u32,
    /// A response's failure: kind index (the wire's), reason, detail.
    pub(super) failure: Option<(u8, String, String)>,
}

#[derive(Clone, Copy, Serialize, Deserialize)]
pub(super) enum KindSnap {
    OneWay,
    Request,
    Response,
    BackoffNotice { retry_after_ns: u64 },
    BackoffClear,
    Credit,
}

#[derive(Serialize, Deserialize)]
pub(super) struct FillSnap {
    pub(super) target: TargetSnap,
    /// `true`: a live value (restored live); `false`: already encoded.
    pub(super) live: bool,
    pub(super) value: ValueSnap,
}

#[derive(Serialize, Deserialize)]
pub(super) enum TargetSnap {
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

pub(super) fn encode_value(
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

pub(super) fn encode_named(
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
    pub(super) fn capture(exec: &Execution, slot: usize) -> Result<Self, SnapshotError> {
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
    pub(super) fn capture(completion: &Completion) -> Result<Self, SnapshotError> {
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
            Completion::Failed { cmd, error } => Self::Failed {
                cmd: *cmd,
                error: error_snap(error),
            },
        })
    }
}

impl StagedSnap {
    pub(super) fn capture(event: &IngressEvent) -> Result<Self, SnapshotError> {
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
            IngressEvent::CompletionFailed { cmd, error } => Self::CompletionFailed {
                cmd: *cmd,
                error: error_snap(error),
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
    pub(super) fn capture(envelope: &Envelope, what: &str) -> Result<Self, SnapshotError> {
        let kind = match envelope.kind {
            EnvelopeKind::OneWay => KindSnap::OneWay,
            EnvelopeKind::Request => KindSnap::Request,
            EnvelopeKind::Response => KindSnap::Response,
            EnvelopeKind::BackoffNotice { retry_after_ns } => {
                KindSnap::BackoffNotice { retry_after_ns }
            }
            EnvelopeKind::BackoffClear => KindSnap::BackoffClear,
            EnvelopeKind::Credit => KindSnap::Credit,
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
            credit: envelope.credit,
            failure: envelope.failure.as_deref().map(error_snap),
        })
    }
}

// ---- restore -------------------------------------------------------------

/// What decoding needs: the new Node's registry, budget and caps.
pub(super) struct DecodeCx<'a> {
    pub(super) node: &'a Node,
    pub(super) limits: &'a ValueLimits,
}

impl DecodeCx<'_> {
    pub(super) fn value(
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

    pub(super) fn named(
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
    pub(super) fn restore(self, cx: &DecodeCx<'_>, slot: usize) -> Result<Execution, RestoreError> {
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
    pub(super) fn restore(self, cx: &DecodeCx<'_>) -> Result<Completion, RestoreError> {
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
            Self::Failed { cmd, error } => Completion::Failed {
                cmd,
                error: error_from_snap(error),
            },
        })
    }
}

impl StagedSnap {
    pub(super) fn restore(self, cx: &DecodeCx<'_>) -> Result<IngressEvent, RestoreError> {
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
            Self::CompletionFailed { cmd, error } => IngressEvent::CompletionFailed {
                cmd,
                error: Box::new(error_from_snap(error)),
            },
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
    pub(super) fn restore(self, cx: &DecodeCx<'_>) -> Result<Envelope, RestoreError> {
        let kind = match self.kind {
            KindSnap::OneWay => EnvelopeKind::OneWay,
            KindSnap::Request => EnvelopeKind::Request,
            KindSnap::Response => EnvelopeKind::Response,
            KindSnap::BackoffNotice { retry_after_ns } => {
                EnvelopeKind::BackoffNotice { retry_after_ns }
            }
            KindSnap::BackoffClear => EnvelopeKind::BackoffClear,
            KindSnap::Credit => EnvelopeKind::Credit,
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
            credit: self.credit,
            failure: self.failure.map(|error| Box::new(error_from_snap(error))),
        })
    }
}

/// An op error as a snapshot stores it: the wire's kind index, reason, detail.
fn error_snap(error: &OpError) -> (u8, String, String) {
    (
        crate::wire::error_kind_index(error.kind),
        error.reason.to_string(),
        error.detail.clone(),
    )
}

/// The op error [`error_snap`] stored (an unknown kind index reads as `Failed`).
fn error_from_snap((kind, reason, detail): (u8, String, String)) -> OpError {
    let kind =
        crate::wire::error_kind_from_index(kind).unwrap_or(crate::component::OpErrorKind::Failed);
    OpError::new(kind, reason, detail)
}
