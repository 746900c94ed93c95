//! Token rings, on nodeflow actors and on raw threads: the workload of the `pingpong` and `ring` scenarios and of the `actors_pingpong` / `actors_ring` criterion benches.
//!
//! `N` participants stand in a ring; `K` tokens travel around it. A token is
//! a `u64` ([`token`]): its id in the high 32 bits, the number of hops it
//! has made in the low 32 bits. Every participant checks each token it
//! receives with a [`TokenCheck`] (the same code on both sides, so both do
//! the same work per message), adds one hop and passes it on. A ping-pong is
//! the ring with `N = 2, K = 1`; one round trip is two hops.
//!
//! # Invariants
//! * Token `k` enters the ring at participant `k % N` with 0 hops; so at
//!   participant `i` its hop count is `≡ i - k (mod N)`, and two visits of
//!   the same token to the same participant are exactly `N` hops apart. A
//!   lost, duplicated or corrupted token breaks one of those and is reported
//!   as [`BenchError::Verification`].
//! * A token retires (is not passed on) when the run's [`Stop`] says so; the
//!   participant reports it, with its hop count, to the host. The run ends
//!   when all `K` tokens have retired, so nothing is in flight when the
//!   participants are stopped, and the sum of the retired hop counts is the
//!   number of one-way messages delivered.
//! * The nodeflow side also checks the actors' own books: every execution
//!   finished, every envelope routed, nothing refused, no op failed.

use std::time::{Duration, Instant};

use nodeflow::actors::{ActorConfig, ActorHandle, ActorReport, NodeActor, Router, SystemClock};
use nodeflow::engine::sync::atomic::{AtomicBool, Ordering};
use nodeflow::engine::sync::channel::{unbounded, Receiver, Sender};
use nodeflow::engine::sync::{Arc, Condvar, Mutex};
use nodeflow::engine::{
    Component, DispatchResult, Graph, GraphBuilder, IngressConfig, LocalOpId, Node, OpError,
    OpErrorKind, OpInputs, OpOutputs, PeerId, RuntimeResourceRef, SiteId, U64Value,
};

use crate::{thread_sleeps, BenchError, ACTOR_THREADS, PATIENCE};

/// Component slot (and op domain) of the [`HopComponent`].
pub const HOP_SLOT: &str = "hop";

/// The token with id `id` that has made `hops` hops.
pub fn token(id: u32, hops: u32) -> u64 {
    (u64::from(id) << 32) | u64::from(hops)
}

/// The `(id, hops)` of a token.
pub fn untoken(value: u64) -> (u32, u32) {
    ((value >> 32) as u32, value as u32)
}

/// The peer id of ring participant `index` (peers start at 1).
pub fn ring_peer(index: usize) -> PeerId {
    PeerId::new(index as u64 + 1)
}

/// When tokens retire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stop {
    /// Run for this long, then retire every token at its next hop.
    After(Duration),
    /// Retire each token when it arrives with this many hops.
    Hops(u32),
}

/// What one ring run measured (verified before it is returned).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RingRun {
    /// Participants.
    pub nodes: usize,
    /// Tokens in flight.
    pub tokens: usize,
    /// One-way messages delivered (sum of the retired tokens' hop counts).
    pub hops: u64,
    /// From the first token's injection to the last token's retirement.
    pub elapsed: Duration,
    /// Times an actor went to wait for mail and got some (whether it had
    /// to sleep or found it already queued), summed over every actor; 0 on
    /// the raw side.
    pub actor_waits: u64,
    /// Voluntary context switches of the participant threads during the
    /// run (each is a thread blocking and later being woken), from
    /// [`thread_sleeps`]; 0 where `/proc` is missing.
    pub sleeps: u64,
    /// [`nodeflow::engine::Node::poll`] calls, summed over every actor; 0
    /// on the raw side.
    pub actor_polls: u64,
}

impl RingRun {
    /// One-way messages per second.
    pub fn hops_per_sec(&self) -> f64 {
        self.hops as f64 / self.elapsed.as_secs_f64()
    }
}

