//! Gossip learning on Nodes: 100 Nodes on the reference iid-100 partition, each training 20 times (one local epoch each) and pushing to 8 random peers per cycle (the default fan-out), end within 2 points of FedAvg's final accuracy on the same data and epochs, with every message accounted for.
#![allow(clippy::unwrap_used)]

use nodeflow::learning::{GossipConfig, GossipJob, ReferenceJob};

#[test]
fn gossip_over_100_nodes_comes_within_two_points_of_fedavg() {
    let job = ReferenceJob::load().unwrap();
    let data = job.federated("iid-100").unwrap();
    let fedavg_final = job.expected("iid-100").unwrap().last().unwrap().accuracy;
    let fanout = std::env::var("FANOUT")
        .ok()
        .and_then(|f| f.parse().ok())
        .unwrap_or(GossipConfig::default().fanout);
    let config = GossipConfig {
        fanout,
        ..GossipConfig::default()
    };
    let gossip = GossipJob::new(config, data).unwrap();
    let mut rows = Vec::new();
    let report = gossip.run(&mut |r| rows.push(r.clone())).unwrap();
    eprintln!(
        "gossip final accuracy {:.4} (FedAvg reference {fedavg_final:.4}) in {:.2} s, {} rows, {:?}",
        report.final_accuracy,
        report.wall_seconds,
        report.rounds.len(),
        report.messages
    );
    assert_eq!(report.rounds.first().unwrap().round, 0);
    assert_eq!(report.rounds.last().unwrap().round, 20);
    assert!(
        report.final_accuracy >= fedavg_final - 0.02,
        "gossip {} vs FedAvg {fedavg_final}",
        report.final_accuracy
    );
    assert!(report.rounds.windows(2).all(|w| w[0].round < w[1].round));
    assert!(report.messages.balanced(), "{:?}", report.messages);
    assert!(
        report.messages.accepted >= 100 * 20,
        "every push was a message"
    );
}

#[test]
fn bad_gossip_configs_are_refused() {
    let job = ReferenceJob::load().unwrap();
    let data = job.federated("iid-10").unwrap();
    let bad = GossipConfig {
        fanout: 10,
        ..GossipConfig::default()
    };
    assert!(GossipJob::new(bad, data.clone()).is_err());
    let bad = GossipConfig {
        epochs: 0,
        ..GossipConfig::default()
    };
    assert!(GossipJob::new(bad, data).is_err());
}
