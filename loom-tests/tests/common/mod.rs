//! Shared fixtures of the actor loom models: graphs, a component whose op
//! parks and hands its completion handle to the model (as a compute job on
//! a pool thread would hold it), a value whose copy panics, a supervised
//! factory, a manual clock and the iteration counter every model prints.
//!
//! # Invariants
//! * Everything that crosses loom threads here is built from
//!   `nodeflow_engine::sync` (loom types under `--cfg loom`); only the
//!   iteration counter, which lives outside the model, and the std `Arc`s
//!   that loom's `Arc::from_std` needs to build trait objects use `std`.
//! * The panic hook installed by [`ModelSize::new`] silences only the
//!   grenade's own panic message; every other panic (a failed assertion, a
//!   loom deadlock report) still reaches the default hook.
#![allow(dead_code)]

use std::sync::atomic::{AtomicUsize, Ordering}; // sync-facade: allow (iteration counter outside the model)
use std::time::Instant;

use nodeflow_actors::{
    ActorConfig, ActorOutput, Clock, ManualClock, NodeFactory, SupervisionConfig,
};
use nodeflow_engine::sync::channel::{Receiver, Sender};
use nodeflow_engine::sync::Arc;
use nodeflow_engine::{
    CompletionError, CompletionHandle, Component, DispatchResult, EncodeError, Envelope,
    EnvelopeKind, EventKind, ExecOrigin, Fill, Graph, GraphBuilder, LocalOpId, NodeBuilder,
    OpError, OpInputs, OpOutputs, Payload, PeerId, RuntimeResourceRef, SiteId, SlotValue, TypeTag,
    U64Value,
};

/// std's `Arc`: the iteration counter lives outside the model, and loom's
/// `Arc::from_std` needs one to build a trait object.
pub type StdArc<T> = std::sync::Arc<T>; // sync-facade: allow (iteration counter and trait-object Arc)

/// The actor thread's stack size handed to loom (in words, even: an odd
/// size makes the coroutine library track its usage). A restart builds,
/// snapshots and restores Nodes on this stack: 64 K words overflowed once
/// the Node carried flow-control state.
pub const ACTOR_STACK: usize = 256 * 1024;

/// The peer every model's actor runs.
pub const PEER: PeerId = PeerId::new(7);

/// The app-event kind the grenade graph listens to.
pub const GRENADE: EventKind = EventKind::new(EventKind::USER_MIN);

/// The grenade's panic message (the only panic the models' hook hides).
pub const GRENADE_MESSAGE: &str = "grenade copied";

/// A value whose copy panics: the engine copies an app event's value for
/// each `OnTrigger` subscriber as it takes the event from the mailbox, so
/// delivering one to a Node with [`grenade_graph`] makes a panic escape
/// `Node::poll` right at that take (later mail stays queued).
#[derive(Debug)]
pub struct Grenade;

impl SlotValue for Grenade {
    fn type_tag(&self) -> TypeTag {
        TypeTag::new(TypeTag::USER_MIN)
    }
    fn clone_value(&self) -> Box<dyn SlotValue> {
        panic!("{GRENADE_MESSAGE}")
    }
    fn encode(&self, _out: &mut Vec<u8>) -> Result<(), EncodeError> {
        Ok(())
    }
    fn eq_value(&self, _other: &dyn SlotValue) -> bool {
        false
    }
}

std::thread_local! {
    /// The model running on this test thread (loom runs all of a model's
    /// threads on it): its name and iteration counter, for the panic hook.
    static RUNNING: std::cell::RefCell<Option<(&'static str, StdArc<AtomicUsize>)>> =
        const { std::cell::RefCell::new(None) };
}

/// Installs (once per process) a panic hook that hides the grenade's panic
/// message (a model would print it once per iteration) and, on the first
/// other panic of a model, prints how many iterations it had run: a caught
/// broken twin can abort the process before [`ModelSize`] prints (the
/// actor's `catch_unwind` catches loom's teardown of a deadlocked run, and
/// the loom calls it then makes panic again). Other panics go on to the
/// previous hook.
fn install_panic_hook() {
    static ONCE: std::sync::Once = std::sync::Once::new(); // sync-facade: allow (process-wide hook, outside the model)
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let grenade = info
                .payload()
                .downcast_ref::<String>()
                .is_some_and(|m| m == GRENADE_MESSAGE);
            if grenade {
                return;
            }
            // `try_with`: the hook may run while the thread is exiting.
            let _ = RUNNING.try_with(|running| {
                if let Some((name, iterations)) = running.borrow_mut().take() {
                    let n = iterations.load(Ordering::Relaxed);
                    eprintln!("{name}: failed in iteration {n}");
                }
            });
            previous(info);
        }));
    });
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
    b.build().expect("a valid graph")
}

/// `x -> PassThrough -> y`.
pub fn echo_graph() -> Graph {
    let mut b = GraphBuilder::new("echo");
    let x = b.input("x");
    let y = b.syscall("PassThrough", [x]).output();
    b.output(y, "y");
    b.build().expect("a valid graph")
}

/// `x -> later.Later -> y`: parks until the model completes it.
pub fn later_graph() -> Graph {
    let mut b = GraphBuilder::new("later");
    let x = b.input("x");
    let y = b.op("Later", [x]).domain("later").output();
    b.output(y, "y");
    b.build().expect("a valid graph")
}

/// The inputs of an invoke of [`echo_graph`] or [`later_graph`]: `x = value`.
pub fn x(value: u64) -> Vec<(String, Box<dyn SlotValue>)> {
    vec![("x".to_owned(), Box::new(U64Value(value)))]
}

