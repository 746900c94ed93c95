//! Benchmarks for nodeflow, run side by side with raw baselines.
//!
//! * `benches/engine_poll.rs`: criterion bench of the engine's hot path.
//! * `src/bin/nodeflow-bench.rs`: the load-test CLI (`nodeflow-bench engine
//!   --chain K --seconds S`, `nodeflow-bench idle --nodes N`), which prints
//!   one JSON line per run.
//!
//! This library holds the workloads both share, so the bench and the CLI
//! measure the same thing.

use nodeflow_engine::{
    ExecId, Graph, GraphBuilder, Node, PeerId, SiteId, SlotValue, Step, U64Value,
};

/// A graph of `len` PassThrough ops in a chain, input `x`, output `y`.
pub fn chain_graph(len: usize) -> Graph {
    let mut b = GraphBuilder::new(format!("chain{len}"));
    let mut v = b.input("x");
    for _ in 0..len {
        v = b.syscall("PassThrough", [v]).output();
    }
    b.output(v, "y");
    b.build().expect("a chain is a valid graph")
}

/// A Node with one chain graph of `len` ops at site 0.
pub fn chain_node(len: usize) -> Node {
    Node::builder(PeerId::new(1))
        .graph(chain_graph(len))
        .build()
        .expect("the chain installs")
}

/// Invokes site 0 with `x` and polls until the Node is idle; returns the
/// value of output `y`.
pub fn invoke_to_output(node: &mut Node, x: u64) -> Option<u64> {
    let exec: ExecId = node
        .invoke(SiteId::new(0), vec![("x".into(), Box::new(U64Value(x)))])
        .ok()?;
    let mut out = None;
    loop {
        for step in node.poll(0) {
            if let Step::ExecFinished {
                exec: done,
                outputs,
                ..
            } = step
            {
                if done == exec {
                    out = outputs.first().and_then(|(_, v)| value_u64(v.as_ref()));
                }
            }
        }
        if !node.has_work() {
            return out;
        }
    }
}

fn value_u64(value: &dyn SlotValue) -> Option<u64> {
    value.downcast_ref::<U64Value>().map(|v| v.0)
}
