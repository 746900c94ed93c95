//! Ops that re-describe a tensor without computing on its elements: Reshape, Transpose, Squeeze, Unsqueeze, Flatten, Expand, Identity, Shape, Size.
//!
//! Every op takes every element type (f32, i64, bool). Reshape, Squeeze,
//! Unsqueeze, Flatten and Identity hand out the input's buffer under a new
//! shape when its layout allows (a reference-count bump, no copy);
//! Transpose and Expand write a fresh row-major array. Shape and Size
//! answer with i64 tensors.
//!
//! This file also holds what the shape, array, logic and cast families
//! share: [`by_dtype!`](by_dtype) (run a generic body for the element type
//! of a tensor), [`materialize`] (a view copied out row-major) and
//! [`shape_input`] (a shape given as an input, capped before it is read).

use nodeflow_engine::sync::Arc;

use ndarray::{ArrayD, ArrayViewD, IxDyn};

use super::broadcast::broadcast_shapes;
use super::op::{norm_axes, out, to_shape, Attrs, Build, Inputs, TensorOp};
use crate::tensor::{check_shape, ArcArrayD, Element, Tensor, TensorError, MAX_RANK};

/// The op types of this family and their builders.
pub(super) const OPS: &[(&str, Build)] = &[
    ("Reshape", reshape),
    ("Transpose", transpose),
    ("Squeeze", squeeze),
    ("Unsqueeze", unsqueeze),
    ("Flatten", flatten),
    ("Expand", |_| Ok(Arc::new(Expand))),
    ("Identity", |_| Ok(Arc::new(Identity))),
    ("Shape", shape),
    ("Size", |_| Ok(Arc::new(Size))),
];

/// Runs `$body` with the type name `$t` bound to the element type of
/// `$dtype` (a [`crate::tensor::DType`]): one dispatch per op, generic code
/// inside.
macro_rules! by_dtype {
    ($dtype:expr, $t:ident => $body:expr) => {
        match $dtype {
            $crate::tensor::DType::F32 => {
                type $t = f32;
                $body
            }
            $crate::tensor::DType::I64 => {
                type $t = i64;
                $body
            }
            $crate::tensor::DType::Bool => {
                type $t = bool;
                $body
            }
        }
    };
}
pub(super) use by_dtype;

/// `view` copied into a fresh row-major array (the layout every op's output
/// has unless it shares its input's buffer).
pub(super) fn materialize<T: Element>(view: ArrayViewD<'_, T>) -> ArrayD<T> {
    view.as_standard_layout().into_owned()
}

/// Input `index` as a list of dimensions (a rank-0 or 1-D i64 tensor),
/// refused before it is read if it names more than [`MAX_RANK`] axes.
pub(super) fn shape_input(inputs: &Inputs<'_>, index: usize) -> Result<Vec<i64>, TensorError> {
    let tensor = inputs.get(index)?;
    if tensor.len() > MAX_RANK {
        return Err(inputs.bad(
            index,
            format!(
                "a shape of {} dimensions is over the cap of {MAX_RANK} axes",
                tensor.len()
            ),
        ));
    }
    inputs.ints(index)
}

/// `tensor`'s elements under `shape` (same element count, checked by the
/// caller): the same buffer when its layout allows, a copy otherwise.
pub(super) fn reshaped(
    op: &'static str,
    tensor: &Tensor,
    shape: &[usize],
) -> Result<Tensor, TensorError> {
    check_shape(shape)?;
    by_dtype!(tensor.dtype(), T => {
        let array = tensor.array::<T>().ok_or_else(|| internal(op, tensor))?;
        let reshaped = array
            .clone()
            .into_shape_clone(IxDyn(shape))
            .map_err(|e| TensorError::ShapeMismatch {
                op,
                input: "input 0".to_owned(),
                shapes: vec![tensor.shape().to_vec(), shape.to_vec()],
                reason: format!("cannot be reshaped into one another: {e}"),
            })?;
        Tensor::from_shared(reshaped)
    })
}

