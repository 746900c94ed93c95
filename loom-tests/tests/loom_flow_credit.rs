//! Loom model of the credit protocol between two Nodes (ARCHITECTURE §3.1):
//! a credit returned while the sender's second `Send` parks for it always
//! releases that `Send`, even though the sender is stalled and takes no
//! data-lane input.
//!
//! The sender is the real stack: a [`Node`] whose graph sends its input
//! one-way to the receiver, with a window of one credit and room to hold
//! one envelope (so one held `Send` stalls it), driven by
//! [`NodeActor::spawn`] on a loom thread under a [`ManualClock`]. Two
//! invokes wait in its mailbox before it starts: the first `Send` takes the
//! credit and leaves, the second parks, and the Node stops taking data. The
//! receiver is a loom thread owning a bare registered [`IngressQueue`]: it
//! sleeps on it, takes each envelope and returns one credit through the
//! [`Router`] — racing the sender's actor as it parks the second `Send` and
//! goes to sleep. The main thread joins the receiver, then stops the actor
//! and reads its report. Three threads: main, sender actor, receiver.
//!
//! # Invariants checked
//! * Both envelopes reach the receiver, in order, in every interleaving;
//!   both `Send`s complete; nothing is refused or fails.
//! * The credit travels the sender's control lane (the Router puts it
//!   there), which a stalled Node still reads.
//!
//! # The broken twin
//! `loom_broken_credit_on_the_data_lane` (compiled with
//! `--cfg nodeflow_loom_broken`) delivers the credit on the sender's data
//! lane instead, as a router that treated credits like data would: the
//! stalled sender never reads it, the parked `Send` never leaves, and loom
//! reports the deadlock.
#![cfg(loom)]

use std::sync::atomic::{AtomicUsize, Ordering}; // sync-facade: allow (iteration counter outside the model)
use std::time::Instant;

use nodeflow_actors::{ActorConfig, Clock, ManualClock, NodeActor, Router};
use nodeflow_engine::sync::{thread, Arc};
use nodeflow_engine::{
    ByteBudget, Envelope, EnvelopeKind, FlowConfig, FrameworkConfig, GraphBuilder, IngressConfig,
    IngressEvent, IngressQueue, Node, NodeConfig, Payload, PeerId, SiteId, SlotValue, U64Value,
};

/// std's `Arc`: the iteration counter lives outside the model.
type StdArc<T> = std::sync::Arc<T>; // sync-facade: allow (iteration counter and trait-object Arc)

const SENDER: PeerId = PeerId::new(1);
const RECEIVER: PeerId = PeerId::new(2);

/// How the receiver returns its credit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Return {
    /// Through the Router (the real protocol: the control lane).
    Routed,
    /// Straight onto the sender's data lane (the broken twin).
    #[cfg_attr(not(nodeflow_loom_broken), allow(dead_code))]
    OnTheDataLane,
}

fn credit_releases_a_parked_send(name: &'static str, how: Return) {
    let iterations = StdArc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let counter = StdArc::clone(&iterations);
    loom::model(move || {
        counter.fetch_add(1, Ordering::Relaxed);
        let router = Arc::new(Router::new());
        let inbox = Arc::new(IngressQueue::new(
            IngressConfig::default(),
            ByteBudget::new(1 << 20),
        ));
        router
            .register(RECEIVER, Arc::clone(&inbox))
            .expect("the receiver registers");
        let sender = sender_node();
        for x in 1..=2 {
            invoke(sender.ingress(), x);
        }
        let sender_ingress = Arc::clone(sender.ingress());
        let handle = NodeActor::spawn(sender, Arc::clone(&router), clock(), ActorConfig::default())
            .expect("the actor starts");

        let receiver = {
            let router = Arc::clone(&router);
            thread::spawn(move || {
                let mut seen = Vec::new();
                while seen.len() < 2 {
                    let Some(event) = inbox.try_pop() else {
                        inbox.wait(None);
                        continue;
                    };
                    let IngressEvent::Envelope(envelope) = event else {
                        panic!("only envelopes reach the receiver");
                    };
                    seen.push(value_of(&envelope));
                    let credit =
                        Envelope::new(RECEIVER, SENDER, EnvelopeKind::Credit).with_credit(1);
                    match how {
                        Return::Routed => router.route(credit).expect("the sender is registered"),
                        Return::OnTheDataLane => sender_ingress
                            .push_data(IngressEvent::Envelope(credit))
                            .expect("room on the sender's data lane"),
                    }
                }
                seen
            })
        };
        // The receiver blocks on its inbox until the second envelope comes:
        // a Send that never leaves is a loom deadlock. The second Send's
        // execution ends in the poll that releases its envelope, before
        // the envelope is routed.
        let seen = receiver.join().expect("the receiver ran");
        assert_eq!(seen, [1, 2], "both arrived, in order");
        let report = handle.stop().expect("the actor stops cleanly");
        assert_eq!(report.node.executions_finished, 2, "both Sends completed");
        assert_eq!(report.node.ops_failed, 0);
        assert_eq!(report.stats.routed, 2);
        assert_eq!(report.stats.refused_full, 0);
        assert_eq!(
            report.ingress.control.accepted, 2,
            "credits on the control lane"
        );
    });
    eprintln!(
        "{name}: {} iterations in {:.2?}",
        iterations.load(Ordering::Relaxed),
        started.elapsed()
    );
}

/// Sends input `x` one-way to the receiver's site 0; one credit, one held
/// envelope at most.
fn sender_node() -> Node {
    let mut b = GraphBuilder::new("send");
    let x = b.input("x");
    let sent = b
        .syscall("Send", [x])
        .attr("peer", RECEIVER.as_u64() as i64)
        .attr("site", 0)
        .attr("input", "x")
        .output();
    b.output(sent, "sent");
    Node::builder(SENDER)
        .graph(b.build().expect("a valid graph"))
        .config(NodeConfig {
            framework: FrameworkConfig {
                flow: FlowConfig {
                    window: 1,
                    return_batch: 1,
                    max_held: 1,
                    ..FlowConfig::default()
                },
                ..FrameworkConfig::default()
            },
            ..NodeConfig::default()
        })
        .build()
        .expect("a valid node")
}

fn invoke(ingress: &IngressQueue, x: u64) {
    let inputs: Vec<(String, Box<dyn SlotValue>)> = vec![("x".to_owned(), Box::new(U64Value(x)))];
    ingress
        .push_data(IngressEvent::Invoke {
            site: SiteId::new(0),
            inputs,
            ticket: x,
        })
        .expect("the ingress is open and has room");
}

fn value_of(envelope: &Envelope) -> u64 {
    match &envelope.fills[0].payload {
        Payload::Value(value) => value.downcast_ref::<U64Value>().map_or(0, |v| v.0),
        _ => 0,
    }
}

fn clock() -> Arc<dyn Clock> {
    let clock: StdArc<dyn Clock> = StdArc::new(ManualClock::new());
    Arc::from_std(clock)
}

#[test]
fn loom_credit_releases_a_parked_send_of_a_stalled_node() {
    credit_releases_a_parked_send(
        "loom_credit_releases_a_parked_send_of_a_stalled_node",
        Return::Routed,
    );
}

#[cfg(nodeflow_loom_broken)]
#[test]
fn loom_broken_credit_on_the_data_lane() {
    credit_releases_a_parked_send("loom_broken_credit_on_the_data_lane", Return::OnTheDataLane);
}
