//! The [`Tensor`] slot value: a dense, row-major, n-dimensional array of f32, i64 or bool over ndarray, shared behind an `Arc`.
//!
//! A tensor is what the CPU backend's ops read and write and what Nodes
//! send each other to learn together. Cloning one bumps a reference count;
//! an op that changes a tensor it shares copies it first (copy-on-write,
//! through ndarray's [`ArcArray`]), so a tensor handed to another Node in
//! the same process is never copied and never seen changing.
//!
//! Element types: `f32` for model math, `i64` for indices, shapes and
//! labels, `bool` for masks (the output of ONNX's comparison ops). There is
//! no `f64`: training here is f32 end to end (the reference job's f64
//! numbers are matched within the tolerances), and every extra
//! element type multiplies the kernels each op needs.
//!
//! Invariants:
//! * Rank is at most [`MAX_RANK`] and the element count at most
//!   [`MAX_ELEMENTS`], checked by every constructor and by the decoder
//!   before it allocates.
//! * [`SlotValue::heap_bytes`] is elements × element size, fixed for the
//!   tensor's life (what a Node's byte budget is charged for it).
//! * `Tensor::decode(t.encode())` equals `t`; equality compares dtype, shape
//!   and elements, f32 by bit pattern (so NaN payloads survive a round trip
//!   and compare equal to themselves).

mod error;
mod wire;

use std::fmt;

use ndarray::{ArcArray, ArrayD, ArrayViewD, IxDyn};
use nodeflow_engine::{
    EncodeError, SlotValue, TensorElem, TensorProto, TypeTag, ValueDecodeError, ValueRegistry,
};

pub use error::TensorError;
pub use wire::TensorDecodeError;

/// An ndarray array of any rank whose buffer is shared behind an `Arc`.
pub type ArcArrayD<T> = ArcArray<T, IxDyn>;

/// Most axes a tensor may have (ONNX sets no limit; models here use ≤ 6).
pub const MAX_RANK: usize = 16;

/// Most elements a tensor may hold: 2²⁸ (1 GiB of f32). Shapes past it are
/// refused with a typed error before anything is allocated, so a hostile
/// `Expand` or `ConstantOfShape` cannot exhaust memory.
pub const MAX_ELEMENTS: usize = 1 << 28;

/// The element type of a [`Tensor`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DType {
    /// 32-bit IEEE float.
    F32,
    /// 64-bit signed integer.
    I64,
    /// Boolean.
    Bool,
}

