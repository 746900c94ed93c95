//! The one place nodeflow names its synchronisation types.
//!
//! Every crate of the workspace takes `Arc`, `Mutex`, `Condvar`, atomics,
//! fences, thread handles and channels from here, never from `std::sync`,
//! `parking_lot` or `crossbeam_channel` directly (clippy's
//! `disallowed-types` enforces it). That single seam is what lets the loom
//! suite see every cross-thread operation we perform:
//!
//! * normal builds: `std` atomics and `Arc`, `parking_lot` locks, and
//!   `crossbeam-channel` channels;
//! * `--cfg loom` builds: loom's atomics, `Arc`, locks and threads, plus a
//!   loom-visible channel ([`channel`]) with the same API subset and
//!   semantics as the crossbeam channel it replaces (crossbeam's internals
//!   are invisible to loom).
//!
//! # Invariants
//! * The API surface is identical under both cfgs; code written against it
//!   compiles either way.
//! * [`Mutex::lock`] never reports poisoning: parking_lot has none, and under
//!   loom a poisoned lock can only follow a panic that already failed the
//!   model.
//! * [`Condvar`] waits take the guard by value and hand it back (std style),
//!   so the same call sites work with parking_lot and loom.
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]

#[cfg(not(loom))]
pub use std::sync::Arc;

#[cfg(loom)]
pub use loom::sync::Arc;

/// Moves a `Vec` into a shared slice (`Arc<[T]>`); loom's `Arc` has no
/// `From<Vec<T>>`, so the conversion lives here with the other cfg seams.
pub fn arc_slice<T>(items: Vec<T>) -> Arc<[T]> {
    #[cfg(not(loom))]
    {
        Arc::from(items)
    }
    #[cfg(loom)]
    {
        Arc::from_std(std::sync::Arc::from(items))
    }
}

/// Atomic integers, booleans and fences (std, or loom under `--cfg loom`).
pub mod atomic {
    #[cfg(all(loom, nodeflow_loom_broken))]
    pub use super::loom_fault::fence;
    #[cfg(all(loom, not(nodeflow_loom_broken)))]
    pub use loom::sync::atomic::fence;
    #[cfg(loom)]
    pub use loom::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
    #[cfg(not(loom))]
    pub use std::sync::atomic::{fence, AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
}

/// Threads: spawning, parking and handles (std, or loom under `--cfg loom`).
///
/// The engine itself never spawns a thread; this module exists for the
/// actor and runtime crates and for the loom models. Under loom,
/// `Builder` and `JoinHandle` are thin stand-ins over loom's threads with
/// std's API (the stack size is ignored); `park_timeout` has no loom twin.
pub mod thread {
    #[cfg(loom)]
    pub use super::loom_thread::{current, park, spawn, yield_now, Builder, JoinHandle, Thread};
    #[cfg(not(loom))]
    pub use std::thread::{
        current, park, park_timeout, spawn, yield_now, Builder, JoinHandle, Thread,
    };
}

pub use lock::{Condvar, Mutex, MutexGuard};

#[cfg(not(loom))]
mod lock {
    use std::time::{Duration, Instant};

    /// A mutual-exclusion lock without poisoning (parking_lot).
    pub type Mutex<T> = parking_lot::Mutex<T>;
    /// The guard returned by [`Mutex::lock`].
    pub type MutexGuard<'a, T> = parking_lot::MutexGuard<'a, T>;

    /// A condition variable paired with [`Mutex`].
    #[derive(Debug, Default)]
    pub struct Condvar(parking_lot::Condvar);

    impl Condvar {
        /// Creates a condition variable with no waiters.
        pub fn new() -> Self {
            Self(parking_lot::Condvar::new())
        }

        /// Blocks until notified (spurious wake-ups are possible).
        pub fn wait<'a, T>(&self, mut guard: MutexGuard<'a, T>) -> MutexGuard<'a, T> {
            self.0.wait(&mut guard);
            guard
        }

        /// Blocks until notified or until `timeout` elapses; the flag is
        /// `true` when the wait ended by timing out.
        pub fn wait_timeout<'a, T>(
            &self,
            mut guard: MutexGuard<'a, T>,
            timeout: Duration,
        ) -> (MutexGuard<'a, T>, bool) {
            let result = self.0.wait_for(&mut guard, timeout);
            (guard, result.timed_out())
        }

        /// Blocks until notified or until `deadline` passes; the flag is
        /// `true` when the wait ended by timing out.
        pub fn wait_until<'a, T>(
            &self,
            mut guard: MutexGuard<'a, T>,
            deadline: Instant,
        ) -> (MutexGuard<'a, T>, bool) {
            let result = self.0.wait_until(&mut guard, deadline);
            (guard, result.timed_out())
        }

        /// Wakes one waiter, if any.
        pub fn notify_one(&self) {
            self.0.notify_one();
        }

        /// Wakes every waiter.
        pub fn notify_all(&self) {
            self.0.notify_all();
        }
    }
}

