//! Comparison and selection ops: Equal, Greater, Less, GreaterOrEqual, LessOrEqual, Where, Not, And, Or, Xor.
//!
//! All broadcast their inputs numpy-style. Comparisons take two inputs of
//! one element type (f32 or i64; Equal takes bool too) and answer bool; a
//! NaN compares unequal and unordered to everything, as IEEE says. Where
//! picks from X or Y (any element type, the same for both) by a bool
//! condition. Not, And, Or and Xor take bool.

use nodeflow_engine::sync::Arc;

use ndarray::ArrayD;

use super::broadcast::{binary, broadcast_shapes, map3};
use super::math::{same_type, unsupported};
use super::op::{out, Attrs, Build, Inputs, TensorOp};
use super::shape::by_dtype;
use crate::tensor::{DType, Element, Tensor, TensorError};

/// The op types of this family and their builders.
pub(super) const OPS: &[(&str, Build)] = &[
    ("Equal", |a| compare(a, Cmp::Eq)),
    ("Greater", |a| compare(a, Cmp::Gt)),
    ("Less", |a| compare(a, Cmp::Lt)),
    ("GreaterOrEqual", |a| compare(a, Cmp::Ge)),
    ("LessOrEqual", |a| compare(a, Cmp::Le)),
    ("Where", |_| Ok(Arc::new(Where))),
    ("Not", |_| Ok(Arc::new(Not))),
    ("And", |a| logical(a, |x, y| x & y)),
    ("Or", |a| logical(a, |x, y| x | y)),
    ("Xor", |a| logical(a, |x, y| x ^ y)),
];

/// The work of an elementwise op over broadcast inputs: its output's
/// element count (the inputs' when they do not broadcast, for the error).
fn broadcast_work(inputs: &Inputs<'_>) -> u64 {
    let shapes: Vec<&[usize]> = inputs.slots.iter().flatten().map(Tensor::shape).collect();
    match broadcast_shapes(inputs.op, "inputs", &shapes) {
        Ok(shape) => shape.iter().product::<usize>() as u64,
        Err(_) => inputs.slots.iter().flatten().map(|t| t.len() as u64).sum(),
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Cmp {
    Eq,
    Gt,
    Lt,
    Ge,
    Le,
}

/// A comparison of inputs 0 and 1, broadcast, answering bool.
#[derive(Debug)]
struct Compare {
    kind: Cmp,
}

fn compare(_: &Attrs<'_>, kind: Cmp) -> Result<Arc<dyn TensorOp>, TensorError> {
    Ok(Arc::new(Compare { kind }))
}

impl Compare {
    fn run<T: Element>(&self, inputs: &Inputs<'_>) -> Result<ArrayD<bool>, TensorError> {
        match self.kind {
            Cmp::Eq => binary(inputs, |x: T, y: T| x == y),
            Cmp::Gt => binary(inputs, |x: T, y: T| x > y),
            Cmp::Lt => binary(inputs, |x: T, y: T| x < y),
            Cmp::Ge => binary(inputs, |x: T, y: T| x >= y),
            Cmp::Le => binary(inputs, |x: T, y: T| x <= y),
        }
    }
}

impl TensorOp for Compare {
    fn eval(&self, inputs: &Inputs<'_>) -> Result<Vec<Tensor>, TensorError> {
        let result = match (same_type(inputs, 1)?, self.kind) {
            (DType::F32, _) => self.run::<f32>(inputs)?,
            (DType::I64, _) => self.run::<i64>(inputs)?,
            (DType::Bool, Cmp::Eq) => self.run::<bool>(inputs)?,
            (DType::Bool, _) => return Err(unsupported(inputs, 0, "float32 or int64")),
        };
        Ok(vec![out(result)?])
    }

    fn work(&self, inputs: &Inputs<'_>) -> u64 {
        broadcast_work(inputs)
    }
}

/// Where: `X` where the condition (input 0, bool) holds, `Y` elsewhere;
/// all three broadcast together.
#[derive(Debug)]
struct Where;

impl TensorOp for Where {
    fn eval(&self, inputs: &Inputs<'_>) -> Result<Vec<Tensor>, TensorError> {
        let condition = inputs.array::<bool>(0)?;
        let x = inputs.get(1)?;
        let y = inputs.get(2)?;
        if x.dtype() != y.dtype() {
            return Err(TensorError::DType {
                op: inputs.op,
                input: 2,
                found: y.dtype(),
                expected: x.dtype().name(),
            });
        }
        let result = by_dtype!(x.dtype(), T => out(map3(
            inputs.op,
            "condition, X, Y",
            condition,
            inputs.array::<T>(1)?,
            inputs.array::<T>(2)?,
            |c, x: T, y: T| if c { x } else { y },
        )?)?);
        Ok(vec![result])
    }

    fn work(&self, inputs: &Inputs<'_>) -> u64 {
        broadcast_work(inputs)
    }
}

/// Not: the elementwise negation of a bool tensor.
#[derive(Debug)]
struct Not;

impl TensorOp for Not {
    fn eval(&self, inputs: &Inputs<'_>) -> Result<Vec<Tensor>, TensorError> {
        Ok(vec![out(inputs.array::<bool>(0)?.map(|&x| !x))?])
    }
}

/// And, Or, Xor: a logical operator over two bool inputs, broadcast.
#[derive(Debug)]
struct Logical {
    f: fn(bool, bool) -> bool,
}

fn logical(_: &Attrs<'_>, f: fn(bool, bool) -> bool) -> Result<Arc<dyn TensorOp>, TensorError> {
    Ok(Arc::new(Logical { f }))
}

impl TensorOp for Logical {
    fn eval(&self, inputs: &Inputs<'_>) -> Result<Vec<Tensor>, TensorError> {
        Ok(vec![out(binary(inputs, self.f)?)?])
    }

    fn work(&self, inputs: &Inputs<'_>) -> u64 {
        broadcast_work(inputs)
    }
}
