//! The completion sink: the one thread-safe way to hand an async command's result (or failure) back to its Node.
//!
//! [`CompletionSink`] is implemented by [`IngressQueue`]; pool jobs and
//! other threads hold it as `Arc<dyn CompletionSink>`, usually wrapped in a
//! [`CompletionHandle`] that completes its command at most once.
//!
//! Invariants:
//! * Every call has exactly one of three outcomes, reported by its return
//!   value and counted in [`CompletionStats`]: the completion was queued
//!   for the Node (`Ok`), it was refused at the boundary and an
//!   [`IngressEvent::IngressError`] naming the command was queued instead
//!   so the engine fails the parked op ([`CompletionError::Rejected`]), or
//!   the Node's ingress is closed and nothing was queued
//!   ([`CompletionError::Undeliverable`]). Never two, never none.
//! * Result bytes are cap-checked, charged against the Node's byte budget
//!   and copied into fallibly reserved memory before they are queued; the
//!   charge travels with the bytes and is released when they die.
//! * A failure is queued as the typed [`IngressEvent::CompletionFailed`],
//!   never as a success carrying error bytes; its detail is cut at a UTF-8
//!   boundary at [`COMPLETION_DETAIL_CAP`] bytes.
//! * A [`CompletionHandle`] dropped without completing fails its command
//!   with [`COMPLETION_DROPPED_DETAIL`], so the op never waits forever.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use serde::{Deserialize, Serialize};

use crate::budget::CopyInError;
use crate::bus::{AllocFailReason, AppIngressError, AppIngressErrorKind, AppIngressSource};
use crate::component::{OpError, OpErrorKind};
use crate::ids::CommandId;
use crate::ingress::{CompletionPayload, IngressEvent, IngressQueue, COMPLETION_DETAIL_CAP};
use crate::sync::atomic::{AtomicU64, Ordering};
use crate::sync::Arc;
use crate::value::SlotValue;

/// Detail of the failure a [`CompletionHandle`] reports when it is dropped
/// without completing.
pub const COMPLETION_DROPPED_DETAIL: &str = "completion handle dropped without completing";

/// The thread-safe way back into a Node for an async command's outcome.
pub trait CompletionSink: Send + Sync {
    /// Completes `cmd` with encoded result bytes (copied; the caller keeps
    /// its buffer).
    fn complete(&self, cmd: CommandId, result_bytes: &[u8]) -> Result<(), CompletionError>;

    /// Completes `cmd` with typed values, moved in without encoding.
    fn complete_values(
        &self,
        cmd: CommandId,
        values: Vec<(String, Box<dyn SlotValue>)>,
    ) -> Result<(), CompletionError>;

    /// Fails `cmd`; `detail` is cut at [`COMPLETION_DETAIL_CAP`] bytes. The
    /// op fails [`OpErrorKind::Failed`] with reason `completion.failed`.
    fn fail(&self, cmd: CommandId, detail: &str) -> Result<(), CompletionError>;

    /// Fails `cmd` with a typed error whose kind and reason the op's
    /// failure keeps (its detail is cut as in [`CompletionSink::fail`]).
    /// The default forwards the error's text to [`CompletionSink::fail`].
    fn fail_op(&self, cmd: CommandId, error: &OpError) -> Result<(), CompletionError> {
        self.fail(cmd, &error.to_string())
    }
}

/// `queue` as a shareable [`CompletionSink`], for [`CompletionHandle::new`].
///
/// Prefer this to an `as Arc<dyn CompletionSink>` cast: under `--cfg loom`
/// the facade's `Arc` cannot be unsized, and this function bridges that.
pub fn completion_sink(queue: &Arc<IngressQueue>) -> Arc<dyn CompletionSink> {
    #[cfg(not(loom))]
    return queue.clone();
    #[cfg(loom)]
    {
        // A fresh std `Arc` is unique, which is what `from_std` requires; it
        // holds a (loom) clone of the queue and forwards through the
        // `Arc<S>` impl below.
        let sink: std::sync::Arc<dyn CompletionSink> = std::sync::Arc::new(queue.clone()); // sync-facade: allow (loom's Arc cannot unsize)
        Arc::from_std(sink)
    }
}

