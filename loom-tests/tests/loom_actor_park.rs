//! Loom model of the actor's park/unpark protocol: mail that arrives while
//! a [`NodeActor`] is going to sleep on its ingress always wakes it.
//!
//! The model runs the real stack: a [`Node`] with one graph (input `x` →
//! `PassThrough` → output `y`), driven by [`NodeActor::spawn`] on a loom
//! thread, with a [`ManualClock`] so the Node has no deadline and the actor
//! can only sleep on its ingress (`wait(None)`). A producer thread pushes
//! one invoke while the actor polls, checks for work and goes to sleep; the
//! main thread blocks on the subscriber channel for the `ExecFinished`
//! output. A lost wake-up leaves both blocked, which loom reports as a
//! deadlock. Three threads in all: main (subscriber), actor, producer.
//!
//! # Invariants checked
//! * The invoke's output reaches the subscriber in every interleaving.
//! * After `stop`, the report accounts for exactly one finished execution,
//!   one forwarded output, one accepted and taken invoke, nothing dropped
//!   at close, and the Node is unregistered.
//!
//! # The broken twins
//! Compiled only with `--cfg nodeflow_loom_broken`, they run the same model
//! with one side of the ingress doorbell's `SeqCst` fence pair removed in
//! the real code path (`nodeflow_engine::sync::loom_fault`, selected per
//! loom thread, so every other model runs the real protocol):
//! * `loom_broken_actor_sleeps_without_recheck`: the actor thread skips its
//!   fence between arming the doorbell and re-checking the lanes, so its
//!   last look before sleeping can miss mail that was just sent (the fault
//!   is switched on from the actor thread through its clock, see
//!   [`Fault`]);
//! * `loom_broken_actor_mail_skips_fence`: the producer skips its fence
//!   before reading the doorbell, so it can miss the actor's arming.
//!
//! Loom must find the lost wake-up (a deadlock) in both.
#![cfg(loom)]

use std::sync::atomic::{AtomicUsize, Ordering}; // sync-facade: allow (iteration counter outside the model)
use std::time::Instant;

use nodeflow_actors::{ActorConfig, ActorOutput, Clock, ManualClock, NodeActor, Router};
use nodeflow_engine::sync::{thread, Arc};
use nodeflow_engine::{
    ExecOrigin, GraphBuilder, IngressEvent, IngressQueue, Node, PeerId, SiteId, SlotValue, U64Value,
};

/// std's `Arc`: the iteration counter lives outside the model, and loom's
/// `Arc::from_std` needs one to build a trait object.
type StdArc<T> = std::sync::Arc<T>; // sync-facade: allow (iteration counter and trait-object Arc)

const PEER: PeerId = PeerId::new(7);

/// Which deliberate bug a run injects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fault {
    /// The real protocol.
    None,
    /// The actor thread skips its fences: [`FaultyClock`] switches the
    /// fault on at the actor's first clock read, which happens on the actor
    /// thread before its first wait.
    #[cfg_attr(not(nodeflow_loom_broken), allow(dead_code))]
    ActorSkipsFence,
    /// The producer thread skips its fences.
    #[cfg_attr(not(nodeflow_loom_broken), allow(dead_code))]
    ProducerSkipsFence,
}

/// The model; `fault` selects a deliberate bug (broken builds only).
fn actor_wakes_for_mail(name: &'static str, fault: Fault) {
    let size = ModelSize::new(name);
    let iterations = StdArc::clone(&size.iterations);
    loom::model(move || {
        iterations.fetch_add(1, Ordering::Relaxed);
        let router = Arc::new(Router::new());
        let handle = NodeActor::spawn(
            echo_node(),
            Arc::clone(&router),
            clock(fault),
            ActorConfig::default(),
        )
        .expect("the actor starts");
        let outputs = handle.subscribe().expect("room for a subscriber");
        let producer = {
            let ingress = Arc::clone(handle.ingress());
            thread::spawn(move || {
                if fault == Fault::ProducerSkipsFence {
                    skip_fences_on_this_thread();
                }
                invoke(&ingress);
            })
        };
        // Blocks in the loom channel: a lost wake-up is a loom deadlock.
        match outputs.recv().expect("the actor forwards the output") {
            ActorOutput::ExecFinished {
                origin, outputs, ..
            } => {
                assert_eq!(origin, ExecOrigin::Ticket(1));
                assert_eq!(outputs.len(), 1);
                assert_eq!(outputs[0].1.downcast_ref::<U64Value>(), Some(&U64Value(5)));
            }
            other => panic!("expected ExecFinished, got {other:?}"),
        }
        producer.join().expect("the producer ran");
        let report = handle.stop().expect("the actor stops cleanly");
        assert_eq!(report.node.executions_finished, 1);
        assert_eq!(report.stats.outputs_forwarded, 1);
        assert_eq!(report.dropped_at_close, 0);
        assert_eq!(report.ingress.data.accepted, 1);
        assert_eq!(report.ingress.data.taken, 1);
        assert!(!router.contains(PEER), "stop unregisters the Node");
    });
}

