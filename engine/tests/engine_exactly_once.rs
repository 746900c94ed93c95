//! Executions: an op fires exactly once per execution, only when all its
//! inputs are present, in FIFO order; concurrent executions never see each
//! other's values; graphs call graphs; bootstrap graphs run first.
#![allow(clippy::unwrap_used)]

mod common;

use common::{drive, failures, finished, u64v, Math};
use nodeflow_engine::sync::atomic::Ordering;
use nodeflow_engine::{
    ExecOrigin, GraphBuilder, InvokeError, Node, NodeConfig, PeerId, SiteId, Step, SYSCALL_DOMAIN,
};

/// x ──Double──► a ─┐
///  └──PassThrough─► b ─┴─Log(a, b, x)──► y
fn diamond() -> nodeflow_engine::Graph {
    let mut b = GraphBuilder::new("diamond");
    let x = b.input("x");
    let a = b.op("Double", [x]).domain("math").output();
    let p = b.syscall("PassThrough", [x]).output();
    let y = b.op("Log", [a, p, x]).domain("math").output();
    b.output(y, "y");
    b.build().unwrap()
}

fn node_with(graphs: Vec<nodeflow_engine::Graph>, math: &Math) -> Node {
    let mut builder = Node::builder(PeerId::new(1)).component("math", Box::new(math.clone()));
    for graph in graphs {
        builder = builder.graph(graph);
    }
    builder.build().unwrap()
}

#[test]
fn a_join_fires_once_with_every_input_present() {
    let math = Math::default();
    let mut node = node_with(vec![diamond()], &math);
    let exec = node
        .invoke(SiteId::new(0), vec![("x".into(), u64v(5))])
        .unwrap();
    let steps = drive(&mut node, 0);
    assert_eq!(
        finished(&steps),
        vec![(exec, vec![("y".into(), Some(10 + 5 + 5))], vec![])]
    );
    // Double and Log each fired once; Log saw all three inputs; no op was
    // queued before its inputs were all present.
    assert_eq!(math.fired.load(Ordering::SeqCst), 2);
    assert_eq!(node.stats().stale_frontier, 0);
    assert_eq!(
        math.log.lock().as_slice(),
        &[("y".to_string(), vec![Some(10), Some(5), Some(5)])]
    );
}

#[test]
fn concurrent_executions_keep_their_values_apart() {
    let math = Math::default();
    let mut node = node_with(vec![diamond()], &math);
    let ids: Vec<_> = (1..=50u64)
        .map(|x| {
            node.invoke(SiteId::new(0), vec![("x".into(), u64v(x))])
                .unwrap()
        })
        .collect();
    let done = finished(&drive(&mut node, 0));
    assert_eq!(done.len(), 50);
    for (exec, outputs, _) in done {
        let x = ids.iter().position(|id| *id == exec).unwrap() as u64 + 1;
        assert_eq!(outputs, vec![("y".to_string(), Some(4 * x))], "exec {exec}");
    }
    // Each execution fired each op exactly once.
    assert_eq!(math.fired.load(Ordering::SeqCst), 100);
    assert_eq!(node.stats().live_executions, 0);
    assert_eq!(node.stats().executions_finished, 50);
}

#[test]
fn ready_ops_fire_in_fifo_order() {
    let math = Math::default();
    let mut b = GraphBuilder::new("fan");
    let x = b.input("x");
    for name in ["first", "second", "third"] {
        let y = b.op("Log", [x]).domain("math").output_named(name);
        b.output(y, name);
    }
    let mut node = node_with(vec![b.build().unwrap()], &math);
    node.invoke(SiteId::new(0), vec![("x".into(), u64v(1))])
        .unwrap();
    drive(&mut node, 0);
    let order: Vec<String> = math.log.lock().iter().map(|(n, _)| n.clone()).collect();
    assert_eq!(order, ["first", "second", "third"]);
}

#[test]
fn an_op_whose_input_never_arrives_never_fires_and_the_execution_still_ends() {
    let math = Math::default();
    // `Fail` produces nothing, so `Add` (which needs it) must never fire.
    let mut b = GraphBuilder::new("blocked");
    let x = b.input("x");
    let f = b.op("Fail", [x]).domain("math").output();
    let y = b.op("Add", [x, f]).domain("math").output();
    b.output(y, "y");
    let mut node = node_with(vec![b.build().unwrap()], &math);
    let exec = node
        .invoke(SiteId::new(0), vec![("x".into(), u64v(1))])
        .unwrap();
    let steps = drive(&mut node, 0);
    assert_eq!(failures(&steps)[0].reason, "math.fail");
    assert_eq!(
        finished(&steps),
        vec![(exec, vec![], vec!["y".to_string()])]
    );
    assert_eq!(math.fired.load(Ordering::SeqCst), 1, "Add must not fire");
    assert_eq!(node.stats().live_executions, 0, "no execution leaks");
}

