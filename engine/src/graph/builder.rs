//! `GraphBuilder`: writes a [`Graph`] in Rust, naming what the caller does
//! not name and checking the result with [`Graph::check_structure_with`].
//!
//! ```
//! use nodeflow_engine::{GraphBuilder, SYSCALL_DOMAIN};
//!
//! let mut b = GraphBuilder::new("echo");
//! let x = b.input("x");
//! let y = b.syscall("PassThrough", [x]).attr("k", 3).output();
//! b.output(y, "y");
//! let graph = b.build()?;
//! assert_eq!(graph.ops[0].name, "PassThrough_0");
//! assert_eq!(graph.ops[0].domain, SYSCALL_DOMAIN);
//! assert_eq!(graph.ops[0].outputs, ["y"]);
//! # Ok::<(), nodeflow_engine::GraphBuildError>(())
//! ```
//!
//! Naming rules:
//! * An op without [`OpBuilder::name`] is called `<op_type>_<k>` with the
//!   smallest `k` (counted per op type) not taken by an op added before
//!   it. A later explicit name equal to an auto name is a
//!   [`GraphError::DuplicateOpName`] at [`GraphBuilder::build`].
//! * An output without a name is called `<op name>:<position>`.
//! * Values are referred to by [`ValueHandle`]; names are resolved at
//!   `build`, so [`GraphBuilder::output`] can rename an auto-named value
//!   and every reader follows the rename.
//!
//! Mistakes (a handle from another builder, renaming a value the caller
//! named) are remembered and returned by `build`, so the chain of calls
//! stays free of `?`. The first mistake wins.

use std::collections::{HashMap, HashSet};

use crate::graph::ir::{
    Attribute, AttributeValue, Graph, GraphError, GraphLimits, MetadataEntry, OpNode, TensorProto,
    ValueInfo, ONNX_DOMAIN, SYSCALL_DOMAIN,
};

/// Builds a [`Graph`] value by value and op by op.
#[derive(Clone, Debug)]
pub struct GraphBuilder {
    name: String,
    limits: GraphLimits,
    values: Vec<PendingValue>,
    index_by_name: HashMap<String, u32>,
    inputs: Vec<(u32, Option<String>)>,
    outputs: Vec<u32>,
    ops: Vec<PendingOp>,
    op_names: HashSet<String>,
    next_auto: HashMap<String, u64>,
    error: Option<GraphBuildError>,
}

/// A value inside one [`GraphBuilder`]; cheap to copy, meaningless in
/// another builder.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ValueHandle(u32);

/// One op being configured; finish it with [`OpBuilder::output`],
/// [`OpBuilder::outputs`], their `_named` forms or [`OpBuilder::finish`].
/// Dropping it unfinished adds nothing.
#[derive(Debug)]
#[must_use = "an op is added only when finished with output(), outputs() or finish()"]
pub struct OpBuilder<'b> {
    builder: &'b mut GraphBuilder,
    node: OpNode,
    explicit_name: bool,
    inputs: Vec<ValueHandle>,
}

/// Why [`GraphBuilder::build`] failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GraphBuildError {
    /// The graph is structurally invalid.
    #[error(transparent)]
    Structure(#[from] GraphError),
    /// A handle did not come from this builder, or [`ValueHandle::ABSENT`]
    /// was used where a real value is needed.
    #[error("value handle #{index} does not belong to this builder; use handles returned by the same GraphBuilder")]
    UnknownValue {
        /// The handle's raw number.
        index: u32,
    },
    /// [`GraphBuilder::output`] asked to rename a value the caller named.
    #[error("value `{value}` was named by the caller and cannot be exposed as `{requested}`; use output_value() or add a PassThrough")]
    RenameNamedValue {
        /// The value's name.
        value: String,
        /// The name asked for.
        requested: String,
    },
    /// [`GraphBuilder::output`] asked for a name another value already has.
    #[error("cannot name a graph output `{name}`: another value already has that name")]
    OutputNameTaken {
        /// The contested name.
        name: String,
    },
}

#[derive(Clone, Debug)]
struct PendingValue {
    name: String,
    auto: bool,
}

#[derive(Clone, Debug)]
struct PendingOp {
    node: OpNode,
    inputs: Vec<ValueHandle>,
    outputs: Vec<ValueHandle>,
}

