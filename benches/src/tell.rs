//! A one-way stream between two participants, on nodeflow actors and on raw threads: the workload of the `tell` scenario and of the `actors_tell` criterion bench (the peer frameworks' versions are in [`crate::peers`]).
//!
//! The host hands `M` sequence numbers (`0, 1, 2, ...`, one `u64` per
//! message on every system) to a sender as fast as it can; the sender tells
//! each one to a receiver. Every system runs the same two legs, host →
//! sender → receiver:
//! * nodeflow: the host invokes the sender Node ([`ActorHandle::invoke`]);
//!   its graph ([`tell_graph`]) sends the input one-way (`Send` with
//!   `peer`, `site` and `input` of the receiver's graph) to the receiver
//!   Node, whose graph ([`count_graph`]) feeds the [`CountComponent`]. When
//!   the sender's lane is full the invoke is refused; the host waits
//!   [`HOST_BACKOFF`] and pushes the same event again. That is host
//!   back-pressure, not loss, and is counted as `host_retries`.
//! * raw: three plain threads joined by bounded crossbeam channels of a
//!   nodeflow data lane's capacity (blocking sends are its back-pressure).
//!
//! # Invariants
//! * The receiver checks the order with an [`InOrder`] (the same code on
//!   every side): strictly `0, 1, 2, ...` everywhere except on nodeflow,
//!   where messages the runtime refused leave gaps, so it checks that the
//!   sequence only grows. A repeat or a reordering is a
//!   [`BenchError::Verification`].
//! * With credit-based flow control nodeflow refuses nothing (the sender's
//!   `Send`s wait for credit and its host is slowed down instead); should a
//!   router refusal or a failed `Send` happen anyway, both are counted from
//!   the actors' own books ([`TellRun::refused_router`],
//!   [`TellRun::refused_send`]), and the run verifies that `delivered +
//!   refused == sent`: nothing vanished unaccounted. With `strict`, any
//!   refusal fails the run too.
//! * A run ends when the receiver has counted everything that was not
//!   refused, so nothing is in flight when the participants stop.

use std::time::{Duration, Instant};

use nodeflow::actors::{ActorConfig, ActorHandle, NodeActor, Router, SystemClock};
use nodeflow::engine::sync::atomic::{AtomicU64, Ordering};
use nodeflow::engine::sync::channel::{unbounded, Receiver, Sender};
use nodeflow::engine::sync::{Arc, Mutex};
use nodeflow::engine::{
    Component, DeliverError, DispatchResult, Graph, GraphBuilder, IngressConfig, LocalOpId, Node,
    OpError, OpErrorKind, OpInputs, OpOutputs, PeerId, PushError, RuntimeResourceRef, SiteId,
    SlotValue, U64Value,
};

use crate::{BenchError, PATIENCE};

/// Component slot (and op domain) of the [`CountComponent`].
pub const COUNT_SLOT: &str = "count";

/// How long the nodeflow host waits before pushing a refused invoke again.
pub const HOST_BACKOFF: Duration = Duration::from_micros(50);

/// What one tell run measured (verified before it is returned).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TellRun {
    /// Messages the host handed to the sender.
    pub sent: u64,
    /// Messages the receiver counted.
    pub delivered: u64,
    /// Envelopes the router refused (nodeflow only): the receiver's lane
    /// was full, or the receiver was unknown or closed.
    pub refused_router: u64,
    /// The sender's `Send` ops that failed (nodeflow only; 0 under flow
    /// control).
    pub refused_send: u64,
    /// Times the host found the sender's lane full and pushed again
    /// (nodeflow only; back-pressure, not loss).
    pub host_retries: u64,
    /// From the first message handed over to the last one counted.
    pub elapsed: Duration,
}

impl TellRun {
    /// Messages refused on the way (`refused_router + refused_send`).
    pub fn refused(&self) -> u64 {
        self.refused_router + self.refused_send
    }

    /// Messages delivered per second.
    pub fn delivered_per_sec(&self) -> f64 {
        self.delivered as f64 / self.elapsed.as_secs_f64()
    }
}

/// A receiver's order check over sequence numbers.
#[derive(Clone, Debug)]
pub struct InOrder {
    next: u64,
    received: u64,
    gaps_allowed: bool,
}

impl InOrder {
    /// Expects exactly `0, 1, 2, ...`.
    pub fn strict() -> Self {
        Self {
            next: 0,
            received: 0,
            gaps_allowed: false,
        }
    }

    /// Expects a growing sequence from 0 on; skipped numbers (refused on the
    /// way) are allowed, repeats and reorderings are not.
    pub fn allowing_gaps() -> Self {
        Self {
            gaps_allowed: true,
            ..Self::strict()
        }
    }

