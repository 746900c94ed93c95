//! The gate syscalls: `PeerHealthGate.Tx` / `.Rx`, `BackoffGate.Tx` / `.Rx`
//! and `DedupGate.Rx` (table on [`GateSyscall`]).
//!
//! A gate passes its data input (input 0) through unchanged or refuses it.
//! `Tx` gates guard traffic to a peer named by a `peer` attribute or by a
//! [`PeerIdValue`] on input 1; `Rx` gates guard traffic from the peer that
//! sent the execution's inbound envelope.
//!
//! Invariants: a gate never changes the value it passes; every refusal is
//! counted by the primitive consulted (governor, dedup) or is a typed
//! [`OpErrorKind::Refused`] error, and an `Rx` gate outside inbound delivery
//! (no source peer) always passes.

use crate::component::{DispatchResult, OpError, OpErrorKind, OpInputs, OpOutputs};
use crate::framework::Refusal;
use crate::ids::PeerId;
use crate::resource::RuntimeResourceRef;
use crate::syscall::parse::{Count, OpSpec};
use crate::syscall::{take_input, SyscallParseError};
use crate::value::PeerIdValue;

/// Peer policy gates.
///
/// | op type             | inputs                                     | outputs | attributes            | behaviour | errors |
/// |---------------------|--------------------------------------------|---------|-----------------------|-----------|--------|
/// | `PeerHealthGate.Tx` | 1 with `peer`, else 2 (data, [`PeerIdValue`]) | 1    | `peer`: optional int ≥ 0 | passes the data when the governor admits the peer (`PeerGovernor::admit`, which counts refusals) | `Refused` `gate.peer_blocked` / `gate.peer_not_allowed` / `gate.peer_down`; `InvalidInput` `input.type_mismatch` for input 1 |
/// | `PeerHealthGate.Rx` | 1                                          | 1       | —                     | as `.Tx` for the inbound source peer; passes without one | as `.Tx` |
/// | `BackoffGate.Tx`    | as `PeerHealthGate.Tx`                     | 1       | `peer`: optional int ≥ 0 | passes the data when the peer's back-off has elapsed (`BackoffTable::is_ready` at `now_ns`) | `Refused` `gate.backoff_not_ready` |
/// | `BackoffGate.Rx`    | 1                                          | 1       | —                     | passes the data unless this Node is overloaded (`BackpressureTracker::is_overloaded`); sending the back-off notice is the wire layer's job | `Refused` `backpressure.overloaded` |
/// | `DedupGate.Rx`      | 1                                          | 1       | —                     | passes the first delivery of (inbound source peer, `wire_req_id`); a duplicate writes nothing and is counted in `DedupStats::duplicates`; passes when either is unknown | — |
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum GateSyscall {
    /// `PeerHealthGate.Tx`: the governor must admit the target peer.
    PeerHealthTx {
        /// Where the target peer comes from.
        peer: PeerSource,
    },
    /// `PeerHealthGate.Rx`: the governor must admit the source peer.
    PeerHealthRx,
    /// `BackoffGate.Tx`: the target peer's back-off must have elapsed.
    BackoffTx {
        /// Where the target peer comes from.
        peer: PeerSource,
    },
    /// `BackoffGate.Rx`: this Node must not be overloaded.
    BackoffRx,
    /// `DedupGate.Rx`: drops repeated inbound deliveries.
    DedupRx,
}

/// Where a `Tx` gate finds its peer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PeerSource {
    /// Fixed by the op's `peer` attribute.
    Attribute(PeerId),
    /// A [`PeerIdValue`] on input 1.
    Input,
}

