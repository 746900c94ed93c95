//! The ONNX-shaped graph IR: graphs, ops, typed attributes, and the
//! structural check that turns a graph into an index-based [`GraphTopology`].
//!
//! A [`Graph`] names its inputs and outputs and lists [`OpNode`]s; an op
//! reads values by name and writes values by name. The IR is plain data:
//! it knows nothing about syscalls or components, so
//! [`Graph::check_structure`] only checks what holds for every graph —
//! names, single production, acyclicity, caps. Resolving ops to syscalls
//! or components happens at install time, on top of the topology.
//!
//! # JSON form
//! Every type here is serde-serializable. Attribute values are tagged
//! externally with a lowercase kind name (`{"int": 3}`, `{"floats": [0.5]}`,
//! `{"tensor": {"dims": [2], "data": [1.0, 2.0]}}`); `bytes` are an array of
//! numbers. Empty `domain`, `attributes` and `metadata` may be omitted and
//! are not written. Unknown fields are rejected so a typo fails loudly.
//!
//! ```
//! use nodeflow_engine::{Graph, SYSCALL_DOMAIN};
//!
//! let json = r#"{
//!   "name": "echo",
//!   "inputs": [{"name": "x", "type_hint": "f32[2]"}],
//!   "outputs": [{"name": "y"}],
//!   "ops": [{
//!     "name": "pass",
//!     "domain": "ai.nodeflow.syscall",
//!     "op_type": "PassThrough",
//!     "inputs": ["x"],
//!     "outputs": ["y"],
//!     "attributes": [{"name": "k", "value": {"int": 3}}],
//!     "metadata": [{"key": "owner", "value": "demo"}]
//!   }]
//! }"#;
//! let graph: Graph = serde_json::from_str(json)?;
//! let op = &graph.ops[0];
//! assert_eq!(op.domain, SYSCALL_DOMAIN);
//! assert_eq!(op.attr_int("k")?, 3);
//! assert_eq!(op.metadata("owner"), Some("demo"));
//! let topology = graph.check_structure()?;
//! assert_eq!(topology.value_count(), 2);
//! let again: Graph = serde_json::from_str(&serde_json::to_string(&graph)?)?;
//! assert_eq!(again, graph);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Absent values
//! As in ONNX, an empty string in an op's `inputs` is an absent optional
//! input and an empty string in its `outputs` is an optional output nobody
//! reads: neither is a value, neither gets a [`ValueIndex`], and an absent
//! input never blocks the op. Graph inputs and outputs must be named.
//!
//! Invariants of a [`GraphTopology`] (guaranteed by
//! [`Graph::check_structure`], its only constructor):
//! * value indices are dense (`0..value_count()`), graph inputs first in
//!   declaration order, then op outputs in op order;
//! * every value has exactly one producer, every op index is `< op_count()`;
//! * [`GraphTopology::topo_order`] lists every op once, producers before
//!   consumers, ties in declaration order.

use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::framework::OP_NAME_CAP;

/// Domain of nodeflow's built-in syscall ops.
pub const SYSCALL_DOMAIN: &str = "ai.nodeflow.syscall";

/// Domain of standard ONNX ops: the empty string, as in ONNX.
pub const ONNX_DOMAIN: &str = "";

/// A dataflow graph: named inputs and outputs and the ops between them.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Graph {
    /// Human name of the graph.
    pub name: String,
    /// Values supplied from outside when an execution starts.
    #[serde(default)]
    pub inputs: Vec<ValueInfo>,
    /// Values handed back to the host when produced.
    #[serde(default)]
    pub outputs: Vec<ValueInfo>,
    /// The ops, in declaration order (the order of [`crate::OpRef::index`]).
    #[serde(default)]
    pub ops: Vec<OpNode>,
}

/// A graph input or output: a value name plus an optional type hint.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ValueInfo {
    /// The value's name.
    pub name: String,
    /// Free-form type description (for example `f32[2,3]`); not checked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub type_hint: Option<String>,
}

/// One op: what it is (`domain`, `op_type`), what it reads and writes, and
/// how it is configured.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpNode {
    /// Unique, non-empty name within the graph.
    pub name: String,
    /// Namespace of `op_type`: [`ONNX_DOMAIN`], [`SYSCALL_DOMAIN`] or a
    /// component's domain.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub domain: String,
    /// The op's kind within its domain (`PassThrough`, `MatMul`, ...).
    pub op_type: String,
    /// Value names read, by position; `""` is an absent optional input.
    #[serde(default)]
    pub inputs: Vec<String>,
    /// Value names written, by position; `""` is an unused optional output.
    #[serde(default)]
    pub outputs: Vec<String>,
    /// Typed configuration, names unique within the op.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attributes: Vec<Attribute>,
    /// String key/value annotations, keys unique within the op.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub metadata: Vec<MetadataEntry>,
}

/// A named, typed attribute of an op.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Attribute {
    /// The attribute's name.
    pub name: String,
    /// The attribute's value.
    pub value: AttributeValue,
}

/// The value of an [`Attribute`]; JSON form `{"<kind>": <value>}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum AttributeValue {
    /// A 64-bit integer.
    Int(i64),
    /// A 32-bit float.
    Float(f32),
    /// A UTF-8 string.
    String(String),
    /// Raw bytes.
    Bytes(Vec<u8>),
    /// A list of integers.
    Ints(Vec<i64>),
    /// A list of floats.
    Floats(Vec<f32>),
    /// A list of strings.
    Strings(Vec<String>),
    /// A dense f32 tensor.
    Tensor(TensorProto),
}

/// A dense, row-major tensor carried in an attribute: f32 by default,
/// or i64 / bool (ONNX's `Constant`, `ConstantOfShape` and `Cast` carry
/// integer and boolean tensors too).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TensorProto {
    /// Extent of each axis; empty for a scalar.
    pub dims: Vec<i64>,
    /// The element type; [`TensorElem::Float`] when absent from JSON.
    #[serde(default, skip_serializing_if = "TensorElem::is_float")]
    pub elem: TensorElem,
    /// Elements of a [`TensorElem::Float`] tensor in row-major order;
    /// `dims` product many (empty for the other element types).
    #[serde(default)]
    pub data: Vec<f32>,
    /// Elements of an [`TensorElem::Int64`] tensor, or of a
    /// [`TensorElem::Bool`] tensor as 0 / 1, in row-major order (empty for
    /// a float tensor).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub int64_data: Vec<i64>,
}

/// The element type of a [`TensorProto`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum TensorElem {
    /// 32-bit floats, in [`TensorProto::data`].
    #[default]
    Float,
    /// 64-bit signed integers, in [`TensorProto::int64_data`].
    Int64,
    /// Booleans as 0 / 1, in [`TensorProto::int64_data`].
    Bool,
}

