//! Shape ops on the CPU backend (Reshape, Transpose, Squeeze, Unsqueeze, Flatten, Expand, Identity, Shape, Size): values, defaults, negative axes, buffer sharing, and every typed refusal.
#![allow(clippy::unwrap_used)]

use nodeflow::engine::{Attribute, AttributeValue};
use nodeflow::{CpuBackend, Tensor, TensorError};

fn f(shape: &[usize], data: &[f32]) -> Option<Tensor> {
    Some(Tensor::from_f32(shape.to_vec(), data.to_vec()).unwrap())
}

fn i(shape: &[usize], data: &[i64]) -> Option<Tensor> {
    Some(Tensor::from_i64(shape.to_vec(), data.to_vec()).unwrap())
}

fn b(shape: &[usize], data: &[bool]) -> Option<Tensor> {
    Some(Tensor::from_bool(shape.to_vec(), data.to_vec()).unwrap())
}

/// A 1-D i64 list (a shape or axes input).
fn list(values: &[i64]) -> Option<Tensor> {
    i(&[values.len()], values)
}

/// 0, 1, 2, ... as an f32 tensor of `shape`.
fn iota(shape: &[usize]) -> Option<Tensor> {
    let n: usize = shape.iter().product();
    f(shape, &(0..n).map(|x| x as f32).collect::<Vec<_>>())
}

fn int(name: &str, v: i64) -> Attribute {
    Attribute {
        name: name.to_owned(),
        value: AttributeValue::Int(v),
    }
}

fn ints(name: &str, v: &[i64]) -> Attribute {
    Attribute {
        name: name.to_owned(),
        value: AttributeValue::Ints(v.to_vec()),
    }
}

fn run(
    op: &str,
    attributes: &[Attribute],
    inputs: &[Option<Tensor>],
) -> Result<Tensor, TensorError> {
    let mut out = CpuBackend::eval(op, attributes, inputs)?;
    assert_eq!(out.len(), 1, "{op} has one output");
    Ok(out.remove(0))
}

fn floats(t: &Tensor) -> Vec<f32> {
    t.to_f32_vec().unwrap()
}

/// Asserts `result` is a refusal with `reason` whose message holds every needle.
fn refused(result: Result<Tensor, TensorError>, reason: &str, needles: &[&str]) {
    let err = result.expect_err("the op should refuse");
    assert_eq!(err.reason(), reason, "{err}");
    let message = err.to_string();
    for needle in needles {
        assert!(message.contains(needle), "{message:?} lacks {needle:?}");
    }
}

#[test]
fn reshape_keeps_row_major_order_and_shares_the_buffer() {
    let x = iota(&[2, 3]);
    let t = run("Reshape", &[], &[x.clone(), list(&[3, 2])]).unwrap();
    assert_eq!(t.shape(), &[3, 2]);
    assert_eq!(floats(&t), [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]);
    // Same buffer, other shape: no copy was made.
    let x = x.unwrap();
    let again = run("Reshape", &[], &[Some(x.clone()), list(&[6])]).unwrap();
    assert_eq!(
        x.as_f32().unwrap().as_ptr(),
        again.as_f32().unwrap().as_ptr()
    );
}

#[test]
fn reshape_zero_copies_the_input_extent_and_minus_one_is_inferred() {
    let x = iota(&[2, 3, 4]);
    assert_eq!(
        run("Reshape", &[], &[x.clone(), list(&[0, -1])])
            .unwrap()
            .shape(),
        &[2, 12]
    );
    assert_eq!(
        run("Reshape", &[], &[x.clone(), list(&[-1, 0, 2])])
            .unwrap()
            .shape(),
        &[4, 3, 2]
    );
    assert_eq!(
        run("Reshape", &[], &[x.clone(), list(&[0, 0, 0])])
            .unwrap()
            .shape(),
        &[2, 3, 4]
    );
    // A scalar from a one-element tensor, and back.
    let s = run("Reshape", &[], &[f(&[1, 1], &[7.0]), list(&[])]).unwrap();
    assert_eq!(s.shape(), &[] as &[usize]);
    assert_eq!(floats(&s), [7.0]);
    // allowzero = 1: a 0 is a literal zero extent.
    let empty = f(&[0, 3], &[]);
    let t = run("Reshape", &[int("allowzero", 1)], &[empty, list(&[3, 0])]).unwrap();
    assert_eq!(t.shape(), &[3, 0]);
    // The opset-1 `shape` attribute, and every element type.
    let t = run(
        "Reshape",
        &[ints("shape", &[4, -1])],
        &[i(&[2, 2], &[1, 2, 3, 4])],
    )
    .unwrap();
    assert_eq!(
        (t.shape(), t.to_i64_vec().unwrap()),
        (&[4usize, 1][..], vec![1, 2, 3, 4])
    );
    let t = run("Reshape", &[], &[b(&[2], &[true, false]), list(&[2, 1])]).unwrap();
    assert_eq!(t.to_bool_vec().unwrap(), [true, false]);
}

