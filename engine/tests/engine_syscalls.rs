#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Integration test of the syscall table through the public API: a
//! request-serving graph made only of built-in syscalls, parsed with
//! `Syscall::parse` and run in topological order by a minimal test driver
//! that builds a resource handle from a `Framework` per dispatch.
//!
//! It shows the syscalls compose: gates that write nothing stop their
//! consumers, a failed `DeadlineCheck` stops the rest of its execution,
//! permits are released, and the app sees one reply per fresh request.

use std::collections::HashMap;

use nodeflow_engine::{
    dispatch_syscall, Address, AddressList, AppOutputKind, ByteBudget, ComponentsView, Composite,
    CurrentCallCtx, DispatchResult, ExecId, Framework, FrameworkConfig, Graph, GraphBuilder,
    IdCounter, InboundCtx, IngressConfig, IngressQueue, OpError, OpErrorKind, OpInputs, OpOutputs,
    OpRef, PeerId, RuntimeResourceRef, SiteId, SlotValue, Syscall, TypedBus, U64Value,
};

/// Every op of `graph`, parsed once (as the engine does at install).
struct Installed {
    graph: Graph,
    order: Vec<u32>,
    syscalls: Vec<Syscall>,
}

/// A Node reduced to what a dispatch borrows.
struct Node {
    framework: Framework,
    bus: TypedBus,
    ingress: nodeflow_engine::sync::Arc<IngressQueue>,
    ids: IdCounter,
    next_exec: u64,
}

impl Node {
    fn new() -> Self {
        Self {
            framework: Framework::new(&FrameworkConfig::default()).unwrap(),
            bus: TypedBus::new(16),
            ingress: nodeflow_engine::sync::Arc::new(IngressQueue::new(
                IngressConfig::default(),
                ByteBudget::new(1 << 20),
            )),
            ids: IdCounter::starting_at(1),
            next_exec: 1,
        }
    }

