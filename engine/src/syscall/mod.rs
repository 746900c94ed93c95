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
//! Invariants: `parse` never panics on any `OpNode`; `dispatch_syscall`
//! writes at most the declared outputs and reports every refusal as a
//! typed [`OpError`].

use crate::component::{DispatchResult, OpError, OpErrorKind, OpInputs, OpOutputs};
use crate::graph::{AttributeValue, OpNode};
use crate::ids::EventKind;
use crate::runtime::RuntimeResourceRef;
use crate::value::{BytesValue, F64Value, I64Value, SlotValue, Trigger};

/// A syscall op with its attributes checked and converted.
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
}

/// How the engine starts executions from a trigger-source op.
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
        /// The app event kind.
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
        let arity =
            |what: &'static str, expected: &'static str, found: usize| SyscallParseError::Arity {
                op: op.name.clone(),
                op_type: op.op_type.clone(),
                what,
                expected,
                found,
            };
        let attribute = |attribute: &str, problem: String| SyscallParseError::Attribute {
            op: op.name.clone(),
            op_type: op.op_type.clone(),
            attribute: attribute.to_owned(),
            problem,
        };
        match op.op_type.as_str() {
            "PassThrough" => {
                if op.inputs.len() != 1 {
                    return Err(arity("inputs", "exactly 1", op.inputs.len()));
                }
                if op.outputs.len() != 1 {
                    return Err(arity("outputs", "exactly 1", op.outputs.len()));
                }
                Ok(Self::PassThrough)
            }
            "Tee" => {
                if op.inputs.len() != 1 {
                    return Err(arity("inputs", "exactly 1", op.inputs.len()));
                }
                if op.outputs.is_empty() {
                    return Err(arity("outputs", "at least 1", 0));
                }
                Ok(Self::Tee)
            }
            "Constant" => {
                if !op.inputs.is_empty() {
                    return Err(arity("inputs", "no", op.inputs.len()));
                }
                if op.outputs.len() != 1 {
                    return Err(arity("outputs", "exactly 1", op.outputs.len()));
                }
                let value: Box<dyn SlotValue> = match op.attr("value") {
                    Some(AttributeValue::Int(v)) => Box::new(I64Value(*v)),
                    Some(AttributeValue::Float(v)) => Box::new(F64Value(f64::from(*v))),
                    Some(AttributeValue::String(v)) => {
                        Box::new(BytesValue::copy_from(v.as_bytes()))
                    }
                    Some(AttributeValue::Bytes(v)) => Box::new(BytesValue::copy_from(v)),
                    Some(other) => {
                        return Err(attribute(
                            "value",
                            format!(
                                "is a {}; expected int, float, string or bytes",
                                other.kind()
                            ),
                        ))
                    }
                    None => return Err(attribute("value", "is missing".into())),
                };
                Ok(Self::Constant(value))
            }
            "Interval" => {
                if !op.inputs.is_empty() {
                    return Err(arity("inputs", "no", op.inputs.len()));
                }
                if op.outputs.len() != 1 {
                    return Err(arity("outputs", "exactly 1", op.outputs.len()));
                }
                let period = op
                    .attr_int("period_ns")
                    .map_err(|e| attribute("period_ns", e.to_string()))?;
                if period < 1 {
                    return Err(attribute(
                        "period_ns",
                        format!("is {period}; must be at least 1"),
                    ));
                }
                Ok(Self::Source(TriggerSource::Interval {
                    // Checked positive above.
                    period_ns: period as u64,
                }))
            }
            _ => Err(SyscallParseError::UnknownOp {
                op: op.name.clone(),
                op_type: op.op_type.clone(),
            }),
        }
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
    _ctx: &mut RuntimeResourceRef<'_>,
    inputs: &mut OpInputs<'_>,
    outputs: &mut OpOutputs<'_>,
) -> Result<DispatchResult, OpError> {
    match syscall {
        Syscall::PassThrough => {
            let value = take_input(inputs, 0)?;
            outputs.push(value)?;
        }
        Syscall::Tee => {
            let value = take_input(inputs, 0)?;
            for _ in 1..outputs.declared() {
                outputs.push(value.clone_value())?;
            }
            outputs.push(value)?;
        }
        Syscall::Constant(value) => outputs.push(value.clone_value())?,
        Syscall::Source(_) => {
            return Err(OpError::new(
                OpErrorKind::Internal,
                "syscall.source_dispatched",
                "trigger sources are started by the engine, not dispatched",
            ))
        }
    }
    Ok(DispatchResult::Immediate)
}

fn take_input(inputs: &mut OpInputs<'_>, index: usize) -> Result<Box<dyn SlotValue>, OpError> {
    inputs.take(index).ok_or_else(|| {
        OpError::new(
            OpErrorKind::InvalidInput,
            "input.missing",
            format!("input {index} is absent"),
        )
    })
}
