//! Criterion bench of a ping-pong between two Nodes on their actor threads
#![allow(missing_docs)] // criterion_group! generates undocumented items
//! (one token, each Node forwards what it receives to the other through the
//! router), next to the raw baseline in the same group: two threads
//! bouncing a `u64` over bounded(1) crossbeam channels, and for reference
//! two threads whose mailboxes always park (mutex + condvar, no spinning:
//! what one sleep and wake per hop costs here), and the peer frameworks
//! (actix, kameo, ractor) doing a request/response round trip from a
//! driver to one actor, each with its own request idiom (see
//! `nodeflow_benches::peers`). One iteration is
//! one round trip (two one-way hops). Each batch of iterations runs on a
//! fresh pair (spawn and stop are not timed) and is verified: every hop is
//! checked and counted, or the bench panics.

use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use nodeflow_benches::{nodeflow_ring, parking_ring, raw_ring, BenchError, Peer, RingRun, Stop};

/// Times `iters` round trips of one token between two participants.
fn round_trips(iters: u64, run: fn(usize, usize, Stop) -> Result<RingRun, BenchError>) -> Duration {
    let hops = u32::try_from(iters.max(1) * 2).expect("fewer than 2^31 round trips per sample");
    let result = run(2, 1, Stop::Hops(hops)).expect("the ping-pong verifies");
    assert_eq!(result.hops, u64::from(hops));
    result.elapsed
}

/// Times `iters` request/response round trips on a peer framework.
fn peer_round_trips(iters: u64, peer: Peer) -> Duration {
    let hops = u32::try_from(iters.max(1) * 2).expect("fewer than 2^31 round trips per sample");
    let result = peer
        .pingpong(Stop::Hops(hops))
        .expect("the ping-pong verifies");
    assert_eq!(result.round_trips, u64::from(hops / 2));
    result.elapsed
}

fn actors_pingpong(c: &mut Criterion) {
    let mut group = c.benchmark_group("actors_pingpong");
    group.throughput(Throughput::Elements(1));
    group.bench_function("nodeflow_round_trip", |b| {
        b.iter_custom(|iters| round_trips(iters, nodeflow_ring))
    });
    group.bench_function("raw_crossbeam_round_trip", |b| {
        b.iter_custom(|iters| round_trips(iters, raw_ring))
    });
    group.bench_function("parking_condvar_round_trip", |b| {
        b.iter_custom(|iters| round_trips(iters, parking_ring))
    });
    for peer in Peer::ALL {
        group.bench_function(format!("{}_round_trip", peer.name()), |b| {
            b.iter_custom(|iters| peer_round_trips(iters, peer))
        });
    }
    group.finish();
}

criterion_group!(benches, actors_pingpong);
criterion_main!(benches);
