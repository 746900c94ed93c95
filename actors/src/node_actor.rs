//! One Node on one named OS thread: [`NodeActor`] owns, drives and
//! supervises the engine; [`ActorHandle`] is how the rest of the process
//! talks to it.
//!
//! # Invariants
//! * Only the actor thread touches the [`Node`]; other threads reach it
//!   through its mailbox ([`ActorHandle::ingress`], the [`Router`]) and
//!   requests left beside it (drain orders, snapshot requests) announced by
//!   [`IngressQueue::nudge`].
//! * The thread never spins and never ticks: when the Node has nothing to
//!   do it sleeps in [`IngressQueue::wait`] until mail, a nudge, the Node's
//!   next deadline (or the drain deadline) or the close. (This relies on the
//!   engine's contract that a poll at or after a deadline consumes it.)
//! * Every `SendEnvelope` step is routed or refused, and counted either way
//!   (see [`ActorStats`]). A refused envelope is handed back to its Node
//!   ([`Node::report_send_refused`]), so the sending op learns of it at once.
//! * The mailbox outlives every incarnation of the Node: a restarted Node
//!   is built on the same [`IngressQueue`] ([`NodeBuilder::mailbox`](nodeflow_engine::NodeBuilder::mailbox)), so
//!   mail sent during a restart waits in it (or is refused `Full`, handed
//!   back), the router entry never changes, and completion handles held by
//!   pool threads reach the new incarnation. Nothing is lost silently.
//! * Every event the mailbox accepted ends up processed, dropped at close
//!   or lost to a restart, and is counted ([`ActorReport::account`]).
//!
//! # Supervision
//! A panic that escapes [`Node::poll`] (or a value's copy while forwarding,
//! or a snapshot) stops this Node only. An actor spawned with
//! [`NodeActor::spawn_supervised`] then restarts it:
//! 1. It counts the panic and the events the dead incarnation took after
//!    the last snapshot (`lost_in_restart`: a restart rolls them back), notes
//!    the dead incarnation's [id watermark](Node::id_watermark), and drops it.
//! 2. If fewer than `max_restarts` restarts happened in the window, it calls
//!    the [`NodeFactory`], builds on the same mailbox, restores the last
//!    snapshot (or keeps the fresh build when none exists), moves the id
//!    counters past the watermark (so a late result for a dead command
//!    matches nothing), and serves again. Outputs of work replayed from the
//!    snapshot can be produced a second time.
//! 3. Otherwise (or if the rebuild fails) it stops for good as in a
//!    shutdown and reports [`ActorError::GaveUp`] /
//!    [`ActorError::RestartFailed`], each with the full [`ActorReport`].
//!
//! An actor from [`NodeActor::spawn`] has no factory: a panic stops it with
//! [`ActorError::Panicked`].
//!
//! # Lifecycle and shutdown
//! 1. Spawn registers the mailbox with the router (so peers can reach it)
//!    and asks the clock to [watch](Clock::watch) it, then starts the thread
//!    (a supervised actor first snapshots its fresh Node). A failure hands
//!    the Node back (or the error of its build).
//! 2. The thread runs [the loop](NodeActor).
//! 3. Two-phase stop: [`ActorHandle::begin_drain`] (phase 1; the runtime
//!    has made the router refuse new work) lets the Node finish what is in
//!    flight, including ops waiting on compute jobs, until it is
//!    [quiescent](Node::is_quiescent) or the drain deadline passes; then
//!    the thread closes the mailbox itself. [`ActorHandle::stop`] closes it
//!    at once instead.
//! 4. Once closed, the thread polls until the Node has no work (mail queued
//!    before the close is still handled, timers are not awaited), then
//!    [`IngressQueue::drain_after_close`] collects pushes that were in
//!    flight at the close: the Node never sees those (`dropped_at_close`).
//! 5. It unregisters from the router (its own entry only), disconnects its
//!    subscribers and snapshot requesters, and returns an [`ActorReport`];
//!    the handle joins the thread ([`ActorHandle::finish`] waits at most
//!    until a deadline, then forces the close, then gives up on the join
//!    with [`ActorError::JoinTimedOut`] rather than hang).
//!
//! Dropping an [`ActorHandle`] without stopping closes the mailbox, so the
//! thread still runs steps 4–5 and exits; its report is discarded.

use std::any::Any;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

