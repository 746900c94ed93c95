//! The wire: envelopes exchanged between Nodes and their binary codec.
//!
//! An [`Envelope`] travels from one peer to another carrying [`Fill`]s,
//! each addressed to a graph site input (data plane) or a component op
//! (control plane). In-process, fills may carry live values
//! ([`Payload::Value`]) that are never encoded; across a byte boundary the
//! codec encodes them by type tag and decodes them through the value
//! registry, checking every cap before it allocates.

mod codec;
mod envelope;

pub use codec::*;
pub use envelope::*;
