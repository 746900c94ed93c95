//! Install: turns graphs plus bound components into dispatch-ready sites.
//!
//! Each graph becomes a [`CompiledGraph`] at the next [`SiteId`] (install
//! order). Install checks everything that can be checked before anything
//! runs, with a typed [`InstallError`]:
//! 1. the graph's structure (values produced once, nothing read that is never
//!    produced, no data cycle, caps): [`Graph::check_structure`];
//! 2. every op resolves: a syscall parses, a `Call` names an installed graph
//!    with matching arity, any other op's domain names a bound component
//!    that implements its op type;
//! 3. every component's declared dependencies are bound to a component of
//!    the declared kind.
//!
//! The result is index-based: each op carries its dispatch entry, its input
//! and output value indices and how many ports read each value, so the hot
//! path never looks anything up by name.
//!
//! Op → component rule: an op whose domain is [`SYSCALL_DOMAIN`] is a
//! syscall; any other domain is the slot name of a bound component, except
//! the ONNX default domain `""`, which means the slot [`ONNX_SLOT`].

use std::collections::HashMap;

use crate::component::{Component, LocalOpId, OpError};
use crate::graph::{Graph, GraphError, GraphTopology, SYSCALL_DOMAIN};
use crate::ids::{ComponentRef, OpRef, SiteId};
use crate::syscall::{Syscall, SyscallParseError, TriggerSource};

/// Slot that ops in the ONNX default domain (`""`) dispatch to.
pub const ONNX_SLOT: &str = "ai.onnx";

/// The syscall op type that calls another installed graph as a function.
pub const CALL_OP: &str = "Call";

/// Syscalls that may return `Async` (they count against the pending-async cap).
const ASYNC_SYSCALLS: &[&str] = &["Sleep", "After", "Send"];

/// Why a Node could not be built from its graphs and components.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InstallError {
    /// A graph is structurally invalid.
    #[error("graph `{graph}`: {source}")]
    Graph {
        /// The graph's name.
        graph: String,
        /// What is wrong with it.
        source: GraphError,
    },
    /// Two graphs share a name (graphs are called by name).
    #[error("two graphs are named `{0}`; graph names must be unique on a Node")]
    DuplicateGraph(String),
    /// Two components were bound to one slot.
    #[error("two components are bound to slot `{0}`")]
    DuplicateSlot(String),
    /// A syscall op is unknown or malformed.
    #[error("graph `{graph}`: {source}")]
    Syscall {
        /// The graph's name.
        graph: String,
        /// What is wrong with the op.
        source: SyscallParseError,
    },
    /// An op's domain names no bound component.
    #[error("graph `{graph}`, op `{op}`: no component is bound at slot `{slot}` (the op's domain); bind one or fix the domain")]
    UnboundSlot {
        /// The graph's name.
        graph: String,
        /// The op's name.
        op: String,
        /// The slot the op's domain maps to.
        slot: String,
    },
    /// The component bound at the op's domain does not implement its op type.
    #[error(
        "graph `{graph}`, op `{op}`: the `{kind}` component at slot `{slot}` has no op `{op_type}`"
    )]
    UnknownOp {
        /// The graph's name.
        graph: String,
        /// The op's name.
        op: String,
        /// The op type asked for.
        op_type: String,
        /// The slot.
        slot: String,
        /// The bound component's kind.
        kind: String,
    },
    /// The component bound at the op's slot refused to install it (for
    /// example an attribute it cannot accept).
    #[error("graph `{graph}`, op `{op}`: the component at slot `{slot}` refused it: {error}")]
    OpRefused {
        /// The graph's name.
        graph: String,
        /// The op's name.
        op: String,
        /// The slot.
        slot: String,
        /// The component's reason.
        error: OpError,
    },
    /// A `Call` op names no installed graph, or its arity does not match.
    #[error("graph `{graph}`, op `{op}`: {problem}")]
    BadCall {
        /// The calling graph's name.
        graph: String,
        /// The op's name.
        op: String,
        /// What is wrong.
        problem: String,
    },
    /// A component's declared dependency is not bound.
    #[error("component at slot `{component}` needs slot `{slot}` bound to a `{kind}` component; nothing is bound there")]
    MissingDependency {
        /// The dependent component's slot.
        component: String,
        /// The dependency slot.
        slot: String,
        /// The kind it must have.
        kind: String,
    },
    /// A dependency slot holds a component of another kind.
    #[error("component at slot `{component}` needs slot `{slot}` to hold a `{expected}` component; it holds a `{found}`")]
    DependencyKind {
        /// The dependent component's slot.
        component: String,
        /// The dependency slot.
        slot: String,
        /// The kind it must have.
        expected: String,
        /// The kind bound there.
        found: String,
    },
    /// More graphs than site ids.
    #[error("too many graphs on one Node")]
    TooManyGraphs,
}

