//! The compute pool: runs heavy op work on a rayon thread pool and posts each job's outcome back to its Node through the completion sink.
//!
//! A [`ComputePool`] is a cheap-to-clone handle on one shared
//! `rayon::ThreadPool`. [`ComputePool::spawn_job`] takes the owning Node's
//! [`CompletionSink`], the parked op's [`CommandId`] and a job; the job runs
//! on a pool thread and its typed values travel back to the Node without
//! serialization ([`CompletionSink::complete_values`]).
//!
//! Lifecycle of one job:
//! 1. `spawn_job` wraps the sink and command in a [`CompletionHandle`] and
//!    counts the submission. The handle fails the command if it is ever
//!    dropped unused, so the op never waits forever.
//! 2. A pool thread runs the job inside `catch_unwind`, so a panicking job
//!    unwinds into this module rather than into rayon.
//! 3. The outcome is counted (completed, failed or panicked) *before* it is
//!    posted: whoever observes the completion through the Node has also
//!    observed the count (the Node's ingress queue synchronizes the two).
//! 4. The outcome is posted: values on success, the job's error text on
//!    `Err`, `"compute job panicked: <message>"` on a panic. A refused or
//!    undeliverable post is counted in [`ComputePoolStats::undelivered`].
//!
//! Invariants:
//! * The process never aborts because of a job: panics are caught in step 2;
//!   a panic that still escapes (from a value's `Drop`, say) reaches the
//!   pool's `panic_handler`, which only counts it
//!   ([`ComputePoolStats::escaped_panics`]).
//! * Every submitted job ends in exactly one of completed / failed /
//!   panicked, or is still queued or running:
//!   `submitted == completed + failed + panicked + in flight`.
//! * The queue is bounded by its users, not here: each Node caps its parked
//!   ops (`NodeConfig::max_pending_async`), and a compute op parks for the
//!   whole life of its job.

use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};

use nodeflow_actors::panic_message;
use nodeflow_engine::sync::atomic::{AtomicU64, Ordering};
use nodeflow_engine::sync::Arc;
use nodeflow_engine::{
    CommandId, CompletionHandle, CompletionSink, OpError, OpErrorKind, SlotValue,
};

/// The named output values a compute job produces, as the completion sink takes them.
pub type JobOutputs = Vec<(String, Box<dyn SlotValue>)>;

/// A shared rayon thread pool for compute jobs; cloning shares the pool.
#[derive(Clone)]
pub struct ComputePool {
    pool: Arc<rayon::ThreadPool>,
    counters: Arc<PoolCounters>,
    threads: usize,
}

/// Why a [`ComputePool`] could not be built.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ComputePoolError {
    /// Zero threads were asked for; a pool needs at least one.
    #[error("a compute pool needs at least one thread; pass 1 or more")]
    ZeroThreads,
    /// More than [`ComputePool::MAX_THREADS`] threads were asked for.
    #[error("{threads} compute threads asked for; the cap is {cap}, pass fewer")]
    TooManyThreads {
        /// The count asked for.
        threads: usize,
        /// [`ComputePool::MAX_THREADS`].
        cap: usize,
    },
    /// The operating system refused to start the pool's threads.
    #[error("the compute pool's threads could not be started ({detail}); free resources or ask for fewer threads")]
    Spawn {
        /// rayon's message.
        detail: String,
    },
}

/// Counters of a [`ComputePool`], read with [`ComputePool::stats`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ComputePoolStats {
    /// Jobs handed to the pool.
    pub submitted: u64,
    /// Jobs that returned values.
    pub completed: u64,
    /// Jobs that returned an error.
    pub failed: u64,
    /// Jobs that panicked (their command was failed with the message).
    pub panicked: u64,
    /// Panics that escaped a job's guard and reached the pool's panic
    /// handler (a bug; the pool kept running).
    pub escaped_panics: u64,
    /// Outcomes the Node's sink refused or could not take (the Node was
    /// stopping, or a cap refused the result).
    pub undelivered: u64,
}

impl ComputePoolStats {
    /// Jobs submitted but not yet finished (queued or running).
    pub fn in_flight(&self) -> u64 {
        self.submitted
            .saturating_sub(self.completed + self.failed + self.panicked)
    }
}

