//! Concat, Split, Slice, Gather: ops that select or join parts of tensors.
//!
//! Every op takes every element type (f32, i64, bool); indices, starts,
//! ends, axes, steps and split sizes are i64. Outputs are fresh row-major
//! arrays (a single-input Concat shares its input), so a small slice never
//! keeps a large buffer alive behind a small byte charge.

use nodeflow_engine::sync::Arc;

use ndarray::{ArrayD, ArrayViewD, Axis, IxDyn, Slice as Range};

use super::math::same_type;
use super::op::{norm_axis, out, Attrs, Build, Inputs, TensorOp};
use super::shape::{by_dtype, materialize};
use crate::tensor::{check_shape, ArcArrayD, Element, Tensor, TensorError};

/// The op types of this family and their builders.
pub(super) const OPS: &[(&str, Build)] = &[
    ("Concat", concat),
    ("Split", split),
    ("Slice", slice),
    ("Gather", gather),
];

/// The error for an op that needs input 0 to have at least one axis.
fn needs_axis(inputs: &Inputs<'_>, index: usize) -> TensorError {
    inputs.bad(
        index,
        format!("{} takes a tensor of rank 1 or more", inputs.op),
    )
}

/// Concat: the inputs joined along `axis` (required, negative allowed);
/// all inputs share element type, rank, and every extent but `axis`'s.
#[derive(Debug)]
struct Concat {
    axis: i64,
}

fn concat(attrs: &Attrs<'_>) -> Result<Arc<dyn TensorOp>, TensorError> {
    let axis = attrs
        .int("axis")?
        .ok_or_else(|| attrs.error("axis", "is required"))?;
    Ok(Arc::new(Concat { axis }))
}

impl TensorOp for Concat {
    fn eval(&self, inputs: &Inputs<'_>) -> Result<Vec<Tensor>, TensorError> {
        let first = inputs.get(0)?;
        let rank = first.rank();
        if rank == 0 {
            return Err(needs_axis(inputs, 0));
        }
        let axis = norm_axis(inputs.op, "axis", self.axis, rank)?;
        let mut shapes = Vec::with_capacity(inputs.len());
        for index in 0..inputs.len() {
            same_type(inputs, index)?;
            shapes.push(inputs.get(index)?.shape().to_vec());
        }
        let fits = |s: &Vec<usize>| {
            s.len() == rank
                && s.iter()
                    .zip(first.shape())
                    .enumerate()
                    .all(|(a, (x, y))| a == axis || x == y)
        };
        if !shapes.iter().all(fits) {
            return Err(TensorError::ShapeMismatch {
                op: inputs.op,
                input: format!("inputs 0..{}", inputs.len()),
                shapes,
                reason: format!("must have one rank and equal extents on every axis but {axis}"),
            });
        }
        if inputs.len() == 1 {
            return Ok(vec![first.clone()]);
        }
        let mut shape = first.shape().to_vec();
        let joined = shapes.iter().try_fold(0usize, |acc, s| {
            acc.checked_add(s.get(axis).copied().unwrap_or(0))
        });
        if let (Some(slot), Some(joined)) = (shape.get_mut(axis), joined) {
            *slot = joined;
        } else {
            return Err(TensorError::TooLarge {
                shape,
                cap: crate::tensor::MAX_ELEMENTS,
            });
        }
        check_shape(&shape)?;
        let result = by_dtype!(first.dtype(), T => {
            let views = (0..inputs.len())
                .map(|i| inputs.array::<T>(i).map(|a| a.view()))
                .collect::<Result<Vec<_>, _>>()?;
            let joined = join(&views, axis, &shape).ok_or_else(|| TensorError::ShapeMismatch {
                op: inputs.op,
                input: format!("inputs 0..{}", inputs.len()),
                shapes: shapes.clone(),
                reason: "could not be joined".to_owned(),
            })?;
            out(joined)?
        });
        Ok(vec![result])
    }
}

