//! FedAvg on Nodes under faults: a client that panics mid-round, a client
//! stopped mid-run, and byzantine clients against plain and robust
//! aggregation.
//!
//! Tests here run one at a time (a file-wide lock): each starts a runtime
//! of 11 or 101 Node threads with round deadlines, and two of them measure
//! wall time.
//!
//! The whole file takes about 18 s in a debug build. The rounds' exact
//! contributor counts rely on the dispatch `Send`'s fixed deadline (its
//! `timeout_ns`): with the learned RTT budget instead (floored at 500 ms),
//! an answer slower than that on a busy debug build expired the request
//! early and made an answered client a straggler.
#![allow(clippy::unwrap_used)]

use nodeflow::engine::sync::atomic::{AtomicBool, Ordering};
use nodeflow::engine::sync::Arc;
use std::sync::OnceLock; // sync-facade: allow (a test-wide lazy value, not a synchronisation primitive the engine uses)
use std::time::{Duration, Instant};

use nodeflow::engine::sync::{Mutex, MutexGuard};

use nodeflow::learning::{
    federated_data, AggregatorSpec, DataSpec, FedAvgConfig, FedAvgJob, FederatedData, PartitionSpec,
};

/// Serialises the tests of this file.
fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock()
}

/// The reference `iid-10` digits split.
fn iid10() -> FederatedData {
    let data = federated_data(&DataSpec::Digits, 10, PartitionSpec::Iid, 0).unwrap();
    assert_eq!(data.partition, "reference:iid-10");
    data
}

const ROUND_TIMEOUT: Duration = Duration::from_secs(2);
const FAULT_ROUNDS: usize = 8;

fn fault_config() -> FedAvgConfig {
    FedAvgConfig {
        rounds: FAULT_ROUNDS,
        round_timeout: ROUND_TIMEOUT,
        ..FedAvgConfig::default()
    }
}

/// Final accuracy of the same job without faults.
fn clean_iid10_accuracy() -> f64 {
    static CLEAN: OnceLock<f64> = OnceLock::new();
    *CLEAN.get_or_init(|| {
        let job = FedAvgJob::new(fault_config(), iid10()).unwrap();
        let report = job.run(&mut |_| {}).unwrap();
        assert!(report.rounds[1..].iter().all(|r| r.contributors == 10));
        assert_eq!(report.restarts, 0);
        eprintln!(
            "clean iid-10, {FAULT_ROUNDS} rounds: {:.4}",
            report.final_accuracy
        );
        report.final_accuracy
    })
}

/// Client 3 of 10 panics in its third round's training.
///
/// What happens (observed, and why): the panic does *not* take the Node
/// down. The engine runs every op inside `catch_unwind`
/// (`engine/src/node/dispatch.rs`), so the chaos op's panic becomes an op
/// error (`op.panicked`, counted in the Node's `ops_panicked`), the
/// client's `train` execution fails without reaching its `Reply`, and no
/// answer (not even an error) goes back. The server's `Send` waits for it
/// until the round deadline, so the round closes after about
/// `round_timeout` with 9 contributors and 1 straggler. The supervisor
/// never sees a panic: the actor counts none and restarts nothing
/// (`restarts == 0`, nothing lost), and the same Node incarnation serves
/// the next rounds. The op cleared the switch before panicking, so it does
/// not panic again, and every later round has all 10 contributors. One
/// round averaged over 9 of 10 IID clients costs next to nothing in
/// accuracy.
///
/// (`ChaosComponent`'s docs say the panic "takes the Node down" and the
/// supervisor rebuilds it from its snapshot; with the engine's op-level
/// `catch_unwind` that path is unreachable from an op. Should that change,
/// the `restarts == 0` assertions below fail and this doc must be revised.)
#[test]
fn a_client_that_panics_mid_round_costs_one_straggler_and_the_run_recovers() {
    let _serial = serial();
    let clean = clean_iid10_accuracy();

    let job = FedAvgJob::new(fault_config(), iid10()).unwrap();
    let armed = Arc::new(AtomicBool::new(false));
    let mut run = job.start(&[(3, armed.clone())]).unwrap();
    run.evaluate().unwrap();
    for r in 1..=2 {
        let row = run.round().unwrap();
        assert_eq!((row.round, row.contributors, row.stragglers), (r, 10, 0));
    }

    armed.store(true, Ordering::SeqCst);
    let t0 = Instant::now();
    let faulty = run.round().unwrap();
    let took = t0.elapsed();
    eprintln!(
        "panic round: {} contributors, {} stragglers, {took:.2?}",
        faulty.contributors, faulty.stragglers
    );
    assert!(
        !armed.load(Ordering::SeqCst),
        "the panic cleared the switch"
    );
    assert_eq!(faulty.round, 3);
    assert_eq!(
        faulty.contributors + faulty.stragglers,
        10,
        "no client vanished"
    );
    // The outcome documented above: the request is never answered.
    assert_eq!((faulty.contributors, faulty.stragglers), (9, 1));
    assert!(
        took >= ROUND_TIMEOUT - Duration::from_millis(100),
        "{took:?}"
    );
    assert!(
        took < ROUND_TIMEOUT + Duration::from_secs(2),
        "no hang: {took:?}"
    );
    assert!(run.client(3).unwrap().is_running());

    for r in 4..=FAULT_ROUNDS as u64 {
        let t0 = Instant::now();
        let row = run.round().unwrap();
        assert_eq!(
            (row.round, row.contributors, row.stragglers),
            (r, 10, 0),
            "after the panic"
        );
        assert!(
            t0.elapsed() < ROUND_TIMEOUT / 2,
            "round {r}: {:?}",
            t0.elapsed()
        );
    }

    let client = run.client(3).unwrap().stop().unwrap();
    eprintln!(
        "client 3: ops_panicked {}, actor panics {}, restarts {}",
        client.node.ops_panicked, client.stats.panics, client.stats.restarts
    );
    assert_eq!(client.node.ops_panicked, 1, "the op's panic was caught");
    assert_eq!(client.stats.panics, 0, "no panic reached the actor");
    assert_eq!(client.stats.restarts, 0);

    let report = run.finish(Duration::from_secs(10));
    eprintln!(
        "panic run: restarts {}, messages {:?}, final {:.4} (clean {clean:.4})",
        report.restarts, report.messages, report.final_accuracy
    );
    assert_eq!(report.restarts, 0, "{report:?}");
    assert_eq!(report.messages.lost, 0);
    assert!(
        (report.final_accuracy - clean).abs() <= 0.02,
        "{} vs clean {clean}",
        report.final_accuracy
    );
}

