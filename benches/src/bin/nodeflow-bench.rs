//! `nodeflow-bench`: load-test CLI. Each run prints one JSON line.
//!
//! ```text
//! nodeflow-bench engine --chain K --seconds S   # ops/s and invokes/s on a K-op chain
//! nodeflow-bench idle --nodes N                 # heap bytes per idle Node
//! nodeflow-bench pingpong [--seconds S] [PEERS]  # round trips/s, 2 actors vs 2 raw threads and peers
//! nodeflow-bench ring [--nodes N] [--tokens K] [--seconds S] [PEERS]
//!                                               # one-way hops/s, N actors vs N raw threads and peers
//! nodeflow-bench tell [--messages M] [--strict] [PEERS]
//!                                               # one-way stream delivered/s, sender → receiver
//! nodeflow-bench fanout [--nodes N] [--seconds S]
//!                                               # envelopes delivered/s, 1 → N-1
//! nodeflow-bench compute [--seconds S] [--inflight K]
//!                                               # round trips through the compute pool vs raw rayon
//! nodeflow-bench spawn [--nodes N]              # actors started/s, RSS and heap per actor
//! nodeflow-bench tensor [--ms M]                # MatMul, Gemm, Add through a Node vs raw ndarray
//! nodeflow-bench offload [--ms M]               # where handing an op to the pool pays
//! nodeflow-bench learn [--reps N] [--rounds R] [--big-nodes K] [--big-rounds R]
//!                                               # FedAvg s/round through Nodes vs the plain loop
//! ```
//!
//! The load-test scenarios (`pingpong` to `spawn`) measure nodeflow and its
//! raw baseline (crossbeam channels, rayon, `std::thread`) one after the
//! other in the same process and print both with their ratio. Every
//! scenario verifies what it delivered; on a wrong result it prints the
//! reason on stderr and exits non-zero instead of printing a number.
//! Defaults (2 s per side) keep a run of every scenario under a minute.
//!
//! `pingpong`, `ring` and `tell` also run the peer actor frameworks a user
//! would otherwise pick (actix, kameo, ractor; `PEERS` is `--peers
//! actix,kameo,ractor` (the default) or `--no-peers`), each on the runtime
//! its docs set up, and print every figure plus nodeflow's ratio to the
//! best peer (`ratio_to_best_peer`) and to raw crossbeam (`ratio_to_raw`).
//! The peers' forms (request/response for `pingpong`, one-way tells for
//! `ring` and `tell`) are described in `nodeflow_benches::peers`. `tell`
//! reports what nodeflow refused on the way (`nodeflow_refused`, from the
//! actors' books) and fails only when a message is unaccounted for or out
//! of order; `--strict` fails on any refusal too.
//!
//! Heap is measured with a counting global allocator (below): it forwards
//! every call to the system allocator and keeps a running total.

use std::alloc::{GlobalAlloc, Layout, System};
use std::process::ExitCode;
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::{Duration, Instant};

use nodeflow::actors::{ActorHandle, Clock, NodeActor, Router, SystemClock};
use nodeflow::engine::sync::Arc;
use nodeflow::engine::{SiteId, SlotValue, U64Value};
use nodeflow_benches::{
    chain_graph, chain_node, invoke_to_output, learn, nodeflow_compute, nodeflow_fanout,
    nodeflow_ring, nodeflow_tell, offload_crossover, parking_ring, raw_compute, raw_fanout,
    raw_ring, raw_tell, relay_compute, tensor_row, tiny_node, BenchError, ComputeRun, FanoutRun,
    Peer, PingPongRun, RingRun, Stop, TellRun, TensorCase, TensorRow, PATIENCE,
};
use nodeflow_engine::{Node, PeerId};
use serde_json::{json, Value};

