//! Loom models of nodeflow's cross-crate thread protocols.
//!
//! Models of a single primitive sit beside its code (for example the
//! ingress models in `nodeflow-engine`); this crate holds the protocols that
//! span crates (mailbox + actor park, completion from the compute pool,
//! router vs restart, shutdown) once the actor host exists. Run with
//! `bash ci/loom.sh`.