/// Client 6 of 10 is stopped after round 2.
///
/// What happens: the stopped Node is unregistered from the router, so the
/// server's `Send` to it is refused at once (`refused_unknown_peer`), but
/// the federation only learns that the client did not arrive when the
/// round deadline passes: rounds 3, 4 and 5 each take about
/// `round_timeout` and close with 9 contributors and 1 straggler. Each
/// refusal is a failure in the server's peer governor; at the third
/// consecutive one (the default threshold) the peer goes down, and from
/// round 6 on `Open` skips it: 9 sampled, 9 contributors, no straggler,
/// and the round is fast again. The model keeps learning from the 9.
#[test]
fn a_stopped_client_costs_stragglers_until_its_peer_is_down_and_never_a_hang() {
    let _serial = serial();
    let clean = clean_iid10_accuracy();

    let job = FedAvgJob::new(fault_config(), iid10()).unwrap();
    let mut run = job.start(&[]).unwrap();
    run.evaluate().unwrap();
    for r in 1..=2 {
        let row = run.round().unwrap();
        assert_eq!((row.round, row.contributors, row.stragglers), (r, 10, 0));
    }
    run.client(6).unwrap().stop().unwrap();
    assert!(!run.client(6).unwrap().is_running());
    assert_eq!(run.server().stats().refused_unknown_peer, 0);

    let mut before = run.rows().last().unwrap().accuracy;
    for r in 3..=FAULT_ROUNDS as u64 {
        let t0 = Instant::now();
        let row = run.round().unwrap();
        let took = t0.elapsed();
        eprintln!(
            "round {r} without client 6: {} contributors, {} stragglers, {took:.2?}, acc {:.4}",
            row.contributors, row.stragglers, row.accuracy
        );
        assert_eq!(row.round, r);
        assert_eq!(row.contributors, 9, "round {r}");
        assert!(
            took < ROUND_TIMEOUT + Duration::from_secs(2),
            "round {r} took {took:?}"
        );
        if r <= 5 {
            assert_eq!(row.stragglers, 1, "round {r}: the peer is not down yet");
            assert!(
                took >= ROUND_TIMEOUT - Duration::from_millis(100),
                "{took:?}"
            );
        } else {
            assert_eq!(row.stragglers, 0, "round {r}: the down peer is skipped");
            assert!(took < ROUND_TIMEOUT / 2, "round {r} took {took:?}");
        }
        assert!(
            row.accuracy >= before - 0.03,
            "round {r}: {} after {before}",
            row.accuracy
        );
        before = row.accuracy;
    }
    let server = run.server().stats();
    eprintln!("server: {server:?}");
    assert_eq!(
        server.refused_unknown_peer, 3,
        "one refused Send per round until down"
    );

    let report = run.finish(Duration::from_secs(10));
    eprintln!(
        "stopped run: final {:.4} (clean {clean:.4})",
        report.final_accuracy
    );
    assert_eq!(report.restarts, 0);
    assert!(
        (report.final_accuracy - clean).abs() <= 0.02,
        "{} vs clean {clean}",
        report.final_accuracy
    );
}