/// Counts live heap bytes; forwards to `System`.
struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// The bench needs to know how much heap a Node holds, which no safe API
// reports; a forwarding allocator is the standard way to measure it.
#[allow(unsafe_code)]
// SAFETY: every method forwards to `System` with the caller's arguments
// unchanged, so `System`'s guarantees hold; the counter is only bookkeeping.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: forwarded unchanged (see the impl's SAFETY note).
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: forwarded unchanged (see the impl's SAFETY note).
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        // SAFETY: forwarded unchanged (see the impl's SAFETY note).
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const USAGE: &str = "usage: nodeflow-bench engine [--chain K] [--seconds S] | idle [--nodes N] \
    | pingpong [--seconds S] [PEERS] | ring [--nodes N] [--tokens K] [--seconds S] [PEERS] \
    | tell [--messages M] [--strict] [PEERS] \
    | fanout [--nodes N] [--seconds S] | compute [--seconds S] [--inflight K] | spawn [--nodes N] \
    | tensor [--ms M] | offload [--ms M] \
    | learn [--reps N] [--rounds R] [--big-nodes K] [--big-rounds R] [--seed S]; \
    PEERS: --peers actix,kameo,ractor (default) | --no-peers";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let flag = |name: &str, default: u64| -> Result<u64, String> {
        match args.iter().position(|a| a == name) {
            None => Ok(default),
            Some(i) => args
                .get(i + 1)
                .ok_or_else(|| format!("{name} needs a value"))?
                .parse()
                .map_err(|e| format!("{name}: {e}")),
        }
    };
    let seconds = || flag("--seconds", 2).map(Duration::from_secs);
    let peers = || selected_peers(&args);
    let result = match args.first().map(String::as_str) {
        Some("engine") => flag("--chain", 100)
            .and_then(|chain| Ok((chain, flag("--seconds", 3)?)))
            .and_then(|(chain, seconds)| engine(chain as usize, seconds)),
        Some("idle") => flag("--nodes", 1_000).map(|nodes| idle(nodes as usize)),
        Some("pingpong") => {
            seconds().and_then(|s| pingpong(s, &peers()?).map_err(|e| e.to_string()))
        }
        Some("ring") => flag("--nodes", 8).and_then(|nodes| {
            let tokens = flag("--tokens", nodes)?;
            ring(nodes as usize, tokens as usize, seconds()?, &peers()?).map_err(|e| e.to_string())
        }),
        Some("tell") => flag("--messages", 1_000_000).and_then(|messages| {
            let strict = args.iter().any(|a| a == "--strict");
            tell(messages, strict, &peers()?).map_err(|e| e.to_string())
        }),
        Some("fanout") => flag("--nodes", 8)
            .and_then(|nodes| fanout(nodes as usize, seconds()?).map_err(|e| e.to_string())),
        Some("compute") => flag("--inflight", 1)
            .and_then(|inflight| compute(seconds()?, inflight as usize).map_err(|e| e.to_string())),
        Some("spawn") => flag("--nodes", 1_000).and_then(|nodes| spawn(nodes as usize)),
        Some("tensor") => flag("--ms", 300)
            .and_then(|ms| tensor(Duration::from_millis(ms)).map_err(|e| e.to_string())),
        Some("offload") => flag("--ms", 200)
            .and_then(|ms| offload(Duration::from_millis(ms)).map_err(|e| e.to_string())),
        Some("learn") => flag("--reps", 3).and_then(|reps| {
            let settings = LearnSettings {
                reps: reps as usize,
                rounds: flag("--rounds", 20)? as usize,
                big_nodes: flag("--big-nodes", 1_000)? as usize,
                big_rounds: flag("--big-rounds", 3)? as usize,
                seed: flag("--seed", 0)?,
            };
            learn_bench(&settings).map_err(|e| e.to_string())
        }),
        _ => Err(USAGE.into()),
    };
    match result {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("nodeflow-bench: {message}");
            ExitCode::FAILURE
        }
    }
}

