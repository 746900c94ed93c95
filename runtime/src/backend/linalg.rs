//! MatMul and Gemm on ndarray's matrix kernels (matrixmultiply): no hand-written product.

use super::op::Build;

/// The op types of this family and their builders.
pub(super) const OPS: &[(&str, Build)] = &[];
