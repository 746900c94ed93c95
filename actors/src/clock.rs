//! Where actor threads read the time: the [`Clock`] trait, a monotonic
//! [`SystemClock`] and a virtual [`ManualClock`] for deterministic tests.
//!
//! The engine never reads a clock; its host does, once per poll, and hands
//! the value in as `now_ns`. Every clock here counts nanoseconds from its
//! own origin, so values from two clocks must never be mixed.
//!
//! # Invariants
//! * `now_ns` never goes backwards (the system clock is monotonic, the
//!   manual clock only moves forward and saturates at `u64::MAX`).
//! * An actor sleeping on a [`ManualClock`] is woken by every `advance` /
//!   `set`: the clock pushes [`IngressEvent::Wake`] into the control lane of
//!   each queue it [watches](Clock::watch). The Wake is queued *after* the
//!   new time is stored, so the actor's next read sees the new time, and a
//!   queued Wake cannot be missed by a sleeper (the ingress doorbell
//!   guarantees it).
//! * The watch list is capped ([`ManualClock::DEFAULT_WATCH_CAP`] unless set
//!   with [`ManualClock::with_watch_cap`]); a refused watch is counted and
//!   closed queues are pruned on every advance.

use std::fmt;
use std::time::{Duration, Instant};

use nodeflow_engine::sync::atomic::{AtomicU64, Ordering};
use nodeflow_engine::sync::{Arc, Mutex};
use nodeflow_engine::{IngressEvent, IngressQueue};

/// A source of host time for actor threads.
pub trait Clock: Send + Sync + fmt::Debug {
    /// Nanoseconds since this clock's origin.
    fn now_ns(&self) -> u64;

    /// The real instant at which this clock reads `at_ns`, or `None` when
    /// the clock does not follow real time (a sleeper then waits for mail
    /// or for the clock to wake it through [`Clock::watch`]).
    fn deadline_instant(&self, at_ns: u64) -> Option<Instant>;

    /// Asks the clock to wake `ingress` whenever its time moves in a way a
    /// real-time wait cannot see. Real-time clocks ignore this (the default).
    fn watch(&self, ingress: &Arc<IngressQueue>) -> Result<(), WatchError> {
        let _ = ingress;
        Ok(())
    }
}

/// A [`Clock::watch`] was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WatchError {
    /// The clock already watches `cap` queues; stop an actor or build the
    /// clock with a larger cap ([`ManualClock::with_watch_cap`]).
    #[error("the clock already watches {cap} ingress queues; stop an actor or raise the cap")]
    TooManyWatchers {
        /// The cap in force.
        cap: usize,
    },
}

/// The host's monotonic clock: nanoseconds since the clock was created.
#[derive(Clone, Copy, Debug)]
pub struct SystemClock {
    origin: Instant,
}

impl SystemClock {
    /// A clock whose origin (0 ns) is now.
    pub fn new() -> Self {
        Self {
            origin: Instant::now(),
        }
    }
}

impl Default for SystemClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for SystemClock {
    fn now_ns(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    fn deadline_instant(&self, at_ns: u64) -> Option<Instant> {
        // `None` only if the instant is unrepresentable (centuries away):
        // waiting for mail alone is then the right thing to do.
        self.origin.checked_add(Duration::from_nanos(at_ns))
    }
}

/// Virtual time that moves only when told to; share it as `Arc<ManualClock>`.
///
/// Shared state: `now` is written by whoever calls [`ManualClock::advance`]
/// / [`ManualClock::set`] and read by actor threads; `watchers` is appended
/// to by [`Clock::watch`] (actor spawn) and walked by advancing threads.
#[derive(Debug)]
pub struct ManualClock {
    /// Current time. Memory ordering: `SeqCst` store / load for simplicity;
    /// what matters is that the store precedes the Wake push, whose
    /// `Release` / `Acquire` pair through the ingress makes it visible to
    /// the woken actor.
    now: AtomicU64,
    watchers: Mutex<Vec<Arc<IngressQueue>>>,
    watch_cap: usize,
    /// Refused watches; stats only, `Relaxed`.
    watch_refused: AtomicU64,
}

/// Counters of a [`ManualClock`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ManualClockStats {
    /// Queues watched now (closed ones are pruned on the next advance).
    pub watchers: usize,
    /// Watches refused at the cap.
    pub watch_refused: u64,
}

impl ManualClock {
    /// Default most queues one manual clock wakes.
    pub const DEFAULT_WATCH_CAP: usize = 4096;

    /// A clock reading 0 ns, with the default watch cap.
    pub fn new() -> Self {
        Self::with_watch_cap(Self::DEFAULT_WATCH_CAP)
    }