/// Invokes a `chain`-op graph back to back for `seconds`; every output
/// must equal its input.
fn engine(chain: usize, seconds: u64) -> Result<String, String> {
    let mut node = chain_node(chain);
    for i in 0..10_000 {
        invoke_to_output(&mut node, i);
    }
    let budget = Duration::from_secs(seconds.max(1));
    let start = Instant::now();
    let mut invokes = 0u64;
    while start.elapsed() < budget {
        for _ in 0..1_000 {
            invokes += 1;
            let out = invoke_to_output(&mut node, invokes);
            if out != Some(invokes) {
                return Err(format!(
                    "engine: invoke {invokes} produced {out:?}, not its input"
                ));
            }
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    let ops = invokes as f64 * chain as f64;
    Ok(serde_json::json!({
        "scenario": "engine",
        "chain": chain,
        "seconds": elapsed,
        "invokes": invokes,
        "invokes_per_sec": invokes as f64 / elapsed,
        "ops_per_sec": ops / elapsed,
        "ns_per_op": elapsed * 1e9 / ops,
        "ns_per_invoke": elapsed * 1e9 / invokes as f64,
    })
    .to_string())
}

/// Builds `nodes` idle Nodes (one small graph each, polled once) and
/// reports the heap they hold.
fn idle(nodes: usize) -> String {
    let graph = chain_graph(4);
    let before = LIVE.load(Ordering::Relaxed);
    let mut all: Vec<Node> = Vec::with_capacity(nodes);
    let vec_bytes = LIVE.load(Ordering::Relaxed) - before;
    for i in 0..nodes {
        let mut node = Node::builder(PeerId::new(i as u64))
            .graph(graph.clone())
            .build()
            .expect("installs");
        let _ = node.poll(0).count();
        all.push(node);
    }
    let held = LIVE.load(Ordering::Relaxed) - before - vec_bytes;
    let per_node = held as f64 / nodes as f64 + std::mem::size_of::<Node>() as f64;
    let line = serde_json::json!({
        "scenario": "idle",
        "nodes": nodes,
        "heap_bytes_per_node": per_node,
        "heap_kib_per_node": per_node / 1024.0,
        "node_struct_bytes": std::mem::size_of::<Node>(),
    })
    .to_string();
    drop(all);
    line
}

/// Nodeflow's number over the raw one, rounded for reading.
fn ratio(nodeflow: f64, raw: f64) -> f64 {
    (nodeflow / raw * 1000.0).round() / 1000.0
}

fn ring_json(run: &RingRun) -> Value {
    json!({
        "hops": run.hops,
        "seconds": run.elapsed.as_secs_f64(),
        "hops_per_sec": run.hops_per_sec(),
        "ns_per_hop": run.elapsed.as_secs_f64() * 1e9 / run.hops as f64,
        "actor_waits_per_hop": run.actor_waits as f64 / run.hops as f64,
        "actor_polls_per_hop": run.actor_polls as f64 / run.hops as f64,
        "thread_sleeps_per_hop": run.sleeps as f64 / run.hops as f64,
    })
}

/// Two actors bounce one token; round trips per second against two raw
/// threads on bounded(1) crossbeam channels and the peers' request/response.
fn pingpong(seconds: Duration, peers: &[Peer]) -> Result<String, BenchError> {
    let nodeflow = nodeflow_ring(2, 1, Stop::After(seconds))?;
    let raw = raw_ring(2, 1, Stop::After(seconds))?;
    let parking = parking_ring(2, 1, Stop::After(seconds))?;
    let peer_runs = run_peers(peers, |peer| peer.pingpong(Stop::After(seconds)))?;
    let side = |run: &RingRun| {
        let round_trips = run.hops / 2;
        json!({
            "round_trips": round_trips,
            "seconds": run.elapsed.as_secs_f64(),
            "round_trips_per_sec": round_trips as f64 / run.elapsed.as_secs_f64(),
            "ns_per_round_trip": run.elapsed.as_secs_f64() * 1e9 / round_trips.max(1) as f64,
            "us_per_round_trip": run.elapsed.as_secs_f64() * 1e6 / round_trips.max(1) as f64,
            "actor_waits_per_round_trip": run.actor_waits as f64 / round_trips.max(1) as f64,
            "thread_sleeps_per_round_trip": run.sleeps as f64 / round_trips.max(1) as f64,
        })
    };
    let peer_json = |run: &PingPongRun| {
        json!({
            "form": "request/response from a driver",
            "round_trips": run.round_trips,
            "seconds": run.elapsed.as_secs_f64(),
            "round_trips_per_sec": run.round_trips_per_sec(),
            "us_per_round_trip": run.us_per_round_trip(),
        })
    };
    let per_sec = |run: &RingRun| run.hops_per_sec() / 2.0;
    let r = ratio(nodeflow.hops_per_sec(), raw.hops_per_sec());
    let mut line = json!({
        "scenario": "pingpong",
        "nodeflow": side(&nodeflow),
        "raw_crossbeam": side(&raw),
        "raw_parking_condvar": side(&parking),
        "ratio": r,
        "ratio_is": "nodeflow round trips/s ÷ raw round trips/s",
        "target": ">= 0.40",
        "target_met": r >= 0.40,
        "parking_ratio": ratio(nodeflow.hops_per_sec(), parking.hops_per_sec()),
    });
    compare_peers(
        &mut line,
        &peer_runs,
        PingPongRun::round_trips_per_sec,
        peer_json,
        (per_sec(&nodeflow), per_sec(&raw)),
        "round trips/s",
    );
    Ok(line.to_string())
}

/// `nodes` actors in a ring with `tokens` tokens (token k enters at node
/// k mod N); one-way hops per second against a raw thread ring and the
/// peers' rings.
fn ring(
    nodes: usize,
    tokens: usize,
    seconds: Duration,
    peers: &[Peer],
) -> Result<String, BenchError> {
    let nodeflow = nodeflow_ring(nodes, tokens, Stop::After(seconds))?;
    let raw = raw_ring(nodes, tokens, Stop::After(seconds))?;
    let peer_runs = run_peers(peers, |peer| peer.ring(nodes, tokens, Stop::After(seconds)))?;
    let mut line = json!({
        "scenario": "ring",
        "nodes": nodes,
        "tokens": tokens,
        "nodeflow": ring_json(&nodeflow),
        "raw_crossbeam": ring_json(&raw),
        "ratio": ratio(nodeflow.hops_per_sec(), raw.hops_per_sec()),
        "ratio_is": "nodeflow hops/s ÷ raw hops/s",
    });
    compare_peers(
        &mut line,
        &peer_runs,
        RingRun::hops_per_sec,
        ring_json,
        (nodeflow.hops_per_sec(), raw.hops_per_sec()),
        "hops/s",
    );
    Ok(line.to_string())
}

/// A sender streams `messages` sequence numbers one-way to a receiver that
/// checks their order; delivered per second, and what nodeflow refused.
fn tell(messages: u64, strict: bool, peers: &[Peer]) -> Result<String, BenchError> {
    let nodeflow = nodeflow_tell(messages, strict)?;
    let raw = raw_tell(messages)?;
    let peer_runs = run_peers(peers, |peer| peer.tell(messages))?;
    let side = |run: &TellRun| {
        json!({
            "sent": run.sent,
            "delivered": run.delivered,
            "refused": run.refused(),
            "seconds": run.elapsed.as_secs_f64(),
            "delivered_per_sec": run.delivered_per_sec(),
            "ns_per_delivery": run.elapsed.as_secs_f64() * 1e9 / run.delivered.max(1) as f64,
        })
    };
    let mut nodeflow_side = side(&nodeflow);
    nodeflow_side["refused_by_router"] = json!(nodeflow.refused_router);
    nodeflow_side["refused_send_failed"] = json!(nodeflow.refused_send);
    nodeflow_side["host_retries"] = json!(nodeflow.host_retries);
    let mut line = json!({
        "scenario": "tell",
        "messages": messages,
        "strict": strict,
        "nodeflow_refused": nodeflow.refused(),
        "nodeflow_refused_is": "router refusals + Send ops failed (any reason), from the actors' books",
        "nodeflow": nodeflow_side,
        "raw_crossbeam": side(&raw),
    });
    compare_peers(
        &mut line,
        &peer_runs,
        TellRun::delivered_per_sec,
        side,
        (nodeflow.delivered_per_sec(), raw.delivered_per_sec()),
        "delivered/s",
    );
    Ok(line.to_string())
}

/// The peers chosen with `--peers a,b,c` (all by default) or `--no-peers`.
fn selected_peers(args: &[String]) -> Result<Vec<Peer>, String> {
    if args.iter().any(|a| a == "--no-peers") {
        return Ok(Vec::new());
    }
    let Some(i) = args.iter().position(|a| a == "--peers") else {
        return Ok(Peer::ALL.to_vec());
    };
    let list = args
        .get(i + 1)
        .ok_or("--peers needs a list, e.g. actix,kameo,ractor")?;
    list.split(',')
        .map(|name| Peer::from_name(name).ok_or_else(|| format!("--peers: unknown peer {name:?}")))
        .collect()
}

/// Runs `run` on every peer, one after the other.
fn run_peers<R>(
    peers: &[Peer],
    run: impl Fn(Peer) -> Result<R, BenchError>,
) -> Result<Vec<(Peer, R)>, BenchError> {
    peers
        .iter()
        .map(|&peer| {
            run(peer)
                .map(|result| (peer, result))
                .map_err(|e| BenchError::Verification(format!("{}: {e}", peer.name())))
        })
        .collect()
}

/// Adds the peers' figures to `line` (`"peers"`), the best of them
/// (`"best_peer"`), and nodeflow's ratio to it and to raw crossbeam; the
/// figure is `unit`, higher is better, and `nodeflow_raw` is nodeflow's and
/// raw's figure.
fn compare_peers<R>(
    line: &mut Value,
    peer_runs: &[(Peer, R)],
    figure: impl Fn(&R) -> f64,
    side: impl Fn(&R) -> Value,
    (nodeflow, raw): (f64, f64),
    unit: &str,
) {
    let peers: serde_json::Map<String, Value> = peer_runs
        .iter()
        .map(|(peer, run)| (peer.name().to_owned(), side(run)))
        .collect();
    let best = peer_runs
        .iter()
        .map(|(peer, run)| (*peer, figure(run)))
        .max_by(|a, b| a.1.total_cmp(&b.1));
    line["peers"] = Value::Object(peers);
    line["best_peer"] = json!(best.map(|(peer, _)| peer.name()));
    line["best_peer_figure"] = json!(best.map(|(_, figure)| figure));
    line["ratio_to_best_peer"] = json!(best.map(|(_, figure)| ratio(nodeflow, figure)));
    line["ratio_to_raw"] = json!(ratio(nodeflow, raw));
    line["ratios_are"] = json!(format!(
        "nodeflow {unit} ÷ best peer's (of those run) and ÷ raw crossbeam's"
    ));
}

/// One source actor sends every message to `nodes - 1` sink actors;
/// envelopes delivered per second against raw threads.
fn fanout(nodes: usize, seconds: Duration) -> Result<String, BenchError> {
    let nodeflow = nodeflow_fanout(nodes, seconds)?;
    let raw = raw_fanout(nodes, seconds)?;
    let side = |run: &FanoutRun| {
        json!({
            "messages": run.messages,
            "delivered": run.delivered,
            "seconds": run.elapsed.as_secs_f64(),
            "delivered_per_sec": run.delivered_per_sec(),
            "actor_waits_per_delivery": run.actor_waits as f64 / run.delivered as f64,
            "actor_polls_per_delivery": run.actor_polls as f64 / run.delivered as f64,
            "thread_sleeps_per_delivery": run.sleeps as f64 / run.delivered as f64,
        })
    };
    Ok(json!({
        "scenario": "fanout",
        "nodes": nodes,
        "sinks": nodeflow.sinks,
        "window": format!("2 batches of {}", nodeflow_benches::FANOUT_BATCH),
        "nodeflow": side(&nodeflow),
        "raw_crossbeam": side(&raw),
        "ratio": ratio(nodeflow.delivered_per_sec(), raw.delivered_per_sec()),
        "ratio_is": "nodeflow delivered/s ÷ raw delivered/s",
    })
    .to_string())
}

/// Round trips through an actor and the compute pool against raw rayon
/// spawn + crossbeam reply (and, for reference, a raw relay thread).
fn compute(seconds: Duration, inflight: usize) -> Result<String, BenchError> {
    let nodeflow = nodeflow_compute(seconds, inflight)?;
    let raw = raw_compute(seconds, inflight)?;
    let relay = relay_compute(seconds, inflight)?;
    let side = |run: &ComputeRun| {
        json!({
            "round_trips": run.round_trips,
            "seconds": run.elapsed.as_secs_f64(),
            "round_trips_per_sec": run.per_sec(),
            "ns_per_round_trip": run.ns_per_round_trip(),
            "actor_waits_per_round_trip": run.actor_waits as f64 / run.round_trips as f64,
            "thread_sleeps_per_round_trip": run.sleeps as f64 / run.round_trips as f64,
        })
    };
    let time_ratio = ratio(nodeflow.ns_per_round_trip(), raw.ns_per_round_trip());
    Ok(json!({
        "scenario": "compute",
        "inflight": nodeflow.inflight,
        "nodeflow": side(&nodeflow),
        "raw_rayon": side(&raw),
        "raw_relay_thread": side(&relay),
        "ratio": time_ratio,
        "ratio_is": "nodeflow ns per round trip ÷ raw rayon ns per round trip",
        "target": "<= 2.0",
        "target_met": time_ratio <= 2.0,
        "throughput_ratio": ratio(nodeflow.per_sec(), raw.per_sec()),
        "relay_time_ratio": ratio(nodeflow.ns_per_round_trip(), relay.ns_per_round_trip()),
    })
    .to_string())
}

/// What starting `nodes` threads (actors or raw) cost.
struct SpawnRun {
    spawn: Duration,
    stop: Duration,
    rss_bytes: i64,
    heap_bytes: isize,
}

impl SpawnRun {
    fn json(&self, nodes: usize) -> Value {
        let n = nodes as f64;
        json!({
            "spawn_seconds": self.spawn.as_secs_f64(),
            "spawned_per_sec": n / self.spawn.as_secs_f64(),
            "stop_seconds": self.stop.as_secs_f64(),
            "stopped_per_sec": n / self.stop.as_secs_f64(),
            "rss_bytes_per_node": self.rss_bytes as f64 / n,
            "heap_bytes_per_node": self.heap_bytes as f64 / n,
        })
    }
}

/// Starts `nodes` small actors, checks each one runs, measures, stops all;
/// the same with parked raw threads.
fn spawn(nodes: usize) -> Result<String, String> {
    if nodes == 0 {
        return Err("spawn needs at least one node".into());
    }
    let nodeflow = spawn_actors(nodes)?;
    let raw = spawn_threads(nodes)?;
    Ok(json!({
        "scenario": "spawn",
        "nodes": nodes,
        "nodeflow": nodeflow.json(nodes),
        "raw_threads": raw.json(nodes),
        "ratio": ratio(raw.spawn.as_secs_f64(), nodeflow.spawn.as_secs_f64()),
        "ratio_is": "nodeflow actors spawned/s ÷ raw threads spawned/s",
        "rss_ratio": ratio(nodeflow.rss_bytes as f64, raw.rss_bytes as f64),
    })
    .to_string())
}

/// Resident set size of this process, from `/proc/self/status` (0 where
/// that file does not exist).
fn rss_bytes() -> i64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix("VmRSS:"))
                .and_then(|rest| {
                    rest.trim()
                        .trim_end_matches("kB")
                        .trim()
                        .parse::<i64>()
                        .ok()
                })
        })
        .map_or(0, |kib| kib * 1024)
}

