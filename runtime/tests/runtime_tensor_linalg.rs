//! The CPU backend's MatMul (numpy `matmul`: 1-D promotion, batched
//! broadcasting) and Gemm (transposes, alpha / beta, broadcast C), checked
//! against hand-computed products, with every typed refusal.
#![allow(clippy::unwrap_used)]

use nodeflow::engine::{Attribute, AttributeValue};
use nodeflow::{CpuBackend, Tensor, TensorError, MAX_ELEMENTS};

fn f(shape: &[usize], data: &[f32]) -> Tensor {
    Tensor::from_f32(shape.to_vec(), data.to_vec()).unwrap()
}

/// `0, 1, 2, …` shifted by `offset`, as an f32 tensor of `shape`.
fn range(shape: &[usize], offset: f32) -> Tensor {
    let n: usize = shape.iter().product();
    f(
        shape,
        &(0..n).map(|v| v as f32 + offset).collect::<Vec<_>>(),
    )
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

fn float(name: &str, v: f32) -> Attribute {
    attr(name, AttributeValue::Float(v))
}

fn run(op: &str, attrs: &[Attribute], inputs: &[Option<Tensor>]) -> Tensor {
    CpuBackend::eval(op, attrs, inputs).unwrap().remove(0)
}

fn matmul(a: Tensor, b: Tensor) -> Tensor {
    run("MatMul", &[], &[Some(a), Some(b)])
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
fn matmul_of_two_matrices() {
    let y = matmul(range(&[2, 3], 0.0), range(&[3, 2], -2.0));
    assert_eq!(y, f(&[2, 2], &[4.0, 7.0, 4.0, 16.0]));
}

#[test]
fn matmul_promotes_one_dimensional_operands_and_drops_the_added_axis() {
    let b = range(&[3, 2], -2.0);
    assert_eq!(matmul(range(&[3], 0.0), b), f(&[2], &[4.0, 7.0]));
    let v = f(&[3], &[1.0, -1.0, 2.0]);
    assert_eq!(matmul(range(&[2, 3], 0.0), v.clone()), f(&[2], &[3.0, 9.0]));
    assert_eq!(matmul(range(&[3], 0.0), v), f(&[], &[3.0]));
    // A vector against a stack of matrices: [3] x [2, 3, 2] -> [2, 2].
    let y = matmul(range(&[3], 0.0), range(&[2, 3, 2], 0.0));
    assert_eq!(y, f(&[2, 2], &[10.0, 13.0, 28.0, 31.0]));
}

#[test]
fn matmul_broadcasts_batch_axes() {
    // A stack against one matrix.
    let y = matmul(range(&[2, 2, 3], 0.0), range(&[3, 2], -2.0));
    assert_eq!(
        y,
        f(&[2, 2, 2], &[4.0, 7.0, 4.0, 16.0, 4.0, 25.0, 4.0, 34.0])
    );
    // A batch of 1 stretched to 2.
    let y = matmul(range(&[1, 2, 3], 0.0), range(&[2, 3, 2], 0.0));
    assert_eq!(
        y,
        f(
            &[2, 2, 2],
            &[10.0, 13.0, 28.0, 40.0, 28.0, 31.0, 100.0, 112.0]
        )
    );
    // Batch [2, 1] against [3]: both stretch, to [2, 3].
    let y = matmul(range(&[2, 1, 2, 2], 0.0), range(&[3, 2, 2], -5.0));
    let expected = [
        -3.0, -2.0, -19.0, -14.0, 1.0, 2.0, 1.0, 6.0, 5.0, 6.0, 21.0, 26.0, -35.0, -26.0, -51.0,
        -38.0, 1.0, 10.0, 1.0, 14.0, 37.0, 46.0, 53.0, 66.0,
    ];
    assert_eq!(y, f(&[2, 3, 2, 2], &expected));
}

#[test]
fn matmul_with_empty_extents() {
    // K = 0: every entry is an empty sum.
    assert_eq!(
        matmul(range(&[2, 0], 0.0), range(&[0, 3], 0.0)),
        f(&[2, 3], &[0.0; 6])
    );
    assert_eq!(
        matmul(range(&[0, 2, 3], 0.0), range(&[3, 2], 0.0)).shape(),
        &[0, 2, 2]
    );
    assert_eq!(
        matmul(range(&[2, 3], 0.0), range(&[3, 0], 0.0)).shape(),
        &[2, 0]
    );
}

#[test]
fn matmul_matches_a_plain_product_on_a_larger_batch() {
    let (m, k, n) = (33, 70, 45);
    let a: Vec<f32> = (0..2 * m * k)
        .map(|v| ((v * 7) % 13) as f32 - 6.0)
        .collect();
    let b: Vec<f32> = (0..k * n).map(|v| ((v * 5) % 11) as f32 - 5.0).collect();
    let y = matmul(f(&[2, m, k], &a), f(&[k, n], &b));
    assert_eq!(y.shape(), &[2, m, n]);
    let got = y.to_f32_vec().unwrap();
    for batch in 0..2 {
        for r in 0..m {
            for c in 0..n {
                let want: f32 = (0..k)
                    .map(|j| a[batch * m * k + r * k + j] * b[j * n + c])
                    .sum();
                assert_eq!(got[batch * m * n + r * n + c], want, "at {batch},{r},{c}");
            }
        }
    }
    // The same product through the per-batch path (B as a stack of one).
    let per_batch = matmul(f(&[2, m, k], &a), f(&[1, k, n], &b));
    assert_eq!(per_batch.to_f32_vec().unwrap(), got);
}

#[test]
fn matmul_refuses_mismatched_shapes() {
    let err = fail(
        "MatMul",
        &[],
        &[Some(range(&[2, 3], 0.0)), Some(range(&[2, 2], 0.0))],
    );
    assert_error(
        &err,
        "tensor.shape_mismatch",
        &["MatMul", "[2, 3]", "[2, 2]", "3 columns", "2 rows"],
    );
    let err = fail(
        "MatMul",
        &[],
        &[Some(range(&[2, 2, 3], 0.0)), Some(range(&[3, 3, 2], 0.0))],
    );
    assert_error(
        &err,
        "tensor.shape_mismatch",
        &["MatMul", "[2, 2, 3]", "[3, 3, 2]", "batch"],
    );
    let err = fail(
        "MatMul",
        &[],
        &[Some(f(&[], &[2.0])), Some(range(&[2, 2], 0.0))],
    );
    assert_error(&err, "tensor.shape_mismatch", &["MatMul", "[]", "rank 1"]);
}

#[test]
fn matmul_refuses_other_types_absent_inputs_and_huge_outputs() {
    let ints = Tensor::from_i64(vec![2, 2], vec![1, 2, 3, 4]).unwrap();
    let err = fail("MatMul", &[], &[Some(ints), Some(range(&[2, 2], 0.0))]);
    assert_error(
        &err,
        "tensor.dtype",
        &["MatMul", "input 0", "int64", "float32"],
    );
    let err = fail("MatMul", &[], &[Some(range(&[2, 2], 0.0))]);
    assert_error(&err, "tensor.missing_input", &["MatMul", "input 1"]);
    // [65536, 1] x [1, 65536] would be 2^32 elements: refused before allocating.
    let side = 1 << 16;
    let err = fail(
        "MatMul",
        &[],
        &[Some(range(&[side, 1], 0.0)), Some(range(&[1, side], 0.0))],
    );
    assert_error(&err, "tensor.too_large", &[&MAX_ELEMENTS.to_string()]);
}

#[test]
fn gemm_defaults_are_a_plain_product_plus_c() {
    let (a, b) = (range(&[2, 3], 0.0), range(&[3, 2], -2.0));
    let y = run("Gemm", &[], &[Some(a.clone()), Some(b.clone())]);
    assert_eq!(y, f(&[2, 2], &[4.0, 7.0, 4.0, 16.0]));
    let y = run(
        "Gemm",
        &[],
        &[Some(a.clone()), Some(b.clone()), Some(f(&[], &[1.0]))],
    );
    assert_eq!(y, f(&[2, 2], &[5.0, 8.0, 5.0, 17.0]));
    // alpha, beta and a C of shape [N] broadcast over the rows.
    let y = run(
        "Gemm",
        &[float("alpha", 0.5), float("beta", 2.0)],
        &[Some(a), Some(b), Some(f(&[2], &[1.0, 10.0]))],
    );
    assert_eq!(y, f(&[2, 2], &[4.0, 23.5, 4.0, 28.0]));
}

#[test]
fn gemm_transposes_and_broadcasts_a_column_c() {
    // A' = [[0, 1, 2], [3, 4, 5]] and B' = [[-2, -1], [0, 1], [2, 3]], given transposed.
    let at = f(&[3, 2], &[0.0, 3.0, 1.0, 4.0, 2.0, 5.0]);
    let bt = f(&[2, 3], &[-2.0, 0.0, 2.0, -1.0, 1.0, 3.0]);
    let y = run(
        "Gemm",
        &[int("transA", 1), int("transB", 1), float("alpha", 2.0)],
        &[Some(at), Some(bt), Some(f(&[2, 1], &[1.0, 2.0]))],
    );
    assert_eq!(y, f(&[2, 2], &[9.0, 15.0, 10.0, 34.0]));
}

#[test]
fn gemm_beta_zero_still_multiplies_c() {
    let y = run(
        "Gemm",
        &[float("beta", 0.0)],
        &[
            Some(range(&[1, 1], 1.0)),
            Some(range(&[1, 2], 1.0)),
            Some(f(&[2], &[f32::INFINITY, 5.0])),
        ],
    );
    let v = y.to_f32_vec().unwrap();
    assert!(v[0].is_nan(), "0 * inf is NaN, as ONNX computes it: {v:?}");
    assert_eq!(v[1], 2.0);
}

#[test]
fn gemm_refuses_bad_shapes_and_attributes() {
    let err = fail(
        "Gemm",
        &[],
        &[Some(range(&[2, 2, 3], 0.0)), Some(range(&[3, 2], 0.0))],
    );
    assert_error(
        &err,
        "tensor.shape_mismatch",
        &["Gemm", "[2, 2, 3]", "[3, 2]", "rank 2"],
    );
    let err = fail(
        "Gemm",
        &[int("transB", 1)],
        &[Some(range(&[2, 3], 0.0)), Some(range(&[3, 2], 0.0))],
    );
    assert_error(
        &err,
        "tensor.shape_mismatch",
        &["Gemm", "[2, 3]", "[3, 2]", "transB=1"],
    );
    let err = fail(
        "Gemm",
        &[],
        &[
            Some(range(&[2, 3], 0.0)),
            Some(range(&[3, 2], 0.0)),
            Some(range(&[3], 0.0)),
        ],
    );
    assert_error(
        &err,
        "tensor.shape_mismatch",
        &["Gemm", "A, B, C", "[3]", "[2, 2]"],
    );
    let err = fail("Gemm", &[int("transA", 2)], &[]);
    assert_error(&err, "tensor.bad_attribute", &["Gemm", "transA", "0 or 1"]);
    let err = fail("Gemm", &[attr("alpha", AttributeValue::Ints(vec![1]))], &[]);
    assert_error(&err, "tensor.bad_attribute", &["Gemm", "alpha"]);
}
