//! [`DataComponent`]: a [`DataSource`] bound at a slot, as the ops `Local` and `NextBatch`.
//!
//! | op | inputs | attributes | outputs |
//! |---|---|---|---|
//! | `Local` | any trigger | | every row: features f32 `[n, d]`, labels i64 `[n]` |
//! | `NextBatch` | any trigger | `batch` (32), `seed` (0) | features `[m, d]`, labels `[m]`, epoch i64 scalar |
//!
//! `Local` hands out the same shared tensors every time (gathered once,
//! when the component is built: no copy per call). `NextBatch` walks epoch
//! `e` in the order `shuffle_order(n, seed + e)` in chunks of `batch` rows
//! and moves on to epoch `e + 1` when one is used up; its cursor (epoch,
//! position) is the component's snapshot state, so a restored Node serves
//! the batch it would have served next. One cursor per installed
//! `NextBatch` op.

use std::fmt;

use nodeflow_engine::{
    Component, DispatchResult, LocalOpId, OpError, OpErrorKind, OpInputs, OpNode, OpOutputs,
    RuntimeResourceRef, SlotValue,
};

use super::int_attr;
use super::state::{decode_named, encode_named};
use crate::data::shuffle_order;
use crate::roles::{DataError, DataSource};
use crate::tensor::Tensor;

/// The [`Component::kind`] of a data component.
pub const DATA_KIND: &str = "data";

#[derive(Clone, Debug, PartialEq, Eq)]
enum Op {
    Local,
    NextBatch {
        batch: usize,
        seed: u64,
        epoch: u64,
        position: usize,
    },
}

/// A data source as a component.
pub struct DataComponent {
    source: nodeflow_engine::sync::Arc<dyn DataSource>,
    all: (Tensor, Tensor),
    ops: Vec<Op>,
}

/// A data error as an op failure with a stable `data.*` reason.
pub(crate) fn data_error(error: DataError) -> OpError {
    let reason = match &error {
        DataError::Position { .. } => "data.position",
        DataError::Empty => "data.empty",
        _ => "data.tensor",
    };
    OpError::new(OpErrorKind::InvalidInput, reason, error.to_string())
}

impl DataComponent {
    /// Binds `source` (its rows are gathered once, here).
    pub fn new(source: nodeflow_engine::sync::Arc<dyn DataSource>) -> Result<Self, DataError> {
        let all = source.all()?;
        Ok(Self {
            source,
            all,
            ops: vec![
                Op::Local,
                Op::NextBatch {
                    batch: 32,
                    seed: 0,
                    epoch: 0,
                    position: 0,
                },
            ],
        })
    }

    fn next_batch(&mut self, index: usize) -> Result<(Tensor, Tensor, u64), OpError> {
        let n = self.source.len();
        if n == 0 {
            return Err(data_error(DataError::Empty));
        }
        let Some(Op::NextBatch {
            batch,
            seed,
            epoch,
            position,
        }) = self.ops.get_mut(index)
        else {
            return Err(OpError::new(
                OpErrorKind::Internal,
                "data.unknown_op",
                "not a NextBatch op",
            ));
        };
        if *position >= n {
            *epoch += 1;
            *position = 0;
        }
        let order = shuffle_order(n, seed.wrapping_add(*epoch));
        let end = (*position + *batch).min(n);
        let chunk = &order[*position..end];
        let served_epoch = *epoch;
        *position = end;
        let (x, y) = self.source.batch(chunk).map_err(data_error)?;
        Ok((x, y, served_epoch))
    }
}

impl Component for DataComponent {
    fn kind(&self) -> &str {
        DATA_KIND
    }

    fn resolve_op(&self, op_type: &str) -> Option<LocalOpId> {
        match op_type {
            "Local" => Some(LocalOpId(0)),
            "NextBatch" => Some(LocalOpId(1)),
            _ => None,
        }
    }

    fn install_op(&mut self, node: &OpNode) -> Result<Option<LocalOpId>, OpError> {
        let op = match node.op_type.as_str() {
            "Local" => Op::Local,
            "NextBatch" => {
                let batch = int_attr(&node.attributes, "NextBatch", "batch", 32)?;
                let batch =
                    usize::try_from(batch)
                        .ok()
                        .filter(|&b| b > 0)
                        .ok_or_else(|| {
                            OpError::new(
                        OpErrorKind::InvalidInput,
                        "role.bad_attribute",
                        format!("`NextBatch` attribute `batch` must be at least 1, found {batch}"),
                    )
                        })?;
                let seed = int_attr(&node.attributes, "NextBatch", "seed", 0)? as u64;
                Op::NextBatch {
                    batch,
                    seed,
                    epoch: 0,
                    position: 0,
                }
            }
            _ => return Ok(None),
        };
        self.ops.push(op);
        Ok(Some(LocalOpId((self.ops.len() - 1) as u32)))
    }

    fn dispatch_atomic(
        &mut self,
        op: LocalOpId,
        _ctx: &mut RuntimeResourceRef<'_>,
        _inputs: &mut OpInputs<'_>,
        outputs: &mut OpOutputs<'_>,
    ) -> Result<DispatchResult, OpError> {
        let index = op.0 as usize;
        let values: Vec<Box<dyn SlotValue>> = match self.ops.get(index) {
            Some(Op::Local) => vec![Box::new(self.all.0.clone()), Box::new(self.all.1.clone())],
            Some(Op::NextBatch { .. }) => {
                let (x, y, epoch) = self.next_batch(index)?;
                vec![
                    Box::new(x),
                    Box::new(y),
                    Box::new(Tensor::scalar_i64(epoch as i64)),
                ]
            }
            None => {
                return Err(OpError::new(
                    OpErrorKind::Internal,
                    "data.unknown_op",
                    format!("{op:?} was never installed on this data component"),
                ))
            }
        };
        for value in values.into_iter().take(outputs.declared()) {
            outputs.push(value)?;
        }
        Ok(DispatchResult::Immediate)
    }

    fn snapshot_state(&self) -> Result<Vec<u8>, OpError> {
        let mut cursors = Vec::new();
        for op in &self.ops {
            if let Op::NextBatch {
                epoch, position, ..
            } = op
            {
                cursors.extend([*epoch as i64, *position as i64]);
            }
        }
        let len = cursors.len();
        let tensor = Tensor::from_i64(vec![len], cursors)
            .map_err(|e| OpError::new(OpErrorKind::Internal, "data.state", e.to_string()))?;
        Ok(encode_named(&[("cursors".to_owned(), tensor)]))
    }

    fn restore_state(&mut self, bytes: &[u8]) -> Result<(), OpError> {
        let entries = decode_named(bytes)?;
        let cursors = entries
            .first()
            .and_then(|(_, t)| t.to_i64_vec())
            .unwrap_or_default();
        let mut values = cursors.chunks_exact(2);
        for op in &mut self.ops {
            if let Op::NextBatch {
                epoch, position, ..
            } = op
            {
                let Some(pair) = values.next() else {
                    return Err(OpError::new(
                        OpErrorKind::InvalidInput,
                        "role.bad_state",
                        "the snapshot has fewer NextBatch cursors than the graphs",
                    ));
                };
                *epoch = pair[0].max(0) as u64;
                *position = pair[1].max(0) as usize;
            }
        }
        Ok(())
    }
}

impl fmt::Debug for DataComponent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DataComponent")
            .field("rows", &self.source.len())
            .field("ops", &self.ops)
            .finish()
    }
}
