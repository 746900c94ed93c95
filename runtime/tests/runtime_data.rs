//! The data layer end to end: the reference job's shuffle vectors and row lists, the embedded digits, Dataset selection and batching, and IID / Dirichlet partitions.
// Test helpers unwrap: a failure there is a broken fixture, reported by the panic.
#![allow(clippy::unwrap_used)]

use nodeflow::{
    digits, dirichlet_partition, iid_partition, shuffle_order, validate_partition, DType, Dataset,
    DatasetError, DirichletConfig, PartitionError, SplitMix64, Tensor, DIGITS_CLASSES,
    DIGITS_FEATURES, DIGITS_ROWS, MAX_ELEMENTS,
};
use serde_json::Value;

/// The reference FedAvg job (`runtime/data/fedavg_reference.json`, a copy of the shared reference `job.json`).
fn job() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/data/fedavg_reference.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn positions(v: &Value) -> Vec<usize> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as usize)
        .collect()
}

/// The digits train and test sets of the reference job, pixels scaled by 1/16.
fn reference_split() -> (Dataset, Dataset) {
    let job = job();
    let mut all = digits();
    all.scale_features(job["feature_scale"].as_f64().unwrap() as f32)
        .unwrap();
    all.train_test_split(
        &positions(&job["train_rows"]),
        &positions(&job["test_rows"]),
    )
    .unwrap()
}

/// Mean over non-empty clients of the entropy (nats) of the client's label histogram.
fn mean_label_entropy(data: &Dataset, parts: &[Vec<usize>]) -> f64 {
    let mut total = 0.0;
    let mut clients = 0;
    for part in parts.iter().filter(|p| !p.is_empty()) {
        let counts = data.subset(part).unwrap().label_counts();
        let n = part.len() as f64;
        total -= counts
            .iter()
            .filter(|&&c| c > 0)
            .map(|&c| (c as f64 / n) * (c as f64 / n).ln())
            .sum::<f64>();
        clients += 1;
    }
    total / clients as f64
}

// ---- shuffles ------------------------------------------------------------

#[test]
fn shuffle_order_reproduces_every_reference_vector() {
    let job = job();
    let vectors = job["shuffle_test_vectors"].as_array().unwrap();
    assert!(!vectors.is_empty());
    for v in vectors {
        let n = v["n"].as_u64().unwrap() as usize;
        let seed = v["seed"].as_u64().unwrap();
        assert_eq!(
            shuffle_order(n, seed),
            positions(&v["order"]),
            "n {n} seed {seed}"
        );
    }
}

#[test]
fn splitmix_state_advances_by_the_golden_gamma() {
    let mut rng = SplitMix64::new(0);
    let first = rng.next_u64();
    assert_eq!(rng.state(), SplitMix64::GAMMA);
    assert_ne!(first, rng.next_u64());
}

// ---- the embedded digits -------------------------------------------------

#[test]
fn digits_has_1797_rows_of_64_pixels_and_the_known_label_histogram() {
    let d = digits();
    assert_eq!((d.len(), d.feature_dim(), d.classes()), (1797, 64, 10));
    assert_eq!(
        (DIGITS_ROWS, DIGITS_FEATURES, DIGITS_CLASSES),
        (1797, 64, 10)
    );
    // Counted from digits.csv.
    assert_eq!(
        d.label_counts(),
        vec![178, 182, 177, 183, 181, 182, 181, 179, 174, 180]
    );
    assert!(d.features().iter().all(|&p| (0.0..=16.0).contains(&p)));
    assert!(d.features().contains(&16.0), "16 must survive the packing");
}