fn spawn_actors(nodes: usize) -> Result<SpawnRun, String> {
    let router = Arc::new(Router::new());
    let clock: Arc<dyn Clock> = Arc::new(SystemClock::new());
    let (rss_before, heap_before) = (rss_bytes(), LIVE.load(Ordering::Relaxed));
    let built: Vec<Node> = (0..nodes)
        .map(|i| tiny_node(PeerId::new(i as u64 + 1), 1))
        .collect();
    let mut handles: Vec<ActorHandle> = Vec::with_capacity(nodes);
    let start = Instant::now();
    for node in built {
        let handle = NodeActor::spawn(
            node,
            Arc::clone(&router),
            Arc::clone(&clock),
            Default::default(),
        )
        .map_err(|e| format!("spawn: {e}"))?;
        handles.push(handle);
    }
    let spawn = start.elapsed();
    // Every actor runs one execution (no subscriber, so nothing is kept):
    // proof that each thread started and drives its Node.
    for (i, handle) in handles.iter().enumerate() {
        let x: Box<dyn SlotValue> = Box::new(U64Value(i as u64));
        handle
            .invoke(SiteId::new(0), vec![("x".into(), x)], i as u64)
            .map_err(|e| format!("invoke: {e}"))?;
    }
    let patience = Instant::now() + PATIENCE;
    for handle in &handles {
        while handle.stats().outputs_unobserved < 1 {
            if Instant::now() > patience {
                return Err(format!("actor {} never ran its execution", handle.peer()));
            }
            std::thread::sleep(Duration::from_micros(100));
        }
    }
    let rss = rss_bytes() - rss_before;
    let heap = LIVE.load(Ordering::Relaxed) - heap_before;
    if router.stats().peers != nodes {
        return Err(format!(
            "{} of {nodes} actors registered",
            router.stats().peers
        ));
    }
    let start = Instant::now();
    for handle in handles {
        let report = handle.stop().map_err(|e| e.to_string())?;
        if report.node.executions_finished != 1 {
            return Err(format!(
                "{} ran {} executions, expected 1",
                report.peer, report.node.executions_finished
            ));
        }
    }
    let stop = start.elapsed();
    if router.stats().peers != 0 {
        return Err("actors left registered after stop".into());
    }
    Ok(SpawnRun {
        spawn,
        stop,
        rss_bytes: rss,
        heap_bytes: heap,
    })
}

