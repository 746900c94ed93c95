//! The coordination syscalls: `Any`, `DeadlineCheck`, `Limit.Acquire`,
//! `Limit.Release`, `CorrelateTag`, `Serialize.Enqueue`,
//! `Serialize.Dequeue`, `Hold.Stash` and `Hold.Flush` (table on
//! [`CoordinationSyscall`]).
//!
//! Invariants: every refusal is a typed [`OpError`] with a stable reason,
//! and every value a refusal or replacement drops is counted by the
//! primitive that dropped it (`SerializeQueueStats::refused_*`,
//! `HoldTableStats::replaced` / `refused_*`), so nothing vanishes uncounted.

use crate::component::{DispatchResult, OpError, OpErrorKind, OpInputs, OpOutputs};
use crate::framework::{
    GateError, HoldTableError, HoldTableRefusal, SerializeQueueError, SerializeQueueRefusal,
};
use crate::resource::RuntimeResourceRef;
use crate::syscall::parse::{Count, OpSpec};
use crate::syscall::{latch_error, pass_optional, take_input, SyscallParseError};
use crate::value::{Composite, Trigger, U64Value};

/// Entry name of the correlation token in a `CorrelateTag` composite.
pub const CORRELATE_TAG_REQ_ID: &str = "wire_req_id";
/// Entry name of the tagged value in a `CorrelateTag` composite.
pub const CORRELATE_TAG_VALUE: &str = "value";

/// Latches, permits, queues and slots shared between executions.
///
/// | op type             | inputs            | outputs | attributes                       | behaviour | errors |
/// |---------------------|-------------------|---------|----------------------------------|-----------|--------|
/// | `Any`               | 1                 | 1       | `group`: string                  | the first arrival of `group` in this execution passes; later ones write nothing (counted as `suppressed` by the latch stats) | `ResourceExhausted` `latch.full`; `InvalidAttribute` `latch.key_too_long` |
/// | `DeadlineCheck`     | 1                 | 1       | —                                | passes its input unless the inbound deadline has run out: expired when `now_ns - arrival_ns >= remaining_deadline_ns` (a zero budget is already expired); passes when the execution has no inbound arrival or deadline | `Timeout` `deadline.expired` |
/// | `Limit.Acquire`     | 1                 | 1       | `name`: string, `limit`: int ≥ 1 | takes one permit of `name` (at most `limit` held) and passes its input | `Refused` `limit.exhausted`; `ResourceExhausted` `limit.too_many_names` |
/// | `Limit.Release`     | 1                 | 1       | `name`: string                   | gives one permit of `name` back and passes its input | `Failed` `limit.not_held` |
/// | `CorrelateTag`      | 1                 | 1       | —                                | emits a [`Composite`] `{"wire_req_id": U64Value, "value": input}`; the `wire_req_id` entry is absent when the execution has no inbound token | — |
/// | `Serialize.Enqueue` | 1                 | 0 or 1  | `queue`: string                  | appends its input to FIFO `queue`, then emits a [`Trigger`] | `ResourceExhausted` `serialize.queue_full` / `serialize.too_many_queues` / `serialize.name_too_long`: the value is dropped and counted in the queue's stats |
/// | `Serialize.Dequeue` | 1 (any, ignored)  | 1       | `queue`: string                  | emits the oldest value of `queue`; writes nothing when it is empty (counted as a `dequeue_miss`) | — |
/// | `Hold.Stash`        | 1                 | 0 or 1  | `slot`: string                   | puts its input in `slot`, then emits a [`Trigger`]; a value it replaces is dropped (counted as `replaced`) | `ResourceExhausted` `hold.table_full` / `hold.name_too_long`: the value is dropped and counted |
/// | `Hold.Flush`        | 1 (any, ignored)  | 1       | `slot`: string                   | emits the value of `slot` and empties it; writes nothing when it is empty (counted as a `flush_miss`) | — |
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CoordinationSyscall {
    /// `Any`: first arrival of a group wins.
    Any {
        /// The latch group.
        group: String,
    },
    /// `DeadlineCheck`: fails once the inbound deadline has passed.
    DeadlineCheck,
    /// `Limit.Acquire`: takes a permit.
    LimitAcquire {
        /// The permit name.
        name: String,
        /// Most permits of `name` held at once (at least 1).
        limit: u32,
    },
    /// `Limit.Release`: gives a permit back.
    LimitRelease {
        /// The permit name.
        name: String,
    },
    /// `CorrelateTag`: pairs a value with the inbound correlation token.
    CorrelateTag,
    /// `Serialize.Enqueue`: appends to a FIFO.
    SerializeEnqueue {
        /// The queue name.
        queue: String,
    },
    /// `Serialize.Dequeue`: takes from a FIFO.
    SerializeDequeue {
        /// The queue name.
        queue: String,
    },
    /// `Hold.Stash`: stores a value in a slot.
    HoldStash {
        /// The slot name.
        slot: String,
    },
    /// `Hold.Flush`: takes the value out of a slot.
    HoldFlush {
        /// The slot name.
        slot: String,
    },
}

