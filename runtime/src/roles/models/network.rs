//! The dense layer stack both models are made of: parameters, a forward pass, an analytic backward pass and an SGD step, all on prepared backend ops.
//!
//! Layer `l` maps `h_l` (`[m, widths[l]]`) to `a_l = h_l·W_l + b_l`
//! (`W_l` `[widths[l], widths[l+1]]`, `b_l` `[widths[l+1]]`, one Gemm);
//! between layers `h_{l+1} = relu(a_l)`; the last `a` is the logits `z`,
//! `p = softmax(z)` row by row (row maximum subtracted first) and the loss
//! is the mean cross-entropy (SoftmaxCrossEntropyLoss, log-softmax based).
//!
//! Backward, with `dz = (p − onehot(y)) / m`: `dW_l = h_lᵀ·dz` (Gemm,
//! `transA`), `db_l = Σ_rows dz` (ReduceSum over axis 0), and below a
//! hidden layer `dz ← (dz·W_lᵀ) ⊙ [h_l > 0]` (Gemm `transB`, Greater,
//! Where). Every op runs in a fixed order on one thread, so the same
//! state and batch give the same bits.

use nodeflow_engine::{Attribute, AttributeValue};

use super::sgd::Sgd;
use super::{check_batch, check_named};
use crate::backend::{CpuBackend, PreparedOp};
use crate::data::SplitMix64;
use crate::roles::model::{Evaluation, ModelError, NamedTensor};
use crate::tensor::{Tensor, MAX_ELEMENTS};

/// The backend ops a stack computes with, prepared once.
#[derive(Clone, Debug)]
struct Ops {
    /// Gemm: `h·W + b`.
    affine: PreparedOp,
    /// Relu.
    relu: PreparedOp,
    /// Softmax along axis 1.
    softmax: PreparedOp,
    /// SoftmaxCrossEntropyLoss, mean reduction.
    loss: PreparedOp,
    /// ArgMax along axis 1, axis dropped.
    argmax: PreparedOp,
    /// Sub: `p − onehot`.
    sub: PreparedOp,
    /// Div: `/ m`.
    div: PreparedOp,
    /// Gemm with `transA`: `hᵀ·dz`.
    weight_grad: PreparedOp,
    /// ReduceSum over axis 0, axis dropped.
    bias_grad: PreparedOp,
    /// Gemm with `transB`: `dz·Wᵀ`.
    input_grad: PreparedOp,
    /// Greater: `h > 0`.
    positive: PreparedOp,
    /// Where: keep the gradient where the unit was active.
    select: PreparedOp,
}

impl Ops {
    fn new() -> Result<Self, ModelError> {
        let int = |name: &str, v: i64| Attribute {
            name: name.to_owned(),
            value: AttributeValue::Int(v),
        };
        let prepare = |op: &str, attributes: &[Attribute]| {
            CpuBackend::prepare(op, attributes).map_err(ModelError::from)
        };
        Ok(Self {
            affine: prepare("Gemm", &[])?,
            relu: prepare("Relu", &[])?,
            softmax: prepare("Softmax", &[int("axis", 1)])?,
            loss: prepare("SoftmaxCrossEntropyLoss", &[])?,
            argmax: prepare("ArgMax", &[int("axis", 1), int("keepdims", 0)])?,
            sub: prepare("Sub", &[])?,
            div: prepare("Div", &[])?,
            weight_grad: prepare("Gemm", &[int("transA", 1)])?,
            bias_grad: prepare(
                "ReduceSum",
                &[
                    Attribute {
                        name: "axes".into(),
                        value: AttributeValue::Ints(vec![0]),
                    },
                    int("keepdims", 0),
                ],
            )?,
            input_grad: prepare("Gemm", &[int("transB", 1)])?,
            positive: prepare("Greater", &[])?,
            select: prepare("Where", &[])?,
        })
    }
}

/// How the weights start (biases always start at zero).
#[derive(Clone, Copy, Debug)]
pub(super) enum Init {
    /// Every weight 0.
    Zero,
    /// Layer `l`'s weights uniform in `[−limit, limit)`, `limit =
    /// scale(fan_in, fan_out)`, drawn row-major, layer after layer, from
    /// one [`SplitMix64`] seeded with `seed`: each draw takes the top 24
    /// bits `k` of an output, `u = k / 2²⁴`, weight `(2u − 1)·limit`.
    Uniform {
        /// The generator's seed.
        seed: u64,
        /// The bound of a layer from its fan-in and fan-out.
        scale: fn(usize, usize) -> f32,
    },
}

