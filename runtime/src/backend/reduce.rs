//! Reductions over axes: ReduceSum, ReduceMean, ReduceMax, ReduceMin, ReduceProd, ArgMax, ArgMin.
//!
//! The reduced axes come from the `axes` attribute (older opsets) when it
//! is present, else from the optional i64 input 1 (ReduceSum from opset
//! 13, the others from 18). No axes, or an empty list, reduces every axis
//! — unless `noop_with_empty_axes` is 1, when the input is returned as it
//! is. `keepdims` (default 1) keeps each reduced axis with extent 1.
//!
//! Element types: f32 and i64 for all; bool too for ReduceMax ("any") and
//! ReduceMin ("all"), as opset 20 allows. f32 sums, means and products
//! accumulate in f64 and round once; integer sums and products wrap on
//! overflow; an i64 mean truncates toward zero (numpy's mean cast back).
//! An empty reduction yields the identity: 0 for a sum, 1 for a product,
//! `-inf` / `+inf` (i64: its minimum / maximum; bool: false / true) for
//! ReduceMax / ReduceMin, and NaN for an f32 mean (an i64 mean of nothing
//! is refused). NaN propagates through ReduceMax / ReduceMin.
//!
//! ArgMax / ArgMin (`axis` default 0, `keepdims` default 1,
//! `select_last_index` default 0) return i64 indices; NaN counts as
//! the extreme value for both, as in numpy, and an empty axis is refused.

use nodeflow_engine::sync::Arc;

use ndarray::{ArrayD, ArrayView1, ArrayViewD, Axis};

use super::math::unsupported;
use super::op::{norm_axes, norm_axis, out, Attrs, Build, Inputs, TensorOp};
use crate::tensor::{DType, Tensor, TensorError};

/// The op types of this family and their builders.
pub(super) const OPS: &[(&str, Build)] = &[
    ("ReduceSum", |a| reduce(a, Kind::Sum)),
    ("ReduceMean", |a| reduce(a, Kind::Mean)),
    ("ReduceMax", |a| reduce(a, Kind::Max)),
    ("ReduceMin", |a| reduce(a, Kind::Min)),
    ("ReduceProd", |a| reduce(a, Kind::Prod)),
    ("ArgMax", |a| arg(a, true)),
    ("ArgMin", |a| arg(a, false)),
];

/// Which reduction a [`Reduce`] computes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// ReduceSum.
    Sum,
    /// ReduceMean.
    Mean,
    /// ReduceMax.
    Max,
    /// ReduceMin.
    Min,
    /// ReduceProd.
    Prod,
}

/// A `Reduce*` op with its attributes.
#[derive(Debug)]
struct Reduce {
    /// Which reduction.
    kind: Kind,
    /// The `axes` attribute, if given (it wins over input 1).
    axes: Option<Vec<i64>>,
    /// Keep reduced axes with extent 1 (default 1).
    keepdims: bool,
    /// Return the input unchanged when no axes are given (default 0).
    noop_with_empty_axes: bool,
}

/// Builds a `Reduce*` op of `kind` from `axes`, `keepdims` and `noop_with_empty_axes`.
fn reduce(attrs: &Attrs<'_>, kind: Kind) -> Result<Arc<dyn TensorOp>, TensorError> {
    Ok(Arc::new(Reduce {
        kind,
        axes: attrs.ints("axes")?,
        keepdims: attrs.flag_or("keepdims", true)?,
        noop_with_empty_axes: attrs.flag_or("noop_with_empty_axes", false)?,
    }))
}

impl Reduce {
    /// The axes to reduce, ascending; `None` when the input passes
    /// through unchanged (no axes and `noop_with_empty_axes`).
    fn axes(&self, inputs: &Inputs<'_>, rank: usize) -> Result<Option<Vec<usize>>, TensorError> {
        let (listed, from_input) = match &self.axes {
            Some(axes) => (axes.clone(), false),
            None => (inputs.ints_opt(1)?.unwrap_or_default(), true),
        };
        if listed.is_empty() {
            return Ok((!self.noop_with_empty_axes).then(|| (0..rank).collect()));
        }
        let mut axes = norm_axes(inputs.op, "axes", &listed, rank).map_err(|e| match e {
            TensorError::BadAttribute { reason, .. } if from_input => inputs.bad(1, reason),
            other => other,
        })?;
        axes.sort_unstable();
        Ok(Some(axes))
    }

