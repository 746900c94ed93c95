//! Shared harness for the engine integration tests: test components and a
//! driver that polls a Node until it is idle and collects every step.
#![allow(dead_code, clippy::unwrap_used)]

use nodeflow_engine::sync::atomic::{AtomicUsize, Ordering};
use nodeflow_engine::sync::{Arc, Mutex};
use nodeflow_engine::{
    CompletionHandle, Component, DispatchResult, ExecId, LocalOpId, Node, OpError, OpErrorKind,
    OpInputs, OpOutputs, RuntimeResourceRef, SlotValue, Step, U64Value,
};

/// Polls at `now` until the Node has no work, returning every step.
pub fn drive(node: &mut Node, now: u64) -> Vec<Step> {
    let mut steps = Vec::new();
    for _ in 0..10_000 {
        steps.extend(node.poll(now));
        if !node.has_work() {
            return steps;
        }
    }
    panic!("node still has work after 10 000 polls");
}

/// One finished execution: id, outputs by name (as u64 where they are), missing names.
pub type Finished = (ExecId, Vec<(String, Option<u64>)>, Vec<String>);

/// One logged firing: the op's first output name and the inputs it saw.
pub type Firing = (String, Vec<Option<u64>>);

/// The `ExecFinished` steps.
pub fn finished(steps: &[Step]) -> Vec<Finished> {
    steps
        .iter()
        .filter_map(|step| match step {
            Step::ExecFinished {
                exec,
                outputs,
                missing,
                ..
            } => Some((
                *exec,
                outputs
                    .iter()
                    .map(|(name, value)| (name.clone(), as_u64(value.as_ref())))
                    .collect(),
                missing.clone(),
            )),
            _ => None,
        })
        .collect()
}

/// The error of every `OpFailed` step.
pub fn failures(steps: &[Step]) -> Vec<OpError> {
    steps
        .iter()
        .filter_map(|step| match step {
            Step::OpFailed { error, .. } => Some(error.clone()),
            _ => None,
        })
        .collect()
}

pub fn as_u64(value: &dyn SlotValue) -> Option<u64> {
    value.downcast_ref::<U64Value>().map(|v| v.0)
}

pub fn u64v(v: u64) -> Box<dyn SlotValue> {
    Box::new(U64Value(v))
}

/// Arithmetic ops over `U64Value`s that count and log every firing.
///
/// Ops: `Add` (2 in, 1 out), `Double` (1 in, 1 out), `Log` (n in, 1 out:
/// records the inputs it saw, outputs their sum), `Panic` (panics),
/// `Fail` (typed error), `Later` (parks; the handle is kept in `handles`),
/// `Now` (parks and completes in the same dispatch).
#[derive(Clone, Default)]
pub struct Math {
    pub fired: Arc<AtomicUsize>,
    pub log: Arc<Mutex<Vec<Firing>>>,
    pub handles: Arc<Mutex<Vec<CompletionHandle<u64, String>>>>,
}

const ADD: LocalOpId = LocalOpId(0);
const DOUBLE: LocalOpId = LocalOpId(1);
const LOG: LocalOpId = LocalOpId(2);
const PANIC: LocalOpId = LocalOpId(3);
const FAIL: LocalOpId = LocalOpId(4);
const LATER: LocalOpId = LocalOpId(5);
const NOW: LocalOpId = LocalOpId(6);

impl Component for Math {
    fn kind(&self) -> &str {
        "math"
    }

    fn resolve_op(&self, op_type: &str) -> Option<LocalOpId> {
        Some(match op_type {
            "Add" => ADD,
            "Double" => DOUBLE,
            "Log" => LOG,
            "Panic" => PANIC,
            "Fail" => FAIL,
            "Later" => LATER,
            "Now" => NOW,
            _ => return None,
        })
    }

    fn dispatch_atomic(
        &mut self,
        op: LocalOpId,
        ctx: &mut RuntimeResourceRef<'_>,
        inputs: &mut OpInputs<'_>,
        outputs: &mut OpOutputs<'_>,
    ) -> Result<DispatchResult, OpError> {
        self.fired.fetch_add(1, Ordering::SeqCst);
        match op {
            ADD => {
                let a = inputs.get_as::<U64Value>(0)?.0;
                let b = inputs.get_as::<U64Value>(1)?.0;
                outputs.push(u64v(a + b))?;
            }
            DOUBLE => {
                let a = inputs.get_as::<U64Value>(0)?.0;
                outputs.push(u64v(a * 2))?;
            }
            LOG => {
                let seen: Vec<Option<u64>> = (0..inputs.len())
                    .map(|i| inputs.get(i).and_then(as_u64))
                    .collect();
                let sum = seen.iter().flatten().sum();
                let name = ctx.current.outputs.first().cloned().unwrap_or_default();
                self.log.lock().push((name, seen));
                outputs.push(u64v(sum))?;
            }
            PANIC => panic!("the op blew up"),
            FAIL => {
                return Err(OpError::new(
                    OpErrorKind::InvalidInput,
                    "math.fail",
                    "asked to fail",
                ))
            }
            LATER => {
                let handle = ctx.open_completion::<u64, String>()?;
                let cmd = handle.cmd_id();
                self.handles.lock().push(handle);
                return Ok(DispatchResult::Async(cmd));
            }
            NOW => {
                let cmd = ctx.allocate_command_id()?;
                let a = inputs.get_as::<U64Value>(0)?.0;
                let name = ctx.current.outputs[0].clone();
                ctx.complete_command(cmd, vec![(name, u64v(a + 1))]);
                return Ok(DispatchResult::Async(cmd));
            }
            _ => unreachable!("resolve_op hands out only the ids above"),
        }
        Ok(DispatchResult::Immediate)
    }
}
