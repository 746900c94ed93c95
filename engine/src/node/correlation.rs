//! Wire request correlation: responses resume the `Send` op that asked,
//! control-plane calls from peers are run and answered, and refused or
//! expired requests fail their op.

use super::dispatch::{panic_detail, Dispatcher, OpCall};
use super::install::Dispatch;
use super::{Completion, ControlCall, Node, SendRefusal, Step, CONTROL_SITE};
use crate::bus::NodeEvent;
use crate::component::{DispatchResult, OpError, OpErrorKind};
use crate::framework::HealthTransition;
use crate::ids::{CommandId, ComponentRef, ExecId, OpRef, PeerId};
use crate::resource::{InboundCtx, TimerEvent};
use crate::value::SlotValue;
use crate::wire::{decode_payload, Envelope, EnvelopeKind};

impl Node {
    /// Tells the Node that the host could not deliver `envelope`, which
    /// this Node emitted as a [`Step::SendEnvelope`], because of `reason`.
    ///
    /// Always counted in
    /// [`NodeStats::sends_refused`](super::NodeStats::sends_refused) and
    /// reported as [`Step::SendRefused`]. If it was a request still in flight, the
    /// request is resolved and its parked `Send` op fails now (no wait for
    /// the deadline) with [`OpErrorKind::Refused`] and the reason
    /// [`SendRefusal::reason`]; its execution then ends as it would after
    /// any failed completion. In addition:
    /// * [`SendRefusal::Full`] applies a back-off advisory for the
    ///   destination of the back-pressure config's `retry_after_ns`: further
    ///   `Send`s to it fail with `wire.backoff` until the advisory passes
    ///   or the destination sends a `BackoffClear`;
    /// * [`SendRefusal::UnknownPeer`] counts as a failure of the
    ///   destination's health (as a timeout does), which may mark it down.
    ///
    /// An envelope whose source is not this Node (a host mistake) is only
    /// counted and reported. A request whose token matches nothing in
    /// flight (already answered or expired) fails no op.
    ///
    /// **Driving rule**: this is an input like the `deliver_*` methods;
    /// afterwards [`Node::has_work`] is true, so poll until it is false:
    /// the steps produced here come out of that poll.
    pub fn report_send_refused(&mut self, envelope: Envelope, reason: SendRefusal, now_ns: u64) {
        let (from, to, kind, token) = (
            envelope.src,
            envelope.dst,
            envelope.kind,
            envelope.wire_req_id,
        );
        // The values die here; their bytes stay charged to the sending
        // execution, which releases them when it ends.
        drop(envelope);
        self.stats.sends_refused = self.stats.sends_refused.saturating_add(1);
        self.steps.push(Step::SendRefused {
            to,
            reason,
            kind,
            token,
        });
        if from != self.peer {
            return;
        }
        if kind == EnvelopeKind::OneWay || kind == EnvelopeKind::Request {
            self.refund_credit(to);
        }
        match reason {
            SendRefusal::Full => {
                let retry = self.framework.backpressure_mut().config().retry_after_ns;
                self.framework
                    .backoff_mut()
                    .apply_advisory(to, retry, now_ns);
            }
            SendRefusal::UnknownPeer => {
                if let Some(HealthTransition::WentDown(peer)) =
                    self.framework.governor_mut().record_failure(to, now_ns)
                {
                    // A built-in kind: the bus never refuses it.
                    let _ = self.bus.publish(NodeEvent::PeerWentDown { peer });
                }
            }
            SendRefusal::Closed => {}
        }
        let Some(token) = token.filter(|_| kind == EnvelopeKind::Request) else {
            return;
        };
        let ours = self
            .framework
            .requests()
            .peek(token)
            .is_some_and(|pending| pending.target.peer == to);
        if !ours {
            return;
        }
        let Some(pending) = self.framework.requests_mut().resolve(token) else {
            return;
        };
        // The op may already have failed by its own timer.
        if self.parked.contains_key(&pending.cmd) {
            let error = OpError::new(OpErrorKind::Refused, reason.reason(), reason.detail(to));
            self.fail_parked_op(pending.cmd, error);
        }
    }

