//! Splits a data set's rows among clients: IID (seeded shuffle, near-equal chunks) and Dirichlet(α) label skew, plus a check that a given partition is one.
//!
//! A partition is `Vec<Vec<usize>>`: one list per client of positions into
//! the data set, ascending within each client, every position `0..n` in
//! exactly one list. Both builders are deterministic functions of their
//! arguments and seed.
//!
//! The Dirichlet partition draws from `rand_chacha`'s ChaCha8 (whose
//! output is fixed by its specification) and `rand_distr`'s Gamma sampler;
//! the exact partition for a seed is pinned by the workspace's `Cargo.lock`
//! and checked by a test, so a dependency update that changed the sampler
//! would show up there.

use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Gamma};

use super::dataset::Dataset;
use super::shuffle::shuffle_order;

/// Why a partition could not be built or a given one is not a partition.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum PartitionError {
    /// Zero clients asked for.
    #[error("0 clients; a partition needs at least one")]
    NoClients,
    /// More clients than rows.
    #[error("{clients} clients for {rows} rows; use at most one client per row")]
    TooManyClients {
        /// Clients asked for.
        clients: usize,
        /// Rows to split.
        rows: usize,
    },
    /// α is not a positive finite number.
    #[error("Dirichlet alpha {alpha} is not a positive finite number; pass for example 0.5 (smaller is more skewed)")]
    BadAlpha {
        /// The α given.
        alpha: f64,
    },
    /// Zero attempts allowed.
    #[error("max_attempts is 0; allow at least one attempt")]
    NoAttempts,
    /// No split can give every client the minimum size.
    #[error("{clients} clients × min_size {min_size} exceeds the {rows} rows; lower min_size or the client count")]
    Infeasible {
        /// Clients asked for.
        clients: usize,
        /// Minimum rows per client asked for.
        min_size: usize,
        /// Rows to split.
        rows: usize,
    },
    /// Every attempt left some client below the minimum size.
    #[error("after {attempts} attempts the smallest client still had {smallest} rows (< min_size {min_size}); raise alpha or max_attempts, or lower min_size")]
    MinSizeUnmet {
        /// Minimum rows per client asked for.
        min_size: usize,
        /// Attempts made.
        attempts: u32,
        /// The smallest client of the last attempt.
        smallest: usize,
    },
    /// A position in a given partition is past the end of the data.
    #[error("client {client} holds position {position}, out of range for {rows} rows")]
    OutOfRange {
        /// The client.
        client: usize,
        /// The position.
        position: usize,
        /// Rows in the data.
        rows: usize,
    },
    /// A position appears twice (in one client or two).
    #[error("position {position} is assigned twice (client {client} repeats it)")]
    Duplicate {
        /// The second client found holding it.
        client: usize,
        /// The position.
        position: usize,
    },
    /// A position belongs to no client.
    #[error("position {position} belongs to no client; a partition covers every row")]
    Unassigned {
        /// The first position missing.
        position: usize,
    },
    /// A client's positions are not strictly ascending.
    #[error("client {client}'s positions are not ascending; sort each client's list")]
    NotAscending {
        /// The client.
        client: usize,
    },
}

/// IID partition of `n` rows among `clients`: the order
/// [`shuffle_order`]`(n, seed)` cut into contiguous chunks, the first
/// `n mod clients` of size `⌈n / clients⌉` and the rest `⌊n / clients⌋` (so
/// sizes differ by at most one), each chunk then sorted ascending. Refuses
/// zero clients and more clients than rows (every client gets a row).
pub fn iid_partition(
    n: usize,
    clients: usize,
    seed: u64,
) -> Result<Vec<Vec<usize>>, PartitionError> {
    check_clients(clients, n)?;
    let order = shuffle_order(n, seed);
    let (base, extra) = (n / clients, n % clients);
    let mut parts = Vec::with_capacity(clients);
    let mut start = 0;
    for client in 0..clients {
        let size = base + usize::from(client < extra);
        let mut part = order[start..start + size].to_vec();
        part.sort_unstable();
        parts.push(part);
        start += size;
    }
    Ok(parts)
}

/// Settings of [`dirichlet_partition`].
#[derive(Clone, Debug, PartialEq)]
pub struct DirichletConfig {
    /// Number of clients (K).
    pub clients: usize,
    /// Concentration α > 0: small α gives each client few classes, large α
    /// approaches IID.
    pub alpha: f64,
    /// Seed of the ChaCha8 stream that drives every draw.
    pub seed: u64,
    /// Fewest rows any client may get (0: no minimum).
    pub min_size: usize,
    /// Attempts before giving up on `min_size` (each continues the same stream).
    pub max_attempts: u32,
}

impl DirichletConfig {
    /// `clients` clients with concentration `alpha` and `seed`; no minimum
    /// size, 100 attempts.
    pub fn new(clients: usize, alpha: f64, seed: u64) -> Self {
        Self {
            clients,
            alpha,
            seed,
            min_size: 0,
            max_attempts: 100,
        }
    }

    /// The same settings with a minimum client size.
    pub fn with_min_size(mut self, min_size: usize) -> Self {
        self.min_size = min_size;
        self
    }

    /// The same settings with another attempt budget.
    pub fn with_max_attempts(mut self, max_attempts: u32) -> Self {
        self.max_attempts = max_attempts;
        self
    }
}

