//! Array ops on the CPU backend (Concat, Split, Slice, Gather): values, negative axes and indices, clamping, defaults, and every typed refusal.
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

/// A 1-D i64 list.
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
fn refused<T: std::fmt::Debug>(result: Result<T, TensorError>, reason: &str, needles: &[&str]) {
    let err = result.expect_err("the op should refuse");
    assert_eq!(err.reason(), reason, "{err}");
    let message = err.to_string();
    for needle in needles {
        assert!(message.contains(needle), "{message:?} lacks {needle:?}");
    }
}

#[test]
fn concat_joins_along_any_axis() {
    let a = f(&[2, 2], &[1.0, 2.0, 3.0, 4.0]);
    let c = f(&[2, 1], &[5.0, 6.0]);
    let t = run("Concat", &[int("axis", 1)], &[a.clone(), c.clone()]).unwrap();
    assert_eq!(
        (t.shape(), floats(&t)),
        (&[2usize, 3][..], vec![1.0, 2.0, 5.0, 3.0, 4.0, 6.0])
    );
    let t = run(
        "Concat",
        &[int("axis", -1)],
        &[c.clone(), a.clone(), c.clone()],
    )
    .unwrap();
    assert_eq!(floats(&t), [5.0, 1.0, 2.0, 5.0, 6.0, 3.0, 4.0, 6.0]);
    // The output is row-major: a reshape of it shares its buffer.
    let flat = run("Reshape", &[], &[Some(t.clone()), list(&[8])]).unwrap();
    assert_eq!(
        flat.as_f32().unwrap().as_ptr(),
        t.as_f32().unwrap().as_ptr()
    );
    let t = run(
        "Concat",
        &[int("axis", 0)],
        &[a.clone(), f(&[1, 2], &[7.0, 8.0])],
    )
    .unwrap();
    assert_eq!(
        (t.shape(), floats(&t)),
        (&[3usize, 2][..], vec![1.0, 2.0, 3.0, 4.0, 7.0, 8.0])
    );
    // Zero-length inputs add nothing.
    let t = run(
        "Concat",
        &[int("axis", 1)],
        &[f(&[2, 0], &[]), a.clone(), f(&[2, 0], &[])],
    )
    .unwrap();
    assert_eq!(
        (t.shape(), floats(&t)),
        (&[2usize, 2][..], vec![1.0, 2.0, 3.0, 4.0])
    );
    let t = run(
        "Concat",
        &[int("axis", 0)],
        &[i(&[1], &[1]), i(&[2], &[2, 3])],
    )
    .unwrap();
    assert_eq!(t.to_i64_vec().unwrap(), [1, 2, 3]);
    let t = run(
        "Concat",
        &[int("axis", 0)],
        &[b(&[1], &[true]), b(&[1], &[false])],
    )
    .unwrap();
    assert_eq!(t.to_bool_vec().unwrap(), [true, false]);
    // One input is handed back.
    let x = a.unwrap();
    assert!(run("Concat", &[int("axis", 0)], &[Some(x.clone())])
        .unwrap()
        .shares_buffer_with(&x));
}

#[test]
fn concat_refuses_inputs_that_do_not_fit() {
    let a = iota(&[2, 2]);
    refused(
        run("Concat", &[], std::slice::from_ref(&a)),
        "tensor.bad_attribute",
        &["Concat", "axis", "required"],
    );
    refused(
        run("Concat", &[int("axis", 1)], &[a.clone(), iota(&[3, 1])]),
        "tensor.shape_mismatch",
        &["Concat", "[2, 2]", "[3, 1]", "every axis but 1"],
    );
    refused(
        run("Concat", &[int("axis", 0)], &[a.clone(), iota(&[2])]),
        "tensor.shape_mismatch",
        &["[2, 2]", "[2]"],
    );
    refused(
        run(
            "Concat",
            &[int("axis", 0)],
            &[a.clone(), i(&[1, 2], &[1, 2])],
        ),
        "tensor.dtype",
        &["Concat", "input 1"],
    );
    refused(
        run("Concat", &[int("axis", 2)], &[a.clone(), a.clone()]),
        "tensor.bad_attribute",
        &["axis 2"],
    );
    refused(
        run("Concat", &[int("axis", 0)], &[a.clone(), None]),
        "tensor.missing_input",
        &["input 1"],
    );
    refused(
        run(
            "Concat",
            &[int("axis", 0)],
            &[Some(Tensor::scalar_f32(1.0))],
        ),
        "tensor.bad_input",
        &["Concat", "rank 1 or more"],
    );
    refused(
        run("Concat", &[int("axis", 0)], &[]),
        "tensor.missing_input",
        &["Concat"],
    );
}

