//! Install validation: every mistake that can be caught before running is
//! a typed error at build time.
#![allow(clippy::unwrap_used)]

mod common;

use common::Math;
use nodeflow_engine::{
    BuildError, Component, Dependency, DispatchResult, GraphBuilder, GraphError, InstallError,
    LocalOpId, Node, OpError, OpInputs, OpOutputs, PeerId, RuntimeResourceRef, SyscallParseError,
};

fn install_error(builder: nodeflow_engine::NodeBuilder) -> InstallError {
    match builder.build() {
        Err(BuildError::Install(err)) => *err,
        other => panic!("expected an install error, got {other:?}"),
    }
}

fn one_op(domain: &str, op_type: &str) -> nodeflow_engine::Graph {
    let mut b = GraphBuilder::new("g");
    let x = b.input("x");
    let y = b.op(op_type, [x]).domain(domain).output();
    b.output(y, "y");
    b.build().unwrap()
}

#[test]
fn an_op_whose_domain_names_no_bound_slot_is_refused() {
    let err = install_error(Node::builder(PeerId::new(1)).graph(one_op("nope", "Add")));
    assert!(matches!(err, InstallError::UnboundSlot { ref slot, .. } if slot == "nope"));
    // The ONNX default domain maps to the `ai.onnx` slot.
    let err = install_error(Node::builder(PeerId::new(1)).graph(one_op("", "MatMul")));
    assert!(matches!(err, InstallError::UnboundSlot { ref slot, .. } if slot == "ai.onnx"));
}

#[test]
fn an_op_type_the_component_does_not_implement_is_refused() {
    let err = install_error(
        Node::builder(PeerId::new(1))
            .component("math", Box::new(Math::default()))
            .graph(one_op("math", "Divide")),
    );
    assert!(matches!(
        err,
        InstallError::UnknownOp { ref op_type, ref kind, .. } if op_type == "Divide" && kind == "math"
    ));
}

#[test]
fn an_unknown_syscall_is_an_install_error_not_a_run_time_one() {
    let mut b = GraphBuilder::new("g");
    let x = b.input("x");
    let y = b.syscall("Teleport", [x]).output();
    b.output(y, "y");
    let err = install_error(Node::builder(PeerId::new(1)).graph(b.build().unwrap()));
    assert!(matches!(
        err,
        InstallError::Syscall {
            source: SyscallParseError::UnknownOp { .. },
            ..
        }
    ));
}

#[test]
fn structural_errors_surface_with_the_graph_name() {
    // A hand-written graph that reads a value nobody produces.
    let mut graph = one_op("math", "Double");
    graph.ops[0].inputs[0] = "ghost".into();
    let err = install_error(
        Node::builder(PeerId::new(1))
            .component("math", Box::new(Math::default()))
            .graph(graph),
    );
    assert!(matches!(
        err,
        InstallError::Graph {
            source: GraphError::ValueNeverProduced { .. },
            ..
        }
    ));
}

#[test]
fn duplicate_graph_names_and_slots_are_refused() {
    let err = install_error(
        Node::builder(PeerId::new(1))
            .component("math", Box::new(Math::default()))
            .graph(one_op("math", "Double"))
            .graph(one_op("math", "Double")),
    );
    assert_eq!(err, InstallError::DuplicateGraph("g".into()));
    let err = install_error(
        Node::builder(PeerId::new(1))
            .component("math", Box::new(Math::default()))
            .component("math", Box::new(Math::default())),
    );
    assert_eq!(err, InstallError::DuplicateSlot("math".into()));
}

#[test]
fn a_call_must_name_an_installed_graph_with_matching_arity() {
    let mut b = GraphBuilder::new("caller");
    let x = b.input("x");
    let y = b.syscall("Call", [x]).attr("graph", "missing").output();
    b.output(y, "y");
    let err = install_error(Node::builder(PeerId::new(1)).graph(b.build().unwrap()));
    assert!(
        matches!(err, InstallError::BadCall { ref problem, .. } if problem.contains("missing"))
    );

    let mut b = GraphBuilder::new("caller");
    let x = b.input("x");
    let [y, z] = b.syscall("Call", [x]).attr("graph", "g").outputs::<2>();
    b.output(y, "y").output(z, "z");
    let err = install_error(
        Node::builder(PeerId::new(1))
            .component("math", Box::new(Math::default()))
            .graph(one_op("math", "Double"))
            .graph(b.build().unwrap()),
    );
    assert!(
        matches!(err, InstallError::BadCall { ref problem, .. } if problem.contains("1 outputs"))
    );
}

/// A component that needs a `math` component at slot `backend`.
struct NeedsMath;

impl Component for NeedsMath {
    fn kind(&self) -> &str {
        "trainer"
    }
    fn dependencies(&self) -> Vec<Dependency> {
        vec![Dependency {
            slot: "backend".into(),
            kind: "math".into(),
        }]
    }
    fn resolve_op(&self, _: &str) -> Option<LocalOpId> {
        None
    }
    fn dispatch_atomic(
        &mut self,
        _: LocalOpId,
        _: &mut RuntimeResourceRef<'_>,
        _: &mut OpInputs<'_>,
        _: &mut OpOutputs<'_>,
    ) -> Result<DispatchResult, OpError> {
        Ok(DispatchResult::Immediate)
    }
}

#[test]
fn component_dependencies_must_be_bound_to_the_right_kind() {
    let err = install_error(Node::builder(PeerId::new(1)).component("train", Box::new(NeedsMath)));
    assert!(matches!(err, InstallError::MissingDependency { ref slot, .. } if slot == "backend"));

    let err = install_error(
        Node::builder(PeerId::new(1))
            .component("train", Box::new(NeedsMath))
            .component("backend", Box::new(NeedsMath)),
    );
    assert!(matches!(
        err,
        InstallError::DependencyKind { ref expected, ref found, .. } if expected == "math" && found == "trainer"
    ));

    Node::builder(PeerId::new(1))
        .component("train", Box::new(NeedsMath))
        .component("backend", Box::new(Math::default()))
        .build()
        .unwrap();
}

#[test]
fn install_errors_explain_what_to_do() {
    let err = install_error(Node::builder(PeerId::new(1)).graph(one_op("nope", "Add")));
    assert!(
        err.to_string().contains("bind one or fix the domain"),
        "{err}"
    );
}

#[test]
fn a_node_is_send() {
    fn assert_send<T: Send>() {}
    assert_send::<Node>();
}
