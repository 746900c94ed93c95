//! `nodeflow`: the crate users depend on (in progress).
//!
//! Today it provides the compute pool ([`ComputePool`]) that runs
//! compute-backend components on rayon threads and posts their results back
//! through each Node's completion sink, and the adapter
//! ([`ComputeComponent`]) that turns plain functions over slot values into
//! such a component. It re-exports the engine and the actor host so that
//! users depend on one crate. The `Runtime` builder and the CPU tensor
//! backend are still to come.
//!
//! Invariant: no job can abort the process; a panicking job fails only its
//! own op (see [`ComputePool`]).

mod compute_component;
mod compute_pool;

pub use compute_component::{ComputeComponent, ComputeFn};
pub use compute_pool::{ComputePool, ComputePoolError, ComputePoolStats, JobOutputs};
pub use nodeflow_actors as actors;
pub use nodeflow_engine as engine;