impl DType {
    /// ONNX's name for the type (`float32`, `int64`, `bool`).
    pub fn name(self) -> &'static str {
        match self {
            Self::F32 => "float32",
            Self::I64 => "int64",
            Self::Bool => "bool",
        }
    }

    /// Bytes one element takes in memory and on the wire.
    pub fn size(self) -> usize {
        match self {
            Self::F32 => 4,
            Self::I64 => 8,
            Self::Bool => 1,
        }
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An element type a [`Tensor`] can hold: `f32`, `i64` or `bool`.
///
/// Sealed: the set of element types is the backend's, not the user's.
pub trait Element:
    Copy + PartialEq + PartialOrd + fmt::Debug + Send + Sync + 'static + sealed::Sealed
{
    /// The matching [`DType`].
    const DTYPE: DType;

    /// Wraps a shared array as a tensor.
    fn wrap(array: ArcArrayD<Self>) -> Tensor;

    /// The tensor's array, if its elements are `Self`.
    fn array(tensor: &Tensor) -> Option<&ArcArrayD<Self>>;
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for f32 {}
    impl Sealed for i64 {}
    impl Sealed for bool {}
}

impl Element for f32 {
    const DTYPE: DType = DType::F32;
    fn wrap(array: ArcArrayD<Self>) -> Tensor {
        Tensor(Repr::F32(array))
    }
    fn array(tensor: &Tensor) -> Option<&ArcArrayD<Self>> {
        match &tensor.0 {
            Repr::F32(a) => Some(a),
            _ => None,
        }
    }
}

impl Element for i64 {
    const DTYPE: DType = DType::I64;
    fn wrap(array: ArcArrayD<Self>) -> Tensor {
        Tensor(Repr::I64(array))
    }
    fn array(tensor: &Tensor) -> Option<&ArcArrayD<Self>> {
        match &tensor.0 {
            Repr::I64(a) => Some(a),
            _ => None,
        }
    }
}

impl Element for bool {
    const DTYPE: DType = DType::Bool;
    fn wrap(array: ArcArrayD<Self>) -> Tensor {
        Tensor(Repr::Bool(array))
    }
    fn array(tensor: &Tensor) -> Option<&ArcArrayD<Self>> {
        match &tensor.0 {
            Repr::Bool(a) => Some(a),
            _ => None,
        }
    }
}

/// A dense n-dimensional array of f32, i64 or bool, shared and cheap to
/// clone; the value the CPU backend's ops consume and produce.
#[derive(Clone)]
pub struct Tensor(Repr);

#[derive(Clone)]
enum Repr {
    F32(ArcArrayD<f32>),
    I64(ArcArrayD<i64>),
    Bool(ArcArrayD<bool>),
}

impl Tensor {
    /// Tag `0x0010`: the tensor's stable type tag on the wire and in snapshots.
    pub const TAG: TypeTag = TypeTag::new(0x0010);

    /// An f32 tensor of `shape` from row-major `data`.
    pub fn from_f32(shape: Vec<usize>, data: Vec<f32>) -> Result<Self, TensorError> {
        Self::from_vec(shape, data)
    }

    /// An i64 tensor of `shape` from row-major `data`.
    pub fn from_i64(shape: Vec<usize>, data: Vec<i64>) -> Result<Self, TensorError> {
        Self::from_vec(shape, data)
    }

    /// A bool tensor of `shape` from row-major `data`.
    pub fn from_bool(shape: Vec<usize>, data: Vec<bool>) -> Result<Self, TensorError> {
        Self::from_vec(shape, data)
    }

    /// A tensor of `shape` from row-major `data` of any [`Element`] type.
    pub fn from_vec<T: Element>(shape: Vec<usize>, data: Vec<T>) -> Result<Self, TensorError> {
        let count = check_shape(&shape)?;
        if count != data.len() {
            return Err(TensorError::DataLength {
                shape,
                len: data.len(),
            });
        }
        let len = data.len();
        // The length was checked against the shape just above.
        let array = ArrayD::from_shape_vec(IxDyn(&shape), data)
            .map_err(|_| TensorError::DataLength { shape, len })?;
        Ok(T::wrap(array.into_shared()))
    }

    /// A rank-0 f32 tensor.
    pub fn scalar_f32(value: f32) -> Self {
        f32::wrap(ArrayD::from_elem(IxDyn(&[]), value).into_shared())
    }

    /// A rank-0 i64 tensor.
    pub fn scalar_i64(value: i64) -> Self {
        i64::wrap(ArrayD::from_elem(IxDyn(&[]), value).into_shared())
    }

    /// Wraps an owned ndarray array (no copy), checking rank and size.
    pub fn from_array<T: Element>(array: ArrayD<T>) -> Result<Self, TensorError> {
        check_shape(array.shape())?;
        Ok(T::wrap(array.into_shared()))
    }

    /// Wraps a shared ndarray array (no copy), checking rank and size.
    pub fn from_shared<T: Element>(array: ArcArrayD<T>) -> Result<Self, TensorError> {
        check_shape(array.shape())?;
        Ok(T::wrap(array))
    }

    /// The element type.
    pub fn dtype(&self) -> DType {
        match &self.0 {
            Repr::F32(_) => DType::F32,
            Repr::I64(_) => DType::I64,
            Repr::Bool(_) => DType::Bool,
        }
    }

    /// The extent of each axis (empty for a scalar).
    pub fn shape(&self) -> &[usize] {
        match &self.0 {
            Repr::F32(a) => a.shape(),
            Repr::I64(a) => a.shape(),
            Repr::Bool(a) => a.shape(),
        }
    }

    /// The number of axes.
    pub fn rank(&self) -> usize {
        self.shape().len()
    }

    /// The number of elements.
    pub fn len(&self) -> usize {
        self.shape().iter().product()
    }

    /// Whether the tensor has no elements (some axis is 0).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The shared array, if the elements are `T`.
    pub fn array<T: Element>(&self) -> Option<&ArcArrayD<T>> {
        T::array(self)
    }

    /// A view of the elements, if they are `T`.
    pub fn view<T: Element>(&self) -> Option<ArrayViewD<'_, T>> {
        T::array(self).map(|a| a.view())
    }

    /// The f32 array, if this is an f32 tensor.
    pub fn as_f32(&self) -> Option<&ArcArrayD<f32>> {
        self.array::<f32>()
    }

    /// The i64 array, if this is an i64 tensor.
    pub fn as_i64(&self) -> Option<&ArcArrayD<i64>> {
        self.array::<i64>()
    }

    /// The bool array, if this is a bool tensor.
    pub fn as_bool(&self) -> Option<&ArcArrayD<bool>> {
        self.array::<bool>()
    }

    /// The elements as an owned array: no copy when this tensor is the
    /// buffer's only owner, a copy otherwise (copy-on-write).
    pub fn into_array<T: Element>(self) -> Option<ArrayD<T>> {
        let shared = T::array(&self)?.clone();
        drop(self);
        Some(shared.into_owned())
    }

    /// The elements in row-major order, if they are f32.
    pub fn to_f32_vec(&self) -> Option<Vec<f32>> {
        self.to_vec::<f32>()
    }

    /// The elements in row-major order, if they are i64.
    pub fn to_i64_vec(&self) -> Option<Vec<i64>> {
        self.to_vec::<i64>()
    }

    /// The elements in row-major order, if they are bool.
    pub fn to_bool_vec(&self) -> Option<Vec<bool>> {
        self.to_vec::<bool>()
    }

    /// The elements in row-major order, if they are `T`.
    pub fn to_vec<T: Element>(&self) -> Option<Vec<T>> {
        T::array(self).map(|a| a.iter().copied().collect())
    }

    /// Whether two tensors share one buffer (a clone of each other that
    /// neither has written to since).
    pub fn shares_buffer_with(&self, other: &Tensor) -> bool {
        match (&self.0, &other.0) {
            (Repr::F32(a), Repr::F32(b)) => a.as_ptr() == b.as_ptr() && a.shape() == b.shape(),
            (Repr::I64(a), Repr::I64(b)) => a.as_ptr() == b.as_ptr() && a.shape() == b.shape(),
            (Repr::Bool(a), Repr::Bool(b)) => a.as_ptr() == b.as_ptr() && a.shape() == b.shape(),
            _ => false,
        }
    }

    /// Bytes the elements take (elements × element size).
    pub fn byte_len(&self) -> usize {
        self.len().saturating_mul(self.dtype().size())
    }

    /// The tensor an attribute carries.
    pub fn from_proto(proto: &TensorProto) -> Result<Self, TensorError> {
        let mut shape = Vec::with_capacity(proto.dims.len().min(MAX_RANK + 1));
        for &dim in &proto.dims {
            let dim = usize::try_from(dim).map_err(|_| TensorError::BadShape {
                reason: format!("dimension {dim} of a tensor attribute is negative"),
            })?;
            shape.push(dim);
        }
        match proto.elem {
            TensorElem::Int64 => Self::from_i64(shape, proto.int64_data.clone()),
            TensorElem::Bool => {
                Self::from_bool(shape, proto.int64_data.iter().map(|&v| v != 0).collect())
            }
            _ => Self::from_f32(shape, proto.data.clone()),
        }
    }

    /// The tensor as an attribute value.
    pub fn to_proto(&self) -> TensorProto {
        let dims = self.shape().iter().map(|&d| d as i64).collect();
        match &self.0 {
            Repr::F32(a) => TensorProto::new(dims, a.iter().copied().collect()),
            Repr::I64(a) => TensorProto::int64(dims, a.iter().copied().collect()),
            Repr::Bool(a) => TensorProto::boolean(dims, &a.iter().copied().collect::<Vec<_>>()),
        }
    }

    /// The tensor's byte form (see the wire module for the layout).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(wire::encoded_len(self));
        wire::encode(self, &mut out);
        out
    }

    /// Reads a tensor from its byte form, checking rank, element count and
    /// length before allocating; `max_bytes` caps the element bytes.
    pub fn decode(bytes: &[u8], max_bytes: usize) -> Result<Self, TensorDecodeError> {
        wire::decode(bytes, max_bytes)
    }

    /// Registers the tensor's decoder (under [`Tensor::TAG`]) in `registry`.
    pub fn register(registry: &mut ValueRegistry) -> Result<(), nodeflow_engine::RegistryError> {
        registry.register_reserved(Self::TAG, |bytes, cx| {
            let max = cx.limits().max_value_bytes;
            wire::decode(bytes, max)
                .map(|t| Box::new(t) as Box<dyn SlotValue>)
                .map_err(ValueDecodeError::from)
        })
    }
}

