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
//! * `tests/loom_actor_restart.rs`: mail routed to a supervised Node while
//!   it panics and restarts reaches the new incarnation exactly once; a
//!   completion from another ("pool") thread racing the restart resumes the
//!   op parked in the snapshot exactly once. Broken twins: a restart that
//!   discards queued mail, and one that rebuilds on a fresh mailbox.
//! * `tests/loom_actor_shutdown.rs`: a two-phase stop waits for an op
//!   parked on another thread's completion, never deadlocks, and accounts
//!   for every message. Broken twin: a drain that ignores parked work.
//!
//! The pool side is a plain loom thread holding a completion handle (rayon
//! is not loom-visible); the sink side it calls is the real one. Run with
//! `bash ci/loom.sh`.