/// Dirichlet(α) label-skew partition of `dataset`'s rows.
///
/// The algorithm, exactly (one ChaCha8 stream seeded with
/// `ChaCha8Rng::seed_from_u64(seed)` drives every draw, in this order):
/// 1. For each class c = 0, 1, …, in order:
///    * take the positions labelled c, ascending, and shuffle them with
///      [`shuffle_order`]`(n_c, s)` where `s` is the stream's next `u64`;
///    * draw g_k ~ Gamma(α, 1) for k = 0..K and set p_k = g_k / Σ g (a
///      Dirichlet(α, …, α) sample). If Σ g is 0 or not finite (possible
///      only for tiny α, where all mass is on one client in the limit),
///      p is one-hot at a client drawn uniformly from the stream;
///    * cut the shuffled positions at `⌊n_c · (p_0 + … + p_k)⌋` for
///      k = 0..K−1, the last cut being n_c; client k takes the positions
///      between its cuts.
/// 2. Sort each client's positions ascending.
/// 3. If every client has at least `min_size` rows, return; otherwise make
///    another attempt (from step 1, the stream continuing) up to
///    `max_attempts` in all, then fail with [`PartitionError::MinSizeUnmet`].
///
/// Every row lands in exactly one client by construction (the cuts of each
/// class cover it once); a client may end up empty unless `min_size` ≥ 1.
/// Refuses zero clients, more clients than rows, α that is not positive and
/// finite, `max_attempts` 0 and a `min_size` no split can meet.
pub fn dirichlet_partition(
    dataset: &Dataset,
    config: &DirichletConfig,
) -> Result<Vec<Vec<usize>>, PartitionError> {
    let k = config.clients;
    check_clients(k, dataset.len())?;
    if config.max_attempts == 0 {
        return Err(PartitionError::NoAttempts);
    }
    let Some(gamma) = (config.alpha.is_finite())
        .then(|| Gamma::new(config.alpha, 1.0).ok())
        .flatten()
    else {
        return Err(PartitionError::BadAlpha {
            alpha: config.alpha,
        });
    };
    if k.checked_mul(config.min_size)
        .is_none_or(|need| need > dataset.len())
    {
        return Err(PartitionError::Infeasible {
            clients: k,
            min_size: config.min_size,
            rows: dataset.len(),
        });
    }
    let mut by_class = vec![Vec::new(); dataset.classes()];
    for (position, &label) in dataset.labels().iter().enumerate() {
        // Labels are in 0..classes (Dataset invariant).
        by_class[label as usize].push(position);
    }
    let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
    let mut smallest = 0;
    for _ in 0..config.max_attempts {
        let parts = dirichlet_attempt(&by_class, k, &gamma, &mut rng);
        smallest = parts.iter().map(Vec::len).min().unwrap_or(0);
        if smallest >= config.min_size {
            return Ok(parts);
        }
    }
    Err(PartitionError::MinSizeUnmet {
        min_size: config.min_size,
        attempts: config.max_attempts,
        smallest,
    })
}

/// Refuses zero clients and more clients than rows.
fn check_clients(clients: usize, rows: usize) -> Result<(), PartitionError> {
    if clients == 0 {
        return Err(PartitionError::NoClients);
    }
    if clients > rows {
        return Err(PartitionError::TooManyClients { clients, rows });
    }
    Ok(())
}

/// One attempt of [`dirichlet_partition`] (steps 1 and 2).
fn dirichlet_attempt(
    by_class: &[Vec<usize>],
    k: usize,
    gamma: &Gamma<f64>,
    rng: &mut ChaCha8Rng,
) -> Vec<Vec<usize>> {
    let mut parts = vec![Vec::new(); k];
    let mut weights = vec![0.0f64; k];
    for rows in by_class {
        let n_c = rows.len();
        let order = shuffle_order(n_c, rng.next_u64());
        for w in &mut weights {
            *w = gamma.sample(rng);
        }
        let total: f64 = weights.iter().sum();
        if total > 0.0 && total.is_finite() {
            weights.iter_mut().for_each(|w| *w /= total);
        } else {
            let pick = rng.random_range(0..k);
            weights.iter_mut().enumerate().for_each(|(i, w)| {
                *w = if i == pick { 1.0 } else { 0.0 };
            });
        }
        let mut start = 0;
        let mut cumulative = 0.0;
        for (client, part) in parts.iter_mut().enumerate() {
            cumulative += weights[client];
            let end = if client + 1 == k {
                n_c
            } else {
                // Cumulative shares grow, so cuts never go back; the clamp
                // keeps rounding above 1.0 inside the class.
                ((n_c as f64 * cumulative).floor() as usize).clamp(start, n_c)
            };
            part.extend(order[start..end].iter().map(|&i| rows[i]));
            start = end;
        }
    }
    parts.iter_mut().for_each(|p| p.sort_unstable());
    parts
}

/// Checks that `parts` is a partition of `0..rows`: every position in range,
/// in exactly one client, each client's list strictly ascending. Use it on
/// partitions read from a job file.
pub fn validate_partition(parts: &[Vec<usize>], rows: usize) -> Result<(), PartitionError> {
    let mut seen = vec![false; rows];
    for (client, part) in parts.iter().enumerate() {
        if part.windows(2).any(|w| w[0] >= w[1]) {
            let dup = part.windows(2).find(|w| w[0] == w[1]);
            return Err(match dup {
                Some(w) => PartitionError::Duplicate {
                    client,
                    position: w[0],
                },
                None => PartitionError::NotAscending { client },
            });
        }
        for &position in part {
            let Some(slot) = seen.get_mut(position) else {
                return Err(PartitionError::OutOfRange {
                    client,
                    position,
                    rows,
                });
            };
            if *slot {
                return Err(PartitionError::Duplicate { client, position });
            }
            *slot = true;
        }
    }
    match seen.iter().position(|&s| !s) {
        Some(position) => Err(PartitionError::Unassigned { position }),
        None => Ok(()),
    }
}
