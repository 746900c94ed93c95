//! MatMul and Gemm on ndarray's matrix kernels (matrixmultiply): no hand-written product.
//!
//! MatMul follows numpy's `matmul`: a 1-D left operand is a row `[1, K]`
//! and a 1-D right operand a column `[K, 1]`, the added axis removed from
//! the result; operands of rank 3 and more are stacks of matrices whose
//! batch axes broadcast. Each output matrix is one `general_mat_mul` call
//! writing straight into its slice of the output, reading the operands
//! through views (a broadcast batch axis has stride 0) — never copied:
//! matrixmultiply packs its panels from any strides itself. A standard-layout
//! stack times a single matrix is one product of `[batch·M, K]` by `[K, N]`. Gemm computes
//! `alpha·A'·B' + beta·C` for 2-D `A`, `B` (transposed by `transA` /
//! `transB`) and an optional `C` broadcast to `[M, N]`. Both are f32 only;
//! their work is the multiply-add count `M·K·N` (times the batch).

use nodeflow_engine::sync::Arc;

use ndarray::linalg::general_mat_mul;
use ndarray::{ArrayView2, ArrayViewD, Axis, Dimension, Ix2, IxDyn};

use super::broadcast::broadcast_shapes;
use super::op::{out, Attrs, Build, Inputs, TensorOp};
use crate::tensor::{check_shape, Tensor, TensorError};

/// The op types of this family and their builders.
pub(super) const OPS: &[(&str, Build)] = &[("MatMul", |_| Ok(Arc::new(MatMul))), ("Gemm", gemm)];

/// MatMul: numpy `matmul` of inputs 0 and 1.
#[derive(Debug)]
struct MatMul;

/// The shapes of one MatMul: the broadcast batch, the matrix extents, and
/// the final output shape (with a 1-D operand's axis removed).
#[derive(Debug)]
struct MatMulPlan {
    /// The broadcast batch axes.
    batch: Vec<usize>,
    /// Rows of each A matrix (1 for a 1-D A).
    m: usize,
    /// The shared inner extent.
    k: usize,
    /// Columns of each B matrix (1 for a 1-D B).
    n: usize,
    /// The result's shape, without the axes a 1-D operand added.
    output: Vec<usize>,
}

impl MatMul {
    /// Checks the operands' shapes and works out the product's extents,
    /// checking the output's size before anything is allocated.
    fn plan(inputs: &Inputs<'_>) -> Result<MatMulPlan, TensorError> {
        let a = inputs.f32(0)?.shape();
        let b = inputs.f32(1)?.shape();
        let mismatch = |reason: String| TensorError::ShapeMismatch {
            op: inputs.op,
            input: "A, B".to_owned(),
            shapes: vec![a.to_vec(), b.to_vec()],
            reason,
        };
        if a.is_empty() || b.is_empty() {
            return Err(mismatch("a MatMul operand must have rank 1 or more".into()));
        }
        // As matrices: a 1-D A is [1, K], a 1-D B is [K, 1].
        let (a_batch, m, ka) = match a {
            [k] => (&[][..], 1, *k),
            [batch @ .., m, k] => (batch, *m, *k),
            [] => unreachable_rank(),
        };
        let (b_batch, kb, n) = match b {
            [k] => (&[][..], *k, 1),
            [batch @ .., k, n] => (batch, *k, *n),
            [] => unreachable_rank(),
        };
        if ka != kb {
            return Err(mismatch(format!(
                "do not multiply: A has {ka} columns but B has {kb} rows"
            )));
        }
        let batch = broadcast_shapes(inputs.op, "A, B (batch axes)", &[a_batch, b_batch])
            .map_err(|_| mismatch("have batch axes that do not broadcast".into()))?;
        let mut output = batch.clone();
        if a.len() > 1 {
            output.push(m);
        }
        if b.len() > 1 {
            output.push(n);
        }
        let mut full = batch.clone();
        full.extend([m, n]);
        check_shape(&full)?;
        Ok(MatMulPlan {
            batch,
            m,
            k: ka,
            n,
            output,
        })
    }
}

/// The empty-rank arm the slice patterns above need; ranks were checked.
fn unreachable_rank() -> (&'static [usize], usize, usize) {
    (&[], 0, 0)
}

