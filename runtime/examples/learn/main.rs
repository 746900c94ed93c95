//! `learn`: many Nodes, each an actor thread, train one model together, and the algorithms are compared.
//!
//! With no arguments it splits the embedded handwritten digits over 100
//! client Nodes with the reference job's IID partition and runs, one after
//! the other on the same data:
//!
//! * **FedAvg** ([`FedAvgJob`] with [`FedAvgConfig::default`], the
//!   reference job: softmax regression, 20 rounds, every client every
//!   round) over the 100 clients and a server Node;
//! * **gossip learning** ([`GossipJob`]: every Node trains on its own
//!   timer, pushes its model to 8 sampled peers and blends what it
//!   receives by age) over the same 100 Nodes (`--algo dpsgd` or `all`
//!   adds **D-PSGD**, [`DpsgdJob`], on a random 8-regular graph);
//! * a **centralized** baseline: one model trained on the union of the
//!   clients' rows ([`centralized`]), no Nodes.
//!
//! While a run works it shows a progress bar (round, test accuracy and
//! loss, rounds per second and model bytes per second on the wire, both
//! from the run's own round reports); `--quiet` hides the bars. At the end
//! it prints a closing table (algorithm, Nodes, final accuracy, rounds,
//! wall time, bytes on the wire, and the runtime's message account:
//! accepted, processed, dropped, lost), writes `learn-report.json`
//! (`{"runs": [RunReport...], "peak_rss_bytes": N}`) and draws test
//! accuracy per round, one line per algorithm, into `learn-accuracy.svg`.
//!
//! It exits 1 if a run fails, loses a message (accepted ≠ processed, or
//! any dropped or lost) or does not learn (final accuracy not finite or
//! not above 1.5 / classes), saying why; 2 on bad arguments. `--help`
//! lists the options.
//!
//! Run: `cargo run --release -p nodeflow --example learn -- --algo fedavg --nodes 10 --rounds 5`

mod cli;
mod plot;
mod table;

use std::process::ExitCode;
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};
use nodeflow::learning::{
    centralized, federated_data, DpsgdConfig, DpsgdJob, FedAvgConfig, FedAvgJob, FederatedData,
    GossipConfig, GossipJob, LearnError, RoundReport, RunReport,
};

use cli::{Algo, Command, Options};

fn main() -> ExitCode {
    let options = match cli::parse(std::env::args().skip(1)) {
        Ok(Command::Help) => {
            println!("{}", cli::USAGE);
            return ExitCode::SUCCESS;
        }
        Ok(Command::Run(options)) => *options,
        Err(message) => {
            eprintln!("learn: {message}\n\n{}", cli::USAGE);
            return ExitCode::from(2);
        }
    };
    let data = match federated_data(
        &options.data,
        options.nodes,
        options.partition,
        options.seed,
    ) {
        Ok(data) => data,
        Err(e) => {
            eprintln!("learn: could not prepare the data ({}): {e}", options.data);
            return ExitCode::FAILURE;
        }
    };
    let classes = data.classes();
    let rows: usize = data.clients.iter().map(|c| c.len()).sum();
    println!(
        "data: {} ({rows} training rows over {} clients, partition {}, {} test rows, {} features, {classes} classes)",
        options.data,
        data.clients.len(),
        data.partition,
        data.test.len(),
        data.features(),
    );

    let mut runs = Vec::new();
    let mut failures = Vec::new();
    for &algo in &options.algos {
        let bar = progress_bar(&options, algo);
        let mut wire = 0u64;
        let mut progress = |row: &RoundReport| {
            wire += row.bytes_sent;
            bar.set_position(row.round);
            bar.set_message(round_message(row, wire));
        };
        let started = Instant::now();
        let outcome = run_algo(algo, &options, &data, &mut progress);
        bar.finish_and_clear();
        match outcome {
            Ok(Some(run)) => {
                println!(
                    "{algo}: {} rounds, final accuracy {:.4}, {:.2} s",
                    run.rounds.len().saturating_sub(1),
                    run.final_accuracy,
                    run.wall_seconds,
                );
                failures.extend(check(&run, classes));
                runs.push(run);
            }
            Ok(None) => println!("{algo}: not available in this build; skipped"),
            Err(e) => {
                let why = format!(
                    "{algo}: failed after {:.2} s: {e}",
                    started.elapsed().as_secs_f64()
                );
                eprintln!("{why}");
                failures.push(why);
            }
        }
    }

    println!();
    print!("{}", table::render(&runs));
    let peak = peak_rss_bytes();
    println!(
        "peak RSS {}",
        if peak > 0 {
            table::human_bytes(peak)
        } else {
            "unavailable".into()
        }
    );

    let report = Report {
        runs: &runs,
        peak_rss_bytes: peak,
    };
    match serde_json::to_string_pretty(&report)
        .map_err(|e| e.to_string())
        .and_then(|text| std::fs::write(&options.report, text).map_err(|e| e.to_string()))
    {
        Ok(()) => println!("report: {}", options.report.display()),
        Err(e) => failures.push(format!(
            "could not write the report {}: {e}",
            options.report.display()
        )),
    }
    match plot::accuracy_chart(&options.plot, &runs) {
        Ok(()) => println!("chart: {}", options.plot.display()),
        Err(e) => failures.push(format!(
            "could not draw the chart {}: {e}",
            options.plot.display()
        )),
    }

    if failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        for why in &failures {
            eprintln!("learn: FAILED: {why}");
        }
        ExitCode::FAILURE
    }
}