/// Why a completion did not reach its Node as a result.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CompletionError {
    /// The result was refused at the boundary; the Node was told and will
    /// fail the parked op with this reason. Nothing to retry.
    #[error("the result for {cmd} was refused ({kind}); the op will fail with this reason")]
    Rejected {
        /// The command.
        cmd: CommandId,
        /// Why it was refused.
        kind: AppIngressErrorKind,
    },
    /// The result could not be encoded; the command was failed with this
    /// detail instead.
    #[error(
        "the result for {cmd} could not be encoded ({detail}); the command was failed instead"
    )]
    Encode {
        /// The command.
        cmd: CommandId,
        /// The encoder's message.
        detail: String,
    },
    /// The Node's ingress is closed (the Node is stopping); nothing was
    /// queued. Counted in [`CompletionStats::undeliverable`].
    #[error(
        "the Node is stopping and its ingress is closed; the outcome of {cmd} was not delivered"
    )]
    Undeliverable {
        /// The command.
        cmd: CommandId,
    },
}

/// Counters of a Node's completion sink.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompletionStats {
    /// Results queued (`Completion` events).
    pub delivered: u64,
    /// Failures queued (`CompletionFailed` events).
    pub failures_delivered: u64,
    /// Results refused at the boundary (an `IngressError` was queued).
    pub rejected: u64,
    /// Outcomes not delivered because the ingress was closed.
    pub undeliverable: u64,
}

/// A one-shot handle that completes one command through a [`CompletionSink`].
///
/// `R` is the result type (encoded with postcard by
/// [`CompletionHandle::complete`]); `E` is the error type rendered with
/// `Display` by [`CompletionHandle::fail`]. Every completing method consumes
/// the handle; dropping it unused fails the command.
pub struct CompletionHandle<R, E> {
    cmd: CommandId,
    /// `None` once the handle has completed.
    sink: Option<Arc<dyn CompletionSink>>,
    _types: PhantomData<fn(&R, &E)>,
}

/// The sink's counters, owned by the [`IngressQueue`]. All `Relaxed`:
/// statistics only, they order nothing.
#[derive(Debug, Default)]
pub(crate) struct SinkCounters {
    delivered: AtomicU64,
    failures_delivered: AtomicU64,
    rejected: AtomicU64,
    undeliverable: AtomicU64,
}

impl CompletionSink for IngressQueue {
    fn complete(&self, cmd: CommandId, result_bytes: &[u8]) -> Result<(), CompletionError> {
        let cap = self.completion_result_cap();
        match self.budget().copy_in(result_bytes, cap) {
            Ok(bytes) => self.deliver(
                cmd,
                IngressEvent::Completion {
                    cmd,
                    payload: CompletionPayload::Bytes(bytes),
                },
                &self.sink_counters.delivered,
            ),
            Err(error) => self.reject(cmd, result_bytes.len(), copy_in_kind(error)),
        }
    }

    fn complete_values(
        &self,
        cmd: CommandId,
        values: Vec<(String, Box<dyn SlotValue>)>,
    ) -> Result<(), CompletionError> {
        let bytes = values.iter().fold(0usize, |sum, (_, value)| {
            sum.saturating_add(value.heap_bytes())
        });
        let cap = self.completion_result_cap();
        if bytes > cap {
            return self.reject(cmd, bytes, AppIngressErrorKind::PerItemCapExceeded { cap });
        }
        match self.budget().try_charge(bytes) {
            Ok(charge) => self.deliver(
                cmd,
                IngressEvent::Completion {
                    cmd,
                    payload: CompletionPayload::Values { values, charge },
                },
                &self.sink_counters.delivered,
            ),
            Err(error) => self.reject(cmd, bytes, copy_in_kind(error.into())),
        }
    }

