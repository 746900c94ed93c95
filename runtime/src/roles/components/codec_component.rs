//! [`CodecComponent`]: a [`Codec`] bound at a slot, as the ops `Encode` and `Decode`.
//!
//! | op | inputs | outputs |
//! |---|---|---|
//! | `Encode` | update f32 `[P]` | the [`Encoded`] value, its wire bytes i64 scalar, its raw bytes i64 scalar |
//! | `Decode` | an [`Encoded`] value | update f32 `[P]` |
//!
//! Both run inline: a codec's work is linear in the update (top-k adds a
//! selection) and far below a training step. The codec's memory (top-k's
//! residual) is the component's snapshot state.

use std::fmt;

use nodeflow_engine::{
    Component, DispatchResult, LocalOpId, OpError, OpErrorKind, OpInputs, OpOutputs,
    RuntimeResourceRef, SlotValue,
};

use super::state::{decode_named, encode_named};
use super::tensor_input;
use crate::roles::{Codec, CodecError, Encoded};
use crate::tensor::Tensor;

/// The [`Component::kind`] of a codec component.
pub const CODEC_KIND: &str = "codec";

/// A codec as a component.
pub struct CodecComponent {
    codec: Box<dyn Codec>,
}

impl CodecComponent {
    /// Binds `codec`.
    pub fn new(codec: Box<dyn Codec>) -> Self {
        Self { codec }
    }
}

/// A codec error as an op failure with a stable `codec.*` reason.
pub(crate) fn codec_error(error: CodecError) -> OpError {
    let reason = match &error {
        CodecError::Input { .. } => "codec.input",
        CodecError::WrongCodec { .. } => "codec.wrong_codec",
        CodecError::Payload { .. } => "codec.payload",
        CodecError::Config(_) => "codec.config",
        _ => "codec.tensor",
    };
    OpError::new(OpErrorKind::InvalidInput, reason, error.to_string())
}

fn internal(e: impl ToString) -> OpError {
    OpError::new(OpErrorKind::Internal, "codec.state", e.to_string())
}

impl Component for CodecComponent {
    fn kind(&self) -> &str {
        CODEC_KIND
    }

    fn resolve_op(&self, op_type: &str) -> Option<LocalOpId> {
        match op_type {
            "Encode" => Some(LocalOpId(0)),
            "Decode" => Some(LocalOpId(1)),
            _ => None,
        }
    }

    fn dispatch_atomic(
        &mut self,
        op: LocalOpId,
        _ctx: &mut RuntimeResourceRef<'_>,
        inputs: &mut OpInputs<'_>,
        outputs: &mut OpOutputs<'_>,
    ) -> Result<DispatchResult, OpError> {
        let values: Vec<Box<dyn SlotValue>> = match op.0 {
            0 => {
                let update = tensor_input(inputs, 0, "Encode")?;
                let encoded = self.codec.encode(&update).map_err(codec_error)?;
                let (wire, raw) = (encoded.wire_bytes() as i64, encoded.raw_bytes() as i64);
                vec![
                    Box::new(encoded),
                    Box::new(Tensor::scalar_i64(wire)),
                    Box::new(Tensor::scalar_i64(raw)),
                ]
            }
            1 => {
                let value = inputs.get(0).ok_or_else(|| {
                    OpError::new(
                        OpErrorKind::InvalidInput,
                        "role.missing_input",
                        "`Decode` needs input 0, which is absent",
                    )
                })?;
                let encoded = value.downcast_ref::<Encoded>().ok_or_else(|| {
                    OpError::new(
                        OpErrorKind::InvalidInput,
                        "codec.not_encoded",
                        format!("`Decode` input 0 is a {}, not an Encoded", value.type_tag()),
                    )
                })?;
                vec![Box::new(self.codec.decode(encoded).map_err(codec_error)?)]
            }
            _ => {
                return Err(OpError::new(
                    OpErrorKind::Internal,
                    "codec.unknown_op",
                    format!("{op:?} is not a codec op"),
                ))
            }
        };
        for value in values.into_iter().take(outputs.declared()) {
            outputs.push(value)?;
        }
        Ok(DispatchResult::Immediate)
    }

    fn snapshot_state(&self) -> Result<Vec<u8>, OpError> {
        let state = self.codec.state();
        let len = state.len();
        let tensor = Tensor::from_f32(vec![len], state).map_err(internal)?;
        Ok(encode_named(&[("state".to_owned(), tensor)]))
    }

    fn restore_state(&mut self, bytes: &[u8]) -> Result<(), OpError> {
        let entries = decode_named(bytes)?;
        let state = entries
            .first()
            .and_then(|(_, t)| t.to_f32_vec())
            .unwrap_or_default();
        self.codec.restore(&state).map_err(codec_error)
    }
}

impl fmt::Debug for CodecComponent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CodecComponent")
            .field("codec", &self.codec)
            .finish()
    }
}
