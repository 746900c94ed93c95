//! [`IndexComponent`]: an [`Index`] bound at a slot, as the ops `Add`, `Remove` and `Search`.
//!
//! | op | inputs | attributes | outputs |
//! |---|---|---|---|
//! | `Add` | id i64 scalar, vector f32 `[d]` | | vectors stored, i64 scalar |
//! | `Remove` | id i64 scalar | | whether it was stored, bool scalar |
//! | `Search` | query f32 `[d]` | `k` (1) | ids i64 `[m]`, distances f32 `[m]`, nearest first |
//!
//! The stored vectors are the component's snapshot state (a cosine index
//! stores unit vectors, so a restored one may differ from the original in
//! the last bit of a distance).

use std::fmt;

use nodeflow_engine::{
    Component, DispatchResult, LocalOpId, OpError, OpErrorKind, OpInputs, OpNode, OpOutputs,
    RuntimeResourceRef, SlotValue,
};

use super::state::{decode_named, encode_named};
use super::{int_attr, tensor_input};
use crate::roles::{Index, IndexError};
use crate::tensor::Tensor;

/// The [`Component::kind`] of an index component.
pub const INDEX_KIND: &str = "index";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    Add,
    Remove,
    Search { k: usize },
}

/// An index as a component.
pub struct IndexComponent {
    index: Box<dyn Index>,
    ops: Vec<Op>,
}

impl IndexComponent {
    /// Binds `index`.
    pub fn new(index: Box<dyn Index>) -> Self {
        Self {
            index,
            ops: vec![Op::Add, Op::Remove, Op::Search { k: 1 }],
        }
    }
}

/// An index error as an op failure with a stable `index.*` reason.
pub(crate) fn index_error(error: IndexError) -> OpError {
    let reason = match &error {
        IndexError::Shape { .. } => "index.shape",
        IndexError::NotFinite => "index.not_finite",
        IndexError::ZeroVector => "index.zero_vector",
        IndexError::Full { .. } => "index.full",
        _ => "index.tensor",
    };
    OpError::new(OpErrorKind::InvalidInput, reason, error.to_string())
}

fn id_input(inputs: &OpInputs<'_>, op: &str) -> Result<u64, OpError> {
    let t = tensor_input(inputs, 0, op)?;
    t.to_i64_vec()
        .filter(|v| v.len() == 1)
        .and_then(|v| u64::try_from(v[0]).ok())
        .ok_or_else(|| {
            OpError::new(
                OpErrorKind::InvalidInput,
                "role.bad_input",
                format!("`{op}` id must be one i64 >= 0"),
            )
        })
}

fn internal(e: impl ToString) -> OpError {
    OpError::new(OpErrorKind::Internal, "index.tensor", e.to_string())
}

impl Component for IndexComponent {
    fn kind(&self) -> &str {
        INDEX_KIND
    }

    fn resolve_op(&self, op_type: &str) -> Option<LocalOpId> {
        match op_type {
            "Add" => Some(LocalOpId(0)),
            "Remove" => Some(LocalOpId(1)),
            "Search" => Some(LocalOpId(2)),
            _ => None,
        }
    }

    fn install_op(&mut self, node: &OpNode) -> Result<Option<LocalOpId>, OpError> {
        let op = match node.op_type.as_str() {
            "Add" => Op::Add,
            "Remove" => Op::Remove,
            "Search" => {
                let k = int_attr(&node.attributes, "Search", "k", 1)?;
                let k = usize::try_from(k).ok().filter(|&k| k > 0).ok_or_else(|| {
                    OpError::new(
                        OpErrorKind::InvalidInput,
                        "role.bad_attribute",
                        format!("`Search` attribute `k` must be at least 1, found {k}"),
                    )
                })?;
                Op::Search { k }
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
        inputs: &mut OpInputs<'_>,
        outputs: &mut OpOutputs<'_>,
    ) -> Result<DispatchResult, OpError> {
        let values: Vec<Box<dyn SlotValue>> = match self.ops.get(op.0 as usize) {
            Some(Op::Add) => {
                let id = id_input(inputs, "Add")?;
                let vector = tensor_input(inputs, 1, "Add")?;
                self.index.add(id, &vector).map_err(index_error)?;
                vec![Box::new(Tensor::scalar_i64(self.index.len() as i64))]
            }
            Some(Op::Remove) => {
                let id = id_input(inputs, "Remove")?;
                let was = self.index.remove(id);
                vec![Box::new(
                    Tensor::from_bool(vec![], vec![was]).map_err(internal)?,
                )]
            }
            Some(&Op::Search { k }) => {
                let query = tensor_input(inputs, 0, "Search")?;
                let found = self.index.search(&query, k).map_err(index_error)?;
                let ids = found.iter().map(|n| n.id as i64).collect();
                let distances = found.iter().map(|n| n.distance).collect();
                vec![
                    Box::new(Tensor::from_i64(vec![found.len()], ids).map_err(internal)?),
                    Box::new(Tensor::from_f32(vec![found.len()], distances).map_err(internal)?),
                ]
            }
            None => {
                return Err(OpError::new(
                    OpErrorKind::Internal,
                    "index.unknown_op",
                    format!("{op:?} was never installed on this index component"),
                ))
            }
        };
        for value in values.into_iter().take(outputs.declared()) {
            outputs.push(value)?;
        }
        Ok(DispatchResult::Immediate)
    }

    fn snapshot_state(&self) -> Result<Vec<u8>, OpError> {
        Ok(encode_named(&self.state()))
    }

    fn restore_state(&mut self, bytes: &[u8]) -> Result<(), OpError> {
        for (name, vector) in decode_named(bytes)? {
            let id = name.parse::<u64>().map_err(|_| {
                OpError::new(
                    OpErrorKind::InvalidInput,
                    "role.bad_state",
                    format!("index state: `{name}` is not an id"),
                )
            })?;
            self.index.add(id, &vector).map_err(index_error)?;
        }
        Ok(())
    }
}

impl IndexComponent {
    fn state(&self) -> Vec<(String, Tensor)> {
        self.index
            .entries()
            .into_iter()
            .map(|(id, v)| (id.to_string(), v))
            .collect()
    }
}

impl fmt::Debug for IndexComponent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IndexComponent")
            .field("index", &self.index)
            .finish()
    }
}
