//! Compute round trips, through a Node on its actor and the [`ComputePool`] versus raw rayon: the workload of the `compute` scenario.
//!
//! One round trip: the host asks for `x²` and waits for the answer. On the
//! nodeflow side that is host → the Node's ingress → its actor polls →
//! the `Square` op of a [`ComputeComponent`] parks and submits a rayon job
//! → the job's completion goes back into the ingress → the actor polls →
//! `ExecFinished` → the host's subscription. The raw baseline is rayon
//! `spawn` of the same closure, replying over a crossbeam channel. A third,
//! informative measure (`relay`) puts a plain thread where the actor is
//! (host → thread → rayon → thread → host over crossbeam channels), so the
//! cost of the extra hops can be told apart from nodeflow's own.
//!
//! # Invariants
//! * Every answer is checked (`y == x²` for the `x` that ticket asked);
//!   a wrong or missing answer is a [`BenchError::Verification`].
//! * `inflight` requests are outstanding at any time (1 = latency).
//! * Each side uses its own one-thread rayon pool.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use nodeflow::actors::{ActorConfig, ActorOutput, NodeActor, Router, SystemClock};
use nodeflow::engine::sync::Arc;
use nodeflow::engine::{ExecOrigin, GraphBuilder, Node, PeerId, SiteId, SlotValue, U64Value};
use nodeflow::{ComputeComponent, ComputePool};

use crate::{thread_sleeps, BenchError, ACTOR_THREADS, PATIENCE};

/// What one compute run measured (verified before it is returned).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ComputeRun {
    /// Requests outstanding at once.
    pub inflight: usize,
    /// Round trips completed and checked.
    pub round_trips: u64,
    /// Wall time of the run.
    pub elapsed: Duration,
    /// Times an actor went to wait for mail and got some (whether it had
    /// to sleep or found it already queued), summed over every actor; 0 on
    /// the raw side.
    pub actor_waits: u64,
    /// Voluntary context switches of the participant threads during the
    /// run (each is a thread blocking and later being woken), from
    /// [`thread_sleeps`]; 0 where `/proc` is missing.
    pub sleeps: u64,
    /// [`nodeflow::engine::Node::poll`] calls, summed over every actor; 0
    /// on the raw side.
    pub actor_polls: u64,
}

impl ComputeRun {
    /// Round trips per second.
    pub fn per_sec(&self) -> f64 {
        self.round_trips as f64 / self.elapsed.as_secs_f64()
    }

    /// Mean nanoseconds per round trip (at `inflight = 1`, the latency).
    pub fn ns_per_round_trip(&self) -> f64 {
        self.elapsed.as_secs_f64() * 1e9 / self.round_trips as f64
    }
}

/// The request for round trip `ticket` (kept below 2³² so `x²` fits).
fn request(ticket: u64) -> u64 {
    ticket % (1 << 31) + 1
}

/// A Node whose site 0 squares input `x` into output `y` on `pool`.
pub fn square_node(peer: PeerId, pool: &ComputePool) -> Node {
    let component = ComputeComponent::new("compute", pool.clone()).op("Square", |inputs| {
        let x = inputs
            .first()
            .and_then(|v| v.downcast_ref::<U64Value>())
            .ok_or("Square takes a u64")?
            .0;
        Ok(vec![Box::new(U64Value(x * x)) as Box<dyn SlotValue>])
    });
    let mut b = GraphBuilder::new("square");
    let x = b.input("x");
    let y = b.op("Square", [x]).domain("compute").output();
    b.output(y, "y");
    Node::builder(peer)
        .component("compute", Box::new(component))
        .graph(b.build().expect("the square graph is valid"))
        .build()
        .expect("the square graph installs")
}

/// Round trips through a [`NodeActor`] and a one-thread [`ComputePool`]
/// for `duration`, `inflight` at a time; verified, actor stopped.
pub fn nodeflow_compute(duration: Duration, inflight: usize) -> Result<ComputeRun, BenchError> {
    let inflight = inflight.max(1);
    let pool = ComputePool::new(1).map_err(|e| BenchError::Setup(e.to_string()))?;
    let actor = NodeActor::spawn(
        square_node(PeerId::new(1), &pool),
        Arc::new(Router::new()),
        Arc::new(SystemClock::new()),
        ActorConfig::default(),
    )
    .map_err(|e| BenchError::Setup(format!("spawn: {e}")))?;
    let outputs = actor
        .subscribe()
        .map_err(|e| BenchError::Setup(e.to_string()))?;
    let invoke = |ticket: u64| {
        let x: Box<dyn SlotValue> = Box::new(U64Value(request(ticket)));
        actor
            .invoke(SiteId::new(0), vec![("x".into(), x)], ticket)
            .map_err(|e| BenchError::Verification(format!("invoke refused: {e}")))
    };
    let threads = [ACTOR_THREADS, "nodeflow-comp"];
    let run = drive(duration, inflight, &threads, invoke, || {
        match outputs.recv_timeout(PATIENCE) {
            Ok(ActorOutput::ExecFinished {
                origin: ExecOrigin::Ticket(ticket),
                outputs,
                ..
            }) => {
                let y = outputs
                    .first()
                    .and_then(|(_, v)| v.downcast_ref::<U64Value>())
                    .map(|v| v.0);
                Ok((ticket, y))
            }
            Ok(other) => Err(BenchError::Verification(format!(
                "unexpected output {other:?}"
            ))),
            Err(_) => Err(BenchError::Verification("an answer never came".into())),
        }
    });
    drop(outputs);
    let report = actor.stop();
    let run = run?;
    let report = report.map_err(|e| BenchError::Verification(e.to_string()))?;
    let stats = pool.stats();
    if report.node.executions_finished != run.round_trips
        || report.node.ops_failed != 0
        || stats.completed != run.round_trips
    {
        return Err(BenchError::Verification(format!(
            "{} round trips but {} executions, {} failed ops, pool {stats:?}",
            run.round_trips, report.node.executions_finished, report.node.ops_failed
        )));
    }
    Ok(ComputeRun {
        actor_waits: report.stats.wakeups,
        actor_polls: report.stats.polls,
        ..run
    })
}

