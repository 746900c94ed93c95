//! Elementwise arithmetic on the CPU backend: values, numpy broadcasting, element types, and every typed refusal.
#![allow(clippy::unwrap_used)]

use nodeflow::engine::{Attribute, AttributeValue};
use nodeflow::{CpuBackend, DType, Tensor, TensorError};

fn f(shape: &[usize], data: &[f32]) -> Option<Tensor> {
    Some(Tensor::from_f32(shape.to_vec(), data.to_vec()).unwrap())
}

fn i(shape: &[usize], data: &[i64]) -> Option<Tensor> {
    Some(Tensor::from_i64(shape.to_vec(), data.to_vec()).unwrap())
}

fn run(op: &str, inputs: &[Option<Tensor>]) -> Result<Tensor, TensorError> {
    run_with(op, &[], inputs)
}

fn run_with(
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

#[test]
fn binary_ops_on_equal_shapes() {
    let a = f(&[2, 2], &[1.0, 2.0, 3.0, 4.0]);
    let b = f(&[2, 2], &[4.0, 3.0, 2.0, 0.5]);
    let cases: [(&str, [f32; 4]); 4] = [
        ("Add", [5.0, 5.0, 5.0, 4.5]),
        ("Sub", [-3.0, -1.0, 1.0, 3.5]),
        ("Mul", [4.0, 6.0, 6.0, 2.0]),
        ("Div", [0.25, 2.0 / 3.0, 1.5, 8.0]),
    ];
    for (op, want) in cases {
        let t = run(op, &[a.clone(), b.clone()]).unwrap();
        assert_eq!(t.shape(), &[2, 2]);
        assert_eq!(floats(&t), want, "{op}");
    }
}

#[test]
fn broadcasting_follows_numpy() {
    // [2,3] + [3] → row broadcast.
    let t = run(
        "Add",
        &[
            f(&[2, 3], &[0.0, 1.0, 2.0, 3.0, 4.0, 5.0]),
            f(&[3], &[10.0, 20.0, 30.0]),
        ],
    )
    .unwrap();
    assert_eq!(floats(&t), [10.0, 21.0, 32.0, 13.0, 24.0, 35.0]);
    // [2,1] * [1,3] → outer product shape [2,3].
    let t = run(
        "Mul",
        &[f(&[2, 1], &[2.0, 3.0]), f(&[1, 3], &[1.0, 10.0, 100.0])],
    )
    .unwrap();
    assert_eq!(t.shape(), &[2, 3]);
    assert_eq!(floats(&t), [2.0, 20.0, 200.0, 3.0, 30.0, 300.0]);
    // Scalar against a rank-3 tensor, on the left.
    let t = run("Sub", &[f(&[], &[1.0]), f(&[1, 2, 1], &[5.0, 7.0])]).unwrap();
    assert_eq!(
        (t.shape(), floats(&t)),
        (&[1usize, 2, 1][..], vec![-4.0, -6.0])
    );
    // A zero-length axis broadcasts to zero length.
    let t = run("Add", &[f(&[0, 3], &[]), f(&[1, 3], &[1.0, 2.0, 3.0])]).unwrap();
    assert_eq!(t.shape(), &[0, 3]);
}

#[test]
fn shapes_that_do_not_broadcast_are_refused_naming_op_and_shapes() {
    let err = run("Add", &[f(&[2, 3], &[0.0; 6]), f(&[2], &[0.0; 2])]).unwrap_err();
    assert_eq!(err.reason(), "tensor.shape_mismatch");
    let text = err.to_string();
    assert!(
        text.contains("Add") && text.contains("[2, 3]") && text.contains("[2]"),
        "{text}"
    );
}

#[test]
fn integer_arithmetic_wraps_and_refuses_division_by_zero() {
    let t = run("Add", &[i(&[2], &[i64::MAX, 1]), i(&[], &[1])]).unwrap();
    assert_eq!(t.to_i64_vec().unwrap(), [i64::MIN, 2]);
    let t = run("Div", &[i(&[3], &[7, -7, 9]), i(&[3], &[2, 2, -3])]).unwrap();
    assert_eq!(
        t.to_i64_vec().unwrap(),
        [3, -3, -3],
        "truncates toward zero"
    );
    let err = run("Div", &[i(&[2], &[1, 2]), i(&[2], &[1, 0])]).unwrap_err();
    assert_eq!(err.reason(), "tensor.bad_input");
    assert!(err.to_string().contains("division by zero"));
}

#[test]
fn mixed_element_types_are_refused() {
    let err = run("Mul", &[f(&[1], &[1.0]), i(&[1], &[1])]).unwrap_err();
    assert_eq!(
        err,
        TensorError::DType {
            op: "Mul",
            input: 1,
            found: DType::I64,
            expected: "float32"
        }
    );
    let b = Some(Tensor::from_bool(vec![1], vec![true]).unwrap());
    assert_eq!(
        run("Add", &[b.clone(), b]).unwrap_err().reason(),
        "tensor.dtype"
    );
    assert_eq!(
        run("Sqrt", &[i(&[1], &[4])]).unwrap_err().reason(),
        "tensor.dtype"
    );
}

#[test]
fn absent_inputs_are_refused() {
    assert_eq!(
        run("Add", &[f(&[1], &[1.0]), None]).unwrap_err(),
        TensorError::MissingInput {
            op: "Add",
            input: 1
        }
    );
    assert_eq!(
        run("Neg", &[]).unwrap_err().reason(),
        "tensor.missing_input"
    );
}

#[test]
fn unary_ops() {
    let x = f(&[4], &[-2.0, 0.25, 1.0, 4.0]);
    let cases: [(&str, [f32; 4]); 3] = [
        ("Neg", [2.0, -0.25, -1.0, -4.0]),
        ("Abs", [2.0, 0.25, 1.0, 4.0]),
        ("Reciprocal", [-0.5, 4.0, 1.0, 0.25]),
    ];
    for (op, want) in cases {
        assert_eq!(
            floats(&run(op, std::slice::from_ref(&x)).unwrap()),
            want,
            "{op}"
        );
    }
    let t = run("Sqrt", &[f(&[3], &[4.0, 0.0, -1.0])]).unwrap();
    assert_eq!(floats(&t)[..2], [2.0, 0.0]);
    assert!(floats(&t)[2].is_nan());
    let t = run("Exp", &[f(&[2], &[0.0, 1.0])]).unwrap();
    assert_eq!(floats(&t), [1.0, std::f32::consts::E]);
    let t = run("Log", &[f(&[3], &[1.0, 8.0, 0.0])]).unwrap();
    assert_eq!(floats(&t), [0.0, 8f32.ln(), f32::NEG_INFINITY]);
    let t = run("Neg", &[i(&[2], &[3, i64::MIN])]).unwrap();
    assert_eq!(t.to_i64_vec().unwrap(), [-3, i64::MIN]);
    let t = run("Abs", &[i(&[2], &[-3, 4])]).unwrap();
    assert_eq!(t.to_i64_vec().unwrap(), [3, 4]);
}

#[test]
fn pow_takes_mixed_exponent_types() {
    let t = run("Pow", &[f(&[3], &[2.0, 3.0, 4.0]), f(&[], &[2.0])]).unwrap();
    assert_eq!(floats(&t), [4.0, 9.0, 16.0]);
    let t = run("Pow", &[f(&[2], &[2.0, 9.0]), i(&[2], &[3, 0])]).unwrap();
    assert_eq!((t.dtype(), floats(&t)), (DType::F32, vec![8.0, 1.0]));
    let t = run("Pow", &[i(&[2], &[2, 3]), i(&[2], &[10, 2])]).unwrap();
    assert_eq!(t.to_i64_vec().unwrap(), [1024, 9]);
    let t = run("Pow", &[i(&[2], &[4, 9]), f(&[], &[0.5])]).unwrap();
    assert_eq!(
        (t.dtype(), t.to_i64_vec().unwrap()),
        (DType::I64, vec![2, 3])
    );
    let err = run("Pow", &[f(&[2], &[1.0, 2.0]), f(&[3], &[1.0; 3])]).unwrap_err();
    assert_eq!(err.reason(), "tensor.shape_mismatch");
}

#[test]
fn max_and_min_are_variadic_broadcast_and_propagate_nan() {
    let t = run(
        "Max",
        &[
            f(&[3], &[1.0, 5.0, 2.0]),
            f(&[1], &[3.0]),
            f(&[2, 1], &[0.0, 4.0]),
        ],
    )
    .unwrap();
    assert_eq!(t.shape(), &[2, 3]);
    assert_eq!(floats(&t), [3.0, 5.0, 3.0, 4.0, 5.0, 4.0]);
    let t = run(
        "Min",
        &[f(&[3], &[1.0, f32::NAN, 2.0]), f(&[3], &[0.0, 1.0, 3.0])],
    )
    .unwrap();
    let v = floats(&t);
    assert_eq!((v[0], v[2]), (0.0, 2.0));
    assert!(v[1].is_nan());
    let t = run("Max", &[f(&[2], &[1.0, -1.0])]).unwrap();
    assert_eq!(floats(&t), [1.0, -1.0], "one input is returned as is");
    let t = run("Min", &[i(&[2], &[5, -2]), i(&[2], &[3, 7])]).unwrap();
    assert_eq!(t.to_i64_vec().unwrap(), [3, -2]);
    let err = run("Max", &[f(&[2], &[1.0, 2.0]), i(&[2], &[1, 2])]).unwrap_err();
    assert_eq!(err.reason(), "tensor.dtype");
    let err = run("Max", &[f(&[2], &[1.0, 2.0]), f(&[3], &[0.0; 3])]).unwrap_err();
    assert_eq!(err.reason(), "tensor.shape_mismatch");
}

#[test]
fn clip_bounds_come_from_inputs_or_attributes() {
    let x = f(&[5], &[-3.0, -1.0, 0.0, 1.0, 3.0]);
    let t = run("Clip", &[x.clone(), f(&[], &[-1.5]), f(&[], &[2.0])]).unwrap();
    assert_eq!(floats(&t), [-1.5, -1.0, 0.0, 1.0, 2.0]);
    // Only a max: the min input is absent.
    let t = run("Clip", &[x.clone(), None, f(&[], &[0.5])]).unwrap();
    assert_eq!(floats(&t), [-3.0, -1.0, 0.0, 0.5, 0.5]);
    // No bounds: unchanged.
    assert_eq!(
        floats(&run("Clip", std::slice::from_ref(&x)).unwrap()),
        floats(x.as_ref().unwrap())
    );
    // Opset-6 attributes.
    let attrs = [
        Attribute {
            name: "min".into(),
            value: AttributeValue::Float(-0.5),
        },
        Attribute {
            name: "max".into(),
            value: AttributeValue::Float(0.5),
        },
    ];
    let t = run_with("Clip", &attrs, std::slice::from_ref(&x)).unwrap();
    assert_eq!(floats(&t), [-0.5, -0.5, 0.0, 0.5, 0.5]);
    let t = run("Clip", &[i(&[3], &[-5, 0, 5]), i(&[], &[-1]), i(&[], &[1])]).unwrap();
    assert_eq!(t.to_i64_vec().unwrap(), [-1, 0, 1]);
    let err = run("Clip", &[x.clone(), f(&[2], &[0.0, 1.0])]).unwrap_err();
    assert_eq!(err.reason(), "tensor.bad_input");
    let err = run("Clip", &[x, i(&[], &[0])]).unwrap_err();
    assert_eq!(err.reason(), "tensor.dtype");
    let bad = [Attribute {
        name: "min".into(),
        value: AttributeValue::String("low".into()),
    }];
    let err = CpuBackend::eval("Clip", &bad, &[f(&[1], &[0.0])]).unwrap_err();
    assert_eq!(err.reason(), "tensor.bad_attribute");
}

#[test]
fn unknown_ops_are_refused() {
    let err = CpuBackend::eval("Conv", &[], &[]).unwrap_err();
    assert_eq!(err, TensorError::UnknownOp { op: "Conv".into() });
}

#[test]
fn outputs_do_not_alias_their_inputs() {
    let x = f(&[3], &[1.0, 2.0, 3.0]).unwrap();
    let y = run("Neg", &[Some(x.clone())]).unwrap();
    assert!(!y.shares_buffer_with(&x));
    assert_eq!(x.to_f32_vec().unwrap(), [1.0, 2.0, 3.0]);
}