fn spawn_threads(nodes: usize) -> Result<SpawnRun, String> {
    let release = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (ready_tx, ready_rx) = crossbeam_channel::unbounded::<()>();
    let (rss_before, heap_before) = (rss_bytes(), LIVE.load(Ordering::Relaxed));
    let mut threads = Vec::with_capacity(nodes);
    let start = Instant::now();
    for i in 0..nodes {
        let release = std::sync::Arc::clone(&release);
        let ready = ready_tx.clone();
        let thread = std::thread::Builder::new()
            .name(format!("raw-{i}"))
            .spawn(move || {
                let _ = ready.send(());
                while !release.load(std::sync::atomic::Ordering::Acquire) {
                    std::thread::park();
                }
            })
            .map_err(|e| format!("thread spawn: {e}"))?;
        threads.push(thread);
    }
    let spawn = start.elapsed();
    drop(ready_tx);
    for started in 0..nodes {
        ready_rx
            .recv_timeout(PATIENCE)
            .map_err(|_| format!("only {started} of {nodes} raw threads started"))?;
    }
    let rss = rss_bytes() - rss_before;
    let heap = LIVE.load(Ordering::Relaxed) - heap_before;
    let start = Instant::now();
    release.store(true, std::sync::atomic::Ordering::Release);
    for thread in threads {
        thread.thread().unpark();
        thread
            .join()
            .map_err(|_| "a raw thread panicked".to_owned())?;
    }
    let stop = start.elapsed();
    Ok(SpawnRun {
        spawn,
        stop,
        rss_bytes: rss,
        heap_bytes: heap,
    })
}

