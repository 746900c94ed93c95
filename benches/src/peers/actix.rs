//! The peer workloads on actix 0.13: request/response with `Addr::send(..).await`, one-way tells with `Addr::do_send`.
//!
//! Each run starts its own host thread with a `System`, and on it two
//! `Arbiter`s (one thread each) that the actors are spread over; the driver
//! runs on the System's arbiter. At the end the arbiters are stopped and
//! joined, the System is stopped and run to its end, and the host thread is
//! joined (module [`crate::peers`], lifecycle).
//!
//! `do_send` ignores the mailbox's capacity: the ring never needs room
//! (tokens are bounded), and the tell's host is never held back (the queue
//! grows instead).

use std::time::Instant;

use actix::{Actor, Addr, Arbiter, Context, Handler, Message, System, SystemRunner};
use nodeflow::engine::sync::channel::unbounded;

use super::{check_answer, pingpong_over, Fault, Hop, PeerRing, PingPongRun};
use crate::tell::{check_messages, wait_delivered, TellSink};
use crate::{thread_sleeps, BenchError, RingRun, Stop, TellRun};

/// Thread-name prefix of the arbiters and the host thread.
const THREADS: [&str; 2] = ["actix-rt|", "actix-host"];

/// Request/response round trips from the driver to one actor on another
/// arbiter until `stop` (`Stop::Hops(h)`: `h / 2` round trips); every
/// answer is checked.
pub fn actix_pingpong(stop: Stop) -> Result<PingPongRun, BenchError> {
    pingpong(stop, Fault::None)
}

/// A ring of `nodes` actors (alternating between the two arbiters) with
/// `tokens` tokens passed on with `do_send`, until `stop`.
pub fn actix_ring(nodes: usize, tokens: usize, stop: Stop) -> Result<RingRun, BenchError> {
    ring(nodes, tokens, stop, Fault::None)
}

/// A stream of `messages` from the host through a sender actor to a
/// receiver actor (one on each arbiter), all with `do_send`.
pub fn actix_tell(messages: u64) -> Result<TellRun, BenchError> {
    tell(messages, Fault::None)
}

/// Runs `work` on a fresh host thread with a System and two arbiters, then
/// stops all of them and joins the thread.
fn on_system<T: Send + 'static>(
    work: impl FnOnce(&SystemRunner, &[Arbiter; 2]) -> Result<T, BenchError> + Send + 'static,
) -> Result<T, BenchError> {
    let host = std::thread::Builder::new()
        .name("actix-host".into())
        .spawn(move || {
            let system = System::new();
            let arbiters = [Arbiter::new(), Arbiter::new()];
            let result = work(&system, &arbiters);
            for arbiter in &arbiters {
                arbiter.stop();
            }
            let joined = arbiters.into_iter().all(|arbiter| arbiter.join().is_ok());
            System::current().stop();
            let ran = system.run();
            match (result, joined, ran) {
                (Err(e), _, _) => Err(e),
                (Ok(_), false, _) => {
                    Err(BenchError::Verification("an actix arbiter panicked".into()))
                }
                (Ok(_), _, Err(e)) => Err(BenchError::Setup(format!("actix system: {e}"))),
                (Ok(value), true, Ok(())) => Ok(value),
            }
        })
        .map_err(|e| BenchError::Setup(format!("actix host thread: {e}")))?;
    host.join()
        .map_err(|_| BenchError::Verification("the actix host thread panicked".into()))?
}

fn mailbox_closed(what: &str, e: impl std::fmt::Display) -> BenchError {
    BenchError::Verification(format!("actix {what}: {e}"))
}

struct Ping(u64);

impl Message for Ping {
    type Result = u64;
}

struct PingActor {
    step: u64,
}

impl Actor for PingActor {
    type Context = Context<Self>;
}

impl Handler<Ping> for PingActor {
    type Result = u64;

    fn handle(&mut self, Ping(request): Ping, _ctx: &mut Context<Self>) -> u64 {
        request + self.step
    }
}

fn pingpong(stop: Stop, fault: Fault) -> Result<PingPongRun, BenchError> {
    on_system(move |system, arbiters| {
        let step = fault.answer_step();
        let actor = PingActor::start_in_arbiter(&arbiters[1].handle(), move |_| PingActor { step });
        system.block_on(async move {
            let start = Instant::now();
            let mut done = 0;
            while !pingpong_over(stop, start, done) {
                let answer = actor
                    .send(Ping(done))
                    .await
                    .map_err(|e| mailbox_closed("ping", e))?;
                check_answer(done, answer)?;
                done += 1;
            }
            Ok(PingPongRun {
                round_trips: done,
                elapsed: start.elapsed(),
            })
        })
    })
}

struct Token(u64);

impl Message for Token {
    type Result = ();
}

struct Link(Addr<RingActor>);

