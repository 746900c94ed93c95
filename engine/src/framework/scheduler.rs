//! `Scheduler`: a capped timer queue that hands back payloads once their
//! deadline has passed.
//!
//! Invariants:
//! * At most [`Scheduler::capacity`] timers are live; a schedule beyond that
//!   is refused with [`SchedulerFull`], which gives the payload back, and is
//!   counted in [`SchedulerStats::refused_full`].
//! * Timers fire in `(at_ns, scheduling order)` order: among timers due at
//!   the same instant the one scheduled first fires first.
//! * Cancellation is exact: a cancelled timer is gone at once, never fires,
//!   and no longer counts towards [`Scheduler::len`] or the cap.
//! * [`TimerId`]s are never reused within one scheduler (they count up from
//!   1); once the id space is spent, further schedules are refused.
//! * The scheduler never reads a clock: "now" is always an argument.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

/// Live-timer cap a [`Scheduler`] built with [`Default`] uses.
pub const SCHEDULER_DEFAULT_CAPACITY: usize = 65_536;

/// Handle of one scheduled timer, used to cancel it.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct TimerId(u64);

/// A timer that has come due, as returned by [`Scheduler::pop_due`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timer<T> {
    /// The id [`Scheduler::schedule`] returned for this timer.
    pub id: TimerId,
    /// The instant the timer was scheduled for.
    pub at_ns: u64,
    /// What the caller attached to the timer.
    pub payload: T,
}

/// A schedule refused because the scheduler is at its cap (or, after 2^64
/// schedules, out of ids). Carries the payload back so the caller can retry
/// once timers have fired or been cancelled.
#[derive(Clone, PartialEq, Eq, thiserror::Error)]
#[error("scheduler is full ({capacity} live timers); cancel or fire timers, or raise the cap, then retry")]
pub struct SchedulerFull<T> {
    /// The refused payload, handed back untouched.
    pub payload: T,
    /// The scheduler's cap at the time of the refusal.
    pub capacity: usize,
}

/// Counters a [`Scheduler`] keeps over its lifetime (all saturating).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SchedulerStats {
    /// Timers accepted by [`Scheduler::schedule`].
    pub scheduled: u64,
    /// Timers handed out by [`Scheduler::pop_due`].
    pub fired: u64,
    /// Timers removed by [`Scheduler::cancel`] before they fired.
    pub cancelled: u64,
    /// Schedules refused with [`SchedulerFull`].
    pub refused_full: u64,
}

/// A capped timer queue ordered by deadline, FIFO among equal deadlines.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Scheduler<T> {
    capacity: usize,
    next_seq: u64,
    /// Firing order: `(at_ns, seq)`, smallest first.
    order: BTreeSet<Key>,
    /// `seq` → `(at_ns, payload)` for every live timer.
    live: BTreeMap<u64, (u64, T)>,
    stats: SchedulerStats,
}

impl TimerId {
    /// The raw integer.
    pub const fn as_u64(self) -> u64 {
        self.0
    }
}

impl<T> SchedulerFull<T> {
    /// Takes the payload back out of the error.
    pub fn into_inner(self) -> T {
        self.payload
    }
}

impl<T> std::fmt::Debug for SchedulerFull<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SchedulerFull")
            .field("capacity", &self.capacity)
            .finish_non_exhaustive()
    }
}

impl<T> Default for Scheduler<T> {
    fn default() -> Self {
        Self::new(SCHEDULER_DEFAULT_CAPACITY)
    }
}

impl<T> Scheduler<T> {
    /// An empty scheduler holding at most `capacity` live timers. A capacity
    /// of 0 refuses every schedule.
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            next_seq: 1,
            order: BTreeSet::new(),
            live: BTreeMap::new(),
            stats: SchedulerStats::default(),
        }
    }

    /// Schedules `payload` to fire at `at_ns`. A deadline in the past is
    /// fine: the timer is due on the next [`Scheduler::pop_due`].
    pub fn schedule(&mut self, at_ns: u64, payload: T) -> Result<TimerId, SchedulerFull<T>> {
        if self.live.len() >= self.capacity || self.next_seq == u64::MAX {
            self.stats.refused_full = self.stats.refused_full.saturating_add(1);
            return Err(SchedulerFull {
                payload,
                capacity: self.capacity,
            });
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        self.order.insert(Key { at_ns, seq });
        self.live.insert(seq, (at_ns, payload));
        self.stats.scheduled = self.stats.scheduled.saturating_add(1);
        Ok(TimerId(seq))
    }

    /// Cancels a live timer and returns its payload; `None` if the timer
    /// already fired, was cancelled, or never existed.
    pub fn cancel(&mut self, id: TimerId) -> Option<T> {
        let (at_ns, payload) = self.live.remove(&id.0)?;
        self.order.remove(&Key { at_ns, seq: id.0 });
        self.stats.cancelled = self.stats.cancelled.saturating_add(1);
        Some(payload)
    }

    /// The deadline of the earliest live timer, if any.
    pub fn next_deadline(&self) -> Option<u64> {
        self.order.first().map(|key| key.at_ns)
    }

    /// Removes and returns the earliest timer whose deadline is at or before
    /// `now_ns`; call repeatedly until `None` to drain everything due.
    pub fn pop_due(&mut self, now_ns: u64) -> Option<Timer<T>> {
        let first = *self.order.first()?;
        if first.at_ns > now_ns {
            return None;
        }
        self.order.pop_first();
        let (at_ns, payload) = self.live.remove(&first.seq)?;
        self.stats.fired = self.stats.fired.saturating_add(1);
        Some(Timer {
            id: TimerId(first.seq),
            at_ns,
            payload,
        })
    }

    /// Number of live (scheduled, not yet fired or cancelled) timers.
    pub fn len(&self) -> usize {
        self.live.len()
    }

    /// Whether no timer is live.
    pub fn is_empty(&self) -> bool {
        self.live.is_empty()
    }

    /// The live-timer cap.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Lifetime counters.
    pub fn stats(&self) -> SchedulerStats {
        self.stats
    }
}