#[cfg(loom)]
mod lock {
    use std::time::{Duration, Instant};

    /// A mutual-exclusion lock (loom model), with the parking_lot API.
    #[derive(Debug, Default)]
    pub struct Mutex<T>(loom::sync::Mutex<T>);

    /// The guard returned by [`Mutex::lock`].
    pub type MutexGuard<'a, T> = loom::sync::MutexGuard<'a, T>;

    impl<T> Mutex<T> {
        /// Creates an unlocked mutex holding `value`.
        pub fn new(value: T) -> Self {
            Self(loom::sync::Mutex::new(value))
        }

        /// Acquires the lock, blocking the (modelled) thread.
        pub fn lock(&self) -> MutexGuard<'_, T> {
            // Poisoning only follows a panic, which already fails the model.
            self.0
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
        }

        /// Consumes the mutex and returns the value.
        pub fn into_inner(self) -> T {
            self.0
                .into_inner()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
        }
    }

    /// A condition variable (loom model). Timed waits ignore the duration:
    /// the model explores the case where the timeout never fires, which is
    /// the one that exposes a lost wake-up.
    #[derive(Debug, Default)]
    pub struct Condvar(loom::sync::Condvar);

    impl Condvar {
        /// Creates a condition variable with no waiters.
        pub fn new() -> Self {
            Self(loom::sync::Condvar::new())
        }

        /// Blocks until notified.
        pub fn wait<'a, T>(&self, guard: MutexGuard<'a, T>) -> MutexGuard<'a, T> {
            self.0
                .wait(guard)
                .unwrap_or_else(|poisoned| poisoned.into_inner())
        }

        /// Blocks until notified; under loom the timeout never fires.
        pub fn wait_timeout<'a, T>(
            &self,
            guard: MutexGuard<'a, T>,
            timeout: Duration,
        ) -> (MutexGuard<'a, T>, bool) {
            let (guard, result) = self
                .0
                .wait_timeout(guard, timeout)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            (guard, result.timed_out())
        }

        /// Blocks until notified; under loom the deadline never passes.
        pub fn wait_until<'a, T>(
            &self,
            guard: MutexGuard<'a, T>,
            _deadline: Instant,
        ) -> (MutexGuard<'a, T>, bool) {
            self.wait_timeout(guard, Duration::ZERO)
        }

        /// Wakes one waiter, if any.
        pub fn notify_one(&self) {
            self.0.notify_one();
        }

        /// Wakes every waiter.
        pub fn notify_all(&self) {
            self.0.notify_all();
        }
    }
}

/// Multi-producer multi-consumer channels with crossbeam-channel's API.
///
/// Normal builds re-export `crossbeam_channel`. Under `--cfg loom` a
/// loom-visible implementation with the same names and semantics stands in
/// (bounded and unbounded flavours, `try_send`/`send`, `try_recv`/`recv`,
/// `recv_timeout`/`recv_deadline`, `len`, disconnection when every peer on
/// the other side is dropped).
pub mod channel {
    #[cfg(not(loom))]
    pub use crossbeam_channel::{
        bounded, unbounded, Receiver, RecvError, RecvTimeoutError, SendError, Sender, TryRecvError,
        TrySendError,
    };

    #[cfg(loom)]
    pub use super::loom_channel::{
        bounded, unbounded, Receiver, RecvError, RecvTimeoutError, SendError, Sender, TryRecvError,
        TrySendError,
    };
}

#[cfg(loom)]
mod loom_channel;

#[cfg(loom)]
mod loom_thread;

/// Fault injection for `loom_broken_*` models that span crates (compiled
/// only with `--cfg loom --cfg nodeflow_loom_broken`).
///
/// A model selects a fault for the loom thread that asks for it, so every
/// other thread, and every model that asks for nothing, runs the real
/// protocol. The faults act inside the real code paths, through the
/// facade that every crate takes its synchronisation from.
#[cfg(all(loom, nodeflow_loom_broken))]
pub mod loom_fault {
    use std::cell::Cell;

    use super::atomic::Ordering;

    loom::thread_local! {
        static SKIP_FENCES: Cell<bool> = Cell::new(false);
    }

    /// From now on, every [`fence`] executed by the calling loom thread is
    /// skipped (for example a producer pushing into an ingress then reads
    /// the doorbell without its `SeqCst` fence).
    pub fn skip_fences_on_this_thread() {
        SKIP_FENCES.with(|skip| skip.set(true));
    }

    /// `loom::sync::atomic::fence`, unless the calling thread asked to
    /// skip its fences ([`skip_fences_on_this_thread`]).
    pub fn fence(order: Ordering) {
        if SKIP_FENCES.with(Cell::get) {
            return;
        }
        loom::sync::atomic::fence(order);
    }
}
