//! [`Sgd`]: stochastic gradient descent with classic momentum and L2 weight decay, the optimizer the models step with.

use crate::roles::model::ModelError;

/// The configuration of stochastic gradient descent: learning rate `lr`,
/// momentum `μ` (default 0) and weight decay `λ` (default 0).
///
/// One step on a parameter `w` with gradient `g` and velocity `v`
/// (classic, "heavy ball" momentum, as PyTorch's `SGD` without dampening
/// or Nesterov):
///
/// ```text
/// d = g + λ·w          (d = g exactly when λ = 0)
/// v = μ·v + d          (only when μ > 0; no velocity is kept otherwise)
/// w = w − lr·v         (w = w − lr·d when μ = 0)
/// ```
///
/// With `μ = 0` and `λ = 0` a step is exactly `w − lr·g`, element by
/// element in f32, which is the reference job's update. Velocities start
/// at zero, so the first step with momentum equals the step without it.
///
/// Refusals (each a [`ModelError::Config`]): a learning rate that is not
/// finite and > 0, a momentum outside `[0, 1)`, a weight decay that is not
/// finite and ≥ 0.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sgd {
    lr: f32,
    momentum: f32,
    weight_decay: f32,
}

impl Sgd {
    /// Plain SGD with learning rate `lr` (momentum 0, weight decay 0).
    pub fn new(lr: f32) -> Result<Self, ModelError> {
        if !(lr.is_finite() && lr > 0.0) {
            return Err(ModelError::Config(format!(
                "SGD learning rate must be finite and > 0, got {lr}"
            )));
        }
        Ok(Self {
            lr,
            momentum: 0.0,
            weight_decay: 0.0,
        })
    }

    /// The same optimizer with momentum `μ` in `[0, 1)`.
    pub fn with_momentum(self, momentum: f32) -> Result<Self, ModelError> {
        if !(0.0..1.0).contains(&momentum) {
            return Err(ModelError::Config(format!(
                "SGD momentum must be in [0, 1), got {momentum}"
            )));
        }
        Ok(Self { momentum, ..self })
    }

    /// The same optimizer with L2 weight decay `λ ≥ 0` (added to the gradient).
    pub fn with_weight_decay(self, weight_decay: f32) -> Result<Self, ModelError> {
        if !(weight_decay.is_finite() && weight_decay >= 0.0) {
            return Err(ModelError::Config(format!(
                "SGD weight decay must be finite and >= 0, got {weight_decay}"
            )));
        }
        Ok(Self {
            weight_decay,
            ..self
        })
    }

    /// The learning rate.
    pub fn lr(&self) -> f32 {
        self.lr
    }

    /// The momentum `μ`.
    pub fn momentum(&self) -> f32 {
        self.momentum
    }

    /// The weight decay `λ`.
    pub fn weight_decay(&self) -> f32 {
        self.weight_decay
    }

    /// Whether steps keep a velocity per parameter (momentum > 0).
    pub fn has_velocity(&self) -> bool {
        self.momentum > 0.0
    }

    /// One step on one parameter, in place: `weights` and `velocity` are
    /// updated from `gradient` by the rule above, element by element.
    ///
    /// `velocity` must be `Some` (of the same length) exactly when
    /// [`Sgd::has_velocity`]; lengths that differ, or a velocity given or
    /// missing against the config, are refused with
    /// [`ModelError::Shape`] before anything is written. Non-finite
    /// results are not checked here (the models check them before
    /// committing a step).
    pub fn update(
        &self,
        weights: &mut [f32],
        gradient: &[f32],
        velocity: Option<&mut [f32]>,
    ) -> Result<(), ModelError> {
        let n = weights.len();
        let shape = |what: &str, expected: String, found: String| ModelError::Shape {
            what: format!("SGD {what}"),
            expected,
            found,
        };
        if gradient.len() != n {
            return Err(shape(
                "gradient",
                format!("{n} values"),
                format!("{} values", gradient.len()),
            ));
        }
        let (lr, mu, lambda) = (self.lr, self.momentum, self.weight_decay);
        match velocity {
            None if self.has_velocity() => Err(shape(
                "velocity",
                format!("{n} values (momentum {mu})"),
                "none".into(),
            )),
            Some(_) if !self.has_velocity() => Err(shape(
                "velocity",
                "none (momentum 0)".into(),
                "a velocity".into(),
            )),
            Some(v) if v.len() != n => Err(shape(
                "velocity",
                format!("{n} values"),
                format!("{} values", v.len()),
            )),
            None => {
                for (w, &g) in weights.iter_mut().zip(gradient) {
                    let d = if lambda == 0.0 { g } else { g + lambda * *w };
                    *w -= lr * d;
                }
                Ok(())
            }
            Some(v) => {
                for ((w, &g), v) in weights.iter_mut().zip(gradient).zip(v.iter_mut()) {
                    let d = if lambda == 0.0 { g } else { g + lambda * *w };
                    *v = mu * *v + d;
                    *w -= lr * *v;
                }
                Ok(())
            }
        }
    }
}
