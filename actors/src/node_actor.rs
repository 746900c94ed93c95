//! One Node on one named OS thread: [`NodeActor`] owns and drives the
//! engine, [`ActorHandle`] is how the rest of the process talks to it.
//!
//! # Invariants
//! * Only the actor thread touches the [`Node`]; other threads reach it
//!   through its ingress ([`ActorHandle::ingress`], the [`Router`]).
//! * The thread never spins and never ticks: when the Node has nothing to
//!   do it sleeps in [`IngressQueue::wait`] until mail arrives, the Node's
//!   next deadline passes, or the ingress closes. (This relies on the
//!   engine's contract that a poll at or after a deadline consumes it.)
//! * Every `SendEnvelope` step is routed or refused, and counted either way
//!   (`envelopes_out == routed + refused_*` in [`ActorStats`]). A refused
//!   envelope is handed back to its Node ([`Node::report_send_refused`]),
//!   so the sending op learns of it at once.
//! * A panic escaping [`Node::poll`] (or a value's copy while forwarding)
//!   stops this actor only: it is caught, the actor closes and drains its
//!   ingress (counting what it drops), unregisters, and reports
//!   [`ActorError::Panicked`] from [`ActorHandle::stop`].
//!
//! # Lifecycle
//! 1. [`NodeActor::spawn`] registers the Node's ingress with the router
//!    (so peers can reach it), asks the clock to [watch](Clock::watch) it
//!    (so a manual clock can wake it), then starts the thread. A failure in
//!    the first two steps hands the Node back.
//! 2. The thread runs [the loop](NodeActor) until the ingress is closed.
//! 3. [`ActorHandle::stop`] closes the ingress: new mail is refused with
//!    `Closed` from then on, so the amount left to drain is fixed.
//! 4. The thread polls until the Node has no work (mail already queued is
//!    still handled and its envelopes still routed; timers are not awaited),
//!    then runs [`IngressQueue::drain_after_close`] to collect pushes that
//!    were in flight at the close; those cannot reach the Node any more and
//!    are counted as `dropped_at_close`.
//! 5. It unregisters from the router (only its own entry), disconnects its
//!    subscribers (their receivers then report disconnection) and returns
//!    an [`ActorReport`]; `stop` joins the thread and hands the report back.
//!
//! Dropping an [`ActorHandle`] without `stop` closes the ingress, so the
//! thread still runs steps 4–5 and exits; its report is discarded.

use std::any::Any;
use std::panic::{catch_unwind, AssertUnwindSafe};

use nodeflow_engine::sync::atomic::{AtomicU64, Ordering};
use nodeflow_engine::sync::channel::{unbounded, Receiver, Sender};
use nodeflow_engine::sync::thread::{self, JoinHandle};
use nodeflow_engine::sync::{Arc, Mutex};
use nodeflow_engine::{
    AppOutput, DeliverError, ExecId, ExecOrigin, IngressEvent, IngressQueue, IngressStats, Node,
    NodeStats, PeerId, SendRefusal, SiteId, SlotValue, Step, WaitOutcome,
};

use crate::clock::{Clock, WatchError};
use crate::router::{RegisterError, RouteError, Router};

/// Settings of one actor thread.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ActorConfig {
    /// Thread name prefix; the peer id is appended (default `"nf-"`).
    pub thread_name_prefix: String,
    /// Thread stack size in bytes (default `None`: the platform default).
    pub stack_size: Option<usize>,
    /// Most polls in one round before the loop re-checks the ingress state
    /// (default 64; 0 is treated as 1).
    pub polls_per_round: usize,
    /// Most polls while draining at stop, so a Node that never runs out of
    /// work cannot hold `stop` forever (default 100 000).
    pub max_stop_polls: usize,
    /// Most live subscriptions (default 64).
    pub max_subscribers: usize,
}

impl Default for ActorConfig {
    fn default() -> Self {
        Self {
            thread_name_prefix: "nf-".to_owned(),
            stack_size: None,
            polls_per_round: 64,
            max_stop_polls: 100_000,
            max_subscribers: 64,
        }
    }
}