#[test]
fn digits_rows_equal_the_csv() {
    // Rows 0, 1000 and 1796 of digits.csv (label, then p0..p63).
    let first: [u8; 64] = [
        0, 0, 5, 13, 9, 1, 0, 0, 0, 0, 13, 15, 10, 15, 5, 0, 0, 3, 15, 2, 0, 11, 8, 0, 0, 4, 12, 0,
        0, 8, 8, 0, 0, 5, 8, 0, 0, 9, 8, 0, 0, 4, 11, 0, 1, 12, 7, 0, 0, 2, 14, 5, 10, 12, 0, 0, 0,
        0, 6, 13, 10, 0, 0, 0,
    ];
    let middle: [u8; 64] = [
        0, 0, 1, 14, 2, 0, 0, 0, 0, 0, 0, 16, 5, 0, 0, 0, 0, 0, 0, 14, 10, 0, 0, 0, 0, 0, 0, 11,
        16, 1, 0, 0, 0, 0, 0, 3, 14, 6, 0, 0, 0, 0, 0, 0, 8, 12, 0, 0, 0, 0, 10, 14, 13, 16, 8, 3,
        0, 0, 2, 11, 12, 15, 16, 15,
    ];
    let last: [u8; 64] = [
        0, 0, 10, 14, 8, 1, 0, 0, 0, 2, 16, 14, 6, 1, 0, 0, 0, 0, 15, 15, 8, 15, 0, 0, 0, 0, 5, 16,
        16, 10, 0, 0, 0, 0, 12, 15, 15, 12, 0, 0, 0, 4, 16, 6, 4, 16, 6, 0, 0, 8, 16, 10, 8, 16, 8,
        0, 0, 1, 8, 12, 14, 12, 1, 0,
    ];
    let d = digits();
    for (row, label, pixels) in [(0, 0, first), (1000, 1, middle), (1796, 8, last)] {
        let (x, y) = d.row(row).unwrap();
        let want: Vec<f32> = pixels.iter().map(|&p| f32::from(p)).collect();
        assert_eq!((x, y), (&want[..], label), "row {row}");
    }
    assert!(d.row(1797).is_none());
}

#[test]
fn the_reference_split_has_its_sizes_and_covers_every_row_once() {
    let job = job();
    let train_rows = positions(&job["train_rows"]);
    let test_rows = positions(&job["test_rows"]);
    let mut sorted = [train_rows.clone(), test_rows.clone()];
    sorted.iter_mut().for_each(|r| r.sort_unstable());
    validate_partition(&sorted, DIGITS_ROWS).unwrap();

    let (train, test) = reference_split();
    assert_eq!((train.len(), test.len()), (1438, 359));
    let all = digits();
    let (x, y) = train.row(0).unwrap();
    let (raw, label) = all.row(train_rows[0]).unwrap();
    assert_eq!(y, label);
    let scaled: Vec<f32> = raw.iter().map(|p| p * 0.0625).collect();
    assert_eq!(x, &scaled[..]);
    assert!(train.features().iter().all(|&p| (0.0..=1.0).contains(&p)));
}

#[test]
fn the_reference_partitions_are_partitions_of_the_train_set() {
    let job = job();
    for (run, parts) in job["partitions"].as_object().unwrap() {
        let parts: Vec<Vec<usize>> = parts.as_array().unwrap().iter().map(positions).collect();
        validate_partition(&parts, 1438).unwrap_or_else(|e| panic!("{run}: {e}"));
    }
}

// ---- Dataset -------------------------------------------------------------

fn toy() -> Dataset {
    // Row i has features [i, 10 i] and label i mod 3.
    let x = (0..7).flat_map(|i| [i as f32, 10.0 * i as f32]).collect();
    let y = (0..7).map(|i| i % 3).collect();
    Dataset::new(x, y, 2, 3).unwrap()
}

#[test]
fn construction_refuses_every_inconsistency_with_a_typed_error() {
    assert_eq!(
        Dataset::new(vec![0.0; 6], vec![0; 3], 0, 2),
        Err(DatasetError::ZeroFeatureDim)
    );
    assert_eq!(
        Dataset::new(vec![0.0; 6], vec![0; 3], 2, 0),
        Err(DatasetError::NoClasses)
    );
    assert_eq!(
        Dataset::new(vec![0.0; 7], vec![0; 3], 2, 2),
        Err(DatasetError::RaggedFeatures {
            len: 7,
            feature_dim: 2
        })
    );
    assert_eq!(
        Dataset::new(vec![0.0; 6], vec![0; 4], 2, 2),
        Err(DatasetError::LabelCount { rows: 3, labels: 4 })
    );
    for label in [2, -1, i64::MIN] {
        assert_eq!(
            Dataset::new(vec![0.0; 6], vec![0, label, 1], 2, 2),
            Err(DatasetError::LabelOutOfRange {
                row: 1,
                label,
                classes: 2
            })
        );
    }
    let empty = Dataset::new(Vec::new(), Vec::new(), 4, 1).unwrap();
    assert!(empty.is_empty());
    assert_eq!(empty.label_counts(), vec![0]);
}

