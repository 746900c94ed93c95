//! [`TensorError`]: why a tensor could not be built or an op refused its inputs.
//!
//! Every variant names what it refused: the op (its ONNX `op_type`), the
//! input or attribute, and the shapes involved, so a user reading an
//! `OpFailed` step knows which edge of the graph to fix. Each converts to
//! an engine [`OpError`] with a stable `tensor.*` reason.

use nodeflow_engine::{OpError, OpErrorKind};

use super::DType;

/// Why a tensor could not be built, or why a backend op refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TensorError {
    /// The data's length does not match the shape's element count.
    #[error("shape {shape:?} holds {} elements but {len} were given; pass exactly the shape's product", shape.iter().product::<usize>())]
    DataLength {
        /// The shape asked for.
        shape: Vec<usize>,
        /// The number of elements given.
        len: usize,
    },
    /// More axes than [`super::MAX_RANK`].
    #[error("rank {rank} is over the cap of {cap} axes")]
    Rank {
        /// The rank asked for.
        rank: usize,
        /// [`super::MAX_RANK`].
        cap: usize,
    },
    /// More elements than [`super::MAX_ELEMENTS`] (or a product that overflows).
    #[error("shape {shape:?} is over the cap of {cap} elements")]
    TooLarge {
        /// The shape asked for.
        shape: Vec<usize>,
        /// [`super::MAX_ELEMENTS`].
        cap: usize,
    },
    /// A shape given as data is not a shape (a negative dimension).
    #[error("bad shape: {reason}")]
    BadShape {
        /// What is wrong.
        reason: String,
    },
    /// Input shapes that do not fit together.
    #[error("{op}: {input}: shapes {shapes:?} {reason}")]
    ShapeMismatch {
        /// The op type.
        op: &'static str,
        /// Which inputs (for example `"A, B"`).
        input: String,
        /// The shapes involved, in input order.
        shapes: Vec<Vec<usize>>,
        /// What does not fit.
        reason: String,
    },
    /// An input of an element type the op does not take.
    #[error("{op}: input {input} is {found}, expected {expected}")]
    DType {
        /// The op type.
        op: &'static str,
        /// The input's position.
        input: usize,
        /// The element type found.
        found: DType,
        /// What the op takes.
        expected: &'static str,
    },
    /// An input slot holds a value that is not a tensor.
    #[error("{op}: input {input} is a {found}, not a Tensor")]
    NotATensor {
        /// The op type.
        op: &'static str,
        /// The input's position.
        input: usize,
        /// The value's type tag, for the message.
        found: String,
    },
    /// A required input is absent.
    #[error("{op}: required input {input} is absent")]
    MissingInput {
        /// The op type.
        op: &'static str,
        /// The input's position.
        input: usize,
    },
    /// An input's values are out of range for the op (an index past an
    /// axis, a shape that does not match the data).
    #[error("{op}: input {input} (shape {shape:?}): {reason}")]
    BadInput {
        /// The op type.
        op: &'static str,
        /// The input's position.
        input: usize,
        /// Its shape.
        shape: Vec<usize>,
        /// What is wrong.
        reason: String,
    },
    /// An attribute is missing, of the wrong kind, or out of range.
    #[error("{op}: attribute `{name}`: {reason}")]
    BadAttribute {
        /// The op type.
        op: &'static str,
        /// The attribute's name.
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// The backend has no op of this type.
    #[error("the CPU backend has no op `{op}`")]
    UnknownOp {
        /// The op type asked for.
        op: String,
    },
}

impl TensorError {
    /// The stable reason an [`OpError`] built from this error carries.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::DataLength { .. } => "tensor.data_length",
            Self::Rank { .. } => "tensor.rank",
            Self::TooLarge { .. } => "tensor.too_large",
            Self::BadShape { .. } => "tensor.bad_shape",
            Self::ShapeMismatch { .. } => "tensor.shape_mismatch",
            Self::DType { .. } => "tensor.dtype",
            Self::NotATensor { .. } => "tensor.not_a_tensor",
            Self::MissingInput { .. } => "tensor.missing_input",
            Self::BadInput { .. } => "tensor.bad_input",
            Self::BadAttribute { .. } => "tensor.bad_attribute",
            Self::UnknownOp { .. } => "tensor.unknown_op",
        }
    }
}

impl From<TensorError> for OpError {
    fn from(error: TensorError) -> Self {
        OpError::new(OpErrorKind::InvalidInput, error.reason(), error.to_string())
    }
}