impl ComputePool {
    /// The most threads one pool may have.
    pub const MAX_THREADS: usize = 1024;

    /// A pool of `threads` threads named `nodeflow-compute-<i>`.
    pub fn new(threads: usize) -> Result<Self, ComputePoolError> {
        if threads == 0 {
            return Err(ComputePoolError::ZeroThreads);
        }
        if threads > Self::MAX_THREADS {
            return Err(ComputePoolError::TooManyThreads {
                threads,
                cap: Self::MAX_THREADS,
            });
        }
        let counters = Arc::new(PoolCounters::default());
        let on_panic = counters.clone();
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("nodeflow-compute-{i}"))
            .panic_handler(move |_payload| {
                on_panic.escaped_panics.fetch_add(1, Ordering::Relaxed);
            })
            .build()
            .map_err(|error| ComputePoolError::Spawn {
                detail: error.to_string(),
            })?;
        Ok(Self {
            pool: Arc::new(pool),
            counters,
            threads,
        })
    }

    /// Number of threads in the pool.
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// Runs `job` on the pool and posts its outcome for `cmd` through
    /// `sink`: its values on `Ok`, its text as a failure on `Err`, and
    /// `"compute job panicked: <message>"` as a failure if it panics.
    pub fn spawn_job<F>(&self, sink: Arc<dyn CompletionSink>, cmd: CommandId, job: F)
    where
        F: FnOnce() -> Result<JobOutputs, String> + Send + 'static,
    {
        self.spawn_op_job(sink, cmd, move || {
            job().map_err(|detail| OpError::new(OpErrorKind::Failed, "completion.failed", detail))
        });
    }

    /// Like [`ComputePool::spawn_job`], for a job whose failure is a typed
    /// [`OpError`]: the parked op fails with that error's kind and reason
    /// (a panic still fails it `Failed`, `compute.panicked`).
    pub fn spawn_op_job<F>(&self, sink: Arc<dyn CompletionSink>, cmd: CommandId, job: F)
    where
        F: FnOnce() -> Result<JobOutputs, OpError> + Send + 'static,
    {
        let handle = CompletionHandle::<(), String>::new(cmd, sink);
        let counters = self.counters.clone();
        counters.submitted.fetch_add(1, Ordering::Relaxed);
        self.pool.spawn(move || run_job(&counters, handle, job));
    }

    /// A snapshot of the pool's counters.
    pub fn stats(&self) -> ComputePoolStats {
        let c = &self.counters;
        ComputePoolStats {
            submitted: c.submitted.load(Ordering::Relaxed),
            completed: c.completed.load(Ordering::Relaxed),
            failed: c.failed.load(Ordering::Relaxed),
            panicked: c.panicked.load(Ordering::Relaxed),
            escaped_panics: c.escaped_panics.load(Ordering::Relaxed),
            undelivered: c.undelivered.load(Ordering::Relaxed),
        }
    }
}

impl fmt::Debug for ComputePool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ComputePool")
            .field("threads", &self.threads)
            .field("stats", &self.stats())
            .finish()
    }
}

/// The pool's counters, shared by every clone of the pool, its jobs and its
/// panic handler. Written by the submitting thread (`submitted`) and by
/// pool threads (the rest); read by anyone through [`ComputePool::stats`].
///
/// Memory ordering: all `Relaxed`. They are statistics and order nothing
/// themselves; an outcome counter is bumped before the outcome is posted,
/// so a reader that has seen the completion arrive through the Node's
/// ingress (a synchronizing queue) also sees the bump.
#[derive(Debug, Default)]
struct PoolCounters {
    submitted: AtomicU64,
    completed: AtomicU64,
    failed: AtomicU64,
    panicked: AtomicU64,
    escaped_panics: AtomicU64,
    undelivered: AtomicU64,
}

