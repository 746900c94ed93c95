//! Snapshot round trip: a Node snapshotted mid-flight and restored into a
//! fresh Node produces exactly the outputs of an uninterrupted run.
//!
//! The workload has, at the snapshot: an execution parked in a component op
//! (a timed completion), one parked in `Sleep` holding budget-charged bytes,
//! an `Interval` trigger, hold/serialize/record values, RNG draws behind
//! it and ahead of it, an envelope and an invoke queued in the mailbox, and
//! component state that changes every output.
#![allow(clippy::unwrap_used)]

mod common;

use common::{drive, finished, u64v, Math};
use nodeflow_engine::{
    completion_sink, BytesValue, CompletionHandle, Component, DispatchResult, Envelope,
    EnvelopeKind, Fill, Graph, GraphBuilder, Incarnation, IngressEvent, LocalOpId, Node,
    NodeBuilder, NodeConfig, OpError, OpErrorKind, OpInputs, OpOutputs, Payload, PeerId,
    RuntimeResourceRef, SiteId, Step, U64Value,
};

/// `DelayAdd` parks and completes `x + 1` 300 ns later; `Add` returns
/// `a + b + 1000 * calls`, so its outputs depend on the component's state.
#[derive(Default)]
struct Delay {
    calls: u64,
}

impl Component for Delay {
    fn kind(&self) -> &str {
        "delay"
    }

    fn resolve_op(&self, op_type: &str) -> Option<LocalOpId> {
        match op_type {
            "DelayAdd" => Some(LocalOpId(0)),
            "Add" => Some(LocalOpId(1)),
            _ => None,
        }
    }

    fn dispatch_atomic(
        &mut self,
        op: LocalOpId,
        ctx: &mut RuntimeResourceRef<'_>,
        inputs: &mut OpInputs<'_>,
        outputs: &mut OpOutputs<'_>,
    ) -> Result<DispatchResult, OpError> {
        self.calls += 1;
        let a = inputs.get_as::<U64Value>(0)?.0;
        if op == LocalOpId(0) {
            let cmd = ctx.allocate_command_id()?;
            let name = ctx.current.outputs[0].clone();
            let at = ctx.time.now_ns + 300;
            ctx.complete_command_at(cmd, at, vec![(name, u64v(a + 1))])?;
            return Ok(DispatchResult::Async(cmd));
        }
        let b = inputs.get_as::<U64Value>(1)?.0;
        outputs.push(u64v(a + b + 1000 * self.calls))?;
        Ok(DispatchResult::Immediate)
    }

    fn snapshot_state(&self) -> Result<Vec<u8>, OpError> {
        Ok(self.calls.to_le_bytes().to_vec())
    }

    fn restore_state(&mut self, bytes: &[u8]) -> Result<(), OpError> {
        let raw: [u8; 8] = bytes
            .try_into()
            .map_err(|_| OpError::new(OpErrorKind::InvalidInput, "delay.state", "8 bytes"))?;
        self.calls = u64::from_le_bytes(raw);
        Ok(())
    }
}

/// Site 0: `x -> DelayAdd -> Sleep(500) -> Add(·, RngU64) -> AppEmit -> y`.
fn work() -> Graph {
    let mut b = GraphBuilder::new("work");
    let x = b.input("x");
    let a = b.op("DelayAdd", [x]).domain("delay").output();
    let s = b.syscall("Sleep", [a]).attr("duration_ns", 500i64).output();
    let r = b
        .syscall("RngU64", [x])
        .attr("bound", 1_000_000i64)
        .output();
    let c = b.op("Add", [s, r]).domain("delay").output();
    let y = b.syscall("AppEmit", [c]).attr("name", "work.out").output();
    b.output(y, "y");
    b.build().unwrap()
}

/// Site 1: stash, enqueue and record `x`.
fn stash() -> Graph {
    let mut b = GraphBuilder::new("stash");
    let x = b.input("x");
    let h = b.syscall("Hold.Stash", [x]).attr("slot", "h").output();
    let q = b
        .syscall("Serialize.Enqueue", [x])
        .attr("queue", "q")
        .output();
    let r = b.syscall("Record", [x]).attr("name", "rec").output();
    b.output(h, "held");
    b.output(q, "queued");
    b.output(r, "recorded");
    b.build().unwrap()
}