impl GraphBuilder {
    /// An empty builder for a graph called `name`, under default limits.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            limits: GraphLimits::default(),
            values: Vec::new(),
            index_by_name: HashMap::new(),
            inputs: Vec::new(),
            outputs: Vec::new(),
            ops: Vec::new(),
            op_names: HashSet::new(),
            next_auto: HashMap::new(),
            error: None,
        }
    }

    /// Checks the built graph against `limits` instead of the defaults.
    pub fn limits(&mut self, limits: GraphLimits) -> &mut Self {
        self.limits = limits;
        self
    }

    /// Declares a graph input called `name`.
    pub fn input(&mut self, name: impl Into<String>) -> ValueHandle {
        let handle = self.value(name);
        self.inputs.push((handle.0, None));
        handle
    }

    /// Declares a graph input called `name` with a type hint.
    pub fn input_typed(
        &mut self,
        name: impl Into<String>,
        type_hint: impl Into<String>,
    ) -> ValueHandle {
        let handle = self.value(name);
        self.inputs.push((handle.0, Some(type_hint.into())));
        handle
    }

    /// The value called `name`, whoever produces it (declared now if new).
    pub fn value(&mut self, name: impl Into<String>) -> ValueHandle {
        self.intern(name.into(), false)
    }

    /// Starts an op of `op_type` in the ONNX domain reading `inputs`.
    pub fn op(
        &mut self,
        op_type: impl Into<String>,
        inputs: impl IntoIterator<Item = ValueHandle>,
    ) -> OpBuilder<'_> {
        OpBuilder {
            node: OpNode {
                domain: ONNX_DOMAIN.to_owned(),
                op_type: op_type.into(),
                ..OpNode::default()
            },
            explicit_name: false,
            inputs: inputs.into_iter().collect(),
            builder: self,
        }
    }

    /// Starts a built-in syscall op ([`SYSCALL_DOMAIN`]) reading `inputs`.
    pub fn syscall(
        &mut self,
        op_type: impl Into<String>,
        inputs: impl IntoIterator<Item = ValueHandle>,
    ) -> OpBuilder<'_> {
        self.op(op_type, inputs).domain(SYSCALL_DOMAIN)
    }

    /// Exposes `value` as a graph output called `name`, renaming it if its
    /// current name was generated.
    pub fn output(&mut self, value: ValueHandle, name: impl Into<String>) -> &mut Self {
        let name = name.into();
        let Some(slot) = self.values.get(value.0 as usize) else {
            self.fail(GraphBuildError::UnknownValue { index: value.0 });
            return self;
        };
        if slot.name != name {
            if !slot.auto {
                let error = GraphBuildError::RenameNamedValue {
                    value: slot.name.clone(),
                    requested: name,
                };
                self.fail(error);
                return self;
            }
            if self.index_by_name.contains_key(&name) {
                self.fail(GraphBuildError::OutputNameTaken { name });
                return self;
            }
            let old = std::mem::replace(&mut self.values[value.0 as usize].name, name.clone());
            self.values[value.0 as usize].auto = false;
            self.index_by_name.remove(&old);
            self.index_by_name.insert(name, value.0);
        }
        self.outputs.push(value.0);
        self
    }

    /// Exposes `value` as a graph output under its current name.
    pub fn output_value(&mut self, value: ValueHandle) -> &mut Self {
        if self.values.get(value.0 as usize).is_none() {
            self.fail(GraphBuildError::UnknownValue { index: value.0 });
            return self;
        }
        self.outputs.push(value.0);
        self
    }

    /// The graph, after [`Graph::check_structure_with`] passed under this
    /// builder's limits; or the first mistake made while building.
    pub fn build(self) -> Result<Graph, GraphBuildError> {
        if let Some(error) = self.error {
            return Err(error);
        }
        let name_of = |h: &ValueHandle| -> Result<String, GraphBuildError> {
            if *h == ValueHandle::ABSENT {
                return Ok(String::new());
            }
            self.values
                .get(h.0 as usize)
                .map(|v| v.name.clone())
                .ok_or(GraphBuildError::UnknownValue { index: h.0 })
        };
        let mut graph = Graph::new(self.name.clone());
        for (index, type_hint) in &self.inputs {
            graph.inputs.push(ValueInfo {
                name: name_of(&ValueHandle(*index))?,
                type_hint: type_hint.clone(),
            });
        }
        for index in &self.outputs {
            graph
                .outputs
                .push(ValueInfo::new(name_of(&ValueHandle(*index))?));
        }
        for op in &self.ops {
            let mut node = op.node.clone();
            node.inputs = op.inputs.iter().map(name_of).collect::<Result<_, _>>()?;
            node.outputs = op.outputs.iter().map(name_of).collect::<Result<_, _>>()?;
            graph.ops.push(node);
        }
        graph.check_structure_with(&self.limits)?;
        Ok(graph)
    }

    fn intern(&mut self, name: String, auto: bool) -> ValueHandle {
        if let Some(&index) = self.index_by_name.get(&name) {
            return ValueHandle(index);
        }
        // A builder past u32::MAX - 1 values would fail max_values anyway;
        // saturate onto a handle that build() reports as unknown.
        let Ok(index) = u32::try_from(self.values.len()) else {
            self.fail(GraphBuildError::Structure(GraphError::TooManyValues {
                max: self.limits.max_values,
            }));
            return ValueHandle::ABSENT;
        };
        self.values.push(PendingValue {
            name: name.clone(),
            auto,
        });
        self.index_by_name.insert(name, index);
        ValueHandle(index)
    }

    fn fail(&mut self, error: GraphBuildError) {
        self.error.get_or_insert(error);
    }

    fn auto_op_name(&mut self, op_type: &str) -> String {
        let counter = self.next_auto.entry(op_type.to_owned()).or_insert(0);
        loop {
            let candidate = format!("{op_type}_{counter}");
            *counter += 1;
            if !self.op_names.contains(&candidate) {
                return candidate;
            }
        }
    }
}

