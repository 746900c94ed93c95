//! Flow control of one sans-IO sender Node, driven by hand: a window of
//! one-way sends leaves, the rest park in order; returned credit releases
//! them in order; a receiver that never drains costs the sender one window
//! plus parked sends that fail typed at their deadline, and then nothing.
#![allow(clippy::unwrap_used)]

mod common;

use common::{drive, failures, u64v};
use nodeflow_engine::{
    Envelope, EnvelopeKind, FlowConfig, FrameworkConfig, GraphBuilder, IngressEvent, Node,
    NodeConfig, OpErrorKind, PeerId, SiteId, Step, U64Value,
};

const SENDER: PeerId = PeerId::new(1);
const RECEIVER: PeerId = PeerId::new(2);
const WINDOW: u32 = 4;
const TIMEOUT_NS: i64 = 1_000;

/// Sends input `x` one-way to the receiver's site 0.
fn sender() -> Node {
    let mut b = GraphBuilder::new("send");
    let x = b.input("x");
    let sent = b
        .syscall("Send", [x])
        .attr("peer", RECEIVER.as_u64() as i64)
        .attr("site", 0)
        .attr("input", "x")
        .attr("timeout_ns", TIMEOUT_NS)
        .output();
    b.output(sent, "sent");
    Node::builder(SENDER)
        .graph(b.build().unwrap())
        .config(NodeConfig {
            framework: FrameworkConfig {
                flow: FlowConfig {
                    window: WINDOW,
                    return_batch: 2,
                    max_held: 8,
                    ..FlowConfig::default()
                },
                ..FrameworkConfig::default()
            },
            ..NodeConfig::default()
        })
        .build()
        .unwrap()
}

fn sent_values(steps: &[Step]) -> Vec<u64> {
    steps
        .iter()
        .filter_map(|s| match s {
            Step::SendEnvelope(e) if e.kind == EnvelopeKind::OneWay => {
                let nodeflow_engine::Payload::Value(v) = &e.fills[0].payload else {
                    return None;
                };
                v.downcast_ref::<U64Value>().map(|v| v.0)
            }
            _ => None,
        })
        .collect()
}

fn credit(n: u32) -> Envelope {
    Envelope::new(RECEIVER, SENDER, EnvelopeKind::Credit).with_credit(n)
}

#[test]
fn a_window_leaves_the_rest_park_and_returned_credit_releases_them_in_order() {
    let mut node = sender();
    for x in 1..=10 {
        node.invoke(SiteId::new(0), vec![("x".into(), u64v(x))])
            .unwrap();
    }
    let steps = drive(&mut node, 0);
    assert_eq!(sent_values(&steps), [1, 2, 3, 4], "one window leaves");
    assert!(failures(&steps).is_empty(), "nothing is refused");
    assert_eq!(node.framework().flow().held_len(), 6);
    assert_eq!(node.stats().parked, 6, "the other Sends park");

    node.deliver_envelope(credit(3)).unwrap();
    let steps = drive(&mut node, 10);
    assert_eq!(sent_values(&steps), [5, 6, 7], "released in order");
    // A released one-way Send completes: its execution finishes.
    let finished = steps
        .iter()
        .filter(|s| matches!(s, Step::ExecFinished { missing, .. } if missing.is_empty()))
        .count();
    assert_eq!(finished, 3);

    // Credit beyond the window is capped: 100 releases only what is held.
    node.deliver_envelope(credit(100)).unwrap();
    let steps = drive(&mut node, 20);
    assert_eq!(sent_values(&steps), [8, 9, 10]);
    assert_eq!(node.framework().flow().credits(RECEIVER), WINDOW - 3);
    assert_eq!(node.stats().parked, 0);
}