    /// Calls `f` with a handle outside any execution, to read framework state.
    fn inspect(&mut self, f: impl FnOnce(&mut RuntimeResourceRef<'_>)) {
        let mut completions = Vec::new();
        let current = CurrentCallCtx {
            op_ref: OpRef::new(SiteId::new(1), 0),
            exec_id: ExecId::new(0),
            self_peer: PeerId::new(1),
            attributes: &[],
            metadata: &[],
            outputs: &[],
            inbound: InboundCtx::default(),
            pending_completions: &mut completions,
            next_command_id: &mut self.ids,
        };
        f(&mut self.framework.resource_ref(
            0,
            &mut self.bus,
            &self.ingress,
            ComponentsView::default(),
            current,
        ));
    }

    /// Runs one execution to completion and returns the ops that failed.
    fn execute(
        &mut self,
        installed: &Installed,
        inbound: InboundCtx,
        now_ns: u64,
        seeds: Vec<(&str, Box<dyn SlotValue>)>,
    ) -> Vec<(String, OpError)> {
        let exec = ExecId::new(self.next_exec);
        self.next_exec += 1;
        let mut values: HashMap<String, Box<dyn SlotValue>> = seeds
            .into_iter()
            .map(|(name, value)| (name.to_owned(), value))
            .collect();
        let mut failures = Vec::new();
        for &index in &installed.order {
            let op = &installed.graph.ops[index as usize];
            // An op fires only when every input is present.
            if !op.inputs.iter().all(|name| values.contains_key(name)) {
                continue;
            }
            let mut slots: Vec<Option<Box<dyn SlotValue>>> = op
                .inputs
                .iter()
                .map(|name| values.get(name).cloned())
                .collect();
            let mut written = Vec::new();
            let mut completions = Vec::new();
            let current = CurrentCallCtx {
                op_ref: OpRef::new(SiteId::new(1), index),
                exec_id: exec,
                self_peer: PeerId::new(1),
                attributes: &op.attributes,
                metadata: &op.metadata,
                outputs: &op.outputs,
                inbound,
                pending_completions: &mut completions,
                next_command_id: &mut self.ids,
            };
            let mut ctx = self.framework.resource_ref(
                now_ns,
                &mut self.bus,
                &self.ingress,
                ComponentsView::default(),
                current,
            );
            let mut inputs = OpInputs::new(&mut slots);
            let mut outputs = OpOutputs::new(&mut written, op.outputs.len());
            let syscall = &installed.syscalls[index as usize];
            match dispatch_syscall(syscall, &mut ctx, &mut inputs, &mut outputs) {
                Ok(DispatchResult::Immediate) => {}
                Ok(other) => panic!("{} parked ({other:?}); this driver has no timers", op.name),
                Err(error) => {
                    failures.push((op.name.clone(), error));
                    continue;
                }
            }
            for (name, value) in op.outputs.iter().zip(written) {
                values.insert(name.clone(), value);
            }
        }
        failures
    }
}

fn install(graph: Graph) -> Installed {
    let topology = graph.check_structure().unwrap();
    let syscalls = graph
        .ops
        .iter()
        .map(|op| Syscall::parse(op).unwrap_or_else(|e| panic!("{e}")))
        .collect();
    Installed {
        order: topology.topo_order().to_vec(),
        graph,
        syscalls,
    }
}

/// request → dedup → health → overload → deadline → count → permit → tag
/// → clock → bundle → release → reply; addresses → address book.
fn request_graph() -> Graph {
    let mut b = GraphBuilder::new("serve");
    let request = b.input("request");
    let addresses = b.input("addresses");
    let fresh = b.syscall("DedupGate.Rx", [request]).output();
    let healthy = b.syscall("PeerHealthGate.Rx", [fresh]).output();
    let admitted = b.syscall("BackoffGate.Rx", [healthy]).output();
    let in_time = b.syscall("DeadlineCheck", [admitted]).output();
    let counted = b
        .syscall("IncrMetric", [in_time])
        .attr("name", "requests")
        .output();
    let permitted = b
        .syscall("Limit.Acquire", [counted])
        .attr("name", "workers")
        .attr("limit", 1i64)
        .output();
    let tagged = b.syscall("CorrelateTag", [permitted]).output();
    let at = b.syscall("Clock", [tagged]).output();
    let reply = b
        .syscall("Bundle", [tagged, at])
        .attr("names", vec!["request", "at"])
        .output();
    let released = b
        .syscall("Limit.Release", [reply])
        .attr("name", "workers")
        .output();
    b.syscall("AppEmit", [released])
        .attr("name", "reply")
        .finish();
    b.syscall("AddressBook.InsertMany", [addresses]).finish();
    b.build().unwrap()
}

const CLIENT: PeerId = PeerId::new(5);

fn inbound(wire_req_id: u64, arrival_ns: u64) -> InboundCtx {
    InboundCtx {
        src_peer: Some(CLIENT),
        wire_req_id: Some(wire_req_id),
        arrival_ns: Some(arrival_ns),
        remaining_deadline_ns: Some(500),
    }
}

fn seeds(body: u64) -> Vec<(&'static str, Box<dyn SlotValue>)> {
    let addresses = AddressList::new(vec![Address::site(CLIENT, SiteId::new(2))]);
    vec![
        ("request", Box::new(U64Value(body))),
        ("addresses", Box::new(addresses)),
    ]
}

#[test]
fn fresh_request_produces_one_tagged_reply_and_releases_its_permit() {
    let installed = install(request_graph());
    let mut node = Node::new();
    let failures = node.execute(&installed, inbound(1, 1_000), 1_200, seeds(42));
    assert!(failures.is_empty(), "{failures:?}");

    let replies: Vec<_> = node.framework.drain_app_outputs().collect();
    assert_eq!(replies.len(), 1);
    assert_eq!(
        (replies[0].kind, replies[0].name.as_str()),
        (AppOutputKind::Emit, "reply")
    );
    let reply = replies[0].value.downcast_ref::<Composite>().unwrap();
    assert!(reply.get("at").unwrap().eq_value(&U64Value(1_200)));
    let tagged = reply
        .get("request")
        .unwrap()
        .downcast_ref::<Composite>()
        .unwrap();
    assert!(tagged.get("wire_req_id").unwrap().eq_value(&U64Value(1)));
    assert!(tagged.get("value").unwrap().eq_value(&U64Value(42)));

    node.inspect(|ctx| {
        assert_eq!(
            ctx.peers.gate.in_use("workers"),
            0,
            "the permit was released"
        );
        assert_eq!(ctx.syscall.counters.value("requests"), Some(1));
        assert_eq!(
            ctx.peers.addresses.lookup(CLIENT).unwrap(),
            &[Address::site(CLIENT, SiteId::new(2))]
        );
    });
}

#[test]
fn duplicates_stop_at_the_dedup_gate_and_late_requests_at_the_deadline() {
    let installed = install(request_graph());
    let mut node = Node::new();
    assert!(node
        .execute(&installed, inbound(7, 1_000), 1_100, seeds(1))
        .is_empty());
    // The same token again: the gate writes nothing, so nothing downstream fires.
    assert!(node
        .execute(&installed, inbound(7, 2_000), 2_100, seeds(2))
        .is_empty());
    // A fresh token whose deadline budget (500 ns) ran out in transit.
    let failures = node.execute(&installed, inbound(8, 3_000), 3_500, seeds(3));
    assert_eq!(failures.len(), 1);
    assert_eq!(failures[0].1.kind, OpErrorKind::Timeout);
    assert_eq!(failures[0].1.reason, "deadline.expired");

    let replies: Vec<_> = node.framework.drain_app_outputs().collect();
    assert_eq!(replies.len(), 1, "only the first request was answered");
}