/// The per-participant check of incoming tokens (module invariants).
#[derive(Clone, Debug)]
pub struct TokenCheck {
    nodes: u32,
    index: u32,
    /// Last hop count seen per token id.
    last: Vec<Option<u32>>,
}

impl TokenCheck {
    /// The check of participant `index` of a ring of `nodes` with `tokens` tokens.
    pub fn new(nodes: usize, index: usize, tokens: usize) -> Self {
        Self {
            nodes: nodes as u32,
            index: index as u32,
            last: vec![None; tokens],
        }
    }

    /// Checks `value` and returns its `(id, hops)`, or what is wrong with it.
    pub fn observe(&mut self, value: u64) -> Result<(u32, u32), String> {
        let (id, hops) = untoken(value);
        let index = self.index;
        let Some(last) = self.last.get_mut(id as usize) else {
            return Err(format!("participant {index}: unknown token id {id}"));
        };
        let ok = match *last {
            Some(previous) => previous.checked_add(self.nodes) == Some(hops),
            None => {
                let start = id % self.nodes;
                hops % self.nodes == (index + self.nodes - start) % self.nodes
            }
        };
        if !ok {
            return Err(format!(
                "participant {index}: token {id} arrived with {hops} hops after {last:?}"
            ));
        }
        *last = Some(hops);
        Ok((id, hops))
    }
}

/// Shared by the host and every participant of one run (the peer
/// frameworks' rings in [`crate::peers`] use it too).
#[derive(Debug)]
pub(crate) struct RingControl {
    /// Set by the host when a timed run is over; read by every hop.
    /// Memory ordering: `Relaxed`; it publishes no data, a late read only
    /// costs a few more hops (which are counted).
    stop: AtomicBool,
    /// Hop count at which a token retires (`u32::MAX`: never).
    hop_limit: u32,
    /// Retired tokens `(id, hops)` go to the host.
    retired: Sender<(u32, u32)>,
    /// The first check failure seen by any participant.
    error: Mutex<Option<String>>,
}

impl RingControl {
    /// The control of a run that ends at `stop`; retirements go to `retired`.
    pub(crate) fn new(stop: Stop, retired: Sender<(u32, u32)>) -> Self {
        Self {
            stop: AtomicBool::new(false),
            hop_limit: hop_limit(stop),
            retired,
            error: Mutex::new(None),
        }
    }

    /// Whether a token arriving with `hops` retires here.
    pub(crate) fn retires(&self, hops: u32) -> bool {
        hops >= self.hop_limit || self.stop.load(Ordering::Relaxed)
    }

    /// Retires token `id` that arrived with `hops` (reports it to the host).
    pub(crate) fn retire(&self, id: u32, hops: u32) {
        // The host may have given up waiting; nothing else to do then.
        let _ = self.retired.send((id, hops));
    }

    /// Raises the stop flag of a timed run.
    pub(crate) fn halt(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }

    /// Keeps the first check failure of the run.
    pub(crate) fn record_error(&self, message: String) {
        self.error.lock().get_or_insert(message);
    }

    /// The first check failure of the run, if any.
    pub(crate) fn take_error(&self) -> Option<String> {
        self.error.lock().take()
    }
}

/// The component behind op `Hop`: checks the token, then passes it on with
/// one more hop, or retires it (writes no output, so the `Send` after it
/// never fires).
#[derive(Debug)]
pub struct HopComponent {
    control: Arc<RingControl>,
    check: TokenCheck,
}

impl Component for HopComponent {
    fn kind(&self) -> &str {
        HOP_SLOT
    }

    fn resolve_op(&self, op_type: &str) -> Option<LocalOpId> {
        (op_type == "Hop").then_some(LocalOpId(0))
    }

    fn dispatch_atomic(
        &mut self,
        _op: LocalOpId,
        _ctx: &mut RuntimeResourceRef<'_>,
        inputs: &mut OpInputs<'_>,
        outputs: &mut OpOutputs<'_>,
    ) -> Result<DispatchResult, OpError> {
        let value = inputs.get_as::<U64Value>(0)?.0;
        let (id, hops) = match self.check.observe(value) {
            Ok(seen) => seen,
            Err(message) => {
                self.control.record_error(message.clone());
                return Err(OpError::new(
                    OpErrorKind::Failed,
                    "bench.bad_token",
                    message,
                ));
            }
        };
        if self.control.retires(hops) {
            self.control.retire(id, hops);
            return Ok(DispatchResult::Immediate);
        }
        outputs.push(Box::new(U64Value(token(id, hops + 1))))?;
        Ok(DispatchResult::Immediate)
    }
}

