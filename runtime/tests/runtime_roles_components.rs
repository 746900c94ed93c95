//! Role components on Nodes: an aggregation round fed through `Contribute` and combined by `Aggregate`, a data source served by `NextBatch` in the seeded order, refusals typed and counted, and both states carried across a snapshot.
#![allow(clippy::unwrap_used)]

use nodeflow::engine::sync::Arc;
use std::time::{Duration, Instant};

use nodeflow::engine::{Graph, InstallError, OpError, WaitOutcome};
use nodeflow::{
    shuffle_order, AggregatorComponent, AggregatorError, Contribution, DataComponent, Dataset,
    GraphBuilder, Node, PeerId, SiteId, SlotValue, Step, Tensor,
};

/// A plain unweighted mean, enough to watch the component work.
#[derive(Debug)]
struct Mean;

impl nodeflow::Aggregator for Mean {
    fn kind(&self) -> &'static str {
        "mean"
    }

    fn combine(&self, contributions: &[Contribution]) -> Result<Tensor, AggregatorError> {
        let n = contributions[0].update.len();
        let mut sum = vec![0f32; n];
        for c in contributions {
            for (s, v) in sum.iter_mut().zip(c.update.to_f32_vec().unwrap()) {
                *s += v;
            }
        }
        let k = contributions.len() as f32;
        Ok(Tensor::from_f32(vec![n], sum.into_iter().map(|s| s / k).collect()).unwrap())
    }
}

fn drive(node: &mut Node) -> Vec<Step> {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut steps = Vec::new();
    loop {
        steps.extend(node.poll(0));
        if !node.has_work() {
            if node.stats().parked == 0 {
                return steps;
            }
            assert_eq!(node.ingress().wait(Some(deadline)), WaitOutcome::Ready);
        }
    }
}

