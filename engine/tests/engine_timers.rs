//! Timers: trigger sources start executions at host-supplied times, and
//! `next_deadline` tells the host exactly when to come back.
#![allow(clippy::unwrap_used)]

mod common;

use common::{drive, finished, u64v};
use nodeflow_engine::{EventKind, ExecOrigin, GraphBuilder, Node, PeerId, Step, Trigger};

fn ticker(period_ns: i64) -> Node {
    let mut b = GraphBuilder::new("tick");
    let t = b
        .syscall("Interval", [])
        .attr("period_ns", period_ns)
        .output();
    let y = b.syscall("PassThrough", [t]).output();
    b.output(y, "tick");
    Node::builder(PeerId::new(1))
        .graph(b.build().unwrap())
        .build()
        .unwrap()
}

#[test]
fn an_interval_fires_every_period_from_the_first_poll() {
    let mut node = ticker(100);
    assert!(finished(&drive(&mut node, 1_000)).is_empty());
    assert_eq!(node.next_deadline(), Some(1_100));
    // Nothing is due before the deadline: the host can sleep exactly until it.
    assert!(finished(&drive(&mut node, 1_099)).is_empty());
    let steps = drive(&mut node, 1_100);
    let done = finished(&steps);
    assert_eq!(done.len(), 1);
    assert!(matches!(
        steps.iter().find(|s| matches!(s, Step::ExecFinished { .. })),
        Some(Step::ExecFinished { origin: ExecOrigin::Timer { .. }, outputs, .. })
            if outputs[0].1.downcast_ref::<Trigger>().is_some()
    ));
    assert_eq!(node.next_deadline(), Some(1_200));
}

#[test]
fn a_late_poll_catches_up_every_missed_tick_without_drift() {
    let mut node = ticker(100);
    drive(&mut node, 0);
    // The host overslept by 3.5 periods: each missed tick runs once, and the
    // schedule stays on the 100 ns grid.
    assert_eq!(finished(&drive(&mut node, 350)).len(), 3);
    assert_eq!(node.next_deadline(), Some(400));
}

#[test]
fn an_app_event_nobody_subscribes_to_is_refused_and_reported() {
    let mut node = ticker(100);
    node.deliver_app_event(EventKind::new(EventKind::USER_MIN), u64v(1))
        .unwrap();
    let steps = drive(&mut node, 0);
    assert!(steps.iter().any(|s| matches!(
        s,
        Step::Refused {
            kind: nodeflow_engine::AppIngressErrorKind::NoSubscriber,
            ..
        }
    )));
    assert_eq!(node.stats().refused, 1);
}

#[test]
fn a_node_with_no_work_reports_no_deadline() {
    let mut b = GraphBuilder::new("idle");
    let x = b.input("x");
    let y = b.syscall("PassThrough", [x]).output();
    b.output(y, "y");
    let mut node = Node::builder(PeerId::new(1))
        .graph(b.build().unwrap())
        .build()
        .unwrap();
    drive(&mut node, 0);
    assert_eq!(node.next_deadline(), None);
    assert!(!node.has_work());
}
