//! Envelope, fill and payload types.
//!
//! Invariants: an envelope names one source and one destination peer; its
//! fills are independent (a bad fill fails alone, its siblings still
//! deliver); a [`Payload::Value`] never leaves the process.

use crate::ids::{ComponentRef, PeerId, SiteId};
use crate::value::{SlotValue, TypeTag};
use crate::framework::Address;

/// Version of the envelope layout this build writes and reads.
pub const WIRE_SCHEMA_VERSION: u16 = 1;

/// A message from one Node to another.
#[derive(Clone, Debug, PartialEq)]
pub struct Envelope {
    /// Layout version, [`WIRE_SCHEMA_VERSION`] when built by this crate.
    pub schema: u16,
    /// The sending peer.
    pub src: PeerId,
    /// The receiving peer.
    pub dst: PeerId,
    /// What the envelope is for.
    pub kind: EnvelopeKind,
    /// Request/response correlation token (starts at 1; `None` for one-way).
    pub wire_req_id: Option<u64>,
    /// Deadline budget the sender has left, in nanoseconds.
    pub remaining_deadline_ns: Option<u64>,
    /// Addresses the sender can be reached at (for replies and dial-back).
    pub reply_to: Vec<Address>,
    /// The values carried.
    pub fills: Vec<Fill>,
}

/// What an envelope is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum EnvelopeKind {
    /// One-way data; no reply expected.
    OneWay,
    /// A request; the receiver answers with a `Response` carrying the same token.
    Request,
    /// The answer to a `Request`.
    Response,
    /// The receiver is overloaded: the sender should hold off for the given time.
    BackoffNotice {
        /// How long the sender should wait before sending again, in nanoseconds.
        retry_after_ns: u64,
    },
    /// The receiver has recovered from overload: the sender may resume.
    BackoffClear,
}

/// One value addressed to one input on the receiving peer.
#[derive(Clone, Debug, PartialEq)]
pub struct Fill {
    /// Which graph input or component op receives the value.
    pub target: FillTarget,
    /// The value.
    pub payload: Payload,
}

/// Where a fill lands on the receiving peer.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FillTarget {
    /// Data plane: a named input of the graph installed at `site`.
    Site {
        /// The graph site.
        site: SiteId,
        /// The graph input's value name.
        input: String,
    },
    /// Control plane: an op of a bound component.
    ComponentOp {
        /// The component.
        component: ComponentRef,
        /// The op name on that component.
        op: String,
    },
}

/// A fill's value: encoded bytes, or (in-process only) the live value.
#[derive(Debug)]
#[non_exhaustive]
pub enum Payload {
    /// The value's byte form, decodable by `tag` through the value registry.
    Encoded {
        /// The value's type tag.
        tag: TypeTag,
        /// The encoded bytes.
        bytes: Vec<u8>,
    },
    /// A live value moved between Nodes of one process without encoding.
    Value(Box<dyn SlotValue>),
}

impl Clone for Payload {
    fn clone(&self) -> Self {
        match self {
            Self::Encoded { tag, bytes } => Self::Encoded {
                tag: *tag,
                bytes: bytes.clone(),
            },
            Self::Value(value) => Self::Value(value.clone_value()),
        }
    }
}

impl PartialEq for Payload {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (
                Self::Encoded { tag: a, bytes: x },
                Self::Encoded { tag: b, bytes: y },
            ) => a == b && x == y,
            (Self::Value(a), Self::Value(b)) => a.eq_value(b.as_ref()),
            _ => false,
        }
    }
}