use std::sync::atomic::{AtomicUsize as StdAtomicUsize, Ordering as StdOrdering}; // sync-facade: allow (the spin heuristic's counter, see SPINNING)

use nodeflow_engine::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use nodeflow_engine::sync::channel::{bounded, unbounded, Receiver, RecvTimeoutError, Sender};
use nodeflow_engine::sync::thread::{self, JoinHandle};
use nodeflow_engine::sync::{Arc, Mutex};
use nodeflow_engine::{
    AppOutput, BuildError, DeliverError, EventKind, ExecId, ExecOrigin, IngressEvent, IngressQueue,
    IngressStats, Node, NodeStats, PeerId, SendRefusal, SiteId, SlotValue, Step, WaitOutcome,
};

use crate::clock::{Clock, WatchError};
use crate::metrics::{account, ActorCounters, ActorMetrics, ActorStats, MessageAccount};
use crate::router::{RegisterError, RouteError, Router};
use crate::supervision::{NodeFactory, RestartWindow, SupervisionConfig};

mod handle;
mod outcome;

pub use handle::panic_message;
pub use outcome::{
    ActorError, ActorOutput, ActorReport, PendingSnapshot, SnapshotRequestError, SpawnError,
    SubscribeError,
};

/// Settings of one actor thread.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ActorConfig {
    /// Thread name prefix; the peer id is appended (default `"nf-"`).
    pub thread_name_prefix: String,
    /// Thread stack size in bytes (default `None`: the platform default).
    pub stack_size: Option<usize>,
    /// Most polls in one round before the loop re-checks the mailbox state
    /// (default 64; 0 is treated as 1).
    pub polls_per_round: usize,
    /// Most polls while draining after the close, so a Node that never runs
    /// out of work cannot hold a stop forever (default 100 000).
    pub max_stop_polls: usize,
    /// Most live subscriptions (default 64).
    pub max_subscribers: usize,
    /// Snapshots and restarts of a supervised actor
    /// ([`NodeActor::spawn_supervised`]); ignored otherwise.
    pub supervision: SupervisionConfig,
    /// How long [`ActorHandle::finish`] waits after forcing the close at
    /// its deadline before it gives up on the join (default 1 s).
    pub join_grace: Duration,
    /// Checks of the mailbox before the thread sleeps: the first few spin
    /// for a moment, the rest yield the core. Mail that arrives meanwhile
    /// is served without a sleep and wake-up (a futex round trip costs
    /// microseconds). Default 16 (a few microseconds when nothing comes);
    /// 0 sleeps at once (fewer cycles on hosts with many more Nodes than
    /// cores). Always 0 under loom.
    pub spins_before_sleep: u32,
    /// A deliberate protocol bug to inject, by name (`loom_broken_*` models
    /// in `loom-tests/` only; compiled with `--cfg nodeflow_loom_broken`):
    /// `"restart-discards-mail"`, `"restart-on-fresh-mailbox"` or
    /// `"drain-ignores-parked-work"`. `None` (the default): the real protocol.
    #[cfg(nodeflow_loom_broken)]
    pub loom_broken: Option<&'static str>,
}

impl Default for ActorConfig {
    fn default() -> Self {
        Self {
            thread_name_prefix: "nf-".to_owned(),
            stack_size: None,
            polls_per_round: 64,
            max_stop_polls: 100_000,
            max_subscribers: 64,
            supervision: SupervisionConfig::default(),
            join_grace: Duration::from_secs(1),
            spins_before_sleep: if cfg!(loom) { 0 } else { 64 },
            #[cfg(nodeflow_loom_broken)]
            loom_broken: None,
        }
    }
}

