//! The CPU backend: a [`Component`] bound at slot `ai.onnx` that runs ONNX ops on [`Tensor`]s with ndarray's kernels.
//!
//! Ops are grouped one file per family, the way tract lays its ops out:
//! `math` (elementwise arithmetic), `nn` (activations, softmax), `loss`,
//! `linalg` (MatMul, Gemm), `reduce`, `shape` (ops that only move or
//! re-describe elements), `array` (Concat, Split, Slice, Gather), `logic`
//! (comparisons and selection), `cast` (Cast, Constant, ConstantOfShape).
//! Each family lists its op types with the function that builds one from
//! its attributes; semantics are ONNX's (opset 13 to 21), including numpy
//! broadcasting, negative axes and `keepdims`.
//!
//! Where an op runs: each dispatch estimates the op's work (element
//! operations; multiply-adds for a matrix product). At or below
//! [`BackendConfig::inline_work_limit`] the op runs inline on the Node's
//! actor thread and completes in the same poll; above it, and when the
//! backend was given a [`ComputePool`], it runs on the pool and completes
//! through the Node's completion sink, its tensors moved, not encoded.
//!
//! Invariants:
//! * Attributes are parsed and checked once, at install
//!   ([`Component::install_op`]); a bad attribute refuses the install with
//!   a typed error naming the op and the attribute.
//! * Every refusal at run time (shape mismatch, wrong element type, absent
//!   input, out-of-range index) is an [`OpError`] with a stable `tensor.*`
//!   reason — inline or from the pool — and never a panic.
//! * The backend keeps no per-execution state; it snapshots as empty (its
//!   installed ops are rebuilt from the graphs when a Node is restored).

mod array;
#[allow(dead_code)] // Until every op family uses its helpers.
mod broadcast;
mod cast;
mod linalg;
mod logic;
mod loss;
mod math;
mod nn;
#[allow(dead_code)] // Until every op family uses its helpers.
mod op;
mod reduce;
mod shape;

use nodeflow_engine::sync::Arc;
use std::collections::HashMap;
use std::fmt;

use nodeflow_engine::{
    completion_sink, Attribute, Component, DispatchResult, LocalOpId, OpError, OpErrorKind,
    OpInputs, OpNode, OpOutputs, RuntimeResourceRef, SlotValue,
};

use crate::compute_pool::ComputePool;
use crate::tensor::{Tensor, TensorError};
use op::{Attrs, Build, Inputs, TensorOp};

/// The [`Component::kind`] of the CPU backend (what a dependent declares).
pub const BACKEND_KIND: &str = "backend";

/// How the CPU backend decides where an op runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BackendConfig {
    /// Ops whose estimated work (element operations) is at or below this
    /// run inline on the actor thread; larger ones go to the compute pool.
    /// Default [`BackendConfig::DEFAULT_INLINE_WORK_LIMIT`].
    pub inline_work_limit: u64,
}

impl BackendConfig {
    /// The default inline limit, in element operations: 2¹⁸ = 262,144.
    ///
    /// Measured with `cargo run --release -p nodeflow-benches --bin
    /// nodeflow-bench -- offload` on the project's 2-core VM (medians of
    /// three runs): handing an op to the pool and getting its completion
    /// back costs about 22 µs more than running it inline, and an inline
    /// elementwise op costs about 0.09 ns per element operation, so an op
    /// keeps the actor thread as long as a hand-off at about 230,000–250,000
    /// element operations (a 256×256 elementwise op, or a 64×64×64 matrix
    /// product). Below that, offloading only adds latency; above it, the
    /// actor stays free for its mail while the pool computes.
    pub const DEFAULT_INLINE_WORK_LIMIT: u64 = 1 << 18;
}

impl Default for BackendConfig {
    fn default() -> Self {
        Self {
            inline_work_limit: Self::DEFAULT_INLINE_WORK_LIMIT,
        }
    }
}

/// Every op type the backend implements, with its builder.
fn families() -> impl Iterator<Item = &'static (&'static str, Build)> {
    [
        math::OPS,
        nn::OPS,
        loss::OPS,
        linalg::OPS,
        reduce::OPS,
        shape::OPS,
        array::OPS,
        logic::OPS,
        cast::OPS,
    ]
    .into_iter()
    .flatten()
}