    /// A clock reading 0 ns that watches at most `cap` queues.
    pub fn with_watch_cap(cap: usize) -> Self {
        Self {
            now: AtomicU64::new(0),
            watchers: Mutex::new(Vec::new()),
            watch_cap: cap,
            watch_refused: AtomicU64::new(0),
        }
    }

    /// Moves time forward by `delta_ns` (saturating) and wakes every watched
    /// queue; returns the new time.
    pub fn advance(&self, delta_ns: u64) -> u64 {
        let mut now = self.now.load(Ordering::SeqCst);
        loop {
            let next = now.saturating_add(delta_ns);
            match self
                .now
                .compare_exchange(now, next, Ordering::SeqCst, Ordering::SeqCst)
            {
                Ok(_) => break,
                Err(actual) => now = actual,
            }
        }
        self.wake_all();
        self.now_ns()
    }

    /// Moves time to `at_ns` if that is later than now (time never goes
    /// back) and wakes every watched queue; returns the new time.
    pub fn set(&self, at_ns: u64) -> u64 {
        self.now.fetch_max(at_ns, Ordering::SeqCst);
        self.wake_all();
        self.now_ns()
    }

    /// A copy of the counters.
    pub fn stats(&self) -> ManualClockStats {
        ManualClockStats {
            watchers: self.watchers.lock().len(),
            watch_refused: self.watch_refused.load(Ordering::Relaxed),
        }
    }

    /// Pushes a Wake into every open watched queue; drops closed ones.
    fn wake_all(&self) {
        let mut watchers = self.watchers.lock();
        watchers.retain(|queue| queue.push_control(IngressEvent::Wake).is_ok());
    }
}

impl Default for ManualClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for ManualClock {
    fn now_ns(&self) -> u64 {
        self.now.load(Ordering::SeqCst)
    }

    fn deadline_instant(&self, _at_ns: u64) -> Option<Instant> {
        None
    }

    fn watch(&self, ingress: &Arc<IngressQueue>) -> Result<(), WatchError> {
        let mut watchers = self.watchers.lock();
        watchers.retain(|queue| !queue.is_closed());
        if watchers.len() >= self.watch_cap {
            self.watch_refused.fetch_add(1, Ordering::Relaxed);
            return Err(WatchError::TooManyWatchers {
                cap: self.watch_cap,
            });
        }
        watchers.push(Arc::clone(ingress));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nodeflow_engine::{ByteBudget, IngressConfig, WaitOutcome};

    fn queue() -> Arc<IngressQueue> {
        Arc::new(IngressQueue::new(
            IngressConfig::default(),
            ByteBudget::new(1 << 20),
        ))
    }

    #[test]
    fn manual_time_moves_only_forward_and_saturates() {
        let clock = ManualClock::new();
        assert_eq!(clock.now_ns(), 0);
        assert_eq!(clock.advance(10), 10);
        assert_eq!(clock.set(5), 10, "set never moves time back");
        assert_eq!(clock.set(40), 40);
        assert_eq!(clock.advance(u64::MAX), u64::MAX);
        assert_eq!(clock.advance(1), u64::MAX);
        assert_eq!(clock.deadline_instant(7), None);
    }

    #[test]
    fn advance_wakes_each_watched_queue_once_and_prunes_closed_ones() {
        let clock = ManualClock::new();
        let (a, b) = (queue(), queue());
        clock.watch(&a).unwrap();
        clock.watch(&b).unwrap();
        clock.advance(1);
        assert_eq!(a.wait(None), WaitOutcome::Ready);
        assert!(matches!(a.try_pop(), Some(IngressEvent::Wake)));
        assert!(a.try_pop().is_none());
        b.close();
        clock.advance(1);
        assert_eq!(clock.stats().watchers, 1);
        assert_eq!(a.stats().control.accepted, 2);
    }

    #[test]
    fn watches_past_the_cap_are_refused_and_counted() {
        let clock = ManualClock::with_watch_cap(1);
        let (a, b) = (queue(), queue());
        clock.watch(&a).unwrap();
        assert_eq!(clock.watch(&b), Err(WatchError::TooManyWatchers { cap: 1 }));
        assert_eq!(clock.stats().watch_refused, 1);
        a.close();
        clock.watch(&b).unwrap();
        assert_eq!(clock.stats().watchers, 1, "the closed queue was pruned");
    }

    #[test]
    fn system_clock_is_monotonic_and_maps_deadlines_onto_instants() {
        let clock = SystemClock::new();
        let first = clock.now_ns();
        assert!(clock.now_ns() >= first);
        let at = clock.deadline_instant(1_000_000_000).unwrap();
        let earlier = clock.deadline_instant(0).unwrap();
        assert_eq!(at.duration_since(earlier), Duration::from_secs(1));
        assert_eq!(
            clock.deadline_instant(u64::MAX).is_some(),
            earlier
                .checked_add(Duration::from_nanos(u64::MAX))
                .is_some()
        );
    }
}
