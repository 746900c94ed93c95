//! Cast, Constant, ConstantOfShape: ops that make tensors or change their element type.

use super::op::Build;

/// The op types of this family and their builders.
pub(super) const OPS: &[(&str, Build)] = &[];