/// A stack of dense layers with a softmax cross-entropy head and its SGD state.
#[derive(Clone, Debug)]
pub(super) struct Network {
    /// `[features, hidden…, classes]`.
    widths: Vec<usize>,
    /// Parameter names, two per layer (weights, bias).
    names: Vec<String>,
    /// `W_0, b_0, W_1, b_1, …`.
    params: Vec<Tensor>,
    /// One per parameter when the optimizer keeps velocities, else empty.
    velocity: Vec<Tensor>,
    sgd: Sgd,
    ops: Ops,
}

impl Network {
    /// A stack of `widths` (`[features, hidden…, classes]`) whose layer
    /// `l` has parameters named `names(l)`. Refuses a width of 0, fewer
    /// than 2 classes, and more parameters than a tensor holds.
    pub(super) fn new(
        widths: Vec<usize>,
        names: impl Fn(usize) -> (String, String),
        sgd: Sgd,
        init: Init,
    ) -> Result<Self, ModelError> {
        let config = |reason: String| Err(ModelError::Config(reason));
        if widths.len() < 2 || widths.contains(&0) {
            return config(format!("every layer width must be >= 1, got {widths:?}"));
        }
        if widths.last().is_some_and(|&c| c < 2) {
            return config("a classifier needs at least 2 classes".into());
        }
        let mut total = 0usize;
        for pair in widths.windows(2) {
            // `windows(2)` yields slices of exactly two.
            let count = pair[0]
                .checked_mul(pair[1])
                .and_then(|w| w.checked_add(pair[1]))
                .and_then(|p| total.checked_add(p));
            match count {
                Some(t) if t <= MAX_ELEMENTS => total = t,
                _ => {
                    return config(format!(
                        "layers {widths:?} have more than {MAX_ELEMENTS} parameters"
                    ))
                }
            }
        }
        let mut rng = match init {
            Init::Zero => None,
            Init::Uniform { seed, .. } => Some(SplitMix64::new(seed)),
        };
        let mut names_list = Vec::new();
        let mut params = Vec::new();
        for (layer, pair) in widths.windows(2).enumerate() {
            let (fan_in, fan_out) = (pair[0], pair[1]);
            let weights = match (&mut rng, init) {
                (Some(rng), Init::Uniform { scale, .. }) => {
                    let limit = scale(fan_in, fan_out);
                    (0..fan_in * fan_out).map(|_| uniform(rng, limit)).collect()
                }
                _ => vec![0.0; fan_in * fan_out],
            };
            let (w, b) = names(layer);
            names_list.extend([w, b]);
            params.push(Tensor::from_f32(vec![fan_in, fan_out], weights)?);
            params.push(Tensor::from_f32(vec![fan_out], vec![0.0; fan_out])?);
        }
        let velocity = if sgd.has_velocity() {
            params.iter().map(zeros_like).collect::<Result<_, _>>()?
        } else {
            Vec::new()
        };
        Ok(Self {
            widths,
            names: names_list,
            params,
            velocity,
            sgd,
            ops: Ops::new()?,
        })
    }

    /// `[features, hidden…, classes]`.
    pub(super) fn widths(&self) -> &[usize] {
        &self.widths
    }

    /// The optimizer.
    pub(super) fn sgd(&self) -> Sgd {
        self.sgd
    }

    /// Input features.
    pub(super) fn features(&self) -> usize {
        // `new` refused fewer than two widths.
        self.widths[0]
    }

    /// Classes (the last width; `new` checked there are at least two widths).
    pub(super) fn classes(&self) -> usize {
        self.widths.last().copied().unwrap_or(0)
    }

    /// The parameters, named, in order.
    pub(super) fn parameters(&self) -> Vec<NamedTensor> {
        self.names
            .iter()
            .cloned()
            .zip(self.params.iter().cloned())
            .collect()
    }

    /// Parameters then velocities (`"v:<name>"`), named.
    pub(super) fn state(&self) -> Vec<NamedTensor> {
        let velocities = self
            .names
            .iter()
            .map(|n| format!("v:{n}"))
            .zip(self.velocity.iter().cloned());
        self.parameters().into_iter().chain(velocities).collect()
    }

