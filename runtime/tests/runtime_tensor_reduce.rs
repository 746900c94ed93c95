//! The CPU backend's reductions (ReduceSum, ReduceMean, ReduceMax,
//! ReduceMin, ReduceProd) and ArgMax / ArgMin: axes as attribute or input,
//! negative axes, keepdims both ways, empty axes, empty reductions, NaN,
//! and every typed refusal, against hand-computed values.
#![allow(clippy::unwrap_used)]

use nodeflow::engine::{Attribute, AttributeValue};
use nodeflow::{CpuBackend, Tensor, TensorError};

fn f(shape: &[usize], data: &[f32]) -> Tensor {
    Tensor::from_f32(shape.to_vec(), data.to_vec()).unwrap()
}

fn i(shape: &[usize], data: &[i64]) -> Tensor {
    Tensor::from_i64(shape.to_vec(), data.to_vec()).unwrap()
}

/// `0, 1, …, 23` as a [2, 3, 4] f32 tensor.
fn cube() -> Tensor {
    f(&[2, 3, 4], &(0..24).map(|v| v as f32).collect::<Vec<_>>())
}

/// [[1, -2, 3], [4, 5, -6]].
fn grid() -> Tensor {
    f(&[2, 3], &[1.0, -2.0, 3.0, 4.0, 5.0, -6.0])
}

fn int(name: &str, v: i64) -> Attribute {
    Attribute {
        name: name.to_owned(),
        value: AttributeValue::Int(v),
    }
}

fn axes(v: &[i64]) -> Attribute {
    Attribute {
        name: "axes".to_owned(),
        value: AttributeValue::Ints(v.to_vec()),
    }
}

fn run(op: &str, attrs: &[Attribute], inputs: &[Option<Tensor>]) -> Tensor {
    CpuBackend::eval(op, attrs, inputs).unwrap().remove(0)
}

fn run1(op: &str, attrs: &[Attribute], x: Tensor) -> Tensor {
    run(op, attrs, &[Some(x)])
}

fn fail(op: &str, attrs: &[Attribute], inputs: &[Option<Tensor>]) -> TensorError {
    CpuBackend::eval(op, attrs, inputs).unwrap_err()
}

fn assert_error(err: &TensorError, reason: &str, mentions: &[&str]) {
    assert_eq!(err.reason(), reason, "{err}");
    let text = err.to_string();
    for m in mentions {
        assert!(text.contains(m), "{text:?} does not mention {m:?}");
    }
}

#[test]
fn reduce_sum_over_attribute_axes_keepdims_both_ways() {
    let y = run1("ReduceSum", &[axes(&[0, 2])], cube());
    assert_eq!(y, f(&[1, 3, 1], &[60.0, 92.0, 124.0]));
    let y = run1("ReduceSum", &[axes(&[2, 0]), int("keepdims", 0)], cube());
    assert_eq!(y, f(&[3], &[60.0, 92.0, 124.0]));
    let y = run1("ReduceSum", &[axes(&[1]), int("keepdims", 0)], cube());
    let expected = [12.0, 15.0, 18.0, 21.0, 48.0, 51.0, 54.0, 57.0];
    assert_eq!(y, f(&[2, 4], &expected));
}

#[test]
fn reduce_sum_over_input_axes_with_negative_axes() {
    let y = run("ReduceSum", &[], &[Some(cube()), Some(i(&[1], &[-2]))]);
    let expected = [12.0, 15.0, 18.0, 21.0, 48.0, 51.0, 54.0, 57.0];
    assert_eq!(y, f(&[2, 1, 4], &expected));
    let y = run(
        "ReduceSum",
        &[int("keepdims", 0)],
        &[Some(cube()), Some(i(&[2], &[-1, -3]))],
    );
    assert_eq!(y, f(&[3], &[60.0, 92.0, 124.0]));
    // The attribute, when present, wins over the input.
    let y = run(
        "ReduceSum",
        &[axes(&[-1]), int("keepdims", 0)],
        &[Some(grid()), Some(i(&[1], &[0]))],
    );
    assert_eq!(y, f(&[2], &[2.0, 3.0]));
}

