//! The Codec role: what a model update becomes on the wire, and back.
//!
//! A codec turns a flat f32 update into an [`Encoded`] value (a slot value
//! that can cross a byte boundary) and back. Lossless codecs decode to the
//! exact input; lossy ones state their error bound in their docs. A codec
//! with memory (top-k with error feedback) keeps it between calls and in
//! [`Codec::state`], so a snapshot restores it.

use crate::tensor::{Tensor, TensorError};

/// An encoded update: the codec that made it, the element count it
/// decodes to, and its payload bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Encoded {
    /// The codec's name (decoding with another codec is refused).
    pub codec: String,
    /// Elements of the decoded update.
    pub len: usize,
    /// The payload.
    pub payload: Vec<u8>,
}

impl Encoded {
    /// Bytes on the wire (payload plus the fixed header).
    pub fn wire_bytes(&self) -> usize {
        self.payload.len() + self.codec.len() + 12
    }

    /// Bytes the update took before encoding (4 per f32).
    pub fn raw_bytes(&self) -> usize {
        self.len * 4
    }
}

/// Why an update could not be encoded or decoded.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    /// The input is not a 1-D f32 tensor.
    #[error("codec `{codec}` takes a 1-D f32 update, got {found}")]
    Input {
        /// The codec.
        codec: &'static str,
        /// What it was given.
        found: String,
    },
    /// The encoded value was made by another codec.
    #[error("encoded by `{found}`, this codec is `{codec}`")]
    WrongCodec {
        /// This codec.
        codec: &'static str,
        /// The encoder's name.
        found: String,
    },
    /// The payload does not decode (truncated, wrong length, bad index).
    #[error("codec `{codec}`: bad payload: {reason}")]
    Payload {
        /// The codec.
        codec: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// The configuration is invalid.
    #[error("invalid codec config: {0}")]
    Config(String),
    /// Building the decoded tensor failed.
    #[error(transparent)]
    Tensor(#[from] TensorError),
}

/// Encodes model updates for the wire.
pub trait Codec: Send + std::fmt::Debug + 'static {
    /// The codec's name (`"identity"`, `"f16"`, `"int8"`, `"topk"`).
    fn kind(&self) -> &'static str;

    /// Encodes a flat f32 update.
    fn encode(&mut self, update: &Tensor) -> Result<Encoded, CodecError>;

    /// Decodes what [`Codec::encode`] produced (by a codec of the same kind).
    fn decode(&self, encoded: &Encoded) -> Result<Tensor, CodecError>;

    /// The codec's memory between calls (empty for stateless codecs).
    fn state(&self) -> Vec<f32> {
        Vec::new()
    }

    /// Restores what [`Codec::state`] returned.
    fn restore(&mut self, _state: &[f32]) -> Result<(), CodecError> {
        Ok(())
    }
}
