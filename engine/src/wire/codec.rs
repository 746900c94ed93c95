//! The binary envelope codec: [`Envelope`] to compact bytes and back, with
//! every cap checked before anything is copied.
//!
//! # Layout
//! A sequence of [`postcard`] items (integers are varints, byte strings are
//! a varint length then the bytes):
//!
//! 1. `schema: u16` — must equal [`WIRE_SCHEMA_VERSION`]; read first, so a
//!    peer speaking another layout gets [`WireDecodeError::SchemaMismatch`]
//!    rather than a parse error;
//! 2. header: `src: u64`, `dst: u64`, kind (variant index, then
//!    `retry_after_ns` for `BackoffNotice`), `wire_req_id: Option<u64>`,
//!    `remaining_deadline_ns: Option<u64>`, `credit: u32`; then the
//!    failure (`Option`): error kind index (`u8`), reason and detail as
//!    byte strings, capped at [`WireLimits::max_name_bytes`] and
//!    [`crate::COMPLETION_DETAIL_CAP`] before they are copied;
//! 3. `reply_to` count (`u64`), then each address's binary form
//!    ([`Address::encode`]) as a byte string;
//! 4. fill count (`u64`), then per fill: target (variant index; `site: u32`
//!    and input name, or `component: u32` and op name, names as byte
//!    strings), `tag: u32`, payload bytes as a byte string.
//!
//! A [`Payload::Value`] is encoded with [`SlotValue::encode`] under its tag,
//! so the receiver always sees a [`Payload::Encoded`]; turn it back into a
//! live value with [`decode_payload`].
//!
//! # Decoding and caps
//! Decoding first parses a borrowed view of the whole input (names and
//! payloads stay slices of it), refusing the envelope as soon as its size,
//! schema, address count or fill count breaks a [`WireLimits`] cap; each
//! declared count is checked against its cap and against the bytes left
//! before any list is reserved, so a forged count cannot make it allocate.
//! Only a fully parsed view is copied into an owned [`Envelope`].
//!
//! Invariants:
//! * Envelope-level problems (size, schema, malformed bytes, too many fills
//!   or addresses, a bad reply address) reject the whole envelope with a
//!   [`WireDecodeError`].
//! * Fill-level problems (payload or name over its cap, name not UTF-8)
//!   reject that fill alone: it is reported in
//!   [`DecodedEnvelope::rejected`] and its siblings still deliver.
//! * No input makes a codec function panic.
//! * On an encode error, `out` is left as it was before the call.

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

use crate::component::{OpError, OpErrorKind};
use crate::framework::Address;
use crate::ids::{ComponentRef, PeerId, SiteId};
use crate::ingress::COMPLETION_DETAIL_CAP;
use crate::value::{EncodeError, SlotValue, TypeTag, ValueDecodeError, ValueLimits, ValueRegistry};
use crate::wire::{Envelope, EnvelopeKind, Fill, FillTarget, Payload, WIRE_SCHEMA_VERSION};

/// Caps the codec enforces on one envelope, in both directions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireLimits {
    /// Largest encoded envelope, in bytes. Default 8 MiB.
    pub max_envelope_bytes: usize,
    /// Most fills in one envelope. Default 1024.
    pub max_fills: usize,
    /// Largest payload of one fill, in bytes. Default 4 MiB.
    pub max_fill_bytes: usize,
    /// Most reply addresses in one envelope. Default 16.
    pub max_reply_to: usize,
    /// Longest fill target name (graph input or op), in bytes. Default 128,
    /// the same as [`crate::OP_NAME_CAP`].
    pub max_name_bytes: usize,
}

impl Default for WireLimits {
    fn default() -> Self {
        Self {
            max_envelope_bytes: 8 * 1024 * 1024,
            max_fills: 1024,
            max_fill_bytes: 4 * 1024 * 1024,
            max_reply_to: 16,
            max_name_bytes: crate::framework::OP_NAME_CAP,
        }
    }
}