#[test]
fn no_axes_reduce_everything_unless_noop() {
    assert_eq!(run1("ReduceSum", &[], cube()), f(&[1, 1, 1], &[276.0]));
    assert_eq!(
        run1("ReduceSum", &[int("keepdims", 0)], cube()),
        f(&[], &[276.0])
    );
    // An empty axes input is the same as none.
    let empty = i(&[0], &[]);
    let y = run(
        "ReduceMax",
        &[int("keepdims", 0)],
        &[Some(grid()), Some(empty.clone())],
    );
    assert_eq!(y, f(&[], &[5.0]));
    let noop = int("noop_with_empty_axes", 1);
    let x = cube();
    let y = run1("ReduceSum", std::slice::from_ref(&noop), x.clone());
    assert!(
        y.shares_buffer_with(&x),
        "the input passes through uncopied"
    );
    assert_eq!(y, cube());
    let y = run("ReduceMean", &[noop], &[Some(grid()), Some(empty)]);
    assert_eq!(y, grid());
    // A scalar reduces to itself.
    assert_eq!(run1("ReduceProd", &[], f(&[], &[7.0])), f(&[], &[7.0]));
}

#[test]
fn reduce_mean_max_min_prod_on_f32() {
    let y = run1("ReduceMean", &[axes(&[0, 2]), int("keepdims", 0)], cube());
    assert_eq!(y, f(&[3], &[7.5, 11.5, 15.5]));
    let y = run1("ReduceMean", &[axes(&[-1])], cube());
    assert_eq!(y, f(&[2, 3, 1], &[1.5, 5.5, 9.5, 13.5, 17.5, 21.5]));
    let kd0 = int("keepdims", 0);
    assert_eq!(
        run1("ReduceMax", &[axes(&[0]), kd0.clone()], grid()),
        f(&[3], &[4.0, 5.0, 3.0])
    );
    assert_eq!(
        run1("ReduceMin", &[axes(&[1])], grid()),
        f(&[2, 1], &[-2.0, -6.0])
    );
    assert_eq!(
        run1("ReduceProd", &[axes(&[1]), kd0.clone()], grid()),
        f(&[2], &[-6.0, -120.0])
    );
    assert_eq!(run1("ReduceProd", &[kd0], grid()), f(&[], &[720.0]));
}

#[test]
fn reduce_max_and_min_propagate_nan() {
    let x = f(&[2, 2], &[1.0, f32::NAN, 3.0, 4.0]);
    let kd0 = int("keepdims", 0);
    for op in ["ReduceMax", "ReduceMin"] {
        let y = run1(op, &[axes(&[1]), kd0.clone()], x.clone());
        let v = y.to_f32_vec().unwrap();
        assert!(v[0].is_nan(), "{op}: {v:?}");
        assert_eq!(v[1], if op == "ReduceMax" { 4.0 } else { 3.0 });
        // Along the strided axis too.
        let v = run1(op, &[axes(&[0]), kd0.clone()], x.clone())
            .to_f32_vec()
            .unwrap();
        assert_eq!(v[0], if op == "ReduceMax" { 3.0 } else { 1.0 });
        assert!(v[1].is_nan(), "{op}: {v:?}");
    }
}

#[test]
fn reductions_on_i64() {
    let x = i(&[2, 2], &[1, 2, 3, -4]);
    let kd0 = int("keepdims", 0);
    let at1 = axes(&[1]);
    assert_eq!(
        run1("ReduceSum", &[at1.clone(), kd0.clone()], x.clone()),
        i(&[2], &[3, -1])
    );
    // Means truncate toward zero: 1.5 -> 1, -0.5 -> 0.
    assert_eq!(
        run1("ReduceMean", &[at1.clone(), kd0.clone()], x.clone()),
        i(&[2], &[1, 0])
    );
    assert_eq!(
        run1("ReduceMax", &[axes(&[0])], x.clone()),
        i(&[1, 2], &[3, 2])
    );
    assert_eq!(
        run1("ReduceMin", &[at1.clone(), kd0.clone()], x.clone()),
        i(&[2], &[1, -4])
    );
    assert_eq!(
        run1("ReduceProd", std::slice::from_ref(&kd0), x),
        i(&[], &[-24])
    );
    // Integer sums wrap.
    let big = i(&[2], &[i64::MAX, 1]);
    assert_eq!(run1("ReduceSum", &[kd0], big), i(&[], &[i64::MIN]));
}

