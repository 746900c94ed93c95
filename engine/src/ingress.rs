//! The Node's mailbox: a multi-producer, single-owner queue with a never-dropping control lane, a bounded data lane, a doorbell that wakes the owner, and a close protocol that accounts for every push.
//!
//! Shared as `Arc<IngressQueue>`: any thread pushes ([`IngressQueue::push`],
//! [`IngressQueue::push_control`], [`IngressQueue::push_data`], the
//! [`crate::CompletionSink`] impl); one owner thread pops
//! ([`IngressQueue::try_pop`], [`IngressQueue::drain_into`]), sleeps
//! ([`IngressQueue::wait`] or [`IngressQueue::poll_ready`]) and finally
//! drains after close ([`IngressQueue::drain_after_close`]).
//!
//! # Invariants
//! * The control lane never refuses a push while the queue is open; the
//!   data lane refuses with [`PushError::Full`] once `data_capacity` events
//!   are queued or being pushed. A refused event is always handed back.
//! * Every event accepted (a push returned `Ok`) is popped exactly once,
//!   provided the owner runs [`IngressQueue::drain_after_close`] before
//!   dropping the queue. Every push after [`IngressQueue::close`] returns
//!   [`PushError::Closed`] with the event.
//! * Control events pop before data events.
//! * No lost wake-up: if an event is accepted or the queue is closed while
//!   the owner sleeps in `wait` or has a waker registered, the owner wakes.
//! * A push never blocks and never takes a lock when the owner is awake.
//!
//! # The doorbell (no lost wake-ups)
//! The owner must not sleep while an event it has not seen is queued, yet
//! a producer must not lock anything when the owner is awake. The two sides
//! are ordered Dekker-style by `SeqCst` fences:
//!
//! 1. Producer: sends the event, then increments the lane's `accepted`
//!    counter (`Release`).
//! 2. Producer: `fence(SeqCst)`, then loads `armed`. If it is non-zero the
//!    producer *rings*: it takes the bell lock, takes the registered waker,
//!    releases the lock, then notifies the condvar and wakes the waker.
//!    Otherwise it returns without touching a lock (the fast path).
//! 3. Owner (`wait`): takes the bell lock, adds itself to `armed`, then
//!    `fence(SeqCst)`, then re-reads the lanes' `accepted` counters
//!    (`Acquire`) and the close flag. Only if nothing is pending does it wait
//!    on the condvar, which releases the lock atomically.
//!
//! Why nothing is lost: the two fences are totally ordered. If the
//! producer's fence comes first, the owner's re-check in step 3 (after its
//! own fence) must see the increment from step 1 and does not sleep. If the
//! owner's fence comes first, the producer's load in step 2 must see the
//! owner's entry in `armed` and rings. A ring cannot slip between the
//! owner's re-check and its wait, because the owner holds the bell lock
//! across both and the ringer must take it. (The acquire/release pair on
//! `accepted` additionally makes the sent event visible to the owner's pop.)
//! The owner compares `accepted` with its own `taken` count; a producer that
//! sent but has not yet incremented `accepted` can make the owner see
//! "nothing pending" while an event sits in the lane, but that producer's
//! fence then comes after the owner's, so it rings in step 2.
//! The re-check reads this file's own counters, not the channel's
//! emptiness, so the argument rests only on the atomics named here (and
//! loom can check it: the loom channel stand-in is mutex-based and would
//! hide a missing fence).
//!
//! An async owner registers a waker instead ([`IngressQueue::register_waker`]):
//! the same steps with "sets the waker bit in `armed`" in place of "adds
//! itself"; if the re-check finds something pending, the waker is woken at
//! once. Rings take the waker (one-shot): register again on every poll.
//!
//! # Close (nothing accepted is lost, nothing refused is silent)
//! `state` packs a CLOSED bit and the number of pushes in flight.
//!
//! 1. Producer: `state.fetch_add(1)` ("enter"). If the old value had CLOSED
//!    set, it leaves (`fetch_sub(1)`) and returns `Closed(event)`.
//! 2. Producer: sends (or is refused `Full`), bumps the counters, then leaves
//!    with `state.fetch_sub(1, Release)`, then runs the doorbell step 2.
//! 3. `close()`: `state.fetch_or(CLOSED)`, then rings unconditionally so a
//!    sleeping owner sees the close.
//! 4. Owner (`drain_after_close`): after close, loops until the in-flight
//!    count read with `Acquire` is 0, then pops until both lanes are empty.
//!
//! Why: all RMWs on `state` form one modification order. A producer whose
//! enter comes after the CLOSED bit sees it and refuses. One whose enter
//! comes before is counted, so step 4 waits for its leave; its leave is a
//! `Release` RMW that the owner's `Acquire` load reads (directly or through
//! the release sequence of later RMWs), so its send happens-before the final
//! pops, which therefore see the event. Pushers never block, so the wait in
//! step 4 lasts only as long as the in-flight pushes (it yields the thread
//! meanwhile).
//!
//! # Loom models
//! `loom_ingress` at the bottom of this file checks lanes and capacity,
//! blocking and async wake-ups, and close versus push; each model has a
//! `loom_broken_*` twin that runs against one deliberate bug (see
//! `LoomBreakage`) and must fail. `ci/loom.sh` runs both sets.