fn tensor_json(row: &TensorRow) -> Value {
    json!({
        "op": row.op,
        "shapes": row.shapes,
        "work": row.work,
        "rounds": row.rounds,
        "raw_ndarray_ns": row.raw_ns,
        "node_inline_ns": row.inline_ns,
        "node_pool_ns": row.pool_ns,
        "inline_ratio_to_raw": ratio(row.inline_ns, row.raw_ns),
        "pool_ratio_to_raw": ratio(row.pool_ns, row.raw_ns),
    })
}

/// MatMul, Gemm and a broadcast Add through a Node (inline and on the
/// pool) against raw ndarray, medians over about `budget` per case.
fn tensor(budget: Duration) -> Result<String, BenchError> {
    let pool = nodeflow::ComputePool::new(1).map_err(|e| BenchError::Setup(e.to_string()))?;
    let mut rows = Vec::new();
    for n in [64, 128, 256, 512] {
        rows.push(tensor_row(TensorCase::MatMul(n), &pool, budget)?);
        rows.push(tensor_row(TensorCase::Gemm(n), &pool, budget)?);
    }
    for n in [64, 256, 1024] {
        rows.push(tensor_row(TensorCase::AddBroadcast(n), &pool, budget)?);
    }
    let big_enough = |r: &&TensorRow| r.op != "Add" && r.work >= 256 * 256 * 256;
    let worst = rows
        .iter()
        .filter(big_enough)
        .map(TensorRow::inline_ratio)
        .fold(0.0, f64::max);
    Ok(json!({
        "scenario": "tensor",
        "rows": rows.iter().map(tensor_json).collect::<Vec<_>>(),
        "worst_inline_ratio_at_256_and_above": ratio(worst, 1.0),
        "ratio_is": "median through a Node ÷ median raw ndarray, same arrays, same run",
        "target": "<= 1.10 at 256x256 and above",
        "target_met": worst <= 1.10,
    })
    .to_string())
}