/// The raw baseline: rayon `spawn` (one-thread pool) of the same closure,
/// answering over a bounded crossbeam channel.
pub fn raw_compute(duration: Duration, inflight: usize) -> Result<ComputeRun, BenchError> {
    let inflight = inflight.max(1);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .thread_name(|i| format!("raw-rayon-{i}"))
        .build()
        .map_err(|e| BenchError::Setup(e.to_string()))?;
    let (tx, rx) = crossbeam_channel::bounded::<(u64, Option<u64>)>(inflight);
    let invoke = |ticket: u64| {
        let tx = tx.clone();
        pool.spawn(move || {
            let x = request(ticket);
            let _ = tx.send((ticket, Some(x * x)));
        });
        Ok(())
    };
    drive(duration, inflight, &["raw-rayon"], invoke, || {
        rx.recv_timeout(PATIENCE)
            .map_err(|_| BenchError::Verification("an answer never came".into()))
    })
}

/// The informative relay: host → a plain thread → rayon → that thread →
/// host, all over bounded crossbeam channels (the actor's hops, no engine).
pub fn relay_compute(duration: Duration, inflight: usize) -> Result<ComputeRun, BenchError> {
    let inflight = inflight.max(1);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .thread_name(|i| format!("relay-rayon-{i}"))
        .build()
        .map_err(|e| BenchError::Setup(e.to_string()))?;
    // The relay thread's mailbox carries requests (from the host) and
    // results (from rayon), as a Node's ingress does.
    enum Mail {
        Ask(u64),
        Done(u64, u64),
    }
    let (mail_tx, mail_rx) = crossbeam_channel::bounded::<Mail>(2 * inflight);
    let (out_tx, out_rx) = crossbeam_channel::bounded::<(u64, Option<u64>)>(inflight);
    let back = mail_tx.clone();
    let relay = std::thread::Builder::new()
        .name("raw-relay".into())
        .spawn(move || {
            while let Ok(mail) = mail_rx.recv() {
                match mail {
                    Mail::Ask(ticket) => {
                        let back = back.clone();
                        pool.spawn(move || {
                            let x = request(ticket);
                            let _ = back.send(Mail::Done(ticket, x * x));
                        });
                    }
                    Mail::Done(ticket, y) => {
                        if out_tx.send((ticket, Some(y))).is_err() {
                            return;
                        }
                    }
                }
            }
        })
        .map_err(|e| BenchError::Setup(e.to_string()))?;
    let invoke = |ticket: u64| {
        mail_tx
            .send(Mail::Ask(ticket))
            .map_err(|_| BenchError::Verification("the relay died".into()))
    };
    let run = drive(
        duration,
        inflight,
        &["relay-rayon", "raw-relay"],
        invoke,
        || {
            out_rx
                .recv_timeout(PATIENCE)
                .map_err(|_| BenchError::Verification("an answer never came".into()))
        },
    );
    // Dropping the host's receiver makes the relay's next send fail; the
    // relay also holds a sender to its own mailbox, so it exits that way.
    drop(out_rx);
    let _ = mail_tx.send(Mail::Done(0, 0));
    drop(mail_tx);
    relay
        .join()
        .map_err(|_| BenchError::Verification("the relay panicked".into()))?;
    run
}

/// Keeps `inflight` requests outstanding for `duration`, checking every
/// answer, then collects the stragglers; counts the sleeps of `threads`
/// (name prefixes) and of the host.
fn drive(
    duration: Duration,
    inflight: usize,
    threads: &[&str],
    mut invoke: impl FnMut(u64) -> Result<(), BenchError>,
    mut answer: impl FnMut() -> Result<(u64, Option<u64>), BenchError>,
) -> Result<ComputeRun, BenchError> {
    let mut outstanding = HashSet::with_capacity(inflight);
    let check = |(ticket, y): (u64, Option<u64>), outstanding: &mut HashSet<u64>| {
        let x = request(ticket);
        if !outstanding.remove(&ticket) {
            return Err(BenchError::Verification(format!(
                "ticket {ticket} answered but not outstanding"
            )));
        }
        if y != Some(x * x) {
            return Err(BenchError::Verification(format!(
                "ticket {ticket}: got {y:?} for {x}²"
            )));
        }
        Ok(())
    };
    let sleeps_before = thread_sleeps(threads);
    let start = Instant::now();
    let mut next = 0u64;
    let mut done = 0u64;
    for _ in 0..inflight {
        outstanding.insert(next);
        invoke(next)?;
        next += 1;
    }
    while start.elapsed() < duration {
        check(answer()?, &mut outstanding)?;
        done += 1;
        outstanding.insert(next);
        invoke(next)?;
        next += 1;
    }
    while done < next {
        check(answer()?, &mut outstanding)?;
        done += 1;
    }
    Ok(ComputeRun {
        inflight,
        round_trips: done,
        elapsed: start.elapsed(),
        actor_waits: 0,
        actor_polls: 0,
        sleeps: thread_sleeps(threads).saturating_sub(sleeps_before),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_compute_side_answers_what_it_was_asked() {
        for run in [nodeflow_compute, raw_compute, relay_compute] {
            for inflight in [1, 8] {
                let result = run(Duration::from_millis(20), inflight).unwrap();
                assert_eq!(result.inflight, inflight);
                assert!(result.round_trips >= inflight as u64);
            }
        }
    }
}
