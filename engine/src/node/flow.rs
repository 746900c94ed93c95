//! The Node's side of flow control and of answers that always arrive
//! (ARCHITECTURE §3.1): credits taken and returned, held envelopes
//! released, and typed failure responses for requests that cannot be
//! answered with a value.
//!
//! * Receiving: every `OneWay` / `Request` envelope taken from the mailbox
//!   owes its sender a credit; credits ride on the control-lane envelopes
//!   this Node sends that sender anyway (responses) and otherwise leave in
//!   a `Credit` envelope once a batch is owed ([`Node::return_credits`],
//!   run in the outbound phase).
//! * Sending: credit that comes back (alone or piggy-backed) releases held
//!   envelopes in order; a released one-way `Send` completes then.
//! * A request is always answered: with the handler's value (`Reply`), or
//!   at once with a typed failure when it is refused at this Node, when its
//!   handler fails, or when its execution ends without a `Reply`.

use super::{Completion, Node, Step};
use crate::component::{OpError, OpErrorKind};
use crate::framework::{FlowLedger, Held};
use crate::ids::{ExecId, PeerId};
use crate::value::{SlotValue, Trigger};
use crate::wire::{Envelope, EnvelopeKind, Fill, FillTarget, Payload};

impl Node {
    /// Whether the Node takes data-lane input now: its bootstrap graphs
    /// are done and fewer than its cap of `Send`s wait for flow-control
    /// credit. A host sleeping while this is false waits for control-lane
    /// mail only (credit, answers, completions), since queued data would
    /// wake it for nothing.
    pub fn takes_data(&self) -> bool {
        self.is_bootstrapped() && !self.framework.flow().is_stalled()
    }

    /// The credit state to carry into a restarted incarnation
    /// ([`Node::adopt_flow_ledger`]).
    pub fn flow_ledger(&self) -> FlowLedger {
        self.framework.flow().ledger()
    }

    /// Takes over the credit state of the incarnation this Node replaces
    /// (a supervisor calls it after restoring from a snapshot, as it does
    /// with [`Node::skip_ids_past`]): credits move with envelopes the
    /// snapshot does not know about, so the windows would otherwise shrink
    /// or widen. Held envelopes with credit available leave on the next poll.
    pub fn adopt_flow_ledger(&mut self, ledger: &FlowLedger) {
        self.framework.flow_mut().adopt(ledger);
        let mut released = Vec::new();
        self.framework.flow_mut().release_ready(&mut released);
        self.release_held(released);
    }

    /// Receiver side: `envelope` from `from` was taken from the mailbox.
    /// Returns `true` when it carried only credit (nothing else to do).
    pub(super) fn note_flow(&mut self, envelope: &Envelope) -> bool {
        let from = envelope.src;
        if envelope.uses_credit() {
            self.framework.flow_mut().note_taken(from);
        }
        if envelope.credit > 0 {
            let mut released = Vec::new();
            self.framework
                .flow_mut()
                .grant(from, envelope.credit, &mut released);
            self.release_held(released);
        }
        envelope.kind == EnvelopeKind::Credit
    }

    /// A credited envelope this Node sent never reached its receiver: the
    /// credit is given back (it may release the next held envelope).
    pub(super) fn refund_credit(&mut self, to: PeerId) {
        let mut released = Vec::new();
        self.framework.flow_mut().refund(to, &mut released);
        self.release_held(released);
    }

    /// Sends released envelopes and completes their one-way `Send`s.
    pub(super) fn release_held(&mut self, released: Vec<Held>) {
        for held in released {
            self.framework.outbound().push(held.envelope);
            if let Some(outputs) = held.completes {
                let results: Vec<(String, Box<dyn SlotValue>)> = if outputs == 1 {
                    vec![(String::new(), Box::new(Trigger))]
                } else {
                    Vec::new()
                };
                self.completions.push_back(Completion::Values {
                    cmd: held.cmd,
                    results,
                    charge: None,
                });
            }
        }
    }

    /// Outbound phase: credits ride on control-lane envelopes already
    /// queued for their sender; a batch still owed leaves in a `Credit`
    /// envelope. A draining Node returns everything it owes.
    pub(super) fn return_credits(&mut self, everything: bool) {
        if !self.framework.flow().owes() {
            return;
        }
        let (outbound, flow) = self.framework.outbound_and_flow();
        for envelope in outbound.iter_mut() {
            if envelope.is_control() {
                envelope.credit = envelope.credit.saturating_add(flow.take_owed(envelope.dst));
            }
        }
        let me = self.peer;
        let mut credits = Vec::new();
        let each = |peer: PeerId, owed: u32| {
            credits.push(Envelope::new(me, peer, EnvelopeKind::Credit).with_credit(owed))
        };
        if everything {
            flow.take_all_owed(each);
        } else {
            flow.due_returns(each);
        }
        for envelope in credits {
            outbound.push(envelope);
        }
    }

    /// Answers request `token` of `to`: with `answer`'s value, or with its
    /// typed failure.
    pub(super) fn respond(
        &mut self,
        to: PeerId,
        token: u64,
        answer: Result<Box<dyn SlotValue>, OpError>,
    ) {
        let response = Envelope::new(self.peer, to, EnvelopeKind::Response).with_request_id(token);
        let response = match answer {
            Ok(value) => response.with_fill(Fill {
                target: FillTarget::Response,
                payload: Payload::Value(value),
            }),
            Err(error) => response.with_failure(error),
        };
        self.framework.outbound().push(response);
    }

    /// A request's execution `exec` ended without a `Reply`: answers it with
    /// the failure that stopped it (the last one this poll reported for
    /// it), or with `reply.missing`.
    pub(super) fn answer_unreplied(&mut self, exec: ExecId, to: PeerId, token: u64) {
        let failure = self.steps.iter().rev().find_map(|step| match step {
            Step::OpFailed { exec: e, error, .. } if *e == exec => Some(error.clone()),
            Step::Timeout { exec: e, op, .. } if *e == exec => Some(OpError::new(
                OpErrorKind::Timeout,
                "deadline.expired",
                format!("op {op} of the handler passed its deadline"),
            )),
            _ => None,
        });
        let error = failure.unwrap_or_else(|| {
            OpError::new(
                OpErrorKind::Failed,
                "reply.missing",
                "the handler's execution ended without a Reply",
            )
        });
        self.respond(to, token, Err(error));
    }

    /// The failure a requester sees when its request was refused here.
    pub(super) fn refusal(reason: &'static str, detail: String) -> OpError {
        OpError::new(OpErrorKind::Refused, reason, detail)
    }

    /// The typed failure carried by a response from `from`, as the
    /// requester's `Send` reports it: the remote kind and reason, with the
    /// peer named in the detail.
    pub(super) fn remote_failure(from: PeerId, failure: OpError) -> OpError {
        OpError::new(
            failure.kind,
            failure.reason,
            format!("{from} answered with a failure: {}", failure.detail),
        )
    }
}