    fn fail(&self, cmd: CommandId, detail: &str) -> Result<(), CompletionError> {
        self.fail_typed(cmd, OpErrorKind::Failed, "completion.failed".into(), detail)
    }

    fn fail_op(&self, cmd: CommandId, error: &OpError) -> Result<(), CompletionError> {
        self.fail_typed(cmd, error.kind, error.reason.clone(), &error.detail)
    }
}

impl IngressQueue {
    /// Queues a typed failure for `cmd`, its detail cut and copied into
    /// fallibly reserved memory.
    fn fail_typed(
        &self,
        cmd: CommandId,
        kind: OpErrorKind,
        reason: Cow<'static, str>,
        detail: &str,
    ) -> Result<(), CompletionError> {
        let detail = truncate_at_char_boundary(detail, COMPLETION_DETAIL_CAP);
        let mut owned = String::new();
        if owned.try_reserve_exact(detail.len()).is_err() {
            let reason = AllocFailReason::HeapExhausted;
            return self.reject(
                cmd,
                detail.len(),
                AppIngressErrorKind::AllocationFailed { reason },
            );
        }
        owned.push_str(detail);
        let error = Box::new(OpError::new(kind, reason, owned));
        self.deliver(
            cmd,
            IngressEvent::CompletionFailed { cmd, error },
            &self.sink_counters.failures_delivered,
        )
    }
}

/// A shared sink is a sink (forwards to the shared value).
impl<S: CompletionSink + ?Sized> CompletionSink for Arc<S> {
    fn complete(&self, cmd: CommandId, result_bytes: &[u8]) -> Result<(), CompletionError> {
        (**self).complete(cmd, result_bytes)
    }

    fn complete_values(
        &self,
        cmd: CommandId,
        values: Vec<(String, Box<dyn SlotValue>)>,
    ) -> Result<(), CompletionError> {
        (**self).complete_values(cmd, values)
    }

    fn fail(&self, cmd: CommandId, detail: &str) -> Result<(), CompletionError> {
        (**self).fail(cmd, detail)
    }

    fn fail_op(&self, cmd: CommandId, error: &OpError) -> Result<(), CompletionError> {
        (**self).fail_op(cmd, error)
    }
}

