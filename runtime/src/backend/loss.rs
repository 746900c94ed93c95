//! SoftmaxCrossEntropyLoss: the loss the learning algorithms train with.
//!
//! Opset 13 semantics: scores `[N, C, d1..dk]` (f32), labels `[N, d1..dk]`
//! (i64), optional per-class weights `[C]` (f32). The loss at a position
//! is `-w[label] · log_softmax(scores)[n, label, d…]`, zero where the label
//! equals `ignore_index`. `reduction` "mean" (default) divides the
//! weighted sum by the sum of the weights of the positions not ignored
//! (their count when there are no weights; NaN when every position is
//! ignored, as ONNX's reference computes it); "sum" sums; "none" keeps the
//! `[N, d1..dk]` losses. The second output is the log-softmax of the
//! scores along axis 1; it is always computed (the loss needs it) and
//! dropped by the backend when the node does not declare it.

use nodeflow_engine::sync::Arc;

use ndarray::{ArrayD, Axis, IxDyn, Zip};

use super::nn::softmax_along;
use super::op::{out, Attrs, Build, Inputs, TensorOp};
use crate::tensor::{Tensor, TensorError};

/// The op types of this family and their builders.
pub(super) const OPS: &[(&str, Build)] = &[("SoftmaxCrossEntropyLoss", cross_entropy)];

/// How the per-position losses are combined.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Reduction {
    /// Weighted sum over the weight sum (the default).
    Mean,
    /// Weighted sum.
    Sum,
    /// The per-position losses, `[N, d1..dk]`.
    None,
}

/// SoftmaxCrossEntropyLoss with its reduction and ignored label.
#[derive(Debug)]
struct CrossEntropy {
    /// How the per-position losses are combined.
    reduction: Reduction,
    /// The label whose positions count for nothing, if any.
    ignore_index: Option<i64>,
}

/// Builds SoftmaxCrossEntropyLoss from `reduction` and `ignore_index`.
fn cross_entropy(attrs: &Attrs<'_>) -> Result<Arc<dyn TensorOp>, TensorError> {
    let reduction = match attrs.string("reduction")? {
        None | Some("mean") => Reduction::Mean,
        Some("sum") => Reduction::Sum,
        Some("none") => Reduction::None,
        Some(other) => {
            return Err(attrs.error(
                "reduction",
                format!("must be \"mean\", \"sum\" or \"none\", found {other:?}"),
            ))
        }
    };
    Ok(Arc::new(CrossEntropy {
        reduction,
        ignore_index: attrs.int("ignore_index")?,
    }))
}

impl CrossEntropy {
    /// Checks the three inputs' shapes against each other; returns C.
    fn check_shapes(&self, inputs: &Inputs<'_>) -> Result<usize, TensorError> {
        let scores = inputs.f32(0)?.shape();
        let labels = inputs.array::<i64>(1)?.shape();
        let mismatch =
            |input: &str, shapes: Vec<Vec<usize>>, reason: String| TensorError::ShapeMismatch {
                op: inputs.op,
                input: input.to_owned(),
                shapes,
                reason,
            };
        if scores.len() < 2 {
            return Err(inputs.bad(0, "scores must be [N, C, d1..dk], of rank 2 or more"));
        }
        let classes = scores[1];
        let expected: Vec<usize> = [scores[0]]
            .into_iter()
            .chain(scores[2..].iter().copied())
            .collect();
        if labels != expected.as_slice() {
            return Err(mismatch(
                "scores, labels",
                vec![scores.to_vec(), labels.to_vec()],
                format!("labels must be the scores' shape without axis 1, {expected:?}"),
            ));
        }
        if inputs.opt(2).is_some() {
            let weights = inputs.f32(2)?.shape();
            if weights != [classes] {
                return Err(mismatch(
                    "scores, weights",
                    vec![scores.to_vec(), weights.to_vec()],
                    format!("weights must be one per class, [{classes}]"),
                ));
            }
        }
        Ok(classes)
    }

    /// Each position's weight: 0 where ignored, `weights[label]` (or 1)
    /// elsewhere; refuses a label outside `0..classes` that is not ignored.
    fn position_weights(
        &self,
        inputs: &Inputs<'_>,
        classes: usize,
    ) -> Result<ArrayD<f32>, TensorError> {
        let labels = inputs.array::<i64>(1)?;
        let weights = inputs.opt(2).map(|_| inputs.f32(2)).transpose()?;
        if let Some(bad) = labels.iter().find(|&&t| {
            Some(t) != self.ignore_index && usize::try_from(t).map_or(true, |t| t >= classes)
        }) {
            let ignore = self
                .ignore_index
                .map_or(String::new(), |i| format!(" and is not ignore_index {i}"));
            return Err(inputs.bad(
                1,
                format!("label {bad} is outside the {classes} classes 0..{classes}{ignore}"),
            ));
        }
        Ok(labels.map(|&t| {
            if Some(t) == self.ignore_index {
                return 0.0;
            }
            match (&weights, usize::try_from(t)) {
                (Some(w), Ok(t)) => w.get(IxDyn(&[t])).copied().unwrap_or(0.0),
                _ => 1.0,
            }
        }))
    }
}

impl TensorOp for CrossEntropy {
    fn eval(&self, inputs: &Inputs<'_>) -> Result<Vec<Tensor>, TensorError> {
        let classes = self.check_shapes(inputs)?;
        let weight = self.position_weights(inputs, classes)?;
        let scores = inputs.f32(0)?;
        let labels = inputs.array::<i64>(1)?;
        let log_prob = softmax_along(scores, 1, true);

        // -log p[label] at each position, class by class: every log_prob
        // element is read once and no index is built from user data.
        let mut loss = ArrayD::<f32>::zeros(labels.raw_dim());
        for (class, plane) in log_prob.axis_iter(Axis(1)).enumerate() {
            let class = class as i64;
            Zip::from(&mut loss)
                .and(labels)
                .and(&plane)
                .for_each(|l, &t, &lp| {
                    if t == class && Some(t) != self.ignore_index {
                        *l = -lp;
                    }
                });
        }
        Zip::from(&mut loss).and(&weight).for_each(|l, &w| *l *= w);

        let loss = match self.reduction {
            Reduction::None => loss,
            Reduction::Sum => scalar(loss.iter().map(|&l| f64::from(l)).sum::<f64>()),
            Reduction::Mean => {
                let total: f64 = loss.iter().map(|&l| f64::from(l)).sum();
                let weight_sum: f64 = weight.iter().map(|&w| f64::from(w)).sum();
                scalar(total / weight_sum)
            }
        };
        Ok(vec![out(loss)?, out(log_prob)?])
    }
}

/// A rank-0 array holding `value` rounded to f32.
fn scalar(value: f64) -> ArrayD<f32> {
    ArrayD::from_elem(IxDyn(&[]), value as f32)
}