/// A registry with nodeflow's built-in values, [`Tensor`] and the codecs'
/// [`crate::Encoded`]: what a Node that receives model updates from other
/// processes, or restores snapshots holding them, decodes with.
pub fn tensor_registry() -> nodeflow_engine::sync::Arc<ValueRegistry> {
    let mut registry = ValueRegistry::with_builtins();
    // A fresh built-in registry has room and neither tag yet.
    let _ = Tensor::register(&mut registry);
    let _ = crate::roles::Encoded::register(&mut registry);
    nodeflow_engine::sync::Arc::new(registry)
}

/// Checks rank and element count of `shape`; returns the element count.
pub(crate) fn check_shape(shape: &[usize]) -> Result<usize, TensorError> {
    if shape.len() > MAX_RANK {
        return Err(TensorError::Rank {
            rank: shape.len(),
            cap: MAX_RANK,
        });
    }
    let count = shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .filter(|&n| n <= MAX_ELEMENTS);
    count.ok_or_else(|| TensorError::TooLarge {
        shape: shape.to_vec(),
        cap: MAX_ELEMENTS,
    })
}

impl SlotValue for Tensor {
    fn type_tag(&self) -> TypeTag {
        Self::TAG
    }

    fn clone_value(&self) -> Box<dyn SlotValue> {
        Box::new(self.clone())
    }

