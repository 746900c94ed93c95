//! Index implementations, one per file.
//!
//! * [`ExactKnn`] — brute-force exact k-NN under L2 or cosine distance.

mod exact_knn;

pub use exact_knn::ExactKnn;