impl ValueHandle {
    /// An absent optional input: written as `""` in the op's inputs.
    pub const ABSENT: Self = Self(u32::MAX);
}

impl OpBuilder<'_> {
    /// Names the op (instead of `<op_type>_<k>`).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.node.name = name.into();
        self.explicit_name = true;
        self
    }

    /// Puts the op in `domain`.
    pub fn domain(mut self, domain: impl Into<String>) -> Self {
        self.node.domain = domain.into();
        self
    }

    /// Adds an attribute.
    pub fn attr(mut self, name: impl Into<String>, value: impl Into<AttributeValue>) -> Self {
        self.node.attributes.push(Attribute {
            name: name.into(),
            value: value.into(),
        });
        self
    }

    /// Adds a metadata entry.
    pub fn meta(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.node.metadata.push(MetadataEntry {
            key: key.into(),
            value: value.into(),
        });
        self
    }

    /// Adds the op with one generated output and returns it.
    pub fn output(self) -> ValueHandle {
        let [out] = self.outputs::<1>();
        out
    }

    /// Adds the op with one output called `name` and returns it.
    pub fn output_named(self, name: impl Into<String>) -> ValueHandle {
        let [out] = self.outputs_named([name]);
        out
    }

    /// Adds the op with `N` generated outputs and returns them in order.
    pub fn outputs<const N: usize>(self) -> [ValueHandle; N] {
        self.add(N, |op, i| (format!("{op}:{i}"), true))
    }

    /// Adds the op with outputs called `names` and returns them in order.
    pub fn outputs_named<const N: usize, S: Into<String>>(self, names: [S; N]) -> [ValueHandle; N] {
        let mut names = names.into_iter().map(Into::into);
        self.add(N, move |_, _| (names.next().unwrap_or_default(), false))
    }

    /// Adds the op with no outputs (a sink such as `AppEmit`).
    pub fn finish(self) {
        let _: [ValueHandle; 0] = self.outputs::<0>();
    }

    fn add<const N: usize>(
        mut self,
        count: usize,
        mut name_output: impl FnMut(&str, usize) -> (String, bool),
    ) -> [ValueHandle; N] {
        let builder = self.builder;
        if !self.explicit_name {
            self.node.name = builder.auto_op_name(&self.node.op_type);
        }
        builder.op_names.insert(self.node.name.clone());
        let outputs: Vec<ValueHandle> = (0..count)
            .map(|i| {
                let (name, auto) = name_output(&self.node.name, i);
                builder.intern(name, auto)
            })
            .collect();
        let handles =
            std::array::from_fn(|i| outputs.get(i).copied().unwrap_or(ValueHandle::ABSENT));
        builder.ops.push(PendingOp {
            node: self.node,
            inputs: self.inputs,
            outputs,
        });
        handles
    }
}

