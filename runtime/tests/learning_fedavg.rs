//! FedAvg on Nodes: a server Node and K client Nodes, wired only by the generated graphs, reproduce the reference job (`iid-10`, `iid-100`, `dirichlet-10`) round by round within 0.5 points of accuracy and 1 % of loss, and account for every message.
#![allow(clippy::unwrap_used)]

use nodeflow::learning::{FedAvgConfig, FedAvgJob, ReferenceJob};

fn conform(name: &str) {
    let job = ReferenceJob::load().unwrap();
    let data = job.federated(name).unwrap();
    let k = data.clients.len();
    let fedavg = FedAvgJob::new(FedAvgConfig::default(), data).unwrap();
    let mut rows = Vec::new();
    let report = fedavg.run(&mut |row| rows.push(row.clone())).unwrap();
    let expected = job.expected(name).unwrap();
    assert_eq!(report.rounds.len(), expected.len());
    for (got, want) in report.rounds.iter().zip(expected) {
        assert_eq!(got.round, want.round);
        assert!(
            (got.accuracy - want.accuracy).abs() <= 0.005,
            "{name} round {}: accuracy {} vs reference {}",
            got.round,
            got.accuracy,
            want.accuracy
        );
        assert!(
            (got.loss - want.loss).abs() <= 0.01 * want.loss,
            "{name} round {}: loss {} vs reference {}",
            got.round,
            got.loss,
            want.loss
        );
        if got.round > 0 {
            assert_eq!(got.contributors, k as u64, "round {}", got.round);
            assert_eq!(got.stragglers, 0);
            assert!(got.bytes_sent > 0);
        }
    }
    assert_eq!(rows, report.rounds, "progress saw every round");
    assert!(report.messages.balanced(), "{:?}", report.messages);
    assert!(report.messages.accepted >= (2 * k * job.rounds) as u64);
    assert_eq!(report.restarts, 0);
}

#[test]
fn iid_10_on_nodes_matches_the_reference_every_round() {
    conform("iid-10");
}

#[test]
fn iid_100_on_nodes_matches_the_reference_every_round() {
    conform("iid-100");
}

#[test]
fn dirichlet_10_on_nodes_matches_the_reference_every_round() {
    conform("dirichlet-10");
}
