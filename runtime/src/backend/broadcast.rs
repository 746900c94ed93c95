//! Numpy broadcasting: the shape several inputs broadcast to, and elementwise maps over broadcast inputs.
//!
//! Shapes are aligned at their last axis; two extents fit when they are
//! equal or one of them is 1, and the result takes the larger. Inputs are
//! then read through ndarray's broadcast views (stride 0 on stretched
//! axes), so no input is copied to the output's shape.

use ndarray::{ArrayD, IxDyn, Zip};

use super::op::Inputs;
use crate::tensor::{check_shape, ArcArrayD, Element, TensorError};

/// The shape `shapes` broadcast to, or a shape mismatch naming `op` and the inputs.
pub(crate) fn broadcast_shapes(
    op: &'static str,
    input: &str,
    shapes: &[&[usize]],
) -> Result<Vec<usize>, TensorError> {
    let rank = shapes.iter().map(|s| s.len()).max().unwrap_or(0);
    let mut out = vec![1usize; rank];
    for shape in shapes {
        let offset = rank - shape.len();
        for (axis, &dim) in shape.iter().enumerate() {
            let slot = &mut out[offset + axis];
            if *slot == dim || dim == 1 {
                continue;
            }
            if *slot == 1 {
                *slot = dim;
                continue;
            }
            return Err(TensorError::ShapeMismatch {
                op,
                input: input.to_owned(),
                shapes: shapes.iter().map(|s| s.to_vec()).collect(),
                reason: format!(
                    "do not broadcast: axis {} has extents {} and {}",
                    offset + axis,
                    *slot,
                    dim
                ),
            });
        }
    }
    check_shape(&out)?;
    Ok(out)
}

/// `f` applied elementwise to inputs 0 and 1 of `inputs`, broadcast.
pub(crate) fn binary<A, B, C>(
    inputs: &Inputs<'_>,
    f: impl Fn(A, B) -> C,
) -> Result<ArrayD<C>, TensorError>
where
    A: Element,
    B: Element,
    C: Element,
{
    let a = inputs.array::<A>(0)?;
    let b = inputs.array::<B>(1)?;
    map2(inputs.op, "inputs 0 and 1", a, b, f)
}

/// `f` applied elementwise to `a` and `b`, broadcast.
pub(crate) fn map2<A, B, C>(
    op: &'static str,
    input: &str,
    a: &ArcArrayD<A>,
    b: &ArcArrayD<B>,
    f: impl Fn(A, B) -> C,
) -> Result<ArrayD<C>, TensorError>
where
    A: Element,
    B: Element,
    C: Element,
{
    if a.shape() == b.shape() {
        return Ok(Zip::from(a).and(b).map_collect(|&x, &y| f(x, y)));
    }
    let shape = broadcast_shapes(op, input, &[a.shape(), b.shape()])?;
    let dim = IxDyn(&shape);
    let (av, bv) = match (a.broadcast(dim.clone()), b.broadcast(dim)) {
        (Some(av), Some(bv)) => (av, bv),
        _ => return Err(mismatch(op, input, &[a.shape(), b.shape()])),
    };
    Ok(Zip::from(&av).and(&bv).map_collect(|&x, &y| f(x, y)))
}

/// `f` applied elementwise to `a`, `b` and `c`, broadcast together.
pub(crate) fn map3<A, B, C, D>(
    op: &'static str,
    input: &str,
    a: &ArcArrayD<A>,
    b: &ArcArrayD<B>,
    c: &ArcArrayD<C>,
    f: impl Fn(A, B, C) -> D,
) -> Result<ArrayD<D>, TensorError>
where
    A: Element,
    B: Element,
    C: Element,
    D: Element,
{
    let shapes = [a.shape(), b.shape(), c.shape()];
    let shape = broadcast_shapes(op, input, &shapes)?;
    let dim = IxDyn(&shape);
    let (Some(av), Some(bv), Some(cv)) = (
        a.broadcast(dim.clone()),
        b.broadcast(dim.clone()),
        c.broadcast(dim),
    ) else {
        return Err(mismatch(op, input, &shapes));
    };
    Ok(Zip::from(&av)
        .and(&bv)
        .and(&cv)
        .map_collect(|&x, &y, &z| f(x, y, z)))
}

fn mismatch(op: &'static str, input: &str, shapes: &[&[usize]]) -> TensorError {
    TensorError::ShapeMismatch {
        op,
        input: input.to_owned(),
        shapes: shapes.iter().map(|s| s.to_vec()).collect(),
        reason: "do not broadcast".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_align_at_the_last_axis_and_stretch_ones() {
        let s = |shapes: &[&[usize]]| broadcast_shapes("Add", "A, B", shapes);
        assert_eq!(s(&[&[2, 3, 4], &[4]]).unwrap(), vec![2, 3, 4]);
        assert_eq!(s(&[&[2, 1, 4], &[3, 1]]).unwrap(), vec![2, 3, 4]);
        assert_eq!(s(&[&[], &[5]]).unwrap(), vec![5]);
        assert_eq!(s(&[&[0, 1], &[1, 3]]).unwrap(), vec![0, 3]);
        let err = s(&[&[2, 3], &[4]]).unwrap_err();
        assert_eq!(err.reason(), "tensor.shape_mismatch");
        assert!(err.to_string().contains("[2, 3]"), "{err}");
        assert!(err.to_string().contains("Add"), "{err}");
    }
}
