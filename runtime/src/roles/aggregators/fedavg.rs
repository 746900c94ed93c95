//! FedAvg: the weighted mean of the round's updates.

use crate::roles::aggregator::{Aggregator, AggregatorError, Contribution};
use crate::tensor::Tensor;

use super::{flat_tensor, flat_updates};

/// Federated averaging (McMahan et al.): Σₖ (wₖ / Σw) · updateₖ, where wₖ
/// is the contribution's weight (its sample count, usually).
///
/// Promises:
/// * the sums run in f64 over the contributions in the order given (by
///   peer), so the result is deterministic and independent of arrival;
/// * `k` identical updates (any weights) combine to that update, bit for
///   bit, when the weights are integers (their f64 sum is then exact),
///   except that −0 comes back as +0;
/// * not robust: one contribution of 10⁶ moves the mean by 10⁶ · wₖ / Σw —
///   use [`super::Median`], [`super::TrimmedMean`] or [`super::Krum`] when
///   peers may send garbage.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FedAvg;

impl FedAvg {
    /// The rule's name.
    pub const KIND: &'static str = "fedavg";
}

impl Aggregator for FedAvg {
    fn kind(&self) -> &'static str {
        Self::KIND
    }

    fn combine(&self, contributions: &[Contribution]) -> Result<Tensor, AggregatorError> {
        let updates = flat_updates(Self::KIND, contributions)?;
        let len = updates.first().map_or(0, |u| u.len());
        let mut sum = vec![0f64; len];
        let mut total = 0f64;
        for (c, values) in contributions.iter().zip(&updates) {
            total += c.weight;
            for (s, &v) in sum.iter_mut().zip(values.iter()) {
                *s += c.weight * f64::from(v);
            }
        }
        let mean = sum.into_iter().map(|s| (s / total) as f32).collect();
        flat_tensor(Self::KIND, mean)
    }
}
