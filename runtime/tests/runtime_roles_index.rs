//! The ExactKnn index: true neighbours against an f64 brute-force reference for L2 and cosine, ties by id, replace and remove, and every refusal.
#![allow(clippy::unwrap_used)]

use nodeflow::{ExactKnn, Index, IndexError, Metric, Neighbour, SplitMix64, Tensor};

fn vector(values: &[f32]) -> Tensor {
    Tensor::from_f32(vec![values.len()], values.to_vec()).unwrap()
}

/// A value uniform in [-1, 1) from the generator's top 24 bits.
fn uniform(rng: &mut SplitMix64) -> f32 {
    (rng.next_u64() >> 40) as f32 / (1u64 << 23) as f32 - 1.0
}

fn random_vectors(n: usize, dim: usize, seed: u64) -> Vec<Vec<f32>> {
    let mut rng = SplitMix64::new(seed);
    (0..n)
        .map(|_| (0..dim).map(|_| uniform(&mut rng)).collect())
        .collect()
}

/// The reference distance, all in f64.
fn reference_distance(metric: Metric, a: &[f32], b: &[f32]) -> f64 {
    let a: Vec<f64> = a.iter().map(|&v| f64::from(v)).collect();
    let b: Vec<f64> = b.iter().map(|&v| f64::from(v)).collect();
    match metric {
        Metric::L2 => a
            .iter()
            .zip(&b)
            .map(|(x, y)| (x - y) * (x - y))
            .sum::<f64>()
            .sqrt(),
        Metric::Cosine => {
            let dot: f64 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
            let na = a.iter().map(|x| x * x).sum::<f64>().sqrt();
            let nb = b.iter().map(|x| x * x).sum::<f64>().sqrt();
            1.0 - dot / (na * nb)
        }
        _ => unreachable!("only two metrics exist"),
    }
}

/// The `k` nearest of `stored` by the reference, ties by id.
fn reference_search(
    metric: Metric,
    stored: &[(u64, Vec<f32>)],
    query: &[f32],
    k: usize,
) -> Vec<(u64, f64)> {
    let mut all: Vec<(u64, f64)> = stored
        .iter()
        .map(|(id, v)| (*id, reference_distance(metric, v, query)))
        .collect();
    all.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
    all.truncate(k);
    all
}

fn check_against_reference(metric: Metric, seed: u64) {
    const DIM: usize = 12;
    let vectors = random_vectors(200, DIM, seed);
    // Ids are sparse and inserted in a scrambled order, so neither the id
    // nor the row decides the result.
    let mut order: Vec<usize> = (0..vectors.len()).collect();
    nodeflow::shuffle(&mut order, 99);
    let stored: Vec<(u64, Vec<f32>)> = order
        .iter()
        .map(|&i| (10_000 - 37 * i as u64, vectors[i].clone()))
        .collect();
    let mut index = ExactKnn::new(DIM, metric, 1_000);
    for (id, v) in &stored {
        index.add(*id, &vector(v)).unwrap();
    }
    assert_eq!(index.len(), 200);
    let queries = random_vectors(25, DIM, 0xABCD);
    let mut searches = 0;
    for query in &queries {
        for k in [1, 3, 10, 57, 200, 260] {
            let got = index.search(&vector(query), k).unwrap();
            let want = reference_search(metric, &stored, query, k);
            assert_eq!(got.len(), k.min(200), "k {k}");
            for (g, w) in got.iter().zip(&want) {
                assert!(
                    (f64::from(g.distance) - w.1).abs() < 1e-5,
                    "{metric:?} k {k}: distance {} vs reference {}",
                    g.distance,
                    w.1
                );
            }
            let got_ids: Vec<u64> = got.iter().map(|n| n.id).collect();
            let want_ids: Vec<u64> = want.iter().map(|n| n.0).collect();
            assert_eq!(got_ids, want_ids, "{metric:?} k {k}");
            // Nearest first.
            assert!(got.windows(2).all(|w| w[0].distance <= w[1].distance));
            searches += 1;
        }
    }
    assert_eq!(searches, 25 * 6);
}

#[test]
fn l2_search_returns_the_true_neighbours() {
    check_against_reference(Metric::L2, 0x5EED);
}

#[test]
fn cosine_search_returns_the_true_neighbours() {
    check_against_reference(Metric::Cosine, 0xC05);
}

