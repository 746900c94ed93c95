//! Cast, CastLike, Constant, ConstantOfShape: ops that make tensors or change their element type.
//!
//! Conversions (the element types are f32, i64 and bool):
//! * f32 → i64 truncates toward zero and saturates at the i64 range; NaN
//!   becomes 0 (Rust's `as`; ONNX leaves out-of-range casts undefined).
//! * f32 / i64 → bool is `x != 0` (so NaN is true, as in numpy).
//! * bool → f32 / i64 is 1 or 0; i64 → f32 rounds to the nearest f32.
//! * A cast to the input's own type shares the input.
//!
//! Cast's `saturate` attribute only concerns float8 targets, which the
//! backend does not have, so it is accepted and ignored.

use nodeflow_engine::sync::Arc;

use ndarray::{ArrayD, IxDyn};

use super::op::{out, to_shape, Attrs, Build, Inputs, TensorOp};
use super::shape::{by_dtype, shape_input};
use crate::tensor::{check_shape, DType, Element, Tensor, TensorError};

/// The op types of this family and their builders.
pub(super) const OPS: &[(&str, Build)] = &[
    ("Cast", cast),
    ("CastLike", |_| Ok(Arc::new(CastLike))),
    ("Constant", constant),
    ("ConstantOfShape", constant_of_shape),
];

/// The element type an ONNX `TensorProto.DataType` code names, if the
/// backend has it.
fn dtype_of_code(attrs: &Attrs<'_>, name: &str, code: i64) -> Result<DType, TensorError> {
    const NAMES: [&str; 24] = [
        "UNDEFINED",
        "FLOAT",
        "UINT8",
        "INT8",
        "UINT16",
        "INT16",
        "INT32",
        "INT64",
        "STRING",
        "BOOL",
        "FLOAT16",
        "DOUBLE",
        "UINT32",
        "UINT64",
        "COMPLEX64",
        "COMPLEX128",
        "BFLOAT16",
        "FLOAT8E4M3FN",
        "FLOAT8E4M3FNUZ",
        "FLOAT8E5M2",
        "FLOAT8E5M2FNUZ",
        "UINT4",
        "INT4",
        "FLOAT4E2M1",
    ];
    match code {
        1 => Ok(DType::F32),
        7 => Ok(DType::I64),
        9 => Ok(DType::Bool),
        _ => {
            let known = usize::try_from(code).ok().and_then(|c| NAMES.get(c));
            Err(attrs.error(
                name,
                format!(
                    "unsupported target type {code} ({}); the CPU backend casts to \
                     FLOAT (1), INT64 (7) or BOOL (9)",
                    known.copied().unwrap_or("unknown")
                ),
            ))
        }
    }
}

/// `tensor` converted elementwise to `to` (see the module docs for the rules).
fn convert(tensor: &Tensor, to: DType) -> Result<Tensor, TensorError> {
    fn map<A: Element, B: Element>(tensor: &Tensor, f: impl Fn(A) -> B) -> Option<ArrayD<B>> {
        tensor.array::<A>().map(|a| a.map(|&x| f(x)))
    }
    let from = tensor.dtype();
    let failed = || TensorError::DType {
        op: "Cast",
        input: 0,
        found: from,
        expected: from.name(),
    };
    match (from, to) {
        _ if from == to => Ok(tensor.clone()),
        (DType::F32, DType::I64) => out(map(tensor, |x: f32| x as i64).ok_or_else(failed)?),
        (DType::F32, DType::Bool) => out(map(tensor, |x: f32| x != 0.0).ok_or_else(failed)?),
        (DType::I64, DType::F32) => out(map(tensor, |x: i64| x as f32).ok_or_else(failed)?),
        (DType::I64, DType::Bool) => out(map(tensor, |x: i64| x != 0).ok_or_else(failed)?),
        (DType::Bool, DType::F32) => {
            out(map(tensor, |x: bool| f32::from(u8::from(x))).ok_or_else(failed)?)
        }
        (DType::Bool, DType::I64) => out(map(tensor, |x: bool| i64::from(x)).ok_or_else(failed)?),
        _ => Err(failed()),
    }
}

/// Cast: input 0 converted to the type the `to` attribute names
/// (1 FLOAT, 7 INT64, 9 BOOL).
#[derive(Debug)]
struct Cast {
    to: DType,
}

fn cast(attrs: &Attrs<'_>) -> Result<Arc<dyn TensorOp>, TensorError> {
    let code = attrs
        .int("to")?
        .ok_or_else(|| attrs.error("to", "is required"))?;
    Ok(Arc::new(Cast {
        to: dtype_of_code(attrs, "to", code)?,
    }))
}

