//! Values that flow between ops: the [`SlotValue`] trait and its stable type tags.
//!
//! A value in a slot is a `Box<dyn SlotValue>` (or an `Arc`-backed value
//! whose clone is cheap). In-process, values move between ops and between
//! Nodes without being encoded; only when a value crosses a byte boundary
//! (the wire, a snapshot) is it encoded, and it is decoded again by its
//! [`TypeTag`] through a [`ValueRegistry`].
//!
//! Invariants:
//! * A [`TypeTag`] is chosen by the value's author and never derived from a
//!   Rust type name or a hash of one, so the wire format survives compiler
//!   upgrades. Tags below [`TypeTag::USER_MIN`] are reserved for nodeflow.
//! * `decode(encode(v))` through the registry yields a value equal to `v`.
//! * [`SlotValue::heap_bytes`] is what the value is charged against the
//!   Node's byte budget; it must not change over the value's life.

use std::any::Any;
use std::fmt;

use serde::{Deserialize, Serialize};

mod builtin;
mod registry;

pub use builtin::*;
pub use registry::*;

/// Values addressed by name: graph inputs and outputs, completion results.
pub type NamedValues = Vec<(String, Box<dyn SlotValue>)>;

/// Stable identifier of a value type on the wire and in snapshots.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TypeTag(u32);

impl TypeTag {
    /// First tag available to user-defined values; lower tags are nodeflow's.
    pub const USER_MIN: u32 = 0x0001_0000;

    /// A tag with the given stable number.
    pub const fn new(raw: u32) -> Self {
        Self(raw)
    }

    /// The stable number.
    pub const fn as_u32(self) -> u32 {
        self.0
    }

    /// Whether the tag is in nodeflow's reserved range.
    pub const fn is_builtin(self) -> bool {
        self.0 < Self::USER_MIN
    }
}

impl fmt::Display for TypeTag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "tag:{:#x}", self.0)
    }
}

/// Why a value could not be encoded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// The value has no byte form (for example a handle to local state).
    #[error("value of type `{type_name}` cannot cross a byte boundary: {reason}")]
    NotEncodable {
        /// Rust type name, for the message only.
        type_name: &'static str,
        /// What the value's author says about it.
        reason: String,
    },
    /// The encoded form would exceed a cap.
    #[error("encoded value would be {len} bytes, over the cap of {cap}")]
    TooLarge {
        /// The size the encoding reached or would reach.
        len: usize,
        /// The cap in force.
        cap: usize,
    },
}

/// A value that can sit in an op's input or output slot.
///
/// Implementors are cheap to clone (share large buffers behind an `Arc`),
/// thread-safe, and have a stable [`TypeTag`]. To cross a byte boundary a
/// value encodes itself with [`SlotValue::encode`]; the matching decoder is
/// registered in a [`ValueRegistry`] under the same tag.
pub trait SlotValue: Any + Send + Sync + fmt::Debug {
    /// The value's stable type tag.
    fn type_tag(&self) -> TypeTag;

    /// A boxed copy of the value.
    fn clone_value(&self) -> Box<dyn SlotValue>;

    /// Appends the value's byte form to `out`.
    fn encode(&self, out: &mut Vec<u8>) -> Result<(), EncodeError>;

    /// Heap bytes the value owns, charged against the Node's byte budget.
    /// Values without a sizeable heap part keep the default of zero.
    fn heap_bytes(&self) -> usize {
        0
    }

    /// Structural equality with another slot value (same type and contents).
    fn eq_value(&self, other: &dyn SlotValue) -> bool;
}

impl dyn SlotValue {
    /// The value as `&T`, if it is a `T`.
    pub fn downcast_ref<T: SlotValue>(&self) -> Option<&T> {
        let any: &dyn Any = self;
        any.downcast_ref::<T>()
    }

    /// Whether the value is a `T`.
    pub fn is<T: SlotValue>(&self) -> bool {
        let any: &dyn Any = self;
        any.is::<T>()
    }
}

impl Clone for Box<dyn SlotValue> {
    fn clone(&self) -> Self {
        self.clone_value()
    }
}

impl PartialEq for dyn SlotValue {
    fn eq(&self, other: &Self) -> bool {
        self.eq_value(other)
    }
}