/// Why an envelope could not be encoded. Nothing was written.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WireEncodeError {
    /// The envelope claims a layout version this build cannot write.
    #[error("envelope has schema {found}, this build writes only schema {expected}; build it with Envelope::new")]
    UnsupportedSchema {
        /// The envelope's `schema` field.
        found: u16,
        /// [`WIRE_SCHEMA_VERSION`].
        expected: u16,
    },
    /// More fills than [`WireLimits::max_fills`].
    #[error("envelope has {count} fills, over the cap of {cap}; split it into several envelopes")]
    TooManyFills {
        /// Fills in the envelope.
        count: usize,
        /// The cap in force.
        cap: usize,
    },
    /// More reply addresses than [`WireLimits::max_reply_to`].
    #[error("envelope has {count} reply addresses, over the cap of {cap}; send fewer")]
    TooManyAddresses {
        /// Addresses in the envelope.
        count: usize,
        /// The cap in force.
        cap: usize,
    },
    /// A fill's payload is larger than [`WireLimits::max_fill_bytes`].
    #[error("fill {index} payload is {len} bytes, over the cap of {cap}; send the value in parts")]
    FillTooLarge {
        /// Position of the fill in the envelope.
        index: usize,
        /// The payload's encoded size.
        len: usize,
        /// The cap in force.
        cap: usize,
    },
    /// A fill target name is longer than [`WireLimits::max_name_bytes`].
    #[error("fill {index} target name is {len} bytes, over the cap of {cap}; use a shorter name")]
    NameTooLong {
        /// Position of the fill in the envelope.
        index: usize,
        /// The name's length.
        len: usize,
        /// The cap in force.
        cap: usize,
    },
    /// A live value in a fill could not be encoded.
    #[error("fill {index} value cannot be encoded: {source}")]
    Value {
        /// Position of the fill in the envelope.
        index: usize,
        /// The value's own error.
        source: EncodeError,
    },
    /// The encoded envelope would exceed [`WireLimits::max_envelope_bytes`].
    #[error("encoded envelope would exceed {cap} bytes (reached {len}); split it into several envelopes")]
    TooLarge {
        /// Bytes written when the cap was hit.
        len: usize,
        /// The cap in force.
        cap: usize,
    },
}

/// Why a whole envelope was rejected.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WireDecodeError {
    /// The input is larger than [`WireLimits::max_envelope_bytes`].
    #[error("envelope is {len} bytes, over the cap of {cap}; the sender must split it")]
    TooLarge {
        /// The input's length.
        len: usize,
        /// The cap in force.
        cap: usize,
    },
    /// The sender uses another layout version.
    #[error("envelope schema {found} is not supported (this build reads schema {expected}); upgrade one side")]
    SchemaMismatch {
        /// The version found.
        found: u16,
        /// [`WIRE_SCHEMA_VERSION`].
        expected: u16,
    },
    /// The bytes do not follow the layout.
    #[error("malformed envelope in {section}: {detail}")]
    Malformed {
        /// Which part of the layout failed to parse.
        section: &'static str,
        /// The parser's complaint.
        detail: String,
    },
    /// More fills than [`WireLimits::max_fills`].
    #[error("envelope declares {count} fills, over the cap of {cap}")]
    TooManyFills {
        /// The declared count.
        count: u64,
        /// The cap in force.
        cap: usize,
    },
    /// More reply addresses than [`WireLimits::max_reply_to`].
    #[error("envelope declares {count} reply addresses, over the cap of {cap}")]
    TooManyAddresses {
        /// The declared count.
        count: u64,
        /// The cap in force.
        cap: usize,
    },
    /// A reply address is not a valid binary [`Address`].
    #[error("reply address {index} is invalid: {reason}")]
    BadAddress {
        /// Position of the address in `reply_to`.
        index: usize,
        /// What is wrong with it.
        reason: String,
    },
    /// Bytes were left after the last fill.
    #[error("{extra} bytes left after the last fill; the envelope is corrupt")]
    TrailingBytes {
        /// How many bytes were left.
        extra: usize,
    },
}