#[test]
fn l2_distances_are_euclidean_and_ties_go_by_id() {
    let mut index = ExactKnn::new(2, Metric::L2, 10);
    assert_eq!(index.metric(), Metric::L2);
    // Three vectors at distance 5 from the origin, one at 1, one at 13.
    index.add(9, &vector(&[3.0, 4.0])).unwrap();
    index.add(3, &vector(&[-4.0, 3.0])).unwrap();
    index.add(5, &vector(&[0.0, -5.0])).unwrap();
    index.add(7, &vector(&[1.0, 0.0])).unwrap();
    index.add(1, &vector(&[5.0, 12.0])).unwrap();
    let got = index.search(&vector(&[0.0, 0.0]), 4).unwrap();
    assert_eq!(
        got,
        vec![
            Neighbour {
                id: 7,
                distance: 1.0
            },
            Neighbour {
                id: 3,
                distance: 5.0
            },
            Neighbour {
                id: 5,
                distance: 5.0
            },
            Neighbour {
                id: 9,
                distance: 5.0
            },
        ]
    );
    // A tie cut by k keeps the smaller ids.
    let got = index.search(&vector(&[0.0, 0.0]), 2).unwrap();
    assert_eq!(got.iter().map(|n| n.id).collect::<Vec<_>>(), vec![7, 3]);
    // k = 0 asks for nothing.
    assert!(index.search(&vector(&[0.0, 0.0]), 0).unwrap().is_empty());
    // L2 stores a zero vector as it is.
    index.add(2, &vector(&[0.0, 0.0])).unwrap();
    assert_eq!(index.stored(2), Some(&[0.0, 0.0][..]));
    assert_eq!(
        index.search(&vector(&[0.0, 0.0]), 1).unwrap(),
        vec![Neighbour {
            id: 2,
            distance: 0.0
        }]
    );
}

#[test]
fn cosine_distances_ignore_length() {
    let mut index = ExactKnn::new(2, Metric::Cosine, 10);
    index.add(1, &vector(&[2.0, 0.0])).unwrap();
    index.add(2, &vector(&[0.0, 0.5])).unwrap();
    index.add(3, &vector(&[-3.0, 0.0])).unwrap();
    index.add(4, &vector(&[1.0, 1.0])).unwrap();
    // Stored copies are unit vectors.
    assert_eq!(index.stored(1), Some(&[1.0, 0.0][..]));
    let h = std::f32::consts::FRAC_1_SQRT_2;
    assert_eq!(index.stored(4), Some(&[h, h][..]));
    let got = index.search(&vector(&[10.0, 0.0]), 10).unwrap();
    let ids: Vec<u64> = got.iter().map(|n| n.id).collect();
    assert_eq!(ids, vec![1, 4, 2, 3]);
    let want = [0.0, 1.0 - h, 1.0, 2.0];
    for (n, w) in got.iter().zip(want) {
        assert!((n.distance - w).abs() < 1e-6, "{n:?} vs {w}");
    }
}

#[test]
fn add_replaces_and_remove_forgets() {
    let mut index = ExactKnn::new(2, Metric::L2, 3);
    index.add(1, &vector(&[0.0, 0.0])).unwrap();
    index.add(2, &vector(&[1.0, 0.0])).unwrap();
    index.add(3, &vector(&[2.0, 0.0])).unwrap();
    // Replacing a stored id is accepted at the cap and does not grow.
    index.add(1, &vector(&[10.0, 0.0])).unwrap();
    assert_eq!(index.len(), 3);
    assert_eq!(index.stored(1), Some(&[10.0, 0.0][..]));
    assert_eq!(
        index.search(&vector(&[10.0, 0.0]), 1).unwrap(),
        vec![Neighbour {
            id: 1,
            distance: 0.0
        }]
    );

    // Removing the first row moves the last one into it: 3 must keep its vector.
    assert!(index.remove(1));
    assert!(!index.remove(1));
    assert!(!index.contains(1));
    assert_eq!(index.len(), 2);
    assert_eq!(index.stored(3), Some(&[2.0, 0.0][..]));
    assert_eq!(
        index.search(&vector(&[10.0, 0.0]), 5).unwrap(),
        vec![
            Neighbour {
                id: 3,
                distance: 8.0
            },
            Neighbour {
                id: 2,
                distance: 9.0
            },
        ]
    );
    // The freed place takes a new id.
    index.add(4, &vector(&[7.0, 0.0])).unwrap();
    assert_eq!(index.search(&vector(&[10.0, 0.0]), 1).unwrap()[0].id, 4);
    assert!(index.remove(2) && index.remove(3) && index.remove(4));
    assert!(index.is_empty());
    assert!(index.search(&vector(&[0.0, 0.0]), 3).unwrap().is_empty());
}

