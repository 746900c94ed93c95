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

/// An in-memory [`crate::Dataset`] is a data source.
impl DataSource for crate::Dataset {
    fn len(&self) -> usize {
        crate::Dataset::len(self)
    }

    fn features(&self) -> usize {
        self.feature_dim()
    }

    fn classes(&self) -> usize {
        crate::Dataset::classes(self)
    }

    fn batch(&self, positions: &[usize]) -> Result<(Tensor, Tensor), DataError> {
        let d = self.feature_dim();
        let mut features = Vec::with_capacity(positions.len().saturating_mul(d));
        let mut labels = Vec::with_capacity(positions.len());
        for &position in positions {
            let (row, label) = self.row(position).ok_or(DataError::Position {
                position,
                len: crate::Dataset::len(self),
            })?;
            features.extend_from_slice(row);
            labels.push(label);
        }
        Ok((
            Tensor::from_f32(vec![positions.len(), d], features)?,
            Tensor::from_i64(vec![positions.len()], labels)?,
        ))
    }
}