/// The JSON report: every run that finished, and the process's peak RSS.
#[derive(serde::Serialize)]
struct Report<'a> {
    runs: &'a [RunReport],
    peak_rss_bytes: u64,
}

/// The FedAvg settings the options ask for (the reference job's otherwise).
fn fedavg_config(options: &Options) -> FedAvgConfig {
    FedAvgConfig {
        rounds: options.rounds,
        seed: options.seed,
        model: options.model.clone(),
        aggregator: options.aggregator,
        codec: options.codec,
        byzantine: options.byzantine,
        ..FedAvgConfig::default()
    }
}

/// Runs one algorithm on `data`, calling `progress` after every round.
/// `Ok(None)`: the algorithm is not in this build of the library.
///
/// Gossip learning and D-PSGD go in their arms below, built the same way
/// as FedAvg: `GossipJob::new(config, data.clone())?.run(progress)` with
/// a config made from `options`.
fn run_algo(
    algo: Algo,
    options: &Options,
    data: &FederatedData,
    progress: &mut dyn FnMut(&RoundReport),
) -> Result<Option<RunReport>, LearnError> {
    match algo {
        Algo::FedAvg => {
            let job = FedAvgJob::new(fedavg_config(options), data.clone())?;
            job.run(progress).map(Some)
        }
        Algo::Dpsgd => {
            let config = DpsgdConfig {
                rounds: options.rounds,
                seed: options.seed,
                model: options.model.clone(),
                ..DpsgdConfig::default()
            };
            DpsgdJob::new(config, data.clone())?.run(progress).map(Some)
        }
        Algo::Gossip => {
            let config = GossipConfig {
                cycles: options.rounds,
                seed: options.seed,
                model: options.model.clone(),
                ..GossipConfig::default()
            };
            GossipJob::new(config, data.clone())?
                .run(progress)
                .map(Some)
        }
        Algo::Centralized => centralized(&fedavg_config(options), data, progress).map(Some),
    }
}

/// Why `run` fails the example, if it does: a message not accounted for,
/// or a model that did not learn.
fn check(run: &RunReport, classes: usize) -> Vec<String> {
    let mut why = Vec::new();
    let m = run.messages;
    if !m.balanced() {
        why.push(format!(
            "{}: messages not accounted for (accepted {}, processed {}, dropped {}, lost {})",
            run.algo, m.accepted, m.processed, m.dropped, m.lost
        ));
    }
    if !run.learned(classes) {
        why.push(format!(
            "{}: diverged or did not learn (final accuracy {}, needs a finite value above 1.5/{classes} = {:.3})",
            run.algo,
            run.final_accuracy,
            1.5 / classes.max(1) as f64
        ));
    }
    why
}

/// A run's progress bar: one step per round; hidden with `--quiet` (and
/// by indicatif itself when stderr is not a terminal).
fn progress_bar(options: &Options, algo: Algo) -> ProgressBar {
    if options.quiet {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(options.rounds as u64);
    let style = ProgressStyle::with_template(
        "{prefix:>12} [{bar:30}] {pos:>3}/{len} {elapsed_precise} {msg}",
    )
    .expect("a valid progress template")
    .progress_chars("=> ");
    bar.set_style(style);
    bar.set_prefix(algo.name());
    bar
}

/// The bar's message after `row`: the round's accuracy and loss, and the
/// rates since the run started (rounds/s; model bytes sent per second,
/// `wire` being the bytes of every round so far).
fn round_message(row: &RoundReport, wire: u64) -> String {
    let seconds = row.seconds.max(1e-9);
    format!(
        "round {}  acc {:.4}  loss {:.4}  {:.1} rounds/s  {}/s on the wire",
        row.round,
        row.accuracy,
        row.loss,
        row.round as f64 / seconds,
        table::human_bytes((wire as f64 / seconds) as u64),
    )
}

/// Peak resident set size of this process (`VmHWM` in `/proc/self/status`), in bytes; 0 where unavailable.
fn peak_rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status.lines().find_map(|line| {
                line.strip_prefix("VmHWM:").and_then(|rest| {
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