/// Site 2: flush the hold slot and dequeue one value.
fn flush() -> Graph {
    let mut b = GraphBuilder::new("flush");
    let x = b.input("x");
    let h = b.syscall("Hold.Flush", [x]).attr("slot", "h").output();
    let q = b
        .syscall("Serialize.Dequeue", [x])
        .attr("queue", "q")
        .output();
    b.output(h, "held");
    b.output(q, "queued");
    b.build().unwrap()
}

/// Site 3: bytes held through a `Sleep` (charged to the budget meanwhile).
fn blob() -> Graph {
    let mut b = GraphBuilder::new("blob");
    let x = b.input("x");
    let y = b.syscall("Sleep", [x]).attr("duration_ns", 400i64).output();
    b.output(y, "y");
    b.build().unwrap()
}

/// Site 4: an `Interval` every 250 ns drawing from the RNG.
fn ticker() -> Graph {
    let mut b = GraphBuilder::new("tick");
    let t = b.syscall("Interval", []).attr("period_ns", 250i64).output();
    let r = b.syscall("RngU64", [t]).attr("bound", 1_000i64).output();
    b.output(r, "draw");
    b.build().unwrap()
}

fn builder() -> NodeBuilder {
    builder_with(NodeConfig::default())
}

fn builder_with(config: NodeConfig) -> NodeBuilder {
    Node::builder(PeerId::new(1))
        .config(config)
        .component("delay", Box::<Delay>::default())
        .graph(work())
        .graph(stash())
        .graph(flush())
        .graph(blob())
        .graph(ticker())
}

/// Everything observable about a step, as comparable text.
fn log(steps: Vec<Step>) -> Vec<String> {
    steps
        .into_iter()
        .filter_map(|step| match step {
            Step::ExecFinished {
                exec,
                site,
                origin,
                outputs,
                missing,
            } => Some(format!(
                "finished {exec} {site} {origin:?} {:?} missing {missing:?}",
                outputs
            )),
            Step::AppOutput(out) => Some(format!(
                "app {} {} {:?} {} {:?}",
                out.exec, out.op, out.kind, out.name, out.value
            )),
            Step::OpFailed { exec, op, error } => Some(format!("failed {exec} {op} {error}")),
            Step::Timeout { exec, op, cmd } => Some(format!("timeout {exec} {op} {cmd}")),
            Step::SendEnvelope(envelope) => Some(format!("send {envelope:?}")),
            _ => None,
        })
        .collect()
}

/// Inputs up to the snapshot point; returns the log so far.
fn prefix(node: &mut Node) -> Vec<String> {
    let mut out = log(drive(node, 0));
    node.invoke(SiteId::new(0), vec![("x".into(), u64v(1))])
        .unwrap();
    node.invoke(SiteId::new(1), vec![("x".into(), u64v(10))])
        .unwrap();
    node.invoke(SiteId::new(1), vec![("x".into(), u64v(11))])
        .unwrap();
    let blob: Box<dyn nodeflow_engine::SlotValue> = Box::new(BytesValue::new(vec![9u8; 256]));
    node.invoke(SiteId::new(3), vec![("x".into(), blob)])
        .unwrap();
    out.extend(log(drive(node, 0)));
    out.extend(log(drive(node, 100)));
    // Mail that is queued, not yet polled, when the snapshot is taken.
    let envelope = Envelope::new(PeerId::new(9), PeerId::new(1), EnvelopeKind::OneWay)
        .with_fill(Fill::site(SiteId::new(0), "x", Payload::value(U64Value(2))));
    node.deliver_envelope(envelope).unwrap();
    node.ingress()
        .push_data(IngressEvent::Invoke {
            site: SiteId::new(2),
            inputs: vec![("x".into(), u64v(0))],
            ticket: 77,
        })
        .unwrap();
    out
}

/// Inputs after the snapshot point.
fn suffix(node: &mut Node) -> Vec<String> {
    suffix_with(node, |_| {})
}

