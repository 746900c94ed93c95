//! With the manual clock a multi-Node run is deterministic: three actor
//! Nodes in a ring, each drawing from its seeded RNG on every `Interval`
//! tick and sending the draw to the next Node, produce the same per-Node,
//! per-tick steps on every run with the same seed, different ones with
//! another seed, and every draw arrives at its neighbour within its tick.
//!
//! Waits are bounded by `PATIENCE`; nothing depends on real time.
#![cfg(not(loom))] // real threads and time; the loom models live in loom-tests/
#![allow(clippy::unwrap_used)]

mod common;

use common::{wait_until, PATIENCE};
use nodeflow_actors::{
    ActorConfig, ActorHandle, ActorOutput, Clock, ManualClock, NodeActor, Router,
};
use nodeflow_engine::sync::channel::Receiver;
use nodeflow_engine::sync::Arc;
use nodeflow_engine::{FrameworkConfig, Graph, GraphBuilder, Node, NodeConfig, PeerId, U64Value};

const NODES: u64 = 3;
const TICKS: usize = 12;
const PERIOD_NS: u64 = 1_000;

/// Site 0: every tick draw a number, send it to `next`'s site 1, output it.
fn tick(next: PeerId) -> Graph {
    let mut b = GraphBuilder::new("tick");
    let t = b
        .syscall("Interval", [])
        .attr("period_ns", PERIOD_NS as i64)
        .output();
    let r = b
        .syscall("RngU64", [t])
        .attr("bound", 1_000_000i64)
        .output();
    let [to_send, kept] = b.syscall("Tee", [r]).outputs::<2>();
    b.syscall("Send", [to_send])
        .attr("peer", next.as_u64() as i64)
        .attr("site", 1)
        .attr("input", "x")
        .finish();
    b.output(kept, "sent");
    b.build().unwrap()
}

/// Site 1: output what arrived.
fn receive() -> Graph {
    let mut b = GraphBuilder::new("receive");
    let x = b.input("x");
    let y = b.syscall("PassThrough", [x]).output();
    b.output(y, "got");
    b.build().unwrap()
}

/// Per tick, per Node: (site, value) of its finished executions, sorted.
type Trace = Vec<Vec<Vec<(u32, u64)>>>;

fn run(seed: u64) -> Trace {
    let clock = Arc::new(ManualClock::new());
    let router = Arc::new(Router::new());
    let peers: Vec<PeerId> = (1..=NODES).map(PeerId::new).collect();
    let handles: Vec<ActorHandle> = peers
        .iter()
        .enumerate()
        .map(|(i, &peer)| {
            let next = peers[(i + 1) % peers.len()];
            let config = NodeConfig {
                framework: FrameworkConfig {
                    rng_seed: seed ^ peer.as_u64(),
                    ..FrameworkConfig::default()
                },
                ..NodeConfig::default()
            };
            let node = Node::builder(peer)
                .config(config)
                .graph(tick(next))
                .graph(receive())
                .build()
                .unwrap();
            let dyn_clock: Arc<dyn Clock> = clock.clone();
            NodeActor::spawn(node, Arc::clone(&router), dyn_clock, ActorConfig::default()).unwrap()
        })
        .collect();
    let outputs: Vec<Receiver<ActorOutput>> =
        handles.iter().map(|h| h.subscribe().unwrap()).collect();
    wait_until("every actor to start and sleep", || {
        handles.iter().all(ActorHandle::is_idle)
    });

    let mut trace = Trace::new();
    for _ in 0..TICKS {
        clock.advance(PERIOD_NS);
        // Each Node finishes exactly two executions per tick: its own draw
        // and its neighbour's arrival. An extra one would land in the next
        // tick and break the comparisons below.
        let per_node = outputs
            .iter()
            .map(|rx| {
                let mut steps: Vec<(u32, u64)> = (0..2)
                    .map(|_| match rx.recv_timeout(PATIENCE).unwrap() {
                        ActorOutput::ExecFinished { site, outputs, .. } => {
                            let value = outputs[0].1.downcast_ref::<U64Value>().unwrap().0;
                            (site.as_u32(), value)
                        }
                        other => panic!("unexpected output {other:?}"),
                    })
                    .collect();
                steps.sort_unstable();
                steps
            })
            .collect();
        wait_until("every actor to go back to sleep", || {
            handles.iter().all(ActorHandle::is_idle)
        });
        trace.push(per_node);
    }
    for handle in handles {
        let report = handle.stop().unwrap();
        assert_eq!(report.node.executions_finished, 2 * TICKS as u64);
        assert_eq!(report.stats.refused_full + report.stats.refused_closed, 0);
    }
    trace
}

#[test]
fn the_same_seed_gives_the_same_steps_and_another_seed_does_not() {
    let first = run(42);
    let again = run(42);
    assert_eq!(first, again, "same seed, same steps");
    let other = run(43);
    assert_ne!(first, other, "the seed drives the draws");

    // Data really moves: what Node i sent in a tick, Node i+1 got in it.
    for (t, tick) in first.iter().enumerate() {
        for i in 0..NODES as usize {
            let sent = tick[i].iter().find(|(site, _)| *site == 0).unwrap().1;
            let next = &tick[(i + 1) % NODES as usize];
            let got = next.iter().find(|(site, _)| *site == 1).unwrap().1;
            assert_eq!(sent, got, "tick {t}: node {i} -> node {}", i + 1);
        }
    }
    // The draws are not constant.
    assert!(first.windows(2).any(|w| w[0] != w[1]));
}
