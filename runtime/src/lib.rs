//! `nodeflow`: the crate users depend on.
//!
//! A [`Runtime`] runs many Nodes in one process: [`Runtime::builder`]
//! chooses the compute threads, the clock, the default actor settings and
//! the router's peer cap; [`Runtime::spawn_node`] builds a Node from a
//! [`NodeSpec`] (a factory returning a fresh [`NodeBuilder`]) and starts it
//! on its own actor thread; the returned [`NodeHandle`] invokes graphs,
//! delivers app events, subscribes to outputs, reads counters and stops the
//! Node. Every Node is supervised: a panic that escapes its engine
//! restarts it from its last snapshot ([`SupervisionConfig`]).
//! [`Runtime::shutdown`] stops in two phases with a deadline (new work
//! refused, in-flight work including compute jobs drained, threads joined)
//! and returns a [`ShutdownReport`] accounting for every message.
//!
//! Heavy op work runs on the runtime's compute pool ([`ComputePool`],
//! [`Runtime::compute_pool`]), which posts each job's result back through
//! the owning Node's completion sink; [`ComputeComponent`] turns plain
//! functions over slot values into such a component.
//!
//! The engine and the actor host are re-exported whole ([`engine`],
//! [`actors`]) and their common types flat, so users depend on one crate.
//! [`Tensor`] is the slot value models are made of (f32, i64 or bool over
//! ndarray, shared behind an `Arc`); [`CpuBackend`] is the component, bound
//! at slot `ai.onnx`, that runs ONNX ops on tensors, small ones inline and
//! large ones on the compute pool.
//!
//! Invariants: no job can abort the process (a panicking job fails only its
//! own op, see [`ComputePool`]); no Node thread outlives its [`Runtime`].

mod backend;
mod compute_component;
mod compute_pool;
mod data;
pub mod learning;
mod roles;
mod runtime;
mod tensor;

pub use backend::{BackendConfig, CpuBackend, PreparedOp, BACKEND_KIND};
pub use tensor::{
    tensor_registry, ArcArrayD, DType, Element, Tensor, TensorDecodeError, TensorError,
    MAX_ELEMENTS, MAX_RANK,
};

pub use compute_component::{ComputeComponent, ComputeFn};
pub use compute_pool::{ComputePool, ComputePoolError, ComputePoolStats, JobOutputs};
pub use data::{
    digits, dirichlet_partition, idx_dataset, iid_partition, load_idx_dir, load_idx_pair,
    read_idx_images, read_idx_labels, shuffle, shuffle_order, validate_partition, Batches, Dataset,
    DatasetError, DirichletConfig, IdxError, IdxImages, IdxLimits, IdxSplits, PartitionError,
    SplitMix64, DIGITS_CLASSES, DIGITS_FEATURES, DIGITS_MAX_PIXEL, DIGITS_ROWS, IDX_CLASSES,
};
pub use roles::{
    AggregationRound, Aggregator, AggregatorError, AggregatorStats, Codec, CodecError,
    Contribution, DataError, DataSource, Encoded, Evaluation, Index, IndexError, Metric, Model,
    ModelError, NamedTensor, Neighbour, PeerSelector, PeerSelectorError,
};
pub use roles::{
    AggregatorComponent, CodecComponent, DataComponent, IndexComponent, ModelComponent,
    PeersComponent, AGGREGATOR_KIND, CODEC_KIND, DATA_KIND, INDEX_KIND, MODEL_KIND, PEERS_KIND,
};
pub use roles::{Budget, FedAvg, Identity, Int8, Krum, Median, TopK, TrimmedMean, F16};
pub use roles::{Cyclon, CyclonConfig, CyclonState, ExactKnn, Shuffle, StaticView};
pub use roles::{Mlp, Sgd, SoftmaxRegression};
pub use runtime::{
    NodeHandle, NodeInputError, NodeSpec, NodeSubscribeError, Runtime, RuntimeBuilder,
    RuntimeError, ShutdownReport, ShutdownTotals, SpawnNodeError, StopNodeError,
};

pub use nodeflow_actors as actors;
pub use nodeflow_engine as engine;

pub use nodeflow_actors::{
    ActorConfig, ActorError, ActorMetrics, ActorOutput, ActorReport, ActorStats, Clock,
    ManualClock, MessageAccount, NodeFactory, Router, RouterStats, SnapshotRequestError,
    SupervisionConfig, SystemClock,
};
pub use nodeflow_engine::sync::channel::Receiver;
pub use nodeflow_engine::{
    AppOutput, BuildError, BytesValue, Component, Composite, DeliverError, DispatchResult,
    EventKind, ExecId, ExecOrigin, F64Value, Graph, GraphBuilder, I64Value, LocalOpId, Node,
    NodeBuilder, NodeConfig, OpError, OpErrorKind, OpInputs, OpOutputs, PeerId, PeerIdValue,
    RuntimeResourceRef, SiteId, SlotValue, Step, Trigger, U64Value,
};

/// The workspace README's Rust examples (engine and runtime), compiled and
/// run as doctests of the crate users depend on.
#[doc = include_str!("../../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