impl GateSyscall {
    /// Parses a gate op; `None` when `spec` is not one.
    pub(super) fn parse(spec: &OpSpec<'_>) -> Option<Result<Self, SyscallParseError>> {
        let parsed = match spec.op_type() {
            "PeerHealthGate.Tx" => tx_peer(spec).map(|peer| Self::PeerHealthTx { peer }),
            "PeerHealthGate.Rx" => rx_ports(spec).map(|()| Self::PeerHealthRx),
            "BackoffGate.Tx" => tx_peer(spec).map(|peer| Self::BackoffTx { peer }),
            "BackoffGate.Rx" => rx_ports(spec).map(|()| Self::BackoffRx),
            "DedupGate.Rx" => rx_ports(spec).map(|()| Self::DedupRx),
            _ => return None,
        };
        Some(parsed)
    }

    /// Runs the op for one execution.
    pub(super) fn dispatch(
        &self,
        ctx: &mut RuntimeResourceRef<'_>,
        inputs: &mut OpInputs<'_>,
        outputs: &mut OpOutputs<'_>,
    ) -> Result<DispatchResult, OpError> {
        let inbound = ctx.current.inbound;
        match self {
            Self::PeerHealthTx { peer } => {
                let peer = resolve(*peer, inputs)?;
                admit(ctx, peer)?;
            }
            Self::PeerHealthRx => {
                if let Some(peer) = inbound.src_peer {
                    admit(ctx, peer)?;
                }
            }
            Self::BackoffTx { peer } => {
                let peer = resolve(*peer, inputs)?;
                let now_ns = ctx.time.now_ns;
                if !ctx.peers.backoff.is_ready(peer, now_ns) {
                    let ready_at = ctx.peers.backoff.ready_at(peer).unwrap_or(now_ns);
                    return Err(OpError::new(
                        OpErrorKind::Refused,
                        "gate.backoff_not_ready",
                        format!(
                            "{peer} is backing off until {ready_at} ns (now {now_ns} ns); \
                             retry after that"
                        ),
                    ));
                }
            }
            Self::BackoffRx => {
                if ctx.peers.backpressure.is_overloaded() {
                    return Err(OpError::new(
                        OpErrorKind::Refused,
                        "backpressure.overloaded",
                        "this Node is overloaded and refuses inbound work until its queue \
                         drains below low water; the sender should back off",
                    ));
                }
            }
            Self::DedupRx => {
                if let (Some(src), Some(id)) = (inbound.src_peer, inbound.wire_req_id) {
                    if !ctx.net.dedup.check_and_insert(src, id) {
                        return Ok(DispatchResult::Immediate);
                    }
                }
            }
        }
        outputs.push(take_input(inputs, 0)?)?;
        Ok(DispatchResult::Immediate)
    }
}

fn tx_peer(spec: &OpSpec<'_>) -> Result<PeerSource, SyscallParseError> {
    spec.outputs(Count::One)?;
    peer_source(spec)
}

/// Where an outbound op finds its peer: the `peer` attribute (then the op
/// has one input), or a [`PeerIdValue`] on input 1 (then it has two).
pub(super) fn peer_source(spec: &OpSpec<'_>) -> Result<PeerSource, SyscallParseError> {
    match spec.optional_non_negative("peer")? {
        Some(raw) => {
            spec.inputs(Count::One)?;
            Ok(PeerSource::Attribute(PeerId::new(raw)))
        }
        None => {
            spec.inputs(Count::Two)?;
            Ok(PeerSource::Input)
        }
    }
}

fn rx_ports(spec: &OpSpec<'_>) -> Result<(), SyscallParseError> {
    spec.inputs(Count::One)?;
    spec.outputs(Count::One)
}

pub(super) fn resolve(source: PeerSource, inputs: &OpInputs<'_>) -> Result<PeerId, OpError> {
    match source {
        PeerSource::Attribute(peer) => Ok(peer),
        PeerSource::Input => Ok(inputs.get_as::<PeerIdValue>(1)?.0),
    }
}