impl TensorElem {
    /// Whether this is [`TensorElem::Float`] (serde's skip test).
    pub fn is_float(&self) -> bool {
        matches!(self, Self::Float)
    }
}

/// One metadata key/value pair of an op.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetadataEntry {
    /// The key, unique within the op.
    pub key: String,
    /// The value.
    pub value: String,
}

/// Why a typed attribute read failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AttributeError {
    /// The op has no attribute of that name.
    #[error("op `{op}` has no attribute `{name}`; add it to the graph")]
    Missing {
        /// The op's name.
        op: String,
        /// The attribute asked for.
        name: String,
    },
    /// The attribute exists with another kind.
    #[error("attribute `{name}` of op `{op}` is a {found}, expected a {expected}; fix its kind in the graph")]
    WrongType {
        /// The op's name.
        op: String,
        /// The attribute asked for.
        name: String,
        /// The kind the caller wanted ([`AttributeValue::kind`] names).
        expected: &'static str,
        /// The kind the graph holds.
        found: &'static str,
    },
}

/// Caps applied by [`Graph::check_structure_with`]; [`Default`] gives the
/// documented values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GraphLimits {
    /// Most ops in one graph (at most `u32::MAX`). Default 65 536.
    pub max_ops: usize,
    /// Most distinct values in one graph (at most `u32::MAX`). Default 262 144.
    pub max_values: usize,
    /// Longest graph, op, value, domain, op-type, attribute or metadata-key
    /// name, in bytes. Default [`OP_NAME_CAP`], so every op name fits in an
    /// [`crate::Address`].
    pub max_name_len: usize,
    /// Most inputs plus outputs of one op (absent ones included). Default 1024.
    pub max_op_ports: usize,
    /// Most attributes, and separately most metadata entries, of one op.
    /// Default 256.
    pub max_attributes_per_op: usize,
}

/// Why a graph is structurally invalid.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GraphError {
    /// More ops than [`GraphLimits::max_ops`].
    #[error("graph has {count} ops, over the cap of {max}; split the graph or raise GraphLimits::max_ops")]
    TooManyOps {
        /// Ops in the graph.
        count: usize,
        /// The cap.
        max: usize,
    },
    /// More distinct values than [`GraphLimits::max_values`].
    #[error("graph has more than {max} distinct values; split the graph or raise GraphLimits::max_values")]
    TooManyValues {
        /// The cap.
        max: usize,
    },
    /// A name is longer than [`GraphLimits::max_name_len`].
    #[error("{what} name starting `{prefix}` is {len} bytes, over the cap of {max}; shorten it")]
    NameTooLong {
        /// Which kind of name (`op`, `value`, `attribute`, ...).
        what: &'static str,
        /// The name's first bytes (at most 32, cut at a char boundary).
        prefix: String,
        /// The name's length in bytes.
        len: usize,
        /// The cap.
        max: usize,
    },
    /// An op has more ports than [`GraphLimits::max_op_ports`].
    #[error("op `{op}` has {count} inputs and outputs, over the cap of {max}")]
    TooManyPorts {
        /// The op's name.
        op: String,
        /// Inputs plus outputs.
        count: usize,
        /// The cap.
        max: usize,
    },
    /// An op has more attributes or metadata entries than
    /// [`GraphLimits::max_attributes_per_op`].
    #[error("op `{op}` has {count} {what}, over the cap of {max}")]
    TooManyAttributes {
        /// The op's name.
        op: String,
        /// `attributes` or `metadata entries`.
        what: &'static str,
        /// How many it has.
        count: usize,
        /// The cap.
        max: usize,
    },
    /// An op has an empty name.
    #[error("op #{index} has an empty name; every op needs a unique non-empty name")]
    EmptyOpName {
        /// The op's position in the op list.
        index: usize,
    },
    /// An op has an empty `op_type`.
    #[error("op `{op}` has an empty op_type; say which op it is")]
    EmptyOpType {
        /// The op's name.
        op: String,
    },
    /// Two ops share a name.
    #[error("two ops are named `{name}`; op names must be unique within a graph")]
    DuplicateOpName {
        /// The shared name.
        name: String,
    },
    /// A graph input or output has an empty name.
    #[error(
        "graph {role} #{index} has an empty name; only op ports may be empty (absent optional)"
    )]
    EmptyGraphValueName {
        /// `input` or `output`.
        role: &'static str,
        /// Position in the graph's input or output list.
        index: usize,
    },
    /// A value is read (by an op or as a graph output) but never produced.
    #[error("value `{value}` is read by {consumer} but nothing produces it; add a graph input or an op output named `{value}`")]
    ValueNeverProduced {
        /// The value's name.
        value: String,
        /// The first reader found.
        consumer: ValueEndpoint,
    },
    /// A value has two producers.
    #[error("value `{value}` is produced by both {first} and {second}; every value needs exactly one producer")]
    ValueProducedTwice {
        /// The value's name.
        value: String,
        /// The earlier producer.
        first: ValueEndpoint,
        /// The later producer.
        second: ValueEndpoint,
    },
    /// A value is listed twice as a graph output.
    #[error("value `{value}` is listed twice as a graph output; list it once")]
    DuplicateGraphOutput {
        /// The value's name.
        value: String,
    },
    /// Two attributes of one op share a name.
    #[error("op `{op}` has two attributes named `{name}`; keep one")]
    DuplicateAttribute {
        /// The op's name.
        op: String,
        /// The shared attribute name.
        name: String,
    },
    /// Two metadata entries of one op share a key.
    #[error("op `{op}` has two metadata entries with key `{key}`; keep one")]
    DuplicateMetadataKey {
        /// The op's name.
        op: String,
        /// The shared key.
        key: String,
    },
    /// A tensor attribute's dims do not match its data.
    #[error("tensor attribute `{attribute}` of op `{op}` has dims {dims:?} but {data_len} elements; dims must be non-negative and multiply to the element count")]
    BadTensor {
        /// The op's name.
        op: String,
        /// The attribute's name.
        attribute: String,
        /// The declared dims.
        dims: Vec<i64>,
        /// The number of elements present.
        data_len: usize,
    },
    /// Ops feed each other in a loop.
    #[error("ops {ops:?} form a data cycle; break it (a value cannot depend on itself)")]
    Cycle {
        /// The ops on one cycle, in data-flow order, starting at the op
        /// declared first.
        ops: Vec<String>,
    },
}

