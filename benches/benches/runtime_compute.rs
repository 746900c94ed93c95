//! Criterion bench of a compute round trip through the engine (invoke →
#![allow(missing_docs)] // criterion_group! generates undocumented items
//! pool job → completion through the Node's sink → output), next to the raw
//! baseline it wraps (rayon `spawn` + a crossbeam reply), in the same run.
//! Both sides use a one-thread pool and square a u64; `batch_64` keeps 64
//! jobs in flight at once.

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use nodeflow::engine::{
    ExecId, GraphBuilder, Node, PeerId, SiteId, SlotValue, Step, U64Value, WaitOutcome,
};
use nodeflow::{ComputeComponent, ComputePool};

/// A Node whose graph squares input `x` into output `y` on `pool`.
fn square_node(pool: &ComputePool) -> Node {
    let component = ComputeComponent::new("compute", pool.clone()).op("Square", |inputs| {
        let x = inputs[0]
            .downcast_ref::<U64Value>()
            .ok_or("Square takes a u64")?
            .0;
        Ok(vec![Box::new(U64Value(x * x)) as Box<dyn SlotValue>])
    });
    let mut b = GraphBuilder::new("square");
    let x = b.input("x");
    let y = b.op("Square", [x]).domain("compute").output();
    b.output(y, "y");
    Node::builder(PeerId::new(1))
        .component("compute", Box::new(component))
        .graph(b.build().expect("a valid graph"))
        .build()
        .expect("the graph installs")
}

/// Invokes `xs`, then drives the Node on this thread (poll until idle, block
/// on the ingress for completions) until every execution has finished;
/// returns the sum of the outputs. With `spin`, the driver first yields up
/// to 64 times while idle before it blocks (as crossbeam's `recv` backs
/// off before parking), which shows what sleeping at once costs.
fn engine_round_trips(node: &mut Node, xs: std::ops::Range<u64>, spin: bool) -> u64 {
    let count = xs.end - xs.start;
    for x in xs {
        let _: ExecId = node
            .invoke(SiteId::new(0), vec![("x".into(), Box::new(U64Value(x)))])
            .expect("invoke");
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    let (mut finished, mut sum) = (0, 0);
    loop {
        for step in node.poll(0) {
            if let Step::ExecFinished { outputs, .. } = step {
                finished += 1;
                sum += outputs
                    .first()
                    .and_then(|(_, v)| v.downcast_ref::<U64Value>())
                    .map_or(0, |v| v.0);
            }
        }
        if finished == count {
            return sum;
        }
        if spin && !node.has_work() {
            for _ in 0..64 {
                std::thread::yield_now();
                if node.has_work() {
                    break;
                }
            }
        }
        if !node.has_work() {
            assert_eq!(node.ingress().wait(Some(deadline)), WaitOutcome::Ready);
        }
    }
}

/// The same work with rayon and a crossbeam channel only.
fn raw_round_trips(
    pool: &rayon::ThreadPool,
    tx: &crossbeam_channel::Sender<u64>,
    rx: &crossbeam_channel::Receiver<u64>,
    xs: std::ops::Range<u64>,
) -> u64 {
    let count = xs.end - xs.start;
    for x in xs {
        let tx = tx.clone();
        pool.spawn(move || tx.send(x * x).expect("the receiver lives"));
    }
    (0..count)
        .map(|_| rx.recv_timeout(Duration::from_secs(10)).expect("a reply"))
        .sum()
}

fn runtime_compute(c: &mut Criterion) {
    let pool = ComputePool::new(1).expect("a pool");
    let mut node = square_node(&pool);
    let raw = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .expect("a rayon pool");
    let (tx, rx) = crossbeam_channel::unbounded();

    let mut group = c.benchmark_group("runtime_compute");
    for batch in [1u64, 64] {
        group.throughput(Throughput::Elements(batch));
        let expected: u64 = (1..=batch).map(|x| x * x).sum();
        group.bench_function(format!("engine_batch_{batch}"), |b| {
            b.iter(|| assert_eq!(engine_round_trips(&mut node, 1..batch + 1, false), expected))
        });
        group.bench_function(format!("engine_spin_batch_{batch}"), |b| {
            b.iter(|| assert_eq!(engine_round_trips(&mut node, 1..batch + 1, true), expected))
        });
        group.bench_function(format!("raw_rayon_batch_{batch}"), |b| {
            b.iter(|| assert_eq!(raw_round_trips(&raw, &tx, &rx, 1..batch + 1), expected))
        });
    }
    group.finish();
    let stats = pool.stats();
    assert_eq!(stats.submitted, stats.completed, "every job succeeded");
    println!("runtime_compute: pool stats {stats:?}");
}

criterion_group!(benches, runtime_compute);
criterion_main!(benches);