const BYZ_ROUNDS: usize = 10;

fn iid100() -> FederatedData {
    let data = federated_data(&DataSpec::Digits, 100, PartitionSpec::Iid, 0).unwrap();
    assert_eq!(data.partition, "reference:iid-100");
    data
}

/// Final accuracy of 100 IID clients, `byzantine` of them sending garbage.
fn byzantine_run(aggregator: AggregatorSpec, byzantine: usize) -> f64 {
    let config = FedAvgConfig {
        rounds: BYZ_ROUNDS,
        aggregator,
        byzantine,
        round_timeout: Duration::from_secs(10),
        ..FedAvgConfig::default()
    };
    let t0 = Instant::now();
    let report = FedAvgJob::new(config, iid100())
        .unwrap()
        .run(&mut |_| {})
        .unwrap();
    for row in &report.rounds[1..] {
        assert_eq!((row.contributors, row.stragglers), (100, 0), "{aggregator}");
    }
    eprintln!(
        "100 clients, {byzantine} byzantine, {aggregator}, {BYZ_ROUNDS} rounds: accuracy {:.4} ({:.1?})",
        report.final_accuracy,
        t0.elapsed()
    );
    report.final_accuracy
}

fn clean_iid100_accuracy() -> f64 {
    static CLEAN: OnceLock<f64> = OnceLock::new();
    *CLEAN.get_or_init(|| {
        let acc = byzantine_run(AggregatorSpec::FedAvg, 0);
        assert!(acc > 0.85, "the clean run learns: {acc}");
        acc
    })
}

/// `aggregator` with 10 byzantine clients of 100: within `points` of the
/// clean FedAvg run, and within 4 points of its own run without the attack
/// (the garbage changes next to nothing). Returns (attacked, unattacked).
fn robust(aggregator: AggregatorSpec, points: f64) -> (f64, f64) {
    let _serial = serial();
    let clean = clean_iid100_accuracy();
    let unattacked = byzantine_run(aggregator, 0);
    let attacked = byzantine_run(aggregator, 10);
    assert!(
        attacked >= clean - points,
        "{aggregator} with 10 byzantine of 100: {attacked} vs clean FedAvg {clean}"
    );
    assert!(
        attacked >= unattacked - 0.04,
        "{aggregator} with 10 byzantine of 100: {attacked} vs {unattacked} without them"
    );
    (attacked, unattacked)
}

/// Ten clients sending N(0, 10²) noise as their update: the mean of 100
/// updates carries a tenth of that noise, which swamps the honest signal
/// (observed: about 0.22 after 10 rounds, against 0.90 clean).
#[test]
fn byzantine_clients_wreck_plain_fedavg() {
    let _serial = serial();
    let clean = clean_iid100_accuracy();
    let acc = byzantine_run(AggregatorSpec::FedAvg, 10);
    assert!(
        acc < 0.5,
        "10 byzantine of 100 under FedAvg: {acc} (clean {clean})"
    );
}

/// The coordinate-wise median (observed: 0.858 attacked, 0.900 clean FedAvg).
#[test]
fn the_median_withstands_byzantine_clients() {
    robust(AggregatorSpec::Median, 0.05);
}

/// The 15 % trimmed mean: 15 updates dropped at each end of every
/// coordinate, more than the 10 attackers (observed: 0.889).
#[test]
fn the_trimmed_mean_withstands_byzantine_clients() {
    robust(AggregatorSpec::Trimmed(0.15), 0.05);
}

/// Krum(f = 10) selects one update per round, the one closest to its
/// neighbours, which is always an honest one here: the attack changes
/// nothing against Krum's own clean run. But one client's update (about 14
/// samples) per round learns much less in 10 rounds than the mean of 100
/// (observed: 0.74 against 0.90 for clean FedAvg), so Krum is not within 5
/// points of clean FedAvg; it is checked against its own clean run and far
/// above attacked FedAvg instead. (`AggregatorSpec::Krum` fixes Krum's
/// `m` at 1; Multi-Krum would close the gap.)
#[test]
fn krum_withstands_byzantine_clients() {
    let (attacked, _) = robust(AggregatorSpec::Krum(10), 0.25);
    assert!(attacked > 0.6, "krum:10 attacked: {attacked}");
}