/// Who produces or reads a value, for error messages.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ValueEndpoint {
    /// The graph's input list.
    GraphInput,
    /// The graph's output list.
    GraphOutput,
    /// The named op.
    Op(String),
}

/// Dense number of a value within one graph: the index of its slot in
/// per-execution storage.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct ValueIndex(u32);

/// Where a value comes from, by index.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum ValueProducer {
    /// Graph input number `position`.
    GraphInput {
        /// Position in [`Graph::inputs`].
        position: u32,
    },
    /// Output number `output` of op number `op`.
    Op {
        /// Index in [`Graph::ops`].
        op: u32,
        /// Position in that op's outputs.
        output: u32,
    },
}

/// Index-based shape of a checked graph: dense value numbering, per-op
/// ports, per-value consumers, readiness counts and a topological order.
///
/// Built only by [`Graph::check_structure`]; it is derived data, so a
/// snapshot stores the [`Graph`] and recomputes it. Op numbers are indices
/// into [`Graph::ops`] (the same number as [`crate::OpRef::index`]).
/// Accessors given an out-of-range index return an empty answer, never
/// panic.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GraphTopology {
    value_names: Vec<String>,
    index_by_name: HashMap<String, ValueIndex>,
    producers: Vec<ValueProducer>,
    /// Op `i`'s inputs are `op_inputs[input_start[i]..input_start[i + 1]]`.
    input_start: Vec<u32>,
    op_inputs: Vec<Option<ValueIndex>>,
    output_start: Vec<u32>,
    op_outputs: Vec<Option<ValueIndex>>,
    /// Value `v`'s consumers are `consumers[consumer_start[v]..consumer_start[v + 1]]`.
    consumer_start: Vec<u32>,
    consumers: Vec<u32>,
    required_inputs: Vec<u32>,
    topo_order: Vec<u32>,
    graph_inputs: Vec<ValueIndex>,
    graph_outputs: Vec<ValueIndex>,
}

impl Graph {
    /// An empty graph called `name`.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            ..Self::default()
        }
    }

    /// [`Graph::check_structure_with`] under the default [`GraphLimits`].
    pub fn check_structure(&self) -> Result<GraphTopology, GraphError> {
        self.check_structure_with(&GraphLimits::default())
    }

    /// Checks everything that must hold for any graph, whatever its ops
    /// are, and returns its index-based [`GraphTopology`].
    ///
    /// Checks, in this order: caps and names (non-empty op names and
    /// types, non-empty graph input/output names, lengths, port and
    /// attribute counts, unique attribute names and metadata keys,
    /// consistent tensors), unique op names, single production of every
    /// value, a producer for every read value, unique graph outputs, and
    /// finally acyclicity. The first failure is returned.
    pub fn check_structure_with(&self, limits: &GraphLimits) -> Result<GraphTopology, GraphError> {
        // Op numbers are `u32` ([`crate::OpRef::index`]), whatever the cap says.
        let max_ops = limits.max_ops.min(u32::MAX as usize);
        if self.ops.len() > max_ops {
            return Err(GraphError::TooManyOps {
                count: self.ops.len(),
                max: max_ops,
            });
        }
        self.check_names(limits)?;
        self.check_unique_op_names()?;
        Numbering::build(self, limits)?.into_topology(self)
    }

    fn check_names(&self, limits: &GraphLimits) -> Result<(), GraphError> {
        let max = limits.max_name_len;
        check_len("graph", &self.name, max)?;
        for (role, list) in [("input", &self.inputs), ("output", &self.outputs)] {
            for (index, info) in list.iter().enumerate() {
                if info.name.is_empty() {
                    return Err(GraphError::EmptyGraphValueName { role, index });
                }
                check_len("value", &info.name, max)?;
            }
        }
        for (index, op) in self.ops.iter().enumerate() {
            op.check_shape(index, limits)?;
        }
        Ok(())
    }

    fn check_unique_op_names(&self) -> Result<(), GraphError> {
        let mut seen = HashSet::with_capacity(self.ops.len());
        for op in &self.ops {
            if !seen.insert(op.name.as_str()) {
                return Err(GraphError::DuplicateOpName {
                    name: op.name.clone(),
                });
            }
        }
        Ok(())
    }
}

impl ValueInfo {
    /// A value called `name` with no type hint.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            type_hint: None,
        }
    }
}

