//! The bus and trigger sources end to end: bus events start their
//! `EventSource` subscribers, app events start their `OnTrigger` ops, a
//! `Pulse` fires once, `AppEmit`/`AppNotify` reach the host, full bounded
//! queues report exactly what they dropped, and the Node's counters add up.
#![allow(clippy::unwrap_used)]

mod common;

use common::{as_u64, drive, finished, u64v, Math};
use nodeflow_engine::{
    AppIngressErrorKind, AppIngressSource, AppOutputKind, Component, DispatchResult, DropReason,
    EventKind, ExecId, ExecOrigin, Graph, GraphBuilder, LocalOpId, Node, NodeConfig, NodeEvent,
    OpError, OpErrorKind, OpInputs, OpOutputs, OpRef, PeerId, PeerIdValue, RuntimeResourceRef,
    SiteId, SlotValue, Step, Trigger, U64Value,
};

const A: PeerId = PeerId::new(0xa);
const B: PeerId = PeerId::new(0xb);

/// A user event kind, and two more nobody publishes.
const KIND: EventKind = EventKind::new(EventKind::USER_MIN + 1);
const OTHER: EventKind = EventKind::new(EventKind::USER_MIN + 2);
const NOBODY: EventKind = EventKind::new(EventKind::USER_MIN + 9);

const PUBLISH: LocalOpId = LocalOpId(0);
const BURST: LocalOpId = LocalOpId(1);

/// Publishes user events of [`KIND`] on the Node's bus.
///
/// Ops: `Publish` (1 in, 1 out: publishes the input as the event's value,
/// passes it on), `Burst` (1 in `n`, 1 out: publishes `n` events valued
/// `0..n` in one dispatch, outputs `n`).
struct Publisher;

impl Component for Publisher {
    fn kind(&self) -> &str {
        "publisher"
    }