/// How the engine runs one op.
#[derive(Debug)]
pub(crate) enum Dispatch {
    /// A built-in syscall.
    Syscall(Syscall),
    /// An op of a bound component.
    Component {
        cref: ComponentRef,
        local: LocalOpId,
    },
    /// Runs another installed graph as a function.
    Call { callee: SiteId },
}

/// One op, ready to fire.
#[derive(Debug)]
pub(crate) struct CompiledOp {
    pub dispatch: Dispatch,
    pub op_ref: OpRef,
    /// Whether this op may park (components and async syscalls may).
    pub may_park: bool,
    /// Output value names, in declaration order (completions address them).
    pub output_names: Vec<String>,
}

/// One installed graph.
#[derive(Debug)]
pub(crate) struct CompiledGraph {
    pub site: SiteId,
    pub graph: Graph,
    pub topo: GraphTopology,
    pub ops: Vec<CompiledOp>,
    /// Per value: how many op input ports read it (a value read by the same
    /// op twice counts twice). The last read takes the value, earlier ones
    /// clone it.
    pub port_reads: Vec<u32>,
    /// Per value: whether it is a graph output (kept until the execution ends).
    pub is_output: Vec<bool>,
    /// Trigger-source ops: (op index, source).
    pub sources: Vec<(u32, TriggerSource)>,
    /// Ops with no inputs that are not trigger sources: they fire at the
    /// start of every execution.
    pub roots: Vec<u32>,
    /// `Reply` ops, by index: a request's execution that fired none of
    /// them is answered with a failure when it ends.
    pub reply_ops: Vec<u32>,
    /// Run before any other traffic is processed.
    pub bootstrap: bool,
}

impl CompiledGraph {
    /// Whether a `Reply` op fired, given an execution's per-op `fired`
    /// flags (an execution started by a request that ends without one is
    /// answered with a failure).
    pub fn replied(&self, fired: &[bool]) -> bool {
        self.reply_ops
            .iter()
            .any(|&op| fired.get(op as usize).copied().unwrap_or(false))
    }

    /// Value index of the graph input named `name`.
    pub fn input_index(&self, name: &str) -> Option<u32> {
        self.graph
            .inputs
            .iter()
            .position(|input| input.name == name)
            .and_then(|position| self.topo.graph_inputs().get(position))
            .map(|value| value.as_u32())
    }
}

/// A graph handed to install, and whether it is a bootstrap graph.
#[derive(Clone, Debug)]
pub(crate) struct GraphEntry {
    pub graph: Graph,
    pub bootstrap: bool,
}

/// Compiles every graph and checks every component dependency.
pub(crate) fn install(
    entries: Vec<GraphEntry>,
    components: &mut [Option<Box<dyn Component>>],
    slots: &HashMap<String, ComponentRef>,
) -> Result<Vec<CompiledGraph>, InstallError> {
    check_dependencies(components, slots)?;

    let mut names: HashMap<&str, (SiteId, usize, usize)> = HashMap::new();
    for (index, entry) in entries.iter().enumerate() {
        let site = SiteId::new(u32::try_from(index).map_err(|_| InstallError::TooManyGraphs)?);
        let arity = (entry.graph.inputs.len(), entry.graph.outputs.len());
        if names
            .insert(entry.graph.name.as_str(), (site, arity.0, arity.1))
            .is_some()
        {
            return Err(InstallError::DuplicateGraph(entry.graph.name.clone()));
        }
    }

    let mut compiled = Vec::with_capacity(entries.len());
    for (index, entry) in entries.iter().enumerate() {
        // Checked above: every index fits a u32.
        let site = SiteId::new(index as u32);
        compiled.push(compile(site, entry, &mut *components, slots, &names)?);
    }
    Ok(compiled)
}