/// The work of an op that re-describes its input 0: nothing when the
/// buffer can be shared, a copy of it otherwise.
fn view_work(inputs: &Inputs<'_>) -> u64 {
    let Some(tensor) = inputs.opt(0) else {
        return 1;
    };
    let standard = by_dtype!(tensor.dtype(), T => {
        tensor.array::<T>().is_some_and(ArcArrayD::<T>::is_standard_layout)
    });
    if standard {
        1
    } else {
        tensor.len() as u64
    }
}

/// The (unreachable) error for a tensor whose array is not of its own dtype.
fn internal(op: &'static str, tensor: &Tensor) -> TensorError {
    TensorError::DType {
        op,
        input: 0,
        found: tensor.dtype(),
        expected: tensor.dtype().name(),
    }
}

/// Reshape: the new shape from input 1 (or, in opset-1 graphs, the `shape`
/// attribute). A `0` copies the input's extent at that position unless
/// `allowzero` = 1 (then it is a literal 0); one `-1` is inferred.
#[derive(Debug)]
struct Reshape {
    allowzero: bool,
    shape: Option<Vec<i64>>,
}

fn reshape(attrs: &Attrs<'_>) -> Result<Arc<dyn TensorOp>, TensorError> {
    Ok(Arc::new(Reshape {
        allowzero: attrs.flag_or("allowzero", false)?,
        shape: attrs.ints("shape")?,
    }))
}

impl Reshape {
    /// The output shape `dims` asks for, resolved against the input's.
    fn target(
        &self,
        inputs: &Inputs<'_>,
        input: &[usize],
        dims: &[i64],
    ) -> Result<Vec<usize>, TensorError> {
        let fail = |reason: String| {
            inputs.bad(
                1,
                format!("cannot reshape input 0 of shape {input:?} to {dims:?}: {reason}"),
            )
        };
        if dims.len() > MAX_RANK {
            return Err(fail(format!("over the cap of {MAX_RANK} axes")));
        }
        let mut shape = Vec::with_capacity(dims.len());
        let mut inferred = None;
        for (position, &dim) in dims.iter().enumerate() {
            let extent = match dim {
                -1 if inferred.is_some() => {
                    return Err(fail("more than one dimension is -1".to_owned()))
                }
                -1 => {
                    inferred = Some(position);
                    1
                }
                0 if !self.allowzero => *input.get(position).ok_or_else(|| {
                    fail(format!(
                        "the 0 at position {position} copies an input axis the rank-{} input lacks",
                        input.len()
                    ))
                })?,
                d => usize::try_from(d)
                    .map_err(|_| fail(format!("dimension {d} is negative (only -1 is allowed)")))?,
            };
            shape.push(extent);
        }
        if self.allowzero && inferred.is_some() && dims.contains(&0) {
            return Err(fail(
                "with allowzero = 1, 0 and -1 cannot be mixed".to_owned(),
            ));
        }
        let total: usize = input.iter().product();
        let known = shape
            .iter()
            .try_fold(1usize, |acc, &d| acc.checked_mul(d))
            .ok_or_else(|| fail("the dimensions overflow".to_owned()))?;
        match inferred {
            Some(position) => {
                if known == 0 || total % known != 0 {
                    return Err(fail(format!(
                        "{total} elements do not divide into the other dimensions' {known}"
                    )));
                }
                if let Some(slot) = shape.get_mut(position) {
                    *slot = total / known;
                }
            }
            None if known != total => {
                return Err(fail(format!(
                    "the input has {total} elements, the shape {known}"
                )))
            }
            None => {}
        }
        Ok(shape)
    }
}

impl TensorOp for Reshape {
    fn eval(&self, inputs: &Inputs<'_>) -> Result<Vec<Tensor>, TensorError> {
        let data = inputs.get(0)?;
        let dims = match &self.shape {
            Some(dims) => dims.clone(),
            None => shape_input(inputs, 1)?,
        };
        let shape = self.target(inputs, data.shape(), &dims)?;
        Ok(vec![reshaped(inputs.op, data, &shape)?])
    }

