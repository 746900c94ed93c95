//! Tensor ops through a Node versus raw ndarray, and where the CPU backend should hand an op to the compute pool: the workloads of the `tensor` and `offload` scenarios and of the `runtime_tensor` criterion bench.
//!
//! One measured call: the host invokes a one-op graph on a Node it drives
//! on its own thread (poll until idle; wait on the ingress for a pool
//! completion), and takes the output tensor. The raw side calls ndarray
//! directly on the same arrays (`dot` for MatMul, `general_mat_mul` for
//! Gemm, `+` for Add), so the ratio is the cost of going through a Node:
//! the invoke, the byte-budget charge, the dispatch and, on the pool path,
//! the hand-off to a rayon thread and back through the completion sink.
//!
//! # Invariants
//! * Every output is checked against the raw result (same shape, every
//!   element within 1e-4 relative); a mismatch is a
//!   [`BenchError::Verification`], not a number.
//! * The sides are measured interleaved, one call each per round, and
//!   reported as medians, so machine noise hits them alike.

use std::time::{Duration, Instant};

use ndarray::{linalg::general_mat_mul, Array2, ArrayD, Ix2};
use nodeflow::engine::{Graph, GraphBuilder, Node, PeerId, SiteId, SlotValue, Step, WaitOutcome};
use nodeflow::{BackendConfig, ComputePool, CpuBackend, Tensor};

use crate::{BenchError, PATIENCE};

/// A one-op graph `y = op(a, b[, c])` on the ONNX slot, with `attrs`.
pub fn op_graph(op: &str, inputs: usize, attrs: &[(&str, f32)]) -> Graph {
    let mut b = GraphBuilder::new(op);
    let names = ["a", "b", "c"];
    let handles: Vec<_> = names[..inputs].iter().map(|n| b.input(*n)).collect();
    let mut node = b.op(op, handles);
    for (name, value) in attrs {
        node = node.attr(*name, *value);
    }
    let y = node.output();
    b.output(y, "y");
    // The graph is built from fixed parts above.
    b.build()
        .unwrap_or_else(|e| panic!("bench graph {op}: {e}"))
}

/// A Node holding `graph` on a CPU backend: inline only when `pool` is
/// `None`, otherwise offloading ops above `inline_work_limit` to `pool`.
pub fn tensor_node(
    graph: Graph,
    pool: Option<&ComputePool>,
    inline_work_limit: u64,
) -> Result<Node, BenchError> {
    let backend = CpuBackend::with_config(pool.cloned(), BackendConfig { inline_work_limit });
    Node::builder(PeerId::new(1))
        .component("ai.onnx", Box::new(backend))
        .graph(graph)
        .build()
        .map_err(|e| BenchError::Setup(e.to_string()))
}

/// Invokes the Node's graph on `inputs` and drives it until its one
/// execution finishes; returns output `y`.
pub fn node_call(node: &mut Node, inputs: &[&Tensor]) -> Result<Tensor, BenchError> {
    let names = ["a", "b", "c"];
    let values = inputs
        .iter()
        .zip(names)
        .map(|(t, n)| (n.to_owned(), Box::new((*t).clone()) as Box<dyn SlotValue>))
        .collect();
    node.invoke(SiteId::new(0), values)
        .map_err(|e| BenchError::Setup(e.to_string()))?;
    let deadline = Instant::now() + PATIENCE;
    loop {
        for step in node.poll(0) {
            match step {
                Step::ExecFinished { mut outputs, .. } => {
                    let value = outputs.pop().map(|(_, v)| v);
                    return value
                        .and_then(|v| v.downcast_ref::<Tensor>().cloned())
                        .ok_or_else(|| BenchError::Verification("no output tensor".into()));
                }
                Step::OpFailed { error, .. } => {
                    return Err(BenchError::Verification(error.to_string()));
                }
                _ => {}
            }
        }
        if !node.has_work() && node.ingress().wait(Some(deadline)) != WaitOutcome::Ready {
            return Err(BenchError::Verification(
                "the execution never finished".into(),
            ));
        }
    }
}

