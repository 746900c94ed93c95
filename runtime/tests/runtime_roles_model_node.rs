//! A model on a Node: the data component feeds `Train` (on the compute pool), `Evaluate` scores it on the digits test split (≥ 95 % after a few epochs of softmax regression), the parameters and optimizer state survive a snapshot, and a model without a backend refuses to install.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use nodeflow::engine::{Graph, InstallError, WaitOutcome};
use nodeflow::{
    digits, ComputePool, CpuBackend, DataComponent, Dataset, GraphBuilder, ModelComponent, Node,
    NodeBuilder, PeerId, Sgd, SiteId, SlotValue, SoftmaxRegression, Step, Tensor,
};

fn graphs() -> Vec<Graph> {
    let mut b = GraphBuilder::new("train");
    let go = b.input("go");
    let [x, y] = b.op("Local", [go]).domain("data").outputs::<2>();
    let [loss, samples] = b
        .op("Train", [x, y])
        .domain("model")
        .attr("epochs", 5)
        .attr("batch", 10)
        .outputs::<2>();
    b.output(loss, "loss");
    b.output(samples, "samples");
    let train = b.build().unwrap();
    let mut b = GraphBuilder::new("evaluate");
    let x = b.input("x");
    let y = b.input("y");
    let [loss, accuracy] = b.op("Evaluate", [x, y]).domain("model").outputs::<2>();
    b.output(loss, "loss");
    b.output(accuracy, "accuracy");
    let evaluate = b.build().unwrap();
    let mut b = GraphBuilder::new("parameters");
    let go = b.input("go");
    let flat = b.op("Parameters", [go]).domain("model").output();
    b.output(flat, "flat");
    vec![train, evaluate, b.build().unwrap()]
}

/// The reference job's train/test split (rows listed in its `job.json`).
fn split() -> (Dataset, Dataset) {
    let job: serde_json::Value =
        serde_json::from_str(include_str!("../data/fedavg_reference.json")).unwrap();
    let rows = |v: &serde_json::Value| -> Vec<usize> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap() as usize)
            .collect()
    };
    let mut all = digits();
    all.scale_features(1.0 / 16.0).unwrap();
    all.train_test_split(&rows(&job["train_rows"]), &rows(&job["test_rows"]))
        .unwrap()
}

fn builder(pool: &ComputePool, train: &Dataset) -> NodeBuilder {
    let model = SoftmaxRegression::new(64, 10, Sgd::new(0.5).unwrap()).unwrap();
    let mut b = Node::builder(PeerId::new(1))
        .component("ai.onnx", Box::new(CpuBackend::new(pool.clone())))
        .component(
            "model",
            Box::new(ModelComponent::new(Box::new(model), Some(pool.clone()))),
        )
        .component(
            "data",
            Box::new(DataComponent::new(nodeflow::engine::sync::Arc::new(train.clone())).unwrap()),
        )
        .registry(nodeflow::tensor_registry());
    for g in graphs() {
        b = b.graph(g);
    }
    b
}

fn call(node: &mut Node, site: u32, inputs: Vec<(&str, Box<dyn SlotValue>)>) -> Vec<Tensor> {
    node.invoke(
        SiteId::new(site),
        inputs.into_iter().map(|(n, v)| (n.to_owned(), v)).collect(),
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        for step in node.poll(0) {
            match step {
                Step::ExecFinished { outputs, .. } => {
                    return outputs
                        .iter()
                        .map(|(_, v)| v.downcast_ref::<Tensor>().unwrap().clone())
                        .collect()
                }
                Step::OpFailed { error, .. } => panic!("{error}"),
                _ => {}
            }
        }
        if !node.has_work() {
            assert_eq!(node.ingress().wait(Some(deadline)), WaitOutcome::Ready);
        }
    }
}

fn go() -> Vec<(&'static str, Box<dyn SlotValue>)> {
    vec![("go", Box::new(Tensor::scalar_i64(0)))]
}

#[test]
fn a_model_trains_on_the_pool_reaches_95_percent_and_survives_a_snapshot() {
    let pool = ComputePool::new(2).unwrap();
    let (train, test) = split();
    let mut node = builder(&pool, &train).build().unwrap();
    let (tx, ty) = test.to_tensors();
    let eval = |node: &mut Node| {
        let out = call(
            node,
            1,
            vec![("x", Box::new(tx.clone())), ("y", Box::new(ty.clone()))],
        );
        (
            out[0].to_f32_vec().unwrap()[0],
            out[1].to_f32_vec().unwrap()[0],
        )
    };
    let (loss0, acc0) = eval(&mut node);
    assert!(
        (loss0 - 10f32.ln()).abs() < 1e-4,
        "a zero model is uniform: {loss0}"
    );
    assert!(acc0 < 0.2);
    let out = call(&mut node, 0, go());
    assert_eq!(out[1].to_i64_vec().unwrap()[0], train.len() as i64);
    let submitted = pool.stats().submitted;
    assert!(submitted >= 1, "training ran on the pool");
    let (loss, accuracy) = eval(&mut node);
    assert!(loss < loss0 / 4.0, "loss fell from {loss0} to {loss}");
    assert!(accuracy >= 0.95, "test accuracy {accuracy}");

    let snapshot = node.snapshot().unwrap();
    let mut restored = builder(&pool, &train).restore(&snapshot).unwrap();
    let original = call(&mut node, 2, go());
    assert_eq!(call(&mut restored, 2, go()), original, "same parameters");
    // Same optimizer state and data cursor: one more identical epoch gives identical parameters.
    call(&mut node, 0, go());
    call(&mut restored, 0, go());
    assert_eq!(call(&mut restored, 2, go()), call(&mut node, 2, go()));
}

#[test]
fn a_model_without_a_backend_refuses_to_install() {
    let model = SoftmaxRegression::new(64, 10, Sgd::new(0.5).unwrap()).unwrap();
    let mut b = GraphBuilder::new("parameters");
    let go = b.input("go");
    let flat = b.op("Parameters", [go]).domain("model").output();
    b.output(flat, "flat");
    let err = Node::builder(PeerId::new(1))
        .component(
            "model",
            Box::new(ModelComponent::new(Box::new(model), None)),
        )
        .graph(b.build().unwrap())
        .build()
        .unwrap_err();
    assert!(
        matches!(&err, nodeflow::BuildError::Install(e) if !matches!(**e, InstallError::UnknownOp { .. })),
        "{err}"
    );
    assert!(err.to_string().contains("ai.onnx"), "{err}");
}
