//! The peer workloads on ractor 0.16: request/response with `call!`, one-way tells with `ActorRef::cast` (ractor's mailboxes are unbounded).
//!
//! Each run builds a multi-threaded tokio runtime with 2 workers and drives
//! from `Runtime::block_on` on the calling thread; actors are spawned with
//! `Actor::spawn`. At the end every actor is stopped and its join handle
//! awaited, then the runtime is shut down.

use std::time::Instant;

use nodeflow::engine::sync::channel::unbounded;
use ractor::concurrency::JoinHandle;
use ractor::{call, Actor, ActorProcessingErr, ActorRef, RpcReplyPort};

use super::{
    check_answer, pingpong_over, tokio_runtime, Fault, Hop, PeerRing, PingPongRun,
    SHUTDOWN_PATIENCE,
};
use crate::tell::{check_messages, wait_delivered, TellSink};
use crate::{thread_sleeps, BenchError, RingRun, Stop, TellRun};

/// Thread name of the runtime's workers.
const THREADS: &str = "ractor-worker";

/// Request/response round trips from the driver to one actor until `stop`
/// (`Stop::Hops(h)`: `h / 2` round trips); every answer is checked.
pub fn ractor_pingpong(stop: Stop) -> Result<PingPongRun, BenchError> {
    pingpong(stop, Fault::None)
}

/// A ring of `nodes` actors with `tokens` tokens passed on with `cast`,
/// until `stop`.
pub fn ractor_ring(nodes: usize, tokens: usize, stop: Stop) -> Result<RingRun, BenchError> {
    ring(nodes, tokens, stop, Fault::None)
}

/// A stream of `messages` from the host through a sender actor to a
/// receiver actor, all with `cast`.
pub fn ractor_tell(messages: u64) -> Result<TellRun, BenchError> {
    tell(messages, Fault::None)
}

fn failed(what: &str, e: impl std::fmt::Display) -> BenchError {
    BenchError::Verification(format!("ractor {what}: {e}"))
}

/// Spawns an unnamed actor.
async fn spawn<A: Actor>(
    actor: A,
    args: A::Arguments,
) -> Result<(ActorRef<A::Msg>, JoinHandle<()>), BenchError> {
    Actor::spawn(None, actor, args)
        .await
        .map_err(|e| BenchError::Setup(format!("ractor spawn: {e}")))
}

/// Stops every actor and awaits its end.
async fn stop_all<M>(actors: Vec<(ActorRef<M>, JoinHandle<()>)>) -> Result<(), BenchError> {
    let mut handles = Vec::with_capacity(actors.len());
    for (actor, handle) in actors {
        actor.stop(None);
        handles.push(handle);
    }
    for handle in handles {
        handle
            .await
            .map_err(|e| BenchError::Verification(format!("a ractor actor failed: {e}")))?;
    }
    Ok(())
}

struct PingActor;

enum PingMsg {
    Ping(u64, RpcReplyPort<u64>),
}

impl Actor for PingActor {
    type Msg = PingMsg;
    /// What the actor adds to a request.
    type State = u64;
    type Arguments = u64;

    async fn pre_start(&self, _: ActorRef<PingMsg>, step: u64) -> Result<u64, ActorProcessingErr> {
        Ok(step)
    }

    async fn handle(
        &self,
        _: ActorRef<PingMsg>,
        message: PingMsg,
        step: &mut u64,
    ) -> Result<(), ActorProcessingErr> {
        let PingMsg::Ping(request, reply) = message;
        // Err: the caller gave up; its own check reports that.
        let _ = reply.send(request + *step);
        Ok(())
    }
}

