//! The aggregation rules: FedAvg, median, trimmed mean and Krum checked against hand-computed results, against arrival order, against garbage contributions, and the round's typed, counted refusals.
#![allow(clippy::unwrap_used)]

use nodeflow::{
    shuffle_order, AggregationRound, Aggregator, AggregatorError, Contribution, FedAvg, Krum,
    Median, PeerId, Tensor, TrimmedMean,
};

fn flat(values: &[f32]) -> Tensor {
    Tensor::from_f32(vec![values.len()], values.to_vec()).unwrap()
}

fn contribution(peer: u64, values: &[f32], weight: f64) -> Contribution {
    Contribution {
        peer: PeerId::new(peer),
        update: flat(values),
        weight,
    }
}

/// Feeds `contributions` through a round of `rule` in the given order and aggregates.
fn round(
    rule: Box<dyn Aggregator>,
    contributions: &[Contribution],
) -> Result<Vec<f32>, AggregatorError> {
    let mut round = AggregationRound::new(rule);
    for c in contributions {
        round.contribute(c.clone()).unwrap();
    }
    round.aggregate().map(|t| t.to_f32_vec().unwrap())
}

/// A deterministic value in [-1, 1) from a seed (SplitMix64's finalizer).
fn noise(seed: u64) -> f32 {
    let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    (z >> 40) as f32 / (1u64 << 23) as f32 - 1.0
}

/// `honest` updates of length `len` within ±`spread` of 1.0 (peers 0..honest),
/// then `garbage` updates of 1e6 (the following peers).
fn honest_and_garbage(honest: u64, garbage: u64, len: usize, spread: f32) -> Vec<Contribution> {
    let mut out = Vec::new();
    for p in 0..honest {
        let values: Vec<f32> = (0..len)
            .map(|i| 1.0 + spread * noise(p * 1000 + i as u64))
            .collect();
        out.push(contribution(p, &values, 1.0));
    }
    for p in honest..honest + garbage {
        out.push(contribution(p, &vec![1e6; len], 1.0));
    }
    out
}

fn max_distance_from_one(values: &[f32]) -> f32 {
    values.iter().fold(0f32, |m, v| m.max((v - 1.0).abs()))
}

#[test]
fn fedavg_of_identical_models_is_that_model_bit_for_bit() {
    let model = [0.1f32, -2.5e-7, 3.3333333, 1e30, -0.0];
    let contributions: Vec<_> = [1.0, 7.0, 120.0, 3.0]
        .iter()
        .enumerate()
        .map(|(p, &w)| contribution(p as u64, &model, w))
        .collect();
    let out = round(Box::new(FedAvg), &contributions).unwrap();
    let bits: Vec<u32> = out.iter().map(|v| v.to_bits()).collect();
    let expected: Vec<u32> = model.iter().map(|v| v.to_bits()).collect();
    // -0.0 sums to +0.0 in f64; everything else must come back exactly.
    assert_eq!(&bits[..4], &expected[..4]);
    assert_eq!(out[4], 0.0);
}

#[test]
fn fedavg_weights_by_hand() {
    // (1·[1, 2] + 3·[3, 6]) / 4 = [2.5, 5]; with a third of weight 4 at [0, -4]:
    // (1 + 9 + 0) / 8 = 1.25, (2 + 18 − 16) / 8 = 0.5.
    let a = contribution(1, &[1.0, 2.0], 1.0);
    let b = contribution(2, &[3.0, 6.0], 3.0);
    let c = contribution(3, &[0.0, -4.0], 4.0);
    assert_eq!(
        round(Box::new(FedAvg), &[a.clone(), b.clone()]).unwrap(),
        [2.5, 5.0]
    );
    assert_eq!(round(Box::new(FedAvg), &[a, b, c]).unwrap(), [1.25, 0.5]);
}

#[test]
fn fedavg_is_moved_by_one_garbage_contribution() {
    // The non-robust baseline: 10 honest near 1 and one 1e6 give ≈ 1e6 / 11.
    let out = round(Box::new(FedAvg), &honest_and_garbage(10, 1, 4, 0.01)).unwrap();
    for v in out {
        assert!((v - (10.0 + 1e6) / 11.0).abs() < 1.0, "{v}");
    }
}