/// Elementwise Adds of growing size inline and on the pool: the pool's
/// fixed hand-off cost, the inline cost per element, and their crossover
/// (the work at which an op keeps the actor thread as long as a hand-off).
fn offload(budget: Duration) -> Result<String, BenchError> {
    let pool = nodeflow::ComputePool::new(1).map_err(|e| BenchError::Setup(e.to_string()))?;
    let mut rows = Vec::new();
    for shift in [6, 10, 14, 16, 18, 20] {
        rows.push(tensor_row(TensorCase::Add(1 << shift), &pool, budget)?);
    }
    let (handoff_ns, per_op_ns, crossover) =
        offload_crossover(&rows).ok_or_else(|| BenchError::Verification("no rows".into()))?;
    Ok(json!({
        "scenario": "offload",
        "rows": rows.iter().map(tensor_json).collect::<Vec<_>>(),
        "pool_handoff_ns": handoff_ns,
        "inline_ns_per_element_op": per_op_ns,
        "crossover_work": crossover.round(),
        "default_inline_work_limit": nodeflow::BackendConfig::DEFAULT_INLINE_WORK_LIMIT,
    })
    .to_string())
}

/// What `learn` runs.
struct LearnSettings {
    reps: usize,
    rounds: usize,
    big_nodes: usize,
    big_rounds: usize,
    seed: u64,
}

