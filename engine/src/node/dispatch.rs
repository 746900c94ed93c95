//! Firing a ready op: its inputs are read, the op is dispatched (a syscall,
//! a component op, or a `Call` that runs a child execution) with panics
//! caught, and its outputs are written or its command parked.

use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};

use super::executions::{exec_slot, write_value};
use super::install::{CompiledGraph, Dispatch};
use super::{ExecOrigin, Execution, Node, Parked, Ready, Step};
use crate::bus::TypedBus;
use crate::component::{Component, DispatchResult, OpError, OpErrorKind, OpInputs, OpOutputs};
use crate::framework_state::Framework;
use crate::ids::{CommandId, ComponentRef, ExecId, IdCounter, OpRef, PeerId, SiteId};
use crate::ingress::IngressQueue;
use crate::resource::{ComponentsView, CurrentCallCtx, InboundCtx, PendingCompletion, TimerEvent};
use crate::sync::Arc;
use crate::syscall::{dispatch_syscall, Syscall};
use crate::value::SlotValue;

impl Node {
    pub(super) fn fire(&mut self, ready: Ready, now_ns: u64) {
        let Some(exec) = exec_slot(&mut self.execs, ready.slot, ready.gen) else {
            self.stats.stale_frontier += 1;
            return;
        };
        exec.pending -= 1;
        let op = ready.op as usize;
        if exec.fired[op] || exec.missing[op] != 0 {
            self.stats.stale_frontier += 1;
            self.finish_if_idle(ready.slot);
            return;
        }
        exec.fired[op] = true;
        self.stats.ops_fired += 1;
        let graph = &self.graphs[exec.site.as_u32() as usize];
        let compiled = &graph.ops[op];
        let exec_id = exec.id;

        if let Dispatch::Syscall(Syscall::PassThrough) = compiled.dispatch {
            // Fast path: the value moves from the input slot to the output
            // slot without the scratch vectors; no resource handle is built
            // (PassThrough touches none). It has one input port (checked
            // when the syscall parses); the last port's value is forwarded.
            let mut value = None;
            for port in graph.topo.op_inputs(ready.op) {
                value = port.and_then(|value| read_input(exec, graph, value.index()));
            }
            let op_ref = compiled.op_ref;
            match (value, graph.topo.op_outputs(ready.op).first()) {
                (Some(value), Some(Some(index))) => {
                    write_value(
                        exec,
                        graph,
                        index.index(),
                        value,
                        ready.slot,
                        ready.gen,
                        &mut self.frontier,
                    );
                    if self.config.trace_ops {
                        self.steps.push(Step::OpCompleted {
                            exec: exec_id,
                            op: op_ref,
                        });
                    }
                }
                (Some(_), _) => {}
                (None, _) => {
                    self.stats.ops_failed += 1;
                    self.steps.push(Step::OpFailed {
                        exec: exec_id,
                        op: op_ref,
                        error: OpError::new(
                            OpErrorKind::InvalidInput,
                            "input.missing",
                            "input 0 is absent",
                        ),
                    });
                }
            }
            if exec.pending == 0 {
                self.finish_if_idle(ready.slot);
            }
            return;
        }

        // Gather inputs: the last reader of a value takes it, earlier ones clone.
        self.scratch_inputs.clear();
        for port in graph.topo.op_inputs(ready.op) {
            let value = port.and_then(|value| read_input(exec, graph, value.index()));
            self.scratch_inputs.push(value);
        }

        if let Dispatch::Call { callee } = compiled.dispatch {
            self.call(ready, exec_id, callee);
            return;
        }
        if compiled.may_park && self.parked.len() >= self.config.max_pending_async {
            self.stats.ops_failed += 1;
            self.steps.push(Step::OpFailed {
                exec: exec_id,
                op: compiled.op_ref,
                error: OpError::new(
                    OpErrorKind::ResourceExhausted,
                    "async.cap",
                    format!(
                        "{} ops are parked, the cap is {}; the op was not run",
                        self.parked.len(),
                        self.config.max_pending_async
                    ),
                ),
            });
            self.finish_if_idle(ready.slot);
            return;
        }

        let node_op = &graph.graph.ops[op];
        let declared = compiled.output_names.len();
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
            dispatch: &compiled.dispatch,
            op_ref: compiled.op_ref,
            exec_id,
            attributes: &node_op.attributes,
            metadata: &node_op.metadata,
            output_names: &compiled.output_names,
            declared,
            inbound: exec.inbound,
            now_ns,
        });
        self.scratch_inputs.clear();

        let op_ref = compiled.op_ref;
        match result {
            Ok(Ok(DispatchResult::Immediate)) => {
                let written = self.scratch_outputs.len();
                for (position, value) in self.scratch_outputs.drain(..).enumerate() {
                    if let Some(index) = graph.topo.op_outputs(ready.op)[position] {
                        write_value(
                            exec,
                            graph,
                            index.index(),
                            value,
                            ready.slot,
                            ready.gen,
                            &mut self.frontier,
                        );
                    }
                }
                if written < declared {
                    self.steps.push(Step::OutputsSuppressed {
                        exec: exec_id,
                        op: op_ref,
                        written,
                        declared,
                    });
                } else if self.config.trace_ops {
                    self.steps.push(Step::OpCompleted {
                        exec: exec_id,
                        op: op_ref,
                    });
                }
            }
            Ok(Ok(DispatchResult::Async(cmd))) => {
                exec.pending += 1;
                let timeout = node_op
                    .attr_int("timeout_ns")
                    .ok()
                    .and_then(|t| u64::try_from(t).ok())
                    .unwrap_or(self.config.default_async_timeout_ns);
                let timer = self
                    .framework
                    .scheduler()
                    .schedule(now_ns.saturating_add(timeout), TimerEvent::Deadline { cmd })
                    .ok();
                self.parked.insert(
                    cmd,
                    Parked {
                        slot: ready.slot,
                        gen: ready.gen,
                        op: ready.op,
                        timer,
                    },
                );
                if self.config.trace_ops {
                    self.steps.push(Step::OpSuspended {
                        exec: exec_id,
                        op: op_ref,
                        cmd,
                    });
                }
            }
            Ok(Err(error)) => {
                self.scratch_outputs.clear();
                self.stats.ops_failed += 1;
                self.steps.push(Step::OpFailed {
                    exec: exec_id,
                    op: op_ref,
                    error,
                });
            }
            Err(panic) => {
                self.scratch_outputs.clear();
                self.stats.ops_failed += 1;
                self.stats.ops_panicked += 1;
                let detail = panic_detail(&*panic);
                self.steps.push(Step::OpFailed {
                    exec: exec_id,
                    op: op_ref,
                    error: OpError::new(OpErrorKind::Panicked, "op.panicked", detail),
                });
            }
        }
        self.stash_completions();
        self.finish_if_idle(ready.slot);
    }

    /// Fires a `Call` op: the callee runs as a child execution and the
    /// caller parks until it ends.
    fn call(&mut self, ready: Ready, exec_id: ExecId, callee: SiteId) {
        let Some(cmd) = self.cmd_ids.mint().map(CommandId::new) else {
            self.stats.ops_failed += 1;
            self.steps.push(Step::OpFailed {
                exec: exec_id,
                op: OpRef::new(
                    self.exec_ref(ready.slot)
                        .map_or(SiteId::default(), |e| e.site),
                    ready.op,
                ),
                error: OpError::new(
                    OpErrorKind::ResourceExhausted,
                    "command_id.exhausted",
                    "command ids exhausted",
                ),
            });
            self.finish_if_idle(ready.slot);
            return;
        };
        let inputs: Vec<Option<Box<dyn SlotValue>>> = self.scratch_inputs.drain(..).collect();
        let inbound = self
            .exec_ref(ready.slot)
            .map(|e| e.inbound)
            .unwrap_or_default();
        match self.start_execution(
            callee,
            ExecOrigin::Call { parent: exec_id },
            inbound,
            Some(cmd),
        ) {
            Ok((slot, gen)) => {
                if let Some(parent) = exec_slot(&mut self.execs, ready.slot, ready.gen) {
                    parent.pending += 1;
                }
                self.parked.insert(
                    cmd,
                    Parked {
                        slot: ready.slot,
                        gen: ready.gen,
                        op: ready.op,
                        timer: None,
                    },
                );
                let child = exec_slot(&mut self.execs, slot, gen).expect("just started");
                let graph = &self.graphs[callee.as_u32() as usize];
                for (position, value) in inputs.into_iter().enumerate() {
                    if let Some(value) = value {
                        let index = graph.topo.graph_inputs()[position].index();
                        write_value(child, graph, index, value, slot, gen, &mut self.frontier);
                    }
                }
                self.finish_if_idle(slot);
            }
            Err(kind) => {
                self.stats.ops_failed += 1;
                let site = self
                    .exec_ref(ready.slot)
                    .map_or(SiteId::default(), |e| e.site);
                self.steps.push(Step::OpFailed {
                    exec: exec_id,
                    op: OpRef::new(site, ready.op),
                    error: OpError::new(
                        OpErrorKind::ResourceExhausted,
                        "call.refused",
                        kind.to_string(),
                    ),
                });
                self.finish_if_idle(ready.slot);
            }
        }
    }
}

