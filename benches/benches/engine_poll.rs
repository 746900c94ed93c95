//! Criterion bench of the engine hot path: invoke → poll until idle →
#![allow(missing_docs)] // criterion_group! generates undocumented items
//! output, for a 1-op graph and a chain of 100 PassThrough ops.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use nodeflow_benches::{chain_node, invoke_to_output};

fn engine_poll(c: &mut Criterion) {
    let mut group = c.benchmark_group("engine_poll");
    for len in [1usize, 100] {
        let mut node = chain_node(len);
        // Warm the execution pool and the scratch buffers.
        for i in 0..1_000 {
            invoke_to_output(&mut node, i);
        }
        group.throughput(Throughput::Elements(len as u64));
        group.bench_function(format!("chain_{len}_invoke_to_output"), |b| {
            let mut x = 0;
            b.iter(|| {
                x += 1;
                assert_eq!(invoke_to_output(&mut node, x), Some(x));
            })
        });
    }
    group.bench_function("build_node_chain_1", |b| {
        b.iter_batched(|| (), |()| chain_node(1), BatchSize::SmallInput)
    });
    group.finish();
}

criterion_group!(benches, engine_poll);
criterion_main!(benches);
