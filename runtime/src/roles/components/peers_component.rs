//! [`PeersComponent`]: a [`PeerSelector`] bound at a slot, as the op `Sample` and the view-exchange ops of a peer-sampling protocol.
//!
//! | op | inputs | attributes | outputs |
//! |---|---|---|---|
//! | `Sample` | any trigger | `k` (1) | peer ids i64 `[m]`, `m ≤ k` |
//! | `Shuffle` | any trigger | | entries i64 `[2m]` (peer, age pairs), the peer to send them to ([`PeerIdValue`]) |
//! | `OnShuffle` | entries i64 `[2m]` (from the wire) | | the answer's entries i64 `[2n]` |
//! | `OnReply` | the answer's entries, the peer asked ([`PeerIdValue`]) | | entries in the view, i64 scalar |
//!
//! A Cyclon exchange over the wire is three ops and a request: `Shuffle`
//! (on a timer) → `Send` of its entries to its peer as a control-plane
//! request for `OnShuffle` on this slot → the answer → `OnReply`.
//! `OnShuffle` takes the asking peer from the envelope that started its
//! execution; called other than from the wire it is refused. A selector
//! without a protocol (a static view) starts no exchange (`Shuffle` fails
//! `peers.no_exchange`) and answers with nothing.
//!
//! Sampling respects the Node's peer governor: a blocked peer, a peer
//! outside an allowlist, or a peer the governor considers down is never
//! chosen. With no usable peer the op fails `peers.no_peers`. The
//! selector's state (view, ages, generator) is the component's snapshot
//! state.

use std::fmt;

use nodeflow_engine::{
    Component, DispatchResult, LocalOpId, OpError, OpErrorKind, OpInputs, OpNode, OpOutputs,
    PeerId, PeerIdValue, RuntimeResourceRef, SlotValue,
};

use super::state::{decode_named, encode_named};
use super::{int_attr, tensor_input};
use crate::roles::{PeerSelector, PeerSelectorError};
use crate::tensor::Tensor;

/// The [`Component::kind`] of a peers component.
pub const PEERS_KIND: &str = "peers";

/// A peer selector as a component.
pub struct PeersComponent {
    selector: Box<dyn PeerSelector>,
    /// `k` of each installed `Sample` op (by [`LocalOpId`] past the
    /// protocol ops); entry 0 is the by-name default.
    ks: Vec<usize>,
}

/// Local op ids of the protocol ops; `Sample` ops follow.
const SHUFFLE: u32 = 0;
const ON_SHUFFLE: u32 = 1;
const ON_REPLY: u32 = 2;
const FIRST_SAMPLE: u32 = 3;

/// `(peer, age)` entries as an i64 tensor of pairs.
fn entries_tensor(entries: &[(PeerId, u32)]) -> Result<Tensor, OpError> {
    let words: Vec<i64> = entries
        .iter()
        .flat_map(|&(p, age)| [p.as_u64() as i64, i64::from(age)])
        .collect();
    let len = words.len();
    Tensor::from_i64(vec![len], words).map_err(peers_state_error)
}

/// The `(peer, age)` entries an i64 tensor of pairs holds.
fn tensor_entries(t: &Tensor, op: &str) -> Result<Vec<(PeerId, u32)>, OpError> {
    let words = t
        .to_i64_vec()
        .filter(|w| t.rank() == 1 && w.len() % 2 == 0 && w.len() <= 2 * 4096)
        .ok_or_else(|| {
            OpError::new(
                OpErrorKind::InvalidInput,
                "peers.bad_entries",
                format!("`{op}` takes an i64 [2m] tensor of (peer, age) pairs, got {t:?}"),
            )
        })?;
    Ok(words
        .chunks_exact(2)
        .filter(|c| c[0] >= 0 && c[1] >= 0)
        .map(|c| {
            (
                PeerId::new(c[0] as u64),
                u32::try_from(c[1]).unwrap_or(u32::MAX),
            )
        })
        .collect())
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
        match op_type {
            "Shuffle" => Some(LocalOpId(SHUFFLE)),
            "OnShuffle" => Some(LocalOpId(ON_SHUFFLE)),
            "OnReply" => Some(LocalOpId(ON_REPLY)),
            "Sample" => Some(LocalOpId(FIRST_SAMPLE)),
            _ => None,
        }
    }

    fn install_op(&mut self, node: &OpNode) -> Result<Option<LocalOpId>, OpError> {
        if node.op_type != "Sample" {
            return Ok(self.resolve_op(&node.op_type));
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
        Ok(Some(LocalOpId(FIRST_SAMPLE + (self.ks.len() - 1) as u32)))
    }

    fn dispatch_atomic(
        &mut self,
        op: LocalOpId,
        ctx: &mut RuntimeResourceRef<'_>,
        inputs: &mut OpInputs<'_>,
        outputs: &mut OpOutputs<'_>,
    ) -> Result<DispatchResult, OpError> {
        match op.0 {
            SHUFFLE => {
                let (to, entries) = self.selector.start_exchange().ok_or_else(|| {
                    OpError::new(
                        OpErrorKind::Failed,
                        "peers.no_exchange",
                        format!(
                            "the `{}` selector has no exchange to start (empty view or no protocol)",
                            self.selector.kind()
                        ),
                    )
                })?;
                outputs.push(Box::new(entries_tensor(&entries)?))?;
                outputs.push(Box::new(PeerIdValue(to)))?;
                return Ok(DispatchResult::Immediate);
            }
            ON_SHUFFLE => {
                let from = ctx.current.inbound.src_peer.ok_or_else(|| {
                    OpError::new(
                        OpErrorKind::InvalidInput,
                        "peers.not_from_the_wire",
                        "`OnShuffle` answers a peer's offer; it runs on an inbound envelope",
                    )
                })?;
                let offered = tensor_entries(&tensor_input(inputs, 0, "OnShuffle")?, "OnShuffle")?;
                let answer = self.selector.on_exchange(from, &offered);
                outputs.push(Box::new(entries_tensor(&answer)?))?;
                return Ok(DispatchResult::Immediate);
            }
            ON_REPLY => {
                let answer = tensor_entries(&tensor_input(inputs, 0, "OnReply")?, "OnReply")?;
                let from = inputs
                    .get(1)
                    .and_then(|v| v.downcast_ref::<PeerIdValue>())
                    .map(|v| v.0)
                    .ok_or_else(|| {
                        OpError::new(
                            OpErrorKind::InvalidInput,
                            "peers.bad_input",
                            "`OnReply` input 1 must be the PeerIdValue `Shuffle` sent to",
                        )
                    })?;
                self.selector.on_exchange_reply(from, &answer);
                let size = self.selector.view().len() as i64;
                outputs.push(Box::new(Tensor::scalar_i64(size)) as Box<dyn SlotValue>)?;
                return Ok(DispatchResult::Immediate);
            }
            _ => {}
        }
        let k = self
            .ks
            .get((op.0 - FIRST_SAMPLE) as usize)
            .copied()
            .unwrap_or(1);
        let usable = |peer| super::usable_peer(ctx, peer);
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
