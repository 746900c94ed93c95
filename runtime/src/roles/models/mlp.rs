//! [`Mlp`]: a multilayer perceptron with ReLU hidden layers and a softmax cross-entropy head, trained by SGD.

use super::network::{Init, Network};
use super::sgd::Sgd;
use crate::roles::model::{Evaluation, Model, ModelError, NamedTensor};
use crate::tensor::Tensor;

/// A multilayer perceptron: `h₀ = x`, `hₗ₊₁ = relu(hₗ·Wₗ + bₗ)` for each
/// hidden layer, logits `z = h_L·W_L + b_L`, `p = softmax(z)`, trained on
/// the mean cross-entropy by [`Sgd`] with analytic backpropagation on
/// backend ops (Gemm for the layers and their gradients, ReduceSum for
/// the biases, Greater and Where for the ReLU derivative, which is taken
/// as 0 at 0).
///
/// Parameters, in order: `"W0"`, `"b0"`, `"W1"`, `"b1"`, … (`Wₗ` f32
/// `[inₗ, outₗ]`, `bₗ` f32 `[outₗ]`); with momentum, [`Model::state`] adds
/// `"v:W0"`, `"v:b0"`, … after them.
///
/// Initialisation (He / Kaiming uniform): every `Wₗ` is uniform in
/// `[−√(6/inₗ), √(6/inₗ))`, drawn row-major, layer after layer, from one
/// SplitMix64 generator seeded with the given seed (each draw takes the
/// top 24 bits `k` of an output, weight `(2·k/2²⁴ − 1)·limit`); biases
/// start at zero. The same seed gives the same bits everywhere.
///
/// Promises: deterministic; every refusal of [`Model`] is checked before
/// anything changes; a step whose loss, parameters or velocities would not
/// be finite is refused with [`ModelError::NotFinite`] and the previous
/// state kept.
#[derive(Clone, Debug)]
pub struct Mlp {
    net: Network,
}

impl Mlp {
    /// The model family's name.
    pub const KIND: &'static str = "mlp";

    /// An MLP of `features` inputs, hidden layers of the widths in
    /// `hidden` (none is allowed: then it is softmax regression with
    /// parameters `"W0"`, `"b0"`) and `classes` outputs, initialised from
    /// `seed`. Refuses a width of 0, `classes < 2` and sizes past the
    /// tensor cap.
    pub fn new(
        features: usize,
        hidden: &[usize],
        classes: usize,
        sgd: Sgd,
        seed: u64,
    ) -> Result<Self, ModelError> {
        let widths: Vec<usize> = [features]
            .into_iter()
            .chain(hidden.iter().copied())
            .chain([classes])
            .collect();
        let names = |layer| (format!("W{layer}"), format!("b{layer}"));
        let init = Init::Uniform {
            seed,
            scale: |fan_in, _| (6.0 / fan_in as f64).sqrt() as f32,
        };
        Ok(Self {
            net: Network::new(widths, names, sgd, init)?,
        })
    }

    /// The hidden layers' widths.
    pub fn hidden(&self) -> &[usize] {
        let widths = self.net.widths();
        // `new` built at least two widths (features and classes).
        &widths[1..widths.len() - 1]
    }

    /// The optimizer configuration.
    pub fn sgd(&self) -> Sgd {
        self.net.sgd()
    }

    /// The batch's mean loss and every parameter's gradient, named like
    /// the parameters, without changing the model; refuses what
    /// [`Model::train_batch`] refuses, except a non-finite loss.
    pub fn gradients(&self, x: &Tensor, y: &Tensor) -> Result<(f32, Vec<NamedTensor>), ModelError> {
        self.net.gradients(x, y)
    }
}

impl Model for Mlp {
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
