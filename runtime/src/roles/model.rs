//! The Model role: something with parameters that trains on batches and is evaluated on labelled data.
//!
//! What a model promises:
//! * **Determinism**: the same initial state, the same batches in the same
//!   order give bit-identical parameters (f32 arithmetic in a fixed order).
//! * **Parameters** are named f32 tensors in a fixed order; [`Model::flat`]
//!   concatenates them row-major in that order (what travels to an
//!   aggregator), [`Model::load_flat`] reads the same layout back.
//! * **Refusals**: wrongly shaped or typed batches and parameters, labels
//!   outside `0..classes`, non-finite parameters on load — each a typed
//!   [`ModelError`]; a refused call leaves the model unchanged.
//! * **State** ([`Model::state`]) is parameters plus optimizer buffers
//!   (momentum); restoring it into a model built from the same config
//!   gives a model indistinguishable from the original (same parameters,
//!   same next step).

use crate::tensor::{Tensor, TensorError};

/// A tensor with its name.
pub type NamedTensor = (String, Tensor);

/// Loss and accuracy of a model on labelled data.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Evaluation {
    /// Mean cross-entropy (natural log).
    pub loss: f32,
    /// Fraction of samples whose arg-max class is the label.
    pub accuracy: f32,
    /// Samples evaluated.
    pub samples: usize,
}

/// Why a model refused a call.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ModelError {
    /// A batch or parameter tensor has the wrong shape or element type.
    #[error("{what}: expected {expected}, got {found}")]
    Shape {
        /// What was refused (for example `"batch features"`).
        what: String,
        /// What the model takes.
        expected: String,
        /// What it was given.
        found: String,
    },
    /// A label outside `0..classes`.
    #[error("label {label} at row {row} is outside 0..{classes}")]
    Label {
        /// The label.
        label: i64,
        /// Its row in the batch.
        row: usize,
        /// The model's class count.
        classes: usize,
    },
    /// Parameters or a loss that are NaN or infinite.
    #[error("{what} is not finite (NaN or infinite); lower the learning rate or check the inputs")]
    NotFinite {
        /// What was not finite.
        what: String,
    },
    /// The model's configuration is invalid.
    #[error("invalid model config: {0}")]
    Config(String),
    /// A backend op refused (a bug in the model, or inputs it did not check).
    #[error(transparent)]
    Tensor(#[from] TensorError),
}

/// A trainable model.
pub trait Model: Send + std::fmt::Debug + 'static {
    /// A short name of the model family (`"softmax"`, `"mlp"`).
    fn kind(&self) -> &'static str;

    /// The number of input features.
    fn features(&self) -> usize;

    /// The number of classes.
    fn classes(&self) -> usize;

    /// The parameters, named, in their fixed order.
    fn parameters(&self) -> Vec<NamedTensor>;

    /// Replaces the parameters (same names, shapes and order as
    /// [`Model::parameters`]); optimizer buffers are kept.
    fn load(&mut self, parameters: &[NamedTensor]) -> Result<(), ModelError>;

    /// One optimizer step on a batch: `x` f32 `[m, features]`, `y` i64
    /// `[m]`. Returns the batch's mean loss before the step.
    fn train_batch(&mut self, x: &Tensor, y: &Tensor) -> Result<f32, ModelError>;

    /// Loss and accuracy on `x`, `y` (no state changes).
    fn evaluate(&self, x: &Tensor, y: &Tensor) -> Result<Evaluation, ModelError>;

    /// Parameters and optimizer buffers, named.
    fn state(&self) -> Vec<NamedTensor>;

    /// Restores what [`Model::state`] returned.
    fn restore(&mut self, state: &[NamedTensor]) -> Result<(), ModelError>;

    /// Every parameter, concatenated row-major in order: an f32 `[P]` tensor.
    fn flat(&self) -> Tensor {
        let values: Vec<f32> = self
            .parameters()
            .iter()
            .flat_map(|(_, t)| t.to_f32_vec().unwrap_or_default())
            .collect();
        let len = values.len();
        // A 1-D tensor of exactly `len` elements.
        Tensor::from_f32(vec![len], values).unwrap_or_else(|_| Tensor::scalar_f32(f32::NAN))
    }

    /// Loads parameters from the layout of [`Model::flat`].
    fn load_flat(&mut self, flat: &Tensor) -> Result<(), ModelError> {
        let values = flat.to_f32_vec().ok_or_else(|| ModelError::Shape {
            what: "flat parameters".into(),
            expected: "f32".into(),
            found: flat.dtype().to_string(),
        })?;
        let current = self.parameters();
        let total: usize = current.iter().map(|(_, t)| t.len()).sum();
        if values.len() != total || flat.rank() != 1 {
            return Err(ModelError::Shape {
                what: "flat parameters".into(),
                expected: format!("[{total}]"),
                found: format!("{:?}", flat.shape()),
            });
        }
        let mut offset = 0;
        let mut parameters = Vec::with_capacity(current.len());
        for (name, tensor) in current {
            let part = values[offset..offset + tensor.len()].to_vec();
            offset += tensor.len();
            parameters.push((name, Tensor::from_f32(tensor.shape().to_vec(), part)?));
        }
        self.load(&parameters)
    }
}
