//! Built-in slot values: bytes, trigger, integers, floats, peer ids,
//! address lists and composites, each with a fixed reserved tag.
//!
//! | tag      | type            | byte form                                              |
//! |----------|-----------------|--------------------------------------------------------|
//! | `0x0001` | [`BytesValue`]  | the raw bytes (length = whole input)                   |
//! | `0x0002` | [`Trigger`]     | empty                                                  |
//! | `0x0003` | [`U64Value`]    | `u64` little-endian                                    |
//! | `0x0004` | [`I64Value`]    | `i64` little-endian                                    |
//! | `0x0005` | [`F64Value`]    | IEEE-754 bits as `u64` little-endian                   |
//! | `0x0006` | [`PeerIdValue`] | `u64` little-endian                                    |
//! | `0x0007` | [`AddressList`] | `u32` LE count, then each [`Address`] binary form      |
//! | `0x0008` | [`Composite`]   | `u32` LE count, then per entry: `u16` LE name length, UTF-8 name, `u32` LE tag, `u32` LE value length, value bytes |
//!
//! Tags `0x0009..0x0100` are reserved for further core values; the rest of
//! the range below [`TypeTag::USER_MIN`] for nodeflow's other crates.
//!
//! Invariants:
//! * Every value here is cheap to clone ([`BytesValue`] shares its buffer).
//! * Each decoder consumes exactly its input, checks every declared length
//!   or count against the remaining input before it allocates, and decodes
//!   composite entries through [`DecodeContext::decode_nested`] so the
//!   nesting depth stays within [`crate::ValueLimits`].
//! * `heap_bytes` depends only on contents, so a value charges the same
//!   before encoding and after decoding.

use std::fmt;
use std::mem::size_of;

use crate::framework::Address;
use crate::ids::PeerId;
use crate::value::{DecodeContext, EncodeError, SlotValue, TypeTag, ValueDecodeError, ValueReader};

/// A shared, immutable byte buffer: [`crate::sync::Arc`] over `[u8]`.
pub type SharedBytes = crate::sync::Arc<[u8]>;

/// Shared, immutable bytes; cloning bumps a reference count.
#[derive(Clone)]
pub struct BytesValue(SharedBytes);

/// A value-less signal: "this happened".
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Trigger;

/// An unsigned 64-bit integer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct U64Value(pub u64);

/// A signed 64-bit integer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct I64Value(pub i64);

/// A 64-bit float. Equality compares bit patterns: a NaN equals a NaN with
/// the same bits, and `0.0` differs from `-0.0`, so equality survives a
/// round trip exactly.
#[derive(Clone, Copy, Debug, Default)]
pub struct F64Value(pub f64);

/// A peer identity.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PeerIdValue(pub PeerId);

/// An ordered list of addresses.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct AddressList(Vec<Address>);

/// An ordered list of named values. Names need not be unique;
/// [`Composite::get`] returns the first match.
#[derive(Clone, Debug, Default)]
pub struct Composite(Vec<(String, Box<dyn SlotValue>)>);

impl BytesValue {
    /// Tag `0x0001`.
    pub const TAG: TypeTag = TypeTag::new(0x0001);

    /// Takes ownership of `bytes`.
    pub fn new(bytes: Vec<u8>) -> Self {
        Self(crate::sync::arc_slice(bytes))
    }

    /// Copies `bytes`.
    pub fn copy_from(bytes: &[u8]) -> Self {
        Self::new(bytes.to_vec())
    }

    /// Wraps an already shared buffer without copying.
    pub fn from_shared(bytes: SharedBytes) -> Self {
        Self(bytes)
    }

    /// The bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The shared buffer (a reference-count bump).
    pub fn shared(&self) -> SharedBytes {
        SharedBytes::clone(&self.0)
    }

    /// Number of bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are no bytes.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl PartialEq for BytesValue {
    fn eq(&self, other: &Self) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for BytesValue {}

impl fmt::Debug for BytesValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const SHOWN: usize = 16;
        let bytes = self.as_bytes();
        write!(
            f,
            "BytesValue({} bytes: {:02x?}",
            bytes.len(),
            &bytes[..bytes.len().min(SHOWN)]
        )?;
        if bytes.len() > SHOWN {
            write!(f, "..")?;
        }
        write!(f, ")")
    }
}