#[test]
fn from_tensors_takes_f32_rows_and_i64_labels_and_round_trips() {
    let d = toy();
    let (x, y) = d.to_tensors();
    assert_eq!((x.dtype(), x.shape()), (DType::F32, &[7usize, 2][..]));
    assert_eq!((y.dtype(), y.shape()), (DType::I64, &[7usize][..]));
    assert_eq!(Dataset::from_tensors(&x, &y, 3).unwrap(), d);

    let flat = Tensor::from_f32(vec![14], d.features().to_vec()).unwrap();
    assert!(matches!(
        Dataset::from_tensors(&flat, &y, 3),
        Err(DatasetError::TensorShape {
            which: "features",
            ..
        })
    ));
    let float_labels = Tensor::from_f32(vec![7], vec![0.0; 7]).unwrap();
    assert!(matches!(
        Dataset::from_tensors(&x, &float_labels, 3),
        Err(DatasetError::TensorShape {
            which: "labels",
            ..
        })
    ));
    assert!(matches!(
        Dataset::from_tensors(&x, &y, 2),
        Err(DatasetError::LabelOutOfRange { row: 2, .. })
    ));
}

#[test]
fn subset_and_split_copy_the_rows_in_the_order_given() {
    let d = toy();
    let s = d.subset(&[5, 0, 5]).unwrap();
    assert_eq!(s.features(), &[5.0, 50.0, 0.0, 0.0, 5.0, 50.0]);
    assert_eq!(s.labels(), &[2, 0, 2]);
    assert_eq!((s.feature_dim(), s.classes()), (2, 3));
    assert_eq!(
        d.subset(&[1, 7]),
        Err(DatasetError::PositionOutOfRange {
            position: 7,
            len: 7
        })
    );
    let (train, test) = d.train_test_split(&[6, 2, 4], &[1]).unwrap();
    assert_eq!(train.labels(), &[0, 2, 1]);
    assert_eq!(test.features(), &[1.0, 10.0]);
    assert!(d.train_test_split(&[0], &[9]).is_err());
}

#[test]
fn a_selection_past_the_tensor_cap_is_refused() {
    let d = Dataset::new(vec![0.0; 1 << 10], vec![0; 1], 1 << 10, 1).unwrap();
    let repeated = vec![0usize; MAX_ELEMENTS / (1 << 10) + 1];
    assert!(matches!(
        d.subset(&repeated),
        Err(DatasetError::TooLarge { .. })
    ));
    assert!(matches!(
        d.batches(&repeated, usize::MAX),
        Err(DatasetError::TooLarge { .. })
    ));
}

#[test]
fn scaling_multiplies_every_feature_and_refuses_non_finite_factors() {
    let mut d = toy();
    d.scale_features(0.5).unwrap();
    assert_eq!(d.row(3).unwrap().0, &[1.5, 15.0]);
    for factor in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
        assert!(matches!(
            d.scale_features(factor),
            Err(DatasetError::NonFiniteScale { .. })
        ));
    }
    assert_eq!(
        d.row(3).unwrap().0,
        &[1.5, 15.0],
        "a refused scale changes nothing"
    );
}

#[test]
fn batches_follow_the_order_in_chunks_with_a_smaller_last() {
    let d = toy();
    let order = [6, 1, 3, 0, 2];
    let batches: Vec<(Tensor, Tensor)> = d.batches(&order, 2).unwrap().collect();
    assert_eq!(batches.len(), 3);
    let shapes: Vec<&[usize]> = batches.iter().map(|(x, _)| x.shape()).collect();
    assert_eq!(shapes, vec![&[2, 2][..], &[2, 2], &[1, 2]]);
    assert_eq!(
        batches[0].0.to_f32_vec().unwrap(),
        vec![6.0, 60.0, 1.0, 10.0]
    );
    assert_eq!(batches[0].1.to_i64_vec().unwrap(), vec![0, 1]);
    assert_eq!(batches[2].0.to_f32_vec().unwrap(), vec![2.0, 20.0]);
    assert_eq!(batches[2].1.shape(), &[1]);
    assert_eq!(d.batches(&order, 10).unwrap().len(), 1);
    assert_eq!(d.batches(&[], 3).unwrap().count(), 0);
    assert_eq!(d.batches(&order, 0).err(), Some(DatasetError::ZeroBatch));
    assert_eq!(
        d.batches(&[0, 8], 1).err(),
        Some(DatasetError::PositionOutOfRange {
            position: 8,
            len: 7
        })
    );
}

