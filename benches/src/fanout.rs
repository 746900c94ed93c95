//! One-to-many delivery, on nodeflow actors and on raw threads: the workload of the `fanout` scenario.
//!
//! A source sends every message to each of `nodes - 1` sinks. The host feeds
//! the source sequence numbers in batches of [`FANOUT_BATCH`] and keeps at
//! most two batches in flight: it sends batch `b + 1` only once every sink
//! has confirmed batch `b - 1`. (nodeflow refuses rather than blocks when a
//! lane is full, so the window keeps every lane below its capacity; the raw
//! side uses the same window, so both run the same protocol.)
//!
//! # Invariants
//! * Each sink checks that it receives `0, 1, 2, ...` in order, with a
//!   [`SeqCheck`] (same code on both sides); any gap, repeat or reordering is
//!   a [`BenchError::Verification`].
//! * A sink confirms to the host after every [`FANOUT_BATCH`] messages; the
//!   run ends when every sink has confirmed everything sent, so nothing is
//!   in flight when the participants stop. Delivered = sent × sinks.
//! * The nodeflow side also checks the actors' books: the source routed
//!   every envelope, every sink ran one execution per message, nothing was
//!   refused, no op failed.

use std::ops::Range;
use std::time::{Duration, Instant};

use nodeflow::actors::{ActorConfig, ActorHandle, NodeActor, Router, SystemClock};
use nodeflow::engine::sync::channel::{unbounded, Receiver, Sender};
use nodeflow::engine::sync::{Arc, Mutex};
use nodeflow::engine::{
    Component, DispatchResult, Graph, GraphBuilder, LocalOpId, Node, OpError, OpErrorKind,
    OpInputs, OpOutputs, PeerId, RuntimeResourceRef, SiteId, SlotValue, U64Value,
};

use crate::{thread_sleeps, BenchError, ACTOR_THREADS, PATIENCE};

/// Messages per confirmation; the host keeps at most two batches in flight.
pub const FANOUT_BATCH: u64 = 256;

/// Component slot (and op domain) of the [`SinkComponent`].
pub const SINK_SLOT: &str = "sink";

/// What one fanout run measured (verified before it is returned).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FanoutRun {
    /// Sinks (participants minus the source).
    pub sinks: usize,
    /// Messages the source sent (each to every sink).
    pub messages: u64,
    /// Envelopes delivered: `messages × sinks`.
    pub delivered: u64,
    /// From the first message to the last confirmation.
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

impl FanoutRun {
    /// Envelopes delivered per second.
    pub fn delivered_per_sec(&self) -> f64 {
        self.delivered as f64 / self.elapsed.as_secs_f64()
    }
}

/// A sink's check: messages arrive as `0, 1, 2, ...`.
#[derive(Clone, Debug)]
pub struct SeqCheck {
    sink: usize,
    next: u64,
}

impl SeqCheck {
    /// The check of sink `sink`, expecting 0 first.
    pub fn new(sink: usize) -> Self {
        Self { sink, next: 0 }
    }

    /// Checks `seq`; returns the number received so far when a batch is
    /// complete (a confirmation is due), or what is wrong.
    pub fn observe(&mut self, seq: u64) -> Result<Option<u64>, String> {
        if seq != self.next {
            return Err(format!(
                "sink {}: got message {seq}, expected {}",
                self.sink, self.next
            ));
        }
        self.next += 1;
        Ok(self.next.is_multiple_of(FANOUT_BATCH).then_some(self.next))
    }
}

/// The component behind op `Sink`: checks the sequence number and confirms
/// each complete batch to the host. It has no outputs.
#[derive(Debug)]
pub struct SinkComponent {
    check: SeqCheck,
    confirm: Sender<(usize, u64)>,
    error: Arc<Mutex<Option<String>>>,
}

impl Component for SinkComponent {
    fn kind(&self) -> &str {
        SINK_SLOT
    }

    fn resolve_op(&self, op_type: &str) -> Option<LocalOpId> {
        (op_type == "Sink").then_some(LocalOpId(0))
    }

    fn dispatch_atomic(
        &mut self,
        _op: LocalOpId,
        _ctx: &mut RuntimeResourceRef<'_>,
        inputs: &mut OpInputs<'_>,
        _outputs: &mut OpOutputs<'_>,
    ) -> Result<DispatchResult, OpError> {
        let seq = inputs.get_as::<U64Value>(0)?.0;
        match self.check.observe(seq) {
            Ok(Some(count)) => {
                let _ = self.confirm.send((self.check.sink, count));
            }
            Ok(None) => {}
            Err(message) => {
                self.error.lock().get_or_insert(message.clone());
                return Err(OpError::new(OpErrorKind::Failed, "bench.bad_seq", message));
            }
        }
        Ok(DispatchResult::Immediate)
    }
}

