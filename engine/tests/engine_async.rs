//! Async ops: park on a command, resume through a same-cycle completion, a
//! completion from another thread, or fail (typed failure, deadline, cap);
//! completions for unknown commands are reported; panics are contained.
#![allow(clippy::unwrap_used)]

mod common;

use common::{drive, failures, finished, u64v, Math};
use nodeflow_engine::sync::atomic::Ordering;
use nodeflow_engine::{
    CommandId, GraphBuilder, Node, NodeConfig, OpErrorKind, PeerId, SiteId, Step,
};

fn single(op_type: &str, timeout_ns: Option<i64>) -> nodeflow_engine::Graph {
    let mut b = GraphBuilder::new("g");
    let x = b.input("x");
    let mut op = b.op(op_type, [x]).domain("math");
    if let Some(t) = timeout_ns {
        op = op.attr("timeout_ns", t);
    }
    let y = op.output();
    let z = b.syscall("PassThrough", [y]).output();
    b.output(z, "y");
    b.build().unwrap()
}

fn node(graph: nodeflow_engine::Graph, math: &Math, config: NodeConfig) -> Node {
    Node::builder(PeerId::new(1))
        .component("math", Box::new(math.clone()))
        .graph(graph)
        .config(config)
        .build()
        .unwrap()
}

#[test]
fn a_completion_from_another_thread_resumes_the_parked_op() {
    let math = Math::default();
    let mut node = node(single("Later", None), &math, NodeConfig::default());
    let exec = node
        .invoke(SiteId::new(0), vec![("x".into(), u64v(1))])
        .unwrap();
    assert!(finished(&drive(&mut node, 0)).is_empty());
    assert_eq!(node.stats().parked, 1);

    let handle = math.handles.lock().pop().unwrap();
    #[allow(clippy::disallowed_methods)] // the test plays the compute pool
    std::thread::spawn(move || handle.complete(&77).unwrap())
        .join()
        .unwrap();
    // The ingress woke: the owner would have been unparked.
    assert!(node.has_work());
    let steps = drive(&mut node, 10);
    let done = finished(&steps);
    assert_eq!(done.len(), 1);
    assert_eq!(done[0].0, exec);
    // Byte completions arrive as bytes in the op's first output.
    assert!(done[0].2.is_empty());
    assert_eq!(node.stats().parked, 0);
    assert_eq!(node.stats().completions, 1);
    assert_eq!(
        node.budget().in_use(),
        0,
        "the completion bytes were released"
    );
}

#[test]
fn a_same_cycle_completion_resumes_within_one_poll() {
    let math = Math::default();
    let mut node = node(single("Now", None), &math, NodeConfig::default());
    node.invoke(SiteId::new(0), vec![("x".into(), u64v(41))])
        .unwrap();
    let steps: Vec<Step> = node.poll(0).collect();
    assert_eq!(finished(&steps)[0].1, vec![("y".into(), Some(42))]);
}

#[test]
fn a_parked_op_times_out_at_its_deadline_and_a_late_completion_is_reported() {
    let math = Math::default();
    let mut node = node(single("Later", Some(1_000)), &math, NodeConfig::default());
    let exec = node
        .invoke(SiteId::new(0), vec![("x".into(), u64v(1))])
        .unwrap();
    drive(&mut node, 5_000);
    assert_eq!(node.next_deadline(), Some(6_000));
    assert!(!drive(&mut node, 5_999)
        .iter()
        .any(|s| matches!(s, Step::Timeout { .. })));
    let steps = drive(&mut node, 6_000);
    let cmd = steps
        .iter()
        .find_map(|s| match s {
            Step::Timeout { exec: e, cmd, .. } if *e == exec => Some(*cmd),
            _ => None,
        })
        .expect("a Timeout step");
    assert_eq!(
        finished(&steps),
        vec![(exec, vec![], vec!["y".to_string()])]
    );
    assert_eq!(node.stats().timeouts, 1);

    // The worker finishes late: the completion is counted and reported.
    math.handles.lock().pop().unwrap().complete(&1).unwrap();
    let steps = drive(&mut node, 7_000);
    assert!(steps.iter().any(|s| matches!(
        s,
        Step::UnknownCompletion { cmd: c, failure: false } if *c == cmd
    )));
    assert!(steps.iter().any(|s| matches!(
        s,
        Step::Event(nodeflow_engine::NodeEvent::UnknownCompletion { .. })
    )));
    assert_eq!(node.stats().unknown_completions, 1);
    assert_eq!(node.budget().in_use(), 0);
}

