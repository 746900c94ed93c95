//! Trimmed mean: per coordinate, the mean of the values left after dropping the extremes.

use crate::roles::aggregator::{Aggregator, AggregatorError, Contribution};
use crate::tensor::Tensor;

use super::{flat_tensor, flat_updates};

/// The coordinate-wise β-trimmed mean (Yin et al., 2018): for each
/// coordinate, sort the `n` values, drop the `⌊β·n⌋` smallest and the
/// `⌊β·n⌋` largest, and average the rest (in f64).
///
/// Promises:
/// * `β` is in `[0, 0.5)`, checked by [`TrimmedMean::new`]; `β = 0` is the
///   unweighted mean; weights are ignored;
/// * robust to up to `⌊β·n⌋` garbage contributions: each coordinate of the
///   result then lies between the smallest and the largest honest value;
///   with more garbage than that the result can be moved arbitrarily far;
/// * the result depends only on the multiset of values per coordinate
///   (kept values are summed in sorted order), so it is deterministic;
/// * a round that would keep no value is refused with
///   [`AggregatorError::TooFew`] (with `β < 0.5` at least one value is
///   always kept, so this guards the rounding of `β·n` only).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TrimmedMean {
    beta: f64,
}

impl TrimmedMean {
    /// The rule's name.
    pub const KIND: &'static str = "trimmed_mean";

    /// A trimmed mean dropping the fraction `beta` at each end.
    ///
    /// # Errors
    /// [`AggregatorError::Config`] unless `0 ≤ beta < 0.5`.
    pub fn new(beta: f64) -> Result<Self, AggregatorError> {
        if !(0.0..0.5).contains(&beta) {
            return Err(AggregatorError::Config(format!(
                "trimmed_mean: beta {beta} is outside [0, 0.5)"
            )));
        }
        Ok(Self { beta })
    }

    /// The fraction dropped at each end.
    pub fn beta(&self) -> f64 {
        self.beta
    }

    /// How many values are dropped at each end of a coordinate when the
    /// round has `n` contributions: `⌊β·n⌋`.
    pub fn trimmed(&self, n: usize) -> usize {
        // β·n is non-negative and below n, so the cast neither wraps nor saturates.
        (self.beta * n as f64).floor() as usize
    }
}

impl Aggregator for TrimmedMean {
    fn kind(&self) -> &'static str {
        Self::KIND
    }

    fn combine(&self, contributions: &[Contribution]) -> Result<Tensor, AggregatorError> {
        let updates = flat_updates(Self::KIND, contributions)?;
        let n = updates.len();
        let trim = self.trimmed(n);
        let kept = n.saturating_sub(2 * trim);
        if kept == 0 {
            return Err(AggregatorError::TooFew {
                rule: Self::KIND,
                needed: 2 * trim + 1,
                have: n,
            });
        }
        let len = updates.first().map_or(0, |u| u.len());
        let mut column = vec![0f32; n];
        let mut out = Vec::with_capacity(len);
        for i in 0..len {
            for (slot, values) in column.iter_mut().zip(&updates) {
                *slot = values[i];
            }
            column.sort_unstable_by(f32::total_cmp);
            let sum: f64 = column[trim..n - trim].iter().map(|&v| f64::from(v)).sum();
            out.push((sum / kept as f64) as f32);
        }
        flat_tensor(Self::KIND, out)
    }
}