impl Trigger {
    /// Tag `0x0002`.
    pub const TAG: TypeTag = TypeTag::new(0x0002);
}

impl U64Value {
    /// Tag `0x0003`.
    pub const TAG: TypeTag = TypeTag::new(0x0003);
}

impl I64Value {
    /// Tag `0x0004`.
    pub const TAG: TypeTag = TypeTag::new(0x0004);
}

impl F64Value {
    /// Tag `0x0005`.
    pub const TAG: TypeTag = TypeTag::new(0x0005);
}

impl PartialEq for F64Value {
    fn eq(&self, other: &Self) -> bool {
        self.0.to_bits() == other.0.to_bits()
    }
}

impl PeerIdValue {
    /// Tag `0x0006`.
    pub const TAG: TypeTag = TypeTag::new(0x0006);
}

impl AddressList {
    /// Tag `0x0007`.
    pub const TAG: TypeTag = TypeTag::new(0x0007);

    /// Smallest binary address: flag byte plus peer.
    const MIN_ADDRESS_BYTES: usize = 1 + 8;

    /// A list of `addresses`, in order.
    pub fn new(addresses: Vec<Address>) -> Self {
        Self(addresses)
    }

    /// The addresses.
    pub fn addresses(&self) -> &[Address] {
        &self.0
    }

    /// The addresses, by value.
    pub fn into_inner(self) -> Vec<Address> {
        self.0
    }
}

impl fmt::Debug for AddressList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AddressList[")?;
        for (i, address) in self.0.iter().enumerate() {
            let sep = if i == 0 { "" } else { ", " };
            write!(f, "{sep}{address}")?;
        }
        f.write_str("]")
    }
}

impl Composite {
    /// Tag `0x0008`.
    pub const TAG: TypeTag = TypeTag::new(0x0008);

    /// Smallest encoded entry: name length, tag, value length.
    const MIN_ENTRY_BYTES: usize = 2 + 4 + 4;

    /// An empty composite.
    pub fn new() -> Self {
        Self(Vec::new())
    }

    /// The composite with `value` appended under `name` (builder style).
    pub fn with(mut self, name: impl Into<String>, value: impl SlotValue) -> Self {
        self.push(name, Box::new(value));
        self
    }

    /// Appends `value` under `name`.
    pub fn push(&mut self, name: impl Into<String>, value: Box<dyn SlotValue>) {
        self.0.push((name.into(), value));
    }

    /// The first value named `name`.
    pub fn get(&self, name: &str) -> Option<&dyn SlotValue> {
        self.0
            .iter()
            .find(|(entry, _)| entry == name)
            .map(|(_, value)| value.as_ref())
    }

    /// The entries, in order.
    pub fn entries(&self) -> &[(String, Box<dyn SlotValue>)] {
        &self.0
    }

