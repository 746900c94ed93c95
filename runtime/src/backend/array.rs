//! Concat, Split, Slice, Gather: ops that select or join parts of tensors.

use super::op::Build;

/// The op types of this family and their builders.
pub(super) const OPS: &[(&str, Build)] = &[];
