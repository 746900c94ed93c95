//! Tensor graphs on Nodes: a layer of ONNX ops installs on the CPU backend and runs, large ops on the compute pool and small ones inline, with typed failures from both paths, tensors shared (not copied) between Nodes of one Runtime, and tensor inputs charged to the byte budget.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use nodeflow::engine::{
    AttributeValue, Graph, InstallError, InvokeError, OpError, SiteId, Step, WaitOutcome,
};
use nodeflow::{
    ActorOutput, BackendConfig, ComputePool, CpuBackend, GraphBuilder, Node, NodeConfig, NodeSpec,
    PeerId, Runtime, SlotValue, Tensor,
};

const PATIENCE: Duration = Duration::from_secs(10);

/// `y = (x + b) * s`, then `z = x · w` (a matrix product): two small
/// elementwise ops and one large one.
fn layer() -> Graph {
    let mut b = GraphBuilder::new("layer");
    let x = b.input("x");
    let w = b.input("w");
    let bias = b.input("b");
    let scale = b.input("s");
    let shifted = b.op("Add", [x, bias]).output();
    let y = b.op("Mul", [shifted, scale]).output();
    let z = b.op("MatMul", [y, w]).output();
    b.output(z, "z");
    b.build().unwrap()
}

fn ramp(shape: Vec<usize>, step: f32) -> Tensor {
    let n: usize = shape.iter().product();
    Tensor::from_f32(
        shape,
        (0..n).map(|i| (i % 17) as f32 * step - 1.0).collect(),
    )
    .unwrap()
}

fn inputs(x: &Tensor, w: &Tensor, b: &Tensor, s: &Tensor) -> Vec<(String, Box<dyn SlotValue>)> {
    vec![
        ("x".into(), Box::new(x.clone())),
        ("w".into(), Box::new(w.clone())),
        ("b".into(), Box::new(b.clone())),
        ("s".into(), Box::new(s.clone())),
    ]
}

/// The layer computed with plain loops, in f64.
fn reference(x: &Tensor, w: &Tensor, b: &Tensor, s: &Tensor) -> Vec<f32> {
    let (m, k) = (x.shape()[0], x.shape()[1]);
    let n = w.shape()[1];
    let (x, w) = (x.to_f32_vec().unwrap(), w.to_f32_vec().unwrap());
    let (b, s) = (b.to_f32_vec().unwrap(), s.to_f32_vec().unwrap());
    let mut out = vec![0f32; m * n];
    for i in 0..m {
        for j in 0..n {
            let mut acc = 0f64;
            for p in 0..k {
                let y = (f64::from(x[i * k + p]) + f64::from(b[p])) * f64::from(s[0]);
                acc += y * f64::from(w[p * n + j]);
            }
            out[i * n + j] = acc as f32;
        }
    }
    out
}

fn assert_close(got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len());
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= 1e-3 + 1e-4 * w.abs(),
            "element {i}: {g} vs {w}"
        );
    }
}

/// Polls `node` until `count` executions finished, waiting on its ingress
/// for pool completions; returns every step.
fn drive(node: &mut Node, count: usize) -> Vec<Step> {
    let start = Instant::now();
    let deadline = start + PATIENCE;
    let mut steps = Vec::new();
    let mut finished = 0;
    loop {
        let now_ns = start.elapsed().as_nanos() as u64;
        for step in node.poll(now_ns) {
            finished += usize::from(matches!(step, Step::ExecFinished { .. }));
            steps.push(step);
        }
        if finished >= count {
            return steps;
        }
        if !node.has_work() {
            assert_eq!(node.ingress().wait(Some(deadline)), WaitOutcome::Ready);
        }
        assert!(Instant::now() < deadline, "{finished}/{count} finished");
    }
}

fn failures(steps: &[Step]) -> Vec<OpError> {
    steps
        .iter()
        .filter_map(|s| match s {
            Step::OpFailed { error, .. } => Some(error.clone()),
            _ => None,
        })
        .collect()
}

fn output_z(steps: &[Step]) -> Tensor {
    steps
        .iter()
        .find_map(|s| match s {
            Step::ExecFinished { outputs, .. } => outputs
                .iter()
                .find(|(n, _)| n == "z")
                .map(|(_, v)| v.downcast_ref::<Tensor>().unwrap().clone()),
            _ => None,
        })
        .expect("the execution produced z")
}

fn backend_node(pool: &ComputePool, limit: u64) -> Node {
    let backend = CpuBackend::with_config(
        Some(pool.clone()),
        BackendConfig {
            inline_work_limit: limit,
        },
    );
    Node::builder(PeerId::new(1))
        .component("ai.onnx", Box::new(backend))
        .graph(layer())
        .build()
        .unwrap()
}

