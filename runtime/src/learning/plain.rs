//! The same math without a runtime: FedAvg as a plain single-threaded loop (the floor `nodeflow-bench learn` measures Nodes against), and centralized training on the union of the clients' data (the `learn` example's baseline).
//!
//! [`plain_fedavg`] does exactly what the Nodes do, in one thread and in
//! client order: every client keeps its own model (so optimizer state
//! carries over between rounds as it does on a client Node), loads the
//! global parameters, trains with the reference batch-order seed, encodes
//! its update with its own codec, and the server decodes, aggregates and
//! adds it to the global model.

use std::time::Instant;

use crate::data::Dataset;
use crate::roles::components::train_epochs;
use crate::roles::{AggregationRound, Contribution, Model};
use crate::tensor::Tensor;

use super::driver::LearnError;
use super::fedavg::{client_peer, FedAvgConfig, FederatedData};
use super::report::{MessageTotals, RoundReport, RunReport};

fn model_error(e: impl std::fmt::Display) -> LearnError {
    LearnError::Config(e.to_string())
}

fn evaluate(model: &dyn Model, test: &(Tensor, Tensor)) -> Result<(f64, f64), LearnError> {
    let e = model.evaluate(&test.0, &test.1).map_err(model_error)?;
    Ok((f64::from(e.accuracy), f64::from(e.loss)))
}

fn row(
    round: u64,
    (accuracy, loss): (f64, f64),
    started: Instant,
    bytes: u64,
    contributors: u64,
) -> RoundReport {
    RoundReport {
        round,
        accuracy,
        loss,
        seconds: started.elapsed().as_secs_f64(),
        bytes_sent: bytes,
        contributors,
        stragglers: 0,
    }
}

fn report(
    algo: &str,
    config: &FedAvgConfig,
    data: &FederatedData,
    rounds: Vec<RoundReport>,
    started: Instant,
) -> RunReport {
    RunReport {
        algo: algo.into(),
        nodes: data.clients.len(),
        partition: data.partition.clone(),
        model: config.model.to_string(),
        aggregator: config.aggregator.to_string(),
        codec: config.codec.to_string(),
        final_accuracy: rounds.last().map_or(f64::NAN, |r| r.accuracy),
        bytes_sent: rounds.iter().map(|r| r.bytes_sent).sum(),
        rounds,
        wall_seconds: started.elapsed().as_secs_f64(),
        messages: MessageTotals::default(),
        restarts: 0,
    }
}

/// FedAvg of `config` over `data` in one thread, every client every round
/// (`fraction` and `byzantine` are not modelled: this is the clean floor).
pub fn plain_fedavg(
    config: &FedAvgConfig,
    data: &FederatedData,
    progress: &mut dyn FnMut(&RoundReport),
) -> Result<RunReport, LearnError> {
    let started = Instant::now();
    let (features, classes) = (data.features(), data.classes());
    let build = || {
        config
            .model
            .build(features, classes, &config.optimizer, config.seed)
            .map_err(model_error)
    };
    let mut global = build()?;
    let mut clients = data
        .clients
        .iter()
        .map(|d| {
            let (x, y) = d.to_tensors();
            let codec = config.codec.build().map_err(model_error)?;
            Ok((build()?, codec, x, y))
        })
        .collect::<Result<Vec<_>, LearnError>>()?;
    let decoder = config.codec.build().map_err(model_error)?;
    let mut round = AggregationRound::new(config.aggregator.build().map_err(model_error)?);
    let test = data.test.to_tensors();
    let mut rows = vec![row(0, evaluate(global.as_ref(), &test)?, started, 0, 0)];
    progress(&rows[0]);
    for r in 1..=config.rounds as u64 {
        let flat = global.flat();
        let mut bytes = 0u64;
        for (c, (model, codec, x, y)) in clients.iter_mut().enumerate() {
            model.load_flat(&flat).map_err(model_error)?;
            let seed = (r << 40) | ((c as u64) << 16);
            train_epochs(model.as_mut(), x, y, seed, config.epochs, config.batch)
                .map_err(model_error)?;
            let delta = sub(&model.flat(), &flat)?;
            let encoded = codec.encode(&delta).map_err(model_error)?;
            bytes += flat.byte_len() as u64 + 8 + encoded.wire_bytes() as u64;
            round
                .contribute(Contribution {
                    peer: client_peer(c),
                    update: decoder.decode(&encoded).map_err(model_error)?,
                    weight: x.shape()[0] as f64,
                })
                .map_err(model_error)?;
        }
        let combined = round.aggregate().map_err(model_error)?;
        global
            .load_flat(&add(&flat, &combined)?)
            .map_err(model_error)?;
        let next = row(
            r,
            evaluate(global.as_ref(), &test)?,
            started,
            bytes,
            clients.len() as u64,
        );
        progress(&next);
        rows.push(next);
    }
    Ok(report("plain-fedavg", config, data, rows, started))
}

/// One model trained on every client's rows together, `config.epochs`
/// epochs per round, evaluated after each round.
pub fn centralized(
    config: &FedAvgConfig,
    data: &FederatedData,
    progress: &mut dyn FnMut(&RoundReport),
) -> Result<RunReport, LearnError> {
    let started = Instant::now();
    let all = union(&data.clients)?;
    let (x, y) = all.to_tensors();
    let mut model = config
        .model
        .build(
            data.features(),
            data.classes(),
            &config.optimizer,
            config.seed,
        )
        .map_err(model_error)?;
    let test = data.test.to_tensors();
    let mut rows = vec![row(0, evaluate(model.as_ref(), &test)?, started, 0, 0)];
    progress(&rows[0]);
    for r in 1..=config.rounds as u64 {
        train_epochs(model.as_mut(), &x, &y, r << 40, config.epochs, config.batch)
            .map_err(model_error)?;
        let next = row(r, evaluate(model.as_ref(), &test)?, started, 0, 1);
        progress(&next);
        rows.push(next);
    }
    let mut report = report("centralized", config, data, rows, started);
    report.nodes = 1;
    report.aggregator = "-".into();
    report.codec = "-".into();
    Ok(report)
}

fn union(parts: &[nodeflow_engine::sync::Arc<Dataset>]) -> Result<Dataset, LearnError> {
    let mut features = Vec::new();
    let mut labels = Vec::new();
    let mut dim = 0;
    let mut classes = 0;
    for p in parts {
        features.extend_from_slice(p.features());
        labels.extend_from_slice(p.labels());
        dim = p.feature_dim();
        classes = classes.max(p.classes());
    }
    Dataset::new(features, labels, dim, classes).map_err(model_error)
}

fn elementwise(a: &Tensor, b: &Tensor, f: impl Fn(f32, f32) -> f32) -> Result<Tensor, LearnError> {
    let (Some(x), Some(y)) = (a.to_f32_vec(), b.to_f32_vec()) else {
        return Err(LearnError::Config("parameters must be f32".into()));
    };
    if x.len() != y.len() {
        return Err(LearnError::Config(format!(
            "{} parameters against {}",
            x.len(),
            y.len()
        )));
    }
    let out: Vec<f32> = x.iter().zip(&y).map(|(&p, &q)| f(p, q)).collect();
    Tensor::from_f32(vec![out.len()], out).map_err(model_error)
}

fn sub(a: &Tensor, b: &Tensor) -> Result<Tensor, LearnError> {
    elementwise(a, b, |p, q| p - q)
}

fn add(a: &Tensor, b: &Tensor) -> Result<Tensor, LearnError> {
    elementwise(a, b, |p, q| p + q)
}
