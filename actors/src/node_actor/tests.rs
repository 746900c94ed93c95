use super::*;
use std::time::Duration;

use nodeflow_engine::{AppOutputKind, GraphBuilder, OpRef, U64Value};

use crate::clock::{ManualClock, SystemClock};

const PEER: PeerId = PeerId::new(42);
const PATIENCE: Duration = Duration::from_secs(5);

/// A Node whose site 0 passes `x` through to `y`.
fn echo_node() -> Node {
    let mut b = GraphBuilder::new("echo");
    let x = b.input("x");
    let y = b.syscall("PassThrough", [x]).output();
    b.output(y, "y");
    Node::builder(PEER)
        .graph(b.build().expect("a valid graph"))
        .build()
        .expect("a valid node")
}

fn spawn_with(config: ActorConfig) -> (ActorHandle, Arc<Router>) {
    let router = Arc::new(Router::new());
    let handle = NodeActor::spawn(
        echo_node(),
        Arc::clone(&router),
        Arc::new(SystemClock::new()),
        config,
    )
    .unwrap();
    (handle, router)
}

fn x(value: u64) -> Vec<(String, Box<dyn SlotValue>)> {
    vec![("x".to_owned(), Box::new(U64Value(value)))]
}

#[test]
fn stop_runs_mail_queued_before_the_close_and_refuses_mail_after_it() {
    let (handle, router) = spawn_with(ActorConfig::default());
    assert!(router.contains(PEER));
    for ticket in 0..5 {
        handle.invoke(SiteId::new(0), x(ticket), ticket).unwrap();
    }
    let ingress = Arc::clone(handle.ingress());
    let report = handle.stop().unwrap();
    assert_eq!(report.node.executions_finished, 5);
    assert_eq!(report.stats.outputs_unobserved, 5, "nobody subscribed");
    assert_eq!(report.ingress.data.accepted, 5);
    assert_eq!(report.ingress.data.taken, 5);
    assert_eq!(report.dropped_at_close, 0);
    assert!(!router.contains(PEER));
    assert!(ingress
        .push_data(IngressEvent::Invoke {
            site: SiteId::new(0),
            inputs: x(9),
            ticket: 9,
        })
        .is_err_and(|err| err.is_closed()));
}

#[test]
fn subscriptions_are_capped_and_a_dropped_receiver_frees_its_slot() {
    let (handle, _router) = spawn_with(ActorConfig {
        max_subscribers: 2,
        ..ActorConfig::default()
    });
    let gone = handle.subscribe().unwrap();
    let kept = handle.subscribe().unwrap();
    assert_eq!(
        handle.subscribe().unwrap_err(),
        SubscribeError::TooMany { cap: 2 }
    );
    drop(gone);
    handle.invoke(SiteId::new(0), x(7), 1).unwrap();
    let out = kept.recv_timeout(PATIENCE).unwrap();
    assert!(matches!(
        &out,
        ActorOutput::ExecFinished { origin: ExecOrigin::Ticket(1), outputs, .. }
            if outputs[0].1.downcast_ref::<U64Value>() == Some(&U64Value(7))
    ));
    // `forward` pruned the dead receiver under the lock `subscribe` takes.
    let _again = handle.subscribe().unwrap();
    let stats = handle.stats();
    assert_eq!((stats.outputs_forwarded, stats.subscribers_dropped), (1, 1));
    handle.stop().unwrap();
    assert!(
        kept.recv_timeout(PATIENCE).is_err(),
        "stop disconnects subscribers"
    );
}

#[test]
fn spawn_refusals_hand_the_node_back_and_leave_no_registration() {
    let router = Arc::new(Router::new());
    let clock: Arc<dyn Clock> = Arc::new(ManualClock::with_watch_cap(0));
    match NodeActor::spawn(
        echo_node(),
        Arc::clone(&router),
        clock,
        ActorConfig::default(),
    ) {
        Err(SpawnError::Watch { node, .. }) => assert_eq!(node.peer(), PEER),
        other => panic!("expected a watch refusal, got {other:?}"),
    }
    assert!(!router.contains(PEER), "the registration was rolled back");

    let (_running, router) = spawn_with(ActorConfig::default());
    let again = NodeActor::spawn(
        echo_node(),
        Arc::clone(&router),
        Arc::new(SystemClock::new()),
        ActorConfig::default(),
    );
    assert!(matches!(
        again,
        Err(SpawnError::Register { ref node, source: RegisterError::Duplicate { .. } })
            if node.peer() == PEER
    ));
}

#[test]
fn the_thread_is_named_after_the_peer() {
    let (handle, _router) = spawn_with(ActorConfig {
        thread_name_prefix: "node-".to_owned(),
        ..ActorConfig::default()
    });
    let name = handle
        .thread
        .as_ref()
        .and_then(|t| t.thread().name().map(str::to_owned));
    assert_eq!(name, Some(format!("node-{PEER}")));
    assert!(!handle.is_finished());
    handle.stop().unwrap();
}

#[test]
fn an_output_copy_has_equal_values() {
    let output = ActorOutput::App {
        peer: PEER,
        output: AppOutput {
            exec: ExecId::new(3),
            op: OpRef::new(SiteId::new(0), 1),
            kind: AppOutputKind::Emit,
            name: "out".to_owned(),
            value: Box::new(U64Value(5)),
        },
    };
    match output.clone() {
        ActorOutput::App { peer, output: copy } => {
            assert_eq!(peer, PEER);
            assert_eq!(copy.name, "out");
            assert!(copy.value.eq_value(&U64Value(5)));
        }
        other => panic!("wrong variant {other:?}"),
    }
    assert_eq!(output.peer(), PEER);
}

#[test]
fn panic_messages_are_read_from_str_and_string_payloads() {
    assert_eq!(panic_message(&"boom"), "boom");
    assert_eq!(panic_message(&String::from("bang")), "bang");
    assert_eq!(panic_message(&7u8), "a panic with a non-string payload");
}
