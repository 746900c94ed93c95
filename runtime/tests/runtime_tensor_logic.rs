//! Comparison, selection and type ops on the CPU backend (Equal, Greater, Less, GreaterOrEqual, LessOrEqual, Where, Not, And, Or, Xor, Cast, CastLike, Constant, ConstantOfShape): values, broadcasting, and every typed refusal.
#![allow(clippy::unwrap_used)]

use nodeflow::engine::{Attribute, AttributeValue, TensorProto};
use nodeflow::{CpuBackend, DType, Tensor, TensorError};

fn f(shape: &[usize], data: &[f32]) -> Option<Tensor> {
    Some(Tensor::from_f32(shape.to_vec(), data.to_vec()).unwrap())
}

fn i(shape: &[usize], data: &[i64]) -> Option<Tensor> {
    Some(Tensor::from_i64(shape.to_vec(), data.to_vec()).unwrap())
}

fn b(shape: &[usize], data: &[bool]) -> Option<Tensor> {
    Some(Tensor::from_bool(shape.to_vec(), data.to_vec()).unwrap())
}

fn attr(name: &str, value: AttributeValue) -> Attribute {
    Attribute {
        name: name.to_owned(),
        value,
    }
}

fn int(name: &str, v: i64) -> Attribute {
    attr(name, AttributeValue::Int(v))
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

fn bools(t: &Tensor) -> Vec<bool> {
    t.to_bool_vec().unwrap()
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

const T: bool = true;
const F: bool = false;

#[test]
fn comparisons_broadcast_and_answer_bool() {
    let a = f(&[2, 1], &[1.0, 2.0]);
    let c = f(&[3], &[1.0, 2.0, 3.0]);
    let cases: [(&str, [bool; 6]); 5] = [
        ("Equal", [T, F, F, F, T, F]),
        ("Greater", [F, F, F, T, F, F]),
        ("Less", [F, T, T, F, F, T]),
        ("GreaterOrEqual", [T, F, F, T, T, F]),
        ("LessOrEqual", [T, T, T, F, T, T]),
    ];
    for (op, want) in cases {
        let t = run(op, &[], &[a.clone(), c.clone()]).unwrap();
        assert_eq!(
            (t.dtype(), t.shape()),
            (DType::Bool, &[2usize, 3][..]),
            "{op}"
        );
        assert_eq!(bools(&t), want, "{op}");
    }
    let t = run("Greater", &[], &[i(&[3], &[-1, 5, 9]), i(&[], &[5])]).unwrap();
    assert_eq!(bools(&t), [F, F, T]);
    let t = run("Equal", &[], &[b(&[2], &[T, F]), b(&[2], &[T, T])]).unwrap();
    assert_eq!(bools(&t), [T, F]);
    // NaN is unequal and unordered.
    let nan = f(&[1], &[f32::NAN]);
    for op in ["Equal", "Greater", "Less", "GreaterOrEqual", "LessOrEqual"] {
        assert_eq!(
            bools(&run(op, &[], &[nan.clone(), nan.clone()]).unwrap()),
            [F],
            "{op}"
        );
    }
}

#[test]
fn comparisons_refuse_mixed_or_bool_inputs() {
    let x = f(&[2], &[1.0, 2.0]);
    refused(
        run("Equal", &[], &[x.clone(), i(&[2], &[1, 2])]),
        "tensor.dtype",
        &["Equal", "input 1", "int64"],
    );
    refused(
        run("Less", &[], &[b(&[1], &[T]), b(&[1], &[F])]),
        "tensor.dtype",
        &["Less", "input 0", "bool"],
    );
    refused(
        run("Greater", &[], &[x.clone(), f(&[3], &[0.0; 3])]),
        "tensor.shape_mismatch",
        &["Greater", "[2]", "[3]"],
    );
    refused(
        run("Equal", &[], &[x]),
        "tensor.missing_input",
        &["Equal", "input 1"],
    );
}

#[test]
fn where_selects_from_broadcast_inputs() {
    let cond = b(&[2], &[T, F]);
    let t = run(
        "Where",
        &[],
        &[
            cond.clone(),
            f(&[2, 2], &[1.0, 2.0, 3.0, 4.0]),
            f(&[], &[-1.0]),
        ],
    )
    .unwrap();
    assert_eq!(
        (t.shape(), t.to_f32_vec().unwrap()),
        (&[2usize, 2][..], vec![1.0, -1.0, 3.0, -1.0])
    );
    let t = run(
        "Where",
        &[],
        &[b(&[2, 1], &[F, T]), i(&[3], &[1, 2, 3]), i(&[1], &[0])],
    )
    .unwrap();
    assert_eq!(
        (t.shape(), t.to_i64_vec().unwrap()),
        (&[2usize, 3][..], vec![0, 0, 0, 1, 2, 3])
    );
    let t = run(
        "Where",
        &[],
        &[cond.clone(), b(&[2], &[T, T]), b(&[2], &[F, F])],
    )
    .unwrap();
    assert_eq!(bools(&t), [T, F]);
    refused(
        run(
            "Where",
            &[],
            &[
                f(&[2], &[1.0, 0.0]),
                f(&[2], &[1.0, 2.0]),
                f(&[2], &[3.0, 4.0]),
            ],
        ),
        "tensor.dtype",
        &["Where", "input 0", "bool"],
    );
    refused(
        run(
            "Where",
            &[],
            &[cond.clone(), f(&[2], &[1.0, 2.0]), i(&[2], &[3, 4])],
        ),
        "tensor.dtype",
        &["Where", "input 2", "int64", "float32"],
    );
    refused(
        run("Where", &[], &[cond, f(&[3], &[0.0; 3]), f(&[1], &[0.0])]),
        "tensor.shape_mismatch",
        &["Where", "[2]", "[3]"],
    );
}

#[test]
fn logical_ops_on_bool() {
    let t = run("Not", &[], &[b(&[3], &[T, F, T])]).unwrap();
    assert_eq!(bools(&t), [F, T, F]);
    let a = b(&[2, 1], &[T, F]);
    let c = b(&[2], &[T, F]);
    let cases: [(&str, [bool; 4]); 3] = [
        ("And", [T, F, F, F]),
        ("Or", [T, T, T, F]),
        ("Xor", [F, T, T, F]),
    ];
    for (op, want) in cases {
        let t = run(op, &[], &[a.clone(), c.clone()]).unwrap();
        assert_eq!(
            (t.shape(), bools(&t)),
            (&[2usize, 2][..], want.to_vec()),
            "{op}"
        );
    }
    refused(
        run("Not", &[], &[f(&[1], &[1.0])]),
        "tensor.dtype",
        &["Not", "input 0", "bool"],
    );
    refused(
        run("And", &[], &[a.clone(), i(&[1], &[1])]),
        "tensor.dtype",
        &["And", "input 1"],
    );
    refused(
        run("Or", &[], &[c, b(&[3], &[T; 3])]),
        "tensor.shape_mismatch",
        &["Or", "[2]", "[3]"],
    );
}

#[test]
fn cast_converts_between_element_types() {
    let to = |code: i64| [int("to", code)];
    let x = f(
        &[7],
        &[1.9, -1.9, f32::NAN, 1e20, -1e20, f32::INFINITY, -0.0],
    );
    let t = run("Cast", &to(7), std::slice::from_ref(&x)).unwrap();
    assert_eq!(
        t.to_i64_vec().unwrap(),
        [1, -1, 0, i64::MAX, i64::MIN, i64::MAX, 0]
    );
    let t = run("Cast", &to(9), &[x]).unwrap();
    assert_eq!(bools(&t), [T, T, T, T, T, T, F]);
    let t = run("Cast", &to(1), &[i(&[3], &[-3, 0, 1 << 40])]).unwrap();
    assert_eq!(t.to_f32_vec().unwrap(), [-3.0, 0.0, 1_099_511_627_776.0]);
    let t = run("Cast", &to(9), &[i(&[3], &[-3, 0, 2])]).unwrap();
    assert_eq!(bools(&t), [T, F, T]);
    let t = run("Cast", &to(1), &[b(&[2], &[T, F])]).unwrap();
    assert_eq!(t.to_f32_vec().unwrap(), [1.0, 0.0]);
    let t = run(
        "Cast",
        &[int("to", 7), int("saturate", 0)],
        &[b(&[2, 1], &[F, T])],
    )
    .unwrap();
    assert_eq!(
        (t.shape(), t.to_i64_vec().unwrap()),
        (&[2usize, 1][..], vec![0, 1])
    );
    // A cast to the input's own type shares it.
    let x = Tensor::from_f32(vec![2], vec![1.0, 2.0]).unwrap();
    assert!(run("Cast", &to(1), &[Some(x.clone())])
        .unwrap()
        .shares_buffer_with(&x));
    let t = run("CastLike", &[], &[Some(x), i(&[], &[0])]).unwrap();
    assert_eq!(t.to_i64_vec().unwrap(), [1, 2]);
}

#[test]
fn cast_refuses_targets_it_lacks() {
    let x = f(&[1], &[1.0]);
    refused(
        run("Cast", &[int("to", 10)], std::slice::from_ref(&x)),
        "tensor.bad_attribute",
        &["Cast", "to", "unsupported target type 10 (FLOAT16)"],
    );
    refused(
        run("Cast", &[int("to", 11)], std::slice::from_ref(&x)),
        "tensor.bad_attribute",
        &["DOUBLE"],
    );
    refused(
        run("Cast", &[int("to", 99)], std::slice::from_ref(&x)),
        "tensor.bad_attribute",
        &["99 (unknown)"],
    );
    refused(
        run("Cast", &[], std::slice::from_ref(&x)),
        "tensor.bad_attribute",
        &["Cast", "to", "required"],
    );
    refused(
        run("Cast", &[int("to", 1)], &[None]),
        "tensor.missing_input",
        &["Cast"],
    );
    refused(
        run("CastLike", &[], &[x]),
        "tensor.missing_input",
        &["CastLike", "input 1"],
    );
}

#[test]
fn constant_returns_its_one_value() {
    let value = |proto: TensorProto| {
        run(
            "Constant",
            &[attr("value", AttributeValue::Tensor(proto))],
            &[],
        )
        .unwrap()
    };
    let t = value(TensorProto::new(vec![2], vec![1.5, -2.0]));
    assert_eq!(
        (t.shape(), t.to_f32_vec().unwrap()),
        (&[2usize][..], vec![1.5, -2.0])
    );
    let t = value(TensorProto::int64(vec![1, 2], vec![3, 4]));
    assert_eq!(
        (t.shape(), t.to_i64_vec().unwrap()),
        (&[1usize, 2][..], vec![3, 4])
    );
    let t = value(TensorProto::boolean(vec![], &[true]));
    assert_eq!((t.rank(), bools(&t)), (0, vec![T]));
    let t = run(
        "Constant",
        &[attr("value_float", AttributeValue::Float(0.25))],
        &[],
    )
    .unwrap();
    assert_eq!((t.rank(), t.to_f32_vec().unwrap()), (0, vec![0.25]));
    let t = run(
        "Constant",
        &[attr("value_floats", AttributeValue::Floats(vec![1.0, 2.0]))],
        &[],
    )
    .unwrap();
    assert_eq!(
        (t.shape(), t.to_f32_vec().unwrap()),
        (&[2usize][..], vec![1.0, 2.0])
    );
    let t = run("Constant", &[int("value_int", -7)], &[]).unwrap();
    assert_eq!(
        (t.dtype(), t.rank(), t.to_i64_vec().unwrap()),
        (DType::I64, 0, vec![-7])
    );
    let t = run(
        "Constant",
        &[attr("value_ints", AttributeValue::Ints(vec![]))],
        &[],
    )
    .unwrap();
    assert_eq!((t.dtype(), t.shape()), (DType::I64, &[0usize][..]));
}

#[test]
fn constant_refuses_none_several_or_unsupported_values() {
    refused(
        run("Constant", &[], &[]),
        "tensor.bad_attribute",
        &["Constant", "value", "none is given"],
    );
    refused(
        run(
            "Constant",
            &[
                int("value_int", 1),
                attr("value_float", AttributeValue::Float(1.0)),
            ],
            &[],
        ),
        "tensor.bad_attribute",
        &["Constant", "exactly one", "value_int"],
    );
    let s = attr("value_string", AttributeValue::String("hi".into()));
    refused(
        run("Constant", &[s], &[]),
        "tensor.bad_attribute",
        &["value_string", "unsupported"],
    );
    refused(
        run("Constant", &[int("sparse_value", 0)], &[]),
        "tensor.bad_attribute",
        &["sparse_value", "unsupported"],
    );
    refused(
        run("Constant", &[int("value_floats", 1)], &[]),
        "tensor.bad_attribute",
        &["value_floats", "a list of floats"],
    );
    let bad = TensorProto::new(vec![3], vec![1.0]);
    refused(
        run(
            "Constant",
            &[attr("value", AttributeValue::Tensor(bad))],
            &[],
        ),
        "tensor.bad_attribute",
        &["value"],
    );
}

#[test]
fn constant_of_shape_fills_a_shape() {
    let shape = |dims: &[i64]| i(&[dims.len()], dims);
    let t = run("ConstantOfShape", &[], &[shape(&[2, 3])]).unwrap();
    assert_eq!(
        (t.dtype(), t.shape(), t.to_f32_vec().unwrap()),
        (DType::F32, &[2usize, 3][..], vec![0.0; 6])
    );
    let fill = |proto: TensorProto| [attr("value", AttributeValue::Tensor(proto))];
    let t = run(
        "ConstantOfShape",
        &fill(TensorProto::int64(vec![1], vec![7])),
        &[shape(&[3])],
    )
    .unwrap();
    assert_eq!(t.to_i64_vec().unwrap(), [7, 7, 7]);
    let t = run(
        "ConstantOfShape",
        &fill(TensorProto::boolean(vec![], &[true])),
        &[shape(&[1, 2])],
    )
    .unwrap();
    assert_eq!(bools(&t), [T, T]);
    let t = run(
        "ConstantOfShape",
        &fill(TensorProto::new(vec![1], vec![1.5])),
        &[shape(&[])],
    )
    .unwrap();
    assert_eq!((t.rank(), t.to_f32_vec().unwrap()), (0, vec![1.5]));
    assert_eq!(
        run("ConstantOfShape", &[], &[shape(&[4, 0])])
            .unwrap()
            .shape(),
        &[4, 0]
    );
}

#[test]
fn constant_of_shape_refuses_bad_shapes_and_values() {
    let shape = |dims: &[i64]| i(&[dims.len()], dims);
    let two = [attr(
        "value",
        AttributeValue::Tensor(TensorProto::new(vec![2], vec![1.0, 2.0])),
    )];
    refused(
        run("ConstantOfShape", &two, &[shape(&[2])]),
        "tensor.bad_attribute",
        &["ConstantOfShape", "value", "exactly one element", "[2]"],
    );
    refused(
        run("ConstantOfShape", &[], &[shape(&[2, -1])]),
        "tensor.bad_input",
        &["ConstantOfShape", "input 0", "-1"],
    );
    refused(
        run("ConstantOfShape", &[], &[shape(&[1 << 20, 1 << 20])]),
        "tensor.too_large",
        &["1048576"],
    );
    refused(
        run("ConstantOfShape", &[], &[shape(&[1; 17])]),
        "tensor.bad_input",
        &["17 dimensions"],
    );
    refused(
        run("ConstantOfShape", &[], &[f(&[1], &[2.0])]),
        "tensor.dtype",
        &["ConstantOfShape", "input 0"],
    );
    refused(
        run("ConstantOfShape", &[], &[]),
        "tensor.missing_input",
        &["ConstantOfShape", "input 0"],
    );
}
