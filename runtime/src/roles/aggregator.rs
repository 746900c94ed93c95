//! The Aggregator role: combines the model updates of one round into one, refusing what would poison it.
//!
//! An [`Aggregator`] is the combining rule only ([`Aggregator::combine`]);
//! [`AggregationRound`] is what every rule shares around it and what a
//! component holds:
//! * a contribution whose tensor is not f32, not of the round's length
//!   (the first accepted contribution fixes it), or holds a NaN or an
//!   infinity, or whose weight is not a finite positive number, is refused
//!   with a typed [`AggregatorError`] and counted — never combined;
//! * a second contribution from the same peer in a round replaces the first
//!   (counted);
//! * contributions are handed to the rule sorted by peer id, so the result
//!   never depends on arrival order (each rule reduces in that order).

use std::collections::BTreeMap;

use crate::tensor::Tensor;
use nodeflow_engine::PeerId;

/// One peer's update for a round.
#[derive(Clone, Debug, PartialEq)]
pub struct Contribution {
    /// Who sent it.
    pub peer: PeerId,
    /// The update: flat f32 parameters `[P]`.
    pub update: Tensor,
    /// Its weight (FedAvg: the peer's sample count).
    pub weight: f64,
}

/// Why a contribution or a round was refused.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum AggregatorError {
    /// The update is not a 1-D f32 tensor of the round's length.
    #[error("contribution of {peer}: shape {found:?}, the round takes f32 [{expected}]")]
    Shape {
        /// The sender.
        peer: PeerId,
        /// The round's length.
        expected: usize,
        /// The shape given.
        found: Vec<usize>,
    },
    /// The update holds a NaN or an infinity.
    #[error("contribution of {peer} has a non-finite value at {index}; refused, not averaged in")]
    NotFinite {
        /// The sender.
        peer: PeerId,
        /// The first bad position.
        index: usize,
    },
    /// The weight is not a finite positive number.
    #[error("contribution of {peer} has weight {weight}; weights must be finite and > 0")]
    Weight {
        /// The sender.
        peer: PeerId,
        /// The weight given.
        weight: f64,
    },
    /// The rule needs more contributions than the round has.
    #[error("{rule} needs at least {needed} contributions, the round has {have}")]
    TooFew {
        /// The rule.
        rule: &'static str,
        /// How many it needs.
        needed: usize,
        /// How many there are.
        have: usize,
    },
    /// The rule's configuration is invalid.
    #[error("invalid aggregator config: {0}")]
    Config(String),
}

/// A rule that combines a round's contributions.
pub trait Aggregator: Send + std::fmt::Debug + 'static {
    /// The rule's name (`"fedavg"`, `"median"`, `"trimmed_mean"`, `"krum"`).
    fn kind(&self) -> &'static str;

    /// Combines `contributions` — at least one, sorted by peer, every
    /// update finite and of the same length — into one update.
    fn combine(&self, contributions: &[Contribution]) -> Result<Tensor, AggregatorError>;
}

/// What an [`AggregationRound`] has counted since it was made.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AggregatorStats {
    /// Contributions accepted (replacements included).
    pub accepted: u64,
    /// Contributions that replaced an earlier one of the same peer.
    pub replaced: u64,
    /// Contributions refused (shape, non-finite, weight).
    pub refused: u64,
    /// Rounds aggregated.
    pub rounds: u64,
}

/// The contributions of the current round, checked, plus the rule that combines them.
#[derive(Debug)]
pub struct AggregationRound {
    rule: Box<dyn Aggregator>,
    pending: BTreeMap<PeerId, Contribution>,
    len: Option<usize>,
    stats: AggregatorStats,
}

impl AggregationRound {
    /// An empty round combined by `rule`.
    pub fn new(rule: Box<dyn Aggregator>) -> Self {
        Self {
            rule,
            pending: BTreeMap::new(),
            len: None,
            stats: AggregatorStats::default(),
        }
    }

    /// The rule.
    pub fn rule(&self) -> &dyn Aggregator {
        self.rule.as_ref()
    }

    /// Checks and records `contribution`; refusals are counted.
    pub fn contribute(&mut self, contribution: Contribution) -> Result<(), AggregatorError> {
        let checked = self.check(&contribution);
        if let Err(error) = checked {
            self.stats.refused += 1;
            return Err(error);
        }
        self.len.get_or_insert(contribution.update.len());
        self.stats.accepted += 1;
        if self
            .pending
            .insert(contribution.peer, contribution)
            .is_some()
        {
            self.stats.replaced += 1;
        }
        Ok(())
    }

    fn check(&self, c: &Contribution) -> Result<(), AggregatorError> {
        if !(c.weight.is_finite() && c.weight > 0.0) {
            return Err(AggregatorError::Weight {
                peer: c.peer,
                weight: c.weight,
            });
        }
        let expected = self.len.unwrap_or(c.update.len());
        let values = c.update.as_f32().filter(|_| c.update.rank() == 1);
        let Some(values) = values.filter(|v| v.len() == expected) else {
            return Err(AggregatorError::Shape {
                peer: c.peer,
                expected,
                found: c.update.shape().to_vec(),
            });
        };
        if let Some(index) = values.iter().position(|v| !v.is_finite()) {
            return Err(AggregatorError::NotFinite {
                peer: c.peer,
                index,
            });
        }
        Ok(())
    }

    /// Contributions waiting in this round.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// The peers that contributed this round, ascending.
    pub fn contributors(&self) -> Vec<PeerId> {
        self.pending.keys().copied().collect()
    }

    /// Combines the round and starts the next one (also when the rule refuses).
    pub fn aggregate(&mut self) -> Result<Tensor, AggregatorError> {
        let contributions: Vec<Contribution> =
            std::mem::take(&mut self.pending).into_values().collect();
        self.len = None;
        if contributions.is_empty() {
            return Err(AggregatorError::TooFew {
                rule: self.rule.kind(),
                needed: 1,
                have: 0,
            });
        }
        let result = self.rule.combine(&contributions)?;
        self.stats.rounds += 1;
        Ok(result)
    }

    /// The counters.
    pub fn stats(&self) -> AggregatorStats {
        self.stats
    }

    /// The contributions waiting in this round, by peer (for snapshots).
    pub fn pending_contributions(&self) -> impl Iterator<Item = &Contribution> {
        self.pending.values()
    }

    /// Puts back contributions and counters a snapshot captured: each
    /// contribution is checked again, and one that fails is refused.
    pub fn restore(
        &mut self,
        contributions: Vec<Contribution>,
        stats: AggregatorStats,
    ) -> Result<(), AggregatorError> {
        self.pending.clear();
        self.len = None;
        for contribution in contributions {
            self.check(&contribution)?;
            self.len.get_or_insert(contribution.update.len());
            self.pending.insert(contribution.peer, contribution);
        }
        self.stats = stats;
        Ok(())
    }
}
