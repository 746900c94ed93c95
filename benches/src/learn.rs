//! The `learn` workloads: the reference FedAvg job through Nodes
//! ([`FedAvgJob`], a server and its clients each on an actor thread) side
//! by side with the same math as a plain single-threaded loop
//! ([`plain_fedavg`]), and a federation of many client Nodes run to the
//! end with its memory per Node.
//!
//! Timing: a run's *seconds per round* is the time of its rounds alone,
//! from the round-0 evaluation to the last round's report (both sides
//! stamp their rows the same way), so the Nodes' spawn and shutdown are
//! not in it; they are in its wall time, reported next to it.

use std::time::{Duration, Instant};

use nodeflow::learning::{
    federated_data, plain_fedavg, DataSpec, FedAvgConfig, FedAvgJob, FederatedData, PartitionSpec,
    RoundReport, RunReport,
};

use crate::BenchError;

/// Largest difference in final accuracy between the Nodes and the plain
/// loop that still counts as the same result.
pub const ACCURACY_TOLERANCE: f64 = 0.005;

/// One run of a learning job, as the bench reports it.
#[derive(Clone, Debug)]
pub struct LearnRun {
    /// Rounds run (round 0, the untrained model, not counted).
    pub rounds: usize,
    /// Seconds of the rounds alone, divided by their number.
    pub seconds_per_round: f64,
    /// Seconds from the start of the run to its report (spawn and shutdown included).
    pub wall_seconds: f64,
    /// Test accuracy after the last round.
    pub final_accuracy: f64,
    /// The library's report.
    pub report: RunReport,
}

impl LearnRun {
    /// Reads the timing out of `report`.
    pub fn from_report(report: RunReport) -> Self {
        let rounds = report.rounds.len().saturating_sub(1);
        let span = match (report.rounds.first(), report.rounds.last()) {
            (Some(first), Some(last)) => last.seconds - first.seconds,
            _ => f64::NAN,
        };
        Self {
            rounds,
            seconds_per_round: span / rounds.max(1) as f64,
            wall_seconds: report.wall_seconds,
            final_accuracy: report.final_accuracy,
            report,
        }
    }
}

/// The median of `values` (the mean of the middle two for an even count; NaN when empty).
pub fn median(values: &[f64]) -> f64 {
    let mut sorted: Vec<f64> = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    match sorted.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

/// The data of a `clients`-client IID job on the embedded digits (100
/// clients get the reference `iid-100` partition).
pub fn digits(clients: usize, seed: u64) -> Result<FederatedData, BenchError> {
    federated_data(&DataSpec::Digits, clients, PartitionSpec::Iid, seed)
        .map_err(|e| BenchError::Setup(format!("data for {clients} clients: {e}")))
}

/// The reference job's config ([`FedAvgConfig::default`]) with `rounds` rounds.
pub fn reference_config(rounds: usize) -> FedAvgConfig {
    FedAvgConfig {
        rounds,
        ..FedAvgConfig::default()
    }
}

fn check_nodes(run: &RunReport, clients: usize, classes: usize) -> Result<(), BenchError> {
    let m = run.messages;
    if !m.balanced() {
        return Err(BenchError::Verification(format!(
            "{} clients: messages not accounted for (accepted {}, processed {}, dropped {}, lost {})",
            clients, m.accepted, m.processed, m.dropped, m.lost
        )));
    }
    if let Some(row) = run
        .rounds
        .iter()
        .skip(1)
        .find(|r| r.contributors != clients as u64 || r.stragglers != 0)
    {
        return Err(BenchError::Verification(format!(
            "{} clients: round {} had {} contributors and {} stragglers",
            clients, row.round, row.contributors, row.stragglers
        )));
    }
    if !run.learned(classes) {
        return Err(BenchError::Verification(format!(
            "{clients} clients: final accuracy {} is not above chance",
            run.final_accuracy
        )));
    }
    Ok(())
}

/// Runs `config` over `data` through Nodes and checks the run: every
/// message accounted for, every client in every round, above chance.
pub fn nodes_run(config: &FedAvgConfig, data: &FederatedData) -> Result<LearnRun, BenchError> {
    let job = FedAvgJob::new(config.clone(), data.clone())
        .map_err(|e| BenchError::Setup(e.to_string()))?;
    let report = job
        .run(&mut |_: &RoundReport| {})
        .map_err(|e| BenchError::Verification(format!("the Nodes' run: {e}")))?;
    check_nodes(&report, data.clients.len(), data.classes())?;
    Ok(LearnRun::from_report(report))
}

/// Runs `config` over `data` as the plain single-threaded loop.
pub fn plain_run(config: &FedAvgConfig, data: &FederatedData) -> Result<LearnRun, BenchError> {
    let report = plain_fedavg(config, data, &mut |_: &RoundReport| {})
        .map_err(|e| BenchError::Verification(format!("the plain loop: {e}")))?;
    Ok(LearnRun::from_report(report))
}

/// One repetition of the reference comparison: the Nodes, then the plain loop.
#[derive(Clone, Debug)]
pub struct LearnPair {
    /// Through Nodes.
    pub nodes: LearnRun,
    /// The plain loop.
    pub plain: LearnRun,
}

/// Runs the job through Nodes and as the plain loop `reps` times (one
/// after the other in each repetition) and checks that every pair ends at
/// the same accuracy within [`ACCURACY_TOLERANCE`].
pub fn compare(
    config: &FedAvgConfig,
    data: &FederatedData,
    reps: usize,
) -> Result<Vec<LearnPair>, BenchError> {
    if reps == 0 {
        return Err(BenchError::Usage("--reps must be at least 1".into()));
    }
    let mut pairs = Vec::with_capacity(reps);
    for rep in 0..reps {
        let nodes = nodes_run(config, data)?;
        let plain = plain_run(config, data)?;
        let gap = (nodes.final_accuracy - plain.final_accuracy).abs();
        if gap.is_nan() || gap > ACCURACY_TOLERANCE {
            return Err(BenchError::Verification(format!(
                "repetition {rep}: Nodes reached {:.4}, the plain loop {:.4} (more than {ACCURACY_TOLERANCE} apart)",
                nodes.final_accuracy, plain.final_accuracy
            )));
        }
        pairs.push(LearnPair { nodes, plain });
    }
    Ok(pairs)
}

/// A many-Node federation run to the end, with its memory.
#[derive(Clone, Debug)]
pub struct BigRun {
    /// The run.
    pub run: LearnRun,
    /// Seconds to spawn the server and every client.
    pub spawn_seconds: f64,
    /// Resident set size before the Nodes were spawned, in bytes.
    pub rss_before: u64,
    /// Resident set size with every Node spawned and idle, in bytes.
    pub rss_spawned: u64,
    /// Peak resident set size over the run (since a reset before spawning where Linux allows it), in bytes.
    pub rss_peak: u64,
    /// Whether the peak was reset before spawning (`/proc/self/clear_refs`); when not, the peak may predate the run.
    pub peak_reset: bool,
}

impl BigRun {
    /// Nodes of the run: the clients and the server.
    pub fn nodes(&self) -> usize {
        self.run.report.nodes + 1
    }

    /// Peak RSS over the run above the RSS before spawning, per Node.
    pub fn peak_bytes_per_node(&self) -> f64 {
        self.rss_peak.saturating_sub(self.rss_before) as f64 / self.nodes() as f64
    }

    /// RSS with every Node idle above the RSS before spawning, per Node.
    pub fn spawned_bytes_per_node(&self) -> f64 {
        self.rss_spawned.saturating_sub(self.rss_before) as f64 / self.nodes() as f64
    }
}

/// A `/proc/self/status` field in bytes (0 where unavailable).
pub fn status_bytes(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status.lines().find_map(|line| {
                line.strip_prefix(field)
                    .and_then(|rest| rest.strip_prefix(':'))
                    .and_then(|rest| {
                        rest.trim()
                            .trim_end_matches("kB")
                            .trim()
                            .parse::<u64>()
                            .ok()
                    })
            })
        })
        .map_or(0, |kib| kib * 1024)
}