/// The graph of ring participant: input `x` → `Hop` → `Send` to `next`'s
/// site 0, input `x` (one-way). No graph outputs.
pub fn hop_graph(next: PeerId) -> Graph {
    let mut b = GraphBuilder::new("hop");
    let x = b.input("x");
    let y = b.op("Hop", [x]).domain(HOP_SLOT).output();
    b.syscall("Send", [y])
        .attr("peer", next.as_u64() as i64)
        .attr("site", 0)
        .attr("input", "x")
        .finish();
    b.build().expect("the hop graph is valid")
}

/// Runs `tokens` tokens around a ring of `nodes` [`NodeActor`]s until
/// `stop`; verifies the tokens and the actors' reports, then stops every
/// actor.
pub fn nodeflow_ring(nodes: usize, tokens: usize, stop: Stop) -> Result<RingRun, BenchError> {
    check_shape(nodes, tokens)?;
    let (retired_tx, retired_rx) = unbounded();
    let control = Arc::new(RingControl::new(stop, retired_tx));
    let router = Arc::new(Router::new());
    let clock = Arc::new(SystemClock::new());
    let mut actors: Vec<ActorHandle> = Vec::with_capacity(nodes);
    for index in 0..nodes {
        let node = Node::builder(ring_peer(index))
            .component(
                HOP_SLOT,
                Box::new(HopComponent {
                    control: Arc::clone(&control),
                    check: TokenCheck::new(nodes, index, tokens),
                }),
            )
            .graph(hop_graph(ring_peer((index + 1) % nodes)))
            .build()
            .map_err(|e| BenchError::Setup(format!("ring node {index}: {e}")))?;
        let actor = NodeActor::spawn(
            node,
            Arc::clone(&router),
            clock.clone(),
            ActorConfig::default(),
        )
        .map_err(|e| BenchError::Setup(format!("spawn ring node {index}: {e}")))?;
        actors.push(actor);
    }

    let sleeps_before = thread_sleeps(&[ACTOR_THREADS]);
    let start = Instant::now();
    for id in 0..tokens {
        let x: Box<dyn nodeflow::engine::SlotValue> = Box::new(U64Value(token(id as u32, 0)));
        actors[id % nodes]
            .invoke(SiteId::new(0), vec![("x".into(), x)], id as u64)
            .map_err(|e| BenchError::Setup(format!("inject token {id}: {e}")))?;
    }
    let waited = wait_retired(&retired_rx, tokens, stop, start, || control.halt());
    let elapsed = start.elapsed();
    let sleeps = thread_sleeps(&[ACTOR_THREADS]).saturating_sub(sleeps_before);
    let reports: Vec<Result<ActorReport, _>> = actors.into_iter().map(ActorHandle::stop).collect();
    let hops = waited?;
    if let Some(message) = control.take_error() {
        return Err(BenchError::Verification(message));
    }
    let (mut executions, mut actor_waits, mut actor_polls, mut credits) = (0, 0, 0, 0);
    for report in reports {
        let report = report.map_err(|e| BenchError::Verification(e.to_string()))?;
        let s = report.stats;
        let refused = s.refused_full + s.refused_unknown_peer + s.refused_closed;
        if refused != 0 || report.node.ops_failed != 0 || report.dropped_at_close != 0 {
            return Err(BenchError::Verification(format!(
                "{}: {refused} sends refused, {} ops failed, {} dropped at close",
                report.peer, report.node.ops_failed, report.dropped_at_close
            )));
        }
        if report.node.executions_started != report.node.executions_finished {
            return Err(BenchError::Verification(format!(
                "{}: {} executions started, {} finished",
                report.peer, report.node.executions_started, report.node.executions_finished
            )));
        }
        executions += report.node.executions_finished;
        credits += report.node.credit_envelopes;
        actor_waits += s.wakeups;
        actor_polls += s.polls;
    }
    // The router also moved the flow-control credit returns.
    if executions != hops + tokens as u64 || router.stats().routed != hops + credits {
        return Err(BenchError::Verification(format!(
            "{hops} hops retired but {executions} executions ran and {} envelopes were routed",
            router.stats().routed
        )));
    }
    Ok(RingRun {
        nodes,
        tokens,
        hops,
        elapsed,
        actor_waits,
        actor_polls,
        sleeps,
    })
}