/// A one-way envelope filling input `x` of site 0 at `to` with `value`.
pub fn one_way(from: PeerId, to: PeerId, value: u64) -> Envelope {
    Envelope::new(from, to, EnvelopeKind::OneWay).with_fill(Fill::site(
        SiteId::new(0),
        "x",
        Payload::Value(Box::new(U64Value(value))),
    ))
}

/// A parked `Later` op: its completion handle, output name and input.
pub struct Parked {
    /// The handle the op opened (bound to the mailbox it was opened on).
    pub handle: CompletionHandle<u64, String>,
    /// The op's output slot name.
    pub output: String,
    /// The op's input.
    pub x: u64,
}

impl Parked {
    /// Completes the op with `x + add`, as a pool thread would.
    pub fn complete_plus(self, add: u64) -> Result<(), CompletionError> {
        self.handle
            .complete_values(vec![(self.output, Box::new(U64Value(self.x + add)))])
    }
}

/// Component `later`: op `Later` parks and sends its handle to the model.
#[derive(Clone)]
pub struct Later {
    /// Where parked ops go (the model's "pool").
    pub parked: Sender<Parked>,
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
        // The model holds the receiver for the whole run.
        let _ = self.parked.send(Parked { handle, output, x });
        Ok(DispatchResult::Async(cmd))
    }
}

/// A [`NodeFactory`] from a closure (loom's `Arc` cannot coerce to a trait
/// object, so it is built from std's).
pub fn factory(build: impl Fn() -> NodeBuilder + Send + Sync + 'static) -> NodeFactory {
    let build: StdArc<dyn Fn() -> NodeBuilder + Send + Sync> = StdArc::new(build);
    Arc::from_std(build)
}

/// A fresh [`ManualClock`] behind the facade's `Arc<dyn Clock>`: it never
/// advances, so the actor only sleeps on its mailbox (`wait(None)`).
pub fn manual_clock() -> Arc<dyn Clock> {
    let clock: StdArc<dyn Clock> = StdArc::new(ManualClock::new());
    Arc::from_std(clock)
}

/// Actor settings for a model: a supervised actor snapshots only at start
/// and on request and may restart once; `broken` names a deliberate bug
/// (`ActorConfig::loom_broken`, broken builds only).
pub fn config(broken: Option<&'static str>) -> ActorConfig {
    #[cfg(not(nodeflow_loom_broken))]
    assert!(broken.is_none(), "faults need --cfg nodeflow_loom_broken");
    ActorConfig {
        supervision: SupervisionConfig {
            snapshot_every_ns: None,
            max_restarts: 1,
            restart_window_ns: u64::MAX,
        },
        // Loom's default coroutine stack (32 KiB) is too small for an actor
        // thread that unwinds a panic or snapshots its Node; loom counts
        // this in words, so the thread gets 512 KiB.
        stack_size: Some(ACTOR_STACK),
        #[cfg(nodeflow_loom_broken)]
        loom_broken: broken,
        ..ActorConfig::default()
    }
}

/// The next finished execution, skipping app outputs: (ticket if invoked,
/// value of its first output if a `U64Value`). Blocks: under loom a lost
/// output is a deadlock.
pub fn next_finished(rx: &Receiver<ActorOutput>) -> (Option<u64>, Option<u64>) {
    loop {
        match rx.recv().expect("the actor forwards the output") {
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

/// Finished executions left in a stopped actor's output stream (the actor
/// has disconnected it, so this does not block).
pub fn finished_left(rx: &Receiver<ActorOutput>) -> usize {
    let mut left = 0;
    while let Ok(output) = rx.recv() {
        if matches!(output, ActorOutput::ExecFinished { .. }) {
            left += 1;
        }
    }
    left
}

/// Counts a model's executions and prints the count and the wall time when
/// dropped (also when the model fails, so a caught bug shows how soon).
pub struct ModelSize {
    name: &'static str,
    iterations: StdArc<AtomicUsize>,
    started: Instant,
}

impl ModelSize {
    /// Starts counting for the model `name` (and installs the panic hook
    /// that reports a failing iteration and hides grenade panics).
    pub fn new(name: &'static str) -> Self {
        install_panic_hook();
        let iterations = StdArc::new(AtomicUsize::new(0));
        RUNNING.with(|running| *running.borrow_mut() = Some((name, StdArc::clone(&iterations))));
        Self {
            name,
            iterations,
            started: Instant::now(),
        }
    }

    /// A counter to bump once per iteration (inside the model closure).
    pub fn counter(&self) -> Iterations {
        Iterations(StdArc::clone(&self.iterations))
    }
}

impl Drop for ModelSize {
    fn drop(&mut self) {
        let _ = RUNNING.try_with(|running| running.borrow_mut().take());
        let iterations = self.iterations.load(Ordering::Relaxed);
        let elapsed = self.started.elapsed();
        eprintln!("{}: {iterations} iterations in {elapsed:.2?}", self.name);
    }
}

/// One model's iteration counter (see [`ModelSize::counter`]).
#[derive(Clone)]
pub struct Iterations(StdArc<AtomicUsize>);

impl Iterations {
    /// Counts one iteration.
    pub fn bump(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

/// Runs a model's body on a loom thread with [`ACTOR_STACK`] and joins it:
/// loom's own model thread keeps its small default stack, too small to
/// build, snapshot and restore a Node on.
pub fn on_big_stack(body: impl FnOnce() + Send + 'static) {
    nodeflow_engine::sync::thread::Builder::new()
        .name("model".into())
        .stack_size(ACTOR_STACK)
        .spawn(body)
        .expect("loom spawns the model thread")
        .join()
        .expect("the model body ran");
}