fn compile(
    site: SiteId,
    entry: &GraphEntry,
    components: &mut [Option<Box<dyn Component>>],
    slots: &HashMap<String, ComponentRef>,
    names: &HashMap<&str, (SiteId, usize, usize)>,
) -> Result<CompiledGraph, InstallError> {
    let graph = &entry.graph;
    let topo = graph
        .check_structure()
        .map_err(|source| InstallError::Graph {
            graph: graph.name.clone(),
            source,
        })?;

    let mut ops = Vec::with_capacity(graph.ops.len());
    let mut sources = Vec::new();
    let mut roots = Vec::new();
    let mut reply_ops = Vec::new();
    for (index, op) in graph.ops.iter().enumerate() {
        // check_structure caps the op count far below u32::MAX.
        let index = index as u32;
        let (dispatch, may_park) = if op.domain == SYSCALL_DOMAIN && op.op_type == CALL_OP {
            let callee = resolve_call(graph, op, names)?;
            (Dispatch::Call { callee }, true)
        } else if op.domain == SYSCALL_DOMAIN {
            let syscall = Syscall::parse(op).map_err(|source| InstallError::Syscall {
                graph: graph.name.clone(),
                source,
            })?;
            if let Some(source) = syscall.source() {
                sources.push((index, source.clone()));
            }
            let may_park = ASYNC_SYSCALLS.contains(&op.op_type.as_str());
            (Dispatch::Syscall(syscall), may_park)
        } else {
            let slot = if op.domain.is_empty() {
                ONNX_SLOT
            } else {
                op.domain.as_str()
            };
            let Some(&cref) = slots.get(slot) else {
                return Err(InstallError::UnboundSlot {
                    graph: graph.name.clone(),
                    op: op.name.clone(),
                    slot: slot.to_owned(),
                });
            };
            let component = components
                .get_mut(cref.index())
                .and_then(Option::as_deref_mut)
                .ok_or_else(|| InstallError::UnboundSlot {
                    graph: graph.name.clone(),
                    op: op.name.clone(),
                    slot: slot.to_owned(),
                })?;
            let installed = component
                .install_op(op)
                .map_err(|error| InstallError::OpRefused {
                    graph: graph.name.clone(),
                    op: op.name.clone(),
                    slot: slot.to_owned(),
                    error,
                })?;
            let local = installed.ok_or_else(|| InstallError::UnknownOp {
                graph: graph.name.clone(),
                op: op.name.clone(),
                op_type: op.op_type.clone(),
                slot: slot.to_owned(),
                kind: component.kind().to_owned(),
            })?;
            (Dispatch::Component { cref, local }, true)
        };
        if op.inputs.iter().all(String::is_empty)
            && !matches!(&dispatch, Dispatch::Syscall(s) if s.source().is_some())
        {
            roots.push(index);
        }
        if matches!(
            dispatch,
            Dispatch::Syscall(crate::syscall::Syscall::Wire(
                crate::syscall::WireSyscall::Reply
            ))
        ) {
            reply_ops.push(index);
        }
        ops.push(CompiledOp {
            dispatch,
            op_ref: OpRef::new(site, index),
            may_park,
            output_names: op.outputs.clone(),
        });
    }

    let mut port_reads = vec![0u32; topo.value_count()];
    for index in 0..topo.op_count() {
        for value in topo.op_inputs(index as u32).iter().flatten() {
            port_reads[value.index()] += 1;
        }
    }
    let mut is_output = vec![false; topo.value_count()];
    for value in topo.graph_outputs() {
        is_output[value.index()] = true;
    }

    Ok(CompiledGraph {
        site,
        graph: graph.clone(),
        topo,
        ops,
        port_reads,
        is_output,
        sources,
        roots,
        reply_ops,
        bootstrap: entry.bootstrap,
    })
}

fn resolve_call(
    graph: &Graph,
    op: &crate::graph::OpNode,
    names: &HashMap<&str, (SiteId, usize, usize)>,
) -> Result<SiteId, InstallError> {
    let bad = |problem: String| InstallError::BadCall {
        graph: graph.name.clone(),
        op: op.name.clone(),
        problem,
    };
    let callee = op.attr_str("graph").map_err(|e| {
        bad(format!(
            "{e}; a Call names its callee in the `graph` attribute"
        ))
    })?;
    let &(site, inputs, outputs) = names
        .get(callee)
        .ok_or_else(|| bad(format!("no installed graph is named `{callee}`")))?;
    if op.inputs.len() != inputs || op.outputs.len() != outputs {
        return Err(bad(format!(
            "`{callee}` takes {inputs} inputs and gives {outputs} outputs; the Call has {} and {}",
            op.inputs.len(),
            op.outputs.len()
        )));
    }
    Ok(site)
}

fn check_dependencies(
    components: &[Option<Box<dyn Component>>],
    slots: &HashMap<String, ComponentRef>,
) -> Result<(), InstallError> {
    let slot_of = |cref: ComponentRef| {
        slots
            .iter()
            .find(|(_, c)| **c == cref)
            .map(|(name, _)| name.clone())
            .unwrap_or_default()
    };
    for (index, component) in components.iter().enumerate() {
        let Some(component) = component else { continue };
        for dependency in component.dependencies() {
            let owner = slot_of(ComponentRef::new(index as u32));
            let bound = slots
                .get(dependency.slot.as_ref())
                .and_then(|cref| components.get(cref.index()))
                .and_then(Option::as_deref);
            let Some(bound) = bound else {
                return Err(InstallError::MissingDependency {
                    component: owner,
                    slot: dependency.slot.into_owned(),
                    kind: dependency.kind.into_owned(),
                });
            };
            if bound.kind() != dependency.kind {
                return Err(InstallError::DependencyKind {
                    component: owner,
                    slot: dependency.slot.into_owned(),
                    expected: dependency.kind.into_owned(),
                    found: bound.kind().to_owned(),
                });
            }
        }
    }
    Ok(())
}