use std::fmt;
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::budget::{ByteBudget, ByteCharge, ChargedBytes};
use crate::bus::AppIngressError;
use crate::completion::{CompletionStats, SinkCounters};
use crate::component::OpError;
use crate::ids::{CommandId, EventKind, SiteId};
use crate::sync::atomic::{fence, AtomicU64, AtomicUsize, Ordering};
use crate::sync::channel::{unbounded, Receiver, Sender};
use crate::sync::{Condvar, Mutex};
use crate::value::SlotValue;
use crate::wire::Envelope;

/// Most bytes of a completion failure's detail text; longer details are cut
/// at a UTF-8 character boundary at or below this length.
pub const COMPLETION_DETAIL_CAP: usize = 4096;

/// The Node's mailbox, shared as `Arc<IngressQueue>`.
///
/// Owner-side calls (`try_pop`, `drain_into`, `wait`, `poll_ready`,
/// `register_waker`, `drain_after_close`) come from one owner at a time; an
/// owner that moves between threads must hand over with a synchronizing
/// step (as every executor's task hand-off does), because `taken` is the
/// owner's private count.
///
/// Shared state and owners: producers (any thread) write `state`,
/// `armed` (read only), the lanes' send side and `accepted` / `reserved` /
/// refusal counters; the owner thread pops, writes `taken`, frees data slots
/// and adds/removes itself in `armed`; `close` may be called by anyone.
pub struct IngressQueue {
    config: IngressConfig,
    budget: ByteBudget,
    control: LaneState,
    data: LaneState,
    /// CLOSED bit | number of pushes in flight. Enter is `Relaxed` (only
    /// the RMW's place in the modification order matters), leave is
    /// `Release` and pairs with the `Acquire` load in `drain_after_close`.
    /// Close is `SeqCst` for simplicity, but nothing relies on more than its
    /// atomicity: a sleeping owner learns of it through the ring's lock.
    state: AtomicUsize,
    /// Who is waiting for the doorbell: `SLEEPER` per thread blocked in
    /// `wait`, plus `WAKER_ARMED` while a waker is registered. Accessed
    /// `Relaxed`; ordering comes from the `SeqCst` fences around it (see
    /// the module docs).
    armed: AtomicUsize,
    /// The bell lock; holds the registered waker.
    bell: Mutex<Option<Waker>>,
    /// Signalled on every ring; waiters hold `bell` while they re-check.
    bell_cv: Condvar,
    /// Counters of the completion sink (see `completion.rs`).
    pub(crate) sink_counters: SinkCounters,
    /// Nudges given ([`IngressQueue::nudge`], any thread; `Release`
    /// increment before the doorbell fence, read `Acquire` by the owner's
    /// re-check, like a lane's `accepted`).
    nudges: AtomicU64,
    /// Nudges the owner has taken ([`IngressQueue::take_nudges`]); written
    /// and read only by the owner (`Relaxed`).
    nudges_seen: AtomicU64,
    /// A deliberate protocol bug selected by a `loom_broken_*` model.
    #[cfg(nodeflow_loom_broken)]
    pub(crate) broken: Option<LoomBreakage>,
}

