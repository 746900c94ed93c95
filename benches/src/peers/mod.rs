//! The `pingpong`, `ring` and `tell` workloads on the actor frameworks a user would otherwise pick (actix, kameo, ractor), so nodeflow is measured against them in the same process run.
//!
//! One file per framework ([`actix`], [`kameo`], [`ractor`]), each using the framework as its docs show;
//! [`Peer`] names them for the CLI and the criterion benches.
//!
//! # Forms
//! * `pingpong`: request/response, each framework's own request idiom: a
//!   driver asks one actor (actix `Addr::send(..).await`, kameo
//!   `ActorRef::ask(..).await`, ractor `call!`) and awaits the answer,
//!   which must be the request + 1. A round trip crosses between two
//!   threads twice, like nodeflow's ping-pong (a ring of 2 actors with one
//!   token, two one-way hops per round trip), which has no
//!   request/response of its own to compare.
//! * `ring`: `N` actors, `K` tokens, one-way tells (actix `do_send`,
//!   kameo `tell(..).await`, ractor `cast`), the token scheme of
//!   [`crate::nodeflow_ring`]: every actor checks each token with a
//!   [`TokenCheck`] and retires it at the run's [`Stop`]; afterwards the
//!   host asks every actor how many tokens it received (hops + one
//!   retirement per token).
//! * `tell`: host → sender actor → receiver actor, one `u64` sequence
//!   number per message, checked in order by the receiver (see
//!   [`crate::nodeflow_tell`] and [`crate::raw_tell`] for the nodeflow and
//!   raw sides, which run the same two legs). Mailboxes: actix `do_send` ignores the bounded
//!   mailbox (it is unbounded in effect, so the host is never held back);
//!   kameo's default mailbox is bounded (64) and `tell(..).await` waits for
//!   room; ractor's mailboxes are unbounded.
//!
//! # Runtimes
//! Each framework gets the runtime its docs set up, sized for a 2-core box:
//! * actix: a `System` on a host thread of the run's own, the actors spread
//!   over 2 `Arbiter`s (one thread each); the driver runs on the System's
//!   arbiter (`SystemRunner::block_on`).
//! * kameo, ractor: a multi-threaded tokio runtime with 2 worker threads;
//!   the driver runs in `Runtime::block_on` on the calling thread (what
//!   `#[tokio::main]` does).
//!
//! # Lifecycle of one run
//! 1. Start the runtime, then the actors (ring actors are linked to their
//!    successors by a first message, which every mailbox delivers before
//!    any token because mailboxes are FIFO per sender).
//! 2. Measure: from the first message to the last answer, retirement or
//!    delivery.
//! 3. Ask each actor for its books (rings) while the runtime still runs.
//! 4. Stop every actor and await it, then stop the runtime (actix: stop
//!    and join the arbiters, stop the System; tokio: shut the runtime
//!    down), so nothing outlives the run.
//! 5. Verify; only a verified run returns a number.

pub mod actix;
pub mod kameo;
pub mod ractor;

use std::time::{Duration, Instant};

use nodeflow::engine::sync::channel::{unbounded, Receiver};
use nodeflow::engine::sync::Arc;

use crate::ring::{check_shape, wait_retired, RingControl};
use crate::tell::TellRun;
use crate::{token, untoken, BenchError, RingRun, Stop, TokenCheck};

/// What one request/response run measured (verified before it is returned).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PingPongRun {
    /// Requests answered (every answer checked).
    pub round_trips: u64,
    /// From the first request to the last answer.
    pub elapsed: Duration,
}

impl PingPongRun {
    /// Round trips per second.
    pub fn round_trips_per_sec(&self) -> f64 {
        self.round_trips as f64 / self.elapsed.as_secs_f64()
    }

    /// Microseconds per round trip.
    pub fn us_per_round_trip(&self) -> f64 {
        self.elapsed.as_secs_f64() * 1e6 / self.round_trips.max(1) as f64
    }
}

/// A peer actor framework.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Peer {
    /// actix 0.13.
    Actix,
    /// kameo 0.22.
    Kameo,
    /// ractor 0.16.
    Ractor,
}

