//! What a Node reports and the errors of its inputs: [`Step`] (one output
//! of a poll cycle) and its parts, the Node's counters, and the typed
//! errors of [`Node::invoke`](super::Node::invoke) and the `deliver_*` methods.

use crate::bus::{AppIngressErrorKind, AppIngressSource, NodeEvent};
use crate::component::OpError;
use crate::ids::{CommandId, EventKind, ExecId, OpRef, PeerId, SiteId};
use crate::ingress::{IngressEvent, PushError};
use crate::resource::AppOutput;
use crate::value::SlotValue;
use crate::wire::{Envelope, EnvelopeKind};

/// One thing the host must see, produced by [`Node::poll`](super::Node::poll).
#[derive(Debug)]
#[non_exhaustive]
pub enum Step {
    /// An op finished (only with `trace_ops`).
    OpCompleted {
        /// The execution.
        exec: ExecId,
        /// The op.
        op: OpRef,
    },
    /// An op parked on a command (only with `trace_ops`).
    OpSuspended {
        /// The execution.
        exec: ExecId,
        /// The op.
        op: OpRef,
        /// The command it waits for.
        cmd: CommandId,
    },
    /// An op failed; its outputs stay absent in this execution.
    OpFailed {
        /// The execution.
        exec: ExecId,
        /// The op.
        op: OpRef,
        /// Kind, stable reason and detail.
        error: OpError,
    },
    /// An op wrote fewer outputs than it declares; the rest stay absent.
    OutputsSuppressed {
        /// The execution.
        exec: ExecId,
        /// The op.
        op: OpRef,
        /// Outputs written.
        written: usize,
        /// Outputs declared.
        declared: usize,
    },
    /// A parked op passed its deadline and failed.
    Timeout {
        /// The execution.
        exec: ExecId,
        /// The op.
        op: OpRef,
        /// Its command (a later completion for it is reported as unknown).
        cmd: CommandId,
    },
    /// An execution ended.
    ExecFinished {
        /// The execution.
        exec: ExecId,
        /// Its graph.
        site: SiteId,
        /// What started it.
        origin: ExecOrigin,
        /// The graph outputs that were produced, by name.
        outputs: Vec<(String, Box<dyn SlotValue>)>,
        /// Names of graph outputs that were never produced.
        missing: Vec<String>,
    },
    /// An app-facing output (`AppEmit`, `AppNotify`).
    AppOutput(AppOutput),
    /// An envelope to route to another Node.
    SendEnvelope(Envelope),
    /// The host could not deliver an envelope this Node sent
    /// ([`Node::report_send_refused`](super::Node::report_send_refused)).
    SendRefused {
        /// The destination.
        to: PeerId,
        /// Why the host refused it.
        reason: SendRefusal,
        /// What the envelope was.
        kind: EnvelopeKind,
        /// Its correlation token, if it had one.
        token: Option<u64>,
    },
    /// An inbound envelope (or one of its fills) could not be delivered.
    ReceiveFailed {
        /// The sender, when known.
        from: Option<PeerId>,
        /// Why.
        reason: String,
    },
    /// An entry was refused at the Node's boundary (also published on the bus).
    Refused {
        /// Where it came from.
        source: AppIngressSource,
        /// Why.
        kind: AppIngressErrorKind,
    },
    /// A completion named a command that is not parked (finished, timed
    /// out or never issued).
    UnknownCompletion {
        /// The command.
        cmd: CommandId,
        /// Whether it was a failure rather than a result.
        failure: bool,
    },
    /// A bus event, after it was routed to its subscribers.
    Event(NodeEvent),
    /// The poll stopped at its op budget; poll again to continue.
    BudgetExceeded {
        /// Ready ops left on the frontier.
        ready_left: usize,
    },
    /// Items were dropped by a bounded structure (counted, with reason).
    Dropped {
        /// Which structure dropped them.
        reason: DropReason,
        /// How many since the last report.
        count: u64,
    },
}

/// What started an execution.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ExecOrigin {
    /// [`Node::invoke`](super::Node::invoke).
    Invoke,
    /// An `Invoke` event through the ingress, with the host's ticket.
    Ticket(u64),
    /// A bootstrap graph.
    Bootstrap,
    /// An inbound envelope from `from`.
    Envelope {
        /// The sender.
        from: PeerId,
    },
    /// A timer trigger source (`Interval`, `Pulse`).
    Timer {
        /// The source op.
        op: OpRef,
    },
    /// An app event of `kind` (`OnTrigger`).
    AppEvent {
        /// The event kind.
        kind: EventKind,
    },
    /// A bus event of `kind` (`EventSource`).
    Bus {
        /// The event kind.
        kind: EventKind,
    },
    /// A `Call` op of another execution.
    Call {
        /// The calling execution.
        parent: ExecId,
    },
}

/// Which bounded structure dropped items.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DropReason {
    /// The bus was full; its oldest events were dropped.
    BusFull,
    /// The outbound queue was full; its oldest envelopes were dropped.
    OutboundFull,
}

