//! Wire syscalls: `Send` moves a value to another Node, `Reply` answers a request.
//!
//! | op type | inputs | outputs | attributes | behaviour | errors |
//! |---|---|---|---|---|---|
//! | `Send` | value, and a [`crate::PeerIdValue`] unless `peer` is set | request: the response; one-way: 0 or 1 ([`Trigger`] once queued) | `peer` (int, optional); **either** `site` (int) + `input` (string) — data plane, **or** `component` (int) + `op` (string) — control plane; `request` (int 0/1, default 0); `timeout_ns` (int, default 5 s); `fixed_deadline` (int 0/1, default 0: a request's deadline is `timeout_ns` itself rather than the RTT estimate — for requests whose handler does long work, such as a training round) | checks the peer governor and back-off table, then queues an envelope for the outbound phase. A request mints a correlation token (from 1) in the request tracker with a deadline taken from the RTT estimate (falling back to `timeout_ns`), never later than the deadline this execution inherited, and parks until the response, failure or deadline | Refused `gate.peer_*`, `wire.backoff`; ResourceExhausted `wire.requests_full`, `command_id.exhausted`; Timeout `deadline.expired` when the inherited deadline has already passed; after the host reports the envelope refused (`Node::report_send_refused`): Refused `wire.peer_full`, `wire.unknown_peer`, `wire.peer_closed` |
//! | `Reply` | value | 0 or 1 ([`Trigger`]) | — | answers the request that started this execution: a `Response` envelope to its sender with its token | Failed `reply.no_request` outside a request |
//!
//! Flow control: a one-way or request envelope leaves only with a credit of
//! its destination's window (`FlowControl`); without one it is held and the
//! `Send` parks (Async) until credit returns — a one-way `Send` then
//! completes, a request keeps waiting for its answer — or until the op's
//! deadline (`timeout_ns`, else the Node's default async timeout), when it
//! fails Timeout `wire.no_credit` and the envelope is dropped (counted).
//! ResourceExhausted `wire.flow_held_full` when the Node already holds its
//! cap of envelopes. A request whose handler fails, or that the receiver
//! refuses, is answered at once with a typed failure: the `Send` fails with
//! the remote kind and reason.
//!
//! Deadline propagation: every envelope sent by an execution that was started
//! by an envelope carries the time that execution has left
//! (`remaining_deadline_ns` minus what elapsed since arrival), and a request
//! never asks for more than that.

use crate::component::{DispatchResult, OpError, OpErrorKind, OpInputs, OpOutputs};
use crate::framework::HoldError;
use crate::ids::{ComponentRef, NodeSiteId, SiteId};
use crate::resource::RuntimeResourceRef;
use crate::syscall::gates::{admit, peer_source, resolve, PeerSource};
use crate::syscall::parse::{Count, OpSpec};
use crate::syscall::{take_input, SyscallParseError};
use crate::value::Trigger;
use crate::wire::{Envelope, EnvelopeKind, Fill, FillTarget, Payload};

/// Round-trip budget of a request when no RTT estimate exists and the op
/// sets no `timeout_ns`.
pub const DEFAULT_WIRE_TIMEOUT_NS: u64 = 5_000_000_000;

/// A wire syscall with its attributes checked.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum WireSyscall {
    /// Sends input 0 to a peer.
    Send {
        /// Where the peer id comes from.
        peer: PeerSource,
        /// What the fill is addressed to on the peer.
        target: SendTarget,
        /// Whether the op waits for a response.
        request: bool,
        /// Budget when no RTT estimate exists (or always, with `fixed_deadline`).
        timeout_ns: u64,
        /// The request's deadline is `timeout_ns`, not the RTT estimate.
        fixed_deadline: bool,
    },
    /// Answers the request that started this execution.
    Reply,
}

/// The receiving end of a `Send`.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SendTarget {
    /// Data plane: an input of the graph at `site`.
    Site {
        /// The graph site on the peer.
        site: SiteId,
        /// The graph input's name.
        input: String,
    },
    /// Control plane: an op of a component on the peer.
    ComponentOp {
        /// The component.
        component: ComponentRef,
        /// The op name.
        op: String,
    },
}

