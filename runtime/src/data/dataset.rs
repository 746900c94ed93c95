//! [`Dataset`]: labelled rows of f32 features held in memory, with row selection, train/test splits and mini-batches as tensors.
//!
//! Invariants, established by every constructor and kept by every method:
//! * `features.len() == len() · feature_dim()`, row-major, `feature_dim() ≥ 1`;
//! * every label `y` satisfies `0 ≤ y < classes()`, and `classes() ≥ 1`;
//! * `len() · feature_dim()` is at most [`MAX_ELEMENTS`], so the whole set
//!   fits in one [`Tensor`]; selections and batches are held to the same cap.

use crate::tensor::{DType, Tensor, MAX_ELEMENTS};

/// Why a [`Dataset`] could not be built or a row selection was refused.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum DatasetError {
    /// `feature_dim` was 0.
    #[error("feature_dim is 0; every row needs at least one feature")]
    ZeroFeatureDim,
    /// `classes` was 0.
    #[error("classes is 0; a labelled data set needs at least one class")]
    NoClasses,
    /// The feature buffer does not split into whole rows.
    #[error("{len} feature values do not split into rows of {feature_dim}; pass rows × feature_dim values")]
    RaggedFeatures {
        /// Values given.
        len: usize,
        /// Values per row asked for.
        feature_dim: usize,
    },
    /// Feature rows and labels differ in number.
    #[error("{rows} feature rows but {labels} labels; give one label per row")]
    LabelCount {
        /// Rows in the feature buffer.
        rows: usize,
        /// Labels given.
        labels: usize,
    },
    /// A label outside `0..classes`.
    #[error(
        "row {row} has label {label}, outside 0..{classes}; fix the label or raise the class count"
    )]
    LabelOutOfRange {
        /// The row holding it.
        row: usize,
        /// The label.
        label: i64,
        /// The class count given.
        classes: usize,
    },
    /// More values than one tensor may hold.
    #[error("{rows} rows × {feature_dim} features is over the cap of {cap} values; load a subset")]
    TooLarge {
        /// Rows asked for.
        rows: usize,
        /// Values per row.
        feature_dim: usize,
        /// [`MAX_ELEMENTS`].
        cap: usize,
    },
    /// A tensor handed to [`Dataset::from_tensors`] has the wrong type or shape.
    #[error("{which} tensor is {dtype} {shape:?}; expected {expected}")]
    TensorShape {
        /// `"features"` or `"labels"`.
        which: &'static str,
        /// Its element type.
        dtype: DType,
        /// Its shape.
        shape: Vec<usize>,
        /// What was expected.
        expected: &'static str,
    },
    /// A row position past the end of the data set.
    #[error("position {position} is out of range for a data set of {len} rows")]
    PositionOutOfRange {
        /// The position given.
        position: usize,
        /// Rows in the data set.
        len: usize,
    },
    /// A batch size of 0.
    #[error("batch size is 0; ask for at least one row per batch")]
    ZeroBatch,
    /// A scale factor that is NaN or infinite.
    #[error("scale factor {factor} is not finite; pass a finite number such as 1/16")]
    NonFiniteScale {
        /// The factor given.
        factor: f32,
    },
}

/// Labelled rows in memory: features f32 `[n, d]`, labels i64 `[n]` in `0..classes`.
///
/// Cloning copies the rows. Selections ([`Dataset::subset`],
/// [`Dataset::train_test_split`]) copy the rows they pick, in the order given.
#[derive(Clone, Debug, PartialEq)]
pub struct Dataset {
    features: Vec<f32>,
    labels: Vec<i64>,
    feature_dim: usize,
    classes: usize,
}

