//! D-PSGD on Nodes: 100 Nodes on the reference iid-100 partition average with their neighbours on a random 8-regular graph (Metropolis–Hastings weights) and end close to FedAvg's accuracy; every neighbour is heard every round and every message is accounted for. A ring of 10 learns too.
#![allow(clippy::unwrap_used)]

use nodeflow::learning::{DpsgdConfig, DpsgdJob, ReferenceJob, Topology};

#[test]
fn dpsgd_over_100_nodes_on_an_8_regular_graph_comes_close_to_fedavg() {
    let job = ReferenceJob::load().unwrap();
    let data = job.federated("iid-100").unwrap();
    let fedavg_final = job.expected("iid-100").unwrap().last().unwrap().accuracy;
    let dpsgd = DpsgdJob::new(DpsgdConfig::default(), data).unwrap();
    assert!(dpsgd.neighbours().iter().all(|n| n.len() == 8));
    let report = dpsgd.run(&mut |_| {}).unwrap();
    eprintln!(
        "dpsgd final accuracy {:.4} (FedAvg reference {fedavg_final:.4}) in {:.2} s, {:?}",
        report.final_accuracy, report.wall_seconds, report.messages
    );
    assert_eq!(report.rounds.len(), 21);
    assert!(
        report.rounds[1..].iter().all(|r| r.stragglers == 0),
        "no neighbour missed"
    );
    assert!(
        report.final_accuracy >= fedavg_final - 0.03,
        "D-PSGD {} vs FedAvg {fedavg_final}",
        report.final_accuracy
    );
    assert!(report.rounds[20].accuracy > report.rounds[1].accuracy);
    assert!(report.messages.balanced(), "{:?}", report.messages);
}

#[test]
fn a_ring_of_10_learns() {
    let job = ReferenceJob::load().unwrap();
    let data = job.federated("iid-10").unwrap();
    let config = DpsgdConfig {
        topology: Topology::Ring,
        rounds: 10,
        ..DpsgdConfig::default()
    };
    let report = DpsgdJob::new(config, data)
        .unwrap()
        .run(&mut |_| {})
        .unwrap();
    eprintln!("ring-10 final accuracy {:.4}", report.final_accuracy);
    assert!(report.final_accuracy > 0.85, "{}", report.final_accuracy);
    assert!(report.messages.balanced());
}
