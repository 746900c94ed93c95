//! Built-in syscall ops: parsed once at install, dispatched without lookups.
//!
//! An op whose domain is [`crate::SYSCALL_DOMAIN`] is a syscall. At install
//! the engine calls [`Syscall::parse`], which checks the op type, its input
//! and output arity and its attributes, and returns a typed [`Syscall`]
//! (unknown op types and bad attributes are install errors, never run-time
//! ones). At run time [`dispatch_syscall`] runs it against the resource
//! handle, exactly like a component's `dispatch_atomic`.
//!
//! Trigger sources (`Interval`, `Pulse`, `OnTrigger`, `EventSource`) have no
//! data inputs: the engine starts a fresh execution for each trigger and
//! seeds the source op's outputs itself ([`Syscall::source`]), so they are
//! never dispatched.
//!
//! The syscall table is split by group; each group's enum documents its
//! ops as a table (op type, inputs, outputs, attributes, behaviour, errors):
//!
//! | group        | ops                                                                 | table                       |
//! |--------------|---------------------------------------------------------------------|-----------------------------|
//! | structural   | `PassThrough`, `Tee`, `Constant`                                    | [`Syscall`]                 |
//! | triggers     | `Interval`, `Pulse`, `EventSource`, `OnTrigger`                     | [`TriggerSource`]           |
//! | clock / rng  | `Clock`, `Sleep`, `After`, `RngU64`, `DeadlineMatch`                | [`TimingSyscall`]           |
//! | coordination | `Any`, `DeadlineCheck`, `Limit.*`, `CorrelateTag`, `Serialize.*`, `Hold.*` | [`CoordinationSyscall`] |
//! | telemetry    | `AppEmit`, `AppNotify`, `Record`, `IncrMetric`                      | [`TelemetrySyscall`]        |
//! | composite    | `Bundle`, `Unbundle`                                                | [`CompositeSyscall`]        |
//! | gates        | `PeerHealthGate.*`, `BackoffGate.*`, `DedupGate.Rx`                 | [`GateSyscall`]             |
//! | peers        | `AddressBook.Insert`, `AddressBook.InsertMany`, `AddressBook.Lookup` | [`PeersSyscall`]           |
//!
//! Wire `Send` / `Reply` live in `wire.rs`; the engine routes their responses.
//!
//! "Writes nothing" in the tables means the op completes
//! ([`DispatchResult::Immediate`]) with no output written: its consumers do
//! not fire in that execution and the engine reports the partial
//! completion, so nothing vanishes unreported.
//!
//! Invariants: `parse` never panics on any `OpNode`; `dispatch_syscall`
//! writes at most the declared outputs and reports every refusal as a
//! typed [`OpError`] whose `reason` is a stable string.

mod composite;
mod coordination;
mod gates;
mod parse;
mod peers;
mod structural;
mod telemetry;
mod timing;
mod triggers;
mod wire;

pub use composite::*;
pub use coordination::*;
pub use gates::*;
pub use peers::*;
pub use telemetry::*;
pub use timing::*;
pub use wire::*;

use crate::component::{DispatchResult, OpError, OpErrorKind, OpInputs, OpOutputs};
use crate::framework::LatchError;
use crate::graph::OpNode;
use crate::ids::EventKind;
use crate::resource::RuntimeResourceRef;
use crate::value::{SlotValue, Trigger};

use parse::OpSpec;