impl Dataset {
    /// A data set from row-major `features` (`labels.len() × feature_dim`
    /// values) and one label in `0..classes` per row.
    pub fn new(
        features: Vec<f32>,
        labels: Vec<i64>,
        feature_dim: usize,
        classes: usize,
    ) -> Result<Self, DatasetError> {
        if feature_dim == 0 {
            return Err(DatasetError::ZeroFeatureDim);
        }
        if classes == 0 {
            return Err(DatasetError::NoClasses);
        }
        if features.len() % feature_dim != 0 {
            return Err(DatasetError::RaggedFeatures {
                len: features.len(),
                feature_dim,
            });
        }
        let rows = features.len() / feature_dim;
        if rows != labels.len() {
            return Err(DatasetError::LabelCount {
                rows,
                labels: labels.len(),
            });
        }
        if features.len() > MAX_ELEMENTS {
            return Err(DatasetError::TooLarge {
                rows,
                feature_dim,
                cap: MAX_ELEMENTS,
            });
        }
        if let Some((row, &label)) = labels
            .iter()
            .enumerate()
            .find(|(_, &y)| usize::try_from(y).map_or(true, |y| y >= classes))
        {
            return Err(DatasetError::LabelOutOfRange {
                row,
                label,
                classes,
            });
        }
        Ok(Self {
            features,
            labels,
            feature_dim,
            classes,
        })
    }

    /// A data set from an f32 `[n, d]` features tensor and an i64 `[n]` labels tensor.
    pub fn from_tensors(
        features: &Tensor,
        labels: &Tensor,
        classes: usize,
    ) -> Result<Self, DatasetError> {
        let wrong = |which, t: &Tensor, expected| DatasetError::TensorShape {
            which,
            dtype: t.dtype(),
            shape: t.shape().to_vec(),
            expected,
        };
        let (Some(x), [_, d]) = (features.to_f32_vec(), features.shape()) else {
            return Err(wrong(
                "features",
                features,
                "f32 of rank 2 [rows, features]",
            ));
        };
        let (Some(y), [_]) = (labels.to_i64_vec(), labels.shape()) else {
            return Err(wrong("labels", labels, "i64 of rank 1 [rows]"));
        };
        Self::new(x, y, *d, classes)
    }

    /// The number of rows.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Features per row (`d`).
    pub fn feature_dim(&self) -> usize {
        self.feature_dim
    }

    /// The number of classes; every label is in `0..classes()`.
    pub fn classes(&self) -> usize {
        self.classes
    }

    /// All features, row-major, `len() · feature_dim()` values.
    pub fn features(&self) -> &[f32] {
        &self.features
    }

    /// All labels, one per row.
    pub fn labels(&self) -> &[i64] {
        &self.labels
    }

    /// Row `position`'s features and label, or `None` past the end.
    pub fn row(&self, position: usize) -> Option<(&[f32], i64)> {
        let label = *self.labels.get(position)?;
        let start = position * self.feature_dim;
        let features = self.features.get(start..start + self.feature_dim)?;
        Some((features, label))
    }

    /// How many rows carry each label: `classes()` counts.
    pub fn label_counts(&self) -> Vec<usize> {
        let mut counts = vec![0; self.classes];
        for &y in &self.labels {
            // Labels are in 0..classes (type invariant).
            counts[y as usize] += 1;
        }
        counts
    }

    /// The rows at `positions`, in that order (a position may repeat).
    pub fn subset(&self, positions: &[usize]) -> Result<Dataset, DatasetError> {
        self.check_positions(positions)?;
        self.check_rows(positions.len())?;
        let mut features = Vec::with_capacity(positions.len() * self.feature_dim);
        let mut labels = Vec::with_capacity(positions.len());
        for &p in positions {
            features.extend_from_slice(self.row_features(p));
            labels.push(self.labels[p]);
        }
        Ok(Dataset {
            features,
            labels,
            feature_dim: self.feature_dim,
            classes: self.classes,
        })
    }

    /// The train and test sets at explicit row lists, each in the order given
    /// (the reference job's `train_rows` and `test_rows`).
    ///
    /// The lists are not checked for overlap: a split given by the job is
    /// taken as it is.
    pub fn train_test_split(
        &self,
        train_rows: &[usize],
        test_rows: &[usize],
    ) -> Result<(Dataset, Dataset), DatasetError> {
        Ok((self.subset(train_rows)?, self.subset(test_rows)?))
    }