impl OpNode {
    /// An op called `name` of type `op_type` in the ONNX domain, with no
    /// ports, attributes or metadata.
    pub fn new(name: impl Into<String>, op_type: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            op_type: op_type.into(),
            ..Self::default()
        }
    }

    /// Whether the op is one of nodeflow's built-in syscalls.
    pub fn is_syscall(&self) -> bool {
        self.domain == SYSCALL_DOMAIN
    }

    /// The attribute called `name`, if any.
    pub fn attr(&self, name: &str) -> Option<&AttributeValue> {
        self.attributes
            .iter()
            .find(|a| a.name == name)
            .map(|a| &a.value)
    }

    /// The `int` attribute called `name`.
    pub fn attr_int(&self, name: &str) -> Result<i64, AttributeError> {
        self.typed(name, "int", |v| match v {
            AttributeValue::Int(i) => Some(*i),
            _ => None,
        })
    }

    /// The `int` attribute called `name`, or `default` when it is absent
    /// (a present attribute of another kind is still an error).
    pub fn attr_int_or(&self, name: &str, default: i64) -> Result<i64, AttributeError> {
        match self.attr(name) {
            None => Ok(default),
            Some(_) => self.attr_int(name),
        }
    }

    /// The `float` attribute called `name`.
    pub fn attr_float(&self, name: &str) -> Result<f32, AttributeError> {
        self.typed(name, "float", |v| match v {
            AttributeValue::Float(f) => Some(*f),
            _ => None,
        })
    }

    /// The `string` attribute called `name`.
    pub fn attr_str(&self, name: &str) -> Result<&str, AttributeError> {
        self.typed(name, "string", |v| match v {
            AttributeValue::String(s) => Some(s.as_str()),
            _ => None,
        })
    }

    /// The `bytes` attribute called `name`.
    pub fn attr_bytes(&self, name: &str) -> Result<&[u8], AttributeError> {
        self.typed(name, "bytes", |v| match v {
            AttributeValue::Bytes(b) => Some(b.as_slice()),
            _ => None,
        })
    }

    /// The `ints` attribute called `name`.
    pub fn attr_ints(&self, name: &str) -> Result<&[i64], AttributeError> {
        self.typed(name, "ints", |v| match v {
            AttributeValue::Ints(i) => Some(i.as_slice()),
            _ => None,
        })
    }

    /// The `floats` attribute called `name`.
    pub fn attr_floats(&self, name: &str) -> Result<&[f32], AttributeError> {
        self.typed(name, "floats", |v| match v {
            AttributeValue::Floats(f) => Some(f.as_slice()),
            _ => None,
        })
    }

    /// The `strings` attribute called `name`.
    pub fn attr_strings(&self, name: &str) -> Result<&[String], AttributeError> {
        self.typed(name, "strings", |v| match v {
            AttributeValue::Strings(s) => Some(s.as_slice()),
            _ => None,
        })
    }

    /// The `tensor` attribute called `name`.
    pub fn attr_tensor(&self, name: &str) -> Result<&TensorProto, AttributeError> {
        self.typed(name, "tensor", |v| match v {
            AttributeValue::Tensor(t) => Some(t),
            _ => None,
        })
    }

    /// The metadata value under `key`, if any.
    pub fn metadata(&self, key: &str) -> Option<&str> {
        self.metadata
            .iter()
            .find(|m| m.key == key)
            .map(|m| m.value.as_str())
    }

    fn typed<'a, T>(
        &'a self,
        name: &str,
        expected: &'static str,
        pick: impl FnOnce(&'a AttributeValue) -> Option<T>,
    ) -> Result<T, AttributeError> {
        let Some(value) = self.attr(name) else {
            return Err(AttributeError::Missing {
                op: self.name.clone(),
                name: name.to_owned(),
            });
        };
        pick(value).ok_or_else(|| AttributeError::WrongType {
            op: self.name.clone(),
            name: name.to_owned(),
            expected,
            found: value.kind(),
        })
    }

    fn check_shape(&self, index: usize, limits: &GraphLimits) -> Result<(), GraphError> {
        let max = limits.max_name_len;
        if self.name.is_empty() {
            return Err(GraphError::EmptyOpName { index });
        }
        check_len("op", &self.name, max)?;
        if self.op_type.is_empty() {
            return Err(GraphError::EmptyOpType {
                op: self.name.clone(),
            });
        }
        check_len("op_type", &self.op_type, max)?;
        check_len("domain", &self.domain, max)?;
        let ports = self.inputs.len().saturating_add(self.outputs.len());
        if ports > limits.max_op_ports {
            return Err(GraphError::TooManyPorts {
                op: self.name.clone(),
                count: ports,
                max: limits.max_op_ports,
            });
        }
        for value in self.inputs.iter().chain(&self.outputs) {
            check_len("value", value, max)?;
        }
        let attr_names = self.attributes.iter().map(|a| a.name.as_str());
        self.check_keys("attributes", attr_names, limits)?;
        let meta_keys = self.metadata.iter().map(|m| m.key.as_str());
        self.check_keys("metadata entries", meta_keys, limits)?;
        for attribute in &self.attributes {
            let AttributeValue::Tensor(tensor) = &attribute.value else {
                continue;
            };
            let misplaced = match tensor.elem {
                TensorElem::Float => !tensor.int64_data.is_empty(),
                TensorElem::Int64 | TensorElem::Bool => !tensor.data.is_empty(),
            };
            if misplaced || tensor.element_count() != Some(tensor.data_len()) {
                return Err(GraphError::BadTensor {
                    op: self.name.clone(),
                    attribute: attribute.name.clone(),
                    dims: tensor.dims.clone(),
                    data_len: tensor.data_len(),
                });
            }
        }
        Ok(())
    }

    fn check_keys<'a>(
        &self,
        what: &'static str,
        keys: impl ExactSizeIterator<Item = &'a str>,
        limits: &GraphLimits,
    ) -> Result<(), GraphError> {
        if keys.len() > limits.max_attributes_per_op {
            return Err(GraphError::TooManyAttributes {
                op: self.name.clone(),
                what,
                count: keys.len(),
                max: limits.max_attributes_per_op,
            });
        }
        let kind = if what == "attributes" {
            "attribute"
        } else {
            "metadata key"
        };
        let mut sorted = Vec::with_capacity(keys.len());
        for key in keys {
            check_len(kind, key, limits.max_name_len)?;
            sorted.push(key);
        }
        sorted.sort_unstable();
        let Some(pair) = sorted.windows(2).find(|w| w[0] == w[1]) else {
            return Ok(());
        };
        let (op, name) = (self.name.clone(), pair[0].to_owned());
        Err(if what == "attributes" {
            GraphError::DuplicateAttribute { op, name }
        } else {
            GraphError::DuplicateMetadataKey { op, key: name }
        })
    }
}

impl AttributeValue {
    /// The kind's name, as used in JSON and in [`AttributeError`]s.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Int(_) => "int",
            Self::Float(_) => "float",
            Self::String(_) => "string",
            Self::Bytes(_) => "bytes",
            Self::Ints(_) => "ints",
            Self::Floats(_) => "floats",
            Self::Strings(_) => "strings",
            Self::Tensor(_) => "tensor",
        }
    }
}

impl TensorProto {
    /// A tensor of the given dims and row-major data.
    pub fn new(dims: Vec<i64>, data: Vec<f32>) -> Self {
        Self {
            dims,
            elem: TensorElem::Float,
            data,
            int64_data: Vec::new(),
        }
    }

    /// An i64 tensor of the given dims and row-major data.
    pub fn int64(dims: Vec<i64>, data: Vec<i64>) -> Self {
        Self {
            dims,
            elem: TensorElem::Int64,
            data: Vec::new(),
            int64_data: data,
        }
    }

    /// A bool tensor of the given dims and row-major data.
    pub fn boolean(dims: Vec<i64>, data: &[bool]) -> Self {
        Self {
            dims,
            elem: TensorElem::Bool,
            data: Vec::new(),
            int64_data: data.iter().map(|&b| i64::from(b)).collect(),
        }
    }

    /// How many elements the tensor holds in the field its
    /// [`TensorProto::elem`] names.
    pub fn data_len(&self) -> usize {
        match self.elem {
            TensorElem::Float => self.data.len(),
            TensorElem::Int64 | TensorElem::Bool => self.int64_data.len(),
        }
    }

    /// The number of elements `dims` describes, or `None` when a dim is
    /// negative or the product overflows `usize`.
    pub fn element_count(&self) -> Option<usize> {
        self.dims.iter().try_fold(1usize, |acc, &d| {
            let d = usize::try_from(d).ok()?;
            acc.checked_mul(d)
        })
    }
}

impl Default for GraphLimits {
    fn default() -> Self {
        Self {
            max_ops: 65_536,
            max_values: 262_144,
            max_name_len: OP_NAME_CAP,
            max_op_ports: 1024,
            max_attributes_per_op: 256,
        }
    }
}