/// Split's outputs as (shape, elements) pairs.
type Parts = Vec<(Vec<usize>, Vec<f32>)>;

/// Runs Split and lists its outputs as [`Parts`].
fn split(attributes: &[Attribute], inputs: &[Option<Tensor>]) -> Result<Parts, TensorError> {
    parts(CpuBackend::eval("Split", attributes, inputs)?)
}

/// Runs a Split that declares `outputs` outputs, as installed on a Node.
fn split_into(
    outputs: usize,
    attributes: &[Attribute],
    inputs: &[Option<Tensor>],
) -> Result<Parts, TensorError> {
    parts(CpuBackend::eval_with_outputs(
        "Split", attributes, inputs, outputs,
    )?)
}

fn parts(parts: Vec<Tensor>) -> Result<Parts, TensorError> {
    Ok(parts
        .iter()
        .map(|t| (t.shape().to_vec(), floats(t)))
        .collect())
}

#[test]
fn split_by_sizes_from_the_input_or_the_attribute() {
    let x = iota(&[5]);
    let parts = split(&[], &[x.clone(), list(&[2, 3])]).unwrap();
    assert_eq!(
        parts,
        [(vec![2], vec![0.0, 1.0]), (vec![3], vec![2.0, 3.0, 4.0])]
    );
    let parts = split(&[], &[x.clone(), list(&[0, 5, 0])]).unwrap();
    assert_eq!(
        parts,
        [
            (vec![0], vec![]),
            (vec![5], floats(&x.clone().unwrap())),
            (vec![0], vec![])
        ]
    );
    let parts = split(&[int("axis", 1), ints("split", &[1, 2])], &[iota(&[2, 3])]).unwrap();
    assert_eq!(
        parts,
        [
            (vec![2, 1], vec![0.0, 3.0]),
            (vec![2, 2], vec![1.0, 2.0, 4.0, 5.0])
        ]
    );
    let parts = CpuBackend::eval(
        "Split",
        &[int("axis", -1)],
        &[i(&[1, 2], &[7, 8]), list(&[1, 1])],
    )
    .unwrap();
    assert_eq!(parts[1].to_i64_vec().unwrap(), [8]);
}

#[test]
fn split_into_equal_parts_the_last_smaller() {
    let x = iota(&[7]);
    let shapes = |attrs: &[Attribute]| -> Vec<Vec<usize>> {
        split(attrs, std::slice::from_ref(&x))
            .unwrap()
            .into_iter()
            .map(|(s, _)| s)
            .collect()
    };
    assert_eq!(
        shapes(&[int("num_outputs", 3)]),
        [vec![3], vec![3], vec![1]]
    );
    assert_eq!(
        shapes(&[int("num_outputs", 4)]),
        [vec![2], vec![2], vec![2], vec![1]]
    );
    assert_eq!(shapes(&[int("num_outputs", 1)]), [vec![7]]);
    // Without sizes or num_outputs: as many parts as the op declares.
    let parts = split_into(2, &[int("axis", 1)], &[iota(&[2, 4])]).unwrap();
    assert_eq!(
        parts,
        [
            (vec![2, 2], vec![0.0, 1.0, 4.0, 5.0]),
            (vec![2, 2], vec![2.0, 3.0, 6.0, 7.0])
        ]
    );
}

#[test]
fn split_refuses_sizes_that_do_not_cover_the_axis() {
    let x = iota(&[5]);
    refused(
        split(&[], std::slice::from_ref(&x)),
        "tensor.bad_attribute",
        &["Split", "num_outputs"],
    );
    refused(
        split(&[], &[x.clone(), list(&[2, 2])]),
        "tensor.bad_input",
        &["Split", "input 1", "extent 5"],
    );
    refused(
        split(&[], &[x.clone(), list(&[6, -1])]),
        "tensor.bad_input",
        &["negative"],
    );
    refused(
        split(&[ints("split", &[1, 1])], std::slice::from_ref(&x)),
        "tensor.bad_attribute",
        &["Split", "split", "extent 5"],
    );
    refused(
        split(&[int("num_outputs", 4)], std::slice::from_ref(&x)),
        "tensor.bad_input",
        &["extent 5", "4 parts"],
    );
    refused(
        split(&[int("num_outputs", 0)], std::slice::from_ref(&x)),
        "tensor.bad_attribute",
        &["num_outputs", "1 or more"],
    );
    refused(
        split(
            &[int("num_outputs", 2), ints("split", &[2, 3])],
            std::slice::from_ref(&x),
        ),
        "tensor.bad_attribute",
        &["not both"],
    );
    refused(
        split(&[int("num_outputs", 2)], &[x.clone(), list(&[2, 3])]),
        "tensor.bad_input",
        &["not both"],
    );
    refused(
        split_into(3, &[int("num_outputs", 2)], std::slice::from_ref(&x)),
        "tensor.bad_attribute",
        &["declares 3 outputs"],
    );
    refused(
        split_into(3, &[], &[x.clone(), list(&[2, 3])]),
        "tensor.bad_input",
        &["2 parts", "declares 3"],
    );
    refused(
        split(&[int("axis", 1), int("num_outputs", 1)], &[x]),
        "tensor.bad_attribute",
        &["axis 1"],
    );
}

