//! The CPU backend's activation family (Relu, LeakyRelu, Sigmoid, Tanh,
//! Gelu, Softmax, LogSoftmax) and SoftmaxCrossEntropyLoss, checked against
//! hand-computed (numpy / `math.erf` in f64) values, with every typed
//! refusal.
#![allow(clippy::unwrap_used)]

use nodeflow::engine::{Attribute, AttributeValue};
use nodeflow::{CpuBackend, Tensor, TensorError};

fn f(shape: &[usize], data: &[f32]) -> Tensor {
    Tensor::from_f32(shape.to_vec(), data.to_vec()).unwrap()
}

fn i(shape: &[usize], data: &[i64]) -> Tensor {
    Tensor::from_i64(shape.to_vec(), data.to_vec()).unwrap()
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

fn string(name: &str, v: &str) -> Attribute {
    attr(name, AttributeValue::String(v.to_owned()))
}

fn run(op: &str, attrs: &[Attribute], inputs: &[Option<Tensor>]) -> Vec<Tensor> {
    CpuBackend::eval(op, attrs, inputs).unwrap()
}

fn run1(op: &str, attrs: &[Attribute], x: Tensor) -> Tensor {
    run(op, attrs, &[Some(x)]).remove(0)
}

fn fail(op: &str, attrs: &[Attribute], inputs: &[Option<Tensor>]) -> TensorError {
    CpuBackend::eval(op, attrs, inputs).unwrap_err()
}

/// Asserts `t` is f32 of `shape` and within `tol` (relative, floor 1e-30) of `expected`.
fn close(t: &Tensor, shape: &[usize], expected: &[f32], tol: f32) {
    assert_eq!(t.shape(), shape, "{t:?}");
    let got = t.to_f32_vec().unwrap();
    assert_eq!(got.len(), expected.len());
    for (k, (&g, &e)) in got.iter().zip(expected).enumerate() {
        let ok = if e.is_nan() {
            g.is_nan()
        } else {
            (g - e).abs() <= tol * e.abs().max(1e-30)
        };
        assert!(ok, "element {k}: got {g:e}, expected {e:e} (all: {got:?})");
    }
}

fn assert_error(err: &TensorError, reason: &str, mentions: &[&str]) {
    assert_eq!(err.reason(), reason, "{err}");
    let text = err.to_string();
    for m in mentions {
        assert!(text.contains(m), "{text:?} does not mention {m:?}");
    }
}

#[test]
fn relu_clamps_negatives_on_f32_and_i64_and_keeps_nan() {
    let y = run1("Relu", &[], f(&[2, 2], &[-1.5, 0.0, 2.5, f32::NAN]));
    let v = y.to_f32_vec().unwrap();
    assert_eq!(&v[..3], &[0.0, 0.0, 2.5]);
    assert!(v[3].is_nan());
    let y = run1("Relu", &[], i(&[3], &[-4, 0, 7]));
    assert_eq!(y, i(&[3], &[0, 0, 7]));
    let err = fail(
        "Relu",
        &[],
        &[Some(Tensor::from_bool(vec![1], vec![true]).unwrap())],
    );
    assert_error(&err, "tensor.dtype", &["Relu", "bool"]);
}

#[test]
fn leaky_relu_default_and_given_alpha() {
    let x = f(&[4], &[-2.0, -0.5, 0.0, 3.0]);
    assert_eq!(
        run1("LeakyRelu", &[], x.clone()),
        f(&[4], &[-0.02, -0.005, 0.0, 3.0])
    );
    let alpha = attr("alpha", AttributeValue::Float(0.5));
    assert_eq!(
        run1("LeakyRelu", &[alpha], x),
        f(&[4], &[-1.0, -0.25, 0.0, 3.0])
    );
    let err = fail(
        "LeakyRelu",
        &[string("alpha", "big")],
        &[Some(f(&[1], &[1.0]))],
    );
    assert_error(&err, "tensor.bad_attribute", &["LeakyRelu", "alpha"]);
}

#[test]
fn sigmoid_and_tanh_match_numpy_without_overflow() {
    let y = run1("Sigmoid", &[], f(&[5], &[-100.0, -1.0, 0.0, 2.0, 100.0]));
    close(
        &y,
        &[5],
        &[3.8e-44, 0.268_941_43, 0.5, 0.880_797_1, 1.0],
        1e-6,
    );
    let y = run1("Tanh", &[], f(&[3], &[-1.0, 0.0, 0.5]));
    close(&y, &[3], &[-0.761_594_2, 0.0, 0.462_117_2], 1e-6);
    let err = fail("Sigmoid", &[], &[Some(i(&[1], &[1]))]);
    assert_error(&err, "tensor.dtype", &["Sigmoid", "int64", "float32"]);
    let err = fail("Tanh", &[], &[]);
    assert_error(&err, "tensor.missing_input", &["Tanh", "input 0"]);
}

#[test]
fn gelu_exact_matches_erf_to_f32_precision_including_the_tail() {
    let xs = [-3.0, -1.0, -0.5, 0.0, 0.5, 1.0, 3.0, -10.0];
    let expected = [
        -0.004_049_694,
        -0.158_655_26,
        -0.154_268_77,
        0.0,
        0.345_731_23,
        0.841_344_8,
        2.995_950_2,
        -7.619_853e-23,
    ];
    let y = run1("Gelu", &[], f(&[8], &xs));
    close(&y, &[8], &expected, 2e-7);
    let y = run1("Gelu", &[string("approximate", "none")], f(&[8], &xs));
    close(&y, &[8], &expected, 2e-7);
    // Far out the result is x itself, or zero, never NaN.
    let y = run1(
        "Gelu",
        &[],
        f(&[3], &[f32::INFINITY, f32::NEG_INFINITY, 40.0]),
    );
    assert_eq!(y.to_f32_vec().unwrap(), vec![f32::INFINITY, 0.0, 40.0]);
}

#[test]
fn gelu_tanh_approximation() {
    let xs = [-3.0, -1.0, -0.5, 0.0, 0.5, 1.0, 3.0];
    let expected = [
        -0.003_637_392,
        -0.158_808,
        -0.154_286,
        0.0,
        0.345_714,
        0.841_192,
        2.996_362_7,
    ];
    let y = run1("Gelu", &[string("approximate", "tanh")], f(&[7], &xs));
    close(&y, &[7], &expected, 2e-6);
    let err = fail(
        "Gelu",
        &[string("approximate", "fast")],
        &[Some(f(&[1], &[1.0]))],
    );
    assert_error(
        &err,
        "tensor.bad_attribute",
        &["Gelu", "approximate", "fast"],
    );
}

#[test]
fn softmax_defaults_to_the_last_axis() {
    let x = f(&[2, 3], &[1.0, 2.0, 3.0, 1.0, 1.0, 1.0]);
    let expected = [
        0.090_030_57,
        0.244_728_46,
        0.665_240_94,
        1.0 / 3.0,
        1.0 / 3.0,
        1.0 / 3.0,
    ];
    close(&run1("Softmax", &[], x.clone()), &[2, 3], &expected, 1e-6);
    close(
        &run1("Softmax", &[int("axis", 1)], x.clone()),
        &[2, 3],
        &expected,
        1e-6,
    );
    let logs: Vec<f32> = expected.iter().map(|p| p.ln()).collect();
    close(&run1("LogSoftmax", &[], x), &[2, 3], &logs, 1e-6);
}

#[test]
fn softmax_along_axis_zero_and_negative_axes() {
    let x = f(&[2, 3], &[1.0, 2.0, 3.0, 4.0, 6.0, 8.0]);
    let expected = [
        0.047_425_874,
        0.017_986_21,
        0.006_692_85,
        0.952_574_1,
        0.982_013_8,
        0.993_307_2,
    ];
    close(
        &run1("Softmax", &[int("axis", 0)], x.clone()),
        &[2, 3],
        &expected,
        1e-6,
    );
    close(
        &run1("Softmax", &[int("axis", -2)], x.clone()),
        &[2, 3],
        &expected,
        1e-6,
    );
    let logs: Vec<f32> = expected.iter().map(|p| p.ln()).collect();
    close(
        &run1("LogSoftmax", &[int("axis", -2)], x),
        &[2, 3],
        &logs,
        1e-5,
    );
}

#[test]
fn softmax_is_stable_for_huge_scores_and_handles_empty_inputs() {
    let x = f(&[1, 3], &[1000.0, 1001.0, 1002.0]);
    close(
        &run1("Softmax", &[], x.clone()),
        &[1, 3],
        &[0.090_030_57, 0.244_728_46, 0.665_240_94],
        1e-6,
    );
    close(
        &run1("LogSoftmax", &[], x),
        &[1, 3],
        &[-2.407_606, -1.407_606, -0.407_606],
        1e-6,
    );
    let y = run1("Softmax", &[], f(&[0, 4], &[]));
    assert_eq!(y.shape(), &[0, 4]);
}

#[test]
fn softmax_refuses_an_axis_outside_the_rank() {
    let x = f(&[2, 3], &[0.0; 6]);
    let err = fail("Softmax", &[int("axis", 2)], &[Some(x.clone())]);
    assert_error(&err, "tensor.bad_attribute", &["Softmax", "axis", "2"]);
    let err = fail("LogSoftmax", &[int("axis", -3)], &[Some(x)]);
    assert_error(&err, "tensor.bad_attribute", &["LogSoftmax", "-3"]);
    let err = fail("Softmax", &[string("axis", "last")], &[]);
    assert_error(&err, "tensor.bad_attribute", &["Softmax", "axis"]);
}

const SCE: &str = "SoftmaxCrossEntropyLoss";

fn scores() -> Tensor {
    f(&[2, 3], &[1.0, 2.0, 3.0, 1.0, 1.0, 1.0])
}

#[test]
fn cross_entropy_reductions_and_log_prob() {
    let labels = i(&[2], &[2, 0]);
    let mean = run(SCE, &[], &[Some(scores()), Some(labels.clone())]);
    assert_eq!(mean.len(), 2);
    close(&mean[0], &[], &[0.753_109_1], 1e-6);
    close(
        &mean[1],
        &[2, 3],
        &[
            -2.407_606,
            -1.407_606,
            -0.407_606,
            -1.098_612_3,
            -1.098_612_3,
            -1.098_612_3,
        ],
        1e-6,
    );
    let sum = run(
        SCE,
        &[string("reduction", "sum")],
        &[Some(scores()), Some(labels.clone())],
    );
    close(&sum[0], &[], &[1.506_218_2], 1e-6);
    let none = run(
        SCE,
        &[string("reduction", "none")],
        &[Some(scores()), Some(labels)],
    );
    close(&none[0], &[2], &[0.407_606, 1.098_612_3], 1e-6);
}

#[test]
fn cross_entropy_weights_divide_the_mean_by_the_weight_sum() {
    let labels = i(&[2], &[2, 0]);
    let weights = f(&[3], &[0.5, 1.0, 2.0]);
    let inputs = [Some(scores()), Some(labels), Some(weights)];
    close(&run(SCE, &[], &inputs)[0], &[], &[0.545_807_24], 1e-6);
    let sum = run(SCE, &[string("reduction", "sum")], &inputs);
    close(&sum[0], &[], &[1.364_518], 1e-6);
    let none = run(SCE, &[string("reduction", "none")], &inputs);
    close(&none[0], &[2], &[0.815_212, 0.549_306_15], 1e-6);
}

#[test]
fn cross_entropy_ignore_index_drops_positions_from_sum_and_count() {
    let labels = i(&[2], &[2, 0]);
    let ignore = int("ignore_index", 0);
    let plain = run(
        SCE,
        std::slice::from_ref(&ignore),
        &[Some(scores()), Some(labels.clone())],
    );
    close(&plain[0], &[], &[0.407_606], 1e-6);
    let weighted = run(
        SCE,
        std::slice::from_ref(&ignore),
        &[
            Some(scores()),
            Some(labels.clone()),
            Some(f(&[3], &[0.5, 1.0, 2.0])),
        ],
    );
    close(&weighted[0], &[], &[0.407_606], 1e-6);
    let none = run(
        SCE,
        &[ignore, string("reduction", "none")],
        &[Some(scores()), Some(labels)],
    );
    close(&none[0], &[2], &[0.407_606, 0.0], 1e-6);
    // A negative ignore_index may sit outside 0..C.
    let neg = run(
        SCE,
        &[int("ignore_index", -1)],
        &[Some(scores()), Some(i(&[2], &[-1, 1]))],
    );
    close(&neg[0], &[], &[1.098_612_3], 1e-6);
    // Every position ignored: 0 / 0.
    let all = run(
        SCE,
        &[int("ignore_index", 1)],
        &[Some(scores()), Some(i(&[2], &[1, 1]))],
    );
    assert!(all[0].to_f32_vec().unwrap()[0].is_nan());
}

#[test]
fn cross_entropy_over_extra_spatial_axes() {
    // N = 1, C = 2, d1 = 2: position 0 takes class 0, position 1 class 1.
    let x = f(&[1, 2, 2], &[0.0, 1.0, 2.0, 0.0]);
    let labels = i(&[1, 2], &[0, 1]);
    let none = run(
        SCE,
        &[string("reduction", "none")],
        &[Some(x.clone()), Some(labels.clone())],
    );
    close(&none[0], &[1, 2], &[2.126_928, 1.313_261_6], 1e-6);
    close(
        &none[1],
        &[1, 2, 2],
        &[-2.126_928, -0.313_261_7, -0.126_928, -1.313_261_6],
        1e-6,
    );
    let mean = run(SCE, &[], &[Some(x), Some(labels)]);
    close(&mean[0], &[], &[1.720_094_8], 1e-6);
}

#[test]
fn cross_entropy_refuses_out_of_range_labels() {
    let err = fail(SCE, &[], &[Some(scores()), Some(i(&[2], &[3, 0]))]);
    assert_error(
        &err,
        "tensor.bad_input",
        &[SCE, "input 1", "[2]", "label 3", "0..3"],
    );
    let err = fail(
        SCE,
        &[int("ignore_index", 5)],
        &[Some(scores()), Some(i(&[2], &[0, -1]))],
    );
    assert_error(
        &err,
        "tensor.bad_input",
        &[SCE, "label -1", "ignore_index 5"],
    );
}

#[test]
fn cross_entropy_refuses_mismatched_shapes_types_and_attributes() {
    let err = fail(SCE, &[], &[Some(scores()), Some(i(&[3], &[0, 0, 0]))]);
    assert_error(
        &err,
        "tensor.shape_mismatch",
        &[SCE, "scores, labels", "[2, 3]", "[3]"],
    );
    let err = fail(
        SCE,
        &[],
        &[
            Some(scores()),
            Some(i(&[2], &[0, 0])),
            Some(f(&[2], &[1.0, 1.0])),
        ],
    );
    assert_error(
        &err,
        "tensor.shape_mismatch",
        &[SCE, "weights", "[2, 3]", "[2]"],
    );
    let err = fail(SCE, &[], &[Some(f(&[3], &[1.0; 3])), Some(i(&[], &[0]))]);
    assert_error(&err, "tensor.bad_input", &[SCE, "input 0", "[3]", "rank 2"]);
    let err = fail(SCE, &[], &[Some(scores()), Some(f(&[2], &[0.0, 1.0]))]);
    assert_error(&err, "tensor.dtype", &[SCE, "input 1", "int64"]);
    let err = fail(SCE, &[], &[Some(scores())]);
    assert_error(&err, "tensor.missing_input", &[SCE, "input 1"]);
    let err = fail(SCE, &[string("reduction", "max")], &[]);
    assert_error(&err, "tensor.bad_attribute", &[SCE, "reduction", "max"]);
}
