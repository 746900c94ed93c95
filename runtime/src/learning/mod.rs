//! Learning algorithms as graph builders: functions from a job's config to every Node's graphs, composed of role ops and wire ops, plus the drivers that spawn those Nodes on a [`crate::Runtime`] and report each round.
//!
//! | file | what |
//! |---|---|
//! | `spec.rs` | model, optimiser, aggregator and codec choices, parsed from short strings |
//! | `federation.rs` | [`FederationComponent`]: a server's rounds (sampling, dispatch, deadline, stragglers) |
//! | `fedavg.rs` | FedAvg: server and client graphs, [`FedAvgJob`] |
//! | `dpsgd.rs` | D-PSGD: [`MixComponent`], graphs, [`DpsgdJob`] |
//! | `topology.rs` | [`Topology`] and Metropolis–Hastings weights |
//! | `gossip.rs` | gossip learning: [`GossipComponent`], graphs, [`GossipJob`] |
//! | `byzantine.rs` | [`ByzantineComponent`]: garbage in place of an update |
//! | `chaos.rs` | [`ChaosComponent`]: a panic on demand (fault injection) |
//! | `driver.rs` | waiting for a graph's answer; [`LearnError`] |
//! | `prepare.rs` | [`DataSpec`], [`PartitionSpec`], [`federated_data`]: a job's data |
//! | `plain.rs` | [`plain_fedavg`] and [`centralized`]: the same math without a runtime |
//! | `reference.rs` | [`ReferenceJob`]: the embedded reference FedAvg job |
//! | `report.rs` | [`RunReport`] and [`RoundReport`] |

mod byzantine;
mod chaos;
mod dpsgd;
mod driver;
mod fedavg;
mod federation;
mod gossip;
mod plain;
mod prepare;
mod reference;
mod report;
mod spec;
mod topology;

pub use byzantine::{ByzantineComponent, BYZANTINE_KIND};
pub use chaos::{ChaosComponent, CHAOS_KIND};
pub use dpsgd::{
    dpsgd_graphs, dpsgd_peer, DpsgdConfig, DpsgdJob, MixComponent, DPSGD_RECEIVE, DPSGD_ROUND,
    MIX_KIND, SHARE_KIND,
};
pub use driver::{await_ticket, Answer, LearnError};
pub use fedavg::{
    client_graph, client_peer, server_graphs, FedAvgConfig, FedAvgJob, FedAvgRun, FederatedData,
    CLIENT_TRAIN, DISPATCH_KIND, SERVER, SERVER_DISPATCH, SERVER_EVALUATE, SERVER_ROUND,
    SERVER_TICK,
};
pub use federation::{
    FederationComponent, FederationConfig, FederationError, FederationStats, FEDERATION_KIND,
};
pub use gossip::{
    gossip_graphs, gossip_peer, GossipComponent, GossipConfig, GossipJob, GOSSIP_CYCLE,
    GOSSIP_EVALUATE, GOSSIP_KIND, GOSSIP_MERGE,
};
pub use plain::{centralized, plain_fedavg};
pub use prepare::{federated_data, partition_clients, DataSpec, PartitionSpec};
pub use reference::{ReferenceJob, ReferenceRound};
pub use report::{MessageTotals, RoundReport, RunReport};
pub use spec::{AggregatorSpec, CodecSpec, ModelSpec, OptimizerSpec, SpecError};
pub use topology::{metropolis_hastings, Topology, TopologyError};