/// The driver of one Node, living on its own thread (see [`NodeActor::spawn`]).
///
/// # The loop
/// 1. **Poll until idle**: while the Node [has work](Node::has_work) or its
///    [next deadline](Node::next_deadline) is due at `clock.now_ns()`, call
///    [`Node::poll`] (which drains the mailbox itself), at most
///    [`ActorConfig::polls_per_round`] times per round. The mailbox depth is
///    sampled and the round timed for the metrics.
/// 2. **Route** each step as it comes out of a poll: `SendEnvelope` goes
///    through the [`Router`], which never blocks. With flow control on (the
///    default) the Node sent it under a credit of the receiver's window, so
///    it is routed with [`Router::route_credited`] and never refused for
///    room; answers and credits ride the receiver's control lane. A refusal
///    (`UnknownPeer`, `Closed`, `ShuttingDown`, or `Full` with flow control
///    off) is counted and handed back to the sending Node with
///    [`Node::report_send_refused`]: a refused request fails its `Send` op
///    now with a typed reason instead of waiting for its deadline, and the
///    credit is given back. The report leaves the Node with work, so step 1
///    polls again.
///    (With flow control off, a receiver whose lane is above its
///    high-water mark sends its senders `BackoffNotice`s instead, and
///    clears them once it has drained.)
///    `ExecFinished` and `AppOutput` go to every subscriber as an
///    [`ActorOutput`]; other steps are counted only.
/// 3. **Housekeeping**: take nudges and answer snapshot requests; take a
///    periodic snapshot when due (supervised actors); publish the Node's
///    counters every 64 rounds.
/// 4. **Stop?** If the mailbox is closed, drain and exit (module docs,
///    lifecycle steps 4–5). If a drain was ordered and the Node is
///    quiescent or the drain deadline has passed, close the mailbox first.
/// 5. **Wait**: if the round left work, go to 1. Otherwise look at the
///    mailbox a few more times ([`ActorConfig::spins_before_sleep`]: mail
///    arriving now is served without a sleep), publish the counters, then
///    sleep in `ingress.wait(deadline)` until mail, a nudge,
///    the deadline (the earlier of the Node's next deadline and the drain
///    deadline) or the close; then go to 1. While the Node takes no data
///    (it still runs its bootstrap graphs, or it is stalled waiting for
///    flow-control credit, [`Node::takes_data`]) it sleeps in
///    `ingress.wait_control(deadline)`, which queued data does not end.
///
/// The loop runs inside one `catch_unwind`; supervision happens around it.
pub struct NodeActor {
    peer: PeerId,
    ingress: Arc<IngressQueue>,
    router: Arc<Router>,
    clock: Arc<dyn Clock>,
    config: ActorConfig,
    shared: Arc<Shared>,
    /// Rebuilds the Node for a restart; `None`: unsupervised.
    factory: Option<NodeFactory>,
    /// The last good snapshot (the restart base).
    last_snapshot: Option<Vec<u8>>,
    /// Clock time of the last snapshot (or spawn).
    snapshot_at_ns: u64,
    /// Mailbox events taken (both lanes) when the last snapshot was taken.
    taken_at_snapshot: u64,
    restarts: RestartWindow,
    /// Last depth sample: (clock ns, events queued).
    depth_sample: (u64, u64),
    /// Rounds since the Node's counters were last published.
    rounds_since_publish: u32,
    /// Most actors spinning at once: the cores but one (at least 1).
    spin_slots: usize,
    /// Reused buffer for the steps of one poll.
    steps: Vec<Step>,
}

/// The caller's side of a running [`NodeActor`].
#[derive(Debug)]
pub struct ActorHandle {
    peer: PeerId,
    ingress: Arc<IngressQueue>,
    shared: Arc<Shared>,
    clock: Arc<dyn Clock>,
    join_grace: Duration,
    /// Disconnected when the thread exits (its sender is dropped last).
    exited: Receiver<()>,
    thread: Option<JoinHandle<Result<ActorReport, ActorError>>>,
}

/// Requests waiting for the actor thread to snapshot its Node.
type SnapshotReplies = Vec<Sender<Result<Vec<u8>, SnapshotRequestError>>>;

/// State shared between the handle and the thread.
#[derive(Debug)]
struct Shared {
    /// Written by the actor thread, read by anyone (`stats`, `metrics`).
    counters: ActorCounters,
    /// The Node's counters: written by the actor thread before it sleeps
    /// and every 64 rounds, read by `metrics`.
    node_stats: Mutex<NodeStats>,
    /// Appended to by `subscribe` (any thread); read and pruned by the
    /// actor thread when it forwards an output.
    subscribers: Mutex<Vec<Sender<ActorOutput>>>,
    /// Cap on `subscribers` and on `snapshot_requests`; fixed at spawn.
    max_subscribers: usize,
    /// Pushed by `snapshot` (then a nudge), taken by the actor thread.
    snapshot_requests: Mutex<SnapshotReplies>,
    /// Drain deadline in clock ns, `u64::MAX` when no drain was ordered.
    /// Written by `begin_drain` before its nudge (`Release`), read by the
    /// actor thread (`Acquire`) each time round its loop.
    drain_deadline_ns: AtomicU64,
    /// Set by the actor thread (`SeqCst`) just before it sleeps and cleared
    /// when it wakes; read by `is_idle`.
    sleeping: AtomicBool,
}

