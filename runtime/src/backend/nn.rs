//! Activations: Relu, LeakyRelu, Sigmoid, Tanh, Gelu, Softmax, LogSoftmax.

use super::op::Build;

/// The op types of this family and their builders.
pub(super) const OPS: &[(&str, Build)] = &[];
