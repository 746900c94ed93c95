//! The peer workloads on kameo 0.22: request/response with `ActorRef::ask(..).await`, one-way tells with `ActorRef::tell(..).await` on bounded mailboxes.
//!
//! Each run builds a multi-threaded tokio runtime with 2 workers and drives
//! from `Runtime::block_on` on the calling thread; actors are spawned with
//! `Spawn::spawn` (the default bounded mailbox of 64, where `tell(..).await`
//! waits for room). The ring is the exception: its actors get a mailbox of
//! `max(64, tokens)`, because a ring of bounded mailboxes holding more
//! tokens than one mailbox can wedge with every actor awaiting room. At the
//! end every actor is stopped gracefully and awaited, then the runtime is
//! shut down.

use std::time::Instant;

use kameo::actor::{ActorRef, Spawn};
use kameo::error::Infallible;
use kameo::mailbox;
use kameo::message::{Context, Message};
use kameo::Actor;
use nodeflow::engine::sync::channel::{unbounded, Sender};

use super::{
    check_answer, pingpong_over, tokio_runtime, Fault, Hop, PeerRing, PingPongRun,
    SHUTDOWN_PATIENCE,
};
use crate::tell::{check_messages, wait_delivered, TellSink};
use crate::{thread_sleeps, BenchError, RingRun, Stop, TellRun};

/// Thread name of the runtime's workers.
const THREADS: &str = "kameo-worker";

/// kameo's default mailbox capacity (`Spawn::spawn`).
const DEFAULT_MAILBOX: usize = 64;

/// Request/response round trips from the driver to one actor until `stop`
/// (`Stop::Hops(h)`: `h / 2` round trips); every answer is checked.
pub fn kameo_pingpong(stop: Stop) -> Result<PingPongRun, BenchError> {
    pingpong(stop, Fault::None)
}

/// A ring of `nodes` actors with `tokens` tokens passed on with
/// `tell(..).await`, until `stop`.
pub fn kameo_ring(nodes: usize, tokens: usize, stop: Stop) -> Result<RingRun, BenchError> {
    ring(nodes, tokens, stop, Fault::None)
}

/// A stream of `messages` from the host through a sender actor to a
/// receiver actor, all with `tell(..).await` on default mailboxes.
pub fn kameo_tell(messages: u64) -> Result<TellRun, BenchError> {
    tell(messages, Fault::None)
}

fn refused(what: &str, e: impl std::fmt::Display) -> BenchError {
    BenchError::Verification(format!("kameo {what}: {e}"))
}

/// Stops every actor of `actors` gracefully and waits until each is gone.
async fn stop_all<A: Actor>(actors: &[ActorRef<A>]) {
    for actor in actors {
        // Err: already stopped, which is what we want.
        let _ = actor.stop_gracefully().await;
    }
    for actor in actors {
        actor.wait_for_shutdown().await;
    }
}

struct PingActor {
    step: u64,
}

impl Actor for PingActor {
    type Args = Self;
    type Error = Infallible;

    async fn on_start(actor: Self, _: ActorRef<Self>) -> Result<Self, Infallible> {
        Ok(actor)
    }
}

struct Ping(u64);

impl Message<Ping> for PingActor {
    type Reply = u64;

    async fn handle(&mut self, Ping(request): Ping, _: &mut Context<Self, u64>) -> u64 {
        request + self.step
    }
}