/// A deterministic f32 tensor of `shape` with values in [-1, 1).
pub fn ramp(shape: &[usize], seed: u32) -> Tensor {
    let n: usize = shape.iter().product();
    let data = (0..n)
        .map(|i| ((i as u32).wrapping_mul(2_654_435_761).wrapping_add(seed) >> 8) as f32)
        .map(|v| v / (1u32 << 23) as f32 - 1.0)
        .collect();
    // The shape and the data length agree by construction.
    Tensor::from_f32(shape.to_vec(), data).unwrap_or_else(|e| panic!("{e}"))
}

fn f32_2d(t: &Tensor) -> Result<ndarray::ArrayView2<'_, f32>, BenchError> {
    t.view::<f32>()
        .and_then(|v| v.into_dimensionality::<Ix2>().ok())
        .ok_or_else(|| BenchError::Setup("expected a 2-D f32 tensor".into()))
}

/// Raw ndarray: `a · b`.
pub fn raw_matmul(a: &Tensor, b: &Tensor) -> Result<Array2<f32>, BenchError> {
    Ok(f32_2d(a)?.dot(&f32_2d(b)?))
}

/// Raw ndarray: `alpha · a · b + beta · c`, into a fresh copy of `c`.
pub fn raw_gemm(
    a: &Tensor,
    b: &Tensor,
    c: &Tensor,
    alpha: f32,
    beta: f32,
) -> Result<Array2<f32>, BenchError> {
    let mut out = f32_2d(c)?.to_owned();
    general_mat_mul(alpha, &f32_2d(a)?, &f32_2d(b)?, beta, &mut out);
    Ok(out)
}

/// Raw ndarray: `a + b` with numpy broadcasting.
pub fn raw_add(a: &Tensor, b: &Tensor) -> Result<ArrayD<f32>, BenchError> {
    let (Some(a), Some(b)) = (a.as_f32(), b.as_f32()) else {
        return Err(BenchError::Setup("Add takes f32 tensors".into()));
    };
    Ok(a + b)
}

/// Checks `got` against the raw result.
pub fn verify(got: &Tensor, want: &ArrayD<f32>) -> Result<(), BenchError> {
    if got.shape() != want.shape() {
        return Err(BenchError::Verification(format!(
            "shape {:?}, raw {:?}",
            got.shape(),
            want.shape()
        )));
    }
    let values = got
        .view::<f32>()
        .ok_or_else(|| BenchError::Verification("not f32".into()))?;
    for (i, (g, w)) in values.iter().zip(want.iter()).enumerate() {
        if (g - w).abs() > 1e-4 * w.abs().max(1.0) {
            return Err(BenchError::Verification(format!(
                "element {i}: {g} vs raw {w}"
            )));
        }
    }
    Ok(())
}

/// Medians of one op measured three ways.
#[derive(Clone, Debug, PartialEq)]
pub struct TensorRow {
    /// The op type.
    pub op: String,
    /// The input shapes, for the report.
    pub shapes: String,
    /// The op's work in element operations.
    pub work: u64,
    /// Calls measured per side.
    pub rounds: usize,
    /// Median of raw ndarray, ns.
    pub raw_ns: f64,
    /// Median through a Node with everything inline, ns.
    pub inline_ns: f64,
    /// Median through a Node with the op on the compute pool, ns.
    pub pool_ns: f64,
}

impl TensorRow {
    /// Node (inline) time ÷ raw time.
    pub fn inline_ratio(&self) -> f64 {
        self.inline_ns / self.raw_ns
    }

    /// Node (pool) time ÷ raw time.
    pub fn pool_ratio(&self) -> f64 {
        self.pool_ns / self.raw_ns
    }
}

/// Which op a [`tensor_row`] measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TensorCase {
    /// `[n, n] · [n, n]`.
    MatMul(usize),
    /// `[n, n] · [n, n] + [n]` (alpha 1, beta 1).
    Gemm(usize),
    /// `[n, n] + [n]` (a row broadcast).
    AddBroadcast(usize),
    /// `[n] + [n]`.
    Add(usize),
}

