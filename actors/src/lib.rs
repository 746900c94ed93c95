//! `nodeflow-actors`: the actor host of nodeflow.
//!
//! Each Node runs as an actor on a dedicated, named OS thread that owns its
//! engine ([`NodeActor`]): the thread waits on the Node's ingress until mail
//! arrives or the Node's next deadline passes, polls the engine until idle,
//! and routes the resulting steps — envelopes through the [`Router`]
//! (`PeerId` → ingress, values moved without encoding), outputs to the
//! subscribers of its [`ActorHandle`]. Time comes from a [`Clock`]: the
//! monotonic [`SystemClock`] or the virtual [`ManualClock`] for
//! deterministic tests.
//!
//! Not yet here: supervision with restart from snapshot, a shutdown
//! deadline, back-pressure notices to senders, and metrics export.
//!
//! The engine it drives lives in [`nodeflow_engine`] (re-exported as
//! [`engine`]); synchronisation types come only from
//! [`nodeflow_engine::sync`].

mod clock;
mod node_actor;
mod router;

pub use nodeflow_engine as engine;

pub use clock::{Clock, ManualClock, ManualClockStats, SystemClock, WatchError};
pub use node_actor::{
    ActorConfig, ActorError, ActorHandle, ActorOutput, ActorReport, ActorStats, NodeActor,
    SpawnError, SubscribeError,
};
pub use router::{RegisterError, RouteError, Router, RouterStats, SHARDS};
