//! [`AggregatorComponent`]: an [`AggregationRound`] bound at a slot, as the ops `Contribute` and `Aggregate`.
//!
//! | op | inputs | outputs |
//! |---|---|---|
//! | `Contribute` | update f32 `[P]`, optional weight (f32 or i64 scalar, default 1), optional peer (i64 scalar) | contributions pending, i64 scalar |
//! | `Aggregate` | any trigger | combined update f32 `[P]`, contributors i64 scalar |
//!
//! The contributor is the peer given as input 2, else the peer whose
//! envelope started the execution (an update that arrived over the wire),
//! else this Node itself. A refused contribution fails the op with a
//! stable `aggregator.*` reason and is counted; nothing of it is kept.
//! With a compute pool, `Aggregate` runs there (Krum's pairwise distances
//! grow with the square of the contributions). Pending contributions and
//! the counters are the component's snapshot state.

use std::fmt;

use nodeflow_engine::sync::{Arc, Mutex};
use nodeflow_engine::{
    Component, DispatchResult, LocalOpId, OpError, OpErrorKind, OpInputs, OpOutputs, PeerId,
    RuntimeResourceRef, SlotValue,
};

use super::state::{decode_named, encode_named};
use super::{run, tensor_input};
use crate::compute_pool::ComputePool;
use crate::roles::{AggregationRound, Aggregator, AggregatorError, AggregatorStats, Contribution};
use crate::tensor::Tensor;

/// The [`Component::kind`] of an aggregator component.
pub const AGGREGATOR_KIND: &str = "aggregator";

const OPS: [&str; 2] = ["Contribute", "Aggregate"];

/// An aggregation rule as a component.
pub struct AggregatorComponent {
    round: Arc<Mutex<AggregationRound>>,
    pool: Option<ComputePool>,
}

impl AggregatorComponent {
    /// Binds `rule`; `Aggregate` runs on `pool` when given.
    pub fn new(rule: Box<dyn Aggregator>, pool: Option<ComputePool>) -> Self {
        Self {
            round: Arc::new(Mutex::new(AggregationRound::new(rule))),
            pool,
        }
    }

    /// A shared handle to the round (for hosts and tests; lock briefly).
    pub fn round(&self) -> Arc<Mutex<AggregationRound>> {
        self.round.clone()
    }
}

/// An aggregator error as an op failure with a stable `aggregator.*` reason.
pub(crate) fn aggregator_error(error: AggregatorError) -> OpError {
    let reason = match &error {
        AggregatorError::Shape { .. } => "aggregator.shape",
        AggregatorError::NotFinite { .. } => "aggregator.not_finite",
        AggregatorError::Weight { .. } => "aggregator.weight",
        AggregatorError::TooFew { .. } => "aggregator.too_few",
        _ => "aggregator.config",
    };
    OpError::new(OpErrorKind::InvalidInput, reason, error.to_string())
}

fn scalar(t: &Tensor) -> Option<f64> {
    if t.len() != 1 {
        return None;
    }
    t.to_f32_vec()
        .map(|v| f64::from(v[0]))
        .or_else(|| t.to_i64_vec().map(|v| v[0] as f64))
}

fn bad_input(detail: &str) -> OpError {
    OpError::new(
        OpErrorKind::InvalidInput,
        "role.bad_input",
        detail.to_owned(),
    )
}

impl Component for AggregatorComponent {
    fn kind(&self) -> &str {
        AGGREGATOR_KIND
    }

    fn resolve_op(&self, op_type: &str) -> Option<LocalOpId> {
        OPS.iter()
            .position(|o| *o == op_type)
            .map(|i| LocalOpId(i as u32))
    }