impl TensorOp for Cast {
    fn eval(&self, inputs: &Inputs<'_>) -> Result<Vec<Tensor>, TensorError> {
        Ok(vec![convert(inputs.get(0)?, self.to)?])
    }
}

/// CastLike: input 0 converted to the element type of input 1.
#[derive(Debug)]
struct CastLike;

impl TensorOp for CastLike {
    fn eval(&self, inputs: &Inputs<'_>) -> Result<Vec<Tensor>, TensorError> {
        let to = inputs.get(1)?.dtype();
        Ok(vec![convert(inputs.get(0)?, to)?])
    }
}

/// Constant: the tensor its one value attribute holds, built at install.
#[derive(Debug)]
struct Constant {
    value: Tensor,
}

fn constant(attrs: &Attrs<'_>) -> Result<Arc<dyn TensorOp>, TensorError> {
    const VALUES: [&str; 5] = [
        "value",
        "value_float",
        "value_floats",
        "value_int",
        "value_ints",
    ];
    for name in ["sparse_value", "value_string", "value_strings"] {
        if attrs.has(name) {
            return Err(attrs.error(
                name,
                "unsupported: the CPU backend has no sparse or string tensors",
            ));
        }
    }
    let given: Vec<&str> = VALUES.into_iter().filter(|n| attrs.has(n)).collect();
    let name = match given.as_slice() {
        [name] => *name,
        [] => {
            return Err(attrs.error(
                "value",
                format!("Constant needs exactly one of {VALUES:?}, and none is given"),
            ))
        }
        [_, second, ..] => {
            return Err(attrs.error(
                second,
                format!("Constant takes exactly one of {VALUES:?}, but {given:?} are given"),
            ))
        }
    };
    let missing = || attrs.error(name, "is absent");
    let value = match name {
        "value" => attrs.tensor(name)?.ok_or_else(missing)?,
        "value_float" => Tensor::scalar_f32(attrs.float(name)?.ok_or_else(missing)?),
        "value_floats" => {
            let v = attrs.floats(name)?.ok_or_else(missing)?;
            Tensor::from_f32(vec![v.len()], v)?
        }
        "value_int" => Tensor::scalar_i64(attrs.int(name)?.ok_or_else(missing)?),
        _ => {
            let v = attrs.ints(name)?.ok_or_else(missing)?;
            Tensor::from_i64(vec![v.len()], v)?
        }
    };
    Ok(Arc::new(Constant { value }))
}

impl TensorOp for Constant {
    fn eval(&self, _: &Inputs<'_>) -> Result<Vec<Tensor>, TensorError> {
        Ok(vec![self.value.clone()])
    }

    fn work(&self, _: &Inputs<'_>) -> u64 {
        1
    }
}

/// ConstantOfShape: a tensor of the shape in input 0 (1-D i64) filled with
/// the one element of the `value` attribute (default f32 0).
#[derive(Debug)]
struct ConstantOfShape {
    fill: Tensor,
}

fn constant_of_shape(attrs: &Attrs<'_>) -> Result<Arc<dyn TensorOp>, TensorError> {
    let fill = match attrs.tensor("value")? {
        None => Tensor::scalar_f32(0.0),
        Some(t) if t.len() == 1 => t,
        Some(t) => {
            return Err(attrs.error(
                "value",
                format!(
                    "must hold exactly one element, but has shape {:?}",
                    t.shape()
                ),
            ))
        }
    };
    Ok(Arc::new(ConstantOfShape { fill }))
}

impl TensorOp for ConstantOfShape {
    fn eval(&self, inputs: &Inputs<'_>) -> Result<Vec<Tensor>, TensorError> {
        let shape = to_shape(inputs, 0, &shape_input(inputs, 0)?)?;
        check_shape(&shape)?;
        let result = by_dtype!(self.fill.dtype(), T => {
            let value = self
                .fill
                .array::<T>()
                .and_then(|a| a.iter().next().copied())
                .ok_or_else(|| inputs.bad(0, "the fill value is missing"))?;
            out(ArrayD::from_elem(IxDyn(&shape), value))?
        });
        Ok(vec![result])
    }

    fn work(&self, inputs: &Inputs<'_>) -> u64 {
        inputs
            .opt(0)
            .and_then(Tensor::as_i64)
            .filter(|a| a.len() <= crate::tensor::MAX_RANK)
            .map_or(1, |a| {
                a.iter()
                    .fold(1u64, |acc, &d| acc.saturating_mul(d.max(0) as u64))
            })
    }
}