    /// Checks `seq` and counts it, or says what is wrong with it.
    pub fn observe(&mut self, seq: u64) -> Result<(), String> {
        let fits = seq == self.next || (self.gaps_allowed && seq > self.next);
        if !fits {
            return Err(format!(
                "receiver: got message {seq}, expected {}{}",
                self.next,
                if self.gaps_allowed { " or later" } else { "" }
            ));
        }
        self.next = seq + 1;
        self.received += 1;
        Ok(())
    }

    /// Messages counted so far.
    pub fn received(&self) -> u64 {
        self.received
    }
}

/// The receiver side of a strict run (raw threads and the peer
/// frameworks): checks each message and tells the host once, when all
/// `expected` have arrived or at the first wrong one.
#[derive(Debug)]
pub(crate) struct TellSink {
    order: InOrder,
    expected: u64,
    done: Sender<Result<u64, String>>,
    reported: bool,
}

impl TellSink {
    /// A sink expecting `0..expected`, reporting on `done`.
    pub(crate) fn new(expected: u64, done: Sender<Result<u64, String>>) -> Self {
        Self {
            order: InOrder::strict(),
            expected,
            done,
            reported: false,
        }
    }

    /// Checks and counts one message.
    pub(crate) fn on_seq(&mut self, seq: u64) {
        let verdict = match self.order.observe(seq) {
            Ok(()) if self.order.received() == self.expected => Ok(self.expected),
            Ok(()) => return,
            Err(message) => Err(message),
        };
        if !self.reported {
            self.reported = true;
            // The host may have given up waiting; nothing else to do then.
            let _ = self.done.send(verdict);
        }
    }

    /// Messages counted so far.
    pub(crate) fn received(&self) -> u64 {
        self.order.received()
    }
}

/// The host's wait for a [`TellSink`]'s verdict; returns the messages
/// delivered and the time since `start`.
pub(crate) fn wait_delivered(
    done: &Receiver<Result<u64, String>>,
    messages: u64,
    start: Instant,
) -> Result<(u64, Duration), BenchError> {
    match done.recv_timeout(PATIENCE) {
        Ok(Ok(delivered)) => Ok((delivered, start.elapsed())),
        Ok(Err(message)) => Err(BenchError::Verification(message)),
        Err(_) => Err(BenchError::Verification(format!(
            "the receiver did not count {messages} messages within {PATIENCE:?}"
        ))),
    }
}

/// What the receiver Node's component shares with the host.
#[derive(Debug, Default)]
struct CountShared {
    /// Messages counted; written by the receiver's actor thread after each
    /// message, read by the host. Memory ordering: `Release` store /
    /// `Acquire` load, so the host that sees a count also sees any error
    /// recorded before it.
    received: AtomicU64,
    /// The first order failure seen.
    error: Mutex<Option<String>>,
}

/// The component behind op `Count`: checks the order (gaps allowed, see
/// the module invariants) and publishes the count. It has no outputs.
#[derive(Debug)]
pub struct CountComponent {
    order: InOrder,
    shared: Arc<CountShared>,
}

impl Component for CountComponent {
    fn kind(&self) -> &str {
        COUNT_SLOT
    }

    fn resolve_op(&self, op_type: &str) -> Option<LocalOpId> {
        (op_type == "Count").then_some(LocalOpId(0))
    }

    fn dispatch_atomic(
        &mut self,
        _op: LocalOpId,
        _ctx: &mut RuntimeResourceRef<'_>,
        inputs: &mut OpInputs<'_>,
        _outputs: &mut OpOutputs<'_>,
    ) -> Result<DispatchResult, OpError> {
        let seq = inputs.get_as::<U64Value>(0)?.0;
        if let Err(message) = self.order.observe(seq) {
            self.shared.error.lock().get_or_insert(message.clone());
            return Err(OpError::new(OpErrorKind::Failed, "bench.bad_seq", message));
        }
        self.shared
            .received
            .store(self.order.received(), Ordering::Release);
        Ok(DispatchResult::Immediate)
    }
}

/// The sender's graph: input `x` → one one-way `Send` to site 0, input `x`
/// of `receiver`.
pub fn tell_graph(receiver: PeerId) -> Graph {
    let mut b = GraphBuilder::new("tell");
    let x = b.input("x");
    b.syscall("Send", [x])
        .attr("peer", receiver.as_u64() as i64)
        .attr("site", 0)
        .attr("input", "x")
        .finish();
    b.build().expect("the tell graph is valid")
}

/// The receiver's graph: input `x` → `Count`. No graph outputs.
pub fn count_graph() -> Graph {
    let mut b = GraphBuilder::new("count");
    let x = b.input("x");
    b.op("Count", [x]).domain(COUNT_SLOT).finish();
    b.build().expect("the count graph is valid")
}

