//! Sends the host could not deliver ([`Node::report_send_refused`]): a
//! refused request fails its `Send` op at once with a typed reason (no
//! deadline wait), every refusal is counted and reported, `Full` backs the
//! sender off the peer until it clears, `UnknownPeer` counts against the
//! peer's health, and nothing leaks (executions end, the byte budget
//! returns to zero).
#![allow(clippy::unwrap_used)]

mod common;

use common::{drive, failures, finished, u64v, Math};
use nodeflow_engine::{
    BytesValue, Envelope, EnvelopeKind, GovernorConfig, Graph, GraphBuilder, Node, NodeConfig,
    NodeEvent, OpErrorKind, PeerId, SendRefusal, SiteId, SlotValue, Step,
};

const A: PeerId = PeerId::new(0xa);
const B: PeerId = PeerId::new(0xb);

/// Request deadline of the client graph: far later than any test time used
/// before it, so a failure before it is not a timeout.
const TIMEOUT: u64 = 1_000_000_000;

/// `x` is sent to `B`'s site 0 input `x`, as a request when `request`;
/// a request's response is the output `answer`, a one-way send's trigger
/// the output `sent`.
fn sender(request: bool) -> Graph {
    let mut b = GraphBuilder::new("sender");
    let x = b.input("x");
    let out = b
        .syscall("Send", [x])
        .attr("peer", B.as_u64() as i64)
        .attr("site", 0)
        .attr("input", "x")
        .attr("request", i64::from(request))
        .attr("timeout_ns", TIMEOUT as i64)
        .output();
    b.output(out, if request { "answer" } else { "sent" });
    b.build().unwrap()
}

fn node(request: bool, config: NodeConfig) -> Node {
    Node::builder(A)
        .component("math", Box::new(Math::default()))
        .graph(sender(request))
        .config(config)
        .build()
        .unwrap()
}

/// Invokes the sender with `value` at `now` and returns the envelopes it sent.
fn send(node: &mut Node, value: Box<dyn SlotValue>, now: u64) -> (Vec<Envelope>, Vec<Step>) {
    node.invoke(SiteId::new(0), vec![("x".into(), value)])
        .unwrap();
    let mut sent = Vec::new();
    let mut rest = Vec::new();
    for step in drive(node, now) {
        match step {
            Step::SendEnvelope(envelope) => sent.push(envelope),
            other => rest.push(other),
        }
    }
    (sent, rest)
}

/// The `SendRefused` steps as (to, reason, kind, token).
fn refusals(steps: &[Step]) -> Vec<(PeerId, SendRefusal, EnvelopeKind, Option<u64>)> {
    steps
        .iter()
        .filter_map(|step| match step {
            Step::SendRefused {
                to,
                reason,
                kind,
                token,
            } => Some((*to, *reason, *kind, *token)),
            _ => None,
        })
        .collect()
}

fn timeouts(steps: &[Step]) -> usize {
    steps
        .iter()
        .filter(|step| matches!(step, Step::Timeout { .. }))
        .count()
}

#[test]
fn a_refused_request_fails_at_once_with_the_typed_reason_of_each_refusal() {
    for (refusal, reason) in [
        (SendRefusal::Full, "wire.peer_full"),
        (SendRefusal::UnknownPeer, "wire.unknown_peer"),
        (SendRefusal::Closed, "wire.peer_closed"),
    ] {
        let mut node = node(true, NodeConfig::default());
        let (mut sent, _) = send(&mut node, u64v(7), 0);
        assert_eq!(sent.len(), 1);
        let envelope = sent.remove(0);
        let token = envelope.wire_req_id;
        assert!(token.is_some());
        assert_eq!(node.framework().requests().len(), 1);
        assert_eq!(node.stats().parked, 1);

        node.report_send_refused(envelope, refusal, 10);
        // The driving rule: the report is an input, a poll must follow.
        assert!(node.has_work(), "{refusal:?}");
        let steps = drive(&mut node, 10);

        assert_eq!(
            refusals(&steps),
            vec![(B, refusal, EnvelopeKind::Request, token)]
        );
        let errors = failures(&steps);
        assert_eq!(errors.len(), 1, "{refusal:?}");
        assert_eq!(errors[0].kind, OpErrorKind::Refused);
        assert_eq!(errors[0].reason, reason);
        assert_eq!(refusal.reason(), reason);
        // The execution ended now, without its answer.
        let done = finished(&steps);
        assert_eq!(done.len(), 1);
        assert_eq!(done[0].2, vec!["answer".to_owned()]);
        let stats = node.stats();
        assert_eq!(stats.sends_refused, 1);
        assert_eq!(stats.ops_failed, 1);
        assert_eq!(stats.parked, 0);
        assert_eq!(stats.live_executions, 0);
        assert_eq!(node.framework().requests().len(), 0);
        assert_eq!(node.framework().requests().stats().resolved, 1);

        // Nothing times out later: the request and its op are gone.
        let later = drive(&mut node, TIMEOUT * 2);
        assert_eq!(timeouts(&later), 0);
        assert!(failures(&later).is_empty());
        assert_eq!(node.stats().timeouts, 0);
        assert_eq!(node.framework().requests().stats().expired, 0);
    }
}