impl Peer {
    /// Every peer, in the order the reports list them.
    pub const ALL: [Peer; 3] = [Peer::Actix, Peer::Kameo, Peer::Ractor];

    /// The framework's crate name.
    pub fn name(self) -> &'static str {
        match self {
            Peer::Actix => "actix",
            Peer::Kameo => "kameo",
            Peer::Ractor => "ractor",
        }
    }

    /// The peer called `name` (its crate name).
    pub fn from_name(name: &str) -> Option<Peer> {
        Self::ALL.into_iter().find(|peer| peer.name() == name)
    }

    /// Request/response round trips until `stop` (see [`actix::actix_pingpong`]).
    pub fn pingpong(self, stop: Stop) -> Result<PingPongRun, BenchError> {
        match self {
            Peer::Actix => actix::actix_pingpong(stop),
            Peer::Kameo => kameo::kameo_pingpong(stop),
            Peer::Ractor => ractor::ractor_pingpong(stop),
        }
    }

    /// A ring of `nodes` actors with `tokens` tokens until `stop`.
    pub fn ring(self, nodes: usize, tokens: usize, stop: Stop) -> Result<RingRun, BenchError> {
        match self {
            Peer::Actix => actix::actix_ring(nodes, tokens, stop),
            Peer::Kameo => kameo::kameo_ring(nodes, tokens, stop),
            Peer::Ractor => ractor::ractor_ring(nodes, tokens, stop),
        }
    }

    /// A one-way stream of `messages` from a sender actor to a receiver.
    pub fn tell(self, messages: u64) -> Result<TellRun, BenchError> {
        match self {
            Peer::Actix => actix::actix_tell(messages),
            Peer::Kameo => kameo::kameo_tell(messages),
            Peer::Ractor => ractor::ractor_tell(messages),
        }
    }
}

/// A deliberate fault, for the tests that prove the checks catch a wrong
/// delivery; every measured run uses [`Fault::None`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Fault {
    /// Deliver correctly.
    None,
    /// pingpong: answer request + 2; ring: actor 0 adds 2 hops to every
    /// token it passes on; tell: the sender skips sequence number 1.
    Corrupt,
}

impl Fault {
    /// What a ping actor adds to a request.
    pub(crate) fn answer_step(self) -> u64 {
        match self {
            Fault::None => 1,
            Fault::Corrupt => 2,
        }
    }

    /// What ring actor `index` adds to a token's hop count.
    pub(crate) fn hop_step(self, index: usize) -> u32 {
        match self {
            Fault::Corrupt if index == 0 => 2,
            _ => 1,
        }
    }

    /// The sequence number a tell sender drops, if any.
    pub(crate) fn skipped_seq(self) -> Option<u64> {
        (self == Fault::Corrupt).then_some(1)
    }
}

/// Round trips a run of `stop` may start: unlimited for a timed run,
/// `hops / 2` for a counted one (a round trip is two one-way messages, as
/// in the ring of 2).
pub(crate) fn round_trip_limit(stop: Stop) -> u64 {
    match stop {
        Stop::After(_) => u64::MAX,
        Stop::Hops(hops) => u64::from(hops / 2),
    }
}

/// Whether a ping-pong driver that started at `start` and has made `done`
/// round trips is finished.
pub(crate) fn pingpong_over(stop: Stop, start: Instant, done: u64) -> bool {
    match stop {
        Stop::After(duration) => start.elapsed() >= duration,
        Stop::Hops(_) => done >= round_trip_limit(stop),
    }
}

/// Checks one answer of a ping-pong.
pub(crate) fn check_answer(request: u64, answer: u64) -> Result<(), BenchError> {
    if answer != request + 1 {
        return Err(BenchError::Verification(format!(
            "request {request} was answered {answer}, expected {}",
            request + 1
        )));
    }
    Ok(())
}

/// A ring actor's logic, the same in every framework: check, count, pass on
/// or retire.
#[derive(Debug)]
pub(crate) struct Hop {
    control: Arc<RingControl>,
    check: TokenCheck,
    step: u32,
    /// Tokens this actor received.
    pub(crate) received: u64,
}

