//! The ingress phase: mail taken off the Node's mailbox (completions,
//! envelopes, app events, invokes) is turned into executions and
//! completions, and inbound load is answered with back-off notices.

use super::{Completion, ExecOrigin, InvokeError, Node};
use crate::bus::{AppIngressErrorKind, AppIngressSource, NodeEvent};
use crate::component::{OpError, OpErrorKind};
use crate::framework::BackpressureAction;
use crate::ids::{PeerId, SiteId};
use crate::ingress::{CompletionPayload, IngressEvent, Lane};
use crate::resource::InboundCtx;
use crate::value::{BytesValue, NamedValues, SlotValue};
use crate::wire::{decode_envelope, decode_payload, Envelope, EnvelopeKind, FillTarget};

impl Node {
    pub(super) fn drain_ingress(&mut self, now_ns: u64) {
        for _ in 0..self.config.ingress_per_poll {
            // Data-lane events wait until bootstrap graphs are done; the
            // control lane always drains (bootstrap ops may be parked).
            // A Node stalled on flow-control credit takes no new data either.
            let bootstrapped = self.takes_data();
            let staged = match self.staged.front() {
                Some(event) if bootstrapped || event.lane() == Lane::Control => {
                    self.staged.pop_front()
                }
                _ => None,
            };
            let event = match staged {
                Some(event) => Some(event),
                None if bootstrapped => self.ingress.try_pop(),
                None => self.ingress.try_pop_control(),
            };
            let Some(event) = event else { break };
            self.handle_ingress(event, now_ns);
        }
        if self.framework.backpressure_mut().is_overloaded() {
            self.note_recovery(now_ns);
        }
    }

    fn handle_ingress(&mut self, event: IngressEvent, now_ns: u64) {
        match event {
            IngressEvent::Completion { cmd, payload } => {
                let (results, charge) = match payload {
                    CompletionPayload::Bytes(bytes) => {
                        let (bytes, charge) = bytes.into_parts();
                        let value: Box<dyn SlotValue> = Box::new(BytesValue::new(bytes));
                        (vec![(String::new(), value)], Some(charge))
                    }
                    CompletionPayload::Values { values, charge } => (values, Some(charge)),
                };
                self.completions.push_back(Completion::Values {
                    cmd,
                    results,
                    charge,
                });
            }
            IngressEvent::CompletionFailed { cmd, error } => {
                self.completions
                    .push_back(Completion::Failed { cmd, error: *error });
            }
            IngressEvent::IngressError(error) => {
                // A completion refused at the boundary fails its op now
                // rather than leaving it to time out.
                if let AppIngressSource::Completion { command } = error.source {
                    self.completions.push_back(Completion::Failed {
                        cmd: command,
                        error: OpError::new(
                            OpErrorKind::Failed,
                            "completion.refused",
                            format!("result refused at the Node boundary: {}", error.kind),
                        ),
                    });
                }
                self.refuse(error.source, error.kind);
            }
            IngressEvent::Envelope(envelope) => {
                self.stats.envelopes_received += 1;
                self.receive(envelope, now_ns)
            }
            IngressEvent::EnvelopeBytes(bytes) => {
                self.stats.envelopes_received += 1;
                match decode_envelope(bytes.as_slice(), &self.config.wire) {
                    Ok(decoded) => {
                        for rejected in decoded.rejected {
                            self.receive_failed(
                                Some(decoded.envelope.src),
                                format!("fill {} rejected: {}", rejected.index, rejected.reason),
                            );
                        }
                        self.receive(decoded.envelope, now_ns);
                    }
                    Err(err) => self.receive_failed(None, err.to_string()),
                }
            }
            IngressEvent::AppEvent { kind, value } => {
                let ops = self.on_trigger.get(&kind).cloned().unwrap_or_default();
                if ops.is_empty() {
                    self.refuse(
                        AppIngressSource::AppEvent { kind },
                        AppIngressErrorKind::NoSubscriber,
                    );
                }
                for op in ops {
                    self.start_triggered(op, ExecOrigin::AppEvent { kind }, value.clone_value());
                }
            }
            IngressEvent::Invoke {
                site,
                inputs,
                ticket,
            } => {
                if let Err(err) = self.start_with_inputs(
                    site,
                    ExecOrigin::Ticket(ticket),
                    InboundCtx::default(),
                    inputs,
                ) {
                    self.refuse(
                        AppIngressSource::Invoke { site },
                        match err {
                            InvokeError::TooManyExecutions { cap, .. } => {
                                AppIngressErrorKind::TooManyExecutions { cap }
                            }
                            InvokeError::Budget { in_use, limit, .. } => {
                                AppIngressErrorKind::BudgetExceeded { in_use, limit }
                            }
                            _ => AppIngressErrorKind::InvalidInvoke,
                        },
                    );
                }
            }
            _ => {}
        }
    }