/// Message that tells a raw ring thread to exit (never a valid token: its
/// id is out of range for any ring this module builds).
const POISON: u64 = u64::MAX;

/// The same ring on `nodes` plain threads joined by bounded crossbeam
/// channels (capacity `tokens`, so a send never blocks on a full ring).
pub fn raw_ring(nodes: usize, tokens: usize, stop: Stop) -> Result<RingRun, BenchError> {
    check_shape(nodes, tokens)?;
    // The host's plumbing, shared with the nodeflow side; not on the measured path.
    let (retired_tx, retired_rx) = unbounded::<(u32, u32)>();
    let halt = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let limit = hop_limit(stop);
    let links: Vec<_> = (0..nodes)
        .map(|_| crossbeam_channel::bounded::<u64>(tokens))
        .collect();
    let mut threads = Vec::with_capacity(nodes);
    for index in 0..nodes {
        let rx = links[index].1.clone();
        let next = links[(index + 1) % nodes].0.clone();
        let retired = retired_tx.clone();
        let halt = std::sync::Arc::clone(&halt);
        let mut check = TokenCheck::new(nodes, index, tokens);
        let thread = std::thread::Builder::new()
            .name(format!("raw-ring-{index}"))
            .spawn(move || -> Result<u64, String> {
                let mut received = 0u64;
                while let Ok(value) = rx.recv() {
                    if value == POISON {
                        break;
                    }
                    received += 1;
                    let (id, hops) = check.observe(value)?;
                    if hops >= limit || halt.load(std::sync::atomic::Ordering::Relaxed) {
                        let _ = retired.send((id, hops));
                    } else if next.send(token(id, hops + 1)).is_err() {
                        return Err(format!("participant {index}: the ring broke"));
                    }
                }
                Ok(received)
            })
            .map_err(|e| BenchError::Setup(format!("raw ring thread: {e}")))?;
        threads.push(thread);
    }
    drop(retired_tx);

    let sleeps_before = thread_sleeps(&["raw-ring-"]);
    let start = Instant::now();
    for id in 0..tokens {
        links[id % nodes]
            .0
            .send(token(id as u32, 0))
            .map_err(|_| BenchError::Setup("raw ring closed early".into()))?;
    }
    let waited = wait_retired(&retired_rx, tokens, stop, start, || {
        halt.store(true, std::sync::atomic::Ordering::Relaxed);
    });
    let elapsed = start.elapsed();
    let sleeps = thread_sleeps(&["raw-ring-"]).saturating_sub(sleeps_before);
    for (tx, _) in &links {
        // The ring is empty (every token retired) or broken; either way the
        // poison fits (capacity >= 1) or the thread is gone.
        let _ = tx.send_timeout(POISON, PATIENCE);
    }
    join_ring_threads(
        threads,
        waited,
        "raw",
        RingRun {
            nodes,
            tokens,
            hops: 0,
            elapsed,
            actor_waits: 0,
            actor_polls: 0,
            sleeps,
        },
    )
}

/// A mailbox that always parks: a queue under a mutex and a condvar (the
/// facade's parking_lot pair, the primitives the actor's ingress sleeps
/// on), with no spinning before the wait.
#[derive(Debug, Default)]
struct ParkingMailbox {
    queue: Mutex<std::collections::VecDeque<u64>>,
    ready: Condvar,
}

impl ParkingMailbox {
    fn push(&self, value: u64) {
        self.queue.lock().push_back(value);
        self.ready.notify_one();
    }

