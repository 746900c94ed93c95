//! Median: the coordinate-wise median of the round's updates.

use crate::roles::aggregator::{Aggregator, AggregatorError, Contribution};
use crate::tensor::Tensor;

use super::{flat_tensor, flat_updates};

/// The coordinate-wise median (Yin et al., 2018); with an even number of
/// contributions, the mean of the two middle values (computed in f64).
///
/// Promises:
/// * weights are ignored: every contribution counts once;
/// * robust to fewer than half garbage contributions: with `b < n / 2`
///   arbitrary updates among `n`, each coordinate of the result lies
///   between the smallest and the largest honest value of that coordinate;
/// * the result depends only on the multiset of values per coordinate, so
///   it is deterministic and independent of arrival order.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Median;

impl Median {
    /// The rule's name.
    pub const KIND: &'static str = "median";
}

impl Aggregator for Median {
    fn kind(&self) -> &'static str {
        Self::KIND
    }

    fn combine(&self, contributions: &[Contribution]) -> Result<Tensor, AggregatorError> {
        let updates = flat_updates(Self::KIND, contributions)?;
        let len = updates.first().map_or(0, |u| u.len());
        let n = updates.len();
        let mut column = vec![0f32; n];
        let mut out = Vec::with_capacity(len);
        for i in 0..len {
            for (slot, values) in column.iter_mut().zip(&updates) {
                *slot = values[i];
            }
            column.sort_unstable_by(f32::total_cmp);
            let upper = column[n / 2];
            let value = if n % 2 == 1 {
                upper
            } else {
                ((f64::from(column[n / 2 - 1]) + f64::from(upper)) / 2.0) as f32
            };
            out.push(value);
        }
        flat_tensor(Self::KIND, out)
    }
}