fn pingpong(stop: Stop, fault: Fault) -> Result<PingPongRun, BenchError> {
    let runtime = tokio_runtime(THREADS)?;
    let result = runtime.block_on(async {
        let (actor, handle) = spawn(PingActor, fault.answer_step()).await?;
        let start = Instant::now();
        let mut done = 0;
        let mut failure = None;
        while !pingpong_over(stop, start, done) {
            let checked = match call!(actor, PingMsg::Ping, done) {
                Ok(answer) => check_answer(done, answer),
                Err(e) => Err(failed("call", e)),
            };
            if let Err(e) = checked {
                failure = Some(e);
                break;
            }
            done += 1;
        }
        let elapsed = start.elapsed();
        stop_all(vec![(actor, handle)]).await?;
        match failure {
            Some(e) => Err(e),
            None => Ok(PingPongRun {
                round_trips: done,
                elapsed,
            }),
        }
    });
    runtime.shutdown_timeout(SHUTDOWN_PATIENCE);
    result
}

struct RingActor;

enum RingMsg {
    Link(ActorRef<RingMsg>),
    Token(u64),
    Received(RpcReplyPort<u64>),
}

struct RingState {
    hop: Hop,
    next: Option<ActorRef<RingMsg>>,
}

impl Actor for RingActor {
    type Msg = RingMsg;
    type State = RingState;
    type Arguments = Hop;

    async fn pre_start(
        &self,
        _: ActorRef<RingMsg>,
        hop: Hop,
    ) -> Result<RingState, ActorProcessingErr> {
        Ok(RingState { hop, next: None })
    }

    async fn handle(
        &self,
        _: ActorRef<RingMsg>,
        message: RingMsg,
        state: &mut RingState,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            RingMsg::Link(next) => state.next = Some(next),
            RingMsg::Token(value) => {
                let Some(passed) = state.hop.on_token(value) else {
                    return Ok(());
                };
                let sent = match &state.next {
                    Some(next) => next.cast(RingMsg::Token(passed)).map_err(|e| e.to_string()),
                    None => Err("a token before the link".into()),
                };
                if let Err(message) = sent {
                    state.hop.fail(passed, format!("ractor ring: {message}"));
                }
            }
            RingMsg::Received(reply) => {
                let _ = reply.send(state.hop.received);
            }
        }
        Ok(())
    }
}

fn ring(nodes: usize, tokens: usize, stop: Stop, fault: Fault) -> Result<RingRun, BenchError> {
    let run = PeerRing::new(nodes, tokens, stop)?;
    let runtime = tokio_runtime(THREADS)?;
    let result = runtime.block_on(async {
        let mut actors = Vec::with_capacity(nodes);
        for index in 0..nodes {
            actors.push(spawn(RingActor, Hop::new(&run, index, fault)).await?);
        }
        let refs: Vec<ActorRef<RingMsg>> = actors.iter().map(|(r, _)| r.clone()).collect();
        let measured = measure_ring(&run, &refs).await;
        drop(refs);
        stop_all(actors).await?;
        measured
    });
    runtime.shutdown_timeout(SHUTDOWN_PATIENCE);
    result
}

async fn measure_ring(run: &PeerRing, actors: &[ActorRef<RingMsg>]) -> Result<RingRun, BenchError> {
    for (index, actor) in actors.iter().enumerate() {
        let next = actors[(index + 1) % actors.len()].clone();
        actor
            .cast(RingMsg::Link(next))
            .map_err(|e| failed("link", e))?;
    }
    let sleeps_before = thread_sleeps(&[THREADS]);
    let start = Instant::now();
    for id in 0..run.tokens {
        let (at, value) = run.entry(id);
        actors[at]
            .cast(RingMsg::Token(value))
            .map_err(|e| failed("inject", e))?;
    }
    // The wait blocks this (driver) thread, not a worker: the actors run on.
    let (waited, elapsed) = run.wait(start);
    let sleeps = thread_sleeps(&[THREADS]).saturating_sub(sleeps_before);
    let mut received = Ok(0);
    for actor in actors {
        match call!(actor, RingMsg::Received) {
            Ok(count) => received = received.map(|sum| sum + count),
            Err(e) => received = Err(failed("received", e)),
        }
    }
    run.verify(waited, received, elapsed, sleeps)
}

