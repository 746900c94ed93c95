//! Int8: the update quantized to signed bytes under one per-tensor scale.

use crate::roles::codec::{Codec, CodecError, Encoded};
use crate::tensor::Tensor;

use super::{
    check_encoded, check_payload_len, encoded, flat_input, flat_tensor, payload_error,
    require_finite,
};

/// Symmetric per-tensor int8 quantization.
///
/// `scale = max|x| / 127` (rounded to f32), `q = round(x / scale)` clamped
/// to `[-127, 127]` (the division in f64, ties away from zero); decoding
/// gives `q · scale`. The payload is the scale as an f32 followed by the
/// `P` quantized bytes: `4 + P` bytes.
///
/// Promises:
/// * per element `|y − x| ≤ scale / 2`, plus the f32 rounding of the
///   product `q · scale` (at most `2⁻²⁴·|y|`);
/// * an all-zero update has scale 0 and decodes to zeros exactly;
/// * a NaN or an infinity is refused ([`CodecError::Input`]): it has no
///   scale;
/// * decoding refuses a scale that is negative or not finite, and the
///   byte -128, which the encoder never writes ([`CodecError::Payload`]);
/// * stateless.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Int8;

impl Int8 {
    /// The codec's name.
    pub const KIND: &'static str = "int8";

    /// The scale `encode` would use for `values`: `max|x| / 127`.
    pub fn scale(values: &[f32]) -> f32 {
        values.iter().fold(0f32, |m, v| m.max(v.abs())) / 127.0
    }
}

impl Codec for Int8 {
    fn kind(&self) -> &'static str {
        Self::KIND
    }

    fn encode(&mut self, update: &Tensor) -> Result<Encoded, CodecError> {
        let values = flat_input(Self::KIND, update)?;
        require_finite(Self::KIND, &values)?;
        let scale = Self::scale(&values);
        let mut payload = Vec::with_capacity(4 + values.len());
        payload.extend_from_slice(&scale.to_le_bytes());
        let step = f64::from(scale);
        payload.extend(values.iter().map(|&v| {
            if step == 0.0 {
                return 0u8;
            }
            // Clamped to [-127, 127] first, so the cast to i8 is exact.
            let q = (f64::from(v) / step).round().clamp(-127.0, 127.0) as i8;
            q.to_le_bytes()[0]
        }));
        Ok(encoded(Self::KIND, values.len(), payload))
    }

    fn decode(&self, encoded: &Encoded) -> Result<Tensor, CodecError> {
        check_encoded(Self::KIND, encoded)?;
        check_payload_len(Self::KIND, encoded, encoded.len.checked_add(4))?;
        let (head, bytes) = encoded.payload.split_at(4);
        let scale = f32::from_le_bytes([head[0], head[1], head[2], head[3]]);
        if !(scale.is_finite() && scale >= 0.0) {
            return Err(payload_error(
                Self::KIND,
                format!("scale {scale} is not a finite non-negative number"),
            ));
        }
        if let Some(index) = bytes
            .iter()
            .position(|&b| i8::from_le_bytes([b]) == i8::MIN)
        {
            return Err(payload_error(
                Self::KIND,
                format!("element {index} is -128, outside the encoder's [-127, 127]"),
            ));
        }
        let values = bytes
            .iter()
            .map(|&b| f32::from(i8::from_le_bytes([b])) * scale)
            .collect();
        flat_tensor(values)
    }
}
