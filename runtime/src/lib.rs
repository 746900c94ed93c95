//! `nodeflow`: the crate users depend on (in progress).
//!
//! It will provide the `Runtime` builder, the rayon compute pool that runs
//! compute-backend components and posts their results back through each
//! Node's completion sink, and the CPU tensor backend. Today it re-exports
//! the engine and the actor host so that users already depend on one crate.

pub use nodeflow_actors as actors;
pub use nodeflow_engine as engine;
