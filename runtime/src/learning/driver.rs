//! The host side of a learning run: waiting for a graph's answer on a Node's output stream, and reading scalars out of it.

use std::time::{Duration, Instant};

use nodeflow_actors::ActorOutput;
use nodeflow_engine::sync::channel::Receiver;
use nodeflow_engine::{ExecOrigin, SlotValue};

use crate::tensor::Tensor;

/// Why a learning run stopped early.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LearnError {
    /// The job's settings are inconsistent (the message says which and why).
    #[error("bad learning config: {0}")]
    Config(String),
    /// The runtime refused to start, spawn a Node or take an input.
    #[error("runtime: {0}")]
    Runtime(String),
    /// A Node did not answer within the patience given.
    #[error("no answer from {what} within {patience:?}")]
    NoAnswer {
        /// What was waited for.
        what: String,
        /// How long.
        patience: Duration,
    },
    /// A Node's output stream closed (the Node stopped for good).
    #[error("{0}: its output stream closed")]
    Closed(String),
}

/// What one invoked execution produced: its outputs by name and the names it could not produce.
#[derive(Debug, Default)]
pub struct Answer {
    /// Outputs by name.
    pub outputs: Vec<(String, Box<dyn SlotValue>)>,
    /// Declared outputs the execution did not produce (an op of it failed or wrote nothing).
    pub missing: Vec<String>,
}

impl Answer {
    /// Output `name` as a tensor.
    pub fn tensor(&self, name: &str) -> Option<&Tensor> {
        self.outputs
            .iter()
            .find(|(n, _)| n == name)
            .and_then(|(_, v)| v.downcast_ref::<Tensor>())
    }

    /// Output `name` as one f64 (an f32 or i64 scalar).
    pub fn scalar(&self, name: &str) -> Option<f64> {
        let t = self.tensor(name)?;
        if let Some(v) = t.to_f32_vec() {
            return v.first().map(|&x| f64::from(x));
        }
        t.to_i64_vec().and_then(|v| v.first().map(|&x| x as f64))
    }
}

/// Waits on `rx` for the execution started with `ticket` and returns what
/// it produced; other outputs on the stream are skipped.
pub fn await_ticket(
    rx: &Receiver<ActorOutput>,
    ticket: u64,
    patience: Duration,
    what: &str,
) -> Result<Answer, LearnError> {
    let until = Instant::now() + patience;
    loop {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(LearnError::NoAnswer {
                what: what.to_owned(),
                patience,
            });
        }
        match rx.recv_timeout(left) {
            Ok(ActorOutput::ExecFinished {
                origin: ExecOrigin::Ticket(t),
                outputs,
                missing,
                ..
            }) if t == ticket => return Ok(Answer { outputs, missing }),
            Ok(_) => {}
            Err(e) if e.is_timeout() => {}
            Err(_) => return Err(LearnError::Closed(what.to_owned())),
        }
    }
}

/// The inputs of a graph that takes one trigger named `go`.
pub(crate) fn go() -> Vec<(String, Box<dyn SlotValue>)> {
    vec![("go".to_owned(), Box::new(Tensor::scalar_i64(0)))]
}

/// Spawns every spec on `runtime` and subscribes to each Node's outputs.
pub(crate) fn spawn_subscribed(
    runtime: &crate::runtime::Runtime,
    specs: impl Iterator<Item = crate::runtime::NodeSpec>,
) -> Result<Vec<(crate::runtime::NodeHandle, Receiver<ActorOutput>)>, LearnError> {
    specs
        .map(|spec| {
            let node = runtime
                .spawn_node(spec)
                .map_err(|e| LearnError::Runtime(e.to_string()))?;
            let outputs = node
                .subscribe()
                .map_err(|e| LearnError::Runtime(e.to_string()))?;
            Ok((node, outputs))
        })
        .collect()
}

/// Row 0 of a serverless run (every Node starts from the same model: its
/// test evaluation) and that model's parameter count.
pub(crate) fn initial_row(
    model: &super::spec::ModelSpec,
    optimizer: &super::spec::OptimizerSpec,
    seed: u64,
    data: &super::fedavg::FederatedData,
    started: std::time::Instant,
) -> Result<(super::report::RoundReport, usize), LearnError> {
    let (tx, ty) = data.test.to_tensors();
    let built = model
        .build(data.features(), data.classes(), optimizer, seed)
        .map_err(|e| LearnError::Config(format!("model: {e}")))?;
    let initial = built
        .evaluate(&tx, &ty)
        .map_err(|e| LearnError::Config(format!("model: {e}")))?;
    let row = super::report::RoundReport {
        round: 0,
        accuracy: f64::from(initial.accuracy),
        loss: f64::from(initial.loss),
        seconds: started.elapsed().as_secs_f64(),
        bytes_sent: 0,
        contributors: data.clients.len() as u64,
        stragglers: 0,
    };
    Ok((row, built.flat().len()))
}
