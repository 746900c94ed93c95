//! Criterion bench of tensor ops through a Node against raw ndarray in the same group: MatMul and Gemm at 64 to 512, and a broadcast Add.
#![allow(missing_docs)] // criterion_group! generates undocumented items

use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use nodeflow::{ComputePool, Tensor};
use nodeflow_benches::{node_call, op_graph, ramp, raw_add, raw_gemm, raw_matmul, tensor_node};

fn products(c: &mut Criterion) {
    let pool = ComputePool::new(1).expect("a pool");
    for op in ["MatMul", "Gemm"] {
        let mut group = c.benchmark_group(format!("runtime_tensor/{op}"));
        group
            .measurement_time(Duration::from_secs(3))
            .sample_size(20);
        for n in [64usize, 128, 256, 512] {
            let a = ramp(&[n, n], 1);
            let b = ramp(&[n, n], 2);
            let bias = ramp(&[n, n], 3);
            let inputs: Vec<&Tensor> = if op == "Gemm" {
                vec![&a, &b, &bias]
            } else {
                vec![&a, &b]
            };
            group.throughput(Throughput::Elements((n * n * n) as u64));
            group.bench_with_input(BenchmarkId::new("raw_ndarray", n), &n, |bench, _| {
                bench.iter(|| {
                    if op == "Gemm" {
                        raw_gemm(&a, &b, &bias, 1.0, 1.0).expect("raw")
                    } else {
                        raw_matmul(&a, &b).expect("raw")
                    }
                })
            });
            let mut inline =
                tensor_node(op_graph(op, inputs.len(), &[]), None, u64::MAX).expect("node");
            group.bench_with_input(BenchmarkId::new("node_inline", n), &n, |bench, _| {
                bench.iter(|| node_call(&mut inline, &inputs).expect("call"))
            });
            let mut pooled =
                tensor_node(op_graph(op, inputs.len(), &[]), Some(&pool), 0).expect("node");
            group.bench_with_input(BenchmarkId::new("node_pool", n), &n, |bench, _| {
                bench.iter(|| node_call(&mut pooled, &inputs).expect("call"))
            });
        }
        group.finish();
    }
}

fn broadcast_add(c: &mut Criterion) {
    let mut group = c.benchmark_group("runtime_tensor/AddBroadcast");
    group
        .measurement_time(Duration::from_secs(2))
        .sample_size(20);
    for n in [64usize, 256, 1024] {
        let a = ramp(&[n, n], 1);
        let row = ramp(&[n], 2);
        group.throughput(Throughput::Elements((n * n) as u64));
        group.bench_with_input(BenchmarkId::new("raw_ndarray", n), &n, |bench, _| {
            bench.iter(|| raw_add(&a, &row).expect("raw"))
        });
        let mut inline = tensor_node(op_graph("Add", 2, &[]), None, u64::MAX).expect("node");
        group.bench_with_input(BenchmarkId::new("node_inline", n), &n, |bench, _| {
            bench.iter(|| node_call(&mut inline, &[&a, &row]).expect("call"))
        });
    }
    group.finish();
}

criterion_group!(benches, products, broadcast_add);
criterion_main!(benches);