impl WireSyscall {
    /// Parses `Send` / `Reply`; `None` for any other op type.
    pub(super) fn parse(spec: &OpSpec<'_>) -> Option<Result<Self, SyscallParseError>> {
        let parsed = match spec.op_type() {
            "Send" => parse_send(spec),
            "Reply" => spec
                .inputs(Count::One)
                .and_then(|()| spec.outputs(Count::ZeroOrOne))
                .map(|()| Self::Reply),
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
        match self {
            Self::Send {
                peer,
                target,
                request,
                timeout_ns,
                fixed_deadline,
            } => {
                let deadline = Deadline {
                    timeout_ns: *timeout_ns,
                    fixed: *fixed_deadline,
                };
                send(ctx, inputs, outputs, *peer, target, *request, deadline)
            }
            Self::Reply => reply(ctx, inputs, outputs),
        }
    }
}

fn parse_send(spec: &OpSpec<'_>) -> Result<WireSyscall, SyscallParseError> {
    let peer = peer_source(spec)?;
    let request = match spec.optional_non_negative("request")? {
        None | Some(0) => false,
        Some(1) => true,
        Some(other) => {
            return Err(spec.attribute_error("request", format!("is {other}; use 0 or 1")))
        }
    };
    spec.outputs(if request {
        Count::One
    } else {
        Count::ZeroOrOne
    })?;
    let site = spec.optional_non_negative("site")?;
    let component = spec.optional_non_negative("component")?;
    let target = match (site, component) {
        (Some(site), None) => SendTarget::Site {
            site: SiteId::new(to_u32(spec, "site", site)?),
            input: spec.name("input")?,
        },
        (None, Some(component)) => SendTarget::ComponentOp {
            component: ComponentRef::new(to_u32(spec, "component", component)?),
            op: spec.name("op")?,
        },
        _ => {
            return Err(spec.attribute_error(
                "site",
                "give exactly one of `site` (+ `input`) or `component` (+ `op`)",
            ))
        }
    };
    let timeout_ns = spec
        .optional_non_negative("timeout_ns")?
        .unwrap_or(DEFAULT_WIRE_TIMEOUT_NS);
    let fixed_deadline = match spec.optional_non_negative("fixed_deadline")? {
        None | Some(0) => false,
        Some(1) => true,
        Some(other) => {
            return Err(spec.attribute_error("fixed_deadline", format!("is {other}; use 0 or 1")))
        }
    };
    Ok(WireSyscall::Send {
        peer,
        target,
        request,
        timeout_ns,
        fixed_deadline,
    })
}

/// How a request's deadline is chosen.
#[derive(Clone, Copy, Debug)]
struct Deadline {
    timeout_ns: u64,
    fixed: bool,
}

fn to_u32(spec: &OpSpec<'_>, attribute: &str, value: u64) -> Result<u32, SyscallParseError> {
    u32::try_from(value)
        .map_err(|_| spec.attribute_error(attribute, format!("is {value}; must fit in 32 bits")))
}

/// Time the current execution has left, if it inherited a deadline.
fn inherited_budget(ctx: &RuntimeResourceRef<'_>) -> Option<u64> {
    let inbound = ctx.current.inbound;
    let remaining = inbound.remaining_deadline_ns?;
    let elapsed = ctx
        .time
        .now_ns
        .saturating_sub(inbound.arrival_ns.unwrap_or(ctx.time.now_ns));
    Some(remaining.saturating_sub(elapsed))
}

#[allow(clippy::too_many_arguments)]
fn send(
    ctx: &mut RuntimeResourceRef<'_>,
    inputs: &mut OpInputs<'_>,
    outputs: &mut OpOutputs<'_>,
    peer: PeerSource,
    target: &SendTarget,
    request: bool,
    deadline: Deadline,
) -> Result<DispatchResult, OpError> {
    let timeout_ns = deadline.timeout_ns;
    let now = ctx.time.now_ns;
    let peer = resolve(peer, inputs)?;
    admit(ctx, peer)?;
    if !ctx.peers.backoff.is_ready(peer, now) {
        return Err(OpError::new(
            OpErrorKind::Refused,
            "wire.backoff",
            format!(
                "{peer} asked us to back off until {} ns (now {now} ns)",
                ctx.peers.backoff.ready_at(peer).unwrap_or(now)
            ),
        ));
    }
    let inherited = inherited_budget(ctx);
    if inherited == Some(0) {
        return Err(OpError::new(
            OpErrorKind::Timeout,
            "deadline.expired",
            "the deadline this execution inherited has passed; nothing was sent",
        ));
    }
    let value = take_input(inputs, 0)?;
    let (fill_target, site) = match target {
        SendTarget::Site { site, input } => (
            FillTarget::Site {
                site: *site,
                input: input.clone(),
            },
            *site,
        ),
        SendTarget::ComponentOp { component, op } => (
            FillTarget::ComponentOp {
                component: *component,
                op: op.clone(),
            },
            SiteId::default(),
        ),
    };
    let kind = if request {
        EnvelopeKind::Request
    } else {
        EnvelopeKind::OneWay
    };
    let mut envelope = Envelope::new(ctx.current.self_peer, peer, kind).with_fill(Fill {
        target: fill_target,
        payload: Payload::Value(value),
    });
    envelope.reply_to = ctx.local_addresses().to_vec();

    if !request {
        if let Some(budget) = inherited {
            envelope = envelope.with_remaining_deadline_ns(budget);
        }
        let envelope = match ctx.net.flow.try_send(envelope) {
            Ok(envelope) => envelope,
            Err(envelope) => {
                // No credit for `peer` yet: park until it returns (or the
                // op's deadline passes) instead of refusing.
                let cmd = ctx.allocate_command_id()?;
                let declared = outputs.declared().min(1) as u8;
                ctx.net
                    .flow
                    .hold(cmd, envelope, Some(declared))
                    .map_err(hold_failed)?;
                return Ok(DispatchResult::Async(cmd));
            }
        };
        ctx.net.outbound.push(envelope);
        if outputs.declared() == 1 {
            outputs.push(Box::new(Trigger))?;
        }
        return Ok(DispatchResult::Immediate);
    }

    let destination = NodeSiteId::new(peer, site);
    let chain = ctx.read_chain_context();
    let mut budget = if deadline.fixed {
        timeout_ns
    } else {
        ctx.estimate_wire_budget_ns(destination, chain, timeout_ns)
    };
    if let Some(inherited) = inherited {
        budget = budget.min(inherited);
    }
    let cmd = ctx.allocate_command_id()?;
    let token = ctx
        .net
        .requests
        .register(cmd, destination, now, now.saturating_add(budget))
        .map_err(|err| {
            OpError::new(
                OpErrorKind::ResourceExhausted,
                "wire.requests_full",
                err.to_string(),
            )
        })?;
    envelope = envelope
        .with_request_id(token)
        .with_remaining_deadline_ns(budget);
    match ctx.net.flow.try_send(envelope) {
        Ok(envelope) => {
            ctx.net.outbound.push(envelope);
        }
        Err(envelope) => {
            // Held until credit returns; the request's deadline covers the wait.
            if let Err(err) = ctx.net.flow.hold(cmd, envelope, None) {
                ctx.net.requests.resolve(token);
                return Err(hold_failed(err));
            }
        }
    }
    Ok(DispatchResult::Async(cmd))
}

/// The typed failure of a `Send` that could not even wait for credit.
fn hold_failed(err: HoldError) -> OpError {
    OpError::new(
        OpErrorKind::ResourceExhausted,
        "wire.flow_held_full",
        format!("{err}; nothing was sent"),
    )
}

fn reply(
    ctx: &mut RuntimeResourceRef<'_>,
    inputs: &mut OpInputs<'_>,
    outputs: &mut OpOutputs<'_>,
) -> Result<DispatchResult, OpError> {
    let inbound = ctx.current.inbound;
    let (Some(to), Some(token)) = (inbound.src_peer, inbound.wire_req_id) else {
        return Err(OpError::new(
            OpErrorKind::Failed,
            "reply.no_request",
            "Reply runs only in an execution started by a request envelope",
        ));
    };
    let value = take_input(inputs, 0)?;
    let envelope = Envelope::new(ctx.current.self_peer, to, EnvelopeKind::Response)
        .with_request_id(token)
        .with_fill(Fill {
            target: FillTarget::Response,
            payload: Payload::Value(value),
        });
    ctx.net.outbound.push(envelope);
    if outputs.declared() == 1 {
        outputs.push(Box::new(Trigger))?;
    }
    Ok(DispatchResult::Immediate)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::OpNode;
    use crate::syscall::Syscall;
    use crate::syscall::SyscallParseError;

    fn op(
        op_type: &str,
        inputs: usize,
        outputs: usize,
        attrs: &[(&str, crate::graph::AttributeValue)],
    ) -> OpNode {
        let mut node = OpNode::new("w", op_type);
        node.domain = crate::graph::SYSCALL_DOMAIN.into();
        node.inputs = (0..inputs).map(|i| format!("in{i}")).collect();
        node.outputs = (0..outputs).map(|i| format!("out{i}")).collect();
        node.attributes = attrs
            .iter()
            .map(|(name, value)| crate::graph::Attribute {
                name: (*name).into(),
                value: value.clone(),
            })
            .collect();
        node
    }

    use crate::graph::AttributeValue::{Int, String as Str};

    #[test]
    fn send_parses_data_and_control_plane_targets() {
        let data = Syscall::parse(&op(
            "Send",
            1,
            1,
            &[
                ("peer", Int(2)),
                ("site", Int(3)),
                ("input", Str("x".into())),
                ("request", Int(1)),
            ],
        ))
        .unwrap();
        assert!(matches!(
            data,
            Syscall::Wire(WireSyscall::Send {
                target: SendTarget::Site { .. },
                request: true,
                timeout_ns: DEFAULT_WIRE_TIMEOUT_NS,
                fixed_deadline: false,
                ..
            })
        ));
        let control = Syscall::parse(&op(
            "Send",
            2,
            0,
            &[("component", Int(1)), ("op", Str("sync".into()))],
        ))
        .unwrap();
        assert!(matches!(
            control,
            Syscall::Wire(WireSyscall::Send {
                peer: PeerSource::Input,
                target: SendTarget::ComponentOp { .. },
                request: false,
                ..
            })
        ));
    }

    #[test]
    fn send_refuses_ambiguous_or_missing_targets_and_bad_flags() {
        for attrs in [
            vec![("peer", Int(2))],
            vec![("peer", Int(2)), ("site", Int(1)), ("component", Int(1))],
            vec![("peer", Int(2)), ("site", Int(1))],
            vec![
                ("peer", Int(2)),
                ("site", Int(1)),
                ("input", Str("x".into())),
                ("request", Int(2)),
            ],
            vec![
                ("peer", Int(2)),
                ("site", Int(1)),
                ("input", Str("x".into())),
                ("timeout_ns", Int(-1)),
            ],
            vec![
                ("peer", Int(2)),
                ("site", Int(1)),
                ("input", Str("x".into())),
                ("fixed_deadline", Int(2)),
            ],
        ] {
            let err = Syscall::parse(&op("Send", 1, 0, &attrs)).unwrap_err();
            assert!(
                matches!(err, SyscallParseError::Attribute { .. }),
                "{attrs:?}: {err:?}"
            );
        }
        // A request needs exactly one output for the response.
        let err = Syscall::parse(&op(
            "Send",
            1,
            0,
            &[
                ("peer", Int(2)),
                ("site", Int(1)),
                ("input", Str("x".into())),
                ("request", Int(1)),
            ],
        ))
        .unwrap_err();
        assert!(matches!(err, SyscallParseError::Arity { .. }));
    }

    #[test]
    fn reply_takes_one_input() {
        assert!(Syscall::parse(&op("Reply", 1, 0, &[])).is_ok());
        assert!(Syscall::parse(&op("Reply", 0, 0, &[])).is_err());
    }
}
