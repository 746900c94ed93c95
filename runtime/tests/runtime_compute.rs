//! Compute ops on the pool, end to end: a Node with a [`ComputeComponent`]
//! parks each op, a pool thread runs it and posts typed values through the
//! completion sink, and the Node (driven on the test thread) finishes the
//! execution; errors and panics fail only their op, and the pool survives.
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::time::{Duration, Instant};

use nodeflow::engine::{
    BytesValue, ExecId, F64Value, GraphBuilder, Node, OpError, OpErrorKind, PeerId, SiteId,
    SlotValue, Step, U64Value, WaitOutcome,
};
use nodeflow::{ComputeComponent, ComputePool, ComputePoolStats};

/// The op types: `Square` (u64 or f64), `Slow` (sum of a byte buffer, after
/// a pause), `Boom` (panics), `Err` (returns an error), `Two` (returns two
/// values for an op that declares one).
fn compute(pool: &ComputePool) -> ComputeComponent {
    ComputeComponent::new("compute", pool.clone())
        .op("Square", |inputs| {
            let x = inputs[0];
            if let Some(v) = x.downcast_ref::<U64Value>() {
                return Ok(vec![Box::new(U64Value(v.0 * v.0)) as Box<dyn SlotValue>]);
            }
            if let Some(v) = x.downcast_ref::<F64Value>() {
                return Ok(vec![Box::new(F64Value(v.0 * v.0)) as Box<dyn SlotValue>]);
            }
            Err(format!(
                "Square takes a u64 or an f64, got tag {}",
                x.type_tag()
            ))
        })
        .op("Slow", |inputs| {
            let bytes = inputs[0]
                .downcast_ref::<BytesValue>()
                .ok_or("Slow takes bytes")?;
            std::thread::sleep(Duration::from_millis(2));
            let sum = bytes.as_bytes().iter().map(|&b| u64::from(b)).sum();
            Ok(vec![Box::new(U64Value(sum)) as Box<dyn SlotValue>])
        })
        .op("Boom", |_| panic!("kaboom in the pool"))
        .op("Err", |_| Err("negative input".to_string()))
        .op("Two", |_| {
            Ok(vec![
                Box::new(U64Value(1)) as Box<dyn SlotValue>,
                Box::new(U64Value(2)),
            ])
        })
}

/// A Node whose only graph runs each of `ops` on input `x`, publishing op
/// `t`'s output as graph output `t`.
fn node(pool: &ComputePool, ops: &[&str]) -> Node {
    let mut b = GraphBuilder::new("g");
    let x = b.input("x");
    for op_type in ops {
        let y = b.op(*op_type, [x]).domain("compute").output();
        b.output(y, *op_type);
    }
    Node::builder(PeerId::new(1))
        .component("compute", Box::new(compute(pool)))
        .graph(b.build().unwrap())
        .build()
        .unwrap()
}

/// Drives `node` on this thread until `count` executions have finished:
/// poll until idle, then block on the ingress (bounded) for the pool's
/// completions. Returns every step.
fn run_until_finished(node: &mut Node, count: usize) -> Vec<Step> {
    let start = Instant::now();
    let deadline = start + Duration::from_secs(5);
    let mut steps = Vec::new();
    let mut finished = 0;
    loop {
        let now_ns = u64::try_from(start.elapsed().as_nanos()).unwrap();
        for step in node.poll(now_ns) {
            finished += usize::from(matches!(step, Step::ExecFinished { .. }));
            steps.push(step);
        }
        if finished >= count {
            return steps;
        }
        if !node.has_work() {
            let outcome = node.ingress().wait(Some(deadline));
            assert_eq!(
                outcome,
                WaitOutcome::Ready,
                "{finished}/{count} executions finished before the wait ended"
            );
        }
        assert!(Instant::now() < deadline, "{finished}/{count} finished");
    }
}

/// One finished execution: its outputs by name, and the names it never produced.
type Finished = (nodeflow::JobOutputs, Vec<String>);

/// Each finished execution's outputs, by execution.
fn outputs(steps: &[Step]) -> HashMap<ExecId, Finished> {
    steps
        .iter()
        .filter_map(|step| match step {
            Step::ExecFinished {
                exec,
                outputs,
                missing,
                ..
            } => Some((
                *exec,
                (
                    outputs
                        .iter()
                        .map(|(n, v)| (n.clone(), v.clone_value()))
                        .collect(),
                    missing.clone(),
                ),
            )),
            _ => None,
        })
        .collect()
}

/// The error of every `OpFailed` step.
fn failures(steps: &[Step]) -> Vec<OpError> {
    steps
        .iter()
        .filter_map(|step| match step {
            Step::OpFailed { error, .. } => Some(error.clone()),
            _ => None,
        })
        .collect()
}

fn u64_of(value: &dyn SlotValue) -> u64 {
    value.downcast_ref::<U64Value>().unwrap().0
}

fn invoke(node: &mut Node, x: Box<dyn SlotValue>) -> ExecId {
    node.invoke(SiteId::new(0), vec![("x".into(), x)]).unwrap()
}