impl CoordinationSyscall {
    /// Parses a coordination op; `None` when `spec` is not one.
    pub(super) fn parse(spec: &OpSpec<'_>) -> Option<Result<Self, SyscallParseError>> {
        let parsed = match spec.op_type() {
            "Any" => ports(spec, Count::One).and_then(|()| {
                Ok(Self::Any {
                    group: spec.name("group")?,
                })
            }),
            "DeadlineCheck" => ports(spec, Count::One).map(|()| Self::DeadlineCheck),
            "Limit.Acquire" => ports(spec, Count::One).and_then(|()| {
                Ok(Self::LimitAcquire {
                    name: spec.name("name")?,
                    limit: spec.u32_at_least("limit", 1)?,
                })
            }),
            "Limit.Release" => ports(spec, Count::One).and_then(|()| {
                Ok(Self::LimitRelease {
                    name: spec.name("name")?,
                })
            }),
            "CorrelateTag" => ports(spec, Count::One).map(|()| Self::CorrelateTag),
            "Serialize.Enqueue" => ports(spec, Count::ZeroOrOne).and_then(|()| {
                Ok(Self::SerializeEnqueue {
                    queue: spec.name("queue")?,
                })
            }),
            "Serialize.Dequeue" => ports(spec, Count::One).and_then(|()| {
                Ok(Self::SerializeDequeue {
                    queue: spec.name("queue")?,
                })
            }),
            "Hold.Stash" => ports(spec, Count::ZeroOrOne).and_then(|()| {
                Ok(Self::HoldStash {
                    slot: spec.name("slot")?,
                })
            }),
            "Hold.Flush" => ports(spec, Count::One).and_then(|()| {
                Ok(Self::HoldFlush {
                    slot: spec.name("slot")?,
                })
            }),
            _ => return None,
        };
        Some(parsed)
    }