impl Message for Link {
    type Result = ();
}

struct Received;

impl Message for Received {
    type Result = u64;
}

struct RingActor {
    hop: Hop,
    next: Option<Addr<RingActor>>,
}

impl Actor for RingActor {
    type Context = Context<Self>;
}

impl Handler<Link> for RingActor {
    type Result = ();

    fn handle(&mut self, Link(next): Link, _ctx: &mut Context<Self>) {
        self.next = Some(next);
    }
}

impl Handler<Token> for RingActor {
    type Result = ();

    fn handle(&mut self, Token(value): Token, _ctx: &mut Context<Self>) {
        let Some(passed) = self.hop.on_token(value) else {
            return;
        };
        match &self.next {
            Some(next) => next.do_send(Token(passed)),
            None => self
                .hop
                .fail(passed, "actix ring: a token before the link".into()),
        }
    }
}

impl Handler<Received> for RingActor {
    type Result = u64;

    fn handle(&mut self, _: Received, _ctx: &mut Context<Self>) -> u64 {
        self.hop.received
    }
}

fn ring(nodes: usize, tokens: usize, stop: Stop, fault: Fault) -> Result<RingRun, BenchError> {
    let run = PeerRing::new(nodes, tokens, stop)?;
    on_system(move |system, arbiters| {
        let actors: Vec<Addr<RingActor>> = (0..nodes)
            .map(|index| {
                let hop = Hop::new(&run, index, fault);
                RingActor::start_in_arbiter(&arbiters[index % 2].handle(), move |_| RingActor {
                    hop,
                    next: None,
                })
            })
            .collect();
        for (index, actor) in actors.iter().enumerate() {
            actor.do_send(Link(actors[(index + 1) % nodes].clone()));
        }
        let sleeps_before = thread_sleeps(&THREADS);
        let start = Instant::now();
        for id in 0..tokens {
            let (at, value) = run.entry(id);
            actors[at].do_send(Token(value));
        }
        let (waited, elapsed) = run.wait(start);
        let sleeps = thread_sleeps(&THREADS).saturating_sub(sleeps_before);
        let received = system.block_on(async {
            let mut sum = 0;
            for actor in &actors {
                sum += actor
                    .send(Received)
                    .await
                    .map_err(|e| mailbox_closed("ring", e))?;
            }
            Ok(sum)
        });
        run.verify(waited, received, elapsed, sleeps)
    })
}

struct Forward(u64);

impl Message for Forward {
    type Result = ();
}

struct Seq(u64);

impl Message for Seq {
    type Result = ();
}

struct TellSender {
    receiver: Addr<TellReceiver>,
    skipped: Option<u64>,
}

impl Actor for TellSender {
    type Context = Context<Self>;
}

impl Handler<Forward> for TellSender {
    type Result = ();

    fn handle(&mut self, Forward(seq): Forward, _ctx: &mut Context<Self>) {
        if self.skipped != Some(seq) {
            self.receiver.do_send(Seq(seq));
        }
    }
}

struct TellReceiver {
    sink: TellSink,
}

impl Actor for TellReceiver {
    type Context = Context<Self>;
}

impl Handler<Seq> for TellReceiver {
    type Result = ();

    fn handle(&mut self, Seq(seq): Seq, _ctx: &mut Context<Self>) {
        self.sink.on_seq(seq);
    }
}

fn tell(messages: u64, fault: Fault) -> Result<TellRun, BenchError> {
    check_messages(messages)?;
    on_system(move |_system, arbiters| {
        let (done_tx, done_rx) = unbounded();
        let receiver =
            TellReceiver::start_in_arbiter(&arbiters[1].handle(), move |_| TellReceiver {
                sink: TellSink::new(messages, done_tx),
            });
        let skipped = fault.skipped_seq();
        let sender = TellSender::start_in_arbiter(&arbiters[0].handle(), move |_| TellSender {
            receiver,
            skipped,
        });
        let start = Instant::now();
        for seq in 0..messages {
            sender.do_send(Forward(seq));
        }
        let (delivered, elapsed) = wait_delivered(&done_rx, messages, start)?;
        Ok(TellRun {
            sent: messages,
            delivered,
            refused_router: 0,
            refused_send: 0,
            host_retries: 0,
            elapsed,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actix_delivers_and_verifies_every_workload() {
        let pingpong = actix_pingpong(Stop::Hops(200)).unwrap();
        assert_eq!(pingpong.round_trips, 100);
        let ring = actix_ring(4, 2, Stop::Hops(100)).unwrap();
        assert_eq!(ring.hops, 200);
        let tell = actix_tell(10_000).unwrap();
        assert_eq!((tell.delivered, tell.refused()), (10_000, 0));
    }

    #[test]
    fn actix_checks_catch_a_wrong_delivery() {
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