#[test]
fn large_ops_run_on_the_pool_and_small_ones_inline() {
    let pool = ComputePool::new(2).unwrap();
    // 64×128 elementwise = 8,192 element ops (inline); 64×128×32 = 262,144
    // multiply-adds (pool).
    let mut node = backend_node(&pool, 100_000);
    let (x, w) = (ramp(vec![64, 128], 0.125), ramp(vec![128, 32], 0.0625));
    let (b, s) = (
        ramp(vec![128], 0.25),
        Tensor::from_f32(vec![1], vec![0.5]).unwrap(),
    );
    node.invoke(SiteId::new(0), inputs(&x, &w, &b, &s)).unwrap();
    let steps = drive(&mut node, 1);
    assert!(failures(&steps).is_empty(), "{:?}", failures(&steps));
    let z = output_z(&steps);
    assert_eq!(z.shape(), &[64, 32]);
    assert_close(&z.to_f32_vec().unwrap(), &reference(&x, &w, &b, &s));
    let stats = pool.stats();
    assert_eq!(
        (stats.submitted, stats.completed),
        (1, 1),
        "only MatMul went to the pool"
    );
    assert_eq!(
        node.budget().in_use(),
        0,
        "every tensor's charge was released"
    );
}

#[test]
fn with_no_pool_everything_runs_inline_with_the_same_result() {
    let mut node = Node::builder(PeerId::new(1))
        .component("ai.onnx", Box::new(CpuBackend::inline()))
        .graph(layer())
        .build()
        .unwrap();
    let (x, w) = (ramp(vec![8, 300], 0.5), ramp(vec![300, 5], 0.25));
    let (b, s) = (ramp(vec![1, 300], 0.1), Tensor::scalar_f32(-2.0));
    node.invoke(SiteId::new(0), inputs(&x, &w, &b, &s)).unwrap();
    // Inline ops finish within the polls that follow the invoke.
    let steps = drive(&mut node, 1);
    assert_close(
        &output_z(&steps).to_f32_vec().unwrap(),
        &reference(&x, &w, &b, &s),
    );
}

#[test]
fn failures_are_typed_inline_and_from_the_pool() {
    let pool = ComputePool::new(1).unwrap();
    let mut node = backend_node(&pool, 50_000);
    let s = Tensor::scalar_f32(1.0);
    // Inline: the bias does not broadcast against a small x.
    let (x, w) = (ramp(vec![4, 6], 1.0), ramp(vec![6, 2], 1.0));
    node.invoke(SiteId::new(0), inputs(&x, &w, &ramp(vec![5], 1.0), &s))
        .unwrap();
    let inline = failures(&drive(&mut node, 1));
    assert_eq!(inline.len(), 1);
    assert_eq!(inline[0].reason, "tensor.shape_mismatch");
    assert!(inline[0].detail.contains("Add") && inline[0].detail.contains("[4, 6]"));
    assert_eq!(pool.stats().submitted, 0);
    // Pool: the same mistake on an x big enough for the Add to be offloaded.
    let (x, w) = (ramp(vec![256, 256], 1.0), ramp(vec![256, 8], 1.0));
    node.invoke(SiteId::new(0), inputs(&x, &w, &ramp(vec![255], 1.0), &s))
        .unwrap();
    let pooled = failures(&drive(&mut node, 1));
    assert_eq!(pool.stats().submitted, 1);
    assert_eq!(pooled.len(), 1, "{pooled:?}");
    assert_eq!(pooled[0].reason, "tensor.shape_mismatch", "{pooled:?}");
    assert!(pooled[0].detail.contains("Add"), "{}", pooled[0].detail);
    assert!(pooled[0].detail.contains("[255]"), "{}", pooled[0].detail);
    // A matrix product whose inner dims differ is refused before it is
    // offloaded: its work is estimated from shapes that do not multiply.
    let (x, w) = (ramp(vec![256, 256], 1.0), ramp(vec![255, 256], 1.0));
    node.invoke(SiteId::new(0), inputs(&x, &w, &ramp(vec![256], 1.0), &s))
        .unwrap();
    let refused = failures(&drive(&mut node, 1));
    assert_eq!(refused[0].reason, "tensor.shape_mismatch");
    assert!(
        refused[0].detail.contains("MatMul"),
        "{}",
        refused[0].detail
    );
    assert_eq!(node.budget().in_use(), 0);
}

#[test]
fn a_non_tensor_input_is_refused_typed() {
    let mut node = Node::builder(PeerId::new(1))
        .component("ai.onnx", Box::new(CpuBackend::inline()))
        .graph(layer())
        .build()
        .unwrap();
    let t = Tensor::scalar_f32(1.0);
    let mut values = inputs(&t, &t, &t, &t);
    values[2].1 = Box::new(nodeflow::U64Value(3));
    node.invoke(SiteId::new(0), values).unwrap();
    let errors = failures(&drive(&mut node, 1));
    assert_eq!(errors[0].reason, "tensor.not_a_tensor");
}

