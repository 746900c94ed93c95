//! What every backend op is: a [`TensorOp`] built once from its attributes, and the helpers ops share to read attributes and inputs.
//!
//! An op type is registered as a [`Build`] function: it parses and checks
//! the op's attributes ([`Attrs`]) when the graph is installed, so a bad
//! attribute refuses the install instead of failing every execution, and
//! returns the configured op. [`TensorOp::eval`] then reads its inputs
//! through [`Inputs`], whose accessors turn an absent input or a wrong
//! element type into a typed [`TensorError`] naming the op and the input.

use nodeflow_engine::sync::Arc;
use std::fmt;

use nodeflow_engine::{Attribute, AttributeValue};

use crate::tensor::{ArcArrayD, DType, Element, Tensor, TensorError};

/// A configured op: its attributes parsed, ready to run on inputs.
pub(crate) trait TensorOp: Send + Sync + fmt::Debug {
    /// Runs the op on `inputs` (in declaration order; absent optional
    /// inputs are `None`) and returns its outputs in declaration order.
    fn eval(&self, inputs: &Inputs<'_>) -> Result<Vec<Tensor>, TensorError>;

    /// The op's work on `inputs`, in element operations (multiply-adds for
    /// a matrix product); the backend runs ops above its inline limit on
    /// the compute pool. The default counts input elements.
    fn work(&self, inputs: &Inputs<'_>) -> u64 {
        inputs.slots.iter().flatten().map(|t| t.len() as u64).sum()
    }
}

/// Builds an op of one type from its attributes.
pub(crate) type Build = fn(&Attrs<'_>) -> Result<Arc<dyn TensorOp>, TensorError>;

/// An op's attributes, read with typed errors naming the op.
pub(crate) struct Attrs<'a> {
    /// The op type, for error messages.
    pub op: &'static str,
    attributes: &'a [Attribute],
    outputs: Option<usize>,
}

impl<'a> Attrs<'a> {
    pub(crate) fn new(op: &'static str, attributes: &'a [Attribute]) -> Self {
        Self {
            op,
            attributes,
            outputs: None,
        }
    }

    /// The same attributes for an op that declares `outputs` outputs.
    pub(crate) fn with_outputs(mut self, outputs: usize) -> Self {
        self.outputs = Some(outputs);
        self
    }

    /// How many outputs the op declares, when known (at install; `None`
    /// for an op reached by name alone). ONNX's `Split` without sizes
    /// splits into this many equal parts.
    pub(crate) fn outputs(&self) -> Option<usize> {
        self.outputs
    }

    fn find(&self, name: &str) -> Option<&'a AttributeValue> {
        self.attributes
            .iter()
            .find(|a| a.name == name)
            .map(|a| &a.value)
    }

    /// A typed attribute error.
    pub(crate) fn error(&self, name: &str, reason: impl Into<String>) -> TensorError {
        TensorError::BadAttribute {
            op: self.op,
            name: name.to_owned(),
            reason: reason.into(),
        }
    }

    fn wrong(&self, name: &str, expected: &str, found: &AttributeValue) -> TensorError {
        self.error(name, format!("expected {expected}, found {}", found.kind()))
    }

    /// An int attribute, if present.
    pub(crate) fn int(&self, name: &str) -> Result<Option<i64>, TensorError> {
        match self.find(name) {
            None => Ok(None),
            Some(AttributeValue::Int(v)) => Ok(Some(*v)),
            Some(other) => Err(self.wrong(name, "an int", other)),
        }
    }

    /// An int attribute, or `default`.
    pub(crate) fn int_or(&self, name: &str, default: i64) -> Result<i64, TensorError> {
        Ok(self.int(name)?.unwrap_or(default))
    }

    /// A 0/1 int attribute read as a flag, or `default`.
    pub(crate) fn flag_or(&self, name: &str, default: bool) -> Result<bool, TensorError> {
        match self.int(name)? {
            None => Ok(default),
            Some(0) => Ok(false),
            Some(1) => Ok(true),
            Some(v) => Err(self.error(name, format!("must be 0 or 1, found {v}"))),
        }
    }

    /// A float attribute, if present (an int is accepted and converted).
    pub(crate) fn float(&self, name: &str) -> Result<Option<f32>, TensorError> {
        match self.find(name) {
            None => Ok(None),
            Some(AttributeValue::Float(v)) => Ok(Some(*v)),
            Some(AttributeValue::Int(v)) => Ok(Some(*v as f32)),
            Some(other) => Err(self.wrong(name, "a float", other)),
        }
    }

    /// A float attribute, or `default`.
    pub(crate) fn float_or(&self, name: &str, default: f32) -> Result<f32, TensorError> {
        Ok(self.float(name)?.unwrap_or(default))
    }

    /// An ints attribute, if present.
    pub(crate) fn ints(&self, name: &str) -> Result<Option<Vec<i64>>, TensorError> {
        match self.find(name) {
            None => Ok(None),
            Some(AttributeValue::Ints(v)) => Ok(Some(v.clone())),
            Some(AttributeValue::Int(v)) => Ok(Some(vec![*v])),
            Some(other) => Err(self.wrong(name, "a list of ints", other)),
        }
    }

    /// A floats attribute, if present.
    pub(crate) fn floats(&self, name: &str) -> Result<Option<Vec<f32>>, TensorError> {
        match self.find(name) {
            None => Ok(None),
            Some(AttributeValue::Floats(v)) => Ok(Some(v.clone())),
            Some(AttributeValue::Float(v)) => Ok(Some(vec![*v])),
            Some(other) => Err(self.wrong(name, "a list of floats", other)),
        }
    }