/// `parts` joined along `axis` into a row-major array of `shape` (their
/// shapes checked to fit): for each index of the axes before `axis`, each
/// part's block of the axes from `axis` on, in turn. (ndarray's
/// `concatenate` would leave `axis` outermost in memory.)
fn join<T: Element>(
    parts: &[ArrayViewD<'_, T>],
    axis: usize,
    shape: &[usize],
) -> Option<ArrayD<T>> {
    let outer: usize = shape.get(..axis)?.iter().product();
    let rows: Vec<_> = parts.iter().map(|p| p.as_standard_layout()).collect();
    let mut blocks = Vec::with_capacity(rows.len());
    for row in &rows {
        let block = row.len() / outer.max(1);
        if block > 0 {
            blocks.push(row.as_slice()?.chunks_exact(block));
        }
    }
    let mut data = Vec::with_capacity(shape.iter().product());
    for _ in 0..outer {
        for block in &mut blocks {
            data.extend_from_slice(block.next()?);
        }
    }
    ArrayD::from_shape_vec(IxDyn(shape), data).ok()
}

/// The entries of `data` at `indices` (checked to be within the axis)
/// along `axis`, as a row-major array of `shape`.
fn pick<T: Element>(
    data: &ArcArrayD<T>,
    axis: usize,
    indices: &[usize],
    shape: &[usize],
) -> Option<ArrayD<T>> {
    let dims = data.shape();
    let outer: usize = dims.get(..axis)?.iter().product();
    let extent = *dims.get(axis)?;
    let block: usize = dims.get(axis + 1..)?.iter().product();
    let rows = data.as_standard_layout();
    let flat = rows.as_slice()?;
    let mut out = Vec::with_capacity(shape.iter().product());
    if block > 0 {
        for o in 0..outer {
            for &j in indices {
                let start = (o * extent + j) * block;
                out.extend_from_slice(flat.get(start..start + block)?);
            }
        }
    }
    ArrayD::from_shape_vec(IxDyn(shape), out).ok()
}

/// Split: input 0 cut along `axis` (default 0) into parts whose sizes come
/// from input 1 (opset 13+), the `split` attribute (older opsets),
/// `num_outputs` (opset 18: equal parts of `ceil(extent / n)`, the last
/// smaller), or else the op's declared output count (known at install), split
/// the same way.
#[derive(Debug)]
struct Split {
    axis: i64,
    sizes: Option<Vec<i64>>,
    num_outputs: Option<usize>,
    declared: Option<usize>,
}

fn split(attrs: &Attrs<'_>) -> Result<Arc<dyn TensorOp>, TensorError> {
    let count = |name: &str| -> Result<Option<usize>, TensorError> {
        match attrs.int(name)? {
            None => Ok(None),
            Some(n) if n >= 1 => Ok(usize::try_from(n).ok()),
            Some(n) => Err(attrs.error(name, format!("must be 1 or more, found {n}"))),
        }
    };
    let num_outputs = count("num_outputs")?;
    let declared = attrs.outputs();
    let sizes = attrs.ints("split")?;
    if num_outputs.is_some() && sizes.is_some() {
        return Err(attrs.error("num_outputs", "give `split` or `num_outputs`, not both"));
    }
    if let (Some(n), Some(d)) = (num_outputs, declared) {
        if n != d {
            return Err(attrs.error(
                "num_outputs",
                format!("is {n} but the op declares {d} outputs"),
            ));
        }
    }
    Ok(Arc::new(Split {
        axis: attrs.int_or("axis", 0)?,
        sizes,
        num_outputs,
        declared,
    }))
}

impl Split {
    /// `extent` in `parts` parts of `ceil(extent / parts)`, the last smaller.
    fn equal(inputs: &Inputs<'_>, extent: usize, parts: usize) -> Result<Vec<usize>, TensorError> {
        let chunk = extent.div_ceil(parts);
        let before = chunk.saturating_mul(parts - 1);
        if before > extent {
            return Err(inputs.bad(
                0,
                format!(
                    "an axis of extent {extent} does not split into {parts} parts of {chunk} \
                     with a smaller last one"
                ),
            ));
        }
        let mut sizes = vec![chunk; parts - 1];
        sizes.push(extent - before);
        Ok(sizes)
    }

    /// The part sizes for an axis of `extent`.
    fn sizes(&self, inputs: &Inputs<'_>, extent: usize) -> Result<Vec<usize>, TensorError> {
        let given = match &self.sizes {
            Some(sizes) => Some((sizes.clone(), None)),
            None => inputs
                .ints_opt(1)?
                .filter(|s| !s.is_empty())
                .map(|s| (s, Some(1))),
        };
        let Some((given, index)) = given else {
            let parts =
                self.num_outputs
                    .or(self.declared)
                    .ok_or_else(|| TensorError::BadAttribute {
                        op: inputs.op,
                        name: "num_outputs".to_owned(),
                        reason: "Split needs sizes (input 1 or the `split` attribute), \
                             `num_outputs`, or the declared output count"
                            .to_owned(),
                    })?;
            return Self::equal(inputs, extent, parts);
        };
        let fail = |reason: String| match index {
            Some(i) => inputs.bad(i, reason),
            None => TensorError::BadAttribute {
                op: inputs.op,
                name: "split".to_owned(),
                reason,
            },
        };
        if index.is_some() && self.num_outputs.is_some() {
            return Err(fail("give `split` or `num_outputs`, not both".to_owned()));
        }
        if let Some(d) = self.declared.filter(|&d| d != given.len()) {
            return Err(fail(format!(
                "names {} parts but the op declares {d} outputs",
                given.len()
            )));
        }
        let sizes = given
            .iter()
            .map(|&s| usize::try_from(s))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| fail(format!("sizes {given:?} include a negative one")))?;
        let sum = sizes.iter().try_fold(0usize, |acc, &s| acc.checked_add(s));
        if sum != Some(extent) {
            return Err(fail(format!(
                "sizes {given:?} do not add up to the axis extent {extent} of input 0"
            )));
        }
        Ok(sizes)
    }
}