/// Sizes of an [`IngressQueue`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IngressConfig {
    /// Most events queued (or being pushed) on the data lane; default 1024.
    /// A value of 0 is treated as 1.
    pub data_capacity: usize,
    /// Most bytes in one completion result; default 16 MiB.
    pub completion_result_cap: usize,
}

/// An input to a Node.
#[derive(Debug)]
#[non_exhaustive]
pub enum IngressEvent {
    /// A parked command's result (control lane).
    Completion {
        /// The command being completed.
        cmd: CommandId,
        /// Its result.
        payload: CompletionPayload,
    },
    /// A parked command failed (control lane); surfaces as a typed op failure.
    CompletionFailed {
        /// The command that failed.
        cmd: CommandId,
        /// What went wrong: its kind and stable reason as the failing side
        /// gave them (`Failed` / `completion.failed` for a plain
        /// [`crate::CompletionSink::fail`]), its detail at most
        /// [`COMPLETION_DETAIL_CAP`] bytes.
        error: Box<OpError>,
    },
    /// An input was refused at the boundary (control lane); for a refused
    /// completion the engine fails the parked op with this reason.
    IngressError(AppIngressError),
    /// Nudge: the owner should poll (control lane).
    Wake,
    /// Request to stop the Node (control lane).
    Shutdown,
    /// A decoded envelope from another Node in this process (data lane).
    Envelope(Envelope),
    /// An encoded envelope from outside the process (data lane).
    EnvelopeBytes(ChargedBytes),
    /// An app event delivered by the host (data lane).
    AppEvent {
        /// The event's kind.
        kind: EventKind,
        /// The event's value.
        value: Box<dyn SlotValue>,
    },
    /// The host invokes an installed graph (data lane).
    Invoke {
        /// The graph to run.
        site: SiteId,
        /// Named inputs.
        inputs: Vec<(String, Box<dyn SlotValue>)>,
        /// The host's correlation ticket, echoed in the invoke's outputs.
        ticket: u64,
    },
}

/// The result carried by [`IngressEvent::Completion`].
#[derive(Debug)]
#[non_exhaustive]
pub enum CompletionPayload {
    /// Encoded result bytes, copied in under the Node's byte budget.
    Bytes(ChargedBytes),
    /// Typed values moved in without encoding, charged by their
    /// [`SlotValue::heap_bytes`].
    Values {
        /// `(output name, value)` pairs.
        values: Vec<(String, Box<dyn SlotValue>)>,
        /// The budget charge for the values; keep it while they live.
        charge: ByteCharge,
    },
}

/// Which lane an event travels on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Lane {
    /// Unbounded, never drops: completions, failures, signals, notices.
    Control,
    /// Bounded: envelopes, app events, invokes.
    Data,
}

/// A push was refused; the event is handed back.
#[derive(thiserror::Error)]
#[non_exhaustive]
pub enum PushError<T> {
    /// The data lane is at capacity; retry after the owner drains.
    #[error("the Node's ingress data lane is full; retry after the Node drains it")]
    Full(T),
    /// The queue is closed (the Node is stopping); the event was not queued.
    #[error("the Node's ingress is closed; the Node is stopping and accepts no more input")]
    Closed(T),
}

/// Why [`IngressQueue::wait`] returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum WaitOutcome {
    /// An event is pending (or was, and another pop took it): pop and poll.
    Ready,
    /// The deadline passed with nothing pending.
    TimedOut,
    /// The queue was closed: run [`IngressQueue::drain_after_close`].
    Closed,
}

/// Counters of one lane.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LaneStats {
    /// Events accepted.
    pub accepted: u64,
    /// Events popped by the owner.
    pub taken: u64,
    /// Pushes refused because the lane was full (data lane only).
    pub refused_full: u64,
    /// Pushes refused because the queue was closed.
    pub refused_closed: u64,
    /// Most slots in use at once, queued or being pushed (data lane only;
    /// 0 for control).
    pub high_water: usize,
}

/// Counters of an [`IngressQueue`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IngressStats {
    /// The control lane.
    pub control: LaneStats,
    /// The data lane.
    pub data: LaneStats,
    /// The completion sink.
    pub completion: CompletionStats,
    /// Whether the queue is closed.
    pub closed: bool,
}