fn builder(op_type: &str) -> Option<(&'static str, Build)> {
    families()
        .find(|(name, _)| *name == op_type)
        .map(|&(name, build)| (name, build))
}

/// The CPU tensor backend, bound at slot [`nodeflow_engine::ONNX_SLOT`].
pub struct CpuBackend {
    pool: Option<ComputePool>,
    config: BackendConfig,
    /// Installed ops; a [`LocalOpId`] indexes this table.
    ops: Vec<Installed>,
    /// Op type → an instance built with no attributes, for ops reached by
    /// name alone (a remote control-plane call).
    by_name: HashMap<&'static str, u32>,
}

struct Installed {
    op_type: &'static str,
    op: Arc<dyn TensorOp>,
}

impl CpuBackend {
    /// A backend that runs every op inline on the actor thread.
    pub fn inline() -> Self {
        Self::build(None, BackendConfig::default())
    }

    /// A backend that runs ops above the default inline limit on `pool`.
    pub fn new(pool: ComputePool) -> Self {
        Self::build(Some(pool), BackendConfig::default())
    }

    /// A backend with its own inline limit, on `pool` if given.
    pub fn with_config(pool: Option<ComputePool>, config: BackendConfig) -> Self {
        Self::build(pool, config)
    }

    fn build(pool: Option<ComputePool>, config: BackendConfig) -> Self {
        let mut backend = Self {
            pool,
            config,
            ops: Vec::new(),
            by_name: HashMap::new(),
        };
        for &(name, build) in families() {
            if let Ok(op) = build(&Attrs::new(name, &[])) {
                backend.by_name.insert(name, backend.ops.len() as u32);
                backend.ops.push(Installed { op_type: name, op });
            }
        }
        backend
    }

    /// The op types the backend implements.
    pub fn op_types() -> impl Iterator<Item = &'static str> {
        families().map(|(name, _)| *name)
    }

    /// Runs one op directly (no Node, no pool): builds it from
    /// `attributes` and evaluates it on `inputs` (`None` for an absent
    /// optional input). For tests, benches and tools.
    pub fn eval(
        op_type: &str,
        attributes: &[Attribute],
        inputs: &[Option<Tensor>],
    ) -> Result<Vec<Tensor>, TensorError> {
        Self::eval_op(op_type, attributes, inputs, None)
    }

    /// [`CpuBackend::eval`] for an op that declares `outputs` outputs (what
    /// `Split` without sizes divides into).
    pub fn eval_with_outputs(
        op_type: &str,
        attributes: &[Attribute],
        inputs: &[Option<Tensor>],
        outputs: usize,
    ) -> Result<Vec<Tensor>, TensorError> {
        Self::eval_op(op_type, attributes, inputs, Some(outputs))
    }

    fn eval_op(
        op_type: &str,
        attributes: &[Attribute],
        inputs: &[Option<Tensor>],
        outputs: Option<usize>,
    ) -> Result<Vec<Tensor>, TensorError> {
        let (name, build) = builder(op_type).ok_or_else(|| TensorError::UnknownOp {
            op: op_type.to_owned(),
        })?;
        let mut attrs = Attrs::new(name, attributes);
        if let Some(outputs) = outputs {
            attrs = attrs.with_outputs(outputs);
        }
        let op = build(&attrs)?;
        let mut results = op.eval(&Inputs::new(name, inputs))?;
        // As on a Node: outputs past the declared ones are not kept.
        if let Some(outputs) = outputs {
            results.truncate(outputs);
        }
        Ok(results)
    }

    /// Builds one op once from `attributes`, to evaluate many times
    /// without a Node (what the learning roles compute their gradients
    /// with).
    pub fn prepare(op_type: &str, attributes: &[Attribute]) -> Result<PreparedOp, TensorError> {
        let (name, build) = builder(op_type).ok_or_else(|| TensorError::UnknownOp {
            op: op_type.to_owned(),
        })?;
        Ok(PreparedOp {
            op_type: name,
            op: build(&Attrs::new(name, attributes))?,
        })
    }

    /// The configuration in force.
    pub fn config(&self) -> BackendConfig {
        self.config
    }
}

impl Component for CpuBackend {
    fn kind(&self) -> &str {
        BACKEND_KIND
    }

    fn resolve_op(&self, op_type: &str) -> Option<LocalOpId> {
        self.by_name.get(op_type).copied().map(LocalOpId)
    }