/// The driver of one Node, living on its own thread (see [`NodeActor::spawn`]).
///
/// # The loop
/// 1. **Poll until idle**: while the Node [has work](Node::has_work) or its
///    [next deadline](Node::next_deadline) is due at `clock.now_ns()`, call
///    [`Node::poll`] (which drains the ingress itself) — at most
///    [`ActorConfig::polls_per_round`] times per round. The whole loop runs
///    inside one `catch_unwind`.
/// 2. **Route** each step as it comes out of a poll: `SendEnvelope` goes
///    through the [`Router`], which never blocks. A refusal (`Full`,
///    `UnknownPeer`, `Closed`) is counted in [`ActorStats`] and the
///    envelope is handed back to the sending Node with
///    [`Node::report_send_refused`]: a refused request fails its `Send` op
///    now with a typed reason (`wire.peer_full`, `wire.unknown_peer`,
///    `wire.peer_closed`) instead of waiting for its deadline, and `Full`
///    backs the Node off that peer. The report leaves the Node with work,
///    so step 1 polls again.
///    The *receiver* of a refused envelope never sees it (it was never in
///    its lane), so its back-pressure tracker cannot answer that refusal
///    with a `BackoffNotice`. That is fine: its lane is full, so the
///    envelopes it does take arrive above its high-water mark and it
///    notices their senders then, and clears them once it has drained.
///    `ExecFinished` and `AppOutput` go to every subscriber as an
///    [`ActorOutput`]; other steps are counted only.
/// 3. **Stop?** If the ingress is closed, drain and exit (module docs,
///    lifecycle steps 4–5).
/// 4. **Wait**: if the round left work, go to 1. Otherwise sleep in
///    `ingress.wait(clock.deadline_instant(next_deadline))` until mail,
///    the deadline or the close; then go to 1.
#[derive(Debug)]
pub struct NodeActor {
    node: Node,
    ingress: Arc<IngressQueue>,
    router: Arc<Router>,
    clock: Arc<dyn Clock>,
    config: ActorConfig,
    shared: Arc<Shared>,
    /// Reused buffer for the steps of one poll.
    steps: Vec<Step>,
}

/// The caller's side of a running [`NodeActor`].
#[derive(Debug)]
pub struct ActorHandle {
    peer: PeerId,
    ingress: Arc<IngressQueue>,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<Result<ActorReport, ActorError>>>,
}

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

/// Live counters of one actor; every field is monotonic.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ActorStats {
    /// [`Node::poll`] calls.
    pub polls: u64,
    /// Waits that ended because mail arrived (or the queue closed).
    pub wakeups: u64,
    /// Waits that ended at the Node's deadline.
    pub timeouts: u64,
    /// `SendEnvelope` steps seen (`routed + refused_full +
    /// refused_unknown_peer + refused_closed`).
    pub envelopes_out: u64,
    /// Envelopes the router delivered.
    pub routed: u64,
    /// Envelopes refused: the target's data lane was full.
    pub refused_full: u64,
    /// Envelopes refused: no Node for the destination.
    pub refused_unknown_peer: u64,
    /// Envelopes refused: the target was stopping.
    pub refused_closed: u64,
    /// Outputs handed to at least one subscriber.
    pub outputs_forwarded: u64,
    /// Outputs produced while nobody was subscribed (dropped).
    pub outputs_unobserved: u64,
    /// Subscriptions removed because their receiver was dropped.
    pub subscribers_dropped: u64,
    /// Other steps (failures, refusals, events...), counted only.
    pub other_steps: u64,
}

/// What a stopped actor accounts for.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ActorReport {
    /// The Node's peer.
    pub peer: PeerId,
    /// The actor's counters at exit.
    pub stats: ActorStats,
    /// The Node's counters at exit.
    pub node: NodeStats,
    /// The ingress counters at exit (every accepted event was taken).
    pub ingress: IngressStats,
    /// Events pushed while the queue was closing that the Node never saw.
    pub dropped_at_close: u64,
    /// Whether the stop drain hit [`ActorConfig::max_stop_polls`] with work left.
    pub drain_incomplete: bool,
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
    /// The clock refused to watch the Node's ingress; the Node is handed back.
    #[error("the clock refused to watch the Node: {source}")]
    Watch {
        /// The Node, untouched.
        node: Box<Node>,
        /// Why.
        source: WatchError,
    },
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