    /// Replaces the parameters after checking every one.
    pub(super) fn load(&mut self, parameters: &[NamedTensor]) -> Result<(), ModelError> {
        self.params = check_named(parameters, &self.parameter_spec())?;
        Ok(())
    }

    /// Replaces parameters and velocities after checking every one.
    pub(super) fn restore(&mut self, state: &[NamedTensor]) -> Result<(), ModelError> {
        let mut spec = self.parameter_spec();
        if self.sgd.has_velocity() {
            let velocities: Vec<_> = spec
                .iter()
                .map(|(n, s)| (format!("v:{n}"), s.clone()))
                .collect();
            spec.extend(velocities);
        }
        let mut tensors = check_named(state, &spec)?;
        self.velocity = tensors.split_off(self.params.len());
        self.params = tensors;
        Ok(())
    }

    /// The batch's mean loss and the gradient of each parameter, named
    /// like the parameters (no state changes).
    pub(super) fn gradients(
        &self,
        x: &Tensor,
        y: &Tensor,
    ) -> Result<(f32, Vec<NamedTensor>), ModelError> {
        let rows = check_batch(x, y, self.features(), self.classes())?;
        let (loss, grads) = self.backward(x, y, rows)?;
        Ok((loss, self.names.iter().cloned().zip(grads).collect()))
    }

    /// One SGD step; refuses (changing nothing) a non-finite loss, or a
    /// step that would make a parameter or velocity non-finite.
    pub(super) fn train_batch(&mut self, x: &Tensor, y: &Tensor) -> Result<f32, ModelError> {
        let rows = check_batch(x, y, self.features(), self.classes())?;
        let (loss, grads) = self.backward(x, y, rows)?;
        if !loss.is_finite() {
            return Err(ModelError::NotFinite {
                what: "the batch loss".into(),
            });
        }
        let mut params = Vec::with_capacity(self.params.len());
        let mut velocity = Vec::with_capacity(self.velocity.len());
        for (index, (param, grad)) in self.params.iter().zip(&grads).enumerate() {
            let mut w = f32_values(param)?;
            let g = f32_values(grad)?;
            let mut v = match self.velocity.get(index) {
                Some(v) => Some(f32_values(v)?),
                None => None,
            };
            self.sgd.update(&mut w, &g, v.as_deref_mut())?;
            // One name per parameter, by construction.
            let name = &self.names[index];
            if w.iter().any(|x| !x.is_finite()) {
                return Err(ModelError::NotFinite {
                    what: format!("parameter {name:?} after the step"),
                });
            }
            if let Some(v) = v {
                if v.iter().any(|x| !x.is_finite()) {
                    return Err(ModelError::NotFinite {
                        what: format!("velocity of {name:?} after the step"),
                    });
                }
                velocity.push(Tensor::from_f32(param.shape().to_vec(), v)?);
            }
            params.push(Tensor::from_f32(param.shape().to_vec(), w)?);
        }
        self.params = params;
        self.velocity = velocity;
        Ok(loss)
    }

    /// Mean loss and arg-max accuracy on a batch.
    pub(super) fn evaluate(&self, x: &Tensor, y: &Tensor) -> Result<Evaluation, ModelError> {
        let rows = check_batch(x, y, self.features(), self.classes())?;
        let (_, z) = self.forward(x)?;
        let loss = self.loss(&z, y)?;
        let predicted = self.ops.argmax.eval1(&[Some(z)])?;
        let (Some(predicted), Some(labels)) = (predicted.as_i64(), y.as_i64()) else {
            return Err(not_i64(&predicted));
        };
        let correct = predicted
            .iter()
            .zip(labels.iter())
            .filter(|(p, l)| p == l)
            .count();
        Ok(Evaluation {
            loss,
            accuracy: (correct as f64 / rows as f64) as f32,
            samples: rows,
        })
    }

    /// Names and shapes of the parameters, in order.
    fn parameter_spec(&self) -> Vec<(String, Vec<usize>)> {
        self.names
            .iter()
            .cloned()
            .zip(self.params.iter().map(|p| p.shape().to_vec()))
            .collect()
    }

    /// The input of every layer (`h_0 = x`, then the ReLU outputs) and the logits.
    fn forward(&self, x: &Tensor) -> Result<(Vec<Tensor>, Tensor), ModelError> {
        let layers = self.params.len() / 2;
        let mut inputs = Vec::with_capacity(layers);
        let mut h = x.clone();
        for (layer, pair) in self.params.chunks_exact(2).enumerate() {
            let a = self.ops.affine.eval1(&[
                Some(h.clone()),
                Some(pair[0].clone()),
                Some(pair[1].clone()),
            ])?;
            inputs.push(h);
            h = if layer + 1 < layers {
                self.ops.relu.eval1(&[Some(a)])?
            } else {
                a
            };
        }
        Ok((inputs, h))
    }

