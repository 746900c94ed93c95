//! Where a job's data comes from and how it is split: the embedded digits (with the reference job's split and partitions where they apply) or MNIST-format IDX files, cut IID or by Dirichlet(α) over the clients.

use nodeflow_engine::sync::Arc;
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use super::driver::LearnError;
use super::fedavg::FederatedData;
use super::reference::ReferenceJob;
use super::spec::SpecError;
use crate::data::{dirichlet_partition, iid_partition, load_idx_dir, Dataset, DirichletConfig};

/// How the training rows are split over the clients.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum PartitionSpec {
    /// Near-equal chunks of a seeded shuffle.
    Iid,
    /// Per-class proportions drawn from Dirichlet(α).
    Dirichlet(f64),
}

impl fmt::Display for PartitionSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Iid => f.write_str("iid"),
            Self::Dirichlet(a) => write!(f, "dirichlet:{a}"),
        }
    }
}

impl FromStr for PartitionSpec {
    type Err = SpecError;

    fn from_str(s: &str) -> Result<Self, SpecError> {
        if s == "iid" {
            return Ok(Self::Iid);
        }
        match s.strip_prefix("dirichlet:").map(str::parse::<f64>) {
            Some(Ok(a)) if a > 0.0 && a.is_finite() => Ok(Self::Dirichlet(a)),
            _ => Err(SpecError {
                what: "partition",
                given: s.to_owned(),
                why: "use `iid` or `dirichlet:ALPHA` with ALPHA > 0".into(),
            }),
        }
    }
}

/// Which data a job trains on.
#[derive(Clone, Debug, PartialEq)]
pub enum DataSpec {
    /// The embedded handwritten digits (1,797 images, 8×8).
    Digits,
    /// MNIST-format IDX files in a directory (`train-images-idx3-ubyte[.gz]`, ...).
    Idx(PathBuf),
}

impl fmt::Display for DataSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Digits => f.write_str("digits"),
            Self::Idx(dir) => write!(f, "idx:{}", dir.display()),
        }
    }
}

impl FromStr for DataSpec {
    type Err = SpecError;

    fn from_str(s: &str) -> Result<Self, SpecError> {
        if s == "digits" {
            return Ok(Self::Digits);
        }
        match s.strip_prefix("idx:") {
            Some(dir) if !dir.is_empty() => Ok(Self::Idx(PathBuf::from(dir))),
            _ => Err(SpecError {
                what: "data",
                given: s.to_owned(),
                why: "use `digits` or `idx:DIR`".into(),
            }),
        }
    }
}

/// The reference partition that matches `clients` and `partition`, if any:
/// `iid-10`, `iid-100`, or `dirichlet-10` (α = its 0.5).
fn reference_name(job: &ReferenceJob, clients: usize, partition: PartitionSpec) -> Option<String> {
    let name = match partition {
        PartitionSpec::Iid => format!("iid-{clients}"),
        PartitionSpec::Dirichlet(a) if a == job.dirichlet_alpha => format!("dirichlet-{clients}"),
        PartitionSpec::Dirichlet(_) => return None,
    };
    job.partitions.contains_key(&name).then_some(name)
}

fn config_error(e: impl fmt::Display) -> LearnError {
    LearnError::Config(e.to_string())
}

/// Splits `train` over `clients` as `partition` says, with `seed`.
pub fn partition_clients(
    train: &Dataset,
    clients: usize,
    partition: PartitionSpec,
    seed: u64,
) -> Result<Vec<Arc<Dataset>>, LearnError> {
    let parts = match partition {
        PartitionSpec::Iid => iid_partition(train.len(), clients, seed).map_err(config_error)?,
        PartitionSpec::Dirichlet(alpha) => dirichlet_partition(
            train,
            &DirichletConfig {
                min_size: 1,
                ..DirichletConfig::new(clients, alpha, seed)
            },
        )
        .map_err(config_error)?,
    };
    parts
        .iter()
        .map(|p| train.subset(p).map(Arc::new).map_err(config_error))
        .collect()
}

/// The data of a job with `clients` clients. On the embedded digits the
/// split is the reference job's (features scaled by 1/16), and 10 or 100
/// IID clients or 10 Dirichlet(0.5) clients get its partitions; any other
/// count is partitioned with `seed`. IDX data is scaled by 1/255 and split
/// into its own train and test files.
pub fn federated_data(
    data: &DataSpec,
    clients: usize,
    partition: PartitionSpec,
    seed: u64,
) -> Result<FederatedData, LearnError> {
    let (train, test) = match data {
        DataSpec::Digits => {
            let job = ReferenceJob::load()?;
            if let Some(name) = reference_name(&job, clients, partition) {
                return job.federated(&name);
            }
            job.split()?
        }
        DataSpec::Idx(dir) => {
            let splits = load_idx_dir(dir).map_err(config_error)?;
            let (mut train, mut test) = (splits.train, splits.test);
            train.scale_features(1.0 / 255.0).map_err(config_error)?;
            test.scale_features(1.0 / 255.0).map_err(config_error)?;
            (train, test)
        }
    };
    Ok(FederatedData {
        clients: partition_clients(&train, clients, partition, seed)?,
        test: Arc::new(test),
        partition: partition.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_and_print_back() {
        for s in ["iid", "dirichlet:0.5"] {
            assert_eq!(s.parse::<PartitionSpec>().unwrap().to_string(), s);
        }
        assert!("dirichlet:0".parse::<PartitionSpec>().is_err());
        assert!("shards".parse::<PartitionSpec>().is_err());
        assert_eq!("digits".parse::<DataSpec>().unwrap(), DataSpec::Digits);
        assert_eq!(
            "idx:/tmp/x".parse::<DataSpec>().unwrap(),
            DataSpec::Idx(PathBuf::from("/tmp/x"))
        );
        assert!("idx:".parse::<DataSpec>().is_err());
    }

    #[test]
    fn reference_partitions_are_used_where_they_exist_and_others_are_cut_with_the_seed() {
        let iid100 = federated_data(&DataSpec::Digits, 100, PartitionSpec::Iid, 9).unwrap();
        assert_eq!(iid100.partition, "reference:iid-100");
        let dir10 =
            federated_data(&DataSpec::Digits, 10, PartitionSpec::Dirichlet(0.5), 9).unwrap();
        assert_eq!(dir10.partition, "reference:dirichlet-10");
        let iid7 = federated_data(&DataSpec::Digits, 7, PartitionSpec::Iid, 9).unwrap();
        assert_eq!(iid7.partition, "iid");
        assert_eq!(iid7.clients.len(), 7);
        let rows: usize = iid7.clients.iter().map(|c| c.len()).sum();
        assert_eq!(rows, 1438);
        let again = federated_data(&DataSpec::Digits, 7, PartitionSpec::Iid, 9).unwrap();
        assert_eq!(again.clients[3].labels(), iid7.clients[3].labels());
        let d20 = federated_data(&DataSpec::Digits, 20, PartitionSpec::Dirichlet(0.3), 1).unwrap();
        assert_eq!(d20.clients.len(), 20);
        assert!(d20.clients.iter().all(|c| !c.is_empty()));
    }
}