#[test]
fn a_receiver_that_never_drains_costs_a_window_and_parked_sends_fail_typed_at_their_deadline() {
    let mut node = sender();
    for x in 1..=12 {
        node.invoke(SiteId::new(0), vec![("x".into(), u64v(x))])
            .unwrap();
    }
    let steps = drive(&mut node, 0);
    assert_eq!(sent_values(&steps).len(), WINDOW as usize);
    // 8 parked (the hold cap): the Node is stalled and takes no more data.
    assert_eq!(node.framework().flow().held_len(), 8);
    assert!(!node.takes_data());
    // An invoke through the mailbox waits there while the Node is stalled.
    node.ingress()
        .push_data(IngressEvent::Invoke {
            site: SiteId::new(0),
            inputs: vec![("x".into(), u64v(99))],
            ticket: 99,
        })
        .unwrap();
    assert!(
        failures(&drive(&mut node, 500)).is_empty(),
        "before the deadline nothing fails"
    );

    let steps = drive(&mut node, 2_000);
    let failed = failures(&steps);
    assert_eq!(failed.len(), 8, "each parked Send fails at its deadline");
    assert!(failed
        .iter()
        .all(|e| e.kind == OpErrorKind::Timeout && e.reason == "wire.no_credit"));
    assert_eq!(node.framework().flow().stats().expired, 8);
    // Unstalled, the Node took the queued invoke: its Send parks in turn.
    assert_eq!(node.framework().flow().held_len(), 1);
    assert_eq!(node.stats().parked, 1);
    let steps = drive(&mut node, 4_000);
    assert_eq!(failures(&steps).len(), 1);
    assert_eq!(node.framework().flow().held_len(), 0, "nothing stays held");
    assert_eq!(node.stats().parked, 0);
    assert_eq!(node.stats().live_executions, 0);
}

#[test]
fn the_receiver_returns_credit_in_batches_and_on_its_answers() {
    // A receiver that echoes requests: credit rides on its responses.
    let mut b = GraphBuilder::new("echo");
    let x = b.input("x");
    b.syscall("Reply", [x]).finish();
    let mut receiver = Node::builder(RECEIVER)
        .graph(b.build().unwrap())
        .config(NodeConfig {
            framework: FrameworkConfig {
                flow: FlowConfig {
                    window: WINDOW,
                    return_batch: 2,
                    ..FlowConfig::default()
                },
                ..FrameworkConfig::default()
            },
            ..NodeConfig::default()
        })
        .build()
        .unwrap();
    let one_way = |x: u64| {
        Envelope::new(SENDER, RECEIVER, EnvelopeKind::OneWay).with_fill(
            nodeflow_engine::Fill::site(
                SiteId::new(0),
                "x",
                nodeflow_engine::Payload::value(U64Value(x)),
            ),
        )
    };
    receiver.deliver_envelope(one_way(1)).unwrap();
    let steps = drive(&mut receiver, 0);
    let credits: Vec<u32> = steps
        .iter()
        .filter_map(|s| match s {
            Step::SendEnvelope(e) => Some(e.credit),
            _ => None,
        })
        .collect();
    assert!(
        credits.iter().all(|c| *c == 0),
        "below a batch nothing returns alone"
    );
    receiver.deliver_envelope(one_way(2)).unwrap();
    let steps = drive(&mut receiver, 1);
    let returned: Vec<(EnvelopeKind, u32)> = steps
        .iter()
        .filter_map(|s| match s {
            Step::SendEnvelope(e) if e.credit > 0 => Some((e.kind, e.credit)),
            _ => None,
        })
        .collect();
    assert_eq!(returned, [(EnvelopeKind::Credit, 2)], "a batch returns");

    let request = one_way(3).with_request_id(7);
    let mut request = request;
    request.kind = EnvelopeKind::Request;
    receiver.deliver_envelope(request).unwrap();
    let steps = drive(&mut receiver, 2);
    let answers: Vec<(EnvelopeKind, u32)> = steps
        .iter()
        .filter_map(|s| match s {
            Step::SendEnvelope(e) => Some((e.kind, e.credit)),
            _ => None,
        })
        .collect();
    assert_eq!(
        answers,
        [(EnvelopeKind::Response, 1)],
        "credit rides on the answer"
    );
}