#[test]
fn every_rule_is_independent_of_arrival_order() {
    let contributions: Vec<Contribution> = (0..13u64)
        .map(|p| {
            let values: Vec<f32> = (0..64).map(|i| noise(p * 64 + i) * 1e3).collect();
            contribution(p * 7 + 3, &values, 1.0 + p as f64 * 0.37)
        })
        .collect();
    let rules: Vec<fn() -> Box<dyn Aggregator>> = vec![
        || Box::new(FedAvg),
        || Box::new(Median),
        || Box::new(TrimmedMean::new(0.2).unwrap()),
        || Box::new(Krum::single(2)),
        || Box::new(Krum::new(2, 4).unwrap()),
    ];
    for rule in rules {
        let reference = round(rule(), &contributions).unwrap();
        for seed in 1..6 {
            let shuffled: Vec<Contribution> = shuffle_order(contributions.len(), seed)
                .into_iter()
                .map(|i| contributions[i].clone())
                .collect();
            assert_ne!(shuffled, contributions, "seed {seed} must shuffle");
            let out = round(rule(), &shuffled).unwrap();
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&out), bits(&reference), "{}", rule().kind());
        }
    }
}

#[test]
fn median_by_hand_odd_and_even() {
    let odd = [
        contribution(1, &[1.0, -3.0], 1.0),
        contribution(2, &[5.0, 0.0], 1.0),
        contribution(3, &[3.0, 9.0], 1.0),
    ];
    assert_eq!(round(Box::new(Median), &odd).unwrap(), [3.0, 0.0]);
    let even = [
        contribution(1, &[1.0], 1.0),
        contribution(2, &[2.0], 50.0),
        contribution(3, &[10.0], 1.0),
        contribution(4, &[4.0], 1.0),
    ];
    // Middle values 2 and 4 (weights ignored): 3.
    assert_eq!(round(Box::new(Median), &even).unwrap(), [3.0]);
}

#[test]
fn median_resists_fewer_than_half_garbage() {
    // Tolerates b < n/2: 10 honest within ±0.05 of 1 and 3, then 9, garbage.
    for garbage in [3, 9] {
        let out = round(Box::new(Median), &honest_and_garbage(10, garbage, 32, 0.05)).unwrap();
        assert!(max_distance_from_one(&out) <= 0.05, "{garbage} garbage");
    }
    // A garbage majority (10 of 19 > half) takes the median over.
    let out = round(Box::new(Median), &honest_and_garbage(9, 10, 32, 0.05)).unwrap();
    assert!(out.iter().all(|&v| v == 1e6));
}

#[test]
fn trimmed_mean_by_hand() {
    let c: Vec<_> = [1.0f32, 2.0, 3.0, 4.0, 100.0]
        .iter()
        .enumerate()
        .map(|(p, &v)| contribution(p as u64, &[v, -v], 1.0))
        .collect();
    // β = 0.2, n = 5: drop ⌊1⌋ each side; mean(2, 3, 4) = 3.
    let t = TrimmedMean::new(0.2).unwrap();
    assert_eq!(t.trimmed(5), 1);
    assert_eq!(round(Box::new(t), &c).unwrap(), [3.0, -3.0]);
    // β = 0 is the plain mean: 110 / 5 = 22.
    assert_eq!(
        round(Box::new(TrimmedMean::new(0.0).unwrap()), &c).unwrap(),
        [22.0, -22.0]
    );
    // β = 0.19, n = 5: ⌊0.95⌋ = 0 dropped.
    assert_eq!(TrimmedMean::new(0.19).unwrap().trimmed(5), 0);
}

#[test]
fn trimmed_mean_resists_up_to_floor_beta_n_garbage() {
    // β = 0.25, n = 13: ⌊3.25⌋ = 3 dropped each side, so 3 garbage are cut
    // and the mean of the 7 middle honest values stays within ±0.05 of 1.
    let c = honest_and_garbage(10, 3, 32, 0.05);
    let out = round(Box::new(TrimmedMean::new(0.25).unwrap()), &c).unwrap();
    assert!(max_distance_from_one(&out) <= 0.05);
    // β = 0.1 drops only ⌊1.3⌋ = 1: two garbage values stay, (2e6 + ~6) / 11.
    let out = round(Box::new(TrimmedMean::new(0.1).unwrap()), &c).unwrap();
    assert!(out.iter().all(|&v| (v - 2e6 / 11.0).abs() < 1.0), "{out:?}");
}