/// Measures `case` for about `budget` of wall time per side (at least 5
/// rounds), interleaving raw, inline and pool calls.
pub fn tensor_row(
    case: TensorCase,
    pool: &ComputePool,
    budget: Duration,
) -> Result<TensorRow, BenchError> {
    let (op, inputs, work): (&str, Vec<Tensor>, u64) = match case {
        TensorCase::MatMul(n) => (
            "MatMul",
            vec![ramp(&[n, n], 1), ramp(&[n, n], 2)],
            (n * n * n) as u64,
        ),
        TensorCase::Gemm(n) => (
            "Gemm",
            vec![ramp(&[n, n], 1), ramp(&[n, n], 2), ramp(&[n, n], 3)],
            (n * n * n) as u64,
        ),
        TensorCase::AddBroadcast(n) => {
            ("Add", vec![ramp(&[n, n], 1), ramp(&[n], 2)], (n * n) as u64)
        }
        TensorCase::Add(n) => ("Add", vec![ramp(&[n], 1), ramp(&[n], 2)], 2 * n as u64),
    };
    let graph = op_graph(op, inputs.len(), &[]);
    let mut inline = tensor_node(graph.clone(), None, u64::MAX)?;
    let mut pooled = tensor_node(graph, Some(pool), 0)?;
    let refs: Vec<&Tensor> = inputs.iter().collect();
    let raw = |inputs: &[Tensor]| -> Result<ArrayD<f32>, BenchError> {
        Ok(match case {
            TensorCase::MatMul(_) => raw_matmul(&inputs[0], &inputs[1])?.into_dyn(),
            TensorCase::Gemm(_) => {
                raw_gemm(&inputs[0], &inputs[1], &inputs[2], 1.0, 1.0)?.into_dyn()
            }
            _ => raw_add(&inputs[0], &inputs[1])?,
        })
    };
    // Warm up and verify once on each side.
    let want = raw(&inputs)?;
    verify(&node_call(&mut inline, &refs)?, &want)?;
    verify(&node_call(&mut pooled, &refs)?, &want)?;
    let (mut raw_t, mut inline_t, mut pool_t) = (Vec::new(), Vec::new(), Vec::new());
    let start = Instant::now();
    while raw_t.len() < 5 || start.elapsed() < budget * 3 {
        let t = Instant::now();
        std::hint::black_box(raw(&inputs)?);
        raw_t.push(t.elapsed());
        let t = Instant::now();
        std::hint::black_box(node_call(&mut inline, &refs)?);
        inline_t.push(t.elapsed());
        let t = Instant::now();
        std::hint::black_box(node_call(&mut pooled, &refs)?);
        pool_t.push(t.elapsed());
        if raw_t.len() >= 100_000 {
            break;
        }
    }
    Ok(TensorRow {
        op: op.to_owned(),
        shapes: format!("{:?}", inputs.iter().map(Tensor::shape).collect::<Vec<_>>()),
        work,
        rounds: raw_t.len(),
        raw_ns: median_ns(&mut raw_t),
        inline_ns: median_ns(&mut inline_t),
        pool_ns: median_ns(&mut pool_t),
    })
}

fn median_ns(samples: &mut [Duration]) -> f64 {
    samples.sort_unstable();
    samples[samples.len() / 2].as_nanos() as f64
}

/// Where offloading pays: from elementwise rows of growing size, the pool's
/// fixed cost (median pool − inline time of the smallest row) and the
/// inline cost per element operation (slope between the two largest rows);
/// the crossover is the work at which running inline costs the actor
/// thread as long as the hand-off does.
pub fn offload_crossover(rows: &[TensorRow]) -> Option<(f64, f64, f64)> {
    let first = rows.first()?;
    let (a, b) = (rows.get(rows.len().checked_sub(2)?)?, rows.last()?);
    let handoff_ns = (first.pool_ns - first.inline_ns).max(0.0);
    let per_op_ns = (b.inline_ns - a.inline_ns) / (b.work - a.work) as f64;
    Some((handoff_ns, per_op_ns, handoff_ns / per_op_ns))
}