/// Slice of a 3×4 iota with the given starts, ends, axes, steps.
fn slice(
    starts: &[i64],
    ends: &[i64],
    axes: Option<&[i64]>,
    steps: Option<&[i64]>,
) -> Result<Tensor, TensorError> {
    run(
        "Slice",
        &[],
        &[
            iota(&[3, 4]),
            list(starts),
            list(ends),
            axes.and_then(list),
            steps.and_then(list),
        ],
    )
}

#[test]
fn slice_picks_ranges_with_negative_indices_and_steps() {
    let t = slice(&[1, 0], &[3, 3], None, None).unwrap();
    assert_eq!(
        (t.shape(), floats(&t)),
        (&[2usize, 3][..], vec![4.0, 5.0, 6.0, 8.0, 9.0, 10.0])
    );
    // Row 1 onwards, to the end however large `end` is.
    let t = slice(&[1], &[i64::MAX], Some(&[0]), None).unwrap();
    assert_eq!(t.shape(), &[2, 4]);
    // Every other column.
    let t = slice(&[0], &[4], Some(&[-1]), Some(&[2])).unwrap();
    assert_eq!(floats(&t), [0.0, 2.0, 4.0, 6.0, 8.0, 10.0]);
    // Columns reversed: end -5 → -1, clamped to "before the first".
    let t = slice(&[-1], &[-5], Some(&[1]), Some(&[-1])).unwrap();
    assert_eq!(
        floats(&t),
        [3.0, 2.0, 1.0, 0.0, 7.0, 6.0, 5.0, 4.0, 11.0, 10.0, 9.0, 8.0]
    );
    let t = slice(
        &[i64::MAX, -1],
        &[i64::MIN, -3],
        Some(&[1, 0]),
        Some(&[-2, -1]),
    )
    .unwrap();
    assert_eq!(
        (t.shape(), floats(&t)),
        (&[2usize, 2][..], vec![11.0, 9.0, 7.0, 5.0])
    );
    // A start past the end, or a step longer than the axis.
    assert_eq!(slice(&[2], &[1], None, None).unwrap().shape(), &[0, 4]);
    assert_eq!(
        slice(&[0], &[4], Some(&[1]), Some(&[i64::MAX]))
            .unwrap()
            .shape(),
        &[3, 1]
    );
    assert_eq!(
        slice(&[0], &[1], Some(&[1]), Some(&[i64::MIN]))
            .unwrap()
            .shape(),
        &[3, 0]
    );
    assert_eq!(slice(&[-100], &[100], None, None).unwrap().shape(), &[3, 4]);
    // The opset-1 attribute form, and other element types.
    let attrs = [ints("starts", &[1]), ints("ends", &[2]), ints("axes", &[1])];
    let t = run("Slice", &attrs, &[i(&[2, 3], &[1, 2, 3, 4, 5, 6])]).unwrap();
    assert_eq!(
        (t.shape(), t.to_i64_vec().unwrap()),
        (&[2usize, 1][..], vec![2, 5])
    );
    let t = run(
        "Slice",
        &[],
        &[
            b(&[3], &[true, false, true]),
            list(&[-1]),
            list(&[-4]),
            None,
            list(&[-1]),
        ],
    )
    .unwrap();
    assert_eq!(t.to_bool_vec().unwrap(), [true, false, true]);
}