/// The reference job (100 clients, the reference `iid-100` partition,
/// `FedAvgConfig::default()` with `rounds` rounds) through Nodes and as
/// the plain loop, `reps` times, medians and their ratio; then
/// `big_nodes` IID clients for `big_rounds` rounds, to the end, with the
/// memory per Node. Fails when the two sides end more than 0.005 apart
/// in accuracy or a Node run loses a message.
fn learn_bench(s: &LearnSettings) -> Result<String, BenchError> {
    let config = learn::reference_config(s.rounds);
    let data = learn::digits(100, s.seed)?;
    let pairs = learn::compare(&config, &data, s.reps)?;
    let nodes_spr = learn::median(
        &pairs
            .iter()
            .map(|p| p.nodes.seconds_per_round)
            .collect::<Vec<_>>(),
    );
    let plain_spr = learn::median(
        &pairs
            .iter()
            .map(|p| p.plain.seconds_per_round)
            .collect::<Vec<_>>(),
    );
    let nodes_wall = learn::median(
        &pairs
            .iter()
            .map(|p| p.nodes.wall_seconds)
            .collect::<Vec<_>>(),
    );
    let plain_wall = learn::median(
        &pairs
            .iter()
            .map(|p| p.plain.wall_seconds)
            .collect::<Vec<_>>(),
    );
    let per_round_ratio = nodes_spr / plain_spr;
    let reference = json!({
        "clients": data.clients.len(),
        "partition": data.partition,
        "rounds": s.rounds,
        "reps": s.reps,
        "nodes_seconds_per_round": nodes_spr,
        "plain_seconds_per_round": plain_spr,
        "ratio": ratio(nodes_spr, plain_spr),
        "ratio_is": "median s/round through Nodes ÷ median s/round of the plain loop, rounds only (spawn and shutdown excluded)",
        "target": "<= 1.5",
        "target_met": per_round_ratio <= 1.5,
        "nodes_wall_seconds": nodes_wall,
        "plain_wall_seconds": plain_wall,
        "wall_ratio": ratio(nodes_wall, plain_wall),
        "nodes_final_accuracy": pairs.iter().map(|p| p.nodes.final_accuracy).collect::<Vec<_>>(),
        "plain_final_accuracy": pairs.iter().map(|p| p.plain.final_accuracy).collect::<Vec<_>>(),
        "messages": pairs.last().map(|p| p.nodes.report.messages.accepted),
    });

    let big_config = learn::reference_config(s.big_rounds);
    let big_data = learn::digits(s.big_nodes, s.seed)?;
    let big = learn::big_run(&big_config, &big_data)?;
    let big_plain = learn::plain_run(&big_config, &big_data)?;
    let big_json = json!({
        "clients": big_data.clients.len(),
        "nodes": big.nodes(),
        "rounds": s.big_rounds,
        "partition": big_data.partition,
        "seconds_per_round": big.run.seconds_per_round,
        "plain_seconds_per_round": big_plain.seconds_per_round,
        "ratio": ratio(big.run.seconds_per_round, big_plain.seconds_per_round),
        "spawn_seconds": big.spawn_seconds,
        "wall_seconds": big.run.wall_seconds,
        "final_accuracy": big.run.final_accuracy,
        "plain_final_accuracy": big_plain.final_accuracy,
        "messages_accepted": big.run.report.messages.accepted,
        "rss_before_bytes": big.rss_before,
        "rss_spawned_bytes": big.rss_spawned,
        "rss_peak_bytes": big.rss_peak,
        "peak_reset_before_spawn": big.peak_reset,
        "peak_rss_bytes_per_node": big.peak_bytes_per_node(),
        "spawned_rss_bytes_per_node": big.spawned_bytes_per_node(),
    });
    Ok(json!({
        "scenario": "learn",
        "reference": reference,
        "big": big_json,
    })
    .to_string())
}