#[test]
fn trimmed_mean_refuses_beta_outside_zero_to_half() {
    for beta in [0.5, 0.7, -0.01, f64::NAN, f64::INFINITY] {
        assert!(
            matches!(TrimmedMean::new(beta), Err(AggregatorError::Config(_))),
            "{beta}"
        );
    }
}

#[test]
fn krum_by_hand_ties_broken_by_peer_order() {
    // 1-D points 0, 1, 2, 3, 100; n = 5, f = 1: each score sums the squared
    // distances to the n − f − 2 = 2 nearest others:
    //   0 → 1 + 4 = 5, 1 → 1 + 1 = 2, 2 → 1 + 1 = 2, 3 → 1 + 4 = 5,
    //   100 → 97² + 98² = 19013.
    // Value 2 sits at a lower peer than value 1, so it wins the tie.
    let c = [
        contribution(1, &[0.0], 1.0),
        contribution(2, &[2.0], 1.0),
        contribution(5, &[3.0], 1.0),
        contribution(7, &[1.0], 1.0),
        contribution(9, &[100.0], 1.0),
    ];
    let krum = Krum::single(1);
    assert_eq!(krum.scores(&c).unwrap(), [5.0, 2.0, 5.0, 2.0, 19013.0]);
    assert_eq!(round(Box::new(krum), &c).unwrap(), [2.0]);
    // m = 2: values 2 and 1 → 1.5; m = 3: then the tie 0 vs 3 goes to peer 1 (value 0) → 1.
    assert_eq!(
        round(Box::new(Krum::new(1, 2).unwrap()), &c).unwrap(),
        [1.5]
    );
    assert_eq!(
        Krum::new(1, 3).unwrap().select(&c).unwrap(),
        [1, 3, 0],
        "best first, ties to the earlier peer"
    );
    assert_eq!(
        round(Box::new(Krum::new(1, 3).unwrap()), &c).unwrap(),
        [1.0]
    );
}

#[test]
fn krum_resists_f_garbage_among_2f_plus_3() {
    // n = 13, f = 3 (n ≥ 2f + 3 = 9): Krum picks one honest update exactly.
    let c = honest_and_garbage(10, 3, 32, 0.05);
    let out = round(Box::new(Krum::single(3)), &c).unwrap();
    assert!(
        c[..10]
            .iter()
            .any(|h| h.update.to_f32_vec().unwrap() == out),
        "the result is one honest update"
    );
    // Multi-Krum with m = n − f = 10 averages exactly the honest ones.
    let out = round(Box::new(Krum::new(3, 10).unwrap()), &c).unwrap();
    assert!(max_distance_from_one(&out) <= 0.05);
    let honest_mean = round(Box::new(FedAvg), &c[..10]).unwrap();
    for (a, b) in out.iter().zip(&honest_mean) {
        assert!((a - b).abs() <= 1e-6);
    }
}

#[test]
fn krum_refuses_too_few_and_bad_m() {
    // f = 3 needs 2f + 3 = 9.
    let c = honest_and_garbage(8, 0, 4, 0.05);
    assert_eq!(
        round(Box::new(Krum::single(3)), &c),
        Err(AggregatorError::TooFew {
            rule: "krum",
            needed: 9,
            have: 8
        })
    );
    // m + f = 7 + 2 = 9 > 8 as well.
    assert_eq!(Krum::new(2, 7).unwrap().needed(), 9);
    assert!(matches!(
        round(Box::new(Krum::new(2, 7).unwrap()), &c),
        Err(AggregatorError::TooFew {
            needed: 9,
            have: 8,
            ..
        })
    ));
    assert!(matches!(Krum::new(1, 0), Err(AggregatorError::Config(_))));
}

