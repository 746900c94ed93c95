//! Elementwise arithmetic: Add, Sub, Mul, Div, Pow, Max, Min (numpy broadcasting), Neg, Abs, Sqrt, Exp, Log, Reciprocal, Clip.
//!
//! Element types: f32 for all; i64 too for Add, Sub, Mul, Div, Max, Min,
//! Neg, Abs, Clip and Pow (whose exponent may be the other type, as ONNX
//! allows). Integer arithmetic wraps on overflow (two's complement, like
//! ONNX runtimes) and an integer division by zero is a typed error. Max and
//! Min propagate NaN, as numpy's `maximum` / `minimum` do.

use nodeflow_engine::sync::Arc;

use ndarray::ArrayD;

use super::broadcast::{binary, map2};
use super::op::{out, Attrs, Build, Inputs, TensorOp};
use crate::tensor::{DType, Tensor, TensorError};

/// The op types of this family and their builders.
pub(super) const OPS: &[(&str, Build)] = &[
    ("Add", |a| arith(a, Arith::Add)),
    ("Sub", |a| arith(a, Arith::Sub)),
    ("Mul", |a| arith(a, Arith::Mul)),
    ("Div", |a| arith(a, Arith::Div)),
    ("Pow", |_| Ok(Arc::new(Pow))),
    ("Max", |a| extreme(a, true)),
    ("Min", |a| extreme(a, false)),
    ("Neg", |a| unary(a, |x| -x, Some(i64::wrapping_neg))),
    ("Abs", |a| unary(a, f32::abs, Some(i64::wrapping_abs))),
    ("Sqrt", |a| unary(a, f32::sqrt, None)),
    ("Exp", |a| unary(a, f32::exp, None)),
    ("Log", |a| unary(a, f32::ln, None)),
    ("Reciprocal", |a| unary(a, f32::recip, None)),
    ("Clip", clip),
];

#[derive(Clone, Copy, Debug)]
enum Arith {
    Add,
    Sub,
    Mul,
    Div,
}

#[derive(Debug)]
struct ArithOp {
    kind: Arith,
}

fn arith(_: &Attrs<'_>, kind: Arith) -> Result<Arc<dyn TensorOp>, TensorError> {
    Ok(Arc::new(ArithOp { kind }))
}

/// The error for a second input whose type differs from the first's.
pub(super) fn same_type(inputs: &Inputs<'_>, index: usize) -> Result<DType, TensorError> {
    let first = inputs.get(0)?.dtype();
    let other = inputs.get(index)?.dtype();
    if first != other {
        return Err(TensorError::DType {
            op: inputs.op,
            input: index,
            found: other,
            expected: first.name(),
        });
    }
    Ok(first)
}

/// The error for an element type an op does not take.
pub(super) fn unsupported(
    inputs: &Inputs<'_>,
    index: usize,
    expected: &'static str,
) -> TensorError {
    TensorError::DType {
        op: inputs.op,
        input: index,
        found: inputs.opt(index).map_or(DType::F32, Tensor::dtype),
        expected,
    }
}

impl TensorOp for ArithOp {
    fn eval(&self, inputs: &Inputs<'_>) -> Result<Vec<Tensor>, TensorError> {
        let result = match same_type(inputs, 1)? {
            DType::F32 => out(match self.kind {
                Arith::Add => binary(inputs, |x: f32, y: f32| x + y)?,
                Arith::Sub => binary(inputs, |x: f32, y: f32| x - y)?,
                Arith::Mul => binary(inputs, |x: f32, y: f32| x * y)?,
                Arith::Div => binary(inputs, |x: f32, y: f32| x / y)?,
            })?,
            DType::I64 => out(match self.kind {
                Arith::Add => binary(inputs, i64::wrapping_add)?,
                Arith::Sub => binary(inputs, i64::wrapping_sub)?,
                Arith::Mul => binary(inputs, i64::wrapping_mul)?,
                Arith::Div => {
                    if inputs.array::<i64>(1)?.iter().any(|&d| d == 0) {
                        return Err(inputs.bad(1, "integer division by zero"));
                    }
                    binary(inputs, i64::wrapping_div)?
                }
            })?,
            _ => return Err(unsupported(inputs, 0, "float32 or int64")),
        };
        Ok(vec![result])
    }
}

#[derive(Debug)]
struct Pow;

impl TensorOp for Pow {
    fn eval(&self, inputs: &Inputs<'_>) -> Result<Vec<Tensor>, TensorError> {
        let base = inputs.get(0)?.dtype();
        let exponent = inputs.get(1)?.dtype();
        let result = match (base, exponent) {
            (DType::F32, DType::F32) => out(binary(inputs, f32::powf)?)?,
            (DType::F32, DType::I64) => out(binary(inputs, |x: f32, y: i64| x.powf(y as f32))?)?,
            (DType::I64, DType::I64) => out(binary(inputs, |x: i64, y: i64| {
                (x as f64).powf(y as f64) as i64
            })?)?,
            (DType::I64, DType::F32) => out(binary(inputs, |x: i64, y: f32| {
                (x as f64).powf(f64::from(y)) as i64
            })?)?,
            (DType::Bool, _) => return Err(unsupported(inputs, 0, "float32 or int64")),
            _ => return Err(unsupported(inputs, 1, "float32 or int64")),
        };
        Ok(vec![result])
    }
}

