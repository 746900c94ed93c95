//! The per-Node byte budget: how many bytes of outside input a Node holds, shared by every thread that feeds it.
//!
//! One [`ByteBudget`] exists per Node; it is a cheap handle (an `Arc`
//! inside), and its clones share one budget between the Node's owner thread
//! and every thread that pushes bytes into it (router, compute pool, host). Every byte payload that crosses the Node's
//! boundary is charged here before memory is reserved for it, and the
//! charge is released when the payload dies.
//!
//! Invariants:
//! * `in_use() <= limit()` at every instant: a charge that would cross the
//!   limit is refused whole (never partially granted) and counted.
//! * Each granted charge is released exactly once: [`ByteCharge`] releases on
//!   drop, and the two ways out of that ([`ByteCharge::release`],
//!   [`ByteCharge::into_raw`]) consume it. When every charge is gone,
//!   `in_use()` is exactly 0 and `charged_bytes == released_bytes`.
//! * Nothing here panics or blocks: counters saturate, a release larger
//!   than what is in use clamps to 0 and is counted as an over-release
//!   (which can only come from a misuse of [`ByteBudget::release_raw`]).
//!
//! Memory ordering: the budget publishes no other memory; it is a pure
//! counter. Every update is a read-modify-write, and RMWs on one atomic
//! always read the latest value in its modification order, so `Relaxed`
//! is enough to keep `in_use` exact and within the limit. Readers of the
//! stats get a value that was true at some recent instant.

use serde::{Deserialize, Serialize};

use crate::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use crate::sync::Arc;

/// A per-Node byte budget shared across threads; clones share the budget.
#[derive(Clone, Debug)]
pub struct ByteBudget {
    inner: Arc<BudgetInner>,
}

/// The shared part of a [`ByteBudget`].
///
/// Shared state and owners: every field is written by any thread holding a
/// clone (chargers and releasers) and read by anyone asking for stats.
#[derive(Debug)]
struct BudgetInner {
    /// The most bytes that may be charged at once. Immutable.
    limit: usize,
    /// Bytes currently charged. Written by `try_charge` (CAS) and by
    /// releases (`fetch_update`). Ordering: `Relaxed`, see the module docs.
    in_use: AtomicUsize,
    /// Total bytes ever granted (saturating). Ordering: `Relaxed` (stats).
    charged_bytes: AtomicU64,
    /// Total bytes ever released (saturating). Ordering: `Relaxed` (stats).
    released_bytes: AtomicU64,
    /// Charges refused because they would cross the limit. `Relaxed` (stats).
    refusals: AtomicU64,
    /// Bytes released beyond what was in use (misuse of `release_raw`).
    /// `Relaxed` (stats).
    over_released_bytes: AtomicU64,
    /// Deliberate protocol bug for the loom suite; see `loom_broken`.
    #[cfg(nodeflow_loom_broken)]
    broken_charge: bool,
}

/// A granted charge against a [`ByteBudget`]; releases its bytes exactly once.
///
/// Dropping it releases the bytes. [`ByteCharge::into_raw`] hands the
/// obligation to release to the caller instead (for engine-owned storage
/// that tracks sizes itself and later calls [`ByteBudget::release_raw`]).
#[must_use = "dropping a charge releases it at once"]
#[derive(Debug)]
pub struct ByteCharge {
    budget: ByteBudget,
    /// Bytes still owed back to the budget; 0 once released or handed out.
    bytes: usize,
}

/// A byte payload copied in from outside, together with its budget charge.
///
/// The bytes live in memory that was reserved fallibly after the size cap
/// and the budget agreed; the charge is released when this value (or the
/// [`ByteCharge`] taken out of it) is dropped.
#[derive(Debug)]
pub struct ChargedBytes {
    bytes: Vec<u8>,
    charge: ByteCharge,
}

