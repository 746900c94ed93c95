//! What a learning job is made of, as plain values: the model, the aggregation rule and the update codec, each parsed from the short strings the `learn` example takes (`mlp:64,32`, `trimmed:0.1`, `topk:50`) and built into the role it names.

use std::fmt;
use std::str::FromStr;

use crate::roles::{
    Aggregator, AggregatorError, Codec, CodecError, FedAvg, Identity, Int8, Krum, Median, Mlp,
    Model, ModelError, Sgd, SoftmaxRegression, TopK, TrimmedMean, F16,
};

/// A spec string that names no known choice, or carries a bad number.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("`{given}` is not a valid {what}: {why}")]
pub struct SpecError {
    /// What was being parsed (`model`, `aggregator`, `codec`, ...).
    pub what: &'static str,
    /// The string given.
    pub given: String,
    /// Why it was refused, and what is accepted.
    pub why: String,
}

fn spec_error(what: &'static str, given: &str, why: impl Into<String>) -> SpecError {
    SpecError {
        what,
        given: given.to_owned(),
        why: why.into(),
    }
}

/// The model every Node trains.
#[derive(Clone, Debug, PartialEq)]
pub enum ModelSpec {
    /// Multinomial logistic regression, zero-initialised (the reference job's model).
    Softmax,
    /// A ReLU multi-layer perceptron with these hidden widths, He-initialised from the job's seed.
    Mlp(Vec<usize>),
}

/// Optimiser settings shared by every Node of a job.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct OptimizerSpec {
    /// Learning rate (the reference job's 0.5 by default).
    pub lr: f32,
    /// Momentum (0 by default).
    pub momentum: f32,
    /// Weight decay (0 by default).
    pub weight_decay: f32,
}

impl Default for OptimizerSpec {
    fn default() -> Self {
        Self {
            lr: 0.5,
            momentum: 0.0,
            weight_decay: 0.0,
        }
    }
}

impl OptimizerSpec {
    /// The SGD optimiser these settings describe.
    pub fn sgd(&self) -> Result<Sgd, ModelError> {
        Sgd::new(self.lr)?
            .with_momentum(self.momentum)?
            .with_weight_decay(self.weight_decay)
    }
}

impl ModelSpec {
    /// Builds a fresh model for `features` inputs and `classes` outputs.
    /// Every call with the same arguments gives the same parameters.
    pub fn build(
        &self,
        features: usize,
        classes: usize,
        optimizer: &OptimizerSpec,
        seed: u64,
    ) -> Result<Box<dyn Model>, ModelError> {
        let sgd = optimizer.sgd()?;
        Ok(match self {
            Self::Softmax => Box::new(SoftmaxRegression::new(features, classes, sgd)?),
            Self::Mlp(hidden) => Box::new(Mlp::new(features, hidden, classes, sgd, seed)?),
        })
    }
}

impl fmt::Display for ModelSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Softmax => f.write_str("softmax"),
            Self::Mlp(hidden) => {
                let widths: Vec<String> = hidden.iter().map(ToString::to_string).collect();
                write!(f, "mlp:{}", widths.join(","))
            }
        }
    }
}

impl FromStr for ModelSpec {
    type Err = SpecError;

    fn from_str(s: &str) -> Result<Self, SpecError> {
        const WHAT: &str = "model";
        if s == "softmax" {
            return Ok(Self::Softmax);
        }
        let Some(widths) = s.strip_prefix("mlp:") else {
            return Err(spec_error(WHAT, s, "use `softmax` or `mlp:H1,H2,...`"));
        };
        let hidden = widths
            .split(',')
            .map(|w| match w.trim().parse::<usize>() {
                Ok(n) if n > 0 => Ok(n),
                _ => Err(spec_error(
                    WHAT,
                    s,
                    format!("hidden width `{w}` is not a positive integer"),
                )),
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self::Mlp(hidden))
    }
}

/// The rule a FedAvg server combines updates with.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum AggregatorSpec {
    /// Sample-weighted mean.
    FedAvg,
    /// Coordinate-wise median.
    Median,
    /// Coordinate-wise mean after dropping the `β` fraction at each end.
    Trimmed(f64),
    /// Krum tolerating `f` faulty contributions (one selected).
    Krum(usize),
}

impl AggregatorSpec {
    /// Builds the rule.
    pub fn build(&self) -> Result<Box<dyn Aggregator>, AggregatorError> {
        Ok(match *self {
            Self::FedAvg => Box::new(FedAvg),
            Self::Median => Box::new(Median),
            Self::Trimmed(beta) => Box::new(TrimmedMean::new(beta)?),
            Self::Krum(f) => Box::new(Krum::new(f, 1)?),
        })
    }
}

