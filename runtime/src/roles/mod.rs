//! The roles of decentralized learning: the contracts components implement so graphs can train, combine, move and look up models.
//!
//! A role is a trait ([`Model`], [`Aggregator`], [`Codec`], [`PeerSelector`],
//! [`Index`], [`DataSource`]; the backend role is [`crate::CpuBackend`]) plus
//! implementations beside it, one per file. The traits are plain Rust: a
//! role value can be used directly, in tests or a plain loop. To reach a
//! role from a graph it is bound at a slot through its component adapter
//! (`roles/components/`), which exposes each method as an op (`Train`,
//! `Evaluate`, `Parameters`, `Load`, `Contribute`, `Aggregate`, ...),
//! declares the roles it needs (a model component needs a backend) so the
//! Node's install checks the binding, runs heavy methods on the compute
//! pool and captures the role's state in the Node's snapshot.
//!
//! Values between roles are [`crate::Tensor`]s, moved, never serialized in
//! process. Every role has its own typed error.

mod aggregator;
mod aggregators;
mod codec;
mod codecs;
pub(crate) mod components;
mod data_source;
mod index;
mod indexes;
mod model;
mod models;
mod peer_selector;
mod peer_selectors;

pub use aggregator::{
    AggregationRound, Aggregator, AggregatorError, AggregatorStats, Contribution,
};
pub use aggregators::{FedAvg, Krum, Median, TrimmedMean};
pub use codec::{Codec, CodecError, Encoded};
pub use codecs::{Budget, Identity, Int8, TopK, F16};
pub use components::{
    AggregatorComponent, CodecComponent, DataComponent, IndexComponent, ModelComponent,
    PeersComponent, AGGREGATOR_KIND, CODEC_KIND, DATA_KIND, INDEX_KIND, MODEL_KIND, PEERS_KIND,
};
pub use data_source::{DataError, DataSource};
pub use index::{Index, IndexError, Metric, Neighbour};
pub use indexes::ExactKnn;
pub use model::{Evaluation, Model, ModelError, NamedTensor};
pub use models::{Mlp, Sgd, SoftmaxRegression};
pub use peer_selector::{PeerSelector, PeerSelectorError};
pub use peer_selectors::{Cyclon, CyclonConfig, CyclonState, Shuffle, StaticView};
