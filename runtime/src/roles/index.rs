//! The Index role: vectors stored under ids and searched for their nearest neighbours.

use crate::tensor::TensorError;
use crate::Tensor;

/// How distance is measured.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Metric {
    /// Euclidean distance.
    L2,
    /// One minus the cosine of the angle (0 for the same direction).
    Cosine,
}

/// One search result.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Neighbour {
    /// The stored vector's id.
    pub id: u64,
    /// Its distance to the query under the index's metric.
    pub distance: f32,
}

/// Why an index refused.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum IndexError {
    /// The vector is not 1-D f32 of the index's dimension.
    #[error("vector of shape {found:?} ({dtype}); the index holds f32 [{dim}]")]
    Shape {
        /// The index's dimension.
        dim: usize,
        /// The shape given.
        found: Vec<usize>,
        /// Its element type.
        dtype: String,
    },
    /// The vector has a NaN or an infinity.
    #[error("vector has a non-finite value; refused")]
    NotFinite,
    /// A cosine index was given a zero vector (it has no direction).
    #[error("a zero vector has no direction; a cosine index refuses it")]
    ZeroVector,
    /// The index is full.
    #[error("the index holds its cap of {cap} vectors; remove some or raise the cap")]
    Full {
        /// The cap.
        cap: usize,
    },
    /// A tensor operation failed.
    #[error(transparent)]
    Tensor(#[from] TensorError),
}

/// Stores vectors and finds the nearest ones.
pub trait Index: Send + std::fmt::Debug + 'static {
    /// The metric.
    fn metric(&self) -> Metric;

    /// Stores `vector` under `id`, replacing what `id` held.
    fn add(&mut self, id: u64, vector: &Tensor) -> Result<(), IndexError>;

    /// Removes `id`; whether it was there.
    fn remove(&mut self, id: u64) -> bool;

    /// The `k` stored vectors nearest `query`, nearest first (ties by id).
    fn search(&self, query: &Tensor, k: usize) -> Result<Vec<Neighbour>, IndexError>;

    /// Vectors stored.
    fn len(&self) -> usize;

    /// Every stored vector with its id, in id order (what a Node snapshot
    /// keeps; adding them to an empty index of the same configuration
    /// rebuilds it).
    fn entries(&self) -> Vec<(u64, Tensor)>;

    /// Whether nothing is stored.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
