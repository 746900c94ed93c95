//! Identity: the update's f32s as they are, little-endian — the lossless baseline.

use crate::roles::codec::{Codec, CodecError, Encoded};
use crate::tensor::Tensor;

use super::{check_encoded, check_payload_len, encoded, flat_input, flat_tensor};

/// The lossless codec: the payload is the update's f32s, little-endian,
/// `4P` bytes for `P` elements.
///
/// Promises: `decode(encode(x))` equals `x` bit for bit (NaN payloads and
/// infinities included — nothing is refused but a tensor that is not 1-D
/// f32); stateless.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Identity;

impl Identity {
    /// The codec's name.
    pub const KIND: &'static str = "identity";
}

impl Codec for Identity {
    fn kind(&self) -> &'static str {
        Self::KIND
    }

    fn encode(&mut self, update: &Tensor) -> Result<Encoded, CodecError> {
        let values = flat_input(Self::KIND, update)?;
        let payload = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        Ok(encoded(Self::KIND, values.len(), payload))
    }

    fn decode(&self, encoded: &Encoded) -> Result<Tensor, CodecError> {
        check_encoded(Self::KIND, encoded)?;
        check_payload_len(Self::KIND, encoded, encoded.len.checked_mul(4))?;
        let values = encoded
            .payload
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        flat_tensor(values)
    }
}