#[test]
fn reshape_refuses_shapes_that_do_not_fit() {
    let x = iota(&[2, 3]);
    let r = |dims: &[i64]| run("Reshape", &[], &[x.clone(), list(dims)]);
    refused(
        r(&[-1, -1]),
        "tensor.bad_input",
        &["Reshape", "[2, 3]", "more than one dimension is -1"],
    );
    refused(
        r(&[4, -1]),
        "tensor.bad_input",
        &["Reshape", "6 elements do not divide", "[4, -1]"],
    );
    refused(
        r(&[4, 2]),
        "tensor.bad_input",
        &["Reshape", "[2, 3]", "the input has 6 elements, the shape 8"],
    );
    refused(r(&[2, 3, 0]), "tensor.bad_input", &["position 2", "rank-2"]);
    refused(
        r(&[-2, -3]),
        "tensor.bad_input",
        &["dimension -2 is negative"],
    );
    refused(
        run(
            "Reshape",
            &[int("allowzero", 1)],
            &[f(&[0], &[]), list(&[0, -1])],
        ),
        "tensor.bad_input",
        &["allowzero = 1, 0 and -1 cannot be mixed"],
    );
    refused(
        r(&[1; 17]),
        "tensor.bad_input",
        &["Reshape", "17 dimensions", "cap of 16"],
    );
    refused(
        run("Reshape", &[], &[x.clone(), f(&[2], &[3.0, 2.0])]),
        "tensor.dtype",
        &["Reshape", "input 1"],
    );
    refused(
        run("Reshape", &[], &[x.clone(), None]),
        "tensor.missing_input",
        &["Reshape", "input 1"],
    );
    refused(
        run("Reshape", &[int("allowzero", 2)], &[x, list(&[6])]),
        "tensor.bad_attribute",
        &["allowzero"],
    );
}

#[test]
fn transpose_permutes_axes_reversed_by_default() {
    let t = run("Transpose", &[], &[iota(&[2, 3])]).unwrap();
    assert_eq!(t.shape(), &[3, 2]);
    assert_eq!(floats(&t), [0.0, 3.0, 1.0, 4.0, 2.0, 5.0]);
    // out[c][a][0] = x[a][0][c] = 3a + c.
    let t = run(
        "Transpose",
        &[ints("perm", &[2, 0, 1])],
        &[iota(&[2, 1, 3])],
    )
    .unwrap();
    assert_eq!(t.shape(), &[3, 2, 1]);
    assert_eq!(floats(&t), [0.0, 3.0, 1.0, 4.0, 2.0, 5.0]);
    // The output is row-major: a reshape of it shares its buffer.
    let flat = run("Reshape", &[], &[Some(t.clone()), list(&[6])]).unwrap();
    assert!(flat.as_f32().unwrap().as_ptr() == t.as_f32().unwrap().as_ptr());
    let t = run("Transpose", &[], &[i(&[2, 2], &[1, 2, 3, 4])]).unwrap();
    assert_eq!(t.to_i64_vec().unwrap(), [1, 3, 2, 4]);
    let t = run("Transpose", &[], &[b(&[1, 2], &[true, false])]).unwrap();
    assert_eq!(
        (t.shape(), t.to_bool_vec().unwrap()),
        (&[2usize, 1][..], vec![true, false])
    );
    // The identity permutation hands the input back.
    let x = iota(&[2, 2]).unwrap();
    let same = run("Transpose", &[ints("perm", &[0, 1])], &[Some(x.clone())]).unwrap();
    assert!(same.shares_buffer_with(&x));
}

#[test]
fn transpose_refuses_a_bad_perm() {
    for perm in [&[0, 0][..], &[0, 2], &[-1, 0]] {
        refused(
            run("Transpose", &[ints("perm", perm)], &[iota(&[2, 2])]),
            "tensor.bad_attribute",
            &["Transpose", "perm", "not a permutation"],
        );
    }
    refused(
        run("Transpose", &[ints("perm", &[1, 0])], &[iota(&[2, 2, 2])]),
        "tensor.bad_attribute",
        &["Transpose", "perm", "[2, 2, 2]"],
    );
    refused(
        run("Transpose", &[], &[None]),
        "tensor.missing_input",
        &["Transpose"],
    );
}