/// Why one fill was rejected while its siblings were delivered.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FillError {
    /// The payload is larger than [`WireLimits::max_fill_bytes`].
    #[error("fill payload is {len} bytes, over the cap of {cap}")]
    TooLarge {
        /// The payload's length.
        len: usize,
        /// The cap in force.
        cap: usize,
    },
    /// The target name is longer than [`WireLimits::max_name_bytes`].
    #[error("fill target name is {len} bytes, over the cap of {cap}")]
    NameTooLong {
        /// The name's length.
        len: usize,
        /// The cap in force.
        cap: usize,
    },
    /// The target name is not UTF-8.
    #[error("fill target name is not UTF-8")]
    NameNotUtf8,
}

/// A fill that failed on its own.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RejectedFill {
    /// Position of the fill in the envelope as sent.
    pub index: usize,
    /// Why it was rejected.
    pub reason: FillError,
}

/// A decoded envelope: the good fills, plus the ones that failed alone.
#[derive(Clone, Debug, PartialEq)]
pub struct DecodedEnvelope {
    /// The envelope carrying only the fills that passed, in their order.
    pub envelope: Envelope,
    /// The fills that were rejected, in their order.
    pub rejected: Vec<RejectedFill>,
}

/// Appends the binary form of `envelope` to `out`.
///
/// Live values are encoded by their tag. On error `out` is unchanged.
pub fn encode_envelope(
    envelope: &Envelope,
    limits: &WireLimits,
    out: &mut Vec<u8>,
) -> Result<(), WireEncodeError> {
    if envelope.schema != WIRE_SCHEMA_VERSION {
        return Err(WireEncodeError::UnsupportedSchema {
            found: envelope.schema,
            expected: WIRE_SCHEMA_VERSION,
        });
    }
    if envelope.reply_to.len() > limits.max_reply_to {
        return Err(WireEncodeError::TooManyAddresses {
            count: envelope.reply_to.len(),
            cap: limits.max_reply_to,
        });
    }
    if envelope.fills.len() > limits.max_fills {
        return Err(WireEncodeError::TooManyFills {
            count: envelope.fills.len(),
            cap: limits.max_fills,
        });
    }
    let start = out.len();
    let result = write_envelope(envelope, limits, start, out);
    if result.is_err() {
        out.truncate(start);
    }
    result
}

/// Decodes one envelope from the whole of `bytes`.
///
/// Envelope-level problems are an error; fills that break a per-fill cap
/// are left out of the envelope and listed in [`DecodedEnvelope::rejected`].
pub fn decode_envelope(
    bytes: &[u8],
    limits: &WireLimits,
) -> Result<DecodedEnvelope, WireDecodeError> {
    let view = parse_view(bytes, limits)?;
    let reply_to = view
        .reply_to
        .iter()
        .enumerate()
        .map(|(index, raw)| decode_address(index, raw))
        .collect::<Result<Vec<_>, _>>()?;
    let mut fills = Vec::with_capacity(view.fills.len());
    let mut rejected = Vec::new();
    for (index, raw) in view.fills.iter().enumerate() {
        match own_fill(raw, limits) {
            Ok(fill) => fills.push(fill),
            Err(reason) => rejected.push(RejectedFill { index, reason }),
        }
    }
    let failure = view
        .failure
        .as_ref()
        .map(|raw| own_failure(raw, limits).map(Box::new))
        .transpose()?;
    let header = view.header;
    let envelope = Envelope {
        schema: WIRE_SCHEMA_VERSION,
        src: PeerId::new(header.src),
        dst: PeerId::new(header.dst),
        kind: header.kind.into(),
        wire_req_id: header.wire_req_id,
        remaining_deadline_ns: header.remaining_deadline_ns,
        reply_to,
        fills,
        credit: header.credit,
        failure,
    };
    Ok(DecodedEnvelope { envelope, rejected })
}