    fn work(&self, inputs: &Inputs<'_>) -> u64 {
        view_work(inputs)
    }
}

/// Transpose: axis `i` of the output is axis `perm[i]` of the input;
/// `perm` defaults to the axes reversed.
#[derive(Debug)]
struct Transpose {
    perm: Option<Vec<usize>>,
}

fn transpose(attrs: &Attrs<'_>) -> Result<Arc<dyn TensorOp>, TensorError> {
    let Some(perm) = attrs.ints("perm")? else {
        return Ok(Arc::new(Transpose { perm: None }));
    };
    let mut seen = vec![false; perm.len()];
    let mut axes = Vec::with_capacity(perm.len());
    for &p in &perm {
        let slot = usize::try_from(p).ok().filter(|&p| p < perm.len());
        match slot.and_then(|p| seen.get_mut(p).map(|s| (p, s))) {
            Some((p, s)) if !*s => {
                *s = true;
                axes.push(p);
            }
            _ => {
                return Err(attrs.error(
                    "perm",
                    format!("{perm:?} is not a permutation of 0..{}", perm.len()),
                ))
            }
        }
    }
    Ok(Arc::new(Transpose { perm: Some(axes) }))
}

impl TensorOp for Transpose {
    fn eval(&self, inputs: &Inputs<'_>) -> Result<Vec<Tensor>, TensorError> {
        let data = inputs.get(0)?;
        let rank = data.rank();
        let perm = match &self.perm {
            Some(perm) if perm.len() != rank => {
                return Err(TensorError::BadAttribute {
                    op: inputs.op,
                    name: "perm".to_owned(),
                    reason: format!(
                        "{perm:?} has {} axes but input 0 has shape {:?}",
                        perm.len(),
                        data.shape()
                    ),
                })
            }
            Some(perm) => perm.clone(),
            None => (0..rank).rev().collect(),
        };
        if perm.iter().enumerate().all(|(i, &p)| i == p) {
            return Ok(vec![data.clone()]);
        }
        let result = by_dtype!(data.dtype(), T => {
            let view = inputs.array::<T>(0)?.view().permuted_axes(IxDyn(&perm));
            out(materialize(view))?
        });
        Ok(vec![result])
    }
}

/// Where a list of axes came from, for the error when one is out of range.
#[derive(Clone, Copy)]
enum AxesFrom {
    Attribute,
    Input(usize),
}

/// Resolves `axes` against `rank` like [`norm_axes`], reporting a bad axis
/// against the input it came from when it was not an attribute.
fn resolve_axes(
    inputs: &Inputs<'_>,
    from: AxesFrom,
    axes: &[i64],
    rank: usize,
) -> Result<Vec<usize>, TensorError> {
    norm_axes(inputs.op, "axes", axes, rank).map_err(|e| match (from, e) {
        (AxesFrom::Input(index), TensorError::BadAttribute { reason, .. }) => {
            inputs.bad(index, reason)
        }
        (_, e) => e,
    })
}

/// The axes from the `axes` attribute (older opsets) or else input 1.
fn axes_of(
    attr: &Option<Vec<i64>>,
    inputs: &Inputs<'_>,
) -> Result<Option<(Vec<i64>, AxesFrom)>, TensorError> {
    if let Some(axes) = attr {
        return Ok(Some((axes.clone(), AxesFrom::Attribute)));
    }
    Ok(inputs.ints_opt(1)?.map(|axes| (axes, AxesFrom::Input(1))))
}

/// Squeeze: removes the listed axes (each of extent 1), or every axis of
/// extent 1 when none are listed.
#[derive(Debug)]
struct Squeeze {
    axes: Option<Vec<i64>>,
}

fn squeeze(attrs: &Attrs<'_>) -> Result<Arc<dyn TensorOp>, TensorError> {
    Ok(Arc::new(Squeeze {
        axes: attrs.ints("axes")?,
    }))
}

