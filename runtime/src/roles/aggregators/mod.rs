//! The combining rules of the Aggregator role, one per file, and the input access they share.
//!
//! Every rule here reads its contributions in the order it is given them —
//! sorted by peer, as [`crate::AggregationRound`] hands them over — and
//! accumulates in f64, so one round's result is the same bits whatever
//! order the contributions arrived in. The round's checks (finite values,
//! one length, weights finite and > 0) are the round's job; a rule called
//! directly still never panics: an empty slice is refused with
//! [`AggregatorError::TooFew`] and a contribution of another length or type
//! with [`AggregatorError::Shape`].

mod fedavg;
mod krum;
mod median;
mod trimmed_mean;

use std::borrow::Cow;

pub use fedavg::FedAvg;
pub use krum::Krum;
pub use median::Median;
pub use trimmed_mean::TrimmedMean;

use super::aggregator::{AggregatorError, Contribution};
use crate::tensor::Tensor;

/// The contributions' values as flat slices of one length, in the order given.
///
/// Borrowed when the tensor is contiguous (every tensor the constructors
/// make), copied otherwise.
pub(crate) fn flat_updates<'a>(
    rule: &'static str,
    contributions: &'a [Contribution],
) -> Result<Vec<Cow<'a, [f32]>>, AggregatorError> {
    let Some(first) = contributions.first() else {
        return Err(AggregatorError::TooFew {
            rule,
            needed: 1,
            have: 0,
        });
    };
    let expected = first.update.len();
    contributions
        .iter()
        .map(|c| {
            let array = c
                .update
                .as_f32()
                .filter(|a| a.ndim() == 1 && a.len() == expected);
            let Some(array) = array else {
                return Err(AggregatorError::Shape {
                    peer: c.peer,
                    expected,
                    found: c.update.shape().to_vec(),
                });
            };
            Ok(match array.as_slice() {
                Some(slice) => Cow::Borrowed(slice),
                None => Cow::Owned(array.iter().copied().collect()),
            })
        })
        .collect()
}

/// The combined update as a 1-D f32 tensor.
pub(crate) fn flat_tensor(rule: &'static str, values: Vec<f32>) -> Result<Tensor, AggregatorError> {
    let len = values.len();
    // The length is an input tensor's, so it is within the tensor caps;
    // the error arm is there so no input can turn into a panic.
    Tensor::from_f32(vec![len], values)
        .map_err(|e| AggregatorError::Config(format!("{rule}: building the result failed: {e}")))
}