/// A charge was refused because it would cross the Node's byte budget.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error(
    "byte budget exceeded: {requested} bytes requested with {in_use} of {limit} in use; \
     wait for the Node to consume queued input or raise the Node's byte budget"
)]
pub struct BudgetExceeded {
    /// Bytes the refused charge asked for.
    pub requested: usize,
    /// Bytes in use when the charge was refused.
    pub in_use: usize,
    /// The budget's limit.
    pub limit: usize,
}

/// Why [`ByteBudget::copy_in`] refused a payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[non_exhaustive]
pub enum CopyInError {
    /// The payload is larger than the per-item cap.
    #[error("payload of {len} bytes exceeds the per-item cap of {cap} bytes; send it in smaller pieces or raise the cap")]
    PerItemCapExceeded {
        /// Size of the refused payload.
        len: usize,
        /// The per-item cap in force.
        cap: usize,
    },
    /// The payload fits the cap but not the Node's byte budget.
    #[error(transparent)]
    Budget(#[from] BudgetExceeded),
    /// The allocator could not provide memory for the copy.
    #[error("could not reserve {len} bytes for the payload copy; the process is out of memory")]
    AllocationFailed {
        /// Size of the refused payload.
        len: usize,
    },
}

/// A point-in-time copy of a [`ByteBudget`]'s counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BudgetStats {
    /// The budget's limit.
    pub limit: usize,
    /// Bytes charged right now.
    pub in_use: usize,
    /// Total bytes ever granted.
    pub charged_bytes: u64,
    /// Total bytes ever released.
    pub released_bytes: u64,
    /// Charges refused because they would cross the limit.
    pub refusals: u64,
    /// Bytes released beyond what was in use (always 0 unless
    /// [`ByteBudget::release_raw`] was misused).
    pub over_released_bytes: u64,
}

impl ByteBudget {
    /// Default per-Node limit: 256 MiB.
    pub const DEFAULT_LIMIT: usize = 256 * 1024 * 1024;

    /// A budget allowing at most `limit` bytes charged at once. A limit of 0
    /// grants only empty charges.
    pub fn new(limit: usize) -> Self {
        Self::from_inner(BudgetInner::new(limit))
    }

    fn from_inner(inner: BudgetInner) -> Self {
        Self {
            inner: Arc::new(inner),
        }
    }

    /// Charges `bytes` if they fit under the limit, all or nothing.
    ///
    /// Never blocks. A refusal is counted and reports what was in use.
    pub fn try_charge(&self, bytes: usize) -> Result<ByteCharge, BudgetExceeded> {
        self.inner.charge(bytes)?;
        Ok(ByteCharge {
            budget: self.clone(),
            bytes,
        })
    }

    /// Cap-checks `bytes`, charges them, reserves memory fallibly and copies
    /// them: the one way outside bytes enter a Node.
    ///
    /// Steps, each refusing with its own [`CopyInError`]: (1) `bytes.len()`
    /// must not exceed `cap`; (2) the budget must grant the charge; (3) the
    /// allocator must grant the memory (the charge is returned on failure).
    pub fn copy_in(&self, bytes: &[u8], cap: usize) -> Result<ChargedBytes, CopyInError> {
        let len = bytes.len();
        if len > cap {
            return Err(CopyInError::PerItemCapExceeded { len, cap });
        }
        let charge = self.try_charge(len)?;
        let mut owned = Vec::new();
        if owned.try_reserve_exact(len).is_err() {
            return Err(CopyInError::AllocationFailed { len });
        }
        owned.extend_from_slice(bytes);
        Ok(ChargedBytes {
            bytes: owned,
            charge,
        })
    }

    /// Returns `bytes` previously taken out of a charge with
    /// [`ByteCharge::into_raw`]. Releasing more than is in use clamps to 0
    /// and is counted in [`BudgetStats::over_released_bytes`].
    pub fn release_raw(&self, bytes: usize) {
        self.inner.release(bytes);
    }

    /// Bytes charged right now.
    pub fn in_use(&self) -> usize {
        self.inner.in_use.load(Ordering::Relaxed)
    }

    /// The most bytes that may be charged at once.
    pub fn limit(&self) -> usize {
        self.inner.limit
    }

