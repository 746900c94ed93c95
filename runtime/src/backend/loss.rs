//! SoftmaxCrossEntropyLoss: the loss the learning algorithms train with.

use super::op::Build;

/// The op types of this family and their builders.
pub(super) const OPS: &[(&str, Build)] = &[];
