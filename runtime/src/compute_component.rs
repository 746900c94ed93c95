//! The compute-component adapter: turns plain functions over slot values into a [`Component`] whose ops run on a [`ComputePool`].
//!
//! Register one function per `op_type` with [`ComputeComponent::op`] and
//! bind the component to a slot on a Node. Each dispatch moves the op's
//! inputs out of the engine (no copy), parks the op on a fresh command,
//! and hands a job to the pool; the job calls the function and posts its
//! values, named after the op's declared outputs, through the Node's
//! completion sink. Values travel as values: nothing is serialized.
//!
//! Invariants:
//! * A dispatch either refuses synchronously with a typed [`OpError`]
//!   (an absent input, command ids exhausted) and submits nothing, or
//!   submits exactly one job and returns [`DispatchResult::Async`].
//! * A job's outcome reaches the op exactly once: its values, its error
//!   text (an [`OpErrorKind::Failed`] failure), or its panic message (also
//!   `Failed`; see [`crate::ComputePool`]). A function that returns more
//!   values than the op declares fails the op instead of dropping values.
//! * The component holds no per-execution state, so it snapshots as empty.

use std::fmt;

use nodeflow_engine::sync::Arc;
use nodeflow_engine::{
    completion_sink, Component, DispatchResult, LocalOpId, OpError, OpErrorKind, OpInputs,
    OpOutputs, RuntimeResourceRef, SlotValue,
};

use crate::compute_pool::ComputePool;

/// A compute function: the op's inputs in declaration order → its outputs
/// in declaration order, or a message saying what went wrong.
pub type ComputeFn =
    dyn Fn(&[&dyn SlotValue]) -> Result<Vec<Box<dyn SlotValue>>, String> + Send + Sync + 'static;

/// A [`Component`] whose ops are functions run on a [`ComputePool`].
pub struct ComputeComponent {
    kind: String,
    pool: ComputePool,
    /// Registered ops; a [`LocalOpId`] is an index into this table.
    ops: Vec<(String, Arc<ComputeFn>)>,
}

impl ComputeComponent {
    /// A component of kind `kind` (what dependents match against) with no
    /// ops yet, running its jobs on `pool`.
    pub fn new(kind: impl Into<String>, pool: ComputePool) -> Self {
        Self {
            kind: kind.into(),
            pool,
            ops: Vec::new(),
        }
    }

    /// Registers `function` for `op_type`; a later registration of the same
    /// `op_type` replaces the earlier one.
    pub fn op<F>(mut self, op_type: impl Into<String>, function: F) -> Self
    where
        F: Fn(&[&dyn SlotValue]) -> Result<Vec<Box<dyn SlotValue>>, String> + Send + Sync + 'static,
    {
        let op_type = op_type.into();
        let function: Arc<ComputeFn> = Arc::new(function);
        match self.ops.iter_mut().find(|(name, _)| *name == op_type) {
            Some(entry) => entry.1 = function,
            None => self.ops.push((op_type, function)),
        }
        self
    }

    /// The op types registered, in registration order.
    pub fn op_types(&self) -> impl Iterator<Item = &str> {
        self.ops.iter().map(|(name, _)| name.as_str())
    }

    /// The pool this component's jobs run on.
    pub fn pool(&self) -> &ComputePool {
        &self.pool
    }
}

impl Component for ComputeComponent {
    fn kind(&self) -> &str {
        &self.kind
    }

    fn resolve_op(&self, op_type: &str) -> Option<LocalOpId> {
        let index = self.ops.iter().position(|(name, _)| name == op_type)?;
        u32::try_from(index).ok().map(LocalOpId)
    }

    fn dispatch_atomic(
        &mut self,
        op: LocalOpId,
        ctx: &mut RuntimeResourceRef<'_>,
        inputs: &mut OpInputs<'_>,
        _outputs: &mut OpOutputs<'_>,
    ) -> Result<DispatchResult, OpError> {
        let Some((op_type, function)) = self.ops.get(op.0 as usize) else {
            return Err(OpError::new(
                OpErrorKind::Internal,
                "compute.unknown_op",
                format!("{op:?} was never resolved by this compute component"),
            ));
        };
        let mut values = Vec::with_capacity(inputs.len());
        for index in 0..inputs.len() {
            let Some(value) = inputs.take(index) else {
                return Err(OpError::new(
                    OpErrorKind::InvalidInput,
                    "input.missing",
                    format!("compute op `{op_type}` needs input {index}, which is absent"),
                ));
            };
            values.push(value);
        }
        let names = ctx.current.outputs.to_vec();
        let cmd = ctx.allocate_command_id()?;
        let function = function.clone();
        let op_type = op_type.clone();
        self.pool
            .spawn_job(completion_sink(ctx.ingress), cmd, move || {
                let refs: Vec<&dyn SlotValue> = values.iter().map(|v| v.as_ref()).collect();
                let results = function(&refs)?;
                if results.len() > names.len() {
                    return Err(format!(
                        "compute op `{op_type}` returned {} outputs but declares {}",
                        results.len(),
                        names.len()
                    ));
                }
                Ok(names.into_iter().zip(results).collect())
            });
        Ok(DispatchResult::Async(cmd))
    }
}

impl fmt::Debug for ComputeComponent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ComputeComponent")
            .field("kind", &self.kind)
            .field("ops", &self.op_types().collect::<Vec<_>>())
            .field("pool", &self.pool)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nodeflow_engine::U64Value;

    fn component() -> ComputeComponent {
        ComputeComponent::new("compute", ComputePool::new(1).unwrap())
            .op("A", |_| Ok(Vec::new()))
            .op("B", |_| Err("b".into()))
    }

    #[test]
    fn ops_resolve_to_their_registration_index() {
        let c = component();
        assert_eq!(c.kind(), "compute");
        assert_eq!(c.resolve_op("A"), Some(LocalOpId(0)));
        assert_eq!(c.resolve_op("B"), Some(LocalOpId(1)));
        assert_eq!(c.resolve_op("C"), None);
        assert_eq!(c.op_types().collect::<Vec<_>>(), ["A", "B"]);
    }

    #[test]
    fn re_registering_an_op_replaces_it_in_place() {
        let c = component().op("A", |_| {
            Ok(vec![Box::new(U64Value(3)) as Box<dyn SlotValue>])
        });
        assert_eq!(c.op_types().collect::<Vec<_>>(), ["A", "B"]);
        assert_eq!(c.resolve_op("A"), Some(LocalOpId(0)));
        let out = (c.ops[0].1)(&[]).unwrap();
        assert_eq!(out[0].downcast_ref::<U64Value>(), Some(&U64Value(3)));
    }

    #[test]
    fn the_component_is_stateless_for_snapshots() {
        let mut c = component();
        assert!(c.snapshot_state().unwrap().is_empty());
        assert!(c.restore_state(b"anything").is_ok());
    }
}