/// `view` as a matrix or a stack of them: a 1-D operand becomes a row
/// (`left`) or a column.
fn promote(view: ArrayViewD<'_, f32>, left: bool) -> ArrayViewD<'_, f32> {
    match (view.ndim(), left) {
        (1, true) => view.insert_axis(Axis(0)),
        (1, false) => view.insert_axis(Axis(1)),
        _ => view,
    }
}

/// The matrix of `stack` (of shape `batch ++ [rows, cols]`) at batch index `at`.
fn matrix_at<'a>(stack: &ArrayViewD<'a, f32>, at: &[usize]) -> Option<ArrayView2<'a, f32>> {
    let mut view = stack.clone();
    for &i in at {
        if i >= view.len_of(Axis(0)) {
            return None;
        }
        view = view.index_axis_move(Axis(0), i);
    }
    view.into_dimensionality::<Ix2>().ok()
}

/// The error for a view that does not have the shape its plan promised
/// (cannot happen once the plan's checks passed; typed all the same).
fn internal(op: &'static str, shapes: Vec<Vec<usize>>) -> TensorError {
    TensorError::ShapeMismatch {
        op,
        input: "A, B".to_owned(),
        shapes,
        reason: "could not be viewed as stacks of matrices".to_owned(),
    }
}

impl TensorOp for MatMul {
    fn eval(&self, inputs: &Inputs<'_>) -> Result<Vec<Tensor>, TensorError> {
        let plan = Self::plan(inputs)?;
        let (a, b) = (inputs.f32(0)?, inputs.f32(1)?);
        let shapes = || vec![a.shape().to_vec(), b.shape().to_vec()];
        let count: usize = plan.batch.iter().product();
        if a.ndim() > 2 && b.ndim() <= 2 && a.is_standard_layout() {
            // A stack against one matrix (a linear layer over a batch): the
            // stack's rows are one [count·M, K] matrix, so one product.
            let rows = a.view().into_shape_with_order((count * plan.m, plan.k));
            let b2 = promote(b.view(), false).into_dimensionality::<Ix2>();
            let (Ok(x), Ok(y)) = (rows, b2) else {
                return Err(internal(inputs.op, shapes()));
            };
            let mut result = ndarray::Array2::<f32>::zeros((count * plan.m, plan.n));
            general_mat_mul(1.0, &x, &y, 0.0, &mut result);
            let result = result
                .into_shape_with_order(IxDyn(&plan.output))
                .map_err(|_| internal(inputs.op, shapes()))?;
            return Ok(vec![out(result)?]);
        }
        let (a2, b2) = (promote(a.view(), true), promote(b.view(), false));
        let stacked = |rows, cols| {
            let mut shape = plan.batch.clone();
            shape.extend([rows, cols]);
            IxDyn(&shape)
        };
        // Broadcast views: a stretched batch axis has stride 0, no copy.
        let (Some(a3), Some(b3)) = (
            a2.broadcast(stacked(plan.m, plan.k)),
            b2.broadcast(stacked(plan.k, plan.n)),
        ) else {
            return Err(internal(inputs.op, shapes()));
        };
        let mut result = ndarray::Array3::<f32>::zeros((count, plan.m, plan.n));
        for (at, mut c) in ndarray::indices(IxDyn(&plan.batch))
            .into_iter()
            .zip(result.outer_iter_mut())
        {
            let (Some(x), Some(y)) = (matrix_at(&a3, at.slice()), matrix_at(&b3, at.slice()))
            else {
                return Err(internal(inputs.op, shapes()));
            };
            general_mat_mul(1.0, &x, &y, 0.0, &mut c);
        }
        let result = result
            .into_shape_with_order(IxDyn(&plan.output))
            .map_err(|_| internal(inputs.op, shapes()))?;
        Ok(vec![out(result)?])
    }

    fn work(&self, inputs: &Inputs<'_>) -> u64 {
        match Self::plan(inputs) {
            Ok(plan) => multiply_adds(plan.batch.iter().product(), plan.m, plan.k, plan.n),
            Err(_) => 0,
        }
    }
}

/// `batch·m·k·n`, saturating.
fn multiply_adds(batch: usize, m: usize, k: usize, n: usize) -> u64 {
    [batch, m, k, n]
        .iter()
        .fold(1u64, |acc, &d| acc.saturating_mul(d as u64))
}

