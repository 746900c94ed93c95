//! Install-time checks shared by every syscall: port counts and typed
//! attributes, each failure a [`SyscallParseError`] naming the op.
//!
//! Invariants: nothing here panics on any [`OpNode`]; every error names the
//! op, its type, the port or attribute at fault and what was expected.

use crate::graph::{AttributeError, OpNode};
use crate::syscall::SyscallParseError;

/// How many ports of one direction a syscall accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Count {
    /// None at all.
    Zero,
    /// Exactly one.
    One,
    /// Exactly two.
    Two,
    /// Zero or one.
    ZeroOrOne,
    /// One or more.
    AtLeastOne,
}

impl Count {
    fn admits(self, found: usize) -> bool {
        match self {
            Self::Zero => found == 0,
            Self::One => found == 1,
            Self::Two => found == 2,
            Self::ZeroOrOne => found <= 1,
            Self::AtLeastOne => found >= 1,
        }
    }

    fn text(self) -> &'static str {
        match self {
            Self::Zero => "no",
            Self::One => "exactly 1",
            Self::Two => "exactly 2",
            Self::ZeroOrOne => "0 or 1",
            Self::AtLeastOne => "at least 1",
        }
    }
}

/// One op under inspection.
#[derive(Clone, Copy, Debug)]
pub(super) struct OpSpec<'a> {
    /// The op being parsed.
    pub(super) op: &'a OpNode,
}

impl<'a> OpSpec<'a> {
    /// Wraps `op`.
    pub(super) fn new(op: &'a OpNode) -> Self {
        Self { op }
    }