/// The actor did not stop cleanly.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ActorError {
    /// A panic escaped [`Node::poll`] (or a value copy while forwarding);
    /// the actor stopped. Restarting it is the supervisor's job (not yet built).
    #[error("the Node of peer {peer} panicked and was stopped: {message}")]
    Panicked {
        /// The Node's peer.
        peer: PeerId,
        /// The panic message, when it was a string.
        message: String,
        /// Queued events dropped with the Node.
        dropped_at_close: u64,
    },
    /// The actor thread died outside the caught region (a bug in this crate).
    #[error("the actor thread of peer {peer} died unexpectedly")]
    ThreadLost {
        /// The Node's peer.
        peer: PeerId,
    },
}

/// State shared between the handle and the thread.
#[derive(Debug)]
struct Shared {
    /// Written by the actor thread, read by anyone (`stats`).
    counters: ActorCounters,
    /// Appended to by `subscribe` (any thread); read and pruned by the
    /// actor thread when it forwards an output.
    subscribers: Mutex<Vec<Sender<ActorOutput>>>,
    /// Cap on `subscribers`; fixed at spawn.
    max_subscribers: usize,
}

/// Stats-only counters. Memory ordering: `Relaxed` everywhere; they
/// publish no data. Readers on other threads see a recent value; the
/// thread's own final read (the report) is exact, and a reader that has
/// received an output sees every count made before it was sent (the
/// channel's send/receive orders them).
#[derive(Debug, Default)]
struct ActorCounters {
    polls: AtomicU64,
    wakeups: AtomicU64,
    timeouts: AtomicU64,
    envelopes_out: AtomicU64,
    routed: AtomicU64,
    refused_full: AtomicU64,
    refused_unknown_peer: AtomicU64,
    refused_closed: AtomicU64,
    outputs_forwarded: AtomicU64,
    outputs_unobserved: AtomicU64,
    subscribers_dropped: AtomicU64,
    other_steps: AtomicU64,
}

impl NodeActor {
    /// Starts a thread named `{prefix}{peer}` that owns `node` and runs the
    /// loop above; registers the Node with `router` and `clock` first.
    pub fn spawn(
        node: Node,
        router: Arc<Router>,
        clock: Arc<dyn Clock>,
        config: ActorConfig,
    ) -> Result<ActorHandle, SpawnError> {
        let peer = node.peer();
        let ingress = Arc::clone(node.ingress());
        if let Err(source) = router.register(peer, Arc::clone(&ingress)) {
            return Err(SpawnError::Register {
                node: Box::new(node),
                source,
            });
        }
        if let Err(source) = clock.watch(&ingress) {
            router.unregister(peer, &ingress);
            return Err(SpawnError::Watch {
                node: Box::new(node),
                source,
            });
        }
        let shared = Arc::new(Shared {
            counters: ActorCounters::default(),
            subscribers: Mutex::new(Vec::new()),
            max_subscribers: config.max_subscribers,
        });
        let mut builder =
            thread::Builder::new().name(format!("{}{}", config.thread_name_prefix, peer));
        if let Some(size) = config.stack_size {
            builder = builder.stack_size(size);
        }
        let actor = NodeActor {
            node,
            ingress: Arc::clone(&ingress),
            router: Arc::clone(&router),
            clock,
            config,
            shared: Arc::clone(&shared),
            steps: Vec::new(),
        };
        let thread = match builder.spawn(move || actor.run()) {
            Ok(thread) => thread,
            Err(err) => {
                router.unregister(peer, &ingress);
                ingress.close();
                return Err(SpawnError::Thread(err));
            }
        };
        Ok(ActorHandle {
            peer,
            ingress,
            shared,
            thread: Some(thread),
        })
    }