struct TellReceiver;

struct Seq(u64);

impl Actor for TellReceiver {
    type Msg = Seq;
    type State = TellSink;
    type Arguments = TellSink;

    async fn pre_start(
        &self,
        _: ActorRef<Seq>,
        sink: TellSink,
    ) -> Result<TellSink, ActorProcessingErr> {
        Ok(sink)
    }

    async fn handle(
        &self,
        _: ActorRef<Seq>,
        Seq(seq): Seq,
        sink: &mut TellSink,
    ) -> Result<(), ActorProcessingErr> {
        sink.on_seq(seq);
        Ok(())
    }
}

struct TellSender;

struct Forward(u64);

struct SenderState {
    receiver: ActorRef<Seq>,
    skipped: Option<u64>,
}

impl Actor for TellSender {
    type Msg = Forward;
    type State = SenderState;
    type Arguments = SenderState;

    async fn pre_start(
        &self,
        _: ActorRef<Forward>,
        state: SenderState,
    ) -> Result<SenderState, ActorProcessingErr> {
        Ok(state)
    }

    async fn handle(
        &self,
        _: ActorRef<Forward>,
        Forward(seq): Forward,
        state: &mut SenderState,
    ) -> Result<(), ActorProcessingErr> {
        if state.skipped != Some(seq) {
            // An error stops this actor; the receiver then never completes
            // and the host's wait reports it.
            if let Err(e) = state.receiver.cast(Seq(seq)) {
                return Err(format!("ractor tell {seq}: {e}").into());
            }
        }
        Ok(())
    }
}

fn tell(messages: u64, fault: Fault) -> Result<TellRun, BenchError> {
    check_messages(messages)?;
    let runtime = tokio_runtime(THREADS)?;
    let result = runtime.block_on(async {
        let (done_tx, done_rx) = unbounded();
        let receiver = spawn(TellReceiver, TellSink::new(messages, done_tx)).await?;
        let state = SenderState {
            receiver: receiver.0.clone(),
            skipped: fault.skipped_seq(),
        };
        let sender = spawn(TellSender, state).await?;
        let start = Instant::now();
        let mut fed = Ok(());
        for seq in 0..messages {
            if let Err(e) = sender.0.cast(Forward(seq)) {
                fed = Err(failed("forward", e));
                break;
            }
        }
        // The wait blocks this (driver) thread, not a worker.
        let waited = fed.and_then(|()| wait_delivered(&done_rx, messages, start));
        stop_all(vec![sender]).await?;
        stop_all(vec![receiver]).await?;
        let (delivered, elapsed) = waited?;
        Ok(TellRun {
            sent: messages,
            delivered,
            refused_router: 0,
            refused_send: 0,
            host_retries: 0,
            elapsed,
        })
    });
    runtime.shutdown_timeout(SHUTDOWN_PATIENCE);
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ractor_delivers_and_verifies_every_workload() {
        let pingpong = ractor_pingpong(Stop::Hops(200)).unwrap();
        assert_eq!(pingpong.round_trips, 100);
        let ring = ractor_ring(4, 2, Stop::Hops(100)).unwrap();
        assert_eq!(ring.hops, 200);
        let tell = ractor_tell(10_000).unwrap();
        assert_eq!((tell.delivered, tell.refused()), (10_000, 0));
    }

    #[test]
    fn ractor_checks_catch_a_wrong_delivery() {
        for failed in [
            pingpong(Stop::Hops(20), Fault::Corrupt).map(|_| ()),
            ring(4, 2, Stop::Hops(100), Fault::Corrupt).map(|_| ()),
            tell(1_000, Fault::Corrupt).map(|_| ()),
        ] {
            assert!(
                matches!(failed, Err(BenchError::Verification(_))),
                "{failed:?}"
            );
        }
    }
}