#[test]
fn squeeze_removes_unit_axes() {
    let x = iota(&[1, 3, 1, 2]);
    assert_eq!(
        run("Squeeze", &[], std::slice::from_ref(&x))
            .unwrap()
            .shape(),
        &[3, 2]
    );
    assert_eq!(
        run("Squeeze", &[], &[x.clone(), list(&[-2])])
            .unwrap()
            .shape(),
        &[1, 3, 2]
    );
    assert_eq!(
        run("Squeeze", &[], &[x.clone(), list(&[0, 2])])
            .unwrap()
            .shape(),
        &[3, 2]
    );
    let t = run("Squeeze", &[ints("axes", &[0])], std::slice::from_ref(&x)).unwrap();
    assert_eq!(
        (t.shape(), floats(&t)),
        (&[3usize, 1, 2][..], floats(&iota(&[6]).unwrap()))
    );
    let t = run("Squeeze", &[], &[i(&[1, 1], &[5])]).unwrap();
    assert_eq!((t.rank(), t.to_i64_vec().unwrap()), (0, vec![5]));
    assert_eq!(
        run("Squeeze", &[], &[b(&[2], &[true, true])])
            .unwrap()
            .shape(),
        &[2]
    );
}

#[test]
fn squeeze_refuses_axes_that_are_not_unit_or_in_range() {
    let x = iota(&[1, 3]);
    refused(
        run("Squeeze", &[], &[x.clone(), list(&[1])]),
        "tensor.bad_input",
        &["Squeeze", "input 0", "[1, 3]", "axis 1 has extent 3"],
    );
    refused(
        run("Squeeze", &[], &[x.clone(), list(&[2])]),
        "tensor.bad_input",
        &["Squeeze", "input 1", "axis 2"],
    );
    refused(
        run("Squeeze", &[], &[x.clone(), list(&[0, -2])]),
        "tensor.bad_input",
        &["named twice"],
    );
    refused(
        run("Squeeze", &[ints("axes", &[-3])], &[x]),
        "tensor.bad_attribute",
        &["Squeeze", "axes"],
    );
}

#[test]
fn unsqueeze_inserts_axes_counted_on_the_output() {
    let x = iota(&[2, 3]);
    assert_eq!(
        run("Unsqueeze", &[], &[x.clone(), list(&[0])])
            .unwrap()
            .shape(),
        &[1, 2, 3]
    );
    assert_eq!(
        run("Unsqueeze", &[], &[x.clone(), list(&[0, -1])])
            .unwrap()
            .shape(),
        &[1, 2, 3, 1]
    );
    assert_eq!(
        run("Unsqueeze", &[], &[x.clone(), list(&[3, 1])])
            .unwrap()
            .shape(),
        &[2, 1, 3, 1]
    );
    let t = run("Unsqueeze", &[ints("axes", &[1])], std::slice::from_ref(&x)).unwrap();
    assert_eq!(
        (t.shape(), floats(&t)),
        (&[2usize, 1, 3][..], floats(&x.unwrap()))
    );
    let t = run("Unsqueeze", &[], &[Some(Tensor::scalar_i64(4)), list(&[0])]).unwrap();
    assert_eq!(
        (t.shape(), t.to_i64_vec().unwrap()),
        (&[1usize][..], vec![4])
    );
}

#[test]
fn unsqueeze_refuses_bad_axes() {
    let x = iota(&[2, 3]);
    refused(
        run("Unsqueeze", &[], &[x.clone(), list(&[1, 1])]),
        "tensor.bad_input",
        &["Unsqueeze", "named twice"],
    );
    refused(
        run("Unsqueeze", &[], &[x.clone(), list(&[3])]),
        "tensor.bad_input",
        &["Unsqueeze", "axis 3"],
    );
    refused(
        run("Unsqueeze", &[], std::slice::from_ref(&x)),
        "tensor.missing_input",
        &["Unsqueeze", "input 1"],
    );
    refused(
        run("Unsqueeze", &[], &[x.clone(), list(&[0; 15])]),
        "tensor.rank",
        &["17"],
    );
    refused(
        run("Unsqueeze", &[ints("axes", &[-4])], &[x]),
        "tensor.bad_attribute",
        &["Unsqueeze", "axes"],
    );
}

