//! The component contract: how the engine dispatches an op to the code that runs it.
//!
//! A [`Component`] is user (or framework) code bound to a named slot on a
//! Node. At install the engine asks it to [`resolve`](Component::resolve_op)
//! each `op_type` it will handle into a [`LocalOpId`], and stamps that id
//! into the op's dispatch entry; at run time
//! [`dispatch_atomic`](Component::dispatch_atomic) receives the id, so the
//! hot path never looks an op up by name.
//!
//! An op either finishes during the call ([`DispatchResult::Immediate`],
//! its outputs written to [`OpOutputs`]) or parks
//! ([`DispatchResult::Async`]) until a completion for the returned
//! [`CommandId`] arrives: in the same cycle through
//! `RuntimeResourceRef::complete_command`, from a timer, or from another
//! thread through a [`crate::CompletionSink`]. A failure is an [`OpError`]
//! with a kind, a stable machine-readable reason and a human detail.
//!
//! Invariants:
//! * The engine takes the dispatching component out of its table for the
//!   duration of the call, so a component can never reach itself through
//!   the resource handle's [`crate::ComponentsView`].
//! * Inputs are owned for the call: [`OpInputs::take`] moves a value out
//!   without copying; the engine has already cloned it for any other
//!   consumer.

use std::any::Any;
use std::borrow::Cow;
use std::fmt;

use crate::graph::OpNode;
use crate::ids::CommandId;
use crate::resource::RuntimeResourceRef;
use crate::value::SlotValue;

/// Index of an op handler inside one component, chosen by the component at install.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LocalOpId(pub u32);

/// A dependency a component declares on another component slot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dependency {
    /// The slot name that must be bound on the Node.
    pub slot: Cow<'static, str>,
    /// The [`Component::kind`] the bound component must report.
    pub kind: Cow<'static, str>,
}

/// What a dispatch produced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DispatchResult {
    /// The op finished; its outputs are in the [`OpOutputs`] it was given.
    Immediate,
    /// The op parked; it resumes when a completion for this command lands.
    Async(CommandId),
}

/// Code bound to a slot on a Node that runs the ops addressed to it.
///
/// Implementations are `Send` (a Node moves into its actor thread) and
/// `Any` (so [`crate::RuntimeResourceRef::dependency`] can hand out typed
/// references to sibling components).
pub trait Component: Any + Send {
    /// The role this component plays (for example `"compute"`); other
    /// components' [`Dependency::kind`] is matched against it at install.
    fn kind(&self) -> &str;

    /// Other component slots this component needs bound on the same Node.
    fn dependencies(&self) -> Vec<Dependency> {
        Vec::new()
    }

    /// Maps an `op_type` to the handler that runs it, or `None` if this
    /// component does not implement it (an install-time error).
    fn resolve_op(&self, op_type: &str) -> Option<LocalOpId>;

    /// Installs one op of a graph: the whole node (attributes included) is
    /// shown so the component can parse and check its configuration once,
    /// here, instead of on every dispatch. Returns the handler to dispatch
    /// to, `Ok(None)` if the component has no such op (an install error
    /// naming it), or an error that refuses the install (for example a bad
    /// attribute). The default resolves by `op_type` alone.
    fn install_op(&mut self, op: &OpNode) -> Result<Option<LocalOpId>, OpError> {
        Ok(self.resolve_op(&op.op_type))
    }

    /// Runs op `op` once for one execution.
    ///
    /// `inputs` holds the op's input values in declaration order; write
    /// outputs in declaration order to `outputs` before returning
    /// [`DispatchResult::Immediate`]. A panic here is caught by the engine
    /// and reported as an [`OpErrorKind::Panicked`] failure.
    fn dispatch_atomic(
        &mut self,
        op: LocalOpId,
        ctx: &mut RuntimeResourceRef<'_>,
        inputs: &mut OpInputs<'_>,
        outputs: &mut OpOutputs<'_>,
    ) -> Result<DispatchResult, OpError>;

    /// The component's own state as bytes, for a Node snapshot. The
    /// default (a stateless component) is empty; a failure makes the
    /// snapshot fail with the slot named.
    fn snapshot_state(&self) -> Result<Vec<u8>, OpError> {
        Ok(Vec::new())
    }

    /// Restores state written by [`Component::snapshot_state`] into a
    /// freshly built component. The default ignores the bytes.
    fn restore_state(&mut self, bytes: &[u8]) -> Result<(), OpError> {
        let _ = bytes;
        Ok(())
    }
}

impl fmt::Debug for dyn Component {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Component")
            .field("kind", &self.kind())
            .finish()
    }
}

/// The input values of one dispatch, in the op's declaration order.
///
/// Values are owned for the call: read them with [`OpInputs::get`] or move
/// them out with [`OpInputs::take`]. An input declared with an empty name
/// (ONNX's "absent optional input") is `None`.
#[derive(Debug)]
pub struct OpInputs<'a> {
    slots: &'a mut [Option<Box<dyn SlotValue>>],
}

