//! `nodeflow-actors`: the actor host of nodeflow (in progress).
//!
//! This crate will run each Node as an actor on a dedicated, named OS
//! thread that owns its engine: the thread waits on the Node's ingress
//! until mail arrives or the Node's next deadline passes, polls the engine
//! until idle, and routes the resulting steps. It will also hold the router
//! (`PeerId` → ingress sender), the `Clock` trait with system and manual
//! clocks, supervision with restart from snapshot, two-phase shutdown and
//! per-Node metrics.
//!
//! Nothing is implemented here yet; the engine it drives lives in
//! [`nodeflow_engine`].

pub use nodeflow_engine as engine;