impl From<i64> for AttributeValue {
    fn from(v: i64) -> Self {
        Self::Int(v)
    }
}

impl From<i32> for AttributeValue {
    fn from(v: i32) -> Self {
        Self::Int(v.into())
    }
}

impl From<u32> for AttributeValue {
    fn from(v: u32) -> Self {
        Self::Int(v.into())
    }
}

impl From<f32> for AttributeValue {
    fn from(v: f32) -> Self {
        Self::Float(v)
    }
}

/// Narrows to `f32` (ONNX floats are `f32`), so `attr("alpha", 0.5)` works.
impl From<f64> for AttributeValue {
    fn from(v: f64) -> Self {
        Self::Float(v as f32)
    }
}

impl From<&str> for AttributeValue {
    fn from(v: &str) -> Self {
        Self::String(v.to_owned())
    }
}

impl From<String> for AttributeValue {
    fn from(v: String) -> Self {
        Self::String(v)
    }
}

impl From<Vec<u8>> for AttributeValue {
    fn from(v: Vec<u8>) -> Self {
        Self::Bytes(v)
    }
}

impl From<&[u8]> for AttributeValue {
    fn from(v: &[u8]) -> Self {
        Self::Bytes(v.to_vec())
    }
}

impl From<Vec<i64>> for AttributeValue {
    fn from(v: Vec<i64>) -> Self {
        Self::Ints(v)
    }
}

impl From<Vec<f32>> for AttributeValue {
    fn from(v: Vec<f32>) -> Self {
        Self::Floats(v)
    }
}

impl From<Vec<String>> for AttributeValue {
    fn from(v: Vec<String>) -> Self {
        Self::Strings(v)
    }
}

impl From<Vec<&str>> for AttributeValue {
    fn from(v: Vec<&str>) -> Self {
        Self::Strings(v.into_iter().map(str::to_owned).collect())
    }
}