    fn dispatch_atomic(
        &mut self,
        op: LocalOpId,
        ctx: &mut RuntimeResourceRef<'_>,
        inputs: &mut OpInputs<'_>,
        outputs: &mut OpOutputs<'_>,
    ) -> Result<DispatchResult, OpError> {
        match op.0 {
            0 => {
                let update = tensor_input(inputs, 0, "Contribute")?;
                let weight = match inputs.get(1) {
                    None => 1.0,
                    Some(_) => scalar(&tensor_input(inputs, 1, "Contribute")?)
                        .ok_or_else(|| bad_input("`Contribute` weight must be one number"))?,
                };
                let peer = match inputs.get(2) {
                    Some(_) => {
                        let t = tensor_input(inputs, 2, "Contribute")?;
                        let id = t
                            .to_i64_vec()
                            .filter(|v| v.len() == 1)
                            .and_then(|v| u64::try_from(v[0]).ok())
                            .ok_or_else(|| bad_input("`Contribute` peer must be one i64 >= 0"))?;
                        PeerId::new(id)
                    }
                    None => ctx
                        .current
                        .inbound
                        .src_peer
                        .unwrap_or(ctx.current.self_peer),
                };
                let mut round = self.round.lock();
                round
                    .contribute(Contribution {
                        peer,
                        update,
                        weight,
                    })
                    .map_err(aggregator_error)?;
                outputs.push(Box::new(Tensor::scalar_i64(round.pending() as i64)))?;
                Ok(DispatchResult::Immediate)
            }
            1 => {
                let round = self.round.clone();
                run(self.pool.as_ref(), ctx, outputs, move || {
                    let mut round = round.lock();
                    let contributors = round.pending() as i64;
                    let combined = round.aggregate().map_err(aggregator_error)?;
                    Ok(vec![
                        Box::new(combined) as Box<dyn SlotValue>,
                        Box::new(Tensor::scalar_i64(contributors)),
                    ])
                })
            }
            _ => Err(OpError::new(
                OpErrorKind::Internal,
                "aggregator.unknown_op",
                format!("{op:?} is not an aggregator op"),
            )),
        }
    }

    fn snapshot_state(&self) -> Result<Vec<u8>, OpError> {
        let round = self.round.lock();
        let s = round.stats();
        let counters = [s.accepted, s.replaced, s.refused, s.rounds].map(|c| c as i64);
        let mut entries = vec![(
            "stats".to_owned(),
            Tensor::from_i64(vec![4], counters.to_vec()).map_err(|e| bad_input(&e.to_string()))?,
        )];
        for c in round.pending_contributions() {
            let meta = Tensor::from_f32(vec![1], vec![c.weight as f32])
                .map_err(|e| bad_input(&e.to_string()))?;
            entries.push((format!("weight:{}", c.peer.as_u64()), meta));
            entries.push((format!("update:{}", c.peer.as_u64()), c.update.clone()));
        }
        Ok(encode_named(&entries))
    }

    fn restore_state(&mut self, bytes: &[u8]) -> Result<(), OpError> {
        let entries = decode_named(bytes)?;
        let mut stats = AggregatorStats::default();
        let mut weights = std::collections::BTreeMap::new();
        let mut contributions = Vec::new();
        for (name, tensor) in entries {
            if name == "stats" {
                let c = tensor
                    .to_i64_vec()
                    .filter(|c| c.len() == 4)
                    .ok_or_else(|| bad_input("aggregator state: bad counters"))?;
                stats = AggregatorStats {
                    accepted: c[0] as u64,
                    replaced: c[1] as u64,
                    refused: c[2] as u64,
                    rounds: c[3] as u64,
                };
            } else if let Some(peer) = name.strip_prefix("weight:") {
                let peer: u64 = peer
                    .parse()
                    .map_err(|_| bad_input("aggregator state: bad peer"))?;
                weights.insert(peer, scalar(&tensor).unwrap_or(f64::NAN));
            } else if let Some(peer) = name.strip_prefix("update:") {
                let peer: u64 = peer
                    .parse()
                    .map_err(|_| bad_input("aggregator state: bad peer"))?;
                let weight = weights.get(&peer).copied().unwrap_or(f64::NAN);
                contributions.push(Contribution {
                    peer: PeerId::new(peer),
                    update: tensor,
                    weight,
                });
            }
        }
        self.round
            .lock()
            .restore(contributions, stats)
            .map_err(aggregator_error)
    }
}

impl fmt::Debug for AggregatorComponent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AggregatorComponent")
            .field("pending", &self.round.lock().pending())
            .finish()
    }
}