impl IngressQueue {
    /// Queues `event` on the control lane; `Undeliverable` when closed.
    fn deliver(
        &self,
        cmd: CommandId,
        event: IngressEvent,
        counter: &AtomicU64,
    ) -> Result<(), CompletionError> {
        #[cfg(nodeflow_loom_broken)]
        if self.broken == Some(crate::ingress::LoomBreakage::SinkCheckThenPush) {
            // BROKEN on purpose: the queue can close between the check and
            // the push, and the refused event is then dropped unreported.
            if self.is_closed() {
                self.sink_counters
                    .undeliverable
                    .fetch_add(1, Ordering::Relaxed);
                return Err(CompletionError::Undeliverable { cmd });
            }
            let _ = self.push_control(event);
            counter.fetch_add(1, Ordering::Relaxed);
            return Ok(());
        }
        // Only `Closed` can come back from the control lane. The refused
        // event (and any budget charge inside it) is dropped here, after the
        // outcome has been counted and is about to be reported.
        match self.push_control(event) {
            Ok(()) => {
                counter.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
            Err(_refused) => {
                self.sink_counters
                    .undeliverable
                    .fetch_add(1, Ordering::Relaxed);
                Err(CompletionError::Undeliverable { cmd })
            }
        }
    }

    /// Queues an `IngressError` naming `cmd` so the engine fails the op.
    fn reject(
        &self,
        cmd: CommandId,
        byte_count: usize,
        kind: AppIngressErrorKind,
    ) -> Result<(), CompletionError> {
        let event = IngressEvent::IngressError(AppIngressError {
            source: AppIngressSource::Completion { command: cmd },
            byte_count,
            kind,
        });
        self.deliver(cmd, event, &self.sink_counters.rejected)?;
        Err(CompletionError::Rejected { cmd, kind })
    }
}

impl SinkCounters {
    pub(crate) fn stats(&self) -> CompletionStats {
        CompletionStats {
            delivered: self.delivered.load(Ordering::Relaxed),
            failures_delivered: self.failures_delivered.load(Ordering::Relaxed),
            rejected: self.rejected.load(Ordering::Relaxed),
            undeliverable: self.undeliverable.load(Ordering::Relaxed),
        }
    }
}

impl<R, E> CompletionHandle<R, E>
where
    R: Serialize,
    E: fmt::Display,
{
    /// A handle that completes `cmd` through `sink`.
    pub fn new(cmd: CommandId, sink: Arc<dyn CompletionSink>) -> Self {
        Self {
            cmd,
            sink: Some(sink),
            _types: PhantomData,
        }
    }

    /// The command this handle completes.
    pub fn cmd_id(&self) -> CommandId {
        self.cmd
    }

    /// Completes the command with `result` encoded by postcard. If encoding
    /// fails, the command is failed with the encoder's message instead.
    pub fn complete(mut self, result: &R) -> Result<(), CompletionError> {
        let Some(sink) = self.sink.take() else {
            return Ok(());
        };
        match postcard::to_allocvec(result) {
            Ok(bytes) => sink.complete(self.cmd, &bytes),
            Err(error) => {
                let detail = format!("could not encode the result: {error}");
                sink.fail(self.cmd, &detail)?;
                Err(CompletionError::Encode {
                    cmd: self.cmd,
                    detail,
                })
            }
        }
    }

    /// Completes the command with typed values (no encoding).
    pub fn complete_values(
        mut self,
        values: Vec<(String, Box<dyn SlotValue>)>,
    ) -> Result<(), CompletionError> {
        match self.sink.take() {
            Some(sink) => sink.complete_values(self.cmd, values),
            None => Ok(()),
        }
    }

    /// Fails the command with a typed error: the op's failure keeps its
    /// kind and reason.
    pub fn fail_op(mut self, error: &OpError) -> Result<(), CompletionError> {
        match self.sink.take() {
            Some(sink) => sink.fail_op(self.cmd, error),
            None => Ok(()),
        }
    }

    /// Fails the command with `error`'s `Display` text.
    pub fn fail(mut self, error: &E) -> Result<(), CompletionError> {
        match self.sink.take() {
            Some(sink) => sink.fail(self.cmd, &error.to_string()),
            None => Ok(()),
        }
    }
}

impl<R, E> Drop for CompletionHandle<R, E> {
    fn drop(&mut self) {
        if let Some(sink) = self.sink.take() {
            // Counted by the sink if undeliverable; nobody is left to tell.
            let _ = sink.fail(self.cmd, COMPLETION_DROPPED_DETAIL);
        }
    }
}

impl<R, E> fmt::Debug for CompletionHandle<R, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CompletionHandle")
            .field("cmd", &self.cmd)
            .field("completed", &self.sink.is_none())
            .finish()
    }
}