impl TensorOp for Split {
    fn eval(&self, inputs: &Inputs<'_>) -> Result<Vec<Tensor>, TensorError> {
        let data = inputs.get(0)?;
        if data.rank() == 0 {
            return Err(needs_axis(inputs, 0));
        }
        let axis = norm_axis(inputs.op, "axis", self.axis, data.rank())?;
        let extent = data.shape().get(axis).copied().unwrap_or(0);
        let sizes = self.sizes(inputs, extent)?;
        by_dtype!(data.dtype(), T => {
            let array = inputs.array::<T>(0)?;
            let mut start = 0;
            let mut parts = Vec::with_capacity(sizes.len());
            for size in sizes {
                let part = array.slice_axis(Axis(axis), Range::from(start..start + size));
                parts.push(out(materialize(part))?);
                start += size;
            }
            Ok(parts)
        })
    }
}

/// Slice: along each listed axis (default all, in order), elements
/// `start, start + step, ...` up to but excluding `end`. Starts, ends, axes
/// and steps are inputs 1..=4 (opset 10+) or, in older graphs, the
/// `starts` / `ends` / `axes` attributes (step 1).
#[derive(Debug)]
struct Slice {
    attrs: Option<SliceAttrs>,
}

/// The `starts`, `ends` and `axes` attributes of an opset-1 Slice.
#[derive(Debug)]
struct SliceAttrs {
    starts: Vec<i64>,
    ends: Vec<i64>,
    axes: Option<Vec<i64>>,
}

fn slice(attrs: &Attrs<'_>) -> Result<Arc<dyn TensorOp>, TensorError> {
    let starts = attrs.ints("starts")?;
    let ends = attrs.ints("ends")?;
    let form = match (starts, ends) {
        (Some(starts), Some(ends)) => Some(SliceAttrs {
            starts,
            ends,
            axes: attrs.ints("axes")?,
        }),
        (None, None) => None,
        (Some(_), None) => return Err(attrs.error("ends", "`starts` is given but `ends` is not")),
        (None, Some(_)) => return Err(attrs.error("starts", "`ends` is given but `starts` is not")),
    };
    Ok(Arc::new(Slice { attrs: form }))
}