    fn pop(&self) -> u64 {
        let mut queue = self.queue.lock();
        loop {
            if let Some(value) = queue.pop_front() {
                return value;
            }
            queue = self.ready.wait(queue);
        }
    }
}

/// The same ring on plain threads whose mailboxes always park
/// ([`Mutex`] + [`Condvar`], no spinning): not a baseline to beat, but a
/// reference that shows what one sleep and wake per message costs on this
/// machine, apart from everything else nodeflow does.
pub fn parking_ring(nodes: usize, tokens: usize, stop: Stop) -> Result<RingRun, BenchError> {
    check_shape(nodes, tokens)?;
    let (retired_tx, retired_rx) = unbounded::<(u32, u32)>();
    let halt = Arc::new(AtomicBool::new(false));
    let limit = hop_limit(stop);
    let boxes: Vec<Arc<ParkingMailbox>> = (0..nodes).map(|_| Arc::default()).collect();
    let mut threads = Vec::with_capacity(nodes);
    for index in 0..nodes {
        let inbox = Arc::clone(&boxes[index]);
        let next = Arc::clone(&boxes[(index + 1) % nodes]);
        let retired = retired_tx.clone();
        let halt = Arc::clone(&halt);
        let mut check = TokenCheck::new(nodes, index, tokens);
        let thread = std::thread::Builder::new()
            .name(format!("park-ring-{index}"))
            .spawn(move || -> Result<u64, String> {
                let mut received = 0u64;
                loop {
                    let value = inbox.pop();
                    if value == POISON {
                        return Ok(received);
                    }
                    received += 1;
                    let (id, hops) = check.observe(value)?;
                    if hops >= limit || halt.load(Ordering::Relaxed) {
                        let _ = retired.send((id, hops));
                    } else {
                        next.push(token(id, hops + 1));
                    }
                }
            })
            .map_err(|e| BenchError::Setup(format!("parking ring thread: {e}")))?;
        threads.push(thread);
    }
    drop(retired_tx);

    let sleeps_before = thread_sleeps(&["park-ring-"]);
    let start = Instant::now();
    for id in 0..tokens {
        boxes[id % nodes].push(token(id as u32, 0));
    }
    let waited = wait_retired(&retired_rx, tokens, stop, start, || {
        halt.store(true, Ordering::Relaxed);
    });
    let elapsed = start.elapsed();
    let sleeps = thread_sleeps(&["park-ring-"]).saturating_sub(sleeps_before);
    for inbox in &boxes {
        inbox.push(POISON);
    }
    join_ring_threads(
        threads,
        waited,
        "parking",
        RingRun {
            nodes,
            tokens,
            hops: 0,
            elapsed,
            actor_waits: 0,
            actor_polls: 0,
            sleeps,
        },
    )
}

pub(crate) fn check_shape(nodes: usize, tokens: usize) -> Result<(), BenchError> {
    // More tokens than a data lane holds could be refused `Full` on the
    // nodeflow side (which would fail verification, not block).
    let lane = IngressConfig::default().data_capacity;
    if nodes < 2 || tokens == 0 || tokens > lane {
        return Err(BenchError::Usage(format!(
            "a ring needs at least 2 nodes and 1 to {lane} tokens (got {nodes} nodes, {tokens} tokens)"
        )));
    }
    Ok(())
}

fn hop_limit(stop: Stop) -> u32 {
    match stop {
        Stop::After(_) => u32::MAX,
        Stop::Hops(limit) => limit,
    }
}

/// Waits for `tokens` retirements (raising the stop flag with `halt` once a
/// timed run's duration has passed; a count-limited run is never halted);
/// returns the total hop count.
pub(crate) fn wait_retired(
    retired: &Receiver<(u32, u32)>,
    tokens: usize,
    stop: Stop,
    start: Instant,
    halt: impl FnOnce(),
) -> Result<u64, BenchError> {
    if let Stop::After(duration) = stop {
        std::thread::sleep(duration.saturating_sub(start.elapsed()));
        halt();
    }
    collect_retired(tokens, |timeout| retired.recv_timeout(timeout).ok())
}

