//! Mutation fuzzing of every decoder a peer's bytes reach: tensor encodings, whole envelopes carrying tensors into a Node running backend ops, IDX files, and role state. Nothing may panic, every Ok result must be well formed, and a Node's byte budget must return to zero.
//!
//! Each target starts from valid encodings and applies seeded mutations
//! (bit flips, byte overwrites with boundary values, truncations,
//! insertions, length-field smashes). The iteration count per target is
//! `NODEFLOW_FUZZ_ITERS` (default 2,000, a few seconds in a debug build);
//! `ci/fuzz.sh` runs the same targets in release with many more.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use nodeflow::engine::{encode_envelope, Envelope, EnvelopeKind, Fill, Payload, WireLimits};
use nodeflow::{
    read_idx_images, tensor_registry, CpuBackend, GraphBuilder, IdxLimits, Node, PeerId, SiteId,
    SplitMix64, Tensor,
};

fn iterations() -> u64 {
    std::env::var("NODEFLOW_FUZZ_ITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000)
}

/// One seeded mutation of `base`.
fn mutate(rng: &mut SplitMix64, base: &[u8]) -> Vec<u8> {
    let mut bytes = base.to_vec();
    let rounds = 1 + rng.next_u64() % 4;
    for _ in 0..rounds {
        let len = bytes.len().max(1) as u64;
        let at = (rng.next_u64() % len) as usize;
        match rng.next_u64() % 6 {
            0 if !bytes.is_empty() => bytes[at] ^= 1 << (rng.next_u64() % 8),
            1 if !bytes.is_empty() => {
                bytes[at] = [0, 1, 0x7f, 0x80, 0xfe, 0xff][(rng.next_u64() % 6) as usize]
            }
            2 => bytes.truncate(at),
            3 => bytes.insert(at.min(bytes.len()), rng.next_u64() as u8),
            4 if bytes.len() >= at + 8 => {
                // Smash what may be a length or dimension field.
                let v =
                    [u64::MAX, u64::MAX / 2, 1 << 40, 0, 1 << 31][(rng.next_u64() % 5) as usize];
                bytes[at..at + 8].copy_from_slice(&v.to_le_bytes());
            }
            _ => {
                let extra = (rng.next_u64() % 16) as usize;
                bytes.extend((0..extra).map(|_| rng.next_u64() as u8));
            }
        }
    }
    bytes
}

fn sample_tensors() -> Vec<Tensor> {
    vec![
        Tensor::from_f32(vec![2, 3], vec![1.0, -2.0, 3.5, 0.0, f32::NAN, 7.0]).unwrap(),
        Tensor::from_i64(vec![4], vec![0, -1, i64::MAX, 9]).unwrap(),
        Tensor::from_bool(vec![1, 3], vec![true, false, true]).unwrap(),
        Tensor::scalar_f32(0.25),
    ]
}

#[test]
fn tensor_decoding_never_panics_and_ok_means_well_formed() {
    let mut rng = SplitMix64::new(1);
    let bases: Vec<Vec<u8>> = sample_tensors().iter().map(Tensor::encode).collect();
    let mut accepted = 0;
    for i in 0..iterations() {
        let bytes = mutate(&mut rng, &bases[(i % bases.len() as u64) as usize]);
        if let Ok(t) = Tensor::decode(&bytes, 1 << 20) {
            accepted += 1;
            assert_eq!(t.len(), t.shape().iter().product::<usize>());
            assert_eq!(t.encode(), bytes, "an accepted encoding is canonical");
        }
    }
    assert!(
        accepted < iterations(),
        "mutations must be refused sometimes"
    );
}

#[test]
fn envelopes_of_tensors_into_a_node_never_panic_and_release_every_byte() {
    let mut b = GraphBuilder::new("relu");
    let x = b.input("x");
    let y = b.op("Relu", [x]).output();
    let z = b.op("Softmax", [y]).output();
    b.output(z, "z");
    let mut node = Node::builder(PeerId::new(2))
        .component("ai.onnx", Box::new(CpuBackend::inline()))
        .registry(tensor_registry())
        .graph(b.build().unwrap())
        .build()
        .unwrap();
    let limits = WireLimits::default();
    let bases: Vec<Vec<u8>> = sample_tensors()
        .into_iter()
        .map(|t| {
            let envelope = Envelope::new(PeerId::new(1), PeerId::new(2), EnvelopeKind::OneWay)
                .with_fill(Fill::site(SiteId::new(0), "x", Payload::value(t)));
            let mut bytes = Vec::new();
            encode_envelope(&envelope, &limits, &mut bytes).unwrap();
            bytes
        })
        .collect();
    let mut rng = SplitMix64::new(2);
    for i in 0..iterations() {
        let bytes = mutate(&mut rng, &bases[(i % bases.len() as u64) as usize]);
        let _ = node.deliver_envelope_bytes(&bytes);
        if i % 64 == 0 {
            while node.has_work() {
                node.poll(0);
            }
        }
    }
    while node.has_work() {
        node.poll(0);
    }
    assert_eq!(
        node.budget().in_use(),
        0,
        "every refused or finished byte is released"
    );
    assert_eq!(node.stats().live_executions, 0);
}

fn idx_images(count: u32, rows: u32, cols: u32) -> Vec<u8> {
    let mut bytes = vec![0, 0, 0x08, 3];
    for d in [count, rows, cols] {
        bytes.extend_from_slice(&d.to_be_bytes());
    }
    bytes.extend((0..count * rows * cols).map(|i| i as u8));
    bytes
}

#[test]
fn idx_reading_never_panics() {
    let limits = IdxLimits {
        max_elements: 1 << 16,
    };
    let base = idx_images(3, 4, 5);
    let mut rng = SplitMix64::new(3);
    for _ in 0..iterations() {
        let bytes = mutate(&mut rng, &base);
        if let Ok(images) = read_idx_images(bytes.as_slice(), &limits) {
            assert_eq!(
                images.count() * images.rows() * images.cols(),
                bytes.len() - 16
            );
        }
    }
}

#[test]
fn snapshots_that_were_tampered_with_are_refused_without_panicking() {
    let build = || {
        let mut b = GraphBuilder::new("relu");
        let x = b.input("x");
        let y = b.op("Relu", [x]).output();
        b.output(y, "y");
        Node::builder(PeerId::new(2))
            .component("ai.onnx", Box::new(CpuBackend::inline()))
            .registry(tensor_registry())
            .graph(b.build().unwrap())
    };
    let mut node = build().build().unwrap();
    let x = Tensor::from_f32(vec![3], vec![-1.0, 0.0, 1.0]).unwrap();
    node.invoke(SiteId::new(0), vec![("x".into(), Box::new(x))])
        .unwrap();
    let snapshot = node.snapshot().unwrap();
    let mut rng = SplitMix64::new(4);
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    for _ in 0..iterations().min(500) {
        let bytes = mutate(&mut rng, &snapshot);
        if bytes != snapshot {
            let _ = build().restore(&bytes);
        }
        if std::time::Instant::now() > deadline {
            break;
        }
    }
}