impl Hop {
    /// The logic of actor `index` of `ring`.
    pub(crate) fn new(ring: &PeerRing, index: usize, fault: Fault) -> Self {
        Self {
            control: Arc::clone(&ring.control),
            check: TokenCheck::new(ring.nodes, index, ring.tokens),
            step: fault.hop_step(index),
            received: 0,
        }
    }

    /// Takes one token; returns the token to pass on, or `None` when it
    /// retires here. A token that fails its check is recorded as the run's
    /// failure and retired, so the host stops waiting for it.
    pub(crate) fn on_token(&mut self, value: u64) -> Option<u64> {
        self.received += 1;
        match self.check.observe(value) {
            Ok((id, hops)) if self.control.retires(hops) => {
                self.control.retire(id, hops);
                None
            }
            Ok((id, hops)) => Some(token(id, hops + self.step)),
            Err(message) => {
                self.fail(value, message);
                None
            }
        }
    }

    /// Records `message` as the run's failure and retires `value`.
    pub(crate) fn fail(&self, value: u64, message: String) {
        self.control.record_error(message);
        let (id, hops) = untoken(value);
        self.control.retire(id, hops);
    }
}

/// The host's side of a peer ring run.
#[derive(Debug)]
pub(crate) struct PeerRing {
    nodes: usize,
    tokens: usize,
    stop: Stop,
    control: Arc<RingControl>,
    retired: Receiver<(u32, u32)>,
}

impl PeerRing {
    /// A run of `tokens` tokens around `nodes` actors until `stop`.
    pub(crate) fn new(nodes: usize, tokens: usize, stop: Stop) -> Result<Self, BenchError> {
        check_shape(nodes, tokens)?;
        let (retired_tx, retired) = unbounded();
        Ok(Self {
            nodes,
            tokens,
            stop,
            control: Arc::new(RingControl::new(stop, retired_tx)),
            retired,
        })
    }

    /// Token `id`'s first value and the actor it enters at.
    pub(crate) fn entry(&self, id: usize) -> (usize, u64) {
        (id % self.nodes, token(id as u32, 0))
    }

    /// Waits until every token retired (raising the stop flag of a timed
    /// run when its time is up); returns the hop count and the elapsed time.
    pub(crate) fn wait(&self, start: Instant) -> (Result<u64, BenchError>, Duration) {
        let waited = wait_retired(&self.retired, self.tokens, self.stop, start, || {
            self.control.halt()
        });
        (waited, start.elapsed())
    }

    /// Verifies a finished run from its wait and the actors' `received`
    /// counts, and returns its [`RingRun`].
    pub(crate) fn verify(
        &self,
        waited: Result<u64, BenchError>,
        received: Result<u64, BenchError>,
        elapsed: Duration,
        sleeps: u64,
    ) -> Result<RingRun, BenchError> {
        if let Some(message) = self.control.take_error() {
            return Err(BenchError::Verification(message));
        }
        let hops = waited?;
        let received = received?;
        if received != hops + self.tokens as u64 {
            return Err(BenchError::Verification(format!(
                "{hops} hops retired but the actors received {received} tokens"
            )));
        }
        Ok(RingRun {
            nodes: self.nodes,
            tokens: self.tokens,
            hops,
            elapsed,
            actor_waits: 0,
            sleeps,
            actor_polls: 0,
        })
    }
}

/// A multi-threaded tokio runtime with 2 worker threads named `name`, as
/// kameo's and ractor's docs set one up (`#[tokio::main]`), sized for a
/// 2-core box.
pub(crate) fn tokio_runtime(name: &str) -> Result<tokio::runtime::Runtime, BenchError> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name(name)
        .enable_all()
        .build()
        .map_err(|e| BenchError::Setup(format!("tokio runtime: {e}")))
}

/// How long a tokio runtime may take to shut down after its actors stopped.
pub(crate) const SHUTDOWN_PATIENCE: Duration = Duration::from_secs(5);
