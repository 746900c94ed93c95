//! Criterion bench of a one-way stream between two Nodes on their actor
#![allow(missing_docs)] // criterion_group! generates undocumented items
//! threads (the host invokes a sender Node, whose graph `Send`s each
//! sequence number to a receiver Node that checks the order), next to the
//! raw baseline in the same group (host → sender thread → receiver thread
//! over bounded crossbeam channels) and the peer frameworks (host → sender
//! actor → receiver actor: actix `do_send`, kameo `tell`, ractor `cast`).
//! One iteration is one message handed to the sender. Each batch of
//! iterations runs on fresh participants (spawn and stop are not timed) and
//! is verified: in order, and every message delivered (nodeflow: delivered
//! or refused, with the refusals counted from the actors' books), or the
//! bench panics.

use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use nodeflow_benches::{nodeflow_tell, raw_tell, BenchError, Peer, TellRun};

/// Times a stream of `iters` messages.
fn stream(iters: u64, run: impl Fn(u64) -> Result<TellRun, BenchError>) -> Duration {
    let result = run(iters.max(1)).expect("the stream verifies");
    assert_eq!(result.delivered + result.refused(), iters.max(1));
    result.elapsed
}

fn actors_tell(c: &mut Criterion) {
    let mut group = c.benchmark_group("actors_tell");
    group.throughput(Throughput::Elements(1));
    group.bench_function("nodeflow_tell", |b| {
        b.iter_custom(|iters| stream(iters, |m| nodeflow_tell(m, false)))
    });
    group.bench_function("raw_crossbeam_tell", |b| {
        b.iter_custom(|iters| stream(iters, raw_tell))
    });
    for peer in Peer::ALL {
        group.bench_function(format!("{}_tell", peer.name()), |b| {
            b.iter_custom(|iters| stream(iters, |m| peer.tell(m)))
        });
    }
    group.finish();
}

criterion_group!(benches, actors_tell);
criterion_main!(benches);
