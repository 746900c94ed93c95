//! [`ExactKnn`]: brute-force exact nearest-neighbour search over f32 vectors.

use std::collections::HashMap;

use ndarray::{ArrayView1, ArrayView2};

use crate::roles::{Index, IndexError, Metric, Neighbour};
use crate::Tensor;

/// An exact k-NN index: every search compares the query with every stored vector.
///
/// Promises:
/// * `search` returns the `min(k, len)` stored vectors with the smallest
///   distance, nearest first, equal distances by ascending id; the order of
///   `add` and `remove` calls does not change the result;
/// * L2 distances are Euclidean, summed in f64 and rounded once to f32;
///   cosine distances are `1 − cos θ` in `[0, 2]`, computed as one matrix
///   product of the stored unit vectors (normalised in f64 at `add`) with the
///   normalised query;
/// * refusals, checked in this order, leave the index unchanged: a vector or
///   query that is not 1-D f32 of the index's dimension (`Shape`), one with a
///   NaN or infinity (`NotFinite`), a zero vector in a cosine index
///   (`ZeroVector`), and an `add` of a new id when `cap` vectors are stored
///   (`Full`; replacing a stored id is always accepted).
///
/// Storage is one row-major `len × dim` f32 buffer; `remove` moves the last
/// row into the freed one.
#[derive(Clone, Debug)]
pub struct ExactKnn {
    dim: usize,
    metric: Metric,
    cap: usize,
    /// Row `r` of `rows` holds the vector of `ids[r]`.
    ids: Vec<u64>,
    rows: Vec<f32>,
    /// Each stored id's row.
    row_of: HashMap<u64, usize>,
}

impl ExactKnn {
    /// An empty index of `dim`-dimensional vectors under `metric`, holding at most `cap`.
    pub fn new(dim: usize, metric: Metric, cap: usize) -> Self {
        Self {
            dim,
            metric,
            cap,
            ids: Vec::new(),
            rows: Vec::new(),
            row_of: HashMap::new(),
        }
    }

    /// The dimension of stored vectors.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// The most vectors the index holds.
    pub fn cap(&self) -> usize {
        self.cap
    }

    /// Whether `id` is stored.
    pub fn contains(&self, id: u64) -> bool {
        self.row_of.contains_key(&id)
    }

    /// The vector as the index keeps it (a unit vector in a cosine index), if stored.
    pub fn stored(&self, id: u64) -> Option<&[f32]> {
        let row = *self.row_of.get(&id)?;
        self.rows.get(row * self.dim..(row + 1) * self.dim)
    }

    /// The vector's values after the checks every vector and query pass,
    /// normalised for a cosine index.
    fn checked(&self, vector: &Tensor) -> Result<Vec<f32>, IndexError> {
        let values = match vector.as_f32() {
            Some(a) if vector.shape() == [self.dim] => a,
            _ => {
                return Err(IndexError::Shape {
                    dim: self.dim,
                    found: vector.shape().to_vec(),
                    dtype: vector.dtype().name().to_string(),
                })
            }
        };
        let values: Vec<f32> = values.iter().copied().collect();
        if values.iter().any(|v| !v.is_finite()) {
            return Err(IndexError::NotFinite);
        }
        if self.metric == Metric::Cosine {
            let norm = values
                .iter()
                .map(|&v| f64::from(v) * f64::from(v))
                .sum::<f64>()
                .sqrt();
            if norm == 0.0 {
                return Err(IndexError::ZeroVector);
            }
            return Ok(values
                .iter()
                .map(|&v| (f64::from(v) / norm) as f32)
                .collect());
        }
        Ok(values)
    }

    /// The matrix of stored rows.
    fn matrix(&self) -> ArrayView2<'_, f32> {
        // `rows` holds exactly `ids.len() * dim` values: `add` appends and
        // `remove` truncates one whole row at a time.
        ArrayView2::from_shape((self.ids.len(), self.dim), &self.rows)
            .expect("rows hold len × dim values")
    }
}

impl Index for ExactKnn {
    fn metric(&self) -> Metric {
        self.metric
    }

    fn add(&mut self, id: u64, vector: &Tensor) -> Result<(), IndexError> {
        let values = self.checked(vector)?;
        if let Some(&row) = self.row_of.get(&id) {
            self.rows[row * self.dim..(row + 1) * self.dim].copy_from_slice(&values);
            return Ok(());
        }
        if self.ids.len() >= self.cap {
            return Err(IndexError::Full { cap: self.cap });
        }
        self.row_of.insert(id, self.ids.len());
        self.ids.push(id);
        self.rows.extend_from_slice(&values);
        Ok(())
    }

    fn remove(&mut self, id: u64) -> bool {
        let Some(row) = self.row_of.remove(&id) else {
            return false;
        };
        let last = self.ids.len() - 1;
        if row != last {
            let moved = self.ids[last];
            self.rows
                .copy_within(last * self.dim..(last + 1) * self.dim, row * self.dim);
            self.ids[row] = moved;
            self.row_of.insert(moved, row);
        }
        self.ids.pop();
        self.rows.truncate(last * self.dim);
        true
    }

    fn search(&self, query: &Tensor, k: usize) -> Result<Vec<Neighbour>, IndexError> {
        let query = self.checked(query)?;
        let matrix = self.matrix();
        let distances: Vec<f32> = match self.metric {
            Metric::Cosine => {
                let q = ArrayView1::from(query.as_slice());
                matrix
                    .dot(&q)
                    .iter()
                    .map(|&cos| (1.0 - cos).clamp(0.0, 2.0))
                    .collect()
            }
            Metric::L2 => matrix
                .rows()
                .into_iter()
                .map(|row| {
                    row.iter()
                        .zip(&query)
                        .map(|(&x, &q)| {
                            let d = f64::from(x) - f64::from(q);
                            d * d
                        })
                        .sum::<f64>()
                        .sqrt() as f32
                })
                .collect(),
        };
        let mut found: Vec<Neighbour> = self
            .ids
            .iter()
            .zip(distances)
            .map(|(&id, distance)| Neighbour { id, distance })
            .collect();
        let nearer = |a: &Neighbour, b: &Neighbour| {
            a.distance
                .total_cmp(&b.distance)
                .then_with(|| a.id.cmp(&b.id))
        };
        let k = k.min(found.len());
        if k == 0 {
            return Ok(Vec::new());
        }
        if k < found.len() {
            found.select_nth_unstable_by(k - 1, nearer);
            found.truncate(k);
        }
        found.sort_unstable_by(nearer);
        Ok(found)
    }

    fn entries(&self) -> Vec<(u64, Tensor)> {
        let mut ids = self.ids.clone();
        ids.sort_unstable();
        ids.into_iter()
            .filter_map(|id| {
                let row = self.stored(id)?.to_vec();
                Tensor::from_f32(vec![self.dim], row).ok().map(|t| (id, t))
            })
            .collect()
    }

    fn len(&self) -> usize {
        self.ids.len()
    }
}