    /// A copy of the counters.
    pub fn stats(&self) -> BudgetStats {
        let inner = &*self.inner;
        BudgetStats {
            limit: inner.limit,
            in_use: self.in_use(),
            charged_bytes: inner.charged_bytes.load(Ordering::Relaxed),
            released_bytes: inner.released_bytes.load(Ordering::Relaxed),
            refusals: inner.refusals.load(Ordering::Relaxed),
            over_released_bytes: inner.over_released_bytes.load(Ordering::Relaxed),
        }
    }

    /// A budget whose charge path has a deliberate race, for the loom suite.
    #[cfg(nodeflow_loom_broken)]
    pub(crate) fn broken(limit: usize) -> Self {
        Self::from_inner(BudgetInner {
            broken_charge: true,
            ..BudgetInner::new(limit)
        })
    }
}

impl BudgetInner {
    fn new(limit: usize) -> Self {
        Self {
            limit,
            in_use: AtomicUsize::new(0),
            charged_bytes: AtomicU64::new(0),
            released_bytes: AtomicU64::new(0),
            refusals: AtomicU64::new(0),
            over_released_bytes: AtomicU64::new(0),
            #[cfg(nodeflow_loom_broken)]
            broken_charge: false,
        }
    }

    /// Subtracts `bytes` from `in_use`, clamping at 0 (counted).
    fn release(&self, bytes: usize) {
        if bytes == 0 {
            return;
        }
        let update = self
            .in_use
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |in_use| {
                Some(in_use.saturating_sub(bytes))
            });
        // The closure always returns `Some`, so both arms carry the old value.
        let previous = update.unwrap_or_else(|current| current);
        let released = previous.min(bytes);
        saturating_add(&self.released_bytes, released);
        saturating_add(&self.over_released_bytes, bytes - released);
    }

    /// Adds `bytes` to `in_use` if the sum stays within the limit.
    fn charge(&self, bytes: usize) -> Result<(), BudgetExceeded> {
        #[cfg(nodeflow_loom_broken)]
        if self.broken_charge {
            // BROKEN on purpose: check-then-store instead of one RMW. Two
            // chargers can both read the old value and both succeed, and a
            // release landing between the load and the store is lost.
            let in_use = self.in_use.load(Ordering::Relaxed);
            return match in_use.checked_add(bytes).filter(|sum| *sum <= self.limit) {
                Some(sum) => {
                    self.in_use.store(sum, Ordering::Relaxed);
                    saturating_add(&self.charged_bytes, bytes);
                    Ok(())
                }
                None => Err(self.refuse(bytes, in_use)),
            };
        }
        // One CAS loop: the check and the update are a single RMW, so two
        // chargers can never both fit into the same headroom.
        let update = self
            .in_use
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |in_use| {
                in_use.checked_add(bytes).filter(|sum| *sum <= self.limit)
            });
        match update {
            Ok(_) => {
                saturating_add(&self.charged_bytes, bytes);
                Ok(())
            }
            Err(in_use) => Err(self.refuse(bytes, in_use)),
        }
    }

    fn refuse(&self, requested: usize, in_use: usize) -> BudgetExceeded {
        saturating_add(&self.refusals, 1);
        BudgetExceeded {
            requested,
            in_use,
            limit: self.limit,
        }
    }
}

impl Default for ByteBudget {
    /// A budget with [`ByteBudget::DEFAULT_LIMIT`].
    fn default() -> Self {
        Self::new(Self::DEFAULT_LIMIT)
    }
}

impl ByteCharge {
    /// Bytes this charge holds.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// The budget the charge belongs to.
    pub fn budget(&self) -> &ByteBudget {
        &self.budget
    }

    /// Releases the charge now (same as dropping it).
    pub fn release(self) {
        drop(self);
    }

    /// Gives up the charge without releasing it and returns its size; the
    /// caller now owes exactly one [`ByteBudget::release_raw`] of that size.
    pub fn into_raw(mut self) -> usize {
        std::mem::take(&mut self.bytes)
    }
}

