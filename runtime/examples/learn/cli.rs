//! The `learn` example's command line, parsed by hand: every value goes
//! through the library's own `FromStr` specs, so a bad one is refused with
//! the same message the library gives.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use nodeflow::learning::{AggregatorSpec, CodecSpec, DataSpec, ModelSpec, PartitionSpec};

/// What `--help` and a refused argument print.
pub const USAGE: &str = "\
usage: learn [OPTIONS]

Trains a model over many Nodes (each an actor thread) and compares the
algorithms: FedAvg (clients and a server), D-PSGD, gossip learning, and a
centralized baseline on the union of the clients' data.

options:
  --algo A           fedavg | dpsgd | gossip | centralized | all  [all]
                     (all = fedavg, dpsgd, gossip, centralized)
  --nodes N          client Nodes; FedAvg adds its server       [100]
  --rounds R         rounds (gossip: cycles)                    [20]
  --partition P      iid | dirichlet:ALPHA                      [iid]
  --model M          softmax | mlp:H1,H2,...                    [softmax]
  --aggregator G     fedavg | median | trimmed:BETA | krum:F    [fedavg]
  --codec C          identity | f16 | int8 | topk:K             [identity]
  --byzantine N      the last N clients send garbage            [0]
  --data D           digits | idx:DIR (MNIST-format IDX files)  [digits]
  --seed S           seed of the partition, model and sampling  [0]
  --report PATH      JSON report                                [learn-report.json]
  --plot PATH        SVG chart of test accuracy per round       [learn-accuracy.svg]
  --quiet            no progress bars
  --help             this text

On the embedded digits, 10 or 100 IID clients (and 10 Dirichlet(0.5)
clients) get the reference job's partitions. Exit status: 0 when every run
learned and accounted for every message, 1 otherwise, 2 on bad arguments.";

/// One algorithm the example can run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Algo {
    /// FedAvg: client Nodes and a server Node.
    FedAvg,
    /// Decentralized parallel SGD over a peer topology.
    Dpsgd,
    /// Gossip learning: every Node trains and merges with random peers.
    Gossip,
    /// One model on the union of the clients' data, no Nodes.
    Centralized,
}

impl Algo {
    /// Every algorithm, in the order `--algo all` runs them.
    pub const ALL: [Algo; 4] = [Algo::FedAvg, Algo::Dpsgd, Algo::Gossip, Algo::Centralized];

    /// The name used on the command line and in the report.
    pub fn name(self) -> &'static str {
        match self {
            Algo::FedAvg => "fedavg",
            Algo::Dpsgd => "dpsgd",
            Algo::Gossip => "gossip",
            Algo::Centralized => "centralized",
        }
    }
}

impl fmt::Display for Algo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Every setting of a run, with the defaults of [`USAGE`].
#[derive(Clone, Debug)]
pub struct Options {
    /// The algorithms to run, in order.
    pub algos: Vec<Algo>,
    /// Client (worker) Nodes.
    pub nodes: usize,
    /// Rounds (gossip: cycles).
    pub rounds: usize,
    /// How the training rows are split.
    pub partition: PartitionSpec,
    /// The model every Node trains.
    pub model: ModelSpec,
    /// The FedAvg server's rule.
    pub aggregator: AggregatorSpec,
    /// How updates are encoded on the wire.
    pub codec: CodecSpec,
    /// Byzantine clients (the last ones).
    pub byzantine: usize,
    /// Where the data comes from.
    pub data: DataSpec,
    /// Seed of everything seeded.
    pub seed: u64,
    /// Where the JSON report goes.
    pub report: PathBuf,
    /// Where the SVG chart goes.
    pub plot: PathBuf,
    /// Hide the progress bars.
    pub quiet: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            algos: Algo::ALL.to_vec(),
            nodes: 100,
            rounds: 20,
            partition: PartitionSpec::Iid,
            model: ModelSpec::Softmax,
            aggregator: AggregatorSpec::FedAvg,
            codec: CodecSpec::Identity,
            byzantine: 0,
            data: DataSpec::Digits,
            seed: 0,
            report: PathBuf::from("learn-report.json"),
            plot: PathBuf::from("learn-accuracy.svg"),
            quiet: false,
        }
    }
}

