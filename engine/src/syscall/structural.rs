//! The structural syscalls `PassThrough`, `Tee` and `Constant`: parse and
//! dispatch (their table is on [`Syscall`]).
//!
//! Invariants: `Tee` moves its input into the last output and clones it
//! for the others, so a one-output `Tee` copies nothing; `Constant` hands
//! out a clone of the value parsed at install.

use crate::component::{DispatchResult, OpError, OpInputs, OpOutputs};
use crate::graph::AttributeValue;
use crate::syscall::parse::{Count, OpSpec};
use crate::syscall::{take_input, Syscall, SyscallParseError};
use crate::value::{BytesValue, F64Value, I64Value, SlotValue};

/// Parses a structural op; `None` when `spec` is not one.
pub(super) fn parse(spec: &OpSpec<'_>) -> Option<Result<Syscall, SyscallParseError>> {
    let parsed = match spec.op_type() {
        "PassThrough" => parse_pass_through(spec),
        "Tee" => parse_tee(spec),
        "Constant" => parse_constant(spec),
        _ => return None,
    };
    Some(parsed)
}

/// Runs a structural op.
pub(super) fn dispatch(
    syscall: &Syscall,
    inputs: &mut OpInputs<'_>,
    outputs: &mut OpOutputs<'_>,
) -> Result<DispatchResult, OpError> {
    match syscall {
        Syscall::Tee => {
            let value = take_input(inputs, 0)?;
            for _ in 1..outputs.declared() {
                outputs.push(value.clone_value())?;
            }
            outputs.push(value)?;
        }
        Syscall::Constant(value) => outputs.push(value.clone_value())?,
        _ => outputs.push(take_input(inputs, 0)?)?,
    }
    Ok(DispatchResult::Immediate)
}

fn parse_pass_through(spec: &OpSpec<'_>) -> Result<Syscall, SyscallParseError> {
    spec.inputs(Count::One)?;
    spec.outputs(Count::One)?;
    Ok(Syscall::PassThrough)
}

fn parse_tee(spec: &OpSpec<'_>) -> Result<Syscall, SyscallParseError> {
    spec.inputs(Count::One)?;
    spec.outputs(Count::AtLeastOne)?;
    Ok(Syscall::Tee)
}

fn parse_constant(spec: &OpSpec<'_>) -> Result<Syscall, SyscallParseError> {
    spec.inputs(Count::Zero)?;
    spec.outputs(Count::One)?;
    let value: Box<dyn SlotValue> = match spec.op.attr("value") {
        Some(AttributeValue::Int(v)) => Box::new(I64Value(*v)),
        Some(AttributeValue::Float(v)) => Box::new(F64Value(f64::from(*v))),
        Some(AttributeValue::String(v)) => Box::new(BytesValue::copy_from(v.as_bytes())),
        Some(AttributeValue::Bytes(v)) => Box::new(BytesValue::copy_from(v)),
        Some(other) => {
            return Err(spec.attribute_error(
                "value",
                format!(
                    "is a {}; expected int, float, string or bytes",
                    other.kind()
                ),
            ))
        }
        None => return Err(spec.attribute_error("value", "is missing")),
    };
    Ok(Syscall::Constant(value))
}

#[cfg(test)]
mod tests {
    use crate::syscall::test_rig::{inputs, op, Rig, WithAttr};
    use crate::syscall::{Syscall, SyscallParseError};
    use crate::value::{BytesValue, I64Value, U64Value};

    #[test]
    fn pass_through_moves_its_input_and_checks_arity() {
        let syscall = Syscall::parse(&op("PassThrough", 1, 1)).unwrap();
        let mut rig = Rig::new();
        let out = rig.run(&syscall, 0, inputs([U64Value(3)]), 1).unwrap();
        assert_eq!(out.values::<U64Value>(), vec![U64Value(3)]);
        let err = Syscall::parse(&op("PassThrough", 2, 1)).unwrap_err();
        assert!(
            matches!(
                err,
                SyscallParseError::Arity {
                    what: "inputs",
                    found: 2,
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(Syscall::parse(&op("PassThrough", 1, 0)).is_err());
    }

    #[test]
    fn a_missing_input_is_a_typed_error() {
        let syscall = Syscall::parse(&op("PassThrough", 1, 1)).unwrap();
        let err = Rig::new().run(&syscall, 0, vec![None], 1).unwrap_err();
        assert_eq!(
            (err.kind, err.reason.as_ref()),
            (crate::component::OpErrorKind::InvalidInput, "input.missing")
        );
        assert!(syscall.source().is_none());
    }

    #[test]
    fn tee_copies_to_every_output_and_needs_one() {
        let syscall = Syscall::parse(&op("Tee", 1, 3)).unwrap();
        let out = Rig::new()
            .run(&syscall, 0, inputs([U64Value(8)]), 3)
            .unwrap();
        assert_eq!(out.values::<U64Value>(), vec![U64Value(8); 3]);
        assert!(Syscall::parse(&op("Tee", 1, 0)).is_err());
    }

    #[test]
    fn constant_emits_its_attribute_and_rejects_other_kinds() {
        let syscall = Syscall::parse(&op("Constant", 0, 1).with("value", -4i64)).unwrap();
        let out = Rig::new().run(&syscall, 0, inputs::<U64Value, 0>([]), 1);
        assert_eq!(out.unwrap().values::<I64Value>(), vec![I64Value(-4)]);
        let syscall = Syscall::parse(&op("Constant", 0, 1).with("value", "hi")).unwrap();
        let out = Rig::new().run(&syscall, 0, inputs::<U64Value, 0>([]), 1);
        assert_eq!(
            out.unwrap().values::<BytesValue>(),
            vec![BytesValue::copy_from(b"hi")]
        );
        assert!(Syscall::parse(&op("Constant", 0, 1).with("value", vec![1i64])).is_err());
        assert!(Syscall::parse(&op("Constant", 0, 1)).is_err());
        assert!(Syscall::parse(&op("Constant", 1, 1).with("value", 1i64)).is_err());
    }

    #[test]
    fn unknown_op_types_are_install_errors() {
        let err = Syscall::parse(&op("Teleport", 1, 1)).unwrap_err();
        assert_eq!(
            err,
            SyscallParseError::UnknownOp {
                op: "op".into(),
                op_type: "Teleport".into()
            }
        );
    }
}