#[test]
fn many_concurrent_executions_each_get_their_own_result() {
    let pool = ComputePool::new(2).unwrap();
    let mut node = node(&pool, &["Square"]);
    let execs: Vec<(ExecId, u64)> = (0..200u64)
        .map(|x| (invoke(&mut node, Box::new(U64Value(x))), x))
        .collect();
    let done = outputs(&run_until_finished(&mut node, 200));
    assert_eq!(done.len(), 200);
    for (exec, x) in execs {
        let (values, missing) = &done[&exec];
        assert!(missing.is_empty());
        assert_eq!(values[0].0, "Square");
        assert_eq!(u64_of(values[0].1.as_ref()), x * x, "execution of {x}");
    }
    assert_eq!(node.stats().parked, 0);
    assert_eq!(node.budget().in_use(), 0);
    let stats = pool.stats();
    assert_eq!((stats.submitted, stats.completed), (200, 200));
    assert_eq!(stats.in_flight(), 0);
}

#[test]
fn values_of_other_types_travel_unserialized() {
    let pool = ComputePool::new(1).unwrap();
    let mut node = node(&pool, &["Square"]);
    let exec = invoke(&mut node, Box::new(F64Value(1.5)));
    let done = outputs(&run_until_finished(&mut node, 1));
    let value = done[&exec].0[0].1.downcast_ref::<F64Value>().unwrap().0;
    assert!((value - 2.25).abs() < f64::EPSILON);
}

#[test]
fn slow_jobs_over_shared_bytes_finish_and_release_the_budget() {
    let pool = ComputePool::new(2).unwrap();
    let mut node = node(&pool, &["Slow"]);
    let buffer: Vec<u8> = (0..64 * 1024).map(|i| (i % 251) as u8).collect();
    let expected: u64 = buffer.iter().map(|&b| u64::from(b)).sum();
    let bytes = BytesValue::new(buffer);
    let execs: Vec<ExecId> = (0..20)
        .map(|_| invoke(&mut node, Box::new(bytes.clone())))
        .collect();
    let done = outputs(&run_until_finished(&mut node, 20));
    for exec in execs {
        assert_eq!(u64_of(done[&exec].0[0].1.as_ref()), expected);
    }
    assert_eq!(node.budget().in_use(), 0);
    assert_eq!(pool.stats().completed, 20);
}

#[test]
fn a_panicking_job_fails_only_its_op_and_the_pool_keeps_working() {
    let pool = ComputePool::new(2).unwrap();
    let mut node = node(&pool, &["Boom", "Square"]);
    let exec = invoke(&mut node, Box::new(U64Value(3)));
    let steps = run_until_finished(&mut node, 1);
    let errors = failures(&steps);
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].kind, OpErrorKind::Failed);
    assert!(
        errors[0].detail.contains("kaboom in the pool"),
        "{}",
        errors[0].detail
    );
    // The sibling op on the same input still produced its output.
    let (values, missing) = &outputs(&steps)[&exec];
    assert_eq!(missing, &vec!["Boom".to_string()]);
    assert_eq!(values[0].0, "Square");
    assert_eq!(u64_of(values[0].1.as_ref()), 9);

    // Later jobs on the same pool and Node still succeed.
    let later: Vec<ExecId> = (0..10u64)
        .map(|x| invoke(&mut node, Box::new(U64Value(x))))
        .collect();
    let steps = run_until_finished(&mut node, 10);
    assert_eq!(failures(&steps).len(), 10, "each Boom fails on its own");
    let done = outputs(&steps);
    for (x, exec) in later.into_iter().enumerate() {
        let x = x as u64;
        assert_eq!(u64_of(done[&exec].0[0].1.as_ref()), x * x);
    }
    assert_eq!(
        pool.stats(),
        ComputePoolStats {
            submitted: 22,
            completed: 11,
            panicked: 11,
            ..ComputePoolStats::default()
        }
    );
    assert_eq!(node.budget().in_use(), 0);
}

#[test]
fn an_error_from_the_function_is_a_typed_failure_with_its_text() {
    let pool = ComputePool::new(1).unwrap();
    let mut node = node(&pool, &["Err"]);
    let exec = invoke(&mut node, Box::new(U64Value(1)));
    let steps = run_until_finished(&mut node, 1);
    let errors = failures(&steps);
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].kind, OpErrorKind::Failed);
    assert_eq!(errors[0].detail, "negative input");
    assert_eq!(outputs(&steps)[&exec].1, vec!["Err".to_string()]);
    let stats = pool.stats();
    assert_eq!((stats.submitted, stats.failed, stats.completed), (1, 1, 0));
}

#[test]
fn a_wrong_input_type_and_too_many_outputs_fail_the_op() {
    let pool = ComputePool::new(1).unwrap();
    let mut node = node(&pool, &["Square", "Two"]);
    invoke(&mut node, Box::new(BytesValue::new(vec![1])));
    let mut details: Vec<String> = failures(&run_until_finished(&mut node, 1))
        .into_iter()
        .map(|e| e.detail)
        .collect();
    details.sort();
    assert_eq!(details.len(), 2);
    assert!(details[0].starts_with("Square takes a u64 or an f64"));
    assert_eq!(
        details[1],
        "compute op `Two` returned 2 outputs but declares 1"
    );
    assert_eq!(pool.stats().failed, 2);
}

#[test]
fn one_pool_serves_several_nodes() {
    let pool = ComputePool::new(2).unwrap();
    let mut nodes: Vec<Node> = (0..4).map(|_| node(&pool, &["Square"])).collect();
    for (i, node) in nodes.iter_mut().enumerate() {
        for x in 0..25u64 {
            invoke(node, Box::new(U64Value(x + i as u64)));
        }
    }
    for node in &mut nodes {
        assert_eq!(outputs(&run_until_finished(node, 25)).len(), 25);
        assert_eq!(node.budget().in_use(), 0);
    }
    assert_eq!(pool.stats().completed, 100);
}