    fn encode(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        wire::encode(self, out);
        Ok(())
    }

    fn heap_bytes(&self) -> usize {
        self.byte_len()
    }

    fn eq_value(&self, other: &dyn SlotValue) -> bool {
        other.downcast_ref::<Tensor>().is_some_and(|o| o == self)
    }
}

impl PartialEq for Tensor {
    fn eq(&self, other: &Self) -> bool {
        match (&self.0, &other.0) {
            (Repr::F32(a), Repr::F32(b)) => {
                a.shape() == b.shape()
                    && a.iter()
                        .zip(b.iter())
                        .all(|(x, y)| x.to_bits() == y.to_bits())
            }
            (Repr::I64(a), Repr::I64(b)) => a == b,
            (Repr::Bool(a), Repr::Bool(b)) => a == b,
            _ => false,
        }
    }
}

impl fmt::Debug for Tensor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const SHOWN: usize = 8;
        write!(f, "Tensor<{}>{:?}[", self.dtype(), self.shape())?;
        match &self.0 {
            Repr::F32(a) => write_some(f, a.iter(), SHOWN)?,
            Repr::I64(a) => write_some(f, a.iter(), SHOWN)?,
            Repr::Bool(a) => write_some(f, a.iter(), SHOWN)?,
        }
        if self.len() > SHOWN {
            write!(f, ", ..")?;
        }
        write!(f, "]")
    }
}

fn write_some<T: fmt::Debug>(
    f: &mut fmt::Formatter<'_>,
    items: impl Iterator<Item = T>,
    shown: usize,
) -> fmt::Result {
    for (i, item) in items.take(shown).enumerate() {
        if i > 0 {
            write!(f, ", ")?;
        }
        write!(f, "{item:?}")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