/// Turns a fill's payload into a live value: encoded bytes are decoded
/// through `registry` under `limits`; a live value is cloned (cheap).
pub fn decode_payload(
    payload: &Payload,
    registry: &ValueRegistry,
    limits: &ValueLimits,
) -> Result<Box<dyn SlotValue>, ValueDecodeError> {
    match payload {
        Payload::Encoded { tag, bytes } => registry.decode(*tag, bytes, limits),
        Payload::Value(value) => Ok(value.clone_value()),
    }
}

/// Smallest encoded fill: target variant, site or component, name length,
/// tag, payload length — one byte each.
const MIN_WIRE_FILL_BYTES: usize = 5;

/// Fixed part of an envelope after the schema.
#[derive(Serialize, Deserialize)]
struct WireHeader {
    src: u64,
    dst: u64,
    kind: WireKind,
    wire_req_id: Option<u64>,
    remaining_deadline_ns: Option<u64>,
    credit: u32,
}

/// A response's typed failure on the wire; strings stay raw bytes until
/// their caps are checked.
#[derive(Serialize, Deserialize)]
struct WireFailure<'a> {
    kind: u8,
    #[serde(borrow)]
    reason: WireBytes<'a>,
    #[serde(borrow)]
    detail: WireBytes<'a>,
}

/// [`OpErrorKind`]s in wire order (the index is part of the layout).
const WIRE_ERROR_KINDS: [OpErrorKind; 10] = [
    OpErrorKind::InvalidInput,
    OpErrorKind::InvalidOutput,
    OpErrorKind::InvalidAttribute,
    OpErrorKind::Dependency,
    OpErrorKind::ResourceExhausted,
    OpErrorKind::Refused,
    OpErrorKind::Timeout,
    OpErrorKind::Failed,
    OpErrorKind::Panicked,
    OpErrorKind::Internal,
];

/// The stable index of `kind` (its place in the wire layout).
pub(crate) fn error_kind_index(kind: OpErrorKind) -> u8 {
    WIRE_ERROR_KINDS
        .iter()
        .position(|k| *k == kind)
        .unwrap_or(WIRE_ERROR_KINDS.len() - 1) as u8
}

/// The kind at a stable index; `None` for an index no build wrote.
pub(crate) fn error_kind_from_index(index: u8) -> Option<OpErrorKind> {
    WIRE_ERROR_KINDS.get(usize::from(index)).copied()
}

/// [`EnvelopeKind`] on the wire; variant order is part of the layout.
#[derive(Serialize, Deserialize)]
enum WireKind {
    OneWay,
    Request,
    Response,
    BackoffNotice { retry_after_ns: u64 },
    BackoffClear,
    Credit,
}

/// One fill, borrowing its names and payload from the input.
#[derive(Serialize, Deserialize)]
struct WireFill<'a> {
    #[serde(borrow)]
    target: WireTarget<'a>,
    tag: u32,
    #[serde(borrow)]
    payload: WireBytes<'a>,
}

/// [`FillTarget`] on the wire; names stay raw bytes so a bad name fails
/// its fill, not the envelope.
#[derive(Serialize, Deserialize)]
enum WireTarget<'a> {
    Site {
        site: u32,
        #[serde(borrow)]
        input: WireBytes<'a>,
    },
    ComponentOp {
        component: u32,
        #[serde(borrow)]
        op: WireBytes<'a>,
    },
    Response,
}

/// A byte string borrowed from the input (serde's `&[u8]` would be a
/// sequence of `u8` on the encoding side).
struct WireBytes<'a>(&'a [u8]);

/// The parsed, still borrowed, envelope.
struct WireView<'a> {
    header: WireHeader,
    failure: Option<WireFailure<'a>>,
    reply_to: Vec<&'a [u8]>,
    fills: Vec<WireFill<'a>>,
}

