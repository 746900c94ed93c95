//! The DataSource role: a Node's local labelled examples, served as batches.
//!
//! A data source holds `len()` rows of `features()` f32 values with an i64
//! label in `0..classes()`. [`DataSource::batch`] gathers rows by position
//! (in the order given); the batch order of an epoch comes from the seeded
//! SplitMix64 shuffle (`crate::shuffle_order`), so runs are reproducible.

use crate::tensor::{Tensor, TensorError};

/// Why a data source refused.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum DataError {
    /// A position past the end.
    #[error("row {position} asked for, the source has {len} rows")]
    Position {
        /// The position asked for.
        position: usize,
        /// Rows in the source.
        len: usize,
    },
    /// The source has no rows.
    #[error("the data source is empty")]
    Empty,
    /// Building a batch failed.
    #[error(transparent)]
    Tensor(#[from] TensorError),
}

/// Labelled examples a model trains or is evaluated on.
pub trait DataSource: Send + Sync + std::fmt::Debug + 'static {
    /// Rows.
    fn len(&self) -> usize;

    /// Whether there are no rows.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Features per row.
    fn features(&self) -> usize;

    /// Number of classes.
    fn classes(&self) -> usize;

    /// The rows at `positions`, in that order: features f32 `[m, d]`,
    /// labels i64 `[m]`.
    fn batch(&self, positions: &[usize]) -> Result<(Tensor, Tensor), DataError>;

    /// Every row, in order.
    fn all(&self) -> Result<(Tensor, Tensor), DataError> {
        let positions: Vec<usize> = (0..self.len()).collect();
        self.batch(&positions)
    }
}