#[test]
fn reduce_max_and_min_of_bools_are_any_and_all() {
    let b = |shape: &[usize], v: &[bool]| Tensor::from_bool(shape.to_vec(), v.to_vec()).unwrap();
    let x = b(&[2, 2], &[true, false, false, false]);
    let at1 = axes(&[1]);
    assert_eq!(
        run1("ReduceMax", std::slice::from_ref(&at1), x.clone()),
        b(&[2, 1], &[true, false])
    );
    assert_eq!(
        run1("ReduceMin", &[axes(&[0]), int("keepdims", 0)], x.clone()),
        b(&[2], &[false, false])
    );
    let empty = b(&[2, 0], &[]);
    assert_eq!(
        run1("ReduceMax", std::slice::from_ref(&at1), empty.clone()),
        b(&[2, 1], &[false, false])
    );
    assert_eq!(
        run1("ReduceMin", std::slice::from_ref(&at1), empty),
        b(&[2, 1], &[true, true])
    );
    let err = fail("ReduceSum", &[], &[Some(x)]);
    assert_error(&err, "tensor.dtype", &["ReduceSum", "input 0", "bool"]);
}

#[test]
fn empty_reductions_yield_the_identity() {
    let x = f(&[2, 0], &[]);
    let kd0 = int("keepdims", 0);
    let at1 = axes(&[1]);
    let go = |op: &str, x: &Tensor| run1(op, &[at1.clone(), kd0.clone()], x.clone());
    assert_eq!(go("ReduceSum", &x), f(&[2], &[0.0, 0.0]));
    assert_eq!(go("ReduceProd", &x), f(&[2], &[1.0, 1.0]));
    assert_eq!(
        go("ReduceMax", &x),
        f(&[2], &[f32::NEG_INFINITY, f32::NEG_INFINITY])
    );
    assert_eq!(
        go("ReduceMin", &x),
        f(&[2], &[f32::INFINITY, f32::INFINITY])
    );
    assert!(go("ReduceMean", &x)
        .to_f32_vec()
        .unwrap()
        .iter()
        .all(|v| v.is_nan()));
    let xi = i(&[2, 0], &[]);
    assert_eq!(go("ReduceMax", &xi), i(&[2], &[i64::MIN, i64::MIN]));
    assert_eq!(go("ReduceMin", &xi), i(&[2], &[i64::MAX, i64::MAX]));
    // Reducing the non-empty axis keeps the empty one.
    let y = run1("ReduceSum", &[axes(&[0])], x);
    assert_eq!(y.shape(), &[1, 0]);
    let err = fail("ReduceMean", &[at1], &[Some(xi)]);
    assert_error(
        &err,
        "tensor.bad_input",
        &["ReduceMean", "input 0", "[2, 0]", "empty"],
    );
}

#[test]
fn reductions_refuse_bad_axes_and_types() {
    let err = fail("ReduceSum", &[axes(&[3])], &[Some(cube())]);
    assert_error(&err, "tensor.bad_attribute", &["ReduceSum", "axes", "3"]);
    let err = fail("ReduceMax", &[axes(&[1, -2])], &[Some(cube())]);
    assert_error(&err, "tensor.bad_attribute", &["ReduceMax", "twice"]);
    let err = fail("ReduceMin", &[], &[Some(cube()), Some(i(&[1], &[-4]))]);
    assert_error(
        &err,
        "tensor.bad_input",
        &["ReduceMin", "input 1", "[1]", "-4"],
    );
    let err = fail("ReduceMean", &[], &[Some(cube()), Some(f(&[1], &[0.0]))]);
    assert_error(&err, "tensor.dtype", &["ReduceMean", "input 1", "float32"]);
    let mask = Tensor::from_bool(vec![2], vec![true, false]).unwrap();
    let err = fail("ReduceProd", &[], &[Some(mask)]);
    assert_error(&err, "tensor.dtype", &["ReduceProd", "input 0", "bool"]);
    let err = fail("ReduceSum", &[int("keepdims", 2)], &[]);
    assert_error(&err, "tensor.bad_attribute", &["ReduceSum", "keepdims"]);
    let err = fail("ReduceSum", &[], &[]);
    assert_error(&err, "tensor.missing_input", &["ReduceSum", "input 0"]);
}