    /// Runs the op for one execution.
    pub(super) fn dispatch(
        &self,
        ctx: &mut RuntimeResourceRef<'_>,
        inputs: &mut OpInputs<'_>,
        outputs: &mut OpOutputs<'_>,
    ) -> Result<DispatchResult, OpError> {
        let value = take_input(inputs, 0)?;
        match self {
            Self::Any { group } => {
                let exec = ctx.current.exec_id;
                if ctx
                    .syscall
                    .any_latches
                    .try_fire(group, exec)
                    .map_err(latch_error)?
                {
                    outputs.push(value)?;
                }
            }
            Self::DeadlineCheck => {
                check_deadline(ctx)?;
                outputs.push(value)?;
            }
            Self::LimitAcquire { name, limit } => {
                ctx.peers
                    .gate
                    .try_acquire(name, *limit)
                    .map_err(gate_error)?;
                outputs.push(value)?;
            }
            Self::LimitRelease { name } => {
                ctx.peers.gate.release(name).map_err(gate_error)?;
                outputs.push(value)?;
            }
            Self::CorrelateTag => {
                let mut tagged = Composite::new();
                if let Some(token) = ctx.current.inbound.wire_req_id {
                    tagged.push(CORRELATE_TAG_REQ_ID, Box::new(U64Value(token)));
                }
                tagged.push(CORRELATE_TAG_VALUE, value);
                outputs.push(Box::new(tagged))?;
            }
            Self::SerializeEnqueue { queue } => {
                ctx.syscall
                    .serialize_queue
                    .enqueue(queue, value)
                    .map_err(serialize_error)?;
                pass_optional(outputs, Box::new(Trigger))?;
            }
            Self::SerializeDequeue { queue } => {
                if let Some(front) = ctx.syscall.serialize_queue.dequeue(queue) {
                    outputs.push(front)?;
                }
            }
            Self::HoldStash { slot } => {
                // A displaced value is dropped here; the table counts it as `replaced`.
                ctx.syscall
                    .hold_table
                    .stash(slot, value)
                    .map_err(hold_error)?;
                pass_optional(outputs, Box::new(Trigger))?;
            }
            Self::HoldFlush { slot } => {
                if let Some(held) = ctx.syscall.hold_table.flush(slot) {
                    outputs.push(held)?;
                }
            }
        }
        Ok(DispatchResult::Immediate)
    }
}

fn ports(spec: &OpSpec<'_>, outputs: Count) -> Result<(), SyscallParseError> {
    spec.inputs(Count::One)?;
    spec.outputs(outputs)
}

fn check_deadline(ctx: &RuntimeResourceRef<'_>) -> Result<(), OpError> {
    let inbound = ctx.current.inbound;
    let (Some(arrival), Some(remaining)) = (inbound.arrival_ns, inbound.remaining_deadline_ns)
    else {
        return Ok(());
    };
    let elapsed = ctx.time.now_ns.saturating_sub(arrival);
    if elapsed < remaining {
        return Ok(());
    }
    Err(OpError::new(
        OpErrorKind::Timeout,
        "deadline.expired",
        format!(
            "the sender's deadline budget of {remaining} ns ran out: {elapsed} ns passed since \
             arrival; give the request a longer deadline or answer sooner"
        ),
    ))
}

fn gate_error(error: GateError) -> OpError {
    let (kind, reason) = match &error {
        GateError::Exhausted { .. } => (OpErrorKind::Refused, "limit.exhausted"),
        GateError::TooManyNames { .. } => (OpErrorKind::ResourceExhausted, "limit.too_many_names"),
        GateError::NotHeld { .. } => (OpErrorKind::Failed, "limit.not_held"),
    };
    OpError::new(kind, reason, error.to_string())
}

fn serialize_error(error: SerializeQueueError) -> OpError {
    let reason = match &error.reason {
        SerializeQueueRefusal::QueueFull { .. } => "serialize.queue_full",
        SerializeQueueRefusal::TooManyQueues { .. } => "serialize.too_many_queues",
        SerializeQueueRefusal::NameTooLong { .. } => "serialize.name_too_long",
    };
    OpError::new(
        OpErrorKind::ResourceExhausted,
        reason,
        format!(
            "enqueue refused, the value was dropped (counted in the queue stats): {}",
            error.reason
        ),
    )
}