#[test]
fn the_reference_batch_rule_visits_every_client_row_once_per_epoch() {
    // Round 1, client 3, epoch 0 of the iid-10 run: 144 rows in batches of 10.
    let (train, _) = reference_split();
    let part = positions(&job()["partitions"]["iid-10"][3]);
    let client = train.subset(&part).unwrap();
    let order = shuffle_order(client.len(), (1 << 40) | (3 << 16));
    let sizes: Vec<usize> = client
        .batches(&order, 10)
        .unwrap()
        .map(|(x, y)| {
            assert_eq!(x.shape()[1], 64);
            y.len()
        })
        .collect();
    assert_eq!(sizes.len(), 15);
    assert_eq!(sizes.iter().sum::<usize>(), 144);
    assert_eq!(sizes[14], 4);
}

// ---- partitions ----------------------------------------------------------

#[test]
fn iid_assigns_every_row_once_in_near_equal_ascending_chunks() {
    for (n, k) in [(1438, 10), (1438, 100), (10, 3), (5, 5), (1, 1)] {
        let parts = iid_partition(n, k, 0).unwrap();
        assert_eq!(parts.len(), k);
        validate_partition(&parts, n).unwrap();
        let sizes: Vec<usize> = parts.iter().map(Vec::len).collect();
        let (min, max) = (sizes.iter().min().unwrap(), sizes.iter().max().unwrap());
        assert!(max - min <= 1, "{n} rows over {k}: {sizes:?}");
        assert!(
            sizes.windows(2).all(|w| w[0] >= w[1]),
            "larger chunks first"
        );
    }
    // The reference job's iid sizes: 8 × 144 then 2 × 143.
    let sizes: Vec<usize> = iid_partition(1438, 10, 7)
        .unwrap()
        .iter()
        .map(Vec::len)
        .collect();
    assert_eq!(sizes, [vec![144; 8], vec![143; 2]].concat());
    assert_eq!(
        iid_partition(100, 4, 1).unwrap(),
        iid_partition(100, 4, 1).unwrap()
    );
    assert_ne!(
        iid_partition(100, 4, 1).unwrap(),
        iid_partition(100, 4, 2).unwrap()
    );
    assert_eq!(iid_partition(5, 0, 0), Err(PartitionError::NoClients));
    assert_eq!(
        iid_partition(3, 5, 0),
        Err(PartitionError::TooManyClients {
            clients: 5,
            rows: 3
        })
    );
    assert_eq!(
        iid_partition(0, usize::MAX, 0),
        Err(PartitionError::TooManyClients {
            clients: usize::MAX,
            rows: 0
        })
    );
}

#[test]
fn iid_chunks_are_the_seeded_shuffle_cut_in_order() {
    let order = shuffle_order(10, 42);
    let parts = iid_partition(10, 3, 42).unwrap();
    let mut want: Vec<Vec<usize>> = vec![
        order[0..4].to_vec(),
        order[4..7].to_vec(),
        order[7..].to_vec(),
    ];
    want.iter_mut().for_each(|p| p.sort_unstable());
    assert_eq!(parts, want);
}

#[test]
fn dirichlet_assigns_every_row_exactly_once() {
    let (train, _) = reference_split();
    for alpha in [0.01, 0.1, 0.5, 1.0, 100.0] {
        for k in [1, 2, 10, 100, 1438] {
            for seed in [0, 1, u64::MAX] {
                let parts =
                    dirichlet_partition(&train, &DirichletConfig::new(k, alpha, seed)).unwrap();
                assert_eq!(parts.len(), k);
                validate_partition(&parts, train.len())
                    .unwrap_or_else(|e| panic!("alpha {alpha} k {k} seed {seed}: {e}"));
            }
        }
    }
}

#[test]
fn dirichlet_sizes_are_stable_for_a_fixed_seed() {
    // The reference job's setting (K = 10, alpha 0.5) with seed 0. These sizes
    // are what this implementation produces; they change only if the
    // algorithm, ChaCha8 or rand_distr's Gamma sampler does.
    let (train, _) = reference_split();
    let config = DirichletConfig::new(10, 0.5, 0);
    let parts = dirichlet_partition(&train, &config).unwrap();
    let sizes: Vec<usize> = parts.iter().map(Vec::len).collect();
    assert_eq!(sizes, DIRICHLET_SIZES_SEED0);
    assert_eq!(dirichlet_partition(&train, &config).unwrap(), parts);
    let other = dirichlet_partition(&train, &DirichletConfig::new(10, 0.5, 1)).unwrap();
    assert_ne!(other, parts);
}

