//! Tests of snapshot and restore: round trips, resumed work and refused snapshots.

#![allow(clippy::unwrap_used)]

use super::*;
use crate::bus::NodeEvent;
use crate::component::{Component, DispatchResult, LocalOpId, OpErrorKind, OpInputs, OpOutputs};
use crate::graph::{Graph, GraphBuilder};
use crate::ids::{ExecId, Incarnation};
use crate::ingress::IngressEvent;
use crate::resource::RuntimeResourceRef;
use crate::value::{SlotValue, TypeTag, U64Value};
use crate::wire::{Envelope, EnvelopeKind, Fill, Payload};

/// Counts its firings; the count is its snapshot state.
#[derive(Default)]
struct Counter {
    count: u64,
}

impl Component for Counter {
    fn kind(&self) -> &str {
        "counter"
    }

    fn resolve_op(&self, op_type: &str) -> Option<LocalOpId> {
        (op_type == "Inc").then_some(LocalOpId(0))
    }

    fn dispatch_atomic(
        &mut self,
        _op: LocalOpId,
        _ctx: &mut RuntimeResourceRef<'_>,
        _inputs: &mut OpInputs<'_>,
        outputs: &mut OpOutputs<'_>,
    ) -> Result<DispatchResult, OpError> {
        self.count += 1;
        outputs.push(Box::new(U64Value(self.count)))?;
        Ok(DispatchResult::Immediate)
    }

    fn snapshot_state(&self) -> Result<Vec<u8>, OpError> {
        Ok(self.count.to_le_bytes().to_vec())
    }

    fn restore_state(&mut self, bytes: &[u8]) -> Result<(), OpError> {
        let raw: [u8; 8] = bytes.try_into().map_err(|_| {
            OpError::new(OpErrorKind::InvalidInput, "counter.state", "need 8 bytes")
        })?;
        self.count = u64::from_le_bytes(raw);
        Ok(())
    }
}

/// A value with no byte form.
#[derive(Clone, Debug, PartialEq)]
struct Opaque;

impl SlotValue for Opaque {
    fn type_tag(&self) -> TypeTag {
        TypeTag::new(TypeTag::USER_MIN + 7)
    }
    fn clone_value(&self) -> Box<dyn SlotValue> {
        Box::new(self.clone())
    }
    fn encode(&self, _out: &mut Vec<u8>) -> Result<(), EncodeError> {
        Err(EncodeError::NotEncodable {
            type_name: "Opaque",
            reason: "a local handle".to_owned(),
        })
    }
    fn eq_value(&self, other: &dyn SlotValue) -> bool {
        other.is::<Opaque>()
    }
}

/// `x -> Inc -> Sleep(1000) -> PassThrough -> y`.
fn graph(name: &str) -> Graph {
    let mut b = GraphBuilder::new(name);
    let x = b.input("x");
    let n = b.op("Inc", [x]).domain("c").output();
    let y = b
        .syscall("Sleep", [n])
        .attr("duration_ns", 1_000i64)
        .output();
    let y = b.syscall("PassThrough", [y]).output();
    b.output(y, "y");
    b.build().unwrap()
}

fn builder(peer: u64, name: &str) -> NodeBuilder {
    Node::builder(PeerId::new(peer))
        .component("c", Box::<Counter>::default())
        .graph(graph(name))
}

/// A Node with one execution parked in `Sleep`.
fn parked_node() -> Node {
    let mut node = builder(1, "g").build().unwrap();
    node.invoke(SiteId::new(0), vec![("x".into(), Box::new(U64Value(5)))])
        .unwrap();
    while node.has_work() {
        node.poll(0).for_each(drop);
    }
    assert_eq!(node.parked.len(), 1);
    node
}

fn finished_values(node: &mut Node, now_ns: u64) -> Vec<(ExecId, Option<u64>)> {
    let mut out = Vec::new();
    loop {
        for step in node.poll(now_ns) {
            if let super::super::Step::ExecFinished { exec, outputs, .. } = step {
                let value = outputs
                    .first()
                    .and_then(|(_, v)| v.downcast_ref::<U64Value>())
                    .map(|v| v.0);
                out.push((exec, value));
            }
        }
        if !node.has_work() {
            return out;
        }
    }
}

#[test]
fn a_parked_execution_and_component_state_survive_a_round_trip() {
    let mut node = parked_node();
    let bytes = node.snapshot().unwrap();
    let mut restored = builder(1, "g").restore(&bytes).unwrap();
    assert_eq!(restored.incarnation(), Incarnation::new(1));
    assert_eq!(restored.stats().parked, 1);
    assert_eq!(restored.next_deadline(), node.next_deadline());
    let a = finished_values(&mut node, 1_000);
    let b = finished_values(&mut restored, 1_000);
    assert_eq!(a, b);
    assert_eq!(b.len(), 1);
    assert_eq!(b[0].1, Some(1));
    // The component's counter continues from the snapshot.
    restored
        .invoke(SiteId::new(0), vec![("x".into(), Box::new(U64Value(1)))])
        .unwrap();
    finished_values(&mut restored, 2_000);
    assert_eq!(finished_values(&mut restored, 3_000)[0].1, Some(2));
    assert_eq!(restored.budget().in_use(), 0);
}