/// Steps 2-4 of the lifecycle in the module docs, on a pool thread.
fn run_job<F>(counters: &PoolCounters, handle: CompletionHandle<(), String>, job: F)
where
    F: FnOnce() -> Result<JobOutputs, OpError>,
{
    let posted = match catch_unwind(AssertUnwindSafe(job)) {
        Ok(Ok(values)) => {
            counters.completed.fetch_add(1, Ordering::Relaxed);
            handle.complete_values(values)
        }
        Ok(Err(error)) => {
            counters.failed.fetch_add(1, Ordering::Relaxed);
            handle.fail_op(&error)
        }
        Err(payload) => {
            counters.panicked.fetch_add(1, Ordering::Relaxed);
            handle.fail_op(&OpError::new(
                OpErrorKind::Failed,
                "compute.panicked",
                format!("compute job panicked: {}", panic_message(payload.as_ref())),
            ))
        }
    };
    if posted.is_err() {
        counters.undelivered.fetch_add(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nodeflow_engine::sync::Mutex;
    use nodeflow_engine::{CompletionError, U64Value};
    use std::time::{Duration, Instant};

    /// What a job posted, recorded by [`Recorder`].
    #[derive(Debug, PartialEq)]
    enum Posted {
        Values(CommandId, Vec<(String, u64)>),
        Failed(CommandId, String),
    }

    /// A sink that records every post; `closed` makes it refuse them.
    #[derive(Default)]
    struct Recorder {
        posts: Mutex<Vec<Posted>>,
        /// The reason of every typed failure, in posting order.
        reasons: Mutex<Vec<String>>,
        closed: bool,
    }

    impl CompletionSink for Recorder {
        fn complete(&self, cmd: CommandId, _bytes: &[u8]) -> Result<(), CompletionError> {
            Err(CompletionError::Undeliverable { cmd })
        }

        fn complete_values(
            &self,
            cmd: CommandId,
            values: JobOutputs,
        ) -> Result<(), CompletionError> {
            if self.closed {
                return Err(CompletionError::Undeliverable { cmd });
            }
            let values = values
                .into_iter()
                .map(|(name, v)| (name, v.downcast_ref::<U64Value>().map_or(0, |v| v.0)))
                .collect();
            self.posts.lock().push(Posted::Values(cmd, values));
            Ok(())
        }

        fn fail(&self, cmd: CommandId, detail: &str) -> Result<(), CompletionError> {
            if self.closed {
                return Err(CompletionError::Undeliverable { cmd });
            }
            self.posts
                .lock()
                .push(Posted::Failed(cmd, detail.to_owned()));
            Ok(())
        }

        fn fail_op(&self, cmd: CommandId, error: &OpError) -> Result<(), CompletionError> {
            self.reasons.lock().push(error.reason.to_string());
            self.fail(cmd, &error.detail)
        }
    }

    /// Waits (bounded) until `done` holds.
    fn wait_until(what: &str, done: impl Fn() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while !done() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Waits until `recorder` holds `posts` posts; returns the pool's stats.
    fn settle(pool: &ComputePool, recorder: &Recorder, posts: usize) -> ComputePoolStats {
        wait_until("the posts", || recorder.posts.lock().len() >= posts);
        pool.stats()
    }

    fn sink(recorder: &Arc<Recorder>) -> Arc<dyn CompletionSink> {
        recorder.clone()
    }

    #[test]
    fn zero_and_too_many_threads_are_refused() {
        assert_eq!(
            ComputePool::new(0).err(),
            Some(ComputePoolError::ZeroThreads)
        );
        assert_eq!(
            ComputePool::new(ComputePool::MAX_THREADS + 1).err(),
            Some(ComputePoolError::TooManyThreads {
                threads: ComputePool::MAX_THREADS + 1,
                cap: ComputePool::MAX_THREADS
            })
        );
        assert_eq!(ComputePool::new(2).unwrap().threads(), 2);
    }

    #[test]
    fn each_outcome_is_posted_once_and_counted() {
        let pool = ComputePool::new(2).unwrap();
        let recorder = Arc::new(Recorder::default());
        pool.spawn_job(sink(&recorder), CommandId::new(1), || {
            Ok(vec![(
                "y".into(),
                Box::new(U64Value(7)) as Box<dyn SlotValue>,
            )])
        });
        pool.spawn_job(sink(&recorder), CommandId::new(2), || {
            Err("bad shape".into())
        });
        pool.spawn_job(sink(&recorder), CommandId::new(3), || {
            panic!("kaboom {}", 42)
        });
        pool.spawn_job(sink(&recorder), CommandId::new(4), || {
            std::panic::panic_any(5_u8)
        });
        let stats = settle(&pool, &recorder, 4);
        assert_eq!(
            stats,
            ComputePoolStats {
                submitted: 4,
                completed: 1,
                failed: 1,
                panicked: 2,
                escaped_panics: 0,
                undelivered: 0,
            }
        );
        let mut reasons = std::mem::take(&mut *recorder.reasons.lock());
        reasons.sort();
        assert_eq!(
            reasons,
            ["completion.failed", "compute.panicked", "compute.panicked"]
        );
        let mut posts = std::mem::take(&mut *recorder.posts.lock());
        posts.sort_by_key(|p| match p {
            Posted::Values(cmd, _) | Posted::Failed(cmd, _) => *cmd,
        });
        assert_eq!(
            posts,
            vec![
                Posted::Values(CommandId::new(1), vec![("y".into(), 7)]),
                Posted::Failed(CommandId::new(2), "bad shape".into()),
                Posted::Failed(CommandId::new(3), "compute job panicked: kaboom 42".into()),
                Posted::Failed(
                    CommandId::new(4),
                    "compute job panicked: a panic with a non-string payload".into()
                ),
            ]
        );
    }

    #[test]
    fn the_pool_survives_panics_and_clones_share_it() {
        let pool = ComputePool::new(1).unwrap();
        let other = pool.clone();
        let recorder = Arc::new(Recorder::default());
        for i in 0..10 {
            pool.spawn_job(sink(&recorder), CommandId::new(i), || panic!("x"));
        }
        other.spawn_job(sink(&recorder), CommandId::new(99), || Ok(Vec::new()));
        let stats = settle(&pool, &recorder, 11);
        assert_eq!((stats.panicked, stats.completed), (10, 1));
        assert_eq!(other.stats(), stats, "clones share one set of counters");
        assert!(recorder
            .posts
            .lock()
            .contains(&Posted::Values(CommandId::new(99), Vec::new())));
    }

    #[test]
    fn a_refused_post_is_counted_as_undelivered() {
        let pool = ComputePool::new(1).unwrap();
        let closed = Arc::new(Recorder {
            closed: true,
            ..Recorder::default()
        });
        pool.spawn_job(sink(&closed), CommandId::new(1), || Ok(Vec::new()));
        pool.spawn_job(sink(&closed), CommandId::new(2), || Err("no".into()));
        wait_until("two undelivered posts", || pool.stats().undelivered == 2);
        let stats = pool.stats();
        assert_eq!((stats.completed, stats.failed), (1, 1));
        assert!(closed.posts.lock().is_empty());
    }

    /// A sink that panics on every post (a bug outside the job's guard).
    struct Exploding;

    impl CompletionSink for Exploding {
        fn complete(&self, _: CommandId, _: &[u8]) -> Result<(), CompletionError> {
            panic!("sink bug")
        }

        fn complete_values(&self, _: CommandId, _: JobOutputs) -> Result<(), CompletionError> {
            panic!("sink bug")
        }

        fn fail(&self, _: CommandId, _: &str) -> Result<(), CompletionError> {
            panic!("sink bug")
        }
    }

    #[test]
    fn a_panic_outside_the_guard_reaches_the_handler_and_the_pool_keeps_running() {
        let pool = ComputePool::new(1).unwrap();
        pool.spawn_job(Arc::new(Exploding), CommandId::new(1), || Ok(Vec::new()));
        wait_until("the escaped panic", || pool.stats().escaped_panics == 1);
        let recorder = Arc::new(Recorder::default());
        pool.spawn_job(sink(&recorder), CommandId::new(2), || Ok(Vec::new()));
        let stats = settle(&pool, &recorder, 1);
        assert_eq!((stats.completed, stats.escaped_panics), (2, 1));
    }

    #[test]
    fn in_flight_saturates_instead_of_underflowing() {
        let stats = ComputePoolStats {
            submitted: 1,
            completed: 2,
            ..ComputePoolStats::default()
        };
        assert_eq!(stats.in_flight(), 0);
    }
}