    /// The entries, by value.
    pub fn into_entries(self) -> Vec<(String, Box<dyn SlotValue>)> {
        self.0
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are no entries.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Implements the parts of [`SlotValue`] that every built-in writes the same way.
macro_rules! slot_value_common {
    () => {
        fn type_tag(&self) -> TypeTag {
            Self::TAG
        }

        fn clone_value(&self) -> Box<dyn SlotValue> {
            Box::new(self.clone())
        }

        fn eq_value(&self, other: &dyn SlotValue) -> bool {
            other
                .downcast_ref::<Self>()
                .is_some_and(|other| other == self)
        }
    };
}

impl SlotValue for BytesValue {
    slot_value_common!();

    fn encode(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        out.extend_from_slice(self.as_bytes());
        Ok(())
    }

    fn heap_bytes(&self) -> usize {
        self.len()
    }
}

impl SlotValue for Trigger {
    slot_value_common!();

    fn encode(&self, _out: &mut Vec<u8>) -> Result<(), EncodeError> {
        Ok(())
    }
}

impl SlotValue for U64Value {
    slot_value_common!();

    fn encode(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        out.extend_from_slice(&self.0.to_le_bytes());
        Ok(())
    }
}

impl SlotValue for I64Value {
    slot_value_common!();

    fn encode(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        out.extend_from_slice(&self.0.to_le_bytes());
        Ok(())
    }
}

impl SlotValue for F64Value {
    slot_value_common!();

    fn encode(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        out.extend_from_slice(&self.0.to_bits().to_le_bytes());
        Ok(())
    }
}

impl SlotValue for PeerIdValue {
    slot_value_common!();

    fn encode(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        out.extend_from_slice(&self.0.as_u64().to_le_bytes());
        Ok(())
    }
}

impl SlotValue for AddressList {
    slot_value_common!();

    fn encode(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        out.extend_from_slice(&len_u32(self.0.len())?.to_le_bytes());
        for address in &self.0 {
            address.encode(out);
        }
        Ok(())
    }

    fn heap_bytes(&self) -> usize {
        self.0.len() * size_of::<Address>()
            + self
                .0
                .iter()
                .map(|address| address.op_name().map_or(0, str::len))
                .sum::<usize>()
    }
}

impl SlotValue for Composite {
    fn type_tag(&self) -> TypeTag {
        Self::TAG
    }

    fn clone_value(&self) -> Box<dyn SlotValue> {
        Box::new(self.clone())
    }

    fn encode(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        out.extend_from_slice(&len_u32(self.0.len())?.to_le_bytes());
        for (name, value) in &self.0 {
            let name_len = u16::try_from(name.len()).map_err(|_| EncodeError::TooLarge {
                len: name.len(),
                cap: usize::from(u16::MAX),
            })?;
            out.extend_from_slice(&name_len.to_le_bytes());
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(&value.type_tag().as_u32().to_le_bytes());
            // Reserve the length, encode in place, then patch the length.
            let len_at = out.len();
            out.extend_from_slice(&[0; 4]);
            value.encode(out)?;
            let value_len = len_u32(out.len() - len_at - 4)?;
            out[len_at..len_at + 4].copy_from_slice(&value_len.to_le_bytes());
        }
        Ok(())
    }

    fn heap_bytes(&self) -> usize {
        self.0
            .iter()
            .map(|(name, value)| {
                size_of::<(String, Box<dyn SlotValue>)>() + name.len() + value.heap_bytes()
            })
            .sum()
    }

    fn eq_value(&self, other: &dyn SlotValue) -> bool {
        let Some(other) = other.downcast_ref::<Self>() else {
            return false;
        };
        self.0.len() == other.0.len()
            && self
                .0
                .iter()
                .zip(&other.0)
                .all(|((a, x), (b, y))| a == b && x.eq_value(y.as_ref()))
    }
}

/// The decoder of every built-in value, by tag.
pub(crate) fn builtin_decoders() -> [(TypeTag, BuiltinDecoder); 8] {
    [
        (BytesValue::TAG, decode_bytes),
        (Trigger::TAG, decode_trigger),
        (U64Value::TAG, decode_u64),
        (I64Value::TAG, decode_i64),
        (F64Value::TAG, decode_f64),
        (PeerIdValue::TAG, decode_peer_id),
        (AddressList::TAG, decode_address_list),
        (Composite::TAG, decode_composite),
    ]
}

/// Signature shared by the built-in decoders.
pub(crate) type BuiltinDecoder =
    fn(&[u8], &DecodeContext<'_>) -> Result<Box<dyn SlotValue>, ValueDecodeError>;

fn decode_bytes(
    bytes: &[u8],
    _: &DecodeContext<'_>,
) -> Result<Box<dyn SlotValue>, ValueDecodeError> {
    Ok(Box::new(BytesValue::copy_from(bytes)))
}

fn decode_trigger(
    bytes: &[u8],
    _: &DecodeContext<'_>,
) -> Result<Box<dyn SlotValue>, ValueDecodeError> {
    ValueReader::new(bytes).finish()?;
    Ok(Box::new(Trigger))
}

fn decode_u64(bytes: &[u8], _: &DecodeContext<'_>) -> Result<Box<dyn SlotValue>, ValueDecodeError> {
    Ok(Box::new(U64Value(whole_u64(bytes)?)))
}

fn decode_i64(bytes: &[u8], _: &DecodeContext<'_>) -> Result<Box<dyn SlotValue>, ValueDecodeError> {
    Ok(Box::new(I64Value(i64::from_le_bytes(
        whole_u64(bytes)?.to_le_bytes(),
    ))))
}

fn decode_f64(bytes: &[u8], _: &DecodeContext<'_>) -> Result<Box<dyn SlotValue>, ValueDecodeError> {
    Ok(Box::new(F64Value(f64::from_bits(whole_u64(bytes)?))))
}

fn decode_peer_id(
    bytes: &[u8],
    _: &DecodeContext<'_>,
) -> Result<Box<dyn SlotValue>, ValueDecodeError> {
    Ok(Box::new(PeerIdValue(PeerId::new(whole_u64(bytes)?))))
}

fn decode_address_list(
    bytes: &[u8],
    context: &DecodeContext<'_>,
) -> Result<Box<dyn SlotValue>, ValueDecodeError> {
    let mut reader = ValueReader::new(bytes);
    let count = checked_count(&mut reader, AddressList::MIN_ADDRESS_BYTES, context)?;
    let mut addresses = Vec::with_capacity(count);
    for _ in 0..count {
        let (address, used) =
            Address::decode(reader.peek()).map_err(|err| ValueDecodeError::Invalid {
                reason: format!("address list entry: {err}"),
            })?;
        reader.take(used)?;
        addresses.push(address);
    }
    reader.finish()?;
    Ok(Box::new(AddressList(addresses)))
}

fn decode_composite(
    bytes: &[u8],
    context: &DecodeContext<'_>,
) -> Result<Box<dyn SlotValue>, ValueDecodeError> {
    let mut reader = ValueReader::new(bytes);
    let count = checked_count(&mut reader, Composite::MIN_ENTRY_BYTES, context)?;
    let mut entries = Vec::with_capacity(count);
    for _ in 0..count {
        let name_len = usize::from(reader.u16_le()?);
        let name =
            std::str::from_utf8(reader.take(name_len)?).map_err(|_| ValueDecodeError::Invalid {
                reason: "composite entry name is not UTF-8".to_owned(),
            })?;
        let tag = TypeTag::new(reader.u32_le()?);
        let value_len = usize::try_from(reader.u32_le()?).unwrap_or(usize::MAX);
        let value = context.decode_nested(tag, reader.take(value_len)?)?;
        entries.push((name.to_owned(), value));
    }
    reader.finish()?;
    Ok(Box::new(Composite(entries)))
}

/// Reads a `u32` count, refuses it above the entry cap or when the input
/// cannot hold that many entries of at least `min_entry_bytes`, and returns it.
fn checked_count(
    reader: &mut ValueReader<'_>,
    min_entry_bytes: usize,
    context: &DecodeContext<'_>,
) -> Result<usize, ValueDecodeError> {
    let count = reader.u32_le()?;
    let cap = context.limits().max_composite_entries;
    let count_usize = usize::try_from(count).unwrap_or(usize::MAX);
    if count_usize > cap {
        return Err(ValueDecodeError::TooManyEntries {
            count: u64::from(count),
            cap,
        });
    }
    let needed = count_usize.saturating_mul(min_entry_bytes);
    if needed > reader.remaining() {
        return Err(ValueDecodeError::Truncated {
            needed,
            available: reader.remaining(),
        });
    }
    Ok(count_usize)
}

fn whole_u64(bytes: &[u8]) -> Result<u64, ValueDecodeError> {
    let mut reader = ValueReader::new(bytes);
    let value = reader.u64_le()?;
    reader.finish()?;
    Ok(value)
}

fn len_u32(len: usize) -> Result<u32, EncodeError> {
    u32::try_from(len).map_err(|_| EncodeError::TooLarge {
        len,
        cap: u32::MAX as usize,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{ComponentRef, SiteId};

    fn encode(value: &dyn SlotValue) -> Vec<u8> {
        let mut out = Vec::new();
        value.encode(&mut out).unwrap();
        out
    }

    #[test]
    fn tags_are_distinct_and_reserved() {
        let decoders = builtin_decoders();
        for (i, (tag, _)) in decoders.iter().enumerate() {
            assert!(tag.is_builtin(), "{tag}");
            assert!(
                decoders[i + 1..].iter().all(|(other, _)| other != tag),
                "{tag}"
            );
        }
    }

    #[test]
    fn byte_forms_match_the_documented_table() {
        assert_eq!(encode(&Trigger), Vec::<u8>::new());
        assert_eq!(encode(&U64Value(0x0102)), [2, 1, 0, 0, 0, 0, 0, 0]);
        assert_eq!(encode(&I64Value(-1)), [0xff; 8]);
        assert_eq!(encode(&F64Value(1.0)), 1.0f64.to_bits().to_le_bytes());
        assert_eq!(encode(&PeerIdValue(PeerId::new(7))), 7u64.to_le_bytes());
        assert_eq!(encode(&BytesValue::copy_from(b"hi")), b"hi");
        let peer = Address::peer(PeerId::new(1));
        let mut expected = 1u32.to_le_bytes().to_vec();
        peer.encode(&mut expected);
        assert_eq!(encode(&AddressList::new(vec![peer])), expected);
        let composite = Composite::new().with("n", U64Value(5));
        let mut expected = 1u32.to_le_bytes().to_vec();
        expected.extend_from_slice(&1u16.to_le_bytes());
        expected.push(b'n');
        expected.extend_from_slice(&U64Value::TAG.as_u32().to_le_bytes());
        expected.extend_from_slice(&8u32.to_le_bytes());
        expected.extend_from_slice(&5u64.to_le_bytes());
        assert_eq!(encode(&composite), expected);
    }

    #[test]
    fn f64_equality_compares_bits() {
        assert!(F64Value(f64::NAN).eq_value(&F64Value(f64::NAN)));
        assert!(!F64Value(0.0).eq_value(&F64Value(-0.0)));
        assert!(F64Value(2.5).eq_value(&F64Value(2.5)));
        let other_nan = f64::from_bits(f64::NAN.to_bits() ^ 1);
        assert!(!F64Value(f64::NAN).eq_value(&F64Value(other_nan)));
    }

    #[test]
    fn equality_requires_the_same_type() {
        assert!(!U64Value(1).eq_value(&I64Value(1)));
        assert!(!Trigger.eq_value(&U64Value(0)));
        assert!(!Composite::new().eq_value(&AddressList::default()));
        let a = Composite::new().with("x", U64Value(1));
        assert!(!a.eq_value(&Composite::new().with("y", U64Value(1))));
        assert!(!a.eq_value(&Composite::new().with("x", U64Value(2))));
        assert!(!a.eq_value(&a.clone().with("x", U64Value(1))));
        assert!(a.eq_value(&a.clone()));
    }

    #[test]
    fn bytes_share_their_buffer_and_charge_their_length() {
        let a = BytesValue::new(vec![9; 100]);
        let b = a.clone();
        assert!(SharedBytes::ptr_eq(&a.shared(), &b.shared()));
        assert_eq!(a.heap_bytes(), 100);
        assert_eq!(BytesValue::new(Vec::new()).heap_bytes(), 0);
    }

    #[test]
    fn composite_heap_bytes_include_children() {
        let leaf = BytesValue::new(vec![0; 50]);
        let one = Composite::new().with("abc", leaf.clone());
        assert_eq!(
            one.heap_bytes(),
            size_of::<(String, Box<dyn SlotValue>)>() + 3 + 50
        );
        let two = one.clone().with("d", leaf);
        assert_eq!(two.heap_bytes(), 2 * one.heap_bytes() - 2);
    }

    #[test]
    fn composite_get_returns_the_first_match() {
        let c = Composite::new()
            .with("a", U64Value(1))
            .with("a", U64Value(2))
            .with("b", Trigger);
        assert!(c.get("a").unwrap().eq_value(&U64Value(1)));
        assert!(c.get("b").unwrap().is::<Trigger>());
        assert!(c.get("z").is_none());
        assert_eq!(c.len(), 3);
    }

    #[test]
    fn address_list_keeps_order() {
        let peer = PeerId::new(3);
        let list = AddressList::new(vec![
            Address::site(peer, SiteId::new(2)),
            Address::peer(peer),
            Address::component_op(peer, ComponentRef::new(1), "op").unwrap(),
        ]);
        assert_eq!(list.addresses()[1], Address::peer(peer));
        assert_eq!(list.heap_bytes(), 3 * size_of::<Address>() + 2);
    }
}