fn hold_error(error: HoldTableError) -> OpError {
    let reason = match &error.reason {
        HoldTableRefusal::TableFull { .. } => "hold.table_full",
        HoldTableRefusal::NameTooLong { .. } => "hold.name_too_long",
    };
    OpError::new(
        OpErrorKind::ResourceExhausted,
        reason,
        format!(
            "stash refused, the value was dropped (counted in the table stats): {}",
            error.reason
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::{CORRELATE_TAG_REQ_ID, CORRELATE_TAG_VALUE};
    use crate::component::OpErrorKind;
    use crate::framework::{HoldTableConfig, LatchConfig, SerializeQueueConfig};
    use crate::framework_state::FrameworkConfig;
    use crate::ids::ExecId;
    use crate::resource::InboundCtx;
    use crate::syscall::test_rig::{inputs, op, Rig, WithAttr};
    use crate::syscall::Syscall;
    use crate::value::{Composite, Trigger, U64Value};

    fn parse(node: crate::graph::OpNode) -> Syscall {
        Syscall::parse(&node).unwrap()
    }

    #[test]
    fn any_passes_the_first_arrival_of_a_group_per_execution() {
        let any = parse(op("Any", 1, 1).with("group", "race"));
        let mut rig = Rig::new();
        let first = rig.run(&any, 0, inputs([U64Value(1)]), 1).unwrap();
        assert_eq!(first.values::<U64Value>(), vec![U64Value(1)]);
        rig.op_ref = crate::ids::OpRef::new(crate::ids::SiteId::new(1), 4);
        let loser = rig.run(&any, 0, inputs([U64Value(2)]), 1).unwrap();
        assert!(
            loser.outputs.is_empty(),
            "a later branch of the group writes nothing"
        );
        rig.exec = ExecId::new(10);
        let fresh = rig.run(&any, 0, inputs([U64Value(3)]), 1).unwrap();
        assert_eq!(fresh.values::<U64Value>(), vec![U64Value(3)]);
        assert_eq!(rig.handle(0).syscall.any_latches.stats().suppressed, 1);
        assert!(Syscall::parse(&op("Any", 1, 1)).is_err());
    }

    #[test]
    fn any_reports_full_latches_and_long_groups() {
        let config = FrameworkConfig {
            latches: LatchConfig {
                max_latches: 1,
                max_key_len: 4,
            },
            ..FrameworkConfig::default()
        };
        let mut rig = Rig::with_config(&config);
        rig.run(
            &parse(op("Any", 1, 1).with("group", "a")),
            0,
            inputs([Trigger]),
            1,
        )
        .unwrap();
        let err = rig
            .run(
                &parse(op("Any", 1, 1).with("group", "b")),
                0,
                inputs([Trigger]),
                1,
            )
            .unwrap_err();
        assert_eq!(
            (err.kind, err.reason.as_ref()),
            (OpErrorKind::ResourceExhausted, "latch.full")
        );
        let err = rig
            .run(
                &parse(op("Any", 1, 1).with("group", "toolong")),
                0,
                inputs([Trigger]),
                1,
            )
            .unwrap_err();
        assert_eq!(err.reason, "latch.key_too_long");
    }

    #[test]
    fn deadline_check_fails_once_the_budget_has_run_out() {
        let check = parse(op("DeadlineCheck", 1, 1));
        let mut rig = Rig::new();
        // No inbound context: always passes.
        let out = rig.run(&check, u64::MAX, inputs([U64Value(1)]), 1).unwrap();
        assert_eq!(out.outputs.len(), 1);
        rig.inbound = InboundCtx {
            arrival_ns: Some(1_000),
            remaining_deadline_ns: Some(50),
            ..InboundCtx::default()
        };
        let out = rig.run(&check, 1_049, inputs([U64Value(2)]), 1).unwrap();
        assert_eq!(out.values::<U64Value>(), vec![U64Value(2)]);
        let err = rig
            .run(&check, 1_050, inputs([U64Value(3)]), 1)
            .unwrap_err();
        assert_eq!(
            (err.kind, err.reason.as_ref()),
            (OpErrorKind::Timeout, "deadline.expired")
        );
        rig.inbound.remaining_deadline_ns = Some(0);
        assert!(rig.run(&check, 1_000, inputs([U64Value(4)]), 1).is_err());
        assert!(Syscall::parse(&op("DeadlineCheck", 0, 1)).is_err());
    }

    #[test]
    fn limit_acquire_and_release_track_permits() {
        let acquire = parse(
            op("Limit.Acquire", 1, 1)
                .with("name", "p")
                .with("limit", 2i64),
        );
        let release = parse(op("Limit.Release", 1, 1).with("name", "p"));
        let mut rig = Rig::new();
        for i in 0..2 {
            let out = rig.run(&acquire, 0, inputs([U64Value(i)]), 1).unwrap();
            assert_eq!(out.values::<U64Value>(), vec![U64Value(i)]);
        }
        let err = rig.run(&acquire, 0, inputs([U64Value(9)]), 1).unwrap_err();
        assert_eq!(
            (err.kind, err.reason.as_ref()),
            (OpErrorKind::Refused, "limit.exhausted")
        );
        let out = rig.run(&release, 0, inputs([U64Value(5)]), 1).unwrap();
        assert_eq!(out.values::<U64Value>(), vec![U64Value(5)]);
        assert_eq!(rig.handle(0).peers.gate.in_use("p"), 1);
        rig.run(&acquire, 0, inputs([U64Value(6)]), 1).unwrap();
        rig.run(&release, 0, inputs([Trigger]), 1).unwrap();
        rig.run(&release, 0, inputs([Trigger]), 1).unwrap();
        let err = rig.run(&release, 0, inputs([Trigger]), 1).unwrap_err();
        assert_eq!(
            (err.kind, err.reason.as_ref()),
            (OpErrorKind::Failed, "limit.not_held")
        );
    }

    #[test]
    fn limit_name_table_cap_and_attributes_are_typed() {
        let config = FrameworkConfig {
            peer_gate_max_names: 0,
            ..FrameworkConfig::default()
        };
        let acquire = parse(
            op("Limit.Acquire", 1, 1)
                .with("name", "p")
                .with("limit", 1i64),
        );
        let err = Rig::with_config(&config)
            .run(&acquire, 0, inputs([Trigger]), 1)
            .unwrap_err();
        assert_eq!(err.reason, "limit.too_many_names");
        assert!(Syscall::parse(&op("Limit.Acquire", 1, 1).with("name", "p")).is_err());
        let zero = op("Limit.Acquire", 1, 1)
            .with("name", "p")
            .with("limit", 0i64);
        assert!(Syscall::parse(&zero).is_err());
        assert!(Syscall::parse(&op("Limit.Release", 1, 1)).is_err());
    }

    #[test]
    fn correlate_tag_carries_the_inbound_token_when_there_is_one() {
        let tag = parse(op("CorrelateTag", 1, 1));
        let mut rig = Rig::new();
        let out = rig.run(&tag, 0, inputs([U64Value(4)]), 1).unwrap();
        let plain = out.values::<Composite>().remove(0);
        assert_eq!(plain.len(), 1);
        assert!(plain.get(CORRELATE_TAG_REQ_ID).is_none());
        rig.inbound.wire_req_id = Some(77);
        let out = rig.run(&tag, 0, inputs([U64Value(4)]), 1).unwrap();
        let tagged = out.values::<Composite>().remove(0);
        assert!(tagged
            .get(CORRELATE_TAG_REQ_ID)
            .unwrap()
            .eq_value(&U64Value(77)));
        assert!(tagged
            .get(CORRELATE_TAG_VALUE)
            .unwrap()
            .eq_value(&U64Value(4)));
    }

    #[test]
    fn serialize_queue_is_fifo_and_empty_dequeues_write_nothing() {
        let enqueue = parse(op("Serialize.Enqueue", 1, 1).with("queue", "q"));
        let sink = parse(op("Serialize.Enqueue", 1, 0).with("queue", "q"));
        let dequeue = parse(op("Serialize.Dequeue", 1, 1).with("queue", "q"));
        let mut rig = Rig::new();
        let out = rig.run(&enqueue, 0, inputs([U64Value(1)]), 1).unwrap();
        assert_eq!(out.values::<Trigger>(), vec![Trigger]);
        let out = rig.run(&sink, 0, inputs([U64Value(2)]), 0).unwrap();
        assert!(out.outputs.is_empty());
        for expected in [1, 2] {
            let out = rig.run(&dequeue, 0, inputs([Trigger]), 1).unwrap();
            assert_eq!(out.values::<U64Value>(), vec![U64Value(expected)]);
        }
        let out = rig.run(&dequeue, 0, inputs([Trigger]), 1).unwrap();
        assert!(out.outputs.is_empty());
        assert_eq!(
            rig.handle(0).syscall.serialize_queue.stats().dequeue_misses,
            1
        );
    }

    #[test]
    fn serialize_refusal_is_typed_and_counted() {
        let config = FrameworkConfig {
            serialize_queue: SerializeQueueConfig {
                max_depth: 1,
                ..SerializeQueueConfig::default()
            },
            ..FrameworkConfig::default()
        };
        let enqueue = parse(op("Serialize.Enqueue", 1, 1).with("queue", "q"));
        let mut rig = Rig::with_config(&config);
        rig.run(&enqueue, 0, inputs([U64Value(1)]), 1).unwrap();
        let err = rig.run(&enqueue, 0, inputs([U64Value(2)]), 1).unwrap_err();
        assert_eq!(
            (err.kind, err.reason.as_ref()),
            (OpErrorKind::ResourceExhausted, "serialize.queue_full")
        );
        assert!(err.detail.contains("dropped"), "{}", err.detail);
        let ctx = rig.handle(0);
        assert_eq!(ctx.syscall.serialize_queue.stats().refused_queue_full, 1);
        assert_eq!(ctx.syscall.serialize_queue.len("q"), 1);
        assert!(Syscall::parse(&op("Serialize.Enqueue", 1, 2).with("queue", "q")).is_err());
        assert!(Syscall::parse(&op("Serialize.Dequeue", 1, 1)).is_err());
    }

    #[test]
    fn hold_stash_replaces_and_flush_empties_the_slot() {
        let stash = parse(op("Hold.Stash", 1, 1).with("slot", "s"));
        let flush = parse(op("Hold.Flush", 1, 1).with("slot", "s"));
        let mut rig = Rig::new();
        rig.run(&stash, 0, inputs([U64Value(1)]), 1).unwrap();
        let out = rig.run(&stash, 0, inputs([U64Value(2)]), 1).unwrap();
        assert_eq!(out.values::<Trigger>(), vec![Trigger]);
        assert_eq!(rig.handle(0).syscall.hold_table.stats().replaced, 1);
        let out = rig.run(&flush, 0, inputs([Trigger]), 1).unwrap();
        assert_eq!(out.values::<U64Value>(), vec![U64Value(2)]);
        let out = rig.run(&flush, 0, inputs([Trigger]), 1).unwrap();
        assert!(out.outputs.is_empty());
        assert_eq!(rig.handle(0).syscall.hold_table.stats().flush_misses, 1);
    }

    #[test]
    fn hold_refusal_is_typed_and_counted() {
        let config = FrameworkConfig {
            hold_table: HoldTableConfig {
                max_slots: 0,
                ..HoldTableConfig::default()
            },
            ..FrameworkConfig::default()
        };
        let stash = parse(op("Hold.Stash", 1, 0).with("slot", "s"));
        let mut rig = Rig::with_config(&config);
        let err = rig.run(&stash, 0, inputs([U64Value(1)]), 0).unwrap_err();
        assert_eq!(err.reason, "hold.table_full");
        assert_eq!(
            rig.handle(0).syscall.hold_table.stats().refused_table_full,
            1
        );
        assert!(Syscall::parse(&op("Hold.Flush", 1, 0).with("slot", "s")).is_err());
    }
}