#[test]
fn flatten_folds_around_the_axis() {
    let x = iota(&[2, 3, 4]);
    let shape = |attrs: &[Attribute]| {
        run("Flatten", attrs, std::slice::from_ref(&x))
            .unwrap()
            .shape()
            .to_vec()
    };
    assert_eq!(shape(&[]), [2, 12]);
    assert_eq!(shape(&[int("axis", 0)]), [1, 24]);
    assert_eq!(shape(&[int("axis", -1)]), [6, 4]);
    assert_eq!(shape(&[int("axis", 3)]), [24, 1]);
    assert_eq!(shape(&[int("axis", -3)]), [1, 24]);
    let t = run(
        "Flatten",
        &[int("axis", 0)],
        &[Some(Tensor::scalar_f32(2.0))],
    )
    .unwrap();
    assert_eq!((t.shape(), floats(&t)), (&[1usize, 1][..], vec![2.0]));
    refused(
        run("Flatten", &[int("axis", 4)], std::slice::from_ref(&x)),
        "tensor.bad_attribute",
        &["Flatten", "axis 4", "[2, 3, 4]"],
    );
    refused(
        run("Flatten", &[int("axis", -4)], &[x]),
        "tensor.bad_attribute",
        &["axis -4"],
    );
}

#[test]
fn expand_broadcasts_both_ways() {
    let t = run(
        "Expand",
        &[],
        &[f(&[3, 1], &[1.0, 2.0, 3.0]), list(&[2, 1, 2])],
    )
    .unwrap();
    assert_eq!(t.shape(), &[2, 3, 2]);
    assert_eq!(
        floats(&t),
        [1.0, 1.0, 2.0, 2.0, 3.0, 3.0, 1.0, 1.0, 2.0, 2.0, 3.0, 3.0]
    );
    // A shape smaller than the input keeps the input's extents.
    let t = run("Expand", &[], &[i(&[3], &[1, 2, 3]), list(&[1])]).unwrap();
    assert_eq!(
        (t.shape(), t.to_i64_vec().unwrap()),
        (&[3usize][..], vec![1, 2, 3])
    );
    let t = run("Expand", &[], &[b(&[1], &[true]), list(&[2, 2])]).unwrap();
    assert_eq!(t.to_bool_vec().unwrap(), [true; 4]);
    let t = run("Expand", &[], &[f(&[1], &[1.0]), list(&[0])]).unwrap();
    assert_eq!(t.shape(), &[0]);
}

#[test]
fn expand_refuses_shapes_that_do_not_broadcast_or_are_too_big() {
    let x = f(&[3], &[1.0, 2.0, 3.0]);
    refused(
        run("Expand", &[], &[x.clone(), list(&[2])]),
        "tensor.shape_mismatch",
        &["Expand", "[3]", "[2]"],
    );
    refused(
        run("Expand", &[], &[x.clone(), list(&[1 << 20, 1 << 20, 3])]),
        "tensor.too_large",
        &["1048576"],
    );
    refused(
        run("Expand", &[], &[x.clone(), list(&[-1, 3])]),
        "tensor.bad_input",
        &["Expand", "input 1", "-1"],
    );
    refused(
        run("Expand", &[], &[x, None]),
        "tensor.missing_input",
        &["Expand", "input 1"],
    );
}

#[test]
fn identity_hands_its_input_back() {
    let x = iota(&[2, 2]).unwrap();
    let t = run("Identity", &[], &[Some(x.clone())]).unwrap();
    assert!(t.shares_buffer_with(&x));
    assert_eq!(t, x);
    refused(
        run("Identity", &[], &[]),
        "tensor.missing_input",
        &["Identity"],
    );
}

#[test]
fn shape_lists_extents_with_clamped_start_and_end() {
    let x = iota(&[2, 3, 4]);
    let shape = |attrs: &[Attribute]| {
        run("Shape", attrs, std::slice::from_ref(&x))
            .unwrap()
            .to_i64_vec()
            .unwrap()
    };
    assert_eq!(shape(&[]), [2, 3, 4]);
    assert_eq!(shape(&[int("start", 1)]), [3, 4]);
    assert_eq!(shape(&[int("end", -1)]), [2, 3]);
    assert_eq!(shape(&[int("start", -2), int("end", 10)]), [3, 4]);
    assert_eq!(shape(&[int("start", -10)]), [2, 3, 4]);
    assert_eq!(shape(&[int("start", 2), int("end", 1)]), [] as [i64; 0]);
    let t = run("Shape", &[], &[Some(Tensor::scalar_f32(1.0))]).unwrap();
    assert_eq!((t.shape(), t.len()), (&[0usize][..], 0));
    let t = run("Shape", &[], &[b(&[0, 5], &[])]).unwrap();
    assert_eq!(t.to_i64_vec().unwrap(), [0, 5]);
}

#[test]
fn size_counts_elements() {
    let t = run("Size", &[], &[iota(&[2, 3, 4])]).unwrap();
    assert_eq!((t.rank(), t.to_i64_vec().unwrap()), (0, vec![24]));
}
