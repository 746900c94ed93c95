//! The roles against the reference FedAvg job (`runtime/data/fedavg_reference.json`, a plain float64 implementation): softmax regression trained by `Model::train_batch` in the reference's batch order and combined by `FedAvg` through an `AggregationRound` reproduce every round's test accuracy within 0.5 points and loss within 1 %, for `iid-10`, `iid-100` and `dirichlet-10`.
//!
//! This checks the roles in a plain loop; running the same job on Nodes is
//! the learning algorithms' work.
#![allow(clippy::unwrap_used)]

use nodeflow::{
    digits, shuffle_order, AggregationRound, Contribution, Dataset, FedAvg, Model, PeerId, Sgd,
    SoftmaxRegression,
};
use serde_json::Value;

fn job() -> Value {
    serde_json::from_str(include_str!("../data/fedavg_reference.json")).unwrap()
}

fn rows(v: &Value) -> Vec<usize> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as usize)
        .collect()
}

fn run(name: &str) {
    let job = job();
    let mut all = digits();
    all.scale_features(job["feature_scale"].as_f64().unwrap() as f32)
        .unwrap();
    let (train, test): (Dataset, Dataset) = all
        .train_test_split(&rows(&job["train_rows"]), &rows(&job["test_rows"]))
        .unwrap();
    let (test_x, test_y) = test.to_tensors();
    let clients: Vec<Dataset> = job["partitions"][name]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| train.subset(&rows(p)).unwrap())
        .collect();
    let lr = job["lr"].as_f64().unwrap() as f32;
    let batch = job["batch"].as_u64().unwrap() as usize;
    let reference = job["numpy_reference"][name].as_array().unwrap().clone();
    let mut global = SoftmaxRegression::new(64, 10, Sgd::new(lr).unwrap()).unwrap();
    let mut round = AggregationRound::new(Box::new(FedAvg));
    for expected in &reference {
        let r = expected["round"].as_u64().unwrap();
        if r > 0 {
            let flat = global.flat();
            for (c, data) in clients.iter().enumerate() {
                let mut local = SoftmaxRegression::new(64, 10, Sgd::new(lr).unwrap()).unwrap();
                local.load_flat(&flat).unwrap();
                let seed = (r << 40) | ((c as u64) << 16);
                let order = shuffle_order(data.len(), seed);
                for (x, y) in data.batches(&order, batch).unwrap() {
                    local.train_batch(&x, &y).unwrap();
                }
                round
                    .contribute(Contribution {
                        peer: PeerId::new(c as u64 + 1),
                        update: local.flat(),
                        weight: data.len() as f64,
                    })
                    .unwrap();
            }
            global.load_flat(&round.aggregate().unwrap()).unwrap();
        }
        let eval = global.evaluate(&test_x, &test_y).unwrap();
        let (want_acc, want_loss) = (
            expected["accuracy"].as_f64().unwrap(),
            expected["loss"].as_f64().unwrap(),
        );
        assert!(
            (f64::from(eval.accuracy) - want_acc).abs() <= 0.005,
            "{name} round {r}: accuracy {} vs reference {want_acc}",
            eval.accuracy
        );
        assert!(
            (f64::from(eval.loss) - want_loss).abs() <= 0.01 * want_loss,
            "{name} round {r}: loss {} vs reference {want_loss}",
            eval.loss
        );
    }
}

#[test]
fn iid_10_matches_the_reference_round_by_round() {
    run("iid-10");
}

#[test]
fn iid_100_matches_the_reference_round_by_round() {
    run("iid-100");
}

#[test]
fn dirichlet_10_matches_the_reference_round_by_round() {
    run("dirichlet-10");
}