const DIRICHLET_SIZES_SEED0: [usize; 10] = [118, 129, 216, 166, 63, 72, 193, 82, 252, 147];

#[test]
fn smaller_alpha_gives_more_label_skew() {
    let (train, _) = reference_split();
    let entropy = |alpha: f64| {
        // Average over seeds so one lucky draw cannot flip the order.
        (0..5)
            .map(|seed| {
                let parts =
                    dirichlet_partition(&train, &DirichletConfig::new(10, alpha, seed)).unwrap();
                mean_label_entropy(&train, &parts)
            })
            .sum::<f64>()
            / 5.0
    };
    let (skewed, mid, flat) = (entropy(0.1), entropy(1.0), entropy(100.0));
    assert!(skewed < mid && mid < flat, "{skewed} {mid} {flat}");
    // Near IID at alpha 100: close to ln 10 ≈ 2.303.
    assert!(flat > 2.2, "{flat}");
    let iid = mean_label_entropy(&train, &iid_partition(train.len(), 10, 0).unwrap());
    assert!(skewed < iid, "{skewed} vs iid {iid}");
}

#[test]
fn dirichlet_min_size_is_met_or_refused_typed() {
    let (train, _) = reference_split();
    let parts =
        dirichlet_partition(&train, &DirichletConfig::new(10, 0.5, 0).with_min_size(60)).unwrap();
    assert!(parts.iter().all(|p| p.len() >= 60));
    validate_partition(&parts, train.len()).unwrap();

    let err = dirichlet_partition(
        &train,
        &DirichletConfig::new(10, 0.05, 0)
            .with_min_size(140)
            .with_max_attempts(3),
    )
    .unwrap_err();
    assert!(
        matches!(err, PartitionError::MinSizeUnmet { min_size: 140, attempts: 3, smallest } if smallest < 140),
        "{err}"
    );
    assert_eq!(
        dirichlet_partition(&train, &DirichletConfig::new(10, 0.5, 0).with_min_size(144)),
        Err(PartitionError::Infeasible {
            clients: 10,
            min_size: 144,
            rows: 1438
        })
    );
    assert_eq!(
        dirichlet_partition(
            &train,
            &DirichletConfig::new(10, 0.5, 0).with_max_attempts(0)
        ),
        Err(PartitionError::NoAttempts)
    );
}

#[test]
fn dirichlet_refuses_bad_settings() {
    let d = toy();
    assert_eq!(
        dirichlet_partition(&d, &DirichletConfig::new(0, 0.5, 0)),
        Err(PartitionError::NoClients)
    );
    for alpha in [0.0, -1.0, f64::NAN, f64::INFINITY] {
        assert!(matches!(
            dirichlet_partition(&d, &DirichletConfig::new(3, alpha, 0)),
            Err(PartitionError::BadAlpha { .. })
        ));
    }
    assert_eq!(
        dirichlet_partition(&d, &DirichletConfig::new(usize::MAX, 0.5, 0)),
        Err(PartitionError::TooManyClients {
            clients: usize::MAX,
            rows: 7
        })
    );
    // A tiny alpha (Gamma draws underflow to 0) still assigns every row.
    let parts = dirichlet_partition(&d, &DirichletConfig::new(3, 1e-300, 0)).unwrap();
    validate_partition(&parts, d.len()).unwrap();
}

#[test]
fn validate_partition_names_what_is_wrong() {
    assert_eq!(validate_partition(&[vec![0, 2], vec![1]], 3), Ok(()));
    assert_eq!(
        validate_partition(&[vec![0, 2], vec![1, 3]], 3),
        Err(PartitionError::OutOfRange {
            client: 1,
            position: 3,
            rows: 3
        })
    );
    assert_eq!(
        validate_partition(&[vec![0, 1], vec![1, 2]], 3),
        Err(PartitionError::Duplicate {
            client: 1,
            position: 1
        })
    );
    assert_eq!(
        validate_partition(&[vec![0, 0, 1, 2]], 3),
        Err(PartitionError::Duplicate {
            client: 0,
            position: 0
        })
    );
    assert_eq!(
        validate_partition(&[vec![2, 0, 1]], 3),
        Err(PartitionError::NotAscending { client: 0 })
    );
    assert_eq!(
        validate_partition(&[vec![0], vec![2]], 3),
        Err(PartitionError::Unassigned { position: 1 })
    );
}