/// The longest prefix of `text` of at most `cap` bytes ending on a char boundary.
fn truncate_at_char_boundary(text: &str, cap: usize) -> &str {
    if text.len() <= cap {
        return text;
    }
    let mut end = cap;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

fn copy_in_kind(error: CopyInError) -> AppIngressErrorKind {
    match error {
        CopyInError::PerItemCapExceeded { cap, .. } => {
            AppIngressErrorKind::PerItemCapExceeded { cap }
        }
        CopyInError::Budget(exceeded) => AppIngressErrorKind::BudgetExceeded {
            in_use: exceeded.in_use,
            limit: exceeded.limit,
        },
        CopyInError::AllocationFailed { .. } => AppIngressErrorKind::AllocationFailed {
            reason: AllocFailReason::HeapExhausted,
        },
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::budget::ByteBudget;
    use crate::bus::test_value::TestValue;
    use crate::ingress::IngressConfig;

    fn queue(result_cap: usize, budget: usize) -> Arc<IngressQueue> {
        let config = IngressConfig {
            completion_result_cap: result_cap,
            ..IngressConfig::default()
        };
        Arc::new(IngressQueue::new(config, ByteBudget::new(budget)))
    }

    fn cmd(raw: u64) -> CommandId {
        CommandId::new(raw)
    }

    fn ingress_error(event: Option<IngressEvent>) -> AppIngressError {
        match event {
            Some(IngressEvent::IngressError(error)) => error,
            other => panic!("expected an ingress error, got {other:?}"),
        }
    }

    fn failure(event: Option<IngressEvent>) -> (CommandId, String) {
        match event {
            Some(IngressEvent::CompletionFailed { cmd, error }) => {
                assert_eq!(error.reason, "completion.failed");
                (cmd, error.detail)
            }
            other => panic!("expected a completion failure, got {other:?}"),
        }
    }

    #[test]
    fn bytes_are_copied_charged_and_released_when_the_event_dies() {
        let queue = queue(16, 100);
        queue.complete(cmd(1), &[1, 2, 3]).expect("delivered");
        assert_eq!(queue.budget().in_use(), 3);
        match queue.try_pop() {
            Some(IngressEvent::Completion {
                cmd: c,
                payload: CompletionPayload::Bytes(bytes),
            }) => {
                assert_eq!(c, cmd(1));
                assert_eq!(bytes.as_slice(), &[1, 2, 3]);
            }
            other => panic!("expected a byte completion, got {other:?}"),
        }
        assert_eq!(
            queue.budget().in_use(),
            0,
            "dropping the event released the charge"
        );
        assert_eq!(queue.stats().completion.delivered, 1);
    }

    #[test]
    fn result_over_the_cap_is_rejected_with_a_typed_event() {
        let queue = queue(4, 100);
        let err = queue.complete(cmd(2), &[0; 5]).expect_err("over the cap");
        let kind = AppIngressErrorKind::PerItemCapExceeded { cap: 4 };
        assert_eq!(err, CompletionError::Rejected { cmd: cmd(2), kind });
        let error = ingress_error(queue.try_pop());
        assert_eq!(
            error.source,
            AppIngressSource::Completion { command: cmd(2) }
        );
        assert_eq!((error.byte_count, error.kind), (5, kind));
        assert_eq!(queue.budget().in_use(), 0);
        let stats = queue.stats().completion;
        assert_eq!((stats.delivered, stats.rejected), (0, 1));
    }

    #[test]
    fn result_over_the_budget_is_rejected_with_a_typed_event() {
        let queue = queue(64, 8);
        queue.complete(cmd(1), &[0; 6]).expect("fits");
        let err = queue.complete(cmd(2), &[0; 6]).expect_err("6 + 6 > 8");
        let kind = AppIngressErrorKind::BudgetExceeded {
            in_use: 6,
            limit: 8,
        };
        assert_eq!(err, CompletionError::Rejected { cmd: cmd(2), kind });
        assert!(matches!(
            queue.try_pop(),
            Some(IngressEvent::Completion { .. })
        ));
        assert_eq!(ingress_error(queue.try_pop()).kind, kind);
        assert_eq!(queue.budget().in_use(), 0);
    }

    #[test]
    fn fail_truncates_at_a_char_boundary_and_queues_a_typed_failure() {
        let queue = queue(16, 100);
        // 4095 ASCII bytes then a 2-byte char straddling the cap.
        let detail = format!("{}é tail", "a".repeat(COMPLETION_DETAIL_CAP - 1));
        queue.fail(cmd(3), &detail).expect("delivered");
        let (c, got) = failure(queue.try_pop());
        assert_eq!(c, cmd(3));
        assert_eq!(got.len(), COMPLETION_DETAIL_CAP - 1);
        assert!(got.bytes().all(|b| b == b'a'));

        let exact = "b".repeat(COMPLETION_DETAIL_CAP);
        queue.fail(cmd(4), &exact).expect("delivered");
        assert_eq!(
            failure(queue.try_pop()).1,
            exact,
            "a detail at the cap is kept whole"
        );
        assert_eq!(queue.stats().completion.failures_delivered, 2);
    }

    #[test]
    fn truncation_handles_empty_and_tiny_caps() {
        assert_eq!(truncate_at_char_boundary("", 0), "");
        assert_eq!(truncate_at_char_boundary("é", 1), "");
        assert_eq!(truncate_at_char_boundary("aé", 2), "a");
        assert_eq!(truncate_at_char_boundary("aé", 3), "aé");
    }

    #[test]
    fn closed_sink_reports_undeliverable_and_releases_the_charge() {
        let queue = queue(16, 100);
        queue.close();
        let err = queue.complete(cmd(5), &[1, 2]).expect_err("closed");
        assert_eq!(err, CompletionError::Undeliverable { cmd: cmd(5) });
        assert_eq!(
            queue.fail(cmd(6), "boom"),
            Err(CompletionError::Undeliverable { cmd: cmd(6) })
        );
        assert_eq!(
            queue.complete(cmd(7), &[0; 17]),
            Err(CompletionError::Undeliverable { cmd: cmd(7) }),
            "a rejection that cannot be delivered is undeliverable, not rejected"
        );
        assert!(queue.try_pop().is_none());
        assert_eq!(queue.budget().in_use(), 0);
        let stats = queue.stats().completion;
        assert_eq!(
            (stats.undeliverable, stats.delivered, stats.rejected),
            (3, 0, 0)
        );
    }

    #[test]
    fn typed_values_move_in_charged_by_heap_bytes() {
        let queue = queue(16, 100);
        let values: Vec<(String, Box<dyn SlotValue>)> = vec![
            ("a".into(), Box::new(TestValue(1))),
            ("b".into(), Box::new(TestValue(2))),
        ];
        queue.complete_values(cmd(8), values).expect("delivered");
        assert_eq!(queue.budget().in_use(), 16, "two values of 8 heap bytes");
        match queue.try_pop() {
            Some(IngressEvent::Completion {
                payload: CompletionPayload::Values { values, charge },
                ..
            }) => {
                assert_eq!(values.len(), 2);
                assert_eq!(values[1].1.downcast_ref::<TestValue>(), Some(&TestValue(2)));
                assert_eq!(charge.bytes(), 16);
            }
            other => panic!("expected typed values, got {other:?}"),
        }
        assert_eq!(queue.budget().in_use(), 0);

        let three: Vec<(String, Box<dyn SlotValue>)> = (0..3)
            .map(|i| {
                (
                    format!("v{i}"),
                    Box::new(TestValue(i)) as Box<dyn SlotValue>,
                )
            })
            .collect();
        let err = queue
            .complete_values(cmd(9), three)
            .expect_err("24 > cap 16");
        assert!(matches!(err, CompletionError::Rejected { .. }));
    }

    #[test]
    fn handles_and_sinks_cross_threads() {
        fn send_sync<T: Send + Sync>() {}
        send_sync::<CompletionHandle<std::rc::Rc<u8>, std::rc::Rc<u8>>>();
        send_sync::<Arc<dyn CompletionSink>>();
    }

    #[test]
    fn handle_encodes_with_postcard_and_completes_once() {
        let queue = queue(64, 100);
        let handle: CompletionHandle<(u32, String), String> =
            CompletionHandle::new(cmd(10), completion_sink(&queue));
        assert_eq!(handle.cmd_id(), cmd(10));
        handle.complete(&(7, "ok".to_string())).expect("delivered");
        match queue.try_pop() {
            Some(IngressEvent::Completion {
                payload: CompletionPayload::Bytes(bytes),
                ..
            }) => {
                let decoded: (u32, String) = postcard::from_bytes(&bytes).expect("decodes");
                assert_eq!(decoded, (7, "ok".to_string()));
            }
            other => panic!("expected bytes, got {other:?}"),
        }
        assert!(
            queue.try_pop().is_none(),
            "a completed handle does not fail on drop"
        );
    }

    #[test]
    fn handle_fail_uses_display_and_drop_fails_the_command() {
        let queue = queue(64, 100);
        let handle: CompletionHandle<u8, std::fmt::Error> =
            CompletionHandle::new(cmd(11), queue.clone());
        handle.fail(&std::fmt::Error).expect("delivered");
        assert_eq!(
            failure(queue.try_pop()),
            (cmd(11), std::fmt::Error.to_string())
        );

        let dropped: CompletionHandle<u8, String> = CompletionHandle::new(cmd(12), queue.clone());
        drop(dropped);
        assert_eq!(
            failure(queue.try_pop()),
            (cmd(12), COMPLETION_DROPPED_DETAIL.to_string())
        );

        let typed: CompletionHandle<u8, String> = CompletionHandle::new(cmd(13), queue.clone());
        typed.complete_values(Vec::new()).expect("delivered");
        assert!(matches!(
            queue.try_pop(),
            Some(IngressEvent::Completion { .. })
        ));
        assert!(queue.try_pop().is_none());
    }
}

/// Loom model of the completion sink against a closing owner (run by
/// `ci/loom.sh`); `loom_broken_sink_check_then_push` runs it against a sink
/// with a check-then-act bug, which loom must catch.
#[cfg(all(test, loom))]
mod loom_completion {
    use super::*;
    use crate::budget::ByteBudget;
    use crate::ingress::IngressConfig;
    use crate::sync::thread;

    /// (e) A pool thread completes a command through a [`CompletionHandle`]
    /// while the owner pops once,
    /// then closes and drains: the completion is either popped exactly once
    /// (and the sink said `Ok`) or reported `Undeliverable` (and never
    /// popped), never both, never neither; the budget returns to 0.
    fn sink_vs_close(broken: bool) {
        loom::model(move || {
            let config = IngressConfig::default();
            let budget = ByteBudget::new(64);
            #[cfg(nodeflow_loom_broken)]
            let q = Arc::new(if broken {
                IngressQueue::with_breakage(
                    config,
                    budget.clone(),
                    crate::ingress::LoomBreakage::SinkCheckThenPush,
                )
            } else {
                IngressQueue::new(config, budget.clone())
            });
            #[cfg(not(nodeflow_loom_broken))]
            let q = {
                let _ = broken;
                Arc::new(IngressQueue::new(config, budget.clone()))
            };
            let pool = {
                let q = q.clone();
                thread::spawn(move || {
                    let handle: CompletionHandle<[u8; 3], String> =
                        CompletionHandle::new(CommandId::new(1), completion_sink(&q));
                    handle.complete(&[1, 2, 3])
                })
            };
            let mut popped = Vec::new();
            popped.extend(q.try_pop());
            q.drain_after_close(&mut popped);
            let outcome = pool.join().expect("pool thread");
            let delivered = popped
                .iter()
                .filter(|e| matches!(e, IngressEvent::Completion { cmd, .. } if *cmd == CommandId::new(1)))
                .count();
            let stats = q.stats().completion;
            match outcome {
                Ok(()) => {
                    assert_eq!(delivered, 1, "reported delivered but not popped once");
                    assert_eq!((stats.delivered, stats.undeliverable), (1, 0));
                }
                Err(CompletionError::Undeliverable { .. }) => {
                    assert_eq!(delivered, 0, "reported undeliverable but popped");
                    assert_eq!((stats.delivered, stats.undeliverable), (0, 1));
                }
                Err(other) => panic!("unexpected outcome {other}"),
            }
            drop(popped);
            assert_eq!(budget.in_use(), 0, "every charge released exactly once");
        });
    }

    #[test]
    fn loom_completion_delivered_once_or_undeliverable() {
        sink_vs_close(false);
    }

    #[cfg(nodeflow_loom_broken)]
    #[test]
    fn loom_broken_sink_check_then_push() {
        sink_vs_close(true);
    }
}