/// A syscall op with its attributes checked and converted.
///
/// The structural ops live directly here:
///
/// | op type       | inputs | outputs    | attributes                          | behaviour                              | errors |
/// |---------------|--------|------------|-------------------------------------|----------------------------------------|--------|
/// | `PassThrough` | 1      | 1          | —                                   | forwards its input unchanged           | —      |
/// | `Tee`         | 1      | at least 1 | —                                   | copies its input to every output       | —      |
/// | `Constant`    | none   | 1          | `value`: int, float, string, bytes  | emits `I64Value`, `F64Value` or `BytesValue` | —  |
///
/// The other groups are documented on their own enums (see the module docs).
#[derive(Debug)]
#[non_exhaustive]
pub enum Syscall {
    /// Forwards its one input unchanged.
    PassThrough,
    /// Copies its one input to each of its outputs.
    Tee,
    /// Emits a value taken from its `value` attribute.
    Constant(Box<dyn SlotValue>),
    /// A trigger source; see [`TriggerSource`].
    Source(TriggerSource),
    /// Clock, timers and randomness; see [`TimingSyscall`].
    Timing(TimingSyscall),
    /// Latches, permits, queues and slots; see [`CoordinationSyscall`].
    Coordination(CoordinationSyscall),
    /// App outputs, records and metrics; see [`TelemetrySyscall`].
    Telemetry(TelemetrySyscall),
    /// Packing and unpacking composites; see [`CompositeSyscall`].
    Composite(CompositeSyscall),
    /// Peer policy gates; see [`GateSyscall`].
    Gate(GateSyscall),
    /// Address-book access; see [`PeersSyscall`].
    Peers(PeersSyscall),
    /// Sending to other Nodes and answering requests; see [`WireSyscall`].
    Wire(WireSyscall),
}

/// How the engine starts executions from a trigger-source op.
///
/// Every source declares no input and exactly one output.
///
/// | op type       | attributes                                   | the output carries               | errors at install |
/// |---------------|----------------------------------------------|----------------------------------|-------------------|
/// | `Interval`    | `period_ns`: int ≥ 1                         | [`Trigger`], every period        | missing / < 1     |
/// | `Pulse`       | `after_ns`: int ≥ 0                          | [`Trigger`], once                | missing / < 0     |
/// | `EventSource` | `kind`: int in `0..=u32::MAX` (any bus kind) | the bus event's value            | missing / range   |
/// | `OnTrigger`   | `kind`: int in `EventKind::USER_MIN..=u32::MAX` | the app event's value         | missing / range   |
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TriggerSource {
    /// Every `period_ns`, starting `period_ns` after install.
    Interval {
        /// The period, in nanoseconds (at least 1).
        period_ns: u64,
    },
    /// Once, `after_ns` after install.
    Pulse {
        /// Delay from install, in nanoseconds.
        after_ns: u64,
    },
    /// On every bus event of `kind`; the event's value is the output.
    EventSource {
        /// The subscribed kind.
        kind: EventKind,
    },
    /// On every app event delivered by the host with this `kind`.
    OnTrigger {
        /// The app event kind (at least [`EventKind::USER_MIN`]).
        kind: EventKind,
    },
}

/// Why a syscall op cannot be installed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SyscallParseError {
    /// The op type is not a syscall this build knows.
    #[error("op `{op}`: `{op_type}` is not a syscall; see the syscall table in the docs")]
    UnknownOp {
        /// The op's name.
        op: String,
        /// Its op type.
        op_type: String,
    },
    /// Wrong number of inputs or outputs.
    #[error("op `{op}` ({op_type}) needs {expected} {what}, has {found}")]
    Arity {
        /// The op's name.
        op: String,
        /// Its op type.
        op_type: String,
        /// `"inputs"` or `"outputs"`.
        what: &'static str,
        /// What the syscall takes, e.g. `"exactly 1"`.
        expected: &'static str,
        /// What the op declares.
        found: usize,
    },
    /// An attribute is missing, of the wrong kind, or out of range.
    #[error("op `{op}` ({op_type}): attribute `{attribute}` {problem}")]
    Attribute {
        /// The op's name.
        op: String,
        /// Its op type.
        op_type: String,
        /// The attribute.
        attribute: String,
        /// What is wrong with it.
        problem: String,
    },
}