    /// The op type.
    pub(super) fn op_type(&self) -> &'a str {
        &self.op.op_type
    }

    /// Checks the number of declared inputs.
    pub(super) fn inputs(&self, count: Count) -> Result<(), SyscallParseError> {
        self.ports("inputs", count, self.op.inputs.len())
    }

    /// Checks the number of declared outputs.
    pub(super) fn outputs(&self, count: Count) -> Result<(), SyscallParseError> {
        self.ports("outputs", count, self.op.outputs.len())
    }

    /// An attribute error for `attribute`.
    pub(super) fn attribute_error(
        &self,
        attribute: &str,
        problem: impl Into<String>,
    ) -> SyscallParseError {
        SyscallParseError::Attribute {
            op: self.op.name.clone(),
            op_type: self.op.op_type.clone(),
            attribute: attribute.to_owned(),
            problem: problem.into(),
        }
    }

    /// A required, non-empty `string` attribute.
    pub(super) fn name(&self, attribute: &str) -> Result<String, SyscallParseError> {
        let text = self
            .op
            .attr_str(attribute)
            .map_err(|e| self.typed_error(attribute, e))?;
        if text.is_empty() {
            return Err(self.attribute_error(attribute, "is empty; give it a name"));
        }
        Ok(text.to_owned())
    }

    /// A required `int` attribute of at least 0.
    pub(super) fn non_negative(&self, attribute: &str) -> Result<u64, SyscallParseError> {
        let value = self
            .op
            .attr_int(attribute)
            .map_err(|e| self.typed_error(attribute, e))?;
        self.checked_u64(attribute, value)
    }

    /// An optional `int` attribute of at least 0.
    pub(super) fn optional_non_negative(
        &self,
        attribute: &str,
    ) -> Result<Option<u64>, SyscallParseError> {
        if self.op.attr(attribute).is_none() {
            return Ok(None);
        }
        self.non_negative(attribute).map(Some)
    }

    /// A required `int` attribute in `min..=u32::MAX`.
    pub(super) fn u32_at_least(&self, attribute: &str, min: u32) -> Result<u32, SyscallParseError> {
        let value = self
            .op
            .attr_int(attribute)
            .map_err(|e| self.typed_error(attribute, e))?;
        match u32::try_from(value) {
            Ok(v) if v >= min => Ok(v),
            _ => Err(self.attribute_error(
                attribute,
                format!("is {value}; must be in {min}..={}", u32::MAX),
            )),
        }
    }

    /// An optional `strings` attribute whose entries are non-empty and
    /// unique, with exactly `len` entries.
    pub(super) fn optional_names(
        &self,
        attribute: &str,
        len: usize,
    ) -> Result<Option<Vec<String>>, SyscallParseError> {
        if self.op.attr(attribute).is_none() {
            return Ok(None);
        }
        let names = self
            .op
            .attr_strings(attribute)
            .map_err(|e| self.typed_error(attribute, e))?;
        if names.len() != len {
            return Err(self.attribute_error(
                attribute,
                format!("has {} names; the op has {len} ports to name", names.len()),
            ));
        }
        self.unique_names(attribute, names)?;
        Ok(Some(names.to_vec()))
    }

    /// Checks that `names` are non-empty and pairwise distinct.
    pub(super) fn unique_names(
        &self,
        attribute: &str,
        names: &[String],
    ) -> Result<(), SyscallParseError> {
        for (i, name) in names.iter().enumerate() {
            if name.is_empty() {
                return Err(self.attribute_error(attribute, format!("name {i} is empty")));
            }
            if names[..i].contains(name) {
                return Err(self.attribute_error(
                    attribute,
                    format!("repeats the name `{name}`; names must be unique"),
                ));
            }
        }
        Ok(())
    }

    fn checked_u64(&self, attribute: &str, value: i64) -> Result<u64, SyscallParseError> {
        u64::try_from(value)
            .map_err(|_| self.attribute_error(attribute, format!("is {value}; must be at least 0")))
    }

    fn ports(
        &self,
        what: &'static str,
        count: Count,
        found: usize,
    ) -> Result<(), SyscallParseError> {
        if count.admits(found) {
            return Ok(());
        }
        Err(SyscallParseError::Arity {
            op: self.op.name.clone(),
            op_type: self.op.op_type.clone(),
            what,
            expected: count.text(),
            found,
        })
    }

    fn typed_error(&self, attribute: &str, error: AttributeError) -> SyscallParseError {
        let problem = match error {
            AttributeError::Missing { .. } => "is missing; add it to the graph".to_owned(),
            AttributeError::WrongType {
                expected, found, ..
            } => format!("is a {found}; expected a {expected}"),
        };
        self.attribute_error(attribute, problem)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op_with(attr: &str, value: impl Into<crate::graph::AttributeValue>) -> OpNode {
        let mut op = OpNode::new("x", "T");
        op.attributes.push(crate::graph::Attribute {
            name: attr.into(),
            value: value.into(),
        });
        op
    }

    #[test]
    fn counts_admit_exactly_their_range() {
        assert!(Count::Zero.admits(0) && !Count::Zero.admits(1));
        assert!(Count::One.admits(1) && !Count::One.admits(0) && !Count::One.admits(2));
        assert!(Count::Two.admits(2) && !Count::Two.admits(1));
        assert!(Count::ZeroOrOne.admits(0) && Count::ZeroOrOne.admits(1));
        assert!(!Count::ZeroOrOne.admits(2));
        assert!(!Count::AtLeastOne.admits(0) && Count::AtLeastOne.admits(usize::MAX));
    }

    #[test]
    fn integer_attributes_are_range_checked() {
        let op = op_with("n", -1i64);
        let err = OpSpec::new(&op).non_negative("n").unwrap_err();
        assert!(err.to_string().contains("must be at least 0"), "{err}");
        let op = op_with("n", i64::from(u32::MAX) + 1);
        assert!(OpSpec::new(&op).u32_at_least("n", 1).is_err());
        let op = op_with("n", 0i64);
        assert!(OpSpec::new(&op).u32_at_least("n", 1).is_err());
        assert_eq!(OpSpec::new(&op).non_negative("n").unwrap(), 0);
        assert_eq!(OpSpec::new(&op).optional_non_negative("m").unwrap(), None);
    }

    #[test]
    fn wrong_kind_and_missing_attributes_say_what_is_wrong() {
        let op = op_with("n", "text");
        let err = OpSpec::new(&op).non_negative("n").unwrap_err();
        assert!(
            err.to_string().contains("is a string; expected a int"),
            "{err}"
        );
        let err = OpSpec::new(&op).name("missing").unwrap_err();
        assert!(err.to_string().contains("is missing"), "{err}");
        let op = op_with("n", "");
        assert!(OpSpec::new(&op).name("n").is_err());
    }

    #[test]
    fn name_lists_must_match_arity_and_be_unique() {
        let op = op_with("names", vec!["a", "b"]);
        let spec = OpSpec::new(&op);
        assert_eq!(
            spec.optional_names("names", 2).unwrap(),
            Some(vec!["a".to_owned(), "b".to_owned()])
        );
        assert!(spec.optional_names("names", 3).is_err());
        assert_eq!(spec.optional_names("other", 3).unwrap(), None);
        let op = op_with("names", vec!["a", "a"]);
        assert!(OpSpec::new(&op).optional_names("names", 2).is_err());
        let op = op_with("names", vec!["a", ""]);
        assert!(OpSpec::new(&op).optional_names("names", 2).is_err());
    }
}
