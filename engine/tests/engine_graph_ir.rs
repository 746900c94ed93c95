#![allow(clippy::unwrap_used)]
//! Integration tests of the graph IR through the public API: JSON round
//! trips, the builder, and every structural error.

use nodeflow_engine::{
    Attribute, AttributeValue, Graph, GraphBuildError, GraphBuilder, GraphError, GraphLimits,
    MetadataEntry, OpNode, TensorProto, ValueEndpoint, ValueHandle, ValueInfo, ValueProducer,
    SYSCALL_DOMAIN,
};

/// A small federated-averaging round: receive two peer updates, average
/// them with a local tensor, clip, emit, and stash the result.
fn realistic() -> Graph {
    let mut b = GraphBuilder::new("fedavg_round");
    let local = b.input_typed("local_weights", "f32[2,2]");
    let remote = b
        .syscall("Recv", [])
        .name("recv_peer")
        .attr("timeout_ns", 5_000_000_000i64)
        .attr("peers", vec!["peer-a", "peer-b"])
        .meta("plane", "data")
        .output_named("remote_weights");
    let bias = b
        .op("Constant", [])
        .attr(
            "value",
            TensorProto::new(vec![2, 2], vec![0.0, 0.5, -0.5, 1.0]),
        )
        .output();
    let [sum] = b.op("Add", [local, remote]).outputs_named(["sum"]);
    let biased = b.op("Add", [sum, bias]).output();
    let avg = b
        .op("Mul", [biased])
        .attr("scale", 0.5)
        .attr("axes", vec![0i64, 1])
        .attr("weights", vec![0.25f32, 0.75])
        .output();
    let clipped = b.op("Clip", [avg, ValueHandle::ABSENT]).output();
    b.syscall("Hold.Stash", [clipped])
        .attr("slot", "last_round")
        .attr("salt", vec![0xde_u8, 0xad])
        .finish();
    b.syscall("AppEmit", [clipped])
        .attr("channel", 7)
        .meta("owner", "trainer")
        .finish();
    b.output(clipped, "round_weights");
    b.build().unwrap()
}

fn op(name: &str, inputs: &[&str], outputs: &[&str]) -> OpNode {
    OpNode {
        inputs: inputs.iter().map(|s| (*s).to_owned()).collect(),
        outputs: outputs.iter().map(|s| (*s).to_owned()).collect(),
        ..OpNode::new(name, "Op")
    }
}

fn graph(inputs: &[&str], outputs: &[&str], ops: Vec<OpNode>) -> Graph {
    Graph {
        name: "g".into(),
        inputs: inputs.iter().map(|n| ValueInfo::new(*n)).collect(),
        outputs: outputs.iter().map(|n| ValueInfo::new(*n)).collect(),
        ops,
    }
}

fn attr(name: &str, value: AttributeValue) -> Attribute {
    Attribute {
        name: name.into(),
        value,
    }
}

