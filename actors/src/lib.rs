//! `nodeflow-actors`: the actor host of nodeflow.
//!
//! Each Node runs as an actor on a dedicated, named OS thread that owns its
//! engine ([`NodeActor`]): the thread waits on the Node's mailbox until mail
//! arrives or the Node's next deadline passes, polls the engine until idle,
//! and routes the resulting steps: envelopes through the [`Router`]
//! (`PeerId` → mailbox, values moved without encoding, refusals typed and
//! counted), outputs to the subscribers of its [`ActorHandle`]. Time comes
//! from a [`Clock`]: the monotonic [`SystemClock`] or the virtual
//! [`ManualClock`] for deterministic runs.
//!
//! A supervised actor ([`NodeActor::spawn_supervised`]) snapshots its Node
//! periodically and restarts it from the last snapshot after a panic, under
//! a restart-intensity limit ([`SupervisionConfig`]). Stopping is two-phase
//! ([`Router::stop_new_work`], [`ActorHandle::begin_drain`],
//! [`ActorHandle::finish`]) and ends in an [`ActorReport`] that accounts for
//! every message ([`MessageAccount`]). Per-Node metrics are read with
//! [`ActorHandle::metrics`] and emitted through `tracing` (span `node`).
//!
//! The engine it drives lives in [`nodeflow_engine`] (re-exported as
//! [`engine`]); synchronisation types come only from
//! [`nodeflow_engine::sync`].

mod clock;
mod metrics;
mod node_actor;
mod router;
mod supervision;

pub use nodeflow_engine as engine;

pub use clock::{Clock, ManualClock, ManualClockStats, SystemClock, WatchError};
pub use metrics::{ActorMetrics, ActorStats, MessageAccount};
pub use node_actor::{
    panic_message, ActorConfig, ActorError, ActorHandle, ActorOutput, ActorReport, NodeActor,
    PendingSnapshot, SnapshotRequestError, SpawnError, SubscribeError,
};
pub use router::{RegisterError, RouteError, Router, RouterStats, SHARDS};
pub use supervision::{NodeFactory, SupervisionConfig};
