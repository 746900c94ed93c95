//! The composite syscalls `Bundle` and `Unbundle`: pack several values into
//! one [`Composite`] and unpack them by name (table on
//! [`CompositeSyscall`]).
//!
//! Invariants: entry names are fixed at install, non-empty and unique;
//! `Unbundle` checks every name before it writes anything, so it writes
//! either all its outputs or none.

use crate::component::{DispatchResult, OpError, OpErrorKind, OpInputs, OpOutputs};
use crate::syscall::parse::{Count, OpSpec};
use crate::syscall::SyscallParseError;
use crate::value::{Composite, SlotValue};

/// Packing and unpacking of composites.
///
/// | op type    | inputs       | outputs      | attributes                                  | behaviour | errors |
/// |------------|--------------|--------------|---------------------------------------------|-----------|--------|
/// | `Bundle`   | at least 1   | 1            | `names`: optional strings, one per input    | emits a [`Composite`] with one entry per present input, in input order, named by `names` or else by the input value names; an absent optional input (declared `""`) has no entry | `InvalidAttribute` at install: `names` of the wrong length, empty or repeated names, or an absent input without `names` |
/// | `Unbundle` | 1 (a [`Composite`]) | at least 1 | `names`: optional strings, one per output | emits the composite's entry of each name (first match) on the matching output; names default to the output value names | `InvalidInput` `input.type_mismatch` for a non-composite; `InvalidInput` `unbundle.missing_entry` when a name has no entry (nothing is written) |
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CompositeSyscall {
    /// `Bundle`: many values → one composite.
    Bundle {
        /// Entry name of each input, in input order.
        names: Vec<String>,
    },
    /// `Unbundle`: one composite → many values.
    Unbundle {
        /// Entry read for each output, in output order.
        names: Vec<String>,
    },
}

impl CompositeSyscall {
    /// Parses a composite op; `None` when `spec` is not one.
    pub(super) fn parse(spec: &OpSpec<'_>) -> Option<Result<Self, SyscallParseError>> {
        let parsed = match spec.op_type() {
            "Bundle" => parse_bundle(spec),
            "Unbundle" => parse_unbundle(spec),
            _ => return None,
        };
        Some(parsed)
    }

    /// Runs the op for one execution.
    pub(super) fn dispatch(
        &self,
        inputs: &mut OpInputs<'_>,
        outputs: &mut OpOutputs<'_>,
    ) -> Result<DispatchResult, OpError> {
        match self {
            Self::Bundle { names } => {
                let mut bundle = Composite::new();
                for (index, name) in names.iter().enumerate() {
                    if let Some(value) = inputs.take(index) {
                        bundle.push(name.clone(), value);
                    }
                }
                outputs.push(Box::new(bundle))?;
            }
            Self::Unbundle { names } => {
                let bundle = inputs.get_as::<Composite>(0)?;
                let mut values: Vec<Box<dyn SlotValue>> = Vec::with_capacity(names.len());
                for name in names {
                    let Some(value) = bundle.get(name) else {
                        return Err(OpError::new(
                            OpErrorKind::InvalidInput,
                            "unbundle.missing_entry",
                            format!(
                                "the composite has no entry `{name}`; bundle it upstream or \
                                 fix the `names` of this op"
                            ),
                        ));
                    };
                    values.push(value.clone_value());
                }
                for value in values {
                    outputs.push(value)?;
                }
            }
        }
        Ok(DispatchResult::Immediate)
    }
}

fn parse_bundle(spec: &OpSpec<'_>) -> Result<CompositeSyscall, SyscallParseError> {
    spec.inputs(Count::AtLeastOne)?;
    spec.outputs(Count::One)?;
    let names = match spec.optional_names("names", spec.op.inputs.len())? {
        Some(names) => names,
        None => {
            let names = spec.op.inputs.clone();
            spec.unique_names("names", &names).map_err(|_| {
                spec.attribute_error(
                    "names",
                    "is needed: the input value names are not usable as entry names \
                     (an input is absent or two inputs read the same value)",
                )
            })?;
            names
        }
    };
    Ok(CompositeSyscall::Bundle { names })
}

fn parse_unbundle(spec: &OpSpec<'_>) -> Result<CompositeSyscall, SyscallParseError> {
    spec.inputs(Count::One)?;
    spec.outputs(Count::AtLeastOne)?;
    let names = match spec.optional_names("names", spec.op.outputs.len())? {
        Some(names) => names,
        None => {
            let names = spec.op.outputs.clone();
            spec.unique_names("names", &names)?;
            names
        }
    };
    Ok(CompositeSyscall::Unbundle { names })
}

