//! The `thread` half of the facade under `--cfg loom`: loom's threads with
//! the std API subset nodeflow uses ([`Builder`], [`JoinHandle::is_finished`]).
//!
//! # Invariants
//! * [`Builder::spawn`] never fails and spawns a loom thread; the name is
//!   kept (loom shows it in panic messages), the stack size is ignored so
//!   every model thread gets loom's own default stack.
//! * [`JoinHandle::is_finished`] turns `true` only after the thread's
//!   closure has returned. Like std's, it is a hint that orders no memory;
//!   its flag is a plain std atomic on purpose, so it adds no loom branch
//!   points (loom threads run one at a time, so the flag is coherent).
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]

use std::fmt;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};

pub use loom::thread::{current, park, yield_now, Thread};

/// Spawns a loom thread running `f`.
#[track_caller]
pub fn spawn<F, T>(f: F) -> JoinHandle<T>
where
    F: FnOnce() -> T + 'static,
    T: 'static,
{
    let finished = std::sync::Arc::new(AtomicBool::new(false));
    let flag = std::sync::Arc::clone(&finished);
    let inner = loom::thread::spawn(move || {
        let value = f();
        flag.store(true, Ordering::Relaxed);
        value
    });
    JoinHandle { inner, finished }
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

    /// Accepted and ignored: model threads use loom's default stack.
    pub fn stack_size(self, _size: usize) -> Self {
        self
    }

    /// Spawns the thread; never fails under loom.
    #[track_caller]
    pub fn spawn<F, T>(self, f: F) -> io::Result<JoinHandle<T>>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let Some(name) = self.name else {
            return Ok(spawn(f));
        };
        let finished = std::sync::Arc::new(AtomicBool::new(false));
        let flag = std::sync::Arc::clone(&finished);
        let inner = loom::thread::Builder::new().name(name).spawn(move || {
            let value = f();
            flag.store(true, Ordering::Relaxed);
            value
        })?;
        Ok(JoinHandle { inner, finished })
    }
}