    /// Handles one inbound envelope: responses resume their request,
    /// back-off notices and clears update the back-off table, data fills
    /// start one execution per target site.
    fn receive(&mut self, envelope: Envelope, now_ns: u64) {
        let from = envelope.src;
        if self.note_flow(&envelope) {
            return;
        }
        let governor = self.framework.governor();
        if governor.is_blocked(from) || (governor.allowlist_mode() && !governor.is_allowed(from)) {
            self.receive_failed(Some(from), format!("{from} is refused by peer policy"));
            if let (EnvelopeKind::Request, Some(token)) = (envelope.kind, envelope.wire_req_id) {
                let refusal = Self::refusal(
                    "gate.peer_refused",
                    format!("{from} is refused by peer policy"),
                );
                self.respond(from, token, Err(refusal));
            }
            return;
        }
        match envelope.kind {
            EnvelopeKind::Response => return self.receive_response(envelope, now_ns),
            EnvelopeKind::BackoffNotice { retry_after_ns } => {
                self.framework
                    .backoff_mut()
                    .apply_advisory(from, retry_after_ns, now_ns);
                // A built-in kind: the bus never refuses it.
                let _ = self.bus.publish(NodeEvent::BackoffNotice {
                    peer: from,
                    retry_after_ns,
                });
                return;
            }
            EnvelopeKind::BackoffClear => {
                self.framework.backoff_mut().record_success(from);
                return;
            }
            // Credit-only envelopes were handled above.
            EnvelopeKind::Credit => return,
            EnvelopeKind::Request => {
                if let Some(token) = envelope.wire_req_id {
                    if !self.framework.dedup_mut().check_and_insert(from, token) {
                        self.receive_failed(
                            Some(from),
                            format!("duplicate request {token} from {from} dropped"),
                        );
                        return;
                    }
                }
            }
            EnvelopeKind::OneWay => {}
        }
        // Under flow control the windows slow senders down; back-off
        // notices are only for senders outside it.
        if !self.framework.flow().config().enabled {
            self.note_load(from, now_ns);
        }
        let inbound = InboundCtx {
            src_peer: Some(from),
            wire_req_id: envelope.wire_req_id,
            arrival_ns: Some(now_ns),
            remaining_deadline_ns: envelope.remaining_deadline_ns,
        };
        let mut by_site: Vec<(SiteId, NamedValues)> = Vec::new();
        let mut control = Vec::new();
        let mut request = match envelope.kind {
            EnvelopeKind::Request => envelope.wire_req_id,
            _ => None,
        };
        for fill in envelope.fills {
            let target = fill.target;
            let (site, input) = match target {
                FillTarget::Site { site, input } => (site, input),
                FillTarget::ComponentOp { .. } => {
                    control.push((target, fill.payload));
                    continue;
                }
                FillTarget::Response => {
                    self.receive_failed(
                        Some(from),
                        "a response fill in an envelope that is not a response".into(),
                    );
                    continue;
                }
            };
            let value = match fill.payload {
                crate::wire::Payload::Value(value) => value,
                payload => match decode_payload(&payload, &self.registry, &self.config.values) {
                    Ok(value) => value,
                    Err(err) => {
                        let detail = format!("fill for `{input}`: {err}");
                        self.receive_failed(Some(from), detail.clone());
                        if let Some(token) = request.take() {
                            let error =
                                OpError::new(OpErrorKind::InvalidInput, "wire.bad_fill", detail);
                            self.respond(from, token, Err(error));
                        }
                        continue;
                    }
                },
            };
            match by_site.iter_mut().find(|(s, _)| *s == site) {
                Some((_, inputs)) => inputs.push((input, value)),
                None => by_site.push((site, vec![(input, value)])),
            }
        }
        if let (Some(token), true, true) = (request, by_site.is_empty(), control.is_empty()) {
            let error = OpError::new(
                OpErrorKind::InvalidInput,
                "request.empty",
                "the request carried no fill this Node could run",
            );
            self.respond(from, token, Err(error));
        }
        for (site, inputs) in by_site {
            if let Err(err) =
                self.start_with_inputs(site, ExecOrigin::Envelope { from }, inbound, inputs)
            {
                if let Some(token) = request.take() {
                    let kind = match err {
                        InvokeError::TooManyExecutions { .. } | InvokeError::Budget { .. } => {
                            OpErrorKind::ResourceExhausted
                        }
                        _ => OpErrorKind::InvalidInput,
                    };
                    let error = OpError::new(kind, "request.refused", err.to_string());
                    self.respond(from, token, Err(error));
                }
                self.receive_failed(Some(from), err.to_string());
            }
        }
        for (target, payload) in control {
            let FillTarget::ComponentOp { component, op } = target else {
                continue;
            };
            let value = match payload {
                crate::wire::Payload::Value(value) => value,
                payload => match decode_payload(&payload, &self.registry, &self.config.values) {
                    Ok(value) => value,
                    Err(err) => {
                        let detail = format!("fill for `{op}`: {err}");
                        self.receive_failed(Some(from), detail.clone());
                        if let Some(token) = request {
                            let error =
                                OpError::new(OpErrorKind::InvalidInput, "wire.bad_fill", detail);
                            self.respond(from, token, Err(error));
                        }
                        continue;
                    }
                },
            };
            self.control_call(from, component, &op, value, inbound, request, now_ns);
        }
    }

    /// Emits a back-off notice to `from` when the data lane is at its
    /// high-water mark.
    fn note_load(&mut self, from: PeerId, now_ns: u64) {
        let depth = self.ingress.data_len();
        let capacity = self.ingress.data_capacity().max(1);
        let high_water = self
            .framework
            .backpressure_mut()
            .config()
            .high_water_percent;
        if (depth as u128) * 100 < (capacity as u128) * u128::from(high_water) {
            return;
        }
        let action = self
            .framework
            .backpressure_mut()
            .on_refused(from, depth, capacity, now_ns);
        if let BackpressureAction::SendNotice { to, retry_after_ns } = action {
            let notice = Envelope::new(
                self.peer,
                to,
                EnvelopeKind::BackoffNotice { retry_after_ns },
            );
            self.framework.outbound().push(notice);
        }
    }

    /// Tells every sender that got a notice that the overload is over.
    fn note_recovery(&mut self, now_ns: u64) {
        let depth = self.ingress.data_len();
        let capacity = self.ingress.data_capacity().max(1);
        let recovered = self
            .framework
            .backpressure_mut()
            .observe_depth(depth, capacity, now_ns);
        for peer in recovered {
            let clear = Envelope::new(self.peer, peer, EnvelopeKind::BackoffClear);
            self.framework.outbound().push(clear);
        }
    }
}
