//! Parked ops: results and failures for a command resume or fail the op
//! parked on it, and timed-out commands expire.

use super::correlation::ControlOutcome;
use super::executions::{exec_slot, write_value};
use super::{Completion, Node, Parked, Step};
use crate::budget::ByteCharge;
use crate::bus::NodeEvent;
use crate::component::{OpError, OpErrorKind};
use crate::ids::{CommandId, OpRef};
use crate::value::SlotValue;

impl Node {
    /// Moves completions recorded during a dispatch to where they wait:
    /// same-cycle ones to the completion queue, timed ones until their timer.
    pub(super) fn stash_completions(&mut self) {
        for completion in self.scratch_completions.drain(..) {
            match completion.due_ns {
                Some(_) => {
                    self.deferred.insert(completion.cmd_id, completion.results);
                }
                None => self.completions.push_back(Completion::Values {
                    cmd: completion.cmd_id,
                    results: completion.results,
                    charge: None,
                }),
            }
        }
    }

    pub(super) fn apply_completions(&mut self, _now_ns: u64) {
        while let Some(completion) = self.completions.pop_front() {
            match completion {
                Completion::Values {
                    cmd,
                    results,
                    charge,
                } => self.complete(cmd, results, charge),
                Completion::Failed { cmd, error } => self.fail_parked(cmd, error),
            }
        }
    }

    fn complete(
        &mut self,
        cmd: CommandId,
        results: Vec<(String, Box<dyn SlotValue>)>,
        charge: Option<ByteCharge>,
    ) {
        if self.control_parked.contains_key(&cmd) {
            let value = results.into_iter().next().map(|(_, value)| value);
            self.finish_control(cmd, ControlOutcome::Value(value));
            drop(charge);
            return;
        }
        let Some(parked) = self.take_parked(cmd, false) else {
            return;
        };
        self.stats.completions += 1;
        let Some(exec) = exec_slot(&mut self.execs, parked.slot, parked.gen) else {
            return;
        };
        exec.pending -= 1;
        if let Some(charge) = charge {
            exec.charges.push(charge);
        }
        let graph = &self.graphs[exec.site.as_u32() as usize];
        let compiled = &graph.ops[parked.op as usize];
        let declared = compiled.output_names.len();
        let mut written = 0;
        let mut unknown = None;
        for (name, value) in results {
            // Bytes completions carry no name: they fill the first output.
            let position = if name.is_empty() {
                (declared > 0).then_some(0)
            } else {
                compiled.output_names.iter().position(|n| *n == name)
            };
            match position {
                Some(position) => {
                    if let Some(value_index) = graph.topo.op_outputs(parked.op)[position] {
                        write_value(
                            exec,
                            graph,
                            value_index.index(),
                            value,
                            parked.slot,
                            parked.gen,
                            &mut self.frontier,
                        );
                    }
                    written += 1;
                }
                None => unknown = Some(name),
            }
        }
        let exec_id = exec.id;
        let op = compiled.op_ref;
        if let Some(name) = unknown {
            self.stats.ops_failed += 1;
            self.steps.push(Step::OpFailed {
                exec: exec_id,
                op,
                error: OpError::new(
                    OpErrorKind::InvalidOutput,
                    "completion.unknown_output",
                    format!("the completion names output `{name}`, which the op does not declare"),
                ),
            });
        } else if written < declared {
            self.steps.push(Step::OutputsSuppressed {
                exec: exec_id,
                op,
                written,
                declared,
            });
        } else if self.config.trace_ops {
            self.steps.push(Step::OpCompleted { exec: exec_id, op });
        }
        self.finish_if_idle(parked.slot);
    }

    fn fail_parked(&mut self, cmd: CommandId, error: OpError) {
        if self.control_parked.contains_key(&cmd) {
            self.finish_control(cmd, ControlOutcome::Failed(error.detail));
            return;
        }
        self.fail_parked_op(cmd, error);
    }

    /// Fails the graph op parked on `cmd` with `error`; its execution ends
    /// if nothing else of it is queued or parked.
    pub(super) fn fail_parked_op(&mut self, cmd: CommandId, error: OpError) {
        let Some(parked) = self.take_parked(cmd, true) else {
            return;
        };
        self.stats.ops_failed += 1;
        let Some(exec) = exec_slot(&mut self.execs, parked.slot, parked.gen) else {
            return;
        };
        exec.pending -= 1;
        let exec_id = exec.id;
        let op = OpRef::new(exec.site, parked.op);
        self.steps.push(Step::OpFailed {
            exec: exec_id,
            op,
            error,
        });
        self.finish_if_idle(parked.slot);
    }

    /// Removes a parked op and cancels its deadline; reports unknown commands.
    fn take_parked(&mut self, cmd: CommandId, failure: bool) -> Option<Parked> {
        let Some(parked) = self.parked.remove(&cmd) else {
            self.stats.unknown_completions += 1;
            self.steps.push(Step::UnknownCompletion { cmd, failure });
            // The bus only refuses user events in the reserved range; this is a built-in event.
            let _ = self
                .bus
                .publish(NodeEvent::UnknownCompletion { cmd, failure });
            return None;
        };
        if let Some(timer) = parked.timer {
            self.framework.scheduler().cancel(timer);
        }
        Some(parked)
    }

    pub(super) fn expire(&mut self, cmd: CommandId) {
        if self.finish_control(cmd, ControlOutcome::TimedOut) {
            return;
        }
        if let Some(held) = self.framework.flow_mut().cancel(cmd) {
            // It never left: fail with the reason, not a bare timeout.
            if let Some(token) = held.envelope.wire_req_id {
                if held.completes.is_none() {
                    self.framework.requests_mut().resolve(token);
                }
            }
            self.stats.timeouts += 1;
            let error = OpError::new(
                OpErrorKind::Timeout,
                "wire.no_credit",
                format!(
                    "{} granted no flow-control credit before the deadline (its mailbox is \
                     not draining); nothing was sent",
                    held.envelope.dst
                ),
            );
            self.fail_parked_op(cmd, error);
            return;
        }
        let Some(parked) = self.parked.remove(&cmd) else {
            return;
        };
        if let Some(timer) = parked.timer {
            self.framework.scheduler().cancel(timer);
        }
        self.deferred.remove(&cmd);
        self.stats.timeouts += 1;
        self.stats.ops_failed += 1;
        let Some(exec) = self.exec_mut(parked.slot, parked.gen) else {
            return;
        };
        exec.pending -= 1;
        let exec_id = exec.id;
        let op = OpRef::new(exec.site, parked.op);
        self.steps.push(Step::Timeout {
            exec: exec_id,
            op,
            cmd,
        });
        self.finish_if_idle(parked.slot);
    }
}