    fn install_op(&mut self, node: &OpNode) -> Result<Option<LocalOpId>, OpError> {
        let Some((name, build)) = builder(&node.op_type) else {
            return Ok(None);
        };
        let attrs = Attrs::new(name, &node.attributes).with_outputs(node.outputs.len());
        let op = build(&attrs)?;
        let id = u32::try_from(self.ops.len()).map_err(|_| {
            OpError::new(
                OpErrorKind::Internal,
                "tensor.too_many_ops",
                "the CPU backend has installed 2^32 ops; build fewer graphs",
            )
        })?;
        self.ops.push(Installed { op_type: name, op });
        Ok(Some(LocalOpId(id)))
    }

    fn dispatch_atomic(
        &mut self,
        op: LocalOpId,
        ctx: &mut RuntimeResourceRef<'_>,
        inputs: &mut OpInputs<'_>,
        outputs: &mut OpOutputs<'_>,
    ) -> Result<DispatchResult, OpError> {
        let Some(installed) = self.ops.get(op.0 as usize) else {
            return Err(OpError::new(
                OpErrorKind::Internal,
                "tensor.unknown_op",
                format!("{op:?} was never installed on this CPU backend"),
            ));
        };
        let op_type = installed.op_type;
        let mut tensors = Vec::with_capacity(inputs.len());
        for index in 0..inputs.len() {
            let tensor = match inputs.get(index) {
                None => None,
                Some(value) => Some(as_tensor(op_type, index, value)?),
            };
            tensors.push(tensor);
        }
        let work = installed.op.work(&Inputs::new(op_type, &tensors));
        match &self.pool {
            Some(pool) if work > self.config.inline_work_limit => {
                let names = ctx.current.outputs.to_vec();
                let cmd = ctx.allocate_command_id()?;
                let job = installed.op.clone();
                pool.spawn_op_job(completion_sink(ctx.ingress), cmd, move || {
                    let results = job.eval(&Inputs::new(op_type, &tensors))?;
                    Ok(names
                        .into_iter()
                        .zip(results)
                        .map(|(name, t)| (name, Box::new(t) as Box<dyn SlotValue>))
                        .collect())
                });
                Ok(DispatchResult::Async(cmd))
            }
            _ => {
                let results = installed.op.eval(&Inputs::new(op_type, &tensors))?;
                for tensor in results.into_iter().take(outputs.declared()) {
                    outputs.push(Box::new(tensor))?;
                }
                Ok(DispatchResult::Immediate)
            }
        }
    }
}

/// One backend op with its attributes parsed, evaluated directly on
/// tensors (no Node, no pool); cheap to clone and shareable across threads.
#[derive(Clone)]
pub struct PreparedOp {
    op_type: &'static str,
    op: Arc<dyn TensorOp>,
}

impl PreparedOp {
    /// Evaluates the op on `inputs` (`None` for an absent optional input).
    pub fn eval(&self, inputs: &[Option<Tensor>]) -> Result<Vec<Tensor>, TensorError> {
        self.op.eval(&Inputs::new(self.op_type, inputs))
    }

    /// Evaluates an op with one output and returns it.
    pub fn eval1(&self, inputs: &[Option<Tensor>]) -> Result<Tensor, TensorError> {
        self.eval(inputs)?
            .into_iter()
            .next()
            .ok_or_else(|| TensorError::UnknownOp {
                op: format!("{} (produced no output)", self.op_type),
            })
    }

    /// The op type.
    pub fn op_type(&self) -> &'static str {
        self.op_type
    }
}

impl fmt::Debug for PreparedOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PreparedOp").field("op", &self.op).finish()
    }
}

/// The tensor in an input slot (a reference-count bump), or a typed error.
fn as_tensor(op: &'static str, index: usize, value: &dyn SlotValue) -> Result<Tensor, OpError> {
    value.downcast_ref::<Tensor>().cloned().ok_or_else(|| {
        TensorError::NotATensor {
            op,
            input: index,
            found: value.type_tag().to_string(),
        }
        .into()
    })
}

impl fmt::Debug for CpuBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CpuBackend")
            .field("config", &self.config)
            .field("installed", &self.ops.len())
            .field("pool", &self.pool)
            .finish()
    }
}