/// A deliberately broken protocol step, compiled only for the loom suite's
/// `loom_broken_*` models (each must make its model fail).
#[cfg(nodeflow_loom_broken)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum LoomBreakage {
    /// Data-slot reservation as load-check-store instead of one CAS.
    DataSlotReservation,
    /// Producers skip the `SeqCst` fence before reading `armed`.
    SkipPushFence,
    /// `register_waker` does not re-check the lanes after arming.
    WakerNoRecheck,
    /// `drain_after_close` does not wait for in-flight pushes.
    SkipInFlightWait,
    /// The completion sink checks `is_closed` and then ignores the push
    /// result (check-then-act).
    SinkCheckThenPush,
}

/// One lane: a channel plus its counters.
///
/// Both lanes use an unbounded (linked-block) channel; the data lane's
/// capacity is enforced by `reserved` instead of a bounded channel because
/// crossbeam's bounded flavour allocates all `capacity` slots up front, a
/// cost every one of many idle Nodes would pay.
struct LaneState {
    tx: Sender<IngressEvent>,
    rx: Receiver<IngressEvent>,
    /// Events sent. Incremented by producers after the send with `Release`;
    /// the owner's `Acquire` load in the doorbell re-check pairs with it.
    accepted: AtomicU64,
    /// Events popped. Written only by the owner; `Relaxed`.
    taken: AtomicU64,
    /// Data lane: slots in use (queued or being pushed); reserved by a
    /// producer's CAS before the send, freed by the owner after a pop.
    /// Publishes no memory: `Relaxed`.
    reserved: AtomicUsize,
    /// Stats only, `Relaxed`.
    refused_full: AtomicU64,
    /// Stats only, `Relaxed`.
    refused_closed: AtomicU64,
    /// Stats only (`fetch_max`), `Relaxed`.
    high_water: AtomicUsize,
}

const CLOSED: usize = 1 << (usize::BITS - 1);
const IN_FLIGHT: usize = !CLOSED;
const WAKER_ARMED: usize = 1;
const SLEEPER: usize = 2;

impl IngressQueue {
    /// An open, empty queue charging byte payloads against `budget`.
    pub fn new(config: IngressConfig, budget: ByteBudget) -> Self {
        Self {
            config: IngressConfig {
                data_capacity: config.data_capacity.max(1),
                ..config
            },
            budget,
            control: LaneState::new(),
            data: LaneState::new(),
            state: AtomicUsize::new(0),
            armed: AtomicUsize::new(0),
            bell: Mutex::new(None),
            bell_cv: Condvar::new(),
            sink_counters: SinkCounters::default(),
            nudges: AtomicU64::new(0),
            nudges_seen: AtomicU64::new(0),
            #[cfg(nodeflow_loom_broken)]
            broken: None,
        }
    }

    /// Wakes the owner without queuing an event: its `wait` / `poll_ready`
    /// returns `Ready` until it calls [`IngressQueue::take_nudges`].
    ///
    /// For hosts that leave a request beside the queue (a snapshot request,
    /// a drain order) and need the owner to look at it. Same doorbell as a
    /// push, so a nudge is never lost; works on a closed queue too (the
    /// owner is woken by the close anyway).
    pub fn nudge(&self) {
        // Doorbell step 1: publish before the fence (pairs with the
        // owner's `Acquire` re-check in `ready_outcome`).
        self.nudges.fetch_add(1, Ordering::Release);
        self.after_accept();
    }

    /// Owner only: how many nudges arrived since the last call (0 when none).
    /// Take them before acting on the requests they announce.
    pub fn take_nudges(&self) -> u64 {
        let given = self.nudges.load(Ordering::Acquire);
        let seen = self.nudges_seen.swap(given, Ordering::Relaxed);
        given.wrapping_sub(seen)
    }

    /// Pushes `event` on the lane its variant belongs to ([`IngressEvent::lane`]).
    pub fn push(&self, event: IngressEvent) -> Result<(), PushError<IngressEvent>> {
        match event.lane() {
            Lane::Control => self.push_control(event),
            Lane::Data => self.push_data(event),
        }
    }