impl Syscall {
    /// Parses and checks a syscall op.
    pub fn parse(op: &OpNode) -> Result<Self, SyscallParseError> {
        let spec = OpSpec::new(op);
        if let Some(parsed) = structural::parse(&spec) {
            return parsed;
        }
        if let Some(parsed) = triggers::parse(&spec) {
            return parsed.map(Self::Source);
        }
        if let Some(parsed) = TimingSyscall::parse(&spec) {
            return parsed.map(Self::Timing);
        }
        if let Some(parsed) = CoordinationSyscall::parse(&spec) {
            return parsed.map(Self::Coordination);
        }
        if let Some(parsed) = TelemetrySyscall::parse(&spec) {
            return parsed.map(Self::Telemetry);
        }
        if let Some(parsed) = CompositeSyscall::parse(&spec) {
            return parsed.map(Self::Composite);
        }
        if let Some(parsed) = GateSyscall::parse(&spec) {
            return parsed.map(Self::Gate);
        }
        if let Some(parsed) = PeersSyscall::parse(&spec) {
            return parsed.map(Self::Peers);
        }
        if let Some(parsed) = WireSyscall::parse(&spec) {
            return parsed.map(Self::Wire);
        }
        Err(SyscallParseError::UnknownOp {
            op: op.name.clone(),
            op_type: op.op_type.clone(),
        })
    }

    /// The trigger source this op is, if it is one.
    pub fn source(&self) -> Option<&TriggerSource> {
        match self {
            Self::Source(source) => Some(source),
            _ => None,
        }
    }
}

/// The value a trigger source emits when it fires without a payload.
pub fn trigger_value() -> Box<dyn SlotValue> {
    Box::new(Trigger)
}

/// Runs one syscall op for one execution.
pub fn dispatch_syscall(
    syscall: &Syscall,
    ctx: &mut RuntimeResourceRef<'_>,
    inputs: &mut OpInputs<'_>,
    outputs: &mut OpOutputs<'_>,
) -> Result<DispatchResult, OpError> {
    match syscall {
        Syscall::PassThrough | Syscall::Tee | Syscall::Constant(_) => {
            structural::dispatch(syscall, inputs, outputs)
        }
        Syscall::Source(_) => Err(OpError::new(
            OpErrorKind::Internal,
            "syscall.source_dispatched",
            "trigger sources are started by the engine, not dispatched",
        )),
        Syscall::Timing(op) => op.dispatch(ctx, inputs, outputs),
        Syscall::Coordination(op) => op.dispatch(ctx, inputs, outputs),
        Syscall::Telemetry(op) => op.dispatch(ctx, inputs, outputs),
        Syscall::Composite(op) => op.dispatch(inputs, outputs),
        Syscall::Gate(op) => op.dispatch(ctx, inputs, outputs),
        Syscall::Peers(op) => op.dispatch(ctx, inputs, outputs),
        Syscall::Wire(op) => op.dispatch(ctx, inputs, outputs),
    }
}

/// Moves input `index` out, or fails with `input.missing`.
fn take_input(inputs: &mut OpInputs<'_>, index: usize) -> Result<Box<dyn SlotValue>, OpError> {
    inputs.take(index).ok_or_else(|| {
        OpError::new(
            OpErrorKind::InvalidInput,
            "input.missing",
            format!("input {index} is absent"),
        )
    })
}

/// Writes `value` to the op's first output if it declares one (the
/// optional pass-through of sink-like syscalls); otherwise drops it.
fn pass_optional(outputs: &mut OpOutputs<'_>, value: Box<dyn SlotValue>) -> Result<(), OpError> {
    if outputs.declared() == 0 {
        return Ok(());
    }
    outputs.push(value)
}

/// The typed error for a refused latch (`Any`, `DeadlineMatch`).
fn latch_error(error: LatchError) -> OpError {
    let (kind, reason) = match error {
        LatchError::Full { .. } => (OpErrorKind::ResourceExhausted, "latch.full"),
        LatchError::KeyTooLong { .. } => (OpErrorKind::InvalidAttribute, "latch.key_too_long"),
    };
    OpError::new(kind, reason, error.to_string())
}

// Last in the file: the purity scan stops at the first test cfg.
#[cfg(test)]
mod test_rig;