impl fmt::Display for ValueEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::GraphInput => f.write_str("the graph inputs"),
            Self::GraphOutput => f.write_str("the graph outputs"),
            Self::Op(name) => write!(f, "op `{name}`"),
        }
    }
}

impl ValueIndex {
    /// Wraps a raw index.
    pub const fn new(raw: u32) -> Self {
        Self(raw)
    }

    /// The raw integer.
    pub const fn as_u32(self) -> u32 {
        self.0
    }

    /// The index as a `usize`, for slot storage.
    pub const fn index(self) -> usize {
        self.0 as usize
    }
}

impl fmt::Display for ValueIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "value:{}", self.0)
    }
}

impl GraphTopology {
    /// Number of distinct values (slots per execution).
    pub fn value_count(&self) -> usize {
        self.value_names.len()
    }

    /// Number of ops.
    pub fn op_count(&self) -> usize {
        self.required_inputs.len()
    }

    /// The index of the value called `name` (install-time lookup).
    pub fn value_index(&self, name: &str) -> Option<ValueIndex> {
        self.index_by_name.get(name).copied()
    }

    /// The name of value `value`.
    pub fn value_name(&self, value: ValueIndex) -> Option<&str> {
        self.value_names.get(value.index()).map(String::as_str)
    }

    /// Who produces value `value`.
    pub fn producer(&self, value: ValueIndex) -> Option<ValueProducer> {
        self.producers.get(value.index()).copied()
    }

    /// Op `op`'s inputs by position; `None` marks an absent optional input.
    pub fn op_inputs(&self, op: u32) -> &[Option<ValueIndex>] {
        csr_slice(&self.input_start, &self.op_inputs, op as usize)
    }

    /// Op `op`'s outputs by position; `None` marks an unused optional output.
    pub fn op_outputs(&self, op: u32) -> &[Option<ValueIndex>] {
        csr_slice(&self.output_start, &self.op_outputs, op as usize)
    }

    /// How many distinct values op `op` waits for before it may fire:
    /// graph inputs included, absent inputs excluded, a value read twice
    /// counted once (matching its single entry in [`Self::consumers`]);
    /// 0 for an unknown op.
    pub fn required_inputs(&self, op: u32) -> u32 {
        self.required_inputs.get(op as usize).copied().unwrap_or(0)
    }

    /// The ops that read value `value`, each once, in ascending op order.
    pub fn consumers(&self, value: ValueIndex) -> &[u32] {
        csr_slice(&self.consumer_start, &self.consumers, value.index())
    }

    /// Every op once, producers before consumers, ties in declaration order.
    pub fn topo_order(&self) -> &[u32] {
        &self.topo_order
    }

    /// The graph inputs' values, in declaration order.
    pub fn graph_inputs(&self) -> &[ValueIndex] {
        &self.graph_inputs
    }

    /// The graph outputs' values, in declaration order.
    pub fn graph_outputs(&self) -> &[ValueIndex] {
        &self.graph_outputs
    }
}

/// Value numbering in progress: names → indices and their producers.
struct Numbering<'g> {
    index_by_name: HashMap<&'g str, ValueIndex>,
    value_names: Vec<&'g str>,
    producers: Vec<ValueProducer>,
    max_values: usize,
}

impl<'g> Numbering<'g> {
    fn build(graph: &'g Graph, limits: &GraphLimits) -> Result<Self, GraphError> {
        let mut numbering = Self {
            index_by_name: HashMap::new(),
            value_names: Vec::new(),
            producers: Vec::new(),
            max_values: limits.max_values.min(u32::MAX as usize),
        };
        for (position, info) in graph.inputs.iter().enumerate() {
            let producer = ValueProducer::GraphInput {
                position: position as u32,
            };
            numbering.produce(graph, &info.name, producer)?;
        }
        for (op, node) in graph.ops.iter().enumerate() {
            for (output, name) in node.outputs.iter().enumerate() {
                if name.is_empty() {
                    continue;
                }
                let producer = ValueProducer::Op {
                    op: op as u32,
                    output: output as u32,
                };
                numbering.produce(graph, name, producer)?;
            }
        }
        Ok(numbering)
    }

    fn produce(
        &mut self,
        graph: &Graph,
        name: &'g str,
        producer: ValueProducer,
    ) -> Result<(), GraphError> {
        if let Some(existing) = self.index_by_name.get(name) {
            return Err(GraphError::ValueProducedTwice {
                value: name.to_owned(),
                first: endpoint(graph, self.producers[existing.index()]),
                second: endpoint(graph, producer),
            });
        }
        if self.value_names.len() >= self.max_values {
            return Err(GraphError::TooManyValues {
                max: self.max_values,
            });
        }
        let index = ValueIndex(self.value_names.len() as u32);
        self.index_by_name.insert(name, index);
        self.value_names.push(name);
        self.producers.push(producer);
        Ok(())
    }

    fn resolve(
        &self,
        name: &str,
        consumer: impl FnOnce() -> ValueEndpoint,
    ) -> Result<ValueIndex, GraphError> {
        self.index_by_name
            .get(name)
            .copied()
            .ok_or_else(|| GraphError::ValueNeverProduced {
                value: name.to_owned(),
                consumer: consumer(),
            })
    }