    /// Pushes on the unbounded control lane. Refused only when closed.
    ///
    /// Only push events whose number is bounded elsewhere (one completion
    /// per parked command, one shutdown): this lane has no capacity.
    pub fn push_control(&self, event: IngressEvent) -> Result<(), PushError<IngressEvent>> {
        self.push_on(Lane::Control, event)
    }

    /// Pushes on the bounded data lane. Refused when full or closed.
    pub fn push_data(&self, event: IngressEvent) -> Result<(), PushError<IngressEvent>> {
        self.push_on(Lane::Data, event)
    }

    /// Pushes on the data lane an event whose room the sender holds a
    /// flow-control credit for (the Router, for envelopes a Node sent
    /// under its window; ARCHITECTURE §3.1). It is not refused `Full`: the
    /// receiver's windows bound how many such events can be queued (at
    /// most one window per sender), and they count in the lane's depth, so
    /// uncredited pushes ([`IngressQueue::push_data`]: host invokes, app
    /// events, bytes from outside) see the lane as full sooner. Refused
    /// only when closed.
    pub fn push_data_credited(&self, event: IngressEvent) -> Result<(), PushError<IngressEvent>> {
        self.push_lane(Lane::Data, event, true)
    }

    /// Pops the next event: control lane first, then data. Owner only.
    pub fn try_pop(&self) -> Option<IngressEvent> {
        if let Ok(event) = self.control.rx.try_recv() {
            self.control.taken.fetch_add(1, Ordering::Relaxed);
            return Some(event);
        }
        let event = self.data.rx.try_recv().ok()?;
        self.data.taken.fetch_add(1, Ordering::Relaxed);
        self.data.reserved.fetch_sub(1, Ordering::Relaxed);
        Some(event)
    }

    /// Pops one control-lane event only, leaving the data lane untouched
    /// (a Node running its bootstrap graphs still needs its completions).
    pub fn try_pop_control(&self) -> Option<IngressEvent> {
        let event = self.control.rx.try_recv().ok()?;
        self.control.taken.fetch_add(1, Ordering::Relaxed);
        Some(event)
    }

    /// Pops up to `max` events into `out` (control first); returns how many.
    pub fn drain_into(&self, out: &mut Vec<IngressEvent>, max: usize) -> usize {
        let mut popped = 0;
        while popped < max {
            let Some(event) = self.try_pop() else { break };
            out.push(event);
            popped += 1;
        }
        popped
    }

    /// Blocks the calling (owner) thread until an event is pending, the
    /// queue is closed, or `deadline` passes (`None`: no deadline).
    ///
    /// For thread hosts; see the module docs for why no wake-up is lost.
    /// `Closed` takes precedence over `Ready`.
    pub fn wait(&self, deadline: Option<Instant>) -> WaitOutcome {
        self.wait_lanes(deadline, true)
    }

    /// Like [`IngressQueue::wait`], but data-lane events do not end the wait
    /// (control events, nudges, the close and the deadline do).
    ///
    /// For an owner that cannot take data yet (a Node still running its
    /// bootstrap graphs): with [`IngressQueue::wait`] queued data would make
    /// it return at once, over and over.
    pub fn wait_control(&self, deadline: Option<Instant>) -> WaitOutcome {
        self.wait_lanes(deadline, false)
    }

    fn wait_lanes(&self, deadline: Option<Instant>, data: bool) -> WaitOutcome {
        let ready = || self.ready_outcome_for(data);
        if let Some(outcome) = ready() {
            return outcome;
        }
        let mut bell = self.bell.lock();
        self.armed.fetch_add(SLEEPER, Ordering::Relaxed);
        // Pairs with the producers' fence in `after_accept` (module docs, step 3).
        fence(Ordering::SeqCst);
        let outcome = loop {
            if let Some(outcome) = ready() {
                break outcome;
            }
            match deadline {
                None => bell = self.bell_cv.wait(bell),
                Some(deadline) => {
                    let (guard, timed_out) = self.bell_cv.wait_until(bell, deadline);
                    bell = guard;
                    if timed_out {
                        break ready().unwrap_or(WaitOutcome::TimedOut);
                    }
                }
            }
        };
        self.armed.fetch_sub(SLEEPER, Ordering::Relaxed);
        drop(bell);
        outcome
    }

