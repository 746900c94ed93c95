//! Criterion bench of a ring of 8 Nodes on their actor threads with 8 tokens
#![allow(missing_docs)] // criterion_group! generates undocumented items
//! in flight (one entering at each Node), next to the raw baseline in the
//! same group: 8 threads joined by bounded crossbeam channels, and the
//! same ring on the peer frameworks (actix `do_send`, kameo `tell`, ractor
//! `cast`; see `nodeflow_benches::peers`). One
//! iteration is one hop of every token (8 one-way messages). Each batch of
//! iterations runs on a fresh ring (spawn and stop are not timed) and is
//! verified: every hop is checked and counted, or the bench panics.

use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use nodeflow_benches::{nodeflow_ring, raw_ring, BenchError, Peer, RingRun, Stop};

const NODES: usize = 8;
const TOKENS: usize = 8;

/// Times `iters` hops of each of the ring's tokens.
fn laps(iters: u64, run: impl Fn(usize, usize, Stop) -> Result<RingRun, BenchError>) -> Duration {
    let hops = u32::try_from(iters.max(1)).expect("fewer than 2^32 hops per sample");
    let result = run(NODES, TOKENS, Stop::Hops(hops)).expect("the ring verifies");
    assert_eq!(result.hops, u64::from(hops) * TOKENS as u64);
    result.elapsed
}

fn actors_ring(c: &mut Criterion) {
    let mut group = c.benchmark_group("actors_ring");
    group.throughput(Throughput::Elements(TOKENS as u64));
    group.bench_function("nodeflow_8_nodes_8_tokens", |b| {
        b.iter_custom(|iters| laps(iters, nodeflow_ring))
    });
    group.bench_function("raw_crossbeam_8_threads_8_tokens", |b| {
        b.iter_custom(|iters| laps(iters, raw_ring))
    });
    for peer in Peer::ALL {
        group.bench_function(format!("{}_8_actors_8_tokens", peer.name()), |b| {
            b.iter_custom(|iters| laps(iters, |n, k, stop| peer.ring(n, k, stop)))
        });
    }
    group.finish();
}

criterion_group!(benches, actors_ring);
criterion_main!(benches);
