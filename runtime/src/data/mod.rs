//! The data layer: labelled data sets in memory, the embedded digits set, IDX (MNIST-format) files, seeded shuffles and client partitions.
//!
//! These are plain library functions; the DataSource role builds on them.
//! Everything here is deterministic given its inputs and seed, and refuses
//! bad input with a typed error rather than panicking.
//!
//! * [`Dataset`] — f32 features `[n, d]`, i64 labels `[n]`; subsets,
//!   train/test splits by row lists, scaling, mini-batches as [`Tensor`]s.
//! * [`digits`] — the embedded 1,797-row handwritten digits set.
//! * [`load_idx_dir`] and friends — MNIST / Fashion-MNIST IDX files, plain or gzipped.
//! * [`shuffle_order`] — the reference job's SplitMix64 Fisher–Yates order.
//! * [`iid_partition`], [`dirichlet_partition`], [`validate_partition`].
//!
//! [`Tensor`]: crate::Tensor

mod dataset;
mod digits;
mod idx;
mod partition;
mod shuffle;

pub use dataset::{Batches, Dataset, DatasetError};
pub use digits::{digits, DIGITS_CLASSES, DIGITS_FEATURES, DIGITS_MAX_PIXEL, DIGITS_ROWS};
pub use idx::{
    idx_dataset, load_idx_dir, load_idx_pair, read_idx_images, read_idx_labels, IdxError,
    IdxImages, IdxLimits, IdxSplits, IDX_CLASSES,
};
pub use partition::{
    dirichlet_partition, iid_partition, validate_partition, DirichletConfig, PartitionError,
};
pub use shuffle::{shuffle, shuffle_order, SplitMix64};