impl NodeActor {
    /// Starts a thread named `{prefix}{peer}` that owns `node` and runs the
    /// loop above; registers the Node with `router` and `clock` first. A
    /// panic that escapes the Node stops it ([`ActorError::Panicked`]).
    pub fn spawn(
        node: Node,
        router: Arc<Router>,
        clock: Arc<dyn Clock>,
        config: ActorConfig,
    ) -> Result<ActorHandle, SpawnError> {
        Self::start(node, None, router, clock, config)
    }

    /// Like [`NodeActor::spawn`], but supervised: builds the Node with
    /// `factory`, snapshots it periodically, and restarts it from its last
    /// snapshot after a panic, within [`ActorConfig::supervision`]'s
    /// restart intensity (module docs, *Supervision*).
    pub fn spawn_supervised(
        factory: NodeFactory,
        router: Arc<Router>,
        clock: Arc<dyn Clock>,
        config: ActorConfig,
    ) -> Result<ActorHandle, SpawnError> {
        let builder = catch_unwind(AssertUnwindSafe(&*factory))
            .map_err(|p| SpawnError::FactoryPanicked(panic_message(&*p).to_owned()))?;
        let node = builder.build()?;
        Self::spawn_supervised_node(node, factory, router, clock, config)
    }

    /// [`NodeActor::spawn_supervised`] for a Node the caller already built
    /// from `factory()` (to look at it first, e.g. to resolve site names).
    /// A Node from another factory fails its first restart
    /// ([`ActorError::RestartFailed`]).
    pub fn spawn_supervised_node(
        node: Node,
        factory: NodeFactory,
        router: Arc<Router>,
        clock: Arc<dyn Clock>,
        config: ActorConfig,
    ) -> Result<ActorHandle, SpawnError> {
        Self::start(node, Some(factory), router, clock, config)
    }

