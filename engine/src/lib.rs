//! `nodeflow-engine`: the sans-IO core of nodeflow.
//!
//! A Node is a state machine that executes dataflow graphs of ops, keeps
//! per-peer networking state and exchanges envelopes with other Nodes. This
//! crate holds everything about a Node that does not need a thread, a clock
//! or a socket: the graph IR, the framework primitives ops use, the wire
//! envelope and its codec, the typed bus, the Node's ingress (mailbox) and
//! completion sink, and the resource handle each op receives while it runs.
//!
//! # The driving rule
//! Inputs enter a [`Node`] through [`Node::invoke`], the `deliver_*`
//! methods and the thread-safe [`IngressQueue`] and [`CompletionSink`];
//! outputs come only from [`Node::poll`], which takes the current time as an
//! argument and returns the [`Step`]s of one cycle. **After every input,
//! poll until [`Node::has_work`] is false**, then sleep until
//! [`Node::next_deadline`] or until the ingress wakes you.
//!
//! # Purity
//! No function in this crate reads a clock, spawns a thread or touches the
//! network; CI checks it (clippy's `disallowed-methods` plus a dependency
//! check). Synchronisation types come only from [`sync`], so the loom suite
//! can model every cross-thread protocol.

pub mod sync;

mod budget;
mod bus;
mod completion;
mod component;
mod framework;
mod framework_state;
mod graph;
mod ids;
mod ingress;
mod node;
mod resource;
mod syscall;
mod value;
mod wire;

pub use budget::*;
pub use bus::*;
pub use completion::*;
pub use component::*;
pub use framework::*;
pub use framework_state::*;
pub use graph::*;
pub use ids::*;
pub use ingress::*;
pub use node::*;
pub use resource::*;
pub use syscall::*;
pub use value::*;
pub use wire::*;