    /// Registers `waker` to be woken (once) when an event is accepted or the
    /// queue closes. If something is already pending it is woken at once.
    ///
    /// For hosts that poll; one waker is kept (a new one replaces it).
    pub fn register_waker(&self, waker: &Waker) {
        {
            let mut slot = self.bell.lock();
            if !slot.as_ref().is_some_and(|old| old.will_wake(waker)) {
                *slot = Some(waker.clone());
            }
            self.armed.fetch_or(WAKER_ARMED, Ordering::Relaxed);
        }
        #[cfg(nodeflow_loom_broken)]
        if self.broken == Some(LoomBreakage::WakerNoRecheck) {
            // BROKEN on purpose: an event accepted before the arming is never
            // seen and its producer saw nobody to ring.
            return;
        }
        // Pairs with the producers' fence in `after_accept`.
        fence(Ordering::SeqCst);
        if self.ready_outcome().is_some() {
            self.ring();
        }
    }

    /// `Poll::Ready` with [`WaitOutcome::Ready`] or [`WaitOutcome::Closed`]
    /// when there is work; otherwise registers the context's waker and
    /// returns `Poll::Pending` (the waker fires on the next push or close).
    pub fn poll_ready(&self, cx: &mut Context<'_>) -> Poll<WaitOutcome> {
        if let Some(outcome) = self.ready_outcome() {
            return Poll::Ready(outcome);
        }
        self.register_waker(cx.waker());
        Poll::Pending
    }

    /// Whether a [`IngressQueue::wait`] now would return at once: an event
    /// is pending, a nudge is untaken, or the queue is closed. Owner only;
    /// for a short spin before sleeping.
    pub fn is_ready(&self) -> bool {
        self.ready_outcome().is_some()
    }

    /// Refuses every later push with [`PushError::Closed`] and wakes the
    /// owner. Returns `true` for the call that closed the queue.
    pub fn close(&self) -> bool {
        let previous = self.state.fetch_or(CLOSED, Ordering::SeqCst);
        self.ring();
        previous & CLOSED == 0
    }

    /// Closes the queue (if open), waits for pushes already in flight to
    /// finish, then pops every remaining event into `out`; returns how many.
    ///
    /// Owner only. After it returns, every event ever accepted has been
    /// popped exactly once (here or earlier).
    pub fn drain_after_close(&self, out: &mut Vec<IngressEvent>) -> usize {
        self.close();
        #[cfg(nodeflow_loom_broken)]
        let skip_wait = self.broken == Some(LoomBreakage::SkipInFlightWait);
        #[cfg(not(nodeflow_loom_broken))]
        let skip_wait = false;
        // Close protocol, step 4: pairs with the producers' `Release` leave.
        while !skip_wait && self.state.load(Ordering::Acquire) & IN_FLIGHT != 0 {
            crate::sync::thread::yield_now();
        }
        self.drain_into(out, usize::MAX)
    }

    /// Whether [`IngressQueue::close`] has been called.
    pub fn is_closed(&self) -> bool {
        self.state.load(Ordering::Relaxed) & CLOSED != 0
    }

    /// Events queued on both lanes.
    pub fn len(&self) -> usize {
        self.control_len().saturating_add(self.data_len())
    }

    /// Whether both lanes are empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Events queued on the control lane.
    pub fn control_len(&self) -> usize {
        self.control.rx.len()
    }

    /// Events queued on the data lane.
    pub fn data_len(&self) -> usize {
        self.data.rx.len()
    }

    /// The data lane's capacity.
    pub fn data_capacity(&self) -> usize {
        self.config.data_capacity
    }

    /// Most data-lane slots in use at once.
    pub fn data_high_water(&self) -> usize {
        self.data.high_water.load(Ordering::Relaxed)
    }

    /// Most bytes accepted in one completion result.
    pub fn completion_result_cap(&self) -> usize {
        self.config.completion_result_cap
    }

    /// The configuration in force.
    pub fn config(&self) -> IngressConfig {
        self.config
    }

    /// The Node's byte budget.
    pub fn budget(&self) -> &ByteBudget {
        &self.budget
    }

    /// A copy of the counters.
    pub fn stats(&self) -> IngressStats {
        IngressStats {
            control: self.control.stats(),
            data: self.data.stats(),
            completion: self.sink_counters.stats(),
            closed: self.is_closed(),
        }
    }