    fn start(
        mut node: Node,
        factory: Option<NodeFactory>,
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
            node_stats: Mutex::new(node.stats()),
            subscribers: Mutex::new(Vec::new()),
            max_subscribers: config.max_subscribers,
            snapshot_requests: Mutex::new(Vec::new()),
            drain_deadline_ns: AtomicU64::new(u64::MAX),
            sleeping: AtomicBool::new(false),
        });
        let mut builder =
            thread::Builder::new().name(format!("{}{}", config.thread_name_prefix, peer));
        if let Some(size) = config.stack_size {
            builder = builder.stack_size(size);
        }
        let now = clock.now_ns();
        let join_grace = config.join_grace;
        let mut actor = NodeActor {
            peer,
            ingress: Arc::clone(&ingress),
            router: Arc::clone(&router),
            clock: Arc::clone(&clock),
            config,
            shared: Arc::clone(&shared),
            factory,
            last_snapshot: None,
            snapshot_at_ns: now,
            taken_at_snapshot: 0,
            restarts: RestartWindow::default(),
            depth_sample: (now, 0),
            rounds_since_publish: 0,
            spin_slots: std::thread::available_parallelism()
                .map_or(1, |n| n.get().saturating_sub(1).max(1)),
            steps: Vec::new(),
        };
        if actor.factory.is_some() {
            // The first restart base: the fresh Node (a failure is counted;
            // a restart then starts from a fresh build, the same state). A
            // component whose `snapshot_state` panics stops the spawn here.
            let first = catch_unwind(AssertUnwindSafe(|| actor.take_snapshot(&mut node, now)));
            if let Err(payload) = first {
                router.unregister(peer, &ingress);
                ingress.close();
                return Err(SpawnError::SnapshotPanicked(
                    panic_message(&*payload).to_owned(),
                ));
            }
        }
        let (exited_tx, exited) = bounded::<()>(1);
        let thread = match builder.spawn(move || {
            let _exited = exited_tx; // dropped last: tells `finish` the thread is done
            actor.run(node)
        }) {
            Ok(thread) => thread,
            Err(err) => {
                router.unregister(peer, &ingress);
                ingress.close();
                return Err(SpawnError::Thread(err));
            }
        };
        tracing::debug!(%peer, "actor started");
        Ok(ActorHandle {
            peer,
            ingress,
            shared,
            clock,
            join_grace,
            exited,
            thread: Some(thread),
        })
    }

    /// The thread body: serve, supervise, then shut down (lifecycle 2–5).
    fn run(mut self, mut node: Node) -> Result<ActorReport, ActorError> {
        let peer = node.peer();
        let span = tracing::info_span!("node", %peer);
        let _entered = span.enter();
        loop {
            let served = catch_unwind(AssertUnwindSafe(|| self.serve(&mut node)));
            let payload = match served {
                Ok(outcome) => {
                    let report = self.finish(&node, outcome);
                    tracing::info!(
                        processed = report.account().processed,
                        dropped_at_close = report.dropped_at_close,
                        "actor stopped"
                    );
                    return Ok(report);
                }
                Err(payload) => payload,
            };
            let message = panic_message(&*payload).to_owned();
            ActorCounters::bump(&self.shared.counters.panics, 1);
            let last = node.stats();
            match self.restart(node, &message) {
                Ok(restarted) => node = restarted,
                Err(failure) => {
                    let report = Box::new(self.close_out(peer, last));
                    tracing::error!(%message, "actor stopped for good after a panic");
                    return Err(match failure {
                        Failure::Unsupervised => ActorError::Panicked { message, report },
                        Failure::GaveUp => ActorError::GaveUp { message, report },
                        Failure::Rebuild(reason) => ActorError::RestartFailed { reason, report },
                    });
                }
            }
        }
    }

    /// The loop; returns once the mailbox is closed and drained.
    fn serve(&mut self, node: &mut Node) -> ServeOutcome {
        let rounds = self.config.polls_per_round.max(1);
        let mut deadline_hit = false;
        loop {
            let start = self.clock.now_ns();
            self.sample_depth(start);
            let mut polled = false;
            for _ in 0..rounds {
                let now = self.clock.now_ns();
                if !self.due_at(node, now) {
                    break;
                }
                self.poll_at(node, now);
                polled = true;
            }
            let now = if polled {
                let end = self.clock.now_ns();
                ActorCounters::bump(&self.shared.counters.poll_ns, end.saturating_sub(start));
                end
            } else {
                start
            };
            self.housekeeping(node, now);
            let drain_at = self.shared.drain_deadline_ns.load(Ordering::Acquire);
            if drain_at != u64::MAX && !self.ingress.is_closed() {
                let quiescent = !self.due(node) && node.is_quiescent();
                #[cfg(nodeflow_loom_broken)]
                let quiescent = quiescent || self.loom_broken("drain-ignores-parked-work");
                if quiescent || now >= drain_at {
                    deadline_hit = !quiescent;
                    self.ingress.close();
                }
            }
            if self.ingress.is_closed() {
                return ServeOutcome {
                    drain_incomplete: self.drain_closed(node),
                    deadline_hit,
                };
            }
            if self.due(node) {
                continue;
            }
            if node.takes_data() && self.spin_until_ready() {
                continue;
            }
            self.publish(node);
            let wake_at = match node.next_deadline() {
                Some(at) => at.min(drain_at),
                None => drain_at,
            };
            let deadline = (wake_at != u64::MAX)
                .then(|| self.clock.deadline_instant(wake_at))
                .flatten();
            self.shared.sleeping.store(true, Ordering::SeqCst);
            // A Node still bootstrapping does not take data yet: queued data
            // must not wake it (it would find nothing to do, and spin).
            // Likewise a Node stalled on flow-control credit: it waits for
            // the credit (control lane), not for more data.
            let outcome = if node.takes_data() {
                self.ingress.wait(deadline)
            } else {
                self.ingress.wait_control(deadline)
            };
            self.shared.sleeping.store(false, Ordering::SeqCst);
            let counter = match outcome {
                WaitOutcome::TimedOut => &self.shared.counters.timeouts,
                _ => &self.shared.counters.wakeups,
            };
            ActorCounters::bump(counter, 1);
        }
    }

    /// Loop step 5's short spin: whether mail (or a nudge, or the close)
    /// arrived within [`ActorConfig::spins_before_sleep`] checks. At most
    /// one actor per spare core spins at a time (process-wide, see
    /// [`SPINNING`]); the others go to sleep at once, so many idle Nodes
    /// on few cores do not burn the cores the busy ones need.
    fn spin_until_ready(&self) -> bool {
        if self.config.spins_before_sleep == 0 {
            return false;
        }
        if SPINNING.fetch_add(1, StdOrdering::Relaxed) >= self.spin_slots {
            SPINNING.fetch_sub(1, StdOrdering::Relaxed);
            return false;
        }
        let mut ready = false;
        for round in 0..self.config.spins_before_sleep {
            if self.ingress.is_ready() {
                ready = true;
                break;
            }
            if round < SPIN_ROUNDS {
                for _ in 0..1u32 << round.min(6) {
                    std::hint::spin_loop();
                }
            } else {
                thread::yield_now();
            }
        }
        SPINNING.fetch_sub(1, StdOrdering::Relaxed);
        ready
    }

    /// Polls until the closed Node has no work (mail still queued is
    /// handled); returns whether it stopped at the poll cap with work left.
    fn drain_closed(&mut self, node: &mut Node) -> bool {
        for _ in 0..self.config.max_stop_polls {
            if !node.has_work() {
                return false;
            }
            self.poll_once(node);
        }
        node.has_work()
    }

    /// Whether a poll now would do something.
    fn due(&self, node: &Node) -> bool {
        node.has_work()
            || node
                .next_deadline()
                .is_some_and(|at| at <= self.clock.now_ns())
    }

    /// [`NodeActor::due`] at a time already read.
    fn due_at(&self, node: &Node, now_ns: u64) -> bool {
        node.has_work() || node.next_deadline().is_some_and(|at| at <= now_ns)
    }

    /// One poll at the clock's current time, then routes its steps.
    fn poll_once(&mut self, node: &mut Node) {
        let now_ns = self.clock.now_ns();
        self.poll_at(node, now_ns);
    }

    /// One poll at `now_ns`, then routes its steps.
    fn poll_at(&mut self, node: &mut Node, now_ns: u64) {
        let mut steps = std::mem::take(&mut self.steps);
        steps.extend(node.poll(now_ns));
        ActorCounters::bump(&self.shared.counters.polls, 1);
        for step in steps.drain(..) {
            self.handle_step(node, step);
        }
        self.steps = steps;
    }

    /// Adds the mailbox depth since the last sample to the metrics.
    fn sample_depth(&mut self, now: u64) {
        let (at, depth) = self.depth_sample;
        let area = depth.saturating_mul(now.saturating_sub(at));
        if area > 0 {
            ActorCounters::bump(&self.shared.counters.queue_depth_ns, area);
        }
        self.depth_sample = (now, self.ingress.len() as u64);
    }

    /// Loop step 3: requests, periodic snapshot, periodic publish.
    fn housekeeping(&mut self, node: &mut Node, now: u64) {
        if self.ingress.take_nudges() > 0 {
            self.answer_snapshot_requests(node, now);
        }
        let snapshot_due = self.factory.is_some()
            && self
                .config
                .supervision
                .snapshot_every_ns
                .is_some_and(|every| now.saturating_sub(self.snapshot_at_ns) >= every);
        if snapshot_due {
            let _ = self.take_snapshot(node, now);
        }
        self.rounds_since_publish += 1;
        if self.rounds_since_publish >= 64 {
            self.publish(node);
        }
    }

    /// Snapshots `node` now and keeps the bytes as the restart base.
    fn take_snapshot(&mut self, node: &mut Node, now: u64) -> Result<Vec<u8>, String> {
        self.snapshot_at_ns = now;
        match node.snapshot() {
            Ok(bytes) => {
                ActorCounters::bump(&self.shared.counters.snapshots, 1);
                // The snapshot moved queued mail into the Node: it is part
                // of the snapshot, so only later takes can be lost.
                self.taken_at_snapshot = taken(&self.ingress.stats());
                self.last_snapshot = Some(bytes.clone());
                tracing::debug!(bytes = bytes.len(), "snapshot taken");
                Ok(bytes)
            }
            Err(error) => {
                ActorCounters::bump(&self.shared.counters.snapshot_failures, 1);
                tracing::warn!(%error, "snapshot failed; keeping the previous one");
                Err(error.to_string())
            }
        }
    }

    fn answer_snapshot_requests(&mut self, node: &mut Node, now: u64) {
        let waiting = std::mem::take(&mut *self.shared.snapshot_requests.lock());
        if waiting.is_empty() {
            return;
        }
        let result = self
            .take_snapshot(node, now)
            .map_err(SnapshotRequestError::Failed);
        for reply in waiting {
            // A requester that gave up has dropped its receiver: nothing to do.
            let _ = reply.send(result.clone());
        }
    }

    /// Publishes the Node's counters for [`ActorHandle::metrics`].
    fn publish(&mut self, node: &Node) {
        self.publish_stats(node.stats());
    }

    /// Publishes `stats` (the live Node's, or the last ones at exit).
    fn publish_stats(&mut self, stats: NodeStats) {
        self.rounds_since_publish = 0;
        *self.shared.node_stats.lock() = stats;
        tracing::trace!(
            depth = self.ingress.len(),
            high_water = self.ingress.data_high_water(),
            ops_fired = stats.ops_fired,
            envelopes_in = stats.envelopes_received,
            envelopes_out = self.shared.counters.envelopes_out.load(Ordering::Relaxed),
            "node metrics"
        );
    }

    /// Supervision steps 1–2: drops `dead` and builds its successor.
    fn restart(&mut self, dead: Node, message: &str) -> Result<Node, Failure> {
        let now = self.clock.now_ns();
        let watermark = dead.id_watermark();
        let ledger = dead.flow_ledger();
        self.steps.clear();
        // A value's or component's `Drop` may panic too: contain it.
        let _ = catch_unwind(AssertUnwindSafe(move || drop(dead)));
        let Some(factory) = self.factory.clone() else {
            return Err(Failure::Unsupervised);
        };
        if !self.restarts.try_restart(&self.config.supervision, now) {
            return Err(Failure::GaveUp);
        }
        // The rebuilt Node resumes from the snapshot: what the dead one took
        // since is rolled back.
        let lost = taken(&self.ingress.stats()).saturating_sub(self.taken_at_snapshot);
        ActorCounters::bump(&self.shared.counters.lost_in_restart, lost);
        tracing::warn!(%message, lost, "node panicked; restarting from its last snapshot");
        let builder = catch_unwind(AssertUnwindSafe(&*factory))
            .map_err(|p| Failure::Rebuild(panic_message(&*p).to_owned()))?
            .mailbox(Arc::clone(&self.ingress));
        let rebuilt = match &self.last_snapshot {
            Some(bytes) => builder.restore(bytes).map_err(|e| e.to_string()),
            None => builder.build().map_err(|e| e.to_string()),
        };
        let mut node = rebuilt.map_err(Failure::Rebuild)?;
        if node.peer() != self.peer {
            return Err(Failure::Rebuild("the factory built another peer".into()));
        }
        node.skip_ids_past(watermark);
        // Credits moved with envelopes the snapshot never saw: carry them.
        node.adopt_flow_ledger(&ledger);
        #[cfg(nodeflow_loom_broken)]
        self.loom_broken_restart(&mut node, &factory);
        // Events taken from here on are new; the snapshot's are replayed.
        self.taken_at_snapshot = taken(&self.ingress.stats());
        ActorCounters::bump(&self.shared.counters.restarts, 1);
        self.publish(&node);
        Ok(node)
    }

    /// Lifecycle steps 4–5 after a clean serve.
    fn finish(&mut self, node: &Node, outcome: ServeOutcome) -> ActorReport {
        let mut report = self.close_out(node.peer(), node.stats());
        report.drain_incomplete = outcome.drain_incomplete;
        report.drain_deadline_hit = outcome.deadline_hit;
        report
    }

    /// Closes and drains the mailbox, unregisters, disconnects everyone and
    /// builds the report (also after a panic the actor does not recover
    /// from, with the dead Node's last counters).
    fn close_out(&mut self, peer: PeerId, node: NodeStats) -> ActorReport {
        let mut leftovers = Vec::new();
        let dropped_at_close = self.ingress.drain_after_close(&mut leftovers) as u64;
        drop(leftovers);
        self.router.unregister(peer, &self.ingress);
        // Dropping the senders disconnects every subscriber and requester:
        // the end of the output stream, seen after the unregister above.
        self.shared.subscribers.lock().clear();
        self.shared.snapshot_requests.lock().clear();
        self.publish_stats(node);
        ActorReport {
            peer,
            stats: self.shared.counters.snapshot(),
            node,
            ingress: self.ingress.stats(),
            dropped_at_close,
            drain_incomplete: false,
            drain_deadline_hit: false,
            abandoned_executions: node.live_executions,
        }
    }

    fn handle_step(&mut self, node: &mut Node, step: Step) {
        let counters = &self.shared.counters;
        let peer = node.peer();
        match step {
            Step::SendEnvelope(envelope) => {
                ActorCounters::bump(&counters.envelopes_out, 1);
                // With flow control on, the Node sent it under a credit.
                let routed = if node.framework().flow().config().enabled {
                    self.router.route_credited(envelope)
                } else {
                    self.router.route(envelope)
                };
                let (counter, reason, envelope) = match routed {
                    Ok(()) => {
                        ActorCounters::bump(&counters.routed, 1);
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
                    Err(RouteError::ShuttingDown(envelope)) => (
                        &counters.refused_shutting_down,
                        SendRefusal::Closed,
                        envelope,
                    ),
                };
                ActorCounters::bump(counter, 1);
                // The Node now has work (the report's steps): the loop polls again.
                node.report_send_refused(*envelope, reason, self.clock.now_ns());
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
            _ => ActorCounters::bump(&counters.other_steps, 1),
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
        ActorCounters::bump(&counters.subscribers_dropped, dropped as u64);
        let counter = if dropped < before {
            &counters.outputs_forwarded
        } else {
            &counters.outputs_unobserved
        };
        ActorCounters::bump(counter, 1);
    }
}

impl std::fmt::Debug for NodeActor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeActor")
            .field("peer", &self.peer)
            .field("supervised", &self.factory.is_some())
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// Deliberately broken protocol variants for the `loom_broken_*` models
/// (selected by [`ActorConfig::loom_broken`]); never compiled otherwise.
#[cfg(nodeflow_loom_broken)]
impl NodeActor {
    /// Whether the model asked for the bug named `name`.
    fn loom_broken(&self, name: &str) -> bool {
        self.config.loom_broken == Some(name)
    }

    /// The restart bugs, applied to the freshly restored `node`:
    /// * `"restart-discards-mail"`: the restart throws away the mail still
    ///   queued (as if it belonged to the dead incarnation): mail sent
    ///   before the rebuild is lost, yet counted as taken.
    /// * `"restart-on-fresh-mailbox"`: the Node is rebuilt on a fresh
    ///   mailbox and the router entry is swapped (unregister the old one,
    ///   register the new one) without moving queued mail; whatever still
    ///   holds the old mailbox (a route that raced the swap, a completion
    ///   handle, the actor's handle) reaches nobody.
    // Out of line: its Node-sized locals must not grow `run`'s frame (loom
    // model threads have small stacks).
    #[inline(never)]
    fn loom_broken_restart(&mut self, node: &mut Node, factory: &NodeFactory) {
        if self.loom_broken("restart-discards-mail") {
            let mut discarded = Vec::new();
            self.ingress.drain_into(&mut discarded, usize::MAX);
        }
        if self.loom_broken("restart-on-fresh-mailbox") {
            let builder = factory();
            let fresh = match &self.last_snapshot {
                Some(bytes) => builder.restore(bytes).map_err(|e| e.to_string()),
                None => builder.build().map_err(|e| e.to_string()),
            };
            let Ok(fresh) = fresh else { return };
            let old = std::mem::replace(&mut self.ingress, Arc::clone(fresh.ingress()));
            self.router.unregister(self.peer, &old);
            let _ = self.router.register(self.peer, Arc::clone(&self.ingress));
            let _ = self.clock.watch(&self.ingress);
            *node = fresh;
        }
    }
}

/// Actors of this process spinning before sleep now. A plain std atomic
/// on purpose: it only decides whether an actor spins (a heuristic) and
/// orders no memory, so loom need not see it (spinning is off under loom).
static SPINNING: StdAtomicUsize = StdAtomicUsize::new(0);

/// Checks of [`NodeActor::spin_until_ready`] that busy-wait (doubling up
/// to 64 pauses); later checks yield the core instead.
const SPIN_ROUNDS: u32 = 24;

/// How [`NodeActor::serve`] ended.
#[derive(Clone, Copy, Debug)]
struct ServeOutcome {
    drain_incomplete: bool,
    deadline_hit: bool,
}

/// Why a panicked Node was not restarted.
#[derive(Debug)]
enum Failure {
    Unsupervised,
    GaveUp,
    Rebuild(String),
}

/// Events taken from a mailbox (both lanes).
fn taken(stats: &IngressStats) -> u64 {
    stats.control.taken.saturating_add(stats.data.taken)
}

// Real threads and real time; the loom model of the actor lives in
// `loom-tests/` (loom's `Arc` cannot coerce to `Arc<dyn Clock>` here).
#[cfg(test)]
#[cfg(not(loom))]
mod tests;
