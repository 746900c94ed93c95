//! The Codec role's implementations, one per file, and the checks they share.
//!
//! Every codec takes a 1-D f32 update and refuses anything else with
//! [`CodecError::Input`]; every decoder first checks that the value was
//! made by a codec of its kind ([`CodecError::WrongCodec`]), that the
//! element count is within [`MAX_ELEMENTS`] and that the payload has
//! exactly the length that count implies ([`CodecError::Payload`]) —
//! before it allocates anything. Payloads are little-endian.
//!
//! | codec          | payload bytes for `P` elements | error                          |
//! |----------------|--------------------------------|--------------------------------|
//! | [`Identity`]   | `4P`                           | none (bit-exact)               |
//! | [`F16`]        | `2P`                           | ≤ 2⁻¹¹·\|x\| (normal range)      |
//! | [`Int8`]       | `4 + P`                        | ≤ scale / 2, scale = max\|x\|/127 |
//! | [`TopK`]       | `8k`                           | carried in the residual        |
//!
//! [`crate::Encoded::wire_bytes`] adds the header: 12 bytes plus the
//! codec's name.

mod f16;
mod identity;
mod int8;
mod topk;

use std::borrow::Cow;

pub use self::f16::F16;
pub use identity::Identity;
pub use int8::Int8;
pub use topk::{Budget, TopK};

use super::codec::{CodecError, Encoded};
use crate::tensor::{Tensor, MAX_ELEMENTS};

/// The update's values, if it is a 1-D f32 tensor (borrowed when contiguous).
pub(crate) fn flat_input<'a>(
    codec: &'static str,
    update: &'a Tensor,
) -> Result<Cow<'a, [f32]>, CodecError> {
    let array = update.as_f32().filter(|a| a.ndim() == 1);
    let Some(array) = array else {
        return Err(CodecError::Input {
            codec,
            found: format!("a {} tensor of shape {:?}", update.dtype(), update.shape()),
        });
    };
    Ok(match array.as_slice() {
        Some(slice) => Cow::Borrowed(slice),
        None => Cow::Owned(array.iter().copied().collect()),
    })
}

/// Refuses an update holding a NaN or an infinity (for the lossy codecs).
pub(crate) fn require_finite(codec: &'static str, values: &[f32]) -> Result<(), CodecError> {
    match values.iter().position(|v| !v.is_finite()) {
        None => Ok(()),
        Some(index) => Err(CodecError::Input {
            codec,
            found: format!("the non-finite value {} at index {index}", values[index]),
        }),
    }
}

/// Checks the encoder's name and the element count, before anything is allocated.
pub(crate) fn check_encoded(codec: &'static str, encoded: &Encoded) -> Result<(), CodecError> {
    if encoded.codec != codec {
        return Err(CodecError::WrongCodec {
            codec,
            found: encoded.codec.clone(),
        });
    }
    if encoded.len > MAX_ELEMENTS {
        return Err(payload_error(
            codec,
            format!(
                "{} elements declared, over the cap of {MAX_ELEMENTS}",
                encoded.len
            ),
        ));
    }
    Ok(())
}

/// Checks that the payload holds exactly `expected` bytes (`None`: the count overflowed).
pub(crate) fn check_payload_len(
    codec: &'static str,
    encoded: &Encoded,
    expected: Option<usize>,
) -> Result<(), CodecError> {
    match expected {
        Some(expected) if expected == encoded.payload.len() => Ok(()),
        Some(expected) => Err(payload_error(
            codec,
            format!(
                "{} bytes for {} elements, expected {expected}",
                encoded.payload.len(),
                encoded.len
            ),
        )),
        None => Err(payload_error(
            codec,
            format!("the byte count of {} elements overflows", encoded.len),
        )),
    }
}

/// A [`CodecError::Payload`].
pub(crate) fn payload_error(codec: &'static str, reason: String) -> CodecError {
    CodecError::Payload { codec, reason }
}

/// The decoded update as a 1-D f32 tensor.
pub(crate) fn flat_tensor(values: Vec<f32>) -> Result<Tensor, CodecError> {
    Ok(Tensor::from_f32(vec![values.len()], values)?)
}

/// An [`Encoded`] value of `codec` for `len` elements.
pub(crate) fn encoded(codec: &'static str, len: usize, payload: Vec<u8>) -> Encoded {
    Encoded {
        codec: codec.to_owned(),
        len,
        payload,
    }
}