#[test]
fn a_graph_calls_another_graph_as_a_function() {
    let math = Math::default();
    let mut callee = GraphBuilder::new("double_it");
    let x = callee.input("x");
    let y = callee.op("Double", [x]).domain("math").output();
    callee.output(y, "y");

    let mut caller = GraphBuilder::new("caller");
    let x = caller.input("x");
    let once = caller
        .syscall("Call", [x])
        .attr("graph", "double_it")
        .output();
    let twice = caller
        .syscall("Call", [once])
        .attr("graph", "double_it")
        .output();
    caller.output(twice, "out");

    let mut node = node_with(
        vec![callee.build().unwrap(), caller.build().unwrap()],
        &math,
    );
    let exec = node
        .invoke(SiteId::new(1), vec![("x".into(), u64v(3))])
        .unwrap();
    let steps = drive(&mut node, 0);
    // Only the caller's execution is reported; the callees complete its Call ops.
    assert_eq!(
        finished(&steps),
        vec![(exec, vec![("out".into(), Some(12))], vec![])]
    );
    assert_eq!(node.stats().executions_started, 3);
    assert_eq!(node.stats().live_executions, 0);
}

#[test]
fn bootstrap_graphs_run_before_body_traffic() {
    let math = Math::default();
    let mut boot = GraphBuilder::new("boot");
    let seed = boot.syscall("Constant", []).attr("value", 7).output();
    let parked = boot.op("Later", [seed]).domain("math").output();
    boot.output(parked, "ready");
    let mut body = GraphBuilder::new("body");
    let x = body.input("x");
    let y = body.syscall("PassThrough", [x]).output();
    body.output(y, "y");

    let mut node = Node::builder(PeerId::new(1))
        .component("math", Box::new(math.clone()))
        .bootstrap_graph(boot.build().unwrap())
        .graph(body.build().unwrap())
        .build()
        .unwrap();
    drive(&mut node, 0);
    assert!(!node.is_bootstrapped(), "the bootstrap op is still parked");
    assert!(matches!(
        node.invoke(SiteId::new(1), vec![("x".into(), u64v(1))]),
        Err(InvokeError::Bootstrapping)
    ));

    // Complete the bootstrap op from "another thread" (the handle is Send).
    let handle = math.handles.lock().pop().unwrap();
    handle.complete(&1).unwrap();
    let steps = drive(&mut node, 0);
    assert!(node.is_bootstrapped());
    assert!(steps.iter().any(|s| matches!(
        s,
        Step::ExecFinished {
            origin: ExecOrigin::Bootstrap,
            ..
        }
    )));
    node.invoke(SiteId::new(1), vec![("x".into(), u64v(9))])
        .unwrap();
    assert_eq!(
        finished(&drive(&mut node, 0))[0].1,
        vec![("y".into(), Some(9))]
    );
}

#[test]
fn the_op_budget_bounds_one_poll_and_the_next_poll_resumes() {
    let mut b = GraphBuilder::new("chain");
    let mut v = b.input("x");
    for _ in 0..10 {
        v = b.syscall("PassThrough", [v]).output();
    }
    b.output(v, "y");
    let config = NodeConfig {
        ops_per_poll: 4,
        ..NodeConfig::default()
    };
    let mut node = Node::builder(PeerId::new(1))
        .graph(b.build().unwrap())
        .config(config)
        .build()
        .unwrap();
    node.invoke(SiteId::new(0), vec![("x".into(), u64v(42))])
        .unwrap();
    let first: Vec<Step> = node.poll(0).collect();
    assert!(first
        .iter()
        .any(|s| matches!(s, Step::BudgetExceeded { ready_left: 1 })));
    assert!(finished(&first).is_empty());
    assert_eq!(node.stats().ops_fired, 4);
    let rest = drive(&mut node, 0);
    assert_eq!(finished(&rest)[0].1, vec![("y".into(), Some(42))]);
    assert_eq!(node.stats().ops_fired, 10, "every op fired exactly once");
    assert_eq!(node.stats().budget_exceeded, 2);
}

#[test]
fn syscall_ops_live_in_the_syscall_domain() {
    let mut b = GraphBuilder::new("g");
    let x = b.input("x");
    let y = b.syscall("PassThrough", [x]).output();
    b.output(y, "y");
    assert_eq!(b.build().unwrap().ops[0].domain, SYSCALL_DOMAIN);
}

#[test]
fn per_execution_latches_are_released_when_the_execution_ends() {
    // With room for a single latch, a second execution can only fire its
    // `Any` if the first execution's latch was cleared when it ended.
    let mut b = GraphBuilder::new("any");
    let x = b.input("x");
    let y = b.syscall("Any", [x]).attr("group", "first").output();
    b.output(y, "y");
    let mut config = NodeConfig::default();
    config.framework.latches.max_latches = 1;
    let mut node = Node::builder(PeerId::new(1))
        .graph(b.build().unwrap())
        .config(config)
        .build()
        .unwrap();
    for x in 0..3 {
        node.invoke(SiteId::new(0), vec![("x".into(), u64v(x))])
            .unwrap();
        let steps = drive(&mut node, 0);
        assert!(failures(&steps).is_empty(), "{:?}", failures(&steps));
        assert_eq!(finished(&steps)[0].1, vec![("y".into(), Some(x))]);
    }
}
