//! `ValueRegistry`: turns a [`TypeTag`] and bytes back into a live [`SlotValue`].
//!
//! A registry maps each tag to one decoder. [`ValueRegistry::with_builtins`]
//! holds the decoders of every built-in value (see [`crate::BytesValue`] and
//! its siblings); applications add their own types with
//! [`ValueRegistry::register`] under tags at or above [`TypeTag::USER_MIN`].
//!
//! Invariants:
//! * One decoder per tag: a second registration of a tag is refused, never
//!   silently replaces the first.
//! * User code cannot claim a reserved tag through [`ValueRegistry::register`];
//!   nodeflow's own crates use [`ValueRegistry::register_reserved`].
//! * The table is capped ([`ValueRegistry::DEFAULT_MAX_TYPES`] unless built
//!   with [`ValueRegistry::with_max_types`]); refusals are counted in
//!   [`RegistryStats`].
//! * [`ValueRegistry::decode`] checks the input length against
//!   [`ValueLimits::max_value_bytes`] before calling any decoder, and
//!   decoders check every declared length against the remaining input
//!   (see [`ValueReader`]) before they allocate. Nested values decode
//!   through [`DecodeContext::decode_nested`], which enforces
//!   [`ValueLimits::max_composite_depth`], so hostile input can neither
//!   allocate unbounded memory nor recurse without bound.
//! * A registry is `Send + Sync`: build it once, share it in an `Arc`.

use std::collections::HashMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::value::{SlotValue, TypeTag};

/// A decoder: reads one value of its tag from the whole of `bytes`.
///
/// It must consume every byte (report leftovers as
/// [`ValueDecodeError::TrailingBytes`]), check lengths before allocating,
/// and decode nested values only through [`DecodeContext::decode_nested`].
pub type ValueDecoder =
    dyn Fn(&[u8], &DecodeContext<'_>) -> Result<Box<dyn SlotValue>, ValueDecodeError> + Send + Sync;

/// Caps applied while decoding one value (and everything nested in it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ValueLimits {
    /// Largest encoded value accepted, in bytes. Default 4 MiB, the same as
    /// the wire's per-fill cap.
    pub max_value_bytes: usize,
    /// How many composites may enclose a value. Default 8.
    pub max_composite_depth: usize,
    /// Most entries in one composite (or items in one list). Default 256.
    pub max_composite_entries: usize,
}

impl Default for ValueLimits {
    fn default() -> Self {
        Self {
            max_value_bytes: 4 * 1024 * 1024,
            max_composite_depth: 8,
            max_composite_entries: 256,
        }
    }
}

/// Why bytes could not be turned back into a value.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ValueDecodeError {
    /// No decoder is registered for the tag.
    #[error(
        "no decoder registered for {tag}; register the value type on this peer's ValueRegistry"
    )]
    UnknownTag {
        /// The tag found.
        tag: TypeTag,
    },
    /// The input ended before a field it announced.
    #[error("value truncated: needed {needed} bytes, {available} available; the sender's encoding is incomplete")]
    Truncated {
        /// Bytes the next field needs.
        needed: usize,
        /// Bytes left in the input.
        available: usize,
    },
    /// Bytes were left after the value was complete.
    #[error("{extra} bytes left after the value; the tag does not match the bytes or the encoding is corrupt")]
    TrailingBytes {
        /// How many bytes were left.
        extra: usize,
    },
    /// The encoded value is larger than [`ValueLimits::max_value_bytes`].
    #[error("encoded value is {len} bytes, over the cap of {cap}; send it in smaller parts or raise ValueLimits")]
    TooLarge {
        /// The input's length.
        len: usize,
        /// The cap in force.
        cap: usize,
    },
    /// Composites are nested deeper than [`ValueLimits::max_composite_depth`].
    #[error(
        "values nested more than {cap} composites deep; flatten the value or raise ValueLimits"
    )]
    DepthExceeded {
        /// The cap in force.
        cap: usize,
    },
    /// A composite or list declares more entries than
    /// [`ValueLimits::max_composite_entries`].
    #[error(
        "{count} entries declared, over the cap of {cap}; split the value or raise ValueLimits"
    )]
    TooManyEntries {
        /// The declared count.
        count: u64,
        /// The cap in force.
        cap: usize,
    },
    /// The bytes have the right length but do not form a valid value.
    #[error("invalid value bytes: {reason}")]
    Invalid {
        /// What is wrong, in the decoder's words.
        reason: String,
    },
}

