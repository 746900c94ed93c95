//! F16: the update as IEEE half-precision floats, half the bytes of f32.

use half::f16 as Half;

use crate::roles::codec::{Codec, CodecError, Encoded};
use crate::tensor::Tensor;

use super::{
    check_encoded, check_payload_len, encoded, flat_input, flat_tensor, payload_error,
    require_finite,
};

/// IEEE 754 binary16, round to nearest even (through the `half` crate):
/// the payload is `2P` bytes for `P` elements.
///
/// Promises, for every element `x` and its decoded `y`:
/// * normal range (`2⁻¹⁴ ≤ |x| ≤ 65504`): `|y − x| ≤ 2⁻¹¹·|x|`;
/// * below it (f16 subnormals): `|y − x| ≤ 2⁻²⁵`;
/// * `65504 < |x| < 65520` rounds down to `±65504` (still within
///   `2⁻¹¹·|x|`);
/// * refusals, with [`CodecError::Input`]: a NaN or an infinity, and any
///   `|x| ≥ 65520`, which f16 would turn into an infinity — this codec
///   never turns a finite update into a non-finite one, nor clips it
///   silently;
/// * decoding refuses a payload holding an f16 NaN or infinity
///   ([`CodecError::Payload`]), since the encoder never writes one.
///
/// Stateless.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct F16;

impl F16 {
    /// The codec's name.
    pub const KIND: &'static str = "f16";

    /// The largest finite f16, 65504.
    pub const MAX: f32 = 65504.0;
}

impl Codec for F16 {
    fn kind(&self) -> &'static str {
        Self::KIND
    }

    fn encode(&mut self, update: &Tensor) -> Result<Encoded, CodecError> {
        let values = flat_input(Self::KIND, update)?;
        require_finite(Self::KIND, &values)?;
        let mut payload = Vec::with_capacity(values.len() * 2);
        for (index, &v) in values.iter().enumerate() {
            let half = Half::from_f32(v);
            if half.is_infinite() {
                return Err(CodecError::Input {
                    codec: Self::KIND,
                    found: format!(
                        "the value {v} at index {index}, past the f16 range (±{})",
                        Self::MAX
                    ),
                });
            }
            payload.extend_from_slice(&half.to_le_bytes());
        }
        Ok(encoded(Self::KIND, values.len(), payload))
    }

    fn decode(&self, encoded: &Encoded) -> Result<Tensor, CodecError> {
        check_encoded(Self::KIND, encoded)?;
        check_payload_len(Self::KIND, encoded, encoded.len.checked_mul(2))?;
        let mut values = Vec::with_capacity(encoded.len);
        for (index, b) in encoded.payload.chunks_exact(2).enumerate() {
            let half = Half::from_le_bytes([b[0], b[1]]);
            if !half.is_finite() {
                return Err(payload_error(
                    Self::KIND,
                    format!("element {index} is {half}, which this encoder never writes"),
                ));
            }
            values.push(half.to_f32());
        }
        flat_tensor(values)
    }
}