    fn resolve_op(&self, op_type: &str) -> Option<LocalOpId> {
        match op_type {
            "Publish" => Some(PUBLISH),
            "Burst" => Some(BURST),
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
        let n = inputs.get_as::<U64Value>(0)?.0;
        let values = if op == PUBLISH { n..n + 1 } else { 0..n };
        for v in values {
            ctx.publish_bus(NodeEvent::App {
                kind: KIND,
                value: u64v(v),
            })
            .map_err(|e| OpError::new(OpErrorKind::Failed, "publisher.refused", e.to_string()))?;
        }
        outputs.push(u64v(n))?;
        Ok(DispatchResult::Immediate)
    }
}

/// `x` goes through component op `op_type` (domain `publisher`) to output `n`.
fn publisher_graph(op_type: &str) -> Graph {
    let mut b = GraphBuilder::new("publish");
    let x = b.input("x");
    let y = b.op(op_type, [x]).domain("publisher").output();
    b.output(y, "n");
    b.build().unwrap()
}

/// A trigger source `source` (attribute `kind`) feeding `Double` (when
/// `double`) or `PassThrough`, to output `v`.
fn subscriber(name: &str, source: &str, kind: EventKind, double: bool) -> Graph {
    let mut b = GraphBuilder::new(name);
    let t = b
        .syscall(source, [])
        .attr("kind", i64::from(kind.as_u32()))
        .output();
    let v = if double {
        b.op("Double", [t]).domain("math").output()
    } else {
        b.syscall("PassThrough", [t]).output()
    };
    b.output(v, "v");
    b.build().unwrap()
}

fn build(graphs: Vec<Graph>, config: NodeConfig) -> Node {
    let mut builder = Node::builder(A)
        .component("math", Box::new(Math::default()))
        .component("publisher", Box::new(Publisher))
        .config(config);
    for graph in graphs {
        builder = builder.graph(graph);
    }
    builder.build().unwrap()
}

/// `ExecFinished` steps as (site, origin, first output value as u64).
fn runs(steps: &[Step]) -> Vec<(SiteId, ExecOrigin, Option<u64>)> {
    steps
        .iter()
        .filter_map(|step| match step {
            Step::ExecFinished {
                site,
                origin,
                outputs,
                ..
            } => Some((
                *site,
                *origin,
                outputs.first().and_then(|(_, v)| as_u64(v.as_ref())),
            )),
            _ => None,
        })
        .collect()
}

/// The `ExecFinished` step of the one execution at `site`.
fn only_run_at(steps: &[Step], site: SiteId) -> &Step {
    let mut found = steps
        .iter()
        .filter(|s| matches!(s, Step::ExecFinished { site: s, .. } if *s == site));
    let step = found.next().expect("an execution at the site");
    assert!(found.next().is_none(), "more than one execution at {site}");
    step
}

fn events(steps: &[Step]) -> Vec<&NodeEvent> {
    steps
        .iter()
        .filter_map(|s| match s {
            Step::Event(event) => Some(event),
            _ => None,
        })
        .collect()
}

fn drops(steps: &[Step]) -> Vec<(DropReason, u64)> {
    steps
        .iter()
        .filter_map(|s| match s {
            Step::Dropped { reason, count } => Some((*reason, *count)),
            _ => None,
        })
        .collect()
}

// ---- EventSource ---------------------------------------------------------

#[test]
fn an_app_bus_event_starts_one_execution_per_subscriber_seeded_with_its_value() {
    let mut node = build(
        vec![
            publisher_graph("Publish"),
            subscriber("doubles", "EventSource", KIND, true),
            subscriber("passes", "EventSource", KIND, false),
            subscriber("other", "EventSource", OTHER, false),
        ],
        NodeConfig::default(),
    );
    node.invoke(SiteId::new(0), vec![("x".into(), u64v(21))])
        .unwrap();
    let steps = drive(&mut node, 0);

    let bus = ExecOrigin::Bus { kind: KIND };
    let mut got = runs(&steps);
    got.sort_by_key(|r| r.0);
    assert_eq!(
        got,
        vec![
            (SiteId::new(0), ExecOrigin::Invoke, Some(21)),
            (SiteId::new(1), bus, Some(42)),
            (SiteId::new(2), bus, Some(21)),
        ],
        "each subscriber of the kind ran once with the event's value; the other kind's did not"
    );
    let seen = events(&steps);
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert!(matches!(
        seen[0],
        NodeEvent::App { kind, value } if *kind == KIND && as_u64(value.as_ref()) == Some(21)
    ));
    assert_eq!(node.stats().live_executions, 0);
}

#[test]
fn a_bus_event_without_subscribers_is_still_reported() {
    let mut node = build(vec![publisher_graph("Publish")], NodeConfig::default());
    node.invoke(SiteId::new(0), vec![("x".into(), u64v(3))])
        .unwrap();
    let steps = drive(&mut node, 0);
    assert_eq!(runs(&steps).len(), 1, "only the publishing execution ran");
    assert_eq!(events(&steps).len(), 1);
    assert_eq!(node.stats().refused, 0, "bus events are not refused");
}

/// Client graph `name`: `x` goes to `B`'s site 0 input `x` as a request.
fn client(name: &str, timeout_ns: i64) -> Graph {
    let mut b = GraphBuilder::new(name);
    let x = b.input("x");
    let answer = b
        .syscall("Send", [x])
        .attr("peer", B.as_u64() as i64)
        .attr("site", 0)
        .attr("input", "x")
        .attr("request", 1)
        .attr("timeout_ns", timeout_ns)
        .output();
    b.output(answer, "answer");
    b.build().unwrap()
}

/// Server graph: doubles `x` and replies.
fn doubler() -> Graph {
    let mut b = GraphBuilder::new("server");
    let x = b.input("x");
    let d = b.op("Double", [x]).domain("math").output();
    b.syscall("Reply", [d]).finish();
    b.build().unwrap()
}

fn sent(steps: Vec<Step>) -> Vec<nodeflow_engine::Envelope> {
    steps
        .into_iter()
        .filter_map(|s| match s {
            Step::SendEnvelope(envelope) => Some(envelope),
            _ => None,
        })
        .collect()
}

fn peer_of(step: &Step) -> Option<PeerId> {
    match step {
        Step::ExecFinished { outputs, .. } => outputs
            .first()
            .and_then(|(_, v)| v.downcast_ref::<PeerIdValue>())
            .map(|p| p.0),
        _ => None,
    }
}

#[test]
fn peer_health_events_start_subscribers_with_the_peer_id() {
    let mut config = NodeConfig::default();
    config.framework.governor.failure_threshold = 1;
    // Sites: 0 short client, 1 long client, 2 down watcher, 3 up watcher.
    let mut a = build(
        vec![
            client("short", 100),
            client("long", 1_000_000),
            subscriber("down", "EventSource", EventKind::PEER_WENT_DOWN, false),
            subscriber("up", "EventSource", EventKind::PEER_CAME_UP, false),
        ],
        config,
    );
    let mut b = Node::builder(B)
        .component("math", Box::new(Math::default()))
        .graph(doubler())
        .build()
        .unwrap();
    a.invoke(SiteId::new(0), vec![("x".into(), u64v(1))])
        .unwrap();
    a.invoke(SiteId::new(1), vec![("x".into(), u64v(2))])
        .unwrap();
    let requests = sent(drive(&mut a, 0));
    assert_eq!(requests.len(), 2);
    for envelope in requests {
        b.deliver_envelope(envelope).unwrap();
    }
    let responses = sent(drive(&mut b, 50));
    assert_eq!(responses.len(), 2);

    // The short request expires: B goes down and the down watcher runs.
    let steps = drive(&mut a, 100);
    assert!(steps.iter().any(|s| matches!(s, Step::Timeout { .. })));
    let down = only_run_at(&steps, SiteId::new(2));
    assert!(matches!(
        down,
        Step::ExecFinished { origin: ExecOrigin::Bus { kind }, .. }
            if *kind == EventKind::PEER_WENT_DOWN
    ));
    assert_eq!(peer_of(down), Some(B));
    assert!(matches!(
        events(&steps)[..],
        [NodeEvent::PeerWentDown { peer }] if *peer == B
    ));
    assert!(runs(&steps).iter().all(|r| r.0 != SiteId::new(3)));

    // The long request's answer arrives: B is up again, the up watcher runs.
    for envelope in responses {
        a.deliver_envelope(envelope).unwrap();
    }
    let steps = drive(&mut a, 200);
    let up = only_run_at(&steps, SiteId::new(3));
    assert!(matches!(
        up,
        Step::ExecFinished { origin: ExecOrigin::Bus { kind }, .. }
            if *kind == EventKind::PEER_CAME_UP
    ));
    assert_eq!(peer_of(up), Some(B));
    assert!(runs(&steps).iter().all(|r| r.0 != SiteId::new(2)));
    assert!(matches!(
        events(&steps)[..],
        [NodeEvent::PeerCameUp { peer }] if *peer == B
    ));
    assert!(runs(&steps)
        .iter()
        .any(|r| r.0 == SiteId::new(1) && r.2 == Some(4)));
}

#[test]
fn other_builtin_events_seed_their_subscribers_with_a_trigger() {
    let mut node = build(
        vec![subscriber(
            "errors",
            "EventSource",
            EventKind::APP_INGRESS_ERROR,
            false,
        )],
        NodeConfig::default(),
    );
    // An app event nobody subscribes to is refused, which puts an
    // AppIngressError on the bus.
    node.deliver_app_event(NOBODY, u64v(1)).unwrap();
    let steps = drive(&mut node, 0);
    let run = only_run_at(&steps, SiteId::new(0));
    assert!(matches!(
        run,
        Step::ExecFinished { origin: ExecOrigin::Bus { kind }, outputs, .. }
            if *kind == EventKind::APP_INGRESS_ERROR
                && outputs[0].1.downcast_ref::<Trigger>().is_some()
    ));
    assert!(matches!(
        events(&steps)[..],
        [NodeEvent::AppIngressError(e)]
            if e.kind == AppIngressErrorKind::NoSubscriber
                && e.source == AppIngressSource::AppEvent { kind: NOBODY }
    ));
}

// ---- OnTrigger -----------------------------------------------------------

#[test]
fn an_app_event_starts_every_on_trigger_op_of_its_kind_with_its_value() {
    let mut node = build(
        vec![
            subscriber("doubles", "OnTrigger", KIND, true),
            subscriber("passes", "OnTrigger", KIND, false),
            subscriber("other", "OnTrigger", OTHER, false),
        ],
        NodeConfig::default(),
    );
    node.deliver_app_event(KIND, u64v(5)).unwrap();
    let steps = drive(&mut node, 0);
    let app = ExecOrigin::AppEvent { kind: KIND };
    let mut got = runs(&steps);
    got.sort_by_key(|r| r.0);
    assert_eq!(
        got,
        vec![
            (SiteId::new(0), app, Some(10)),
            (SiteId::new(1), app, Some(5))
        ]
    );
    assert_eq!(node.stats().refused, 0);
    assert!(events(&steps).is_empty(), "app events do not go on the bus");

    node.deliver_app_event(OTHER, u64v(7)).unwrap();
    let steps = drive(&mut node, 0);
    assert_eq!(
        runs(&steps),
        vec![(
            SiteId::new(2),
            ExecOrigin::AppEvent { kind: OTHER },
            Some(7)
        )]
    );
}

#[test]
fn an_app_event_of_an_unsubscribed_kind_is_refused_and_counted() {
    let mut node = build(
        vec![subscriber("passes", "OnTrigger", KIND, false)],
        NodeConfig::default(),
    );
    node.deliver_app_event(NOBODY, u64v(5)).unwrap();
    node.deliver_app_event(NOBODY, u64v(6)).unwrap();
    let steps = drive(&mut node, 0);
    assert!(runs(&steps).is_empty());
    let refused: Vec<_> = steps
        .iter()
        .filter_map(|s| match s {
            Step::Refused { source, kind } => Some((*source, *kind)),
            _ => None,
        })
        .collect();
    let expected = (
        AppIngressSource::AppEvent { kind: NOBODY },
        AppIngressErrorKind::NoSubscriber,
    );
    assert_eq!(refused, vec![expected, expected]);
    assert_eq!(node.stats().refused, 2);
    assert_eq!(node.stats().executions_started, 0);
}

// ---- Pulse -----------------------------------------------------------------

#[test]
fn a_pulse_fires_exactly_once_after_its_delay_from_the_first_poll() {
    let mut b = GraphBuilder::new("pulse");
    let t = b.syscall("Pulse", []).attr("after_ns", 500i64).output();
    let y = b.syscall("PassThrough", [t]).output();
    b.output(y, "fired");
    let mut node = build(vec![b.build().unwrap()], NodeConfig::default());

    assert!(finished(&drive(&mut node, 1_000)).is_empty());
    assert_eq!(node.next_deadline(), Some(1_500));
    assert!(finished(&drive(&mut node, 1_499)).is_empty());
    let steps = drive(&mut node, 1_500);
    assert!(
        matches!(
            &steps[..],
            [Step::ExecFinished { origin: ExecOrigin::Timer { op }, outputs, .. }]
                if *op == OpRef::new(SiteId::new(0), 0)
                    && outputs[0].1.downcast_ref::<Trigger>().is_some()
        ),
        "{steps:?}"
    );
    assert_eq!(node.next_deadline(), None, "a pulse is not rescheduled");
    assert!(finished(&drive(&mut node, 1_000_000)).is_empty());
    assert_eq!(node.stats().executions_started, 1);
}

#[test]
fn a_zero_delay_pulse_fires_in_the_first_poll_cycle_due() {
    let mut b = GraphBuilder::new("pulse");
    let t = b.syscall("Pulse", []).attr("after_ns", 0i64).output();
    let y = b.syscall("PassThrough", [t]).output();
    b.output(y, "fired");
    let mut node = build(vec![b.build().unwrap()], NodeConfig::default());
    assert_eq!(finished(&drive(&mut node, 7)).len(), 1);
    assert_eq!(node.next_deadline(), None);
    assert!(finished(&drive(&mut node, 8)).is_empty());
}

// ---- AppEmit / AppNotify -------------------------------------------------

#[test]
fn app_emit_and_app_notify_reach_the_host_with_name_kind_value_and_exec() {
    let mut b = GraphBuilder::new("telemetry");
    let x = b.input("x");
    let seen = b.syscall("AppEmit", [x]).attr("name", "seen").output();
    let d = b.op("Double", [seen]).domain("math").output();
    b.syscall("AppNotify", [d]).attr("name", "doubled").finish();
    let mut node = build(vec![b.build().unwrap()], NodeConfig::default());
    let first = node
        .invoke(SiteId::new(0), vec![("x".into(), u64v(7))])
        .unwrap();
    let second = node
        .invoke(SiteId::new(0), vec![("x".into(), u64v(100))])
        .unwrap();
    let steps = drive(&mut node, 0);
    let outputs: Vec<(ExecId, AppOutputKind, String, Option<u64>)> = steps
        .iter()
        .filter_map(|s| match s {
            Step::AppOutput(out) => Some((
                out.exec,
                out.kind,
                out.name.clone(),
                as_u64(out.value.as_ref()),
            )),
            _ => None,
        })
        .collect();
    let mut sorted = outputs.clone();
    sorted.sort_by_key(|o| (o.0, o.2.clone()));
    assert_eq!(
        sorted,
        vec![
            (first, AppOutputKind::Notify, "doubled".into(), Some(14)),
            (first, AppOutputKind::Emit, "seen".into(), Some(7)),
            (second, AppOutputKind::Notify, "doubled".into(), Some(200)),
            (second, AppOutputKind::Emit, "seen".into(), Some(100)),
        ]
    );
    // Per execution, the emit comes before the notify it feeds.
    for exec in [first, second] {
        let names: Vec<_> = outputs
            .iter()
            .filter(|o| o.0 == exec)
            .map(|o| o.2.as_str())
            .collect();
        assert_eq!(names, ["seen", "doubled"]);
    }
    let ops: Vec<OpRef> = steps
        .iter()
        .filter_map(|s| match s {
            Step::AppOutput(out) if out.exec == first => Some(out.op),
            _ => None,
        })
        .collect();
    assert_eq!(
        ops,
        [OpRef::new(SiteId::new(0), 0), OpRef::new(SiteId::new(0), 2)]
    );
}

// ---- bounded queues --------------------------------------------------------

#[test]
fn a_full_bus_drops_its_oldest_events_and_reports_exactly_how_many() {
    let config = NodeConfig {
        bus_capacity: 2,
        ..NodeConfig::default()
    };
    let mut node = build(
        vec![
            publisher_graph("Burst"),
            subscriber("passes", "EventSource", KIND, false),
        ],
        config,
    );
    node.invoke(SiteId::new(0), vec![("x".into(), u64v(5))])
        .unwrap();
    let steps = drive(&mut node, 0);
    assert_eq!(drops(&steps), vec![(DropReason::BusFull, 3)]);
    assert_eq!(node.stats().dropped, 3);
    // The two newest events survived and ran their subscriber, in order.
    let delivered: Vec<Option<u64>> = runs(&steps)
        .into_iter()
        .filter(|r| r.0 == SiteId::new(1))
        .map(|r| r.2)
        .collect();
    assert_eq!(delivered, vec![Some(3), Some(4)]);
    assert_eq!(events(&steps).len(), 2);

    // A burst that fits drops nothing more and reports nothing.
    node.invoke(SiteId::new(0), vec![("x".into(), u64v(2))])
        .unwrap();
    let steps = drive(&mut node, 0);
    assert!(drops(&steps).is_empty());
    assert_eq!(node.stats().dropped, 3);
}

/// One-way send of `x` to the peer given as input `to`.
fn one_way() -> Graph {
    let mut b = GraphBuilder::new("fire_and_forget");
    let x = b.input("x");
    let to = b.input("to");
    b.syscall("Send", [x, to])
        .attr("site", 0)
        .attr("input", "x")
        .finish();
    b.build().unwrap()
}

#[test]
fn a_full_outbound_queue_evicts_its_oldest_envelopes_and_reports_them() {
    let mut config = NodeConfig::default();
    config.framework.outbound_capacity = 2;
    let mut node = build(vec![one_way()], config);
    for i in 0..5u64 {
        let to: Box<dyn SlotValue> = Box::new(PeerIdValue(PeerId::new(100 + i)));
        node.invoke(
            SiteId::new(0),
            vec![("x".into(), u64v(i)), ("to".into(), to)],
        )
        .unwrap();
    }
    let steps: Vec<Step> = node.poll(0).collect();
    assert_eq!(drops(&steps), vec![(DropReason::OutboundFull, 3)]);
    assert_eq!(node.stats().dropped, 3);
    let dst: Vec<PeerId> = steps
        .iter()
        .filter_map(|s| match s {
            Step::SendEnvelope(e) => Some(e.dst),
            _ => None,
        })
        .collect();
    assert_eq!(
        dst,
        vec![PeerId::new(103), PeerId::new(104)],
        "the newest survive"
    );
    // The drop is reported once, not again on later polls.
    assert!(drops(&drive(&mut node, 1)).is_empty());
    assert_eq!(node.stats().dropped, 3);
}

// ---- accounting ------------------------------------------------------------

#[test]
fn stats_add_up_after_a_mixed_workload() {
    // Ops per execution, trigger sources excluded (they are never dispatched):
    // publish 1, bus subscriber 1, app-event subscriber 1, pulse 1.
    let mut pulse = GraphBuilder::new("pulse");
    let t = pulse.syscall("Pulse", []).attr("after_ns", 10i64).output();
    let y = pulse.syscall("PassThrough", [t]).output();
    pulse.output(y, "fired");
    let mut node = build(
        vec![
            publisher_graph("Publish"),
            subscriber("bus", "EventSource", KIND, true),
            subscriber("app", "OnTrigger", OTHER, true),
            pulse.build().unwrap(),
        ],
        NodeConfig::default(),
    );
    let mut steps = Vec::new();
    for i in 0..3 {
        node.invoke(SiteId::new(0), vec![("x".into(), u64v(i))])
            .unwrap();
    }
    node.deliver_app_event(OTHER, u64v(1)).unwrap();
    node.deliver_app_event(OTHER, u64v(2)).unwrap();
    node.deliver_app_event(NOBODY, u64v(3)).unwrap();
    steps.extend(drive(&mut node, 0));
    steps.extend(drive(&mut node, 10));

    // 3 invokes + 3 bus events + 2 app events + 1 pulse.
    let stats = node.stats();
    assert_eq!(finished(&steps).len(), 9);
    assert_eq!(stats.executions_started, 9);
    assert_eq!(stats.executions_finished, 9);
    assert_eq!(stats.live_executions, 0);
    assert_eq!(stats.parked, 0);
    assert_eq!(stats.ops_fired, 9);
    assert_eq!(stats.ops_failed, 0);
    assert_eq!(stats.refused, 1);
    assert_eq!(stats.dropped, 0);
    assert_eq!(node.budget().in_use(), 0);
}

#[test]
fn an_app_event_refused_at_the_execution_cap_names_the_app_event_as_its_source() {
    let mut hold = GraphBuilder::new("hold");
    let x = hold.input("x");
    let y = hold.op("Later", [x]).domain("math").output();
    hold.output(y, "y");
    let config = NodeConfig {
        max_executions: 1,
        ..NodeConfig::default()
    };
    let mut node = build(
        vec![
            hold.build().unwrap(),
            subscriber("passes", "OnTrigger", KIND, false),
        ],
        config,
    );
    node.invoke(SiteId::new(0), vec![("x".into(), u64v(1))])
        .unwrap();
    drive(&mut node, 0);
    assert_eq!(node.stats().live_executions, 1, "the Later op is parked");
    node.deliver_app_event(KIND, u64v(5)).unwrap();
    let steps = drive(&mut node, 0);
    let refused: Vec<_> = steps
        .iter()
        .filter_map(|s| match s {
            Step::Refused { source, kind } => Some((*source, *kind)),
            _ => None,
        })
        .collect();
    assert_eq!(node.stats().refused, 1);
    assert_eq!(
        refused,
        vec![(
            AppIngressSource::AppEvent { kind: KIND },
            AppIngressErrorKind::TooManyExecutions { cap: 1 }
        )]
    );
}

/// How long the watchdog below lets one poll run before it declares a hang.
const HANG_AFTER_MS: u64 = 500;

#[test]
fn a_refused_ingress_error_subscriber_does_not_loop_route_bus_forever() {
    use nodeflow_engine::sync::atomic::{AtomicBool, Ordering};
    use nodeflow_engine::sync::{thread, Arc};

    let mut hold = GraphBuilder::new("hold");
    let x = hold.input("x");
    let y = hold.op("Later", [x]).domain("math").output();
    hold.output(y, "y");
    let config = NodeConfig {
        max_executions: 1,
        ..NodeConfig::default()
    };
    let mut node = build(
        vec![
            hold.build().unwrap(),
            subscriber("errors", "EventSource", EventKind::APP_INGRESS_ERROR, false),
        ],
        config,
    );
    node.invoke(SiteId::new(0), vec![("x".into(), u64v(1))])
        .unwrap();
    drive(&mut node, 0);
    assert_eq!(
        node.stats().live_executions,
        1,
        "the Later op holds the cap"
    );
    // Refused (no subscriber): an AppIngressError goes on the bus; its
    // subscriber cannot start at the cap, which is refused in turn.
    node.deliver_app_event(NOBODY, u64v(5)).unwrap();

    let done = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&done);
    #[allow(clippy::disallowed_methods)] // a watchdog: the poll under test may never return
    let worker = thread::spawn(move || {
        let steps = drive(&mut node, 0);
        flag.store(true, Ordering::SeqCst);
        (node.stats().refused, steps.len())
    });
    for _ in 0..HANG_AFTER_MS / 10 {
        if done.load(Ordering::SeqCst) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    if !done.load(Ordering::SeqCst) {
        // The poll never returns and grows its step list without bound:
        // stop the whole test process before it exhausts memory.
        eprintln!("Node::poll did not return within {HANG_AFTER_MS} ms: route_bus loops");
        std::process::abort();
    }
    let (refused, _) = worker.join().unwrap();
    // The app event, and the subscriber start at the cap: each once.
    assert_eq!(refused, 2);
}