    fn into_topology(self, graph: &Graph) -> Result<GraphTopology, GraphError> {
        let op_count = graph.ops.len();
        let value_count = self.value_names.len();
        let mut input_start = Vec::with_capacity(op_count + 1);
        let mut op_inputs = Vec::new();
        let mut output_start = Vec::with_capacity(op_count + 1);
        let mut op_outputs = Vec::new();
        input_start.push(0u32);
        output_start.push(0u32);
        for node in &graph.ops {
            for name in &node.inputs {
                if name.is_empty() {
                    op_inputs.push(None);
                    continue;
                }
                let index = self.resolve(name, || ValueEndpoint::Op(node.name.clone()))?;
                op_inputs.push(Some(index));
            }
            for name in &node.outputs {
                op_outputs.push(self.index_by_name.get(name.as_str()).copied());
            }
            input_start.push(op_inputs.len() as u32);
            output_start.push(op_outputs.len() as u32);
        }

        let mut graph_outputs = Vec::with_capacity(graph.outputs.len());
        let mut is_output = vec![false; value_count];
        for info in &graph.outputs {
            let index = self.resolve(&info.name, || ValueEndpoint::GraphOutput)?;
            if std::mem::replace(&mut is_output[index.index()], true) {
                return Err(GraphError::DuplicateGraphOutput {
                    value: info.name.clone(),
                });
            }
            graph_outputs.push(index);
        }
        let graph_inputs = (0..graph.inputs.len() as u32).map(ValueIndex).collect();

        // Distinct (value, op) reads, in op order, so each consumer list is
        // ascending and each op counts a value it reads twice once.
        let mut last_reader = vec![u32::MAX; value_count];
        let mut reads: Vec<(ValueIndex, u32)> = Vec::new();
        let mut required_inputs = vec![0u32; op_count];
        for op in 0..op_count as u32 {
            for value in csr_slice(&input_start, &op_inputs, op as usize)
                .iter()
                .flatten()
            {
                if last_reader[value.index()] == op {
                    continue;
                }
                last_reader[value.index()] = op;
                reads.push((*value, op));
                required_inputs[op as usize] += 1;
            }
        }
        let mut consumer_start = vec![0u32; value_count + 1];
        for (value, _) in &reads {
            consumer_start[value.index() + 1] += 1;
        }
        for v in 0..value_count {
            consumer_start[v + 1] += consumer_start[v];
        }
        let mut fill = consumer_start.clone();
        let mut consumers = vec![0u32; reads.len()];
        for (value, op) in reads {
            consumers[fill[value.index()] as usize] = op;
            fill[value.index()] += 1;
        }

        let mut topology = GraphTopology {
            value_names: self.value_names.iter().map(|n| (*n).to_owned()).collect(),
            index_by_name: self
                .index_by_name
                .iter()
                .map(|(n, i)| ((*n).to_owned(), *i))
                .collect(),
            producers: self.producers,
            input_start,
            op_inputs,
            output_start,
            op_outputs,
            consumer_start,
            consumers,
            required_inputs,
            topo_order: Vec::new(),
            graph_inputs,
            graph_outputs,
        };
        topology.topo_order = topological_order(&topology, graph)?;
        Ok(topology)
    }
}

/// Kahn's algorithm with a FIFO seeded in declaration order; on failure,
/// reports one cycle among the ops left over.
fn topological_order(t: &GraphTopology, graph: &Graph) -> Result<Vec<u32>, GraphError> {
    let op_count = t.op_count();
    // Waiting count: distinct input values that an op (not the host)
    // produces; consumer lists are already distinct per value.
    let mut waiting = vec![0u32; op_count];
    for op in 0..op_count as u32 {
        for value in t.op_outputs(op).iter().flatten() {
            for &reader in t.consumers(*value) {
                waiting[reader as usize] += 1;
            }
        }
    }
    let mut queue: VecDeque<u32> = (0..op_count as u32)
        .filter(|op| waiting[*op as usize] == 0)
        .collect();
    let mut order = Vec::with_capacity(op_count);
    while let Some(op) = queue.pop_front() {
        order.push(op);
        for value in t.op_outputs(op).iter().flatten() {
            for &reader in t.consumers(*value) {
                let w = &mut waiting[reader as usize];
                *w -= 1;
                if *w == 0 {
                    queue.push_back(reader);
                }
            }
        }
    }
    if order.len() == op_count {
        return Ok(order);
    }
    Err(GraphError::Cycle {
        ops: find_cycle(t, &waiting)
            .into_iter()
            .map(|op| graph.ops[op as usize].name.clone())
            .collect(),
    })
}

/// Walks backwards from the first op still waiting, always to a producer
/// that is itself still waiting, until an op repeats; the repeated stretch
/// is a cycle.
fn find_cycle(t: &GraphTopology, waiting: &[u32]) -> Vec<u32> {
    let Some(start) = waiting.iter().position(|w| *w > 0) else {
        return Vec::new();
    };
    let mut position_in_path: Vec<Option<usize>> = vec![None; waiting.len()];
    let mut path: Vec<u32> = Vec::new();
    let mut current = start as u32;
    loop {
        if let Some(at) = position_in_path[current as usize] {
            let mut cycle = path.split_off(at);
            cycle.reverse();
            let first = cycle
                .iter()
                .enumerate()
                .min_by_key(|(_, op)| **op)
                .map_or(0, |(i, _)| i);
            cycle.rotate_left(first);
            return cycle;
        }
        position_in_path[current as usize] = Some(path.len());
        path.push(current);
        let predecessor =
            t.op_inputs(current)
                .iter()
                .flatten()
                .find_map(|v| match t.producers[v.index()] {
                    ValueProducer::Op { op, .. } if waiting[op as usize] > 0 => Some(op),
                    _ => None,
                });
        match predecessor {
            Some(op) => current = op,
            // Unreachable for a waiting op; report the path rather than panic.
            None => return path,
        }
    }
}

fn endpoint(graph: &Graph, producer: ValueProducer) -> ValueEndpoint {
    match producer {
        ValueProducer::GraphInput { .. } => ValueEndpoint::GraphInput,
        ValueProducer::Op { op, .. } => graph
            .ops
            .get(op as usize)
            .map_or(ValueEndpoint::GraphInput, |node| {
                ValueEndpoint::Op(node.name.clone())
            }),
    }
}

fn check_len(what: &'static str, name: &str, max: usize) -> Result<(), GraphError> {
    if name.len() <= max {
        return Ok(());
    }
    let mut cut = name.len().min(32);
    while !name.is_char_boundary(cut) {
        cut -= 1;
    }
    Err(GraphError::NameTooLong {
        what,
        prefix: name[..cut].to_owned(),
        len: name.len(),
        max,
    })
}

fn csr_slice<'a, T>(start: &[u32], items: &'a [T], i: usize) -> &'a [T] {
    let (Some(&from), Some(&to)) = (start.get(i), start.get(i + 1)) else {
        return &[];
    };
    items.get(from as usize..to as usize).unwrap_or(&[])
}

#[cfg(test)]
mod tests {
    use super::*;

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

    fn vi(t: &GraphTopology, name: &str) -> ValueIndex {
        t.value_index(name).expect("value exists")
    }

    fn with_attr(name: &str, value: AttributeValue) -> OpNode {
        OpNode {
            attributes: vec![Attribute {
                name: name.into(),
                value,
            }],
            ..OpNode::new("n", "Op")
        }
    }