#[test]
fn a_refused_one_way_send_is_reported_and_counted() {
    let mut node = node(false, NodeConfig::default());
    let (mut sent, steps) = send(&mut node, u64v(3), 0);
    // A one-way send ends its execution as soon as it is queued.
    assert_eq!(finished(&steps).len(), 1);
    assert_eq!(sent.len(), 1);
    node.report_send_refused(sent.remove(0), SendRefusal::Closed, 5);
    assert!(node.has_work());
    let steps = drive(&mut node, 5);
    assert_eq!(
        refusals(&steps),
        vec![(B, SendRefusal::Closed, EnvelopeKind::OneWay, None)]
    );
    assert!(failures(&steps).is_empty());
    assert_eq!(node.stats().sends_refused, 1);
    assert_eq!(node.stats().ops_failed, 0);
    // `Closed` neither backs off nor counts against the peer's health.
    assert!(node.framework().backoff().is_ready(B, 5));
    assert_eq!(node.framework().governor().consecutive_failures(B), 0);
}

#[test]
fn full_backs_off_the_peer_until_a_clear_or_the_retry_time() {
    let config = NodeConfig::default();
    let retry = config.framework.backpressure.retry_after_ns;
    assert!(retry > 0);
    let mut node = node(true, config);
    let (mut sent, _) = send(&mut node, u64v(1), 0);
    node.report_send_refused(sent.remove(0), SendRefusal::Full, 100);
    drive(&mut node, 100);
    assert_eq!(node.framework().backoff().ready_at(B), Some(100 + retry));

    // The next Send to B is refused before anything is sent.
    let (sent, steps) = send(&mut node, u64v(2), 200);
    assert!(sent.is_empty());
    let errors = failures(&steps);
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].kind, OpErrorKind::Refused);
    assert_eq!(errors[0].reason, "wire.backoff");

    // A BackoffClear from B lifts it at once.
    node.deliver_envelope(Envelope::new(B, A, EnvelopeKind::BackoffClear))
        .unwrap();
    drive(&mut node, 300);
    assert!(node.framework().backoff().is_ready(B, 300));
    let (sent, steps) = send(&mut node, u64v(3), 300);
    assert_eq!(sent.len(), 1);
    assert!(failures(&steps).is_empty());

    // Refused again: without a clear, sending resumes once the retry time passed.
    node.report_send_refused(sent.into_iter().next().unwrap(), SendRefusal::Full, 400);
    drive(&mut node, 400);
    let (sent, _) = send(&mut node, u64v(4), 400 + retry - 1);
    assert!(sent.is_empty());
    let (sent, _) = send(&mut node, u64v(5), 400 + retry);
    assert_eq!(sent.len(), 1);
    assert_eq!(node.stats().sends_refused, 2);
    assert_eq!(node.framework().backoff().stats().advisories, 2);
}

#[test]
fn unknown_peer_counts_against_the_peers_health_until_it_is_down() {
    let mut config = NodeConfig::default();
    config.framework.governor = GovernorConfig {
        failure_threshold: 2,
        ..GovernorConfig::default()
    };
    let mut node = node(true, config);
    let mut went_down = 0;
    for round in 0..2u64 {
        let now = round * 10;
        let (mut sent, _) = send(&mut node, u64v(round), now);
        assert_eq!(sent.len(), 1, "round {round}");
        node.report_send_refused(sent.remove(0), SendRefusal::UnknownPeer, now);
        let steps = drive(&mut node, now);
        assert_eq!(
            node.framework().governor().consecutive_failures(B),
            round as u32 + 1
        );
        went_down += steps
            .iter()
            .filter(|s| matches!(s, Step::Event(NodeEvent::PeerWentDown { peer }) if *peer == B))
            .count();
    }
    // The second failure reached the threshold: B is down, once.
    assert_eq!(went_down, 1);
    assert!(node.framework().governor().is_down(B));
    // Unknown peer applies no back-off advisory.
    assert!(node.framework().backoff().is_ready(B, 20));
    let (sent, steps) = send(&mut node, u64v(9), 20);
    assert!(sent.is_empty());
    assert_eq!(failures(&steps)[0].reason, "gate.peer_down");
}

