//! [`ByzantineComponent`]: a faulty or malicious peer's update — seeded Gaussian garbage of the right shape in place of what training produced.
//!
//! | op | inputs | outputs |
//! |---|---|---|
//! | `Corrupt` | an update f32 `[P]` | garbage f32 `[P]`: every entry drawn from N(0, scale²) |
//!
//! The garbage is finite and correctly shaped on purpose: a NaN or a wrong
//! shape is refused by every aggregation round, so the interesting attack
//! is the one that gets through. Draw `i` of call `n` comes from a ChaCha8
//! stream seeded with `seed` and positioned at call `n`, so a run is
//! reproducible; the call count is the snapshot state.

use std::fmt;

use nodeflow_engine::{
    Component, DispatchResult, LocalOpId, OpError, OpErrorKind, OpInputs, OpOutputs,
    RuntimeResourceRef,
};
use rand::SeedableRng;
use rand_distr::{Distribution, Normal};

use crate::roles::components::state::{decode_words, encode_words};
use crate::roles::components::tensor_input;
use crate::tensor::Tensor;

/// The [`Component::kind`] of a byzantine component.
pub const BYZANTINE_KIND: &str = "byzantine";

/// Replaces updates with garbage.
pub struct ByzantineComponent {
    seed: u64,
    scale: f32,
    calls: u64,
}

impl ByzantineComponent {
    /// Garbage with standard deviation `scale` (a non-finite or negative
    /// scale is taken as its absolute finite value, or 1).
    pub fn new(seed: u64, scale: f32) -> Self {
        let scale = if scale.is_finite() { scale.abs() } else { 1.0 };
        Self {
            seed,
            scale,
            calls: 0,
        }
    }

    /// Updates replaced so far.
    pub fn calls(&self) -> u64 {
        self.calls
    }
}

impl Component for ByzantineComponent {
    fn kind(&self) -> &str {
        BYZANTINE_KIND
    }

    fn resolve_op(&self, op_type: &str) -> Option<LocalOpId> {
        (op_type == "Corrupt").then_some(LocalOpId(0))
    }

    fn dispatch_atomic(
        &mut self,
        _op: LocalOpId,
        _ctx: &mut RuntimeResourceRef<'_>,
        inputs: &mut OpInputs<'_>,
        outputs: &mut OpOutputs<'_>,
    ) -> Result<DispatchResult, OpError> {
        let update = tensor_input(inputs, 0, "Corrupt")?;
        let internal = |e: String| OpError::new(OpErrorKind::Internal, "byzantine.tensor", e);
        let normal = Normal::new(0.0f32, self.scale).map_err(|e| internal(e.to_string()))?;
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(self.seed);
        rng.set_stream(self.calls);
        self.calls += 1;
        let garbage: Vec<f32> = (0..update.len()).map(|_| normal.sample(&mut rng)).collect();
        let tensor = Tensor::from_f32(update.shape().to_vec(), garbage)
            .map_err(|e| internal(e.to_string()))?;
        outputs.push(Box::new(tensor))?;
        Ok(DispatchResult::Immediate)
    }

    fn snapshot_state(&self) -> Result<Vec<u8>, OpError> {
        encode_words(&[self.calls])
    }

    fn restore_state(&mut self, bytes: &[u8]) -> Result<(), OpError> {
        self.calls = decode_words(bytes, 1)?[0];
        Ok(())
    }
}

impl fmt::Debug for ByzantineComponent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ByzantineComponent")
            .field("scale", &self.scale)
            .field("calls", &self.calls)
            .finish()
    }
}
