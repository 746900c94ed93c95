//! The tensor's byte form, and a decoder that checks every cap before it allocates.
//!
//! Layout, little-endian:
//!
//! | field   | size            | meaning                                   |
//! |---------|-----------------|-------------------------------------------|
//! | version | 1               | [`FORMAT_VERSION`]                        |
//! | dtype   | 1               | 1 = f32, 2 = i64, 3 = bool                |
//! | rank    | 1               | number of axes, at most [`MAX_RANK`]      |
//! | dims    | 8 × rank        | each axis's extent (u64)                  |
//! | data    | elements × size | row-major elements; a bool is one 0/1 byte |
//!
//! Decoding checks, in order and before any allocation that depends on the
//! input: the version and dtype codes; the rank against [`MAX_RANK`]; that
//! the dims are present; the element count (overflow-checked) against
//! [`MAX_ELEMENTS`]; the element bytes against the caller's byte cap; that
//! the input holds exactly that many bytes. Only then are the elements
//! read, each bool checked to be 0 or 1.

use ndarray::{ArrayD, IxDyn};
use nodeflow_engine::ValueDecodeError;

use super::{Element, Repr, Tensor, MAX_ELEMENTS, MAX_RANK};

/// The layout version this build writes and reads.
pub const FORMAT_VERSION: u8 = 1;

const HEADER: usize = 3;

/// Why bytes are not a tensor.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TensorDecodeError {
    /// The input ended before a field it announced.
    #[error("tensor bytes truncated: needed {needed}, {available} available")]
    Truncated {
        /// Bytes the next field needs.
        needed: usize,
        /// Bytes left.
        available: usize,
    },
    /// Bytes left after the elements.
    #[error("{extra} bytes after the tensor's elements")]
    TrailingBytes {
        /// How many.
        extra: usize,
    },
    /// A layout version this build does not read.
    #[error("tensor layout version {found}, this build reads {FORMAT_VERSION}")]
    Version {
        /// The version found.
        found: u8,
    },
    /// An unknown element-type code.
    #[error("unknown tensor element type code {code}")]
    DType {
        /// The code found.
        code: u8,
    },
    /// More axes than [`MAX_RANK`].
    #[error("tensor of rank {rank}, over the cap of {cap}")]
    Rank {
        /// The rank declared.
        rank: usize,
        /// [`MAX_RANK`].
        cap: usize,
    },
    /// More elements than [`MAX_ELEMENTS`], or a product that overflows.
    #[error("tensor dims {dims:?} declare more than {cap} elements")]
    TooManyElements {
        /// The dims declared.
        dims: Vec<u64>,
        /// [`MAX_ELEMENTS`].
        cap: usize,
    },
    /// The elements would take more bytes than the caller allows.
    #[error("tensor elements take {len} bytes, over the cap of {cap}")]
    TooLarge {
        /// Bytes the elements take.
        len: usize,
        /// The cap in force.
        cap: usize,
    },
    /// A bool element that is neither 0 nor 1.
    #[error("bool element {index} is byte {byte:#x}, not 0 or 1")]
    BadBool {
        /// Its position.
        index: usize,
        /// The byte found.
        byte: u8,
    },
}

impl From<TensorDecodeError> for ValueDecodeError {
    fn from(error: TensorDecodeError) -> Self {
        match error {
            TensorDecodeError::Truncated { needed, available } => {
                ValueDecodeError::Truncated { needed, available }
            }
            TensorDecodeError::TrailingBytes { extra } => ValueDecodeError::TrailingBytes { extra },
            TensorDecodeError::TooLarge { len, cap } => ValueDecodeError::TooLarge { len, cap },
            other => ValueDecodeError::Invalid {
                reason: other.to_string(),
            },
        }
    }
}

/// Bytes [`encode`] writes for `tensor`.
pub(super) fn encoded_len(tensor: &Tensor) -> usize {
    HEADER + 8 * tensor.rank() + tensor.byte_len()
}