#[test]
fn refused_requests_leak_nothing_and_the_byte_budget_returns_to_zero() {
    let mut node = node(true, NodeConfig::default());
    let mut sent = Vec::new();
    for i in 0..5u8 {
        let value: Box<dyn SlotValue> = Box::new(BytesValue::new(vec![i; 1024]));
        let (envelopes, _) = send(&mut node, value, 0);
        sent.extend(envelopes);
    }
    assert_eq!(sent.len(), 5);
    assert!(node.budget().in_use() >= 5 * 1024);
    assert_eq!(node.stats().live_executions, 5);
    let mut all = Vec::new();
    for (i, envelope) in sent.into_iter().enumerate() {
        let reason = [
            SendRefusal::Full,
            SendRefusal::UnknownPeer,
            SendRefusal::Closed,
        ][i % 3];
        node.report_send_refused(envelope, reason, 1);
        all.extend(drive(&mut node, 1));
    }
    assert_eq!(refusals(&all).len(), 5);
    assert_eq!(failures(&all).len(), 5);
    assert_eq!(finished(&all).len(), 5);
    let stats = node.stats();
    assert_eq!(stats.sends_refused, 5);
    assert_eq!(stats.executions_started, 5);
    assert_eq!(stats.executions_finished, 5);
    assert_eq!(stats.live_executions, 0);
    assert_eq!(stats.parked, 0);
    assert_eq!(node.framework().requests().len(), 0);
    assert_eq!(node.budget().in_use(), 0);
    assert!(!node.has_work());
}

#[test]
fn a_report_that_matches_no_request_of_ours_only_counts() {
    let mut node = node(true, NodeConfig::default());
    let (mut sent, _) = send(&mut node, u64v(1), 0);
    let ours = sent.remove(0);
    let token = ours.wire_req_id.unwrap();

    // Same token, but not sent by this Node: the request stays in flight.
    let foreign = Envelope::new(PeerId::new(0xc), B, EnvelopeKind::Request).with_request_id(token);
    node.report_send_refused(foreign, SendRefusal::Full, 1);
    // Same token, but a different destination.
    let elsewhere =
        Envelope::new(A, PeerId::new(0xd), EnvelopeKind::Request).with_request_id(token);
    node.report_send_refused(elsewhere, SendRefusal::Closed, 1);
    // A response of ours with that token (we answer with peers' tokens).
    let response = Envelope::new(A, B, EnvelopeKind::Response).with_request_id(token);
    node.report_send_refused(response, SendRefusal::Closed, 1);
    let steps = drive(&mut node, 1);
    assert_eq!(refusals(&steps).len(), 3);
    assert!(failures(&steps).is_empty());
    assert_eq!(node.stats().sends_refused, 3);
    assert_eq!(node.stats().parked, 1);
    assert_eq!(node.framework().requests().len(), 1);
    // The foreign `Full` changed nothing about B.
    assert!(node.framework().backoff().is_ready(B, 1));

    // Its own report still fails it; a second report of it only counts.
    let copy = Envelope::new(A, B, EnvelopeKind::Request).with_request_id(token);
    node.report_send_refused(ours, SendRefusal::Closed, 2);
    node.report_send_refused(copy, SendRefusal::Closed, 2);
    let steps = drive(&mut node, 2);
    assert_eq!(failures(&steps).len(), 1);
    assert!(!steps
        .iter()
        .any(|s| matches!(s, Step::UnknownCompletion { .. })));
    assert_eq!(node.stats().sends_refused, 5);
    assert_eq!(node.stats().unknown_completions, 0);
    assert_eq!(node.stats().live_executions, 0);
}

#[test]
fn a_request_whose_op_already_timed_out_is_resolved_quietly() {
    let mut node = node(true, NodeConfig::default());
    let (mut sent, _) = send(&mut node, u64v(1), 0);
    let envelope = sent.remove(0);
    // The request and the op share the deadline; past it both are gone.
    let steps = drive(&mut node, TIMEOUT + 1);
    assert_eq!(timeouts(&steps), 1);
    assert_eq!(node.stats().live_executions, 0);
    node.report_send_refused(envelope, SendRefusal::Full, TIMEOUT + 2);
    let steps = drive(&mut node, TIMEOUT + 2);
    assert_eq!(refusals(&steps).len(), 1);
    assert!(failures(&steps).is_empty());
    assert_eq!(node.stats().unknown_completions, 0);
    assert_eq!(node.stats().ops_failed, 1);
}