/// What the command line asks for.
#[derive(Debug)]
pub enum Command {
    /// Print [`USAGE`] and stop.
    Help,
    /// Run with these options.
    Run(Box<Options>),
}

fn value<T: FromStr>(flag: &str, given: Option<String>) -> Result<T, String>
where
    T::Err: fmt::Display,
{
    let given = given.ok_or_else(|| format!("{flag} needs a value"))?;
    given
        .parse()
        .map_err(|e: T::Err| format!("{flag} {given}: {e}"))
}

fn algos(given: &str) -> Result<Vec<Algo>, String> {
    if given == "all" {
        return Ok(Algo::ALL.to_vec());
    }
    given
        .split(',')
        .map(|name| {
            Algo::ALL
                .into_iter()
                .find(|a| a.name() == name)
                .ok_or_else(|| {
                    format!(
                        "--algo {given}: `{name}` is not one of fedavg, dpsgd, gossip, centralized, all"
                    )
                })
        })
        .collect()
}

/// Parses the arguments after the program name.
pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Command, String> {
    let mut options = Options::default();
    let mut args = args.into_iter();
    while let Some(flag) = args.next() {
        match flag.as_str() {
            "--help" | "-h" => return Ok(Command::Help),
            "--quiet" | "-q" => options.quiet = true,
            "--algo" => options.algos = algos(&value::<String>(&flag, args.next())?)?,
            "--nodes" => options.nodes = value(&flag, args.next())?,
            "--rounds" => options.rounds = value(&flag, args.next())?,
            "--partition" => options.partition = value(&flag, args.next())?,
            "--model" => options.model = value(&flag, args.next())?,
            "--aggregator" => options.aggregator = value(&flag, args.next())?,
            "--codec" => options.codec = value(&flag, args.next())?,
            "--byzantine" => options.byzantine = value(&flag, args.next())?,
            "--data" => options.data = value(&flag, args.next())?,
            "--seed" => options.seed = value(&flag, args.next())?,
            "--report" => options.report = value(&flag, args.next())?,
            "--plot" => options.plot = value(&flag, args.next())?,
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    if options.nodes == 0 {
        return Err("--nodes must be at least 1".into());
    }
    if options.rounds == 0 {
        return Err("--rounds must be at least 1".into());
    }
    if options.byzantine > options.nodes {
        return Err(format!(
            "--byzantine {} is more than the {} client Nodes",
            options.byzantine, options.nodes
        ));
    }
    Ok(Command::Run(Box::new(options)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str]) -> Result<Options, String> {
        match parse(args.iter().map(|s| s.to_string()))? {
            Command::Run(o) => Ok(*o),
            Command::Help => Err("help".into()),
        }
    }

    #[test]
    fn defaults_and_flags() {
        let o = run(&[]).unwrap();
        assert_eq!(o.algos, Algo::ALL.to_vec());
        assert_eq!((o.nodes, o.rounds), (100, 20));
        let o = run(&["--algo", "fedavg", "--nodes", "10", "--model", "mlp:8,4"]).unwrap();
        assert_eq!(o.algos, vec![Algo::FedAvg]);
        assert_eq!(o.model, ModelSpec::Mlp(vec![8, 4]));
        assert!(run(&["--nodes"]).is_err());
        assert!(run(&["--codec", "gzip"]).is_err());
        assert!(run(&["--algo", "sgd"]).is_err());
        assert!(run(&["--frobnicate"]).is_err());
        assert!(matches!(parse(["--help".to_string()]), Ok(Command::Help)));
    }
}