/// Why a decoder could not be registered.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RegistryError {
    /// The tag already has a decoder.
    #[error("{tag} already has a decoder; pick another tag for this type")]
    Duplicate {
        /// The contested tag.
        tag: TypeTag,
    },
    /// A user registration named a tag in nodeflow's reserved range.
    #[error(
        "{tag} is reserved for nodeflow; user types need a tag >= {:#x}",
        TypeTag::USER_MIN
    )]
    Reserved {
        /// The refused tag.
        tag: TypeTag,
    },
    /// [`ValueRegistry::register_reserved`] was given a user-range tag.
    #[error("{tag} is in the user range; register it with ValueRegistry::register")]
    NotReserved {
        /// The refused tag.
        tag: TypeTag,
    },
    /// The registry already holds its maximum number of types.
    #[error("value registry is full ({cap} types); build it with a larger ValueRegistry::with_max_types")]
    Full {
        /// The cap in force.
        cap: usize,
    },
}

/// Counters of a [`ValueRegistry`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegistryStats {
    /// Types currently registered.
    pub registered: usize,
    /// Registrations refused for any reason (duplicate, reserved, full).
    pub refused: u64,
    /// Of those, refusals because the table was full.
    pub refused_full: u64,
}

/// Map from [`TypeTag`] to the decoder of that value type.
pub struct ValueRegistry {
    decoders: HashMap<TypeTag, Box<ValueDecoder>>,
    max_types: usize,
    stats: RegistryStats,
}

impl ValueRegistry {
    /// Default cap on registered types.
    pub const DEFAULT_MAX_TYPES: usize = 1024;

    /// An empty registry with the default cap.
    pub fn new() -> Self {
        Self::with_max_types(Self::DEFAULT_MAX_TYPES)
    }

    /// An empty registry holding at most `max_types` decoders.
    pub fn with_max_types(max_types: usize) -> Self {
        Self {
            decoders: HashMap::new(),
            max_types,
            stats: RegistryStats::default(),
        }
    }

    /// A registry with the default cap and every built-in value's decoder.
    pub fn with_builtins() -> Self {
        let mut registry = Self::new();
        for (tag, decoder) in crate::value::builtin::builtin_decoders() {
            registry
                .insert(tag, Box::new(decoder))
                .expect("builtin tags are distinct and far fewer than DEFAULT_MAX_TYPES");
        }
        registry
    }

    /// Registers the decoder of a user type. `tag` must be at or above
    /// [`TypeTag::USER_MIN`] and not yet registered.
    pub fn register<F>(&mut self, tag: TypeTag, decoder: F) -> Result<(), RegistryError>
    where
        F: Fn(&[u8], &DecodeContext<'_>) -> Result<Box<dyn SlotValue>, ValueDecodeError>
            + Send
            + Sync
            + 'static,
    {
        if tag.is_builtin() {
            self.stats.refused += 1;
            return Err(RegistryError::Reserved { tag });
        }
        self.insert(tag, Box::new(decoder))
    }

    /// Registers a decoder under a reserved tag. For nodeflow's own crates
    /// (for example the runtime's tensor type); applications use
    /// [`ValueRegistry::register`].
    pub fn register_reserved<F>(&mut self, tag: TypeTag, decoder: F) -> Result<(), RegistryError>
    where
        F: Fn(&[u8], &DecodeContext<'_>) -> Result<Box<dyn SlotValue>, ValueDecodeError>
            + Send
            + Sync
            + 'static,
    {
        if !tag.is_builtin() {
            self.stats.refused += 1;
            return Err(RegistryError::NotReserved { tag });
        }
        self.insert(tag, Box::new(decoder))
    }

    /// Decodes one value of type `tag` from the whole of `bytes`.
    pub fn decode(
        &self,
        tag: TypeTag,
        bytes: &[u8],
        limits: &ValueLimits,
    ) -> Result<Box<dyn SlotValue>, ValueDecodeError> {
        if bytes.len() > limits.max_value_bytes {
            return Err(ValueDecodeError::TooLarge {
                len: bytes.len(),
                cap: limits.max_value_bytes,
            });
        }
        let context = DecodeContext {
            registry: self,
            limits,
            depth: 0,
        };
        self.run(tag, bytes, &context)
    }

    /// Whether `tag` has a decoder.
    pub fn contains(&self, tag: TypeTag) -> bool {
        self.decoders.contains_key(&tag)
    }

    /// The registry's counters.
    pub fn stats(&self) -> RegistryStats {
        self.stats
    }

    fn insert(&mut self, tag: TypeTag, decoder: Box<ValueDecoder>) -> Result<(), RegistryError> {
        if self.decoders.contains_key(&tag) {
            self.stats.refused += 1;
            return Err(RegistryError::Duplicate { tag });
        }
        if self.decoders.len() >= self.max_types {
            self.stats.refused += 1;
            self.stats.refused_full += 1;
            return Err(RegistryError::Full {
                cap: self.max_types,
            });
        }
        self.decoders.insert(tag, decoder);
        self.stats.registered = self.decoders.len();
        Ok(())
    }

    fn run(
        &self,
        tag: TypeTag,
        bytes: &[u8],
        context: &DecodeContext<'_>,
    ) -> Result<Box<dyn SlotValue>, ValueDecodeError> {
        let decoder = self
            .decoders
            .get(&tag)
            .ok_or(ValueDecodeError::UnknownTag { tag })?;
        decoder(bytes, context)
    }
}

impl Default for ValueRegistry {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for ValueRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut tags: Vec<_> = self.decoders.keys().copied().collect();
        tags.sort();
        f.debug_struct("ValueRegistry")
            .field("tags", &tags)
            .field("max_types", &self.max_types)
            .field("stats", &self.stats)
            .finish()
    }
}

/// What a decoder may consult: the registry (for nested values), the
/// limits in force and how deep inside composites it runs.
#[derive(Debug)]
pub struct DecodeContext<'a> {
    registry: &'a ValueRegistry,
    limits: &'a ValueLimits,
    depth: usize,
}