fn pingpong(stop: Stop, fault: Fault) -> Result<PingPongRun, BenchError> {
    let runtime = tokio_runtime(THREADS)?;
    let result = runtime.block_on(async {
        let actor = PingActor::spawn(PingActor {
            step: fault.answer_step(),
        });
        let start = Instant::now();
        let mut done = 0;
        let mut failure = None;
        while !pingpong_over(stop, start, done) {
            let checked = match actor.ask(Ping(done)).await {
                Ok(answer) => check_answer(done, answer),
                Err(e) => Err(refused("ask", e)),
            };
            if let Err(e) = checked {
                failure = Some(e);
                break;
            }
            done += 1;
        }
        let elapsed = start.elapsed();
        stop_all(&[actor]).await;
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

struct RingActor {
    hop: Hop,
    next: Option<ActorRef<RingActor>>,
}

impl Actor for RingActor {
    type Args = Self;
    type Error = Infallible;

    async fn on_start(actor: Self, _: ActorRef<Self>) -> Result<Self, Infallible> {
        Ok(actor)
    }
}

struct Link(ActorRef<RingActor>);

impl Message<Link> for RingActor {
    type Reply = ();

    async fn handle(&mut self, Link(next): Link, _: &mut Context<Self, ()>) {
        self.next = Some(next);
    }
}

struct Token(u64);

impl Message<Token> for RingActor {
    type Reply = ();

    async fn handle(&mut self, Token(value): Token, _: &mut Context<Self, ()>) {
        let Some(passed) = self.hop.on_token(value) else {
            return;
        };
        let sent = match &self.next {
            Some(next) => next.tell(Token(passed)).await.map_err(|e| e.to_string()),
            None => Err("a token before the link".into()),
        };
        if let Err(message) = sent {
            self.hop.fail(passed, format!("kameo ring: {message}"));
        }
    }
}

struct Received;

impl Message<Received> for RingActor {
    type Reply = u64;

    async fn handle(&mut self, _: Received, _: &mut Context<Self, u64>) -> u64 {
        self.hop.received
    }
}

fn ring(nodes: usize, tokens: usize, stop: Stop, fault: Fault) -> Result<RingRun, BenchError> {
    let run = PeerRing::new(nodes, tokens, stop)?;
    let runtime = tokio_runtime(THREADS)?;
    let result = runtime.block_on(async {
        let capacity = DEFAULT_MAILBOX.max(tokens);
        let actors: Vec<ActorRef<RingActor>> = (0..nodes)
            .map(|index| {
                let actor = RingActor {
                    hop: Hop::new(&run, index, fault),
                    next: None,
                };
                RingActor::spawn_with_mailbox(actor, mailbox::bounded(capacity))
            })
            .collect();
        let mut linked = Ok(());
        for (index, actor) in actors.iter().enumerate() {
            let next = actors[(index + 1) % nodes].clone();
            if let Err(e) = actor.tell(Link(next)).await {
                linked = Err(refused("link", e));
            }
        }
        let measured = match linked {
            Ok(()) => measure_ring(&run, &actors).await,
            Err(e) => Err(e),
        };
        stop_all(&actors).await;
        measured
    });
    runtime.shutdown_timeout(SHUTDOWN_PATIENCE);
    result
}

async fn measure_ring(
    run: &PeerRing,
    actors: &[ActorRef<RingActor>],
) -> Result<RingRun, BenchError> {
    let sleeps_before = thread_sleeps(&[THREADS]);
    let start = Instant::now();
    for id in 0..run.tokens {
        let (at, value) = run.entry(id);
        actors[at]
            .tell(Token(value))
            .await
            .map_err(|e| refused("inject", e))?;
    }
    // The wait blocks this (driver) thread, not a worker: the actors run on.
    let (waited, elapsed) = run.wait(start);
    let sleeps = thread_sleeps(&[THREADS]).saturating_sub(sleeps_before);
    let mut received = Ok(0);
    for actor in actors {
        match actor.ask(Received).await {
            Ok(count) => received = received.map(|sum| sum + count),
            Err(e) => received = Err(refused("received", e)),
        }
    }
    run.verify(waited, received, elapsed, sleeps)
}

struct TellReceiver {
    sink: TellSink,
}

impl Actor for TellReceiver {
    type Args = Self;
    type Error = Infallible;

    async fn on_start(actor: Self, _: ActorRef<Self>) -> Result<Self, Infallible> {
        Ok(actor)
    }
}

struct Seq(u64);

impl Message<Seq> for TellReceiver {
    type Reply = ();

    async fn handle(&mut self, Seq(seq): Seq, _: &mut Context<Self, ()>) {
        self.sink.on_seq(seq);
    }
}

struct TellSender {
    receiver: ActorRef<TellReceiver>,
    skipped: Option<u64>,
    /// Where a failed tell is reported (the host's verdict channel).
    done: Sender<Result<u64, String>>,
}

impl Actor for TellSender {
    type Args = Self;
    type Error = Infallible;

    async fn on_start(actor: Self, _: ActorRef<Self>) -> Result<Self, Infallible> {
        Ok(actor)
    }
}

struct Forward(u64);

impl Message<Forward> for TellSender {
    type Reply = ();

    async fn handle(&mut self, Forward(seq): Forward, _: &mut Context<Self, ()>) {
        if self.skipped == Some(seq) {
            return;
        }
        if let Err(e) = self.receiver.tell(Seq(seq)).await {
            let _ = self.done.send(Err(format!("kameo tell {seq}: {e}")));
        }
    }
}

fn tell(messages: u64, fault: Fault) -> Result<TellRun, BenchError> {
    check_messages(messages)?;
    let runtime = tokio_runtime(THREADS)?;
    let result = runtime.block_on(async {
        let (done_tx, done_rx) = unbounded();
        let receiver = TellReceiver::spawn(TellReceiver {
            sink: TellSink::new(messages, done_tx.clone()),
        });
        let sender = TellSender::spawn(TellSender {
            receiver: receiver.clone(),
            skipped: fault.skipped_seq(),
            done: done_tx,
        });
        let start = Instant::now();
        let mut fed = Ok(());
        for seq in 0..messages {
            if let Err(e) = sender.tell(Forward(seq)).await {
                fed = Err(refused("forward", e));
                break;
            }
        }
        // The wait blocks this (driver) thread, not a worker.
        let waited = fed.and_then(|()| wait_delivered(&done_rx, messages, start));
        stop_all(&[sender]).await;
        stop_all(&[receiver]).await;
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
    fn kameo_delivers_and_verifies_every_workload() {
        let pingpong = kameo_pingpong(Stop::Hops(200)).unwrap();
        assert_eq!(pingpong.round_trips, 100);
        let ring = kameo_ring(4, 2, Stop::Hops(100)).unwrap();
        assert_eq!(ring.hops, 200);
        let tell = kameo_tell(10_000).unwrap();
        assert_eq!((tell.delivered, tell.refused()), (10_000, 0));
    }

    #[test]
    fn kameo_checks_catch_a_wrong_delivery() {
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