/// The source's graph: input `x` → one one-way `Send` to site 0, input `x`
/// of each of `sinks`.
pub fn fan_graph(sinks: &[PeerId]) -> Graph {
    let mut b = GraphBuilder::new("fan");
    let x = b.input("x");
    for peer in sinks {
        b.syscall("Send", [x])
            .attr("peer", peer.as_u64() as i64)
            .attr("site", 0)
            .attr("input", "x")
            .finish();
    }
    b.build().expect("the fan graph is valid")
}

/// A sink's graph: input `x` → `Sink`. No graph outputs.
pub fn sink_graph() -> Graph {
    let mut b = GraphBuilder::new("sink");
    let x = b.input("x");
    b.op("Sink", [x]).domain(SINK_SLOT).finish();
    b.build().expect("the sink graph is valid")
}

/// Runs the fanout on `nodes` [`NodeActor`]s (one source, `nodes - 1`
/// sinks) for `duration`; verifies and stops every actor.
pub fn nodeflow_fanout(nodes: usize, duration: Duration) -> Result<FanoutRun, BenchError> {
    let sinks = check_nodes(nodes)?;
    let router = Arc::new(Router::new());
    let clock = Arc::new(SystemClock::new());
    let (confirm_tx, confirm_rx) = unbounded();
    let error = Arc::new(Mutex::new(None));
    let sink_peers: Vec<PeerId> = (0..sinks).map(|i| PeerId::new(i as u64 + 2)).collect();
    let spawn = |node: Result<Node, _>, what: &str| -> Result<ActorHandle, BenchError> {
        let node = node.map_err(|e| BenchError::Setup(format!("{what}: {e}")))?;
        NodeActor::spawn(
            node,
            Arc::clone(&router),
            clock.clone(),
            ActorConfig::default(),
        )
        .map_err(|e| BenchError::Setup(format!("spawn {what}: {e}")))
    };
    let mut sink_actors = Vec::with_capacity(sinks);
    for (index, peer) in sink_peers.iter().enumerate() {
        let component = SinkComponent {
            check: SeqCheck::new(index),
            confirm: confirm_tx.clone(),
            error: Arc::clone(&error),
        };
        let node = Node::builder(*peer)
            .component(SINK_SLOT, Box::new(component))
            .graph(sink_graph())
            .build();
        sink_actors.push(spawn(node, "sink")?);
    }
    let source = spawn(
        Node::builder(PeerId::new(1))
            .graph(fan_graph(&sink_peers))
            .build(),
        "source",
    )?;

    let sleeps_before = thread_sleeps(&[ACTOR_THREADS]);
    let driven = drive_batches(duration, sinks, &confirm_rx, |batch| {
        for seq in batch {
            let x: Box<dyn SlotValue> = Box::new(U64Value(seq));
            source
                .invoke(SiteId::new(0), vec![("x".into(), x)], seq)
                .map_err(|e| BenchError::Verification(format!("invoke refused: {e}")))?;
        }
        Ok(())
    });
    let sleeps = thread_sleeps(&[ACTOR_THREADS]).saturating_sub(sleeps_before);
    let source_report = source.stop();
    let sink_reports: Vec<_> = sink_actors.into_iter().map(ActorHandle::stop).collect();
    let (messages, elapsed) = driven?;
    if let Some(message) = error.lock().take() {
        return Err(BenchError::Verification(message));
    }
    let delivered = messages * sinks as u64;
    let source_report = source_report.map_err(|e| BenchError::Verification(e.to_string()))?;
    let s = source_report.stats;
    if s.routed != delivered || s.envelopes_out != delivered {
        return Err(BenchError::Verification(format!(
            "source: {} envelopes out, {} routed, {delivered} expected",
            s.envelopes_out, s.routed
        )));
    }
    let (mut actor_waits, mut actor_polls) = (s.wakeups, s.polls);
    for report in sink_reports {
        let report = report.map_err(|e| BenchError::Verification(e.to_string()))?;
        actor_waits += report.stats.wakeups;
        actor_polls += report.stats.polls;
        if report.node.executions_finished != messages || report.node.ops_failed != 0 {
            return Err(BenchError::Verification(format!(
                "{}: {} executions ({} failed ops) for {messages} messages",
                report.peer, report.node.executions_finished, report.node.ops_failed
            )));
        }
    }
    Ok(FanoutRun {
        sinks,
        messages,
        delivered,
        elapsed,
        actor_waits,
        actor_polls,
        sleeps,
    })
}

