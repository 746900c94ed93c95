//! Ops that re-describe a tensor without computing on its elements: Reshape, Transpose, Squeeze, Unsqueeze, Flatten, Expand, Identity, Shape.

use super::op::Build;

/// The op types of this family and their builders.
pub(super) const OPS: &[(&str, Build)] = &[];