impl DecodeContext<'_> {
    /// The limits in force for this decode.
    pub fn limits(&self) -> &ValueLimits {
        self.limits
    }

    /// How many composites enclose the value being decoded (0 at top level).
    pub fn depth(&self) -> usize {
        self.depth
    }

    /// Decodes a value nested one level deeper than the current one,
    /// refusing it if that exceeds [`ValueLimits::max_composite_depth`].
    pub fn decode_nested(
        &self,
        tag: TypeTag,
        bytes: &[u8],
    ) -> Result<Box<dyn SlotValue>, ValueDecodeError> {
        let depth = self.depth + 1;
        if depth > self.limits.max_composite_depth {
            return Err(ValueDecodeError::DepthExceeded {
                cap: self.limits.max_composite_depth,
            });
        }
        let context = DecodeContext {
            registry: self.registry,
            limits: self.limits,
            depth,
        };
        self.registry.run(tag, bytes, &context)
    }
}

/// A cursor over a value's bytes that checks every read against the
/// remaining input, for writing decoders.
#[derive(Clone, Debug)]
pub struct ValueReader<'a> {
    input: &'a [u8],
    at: usize,
}

impl<'a> ValueReader<'a> {
    /// A reader at the start of `input`.
    pub fn new(input: &'a [u8]) -> Self {
        Self { input, at: 0 }
    }

    /// Bytes not yet read.
    pub fn remaining(&self) -> usize {
        self.input.len() - self.at
    }