/// One op dispatch: what it is and the context it runs in.
pub(super) struct OpCall<'a> {
    pub(super) dispatch: &'a Dispatch,
    pub(super) op_ref: OpRef,
    pub(super) exec_id: ExecId,
    pub(super) attributes: &'a [crate::graph::Attribute],
    pub(super) metadata: &'a [crate::graph::MetadataEntry],
    pub(super) output_names: &'a [String],
    pub(super) declared: usize,
    pub(super) inbound: InboundCtx,
    pub(super) now_ns: u64,
}

/// The parts of a Node a dispatch borrows: it builds the resource handle,
/// takes the dispatching component out of the table for the call, runs the
/// op with panics caught, and puts the component back.
pub(super) struct Dispatcher<'a> {
    pub(super) peer: PeerId,
    pub(super) framework: &'a mut Framework,
    pub(super) bus: &'a mut TypedBus,
    pub(super) ingress: &'a Arc<IngressQueue>,
    pub(super) components: &'a mut [Option<Box<dyn Component>>],
    pub(super) slots: &'a HashMap<String, ComponentRef>,
    pub(super) inputs: &'a mut Vec<Option<Box<dyn SlotValue>>>,
    pub(super) outputs: &'a mut Vec<Box<dyn SlotValue>>,
    pub(super) completions: &'a mut Vec<PendingCompletion>,
    pub(super) cmd_ids: &'a mut IdCounter,
}