#[test]
fn a_bad_attribute_refuses_the_install() {
    let mut b = GraphBuilder::new("clip");
    let x = b.input("x");
    let y = b
        .op("Clip", [x])
        .attr("min", AttributeValue::String("low".into()))
        .output();
    b.output(y, "y");
    let err = Node::builder(PeerId::new(1))
        .component("ai.onnx", Box::new(CpuBackend::inline()))
        .graph(b.build().unwrap())
        .build()
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("tensor.bad_attribute") && text.contains("min"),
        "{text}"
    );
    assert!(
        matches!(&err, nodeflow::BuildError::Install(e) if matches!(**e, InstallError::OpRefused { .. }))
    );
}

#[test]
fn an_unknown_op_type_is_an_install_error() {
    let mut b = GraphBuilder::new("g");
    let x = b.input("x");
    let y = b.op("Convolve", [x]).output();
    b.output(y, "y");
    let err = Node::builder(PeerId::new(1))
        .component("ai.onnx", Box::new(CpuBackend::inline()))
        .graph(b.build().unwrap())
        .build()
        .unwrap_err();
    assert!(
        matches!(&err, nodeflow::BuildError::Install(e) if matches!(**e, InstallError::UnknownOp { .. }))
    );
}

#[test]
fn tensor_inputs_are_charged_to_the_byte_budget() {
    let config = NodeConfig {
        byte_budget: 4096,
        ..NodeConfig::default()
    };
    let mut node = Node::builder(PeerId::new(1))
        .component("ai.onnx", Box::new(CpuBackend::inline()))
        .graph(layer())
        .config(config)
        .build()
        .unwrap();
    let big = ramp(vec![32, 32], 1.0); // 4 KiB of f32, plus the other inputs
    let small = Tensor::scalar_f32(1.0);
    let err = node
        .invoke(SiteId::new(0), inputs(&big, &small, &small, &small))
        .unwrap_err();
    assert!(
        matches!(err, InvokeError::Budget { limit: 4096, .. }),
        "{err:?}"
    );
    assert_eq!(node.budget().in_use(), 0);
}

#[test]
fn tensors_pass_between_nodes_without_a_copy() {
    let runtime = Runtime::builder().compute_threads(1).build().unwrap();
    let sender = NodeSpec::new(|| {
        let mut b = GraphBuilder::new("send");
        let x = b.input("x");
        b.syscall("Send", [x])
            .attr("peer", 2)
            .attr("site", 0)
            .attr("input", "x")
            .finish();
        Node::builder(PeerId::new(1)).graph(b.build().unwrap())
    });
    let receiver = NodeSpec::new(|| {
        let mut b = GraphBuilder::new("keep");
        let x = b.input("x");
        let y = b.op("Relu", [x]).output();
        let [kept] = [b.syscall("PassThrough", [x]).output()];
        b.output(kept, "kept");
        b.output(y, "relu");
        Node::builder(PeerId::new(2))
            .component("ai.onnx", Box::new(CpuBackend::inline()))
            .graph(b.build().unwrap())
    });
    let a = runtime.spawn_node(sender).unwrap();
    let b = runtime.spawn_node(receiver).unwrap();
    let rx = b.subscribe().unwrap();
    let t = ramp(vec![100, 100], 0.01);
    a.invoke(SiteId::new(0), vec![("x".into(), Box::new(t.clone()))], 1)
        .unwrap();
    let ActorOutput::ExecFinished { outputs, .. } = rx.recv_timeout(PATIENCE).unwrap() else {
        panic!("expected an execution");
    };
    let got = |name: &str| {
        outputs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.downcast_ref::<Tensor>().unwrap().clone())
            .unwrap()
    };
    assert!(
        got("kept").shares_buffer_with(&t),
        "the receiver holds the sender's buffer"
    );
    let relu = got("relu").to_f32_vec().unwrap();
    let want: Vec<f32> = t.to_f32_vec().unwrap().iter().map(|v| v.max(0.0)).collect();
    assert_eq!(relu, want);
    let report = runtime.shutdown(PATIENCE);
    assert_eq!(report.totals.nodes_failed, 0);
}

#[test]
fn queued_tensors_survive_a_snapshot_and_restore() {
    let build = |registry: bool| {
        let builder = Node::builder(PeerId::new(1))
            .component("ai.onnx", Box::new(CpuBackend::inline()))
            .graph(layer());
        if registry {
            builder.registry(nodeflow::tensor_registry())
        } else {
            builder
        }
    };
    let mut node = build(true).build().unwrap();
    let (x, w) = (ramp(vec![3, 4], 0.5), ramp(vec![4, 2], 0.25));
    let (b, s) = (ramp(vec![4], 0.1), Tensor::scalar_f32(3.0));
    node.invoke(SiteId::new(0), inputs(&x, &w, &b, &s)).unwrap();
    let snapshot = node.snapshot().unwrap();
    // Without the tensor decoder the queued tensors cannot come back.
    assert!(build(false).restore(&snapshot).is_err());
    let mut restored = build(true).restore(&snapshot).unwrap();
    let z = output_z(&drive(&mut restored, 1));
    assert_close(&z.to_f32_vec().unwrap(), &reference(&x, &w, &b, &s));
    assert_eq!(restored.budget().in_use(), 0);
}
