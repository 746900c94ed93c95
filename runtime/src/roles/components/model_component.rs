//! [`ModelComponent`]: a [`Model`] bound at a slot, its methods as the ops `Train`, `Evaluate`, `Parameters` and `Load`.
//!
//! | op | inputs | attributes | outputs |
//! |---|---|---|---|
//! | `Train` | features f32 `[n, d]`, labels i64 `[n]`, optional seed i64 scalar | `epochs` (1), `batch` (32) | mean loss f32 scalar, samples i64 scalar |
//! | `Evaluate` | features, labels | | loss f32 scalar, accuracy f32 scalar |
//! | `Parameters` | any trigger | | flat parameters f32 `[P]` |
//! | `Load` | flat parameters f32 `[P]` | | the same tensor (to sequence on) |
//!
//! `Train` runs `epochs` passes; epoch `e` visits the rows in the order
//! `shuffle_order(n, seed + e)` (SplitMix64 Fisher–Yates, the reference
//! job's rule; seed 0 when absent) in consecutive chunks of `batch` rows,
//! the last one possibly smaller. The loss is the mean of the batches'
//! losses.
//!
//! The component depends on a backend (slot `ai.onnx` unless told
//! otherwise). With a compute pool, `Train` and `Evaluate` run there; the
//! model sits behind a mutex so a job and the actor thread never touch it
//! at once (a snapshot taken during a training job waits for it). The
//! model's state (parameters and optimizer buffers) is the component's
//! snapshot state.

use std::fmt;

use ndarray::Axis;
use nodeflow_engine::sync::{Arc, Mutex};
use nodeflow_engine::{
    Component, Dependency, DispatchResult, LocalOpId, OpError, OpErrorKind, OpInputs, OpNode,
    OpOutputs, RuntimeResourceRef, SlotValue, ONNX_SLOT,
};

use super::state::{decode_named, encode_named};
use super::{int_attr, run, tensor_input};
use crate::backend::BACKEND_KIND;
use crate::compute_pool::ComputePool;
use crate::data::shuffle_order;
use crate::roles::{Model, ModelError};
use crate::tensor::Tensor;

/// The [`Component::kind`] of a model component.
pub const MODEL_KIND: &str = "model";

/// The ops, in [`LocalOpId`] order for ops resolved by name.
const OPS: [&str; 4] = ["Train", "Evaluate", "Parameters", "Load"];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    Train { epochs: usize, batch: usize },
    Evaluate,
    Parameters,
    Load,
}

/// A [`Model`] as a component.
pub struct ModelComponent {
    model: Arc<Mutex<Box<dyn Model>>>,
    pool: Option<ComputePool>,
    backend_slot: String,
    /// Installed ops; the first [`OPS`]`.len()` are the by-name defaults.
    ops: Vec<Op>,
}

impl ModelComponent {
    /// Binds `model`; `Train` and `Evaluate` run on `pool` when given.
    pub fn new(model: Box<dyn Model>, pool: Option<ComputePool>) -> Self {
        Self {
            model: Arc::new(Mutex::new(model)),
            pool,
            backend_slot: ONNX_SLOT.to_owned(),
            ops: vec![
                Op::Train {
                    epochs: 1,
                    batch: 32,
                },
                Op::Evaluate,
                Op::Parameters,
                Op::Load,
            ],
        }
    }

    /// Depends on the backend at `slot` instead of `ai.onnx`.
    pub fn backend_slot(mut self, slot: impl Into<String>) -> Self {
        self.backend_slot = slot.into();
        self
    }

    /// A shared handle to the model (for hosts and tests; lock briefly).
    pub fn model(&self) -> Arc<Mutex<Box<dyn Model>>> {
        self.model.clone()
    }

    fn parse(node: &OpNode) -> Result<Option<Op>, OpError> {
        let op = node.op_type.as_str();
        let positive = |name: &str, default: i64| -> Result<usize, OpError> {
            let v = int_attr(&node.attributes, op, name, default)?;
            usize::try_from(v).ok().filter(|&v| v > 0).ok_or_else(|| {
                OpError::new(
                    OpErrorKind::InvalidInput,
                    "role.bad_attribute",
                    format!("`{op}` attribute `{name}` must be at least 1, found {v}"),
                )
            })
        };
        Ok(Some(match op {
            "Train" => Op::Train {
                epochs: positive("epochs", 1)?,
                batch: positive("batch", 32)?,
            },
            "Evaluate" => Op::Evaluate,
            "Parameters" => Op::Parameters,
            "Load" => Op::Load,
            _ => return Ok(None),
        }))
    }
}

/// A model error as an op failure with a stable `model.*` reason.
pub(crate) fn model_error(error: ModelError) -> OpError {
    let reason = match &error {
        ModelError::Shape { .. } => "model.shape",
        ModelError::Label { .. } => "model.label",
        ModelError::NotFinite { .. } => "model.not_finite",
        ModelError::Config(_) => "model.config",
        _ => "model.tensor",
    };
    OpError::new(OpErrorKind::InvalidInput, reason, error.to_string())
}