pub(super) fn admit(ctx: &mut RuntimeResourceRef<'_>, peer: PeerId) -> Result<(), OpError> {
    let Err(refusal) = ctx.peers.governor.admit(peer) else {
        return Ok(());
    };
    let reason = match refusal {
        Refusal::Blocked => "gate.peer_blocked",
        Refusal::NotAllowed => "gate.peer_not_allowed",
        Refusal::Down => "gate.peer_down",
    };
    Err(OpError::new(
        OpErrorKind::Refused,
        reason,
        format!("{peer} refused: {refusal}"),
    ))
}

#[cfg(test)]
mod tests {
    use crate::component::OpErrorKind;
    use crate::framework::{BackpressureConfig, GovernorConfig};
    use crate::framework_state::FrameworkConfig;
    use crate::ids::PeerId;
    use crate::resource::InboundCtx;
    use crate::syscall::test_rig::{inputs, op, Rig, WithAttr};
    use crate::syscall::{GateSyscall, PeerSource, Syscall};
    use crate::value::{PeerIdValue, SlotValue, U64Value};

    const PEER: PeerId = PeerId::new(3);

    fn parse(node: crate::graph::OpNode) -> Syscall {
        Syscall::parse(&node).unwrap()
    }

    fn data_and_peer(peer: PeerId) -> Vec<Option<Box<dyn SlotValue>>> {
        vec![
            Some(Box::new(U64Value(1))),
            Some(Box::new(PeerIdValue(peer))),
        ]
    }

    fn down_after_one_failure() -> FrameworkConfig {
        FrameworkConfig {
            governor: GovernorConfig {
                failure_threshold: 1,
                ..GovernorConfig::default()
            },
            ..FrameworkConfig::default()
        }
    }

    #[test]
    fn tx_gates_take_the_peer_from_the_attribute_or_input_one() {
        let by_attr = op("PeerHealthGate.Tx", 1, 1).with("peer", 3i64);
        assert!(matches!(
            Syscall::parse(&by_attr).unwrap(),
            Syscall::Gate(GateSyscall::PeerHealthTx {
                peer: PeerSource::Attribute(PEER)
            })
        ));
        assert!(matches!(
            Syscall::parse(&op("BackoffGate.Tx", 2, 1)).unwrap(),
            Syscall::Gate(GateSyscall::BackoffTx {
                peer: PeerSource::Input
            })
        ));
        assert!(Syscall::parse(&op("PeerHealthGate.Tx", 1, 1)).is_err());
        assert!(Syscall::parse(&op("PeerHealthGate.Tx", 2, 1).with("peer", 3i64)).is_err());
        assert!(Syscall::parse(&op("BackoffGate.Tx", 1, 1).with("peer", -3i64)).is_err());
        assert!(Syscall::parse(&op("DedupGate.Rx", 2, 1)).is_err());
    }

    #[test]
    fn peer_health_tx_refuses_down_and_blocked_peers() {
        let gate = parse(op("PeerHealthGate.Tx", 2, 1));
        let mut rig = Rig::with_config(&down_after_one_failure());
        let out = rig.run(&gate, 0, data_and_peer(PEER), 1).unwrap();
        assert_eq!(out.values::<U64Value>(), vec![U64Value(1)]);
        rig.handle(0).peers.governor.record_failure(PEER, 0);
        let err = rig.run(&gate, 0, data_and_peer(PEER), 1).unwrap_err();
        assert_eq!(
            (err.kind, err.reason.as_ref()),
            (OpErrorKind::Refused, "gate.peer_down")
        );
        let other = PeerId::new(4);
        rig.handle(0).peers.governor.block(other).unwrap();
        let err = rig.run(&gate, 0, data_and_peer(other), 1).unwrap_err();
        assert_eq!(err.reason, "gate.peer_blocked");
        assert_eq!(rig.handle(0).peers.governor.stats().refused_down, 1);
        let err = rig
            .run(&gate, 0, inputs([U64Value(1), U64Value(3)]), 1)
            .unwrap_err();
        assert_eq!(err.reason, "input.type_mismatch");
    }

