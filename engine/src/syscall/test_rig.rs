//! Test-only harness that owns everything a resource handle borrows, so a
//! syscall test can parse an op, dispatch it and inspect the framework.
//!
//! Invariants: one rig is one Node; `run` builds a fresh handle per call
//! with the rig's current execution, op and inbound context.

use crate::budget::ByteBudget;
use crate::bus::TypedBus;
use crate::component::{DispatchResult, OpError, OpInputs, OpOutputs};
use crate::framework_state::{Framework, FrameworkConfig};
use crate::graph::{Attribute, AttributeValue, OpNode, SYSCALL_DOMAIN};
use crate::ids::{ExecId, IdCounter, OpRef, PeerId, SiteId};
use crate::ingress::{IngressConfig, IngressQueue};
use crate::resource::{
    ComponentsView, CurrentCallCtx, InboundCtx, PendingCompletion, RuntimeResourceRef,
};
use crate::sync::Arc;
use crate::syscall::{dispatch_syscall, Syscall};
use crate::value::SlotValue;

/// This Node's own peer id in every rig.
pub(super) const SELF: PeerId = PeerId::new(7);

/// A syscall op named `op` with inputs `in0..` and outputs `out0..`.
pub(super) fn op(op_type: &str, inputs: usize, outputs: usize) -> OpNode {
    let mut node = OpNode::new("op", op_type);
    node.domain = SYSCALL_DOMAIN.to_owned();
    node.inputs = (0..inputs).map(|i| format!("in{i}")).collect();
    node.outputs = (0..outputs).map(|i| format!("out{i}")).collect();
    node
}

/// Builder-style attribute setter for test ops.
pub(super) trait WithAttr {
    /// Adds attribute `name`.
    fn with(self, name: &str, value: impl Into<AttributeValue>) -> Self;
}

impl WithAttr for OpNode {
    fn with(mut self, name: &str, value: impl Into<AttributeValue>) -> Self {
        self.attributes.push(Attribute {
            name: name.to_owned(),
            value: value.into(),
        });
        self
    }
}

/// An input buffer holding `values` in order.
pub(super) fn inputs<T: SlotValue, const N: usize>(
    values: [T; N],
) -> Vec<Option<Box<dyn SlotValue>>> {
    values
        .into_iter()
        .map(|v| Some(Box::new(v) as Box<dyn SlotValue>))
        .collect()
}

/// What one dispatch produced.
#[derive(Debug)]
pub(super) struct Ran {
    /// The dispatch result.
    pub(super) result: DispatchResult,
    /// The outputs written, in order.
    pub(super) outputs: Vec<Box<dyn SlotValue>>,
}

impl Ran {
    /// The outputs as `T`s (panics, in tests, on another type).
    pub(super) fn values<T: SlotValue + Clone>(&self) -> Vec<T> {
        self.outputs
            .iter()
            .map(|v| {
                v.downcast_ref::<T>()
                    .expect("output of the asked type")
                    .clone()
            })
            .collect()
    }
}

/// Everything a handle borrows, owned by the test.
pub(super) struct Rig {
    pub(super) framework: Framework,
    pub(super) bus: TypedBus,
    pub(super) ingress: Arc<IngressQueue>,
    pub(super) completions: Vec<PendingCompletion>,
    pub(super) ids: IdCounter,
    pub(super) output_names: Vec<String>,
    pub(super) inbound: InboundCtx,
    pub(super) exec: ExecId,
    pub(super) op_ref: OpRef,
    /// Outputs the last `run` wrote before it returned (also on error).
    pub(super) last_written: usize,
}

impl Rig {
    /// A rig with default framework caps.
    pub(super) fn new() -> Self {
        Self::with_config(&FrameworkConfig::default())
    }

    /// A rig with the given framework caps.
    pub(super) fn with_config(config: &FrameworkConfig) -> Self {
        Self {
            framework: Framework::new(config).expect("a valid test config"),
            bus: TypedBus::new(16),
            ingress: Arc::new(IngressQueue::new(
                IngressConfig::default(),
                ByteBudget::new(1 << 20),
            )),
            completions: Vec::new(),
            ids: IdCounter::starting_at(1),
            output_names: Vec::new(),
            inbound: InboundCtx::default(),
            exec: ExecId::new(9),
            op_ref: OpRef::new(SiteId::new(1), 3),
            last_written: 0,
        }
    }

    /// A handle at `now_ns` for the rig's current op and execution.
    pub(super) fn handle(&mut self, now_ns: u64) -> RuntimeResourceRef<'_> {
        let current = CurrentCallCtx {
            op_ref: self.op_ref,
            exec_id: self.exec,
            self_peer: SELF,
            attributes: &[],
            metadata: &[],
            outputs: &self.output_names,
            inbound: self.inbound,
            pending_completions: &mut self.completions,
            next_command_id: &mut self.ids,
        };
        self.framework.resource_ref(
            now_ns,
            &mut self.bus,
            &self.ingress,
            ComponentsView::default(),
            current,
        )
    }

    /// Dispatches `syscall` at `now_ns` with `values` as inputs and
    /// `declared` outputs named `out0..`.
    pub(super) fn run(
        &mut self,
        syscall: &Syscall,
        now_ns: u64,
        mut values: Vec<Option<Box<dyn SlotValue>>>,
        declared: usize,
    ) -> Result<Ran, OpError> {
        self.output_names = (0..declared).map(|i| format!("out{i}")).collect();
        let mut written = Vec::new();
        let mut ctx = self.handle(now_ns);
        let mut op_inputs = OpInputs::new(&mut values);
        let mut op_outputs = OpOutputs::new(&mut written, declared);
        let result = dispatch_syscall(syscall, &mut ctx, &mut op_inputs, &mut op_outputs);
        self.last_written = written.len();
        let result = result?;
        Ok(Ran {
            result,
            outputs: written,
        })
    }
}