    #[test]
    fn typed_accessors_return_values_of_the_right_kind() {
        let mut n = OpNode::new("n", "Op");
        let attrs = [
            ("i", AttributeValue::Int(-3)),
            ("f", AttributeValue::Float(0.5)),
            ("s", AttributeValue::String("hi".into())),
            ("b", AttributeValue::Bytes(vec![0, 255])),
            ("is", AttributeValue::Ints(vec![1, 2])),
            ("fs", AttributeValue::Floats(vec![1.5])),
            ("ss", AttributeValue::Strings(vec!["a".into()])),
            (
                "t",
                AttributeValue::Tensor(TensorProto::new(vec![1], vec![2.0])),
            ),
        ];
        for (name, value) in attrs {
            n.attributes.push(Attribute {
                name: name.into(),
                value,
            });
        }
        assert_eq!(n.attr_int("i"), Ok(-3));
        assert_eq!(n.attr_float("f"), Ok(0.5));
        assert_eq!(n.attr_str("s"), Ok("hi"));
        assert_eq!(n.attr_bytes("b"), Ok(&[0u8, 255][..]));
        assert_eq!(n.attr_ints("is"), Ok(&[1i64, 2][..]));
        assert_eq!(n.attr_floats("fs"), Ok(&[1.5f32][..]));
        assert_eq!(n.attr_strings("ss").map(|s| s.len()), Ok(1));
        assert_eq!(n.attr_tensor("t").map(|t| t.data.clone()), Ok(vec![2.0]));
        assert!(n.attr("t").is_some());
        assert!(n.attr("zz").is_none());
    }

    #[test]
    fn accessor_errors_name_op_attribute_and_kinds() {
        let n = with_attr("k", AttributeValue::Float(1.0));
        assert_eq!(
            n.attr_int("k"),
            Err(AttributeError::WrongType {
                op: "n".into(),
                name: "k".into(),
                expected: "int",
                found: "float",
            })
        );
        assert_eq!(
            n.attr_str("missing"),
            Err(AttributeError::Missing {
                op: "n".into(),
                name: "missing".into(),
            })
        );
        let msg = n.attr_int("k").unwrap_err().to_string();
        assert!(msg.contains("`k`") && msg.contains("`n`") && msg.contains("float"));
    }

    #[test]
    fn attr_int_or_defaults_only_when_absent() {
        let n = with_attr("k", AttributeValue::String("x".into()));
        assert_eq!(n.attr_int_or("other", 9), Ok(9));
        assert!(matches!(
            n.attr_int_or("k", 9),
            Err(AttributeError::WrongType { .. })
        ));
        let n = with_attr("k", AttributeValue::Int(4));
        assert_eq!(n.attr_int_or("k", 9), Ok(4));
    }

    #[test]
    fn metadata_and_syscall_domain() {
        let mut n = OpNode::new("n", "PassThrough");
        assert!(!n.is_syscall());
        n.domain = SYSCALL_DOMAIN.into();
        n.metadata.push(MetadataEntry {
            key: "k".into(),
            value: "v".into(),
        });
        assert!(n.is_syscall());
        assert_eq!(n.metadata("k"), Some("v"));
        assert_eq!(n.metadata("x"), None);
    }

