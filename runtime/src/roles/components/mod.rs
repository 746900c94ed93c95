//! Role components: the adapters that bind a role at a slot and expose its methods to graphs as ops.
//!
//! Each adapter owns its role value, declares the roles it depends on
//! (checked at install like any component dependency), parses its ops'
//! attributes at install, runs heavy methods on the compute pool when it
//! was given one (the result comes back through the Node's completion
//! sink, as tensors), and captures the role's state in the Node snapshot.
//! What the ops take and give is listed on each adapter.

mod aggregator_component;
mod codec_component;
mod data_component;
mod index_component;
mod model_component;
mod peers_component;
pub(crate) mod state;

pub use aggregator_component::{AggregatorComponent, AGGREGATOR_KIND};
pub use codec_component::{CodecComponent, CODEC_KIND};
pub use data_component::{DataComponent, DATA_KIND};
pub use index_component::{IndexComponent, INDEX_KIND};
pub(crate) use model_component::train_epochs;
pub use model_component::{ModelComponent, MODEL_KIND};
pub use peers_component::{PeersComponent, PEERS_KIND};

use nodeflow_engine::{
    completion_sink, Attribute, AttributeValue, DispatchResult, OpError, OpErrorKind, OpInputs,
    OpOutputs, RuntimeResourceRef, SlotValue,
};

use crate::compute_pool::ComputePool;
use crate::tensor::Tensor;

/// Input `index` of a role op as a tensor (a reference-count bump).
pub(crate) fn tensor_input(
    inputs: &OpInputs<'_>,
    index: usize,
    op: &str,
) -> Result<Tensor, OpError> {
    let value = inputs.get(index).ok_or_else(|| {
        OpError::new(
            OpErrorKind::InvalidInput,
            "role.missing_input",
            format!("`{op}` needs input {index}, which is absent"),
        )
    })?;
    value.downcast_ref::<Tensor>().cloned().ok_or_else(|| {
        OpError::new(
            OpErrorKind::InvalidInput,
            "role.not_a_tensor",
            format!(
                "`{op}` input {index} is a {}, not a Tensor",
                value.type_tag()
            ),
        )
    })
}

/// Whether the Node may send to `peer` now: not itself, not blocked, inside
/// the allowlist when there is one, and not marked down by the governor.
pub(crate) fn usable_peer(ctx: &RuntimeResourceRef<'_>, peer: nodeflow_engine::PeerId) -> bool {
    let governor = &*ctx.peers.governor;
    peer != ctx.current.self_peer
        && !governor.is_blocked(peer)
        && (!governor.allowlist_mode() || governor.is_allowed(peer))
        && !governor.is_down(peer)
}

/// An int attribute of a role op, or `default`; a wrong kind is refused.
pub(crate) fn int_attr(
    attributes: &[Attribute],
    op: &str,
    name: &str,
    default: i64,
) -> Result<i64, OpError> {
    match attributes.iter().find(|a| a.name == name).map(|a| &a.value) {
        None => Ok(default),
        Some(AttributeValue::Int(v)) => Ok(*v),
        Some(other) => Err(OpError::new(
            OpErrorKind::InvalidInput,
            "role.bad_attribute",
            format!(
                "`{op}` attribute `{name}` must be an int, found {}",
                other.kind()
            ),
        )),
    }
}

/// Runs `job` on `pool` (completing later through the Node's sink, its
/// values named after the op's outputs), or inline when there is no pool.
pub(crate) fn run<F>(
    pool: Option<&ComputePool>,
    ctx: &mut RuntimeResourceRef<'_>,
    outputs: &mut OpOutputs<'_>,
    job: F,
) -> Result<DispatchResult, OpError>
where
    F: FnOnce() -> Result<Vec<Box<dyn SlotValue>>, OpError> + Send + 'static,
{
    let Some(pool) = pool else {
        for value in job()?.into_iter().take(outputs.declared()) {
            outputs.push(value)?;
        }
        return Ok(DispatchResult::Immediate);
    };
    let names = ctx.current.outputs.to_vec();
    let cmd = ctx.allocate_command_id()?;
    pool.spawn_op_job(completion_sink(ctx.ingress), cmd, move || {
        Ok(names.into_iter().zip(job()?).collect())
    });
    Ok(DispatchResult::Async(cmd))
}
