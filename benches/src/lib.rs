//! Benchmarks for nodeflow, run side by side with raw baselines and peer actor frameworks: this library holds the workloads the benches and the CLI share, so both measure the same thing.
//!
//! * `benches/engine_poll.rs`, `benches/runtime_compute.rs`,
//!   `benches/actors_pingpong.rs`, `benches/actors_ring.rs`,
//!   `benches/actors_tell.rs`: criterion benches, each with its raw
//!   baseline (and, for the actor benches, the peers) in the same group.
//! * `src/bin/nodeflow-bench.rs`: the load-test CLI (`engine`, `idle`,
//!   `pingpong`, `ring`, `tell`, `fanout`, `compute`, `spawn`, `learn`),
//!   one JSON line per run, nodeflow, raw and peers measured in the same
//!   run.
//!
//! Workloads: the engine chain below ([`chain_graph`], [`chain_node`],
//! [`invoke_to_output`], [`tiny_node`]); token rings on actors and raw
//! threads ([`nodeflow_ring`], [`raw_ring`], and [`parking_ring`] for
//! reference; a ping-pong is a ring of 2 with
//! one token); a one-way stream ([`nodeflow_tell`], [`raw_tell`]);
//! one-to-many delivery ([`nodeflow_fanout`], [`raw_fanout`]);
//! compute round trips ([`nodeflow_compute`], [`raw_compute`],
//! [`relay_compute`]); FedAvg through Nodes against the plain loop, and a
//! federation of many Nodes ([`learn`]). The same ping-pong, ring and stream on actix,
//! kameo and ractor are in [`peers`] ([`Peer`] names them).
//!
//! Invariant: every workload verifies what it delivered (values, counts,
//! the actors' own books) and returns [`BenchError::Verification`] rather
//! than a number when something is wrong, so a broken runtime cannot
//! report a fast result. Every thread, actor and runtime a workload starts
//! is stopped and joined before it returns.

mod compute;
mod fanout;
pub mod learn;
pub mod peers;
mod ring;
mod tell;
mod tensor;

use std::time::Duration;

pub use compute::{nodeflow_compute, raw_compute, relay_compute, square_node, ComputeRun};
pub use fanout::{
    fan_graph, nodeflow_fanout, raw_fanout, sink_graph, FanoutRun, SeqCheck, SinkComponent,
    FANOUT_BATCH, SINK_SLOT,
};
pub use peers::{Peer, PingPongRun};
pub use ring::{
    hop_graph, nodeflow_ring, parking_ring, raw_ring, ring_peer, token, untoken, HopComponent,
    RingRun, Stop, TokenCheck, HOP_SLOT,
};
pub use tell::{
    count_graph, nodeflow_tell, raw_tell, tell_graph, CountComponent, InOrder, TellRun, COUNT_SLOT,
    HOST_BACKOFF,
};
pub use tensor::{
    node_call, offload_crossover, op_graph, ramp, raw_add, raw_gemm, raw_matmul, tensor_node,
    tensor_row, verify, TensorCase, TensorRow,
};

/// Upper bound on any single wait of a workload for its participants; a
/// wait that runs out means a message was lost.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// Voluntary context switches so far (Linux `/proc`; 0 elsewhere) of the
/// calling thread plus every thread of this process whose name starts with
/// one of `prefixes`. A voluntary switch is a thread blocking (on a futex,
/// a condvar, a channel) until something wakes it; the difference over a
/// run says how often the participants slept instead of finding work.
/// Threads that exit between two reads drop out of the sum, so read it
/// while the participants are alive.
pub fn thread_sleeps(prefixes: &[&str]) -> u64 {
    fn switches(status: &str) -> u64 {
        status
            .lines()
            .find_map(|line| line.strip_prefix("voluntary_ctxt_switches:"))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or(0)
    }
    let own = std::fs::read_to_string("/proc/thread-self/status")
        .map(|s| switches(&s))
        .unwrap_or(0);
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return own;
    };
    let mut total = own;
    for task in tasks.flatten() {
        let path = task.path();
        let Ok(comm) = std::fs::read_to_string(path.join("comm")) else {
            continue;
        };
        if prefixes.iter().any(|p| comm.starts_with(p)) {
            if let Ok(status) = std::fs::read_to_string(path.join("status")) {
                total += switches(&status);
            }
        }
    }
    total
}

/// Name prefix of actor threads ([`nodeflow::actors::ActorConfig`]'s
/// default), for [`thread_sleeps`].
pub const ACTOR_THREADS: &str = "nf-";

/// A workload could not run, or ran and delivered the wrong thing.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BenchError {
    /// The arguments make no sense (for example a ring of one node).
    #[error("bad arguments: {0}")]
    Usage(String),
    /// Building or spawning the participants failed.
    #[error("setup failed: {0}")]
    Setup(String),
    /// The run finished but its result is wrong: the number is not reported.
    #[error("verification failed: {0}")]
    Verification(String),
}

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
    tiny_node(PeerId::new(1), len)
}

/// A Node of peer `peer` with one chain graph of `len` ops at site 0 (the
/// small Node of the `spawn` and `idle` scenarios).
pub fn tiny_node(peer: PeerId, len: usize) -> Node {
    Node::builder(peer)
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