#[test]
fn argmax_and_argmin_axes_and_keepdims() {
    assert_eq!(run1("ArgMax", &[], grid()), i(&[1, 3], &[1, 1, 0]));
    assert_eq!(
        run1("ArgMin", &[int("axis", 1), int("keepdims", 0)], grid()),
        i(&[2], &[1, 2])
    );
    assert_eq!(
        run1("ArgMax", &[int("axis", -1)], grid()),
        i(&[2, 1], &[2, 1])
    );
    let y = run1("ArgMin", &[int("axis", 1)], cube());
    assert_eq!(y, i(&[2, 1, 4], &[0; 8]));
    let xi = i(&[3], &[5, -1, 9]);
    assert_eq!(run1("ArgMax", &[], xi.clone()), i(&[1], &[2]));
    assert_eq!(run1("ArgMin", &[int("keepdims", 0)], xi), i(&[], &[1]));
}

#[test]
fn argmax_select_last_index_breaks_ties_at_the_end() {
    let x = f(&[2, 3], &[2.0, 2.0, 1.0, 1.0, 3.0, 3.0]);
    let at1 = int("axis", 1);
    let last = int("select_last_index", 1);
    assert_eq!(
        run1("ArgMax", std::slice::from_ref(&at1), x.clone()),
        i(&[2, 1], &[0, 1])
    );
    assert_eq!(
        run1("ArgMax", &[at1.clone(), last.clone()], x.clone()),
        i(&[2, 1], &[1, 2])
    );
    let y = f(&[2, 3], &[1.0, 2.0, 1.0, 1.0, 3.0, 1.0]);
    assert_eq!(
        run1("ArgMin", &[at1.clone(), last], y.clone()),
        i(&[2, 1], &[2, 2])
    );
    assert_eq!(run1("ArgMin", &[at1], y), i(&[2, 1], &[0, 0]));
}

#[test]
fn argmax_and_argmin_treat_nan_as_the_extreme() {
    let x = f(&[4], &[1.0, f32::NAN, 3.0, f32::NAN]);
    let last = int("select_last_index", 1);
    for op in ["ArgMax", "ArgMin"] {
        assert_eq!(run1(op, &[], x.clone()), i(&[1], &[1]), "{op}");
        assert_eq!(
            run1(op, std::slice::from_ref(&last), x.clone()),
            i(&[1], &[3]),
            "{op}"
        );
    }
}

#[test]
fn argmax_refuses_empty_axes_bad_axes_and_types() {
    let err = fail("ArgMax", &[int("axis", 1)], &[Some(f(&[2, 0], &[]))]);
    assert_error(
        &err,
        "tensor.bad_input",
        &["ArgMax", "input 0", "[2, 0]", "empty"],
    );
    let err = fail("ArgMin", &[int("axis", 2)], &[Some(grid())]);
    assert_error(&err, "tensor.bad_attribute", &["ArgMin", "axis", "2"]);
    let mask = Tensor::from_bool(vec![2], vec![true, false]).unwrap();
    let err = fail("ArgMax", &[], &[Some(mask)]);
    assert_error(&err, "tensor.dtype", &["ArgMax", "bool"]);
    let err = fail("ArgMax", &[int("select_last_index", 3)], &[]);
    assert_error(
        &err,
        "tensor.bad_attribute",
        &["ArgMax", "select_last_index"],
    );
}
