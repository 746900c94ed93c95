//! Boundaries and caps: refused entries get typed errors, inbound fills
//! fail alone, and the byte budget returns exactly to zero.
#![allow(clippy::unwrap_used)]

mod common;

use common::{drive, finished, u64v, Math};
use nodeflow_engine::{
    encode_envelope, BytesValue, DeliverError, Envelope, EnvelopeKind, Fill, GraphBuilder,
    InvokeError, Node, NodeConfig, Payload, PeerId, SiteId, Step, U64Value, WireLimits,
};

fn echo() -> nodeflow_engine::Graph {
    let mut b = GraphBuilder::new("echo");
    let x = b.input("x");
    let y = b.syscall("PassThrough", [x]).output();
    b.output(y, "y");
    b.build().unwrap()
}

fn echo_node(config: NodeConfig) -> Node {
    Node::builder(PeerId::new(2))
        .graph(echo())
        .config(config)
        .build()
        .unwrap()
}

#[test]
fn invoke_checks_site_and_inputs() {
    let mut node = echo_node(NodeConfig::default());
    assert!(matches!(
        node.invoke(SiteId::new(9), vec![]),
        Err(InvokeError::UnknownSite(_))
    ));
    assert!(matches!(
        node.invoke(SiteId::new(0), vec![("nope".into(), u64v(1))]),
        Err(InvokeError::UnknownInput { .. })
    ));
    assert!(matches!(
        node.invoke(SiteId::new(0), vec![]),
        Err(InvokeError::MissingInput { ref name, .. }) if name == "x"
    ));
    assert_eq!(node.stats().executions_started, 0);
}

#[test]
fn the_execution_cap_refuses_invokes_until_executions_finish() {
    let math = Math::default();
    let mut b = GraphBuilder::new("parks");
    let x = b.input("x");
    let y = b.op("Later", [x]).domain("math").output();
    b.output(y, "y");
    let config = NodeConfig {
        max_executions: 2,
        ..NodeConfig::default()
    };
    let mut node = Node::builder(PeerId::new(1))
        .component("math", Box::new(math.clone()))
        .graph(b.build().unwrap())
        .config(config)
        .build()
        .unwrap();
    node.invoke(SiteId::new(0), vec![("x".into(), u64v(1))])
        .unwrap();
    node.invoke(SiteId::new(0), vec![("x".into(), u64v(2))])
        .unwrap();
    drive(&mut node, 0);
    assert!(matches!(
        node.invoke(SiteId::new(0), vec![("x".into(), u64v(3))]),
        Err(InvokeError::TooManyExecutions { cap: 2, .. })
    ));
    for handle in math.handles.lock().drain(..) {
        handle.complete(&0).unwrap();
    }
    drive(&mut node, 0);
    node.invoke(SiteId::new(0), vec![("x".into(), u64v(3))])
        .unwrap();
}

#[test]
fn inputs_over_the_byte_budget_are_refused_whole() {
    let mut node = echo_node(NodeConfig {
        byte_budget: 100,
        ..NodeConfig::default()
    });
    let big = Box::new(BytesValue::new(vec![0; 101]));
    assert!(matches!(
        node.invoke(SiteId::new(0), vec![("x".into(), big)]),
        Err(InvokeError::Budget {
            requested: 101,
            limit: 100,
            ..
        })
    ));
    assert_eq!(node.budget().in_use(), 0);
}

#[test]
fn the_byte_budget_returns_to_zero_after_a_mixed_workload() {
    let mut node = echo_node(NodeConfig::default());
    let mut expected = 0;
    for i in 0..20u8 {
        let value = Box::new(BytesValue::new(vec![i; 64 + i as usize]));
        node.invoke(SiteId::new(0), vec![("x".into(), value)])
            .unwrap();
        expected += 1;
    }
    // Inbound envelopes, in-process and encoded.
    for i in 0..5u64 {
        let envelope = Envelope::new(PeerId::new(1), PeerId::new(2), EnvelopeKind::OneWay)
            .with_fill(Fill::site(SiteId::new(0), "x", Payload::value(U64Value(i))));
        node.deliver_envelope(envelope.clone()).unwrap();
        let mut bytes = Vec::new();
        encode_envelope(&envelope, &WireLimits::default(), &mut bytes).unwrap();
        node.deliver_envelope_bytes(&bytes).unwrap();
        expected += 2;
    }
    assert!(node.budget().in_use() > 0, "queued bytes are charged");
    let done = finished(&drive(&mut node, 0));
    assert_eq!(done.len(), expected);
    assert_eq!(node.budget().in_use(), 0);
    assert_eq!(node.stats().live_executions, 0);
}

#[test]
fn a_bad_fill_fails_alone_and_its_siblings_still_deliver() {
    let mut node = echo_node(NodeConfig::default());
    let envelope = Envelope::new(PeerId::new(1), PeerId::new(2), EnvelopeKind::OneWay)
        .with_fill(Fill::site(SiteId::new(7), "x", Payload::value(U64Value(1))))
        .with_fill(Fill::site(
            SiteId::new(0),
            "x",
            Payload::encoded(U64Value::TAG, vec![1, 2]),
        ))
        .with_fill(Fill::site(SiteId::new(0), "x", Payload::value(U64Value(3))));
    node.deliver_envelope(envelope).unwrap();
    let steps = drive(&mut node, 0);
    let failed: Vec<&String> = steps
        .iter()
        .filter_map(|s| match s {
            Step::ReceiveFailed { reason, .. } => Some(reason),
            _ => None,
        })
        .collect();
    assert_eq!(failed.len(), 2, "{failed:?}");
    assert_eq!(finished(&steps)[0].1, vec![("y".into(), Some(3))]);
    assert_eq!(node.stats().receive_failures, 2);
}

#[test]
fn oversized_or_garbage_bytes_are_refused_with_typed_errors() {
    let node = echo_node(NodeConfig {
        wire: WireLimits {
            max_envelope_bytes: 16,
            ..WireLimits::default()
        },
        ..NodeConfig::default()
    });
    assert!(matches!(
        node.deliver_envelope_bytes(&[0; 17]),
        Err(DeliverError::Bytes(_))
    ));
    let mut node = echo_node(NodeConfig::default());
    node.deliver_envelope_bytes(&[0xff; 40]).unwrap();
    let steps = drive(&mut node, 0);
    assert!(steps
        .iter()
        .any(|s| matches!(s, Step::ReceiveFailed { from: None, .. })));
    assert_eq!(node.budget().in_use(), 0);
}

#[test]
fn a_full_mailbox_hands_the_envelope_back() {
    let node = echo_node(NodeConfig {
        ingress: nodeflow_engine::IngressConfig {
            data_capacity: 1,
            ..nodeflow_engine::IngressConfig::default()
        },
        ..NodeConfig::default()
    });
    let envelope = || Envelope::new(PeerId::new(1), PeerId::new(2), EnvelopeKind::OneWay);
    node.deliver_envelope(envelope()).unwrap();
    match node.deliver_envelope(envelope()) {
        Err(DeliverError::Refused(err)) => {
            assert!(matches!(
                err.into_inner(),
                nodeflow_engine::IngressEvent::Envelope(_)
            ));
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
}
