//! Activations: Relu, LeakyRelu, Sigmoid, Tanh, Gelu, Softmax, LogSoftmax.
//!
//! Element types: f32 for all; Relu takes i64 too (ONNX opset 14). NaN
//! passes through every activation unchanged. Softmax and LogSoftmax follow
//! opset 13: they normalize along the single axis `axis` (default -1),
//! subtracting the lane's maximum first so large scores do not overflow.
//! Gelu (opset 20) computes in f64 and rounds once to f32; its exact form
//! uses this file's own `erfc`, within about 1e-12 relative, since std
//! has no error function.

use nodeflow_engine::sync::Arc;

use ndarray::{ArrayD, Axis};

use super::math::unsupported;
use super::op::{norm_axis, out, Attrs, Build, Inputs, TensorOp};
use crate::tensor::{ArcArrayD, DType, Tensor, TensorError};

/// The op types of this family and their builders.
pub(super) const OPS: &[(&str, Build)] = &[
    ("Relu", |_| Ok(Arc::new(Relu))),
    ("LeakyRelu", leaky_relu),
    ("Sigmoid", |_| Ok(Arc::new(Activation { f: sigmoid }))),
    ("Tanh", |_| Ok(Arc::new(Activation { f: f32::tanh }))),
    ("Gelu", gelu),
    ("Softmax", |a| softmax(a, false)),
    ("LogSoftmax", |a| softmax(a, true)),
];

/// Relu: `max(x, 0)` on f32 or i64.
#[derive(Debug)]
struct Relu;

impl TensorOp for Relu {
    fn eval(&self, inputs: &Inputs<'_>) -> Result<Vec<Tensor>, TensorError> {
        let result = match inputs.get(0)?.dtype() {
            // `x < 0` is false for NaN, so NaN passes through.
            DType::F32 => out(inputs.f32(0)?.map(|&x| if x < 0.0 { 0.0 } else { x }))?,
            DType::I64 => out(inputs.array::<i64>(0)?.map(|&x| x.max(0)))?,
            _ => return Err(unsupported(inputs, 0, "float32 or int64")),
        };
        Ok(vec![result])
    }
}

/// An f32-only elementwise activation.
#[derive(Debug)]
struct Activation {
    /// The function applied to each element.
    f: fn(f32) -> f32,
}

impl TensorOp for Activation {
    fn eval(&self, inputs: &Inputs<'_>) -> Result<Vec<Tensor>, TensorError> {
        Ok(vec![out(inputs.f32(0)?.map(|&x| (self.f)(x)))?])
    }
}

/// The logistic function, in the form that cannot overflow `exp`.
fn sigmoid(x: f32) -> f32 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

/// LeakyRelu: `x` where `x >= 0`, `alpha * x` below (alpha default 0.01).
#[derive(Debug)]
struct LeakyRelu {
    /// The slope below zero.
    alpha: f32,
}

/// Builds LeakyRelu from its `alpha` attribute.
fn leaky_relu(attrs: &Attrs<'_>) -> Result<Arc<dyn TensorOp>, TensorError> {
    Ok(Arc::new(LeakyRelu {
        alpha: attrs.float_or("alpha", 0.01)?,
    }))
}

impl TensorOp for LeakyRelu {
    fn eval(&self, inputs: &Inputs<'_>) -> Result<Vec<Tensor>, TensorError> {
        let alpha = self.alpha;
        let y = inputs.f32(0)?.map(|&x| if x < 0.0 { alpha * x } else { x });
        Ok(vec![out(y)?])
    }
}

/// Gelu: `x·Φ(x)`, exactly (through erfc) or with the tanh approximation.
#[derive(Debug)]
struct Gelu {
    /// The tanh approximation instead of the exact erf form.
    tanh: bool,
}

/// Builds Gelu from its `approximate` attribute ("none" or "tanh").
fn gelu(attrs: &Attrs<'_>) -> Result<Arc<dyn TensorOp>, TensorError> {
    let tanh = match attrs.string("approximate")? {
        None | Some("none") => false,
        Some("tanh") => true,
        Some(other) => {
            return Err(attrs.error(
                "approximate",
                format!("must be \"none\" or \"tanh\", found {other:?}"),
            ))
        }
    };
    Ok(Arc::new(Gelu { tanh }))
}

impl TensorOp for Gelu {
    fn eval(&self, inputs: &Inputs<'_>) -> Result<Vec<Tensor>, TensorError> {
        let f = if self.tanh { gelu_tanh } else { gelu_exact };
        Ok(vec![out(inputs.f32(0)?.map(|&x| f(x)))?])
    }
}

/// `x·Φ(x) = x/2 · erfc(-x/√2)`, which keeps its relative accuracy in the
/// far negative tail (where `1 + erf` would cancel to zero).
fn gelu_exact(x: f32) -> f32 {
    if x == f32::NEG_INFINITY {
        return -0.0;
    }
    let x = f64::from(x);
    (0.5 * x * erfc(-x * std::f64::consts::FRAC_1_SQRT_2)) as f32
}