impl Drop for ByteCharge {
    fn drop(&mut self) {
        self.budget.release_raw(std::mem::take(&mut self.bytes));
    }
}

impl ChargedBytes {
    /// The payload.
    pub fn as_slice(&self) -> &[u8] {
        &self.bytes
    }

    /// Payload length in bytes.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Whether the payload is empty.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// The charge that pays for the payload.
    pub fn charge(&self) -> &ByteCharge {
        &self.charge
    }

    /// Splits into the payload and its charge; keep the charge alive as long
    /// as the bytes (or whatever they decode into) live.
    pub fn into_parts(self) -> (Vec<u8>, ByteCharge) {
        (self.bytes, self.charge)
    }
}

impl std::ops::Deref for ChargedBytes {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.bytes
    }
}

fn saturating_add(counter: &AtomicU64, amount: usize) {
    if amount == 0 {
        return;
    }
    let amount = u64::try_from(amount).unwrap_or(u64::MAX);
    // The closure always returns `Some`, so the update cannot fail.
    let _ = counter.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |value| {
        Some(value.saturating_add(amount))
    });
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    fn budget(limit: usize) -> ByteBudget {
        ByteBudget::new(limit)
    }

    #[test]
    fn charge_within_limit_is_granted_and_released_on_drop() {
        let budget = budget(100);
        let charge = budget.try_charge(60).expect("60 of 100 fits");
        assert_eq!(charge.bytes(), 60);
        assert_eq!(budget.in_use(), 60);
        drop(charge);
        assert_eq!(budget.in_use(), 0);
        let stats = budget.stats();
        assert_eq!((stats.charged_bytes, stats.released_bytes), (60, 60));
    }

    #[test]
    fn charge_crossing_the_limit_is_refused_whole_and_counted() {
        let budget = budget(100);
        let _held = budget.try_charge(60).expect("fits");
        let err = budget.try_charge(41).expect_err("60 + 41 > 100");
        assert_eq!(
            err,
            BudgetExceeded {
                requested: 41,
                in_use: 60,
                limit: 100
            }
        );
        assert_eq!(budget.in_use(), 60, "a refused charge takes nothing");
        assert_eq!(budget.stats().refusals, 1);
        let exact = budget.try_charge(40).expect("exactly up to the limit fits");
        assert_eq!(budget.in_use(), 100);
        drop(exact);
    }

    #[test]
    fn zero_limit_grants_only_empty_charges() {
        let budget = budget(0);
        let empty = budget.try_charge(0).expect("an empty charge always fits");
        assert_eq!(empty.bytes(), 0);
        assert!(budget.try_charge(1).is_err());
    }

    #[test]
    fn huge_request_does_not_overflow() {
        let budget = budget(usize::MAX);
        let _held = budget.try_charge(10).expect("fits");
        let err = budget.try_charge(usize::MAX).expect_err("sum overflows");
        assert_eq!(err.in_use, 10);
        assert_eq!(budget.in_use(), 10);
    }

    #[test]
    fn explicit_release_and_into_raw_release_exactly_once() {
        let budget = budget(100);
        budget.try_charge(30).expect("fits").release();
        assert_eq!(budget.in_use(), 0);
        let raw = budget.try_charge(20).expect("fits").into_raw();
        assert_eq!(raw, 20);
        assert_eq!(budget.in_use(), 20, "into_raw keeps the bytes charged");
        budget.release_raw(raw);
        assert_eq!(budget.in_use(), 0);
        let stats = budget.stats();
        assert_eq!((stats.charged_bytes, stats.released_bytes), (50, 50));
        assert_eq!(stats.over_released_bytes, 0);
    }

    #[test]
    fn over_release_clamps_to_zero_and_is_counted() {
        let budget = budget(100);
        let raw = budget.try_charge(10).expect("fits").into_raw();
        budget.release_raw(raw + 5);
        assert_eq!(budget.in_use(), 0);
        let stats = budget.stats();
        assert_eq!(stats.released_bytes, 10);
        assert_eq!(stats.over_released_bytes, 5);
    }

    #[test]
    fn copy_in_checks_cap_then_budget_then_copies() {
        let budget = budget(8);
        let err = budget.copy_in(&[0; 5], 4).expect_err("over the cap");
        assert_eq!(err, CopyInError::PerItemCapExceeded { len: 5, cap: 4 });
        assert_eq!(
            budget.stats().refusals,
            0,
            "the cap refuses before the budget"
        );

        let held = budget.copy_in(&[1, 2, 3, 4, 5], 16).expect("fits");
        assert_eq!(held.as_slice(), &[1, 2, 3, 4, 5]);
        assert_eq!(held.charge().bytes(), 5);
        assert_eq!(budget.in_use(), 5);

        let err = budget.copy_in(&[0; 4], 16).expect_err("5 + 4 > 8");
        assert!(matches!(
            err,
            CopyInError::Budget(BudgetExceeded { requested: 4, .. })
        ));

        let (bytes, charge) = held.into_parts();
        assert_eq!(bytes.len(), 5);
        assert_eq!(budget.in_use(), 5, "the charge outlives the split");
        drop(charge);
        assert_eq!(budget.in_use(), 0);
    }

    #[test]
    fn in_use_returns_to_zero_after_concurrent_charges() {
        let budget = budget(1_000);
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let budget = budget.clone();
                #[allow(clippy::disallowed_methods)] // tests may spawn threads
                std::thread::spawn(move || {
                    let mut granted = 0u64;
                    for round in 0..1_000usize {
                        if let Ok(charge) = budget.try_charge(1 + round % 300) {
                            assert!(budget.in_use() <= budget.limit());
                            granted += 1;
                            drop(charge);
                        }
                    }
                    granted
                })
            })
            .collect();
        let granted: u64 = threads
            .into_iter()
            .map(|t| t.join().expect("no panic"))
            .sum();
        assert!(granted > 0);
        let stats = budget.stats();
        assert_eq!(stats.in_use, 0);
        assert_eq!(stats.charged_bytes, stats.released_bytes);
        assert_eq!(stats.over_released_bytes, 0);
    }
}