    /// The next `n` bytes, or [`ValueDecodeError::Truncated`].
    pub fn take(&mut self, n: usize) -> Result<&'a [u8], ValueDecodeError> {
        let available = self.remaining();
        if n > available {
            return Err(ValueDecodeError::Truncated {
                needed: n,
                available,
            });
        }
        let bytes = &self.input[self.at..self.at + n];
        self.at += n;
        Ok(bytes)
    }

    /// Everything not yet read, without consuming it (for sub-decoders
    /// that report how much they used; follow with [`ValueReader::take`]).
    pub fn peek(&self) -> &'a [u8] {
        &self.input[self.at..]
    }

    /// The next `u16`, little-endian.
    pub fn u16_le(&mut self) -> Result<u16, ValueDecodeError> {
        self.array().map(u16::from_le_bytes)
    }

    /// The next `u32`, little-endian.
    pub fn u32_le(&mut self) -> Result<u32, ValueDecodeError> {
        self.array().map(u32::from_le_bytes)
    }

    /// The next `u64`, little-endian.
    pub fn u64_le(&mut self) -> Result<u64, ValueDecodeError> {
        self.array().map(u64::from_le_bytes)
    }

    /// Succeeds only if every byte was read.
    pub fn finish(self) -> Result<(), ValueDecodeError> {
        match self.remaining() {
            0 => Ok(()),
            extra => Err(ValueDecodeError::TrailingBytes { extra }),
        }
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], ValueDecodeError> {
        let mut out = [0; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framework::Address;
    use crate::ids::{ComponentRef, PeerId, SiteId};
    use crate::value::builtin::*;
    use crate::value::EncodeError;

    /// A user value for registration tests.
    #[derive(Debug, PartialEq)]
    struct Celsius(i32);

    const CELSIUS: TypeTag = TypeTag::new(TypeTag::USER_MIN + 7);

    impl SlotValue for Celsius {
        fn type_tag(&self) -> TypeTag {
            CELSIUS
        }
        fn clone_value(&self) -> Box<dyn SlotValue> {
            Box::new(Celsius(self.0))
        }
        fn encode(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
            out.extend_from_slice(&self.0.to_le_bytes());
            Ok(())
        }
        fn eq_value(&self, other: &dyn SlotValue) -> bool {
            other.downcast_ref::<Self>() == Some(self)
        }
    }

    fn decode_celsius(
        bytes: &[u8],
        _: &DecodeContext<'_>,
    ) -> Result<Box<dyn SlotValue>, ValueDecodeError> {
        let mut reader = ValueReader::new(bytes);
        let raw = reader.u32_le()?;
        reader.finish()?;
        Ok(Box::new(Celsius(raw as i32)))
    }

    fn encode(value: &dyn SlotValue) -> Vec<u8> {
        let mut out = Vec::new();
        value.encode(&mut out).unwrap();
        out
    }

    fn samples() -> Vec<Box<dyn SlotValue>> {
        let peer = PeerId::new(42);
        let addresses = AddressList::new(vec![
            Address::peer(peer),
            Address::site(peer, SiteId::new(2)),
            Address::component_op(peer, ComponentRef::new(1), "fit").unwrap(),
        ]);
        let inner = Composite::new()
            .with("flag", Trigger)
            .with("who", PeerIdValue(peer));
        vec![
            Box::new(BytesValue::new(vec![1, 2, 3, 255])),
            Box::new(BytesValue::new(Vec::new())),
            Box::new(Trigger),
            Box::new(U64Value(u64::MAX)),
            Box::new(I64Value(i64::MIN)),
            Box::new(F64Value(-1.5)),
            Box::new(F64Value(f64::NAN)),
            Box::new(PeerIdValue(peer)),
            Box::new(addresses.clone()),
            Box::new(AddressList::new(Vec::new())),
            Box::new(Composite::new()),
            Box::new(
                Composite::new()
                    .with("bytes", BytesValue::copy_from(b"abc"))
                    .with("n", U64Value(7))
                    .with("addrs", addresses)
                    .with("inner", inner),
            ),
        ]
    }

    #[test]
    fn every_builtin_round_trips_through_the_registry() {
        let registry = ValueRegistry::with_builtins();
        let limits = ValueLimits::default();
        for value in samples() {
            let bytes = encode(value.as_ref());
            let back = registry.decode(value.type_tag(), &bytes, &limits).unwrap();
            assert!(
                back.eq_value(value.as_ref()),
                "{value:?} came back as {back:?}"
            );
            assert_eq!(back.type_tag(), value.type_tag());
            assert_eq!(back.heap_bytes(), value.heap_bytes(), "{value:?}");
        }
    }

    #[test]
    fn unknown_tag_is_a_typed_error() {
        let registry = ValueRegistry::with_builtins();
        let tag = TypeTag::new(0xfff0);
        let err = registry
            .decode(tag, &[], &ValueLimits::default())
            .unwrap_err();
        assert_eq!(err, ValueDecodeError::UnknownTag { tag });
    }

    #[test]
    fn every_truncation_of_every_builtin_is_an_error() {
        let registry = ValueRegistry::with_builtins();
        let limits = ValueLimits::default();
        for value in samples() {
            let bytes = encode(value.as_ref());
            // Raw bytes have no framing: every prefix is itself a valid value.
            if value.is::<BytesValue>() {
                continue;
            }
            for cut in 0..bytes.len() {
                let result = registry.decode(value.type_tag(), &bytes[..cut], &limits);
                assert!(result.is_err(), "{value:?} cut at {cut} decoded");
            }
        }
    }

    #[test]
    fn malformed_contents_are_invalid() {
        let registry = ValueRegistry::with_builtins();
        let limits = ValueLimits::default();
        let mut bad_name = 1u32.to_le_bytes().to_vec();
        bad_name.extend_from_slice(&1u16.to_le_bytes());
        bad_name.push(0xff);
        bad_name.extend_from_slice(&Trigger::TAG.as_u32().to_le_bytes());
        bad_name.extend_from_slice(&0u32.to_le_bytes());
        let err = registry
            .decode(Composite::TAG, &bad_name, &limits)
            .unwrap_err();
        assert!(matches!(err, ValueDecodeError::Invalid { .. }), "{err:?}");
        let mut bad_address = 1u32.to_le_bytes().to_vec();
        bad_address.push(0x80);
        bad_address.extend_from_slice(&1u64.to_le_bytes());
        let err = registry
            .decode(AddressList::TAG, &bad_address, &limits)
            .unwrap_err();
        assert!(matches!(err, ValueDecodeError::Invalid { .. }), "{err:?}");
        // An unknown tag nested in a composite surfaces as such.
        let mut unknown = 1u32.to_le_bytes().to_vec();
        unknown.extend_from_slice(&1u16.to_le_bytes());
        unknown.push(b'x');
        unknown.extend_from_slice(&0xfff0u32.to_le_bytes());
        unknown.extend_from_slice(&0u32.to_le_bytes());
        let err = registry
            .decode(Composite::TAG, &unknown, &limits)
            .unwrap_err();
        assert_eq!(
            err,
            ValueDecodeError::UnknownTag {
                tag: TypeTag::new(0xfff0)
            }
        );
    }

    #[test]
    fn trailing_bytes_are_refused() {
        let registry = ValueRegistry::with_builtins();
        let mut bytes = encode(&U64Value(1));
        bytes.push(0);
        let err = registry
            .decode(U64Value::TAG, &bytes, &ValueLimits::default())
            .unwrap_err();
        assert_eq!(err, ValueDecodeError::TrailingBytes { extra: 1 });
    }

    #[test]
    fn oversize_input_is_refused_before_decoding() {
        let registry = ValueRegistry::with_builtins();
        let limits = ValueLimits {
            max_value_bytes: 3,
            ..ValueLimits::default()
        };
        let err = registry
            .decode(BytesValue::TAG, &[0; 4], &limits)
            .unwrap_err();
        assert_eq!(err, ValueDecodeError::TooLarge { len: 4, cap: 3 });
        assert!(registry.decode(BytesValue::TAG, &[0; 3], &limits).is_ok());
    }

    #[test]
    fn huge_declared_counts_error_without_allocating() {
        let registry = ValueRegistry::with_builtins();
        let limits = ValueLimits {
            max_composite_entries: usize::MAX,
            ..ValueLimits::default()
        };
        // An address list claiming u32::MAX entries in 4 bytes.
        let err = registry
            .decode(AddressList::TAG, &u32::MAX.to_le_bytes(), &limits)
            .unwrap_err();
        assert!(matches!(err, ValueDecodeError::Truncated { .. }), "{err:?}");
        // A composite claiming u32::MAX entries.
        let err = registry
            .decode(Composite::TAG, &u32::MAX.to_le_bytes(), &limits)
            .unwrap_err();
        assert!(matches!(err, ValueDecodeError::Truncated { .. }), "{err:?}");
        // A composite entry claiming a 4 GiB value.
        let mut bytes = 1u32.to_le_bytes().to_vec();
        bytes.extend_from_slice(&1u16.to_le_bytes());
        bytes.push(b'x');
        bytes.extend_from_slice(&U64Value::TAG.as_u32().to_le_bytes());
        bytes.extend_from_slice(&u32::MAX.to_le_bytes());
        let err = registry
            .decode(Composite::TAG, &bytes, &limits)
            .unwrap_err();
        assert!(matches!(err, ValueDecodeError::Truncated { .. }), "{err:?}");
    }

    #[test]
    fn entry_count_cap_is_checked_before_reading_entries() {
        let registry = ValueRegistry::with_builtins();
        let limits = ValueLimits {
            max_composite_entries: 2,
            ..ValueLimits::default()
        };
        let three = Composite::new()
            .with("a", Trigger)
            .with("b", Trigger)
            .with("c", Trigger);
        let err = registry
            .decode(Composite::TAG, &encode(&three), &limits)
            .unwrap_err();
        assert_eq!(err, ValueDecodeError::TooManyEntries { count: 3, cap: 2 });
        let list = AddressList::new(vec![Address::peer(PeerId::new(1)); 3]);
        let err = registry
            .decode(AddressList::TAG, &encode(&list), &limits)
            .unwrap_err();
        assert_eq!(err, ValueDecodeError::TooManyEntries { count: 3, cap: 2 });
    }

    fn nested(levels: usize) -> Composite {
        let mut value = Composite::new();
        for _ in 0..levels {
            value = Composite::new().with("child", value);
        }
        value
    }

    #[test]
    fn nesting_depth_is_capped() {
        let registry = ValueRegistry::with_builtins();
        let limits = ValueLimits {
            max_composite_depth: 3,
            ..ValueLimits::default()
        };
        // `nested(3)`: the innermost composite sits inside three others.
        let ok = nested(3);
        let back = registry
            .decode(Composite::TAG, &encode(&ok), &limits)
            .unwrap();
        assert!(back.eq_value(&ok));
        let err = registry
            .decode(Composite::TAG, &encode(&nested(4)), &limits)
            .unwrap_err();
        assert_eq!(err, ValueDecodeError::DepthExceeded { cap: 3 });
    }

    #[test]
    fn user_types_register_and_round_trip() {
        let mut registry = ValueRegistry::with_builtins();
        registry.register(CELSIUS, decode_celsius).unwrap();
        let value = Celsius(-40);
        let back = registry
            .decode(CELSIUS, &encode(&value), &ValueLimits::default())
            .unwrap();
        assert_eq!(back.downcast_ref::<Celsius>(), Some(&value));
        // Nested inside a builtin composite, through the same registry.
        let outer = Composite::new().with("t", Celsius(21));
        let back = registry
            .decode(Composite::TAG, &encode(&outer), &ValueLimits::default())
            .unwrap();
        assert!(back.eq_value(&outer));
    }

    #[test]
    fn duplicate_reserved_and_overflowing_registrations_are_refused_and_counted() {
        let mut registry = ValueRegistry::with_builtins();
        let builtins = registry.stats().registered;
        registry.register(CELSIUS, decode_celsius).unwrap();
        assert_eq!(
            registry.register(CELSIUS, decode_celsius),
            Err(RegistryError::Duplicate { tag: CELSIUS })
        );
        assert_eq!(
            registry.register(U64Value::TAG, decode_celsius),
            Err(RegistryError::Reserved { tag: U64Value::TAG })
        );
        assert_eq!(
            registry.register_reserved(CELSIUS, decode_celsius),
            Err(RegistryError::NotReserved { tag: CELSIUS })
        );
        assert_eq!(
            registry.register_reserved(U64Value::TAG, decode_celsius),
            Err(RegistryError::Duplicate { tag: U64Value::TAG })
        );
        assert_eq!(registry.stats().refused, 4);
        assert_eq!(registry.stats().registered, builtins + 1);
        // The first decoder is still the one in force.
        let back = registry
            .decode(
                U64Value::TAG,
                &encode(&U64Value(9)),
                &ValueLimits::default(),
            )
            .unwrap();
        assert!(back.eq_value(&U64Value(9)));

        let mut small = ValueRegistry::with_max_types(1);
        small.register(CELSIUS, decode_celsius).unwrap();
        let other = TypeTag::new(TypeTag::USER_MIN + 8);
        assert_eq!(
            small.register(other, decode_celsius),
            Err(RegistryError::Full { cap: 1 })
        );
        assert_eq!(small.stats().refused_full, 1);
        assert!(!small.contains(other));
    }

    #[test]
    fn registry_is_shareable_across_threads() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<ValueRegistry>();
    }

    #[test]
    fn reader_reports_truncation_and_leftovers() {
        let mut reader = ValueReader::new(&[1, 0, 2]);
        assert_eq!(reader.u16_le().unwrap(), 1);
        assert_eq!(
            reader.u32_le().unwrap_err(),
            ValueDecodeError::Truncated {
                needed: 4,
                available: 1
            }
        );
        assert_eq!(reader.remaining(), 1);
        assert_eq!(
            reader.finish(),
            Err(ValueDecodeError::TrailingBytes { extra: 1 })
        );
    }
}