/// Inputs after the snapshot point, calling `between` after every drive.
fn suffix_with(node: &mut Node, mut between: impl FnMut(&mut Node)) -> Vec<String> {
    let mut out = Vec::new();
    for now in [100, 250, 300, 400, 500, 600, 800, 900, 1_000, 1_250, 1_500] {
        out.extend(log(drive(node, now)));
        between(node);
    }
    node.invoke(SiteId::new(2), vec![("x".into(), u64v(0))])
        .unwrap();
    out.extend(log(drive(node, 2_000)));
    out
}

#[test]
fn a_restored_node_finishes_exactly_like_an_uninterrupted_one() {
    let mut a = builder().build().unwrap();
    let before_a = prefix(&mut a);
    let after_a = suffix(&mut a);

    let mut b = builder().build().unwrap();
    let before_b = prefix(&mut b);
    assert_eq!(before_a, before_b);
    let in_use = b.budget().in_use();
    assert!(in_use >= 256, "the sleeping blob holds its bytes");
    let parked = b.stats().parked;
    assert_eq!(parked, 2, "DelayAdd and the blob's Sleep are parked");
    let bytes = b.snapshot().unwrap();
    drop(b);

    let mut restored = builder().restore(&bytes).unwrap();
    assert_eq!(restored.incarnation(), Incarnation::new(1));
    assert_eq!(restored.budget().in_use(), in_use);
    assert_eq!(restored.stats().parked, parked);
    let after_b = suffix(&mut restored);

    assert_eq!(after_a, after_b);
    // The workload really ran past the snapshot: every kind of output shows.
    let text = after_b.join("\n");
    for needle in [
        "app ",
        "Envelope { from: PeerId(9) }",
        "Ticket(77)",
        "Timer",
        "U64Value(11)",
        "U64Value(10)",
        "BytesValue(256 bytes",
    ] {
        assert!(text.contains(needle), "missing `{needle}` in:\n{text}");
    }
    assert_eq!(a.budget().in_use(), 0);
    assert_eq!(restored.budget().in_use(), 0);
    assert_eq!(a.stats().live_executions, 0);
    assert_eq!(restored.stats().live_executions, 0);
}

#[test]
fn restoring_after_every_drive_changes_nothing() {
    let mut a = builder().build().unwrap();
    prefix(&mut a);
    let after_a = suffix(&mut a);

    let mut b = builder().build().unwrap();
    prefix(&mut b);
    let mut restores = 0u32;
    let after_b = suffix_with(&mut b, |node| {
        let bytes = node.snapshot().unwrap();
        *node = builder().restore(&bytes).unwrap();
        restores += 1;
    });
    assert_eq!(after_a, after_b);
    assert_eq!(b.incarnation(), Incarnation::new(restores));
    assert_eq!(b.budget().in_use(), 0);
}

#[test]
fn restoring_after_every_poll_mid_frontier_changes_nothing() {
    // One op per poll: most snapshots hold ready ops on the frontier.
    let config = NodeConfig {
        ops_per_poll: 1,
        ..NodeConfig::default()
    };
    let run = |restore: bool| {
        let mut node = builder_with(config.clone()).build().unwrap();
        let mut out = prefix(&mut node);
        let (mut restores, mut mid) = (0u32, 0u32);
        for now in [100, 300, 600, 900, 1_250] {
            loop {
                out.extend(log(node.poll(now).collect()));
                if restore {
                    mid += u32::from(node.has_work());
                    let bytes = node.snapshot().unwrap();
                    node = builder_with(config.clone()).restore(&bytes).unwrap();
                    restores += 1;
                }
                if !node.has_work() {
                    break;
                }
            }
        }
        (out, node.budget().in_use(), restores, mid)
    };
    let (plain, plain_bytes, _, _) = run(false);
    let (restored, restored_bytes, restores, mid) = run(true);
    assert!(
        restores > 10 && mid > 5,
        "{mid} of {restores} snapshots had work left"
    );
    assert!(plain.iter().any(|line| line.contains("Envelope")));
    assert_eq!(plain, restored);
    assert_eq!((plain_bytes, restored_bytes), (0, 0));
}