impl fmt::Display for AggregatorSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::FedAvg => f.write_str("fedavg"),
            Self::Median => f.write_str("median"),
            Self::Trimmed(beta) => write!(f, "trimmed:{beta}"),
            Self::Krum(n) => write!(f, "krum:{n}"),
        }
    }
}

impl FromStr for AggregatorSpec {
    type Err = SpecError;

    fn from_str(s: &str) -> Result<Self, SpecError> {
        const WHAT: &str = "aggregator";
        const USE: &str = "use `fedavg`, `median`, `trimmed:BETA` or `krum:F`";
        match s {
            "fedavg" => return Ok(Self::FedAvg),
            "median" => return Ok(Self::Median),
            _ => {}
        }
        if let Some(beta) = s.strip_prefix("trimmed:") {
            return match beta.parse::<f64>() {
                Ok(b) if (0.0..0.5).contains(&b) => Ok(Self::Trimmed(b)),
                _ => Err(spec_error(WHAT, s, "BETA must be a number in [0, 0.5)")),
            };
        }
        if let Some(f) = s.strip_prefix("krum:") {
            return f
                .parse::<usize>()
                .map(Self::Krum)
                .map_err(|_| spec_error(WHAT, s, "F must be a non-negative integer"));
        }
        Err(spec_error(WHAT, s, USE))
    }
}

/// How model updates are encoded on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CodecSpec {
    /// Plain f32.
    Identity,
    /// IEEE half precision.
    F16,
    /// int8 with a per-tensor scale.
    Int8,
    /// The `k` largest-magnitude entries, with error feedback.
    TopK(usize),
}

impl CodecSpec {
    /// Builds the codec (each Node gets its own: top-k keeps a residual).
    pub fn build(&self) -> Result<Box<dyn Codec>, CodecError> {
        Ok(match *self {
            Self::Identity => Box::new(Identity),
            Self::F16 => Box::new(F16),
            Self::Int8 => Box::new(Int8),
            Self::TopK(k) => Box::new(TopK::new(k)?),
        })
    }
}

impl fmt::Display for CodecSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Identity => f.write_str("identity"),
            Self::F16 => f.write_str("f16"),
            Self::Int8 => f.write_str("int8"),
            Self::TopK(k) => write!(f, "topk:{k}"),
        }
    }
}

impl FromStr for CodecSpec {
    type Err = SpecError;

    fn from_str(s: &str) -> Result<Self, SpecError> {
        const WHAT: &str = "codec";
        match s {
            "identity" => return Ok(Self::Identity),
            "f16" => return Ok(Self::F16),
            "int8" => return Ok(Self::Int8),
            _ => {}
        }
        if let Some(k) = s.strip_prefix("topk:") {
            return match k.parse::<usize>() {
                Ok(k) if k > 0 => Ok(Self::TopK(k)),
                _ => Err(spec_error(WHAT, s, "K must be a positive integer")),
            };
        }
        Err(spec_error(
            WHAT,
            s,
            "use `identity`, `f16`, `int8` or `topk:K`",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_spec_parses_back_from_its_display() {
        for s in ["softmax", "mlp:64,32", "mlp:8"] {
            assert_eq!(s.parse::<ModelSpec>().unwrap().to_string(), s);
        }
        for s in ["fedavg", "median", "trimmed:0.1", "krum:3"] {
            assert_eq!(s.parse::<AggregatorSpec>().unwrap().to_string(), s);
        }
        for s in ["identity", "f16", "int8", "topk:50"] {
            assert_eq!(s.parse::<CodecSpec>().unwrap().to_string(), s);
        }
    }

    #[test]
    fn bad_specs_are_refused_with_what_is_accepted() {
        let e = "mlp:0".parse::<ModelSpec>().unwrap_err();
        assert_eq!(e.what, "model");
        assert!("mlp:".parse::<ModelSpec>().is_err());
        assert!("cnn".parse::<ModelSpec>().is_err());
        assert!("trimmed:0.5".parse::<AggregatorSpec>().is_err());
        assert!("krum:-1".parse::<AggregatorSpec>().is_err());
        let e = "gzip".parse::<CodecSpec>().unwrap_err();
        assert!(e.to_string().contains("topk:K"), "{e}");
        assert!("topk:0".parse::<CodecSpec>().is_err());
    }

    #[test]
    fn models_build_with_the_stated_parameter_counts() {
        let opt = OptimizerSpec::default();
        let softmax = ModelSpec::Softmax.build(64, 10, &opt, 0).unwrap();
        assert_eq!(softmax.flat().len(), 64 * 10 + 10);
        let mlp = ModelSpec::Mlp(vec![16]).build(64, 10, &opt, 7).unwrap();
        assert_eq!(mlp.flat().len(), 64 * 16 + 16 + 16 * 10 + 10);
    }
}
