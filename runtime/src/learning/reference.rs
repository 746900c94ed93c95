//! The reference FedAvg job (`runtime/data/fedavg_reference.json`, embedded): its settings, the digits train/test split, its client partitions and a float64 implementation's loss and accuracy after every round — what nodeflow's FedAvg is checked against, number by number.

use nodeflow_engine::sync::Arc;

use serde::Deserialize;

use super::driver::LearnError;
use super::fedavg::FederatedData;
use crate::data::{digits, Dataset};

const JOB: &str = include_str!("../../data/fedavg_reference.json");

/// One round of the reference implementation.
#[derive(Clone, Copy, Debug, PartialEq, Deserialize)]
pub struct ReferenceRound {
    /// The round (0: the zero model).
    pub round: u64,
    /// Mean test cross-entropy.
    pub loss: f64,
    /// Test accuracy in `[0, 1]`.
    pub accuracy: f64,
}

/// The reference job.
#[derive(Clone, Debug, Deserialize)]
pub struct ReferenceJob {
    /// Seed of the job.
    pub seed: u64,
    /// Learning rate.
    pub lr: f64,
    /// Mini-batch size.
    pub batch: usize,
    /// Local epochs per round.
    pub epochs: usize,
    /// Rounds.
    pub rounds: usize,
    /// The Dirichlet α of `dirichlet-10`.
    pub dirichlet_alpha: f64,
    /// Factor applied to the raw 0–16 pixels.
    pub feature_scale: f64,
    /// Rows of the digits data in the train set, in order.
    pub train_rows: Vec<usize>,
    /// Rows in the test set, in order.
    pub test_rows: Vec<usize>,
    /// Partitions by name: per client, positions into the train set.
    pub partitions: std::collections::BTreeMap<String, Vec<Vec<usize>>>,
    /// The float64 implementation's rounds, by partition name.
    pub numpy_reference: std::collections::BTreeMap<String, Vec<ReferenceRound>>,
}

impl ReferenceJob {
    /// The embedded job.
    pub fn load() -> Result<Self, LearnError> {
        serde_json::from_str(JOB).map_err(|e| LearnError::Config(format!("reference job: {e}")))
    }

    /// The names of its partitions (`dirichlet-10`, `iid-10`, `iid-100`).
    pub fn partition_names(&self) -> Vec<&str> {
        self.partitions.keys().map(String::as_str).collect()
    }

    /// The digits data scaled as the job scales it, split into its train and test sets.
    pub fn split(&self) -> Result<(Dataset, Dataset), LearnError> {
        let mut all = digits();
        all.scale_features(self.feature_scale as f32)
            .map_err(|e| LearnError::Config(e.to_string()))?;
        all.train_test_split(&self.train_rows, &self.test_rows)
            .map_err(|e| LearnError::Config(e.to_string()))
    }

    /// The clients' data of partition `name` and the test set.
    pub fn federated(&self, name: &str) -> Result<FederatedData, LearnError> {
        let parts = self.partitions.get(name).ok_or_else(|| {
            LearnError::Config(format!("the reference job has no partition `{name}`"))
        })?;
        let (train, test) = self.split()?;
        let clients = parts
            .iter()
            .map(|p| train.subset(p).map(Arc::new))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| LearnError::Config(e.to_string()))?;
        Ok(FederatedData {
            clients,
            test: Arc::new(test),
            partition: format!("reference:{name}"),
        })
    }

    /// The float64 implementation's rounds for partition `name`.
    pub fn expected(&self, name: &str) -> Option<&[ReferenceRound]> {
        self.numpy_reference.get(name).map(Vec::as_slice)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_job_has_its_three_partitions_and_21_rounds_each() {
        let job = ReferenceJob::load().unwrap();
        assert_eq!(job.partition_names(), ["dirichlet-10", "iid-10", "iid-100"]);
        for name in job.partition_names() {
            assert_eq!(job.expected(name).unwrap().len(), job.rounds + 1);
        }
        let data = job.federated("iid-100").unwrap();
        assert_eq!(data.clients.len(), 100);
        let rows: usize = data.clients.iter().map(|c| c.len()).sum();
        assert_eq!(rows, job.train_rows.len());
        assert_eq!(data.test.len(), job.test_rows.len());
        assert!(job.federated("iid-7").is_err());
    }
}