    /// Multiplies every feature by `factor` (the reference scales pixels by 1/16).
    pub fn scale_features(&mut self, factor: f32) -> Result<(), DatasetError> {
        if !factor.is_finite() {
            return Err(DatasetError::NonFiniteScale { factor });
        }
        self.features.iter_mut().for_each(|x| *x *= factor);
        Ok(())
    }

    /// The whole set as tensors: features f32 `[n, d]`, labels i64 `[n]`.
    pub fn to_tensors(&self) -> (Tensor, Tensor) {
        rows_to_tensors(self, 0..self.len())
    }

    /// Mini-batches visiting the rows in `order`: consecutive chunks of
    /// `batch` positions, the last one smaller when `batch` does not divide
    /// `order.len()`. Each item is features f32 `[m, d]` and labels i64 `[m]`.
    ///
    /// Every position is checked here, so iterating cannot fail.
    pub fn batches<'a>(
        &'a self,
        order: &'a [usize],
        batch: usize,
    ) -> Result<Batches<'a>, DatasetError> {
        if batch == 0 {
            return Err(DatasetError::ZeroBatch);
        }
        self.check_positions(order)?;
        self.check_rows(batch.min(order.len()))?;
        Ok(Batches {
            dataset: self,
            chunks: order.chunks(batch),
        })
    }

    fn check_positions(&self, positions: &[usize]) -> Result<(), DatasetError> {
        match positions.iter().find(|&&p| p >= self.len()) {
            Some(&position) => Err(DatasetError::PositionOutOfRange {
                position,
                len: self.len(),
            }),
            None => Ok(()),
        }
    }

    /// Refuses `rows` rows of this width past [`MAX_ELEMENTS`] values (a
    /// selection may repeat positions, so it can outgrow the set).
    fn check_rows(&self, rows: usize) -> Result<(), DatasetError> {
        match rows.checked_mul(self.feature_dim) {
            Some(values) if values <= MAX_ELEMENTS => Ok(()),
            _ => Err(DatasetError::TooLarge {
                rows,
                feature_dim: self.feature_dim,
                cap: MAX_ELEMENTS,
            }),
        }
    }

    /// Row `p`'s features; `p < len()` is the caller's checked precondition.
    fn row_features(&self, p: usize) -> &[f32] {
        &self.features[p * self.feature_dim..(p + 1) * self.feature_dim]
    }
}

/// The iterator [`Dataset::batches`] returns: one `(features [m, d], labels [m])` pair per chunk.
#[derive(Clone, Debug)]
pub struct Batches<'a> {
    dataset: &'a Dataset,
    chunks: std::slice::Chunks<'a, usize>,
}

impl Iterator for Batches<'_> {
    type Item = (Tensor, Tensor);

    fn next(&mut self) -> Option<Self::Item> {
        let chunk = self.chunks.next()?;
        Some(rows_to_tensors(self.dataset, chunk.iter().copied()))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.chunks.size_hint()
    }
}

impl ExactSizeIterator for Batches<'_> {}

/// Copies the rows at checked `positions` into a features and a labels tensor.
fn rows_to_tensors(
    dataset: &Dataset,
    positions: impl ExactSizeIterator<Item = usize>,
) -> (Tensor, Tensor) {
    let m = positions.len();
    let d = dataset.feature_dim;
    let mut features = Vec::with_capacity(m * d);
    let mut labels = Vec::with_capacity(m);
    for p in positions {
        features.extend_from_slice(dataset.row_features(p));
        labels.push(dataset.labels[p]);
    }
    // The positions are checked and `m · d ≤ MAX_ELEMENTS` (the whole set by
    // the type invariant, a batch by `Dataset::batches`), so both shapes are
    // within the tensor caps and match their buffers.
    let x = Tensor::from_f32(vec![m, d], features).expect("batch within the tensor cap");
    let y = Tensor::from_i64(vec![m], labels).expect("labels within the tensor cap");
    (x, y)
}