#[derive(Debug)]
struct Extreme {
    op: &'static str,
    max: bool,
}

fn extreme(attrs: &Attrs<'_>, max: bool) -> Result<Arc<dyn TensorOp>, TensorError> {
    Ok(Arc::new(Extreme { op: attrs.op, max }))
}

impl Extreme {
    fn fold<T: crate::tensor::Element>(
        &self,
        inputs: &Inputs<'_>,
        pick: impl Fn(T, T) -> T + Copy,
    ) -> Result<ArrayD<T>, TensorError> {
        let mut acc = inputs.array::<T>(0)?.to_owned();
        for index in 1..inputs.len() {
            same_type(inputs, index)?;
            let next = inputs.array::<T>(index)?;
            let input = format!("inputs 0..={index}");
            acc = map2(self.op, &input, &acc.into_shared(), next, pick)?;
        }
        Ok(acc)
    }
}

impl TensorOp for Extreme {
    fn eval(&self, inputs: &Inputs<'_>) -> Result<Vec<Tensor>, TensorError> {
        let max = self.max;
        let result = match inputs.get(0)?.dtype() {
            DType::F32 => out(self.fold(inputs, move |x: f32, y: f32| {
                if x.is_nan() || y.is_nan() {
                    f32::NAN
                } else if (y > x) == max {
                    y
                } else {
                    x
                }
            })?)?,
            DType::I64 => out(self.fold(
                inputs,
                move |x: i64, y: i64| {
                    if max {
                        x.max(y)
                    } else {
                        x.min(y)
                    }
                },
            )?)?,
            _ => return Err(unsupported(inputs, 0, "float32 or int64")),
        };
        Ok(vec![result])
    }
}

#[derive(Debug)]
struct Unary {
    f32: fn(f32) -> f32,
    i64: Option<fn(i64) -> i64>,
}

fn unary(
    _: &Attrs<'_>,
    f32: fn(f32) -> f32,
    i64: Option<fn(i64) -> i64>,
) -> Result<Arc<dyn TensorOp>, TensorError> {
    Ok(Arc::new(Unary { f32, i64 }))
}

impl TensorOp for Unary {
    fn eval(&self, inputs: &Inputs<'_>) -> Result<Vec<Tensor>, TensorError> {
        let input = inputs.get(0)?;
        let result = match (input.dtype(), self.i64) {
            (DType::F32, _) => out(inputs.f32(0)?.map(|&x| (self.f32)(x)))?,
            (DType::I64, Some(f)) => out(inputs.array::<i64>(0)?.map(|&x| f(x)))?,
            (_, Some(_)) => return Err(unsupported(inputs, 0, "float32 or int64")),
            (_, None) => return Err(unsupported(inputs, 0, "float32")),
        };
        Ok(vec![result])
    }
}

/// Clip: bounds from inputs 1 and 2 (opset 11+) or, in older graphs, the
/// `min` / `max` attributes; an absent bound does not clip.
#[derive(Debug)]
struct Clip {
    min: Option<f32>,
    max: Option<f32>,
}

fn clip(attrs: &Attrs<'_>) -> Result<Arc<dyn TensorOp>, TensorError> {
    Ok(Arc::new(Clip {
        min: attrs.float("min")?,
        max: attrs.float("max")?,
    }))
}

impl Clip {
    fn bound<T: crate::tensor::Element>(
        inputs: &Inputs<'_>,
        index: usize,
    ) -> Result<Option<T>, TensorError> {
        let Some(tensor) = inputs.opt(index) else {
            return Ok(None);
        };
        same_type(inputs, index)?;
        if tensor.len() != 1 {
            return Err(inputs.bad(index, "a Clip bound must be a single value"));
        }
        Ok(inputs.array::<T>(index)?.iter().next().copied())
    }
}

impl TensorOp for Clip {
    fn eval(&self, inputs: &Inputs<'_>) -> Result<Vec<Tensor>, TensorError> {
        let result = match inputs.get(0)?.dtype() {
            DType::F32 => {
                let lo = Self::bound::<f32>(inputs, 1)?.or(self.min);
                let hi = Self::bound::<f32>(inputs, 2)?.or(self.max);
                out(inputs.f32(0)?.map(|&x| {
                    let x = lo.map_or(x, |lo| if x < lo { lo } else { x });
                    hi.map_or(x, |hi| if x > hi { hi } else { x })
                }))?
            }
            DType::I64 => {
                let lo = Self::bound::<i64>(inputs, 1)?;
                let hi = Self::bound::<i64>(inputs, 2)?;
                out(inputs.array::<i64>(0)?.map(|&x| {
                    let x = lo.map_or(x, |lo| x.max(lo));
                    hi.map_or(x, |hi| x.min(hi))
                }))?
            }
            _ => return Err(unsupported(inputs, 0, "float32 or int64")),
        };
        Ok(vec![result])
    }
}