/// Why the host could not hand an envelope to its destination
/// ([`Node::report_send_refused`](super::Node::report_send_refused)).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub enum SendRefusal {
    /// The destination's inbound lane is full.
    Full,
    /// No Node is known for the destination peer.
    UnknownPeer,
    /// The destination is stopping and accepts no more input.
    Closed,
}

impl SendRefusal {
    /// The stable reason a refused request's `Send` op fails with:
    /// `wire.peer_full`, `wire.unknown_peer` or `wire.peer_closed`.
    pub fn reason(self) -> &'static str {
        match self {
            Self::Full => "wire.peer_full",
            Self::UnknownPeer => "wire.unknown_peer",
            Self::Closed => "wire.peer_closed",
        }
    }

    /// What happened and what to do, for the failed op's detail.
    pub(super) fn detail(self, to: PeerId) -> String {
        match self {
            Self::Full => format!(
                "{to}'s inbound lane is full; nothing was delivered. \
                 Retry after it drains (sends to it back off until then)"
            ),
            Self::UnknownPeer => {
                format!("no Node is known for {to}; nothing was delivered. Check the peer id")
            }
            Self::Closed => format!("{to} is stopping and accepts no more input"),
        }
    }
}

/// Counters of one Node (monotonic except `live_executions` and `parked`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct NodeStats {
    /// Executions started.
    pub executions_started: u64,
    /// Executions ended.
    pub executions_finished: u64,
    /// Executions alive now.
    pub live_executions: usize,
    /// Ops fired.
    pub ops_fired: u64,
    /// Ops that failed (including panics and timeouts).
    pub ops_failed: u64,
    /// Ops that panicked (caught).
    pub ops_panicked: u64,
    /// Ops parked now.
    pub parked: usize,
    /// Completions applied to parked ops.
    pub completions: u64,
    /// Completions for unknown commands.
    pub unknown_completions: u64,
    /// Parked ops that timed out.
    pub timeouts: u64,
    /// Frontier entries skipped because their op had fired or was not ready.
    pub stale_frontier: u64,
    /// Polls that stopped at the op budget.
    pub budget_exceeded: u64,
    /// Entries refused at the boundary.
    pub refused: u64,
    /// Inbound envelopes or fills that failed to deliver.
    pub receive_failures: u64,
    /// Items dropped by bounded structures.
    pub dropped: u64,
    /// Envelopes the host reported it could not deliver
    /// ([`Node::report_send_refused`](super::Node::report_send_refused)).
    pub sends_refused: u64,
    /// Envelopes taken from the mailbox (typed or encoded).
    pub envelopes_received: u64,
    /// Polls run.
    pub polls: u64,
    /// `Credit` envelopes sent (flow-control returns that rode on nothing).
    pub credit_envelopes: u64,
    /// Sends that waited for flow-control credit.
    pub sends_held: u64,
}

/// The next ids of a Node
/// ([`Node::id_watermark`](super::Node::id_watermark)), carried across a
/// restart.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IdWatermark {
    /// Next command id.
    pub command: u64,
    /// Next execution id.
    pub exec: u64,
    /// Next wire request token.
    pub request_token: u64,
}

/// Why an invoke was refused. Nothing was started and nothing was kept.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InvokeError {
    /// No graph is installed at the site.
    #[error("no graph is installed at {0}")]
    UnknownSite(SiteId),
    /// The graph has no input of that name.
    #[error("the graph at {site} has no input named `{name}`")]
    UnknownInput {
        /// The graph.
        site: SiteId,
        /// The name given.
        name: String,
    },
    /// A graph input was not given.
    #[error("the graph at {site} needs input `{name}`")]
    MissingInput {
        /// The graph.
        site: SiteId,
        /// The input not given.
        name: String,
    },
    /// Bootstrap graphs are still running; poll until `is_bootstrapped()`.
    #[error("bootstrap graphs are still running; poll until the Node is bootstrapped")]
    Bootstrapping,
    /// The execution cap is reached; poll to let executions finish.
    #[error("{live} executions are alive, the cap is {cap}; poll to let some finish")]
    TooManyExecutions {
        /// Executions alive.
        live: usize,
        /// The cap.
        cap: usize,
    },
    /// The inputs' bytes do not fit the Node's byte budget.
    #[error("inputs of {requested} bytes do not fit the byte budget ({in_use} of {limit} in use)")]
    Budget {
        /// Bytes asked for.
        requested: usize,
        /// Bytes in use.
        in_use: usize,
        /// The budget.
        limit: usize,
    },
}

/// Why a `deliver_*` call was refused; the input is handed back where it can be.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DeliverError {
    /// The mailbox refused the event (full or closed); the event is inside,
    /// retry after polling.
    #[error("the Node's mailbox refused the input: {0}")]
    Refused(Box<PushError<IngressEvent>>),
    /// The bytes are over a cap or do not fit the byte budget.
    #[error("inbound bytes refused: {0}")]
    Bytes(#[from] crate::budget::CopyInError),
}

impl From<PushError<IngressEvent>> for DeliverError {
    fn from(err: PushError<IngressEvent>) -> Self {
        Self::Refused(Box::new(err))
    }
}
