//! The `thread` half of the facade under `--cfg loom`: loom's threads with
//! the std API subset nodeflow uses ([`Builder`], [`JoinHandle::is_finished`]).
//!
//! # Invariants
//! * [`Builder::spawn`] never fails and spawns a loom thread; the name is
//!   kept (loom shows it in panic messages) and so is the stack size (loom
//!   counts it in words); threads without one get [`MODEL_STACK_WORDS`],
//!   never loom's own 32 KiB default, which an actor thread that unwinds a
//!   panic or snapshots its Node overflows.
//! * [`JoinHandle::is_finished`] turns `true` only after the thread's
//!   closure has returned. Like std's, it is a hint that orders no memory;
//!   its flag is a plain std atomic on purpose, so it adds no loom branch
//!   points (loom threads run one at a time, so the flag is coherent).
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]

use std::fmt;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};

pub use loom::thread::{current, park, yield_now, Thread};

/// Stack of a model thread, in words (loom's own default, 32 KiB, is too
/// small for an actor thread that snapshots, restores or unwinds).
const MODEL_STACK_WORDS: usize = 64 * 1024;

/// Spawns a loom thread running `f`.
#[track_caller]
pub fn spawn<F, T>(f: F) -> JoinHandle<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    match Builder::new().spawn(f) {
        Ok(handle) => handle,
        Err(_) => unreachable!("loom's Builder::spawn never fails"),
    }
}

/// A handle to a loom thread (std's `JoinHandle` API subset).
pub struct JoinHandle<T> {
    inner: loom::thread::JoinHandle<T>,
    finished: std::sync::Arc<AtomicBool>,
}

impl<T> JoinHandle<T> {
    /// Waits for the thread to finish and returns its result.
    #[track_caller]
    pub fn join(self) -> std::thread::Result<T> {
        self.inner.join()
    }

    /// The thread's handle.
    pub fn thread(&self) -> &Thread {
        self.inner.thread()
    }

    /// Whether the thread's closure has returned.
    pub fn is_finished(&self) -> bool {
        self.finished.load(Ordering::Relaxed)
    }
}

impl<T> fmt::Debug for JoinHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinHandle")
            .field("finished", &self.is_finished())
            .finish_non_exhaustive()
    }
}

/// Thread factory with std's API; see the module docs for what is ignored.
#[derive(Debug, Default)]
pub struct Builder {
    name: Option<String>,
    stack_size: Option<usize>,
}

impl Builder {
    /// A builder with no name.
    pub fn new() -> Self {
        Self::default()
    }

    /// Names the thread (shown in loom's panic messages).
    pub fn name(mut self, name: String) -> Self {
        self.name = Some(name);
        self
    }

    /// The model thread's stack size (loom's default is small: 32 KiB).
    pub fn stack_size(mut self, size: usize) -> Self {
        self.stack_size = Some(size);
        self
    }

    /// Spawns the thread; never fails under loom.
    #[track_caller]
    pub fn spawn<F, T>(self, f: F) -> io::Result<JoinHandle<T>>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let finished = std::sync::Arc::new(AtomicBool::new(false));
        let flag = std::sync::Arc::clone(&finished);
        let mut builder = loom::thread::Builder::new();
        if let Some(name) = self.name {
            builder = builder.name(name);
        }
        builder = builder.stack_size(self.stack_size.unwrap_or(MODEL_STACK_WORDS));
        let inner = builder.spawn(move || {
            let value = f();
            flag.store(true, Ordering::Relaxed);
            value
        })?;
        Ok(JoinHandle { inner, finished })
    }
}