impl From<TensorProto> for AttributeValue {
    fn from(v: TensorProto) -> Self {
        Self::Tensor(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_names_count_per_type_and_skip_taken_names() {
        let mut b = GraphBuilder::new("g");
        let x = b.input("x");
        let a = b.op("Relu", [x]).name("Relu_0").output();
        let c = b.op("Relu", [a]).output();
        let d = b.op("Tanh", [c]).output();
        b.op("Relu", [d]).finish();
        let g = b.build().unwrap();
        let names: Vec<&str> = g.ops.iter().map(|o| o.name.as_str()).collect();
        assert_eq!(names, ["Relu_0", "Relu_1", "Tanh_0", "Relu_2"]);
        assert_eq!(g.ops[1].outputs, ["Relu_1:0"]);
        assert_eq!(g.ops[2].inputs, ["Relu_1:0"]);
        assert!(g.ops[3].outputs.is_empty());
    }

    #[test]
    fn multiple_and_named_outputs_keep_positions() {
        let mut b = GraphBuilder::new("g");
        let x = b.input_typed("x", "f32[4]");
        let [lo, hi] = b.syscall("Unbundle", [x]).outputs();
        let [s] = b.op("Add", [lo, hi]).outputs_named(["sum"]);
        b.output_value(s);
        let g = b.build().unwrap();
        assert_eq!(g.inputs[0].type_hint.as_deref(), Some("f32[4]"));
        assert_eq!(g.ops[0].outputs, ["Unbundle_0:0", "Unbundle_0:1"]);
        assert_eq!(g.ops[0].domain, SYSCALL_DOMAIN);
        assert_eq!(g.ops[1].domain, ONNX_DOMAIN);
        assert_eq!(g.ops[1].inputs, ["Unbundle_0:0", "Unbundle_0:1"]);
        assert_eq!(g.outputs[0].name, "sum");
    }

    #[test]
    fn output_renames_auto_value_everywhere() {
        let mut b = GraphBuilder::new("g");
        let x = b.input("x");
        let y = b.op("Neg", [x]).output();
        b.op("Sink", [y]).finish();
        b.output(y, "y");
        let g = b.build().unwrap();
        assert_eq!(g.ops[0].outputs, ["y"]);
        assert_eq!(g.ops[1].inputs, ["y"]);
        assert_eq!(g.outputs[0].name, "y");
    }

    #[test]
    fn output_refuses_to_rename_a_named_value_or_steal_a_name() {
        let mut b = GraphBuilder::new("g");
        let x = b.input("x");
        b.output(x, "other");
        assert_eq!(
            b.build(),
            Err(GraphBuildError::RenameNamedValue {
                value: "x".into(),
                requested: "other".into()
            })
        );

        let mut b = GraphBuilder::new("g");
        let x = b.input("x");
        let y = b.op("Neg", [x]).output();
        b.output(y, "x");
        assert_eq!(
            b.build(),
            Err(GraphBuildError::OutputNameTaken { name: "x".into() })
        );
    }

    #[test]
    fn foreign_or_absent_handle_is_reported() {
        let mut other = GraphBuilder::new("other");
        other.input("a");
        let foreign = other.input("b");
        let mut b = GraphBuilder::new("g");
        b.input("x");
        b.op("Neg", [foreign]).finish();
        assert_eq!(b.build(), Err(GraphBuildError::UnknownValue { index: 1 }));

        let mut b = GraphBuilder::new("g");
        b.output_value(ValueHandle::ABSENT);
        assert!(matches!(
            b.build(),
            Err(GraphBuildError::UnknownValue { .. })
        ));
    }

    #[test]
    fn absent_input_is_written_as_empty_name() {
        let mut b = GraphBuilder::new("g");
        let x = b.input("x");
        b.op("Clip", [x, ValueHandle::ABSENT]).finish();
        let g = b.build().unwrap();
        assert_eq!(g.ops[0].inputs, ["x", ""]);
    }

    #[test]
    fn unfinished_op_is_not_added() {
        let mut b = GraphBuilder::new("g");
        let x = b.input("x");
        drop(b.op("Neg", [x]).attr("k", 1));
        assert!(b.build().unwrap().ops.is_empty());
    }

    #[test]
    fn build_surfaces_structural_errors_and_applies_limits() {
        let mut b = GraphBuilder::new("g");
        let later = b.value("later");
        let y = b.op("A", [later]).output();
        b.op("B", [y]).output_named("later");
        assert!(matches!(
            b.build(),
            Err(GraphBuildError::Structure(GraphError::Cycle { .. }))
        ));

        let mut b = GraphBuilder::new("g");
        b.limits(GraphLimits {
            max_ops: 1,
            ..GraphLimits::default()
        });
        b.op("A", []).finish();
        b.op("A", []).finish();
        assert_eq!(
            b.build(),
            Err(GraphBuildError::Structure(GraphError::TooManyOps {
                count: 2,
                max: 1
            }))
        );
    }

    #[test]
    fn first_mistake_wins() {
        let mut b = GraphBuilder::new("g");
        let x = b.input("x");
        b.output(x, "a");
        b.output_value(ValueHandle::ABSENT);
        assert!(matches!(
            b.build(),
            Err(GraphBuildError::RenameNamedValue { .. })
        ));
    }

    #[test]
    fn attribute_conversions_pick_the_onnx_kind() {
        let mut b = GraphBuilder::new("g");
        b.op("A", [])
            .attr("i", 3)
            .attr("i64", 4i64)
            .attr("u", 5u32)
            .attr("f", 0.5)
            .attr("s", "txt")
            .attr("b", vec![1u8, 2])
            .attr("is", vec![1i64])
            .attr("fs", vec![1.0f32])
            .attr("ss", vec!["a", "b"])
            .attr("t", TensorProto::new(vec![1], vec![1.0]))
            .meta("owner", "me")
            .finish();
        let g = b.build().unwrap();
        let kinds: Vec<&str> = g.ops[0].attributes.iter().map(|a| a.value.kind()).collect();
        assert_eq!(
            kinds,
            [
                "int", "int", "int", "float", "string", "bytes", "ints", "floats", "strings",
                "tensor"
            ]
        );
        assert_eq!(g.ops[0].attr_float("f"), Ok(0.5));
        assert_eq!(g.ops[0].metadata("owner"), Some("me"));
    }
}