    /// The thread body: serve, then shut down (lifecycle steps 2–5).
    fn run(mut self) -> Result<ActorReport, ActorError> {
        // One catch around the whole loop: a panic in the engine, or in a
        // value's copy while forwarding, stops this actor and nothing else.
        let served = catch_unwind(AssertUnwindSafe(|| self.serve())).map_err(panic_message);
        let mut leftovers = Vec::new();
        let dropped_at_close = self.ingress.drain_after_close(&mut leftovers) as u64;
        drop(leftovers);
        self.router.unregister(self.node.peer(), &self.ingress);
        // Dropping the senders disconnects every subscriber: the end of the
        // output stream, seen after the unregister above.
        self.shared.subscribers.lock().clear();
        match served {
            Ok(drain_incomplete) => Ok(ActorReport {
                peer: self.node.peer(),
                stats: self.shared.counters.snapshot(),
                node: self.node.stats(),
                ingress: self.ingress.stats(),
                dropped_at_close,
                drain_incomplete,
            }),
            Err(message) => Err(ActorError::Panicked {
                peer: self.node.peer(),
                message,
                dropped_at_close,
            }),
        }
    }

    /// The loop; returns once the ingress is closed and drained, with
    /// whether the drain was cut short.
    fn serve(&mut self) -> bool {
        let rounds = self.config.polls_per_round.max(1);
        loop {
            for _ in 0..rounds {
                if !self.due() {
                    break;
                }
                self.poll_once();
            }
            if self.ingress.is_closed() {
                return self.drain_closed();
            }
            if self.due() {
                continue;
            }
            let deadline = self
                .node
                .next_deadline()
                .and_then(|at| self.clock.deadline_instant(at));
            let counter = match self.ingress.wait(deadline) {
                WaitOutcome::TimedOut => &self.shared.counters.timeouts,
                _ => &self.shared.counters.wakeups,
            };
            counter.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Polls until the closed Node has no work (mail still queued is handled).
    fn drain_closed(&mut self) -> bool {
        for _ in 0..self.config.max_stop_polls {
            if !self.node.has_work() {
                return false;
            }
            self.poll_once();
        }
        self.node.has_work()
    }

    /// Whether a poll now would do something.
    fn due(&self) -> bool {
        self.node.has_work()
            || self
                .node
                .next_deadline()
                .is_some_and(|at| at <= self.clock.now_ns())
    }

    /// One poll at the clock's current time, then routes its steps.
    fn poll_once(&mut self) {
        let now_ns = self.clock.now_ns();
        let mut steps = std::mem::take(&mut self.steps);
        steps.extend(self.node.poll(now_ns));
        self.shared.counters.polls.fetch_add(1, Ordering::Relaxed);
        for step in steps.drain(..) {
            self.handle_step(step);
        }
        self.steps = steps;
    }

    fn handle_step(&mut self, step: Step) {
        let counters = &self.shared.counters;
        let peer = self.node.peer();
        match step {
            Step::SendEnvelope(envelope) => {
                counters.envelopes_out.fetch_add(1, Ordering::Relaxed);
                let (counter, reason, envelope) = match self.router.route(envelope) {
                    Ok(()) => {
                        counters.routed.fetch_add(1, Ordering::Relaxed);
                        return;
                    }
                    Err(RouteError::Full(envelope)) => {
                        (&counters.refused_full, SendRefusal::Full, envelope)
                    }
                    Err(RouteError::UnknownPeer(envelope)) => (
                        &counters.refused_unknown_peer,
                        SendRefusal::UnknownPeer,
                        envelope,
                    ),
                    Err(RouteError::Closed(envelope)) => {
                        (&counters.refused_closed, SendRefusal::Closed, envelope)
                    }
                };
                counter.fetch_add(1, Ordering::Relaxed);
                // The Node now has work (the report's steps): the loop polls again.
                self.node
                    .report_send_refused(*envelope, reason, self.clock.now_ns());
            }
            Step::ExecFinished {
                exec,
                site,
                origin,
                outputs,
                missing,
            } => self.forward(ActorOutput::ExecFinished {
                peer,
                exec,
                site,
                origin,
                outputs,
                missing,
            }),
            Step::AppOutput(output) => self.forward(ActorOutput::App { peer, output }),
            _ => {
                counters.other_steps.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Sends `output` to every live subscriber (copies to all but the last).
    fn forward(&self, output: ActorOutput) {
        let counters = &self.shared.counters;
        let mut subscribers = self.shared.subscribers.lock();
        let before = subscribers.len();
        if let Some((last, rest)) = subscribers.split_last() {
            let mut gone = Vec::new();
            for (index, tx) in rest.iter().enumerate() {
                if tx.send(output.clone()).is_err() {
                    gone.push(index);
                }
            }
            if last.send(output).is_err() {
                gone.push(rest.len());
            }
            for index in gone.into_iter().rev() {
                subscribers.swap_remove(index);
            }
        }
        let dropped = before - subscribers.len();
        counters
            .subscribers_dropped
            .fetch_add(dropped as u64, Ordering::Relaxed);
        let counter = if dropped < before {
            &counters.outputs_forwarded
        } else {
            &counters.outputs_unobserved
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

impl ActorHandle {
    /// The Node's peer.
    pub fn peer(&self) -> PeerId {
        self.peer
    }

    /// The Node's mailbox (push invokes, app events, completions here).
    pub fn ingress(&self) -> &Arc<IngressQueue> {
        &self.ingress
    }

    /// Queues an invoke of the graph at `site`; its [`ActorOutput::ExecFinished`]
    /// carries `ExecOrigin::Ticket(ticket)`. A refusal (data lane full, or
    /// the actor stopping) hands the event back in [`DeliverError::Refused`].
    pub fn invoke(
        &self,
        site: SiteId,
        inputs: Vec<(String, Box<dyn SlotValue>)>,
        ticket: u64,
    ) -> Result<(), DeliverError> {
        self.ingress.push_data(IngressEvent::Invoke {
            site,
            inputs,
            ticket,
        })?;
        Ok(())
    }

    /// A new receiver of every output produced from now on. The channel is
    /// unbounded: a receiver that stops reading grows memory; drop it to
    /// unsubscribe (its slot is freed at the next forwarded output).
    pub fn subscribe(&self) -> Result<Receiver<ActorOutput>, SubscribeError> {
        let cap = self.shared.max_subscribers;
        let mut subscribers = self.shared.subscribers.lock();
        if subscribers.len() >= cap {
            return Err(SubscribeError::TooMany { cap });
        }
        let (tx, rx) = unbounded();
        subscribers.push(tx);
        Ok(rx)
    }

    /// A copy of the live counters. They are read `Relaxed`: recent, not
    /// exact, except that everything counted before an output was sent is
    /// visible once that output has been received.
    pub fn stats(&self) -> ActorStats {
        self.shared.counters.snapshot()
    }

    /// Whether the actor thread has exited (stopped or panicked).
    pub fn is_finished(&self) -> bool {
        self.thread.as_ref().is_none_or(JoinHandle::is_finished)
    }

    /// Closes the ingress, lets the thread drain and exit, joins it and
    /// returns its report (lifecycle steps 3–5). Blocks until the Node has
    /// handled its queued mail.
    pub fn stop(mut self) -> Result<ActorReport, ActorError> {
        self.ingress.close();
        let peer = self.peer;
        let Some(thread) = self.thread.take() else {
            return Err(ActorError::ThreadLost { peer });
        };
        thread
            .join()
            .unwrap_or(Err(ActorError::ThreadLost { peer }))
    }
}

impl Drop for ActorHandle {
    fn drop(&mut self) {
        if self.thread.is_some() {
            self.ingress.close();
        }
    }
}

impl Clone for ActorOutput {
    fn clone(&self) -> Self {
        match self {
            Self::ExecFinished {
                peer,
                exec,
                site,
                origin,
                outputs,
                missing,
            } => Self::ExecFinished {
                peer: *peer,
                exec: *exec,
                site: *site,
                origin: *origin,
                outputs: outputs.clone(),
                missing: missing.clone(),
            },
            Self::App { peer, output } => Self::App {
                peer: *peer,
                output: AppOutput {
                    exec: output.exec,
                    op: output.op,
                    kind: output.kind,
                    name: output.name.clone(),
                    value: output.value.clone_value(),
                },
            },
        }
    }
}

impl ActorOutput {
    /// The Node that produced the output.
    pub fn peer(&self) -> PeerId {
        match self {
            Self::ExecFinished { peer, .. } | Self::App { peer, .. } => *peer,
        }
    }
}

impl ActorCounters {
    fn snapshot(&self) -> ActorStats {
        let read = |c: &AtomicU64| c.load(Ordering::Relaxed);
        ActorStats {
            polls: read(&self.polls),
            wakeups: read(&self.wakeups),
            timeouts: read(&self.timeouts),
            envelopes_out: read(&self.envelopes_out),
            routed: read(&self.routed),
            refused_full: read(&self.refused_full),
            refused_unknown_peer: read(&self.refused_unknown_peer),
            refused_closed: read(&self.refused_closed),
            outputs_forwarded: read(&self.outputs_forwarded),
            outputs_unobserved: read(&self.outputs_unobserved),
            subscribers_dropped: read(&self.subscribers_dropped),
            other_steps: read(&self.other_steps),
        }
    }
}

/// The text of a panic payload (`&str` or `String`), or a placeholder.
fn panic_message(payload: Box<dyn Any + Send>) -> String {
    if let Some(text) = payload.downcast_ref::<&str>() {
        return (*text).to_owned();
    }
    if let Some(text) = payload.downcast_ref::<String>() {
        return text.clone();
    }
    "a panic with a non-string payload".to_owned()
}

// Real threads and real time; the loom model of the actor lives in
// `loom-tests/` (loom's `Arc` cannot coerce to `Arc<dyn Clock>` here).
#[cfg(test)]
#[cfg(not(loom))]
mod tests {
    use super::*;
    use std::time::Duration;

    use nodeflow_engine::{AppOutputKind, GraphBuilder, OpRef, U64Value};

    use crate::clock::{ManualClock, SystemClock};

    const PEER: PeerId = PeerId::new(42);
    const PATIENCE: Duration = Duration::from_secs(5);

    /// A Node whose site 0 passes `x` through to `y`.
    fn echo_node() -> Node {
        let mut b = GraphBuilder::new("echo");
        let x = b.input("x");
        let y = b.syscall("PassThrough", [x]).output();
        b.output(y, "y");
        Node::builder(PEER)
            .graph(b.build().expect("a valid graph"))
            .build()
            .expect("a valid node")
    }

    fn spawn_with(config: ActorConfig) -> (ActorHandle, Arc<Router>) {
        let router = Arc::new(Router::new());
        let handle = NodeActor::spawn(
            echo_node(),
            Arc::clone(&router),
            Arc::new(SystemClock::new()),
            config,
        )
        .unwrap();
        (handle, router)
    }

    fn x(value: u64) -> Vec<(String, Box<dyn SlotValue>)> {
        vec![("x".to_owned(), Box::new(U64Value(value)))]
    }

    #[test]
    fn stop_runs_mail_queued_before_the_close_and_refuses_mail_after_it() {
        let (handle, router) = spawn_with(ActorConfig::default());
        assert!(router.contains(PEER));
        for ticket in 0..5 {
            handle.invoke(SiteId::new(0), x(ticket), ticket).unwrap();
        }
        let ingress = Arc::clone(handle.ingress());
        let report = handle.stop().unwrap();
        assert_eq!(report.node.executions_finished, 5);
        assert_eq!(report.stats.outputs_unobserved, 5, "nobody subscribed");
        assert_eq!(report.ingress.data.accepted, 5);
        assert_eq!(report.ingress.data.taken, 5);
        assert_eq!(report.dropped_at_close, 0);
        assert!(!router.contains(PEER));
        assert!(ingress
            .push_data(IngressEvent::Invoke {
                site: SiteId::new(0),
                inputs: x(9),
                ticket: 9,
            })
            .is_err_and(|err| err.is_closed()));
    }

    #[test]
    fn subscriptions_are_capped_and_a_dropped_receiver_frees_its_slot() {
        let (handle, _router) = spawn_with(ActorConfig {
            max_subscribers: 2,
            ..ActorConfig::default()
        });
        let gone = handle.subscribe().unwrap();
        let kept = handle.subscribe().unwrap();
        assert_eq!(
            handle.subscribe().unwrap_err(),
            SubscribeError::TooMany { cap: 2 }
        );
        drop(gone);
        handle.invoke(SiteId::new(0), x(7), 1).unwrap();
        let out = kept.recv_timeout(PATIENCE).unwrap();
        assert!(matches!(
            &out,
            ActorOutput::ExecFinished { origin: ExecOrigin::Ticket(1), outputs, .. }
                if outputs[0].1.downcast_ref::<U64Value>() == Some(&U64Value(7))
        ));
        // `forward` pruned the dead receiver under the lock `subscribe` takes.
        let _again = handle.subscribe().unwrap();
        let stats = handle.stats();
        assert_eq!((stats.outputs_forwarded, stats.subscribers_dropped), (1, 1));
        handle.stop().unwrap();
        assert!(
            kept.recv_timeout(PATIENCE).is_err(),
            "stop disconnects subscribers"
        );
    }

    #[test]
    fn spawn_refusals_hand_the_node_back_and_leave_no_registration() {
        let router = Arc::new(Router::new());
        let clock: Arc<dyn Clock> = Arc::new(ManualClock::with_watch_cap(0));
        match NodeActor::spawn(
            echo_node(),
            Arc::clone(&router),
            clock,
            ActorConfig::default(),
        ) {
            Err(SpawnError::Watch { node, .. }) => assert_eq!(node.peer(), PEER),
            other => panic!("expected a watch refusal, got {other:?}"),
        }
        assert!(!router.contains(PEER), "the registration was rolled back");

        let (_running, router) = spawn_with(ActorConfig::default());
        let again = NodeActor::spawn(
            echo_node(),
            Arc::clone(&router),
            Arc::new(SystemClock::new()),
            ActorConfig::default(),
        );
        assert!(matches!(
            again,
            Err(SpawnError::Register { ref node, source: RegisterError::Duplicate { .. } })
                if node.peer() == PEER
        ));
    }

    #[test]
    fn the_thread_is_named_after_the_peer() {
        let (handle, _router) = spawn_with(ActorConfig {
            thread_name_prefix: "node-".to_owned(),
            ..ActorConfig::default()
        });
        let name = handle
            .thread
            .as_ref()
            .and_then(|t| t.thread().name().map(str::to_owned));
        assert_eq!(name, Some(format!("node-{PEER}")));
        assert!(!handle.is_finished());
        handle.stop().unwrap();
    }

    #[test]
    fn an_output_copy_has_equal_values() {
        let output = ActorOutput::App {
            peer: PEER,
            output: AppOutput {
                exec: ExecId::new(3),
                op: OpRef::new(SiteId::new(0), 1),
                kind: AppOutputKind::Emit,
                name: "out".to_owned(),
                value: Box::new(U64Value(5)),
            },
        };
        match output.clone() {
            ActorOutput::App { peer, output: copy } => {
                assert_eq!(peer, PEER);
                assert_eq!(copy.name, "out");
                assert!(copy.value.eq_value(&U64Value(5)));
            }
            other => panic!("wrong variant {other:?}"),
        }
        assert_eq!(output.peer(), PEER);
    }

    #[test]
    fn panic_messages_are_read_from_str_and_string_payloads() {
        assert_eq!(panic_message(Box::new("boom")), "boom");
        assert_eq!(panic_message(Box::new(String::from("bang"))), "bang");
        assert_eq!(
            panic_message(Box::new(7u8)),
            "a panic with a non-string payload"
        );
    }
}