    /// A queue with one deliberate protocol bug, for a `loom_broken_*` model.
    #[cfg(nodeflow_loom_broken)]
    pub(crate) fn with_breakage(
        config: IngressConfig,
        budget: ByteBudget,
        breakage: LoomBreakage,
    ) -> Self {
        Self {
            broken: Some(breakage),
            ..Self::new(config, budget)
        }
    }

    /// The close and doorbell protocols around one send (module docs).
    fn push_on(&self, lane: Lane, event: IngressEvent) -> Result<(), PushError<IngressEvent>> {
        self.push_lane(lane, event, false)
    }

    /// [`IngressQueue::push_on`]; a `credited` data push skips the capacity check.
    fn push_lane(
        &self,
        lane: Lane,
        event: IngressEvent,
        credited: bool,
    ) -> Result<(), PushError<IngressEvent>> {
        let lane = self.lane(lane);
        // Close protocol, step 1: enter.
        if self.state.fetch_add(1, Ordering::Relaxed) & CLOSED != 0 {
            self.leave();
            lane.refused_closed.fetch_add(1, Ordering::Relaxed);
            return Err(PushError::Closed(event));
        }
        let result = self.send(lane, event, credited);
        // Close protocol, step 2: leave (after the send and the counters).
        self.leave();
        if result.is_ok() {
            self.after_accept();
        }
        result
    }

    /// Sends on `lane`, reserving a data slot first; counts the outcome.
    fn send(
        &self,
        lane: &LaneState,
        event: IngressEvent,
        credited: bool,
    ) -> Result<(), PushError<IngressEvent>> {
        let bounded = std::ptr::eq(lane, &self.data);
        if bounded && credited {
            let in_use = self.data.reserved.fetch_add(1, Ordering::Relaxed);
            self.data
                .high_water
                .fetch_max(in_use + 1, Ordering::Relaxed);
        } else if bounded && !self.reserve_data_slot() {
            lane.refused_full.fetch_add(1, Ordering::Relaxed);
            return Err(PushError::Full(event));
        }
        if let Err(refused) = lane.tx.send(event) {
            // Unreachable while `self` holds the receiver; treated as closed.
            if bounded {
                self.data.reserved.fetch_sub(1, Ordering::Relaxed);
            }
            lane.refused_closed.fetch_add(1, Ordering::Relaxed);
            return Err(PushError::Closed(refused.0));
        }
        // Doorbell, step 1: pairs with the owner's `Acquire` re-check.
        lane.accepted.fetch_add(1, Ordering::Release);
        Ok(())
    }

    /// Takes one data slot if fewer than `data_capacity` are in use.
    fn reserve_data_slot(&self) -> bool {
        let capacity = self.config.data_capacity;
        let reserved = &self.data.reserved;
        #[cfg(nodeflow_loom_broken)]
        if self.broken == Some(LoomBreakage::DataSlotReservation) {
            // BROKEN on purpose: a free-slot release between the load and
            // the store is overwritten, so the count drifts from the lane.
            let in_use = reserved.load(Ordering::Relaxed);
            if in_use >= capacity {
                return false;
            }
            reserved.store(in_use + 1, Ordering::Relaxed);
            self.data
                .high_water
                .fetch_max(in_use + 1, Ordering::Relaxed);
            return true;
        }
        let update = reserved.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |in_use| {
            (in_use < capacity).then_some(in_use + 1)
        });
        match update {
            Ok(in_use) => {
                self.data
                    .high_water
                    .fetch_max(in_use + 1, Ordering::Relaxed);
                true
            }
            Err(_) => false,
        }
    }

    /// Close protocol: leave the in-flight count.
    fn leave(&self) {
        self.state.fetch_sub(1, Ordering::Release);
    }

    /// Doorbell, step 2: ring if anyone is waiting; lock-free otherwise.
    fn after_accept(&self) {
        #[cfg(nodeflow_loom_broken)]
        let skip_fence = self.broken == Some(LoomBreakage::SkipPushFence);
        #[cfg(not(nodeflow_loom_broken))]
        let skip_fence = false;
        if !skip_fence {
            fence(Ordering::SeqCst);
        }
        if self.armed.load(Ordering::Relaxed) != 0 {
            self.ring();
        }
    }

    /// Wakes every blocked waiter and the registered waker (taking it).
    fn ring(&self) {
        let waker = {
            let mut slot = self.bell.lock();
            self.armed.fetch_and(!WAKER_ARMED, Ordering::Relaxed);
            slot.take()
        };
        self.bell_cv.notify_all();
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// `Some` when the owner has something to do: closed, an event pending,
    /// or a nudge not yet taken.
    fn ready_outcome(&self) -> Option<WaitOutcome> {
        self.ready_outcome_for(true)
    }

    /// [`IngressQueue::ready_outcome`], looking at the data lane only if `data`.
    fn ready_outcome_for(&self, data: bool) -> Option<WaitOutcome> {
        if self.is_closed() {
            return Some(WaitOutcome::Closed);
        }
        let nudged =
            self.nudges.load(Ordering::Acquire) != self.nudges_seen.load(Ordering::Relaxed);
        let pending = nudged || self.control.pending() || (data && self.data.pending());
        pending.then_some(WaitOutcome::Ready)
    }

    fn lane(&self, lane: Lane) -> &LaneState {
        match lane {
            Lane::Control => &self.control,
            Lane::Data => &self.data,
        }
    }
}