    /// Resumes the `Send` op waiting for this response, and learns from it.
    pub(super) fn receive_response(&mut self, envelope: Envelope, now_ns: u64) {
        let from = envelope.src;
        let Some(token) = envelope.wire_req_id else {
            self.receive_failed(Some(from), "a response without a correlation token".into());
            return;
        };
        match self.framework.requests().peek(token) {
            Some(pending) if pending.target.peer == from => {}
            Some(_) => {
                self.receive_failed(
                    Some(from),
                    format!("response {token} came from {from}, not from the peer asked"),
                );
                return;
            }
            None => {
                self.receive_failed(
                    Some(from),
                    format!("response {token} matches no request in flight (late or duplicate)"),
                );
                return;
            }
        }
        let Some(pending) = self.framework.requests_mut().resolve(token) else {
            return;
        };
        let elapsed = now_ns.saturating_sub(pending.sent_at_ns);
        self.framework
            .rtt_mut()
            .observe_round_trip(pending.target, None, elapsed, now_ns);
        if let Some(HealthTransition::CameUp(peer)) =
            self.framework.governor_mut().record_success(from, now_ns)
        {
            let _ = self.bus.publish(NodeEvent::PeerCameUp { peer });
        }
        if let Some(failure) = envelope.failure {
            // The peer knows why: fail the `Send` now with its reason.
            if self.parked.contains_key(&pending.cmd) {
                self.fail_parked_op(pending.cmd, Self::remote_failure(from, *failure));
            }
            return;
        }
        let completion = match envelope.fills.into_iter().next() {
            None => Completion::Failed {
                cmd: pending.cmd,
                error: OpError::new(
                    OpErrorKind::Failed,
                    "completion.failed",
                    format!("{from} answered without a value: its op failed or produced nothing"),
                ),
            },
            Some(fill) => {
                let value = match fill.payload {
                    crate::wire::Payload::Value(value) => Ok(value),
                    payload => decode_payload(&payload, &self.registry, &self.config.values),
                };
                match value {
                    Ok(value) => Completion::Values {
                        cmd: pending.cmd,
                        results: vec![(String::new(), value)],
                        charge: None,
                    },
                    Err(err) => Completion::Failed {
                        cmd: pending.cmd,
                        error: OpError::new(
                            OpErrorKind::Failed,
                            "completion.failed",
                            format!("the response from {from} could not be decoded: {err}"),
                        ),
                    },
                }
            }
        };
        self.completions.push_back(completion);
    }

    /// Phase 5: wire requests past their deadline fail their `Send` op and
    /// count as a failure of the peer asked.
    pub(super) fn expire_requests(&mut self, now_ns: u64) {
        for request in self.framework.requests_mut().drain_expired(now_ns) {
            if let Some(HealthTransition::WentDown(peer)) = self
                .framework
                .governor_mut()
                .record_failure(request.target.peer, now_ns)
            {
                let _ = self.bus.publish(NodeEvent::PeerWentDown { peer });
            }
            self.expire(request.cmd);
        }
    }