impl Dispatcher<'_> {
    /// Runs `call`; the outer `Err` is a caught panic. Inputs are consumed.
    pub(super) fn run(
        self,
        call: OpCall<'_>,
    ) -> std::thread::Result<Result<DispatchResult, OpError>> {
        let cref = match call.dispatch {
            Dispatch::Component { cref, .. } => Some(*cref),
            _ => None,
        };
        let mut component = cref.and_then(|cref| self.components.get_mut(cref.index())?.take());
        let result = {
            let current = CurrentCallCtx {
                op_ref: call.op_ref,
                exec_id: call.exec_id,
                self_peer: self.peer,
                attributes: call.attributes,
                metadata: call.metadata,
                outputs: call.output_names,
                inbound: call.inbound,
                pending_completions: self.completions,
                next_command_id: self.cmd_ids,
            };
            let view = ComponentsView {
                instances: Some(self.components),
                slots: Some(self.slots),
            };
            let mut ctx =
                self.framework
                    .resource_ref(call.now_ns, self.bus, self.ingress, view, current);
            let mut inputs = OpInputs::new(self.inputs);
            let mut outputs = OpOutputs::new(self.outputs, call.declared);
            catch_unwind(AssertUnwindSafe(|| {
                match (call.dispatch, component.as_mut()) {
                    (Dispatch::Syscall(syscall), _) => {
                        dispatch_syscall(syscall, &mut ctx, &mut inputs, &mut outputs)
                    }
                    (Dispatch::Component { local, .. }, Some(component)) => {
                        component.dispatch_atomic(*local, &mut ctx, &mut inputs, &mut outputs)
                    }
                    _ => Err(OpError::new(
                        OpErrorKind::Internal,
                        "component.missing",
                        "the op's component is not in the table",
                    )),
                }
            }))
        };
        if let Some(cref) = cref {
            self.components[cref.index()] = component;
        }
        self.inputs.clear();
        result
    }
}

/// One input port's read of value `v`: the last reader takes the value,
/// earlier ones clone it (graph outputs are always cloned: they are kept
/// until the execution ends).
fn read_input(exec: &mut Execution, graph: &CompiledGraph, v: usize) -> Option<Box<dyn SlotValue>> {
    exec.reads_left[v] -= 1;
    if exec.reads_left[v] == 0 && !graph.is_output[v] {
        exec.values[v].take()
    } else {
        exec.values[v].as_ref().map(|value| value.clone_value())
    }
}

/// The message of a caught panic.
pub(super) fn panic_detail(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-string panic payload".to_owned())
}
