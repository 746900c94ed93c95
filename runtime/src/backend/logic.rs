//! Comparison and selection ops: Equal, Greater, Less, Where, Not, And, Or.

use super::op::Build;

/// The op types of this family and their builders.
pub(super) const OPS: &[(&str, Build)] = &[];