#[cfg(test)]
mod tests {
    use crate::component::OpErrorKind;
    use crate::syscall::test_rig::{inputs, op, Rig, WithAttr};
    use crate::syscall::{Syscall, SyscallParseError};
    use crate::value::{Composite, I64Value, SlotValue, U64Value};

    #[test]
    fn bundle_names_entries_by_input_value_or_by_attribute() {
        let by_inputs = Syscall::parse(&op("Bundle", 2, 1)).unwrap();
        let out = Rig::new()
            .run(&by_inputs, 0, inputs([U64Value(1), U64Value(2)]), 1)
            .unwrap();
        let bundle = out.values::<Composite>().remove(0);
        let names: Vec<&str> = bundle.entries().iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["in0", "in1"]);
        assert!(bundle.get("in1").unwrap().eq_value(&U64Value(2)));

        let named = Syscall::parse(&op("Bundle", 2, 1).with("names", vec!["x", "y"])).unwrap();
        let out = Rig::new()
            .run(&named, 0, inputs([U64Value(1), U64Value(2)]), 1)
            .unwrap();
        let bundle = out.values::<Composite>().remove(0);
        assert!(bundle.get("x").unwrap().eq_value(&U64Value(1)));
    }

    #[test]
    fn bundle_skips_absent_inputs() {
        let mut node = op("Bundle", 2, 1).with("names", vec!["x", "y"]);
        node.inputs[1] = String::new();
        let bundle = Syscall::parse(&node).unwrap();
        let values: Vec<Option<Box<dyn SlotValue>>> = vec![Some(Box::new(U64Value(1))), None];
        let out = Rig::new().run(&bundle, 0, values, 1).unwrap();
        assert_eq!(out.values::<Composite>()[0].len(), 1);
        // Without `names` an absent input has no usable name.
        node.attributes.clear();
        assert!(matches!(
            Syscall::parse(&node),
            Err(SyscallParseError::Attribute { .. })
        ));
    }

    #[test]
    fn bundle_names_are_checked_at_install() {
        assert!(Syscall::parse(&op("Bundle", 2, 1).with("names", vec!["x"])).is_err());
        assert!(Syscall::parse(&op("Bundle", 2, 1).with("names", vec!["x", "x"])).is_err());
        assert!(Syscall::parse(&op("Bundle", 0, 1)).is_err());
        assert!(Syscall::parse(&op("Bundle", 1, 2)).is_err());
        let mut same_value = op("Bundle", 2, 1);
        same_value.inputs[1] = "in0".into();
        assert!(Syscall::parse(&same_value).is_err());
    }

    #[test]
    fn unbundle_round_trips_a_bundle_by_name() {
        let unbundle = Syscall::parse(&op("Unbundle", 1, 2).with("names", vec!["b", "a"])).unwrap();
        let bundle = Composite::new()
            .with("a", U64Value(1))
            .with("b", I64Value(-2));
        let out = Rig::new().run(&unbundle, 0, inputs([bundle]), 2).unwrap();
        assert!(out.outputs[0].eq_value(&I64Value(-2)));
        assert!(out.outputs[1].eq_value(&U64Value(1)));
    }

    #[test]
    fn unbundle_writes_nothing_when_an_entry_is_missing() {
        let unbundle = Syscall::parse(&op("Unbundle", 1, 2)).unwrap();
        let bundle = Composite::new().with("out0", U64Value(1));
        let mut rig = Rig::new();
        let err = rig.run(&unbundle, 0, inputs([bundle]), 2).unwrap_err();
        assert_eq!(
            (err.kind, err.reason.as_ref()),
            (OpErrorKind::InvalidInput, "unbundle.missing_entry")
        );
        assert_eq!(
            rig.last_written, 0,
            "no output is written when one is missing"
        );
        let err = rig.run(&unbundle, 0, inputs([U64Value(1)]), 2).unwrap_err();
        assert_eq!(err.reason, "input.type_mismatch");
        assert!(Syscall::parse(&op("Unbundle", 1, 0)).is_err());
        assert!(Syscall::parse(&op("Unbundle", 1, 2).with("names", vec!["a"])).is_err());
    }
}