impl TensorOp for Squeeze {
    fn eval(&self, inputs: &Inputs<'_>) -> Result<Vec<Tensor>, TensorError> {
        let data = inputs.get(0)?;
        let dims = data.shape();
        let removed = match axes_of(&self.axes, inputs)? {
            None => (0..dims.len())
                .filter(|&a| dims.get(a) == Some(&1))
                .collect(),
            Some((axes, from)) => {
                let axes = resolve_axes(inputs, from, &axes, dims.len())?;
                if let Some(&axis) = axes.iter().find(|&&a| dims.get(a) != Some(&1)) {
                    return Err(inputs.bad(
                        0,
                        format!(
                            "axis {axis} has extent {}, and Squeeze removes only axes of extent 1",
                            dims.get(axis).copied().unwrap_or(0)
                        ),
                    ));
                }
                axes
            }
        };
        let shape: Vec<usize> = dims
            .iter()
            .enumerate()
            .filter(|(axis, _)| !removed.contains(axis))
            .map(|(_, &d)| d)
            .collect();
        Ok(vec![reshaped(inputs.op, data, &shape)?])
    }

    fn work(&self, inputs: &Inputs<'_>) -> u64 {
        view_work(inputs)
    }
}

/// Unsqueeze: inserts axes of extent 1 at the listed positions of the
/// output (negative positions count from the output's last axis).
#[derive(Debug)]
struct Unsqueeze {
    axes: Option<Vec<i64>>,
}

fn unsqueeze(attrs: &Attrs<'_>) -> Result<Arc<dyn TensorOp>, TensorError> {
    Ok(Arc::new(Unsqueeze {
        axes: attrs.ints("axes")?,
    }))
}

impl TensorOp for Unsqueeze {
    fn eval(&self, inputs: &Inputs<'_>) -> Result<Vec<Tensor>, TensorError> {
        let data = inputs.get(0)?;
        let (axes, from) = axes_of(&self.axes, inputs)?.ok_or(TensorError::MissingInput {
            op: inputs.op,
            input: 1,
        })?;
        let rank = data.rank().saturating_add(axes.len());
        if rank > MAX_RANK {
            return Err(TensorError::Rank {
                rank,
                cap: MAX_RANK,
            });
        }
        let inserted = resolve_axes(inputs, from, &axes, rank)?;
        let mut dims = data.shape().iter();
        let shape: Vec<usize> = (0..rank)
            .map(|axis| {
                if inserted.contains(&axis) {
                    1
                } else {
                    dims.next().copied().unwrap_or(1)
                }
            })
            .collect();
        Ok(vec![reshaped(inputs.op, data, &shape)?])
    }

    fn work(&self, inputs: &Inputs<'_>) -> u64 {
        view_work(inputs)
    }
}

/// Flatten: a 2-D view, axes before `axis` (default 1) folded into the
/// first dimension and the rest into the second.
#[derive(Debug)]
struct Flatten {
    axis: i64,
}

fn flatten(attrs: &Attrs<'_>) -> Result<Arc<dyn TensorOp>, TensorError> {
    Ok(Arc::new(Flatten {
        axis: attrs.int_or("axis", 1)?,
    }))
}

impl TensorOp for Flatten {
    fn eval(&self, inputs: &Inputs<'_>) -> Result<Vec<Tensor>, TensorError> {
        let data = inputs.get(0)?;
        let dims = data.shape();
        let rank = dims.len() as i64;
        if self.axis < -rank || self.axis > rank {
            return Err(TensorError::BadAttribute {
                op: inputs.op,
                name: "axis".to_owned(),
                reason: format!(
                    "axis {} is outside -{rank}..={rank} for input 0 of shape {dims:?}",
                    self.axis
                ),
            });
        }
        let axis = if self.axis < 0 {
            self.axis + rank
        } else {
            self.axis
        } as usize;
        let (outer, inner) = dims.split_at(axis.min(dims.len()));
        let shape = [outer.iter().product(), inner.iter().product()];
        Ok(vec![reshaped(inputs.op, data, &shape)?])
    }