    /// A string attribute, if present.
    pub(crate) fn string(&self, name: &str) -> Result<Option<&'a str>, TensorError> {
        match self.find(name) {
            None => Ok(None),
            Some(AttributeValue::String(v)) => Ok(Some(v.as_str())),
            Some(other) => Err(self.wrong(name, "a string", other)),
        }
    }

    /// A tensor attribute, if present.
    pub(crate) fn tensor(&self, name: &str) -> Result<Option<Tensor>, TensorError> {
        match self.find(name) {
            None => Ok(None),
            Some(AttributeValue::Tensor(proto)) => Tensor::from_proto(proto)
                .map(Some)
                .map_err(|e| self.error(name, e.to_string())),
            Some(other) => Err(self.wrong(name, "a tensor", other)),
        }
    }

    /// Whether the attribute is present at all.
    pub(crate) fn has(&self, name: &str) -> bool {
        self.find(name).is_some()
    }
}

/// One dispatch's input tensors, read with typed errors naming the op.
pub(crate) struct Inputs<'a> {
    /// The op type, for error messages.
    pub op: &'static str,
    /// The inputs in declaration order; `None` for an absent optional input.
    pub slots: &'a [Option<Tensor>],
}

impl<'a> Inputs<'a> {
    pub(crate) fn new(op: &'static str, slots: &'a [Option<Tensor>]) -> Self {
        Self { op, slots }
    }

    /// How many inputs the op was given (present or not).
    pub(crate) fn len(&self) -> usize {
        self.slots.len()
    }

    /// Input `index` if present.
    pub(crate) fn opt(&self, index: usize) -> Option<&'a Tensor> {
        self.slots.get(index).and_then(Option::as_ref)
    }

    /// Input `index`, required.
    pub(crate) fn get(&self, index: usize) -> Result<&'a Tensor, TensorError> {
        self.opt(index).ok_or(TensorError::MissingInput {
            op: self.op,
            input: index,
        })
    }

    /// Input `index` as an array of `T`, required.
    pub(crate) fn array<T: Element>(&self, index: usize) -> Result<&'a ArcArrayD<T>, TensorError> {
        let tensor = self.get(index)?;
        tensor.array::<T>().ok_or(TensorError::DType {
            op: self.op,
            input: index,
            found: tensor.dtype(),
            expected: T::DTYPE.name(),
        })
    }

    /// Input `index` as f32, required.
    pub(crate) fn f32(&self, index: usize) -> Result<&'a ArcArrayD<f32>, TensorError> {
        self.array::<f32>(index)
    }

    /// Input `index` as a list of ints (an i64 tensor of rank 0 or 1), if present.
    pub(crate) fn ints_opt(&self, index: usize) -> Result<Option<Vec<i64>>, TensorError> {
        let Some(tensor) = self.opt(index) else {
            return Ok(None);
        };
        let Some(array) = tensor.as_i64() else {
            return Err(TensorError::DType {
                op: self.op,
                input: index,
                found: tensor.dtype(),
                expected: DType::I64.name(),
            });
        };
        if array.ndim() > 1 {
            return Err(self.bad(index, "must be a scalar or a 1-D list of ints"));
        }
        Ok(Some(array.iter().copied().collect()))
    }

    /// Input `index` as a list of ints, required.
    pub(crate) fn ints(&self, index: usize) -> Result<Vec<i64>, TensorError> {
        self.ints_opt(index)?.ok_or(TensorError::MissingInput {
            op: self.op,
            input: index,
        })
    }

    /// A typed error about input `index`'s values.
    pub(crate) fn bad(&self, index: usize, reason: impl Into<String>) -> TensorError {
        TensorError::BadInput {
            op: self.op,
            input: index,
            shape: self
                .opt(index)
                .map(|t| t.shape().to_vec())
                .unwrap_or_default(),
            reason: reason.into(),
        }
    }
}

/// Resolves a possibly negative `axis` against `rank` (ONNX: `-rank..rank`).
pub(crate) fn norm_axis(
    op: &'static str,
    what: &str,
    axis: i64,
    rank: usize,
) -> Result<usize, TensorError> {
    let r = rank as i64;
    if axis < -r || axis >= r {
        return Err(TensorError::BadAttribute {
            op,
            name: what.to_owned(),
            reason: format!("axis {axis} is outside -{rank}..{rank} for a rank-{rank} input"),
        });
    }
    Ok(if axis < 0 { axis + r } else { axis } as usize)
}

/// Resolves a list of possibly negative axes against `rank`, refusing duplicates.
pub(crate) fn norm_axes(
    op: &'static str,
    what: &str,
    axes: &[i64],
    rank: usize,
) -> Result<Vec<usize>, TensorError> {
    let mut out = Vec::with_capacity(axes.len());
    for &axis in axes {
        let axis = norm_axis(op, what, axis, rank)?;
        if out.contains(&axis) {
            return Err(TensorError::BadAttribute {
                op,
                name: what.to_owned(),
                reason: format!("axis {axis} is named twice"),
            });
        }
        out.push(axis);
    }
    Ok(out)
}

/// Wraps a freshly computed array as a tensor (checking the size caps).
pub(crate) fn out<T: Element>(array: ndarray::ArrayD<T>) -> Result<Tensor, TensorError> {
    Tensor::from_array(array)
}

/// Converts a list of ONNX dims (i64) into a shape, refusing negatives.
pub(crate) fn to_shape(
    inputs: &Inputs<'_>,
    index: usize,
    dims: &[i64],
) -> Result<Vec<usize>, TensorError> {
    dims.iter()
        .map(|&d| {
            usize::try_from(d).map_err(|_| inputs.bad(index, format!("dimension {d} is negative")))
        })
        .collect()
}
