//! [`SoftmaxRegression`]: multinomial logistic regression trained by SGD, the reference job's model.

use super::network::{Init, Network};
use super::sgd::Sgd;
use crate::roles::model::{Evaluation, Model, ModelError, NamedTensor};
use crate::tensor::Tensor;

/// Multinomial logistic regression: logits `z = x·W + b` (`W` f32
/// `[features, classes]`, `b` f32 `[classes]`), `p = softmax(z)` per row,
/// trained on the mean cross-entropy by [`Sgd`].
///
/// Parameters, in order: `"W"`, `"b"`; with momentum, [`Model::state`]
/// adds their velocities `"v:W"`, `"v:b"` (no velocities without it).
///
/// A step on a batch of `m` rows computes, on backend ops (Gemm, Softmax,
/// Sub, Div, Gemm with `transA`, ReduceSum over axis 0), `dz = (p −
/// onehot(y)) / m`, `dW = xᵀ·dz`, `db = Σ_rows dz`, then the SGD update.
/// From zero with momentum 0 this is the reference job's update `W −= lr ·
/// Xᵀp / m; b −= lr · Σᵢ pᵢ / m` (with `p[i, yᵢ] −= 1`), in f32.
///
/// Promises: deterministic (the same state and batches give the same
/// bits); every refusal of [`Model`] is checked before anything changes;
/// a step whose loss, parameters or velocities would not be finite is
/// refused with [`ModelError::NotFinite`] and the previous state kept.
#[derive(Clone, Debug)]
pub struct SoftmaxRegression {
    net: Network,
}

impl SoftmaxRegression {
    /// The model family's name.
    pub const KIND: &'static str = "softmax";

    /// A model with `W` and `b` all zero (how the reference job starts).
    /// Refuses `features == 0`, `classes < 2` and sizes past the tensor cap.
    pub fn new(features: usize, classes: usize, sgd: Sgd) -> Result<Self, ModelError> {
        Self::build(features, classes, sgd, Init::Zero)
    }

    /// A model whose `W` is drawn uniform in `[−0.01, 0.01)` from a
    /// SplitMix64 generator seeded with `seed` (row-major; each draw takes
    /// the top 24 bits `k` of an output, weight `(2·k/2²⁴ − 1)·0.01`); `b`
    /// is zero. The same seed gives the same bits everywhere.
    pub fn with_seed(
        features: usize,
        classes: usize,
        sgd: Sgd,
        seed: u64,
    ) -> Result<Self, ModelError> {
        Self::build(
            features,
            classes,
            sgd,
            Init::Uniform {
                seed,
                scale: |_, _| 0.01,
            },
        )
    }

    fn build(features: usize, classes: usize, sgd: Sgd, init: Init) -> Result<Self, ModelError> {
        let names = |_| ("W".to_owned(), "b".to_owned());
        Ok(Self {
            net: Network::new(vec![features, classes], names, sgd, init)?,
        })
    }

    /// The optimizer configuration.
    pub fn sgd(&self) -> Sgd {
        self.net.sgd()
    }

    /// The batch's mean loss and the gradients `dW`, `db` (named `"W"`,
    /// `"b"`), without changing the model; refuses what
    /// [`Model::train_batch`] refuses, except a non-finite loss.
    pub fn gradients(&self, x: &Tensor, y: &Tensor) -> Result<(f32, Vec<NamedTensor>), ModelError> {
        self.net.gradients(x, y)
    }
}

impl Model for SoftmaxRegression {
    fn kind(&self) -> &'static str {
        Self::KIND
    }

    fn features(&self) -> usize {
        self.net.features()
    }

    fn classes(&self) -> usize {
        self.net.classes()
    }

    fn parameters(&self) -> Vec<NamedTensor> {
        self.net.parameters()
    }

    fn load(&mut self, parameters: &[NamedTensor]) -> Result<(), ModelError> {
        self.net.load(parameters)
    }

    fn train_batch(&mut self, x: &Tensor, y: &Tensor) -> Result<f32, ModelError> {
        self.net.train_batch(x, y)
    }

    fn evaluate(&self, x: &Tensor, y: &Tensor) -> Result<Evaluation, ModelError> {
        self.net.evaluate(x, y)
    }

    fn state(&self) -> Vec<NamedTensor> {
        self.net.state()
    }

    fn restore(&mut self, state: &[NamedTensor]) -> Result<(), ModelError> {
        self.net.restore(state)
    }
}