fn write_envelope(
    envelope: &Envelope,
    limits: &WireLimits,
    start: usize,
    out: &mut Vec<u8>,
) -> Result<(), WireEncodeError> {
    put(out, &envelope.schema);
    put(
        out,
        &WireHeader {
            src: envelope.src.as_u64(),
            dst: envelope.dst.as_u64(),
            kind: envelope.kind.into(),
            wire_req_id: envelope.wire_req_id,
            remaining_deadline_ns: envelope.remaining_deadline_ns,
            credit: envelope.credit,
        },
    );
    let failure = envelope.failure.as_ref().map(|error| WireFailure {
        kind: error_kind_index(error.kind),
        reason: WireBytes(clip(&error.reason, limits.max_name_bytes).as_bytes()),
        detail: WireBytes(clip(&error.detail, COMPLETION_DETAIL_CAP).as_bytes()),
    });
    put(out, &failure);
    put(out, &(envelope.reply_to.len() as u64));
    let mut scratch = Vec::with_capacity(crate::framework::ADDRESS_BINARY_CAP);
    for address in &envelope.reply_to {
        scratch.clear();
        address.encode(&mut scratch);
        put(out, &WireBytes(&scratch));
    }
    put(out, &(envelope.fills.len() as u64));
    for (index, fill) in envelope.fills.iter().enumerate() {
        let (tag, payload) = match &fill.payload {
            Payload::Encoded { tag, bytes } => (*tag, bytes.as_slice()),
            Payload::Value(value) => {
                scratch.clear();
                value
                    .encode(&mut scratch)
                    .map_err(|source| WireEncodeError::Value { index, source })?;
                (value.type_tag(), scratch.as_slice())
            }
        };
        if payload.len() > limits.max_fill_bytes {
            return Err(WireEncodeError::FillTooLarge {
                index,
                len: payload.len(),
                cap: limits.max_fill_bytes,
            });
        }
        let name_len = match &fill.target {
            FillTarget::Site { input, .. } => input.len(),
            FillTarget::ComponentOp { op, .. } => op.len(),
            FillTarget::Response => 0,
        };
        if name_len > limits.max_name_bytes {
            return Err(WireEncodeError::NameTooLong {
                index,
                len: name_len,
                cap: limits.max_name_bytes,
            });
        }
        // Stop before writing a payload that cannot fit.
        let reached = out.len() - start + payload.len();
        if reached > limits.max_envelope_bytes {
            return Err(WireEncodeError::TooLarge {
                len: reached,
                cap: limits.max_envelope_bytes,
            });
        }
        put(
            out,
            &WireFill {
                target: (&fill.target).into(),
                tag: tag.as_u32(),
                payload: WireBytes(payload),
            },
        );
    }
    let len = out.len() - start;
    if len > limits.max_envelope_bytes {
        return Err(WireEncodeError::TooLarge {
            len,
            cap: limits.max_envelope_bytes,
        });
    }
    Ok(())
}

/// Serializes one item onto the end of `out`.
fn put<T: Serialize + ?Sized>(out: &mut Vec<u8>, item: &T) {
    // The wire structs hold only integers, options, enums and byte strings,
    // and the flavor never refuses a byte, so serializing cannot fail.
    postcard::serialize_with_flavor::<T, _, ()>(item, AppendFlavor(out))
        .expect("wire items always serialize into a growable Vec");
}

