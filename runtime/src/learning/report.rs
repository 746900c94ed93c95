//! What a learning run reports: one row per round (or gossip cycle) and the totals, serialisable as the `learn` example's JSON report.

use serde::Serialize;

use crate::runtime::ShutdownReport;

/// One round of a run (for gossip learning, one cycle: every Node trained once more).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RoundReport {
    /// The round; 0 is the model before any training.
    pub round: u64,
    /// Test accuracy after the round (for serverless runs, the mean over Nodes).
    pub accuracy: f64,
    /// Test loss after the round (mean cross-entropy; mean over Nodes when serverless).
    pub loss: f64,
    /// Wall-clock seconds since the run started.
    pub seconds: f64,
    /// Bytes of model traffic this round, as encoded on the wire.
    pub bytes_sent: u64,
    /// Updates that made it into the round.
    pub contributors: u64,
    /// Sampled Nodes that did not answer in time.
    pub stragglers: u64,
}

/// Mailbox accounting of a run's Nodes, summed at shutdown.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct MessageTotals {
    /// Messages accepted into the Nodes' mailboxes.
    pub accepted: u64,
    /// Accepted messages processed.
    pub processed: u64,
    /// Accepted messages dropped when a Node closed.
    pub dropped: u64,
    /// Accepted messages a restart rolled back.
    pub lost: u64,
}

impl MessageTotals {
    /// The totals of a runtime's shutdown report.
    pub fn from_shutdown(report: &ShutdownReport) -> Self {
        Self {
            accepted: report.totals.accepted,
            processed: report.totals.processed,
            dropped: report.totals.dropped_at_close,
            lost: report.totals.lost_in_restart,
        }
    }

    /// Whether every accepted message was processed.
    pub fn balanced(&self) -> bool {
        self.accepted == self.processed && self.dropped == 0 && self.lost == 0
    }
}

/// A whole run.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RunReport {
    /// `fedavg`, `dpsgd`, `gossip` or `centralized`.
    pub algo: String,
    /// Client (worker) Nodes; a FedAvg server comes on top.
    pub nodes: usize,
    /// How the training data was split (`iid`, `dirichlet:0.5`, `reference:iid-100`, ...).
    pub partition: String,
    /// The model spec.
    pub model: String,
    /// The aggregation rule (FedAvg) or merge rule (serverless).
    pub aggregator: String,
    /// The update codec.
    pub codec: String,
    /// Every round, starting with round 0.
    pub rounds: Vec<RoundReport>,
    /// Test accuracy after the last round.
    pub final_accuracy: f64,
    /// Wall-clock seconds of the run, from the first Node spawned to shutdown.
    pub wall_seconds: f64,
    /// Mailbox accounting at shutdown.
    pub messages: MessageTotals,
    /// Restarts of Nodes by their supervisors.
    pub restarts: u64,
    /// Total bytes of model traffic.
    pub bytes_sent: u64,
}

impl RunReport {
    /// Whether the final accuracy is a finite number above chance for `classes` classes.
    pub fn learned(&self, classes: usize) -> bool {
        self.final_accuracy.is_finite() && self.final_accuracy > 1.5 / classes.max(1) as f64
    }
}