#[test]
fn a_snapshot_of_an_idle_restored_node_restores_again() {
    let mut node = builder().build().unwrap();
    prefix(&mut node);
    suffix(&mut node);
    let mut once = builder().restore(&node.snapshot().unwrap()).unwrap();
    let twice = builder().restore(&once.snapshot().unwrap()).unwrap();
    assert_eq!(twice.incarnation(), Incarnation::new(2));
    assert_eq!(twice.next_deadline(), node.next_deadline());
}

#[test]
fn a_handle_parked_op_resumes_through_the_restored_nodes_ingress() {
    let build = later_node;
    let math = Math::default();
    let mut node = build(&math).build().unwrap();
    let exec = node
        .invoke(SiteId::new(0), vec![("x".into(), u64v(1))])
        .unwrap();
    drive(&mut node, 0);
    let bytes = node.snapshot().unwrap();
    let old = math.handles.lock().pop().unwrap();

    let mut restored = build(&Math::default()).restore(&bytes).unwrap();
    assert_eq!(restored.stats().parked, 1);
    // The worker's handle points at the old Node's mailbox; the host
    // re-targets the command at the restored Node's ingress.
    let handle: CompletionHandle<u64, String> =
        CompletionHandle::new(old.cmd_id(), completion_sink(restored.ingress()));
    handle.complete(&77).unwrap();
    let done = finished(&drive(&mut restored, 10));
    assert_eq!(done.len(), 1);
    assert_eq!(done[0].0, exec);
    assert!(done[0].2.is_empty(), "the completion filled `y`");
    assert_eq!(restored.budget().in_use(), 0);
    drop(old);
}

#[test]
fn a_node_restored_on_the_old_mailbox_keeps_its_mail_and_ignores_the_dead_incarnations_commands() {
    let build = later_node;
    let math = Math::default();
    let mut node = build(&math).build().unwrap();
    node.invoke(SiteId::new(0), vec![("x".into(), u64v(1))])
        .unwrap();
    drive(&mut node, 0);
    let bytes = node.snapshot().unwrap();
    let first = math.handles.lock().pop().unwrap();
    // After the snapshot the Node starts a second command, then "crashes".
    node.invoke(SiteId::new(0), vec![("x".into(), u64v(2))])
        .unwrap();
    drive(&mut node, 1);
    let second = math.handles.lock().pop().unwrap();
    assert!(second.cmd_id() > first.cmd_id());
    let watermark = node.id_watermark();
    let mailbox = nodeflow_engine::sync::Arc::clone(node.ingress());
    drop(node);
    // Mail sent while the Node is being rebuilt waits in the mailbox.
    mailbox
        .push_data(IngressEvent::Invoke {
            site: SiteId::new(0),
            inputs: vec![("x".into(), u64v(3))],
            ticket: 9,
        })
        .unwrap();

    let math2 = Math::default();
    let mut restored = build(&math2)
        .mailbox(nodeflow_engine::sync::Arc::clone(&mailbox))
        .restore(&bytes)
        .unwrap();
    restored.skip_ids_past(watermark);
    assert!(nodeflow_engine::sync::Arc::ptr_eq(
        restored.ingress(),
        &mailbox
    ));
    assert_eq!(restored.stats().parked, 1, "the snapshot's command");
    drive(&mut restored, 2);
    let third = math2.handles.lock().pop().unwrap();
    assert!(
        third.cmd_id().as_u64() >= watermark.command,
        "the held invoke got a fresh command id, not the dead incarnation's"
    );
    // The dead incarnation's command finds nothing; the snapshot's resumes.
    second.complete(&5).unwrap();
    first.complete(&6).unwrap();
    third.complete(&7).unwrap();
    let steps = drive(&mut restored, 3);
    assert_eq!(finished(&steps).len(), 2);
    assert_eq!(restored.stats().unknown_completions, 1);
    assert_eq!(restored.budget().in_use(), 0);
}

/// A Node whose site 0 is `x -> math.Later -> y` (parks on a handle).
fn later_node(math: &Math) -> NodeBuilder {
    let mut b = GraphBuilder::new("later");
    let x = b.input("x");
    let y = b.op("Later", [x]).domain("math").output();
    b.output(y, "y");
    Node::builder(PeerId::new(1))
        .component("math", Box::new(math.clone()))
        .graph(b.build().unwrap())
}
