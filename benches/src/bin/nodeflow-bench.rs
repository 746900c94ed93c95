//! `nodeflow-bench`: load-test CLI. Each run prints one JSON line.
//!
//! ```text
//! nodeflow-bench engine --chain K --seconds S   # ops/s and invokes/s on a K-op chain
//! nodeflow-bench idle --nodes N                 # heap bytes per idle Node
//! ```
//!
//! Heap is measured with a counting global allocator (below): it forwards
//! every call to the system allocator and keeps a running total.

use std::alloc::{GlobalAlloc, Layout, System};
use std::process::ExitCode;
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::{Duration, Instant};

use nodeflow_benches::{chain_graph, chain_node, invoke_to_output};
use nodeflow_engine::{Node, PeerId};

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
    let result = match args.first().map(String::as_str) {
        Some("engine") => flag("--chain", 100)
            .and_then(|chain| Ok((chain, flag("--seconds", 3)?)))
            .map(|(chain, seconds)| engine(chain as usize, seconds)),
        Some("idle") => flag("--nodes", 1_000).map(|nodes| idle(nodes as usize)),
        _ => {
            Err("usage: nodeflow-bench engine [--chain K] [--seconds S] | idle [--nodes N]".into())
        }
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

/// Invokes a `chain`-op graph back to back for `seconds`.
fn engine(chain: usize, seconds: u64) -> String {
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
            if invoke_to_output(&mut node, invokes) != Some(invokes) {
                return serde_json::json!({"scenario": "engine", "error": "wrong output"})
                    .to_string();
            }
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    let ops = invokes as f64 * chain as f64;
    serde_json::json!({
        "scenario": "engine",
        "chain": chain,
        "seconds": elapsed,
        "invokes": invokes,
        "invokes_per_sec": invokes as f64 / elapsed,
        "ops_per_sec": ops / elapsed,
        "ns_per_op": elapsed * 1e9 / ops,
        "ns_per_invoke": elapsed * 1e9 / invokes as f64,
    })
    .to_string()
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