    /// Control plane: runs op `op` of `component` on a value sent by `from`.
    /// For a request, the op's first output is the response; an op that
    /// fails (or parks and then fails) is answered with an empty response,
    /// which the requester reports as a failure.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn control_call(
        &mut self,
        from: PeerId,
        component: ComponentRef,
        op: &str,
        value: Box<dyn SlotValue>,
        inbound: InboundCtx,
        request: Option<u64>,
        now_ns: u64,
    ) {
        let local = self
            .components
            .get(component.index())
            .and_then(Option::as_deref)
            .and_then(|c| c.resolve_op(op));
        let (Some(local), Some(exec_id)) = (local, self.exec_ids.mint().map(ExecId::new)) else {
            let detail = format!("{component} has no op `{op}` (or ids are exhausted)");
            self.receive_failed(Some(from), detail.clone());
            if let Some(token) = request {
                let error = OpError::new(OpErrorKind::InvalidInput, "request.no_such_op", detail);
                self.respond(from, token, Err(error));
            }
            return;
        };
        let op_ref = OpRef::new(CONTROL_SITE, component.as_u32());
        let dispatch = Dispatch::Component {
            cref: component,
            local,
        };
        let names = [String::from("response")];
        self.scratch_inputs.clear();
        self.scratch_inputs.push(Some(value));
        self.stats.ops_fired += 1;
        let result = Dispatcher {
            peer: self.peer,
            framework: &mut self.framework,
            bus: &mut self.bus,
            ingress: &self.ingress,
            components: &mut self.components,
            slots: &self.slots,
            inputs: &mut self.scratch_inputs,
            outputs: &mut self.scratch_outputs,
            completions: &mut self.scratch_completions,
            cmd_ids: &mut self.cmd_ids,
        }
        .run(OpCall {
            dispatch: &dispatch,
            op_ref,
            exec_id,
            attributes: &[],
            metadata: &[],
            output_names: &names,
            declared: 1,
            inbound,
            now_ns,
        });
        let reply = request.map(|token| (from, token));
        match result {
            Ok(Ok(DispatchResult::Immediate)) => {
                let value = self.scratch_outputs.drain(..).next();
                if let Some((to, token)) = reply {
                    self.respond(to, token, value.ok_or_else(no_answer));
                }
            }
            Ok(Ok(DispatchResult::Async(cmd))) => {
                let timer = self
                    .framework
                    .scheduler()
                    .schedule(
                        now_ns.saturating_add(self.config.default_async_timeout_ns),
                        TimerEvent::Deadline { cmd },
                    )
                    .ok();
                self.control_parked.insert(
                    cmd,
                    ControlCall {
                        exec: exec_id,
                        op: op_ref,
                        reply,
                        timer,
                    },
                );
            }
            Ok(Err(error)) => self.control_failed(exec_id, op_ref, reply, error),
            Err(panic) => {
                self.stats.ops_panicked += 1;
                let error =
                    OpError::new(OpErrorKind::Panicked, "op.panicked", panic_detail(&*panic));
                self.control_failed(exec_id, op_ref, reply, error);
            }
        }
        self.scratch_outputs.clear();
        self.stash_completions();
    }

    fn control_failed(
        &mut self,
        exec: ExecId,
        op: OpRef,
        reply: Option<(PeerId, u64)>,
        error: OpError,
    ) {
        self.stats.ops_failed += 1;
        if let Some((to, token)) = reply {
            self.respond(to, token, Err(error.clone()));
        }
        self.steps.push(Step::OpFailed { exec, op, error });
    }

    /// Finishes a parked control-plane op; `false` if `cmd` is not one.
    pub(super) fn finish_control(&mut self, cmd: CommandId, outcome: ControlOutcome) -> bool {
        let Some(call) = self.control_parked.remove(&cmd) else {
            return false;
        };
        if let Some(timer) = call.timer {
            self.framework.scheduler().cancel(timer);
        }
        match outcome {
            ControlOutcome::Value(value) => {
                self.stats.completions += 1;
                if let Some((to, token)) = call.reply {
                    self.respond(to, token, value.ok_or_else(no_answer));
                }
            }
            ControlOutcome::Failed(detail) => {
                let error = OpError::new(OpErrorKind::Failed, "completion.failed", detail);
                self.control_failed(call.exec, call.op, call.reply, error);
            }
            ControlOutcome::TimedOut => {
                self.stats.timeouts += 1;
                self.stats.ops_failed += 1;
                self.steps.push(Step::Timeout {
                    exec: call.exec,
                    op: call.op,
                    cmd,
                });
                if let Some((to, token)) = call.reply {
                    let error = OpError::new(
                        OpErrorKind::Timeout,
                        "deadline.expired",
                        format!("control-plane op {} passed its deadline", call.op),
                    );
                    self.respond(to, token, Err(error));
                }
            }
        }
        true
    }
}

/// How a parked control-plane op ended.
pub(super) enum ControlOutcome {
    Value(Option<Box<dyn SlotValue>>),
    Failed(String),
    TimedOut,
}

/// The failure a requester sees when a control-plane op produced no value.
fn no_answer() -> OpError {
    OpError::new(
        OpErrorKind::InvalidOutput,
        "reply.empty",
        "the control-plane op finished without producing an answer",
    )
}
