//! Framework primitives: the per-Node state machines ops reach through
//! the resource handle (timers, queues, peer policy, RTT, dedup, storage).
//!
//! Each primitive is a plain data structure driven with explicit `now_ns`
//! arguments; none reads a clock or spawns a thread. Every table that grows
//! with peers or names has a cap, and refusals at the cap are counted.

mod address;
mod address_book;
mod backoff;
mod backpressure;
mod counters;
mod dedup;
mod event_source;
mod flow_control;
mod governor;
mod hold_table;
mod latches;
mod outbound_queue;
mod peer_gate;
mod record_buffer;
mod request_tracker;
mod rng;
mod rtt_tracker;
mod scheduler;
mod serialize_queue;

pub use address::*;
pub use address_book::*;
pub use backoff::*;
pub use backpressure::*;
pub use counters::*;
pub use dedup::*;
pub use event_source::*;
pub use flow_control::*;
pub use governor::*;
pub use hold_table::*;
pub use latches::*;
pub use outbound_queue::*;
pub use peer_gate::*;
pub use record_buffer::*;
pub use request_tracker::*;
pub use rng::*;
pub use rtt_tracker::*;
pub use scheduler::*;
pub use serialize_queue::*;

/// Adds one to a monotonic counter, saturating instead of wrapping.
pub(crate) fn bump(counter: &mut u64) {
    *counter = counter.saturating_add(1);
}
