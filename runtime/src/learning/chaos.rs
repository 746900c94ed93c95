//! [`ChaosComponent`]: fault injection for learning runs — an op that passes its input through, except that it panics once when armed.
//!
//! | op | inputs | outputs |
//! |---|---|---|
//! | `Maybe` | any value | the same value |
//!
//! The switch is an `Arc<AtomicBool>` shared with whoever armed it, so it
//! lives outside the Node and fires once. The engine runs every op under
//! `catch_unwind`, so the panic fails this op (counted in
//! `NodeStats::ops_panicked`) and its execution; it does not take the
//! Node's actor down, and the supervisor does not restart it. Tests use it
//! to show that a round survives a client whose training crashes (the
//! client becomes that round's straggler and answers the next rounds).

use std::fmt;

use nodeflow_engine::sync::atomic::{AtomicBool, Ordering};
use nodeflow_engine::sync::Arc;
use nodeflow_engine::{
    Component, DispatchResult, LocalOpId, OpError, OpErrorKind, OpInputs, OpOutputs,
    RuntimeResourceRef,
};

/// The [`Component::kind`] of a chaos component.
pub const CHAOS_KIND: &str = "chaos";

/// Panics once, when armed.
pub struct ChaosComponent {
    armed: Arc<AtomicBool>,
}

impl ChaosComponent {
    /// A component that panics in its next `Maybe` if `armed` is set, and
    /// clears it as it does.
    pub fn panic_once(armed: Arc<AtomicBool>) -> Self {
        Self { armed }
    }
}

impl Component for ChaosComponent {
    fn kind(&self) -> &str {
        CHAOS_KIND
    }

    fn resolve_op(&self, op_type: &str) -> Option<LocalOpId> {
        (op_type == "Maybe").then_some(LocalOpId(0))
    }

    fn dispatch_atomic(
        &mut self,
        _op: LocalOpId,
        _ctx: &mut RuntimeResourceRef<'_>,
        inputs: &mut OpInputs<'_>,
        outputs: &mut OpOutputs<'_>,
    ) -> Result<DispatchResult, OpError> {
        let value = inputs.get(0).ok_or_else(|| {
            OpError::new(
                OpErrorKind::InvalidInput,
                "role.missing_input",
                "`Maybe` needs input 0, which is absent",
            )
        })?;
        if self.armed.swap(false, Ordering::SeqCst) {
            panic!("chaos: injected panic (armed by the test or job)");
        }
        outputs.push(value.clone_value())?;
        Ok(DispatchResult::Immediate)
    }
}

impl fmt::Debug for ChaosComponent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChaosComponent")
            .field("armed", &self.armed.load(Ordering::SeqCst))
            .finish()
    }
}