/// `epochs` passes of mini-batch training over `x`, `y`; the mean batch loss.
pub(crate) fn train_epochs(
    model: &mut dyn Model,
    x: &Tensor,
    y: &Tensor,
    seed: u64,
    epochs: usize,
    batch: usize,
) -> Result<f32, ModelError> {
    let (Some(xs), Some(ys)) = (x.as_f32(), y.as_i64()) else {
        return Err(ModelError::Shape {
            what: "training data".into(),
            expected: "f32 features and i64 labels".into(),
            found: format!("{} and {}", x.dtype(), y.dtype()),
        });
    };
    let n = ys.len();
    if x.rank() != 2 || y.rank() != 1 || x.shape()[0] != n {
        return Err(ModelError::Shape {
            what: "training data".into(),
            expected: "features [n, d] and labels [n]".into(),
            found: format!("{:?} and {:?}", x.shape(), y.shape()),
        });
    }
    let (mut total, mut batches) = (0f64, 0usize);
    for epoch in 0..epochs {
        let order = shuffle_order(n, seed.wrapping_add(epoch as u64));
        for chunk in order.chunks(batch) {
            let bx = Tensor::from_array(xs.select(Axis(0), chunk))?;
            let by = Tensor::from_array(ys.select(Axis(0), chunk))?;
            total += f64::from(model.train_batch(&bx, &by)?);
            batches += 1;
        }
    }
    Ok(if batches == 0 {
        0.0
    } else {
        (total / batches as f64) as f32
    })
}

fn boxed(t: Tensor) -> Box<dyn SlotValue> {
    Box::new(t)
}

impl Component for ModelComponent {
    fn kind(&self) -> &str {
        MODEL_KIND
    }

    fn dependencies(&self) -> Vec<Dependency> {
        vec![Dependency {
            slot: self.backend_slot.clone().into(),
            kind: BACKEND_KIND.into(),
        }]
    }

    fn resolve_op(&self, op_type: &str) -> Option<LocalOpId> {
        OPS.iter()
            .position(|o| *o == op_type)
            .map(|i| LocalOpId(i as u32))
    }

    fn install_op(&mut self, node: &OpNode) -> Result<Option<LocalOpId>, OpError> {
        let Some(op) = Self::parse(node)? else {
            return Ok(None);
        };
        self.ops.push(op);
        Ok(Some(LocalOpId((self.ops.len() - 1) as u32)))
    }

    fn dispatch_atomic(
        &mut self,
        op: LocalOpId,
        ctx: &mut RuntimeResourceRef<'_>,
        inputs: &mut OpInputs<'_>,
        outputs: &mut OpOutputs<'_>,
    ) -> Result<DispatchResult, OpError> {
        let Some(&kind) = self.ops.get(op.0 as usize) else {
            return Err(OpError::new(
                OpErrorKind::Internal,
                "model.unknown_op",
                format!("{op:?} was never installed on this model component"),
            ));
        };
        let model = self.model.clone();
        match kind {
            Op::Train { epochs, batch } => {
                let x = tensor_input(inputs, 0, "Train")?;
                let y = tensor_input(inputs, 1, "Train")?;
                let seed = match inputs.get(2) {
                    None => 0,
                    Some(_) => {
                        let t = tensor_input(inputs, 2, "Train")?;
                        t.to_i64_vec()
                            .filter(|v| v.len() == 1)
                            .map(|v| v[0] as u64)
                            .ok_or_else(|| {
                                OpError::new(
                                    OpErrorKind::InvalidInput,
                                    "role.bad_input",
                                    "`Train` seed must be one i64",
                                )
                            })?
                    }
                };
                let samples = y.len() as i64;
                run(self.pool.as_ref(), ctx, outputs, move || {
                    let mut model = model.lock();
                    let loss = train_epochs(model.as_mut(), &x, &y, seed, epochs, batch)
                        .map_err(model_error)?;
                    Ok(vec![
                        boxed(Tensor::scalar_f32(loss)),
                        boxed(Tensor::scalar_i64(samples)),
                    ])
                })
            }
            Op::Evaluate => {
                let x = tensor_input(inputs, 0, "Evaluate")?;
                let y = tensor_input(inputs, 1, "Evaluate")?;
                run(self.pool.as_ref(), ctx, outputs, move || {
                    let e = model.lock().evaluate(&x, &y).map_err(model_error)?;
                    Ok(vec![
                        boxed(Tensor::scalar_f32(e.loss)),
                        boxed(Tensor::scalar_f32(e.accuracy)),
                    ])
                })
            }
            Op::Parameters => {
                outputs.push(boxed(self.model.lock().flat()))?;
                Ok(DispatchResult::Immediate)
            }
            Op::Load => {
                let flat = tensor_input(inputs, 0, "Load")?;
                self.model.lock().load_flat(&flat).map_err(model_error)?;
                outputs.push(boxed(flat))?;
                Ok(DispatchResult::Immediate)
            }
        }
    }

    fn snapshot_state(&self) -> Result<Vec<u8>, OpError> {
        Ok(encode_named(&self.model.lock().state()))
    }

    fn restore_state(&mut self, bytes: &[u8]) -> Result<(), OpError> {
        let state = decode_named(bytes)?;
        self.model.lock().restore(&state).map_err(model_error)
    }
}

impl fmt::Debug for ModelComponent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ModelComponent")
            .field("backend_slot", &self.backend_slot)
            .field("installed", &self.ops.len())
            .finish()
    }
}