/// A Node whose site 0 passes input `x` through to output `y`.
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

/// Pushes the invoke `x = 5`, ticket 1, straight into the ingress.
fn invoke(ingress: &IngressQueue) {
    let inputs: Vec<(String, Box<dyn SlotValue>)> = vec![("x".to_owned(), Box::new(U64Value(5)))];
    ingress
        .push_data(IngressEvent::Invoke {
            site: SiteId::new(0),
            inputs,
            ticket: 1,
        })
        .expect("the ingress is open and has room");
}

/// The actor's clock behind the facade's `Arc<dyn Clock>` (loom's `Arc`
/// cannot coerce to a trait object, so it is built from std's).
fn clock(fault: Fault) -> Arc<dyn Clock> {
    let clock: StdArc<dyn Clock> = StdArc::new(FaultyClock {
        inner: ManualClock::new(),
        actor_skips_fences: fault == Fault::ActorSkipsFence,
    });
    Arc::from_std(clock)
}

/// A [`ManualClock`] that can switch on the fence fault for the thread that
/// reads it (the actor: nobody else reads the time in this model).
#[derive(Debug)]
struct FaultyClock {
    inner: ManualClock,
    actor_skips_fences: bool,
}

impl Clock for FaultyClock {
    fn now_ns(&self) -> u64 {
        if self.actor_skips_fences {
            skip_fences_on_this_thread();
        }
        self.inner.now_ns()
    }

    fn deadline_instant(&self, at_ns: u64) -> Option<Instant> {
        self.inner.deadline_instant(at_ns)
    }

    fn watch(&self, ingress: &Arc<IngressQueue>) -> Result<(), nodeflow_actors::WatchError> {
        self.inner.watch(ingress)
    }
}

#[cfg(nodeflow_loom_broken)]
fn skip_fences_on_this_thread() {
    nodeflow_engine::sync::loom_fault::skip_fences_on_this_thread();
}

#[cfg(not(nodeflow_loom_broken))]
fn skip_fences_on_this_thread() {
    unreachable!("faults are compiled only with --cfg nodeflow_loom_broken");
}

/// Counts a model's executions and prints the count and the wall time when
/// dropped (also when the model fails, so a caught bug shows how soon).
struct ModelSize {
    name: &'static str,
    iterations: StdArc<AtomicUsize>,
    started: Instant,
}

impl ModelSize {
    fn new(name: &'static str) -> Self {
        Self {
            name,
            iterations: StdArc::new(AtomicUsize::new(0)),
            started: Instant::now(),
        }
    }
}

impl Drop for ModelSize {
    fn drop(&mut self) {
        let iterations = self.iterations.load(Ordering::Relaxed);
        let elapsed = self.started.elapsed();
        eprintln!("{}: {iterations} iterations in {elapsed:.2?}", self.name);
    }
}

#[test]
fn loom_actor_wakes_for_mail_sent_before_it_sleeps() {
    actor_wakes_for_mail(
        "loom_actor_wakes_for_mail_sent_before_it_sleeps",
        Fault::None,
    );
}

#[cfg(nodeflow_loom_broken)]
#[test]
fn loom_broken_actor_sleeps_without_recheck() {
    actor_wakes_for_mail(
        "loom_broken_actor_sleeps_without_recheck",
        Fault::ActorSkipsFence,
    );
}

#[cfg(nodeflow_loom_broken)]
#[test]
fn loom_broken_actor_mail_skips_fence() {
    actor_wakes_for_mail(
        "loom_broken_actor_mail_skips_fence",
        Fault::ProducerSkipsFence,
    );
}