/// The same fanout on plain threads: host → producer thread → `nodes - 1`
/// consumer threads, over bounded crossbeam channels (capacity two batches).
pub fn raw_fanout(nodes: usize, duration: Duration) -> Result<FanoutRun, BenchError> {
    let sinks = check_nodes(nodes)?;
    let capacity = 2 * FANOUT_BATCH as usize;
    let (confirm_tx, confirm_rx) = unbounded();
    let (host_tx, host_rx) = crossbeam_channel::bounded::<u64>(capacity);
    let mut consumers = Vec::with_capacity(sinks);
    let mut outs = Vec::with_capacity(sinks);
    for index in 0..sinks {
        let (tx, rx) = crossbeam_channel::bounded::<u64>(capacity);
        outs.push(tx);
        let confirm = confirm_tx.clone();
        let mut check = SeqCheck::new(index);
        let thread = std::thread::Builder::new()
            .name(format!("raw-sink-{index}"))
            .spawn(move || -> Result<u64, String> {
                let mut received = 0;
                while let Ok(seq) = rx.recv() {
                    received += 1;
                    if let Some(count) = check.observe(seq)? {
                        let _ = confirm.send((index, count));
                    }
                }
                Ok(received)
            })
            .map_err(|e| BenchError::Setup(format!("raw sink thread: {e}")))?;
        consumers.push(thread);
    }
    drop(confirm_tx);
    let producer = std::thread::Builder::new()
        .name("raw-source".into())
        .spawn(move || {
            while let Ok(seq) = host_rx.recv() {
                for out in &outs {
                    if out.send(seq).is_err() {
                        return;
                    }
                }
            }
        })
        .map_err(|e| BenchError::Setup(format!("raw source thread: {e}")))?;

    let raw_threads = ["raw-sink-", "raw-source"];
    let sleeps_before = thread_sleeps(&raw_threads);
    let driven = drive_batches(duration, sinks, &confirm_rx, |batch| {
        for seq in batch {
            host_tx
                .send(seq)
                .map_err(|_| BenchError::Verification("the raw source died".into()))?;
        }
        Ok(())
    });
    let sleeps = thread_sleeps(&raw_threads).saturating_sub(sleeps_before);
    drop(host_tx);
    let producer_ok = producer.join().is_ok();
    let mut received = Vec::with_capacity(sinks);
    let mut failure = (!producer_ok).then(|| "the raw source panicked".to_owned());
    for thread in consumers {
        match thread.join() {
            Ok(Ok(count)) => received.push(count),
            Ok(Err(message)) => failure = failure.or(Some(message)),
            Err(_) => failure = failure.or(Some("a raw sink panicked".into())),
        }
    }
    let (messages, elapsed) = driven?;
    if let Some(message) = failure {
        return Err(BenchError::Verification(message));
    }
    if received.iter().any(|&count| count != messages) {
        return Err(BenchError::Verification(format!(
            "raw sinks received {received:?}, expected {messages} each"
        )));
    }
    Ok(FanoutRun {
        sinks,
        messages,
        delivered: messages * sinks as u64,
        elapsed,
        actor_waits: 0,
        actor_polls: 0,
        sleeps,
    })
}

fn check_nodes(nodes: usize) -> Result<usize, BenchError> {
    if nodes < 2 {
        return Err(BenchError::Usage(format!(
            "a fanout needs a source and at least one sink (got {nodes} nodes)"
        )));
    }
    Ok(nodes - 1)
}

/// The host's side of the window protocol (module docs): feeds batches with
/// `send` for `duration`, then waits until every sink confirmed everything.
/// Returns the messages sent and the elapsed time.
fn drive_batches(
    duration: Duration,
    sinks: usize,
    confirms: &Receiver<(usize, u64)>,
    mut send: impl FnMut(Range<u64>) -> Result<(), BenchError>,
) -> Result<(u64, Duration), BenchError> {
    let mut confirmed = vec![0u64; sinks];
    let wait_until = |target: u64, confirmed: &mut [u64]| -> Result<(), BenchError> {
        while confirmed.iter().any(|&c| c < target) {
            let (sink, count) = confirms.recv_timeout(PATIENCE).map_err(|_| {
                BenchError::Verification(format!(
                    "sinks confirmed {confirmed:?} messages, {target} were sent"
                ))
            })?;
            confirmed[sink] = count;
        }
        Ok(())
    };
    let start = Instant::now();
    let mut sent = 0;
    while start.elapsed() < duration {
        send(sent..sent + FANOUT_BATCH)?;
        sent += FANOUT_BATCH;
        wait_until(sent.saturating_sub(FANOUT_BATCH), &mut confirmed)?;
    }
    wait_until(sent, &mut confirmed)?;
    Ok((sent, start.elapsed()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sequence_check_confirms_each_batch_and_refuses_gaps() {
        let mut check = SeqCheck::new(0);
        for seq in 0..FANOUT_BATCH - 1 {
            assert_eq!(check.observe(seq), Ok(None));
        }
        assert_eq!(check.observe(FANOUT_BATCH - 1), Ok(Some(FANOUT_BATCH)));
        assert!(check.observe(FANOUT_BATCH + 1).is_err(), "a gap");
        let mut again = SeqCheck::new(1);
        assert!(again.observe(1).is_err(), "must start at 0");
    }

    #[test]
    fn both_fanouts_deliver_every_message_to_every_sink() {
        for run in [nodeflow_fanout, raw_fanout] {
            let result = run(4, Duration::from_millis(20)).unwrap();
            assert_eq!(result.sinks, 3);
            assert!(result.messages >= FANOUT_BATCH);
            assert_eq!(result.messages % FANOUT_BATCH, 0);
            assert_eq!(result.delivered, result.messages * 3);
        }
    }
}