#[test]
fn every_refusal_is_typed_and_leaves_the_index_unchanged() {
    let mut l2 = ExactKnn::new(3, Metric::L2, 2);
    l2.add(1, &vector(&[1.0, 2.0, 3.0])).unwrap();

    // Shape: wrong length, wrong rank, wrong dtype, for add and search.
    let shape = |found: Vec<usize>, dtype: &str| IndexError::Shape {
        dim: 3,
        found,
        dtype: dtype.to_string(),
    };
    assert_eq!(
        l2.add(2, &vector(&[1.0, 2.0])).unwrap_err(),
        shape(vec![2], "float32")
    );
    let row = Tensor::from_f32(vec![1, 3], vec![1.0, 2.0, 3.0]).unwrap();
    assert_eq!(l2.add(2, &row).unwrap_err(), shape(vec![1, 3], "float32"));
    assert_eq!(
        l2.search(&row, 1).unwrap_err(),
        shape(vec![1, 3], "float32")
    );
    let ints = Tensor::from_i64(vec![3], vec![1, 2, 3]).unwrap();
    assert_eq!(l2.add(2, &ints).unwrap_err(), shape(vec![3], "int64"));
    assert_eq!(l2.search(&ints, 1).unwrap_err(), shape(vec![3], "int64"));
    assert_eq!(
        l2.search(&Tensor::scalar_f32(1.0), 1).unwrap_err(),
        shape(vec![], "float32")
    );
    let shape_error = l2.add(2, &ints).unwrap_err().to_string();
    assert!(shape_error.contains("[3]") && shape_error.contains("int64"));

    // Non-finite values.
    for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
        assert_eq!(
            l2.add(2, &vector(&[0.0, bad, 0.0])).unwrap_err(),
            IndexError::NotFinite
        );
        assert_eq!(
            l2.search(&vector(&[bad, 0.0, 0.0]), 1).unwrap_err(),
            IndexError::NotFinite
        );
    }
    // A replacement that is refused keeps the old vector.
    assert_eq!(
        l2.add(1, &vector(&[f32::NAN, 0.0, 0.0])).unwrap_err(),
        IndexError::NotFinite
    );
    assert_eq!(l2.stored(1), Some(&[1.0, 2.0, 3.0][..]));

    // Full: a new id past the cap.
    l2.add(2, &vector(&[0.0, 0.0, 0.0])).unwrap();
    assert_eq!(
        l2.add(3, &vector(&[0.0, 0.0, 1.0])).unwrap_err(),
        IndexError::Full { cap: 2 }
    );
    assert_eq!(l2.len(), 2);
    assert!(!l2.contains(3));
    let mut none = ExactKnn::new(1, Metric::L2, 0);
    assert_eq!(
        none.add(1, &vector(&[1.0])).unwrap_err(),
        IndexError::Full { cap: 0 }
    );

    // A cosine index refuses a zero vector, stored or searched.
    let mut cos = ExactKnn::new(2, Metric::Cosine, 4);
    assert_eq!(
        cos.add(1, &vector(&[0.0, 0.0])).unwrap_err(),
        IndexError::ZeroVector
    );
    assert_eq!(
        cos.search(&vector(&[0.0, 0.0]), 1).unwrap_err(),
        IndexError::ZeroVector
    );
    assert!(cos.is_empty());
    // A tiny but non-zero vector has a direction.
    cos.add(1, &vector(&[1e-30, 0.0])).unwrap();
    assert_eq!(cos.stored(1), Some(&[1.0, 0.0][..]));
    // Huge values do not overflow the norm.
    cos.add(2, &vector(&[f32::MAX, f32::MAX])).unwrap();
    let h = std::f32::consts::FRAC_1_SQRT_2;
    assert_eq!(cos.stored(2), Some(&[h, h][..]));
}