/// Streams `messages` sequence numbers from a sender [`NodeActor`] to a
/// receiver one (module docs); verifies the order and that every message
/// was delivered or refused (with `strict`, that none was refused), then
/// stops both actors.
pub fn nodeflow_tell(messages: u64, strict: bool) -> Result<TellRun, BenchError> {
    check_messages(messages)?;
    let router = Arc::new(Router::new());
    let clock = Arc::new(SystemClock::new());
    let shared = Arc::new(CountShared::default());
    let (sender_peer, receiver_peer) = (PeerId::new(1), PeerId::new(2));
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
    let component = CountComponent {
        order: InOrder::allowing_gaps(),
        shared: Arc::clone(&shared),
    };
    let receiver = spawn(
        Node::builder(receiver_peer)
            .component(COUNT_SLOT, Box::new(component))
            .graph(count_graph())
            .build(),
        "receiver",
    )?;
    let sender = spawn(
        Node::builder(sender_peer)
            .graph(tell_graph(receiver_peer))
            .build(),
        "sender",
    )?;

    let start = Instant::now();
    let mut host_retries = 0;
    let mut fed = Ok(());
    for seq in 0..messages {
        match invoke_until_accepted(&sender, seq) {
            Ok(retries) => host_retries += retries,
            Err(e) => {
                fed = Err(e);
                break;
            }
        }
    }
    // A graceful stop (drain, then close) runs the sender's queued invokes
    // and waits for its parked Sends' credit before it returns: its report
    // is final, and everything it routed is in the receiver's mailbox.
    let sender_report = sender.shutdown(crate::PATIENCE);
    let expected = sender_report.as_ref().map_or(0, |r| r.stats.routed);
    let counted = wait_counted(&shared, expected);
    let elapsed = start.elapsed();
    let receiver_report = receiver.stop();
    fed?;
    if let Some(message) = shared.error.lock().take() {
        return Err(BenchError::Verification(message));
    }
    counted?;
    let sender_report = sender_report.map_err(|e| BenchError::Verification(e.to_string()))?;
    let receiver_report = receiver_report.map_err(|e| BenchError::Verification(e.to_string()))?;
    let s = sender_report.stats;
    let refused_router =
        s.refused_full + s.refused_unknown_peer + s.refused_closed + s.refused_shutting_down;
    let refused_send = sender_report.node.ops_failed;
    let delivered = shared.received.load(Ordering::Acquire);
    let run = TellRun {
        sent: messages,
        delivered,
        refused_router,
        refused_send,
        host_retries,
        elapsed,
    };
    if sender_report.node.executions_finished != messages || sender_report.dropped_at_close != 0 {
        return Err(BenchError::Verification(format!(
            "sender: {} executions finished, {} dropped at close, for {messages} invokes",
            sender_report.node.executions_finished, sender_report.dropped_at_close
        )));
    }
    if s.envelopes_out != s.routed + refused_router || delivered != s.routed {
        return Err(BenchError::Verification(format!(
            "sender: {} envelopes out, {} routed, {refused_router} refused; receiver counted {delivered}",
            s.envelopes_out, s.routed
        )));
    }
    let r = receiver_report.node;
    if r.executions_finished != delivered || r.ops_failed != 0 {
        return Err(BenchError::Verification(format!(
            "receiver: {} executions ({} failed ops) for {delivered} messages",
            r.executions_finished, r.ops_failed
        )));
    }
    if delivered + run.refused() != messages {
        return Err(BenchError::Verification(format!(
            "{messages} sent but {delivered} delivered and {} refused",
            run.refused()
        )));
    }
    if strict && run.refused() != 0 {
        return Err(BenchError::Verification(format!(
            "strict: {} of {messages} messages refused ({refused_router} by the router, {refused_send} Send ops failed)",
            run.refused()
        )));
    }
    Ok(run)
}

/// Invokes the sender with `seq`; while its lane is full, waits
/// [`HOST_BACKOFF`] and pushes the same event again. Returns the retries.
fn invoke_until_accepted(sender: &ActorHandle, seq: u64) -> Result<u64, BenchError> {
    let x: Box<dyn SlotValue> = Box::new(U64Value(seq));
    let mut refused = match sender.invoke(SiteId::new(0), vec![("x".into(), x)], seq) {
        Ok(()) => return Ok(0),
        Err(DeliverError::Refused(refused)) => *refused,
        Err(e) => return Err(BenchError::Setup(format!("invoke {seq}: {e}"))),
    };
    let mut retries = 0;
    loop {
        match refused {
            PushError::Full(event) => {
                retries += 1;
                std::thread::sleep(HOST_BACKOFF);
                match sender.ingress().push_data(event) {
                    Ok(()) => return Ok(retries),
                    Err(again) => refused = again,
                }
            }
            other => return Err(BenchError::Setup(format!("invoke {seq}: {other}"))),
        }
    }
}