/// Receives `tokens` distinct retirements; a token that does not retire
/// within [`PATIENCE`] of the previous one was lost.
fn collect_retired(
    tokens: usize,
    mut recv: impl FnMut(Duration) -> Option<(u32, u32)>,
) -> Result<u64, BenchError> {
    let mut seen = vec![false; tokens];
    let mut hops = 0u64;
    for _ in 0..tokens {
        let Some((id, count)) = recv(PATIENCE) else {
            return Err(BenchError::Verification(format!(
                "only {} of {tokens} tokens came back",
                seen.iter().filter(|s| **s).count()
            )));
        };
        match seen.get_mut(id as usize) {
            Some(slot) if !*slot => *slot = true,
            _ => {
                return Err(BenchError::Verification(format!(
                    "token {id} retired twice or is unknown"
                )))
            }
        }
        hops += u64::from(count);
    }
    Ok(hops)
}

/// Joins a baseline ring's threads and checks that they received every hop
/// plus one retirement per token; returns `run` with its hop count.
fn join_ring_threads(
    threads: Vec<std::thread::JoinHandle<Result<u64, String>>>,
    waited: Result<u64, BenchError>,
    label: &str,
    mut run: RingRun,
) -> Result<RingRun, BenchError> {
    let mut received = 0;
    let mut failure = None;
    for thread in threads {
        match thread.join() {
            Ok(Ok(count)) => received += count,
            Ok(Err(message)) => failure = failure.or(Some(message)),
            Err(_) => failure = failure.or(Some(format!("a {label} ring thread panicked"))),
        }
    }
    let hops = waited?;
    if let Some(message) = failure {
        return Err(BenchError::Verification(message));
    }
    if received != hops + run.tokens as u64 {
        return Err(BenchError::Verification(format!(
            "{hops} hops retired but {received} messages were received"
        )));
    }
    run.hops = hops;
    Ok(run)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_its_id_and_hop_count() {
        assert_eq!(untoken(token(7, 123)), (7, 123));
        assert_eq!(
            untoken(token(u32::MAX - 1, u32::MAX)),
            (u32::MAX - 1, u32::MAX)
        );
    }

    #[test]
    fn the_check_accepts_a_token_every_lap_and_nothing_else() {
        // Ring of 3, 2 tokens; participant 1 sees token 0 at hops 1, 4, 7…
        // and token 1 (which entered at participant 1) at hops 0, 3, 6…
        let mut check = TokenCheck::new(3, 1, 2);
        assert_eq!(check.observe(token(0, 1)), Ok((0, 1)));
        assert_eq!(check.observe(token(1, 0)), Ok((1, 0)));
        assert_eq!(check.observe(token(0, 4)), Ok((0, 4)));
        assert!(check.observe(token(0, 4)).is_err(), "a duplicate");
        assert!(check.observe(token(1, 6)).is_err(), "a lap was skipped");
        assert!(check.observe(token(2, 2)).is_err(), "an unknown token");
        let mut fresh = TokenCheck::new(3, 1, 2);
        assert!(fresh.observe(token(0, 2)).is_err(), "wrong participant");
    }

    #[test]
    fn every_ring_delivers_exactly_its_hop_limit_per_token() {
        for run in [nodeflow_ring, raw_ring, parking_ring] {
            let result = run(3, 2, Stop::Hops(50)).unwrap();
            assert_eq!((result.nodes, result.tokens, result.hops), (3, 2, 100));
        }
    }

    #[test]
    fn the_nodeflow_ring_books_one_poll_or_more_per_run() {
        let result = nodeflow_ring(2, 1, Stop::Hops(10)).unwrap();
        assert_eq!(result.hops, 10);
        assert!(result.actor_polls >= 1);
    }

    #[test]
    fn a_ring_needs_two_nodes_and_a_token() {
        assert!(matches!(
            nodeflow_ring(1, 1, Stop::Hops(1)),
            Err(BenchError::Usage(_))
        ));
        assert!(matches!(
            raw_ring(2, 0, Stop::Hops(1)),
            Err(BenchError::Usage(_))
        ));
    }
}
