//! Seeded shuffles: the SplitMix64 generator and the Fisher–Yates rule that turns a seed into a visiting order.
//!
//! This is the batch-order rule of the reference FedAvg job, so it is fixed
//! bit for bit: a given `(n, seed)` yields the same order on every platform
//! and in every release. Tests check it against the reference's
//! `shuffle_test_vectors`.

/// The SplitMix64 generator (Steele, Lea and Flood): a 64-bit state advanced by
/// a fixed odd constant, each output a mix of the new state.
///
/// Small and fast, with no claim to cryptographic quality; here it only drives
/// shuffles, where a seed must reproduce the same order everywhere.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    /// The step added to the state before each output (2⁶⁴ divided by the golden ratio).
    pub const GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

    /// A generator whose state starts at `seed`.
    pub fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    /// The current state (the seed before any output).
    pub fn state(&self) -> u64 {
        self.state
    }

    /// Advances the state by [`Self::GAMMA`] and returns the mixed new state.
    ///
    /// All arithmetic wraps: `z = (s ^ (s >> 30)) · 0xBF58476D1CE4E5B9`,
    /// `z = (z ^ (z >> 27)) · 0x94D049BB133111EB`, `z ^ (z >> 31)`.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(Self::GAMMA);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// Shuffles `items` in place, Fisher–Yates driven by [`SplitMix64`] from `seed`.
///
/// For `i` from `len − 1` down to 1: draw `z` from the generator and swap
/// `items[i]` with `items[z mod (i + 1)]`. The modulo carries a bias below
/// 2⁻⁴⁰ for any slice that fits in memory; it is kept because the rule is a
/// fixed reference, not a statistical tool.
pub fn shuffle<T>(items: &mut [T], seed: u64) {
    let mut rng = SplitMix64::new(seed);
    for i in (1..items.len()).rev() {
        // `i + 1 ≤ len ≤ isize::MAX`, so it fits in u64 and the remainder,
        // being at most `i`, fits back in usize.
        let j = (rng.next_u64() % (i as u64 + 1)) as usize;
        items.swap(i, j);
    }
}

/// The order `0..n` shuffled by [`shuffle`] with `seed`: the positions a client
/// visits, in visiting order, for one epoch of the reference job.
///
/// Allocates `n` positions; `n` is meant to be a data set's length.
pub fn shuffle_order(n: usize, seed: u64) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    shuffle(&mut order, seed);
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix_matches_the_published_first_outputs() {
        // The first outputs for seed 1234567 from the reference C code by
        // Vigna (prng.di.unimi.it/splitmix64.c).
        let mut rng = SplitMix64::new(1_234_567);
        assert_eq!(rng.next_u64(), 6_457_827_717_110_365_317);
        assert_eq!(rng.next_u64(), 3_203_168_211_198_807_973);
        assert_eq!(
            rng.state(),
            1_234_567u64.wrapping_add(SplitMix64::GAMMA.wrapping_mul(2))
        );
    }

    #[test]
    fn small_orders_are_permutations_and_seeds_differ() {
        assert!(shuffle_order(0, 7).is_empty());
        assert_eq!(shuffle_order(1, 7), vec![0]);
        let a = shuffle_order(100, 1);
        let mut sorted = a.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..100).collect::<Vec<_>>());
        assert_ne!(a, shuffle_order(100, 2));
        assert_eq!(a, shuffle_order(100, 1));
    }
}