    /// Puts the reduced `axes` (ascending) back with extent 1 when `keepdims`.
    fn keep<T>(&self, reduced: ArrayD<T>, axes: &[usize]) -> ArrayD<T> {
        keep_axes(reduced, axes, self.keepdims)
    }
}

impl TensorOp for Reduce {
    fn eval(&self, inputs: &Inputs<'_>) -> Result<Vec<Tensor>, TensorError> {
        let x = inputs.get(0)?;
        let Some(axes) = self.axes(inputs, x.rank())? else {
            return Ok(vec![x.clone()]);
        };
        let result = match x.dtype() {
            DType::F32 => {
                out(self.keep(reduce_f32(self.kind, inputs.f32(0)?.view(), &axes), &axes))?
            }
            DType::I64 => {
                let x = inputs.array::<i64>(0)?.view();
                out(self.keep(reduce_i64(inputs, self.kind, x, &axes)?, &axes))?
            }
            DType::Bool => {
                let x = inputs.array::<bool>(0)?.view();
                let reduced = match self.kind {
                    // Opset 20: the maximum of booleans is "any", the minimum "all".
                    Kind::Max => fold_axes(x, &axes, false, |v| v, |a, b| a || b),
                    Kind::Min => fold_axes(x, &axes, true, |v| v, |a, b| a && b),
                    _ => return Err(unsupported(inputs, 0, "float32 or int64")),
                };
                out(self.keep(reduced, &axes))?
            }
        };
        Ok(vec![result])
    }
}

/// `reduced` with each of `axes` (ascending) reinserted with extent 1, if `keep`.
fn keep_axes<T>(reduced: ArrayD<T>, axes: &[usize], keep: bool) -> ArrayD<T> {
    if !keep {
        return reduced;
    }
    axes.iter()
        .fold(reduced, |acc, &axis| acc.insert_axis(Axis(axis)))
}

/// The product of the extents of `axes` (how many elements each output averages).
fn reduced_count(shape: &[usize], axes: &[usize]) -> usize {
    axes.iter().filter_map(|&a| shape.get(a)).product()
}

/// Reduces an f32 view over `axes` (ascending) by `kind`.
fn reduce_f32(kind: Kind, x: ArrayViewD<'_, f32>, axes: &[usize]) -> ArrayD<f32> {
    let wide = |v: f32| f64::from(v);
    match kind {
        Kind::Sum => fold_axes(x, axes, 0.0, wide, |a, b| a + b).mapv(|v| v as f32),
        Kind::Prod => fold_axes(x, axes, 1.0, wide, |a, b| a * b).mapv(|v| v as f32),
        Kind::Mean => {
            let count = reduced_count(x.shape(), axes) as f64;
            fold_axes(x, axes, 0.0, wide, |a, b| a + b).mapv(|v| (v / count) as f32)
        }
        Kind::Max => fold_axes(
            x,
            axes,
            f32::NEG_INFINITY,
            |v| v,
            |a, b| nan_or(a, b, a.max(b)),
        ),
        Kind::Min => fold_axes(x, axes, f32::INFINITY, |v| v, |a, b| nan_or(a, b, a.min(b))),
    }
}

/// NaN if either of `a`, `b` is NaN, else `picked`.
fn nan_or(a: f32, b: f32, picked: f32) -> f32 {
    if a.is_nan() || b.is_nan() {
        f32::NAN
    } else {
        picked
    }
}

/// Reduces an i64 view over `axes` (ascending) by `kind`; an empty mean is refused.
fn reduce_i64(
    inputs: &Inputs<'_>,
    kind: Kind,
    x: ArrayViewD<'_, i64>,
    axes: &[usize],
) -> Result<ArrayD<i64>, TensorError> {
    Ok(match kind {
        Kind::Sum => fold_axes(x, axes, 0, |v| v, i64::wrapping_add),
        Kind::Prod => fold_axes(x, axes, 1, |v| v, i64::wrapping_mul),
        Kind::Max => fold_axes(x, axes, i64::MIN, |v| v, i64::max),
        Kind::Min => fold_axes(x, axes, i64::MAX, |v| v, i64::min),
        Kind::Mean => {
            let count = reduced_count(x.shape(), axes);
            if count == 0 {
                return Err(inputs.bad(0, "the int64 mean of an empty set of values is undefined"));
            }
            let count = count as f64;
            fold_axes(x, axes, 0.0, |v| v as f64, |a, b| a + b).mapv(|v| (v / count) as i64)
        }
    })
}