/// Gemm: `alpha·op(A)·op(B) + beta·C`.
#[derive(Debug)]
struct Gemm {
    /// Scales the product (default 1).
    alpha: f32,
    /// Scales C (default 1).
    beta: f32,
    /// A is given as `[K, M]`.
    trans_a: bool,
    /// B is given as `[N, K]`.
    trans_b: bool,
}

/// Builds Gemm from `alpha`, `beta`, `transA` and `transB`.
fn gemm(attrs: &Attrs<'_>) -> Result<Arc<dyn TensorOp>, TensorError> {
    Ok(Arc::new(Gemm {
        alpha: attrs.float_or("alpha", 1.0)?,
        beta: attrs.float_or("beta", 1.0)?,
        trans_a: attrs.flag_or("transA", false)?,
        trans_b: attrs.flag_or("transB", false)?,
    }))
}

impl Gemm {
    /// `(M, K, N)`, checking A and B are matrices that multiply and C
    /// broadcasts to `[M, N]`.
    fn dims(&self, inputs: &Inputs<'_>) -> Result<(usize, usize, usize), TensorError> {
        let a = inputs.f32(0)?.shape();
        let b = inputs.f32(1)?.shape();
        let shapes = || vec![a.to_vec(), b.to_vec()];
        let ([ra, ca], [rb, cb]) = (a, b) else {
            return Err(TensorError::ShapeMismatch {
                op: inputs.op,
                input: "A, B".to_owned(),
                shapes: shapes(),
                reason: "must both be matrices (rank 2)".to_owned(),
            });
        };
        let (m, ka) = if self.trans_a { (*ca, *ra) } else { (*ra, *ca) };
        let (kb, n) = if self.trans_b { (*cb, *rb) } else { (*rb, *cb) };
        if ka != kb {
            return Err(TensorError::ShapeMismatch {
                op: inputs.op,
                input: "A, B".to_owned(),
                shapes: shapes(),
                reason: format!(
                    "do not multiply (transA={}, transB={}): op(A) has {ka} columns but op(B) has {kb} rows",
                    u8::from(self.trans_a),
                    u8::from(self.trans_b)
                ),
            });
        }
        check_shape(&[m, n])?;
        if inputs.opt(2).is_some() {
            let c = inputs.f32(2)?;
            if c.ndim() > 2 || c.broadcast(IxDyn(&[m, n])).is_none() {
                return Err(TensorError::ShapeMismatch {
                    op: inputs.op,
                    input: "A, B, C".to_owned(),
                    shapes: vec![a.to_vec(), b.to_vec(), c.shape().to_vec()],
                    reason: format!("C does not broadcast to the product's shape [{m}, {n}]"),
                });
            }
        }
        Ok((m, ka, n))
    }
}

impl TensorOp for Gemm {
    fn eval(&self, inputs: &Inputs<'_>) -> Result<Vec<Tensor>, TensorError> {
        let (m, _, n) = self.dims(inputs)?;
        let (a, b) = (inputs.f32(0)?, inputs.f32(1)?);
        let shapes = || vec![a.shape().to_vec(), b.shape().to_vec()];
        let (Ok(a), Ok(b)) = (
            a.view().into_dimensionality::<Ix2>(),
            b.view().into_dimensionality::<Ix2>(),
        ) else {
            return Err(internal(inputs.op, shapes()));
        };
        let a = if self.trans_a { a.reversed_axes() } else { a };
        let b = if self.trans_b { b.reversed_axes() } else { b };
        // beta·C first (so 0·inf is NaN, as ONNX computes it), then the
        // product accumulates onto it.
        let mut y = match inputs.opt(2) {
            Some(_) => {
                let c = inputs.f32(2)?;
                let beta = self.beta;
                let Some(c) = c.broadcast((m, n)) else {
                    return Err(internal(inputs.op, shapes()));
                };
                c.mapv(|v| beta * v)
            }
            None => ndarray::Array2::zeros((m, n)),
        };
        general_mat_mul(self.alpha, &a, &b, 1.0, &mut y);
        Ok(vec![out(y.into_dyn())?])
    }

    fn work(&self, inputs: &Inputs<'_>) -> u64 {
        match self.dims(inputs) {
            Ok((m, k, n)) => multiply_adds(1, m, k, n),
            Err(_) => 0,
        }
    }
}
