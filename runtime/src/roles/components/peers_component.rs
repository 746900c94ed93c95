//! [`PeersComponent`]: a [`PeerSelector`] bound at a slot, as the op `Sample`.
//!
//! | op | inputs | attributes | outputs |
//! |---|---|---|---|
//! | `Sample` | any trigger | `k` (1) | peer ids i64 `[m]`, `m ≤ k` |
//!
//! Sampling respects the Node's peer governor: a blocked peer, a peer
//! outside an allowlist, or a peer the governor considers down is never
//! chosen. With no usable peer the op fails `peers.no_peers`. The
//! selector's state (view, ages, generator) is the component's snapshot
//! state.

use std::fmt;

use nodeflow_engine::{
    Component, DispatchResult, LocalOpId, OpError, OpErrorKind, OpInputs, OpNode, OpOutputs,
    RuntimeResourceRef,
};

use super::int_attr;
use super::state::{decode_named, encode_named};
use crate::roles::{PeerSelector, PeerSelectorError};
use crate::tensor::Tensor;

/// The [`Component::kind`] of a peers component.
pub const PEERS_KIND: &str = "peers";

/// A peer selector as a component.
pub struct PeersComponent {
    selector: Box<dyn PeerSelector>,
    /// `k` of each installed `Sample` op; entry 0 is the by-name default.
    ks: Vec<usize>,
}

impl PeersComponent {
    /// Binds `selector`.
    pub fn new(selector: Box<dyn PeerSelector>) -> Self {
        Self {
            selector,
            ks: vec![1],
        }
    }

    /// The selector (for hosts and tests).
    pub fn selector(&self) -> &dyn PeerSelector {
        self.selector.as_ref()
    }
}

/// A selector error as an op failure with a stable `peers.*` reason.
pub(crate) fn peers_error(error: PeerSelectorError) -> OpError {
    let reason = match &error {
        PeerSelectorError::NoPeers { .. } => "peers.no_peers",
        _ => "peers.config",
    };
    OpError::new(OpErrorKind::Failed, reason, error.to_string())
}

impl Component for PeersComponent {
    fn kind(&self) -> &str {
        PEERS_KIND
    }

    fn resolve_op(&self, op_type: &str) -> Option<LocalOpId> {
        (op_type == "Sample").then_some(LocalOpId(0))
    }

    fn install_op(&mut self, node: &OpNode) -> Result<Option<LocalOpId>, OpError> {
        if node.op_type != "Sample" {
            return Ok(None);
        }
        let k = int_attr(&node.attributes, "Sample", "k", 1)?;
        let k = usize::try_from(k).ok().filter(|&k| k > 0).ok_or_else(|| {
            OpError::new(
                OpErrorKind::InvalidInput,
                "role.bad_attribute",
                format!("`Sample` attribute `k` must be at least 1, found {k}"),
            )
        })?;
        self.ks.push(k);
        Ok(Some(LocalOpId((self.ks.len() - 1) as u32)))
    }

    fn dispatch_atomic(
        &mut self,
        op: LocalOpId,
        ctx: &mut RuntimeResourceRef<'_>,
        _inputs: &mut OpInputs<'_>,
        outputs: &mut OpOutputs<'_>,
    ) -> Result<DispatchResult, OpError> {
        let k = self.ks.get(op.0 as usize).copied().unwrap_or(1);
        let governor = &*ctx.peers.governor;
        let me = ctx.current.self_peer;
        let usable = |peer| {
            peer != me
                && !governor.is_blocked(peer)
                && (!governor.allowlist_mode() || governor.is_allowed(peer))
                && !governor.is_down(peer)
        };
        let peers = self.selector.sample(k, &usable).map_err(peers_error)?;
        let ids: Vec<i64> = peers.iter().map(|p| p.as_u64() as i64).collect();
        let len = ids.len();
        let tensor = Tensor::from_i64(vec![len], ids)
            .map_err(|e| OpError::new(OpErrorKind::Internal, "peers.tensor", e.to_string()))?;
        outputs.push(Box::new(tensor))?;
        Ok(DispatchResult::Immediate)
    }

    fn snapshot_state(&self) -> Result<Vec<u8>, OpError> {
        let words: Vec<i64> = self
            .selector
            .save_state()
            .iter()
            .map(|&w| w as i64)
            .collect();
        let len = words.len();
        let tensor = Tensor::from_i64(vec![len], words).map_err(peers_state_error)?;
        Ok(encode_named(&[("selector".to_owned(), tensor)]))
    }

    fn restore_state(&mut self, bytes: &[u8]) -> Result<(), OpError> {
        let entries = decode_named(bytes)?;
        let words: Vec<u64> = entries
            .first()
            .and_then(|(_, t)| t.to_i64_vec())
            .ok_or_else(|| peers_state_error("peers state: no selector words"))?
            .into_iter()
            .map(|w| w as u64)
            .collect();
        self.selector.load_state(&words).map_err(peers_error)
    }
}

fn peers_state_error(detail: impl ToString) -> OpError {
    OpError::new(
        OpErrorKind::InvalidInput,
        "role.bad_state",
        detail.to_string(),
    )
}

impl fmt::Debug for PeersComponent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PeersComponent")
            .field("selector", &self.selector)
            .finish()
    }
}
