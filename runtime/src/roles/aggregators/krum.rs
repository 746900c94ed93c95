//! Krum and Multi-Krum: keep the updates closest to their neighbours, drop the outliers.

use crate::roles::aggregator::{Aggregator, AggregatorError, Contribution};
use crate::tensor::Tensor;

use super::{flat_tensor, flat_updates};

/// Krum (Blanchard et al., 2017) and Multi-Krum (El Mhamdi et al., 2018).
///
/// Each update's score is the sum of its squared Euclidean distances to
/// its `n − f − 2` nearest other updates; the `m` updates with the lowest
/// scores are selected and averaged (unweighted). `m = 1` is Krum: the
/// result is then one contribution's update, bit for bit.
///
/// Promises:
/// * tolerates up to `f` garbage contributions among `n ≥ 2f + 3`: the
///   `n − f − 2` nearest neighbours of a garbage update include at least
///   `n − 2f − 1 ≥ 2` honest ones, while an honest update has `n − f − 1`
///   honest neighbours, so garbage lying far from the honest cluster
///   (compared with the cluster's spread) scores worse than every honest
///   update and is never selected while `m ≤ n − f`;
/// * refuses with [`AggregatorError::TooFew`] a round of fewer than
///   `max(2f + 3, m + f)` contributions;
/// * distances and the average are computed in f64 in peer order; equal
///   scores are broken by peer order (the earlier peer wins), so the
///   result is deterministic;
/// * weights are ignored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Krum {
    f: usize,
    m: usize,
}

impl Krum {
    /// The rule's name.
    pub const KIND: &'static str = "krum";

    /// Multi-Krum tolerating `f` garbage contributions and averaging the
    /// `m` best (`m = 1`: Krum).
    ///
    /// # Errors
    /// [`AggregatorError::Config`] when `m` is 0.
    pub fn new(f: usize, m: usize) -> Result<Self, AggregatorError> {
        if m == 0 {
            return Err(AggregatorError::Config(
                "krum: m (updates averaged) must be at least 1".into(),
            ));
        }
        Ok(Self { f, m })
    }

    /// Krum proper: the single best update, tolerating `f` garbage ones.
    pub fn single(f: usize) -> Self {
        Self { f, m: 1 }
    }

    /// The number of garbage contributions tolerated.
    pub fn f(&self) -> usize {
        self.f
    }

    /// The number of updates averaged.
    pub fn m(&self) -> usize {
        self.m
    }

    /// The fewest contributions a round needs: `max(2f + 3, m + f)`.
    pub fn needed(&self) -> usize {
        let krum = self.f.saturating_mul(2).saturating_add(3);
        krum.max(self.m.saturating_add(self.f))
    }

    /// Each contribution's Krum score, in the order given (the round's peer order).
    ///
    /// # Errors
    /// [`AggregatorError::TooFew`] below [`Krum::needed`] contributions;
    /// [`AggregatorError::Shape`] for updates of mixed lengths.
    pub fn scores(&self, contributions: &[Contribution]) -> Result<Vec<f64>, AggregatorError> {
        let updates = flat_updates(Self::KIND, contributions)?;
        let n = updates.len();
        if n < self.needed() {
            return Err(AggregatorError::TooFew {
                rule: Self::KIND,
                needed: self.needed(),
                have: n,
            });
        }
        let mut distances = vec![vec![0f64; n]; n];
        for i in 0..n {
            for j in i + 1..n {
                let d: f64 = updates[i]
                    .iter()
                    .zip(updates[j].iter())
                    .map(|(&a, &b)| {
                        let diff = f64::from(a) - f64::from(b);
                        diff * diff
                    })
                    .sum();
                distances[i][j] = d;
                distances[j][i] = d;
            }
        }
        // n ≥ 2f + 3, so at least one neighbour is counted.
        let neighbours = n - self.f - 2;
        let scores = distances
            .iter()
            .enumerate()
            .map(|(i, row)| {
                let mut others: Vec<f64> = row
                    .iter()
                    .enumerate()
                    .filter(|&(j, _)| j != i)
                    .map(|(_, &d)| d)
                    .collect();
                others.sort_unstable_by(f64::total_cmp);
                others[..neighbours].iter().sum()
            })
            .collect();
        Ok(scores)
    }

    /// The positions (in the order given) of the `m` selected
    /// contributions, best score first, ties to the earlier position.
    ///
    /// # Errors
    /// As [`Krum::scores`].
    pub fn select(&self, contributions: &[Contribution]) -> Result<Vec<usize>, AggregatorError> {
        let scores = self.scores(contributions)?;
        let mut order: Vec<usize> = (0..scores.len()).collect();
        // A stable sort keeps equal scores in peer order.
        order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
        order.truncate(self.m);
        Ok(order)
    }
}

impl Aggregator for Krum {
    fn kind(&self) -> &'static str {
        Self::KIND
    }

    fn combine(&self, contributions: &[Contribution]) -> Result<Tensor, AggregatorError> {
        let mut chosen = self.select(contributions)?;
        chosen.sort_unstable();
        let updates = flat_updates(Self::KIND, contributions)?;
        let len = updates.first().map_or(0, |u| u.len());
        let mut sum = vec![0f64; len];
        for &k in &chosen {
            for (s, &v) in sum.iter_mut().zip(updates[k].iter()) {
                *s += f64::from(v);
            }
        }
        let m = chosen.len() as f64;
        flat_tensor(
            Self::KIND,
            sum.into_iter().map(|s| (s / m) as f32).collect(),
        )
    }
}