/// Appends `tensor`'s byte form to `out`.
pub(super) fn encode(tensor: &Tensor, out: &mut Vec<u8>) {
    out.reserve(encoded_len(tensor));
    let code = match &tensor.0 {
        Repr::F32(_) => 1,
        Repr::I64(_) => 2,
        Repr::Bool(_) => 3,
    };
    // Constructors cap the rank at MAX_RANK, far below 256.
    out.extend_from_slice(&[FORMAT_VERSION, code, tensor.rank() as u8]);
    for &dim in tensor.shape() {
        out.extend_from_slice(&(dim as u64).to_le_bytes());
    }
    match &tensor.0 {
        Repr::F32(a) => a
            .iter()
            .for_each(|v| out.extend_from_slice(&v.to_le_bytes())),
        Repr::I64(a) => a
            .iter()
            .for_each(|v| out.extend_from_slice(&v.to_le_bytes())),
        Repr::Bool(a) => out.extend(a.iter().map(|&b| u8::from(b))),
    }
}

/// Reads one tensor from the whole of `bytes`; `max_bytes` caps its elements.
pub(super) fn decode(bytes: &[u8], max_bytes: usize) -> Result<Tensor, TensorDecodeError> {
    let header = bytes.get(..HEADER).ok_or(TensorDecodeError::Truncated {
        needed: HEADER,
        available: bytes.len(),
    })?;
    let (version, code, rank) = (header[0], header[1], header[2] as usize);
    if version != FORMAT_VERSION {
        return Err(TensorDecodeError::Version { found: version });
    }
    let size = match code {
        1 => 4,
        2 => 8,
        3 => 1,
        code => return Err(TensorDecodeError::DType { code }),
    };
    if rank > MAX_RANK {
        return Err(TensorDecodeError::Rank {
            rank,
            cap: MAX_RANK,
        });
    }
    let rest = &bytes[HEADER..];
    let dims_len = 8 * rank;
    let dim_bytes = rest.get(..dims_len).ok_or(TensorDecodeError::Truncated {
        needed: dims_len,
        available: rest.len(),
    })?;
    let dims: Vec<u64> = dim_bytes
        .chunks_exact(8)
        .map(|c| u64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
        .collect();
    let count = dims
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(usize::try_from(d).ok()?))
        .filter(|&n| n <= MAX_ELEMENTS)
        .ok_or_else(|| TensorDecodeError::TooManyElements {
            dims: dims.clone(),
            cap: MAX_ELEMENTS,
        })?;
    // count ≤ MAX_ELEMENTS = 2^28, so count × 8 cannot overflow.
    let data_len = count * size;
    if data_len > max_bytes {
        return Err(TensorDecodeError::TooLarge {
            len: data_len,
            cap: max_bytes,
        });
    }
    let data = &rest[dims_len..];
    if data.len() < data_len {
        return Err(TensorDecodeError::Truncated {
            needed: data_len,
            available: data.len(),
        });
    }
    if data.len() > data_len {
        return Err(TensorDecodeError::TrailingBytes {
            extra: data.len() - data_len,
        });
    }
    let shape: Vec<usize> = dims.iter().map(|&d| d as usize).collect();
    match code {
        1 => build::<f32>(
            &shape,
            data.chunks_exact(4)
                .map(|c| f32::from_le_bytes(c.try_into().unwrap_or([0; 4]))),
        ),
        2 => build::<i64>(
            &shape,
            data.chunks_exact(8)
                .map(|c| i64::from_le_bytes(c.try_into().unwrap_or([0; 8]))),
        ),
        _ => {
            if let Some(index) = data.iter().position(|&b| b > 1) {
                return Err(TensorDecodeError::BadBool {
                    index,
                    byte: data[index],
                });
            }
            build::<bool>(&shape, data.iter().map(|&b| b == 1))
        }
    }
}

/// A tensor of `shape` from exactly `shape`-product-many elements (the
/// caller derived the count from `shape`, so the shape check cannot fail;
/// if it did, the input is reported as truncated rather than panicking).
fn build<T: Element>(
    shape: &[usize],
    elements: impl ExactSizeIterator<Item = T>,
) -> Result<Tensor, TensorDecodeError> {
    let data: Vec<T> = elements.collect();
    let available = data.len();
    ArrayD::from_shape_vec(IxDyn(shape), data)
        .map(|array| T::wrap(array.into_shared()))
        .map_err(|_| TensorDecodeError::Truncated {
            needed: shape.iter().product(),
            available,
        })
}