#[test]
fn realistic_graph_survives_json_round_trip_with_every_attribute_kind() {
    let g = realistic();
    let mut kinds: Vec<&str> = g
        .ops
        .iter()
        .flat_map(|o| o.attributes.iter().map(|a| a.value.kind()))
        .collect();
    kinds.sort_unstable();
    kinds.dedup();
    assert_eq!(
        kinds,
        ["bytes", "float", "floats", "int", "ints", "string", "strings", "tensor"]
    );

    let json = serde_json::to_string_pretty(&g).unwrap();
    assert!(json.contains(r#""int": 5000000000"#), "{json}");
    assert!(json.contains(r#""domain": "ai.nodeflow.syscall""#));
    let back: Graph = serde_json::from_str(&json).unwrap();
    assert_eq!(back, g);
    assert_eq!(back.check_structure(), g.check_structure());

    let recv = &back.ops[0];
    assert_eq!(recv.attr_int("timeout_ns"), Ok(5_000_000_000));
    assert_eq!(recv.attr_strings("peers").unwrap(), ["peer-a", "peer-b"]);
    assert_eq!(recv.metadata("plane"), Some("data"));
    assert_eq!(back.ops[1].attr_tensor("value").unwrap().dims, [2, 2]);
}

#[test]
fn realistic_graph_topology_drives_readiness() {
    let g = realistic();
    let t = g.check_structure().unwrap();
    let clipped = t.value_index("round_weights").unwrap();
    // Clip writes it; Hold.Stash and AppEmit read it.
    let clip = g.ops.iter().position(|o| o.op_type == "Clip").unwrap() as u32;
    assert_eq!(
        t.producer(clipped),
        Some(ValueProducer::Op {
            op: clip,
            output: 0
        })
    );
    let readers: Vec<&str> = t
        .consumers(clipped)
        .iter()
        .map(|i| g.ops[*i as usize].op_type.as_str())
        .collect();
    assert_eq!(readers, ["Hold.Stash", "AppEmit"]);
    assert_eq!(
        t.required_inputs(clip),
        1,
        "absent optional input is not awaited"
    );
    assert_eq!(t.graph_outputs(), [clipped]);
    assert_eq!(t.value_count(), 7);
    // Every op appears once, after the producers of its inputs.
    let mut position = vec![usize::MAX; g.ops.len()];
    for (at, op) in t.topo_order().iter().enumerate() {
        position[*op as usize] = at;
    }
    assert!(position.iter().all(|p| *p != usize::MAX));
    for op in 0..g.ops.len() as u32 {
        for value in t.op_inputs(op).iter().flatten() {
            if let Some(ValueProducer::Op { op: producer, .. }) = t.producer(*value) {
                assert!(position[producer as usize] < position[op as usize]);
            }
        }
    }
}

#[test]
fn hand_written_json_parses_with_defaults() {
    let json = r#"{
        "name": "tiny",
        "ops": [{"name": "c", "op_type": "Constant",
                 "outputs": ["k"],
                 "attributes": [{"name": "value", "value": {"float": 1.5}}]}],
        "outputs": [{"name": "k"}]
    }"#;
    let g: Graph = serde_json::from_str(json).unwrap();
    assert!(g.inputs.is_empty());
    assert_eq!(g.ops[0].domain, "");
    assert_eq!(g.ops[0].attr_float("value"), Ok(1.5));
    assert!(g.check_structure().is_ok());
}

#[test]
fn builder_reports_structural_errors_from_build() {
    let mut b = GraphBuilder::new("g");
    let x = b.input("x");
    b.syscall("PassThrough", [x]).name("p").output_named("y");
    b.syscall("PassThrough", [x]).name("p").output_named("z");
    assert_eq!(
        b.build(),
        Err(GraphBuildError::Structure(GraphError::DuplicateOpName {
            name: "p".into()
        }))
    );
    let mut b = GraphBuilder::new("g");
    let ghost = b.value("ghost");
    b.syscall("AppEmit", [ghost]).finish();
    assert!(matches!(
        b.build(),
        Err(GraphBuildError::Structure(
            GraphError::ValueNeverProduced { .. }
        ))
    ));
    assert_eq!(SYSCALL_DOMAIN, "ai.nodeflow.syscall");
}

#[test]
fn every_graph_error_variant() {
    let small = GraphLimits {
        max_ops: 2,
        max_values: 2,
        max_name_len: 8,
        max_op_ports: 2,
        max_attributes_per_op: 1,
    };
    let check = |g: &Graph| g.check_structure_with(&small).unwrap_err();

    let three_ops = graph(
        &[],
        &[],
        vec![op("a", &[], &[]), op("b", &[], &[]), op("c", &[], &[])],
    );
    assert_eq!(
        check(&three_ops),
        GraphError::TooManyOps { count: 3, max: 2 }
    );

    let three_values = graph(
        &["x"],
        &[],
        vec![op("a", &["x"], &["y"]), op("b", &[], &["z"])],
    );
    assert_eq!(check(&three_values), GraphError::TooManyValues { max: 2 });

    let long = graph(&[], &[], vec![op("a_long_name", &[], &[])]);
    assert_eq!(
        check(&long),
        GraphError::NameTooLong {
            what: "op",
            prefix: "a_long_name".into(),
            len: 11,
            max: 8
        }
    );

    let wide = graph(&["x"], &[], vec![op("a", &["x", "x"], &["y"])]);
    assert_eq!(
        check(&wide),
        GraphError::TooManyPorts {
            op: "a".into(),
            count: 3,
            max: 2
        }
    );

    let mut meta_heavy = op("a", &[], &[]);
    for key in ["k1", "k2"] {
        meta_heavy.metadata.push(MetadataEntry {
            key: key.into(),
            value: String::new(),
        });
    }
    assert_eq!(
        check(&graph(&[], &[], vec![meta_heavy])),
        GraphError::TooManyAttributes {
            op: "a".into(),
            what: "metadata entries",
            count: 2,
            max: 1
        }
    );

    let unnamed = graph(&[], &[], vec![op("a", &[], &[]), op("", &[], &[])]);
    assert_eq!(check(&unnamed), GraphError::EmptyOpName { index: 1 });

    let mut typeless = op("a", &[], &[]);
    typeless.op_type.clear();
    assert_eq!(
        check(&graph(&[], &[], vec![typeless])),
        GraphError::EmptyOpType { op: "a".into() }
    );

    let twins = graph(&[], &[], vec![op("a", &[], &[]), op("a", &[], &[])]);
    assert_eq!(
        check(&twins),
        GraphError::DuplicateOpName { name: "a".into() }
    );

    assert_eq!(
        check(&graph(&["x", ""], &[], vec![])),
        GraphError::EmptyGraphValueName {
            role: "input",
            index: 1
        }
    );
    assert_eq!(
        check(&graph(&[], &[""], vec![])),
        GraphError::EmptyGraphValueName {
            role: "output",
            index: 0
        }
    );

    assert_eq!(
        check(&graph(&[], &[], vec![op("a", &["nope"], &[])])),
        GraphError::ValueNeverProduced {
            value: "nope".into(),
            consumer: ValueEndpoint::Op("a".into())
        }
    );
    assert_eq!(
        check(&graph(&[], &["nope"], vec![])),
        GraphError::ValueNeverProduced {
            value: "nope".into(),
            consumer: ValueEndpoint::GraphOutput
        }
    );

    assert_eq!(
        check(&graph(&["x"], &[], vec![op("a", &[], &["x"])])),
        GraphError::ValueProducedTwice {
            value: "x".into(),
            first: ValueEndpoint::GraphInput,
            second: ValueEndpoint::Op("a".into())
        }
    );
    assert_eq!(
        check(&graph(
            &[],
            &[],
            vec![op("a", &[], &["v"]), op("b", &[], &["v"])]
        )),
        GraphError::ValueProducedTwice {
            value: "v".into(),
            first: ValueEndpoint::Op("a".into()),
            second: ValueEndpoint::Op("b".into())
        }
    );
    assert_eq!(
        check(&graph(&["x", "x"], &[], vec![])),
        GraphError::ValueProducedTwice {
            value: "x".into(),
            first: ValueEndpoint::GraphInput,
            second: ValueEndpoint::GraphInput
        }
    );

    assert_eq!(
        check(&graph(&["x"], &["x", "x"], vec![])),
        GraphError::DuplicateGraphOutput { value: "x".into() }
    );

    let mut twice_attr = op("a", &[], &[]);
    twice_attr.attributes = vec![
        attr("k", AttributeValue::Int(1)),
        attr("k", AttributeValue::Int(2)),
    ];
    assert_eq!(
        graph(&[], &[], vec![twice_attr]).check_structure(),
        Err(GraphError::DuplicateAttribute {
            op: "a".into(),
            name: "k".into()
        })
    );

    let mut twice_meta = op("a", &[], &[]);
    twice_meta.metadata = vec![
        MetadataEntry {
            key: "m".into(),
            value: "1".into(),
        },
        MetadataEntry {
            key: "m".into(),
            value: "2".into(),
        },
    ];
    assert_eq!(
        graph(&[], &[], vec![twice_meta]).check_structure(),
        Err(GraphError::DuplicateMetadataKey {
            op: "a".into(),
            key: "m".into()
        })
    );

    let mut bad_tensor = op("a", &[], &[]);
    bad_tensor.attributes = vec![attr(
        "t",
        AttributeValue::Tensor(TensorProto::new(vec![2, 3], vec![0.0; 5])),
    )];
    assert_eq!(
        check(&graph(&[], &[], vec![bad_tensor])),
        GraphError::BadTensor {
            op: "a".into(),
            attribute: "t".into(),
            dims: vec![2, 3],
            data_len: 5
        }
    );

    let cycle = graph(
        &[],
        &[],
        vec![op("a", &["v2"], &["v1"]), op("b", &["v1"], &["v2"])],
    );
    assert_eq!(
        check(&cycle),
        GraphError::Cycle {
            ops: vec!["a".into(), "b".into()]
        }
    );
}

#[test]
fn error_messages_say_what_to_do() {
    let err = graph(&[], &["y"], vec![]).check_structure().unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("`y`") && msg.contains("the graph outputs") && msg.contains("add"),
        "{msg}"
    );
    let err = graph(&[], &[], vec![op("a", &["v"], &["v"])])
        .check_structure()
        .unwrap_err();
    assert!(err.to_string().contains("cycle"));
}
