//! Shared fixtures of the actor integration tests: graphs, a component
//! whose op parks until the test completes it from another thread, a value
//! whose copy panics, and bounded waits.
#![allow(dead_code, clippy::unwrap_used)]

use std::time::{Duration, Instant};

use nodeflow_actors::ActorOutput;
use nodeflow_engine::sync::channel::Receiver;
use nodeflow_engine::sync::{Arc, Mutex};
use nodeflow_engine::{
    CompletionHandle, Component, DispatchResult, EncodeError, Envelope, EnvelopeKind, EventKind,
    ExecOrigin, Fill, Graph, GraphBuilder, LocalOpId, OpError, OpInputs, OpOutputs, Payload,
    PeerId, RuntimeResourceRef, SiteId, SlotValue, TypeTag, U64Value,
};

/// Upper bound on any single wait; generous so a loaded machine never flakes.
pub const PATIENCE: Duration = Duration::from_secs(10);

/// The app-event kind the grenade graph listens to.
pub const GRENADE: EventKind = EventKind::new(EventKind::USER_MIN);

pub fn u64v(v: u64) -> Box<dyn SlotValue> {
    Box::new(U64Value(v))
}

/// A value whose copy panics: the engine copies app-event values outside
/// any op, so delivering one to a Node with [`grenade_graph`] makes a panic
/// escape `Node::poll`.
#[derive(Debug)]
pub struct Grenade;

impl SlotValue for Grenade {
    fn type_tag(&self) -> TypeTag {
        TypeTag::new(TypeTag::USER_MIN)
    }
    fn clone_value(&self) -> Box<dyn SlotValue> {
        panic!("grenade copied")
    }
    fn encode(&self, _out: &mut Vec<u8>) -> Result<(), EncodeError> {
        Ok(())
    }
    fn eq_value(&self, _other: &dyn SlotValue) -> bool {
        false
    }
}

/// `OnTrigger(GRENADE) -> PassThrough -> y`.
pub fn grenade_graph() -> Graph {
    let mut b = GraphBuilder::new("grenade");
    let t = b
        .syscall("OnTrigger", [])
        .attr("kind", i64::from(GRENADE.as_u32()))
        .output();
    let y = b.syscall("PassThrough", [t]).output();
    b.output(y, "y");
    b.build().unwrap()
}

/// `x -> PassThrough -> y`.
pub fn echo_graph() -> Graph {
    let mut b = GraphBuilder::new("echo");
    let x = b.input("x");
    let y = b.syscall("PassThrough", [x]).output();
    b.output(y, "y");
    b.build().unwrap()
}

/// `x -> later.Later -> y`: parks until the test completes it.
pub fn later_graph() -> Graph {
    let mut b = GraphBuilder::new("later");
    let x = b.input("x");
    let y = b.op("Later", [x]).domain("later").output();
    b.output(y, "y");
    b.build().unwrap()
}

/// A parked `Later` op: its handle, the output name and its input.
pub struct Parked {
    pub handle: CompletionHandle<u64, String>,
    pub output: String,
    pub x: u64,
}

impl Parked {
    /// Completes the op with `x + add` as a typed value.
    pub fn complete_plus(self, add: u64) {
        self.handle
            .complete_values(vec![(self.output, u64v(self.x + add))])
            .unwrap();
    }
}

/// Component `later`: op `Later` parks and hands its completion handle to
/// the test (like a compute job on a pool thread would hold it).
#[derive(Clone, Default)]
pub struct Later {
    pub parked: Arc<Mutex<Vec<Parked>>>,
}

impl Component for Later {
    fn kind(&self) -> &str {
        "later"
    }

    fn resolve_op(&self, op_type: &str) -> Option<LocalOpId> {
        (op_type == "Later").then_some(LocalOpId(0))
    }

    fn dispatch_atomic(
        &mut self,
        _op: LocalOpId,
        ctx: &mut RuntimeResourceRef<'_>,
        inputs: &mut OpInputs<'_>,
        _outputs: &mut OpOutputs<'_>,
    ) -> Result<DispatchResult, OpError> {
        let x = inputs.get_as::<U64Value>(0)?.0;
        let handle = ctx.open_completion::<u64, String>()?;
        let cmd = handle.cmd_id();
        let output = ctx.current.outputs[0].clone();
        self.parked.lock().push(Parked { handle, output, x });
        Ok(DispatchResult::Async(cmd))
    }
}

/// A one-way envelope filling input `x` of site 0 at `to` with `value`.
pub fn one_way(from: PeerId, to: PeerId, value: u64) -> Envelope {
    Envelope::new(from, to, EnvelopeKind::OneWay).with_fill(Fill::site(
        SiteId::new(0),
        "x",
        Payload::Value(u64v(value)),
    ))
}

/// Waits until `done()` holds (bounded by [`PATIENCE`]).
pub fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let give_up = Instant::now() + PATIENCE;
    while !done() {
        assert!(Instant::now() < give_up, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// The next finished execution: (ticket if invoked, value of its first
/// output if a `U64Value`).
pub fn next_finished(rx: &Receiver<ActorOutput>) -> (Option<u64>, Option<u64>) {
    loop {
        match rx.recv_timeout(PATIENCE).unwrap() {
            ActorOutput::ExecFinished {
                origin, outputs, ..
            } => {
                let ticket = match origin {
                    ExecOrigin::Ticket(t) => Some(t),
                    _ => None,
                };
                let value = outputs
                    .first()
                    .and_then(|(_, v)| v.downcast_ref::<U64Value>())
                    .map(|v| v.0);
                return (ticket, value);
            }
            _ => continue,
        }
    }
}