impl fmt::Debug for IngressQueue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IngressQueue")
            .field("config", &self.config)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl Default for IngressConfig {
    fn default() -> Self {
        Self {
            data_capacity: 1024,
            completion_result_cap: 16 * 1024 * 1024,
        }
    }
}

impl IngressEvent {
    /// The lane [`IngressQueue::push`] routes this event to. Envelopes that
    /// answer or grant credit ([`Envelope::is_control`]) ride the control
    /// lane: they are bounded by the requests and windows in flight, and a
    /// Node must take them even while it takes no new data.
    pub fn lane(&self) -> Lane {
        match self {
            Self::Envelope(envelope) if envelope.is_control() => Lane::Control,
            Self::Completion { .. }
            | Self::CompletionFailed { .. }
            | Self::IngressError(_)
            | Self::Wake
            | Self::Shutdown => Lane::Control,
            Self::Envelope(_)
            | Self::EnvelopeBytes(_)
            | Self::AppEvent { .. }
            | Self::Invoke { .. } => Lane::Data,
        }
    }
}

impl<T> PushError<T> {
    /// The refused event.
    pub fn into_inner(self) -> T {
        match self {
            Self::Full(event) | Self::Closed(event) => event,
        }
    }

    /// Whether the push was refused because the queue is closed.
    pub fn is_closed(&self) -> bool {
        matches!(self, Self::Closed(_))
    }
}

impl<T> fmt::Debug for PushError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Full(_) => f.pad("Full(..)"),
            Self::Closed(_) => f.pad("Closed(..)"),
        }
    }
}

impl LaneState {
    fn new() -> Self {
        let (tx, rx) = unbounded();
        Self {
            tx,
            rx,
            accepted: AtomicU64::new(0),
            taken: AtomicU64::new(0),
            reserved: AtomicUsize::new(0),
            refused_full: AtomicU64::new(0),
            refused_closed: AtomicU64::new(0),
            high_water: AtomicUsize::new(0),
        }
    }

    /// Whether an accepted event has not been popped yet (owner's view).
    fn pending(&self) -> bool {
        self.accepted.load(Ordering::Acquire) > self.taken.load(Ordering::Relaxed)
    }

    fn stats(&self) -> LaneStats {
        LaneStats {
            accepted: self.accepted.load(Ordering::Relaxed),
            taken: self.taken.load(Ordering::Relaxed),
            refused_full: self.refused_full.load(Ordering::Relaxed),
            refused_closed: self.refused_closed.load(Ordering::Relaxed),
            high_water: self.high_water.load(Ordering::Relaxed),
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests;

/// Loom models of the ingress protocols (run by `ci/loom.sh`).
///
/// Each model has a `loom_broken_*` twin, compiled only with
/// `--cfg nodeflow_loom_broken`, that runs the same model against a queue
/// with one deliberate protocol bug ([`LoomBreakage`]); loom must fail it.
#[cfg(all(test, loom))]
mod loom_ingress;
