//! What an actor hands out: its outputs ([`ActorOutput`]), its final
//! [`ActorReport`], a pending snapshot, and the typed errors of spawning,
//! subscribing, snapshotting and stopping.

use super::*;

/// An output of a Node, forwarded to the actor's subscribers.
#[derive(Debug)]
#[non_exhaustive]
pub enum ActorOutput {
    /// An execution ended ([`Step::ExecFinished`]).
    ExecFinished {
        /// The Node.
        peer: PeerId,
        /// The execution.
        exec: ExecId,
        /// Its graph.
        site: SiteId,
        /// What started it (an ingress invoke carries the caller's ticket).
        origin: ExecOrigin,
        /// Graph outputs produced, by name.
        outputs: Vec<(String, Box<dyn SlotValue>)>,
        /// Names of graph outputs never produced.
        missing: Vec<String>,
    },
    /// An app-facing output ([`Step::AppOutput`]).
    App {
        /// The Node.
        peer: PeerId,
        /// The output.
        output: AppOutput,
    },
}

/// What a stopped actor accounts for.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ActorReport {
    /// The Node's peer.
    pub peer: PeerId,
    /// The actor's counters at exit.
    pub stats: ActorStats,
    /// The last incarnation's counters at exit.
    pub node: NodeStats,
    /// The mailbox counters at exit (every accepted event was taken).
    pub ingress: IngressStats,
    /// Events pushed while the mailbox was closing that the Node never saw.
    pub dropped_at_close: u64,
    /// Whether the drain after the close hit [`ActorConfig::max_stop_polls`]
    /// with work left.
    pub drain_incomplete: bool,
    /// Whether a drain order's deadline passed before the Node was
    /// quiescent (its in-flight work was cut short).
    pub drain_deadline_hit: bool,
    /// Executions still alive when the Node stopped (abandoned).
    pub abandoned_executions: usize,
}

/// [`NodeActor::spawn`] failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SpawnError {
    /// The router refused the Node's peer; the Node is handed back.
    #[error("the router refused the Node: {source}")]
    Register {
        /// The Node, untouched.
        node: Box<Node>,
        /// Why.
        source: RegisterError,
    },
    /// The clock refused to watch the Node's mailbox; the Node is handed back.
    #[error("the clock refused to watch the Node: {source}")]
    Watch {
        /// The Node, untouched.
        node: Box<Node>,
        /// Why.
        source: WatchError,
    },
    /// The factory's builder did not build ([`NodeActor::spawn_supervised`]).
    #[error("the Node factory's builder failed: {0}")]
    Build(#[from] BuildError),
    /// The factory panicked ([`NodeActor::spawn_supervised`]).
    #[error("the Node factory panicked: {0}")]
    FactoryPanicked(String),
    /// Snapshotting the fresh Node panicked (a component's
    /// `snapshot_state`); the Node is dropped.
    #[error("the first snapshot of the Node panicked: {0}")]
    SnapshotPanicked(String),
    /// The OS refused the thread (the Node is lost with it); free resources
    /// or lower the stack size.
    #[error("the OS refused to start the actor thread: {0}")]
    Thread(#[from] std::io::Error),
}

/// [`ActorHandle::subscribe`] was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SubscribeError {
    /// `cap` subscriptions are live; drop a receiver or raise
    /// [`ActorConfig::max_subscribers`].
    #[error("the actor already has {cap} subscribers; drop a receiver or raise the cap")]
    TooMany {
        /// The cap in force.
        cap: usize,
    },
}

/// A snapshot an actor was asked for ([`ActorHandle::snapshot_request`]).
#[derive(Debug)]
pub struct PendingSnapshot {
    pub(super) reply: Receiver<Result<Vec<u8>, SnapshotRequestError>>,
}

impl PendingSnapshot {
    /// Waits at most `timeout` for the actor's answer.
    pub fn wait(self, timeout: Duration) -> Result<Vec<u8>, SnapshotRequestError> {
        match self.reply.recv_timeout(timeout) {
            Ok(result) => result,
            Err(RecvTimeoutError::Timeout) => Err(SnapshotRequestError::TimedOut),
            Err(RecvTimeoutError::Disconnected) => Err(SnapshotRequestError::Stopped),
        }
    }
}

/// [`ActorHandle::snapshot`] got no snapshot.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SnapshotRequestError {
    /// The Node could not be snapshotted (the reason names what); it keeps
    /// running.
    #[error("the Node could not be snapshotted: {0}")]
    Failed(String),
    /// The actor did not answer in time (it is busy in a long poll).
    #[error("the actor did not answer within the timeout; try again")]
    TimedOut,
    /// The actor has stopped.
    #[error("the actor has stopped")]
    Stopped,
    /// Too many requests are waiting (the cap is [`ActorConfig::max_subscribers`]).
    #[error("too many snapshot requests are waiting; try again later")]
    Busy,
}

/// The actor did not stop cleanly.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ActorError {
    /// A panic escaped an unsupervised Node ([`NodeActor::spawn`]); the
    /// actor stopped. The report accounts for its messages.
    #[error("the Node of peer {} panicked and was stopped: {message}", report.peer)]
    Panicked {
        /// The panic message, when it was a string.
        message: String,
        /// The stopped actor's report.
        report: Box<ActorReport>,
    },
    /// A supervised Node panicked more often than its restart intensity
    /// allows; it was stopped for good.
    #[error(
        "the Node of peer {} panicked {} times and exceeded its restart intensity; \
         it was stopped (last panic: {message})",
        report.peer, report.stats.panics
    )]
    GaveUp {
        /// The last panic's message.
        message: String,
        /// The stopped actor's report.
        report: Box<ActorReport>,
    },
    /// A supervised Node panicked and could not be rebuilt (the factory
    /// failed or the snapshot did not restore); it was stopped.
    #[error("the Node of peer {} could not be restarted: {reason}", report.peer)]
    RestartFailed {
        /// Why the rebuild failed.
        reason: String,
        /// The stopped actor's report.
        report: Box<ActorReport>,
    },
    /// The thread did not exit by the deadline even after its mailbox was
    /// closed (an op is stuck); it was left running, detached.
    #[error("the actor thread of peer {peer} did not exit in time and was detached")]
    JoinTimedOut {
        /// The Node's peer.
        peer: PeerId,
    },
    /// The actor thread died outside the caught region (a bug in this crate).
    #[error("the actor thread of peer {peer} died unexpectedly")]
    ThreadLost {
        /// The Node's peer.
        peer: PeerId,
    },
}