    /// The mean cross-entropy of logits `z` against labels `y`.
    fn loss(&self, z: &Tensor, y: &Tensor) -> Result<f32, ModelError> {
        let loss = self.ops.loss.eval1(&[Some(z.clone()), Some(y.clone())])?;
        loss.as_f32()
            .and_then(|l| l.iter().next().copied())
            .ok_or_else(|| ModelError::Shape {
                what: "SoftmaxCrossEntropyLoss output".into(),
                expected: "f32 []".into(),
                found: super::describe(&loss),
            })
    }

    /// The loss and each parameter's gradient for a checked batch of `rows` rows.
    fn backward(
        &self,
        x: &Tensor,
        y: &Tensor,
        rows: usize,
    ) -> Result<(f32, Vec<Tensor>), ModelError> {
        let (inputs, z) = self.forward(x)?;
        let loss = self.loss(&z, y)?;
        let p = self.ops.softmax.eval1(&[Some(z)])?;
        let onehot = one_hot(y, rows, self.classes())?;
        let residual = self.ops.sub.eval1(&[Some(p), Some(onehot)])?;
        let mut dz = self
            .ops
            .div
            .eval1(&[Some(residual), Some(Tensor::scalar_f32(rows as f32))])?;
        let zero = Tensor::scalar_f32(0.0);
        // Two parameters per layer and one input per layer, so every index
        // below (`2·layer`, `2·layer + 1`) is in range.
        let mut grads = vec![zero.clone(); self.params.len()];
        for (layer, h) in inputs.iter().enumerate().rev() {
            grads[2 * layer] = self
                .ops
                .weight_grad
                .eval1(&[Some(h.clone()), Some(dz.clone())])?;
            grads[2 * layer + 1] = self.ops.bias_grad.eval1(&[Some(dz.clone())])?;
            if layer > 0 {
                let dh = self
                    .ops
                    .input_grad
                    .eval1(&[Some(dz), Some(self.params[2 * layer].clone())])?;
                let active = self
                    .ops
                    .positive
                    .eval1(&[Some(h.clone()), Some(zero.clone())])?;
                dz = self
                    .ops
                    .select
                    .eval1(&[Some(active), Some(dh), Some(zero.clone())])?;
            }
        }
        Ok((loss, grads))
    }
}

/// One draw uniform in `[−limit, limit)` (see [`Init::Uniform`]).
fn uniform(rng: &mut SplitMix64, limit: f32) -> f32 {
    let u = (rng.next_u64() >> 40) as f32 / (1u32 << 24) as f32;
    (2.0 * u - 1.0) * limit
}

/// An f32 tensor of zeros shaped like `t`.
fn zeros_like(t: &Tensor) -> Result<Tensor, ModelError> {
    Ok(Tensor::from_f32(t.shape().to_vec(), vec![0.0; t.len()])?)
}

/// The row-major values of an f32 tensor.
fn f32_values(t: &Tensor) -> Result<Vec<f32>, ModelError> {
    t.to_f32_vec().ok_or_else(|| ModelError::Shape {
        what: "tensor".into(),
        expected: "f32".into(),
        found: super::describe(t),
    })
}

/// The error for a backend result that should have been i64.
fn not_i64(t: &Tensor) -> ModelError {
    ModelError::Shape {
        what: "ArgMax output".into(),
        expected: "i64".into(),
        found: super::describe(t),
    }
}

/// `onehot(y)`: f32 `[rows, classes]`, 1 at each row's label (labels checked).
fn one_hot(y: &Tensor, rows: usize, classes: usize) -> Result<Tensor, ModelError> {
    let mut values = vec![0.0f32; rows * classes];
    let labels = y.as_i64().ok_or_else(|| not_i64(y))?;
    for (row, &label) in labels.iter().enumerate() {
        if let Some(slot) = usize::try_from(label)
            .ok()
            .and_then(|l| values.get_mut(row * classes + l))
        {
            *slot = 1.0;
        }
    }
    Ok(Tensor::from_f32(vec![rows, classes], values)?)
}