impl Slice {
    /// The ndarray range each axis of input 0 is cut to.
    fn plan(&self, inputs: &Inputs<'_>) -> Result<Vec<Range>, TensorError> {
        let dims = inputs.get(0)?.shape();
        let (starts, ends, axes, steps, from_inputs) = match &self.attrs {
            Some(a) => (
                a.starts.clone(),
                a.ends.clone(),
                a.axes.clone(),
                None,
                false,
            ),
            None => (
                inputs.ints(1)?,
                inputs.ints(2)?,
                inputs.ints_opt(3)?,
                inputs.ints_opt(4)?,
                true,
            ),
        };
        let fail = |index: usize, name: &str, reason: String| {
            if from_inputs {
                inputs.bad(index, reason)
            } else {
                TensorError::BadAttribute {
                    op: inputs.op,
                    name: name.to_owned(),
                    reason,
                }
            }
        };
        let n = starts.len();
        let lengths = [
            (2, "ends", Some(ends.len())),
            (3, "axes", axes.as_ref().map(Vec::len)),
            (4, "steps", steps.as_ref().map(Vec::len)),
        ];
        for (index, name, len) in lengths {
            if let Some(len) = len.filter(|&len| len != n) {
                return Err(fail(
                    index,
                    name,
                    format!("has {len} values but starts has {n}"),
                ));
            }
        }
        let axes = match axes {
            Some(axes) => norm_axis_list(inputs, &axes, dims.len())
                .map_err(|reason| fail(3, "axes", reason))?,
            None if n > dims.len() => {
                return Err(fail(
                    1,
                    "starts",
                    format!("has {n} values but input 0 has shape {dims:?}"),
                ))
            }
            None => (0..n).collect(),
        };
        let mut plan: Vec<Range> = vec![Range::from(..); dims.len()];
        for (i, &axis) in axes.iter().enumerate() {
            let step = steps.as_ref().and_then(|s| s.get(i).copied()).unwrap_or(1);
            if step == 0 {
                return Err(fail(4, "steps", format!("step {i} is 0")));
            }
            let (Some(&start), Some(&end), Some(&extent), Some(slot)) = (
                starts.get(i),
                ends.get(i),
                dims.get(axis),
                plan.get_mut(axis),
            ) else {
                continue;
            };
            *slot = onnx_range(extent, start, end, step);
        }
        Ok(plan)
    }
}

/// Resolves slice axes against `rank`, refusing out-of-range and repeated ones.
fn norm_axis_list(inputs: &Inputs<'_>, axes: &[i64], rank: usize) -> Result<Vec<usize>, String> {
    let r = rank as i64;
    let mut out = Vec::with_capacity(axes.len());
    for &axis in axes {
        if axis < -r || axis >= r {
            return Err(format!(
                "axis {axis} is outside -{rank}..{rank} for input 0 of shape {:?}",
                inputs
                    .opt(0)
                    .map(|t| t.shape().to_vec())
                    .unwrap_or_default()
            ));
        }
        let axis = if axis < 0 { axis + r } else { axis } as usize;
        if out.contains(&axis) {
            return Err(format!("axis {axis} is named twice"));
        }
        out.push(axis);
    }
    Ok(out)
}

/// ONNX's slice of an axis of `extent` as an ndarray range: negative
/// `start` / `end` count from the end; both are clamped to `0..=extent`
/// for a positive step and to `-1..=extent - 1` for a negative one.
fn onnx_range(extent: usize, start: i64, end: i64, step: i64) -> Range {
    const EMPTY: Range = Range {
        start: 0,
        end: Some(0),
        step: 1,
    };
    let d = extent as i64;
    let from_end = |v: i64| if v < 0 { v.saturating_add(d) } else { v };
    // A step longer than the axis picks at most one element: cap it so the
    // stride arithmetic cannot overflow.
    let magnitude = step.unsigned_abs().min(extent.max(1) as u64) as isize;
    if step > 0 {
        let (s, e) = (from_end(start).clamp(0, d), from_end(end).clamp(0, d));
        if s >= e {
            return EMPTY;
        }
        Range::new(s as isize, Some(e as isize), magnitude)
    } else {
        if d == 0 {
            return EMPTY;
        }
        let (s, e) = (
            from_end(start).clamp(0, d - 1),
            from_end(end).clamp(-1, d - 1),
        );
        if s <= e {
            return EMPTY;
        }
        // ndarray walks a negative step down from the range's last element.
        Range::new((e + 1) as isize, Some((s + 1) as isize), -magnitude)
    }
}

