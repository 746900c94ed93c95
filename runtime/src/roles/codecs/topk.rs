//! TopK: send only the largest entries of the update, carrying the rest forward as error feedback.

use crate::roles::codec::{Codec, CodecError, Encoded};
use crate::tensor::Tensor;

use super::{
    check_encoded, check_payload_len, encoded, flat_input, flat_tensor, payload_error,
    require_finite,
};

/// How many entries a [`TopK`] sends per update.
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub enum Budget {
    /// Exactly this many (at most the update's length).
    Count(usize),
    /// This fraction of the update's length, rounded up: `⌈f·P⌉`.
    Fraction(f64),
}

/// Top-k sparsification with error feedback (Stich et al., 2018).
///
/// The codec keeps a residual `r` (zeros at first). Encoding `u` forms
/// `a = u + r` (in f32), sends the `k` entries of `a` largest in absolute
/// value as `(u32 index, f32 value)` pairs sorted by index — `8k` payload
/// bytes — and keeps `r = a − sent`: what was not sent is sent later.
/// Decoding places the pairs into zeros.
///
/// Promises:
/// * after any number of rounds, Σ decoded + `r` = Σ updates (up to f32
///   rounding of the additions): nothing is lost, only delayed;
/// * among equal magnitudes the lower index is sent, so encoding is
///   deterministic;
/// * the residual is the codec's state: [`Codec::state`] returns it and
///   [`Codec::restore`] puts it back (an empty state is a fresh residual);
/// * refused with [`CodecError::Input`]: a NaN or an infinity (it would
///   poison the residual for ever), and an update whose length differs
///   from the residual's; neither changes the residual;
/// * decoding refuses a payload that is not whole pairs, holds more pairs
///   than elements, an index out of range or not strictly increasing, or a
///   non-finite value ([`CodecError::Payload`]).
#[derive(Clone, Debug, PartialEq)]
pub struct TopK {
    budget: Budget,
    residual: Vec<f32>,
}

impl TopK {
    /// The codec's name.
    pub const KIND: &'static str = "topk";

    /// Bytes one sent entry takes: a u32 index and an f32 value.
    pub const PAIR_BYTES: usize = 8;

    /// Sends `k` entries per update.
    ///
    /// # Errors
    /// [`CodecError::Config`] when `k` is 0.
    pub fn new(k: usize) -> Result<Self, CodecError> {
        if k == 0 {
            return Err(CodecError::Config("topk: k must be at least 1".into()));
        }
        Ok(Self::with_budget(Budget::Count(k)))
    }

    /// Sends `⌈fraction · P⌉` entries of a `P`-element update.
    ///
    /// # Errors
    /// [`CodecError::Config`] unless `0 < fraction ≤ 1`.
    pub fn fraction(fraction: f64) -> Result<Self, CodecError> {
        if !(fraction > 0.0 && fraction <= 1.0) {
            return Err(CodecError::Config(format!(
                "topk: fraction {fraction} is outside (0, 1]"
            )));
        }
        Ok(Self::with_budget(Budget::Fraction(fraction)))
    }

    fn with_budget(budget: Budget) -> Self {
        Self {
            budget,
            residual: Vec::new(),
        }
    }

    /// The budget.
    pub fn budget(&self) -> Budget {
        self.budget
    }

    /// Entries sent for a `len`-element update.
    pub fn k_for(&self, len: usize) -> usize {
        let k = match self.budget {
            Budget::Count(k) => k,
            // The fraction is in (0, 1], so the product is in (0, len].
            Budget::Fraction(f) => (f * len as f64).ceil() as usize,
        };
        k.min(len)
    }

    /// What has not been sent yet (empty before the first update).
    pub fn residual(&self) -> &[f32] {
        &self.residual
    }
}

impl Codec for TopK {
    fn kind(&self) -> &'static str {
        Self::KIND
    }

    fn encode(&mut self, update: &Tensor) -> Result<Encoded, CodecError> {
        let values = flat_input(Self::KIND, update)?;
        require_finite(Self::KIND, &values)?;
        let len = values.len();
        if !self.residual.is_empty() && self.residual.len() != len {
            return Err(CodecError::Input {
                codec: Self::KIND,
                found: format!(
                    "an update of {len} elements, the residual holds {}",
                    self.residual.len()
                ),
            });
        }
        let mut acc: Vec<f32> = values.into_owned();
        for (a, &r) in acc.iter_mut().zip(&self.residual) {
            *a += r;
        }
        let k = self.k_for(len);
        let mut order: Vec<usize> = (0..len).collect();
        // Larger magnitude first; equal magnitudes by lower index (a total order).
        let by_magnitude = |&i: &usize, &j: &usize| {
            acc[j]
                .abs()
                .total_cmp(&acc[i].abs())
                .then_with(|| i.cmp(&j))
        };
        if k < len {
            order.select_nth_unstable_by(k, by_magnitude);
        }
        order.truncate(k);
        order.sort_unstable();
        let mut payload = Vec::with_capacity(k * Self::PAIR_BYTES);
        for &i in &order {
            // Tensors hold at most MAX_ELEMENTS (2²⁸) elements, so the index fits in u32.
            let index = u32::try_from(i).unwrap_or(u32::MAX);
            payload.extend_from_slice(&index.to_le_bytes());
            payload.extend_from_slice(&acc[i].to_le_bytes());
            acc[i] = 0.0;
        }
        self.residual = acc;
        Ok(encoded(Self::KIND, len, payload))
    }

    fn decode(&self, encoded: &Encoded) -> Result<Tensor, CodecError> {
        check_encoded(Self::KIND, encoded)?;
        let pairs = encoded.payload.len() / Self::PAIR_BYTES;
        if pairs > encoded.len {
            return Err(payload_error(
                Self::KIND,
                format!("{pairs} pairs for {} elements", encoded.len),
            ));
        }
        check_payload_len(Self::KIND, encoded, Some(pairs * Self::PAIR_BYTES))?;
        let mut values = vec![0f32; encoded.len];
        let mut previous: Option<usize> = None;
        for (n, pair) in encoded.payload.chunks_exact(Self::PAIR_BYTES).enumerate() {
            let raw = u32::from_le_bytes([pair[0], pair[1], pair[2], pair[3]]);
            let value = f32::from_le_bytes([pair[4], pair[5], pair[6], pair[7]]);
            let index = usize::try_from(raw).unwrap_or(usize::MAX);
            if index >= encoded.len {
                return Err(payload_error(
                    Self::KIND,
                    format!(
                        "pair {n} has index {raw}, the update has {} elements",
                        encoded.len
                    ),
                ));
            }
            if previous.is_some_and(|p| p >= index) {
                return Err(payload_error(
                    Self::KIND,
                    format!("pair {n} has index {raw}, not above the one before"),
                ));
            }
            if !value.is_finite() {
                return Err(payload_error(
                    Self::KIND,
                    format!("pair {n} (index {raw}) has the non-finite value {value}"),
                ));
            }
            values[index] = value;
            previous = Some(index);
        }
        flat_tensor(values)
    }

    fn state(&self) -> Vec<f32> {
        self.residual.clone()
    }

    fn restore(&mut self, state: &[f32]) -> Result<(), CodecError> {
        if let Some(index) = state.iter().position(|v| !v.is_finite()) {
            return Err(CodecError::Payload {
                codec: Self::KIND,
                reason: format!("restored residual holds a non-finite value at index {index}"),
            });
        }
        self.residual = state.to_vec();
        Ok(())
    }
}