    #[test]
    fn attribute_json_is_externally_tagged_by_kind() {
        let cases = [
            (AttributeValue::Int(3), r#"{"int":3}"#),
            (AttributeValue::Float(0.5), r#"{"float":0.5}"#),
            (AttributeValue::String("a".into()), r#"{"string":"a"}"#),
            (AttributeValue::Bytes(vec![1, 2]), r#"{"bytes":[1,2]}"#),
            (AttributeValue::Ints(vec![1]), r#"{"ints":[1]}"#),
            (AttributeValue::Floats(vec![1.5]), r#"{"floats":[1.5]}"#),
            (
                AttributeValue::Strings(vec!["a".into()]),
                r#"{"strings":["a"]}"#,
            ),
            (
                AttributeValue::Tensor(TensorProto::new(vec![1], vec![2.0])),
                r#"{"tensor":{"dims":[1],"data":[2.0]}}"#,
            ),
        ];
        for (value, json) in cases {
            assert_eq!(serde_json::to_string(&value).unwrap(), json);
            let back: AttributeValue = serde_json::from_str(json).unwrap();
            assert_eq!(back, value);
            assert_eq!(json[2..].split('"').next(), Some(value.kind()));
        }
    }

    #[test]
    fn empty_optional_fields_are_omitted_and_unknown_fields_rejected() {
        let json = serde_json::to_string(&OpNode::new("n", "Op")).unwrap();
        assert_eq!(
            json,
            r#"{"name":"n","op_type":"Op","inputs":[],"outputs":[]}"#
        );
        let typo = r#"{"name":"n","op_typ":"Op"}"#;
        assert!(serde_json::from_str::<OpNode>(typo).is_err());
        let minimal: OpNode = serde_json::from_str(r#"{"name":"n","op_type":"Op"}"#).unwrap();
        assert_eq!(minimal, OpNode::new("n", "Op"));
    }

    #[test]
    fn topology_numbers_values_inputs_first_then_op_outputs() {
        // x -> a -> (p, q); b reads (q, x, q); graph output b's r.
        let g = graph(
            &["x"],
            &["r"],
            vec![
                op("a", &["x"], &["p", "q"]),
                op("b", &["q", "x", "q"], &["r"]),
            ],
        );
        let t = g.check_structure().unwrap();
        assert_eq!(t.value_count(), 4);
        assert_eq!(t.op_count(), 2);
        assert_eq!(vi(&t, "x"), ValueIndex::new(0));
        assert_eq!(vi(&t, "p"), ValueIndex::new(1));
        assert_eq!(vi(&t, "r"), ValueIndex::new(3));
        assert_eq!(t.value_name(ValueIndex::new(2)), Some("q"));
        assert_eq!(
            t.producer(vi(&t, "q")),
            Some(ValueProducer::Op { op: 0, output: 1 })
        );
        assert_eq!(
            t.producer(vi(&t, "x")),
            Some(ValueProducer::GraphInput { position: 0 })
        );
        let q = vi(&t, "q");
        let x = vi(&t, "x");
        assert_eq!(t.op_inputs(1), [Some(q), Some(x), Some(q)]);
        assert_eq!(t.op_outputs(0), [Some(vi(&t, "p")), Some(q)]);
        assert_eq!(t.required_inputs(1), 2, "q read twice counts once");
        assert_eq!(t.consumers(x), [0, 1]);
        assert_eq!(t.consumers(q), [1], "one entry per reading op");
        assert!(t.consumers(vi(&t, "p")).is_empty());
        assert_eq!(t.graph_inputs(), [x]);
        assert_eq!(t.graph_outputs(), [vi(&t, "r")]);
        assert_eq!(t.topo_order(), [0, 1]);
    }

    #[test]
    fn topo_order_puts_producers_first_and_keeps_declaration_order_on_ties() {
        // Declared consumer-first: c reads b's output, b reads a's.
        let g = graph(
            &[],
            &["z"],
            vec![
                op("c", &["y"], &["z"]),
                op("k1", &[], &["u"]),
                op("b", &["x"], &["y"]),
                op("a", &[], &["x"]),
                op("k2", &["u"], &[]),
            ],
        );
        let t = g.check_structure().unwrap();
        let names: Vec<&str> = t
            .topo_order()
            .iter()
            .map(|i| g.ops[*i as usize].name.as_str())
            .collect();
        assert_eq!(names, ["k1", "a", "k2", "b", "c"]);
    }

    #[test]
    fn absent_ports_get_no_value_and_do_not_block() {
        let g = graph(&["x"], &[], vec![op("a", &["", "x"], &["", "y"])]);
        let t = g.check_structure().unwrap();
        assert_eq!(t.value_count(), 2);
        assert_eq!(t.op_inputs(0), [None, Some(vi(&t, "x"))]);
        assert_eq!(t.op_outputs(0), [None, Some(vi(&t, "y"))]);
        assert_eq!(t.required_inputs(0), 1);
        assert_eq!(t.value_index(""), None);
    }

    #[test]
    fn out_of_range_indices_answer_empty() {
        let t = graph(&["x"], &[], vec![]).check_structure().unwrap();
        assert!(t.op_inputs(7).is_empty());
        assert!(t.op_outputs(u32::MAX).is_empty());
        assert_eq!(t.required_inputs(3), 0);
        assert!(t.consumers(ValueIndex::new(99)).is_empty());
        assert_eq!(t.value_name(ValueIndex::new(99)), None);
        assert_eq!(t.producer(ValueIndex::new(99)), None);
    }

    #[test]
    fn self_loop_is_a_cycle_of_one() {
        let g = graph(&[], &[], vec![op("s", &["v"], &["v"])]);
        assert_eq!(
            g.check_structure(),
            Err(GraphError::Cycle {
                ops: vec!["s".into()]
            })
        );
    }

    #[test]
    fn cycle_is_reported_in_flow_order_from_first_declared_op() {
        // ok -> downstream, and a loop b -> c -> a -> b that `tail` hangs off.
        let g = graph(
            &["x"],
            &[],
            vec![
                op("ok", &["x"], &["o"]),
                op("tail", &["va"], &[]),
                op("c", &["vb"], &["vc"]),
                op("a", &["vc", "o"], &["va"]),
                op("b", &["va"], &["vb"]),
            ],
        );
        assert_eq!(
            g.check_structure(),
            Err(GraphError::Cycle {
                ops: vec!["c".into(), "a".into(), "b".into()]
            })
        );
    }

    #[test]
    fn long_chain_and_long_cycle_need_no_recursion() {
        const N: usize = 20_000;
        let names: Vec<String> = (0..=N).map(|i| format!("v{i}")).collect();
        let chain: Vec<OpNode> = (0..N)
            .rev()
            .map(|i| op(&format!("op{i}"), &[&names[i]], &[&names[i + 1]]))
            .collect();
        let g = graph(&["v0"], &[&names[N]], chain);
        let t = g.check_structure().unwrap();
        assert_eq!(t.topo_order().first(), Some(&(N as u32 - 1)));
        assert_eq!(t.topo_order().last(), Some(&0));

        // Close the loop: op0 now reads the last value instead of v0.
        let mut looped = g.clone();
        looped.inputs.clear();
        looped.outputs.clear();
        let last = looped.ops.len() - 1;
        looped.ops[last].inputs = vec![names[N].clone()];
        let Err(GraphError::Cycle { ops }) = looped.check_structure() else {
            panic!("expected a cycle");
        };
        assert_eq!(ops.len(), N);
        assert_eq!(
            ops[0],
            format!("op{}", N - 1),
            "starts at the first declared op"
        );
    }

    #[test]
    fn value_cap_counts_distinct_values() {
        let limits = GraphLimits {
            max_values: 2,
            ..GraphLimits::default()
        };
        let ok = graph(&["x"], &[], vec![op("a", &["x", "x"], &["y"])]);
        assert!(ok.check_structure_with(&limits).is_ok());
        let over = graph(&["x"], &[], vec![op("a", &["x"], &["y", "z"])]);
        assert_eq!(
            over.check_structure_with(&limits),
            Err(GraphError::TooManyValues { max: 2 })
        );
    }

    #[test]
    fn op_cap_zero_refuses_any_op_but_allows_empty_graph() {
        let limits = GraphLimits {
            max_ops: 0,
            ..GraphLimits::default()
        };
        assert!(graph(&["x"], &["x"], vec![])
            .check_structure_with(&limits)
            .is_ok());
        assert_eq!(
            graph(&[], &[], vec![op("a", &[], &[])]).check_structure_with(&limits),
            Err(GraphError::TooManyOps { count: 1, max: 0 })
        );
    }

    #[test]
    fn long_name_prefix_is_cut_at_a_char_boundary() {
        let name = "é".repeat(100); // 200 bytes, 2 per char
        let g = graph(&[&name], &[], vec![]);
        let Err(GraphError::NameTooLong {
            what,
            prefix,
            len,
            max,
        }) = g.check_structure()
        else {
            panic!("expected NameTooLong");
        };
        assert_eq!((what, len, max), ("value", 200, OP_NAME_CAP));
        assert_eq!(prefix, "é".repeat(16));
    }

    #[test]
    fn attribute_and_metadata_caps_and_key_lengths() {
        let limits = GraphLimits {
            max_attributes_per_op: 1,
            max_name_len: 3,
            ..GraphLimits::default()
        };
        let mut n = with_attr("k", AttributeValue::Int(1));
        n.name = "n".into();
        n.attributes.push(n.attributes[0].clone());
        let g = graph(&[], &[], vec![n.clone()]);
        assert_eq!(
            g.check_structure_with(&limits),
            Err(GraphError::TooManyAttributes {
                op: "n".into(),
                what: "attributes",
                count: 2,
                max: 1
            })
        );
        n.attributes.truncate(1);
        n.metadata.push(MetadataEntry {
            key: "long".into(),
            value: "a value longer than the name cap is fine".into(),
        });
        let g = graph(&[], &[], vec![n]);
        assert!(matches!(
            g.check_structure_with(&limits),
            Err(GraphError::NameTooLong {
                what: "metadata key",
                len: 4,
                ..
            })
        ));
    }

    #[test]
    fn tensor_element_count_rejects_negative_and_overflow() {
        assert_eq!(TensorProto::new(vec![], vec![1.0]).element_count(), Some(1));
        assert_eq!(
            TensorProto::new(vec![2, 0], vec![]).element_count(),
            Some(0)
        );
        assert_eq!(TensorProto::new(vec![-1], vec![]).element_count(), None);
        assert_eq!(
            TensorProto::new(vec![i64::MAX, i64::MAX], vec![]).element_count(),
            None
        );
    }
}