/// Waits until the receiver Node has counted `expected` messages (or an
/// order failure was recorded); a count that stalls for [`PATIENCE`]
/// means messages were lost.
fn wait_counted(shared: &CountShared, expected: u64) -> Result<(), BenchError> {
    let mut last = (shared.received.load(Ordering::Acquire), Instant::now());
    loop {
        let now = shared.received.load(Ordering::Acquire);
        if now >= expected || shared.error.lock().is_some() {
            return Ok(());
        }
        if now != last.0 {
            last = (now, Instant::now());
        } else if last.1.elapsed() > PATIENCE {
            return Err(BenchError::Verification(format!(
                "the receiver counted {now} of {expected} routed messages"
            )));
        }
        std::thread::sleep(Duration::from_micros(50));
    }
}

/// The same stream on three plain threads (host → sender → receiver)
/// joined by bounded crossbeam channels of a nodeflow data lane's capacity.
pub fn raw_tell(messages: u64) -> Result<TellRun, BenchError> {
    check_messages(messages)?;
    let capacity = IngressConfig::default().data_capacity;
    let (host_tx, host_rx) = crossbeam_channel::bounded::<u64>(capacity);
    let (link_tx, link_rx) = crossbeam_channel::bounded::<u64>(capacity);
    let (done_tx, done_rx) = unbounded();
    let sender = std::thread::Builder::new()
        .name("raw-tell-send".into())
        .spawn(move || {
            while let Ok(seq) = host_rx.recv() {
                if link_tx.send(seq).is_err() {
                    return;
                }
            }
        })
        .map_err(|e| BenchError::Setup(format!("raw sender thread: {e}")))?;
    let receiver = std::thread::Builder::new()
        .name("raw-tell-recv".into())
        .spawn(move || {
            let mut sink = TellSink::new(messages, done_tx);
            while let Ok(seq) = link_rx.recv() {
                sink.on_seq(seq);
            }
            sink.received()
        })
        .map_err(|e| BenchError::Setup(format!("raw receiver thread: {e}")))?;

    let start = Instant::now();
    let mut fed = Ok(());
    for seq in 0..messages {
        if host_tx.send(seq).is_err() {
            fed = Err(BenchError::Verification("the raw sender died".into()));
            break;
        }
    }
    let waited = match fed {
        Ok(()) => wait_delivered(&done_rx, messages, start),
        Err(e) => Err(e),
    };
    drop(host_tx);
    let sender_ok = sender.join().is_ok();
    let received = receiver.join();
    let (delivered, elapsed) = waited?;
    match received {
        Ok(count) if sender_ok && count == messages => Ok(TellRun {
            sent: messages,
            delivered,
            refused_router: 0,
            refused_send: 0,
            host_retries: 0,
            elapsed,
        }),
        Ok(count) => Err(BenchError::Verification(format!(
            "the raw receiver counted {count} of {messages} (sender ok: {sender_ok})"
        ))),
        Err(_) => Err(BenchError::Verification("the raw receiver panicked".into())),
    }
}

/// A stream needs at least one message.
pub(crate) fn check_messages(messages: u64) -> Result<(), BenchError> {
    if messages == 0 {
        return Err(BenchError::Usage("a tell needs at least 1 message".into()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_order_check_refuses_repeats_and_reorderings() {
        let mut strict = InOrder::strict();
        assert_eq!(strict.observe(0), Ok(()));
        assert_eq!(strict.observe(1), Ok(()));
        assert!(strict.observe(3).is_err(), "a gap");
        let mut lossy = InOrder::allowing_gaps();
        assert_eq!(lossy.observe(0), Ok(()));
        assert_eq!(lossy.observe(5), Ok(()), "a gap is a refusal");
        assert!(lossy.observe(5).is_err(), "a repeat");
        assert!(lossy.observe(4).is_err(), "a reordering");
        assert_eq!(lossy.received(), 2);
    }

    #[test]
    fn a_sink_reports_the_first_wrong_message() {
        let (done_tx, done_rx) = unbounded();
        let mut sink = TellSink::new(3, done_tx);
        sink.on_seq(0);
        sink.on_seq(2);
        sink.on_seq(1);
        assert!(matches!(done_rx.try_recv(), Ok(Err(_))));
        assert!(done_rx.try_recv().is_err(), "one verdict only");
    }

    #[test]
    fn both_tells_account_for_every_message() {
        let raw = raw_tell(10_000).unwrap();
        assert_eq!(
            (raw.sent, raw.delivered, raw.refused()),
            (10_000, 10_000, 0)
        );
        let nodeflow = nodeflow_tell(10_000, false).unwrap();
        assert_eq!(nodeflow.sent, 10_000);
        assert_eq!(nodeflow.delivered + nodeflow.refused(), 10_000);
        assert!(nodeflow.delivered > 0);
    }
}