/// `x/2 · (1 + tanh(√(2/π)·(x + 0.044715·x³)))`, written as `x·σ(2u)`.
fn gelu_tanh(x: f32) -> f32 {
    if x == f32::NEG_INFINITY {
        return -0.0;
    }
    const SQRT_2_OVER_PI: f64 = 0.797_884_560_802_865_4;
    let x = f64::from(x);
    let u = SQRT_2_OVER_PI * (x + 0.044_715 * x * x * x);
    let two_u = 2.0 * u;
    let s = if two_u >= 0.0 {
        1.0 / (1.0 + (-two_u).exp())
    } else {
        let e = two_u.exp();
        e / (1.0 + e)
    };
    (x * s) as f32
}

/// The complementary error function `1 - erf(z)` in f64.
///
/// Below z = 2.5 it is `1 - erf(z)` with erf from its all-positive series
/// (so no cancellation inside the sum: about 1e-15 relative), which leaves
/// erfc ≥ 4e-4 there with ~1e-12 relative error; from 2.5 up it evaluates
/// Laplace's continued fraction
/// `erfc(z) = e^{-z²}/√π · 1/(z + (1/2)/(z + 1/(z + (3/2)/(z + …))))`
/// from the back, which at z ≥ 2.5 reaches double precision within 50
/// terms. Negative arguments use `erfc(-z) = 2 - erfc(z)`.
pub(super) fn erfc(z: f64) -> f64 {
    if z.is_nan() {
        return f64::NAN;
    }
    if z < 0.0 {
        return 2.0 - erfc(-z);
    }
    if z < 2.5 {
        return 1.0 - erf_series(z);
    }
    if z > 27.3 {
        // e^{-z²} underflows f64 past here.
        return 0.0;
    }
    let mut t = z;
    for n in (1..=50).rev() {
        t = z + f64::from(n) * 0.5 / t;
    }
    (-z * z).exp() / (std::f64::consts::PI.sqrt() * t)
}

/// erf(z) for 0 ≤ z < 2.5 by the series
/// `erf(z) = 2/√π · e^{-z²} · Σ (2z²)ⁿ z / (1·3·…·(2n+1))`, whose terms are
/// all positive, summed until they stop mattering.
fn erf_series(z: f64) -> f64 {
    let z2 = z * z;
    let mut term = z;
    let mut sum = z;
    for n in 1..200 {
        term *= 2.0 * z2 / f64::from(2 * n + 1);
        sum += term;
        if term < 1e-17 * sum {
            break;
        }
    }
    sum * (-z2).exp() * std::f64::consts::FRAC_2_SQRT_PI
}

/// Softmax or LogSoftmax along one axis (opset 13).
#[derive(Debug)]
struct Softmax {
    /// The normalized axis (default -1).
    axis: i64,
    /// LogSoftmax instead of Softmax.
    log: bool,
}

/// Builds Softmax (or, with `log`, LogSoftmax) from its `axis` attribute.
fn softmax(attrs: &Attrs<'_>, log: bool) -> Result<Arc<dyn TensorOp>, TensorError> {
    Ok(Arc::new(Softmax {
        axis: attrs.int_or("axis", -1)?,
        log,
    }))
}

impl TensorOp for Softmax {
    fn eval(&self, inputs: &Inputs<'_>) -> Result<Vec<Tensor>, TensorError> {
        let x = inputs.f32(0)?;
        let axis = norm_axis(inputs.op, "axis", self.axis, x.ndim())?;
        Ok(vec![out(softmax_along(x, axis, self.log))?])
    }
}

/// The softmax (or, with `log`, the log-softmax) of `x` along `axis`, which
/// must be one of its axes. Each lane has its maximum subtracted first; a
/// lane holding NaN comes out all NaN, a lane of all `-inf` all NaN too (as
/// numpy computes it).
pub(super) fn softmax_along(x: &ArcArrayD<f32>, axis: usize, log: bool) -> ArrayD<f32> {
    let mut y = x.to_owned();
    for mut lane in y.lanes_mut(Axis(axis)) {
        let max = lane.fold(f32::NEG_INFINITY, |m, &v| {
            if v.is_nan() || m.is_nan() {
                f32::NAN
            } else {
                m.max(v)
            }
        });
        lane.mapv_inplace(|v| v - max);
        if log {
            let sum: f32 = lane.iter().map(|v| v.exp()).sum();
            let log_sum = sum.ln();
            lane.mapv_inplace(|v| v - log_sum);
        } else {
            lane.mapv_inplace(f32::exp);
            let sum: f32 = lane.sum();
            lane.mapv_inplace(|v| v / sum);
        }
    }
    y
}