/// Reduces `x` over `axes` (ascending, each an axis of `x`): every element
/// is `lift`ed into the accumulator type and folded into `init` with
/// `combine`, one axis at a time from the last, so the earlier axes keep
/// their positions. With no axes every element is lifted alone.
fn fold_axes<A: Copy, B: Copy>(
    x: ArrayViewD<'_, A>,
    axes: &[usize],
    init: B,
    lift: impl Fn(A) -> B,
    combine: impl Fn(B, B) -> B,
) -> ArrayD<B> {
    let mut order = axes.iter().rev();
    let Some(&last) = order.next() else {
        return x.mapv(lift);
    };
    let mut acc = fold_axis(x, last, init, |b, &a| combine(b, lift(a)));
    for &axis in order {
        acc = fold_axis(acc.view(), axis, init, |b, &c| combine(b, c));
    }
    acc
}

/// Folds `x` along one `axis`: lane by lane when the lane is contiguous
/// (the innermost axis), otherwise slice by slice into the output so the
/// inner loop runs over contiguous memory.
fn fold_axis<T, B: Copy>(
    x: ArrayViewD<'_, T>,
    axis: usize,
    init: B,
    f: impl Fn(B, &T) -> B,
) -> ArrayD<B> {
    if x.stride_of(Axis(axis)) == 1 {
        x.map_axis(Axis(axis), |lane| lane.iter().fold(init, &f))
    } else {
        x.fold_axis(Axis(axis), init, |b, t| f(*b, t))
    }
}

/// ArgMax or ArgMin with its attributes.
#[derive(Debug)]
struct Arg {
    /// ArgMax when true, ArgMin otherwise.
    max: bool,
    /// The axis searched (default 0; negative counts from the end).
    axis: i64,
    /// Keep the searched axis with extent 1 (default 1).
    keepdims: bool,
    /// On ties, the last index instead of the first (default 0).
    select_last_index: bool,
}

/// Builds ArgMax (`max`) or ArgMin from `axis`, `keepdims` and `select_last_index`.
fn arg(attrs: &Attrs<'_>, max: bool) -> Result<Arc<dyn TensorOp>, TensorError> {
    Ok(Arc::new(Arg {
        max,
        axis: attrs.int_or("axis", 0)?,
        keepdims: attrs.flag_or("keepdims", true)?,
        select_last_index: attrs.flag_or("select_last_index", false)?,
    }))
}

impl TensorOp for Arg {
    fn eval(&self, inputs: &Inputs<'_>) -> Result<Vec<Tensor>, TensorError> {
        let x = inputs.get(0)?;
        let axis = norm_axis(inputs.op, "axis", self.axis, x.rank())?;
        if x.shape().get(axis) == Some(&0) {
            return Err(inputs.bad(
                0,
                format!(
                    "axis {axis} is empty, so it has no {}",
                    if self.max { "maximum" } else { "minimum" }
                ),
            ));
        }
        let (max, last) = (self.max, self.select_last_index);
        let indices = match x.dtype() {
            DType::F32 => inputs
                .f32(0)?
                .map_axis(Axis(axis), |lane| pick(lane, max, last, f32::is_nan)),
            DType::I64 => inputs
                .array::<i64>(0)?
                .map_axis(Axis(axis), |lane| pick(lane, max, last, |_| false)),
            _ => return Err(unsupported(inputs, 0, "float32 or int64")),
        };
        Ok(vec![out(keep_axes(indices, &[axis], self.keepdims))?])
    }
}

/// The index of the largest (`max`) or smallest element of `lane`: the
/// first such unless `last`; a NaN (per `is_nan`) beats every number.
fn pick<T: Copy + PartialOrd>(
    lane: ArrayView1<'_, T>,
    max: bool,
    last: bool,
    is_nan: impl Fn(T) -> bool,
) -> i64 {
    let mut best: Option<(usize, T)> = None;
    for (i, &v) in lane.iter().enumerate() {
        let better = match best {
            None => true,
            Some((_, b)) if is_nan(b) => last && is_nan(v),
            Some(_) if is_nan(v) => true,
            Some((_, b)) => {
                let wins = if max { v > b } else { v < b };
                wins || (last && v == b)
            }
        };
        if better {
            best = Some((i, v));
        }
    }
    best.map_or(0, |(i, _)| i as i64)
}
