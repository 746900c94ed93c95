//! The Codec role: what a model update becomes on the wire, and back.
//!
//! A codec turns a flat f32 update into an [`Encoded`] value (a slot value
//! that can cross a byte boundary) and back. Lossless codecs decode to the
//! exact input; lossy ones state their error bound in their docs. A codec
//! with memory (top-k with error feedback) keeps it between calls and in
//! [`Codec::state`], so a snapshot restores it.

use nodeflow_engine::{
    DecodeContext, EncodeError, RegistryError, SlotValue, TypeTag, ValueDecodeError, ValueReader,
    ValueRegistry,
};

use crate::tensor::{Tensor, TensorError, MAX_ELEMENTS};

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

/// The byte form of an [`Encoded`] slot value, exactly
/// [`Encoded::wire_bytes`] long, little-endian:
///
/// | field    | size     | meaning                                        |
/// |----------|----------|------------------------------------------------|
/// | name len | 4        | u32, at most [`Encoded::MAX_CODEC_NAME`]       |
/// | name     | name len | the codec's name, UTF-8                        |
/// | len      | 8        | u64, elements decoded, at most `MAX_ELEMENTS`  |
/// | payload  | the rest | the codec's payload                            |
///
/// The decoder checks the name length against its cap and the remaining
/// input before reading it, and the element count against
/// [`MAX_ELEMENTS`]; the payload is bounded by the registry's
/// `max_value_bytes`, checked before any decoder runs. It allocates only
/// the name and the payload, each no longer than the input.
impl Encoded {
    /// Tag `0x0011`: the encoded update's stable type tag on the wire and in snapshots.
    pub const TAG: TypeTag = TypeTag::new(0x0011);

    /// Longest codec name the decoder accepts, in bytes.
    pub const MAX_CODEC_NAME: usize = 64;

    /// Registers the decoder of [`Encoded`] (under [`Encoded::TAG`]) in `registry`.
    pub fn register(registry: &mut ValueRegistry) -> Result<(), RegistryError> {
        registry.register_reserved(Self::TAG, decode_encoded)
    }
}

fn decode_encoded(
    bytes: &[u8],
    cx: &DecodeContext<'_>,
) -> Result<Box<dyn SlotValue>, ValueDecodeError> {
    let mut reader = ValueReader::new(bytes);
    let name_len = reader.u32_le()?;
    let name_len = usize::try_from(name_len)
        .ok()
        .filter(|&n| n <= Encoded::MAX_CODEC_NAME)
        .ok_or_else(|| ValueDecodeError::Invalid {
            reason: format!(
                "codec name of {name_len} bytes, over the cap of {}",
                Encoded::MAX_CODEC_NAME
            ),
        })?;
    let name = reader.take(name_len)?;
    let codec = std::str::from_utf8(name)
        .map_err(|e| ValueDecodeError::Invalid {
            reason: format!("codec name is not UTF-8: {e}"),
        })?
        .to_owned();
    let len = reader.u64_le()?;
    let len = usize::try_from(len)
        .ok()
        .filter(|&n| n <= MAX_ELEMENTS)
        .ok_or_else(|| ValueDecodeError::Invalid {
            reason: format!("encoded update of {len} elements, over the cap of {MAX_ELEMENTS}"),
        })?;
    let cap = cx.limits().max_value_bytes;
    if reader.remaining() > cap {
        return Err(ValueDecodeError::TooLarge {
            len: reader.remaining(),
            cap,
        });
    }
    let payload = reader.take(reader.remaining())?.to_vec();
    reader.finish()?;
    Ok(Box::new(Encoded {
        codec,
        len,
        payload,
    }))
}

impl SlotValue for Encoded {
    fn type_tag(&self) -> TypeTag {
        Self::TAG
    }

    fn clone_value(&self) -> Box<dyn SlotValue> {
        Box::new(self.clone())
    }

    fn encode(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        let name_len = u32::try_from(self.codec.len())
            .ok()
            .filter(|&n| n as usize <= Self::MAX_CODEC_NAME);
        let Some(name_len) = name_len else {
            return Err(EncodeError::TooLarge {
                len: self.codec.len(),
                cap: Self::MAX_CODEC_NAME,
            });
        };
        out.reserve(self.wire_bytes());
        out.extend_from_slice(&name_len.to_le_bytes());
        out.extend_from_slice(self.codec.as_bytes());
        out.extend_from_slice(&(self.len as u64).to_le_bytes());
        out.extend_from_slice(&self.payload);
        Ok(())
    }

    fn heap_bytes(&self) -> usize {
        self.payload.len() + self.codec.len()
    }

    fn eq_value(&self, other: &dyn SlotValue) -> bool {
        other.downcast_ref::<Encoded>().is_some_and(|o| o == self)
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
