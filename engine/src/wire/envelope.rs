//! Envelope, fill and payload types.
//!
//! Invariants: an envelope names one source and one destination peer; its
//! fills are independent (a bad fill fails alone, its siblings still
//! deliver); a [`Payload::Value`] never leaves the process.

use crate::component::OpError;
use crate::framework::Address;
use crate::ids::{ComponentRef, PeerId, SiteId};
use crate::value::{SlotValue, TypeTag};

/// Version of the envelope layout this build writes and reads.
pub const WIRE_SCHEMA_VERSION: u16 = 2;

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
    /// Flow-control credits `src` grants back to `dst`: how many more
    /// `OneWay` / `Request` envelopes `dst` may send to `src` (piggy-backed
    /// on envelopes that travel the control lane, or alone in a
    /// [`EnvelopeKind::Credit`]). 0 grants nothing.
    pub credit: u32,
    /// On a [`EnvelopeKind::Response`]: the typed reason the request failed
    /// at `src` (its handler failed, or the request was refused there).
    /// `None` on a response that carries an answer, and on other kinds.
    pub failure: Option<Box<OpError>>,
}

impl Envelope {
    /// An envelope of `kind` from `src` to `dst` in this build's layout
    /// version, with no correlation token, deadline, reply addresses or fills.
    pub fn new(src: PeerId, dst: PeerId, kind: EnvelopeKind) -> Self {
        Self {
            schema: WIRE_SCHEMA_VERSION,
            src,
            dst,
            kind,
            wire_req_id: None,
            remaining_deadline_ns: None,
            reply_to: Vec::new(),
            fills: Vec::new(),
            credit: 0,
            failure: None,
        }
    }

    /// Whether this kind of envelope uses a flow-control credit of its
    /// sender (`OneWay` and `Request`: new work for the receiver). Answers,
    /// credits and back-off notices never wait for credit.
    pub fn uses_credit(&self) -> bool {
        matches!(self.kind, EnvelopeKind::OneWay | EnvelopeKind::Request)
    }

    /// Whether this envelope travels the receiver's never-refusing control
    /// lane (responses, credits and back-off notices: bounded by the
    /// requests and windows in flight) rather than its bounded data lane.
    pub fn is_control(&self) -> bool {
        !self.uses_credit()
    }

    /// The envelope granting `credit` flow-control credits.
    pub fn with_credit(mut self, credit: u32) -> Self {
        self.credit = credit;
        self
    }

    /// The response carrying `failure` instead of an answer.
    pub fn with_failure(mut self, failure: OpError) -> Self {
        self.failure = Some(Box::new(failure));
        self
    }

    /// The envelope with the correlation token set.
    pub fn with_request_id(mut self, wire_req_id: u64) -> Self {
        self.wire_req_id = Some(wire_req_id);
        self
    }

    /// The envelope with the remaining deadline budget set, in nanoseconds.
    pub fn with_remaining_deadline_ns(mut self, remaining_ns: u64) -> Self {
        self.remaining_deadline_ns = Some(remaining_ns);
        self
    }

    /// The envelope with `address` appended to its reply addresses.
    pub fn with_reply_to(mut self, address: Address) -> Self {
        self.reply_to.push(address);
        self
    }

    /// The envelope with `fill` appended.
    pub fn with_fill(mut self, fill: Fill) -> Self {
        self.fills.push(fill);
        self
    }
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
    /// Flow-control credits only ([`Envelope::credit`]): the receiver has
    /// taken that many envelopes from the sender and has room for as many.
    Credit,
}

/// One value addressed to one input on the receiving peer.
#[derive(Clone, Debug, PartialEq)]
pub struct Fill {
    /// Which graph input or component op receives the value.
    pub target: FillTarget,
    /// The value.
    pub payload: Payload,
}

impl Fill {
    /// A data-plane fill for graph input `input` at `site`.
    pub fn site(site: SiteId, input: impl Into<String>, payload: Payload) -> Self {
        Self {
            target: FillTarget::Site {
                site,
                input: input.into(),
            },
            payload,
        }
    }

    /// A control-plane fill for op `op` of `component`.
    pub fn component_op(component: ComponentRef, op: impl Into<String>, payload: Payload) -> Self {
        Self {
            target: FillTarget::ComponentOp {
                component,
                op: op.into(),
            },
            payload,
        }
    }
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
    /// The answer to a request: routed by the envelope's correlation token
    /// to the op that sent the request.
    Response,
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

impl Payload {
    /// A live value (in-process only; the codec encodes it by tag).
    pub fn value(value: impl SlotValue) -> Self {
        Self::Value(Box::new(value))
    }

    /// Already encoded bytes of a value with type `tag`.
    pub fn encoded(tag: TypeTag, bytes: Vec<u8>) -> Self {
        Self::Encoded { tag, bytes }
    }

    /// The value's type tag, whichever form the payload has.
    pub fn tag(&self) -> TypeTag {
        match self {
            Self::Encoded { tag, .. } => *tag,
            Self::Value(value) => value.type_tag(),
        }
    }
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
            (Self::Encoded { tag: a, bytes: x }, Self::Encoded { tag: b, bytes: y }) => {
                a == b && x == y
            }
            (Self::Value(a), Self::Value(b)) => a.eq_value(b.as_ref()),
            _ => false,
        }
    }
}