    fn work(&self, inputs: &Inputs<'_>) -> u64 {
        view_work(inputs)
    }
}

/// Expand: input 0 broadcast with the shape in input 1 (numpy rules, both
/// ways: the output is the broadcast of the two shapes).
#[derive(Debug)]
struct Expand;

impl Expand {
    fn output_shape(inputs: &Inputs<'_>) -> Result<Vec<usize>, TensorError> {
        let data = inputs.get(0)?;
        let shape = to_shape(inputs, 1, &shape_input(inputs, 1)?)?;
        broadcast_shapes(inputs.op, "input 0 and shape", &[data.shape(), &shape])
    }
}

impl TensorOp for Expand {
    fn eval(&self, inputs: &Inputs<'_>) -> Result<Vec<Tensor>, TensorError> {
        let data = inputs.get(0)?;
        let shape = Self::output_shape(inputs)?;
        if shape == data.shape() {
            return Ok(vec![data.clone()]);
        }
        let result = by_dtype!(data.dtype(), T => {
            let array = inputs.array::<T>(0)?;
            let view = array.broadcast(IxDyn(&shape)).ok_or_else(|| TensorError::ShapeMismatch {
                op: inputs.op,
                input: "input 0 and shape".to_owned(),
                shapes: vec![data.shape().to_vec(), shape.clone()],
                reason: "do not broadcast".to_owned(),
            })?;
            out(materialize(view))?
        });
        Ok(vec![result])
    }

    fn work(&self, inputs: &Inputs<'_>) -> u64 {
        Self::output_shape(inputs).map_or(1, |s| s.iter().product::<usize>() as u64)
    }
}

/// Identity: input 0, shared.
#[derive(Debug)]
struct Identity;

impl TensorOp for Identity {
    fn eval(&self, inputs: &Inputs<'_>) -> Result<Vec<Tensor>, TensorError> {
        Ok(vec![inputs.get(0)?.clone()])
    }

    fn work(&self, _: &Inputs<'_>) -> u64 {
        1
    }
}

/// Shape: input 0's extents as a 1-D i64 tensor, optionally only axes
/// `start..end` (opset 15; negative values count from the end, both
/// clamped to `0..=rank`).
#[derive(Debug)]
struct ShapeOp {
    start: i64,
    end: Option<i64>,
}

fn shape(attrs: &Attrs<'_>) -> Result<Arc<dyn TensorOp>, TensorError> {
    Ok(Arc::new(ShapeOp {
        start: attrs.int_or("start", 0)?,
        end: attrs.int("end")?,
    }))
}

impl TensorOp for ShapeOp {
    fn eval(&self, inputs: &Inputs<'_>) -> Result<Vec<Tensor>, TensorError> {
        let dims = inputs.get(0)?.shape();
        let rank = dims.len() as i64;
        let clamp = |v: i64| (if v < 0 { v.saturating_add(rank) } else { v }).clamp(0, rank);
        let start = clamp(self.start) as usize;
        let end = clamp(self.end.unwrap_or(rank)) as usize;
        let picked: Vec<i64> = dims
            .get(start..end.max(start))
            .unwrap_or_default()
            .iter()
            .map(|&d| d as i64)
            .collect();
        Ok(vec![Tensor::from_i64(vec![picked.len()], picked)?])
    }

    fn work(&self, _: &Inputs<'_>) -> u64 {
        1
    }
}

/// Size: input 0's element count as an i64 scalar.
#[derive(Debug)]
struct Size;

impl TensorOp for Size {
    fn eval(&self, inputs: &Inputs<'_>) -> Result<Vec<Tensor>, TensorError> {
        Ok(vec![Tensor::scalar_i64(inputs.get(0)?.len() as i64)])
    }

    fn work(&self, _: &Inputs<'_>) -> u64 {
        1
    }
}