/// Runs `config` over `data` through Nodes to the end, measuring RSS
/// before spawning, with every Node spawned, and at the peak; checks the
/// run as [`nodes_run`] does.
pub fn big_run(config: &FedAvgConfig, data: &FederatedData) -> Result<BigRun, BenchError> {
    let job = FedAvgJob::new(config.clone(), data.clone())
        .map_err(|e| BenchError::Setup(e.to_string()))?;
    // "5" resets the peak RSS (VmHWM) to the current RSS (Linux 4.0+).
    let peak_reset = std::fs::write("/proc/self/clear_refs", "5").is_ok();
    let rss_before = status_bytes("VmRSS");
    let spawning = Instant::now();
    let mut run = job
        .start(&[])
        .map_err(|e| BenchError::Setup(format!("spawning the Nodes: {e}")))?;
    let spawn_seconds = spawning.elapsed().as_secs_f64();
    let rss_spawned = status_bytes("VmRSS");
    let mut rounds = || -> Result<(), BenchError> {
        let fail = |e: nodeflow::learning::LearnError| {
            BenchError::Verification(format!("{} clients: {e}", data.clients.len()))
        };
        run.evaluate().map_err(fail)?;
        for _ in 0..config.rounds {
            run.round().map_err(fail)?;
        }
        Ok(())
    };
    let outcome = rounds();
    let report = run.finish(Duration::from_secs(30));
    outcome?;
    let rss_peak = status_bytes("VmHWM");
    check_nodes(&report, data.clients.len(), data.classes())?;
    Ok(BigRun {
        run: LearnRun::from_report(report),
        spawn_seconds,
        rss_before,
        rss_spawned,
        rss_peak,
        peak_reset,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_even_and_empty() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!(median(&[]).is_nan());
    }

    #[test]
    fn nodes_and_plain_loop_agree_on_a_small_job() {
        let data = digits(10, 0).unwrap();
        let pairs = compare(&reference_config(2), &data, 1).unwrap();
        assert_eq!(pairs[0].nodes.rounds, 2);
        assert_eq!(pairs[0].plain.rounds, 2);
        assert!(pairs[0].nodes.report.messages.accepted > 0);
    }
}