/// Loom model of concurrent charges and releases (run by `ci/loom.sh`);
/// `loom_broken_budget_charge` runs it against a check-then-store charge.
#[cfg(all(test, loom))]
mod loom_budget {
    use super::*;
    use crate::sync::thread;

    /// (f) Two threads each try to hold 60 bytes of a 100-byte budget: they
    /// never hold at once, `in_use` never exceeds the limit, and it returns
    /// to exactly 0 with `charged == released`.
    fn two_chargers(broken: bool) {
        loom::model(move || {
            #[cfg(nodeflow_loom_broken)]
            let budget = if broken {
                ByteBudget::broken(100)
            } else {
                ByteBudget::new(100)
            };
            #[cfg(not(nodeflow_loom_broken))]
            let budget = {
                let _ = broken;
                ByteBudget::new(100)
            };
            let holders = Arc::new(AtomicUsize::new(0));
            let charge_and_hold = {
                let budget = budget.clone();
                let holders = holders.clone();
                move || {
                    if let Ok(charge) = budget.try_charge(60) {
                        let others = holders.fetch_add(1, Ordering::SeqCst);
                        assert_eq!(others, 0, "two 60-byte charges held under a 100-byte limit");
                        assert!(budget.in_use() <= budget.limit());
                        holders.fetch_sub(1, Ordering::SeqCst);
                        drop(charge);
                    }
                }
            };
            let other = thread::spawn(charge_and_hold.clone());
            charge_and_hold();
            other.join().expect("charger");
            let stats = budget.stats();
            assert_eq!(stats.in_use, 0);
            assert_eq!(stats.charged_bytes, stats.released_bytes);
            assert!(stats.charged_bytes >= 60, "at least one charge fits");
        });
    }

    #[test]
    fn loom_budget_never_over_limit_and_returns_to_zero() {
        two_chargers(false);
    }

    #[cfg(nodeflow_loom_broken)]
    #[test]
    fn loom_broken_budget_charge() {
        two_chargers(true);
    }
}