#[test]
fn slice_refuses_bad_parameters() {
    refused(
        slice(&[0], &[1], None, Some(&[0])),
        "tensor.bad_input",
        &["Slice", "input 4", "step 0 is 0"],
    );
    refused(
        slice(&[0, 0], &[1], None, None),
        "tensor.bad_input",
        &["input 2", "has 1 values but starts has 2"],
    );
    refused(
        slice(&[0], &[1], Some(&[0, 1]), None),
        "tensor.bad_input",
        &["input 3"],
    );
    refused(
        slice(&[0], &[1], Some(&[2]), None),
        "tensor.bad_input",
        &["input 3", "axis 2", "[3, 4]"],
    );
    refused(
        slice(&[0, 0], &[1, 1], Some(&[1, -1]), None),
        "tensor.bad_input",
        &["named twice"],
    );
    refused(
        slice(&[0, 0, 0], &[1, 1, 1], None, None),
        "tensor.bad_input",
        &["input 1", "[3, 4]"],
    );
    refused(
        run("Slice", &[], &[iota(&[3]), list(&[0])]),
        "tensor.missing_input",
        &["Slice", "input 2"],
    );
    refused(
        run("Slice", &[], &[iota(&[3]), f(&[1], &[0.0]), list(&[1])]),
        "tensor.dtype",
        &["input 1"],
    );
    refused(
        run("Slice", &[ints("starts", &[0])], &[iota(&[3])]),
        "tensor.bad_attribute",
        &["ends"],
    );
    let attrs = [ints("starts", &[0]), ints("ends", &[1]), ints("axes", &[3])];
    refused(
        run("Slice", &attrs, &[iota(&[3])]),
        "tensor.bad_attribute",
        &["Slice", "axes", "axis 3"],
    );
}

#[test]
fn gather_takes_entries_along_an_axis() {
    let x = iota(&[3, 2]);
    let t = run("Gather", &[], &[x.clone(), list(&[2, 0, -1])]).unwrap();
    assert_eq!(
        (t.shape(), floats(&t)),
        (&[3usize, 2][..], vec![4.0, 5.0, 0.0, 1.0, 4.0, 5.0])
    );
    // Indices of rank 2 along axis 1: out[a][i][j] = x[a][idx[i][j]].
    let t = run(
        "Gather",
        &[int("axis", 1)],
        &[iota(&[2, 3]), i(&[2, 1], &[2, 0])],
    )
    .unwrap();
    assert_eq!(
        (t.shape(), floats(&t)),
        (&[2usize, 2, 1][..], vec![2.0, 0.0, 5.0, 3.0])
    );
    let t = run("Gather", &[int("axis", -1)], &[iota(&[2, 3]), list(&[1])]).unwrap();
    assert_eq!((t.shape(), floats(&t)), (&[2usize, 1][..], vec![1.0, 4.0]));
    // A scalar index drops the axis.
    let t = run("Gather", &[], &[x.clone(), Some(Tensor::scalar_i64(1))]).unwrap();
    assert_eq!((t.shape(), floats(&t)), (&[2usize][..], vec![2.0, 3.0]));
    let t = run("Gather", &[], &[x.clone(), list(&[])]).unwrap();
    assert_eq!(t.shape(), &[0, 2]);
    let t = run("Gather", &[], &[i(&[3], &[10, 20, 30]), list(&[-3, 2])]).unwrap();
    assert_eq!(t.to_i64_vec().unwrap(), [10, 30]);
    let t = run(
        "Gather",
        &[],
        &[b(&[2], &[true, false]), i(&[2, 2], &[1, 1, 0, 1])],
    )
    .unwrap();
    assert_eq!(t.to_bool_vec().unwrap(), [false, false, true, false]);
}

#[test]
fn gather_refuses_indices_out_of_range() {
    let x = iota(&[3, 2]);
    for index in [3, -4, i64::MIN] {
        refused(
            run("Gather", &[], &[x.clone(), list(&[0, index])]),
            "tensor.bad_input",
            &[
                "Gather",
                "input 1",
                &format!("index {index}"),
                "extent 3",
                "[3, 2]",
            ],
        );
    }
    refused(
        run("Gather", &[], &[x.clone(), f(&[1], &[0.0])]),
        "tensor.dtype",
        &["Gather", "input 1", "float32"],
    );
    refused(
        run("Gather", &[int("axis", 2)], &[x.clone(), list(&[0])]),
        "tensor.bad_attribute",
        &["axis 2"],
    );
    refused(
        run("Gather", &[], &[Some(Tensor::scalar_f32(1.0)), list(&[0])]),
        "tensor.bad_input",
        &["rank 1"],
    );
    refused(
        run("Gather", &[], &[x]),
        "tensor.missing_input",
        &["input 1"],
    );
}