impl TensorOp for Slice {
    fn eval(&self, inputs: &Inputs<'_>) -> Result<Vec<Tensor>, TensorError> {
        let data = inputs.get(0)?;
        let plan = self.plan(inputs)?;
        let result = by_dtype!(data.dtype(), T => {
            let array = inputs.array::<T>(0)?;
            let view = array.slice_each_axis(|axis| {
                plan.get(axis.axis.index()).copied().unwrap_or(Range::from(..))
            });
            out(materialize(view))?
        });
        Ok(vec![result])
    }

    fn work(&self, inputs: &Inputs<'_>) -> u64 {
        let (Ok(plan), Some(data)) = (self.plan(inputs), inputs.opt(0)) else {
            return 1;
        };
        plan.iter()
            .zip(data.shape())
            .map(|(r, &extent)| range_len(*r, extent) as u64)
            .product()
    }
}

/// How many elements `range` picks from an axis of `extent` (a range from
/// [`onnx_range`], within the axis).
fn range_len(range: Range, extent: usize) -> usize {
    let start = usize::try_from(range.start).unwrap_or(0);
    let end = range
        .end
        .and_then(|e| usize::try_from(e).ok())
        .unwrap_or(extent);
    let step = range.step.unsigned_abs().max(1);
    end.saturating_sub(start).div_ceil(step)
}

/// Gather: the entries of input 0 along `axis` (default 0) at the i64
/// indices in input 1 (any rank; negative ones count from the end); the
/// output's shape is `data[..axis] ++ indices ++ data[axis + 1..]`.
#[derive(Debug)]
struct Gather {
    axis: i64,
}

fn gather(attrs: &Attrs<'_>) -> Result<Arc<dyn TensorOp>, TensorError> {
    Ok(Arc::new(Gather {
        axis: attrs.int_or("axis", 0)?,
    }))
}

impl Gather {
    /// The resolved axis and the output shape.
    fn output_shape(&self, inputs: &Inputs<'_>) -> Result<(usize, Vec<usize>), TensorError> {
        let data = inputs.get(0)?;
        let indices = inputs.array::<i64>(1)?;
        if data.rank() == 0 {
            return Err(needs_axis(inputs, 0));
        }
        let axis = norm_axis(inputs.op, "axis", self.axis, data.rank())?;
        let (before, after) = data.shape().split_at(axis);
        let shape: Vec<usize> = before
            .iter()
            .chain(indices.shape())
            .chain(after.iter().skip(1))
            .copied()
            .collect();
        Ok((axis, shape))
    }
}

impl TensorOp for Gather {
    fn eval(&self, inputs: &Inputs<'_>) -> Result<Vec<Tensor>, TensorError> {
        let data = inputs.get(0)?;
        let (axis, shape) = self.output_shape(inputs)?;
        check_shape(&shape)?;
        let extent = data.shape().get(axis).copied().unwrap_or(0);
        let indices = inputs
            .array::<i64>(1)?
            .iter()
            .map(|&i| {
                let j = if i < 0 {
                    i.saturating_add(extent as i64)
                } else {
                    i
                };
                usize::try_from(j)
                    .ok()
                    .filter(|&j| j < extent)
                    .ok_or_else(|| {
                        inputs.bad(
                            1,
                            format!(
                                "index {i} is out of range for axis {axis} of extent {extent} \
                             (input 0 has shape {:?})",
                                data.shape()
                            ),
                        )
                    })
            })
            .collect::<Result<Vec<usize>, _>>()?;
        let result = by_dtype!(data.dtype(), T => {
            let picked = pick(inputs.array::<T>(0)?, axis, &indices, &shape)
                .ok_or_else(|| inputs.bad(1, format!("gathered entries do not fit {shape:?}")))?;
            out(picked)?
        });
        Ok(vec![result])
    }

    fn work(&self, inputs: &Inputs<'_>) -> u64 {
        self.output_shape(inputs).map_or(1, |(_, s)| {
            s.iter().fold(1u64, |acc, &d| acc.saturating_mul(d as u64))
        })
    }
}