fn parse_view<'a>(bytes: &'a [u8], limits: &WireLimits) -> Result<WireView<'a>, WireDecodeError> {
    if bytes.len() > limits.max_envelope_bytes {
        return Err(WireDecodeError::TooLarge {
            len: bytes.len(),
            cap: limits.max_envelope_bytes,
        });
    }
    let (schema, rest) = take::<u16>(bytes, "schema")?;
    if schema != WIRE_SCHEMA_VERSION {
        return Err(WireDecodeError::SchemaMismatch {
            found: schema,
            expected: WIRE_SCHEMA_VERSION,
        });
    }
    let (header, rest) = take::<WireHeader>(rest, "header")?;
    let (failure, rest) = take::<Option<WireFailure<'a>>>(rest, "failure")?;

    let (count, mut rest) = take::<u64>(rest, "reply_to count")?;
    let count =
        within_cap(count, limits.max_reply_to).ok_or(WireDecodeError::TooManyAddresses {
            count,
            cap: limits.max_reply_to,
        })?;
    // Each address is at least a length byte; never reserve past the input.
    let mut reply_to = Vec::with_capacity(count.min(rest.len()));
    for _ in 0..count {
        let (address, after) = take::<WireBytes<'a>>(rest, "reply_to")?;
        reply_to.push(address.0);
        rest = after;
    }

    let (count, mut rest) = take::<u64>(rest, "fill count")?;
    let count = within_cap(count, limits.max_fills).ok_or(WireDecodeError::TooManyFills {
        count,
        cap: limits.max_fills,
    })?;
    let mut fills = Vec::with_capacity(count.min(rest.len() / MIN_WIRE_FILL_BYTES));
    for _ in 0..count {
        let (fill, after) = take::<WireFill<'a>>(rest, "fills")?;
        fills.push(fill);
        rest = after;
    }
    if !rest.is_empty() {
        return Err(WireDecodeError::TrailingBytes { extra: rest.len() });
    }
    Ok(WireView {
        header,
        failure,
        reply_to,
        fills,
    })
}

/// `count` as a `usize` if it is within `cap`.
fn within_cap(count: u64, cap: usize) -> Option<usize> {
    usize::try_from(count).ok().filter(|&count| count <= cap)
}

fn take<'a, T: Deserialize<'a>>(
    bytes: &'a [u8],
    section: &'static str,
) -> Result<(T, &'a [u8]), WireDecodeError> {
    postcard::take_from_bytes(bytes).map_err(|err| WireDecodeError::Malformed {
        section,
        detail: err.to_string(),
    })
}

fn decode_address(index: usize, raw: &[u8]) -> Result<Address, WireDecodeError> {
    let (address, used) = Address::decode(raw).map_err(|err| WireDecodeError::BadAddress {
        index,
        reason: err.to_string(),
    })?;
    if used != raw.len() {
        return Err(WireDecodeError::BadAddress {
            index,
            reason: format!("{} bytes after the address", raw.len() - used),
        });
    }
    Ok(address)
}