/// Firing-order key; derives order by `at_ns`, then by `seq`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
struct Key {
    at_ns: u64,
    seq: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(s: &mut Scheduler<&'static str>, now: u64) -> Vec<&'static str> {
        std::iter::from_fn(|| s.pop_due(now).map(|t| t.payload)).collect()
    }

    #[test]
    fn fires_in_deadline_order_and_fifo_on_ties() {
        let mut s = Scheduler::new(8);
        s.schedule(30, "c").unwrap();
        s.schedule(10, "a1").unwrap();
        s.schedule(20, "b").unwrap();
        s.schedule(10, "a2").unwrap();
        s.schedule(10, "a3").unwrap();
        assert_eq!(drain(&mut s, 100), ["a1", "a2", "a3", "b", "c"]);
        assert!(s.is_empty());
    }

    #[test]
    fn pop_due_respects_now_and_reports_id_and_deadline() {
        let mut s = Scheduler::new(4);
        let early = s.schedule(5, "early").unwrap();
        s.schedule(50, "late").unwrap();
        assert!(s.pop_due(4).is_none(), "nothing is due before 5");
        let t = s.pop_due(5).unwrap();
        assert_eq!((t.id, t.at_ns, t.payload), (early, 5, "early"));
        assert!(s.pop_due(49).is_none());
        assert_eq!(s.next_deadline(), Some(50));
    }

    #[test]
    fn cap_refuses_and_gives_payload_back() {
        let mut s = Scheduler::new(2);
        s.schedule(1, "a").unwrap();
        s.schedule(2, "b").unwrap();
        let err = s.schedule(3, "c").unwrap_err();
        assert_eq!(err.capacity, 2);
        assert_eq!(err.into_inner(), "c");
        assert_eq!(s.len(), 2);
        assert_eq!(s.stats().refused_full, 1);
        // Firing one frees a slot.
        s.pop_due(1).unwrap();
        assert!(s.schedule(3, "c").is_ok());
    }

    #[test]
    fn zero_capacity_refuses_everything() {
        let mut s = Scheduler::new(0);
        assert!(s.schedule(0, 1u8).is_err());
        assert_eq!(s.stats().refused_full, 1);
        assert_eq!(s.next_deadline(), None);
    }

    #[test]
    fn cancelled_timers_never_fire_and_free_their_slot() {
        let mut s = Scheduler::new(2);
        let a = s.schedule(10, "a").unwrap();
        s.schedule(20, "b").unwrap();
        assert_eq!(s.cancel(a), Some("a"));
        assert_eq!(s.len(), 1);
        assert_eq!(
            s.next_deadline(),
            Some(20),
            "deadline skips the cancelled timer"
        );
        assert_eq!(s.cancel(a), None, "second cancel is a no-op");
        s.schedule(30, "c").unwrap();
        assert_eq!(drain(&mut s, u64::MAX), ["b", "c"]);
        let st = s.stats();
        assert_eq!((st.scheduled, st.fired, st.cancelled), (3, 2, 1));
    }

    #[test]
    fn cancel_after_fire_returns_none() {
        let mut s = Scheduler::new(1);
        let id = s.schedule(0, ()).unwrap();
        assert!(s.pop_due(0).is_some());
        assert_eq!(s.cancel(id), None);
        assert_eq!(s.stats().cancelled, 0);
    }

    #[test]
    fn ids_are_unique_and_start_at_one() {
        let mut s = Scheduler::new(4);
        let a = s.schedule(0, ()).unwrap();
        s.cancel(a);
        let b = s.schedule(0, ()).unwrap();
        assert_eq!(a.as_u64(), 1);
        assert_ne!(a, b);
    }

    #[test]
    fn extreme_deadlines_do_not_overflow() {
        let mut s = Scheduler::new(2);
        s.schedule(u64::MAX, "max").unwrap();
        s.schedule(0, "zero").unwrap();
        assert_eq!(s.next_deadline(), Some(0));
        assert_eq!(drain(&mut s, u64::MAX), ["zero", "max"]);
    }

    #[test]
    fn exhausted_id_space_is_refused() {
        let mut s = Scheduler::new(4);
        s.next_seq = u64::MAX;
        assert!(s.schedule(0, ()).is_err());
        assert_eq!(s.stats().refused_full, 1);
    }

    #[test]
    fn serde_round_trip_preserves_order_and_ids() {
        let mut s = Scheduler::new(4);
        s.schedule(7, "x".to_string()).unwrap();
        let y = s.schedule(7, "y".to_string()).unwrap();
        let json = serde_json::to_string(&s).unwrap();
        let mut back: Scheduler<String> = serde_json::from_str(&json).unwrap();
        assert_eq!(back.len(), 2);
        assert_eq!(back.cancel(y).as_deref(), Some("y"));
        assert_eq!(back.pop_due(7).unwrap().payload, "x");
        let next = back.schedule(1, "z".to_string()).unwrap();
        assert!(
            next.as_u64() > y.as_u64(),
            "ids keep counting after restore"
        );
    }
}