#[test]
fn each_restore_bumps_the_incarnation() {
    let mut node = parked_node();
    let mut once = builder(1, "g").restore(&node.snapshot().unwrap()).unwrap();
    let twice = builder(1, "g").restore(&once.snapshot().unwrap()).unwrap();
    assert_eq!(node.incarnation(), Incarnation::new(0));
    assert_eq!(twice.incarnation(), Incarnation::new(2));
}

#[test]
fn another_version_is_a_typed_mismatch() {
    let mut bytes = parked_node().snapshot().unwrap();
    bytes[..4].copy_from_slice(&(SNAPSHOT_VERSION + 1).to_le_bytes());
    let err = builder(1, "g").restore(&bytes).unwrap_err();
    assert!(matches!(
        err,
        RestoreError::VersionMismatch { found, expected }
            if found == SNAPSHOT_VERSION + 1 && expected == SNAPSHOT_VERSION
    ));
}

#[test]
fn other_graphs_or_another_peer_are_refused() {
    let bytes = parked_node().snapshot().unwrap();
    let err = builder(1, "renamed").restore(&bytes).unwrap_err();
    assert!(matches!(err, RestoreError::GraphMismatch { found, expected } if found != expected));
    let err = builder(2, "g").restore(&bytes).unwrap_err();
    assert!(matches!(
        err,
        RestoreError::PeerMismatch { found, expected }
            if found == PeerId::new(1) && expected == PeerId::new(2)
    ));
}

#[test]
fn truncated_or_corrupt_bytes_are_typed_errors() {
    let bytes = parked_node().snapshot().unwrap();
    for len in 0..bytes.len() {
        let err = builder(1, "g").restore(&bytes[..len]).unwrap_err();
        assert!(
            matches!(err, RestoreError::Decode(_)),
            "prefix {len}: {err}"
        );
    }
    let mut flipped = bytes.clone();
    let last = flipped.len() - 1;
    flipped[last] ^= 0xff;
    assert!(matches!(
        builder(1, "g").restore(&flipped),
        Err(RestoreError::Decode(_))
    ));
    // Garbage behind a valid header and checksum fails to decode.
    let garbage: Vec<u8> = (0..200u32).map(|i| (i * 37 % 251) as u8).collect();
    let mut forged = SNAPSHOT_VERSION.to_le_bytes().to_vec();
    forged.extend_from_slice(&fnv1a(FNV_OFFSET, &garbage).to_le_bytes());
    forged.extend_from_slice(&garbage);
    assert!(matches!(
        builder(1, "g").restore(&forged),
        Err(RestoreError::Decode(_))
    ));
}

/// Re-encodes `bytes` with `edit` applied to the body.
fn forge(bytes: &[u8], edit: impl FnOnce(&mut NodeSnapshot)) -> Vec<u8> {
    let mut snap: NodeSnapshot = postcard::from_bytes(&bytes[HEADER_LEN..]).unwrap();
    edit(&mut snap);
    let body = postcard::to_allocvec(&snap).unwrap();
    let mut out = SNAPSHOT_VERSION.to_le_bytes().to_vec();
    out.extend_from_slice(&fnv1a(FNV_OFFSET, &body).to_le_bytes());
    out.extend_from_slice(&body);
    out
}

#[test]
fn well_formed_but_inconsistent_state_is_refused_before_it_runs() {
    let bytes = parked_node().snapshot().unwrap();
    type Edit = Box<dyn FnOnce(&mut NodeSnapshot)>;
    let edits: Vec<Edit> = vec![
        Box::new(|s| s.slots[0].exec.as_mut().unwrap().pending = 0),
        Box::new(|s| s.slots[0].exec.as_mut().unwrap().site = SiteId::new(9)),
        Box::new(|s| {
            s.slots[0].exec.as_mut().unwrap().missing.push(0);
        }),
        Box::new(|s| {
            let exec = s.slots[0].exec.as_mut().unwrap();
            exec.reads_left.iter_mut().for_each(|r| *r = 0);
        }),
        Box::new(|s| {
            let exec = s.slots[0].exec.as_mut().unwrap();
            exec.missing.iter_mut().for_each(|m| *m = 0);
        }),
        Box::new(|s| s.parked[0].gen += 1),
        Box::new(|s| s.free.push(0)),
        Box::new(|s| {
            s.on_trigger
                .push((EventKind::new(1), vec![OpRef::new(SiteId::new(3), 0)]))
        }),
        Box::new(|s| s.bootstrap_queue.push(SiteId::new(4))),
    ];
    for (index, edit) in edits.into_iter().enumerate() {
        let err = builder(1, "g").restore(&forge(&bytes, edit)).unwrap_err();
        assert!(
            matches!(err, RestoreError::Decode(_)),
            "edit {index}: {err}"
        );
    }
    // Unedited, the same path restores.
    assert!(builder(1, "g").restore(&forge(&bytes, |_| {})).is_ok());
}