/// `text` cut to at most `cap` bytes at a UTF-8 character boundary.
fn clip(text: &str, cap: usize) -> &str {
    if text.len() <= cap {
        return text;
    }
    let mut end = cap;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// Checks a borrowed failure against its caps, then copies it out.
fn own_failure(raw: &WireFailure<'_>, limits: &WireLimits) -> Result<OpError, WireDecodeError> {
    let malformed = |detail: String| WireDecodeError::Malformed {
        section: "failure",
        detail,
    };
    let kind = error_kind_from_index(raw.kind)
        .ok_or_else(|| malformed(format!("unknown error kind {}", raw.kind)))?;
    let text = |raw: &[u8], cap: usize, what: &str| -> Result<String, WireDecodeError> {
        if raw.len() > cap {
            return Err(malformed(format!(
                "{what} is {} bytes, over the cap of {cap}",
                raw.len()
            )));
        }
        std::str::from_utf8(raw)
            .map(str::to_owned)
            .map_err(|_| malformed(format!("{what} is not UTF-8")))
    };
    let reason = text(raw.reason.0, limits.max_name_bytes, "reason")?;
    let detail = text(raw.detail.0, COMPLETION_DETAIL_CAP, "detail")?;
    Ok(OpError::new(kind, reason, detail))
}

/// Checks one borrowed fill against the per-fill caps and copies it out.
fn own_fill(raw: &WireFill<'_>, limits: &WireLimits) -> Result<Fill, FillError> {
    let payload = raw.payload.0;
    if payload.len() > limits.max_fill_bytes {
        return Err(FillError::TooLarge {
            len: payload.len(),
            cap: limits.max_fill_bytes,
        });
    }
    let name = |raw: &[u8]| -> Result<String, FillError> {
        if raw.len() > limits.max_name_bytes {
            return Err(FillError::NameTooLong {
                len: raw.len(),
                cap: limits.max_name_bytes,
            });
        }
        std::str::from_utf8(raw)
            .map(str::to_owned)
            .map_err(|_| FillError::NameNotUtf8)
    };
    let target = match &raw.target {
        WireTarget::Site { site, input } => FillTarget::Site {
            site: SiteId::new(*site),
            input: name(input.0)?,
        },
        WireTarget::ComponentOp { component, op } => FillTarget::ComponentOp {
            component: ComponentRef::new(*component),
            op: name(op.0)?,
        },
        WireTarget::Response => FillTarget::Response,
    };
    Ok(Fill {
        target,
        payload: Payload::Encoded {
            tag: TypeTag::new(raw.tag),
            bytes: payload.to_vec(),
        },
    })
}

impl From<EnvelopeKind> for WireKind {
    fn from(kind: EnvelopeKind) -> Self {
        match kind {
            EnvelopeKind::OneWay => Self::OneWay,
            EnvelopeKind::Request => Self::Request,
            EnvelopeKind::Response => Self::Response,
            EnvelopeKind::BackoffNotice { retry_after_ns } => {
                Self::BackoffNotice { retry_after_ns }
            }
            EnvelopeKind::BackoffClear => Self::BackoffClear,
            EnvelopeKind::Credit => Self::Credit,
        }
    }
}

impl From<WireKind> for EnvelopeKind {
    fn from(kind: WireKind) -> Self {
        match kind {
            WireKind::OneWay => Self::OneWay,
            WireKind::Request => Self::Request,
            WireKind::Response => Self::Response,
            WireKind::BackoffNotice { retry_after_ns } => Self::BackoffNotice { retry_after_ns },
            WireKind::BackoffClear => Self::BackoffClear,
            WireKind::Credit => Self::Credit,
        }
    }
}

impl<'a> From<&'a FillTarget> for WireTarget<'a> {
    fn from(target: &'a FillTarget) -> Self {
        match target {
            FillTarget::Site { site, input } => Self::Site {
                site: site.as_u32(),
                input: WireBytes(input.as_bytes()),
            },
            FillTarget::ComponentOp { component, op } => Self::ComponentOp {
                component: component.as_u32(),
                op: WireBytes(op.as_bytes()),
            },
            FillTarget::Response => Self::Response,
        }
    }
}

impl Serialize for WireBytes<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(self.0)
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for WireBytes<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct BorrowedBytes;

        impl<'de> Visitor<'de> for BorrowedBytes {
            type Value = &'de [u8];

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a byte string borrowed from the input")
            }

            fn visit_borrowed_bytes<E: de::Error>(
                self,
                bytes: &'de [u8],
            ) -> Result<Self::Value, E> {
                Ok(bytes)
            }
        }

        deserializer.deserialize_bytes(BorrowedBytes).map(WireBytes)
    }
}

/// A postcard output that appends to a caller's `Vec` in place.
struct AppendFlavor<'a>(&'a mut Vec<u8>);

impl postcard::ser_flavors::Flavor for AppendFlavor<'_> {
    type Output = ();

    fn try_extend(&mut self, data: &[u8]) -> postcard::Result<()> {
        self.0.extend_from_slice(data);
        Ok(())
    }

    fn try_push(&mut self, data: u8) -> postcard::Result<()> {
        self.0.push(data);
        Ok(())
    }

    fn finalize(self) -> postcard::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests;