#[test]
fn empty_rounds_and_direct_calls_are_refused_without_panics() {
    let rules: Vec<Box<dyn Aggregator>> = vec![
        Box::new(FedAvg),
        Box::new(Median),
        Box::new(TrimmedMean::new(0.1).unwrap()),
        Box::new(Krum::single(0)),
    ];
    for rule in rules {
        let kind = rule.kind();
        assert!(matches!(
            rule.combine(&[]),
            Err(AggregatorError::TooFew {
                needed: 1,
                have: 0,
                ..
            })
        ));
        // Called directly with mixed lengths (a round never does this).
        let mixed = [
            contribution(1, &[1.0, 2.0], 1.0),
            contribution(2, &[1.0], 1.0),
            contribution(3, &[1.0, 2.0], 1.0),
        ];
        assert_eq!(
            rule.combine(&mixed),
            Err(AggregatorError::Shape {
                peer: PeerId::new(2),
                expected: 2,
                found: vec![1]
            }),
            "{kind}"
        );
        let mut round = AggregationRound::new(rule);
        assert!(matches!(
            round.aggregate(),
            Err(AggregatorError::TooFew { have: 0, .. })
        ));
    }
}

#[test]
fn round_refuses_and_counts_non_finite_shape_and_weight() {
    let mut round = AggregationRound::new(Box::new(Median));
    round.contribute(contribution(1, &[1.0, 2.0], 1.0)).unwrap();
    let bad = [
        (contribution(2, &[f32::NAN, 0.0], 1.0), "nan"),
        (contribution(3, &[0.0, f32::INFINITY], 1.0), "inf"),
        (contribution(4, &[0.0, f32::NEG_INFINITY], 1.0), "-inf"),
        (contribution(5, &[1.0, 2.0, 3.0], 1.0), "length"),
        (
            Contribution {
                peer: PeerId::new(6),
                update: Tensor::from_f32(vec![1, 2], vec![1.0, 2.0]).unwrap(),
                weight: 1.0,
            },
            "rank",
        ),
        (
            Contribution {
                peer: PeerId::new(7),
                update: Tensor::from_i64(vec![2], vec![1, 2]).unwrap(),
                weight: 1.0,
            },
            "dtype",
        ),
        (contribution(8, &[1.0, 2.0], 0.0), "zero weight"),
        (contribution(9, &[1.0, 2.0], f64::NAN), "nan weight"),
    ];
    for (c, what) in bad {
        let err = round.contribute(c).unwrap_err();
        let ok = match what {
            "nan" => {
                err == AggregatorError::NotFinite {
                    peer: PeerId::new(2),
                    index: 0,
                }
            }
            "inf" => {
                err == AggregatorError::NotFinite {
                    peer: PeerId::new(3),
                    index: 1,
                }
            }
            "-inf" => {
                err == AggregatorError::NotFinite {
                    peer: PeerId::new(4),
                    index: 1,
                }
            }
            "length" | "rank" | "dtype" => {
                matches!(err, AggregatorError::Shape { expected: 2, .. })
            }
            _ => matches!(err, AggregatorError::Weight { .. }),
        };
        assert!(ok, "{what}: {err:?}");
    }
    round
        .contribute(contribution(10, &[3.0, 4.0], 1.0))
        .unwrap();
    round
        .contribute(contribution(11, &[5.0, 9.0], 1.0))
        .unwrap();
    let stats = round.stats();
    assert_eq!((stats.accepted, stats.refused, stats.replaced), (3, 8, 0));
    assert_eq!(
        round.contributors(),
        [PeerId::new(1), PeerId::new(10), PeerId::new(11)]
    );
    // Only the three accepted updates are combined: median [3, 4].
    assert_eq!(round.aggregate().unwrap().to_f32_vec().unwrap(), [3.0, 4.0]);
    assert_eq!(round.stats().rounds, 1);
}

#[test]
fn round_replacement_is_counted_and_the_later_update_is_used() {
    let mut round = AggregationRound::new(Box::new(FedAvg));
    round.contribute(contribution(1, &[100.0], 1.0)).unwrap();
    round.contribute(contribution(2, &[2.0], 1.0)).unwrap();
    round.contribute(contribution(1, &[4.0], 3.0)).unwrap();
    assert_eq!(round.pending(), 2);
    let stats = round.stats();
    assert_eq!((stats.accepted, stats.replaced), (3, 1));
    // (3·4 + 1·2) / 4 = 3.5: the replaced 100 is gone.
    assert_eq!(round.aggregate().unwrap().to_f32_vec().unwrap(), [3.5]);
}