#[test]
fn a_value_without_a_byte_form_fails_the_snapshot_naming_it() {
    let mut node = builder(1, "g").build().unwrap();
    node.ingress()
        .push_data(IngressEvent::Invoke {
            site: SiteId::new(0),
            inputs: vec![("x".into(), Box::new(Opaque))],
            ticket: 3,
        })
        .unwrap();
    let err = node.snapshot().unwrap_err();
    let SnapshotError::NotEncodable { location, .. } = err else {
        panic!("expected NotEncodable, got {err}");
    };
    assert!(location.contains("queued invoke of site:0"), "{location}");
    // The queued invoke was kept (staged), not dropped.
    assert_eq!(node.staged.len(), 1);
    assert!(node.has_work());
}

#[test]
fn undrained_bus_events_refuse_the_snapshot() {
    let mut node = builder(1, "g").build().unwrap();
    node.bus
        .publish(NodeEvent::PeerCameUp {
            peer: PeerId::new(4),
        })
        .unwrap();
    assert!(matches!(
        node.snapshot(),
        Err(SnapshotError::Undrained { count: 1, .. })
    ));
}

#[test]
fn steps_waiting_for_a_poll_must_be_drained_before_a_snapshot() {
    let mut node = parked_node();
    let envelope = crate::wire::Envelope::new(
        node.peer(),
        crate::ids::PeerId::new(99),
        crate::wire::EnvelopeKind::OneWay,
    );
    node.report_send_refused(envelope, crate::node::SendRefusal::Full, 0);
    assert!(matches!(
        node.snapshot(),
        Err(SnapshotError::Undrained {
            what: "steps",
            count: 1
        })
    ));
    let _ = node.poll(0).count();
    assert!(node.snapshot().is_ok());
}

#[test]
fn unknown_slot_or_bad_component_state_is_a_component_error() {
    let bytes = parked_node().snapshot().unwrap();
    let bad = forge(&bytes, |s| s.components[0].1 = vec![1, 2, 3]);
    assert!(matches!(
        builder(1, "g").restore(&bad),
        Err(RestoreError::Component { slot, .. }) if slot == "c"
    ));
    let unknown = forge(&bytes, |s| s.components.push(("z".into(), Vec::new())));
    assert!(matches!(
        builder(1, "g").restore(&unknown),
        Err(RestoreError::Component { slot, .. }) if slot == "z"
    ));
}

#[test]
fn restore_recharges_the_bytes_executions_hold() {
    let mut node = builder(1, "g").build().unwrap();
    let input: Box<dyn SlotValue> = Box::new(crate::value::BytesValue::new(vec![7u8; 100]));
    node.invoke(SiteId::new(0), vec![("x".into(), input)])
        .unwrap();
    while node.has_work() {
        node.poll(0).for_each(drop);
    }
    let held = node.budget().in_use();
    assert!(held >= 100);
    let mut restored = builder(1, "g").restore(&node.snapshot().unwrap()).unwrap();
    assert_eq!(restored.budget().in_use(), held);
    finished_values(&mut restored, 1_000);
    assert_eq!(restored.budget().in_use(), 0);
}

#[test]
fn value_holders_and_outbound_envelopes_are_restored_value_by_value() {
    let mut b = GraphBuilder::new("keep");
    let x = b.input("x");
    b.syscall("Hold.Stash", [x]).attr("slot", "h").finish();
    b.syscall("Serialize.Enqueue", [x])
        .attr("queue", "q")
        .finish();
    b.syscall("Record", [x]).attr("name", "rec").finish();
    let keep = b.build().unwrap();
    let build = || Node::builder(PeerId::new(1)).graph(keep.clone());
    let mut node = build().build().unwrap();
    for (now, v) in [(5, 1u64), (6, 2)] {
        node.invoke(SiteId::new(0), vec![("x".into(), Box::new(U64Value(v)))])
            .unwrap();
        while node.has_work() {
            node.poll(now).for_each(drop);
        }
    }
    let envelope = Envelope::new(PeerId::new(1), PeerId::new(2), EnvelopeKind::Request)
        .with_request_id(4)
        .with_fill(Fill::site(SiteId::new(0), "x", Payload::value(U64Value(3))));
    node.framework.outbound().push(envelope.clone());

    let mut restored = build().restore(&node.snapshot().unwrap()).unwrap();
    let holders = restored.framework.holders();
    assert!(holders
        .hold_table
        .peek("h")
        .is_some_and(|v| v.eq_value(&U64Value(2))));
    let queued: Vec<_> = holders
        .serialize_queue
        .iter()
        .map(|(_, v)| v.clone_value())
        .collect();
    assert_eq!(queued.len(), 2);
    assert!(queued[0].eq_value(&U64Value(1)) && queued[1].eq_value(&U64Value(2)));
    let records: Vec<u64> = holders
        .record_buffer
        .iter("rec")
        .map(|r| r.recorded_at_ns)
        .collect();
    assert_eq!(records, vec![5, 6]);
    let sent: Vec<Envelope> = restored
        .poll(7)
        .filter_map(|step| match step {
            super::super::Step::SendEnvelope(e) => Some(e),
            _ => None,
        })
        .collect();
    assert_eq!(sent, vec![envelope]);
}