fn outputs(steps: &[Step]) -> Vec<Vec<(String, Box<dyn SlotValue>)>> {
    steps
        .iter()
        .filter_map(|s| match s {
            Step::ExecFinished { outputs, .. } => Some(
                outputs
                    .iter()
                    .map(|(n, v)| (n.clone(), v.clone_value()))
                    .collect(),
            ),
            _ => None,
        })
        .collect()
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

fn tensor(v: &dyn SlotValue) -> Tensor {
    v.downcast_ref::<Tensor>().unwrap().clone()
}

/// `contribute(update, weight, peer)` and `aggregate(go)` on slot `agg`.
fn aggregation_graphs() -> (Graph, Graph) {
    let mut b = GraphBuilder::new("contribute");
    let u = b.input("update");
    let w = b.input("weight");
    let p = b.input("peer");
    let pending = b.op("Contribute", [u, w, p]).domain("agg").output();
    b.output(pending, "pending");
    let contribute = b.build().unwrap();
    let mut b = GraphBuilder::new("aggregate");
    let go = b.input("go");
    let [combined, count] = b.op("Aggregate", [go]).domain("agg").outputs::<2>();
    b.output(combined, "combined");
    b.output(count, "count");
    (contribute, b.build().unwrap())
}

fn aggregator_node(pool: Option<nodeflow::ComputePool>) -> Node {
    let (contribute, aggregate) = aggregation_graphs();
    Node::builder(PeerId::new(1))
        .component(
            "agg",
            Box::new(AggregatorComponent::new(Box::new(Mean), pool)),
        )
        .graph(contribute)
        .graph(aggregate)
        .build()
        .unwrap()
}

fn contribute(node: &mut Node, update: &[f32], weight: f32, peer: i64) {
    let u = Tensor::from_f32(vec![update.len()], update.to_vec()).unwrap();
    node.invoke(
        SiteId::new(0),
        vec![
            ("update".into(), Box::new(u)),
            ("weight".into(), Box::new(Tensor::scalar_f32(weight))),
            ("peer".into(), Box::new(Tensor::scalar_i64(peer))),
        ],
    )
    .unwrap();
}

fn aggregate(node: &mut Node) -> (Vec<f32>, i64) {
    node.invoke(
        SiteId::new(1),
        vec![("go".into(), Box::new(Tensor::scalar_i64(0)))],
    )
    .unwrap();
    let steps = drive(node);
    assert!(failures(&steps).is_empty(), "{:?}", failures(&steps));
    let out = outputs(&steps).pop().unwrap();
    (
        tensor(out[0].1.as_ref()).to_f32_vec().unwrap(),
        tensor(out[1].1.as_ref()).to_i64_vec().unwrap()[0],
    )
}

#[test]
fn contributions_are_combined_and_refusals_typed_and_counted() {
    for pool in [None, Some(nodeflow::ComputePool::new(1).unwrap())] {
        let mut node = aggregator_node(pool);
        contribute(&mut node, &[1.0, 2.0], 1.0, 7);
        contribute(&mut node, &[9.0, 9.0], 1.0, 8);
        contribute(&mut node, &[3.0, 4.0], 1.0, 8); // replaces peer 8's first
        contribute(&mut node, &[f32::NAN, 0.0], 1.0, 9);
        contribute(&mut node, &[1.0, 2.0, 3.0], 1.0, 10);
        contribute(&mut node, &[1.0, 2.0], -1.0, 11);
        let steps = drive(&mut node);
        let reasons: Vec<_> = failures(&steps)
            .iter()
            .map(|e| e.reason.to_string())
            .collect();
        assert_eq!(
            reasons,
            [
                "aggregator.not_finite",
                "aggregator.shape",
                "aggregator.weight"
            ]
        );
        let (combined, count) = aggregate(&mut node);
        assert_eq!((combined, count), (vec![2.0, 3.0], 2));
        // A new round starts empty: aggregating nothing is refused.
        node.invoke(
            SiteId::new(1),
            vec![("go".into(), Box::new(Tensor::scalar_i64(0)))],
        )
        .unwrap();
        let steps = drive(&mut node);
        assert_eq!(failures(&steps)[0].reason, "aggregator.too_few");
    }
}

#[test]
fn pending_contributions_survive_a_snapshot() {
    let mut node = aggregator_node(None);
    contribute(&mut node, &[1.0, 1.0], 1.0, 3);
    contribute(&mut node, &[3.0, 5.0], 2.0, 4);
    drive(&mut node);
    let snapshot = node.snapshot().unwrap();
    let (contribute_graph, aggregate_graph) = aggregation_graphs();
    let mut restored = Node::builder(PeerId::new(1))
        .component(
            "agg",
            Box::new(AggregatorComponent::new(Box::new(Mean), None)),
        )
        .graph(contribute_graph)
        .graph(aggregate_graph)
        .registry(nodeflow::tensor_registry())
        .restore(&snapshot)
        .unwrap();
    assert_eq!(aggregate(&mut restored), (vec![2.0, 3.0], 2));
}

fn small_dataset(rows: usize) -> Dataset {
    let features: Vec<f32> = (0..rows * 2).map(|i| i as f32).collect();
    let labels: Vec<i64> = (0..rows as i64).map(|i| i % 3).collect();
    Dataset::new(features, labels, 2, 3).unwrap()
}

fn data_node(rows: usize) -> Node {
    let mut b = GraphBuilder::new("next");
    let go = b.input("go");
    let [x, y, epoch] = b
        .op("NextBatch", [go])
        .domain("data")
        .attr("batch", 4)
        .attr("seed", 11)
        .outputs::<3>();
    b.output(x, "x");
    b.output(y, "y");
    b.output(epoch, "epoch");
    let component = DataComponent::new(Arc::new(small_dataset(rows))).unwrap();
    Node::builder(PeerId::new(1))
        .component("data", Box::new(component))
        .graph(b.build().unwrap())
        .build()
        .unwrap()
}

fn next(node: &mut Node) -> (Vec<f32>, Vec<i64>, i64) {
    node.invoke(
        SiteId::new(0),
        vec![("go".into(), Box::new(Tensor::scalar_i64(0)))],
    )
    .unwrap();
    let out = outputs(&drive(node)).pop().unwrap();
    (
        tensor(out[0].1.as_ref()).to_f32_vec().unwrap(),
        tensor(out[1].1.as_ref()).to_i64_vec().unwrap(),
        tensor(out[2].1.as_ref()).to_i64_vec().unwrap()[0],
    )
}

#[test]
fn next_batch_walks_the_seeded_order_epoch_by_epoch() {
    let mut node = data_node(10);
    let mut served = Vec::new();
    for _ in 0..3 {
        let (_, y, epoch) = next(&mut node);
        assert_eq!(epoch, 0);
        served.extend(y);
    }
    let expected: Vec<i64> = shuffle_order(10, 11)
        .iter()
        .map(|&p| p as i64 % 3)
        .collect();
    assert_eq!(
        served, expected,
        "epoch 0 in shuffle_order(10, 11), batches of 4, 4, 2"
    );
    let (x, _, epoch) = next(&mut node);
    assert_eq!(epoch, 1);
    let first = shuffle_order(10, 12)[0];
    assert_eq!(x[..2], [2.0 * first as f32, 2.0 * first as f32 + 1.0]);
}

#[test]
fn a_restored_node_serves_the_batch_it_would_have_served_next() {
    let mut node = data_node(10);
    next(&mut node);
    let snapshot = node.snapshot().unwrap();
    let want = next(&mut node);
    let mut b = GraphBuilder::new("next");
    let go = b.input("go");
    let [x, y, epoch] = b
        .op("NextBatch", [go])
        .domain("data")
        .attr("batch", 4)
        .attr("seed", 11)
        .outputs::<3>();
    b.output(x, "x");
    b.output(y, "y");
    b.output(epoch, "epoch");
    let mut restored = Node::builder(PeerId::new(1))
        .component(
            "data",
            Box::new(DataComponent::new(Arc::new(small_dataset(10))).unwrap()),
        )
        .graph(b.build().unwrap())
        .restore(&snapshot)
        .unwrap();
    assert_eq!(next(&mut restored), want);
}

#[test]
fn a_bad_attribute_refuses_the_install() {
    let mut b = GraphBuilder::new("next");
    let go = b.input("go");
    let x = b
        .op("NextBatch", [go])
        .domain("data")
        .attr("batch", 0)
        .output();
    b.output(x, "x");
    let err = Node::builder(PeerId::new(1))
        .component(
            "data",
            Box::new(DataComponent::new(Arc::new(small_dataset(3))).unwrap()),
        )
        .graph(b.build().unwrap())
        .build()
        .unwrap_err();
    assert!(
        matches!(&err, nodeflow::BuildError::Install(e) if matches!(**e, InstallError::OpRefused { .. })),
        "{err}"
    );
}

/// A one-op graph on slot `slot` with `inputs` named in order and `outputs` outputs.
fn one_op(slot: &str, op: &str, inputs: &[&str], outputs: usize, k: Option<i64>) -> Graph {
    let mut b = GraphBuilder::new(op);
    let handles: Vec<_> = inputs.iter().map(|n| b.input(*n)).collect();
    let mut node = b.op(op, handles).domain(slot);
    if let Some(k) = k {
        node = node.attr("k", k);
    }
    let names: Vec<String> = (0..outputs).map(|i| format!("out{i}")).collect();
    let handles = match outputs {
        1 => vec![node.output()],
        2 => node.outputs::<2>().to_vec(),
        _ => node.outputs::<3>().to_vec(),
    };
    for (h, n) in handles.into_iter().zip(&names) {
        b.output(h, n.as_str());
    }
    b.build().unwrap()
}

fn call(
    node: &mut Node,
    site: u32,
    inputs: Vec<(&str, Box<dyn SlotValue>)>,
) -> Vec<Box<dyn SlotValue>> {
    node.invoke(
        SiteId::new(site),
        inputs.into_iter().map(|(n, v)| (n.to_owned(), v)).collect(),
    )
    .unwrap();
    let steps = drive(node);
    assert!(failures(&steps).is_empty(), "{:?}", failures(&steps));
    let mut out = outputs(&steps).pop().unwrap();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out.into_iter().map(|(_, v)| v).collect()
}

#[test]
fn codec_ops_encode_decode_and_keep_their_residual_across_a_snapshot() {
    let build = || {
        Node::builder(PeerId::new(1))
            .component(
                "codec",
                Box::new(nodeflow::CodecComponent::new(Box::new(
                    nodeflow::TopK::new(1).unwrap(),
                ))),
            )
            .graph(one_op("codec", "Encode", &["x"], 3, None))
            .graph(one_op("codec", "Decode", &["e"], 1, None))
            .registry(nodeflow::tensor_registry())
    };
    let mut node = build().build().unwrap();
    let x = Tensor::from_f32(vec![4], vec![0.5, -3.0, 1.0, 0.25]).unwrap();
    let out = call(&mut node, 0, vec![("x", Box::new(x.clone()))]);
    let (wire, raw) = (
        tensor(out[1].as_ref()).to_i64_vec().unwrap()[0],
        tensor(out[2].as_ref()).to_i64_vec().unwrap()[0],
    );
    assert_eq!(raw, 16);
    assert!(wire < raw + 12 + 4, "one pair plus the header: {wire}");
    let decoded = call(&mut node, 1, vec![("e", out[0].clone_value())]);
    assert_eq!(
        tensor(decoded[0].as_ref()).to_f32_vec().unwrap(),
        [0.0, -3.0, 0.0, 0.0]
    );
    // The residual (what was not sent) is state: a restored Node sends it next.
    let snapshot = node.snapshot().unwrap();
    let mut restored = build().restore(&snapshot).unwrap();
    let zero = Tensor::from_f32(vec![4], vec![0.0; 4]).unwrap();
    let a = call(&mut node, 0, vec![("x", Box::new(zero.clone()))]);
    let b = call(&mut restored, 0, vec![("x", Box::new(zero))]);
    assert!(a[0].eq_value(b[0].as_ref()));
    let sent = call(&mut node, 1, vec![("e", a[0].clone_value())]);
    assert_eq!(
        tensor(sent[0].as_ref()).to_f32_vec().unwrap(),
        [0.0, 0.0, 1.0, 0.0],
        "the largest residual entry goes next"
    );
    // Decoding something that is not an Encoded is refused typed.
    node.invoke(
        SiteId::new(1),
        vec![("e".into(), Box::new(Tensor::scalar_f32(1.0)))],
    )
    .unwrap();
    assert_eq!(failures(&drive(&mut node))[0].reason, "codec.not_encoded");
}

#[test]
fn index_ops_find_neighbours_and_survive_a_snapshot() {
    let build = || {
        Node::builder(PeerId::new(1))
            .component(
                "index",
                Box::new(nodeflow::IndexComponent::new(Box::new(
                    nodeflow::ExactKnn::new(2, nodeflow::Metric::L2, 16),
                ))),
            )
            .graph(one_op("index", "Add", &["id", "v"], 1, None))
            .graph(one_op("index", "Search", &["q"], 2, Some(2)))
            .registry(nodeflow::tensor_registry())
    };
    let mut node = build().build().unwrap();
    for (id, v) in [(1, [0.0, 0.0]), (2, [3.0, 4.0]), (3, [1.0, 0.0])] {
        let v = Tensor::from_f32(vec![2], v.to_vec()).unwrap();
        call(
            &mut node,
            0,
            vec![("id", Box::new(Tensor::scalar_i64(id))), ("v", Box::new(v))],
        );
    }
    let q = || Box::new(Tensor::from_f32(vec![2], vec![0.9, 0.1]).unwrap()) as Box<dyn SlotValue>;
    let found = call(&mut node, 1, vec![("q", q())]);
    assert_eq!(tensor(found[0].as_ref()).to_i64_vec().unwrap(), [3, 1]);
    let restored_found = {
        let mut restored = build().restore(&node.snapshot().unwrap()).unwrap();
        call(&mut restored, 1, vec![("q", q())])
    };
    assert!(found[0].eq_value(restored_found[0].as_ref()));
    assert!(found[1].eq_value(restored_found[1].as_ref()));
}

#[test]
fn sampling_skips_blocked_peers_and_continues_identically_after_a_restore() {
    let build = || {
        let view = (2..=9).map(PeerId::new);
        Node::builder(PeerId::new(1))
            .component(
                "peers",
                Box::new(nodeflow::PeersComponent::new(Box::new(
                    nodeflow::StaticView::new(view, 5),
                ))),
            )
            .graph(one_op("peers", "Sample", &["go"], 1, Some(3)))
            .registry(nodeflow::tensor_registry())
    };
    let mut node = build().build().unwrap();
    node.block_peer(PeerId::new(4)).unwrap();
    let go = || vec![("go", Box::new(Tensor::scalar_i64(0)) as Box<dyn SlotValue>)];
    for _ in 0..50 {
        let ids = tensor(call(&mut node, 0, go())[0].as_ref())
            .to_i64_vec()
            .unwrap();
        assert_eq!(ids.len(), 3);
        assert!(
            !ids.contains(&4),
            "a blocked peer is never sampled: {ids:?}"
        );
        assert!(!ids.contains(&1), "never itself");
    }
    let mut restored = build().restore(&node.snapshot().unwrap()).unwrap();
    restored.block_peer(PeerId::new(4)).unwrap();
    for _ in 0..5 {
        let a = call(&mut node, 0, go());
        let b = call(&mut restored, 0, go());
        assert!(a[0].eq_value(b[0].as_ref()), "same generator, same draws");
    }
}
