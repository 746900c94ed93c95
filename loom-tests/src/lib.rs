//! Loom models of nodeflow's cross-crate thread protocols.
//!
//! Models of a single primitive sit beside its code (for example the
//! ingress models in `nodeflow-engine`); this crate holds the protocols that
//! span crates, as integration tests under `tests/`, each compiled only
//! with `--cfg loom`:
//!
//! * `tests/loom_actor_park.rs`: a `NodeActor` sleeping on its ingress is
//!   always woken by mail sent while it goes to sleep (real Node, actor,
//!   router and clock on loom threads), with `loom_broken_*` twins that
//!   remove one side of the ingress doorbell's fence pair.
//!
//! Still to model: completion from the compute pool, router vs restart,
//! shutdown. Run with `bash ci/loom.sh`.