impl<'a> OpInputs<'a> {
    /// Wraps the engine's per-dispatch input buffer.
    pub fn new(slots: &'a mut [Option<Box<dyn SlotValue>>]) -> Self {
        Self { slots }
    }

    /// Number of declared inputs.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Whether the op declares no input.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Borrows input `index`, if present and not yet taken.
    pub fn get(&self, index: usize) -> Option<&dyn SlotValue> {
        self.slots.get(index)?.as_deref()
    }

    /// Borrows input `index` as a `T`, with a typed error naming what is wrong.
    pub fn get_as<T: SlotValue>(&self, index: usize) -> Result<&T, OpError> {
        let value = self.get(index).ok_or_else(|| {
            OpError::new(
                OpErrorKind::InvalidInput,
                "input.missing",
                format!("input {index} is absent"),
            )
        })?;
        value.downcast_ref::<T>().ok_or_else(|| {
            OpError::new(
                OpErrorKind::InvalidInput,
                "input.type_mismatch",
                format!(
                    "input {index} has type tag {}, expected a `{}`",
                    value.type_tag(),
                    std::any::type_name::<T>()
                ),
            )
        })
    }

    /// Moves input `index` out (no copy); later calls for it return `None`.
    pub fn take(&mut self, index: usize) -> Option<Box<dyn SlotValue>> {
        self.slots.get_mut(index)?.take()
    }
}

/// Where an op writes its outputs, in declaration order.
///
/// An op may write fewer outputs than it declares (a gate that refuses, an
/// `Any` that lost its race): the unwritten outputs stay absent in this
/// execution and their consumers never fire. The engine reports such a
/// partial completion in its steps, so nothing disappears silently.
#[derive(Debug)]
pub struct OpOutputs<'a> {
    values: &'a mut Vec<Box<dyn SlotValue>>,
    declared: usize,
}

impl<'a> OpOutputs<'a> {
    /// Wraps the engine's per-dispatch output buffer (cleared first) for an
    /// op that declares `declared` outputs.
    pub fn new(values: &'a mut Vec<Box<dyn SlotValue>>, declared: usize) -> Self {
        values.clear();
        Self { values, declared }
    }

    /// Number of outputs the op declares.
    pub fn declared(&self) -> usize {
        self.declared
    }

    /// Number of outputs written so far.
    pub fn written(&self) -> usize {
        self.values.len()
    }

    /// Appends the next output. Writing more outputs than declared is an
    /// [`OpErrorKind::InvalidOutput`] error and the value is dropped.
    pub fn push(&mut self, value: Box<dyn SlotValue>) -> Result<(), OpError> {
        if self.values.len() >= self.declared {
            return Err(OpError::new(
                OpErrorKind::InvalidOutput,
                "output.too_many",
                format!("op declares {} outputs", self.declared),
            ));
        }
        self.values.push(value);
        Ok(())
    }

    /// Whether every declared output has been written.
    pub fn is_complete(&self) -> bool {
        self.values.len() == self.declared
    }
}

/// A typed op failure: kind, stable reason, human detail.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{kind} ({reason}): {detail}")]
pub struct OpError {
    /// The class of failure.
    pub kind: OpErrorKind,
    /// A stable, machine-matchable reason such as `"input.type_mismatch"`.
    pub reason: Cow<'static, str>,
    /// What happened, for people.
    pub detail: String,
}

impl OpError {
    /// Builds an error.
    pub fn new(
        kind: OpErrorKind,
        reason: impl Into<Cow<'static, str>>,
        detail: impl Into<String>,
    ) -> Self {
        Self {
            kind,
            reason: reason.into(),
            detail: detail.into(),
        }
    }
}

/// The class of an [`OpError`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum OpErrorKind {
    /// An input is missing or of the wrong type or shape.
    InvalidInput,
    /// The op wrote outputs that do not match its declaration.
    InvalidOutput,
    /// An attribute is missing or malformed.
    InvalidAttribute,
    /// A declared dependency is not bound or has the wrong type.
    Dependency,
    /// A cap or budget was reached.
    ResourceExhausted,
    /// A peer policy (block list, gate, back-off, health) refused the op.
    Refused,
    /// The op's deadline passed before it completed.
    Timeout,
    /// The completing side reported a failure.
    Failed,
    /// The op or component panicked; the Node kept running.
    Panicked,
    /// A framework invariant was breached (a bug in nodeflow).
    Internal,
}

impl fmt::Display for OpErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            Self::InvalidInput => "invalid input",
            Self::InvalidOutput => "invalid output",
            Self::InvalidAttribute => "invalid attribute",
            Self::Dependency => "dependency",
            Self::ResourceExhausted => "resource exhausted",
            Self::Refused => "refused",
            Self::Timeout => "timeout",
            Self::Failed => "failed",
            Self::Panicked => "panicked",
            Self::Internal => "internal",
        };
        f.write_str(name)
    }
}