    #[test]
    fn peer_health_rx_checks_the_inbound_source() {
        let gate = parse(op("PeerHealthGate.Rx", 1, 1));
        let mut rig = Rig::new();
        rig.handle(0).peers.governor.set_allowlist_mode(true);
        let out = rig.run(&gate, 0, inputs([U64Value(1)]), 1).unwrap();
        assert_eq!(out.outputs.len(), 1, "no inbound source: passes");
        rig.inbound.src_peer = Some(PEER);
        let err = rig.run(&gate, 0, inputs([U64Value(1)]), 1).unwrap_err();
        assert_eq!(err.reason, "gate.peer_not_allowed");
        rig.handle(0).peers.governor.allow(PEER).unwrap();
        assert!(rig.run(&gate, 0, inputs([U64Value(1)]), 1).is_ok());
    }

    #[test]
    fn backoff_tx_refuses_until_the_back_off_elapses() {
        let gate = parse(op("BackoffGate.Tx", 1, 1).with("peer", 3i64));
        let mut rig = Rig::new();
        assert!(rig.run(&gate, 0, inputs([U64Value(1)]), 1).is_ok());
        let delay = rig.handle(0).peers.backoff.record_failure(PEER, 1_000);
        let ready = 1_000 + delay;
        let err = rig
            .run(&gate, ready - 1, inputs([U64Value(1)]), 1)
            .unwrap_err();
        assert_eq!(
            (err.kind, err.reason.as_ref()),
            (OpErrorKind::Refused, "gate.backoff_not_ready")
        );
        let out = rig.run(&gate, ready, inputs([U64Value(2)]), 1).unwrap();
        assert_eq!(out.values::<U64Value>(), vec![U64Value(2)]);
    }

    #[test]
    fn backoff_rx_refuses_while_overloaded() {
        let gate = parse(op("BackoffGate.Rx", 1, 1));
        let config = FrameworkConfig {
            backpressure: BackpressureConfig::default(),
            ..FrameworkConfig::default()
        };
        let mut rig = Rig::with_config(&config);
        assert!(rig.run(&gate, 0, inputs([U64Value(1)]), 1).is_ok());
        rig.handle(0).peers.backpressure.observe_depth(100, 100, 5);
        let err = rig.run(&gate, 6, inputs([U64Value(1)]), 1).unwrap_err();
        assert_eq!(
            (err.kind, err.reason.as_ref()),
            (OpErrorKind::Refused, "backpressure.overloaded")
        );
        rig.handle(0).peers.backpressure.observe_depth(0, 100, 7);
        assert!(rig.run(&gate, 8, inputs([U64Value(1)]), 1).is_ok());
    }

    #[test]
    fn dedup_rx_passes_the_first_delivery_and_counts_duplicates() {
        let gate = parse(op("DedupGate.Rx", 1, 1));
        let mut rig = Rig::new();
        rig.inbound = InboundCtx {
            src_peer: Some(PEER),
            wire_req_id: Some(11),
            ..InboundCtx::default()
        };
        let out = rig.run(&gate, 0, inputs([U64Value(1)]), 1).unwrap();
        assert_eq!(out.outputs.len(), 1);
        let out = rig.run(&gate, 0, inputs([U64Value(1)]), 1).unwrap();
        assert!(out.outputs.is_empty(), "a duplicate writes nothing");
        assert_eq!(rig.handle(0).net.dedup.stats().duplicates, 1);
        // Same id from another peer is not a duplicate.
        rig.inbound.src_peer = Some(PeerId::new(4));
        assert_eq!(
            rig.run(&gate, 0, inputs([U64Value(1)]), 1)
                .unwrap()
                .outputs
                .len(),
            1
        );
        // Without a token there is nothing to deduplicate.
        rig.inbound.wire_req_id = None;
        for _ in 0..2 {
            assert_eq!(
                rig.run(&gate, 0, inputs([U64Value(1)]), 1)
                    .unwrap()
                    .outputs
                    .len(),
                1
            );
        }
    }
}