#[test]
fn a_failure_through_the_sink_is_a_typed_op_failure() {
    let math = Math::default();
    let mut node = node(single("Later", None), &math, NodeConfig::default());
    node.invoke(SiteId::new(0), vec![("x".into(), u64v(1))])
        .unwrap();
    drive(&mut node, 0);
    math.handles
        .lock()
        .pop()
        .unwrap()
        .fail(&"disk on fire".to_string())
        .unwrap();
    let errors = failures(&drive(&mut node, 0));
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].kind, OpErrorKind::Failed);
    assert_eq!(errors[0].detail, "disk on fire");
}

#[test]
fn a_dropped_handle_fails_its_op_instead_of_leaving_it_parked() {
    let math = Math::default();
    let mut node = node(single("Later", None), &math, NodeConfig::default());
    node.invoke(SiteId::new(0), vec![("x".into(), u64v(1))])
        .unwrap();
    drive(&mut node, 0);
    math.handles.lock().clear();
    let errors = failures(&drive(&mut node, 0));
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].kind, OpErrorKind::Failed);
    assert_eq!(node.stats().parked, 0);
}

#[test]
fn the_pending_async_cap_fails_further_ops_without_running_them() {
    let math = Math::default();
    let config = NodeConfig {
        max_pending_async: 2,
        ..NodeConfig::default()
    };
    let mut node = node(single("Later", None), &math, config);
    for x in 0..3 {
        node.invoke(SiteId::new(0), vec![("x".into(), u64v(x))])
            .unwrap();
    }
    let errors = failures(&drive(&mut node, 0));
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].kind, OpErrorKind::ResourceExhausted);
    assert_eq!(errors[0].reason, "async.cap");
    assert_eq!(
        math.fired.load(Ordering::SeqCst),
        2,
        "the third op never ran"
    );
    assert_eq!(node.stats().parked, 2);
}

#[test]
fn a_completion_for_a_command_never_issued_is_reported() {
    let math = Math::default();
    let mut node = node(single("Later", None), &math, NodeConfig::default());
    let sink = nodeflow_engine::completion_sink(node.ingress());
    sink.complete(CommandId::new(999), b"hi").unwrap();
    let steps = drive(&mut node, 0);
    assert!(steps.iter().any(|s| matches!(
        s,
        Step::UnknownCompletion { cmd, .. } if *cmd == CommandId::new(999)
    )));
    assert_eq!(node.budget().in_use(), 0);
}

#[test]
fn a_panicking_op_fails_and_the_node_keeps_running() {
    let math = Math::default();
    let mut b = GraphBuilder::new("g");
    let x = b.input("x");
    let p = b.op("Panic", [x]).domain("math").output();
    b.output(p, "boom");
    let d = b.op("Double", [x]).domain("math").output();
    b.output(d, "ok");
    let mut node = node(b.build().unwrap(), &math, NodeConfig::default());
    node.invoke(SiteId::new(0), vec![("x".into(), u64v(4))])
        .unwrap();
    let steps = drive(&mut node, 0);
    let errors = failures(&steps);
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].kind, OpErrorKind::Panicked);
    assert!(errors[0].detail.contains("the op blew up"));
    // The sibling branch still ran, and the Node still works afterwards.
    assert_eq!(finished(&steps)[0].1, vec![("ok".to_string(), Some(8))]);
    node.invoke(SiteId::new(0), vec![("x".into(), u64v(5))])
        .unwrap();
    assert_eq!(
        finished(&drive(&mut node, 0))[0].1,
        vec![("ok".to_string(), Some(10))]
    );
    assert_eq!(node.stats().ops_panicked, 2);
}

#[test]
fn a_node_is_quiescent_only_with_nothing_in_flight() {
    let math = Math::default();
    let mut node = node(single("Later", None), &math, NodeConfig::default());
    assert!(!node.is_quiescent(), "not started yet");
    drive(&mut node, 0);
    assert!(node.is_quiescent());
    node.invoke(SiteId::new(0), vec![("x".into(), u64v(1))])
        .unwrap();
    assert!(!node.is_quiescent(), "an invoke is queued");
    drive(&mut node, 1);
    assert!(!node.has_work());
    assert!(!node.is_quiescent(), "no work, but an op is parked");
    math.handles.lock().pop().unwrap().complete(&1).unwrap();
    drive(&mut node, 2);
    assert!(node.is_quiescent());
}
