//! The Model role's implementations, one per file, the optimizer they step with and the input checks they share.
//!
//! * [`SoftmaxRegression`] — multinomial logistic regression (`softmax.rs`).
//! * [`Mlp`] — a ReLU multilayer perceptron (`mlp.rs`).
//! * [`Sgd`] — SGD with momentum and weight decay (`sgd.rs`).
//!
//! Both models are a stack of dense layers with a softmax cross-entropy
//! head; the stack, its forward pass and its analytic backward pass on
//! backend ops live once in `network.rs`. Every check of a caller's
//! tensors (batches, named parameters) is here, so both models refuse the
//! same things the same way, before anything is computed or changed.

mod mlp;
mod network;
mod sgd;
mod softmax;

pub use mlp::Mlp;
pub use sgd::Sgd;
pub use softmax::SoftmaxRegression;

use crate::roles::model::{ModelError, NamedTensor};
use crate::tensor::{DType, Tensor};

/// `dtype [shape]` of a tensor, for error messages.
fn describe(tensor: &Tensor) -> String {
    format!("{} {:?}", tensor.dtype(), tensor.shape())
}

/// Checks a batch against a model of `features` inputs and `classes`
/// outputs: `x` f32 `[m, features]` with `m ≥ 1`, `y` i64 `[m]` with every
/// label in `0..classes`. Returns `m`.
fn check_batch(
    x: &Tensor,
    y: &Tensor,
    features: usize,
    classes: usize,
) -> Result<usize, ModelError> {
    let rows = match (x.dtype(), x.shape()) {
        (DType::F32, &[m, d]) if m > 0 && d == features => m,
        _ => {
            return Err(ModelError::Shape {
                what: "batch features".into(),
                expected: format!("f32 [m, {features}] with m >= 1"),
                found: describe(x),
            })
        }
    };
    let Some(labels) = y.as_i64().filter(|_| y.shape() == [rows]) else {
        return Err(ModelError::Shape {
            what: "batch labels".into(),
            expected: format!("i64 [{rows}]"),
            found: describe(y),
        });
    };
    for (row, &label) in labels.iter().enumerate() {
        if usize::try_from(label).map_or(true, |l| l >= classes) {
            return Err(ModelError::Label {
                label,
                row,
                classes,
            });
        }
    }
    Ok(rows)
}

/// Checks `given` against the expected names and shapes, in order: the
/// same count, each name equal, each tensor f32 of the expected shape with
/// every value finite. Returns the tensors (shared, not copied).
fn check_named(
    given: &[NamedTensor],
    expected: &[(String, Vec<usize>)],
) -> Result<Vec<Tensor>, ModelError> {
    let names = |list: &mut dyn Iterator<Item = &String>| {
        let list: Vec<&str> = list.map(String::as_str).collect();
        format!("{list:?}")
    };
    if given.len() != expected.len() {
        return Err(ModelError::Shape {
            what: "named tensors".into(),
            expected: names(&mut expected.iter().map(|(n, _)| n)),
            found: names(&mut given.iter().map(|(n, _)| n)),
        });
    }
    let mut tensors = Vec::with_capacity(given.len());
    for (index, ((name, tensor), (want, shape))) in given.iter().zip(expected).enumerate() {
        if name != want {
            return Err(ModelError::Shape {
                what: format!("name of tensor {index}"),
                expected: format!("{want:?}"),
                found: format!("{name:?}"),
            });
        }
        let Some(values) = tensor
            .as_f32()
            .filter(|_| tensor.shape() == shape.as_slice())
        else {
            return Err(ModelError::Shape {
                what: format!("tensor {name:?}"),
                expected: format!("f32 {shape:?}"),
                found: describe(tensor),
            });
        };
        if values.iter().any(|v| !v.is_finite()) {
            return Err(ModelError::NotFinite {
                what: format!("tensor {name:?}"),
            });
        }
        tensors.push(tensor.clone());
    }
    Ok(tensors)
}
