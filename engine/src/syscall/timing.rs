//! The clock, timer and randomness syscalls: `Clock`, `Sleep`, `After`,
//! `RngU64` and `DeadlineMatch` (table on [`TimingSyscall`]).
//!
//! Invariants: time comes only from the handle's `now_ns`; `Sleep` and
//! `After` park on a fresh command id whose completion is held by the
//! engine until a timer at `now + delay` (saturating) matures, so a delay
//! never wraps around into the past.

use crate::component::{DispatchResult, OpError, OpErrorKind, OpInputs, OpOutputs};
use crate::resource::RuntimeResourceRef;
use crate::syscall::parse::{Count, OpSpec};
use crate::syscall::{latch_error, take_input, SyscallParseError};
use crate::value::{SlotValue, Trigger, U64Value};

/// Clock, timer and randomness syscalls.
///
/// | op type         | inputs                 | outputs | attributes                   | behaviour | errors |
/// |-----------------|------------------------|---------|------------------------------|-----------|--------|
/// | `Clock`         | 0 or 1 (any, ignored)  | 1       | —                            | emits `U64Value(now_ns)` | — |
/// | `Sleep`         | 1                      | 1       | `duration_ns`: int ≥ 0       | parks; after `duration_ns` emits its input unchanged ([`DispatchResult::Async`]) | `ResourceExhausted` `timers.full`, `command_id.exhausted` |
/// | `After`         | 1 (any, dropped)       | 1       | `delay_ns`: int ≥ 0          | parks; after `delay_ns` emits a [`Trigger`] | as `Sleep` |
/// | `RngU64`        | 0 or 1 (any, ignored)  | 1       | `bound`: optional int ≥ 1    | emits `U64Value` from the Node's seeded RNG, uniform in `0..bound` when `bound` is given | — |
/// | `DeadlineMatch` | 1                      | 1       | `deadline_ns`: int ≥ 0       | passes its input if it arrives within `deadline_ns` of the execution's inbound `arrival_ns` (inclusive; always on time without inbound context) and is the first on-time arrival of this op in this execution; a late or repeated arrival writes nothing | `ResourceExhausted` `latch.full` |
///
/// `DeadlineMatch` details: a late arrival is judged before the latch is
/// consulted, so it does not use up the latch; the latch is held per
/// (op, execution) in `ctx.syscall.deadline_match` and counts repeated
/// arrivals as `suppressed` in its stats. A clock that reads earlier than
/// `arrival_ns` counts as zero elapsed time.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TimingSyscall {
    /// `Clock`: the cycle's time.
    Clock,
    /// `Sleep`: delays its input.
    Sleep {
        /// How long to hold the value, in nanoseconds.
        duration_ns: u64,
    },
    /// `After`: a trigger some time after its input arrives.
    After {
        /// How long to wait, in nanoseconds.
        delay_ns: u64,
    },
    /// `RngU64`: a random number.
    RngU64 {
        /// Exclusive upper bound (at least 1), or the full `u64` range.
        bound: Option<u64>,
    },
    /// `DeadlineMatch`: the first on-time arrival passes.
    DeadlineMatch {
        /// Allowed time since the execution's inbound arrival, in nanoseconds.
        deadline_ns: u64,
    },
}

impl TimingSyscall {
    /// Parses a timing op; `None` when `spec` is not one.
    pub(super) fn parse(spec: &OpSpec<'_>) -> Option<Result<Self, SyscallParseError>> {
        let parsed = match spec.op_type() {
            "Clock" => ports(spec, Count::ZeroOrOne).map(|()| Self::Clock),
            "Sleep" => ports(spec, Count::One).and_then(|()| {
                Ok(Self::Sleep {
                    duration_ns: spec.non_negative("duration_ns")?,
                })
            }),
            "After" => ports(spec, Count::One).and_then(|()| {
                Ok(Self::After {
                    delay_ns: spec.non_negative("delay_ns")?,
                })
            }),
            "RngU64" => ports(spec, Count::ZeroOrOne).and_then(|()| {
                let bound = spec.optional_non_negative("bound")?;
                if bound == Some(0) {
                    return Err(spec.attribute_error("bound", "is 0; must be at least 1"));
                }
                Ok(Self::RngU64 { bound })
            }),
            "DeadlineMatch" => ports(spec, Count::One).and_then(|()| {
                Ok(Self::DeadlineMatch {
                    deadline_ns: spec.non_negative("deadline_ns")?,
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
        let now_ns = ctx.time.now_ns;
        match *self {
            Self::Clock => outputs.push(Box::new(U64Value(now_ns)))?,
            Self::Sleep { duration_ns } => {
                let value = take_input(inputs, 0)?;
                return park(ctx, duration_ns, value);
            }
            Self::After { delay_ns } => {
                take_input(inputs, 0)?;
                return park(ctx, delay_ns, Box::new(Trigger));
            }
            Self::RngU64 { bound } => {
                let value = match bound {
                    // Parse refuses a zero bound, so `next_below` cannot fail.
                    Some(bound) => ctx.syscall.rng.next_below(bound).unwrap_or(0),
                    None => ctx.syscall.rng.next_u64(),
                };
                outputs.push(Box::new(U64Value(value)))?;
            }
            Self::DeadlineMatch { deadline_ns } => {
                let value = take_input(inputs, 0)?;
                let on_time = ctx
                    .current
                    .inbound
                    .arrival_ns
                    .is_none_or(|arrival| now_ns.saturating_sub(arrival) <= deadline_ns);
                if !on_time {
                    return Ok(DispatchResult::Immediate);
                }
                let (op, exec) = (ctx.current.op_ref, ctx.current.exec_id);
                if ctx
                    .syscall
                    .deadline_match
                    .try_fire(op, exec)
                    .map_err(latch_error)?
                {
                    outputs.push(value)?;
                }
            }
        }
        Ok(DispatchResult::Immediate)
    }
}

fn ports(spec: &OpSpec<'_>, inputs: Count) -> Result<(), SyscallParseError> {
    spec.inputs(inputs)?;
    spec.outputs(Count::One)
}

/// Parks the op and completes it with `value` on its output at `now + delay_ns`.
fn park(
    ctx: &mut RuntimeResourceRef<'_>,
    delay_ns: u64,
    value: Box<dyn SlotValue>,
) -> Result<DispatchResult, OpError> {
    let Some(output) = ctx.current.outputs.first().cloned() else {
        return Err(OpError::new(
            OpErrorKind::Internal,
            "syscall.no_output_name",
            "the engine passed no output name for a timer op that declares one",
        ));
    };
    let cmd = ctx.allocate_command_id()?;
    let due_ns = ctx.time.now_ns.saturating_add(delay_ns);
    ctx.complete_command_at(cmd, due_ns, vec![(output, value)])?;
    Ok(DispatchResult::Async(cmd))
}

#[cfg(test)]
mod tests {
    use crate::component::{DispatchResult, OpErrorKind};
    use crate::framework::{LatchConfig, RngU64Source, SeededRng};
    use crate::framework_state::FrameworkConfig;
    use crate::ids::{CommandId, ExecId, IdCounter};
    use crate::resource::{InboundCtx, TimerEvent};
    use crate::syscall::test_rig::{inputs, op, Rig, WithAttr};
    use crate::syscall::{Syscall, SyscallParseError};
    use crate::value::{BytesValue, Trigger, U64Value};

    fn no_inputs() -> Vec<Option<Box<dyn crate::value::SlotValue>>> {
        Vec::new()
    }

    #[test]
    fn clock_reads_the_cycle_time_with_or_without_a_trigger() {
        let clock = Syscall::parse(&op("Clock", 0, 1)).unwrap();
        let mut rig = Rig::new();
        let out = rig.run(&clock, 1_234, no_inputs(), 1).unwrap();
        assert_eq!(out.values::<U64Value>(), vec![U64Value(1_234)]);
        let clock = Syscall::parse(&op("Clock", 1, 1)).unwrap();
        let out = rig.run(&clock, u64::MAX, inputs([Trigger]), 1).unwrap();
        assert_eq!(out.values::<U64Value>(), vec![U64Value(u64::MAX)]);
        assert!(Syscall::parse(&op("Clock", 2, 1)).is_err());
        assert!(Syscall::parse(&op("Clock", 0, 0)).is_err());
    }

    #[test]
    fn sleep_parks_and_completes_with_its_input_at_the_due_time() {
        let sleep = Syscall::parse(&op("Sleep", 1, 1).with("duration_ns", 500i64)).unwrap();
        let mut rig = Rig::new();
        let out = rig
            .run(&sleep, 1_000, inputs([BytesValue::copy_from(b"x")]), 1)
            .unwrap();
        assert_eq!(out.result, DispatchResult::Async(CommandId::new(1)));
        assert!(out.outputs.is_empty(), "a parked op writes nothing now");
        let held = &rig.completions[0];
        assert_eq!((held.cmd_id, held.due_ns), (CommandId::new(1), Some(1_500)));
        assert_eq!(held.results[0].0, "out0");
        assert!(held.results[0].1.eq_value(&BytesValue::copy_from(b"x")));
        let timer = rig.framework.scheduler().pop_due(1_500).unwrap();
        assert_eq!(
            timer.payload,
            TimerEvent::Resume {
                cmd: CommandId::new(1)
            }
        );
    }

    #[test]
    fn after_completes_with_a_trigger_and_saturates_the_due_time() {
        let after = Syscall::parse(&op("After", 1, 1).with("delay_ns", i64::MAX)).unwrap();
        let mut rig = Rig::new();
        rig.run(&after, u64::MAX - 1, inputs([U64Value(1)]), 1)
            .unwrap();
        let held = &rig.completions[0];
        assert_eq!(held.due_ns, Some(u64::MAX));
        assert!(held.results[0].1.is::<Trigger>());
    }

    #[test]
    fn timer_ops_report_full_timers_and_exhausted_ids() {
        let config = FrameworkConfig {
            scheduler_capacity: 0,
            ..FrameworkConfig::default()
        };
        let sleep = Syscall::parse(&op("Sleep", 1, 1).with("duration_ns", 1i64)).unwrap();
        let mut rig = Rig::with_config(&config);
        let err = rig.run(&sleep, 0, inputs([U64Value(1)]), 1).unwrap_err();
        assert_eq!(
            (err.kind, err.reason.as_ref()),
            (OpErrorKind::ResourceExhausted, "timers.full")
        );
        assert!(rig.completions.is_empty());

        let mut rig = Rig::new();
        rig.ids = IdCounter::starting_at(u64::MAX);
        let err = rig.run(&sleep, 0, inputs([U64Value(1)]), 1).unwrap_err();
        assert_eq!(err.reason, "command_id.exhausted");
    }

    #[test]
    fn timer_attributes_are_checked_at_install() {
        assert!(Syscall::parse(&op("Sleep", 1, 1)).is_err());
        assert!(Syscall::parse(&op("Sleep", 1, 1).with("duration_ns", -1i64)).is_err());
        assert!(Syscall::parse(&op("After", 0, 1).with("delay_ns", 1i64)).is_err());
        assert!(Syscall::parse(&op("After", 1, 1).with("delay_ns", "soon")).is_err());
    }

    #[test]
    fn rng_follows_the_seeded_sequence_and_honours_the_bound() {
        let rng = Syscall::parse(&op("RngU64", 0, 1)).unwrap();
        let mut rig = Rig::new();
        let mut expected = SeededRng::new(0);
        let out = rig.run(&rng, 0, no_inputs(), 1).unwrap();
        assert_eq!(
            out.values::<U64Value>(),
            vec![U64Value(expected.next_u64())]
        );

        let bounded = Syscall::parse(&op("RngU64", 1, 1).with("bound", 3i64)).unwrap();
        for _ in 0..50 {
            let out = rig.run(&bounded, 0, inputs([Trigger]), 1).unwrap();
            assert!(out.values::<U64Value>()[0].0 < 3);
        }
        let bound_one = Syscall::parse(&op("RngU64", 0, 1).with("bound", 1i64)).unwrap();
        let out = rig.run(&bound_one, 0, no_inputs(), 1).unwrap();
        assert_eq!(out.values::<U64Value>(), vec![U64Value(0)]);
        let err = Syscall::parse(&op("RngU64", 0, 1).with("bound", 0i64)).unwrap_err();
        assert!(matches!(err, SyscallParseError::Attribute { .. }));
    }

    fn deadline_match(deadline_ns: i64) -> Syscall {
        Syscall::parse(&op("DeadlineMatch", 1, 1).with("deadline_ns", deadline_ns)).unwrap()
    }

    #[test]
    fn deadline_match_passes_the_first_on_time_arrival_only() {
        let matcher = deadline_match(100);
        let mut rig = Rig::new();
        rig.inbound = InboundCtx {
            arrival_ns: Some(1_000),
            ..InboundCtx::default()
        };
        // Exactly at the deadline is on time.
        let out = rig.run(&matcher, 1_100, inputs([U64Value(1)]), 1).unwrap();
        assert_eq!(out.values::<U64Value>(), vec![U64Value(1)]);
        // A repeat in the same execution writes nothing.
        let out = rig.run(&matcher, 1_050, inputs([U64Value(2)]), 1).unwrap();
        assert!(out.outputs.is_empty());
        assert_eq!(rig.handle(0).syscall.deadline_match.stats().suppressed, 1);
        // Another execution has its own latch.
        rig.exec = ExecId::new(10);
        let out = rig.run(&matcher, 1_000, inputs([U64Value(3)]), 1).unwrap();
        assert_eq!(out.values::<U64Value>(), vec![U64Value(3)]);
    }

    #[test]
    fn deadline_match_drops_late_arrivals_without_using_the_latch() {
        let matcher = deadline_match(100);
        let mut rig = Rig::new();
        rig.inbound.arrival_ns = Some(1_000);
        let out = rig.run(&matcher, 1_101, inputs([U64Value(1)]), 1).unwrap();
        assert!(out.outputs.is_empty(), "one nanosecond late writes nothing");
        assert!(rig.handle(0).syscall.deadline_match.is_empty());
        // A clock behind the arrival counts as no time elapsed.
        let out = rig.run(&matcher, 10, inputs([U64Value(2)]), 1).unwrap();
        assert_eq!(out.values::<U64Value>(), vec![U64Value(2)]);
    }

    #[test]
    fn deadline_match_without_inbound_context_is_always_on_time() {
        let matcher = deadline_match(0);
        let mut rig = Rig::new();
        let out = rig
            .run(&matcher, u64::MAX, inputs([U64Value(1)]), 1)
            .unwrap();
        assert_eq!(out.outputs.len(), 1);
    }

    #[test]
    fn deadline_match_reports_a_full_latch_table() {
        let config = FrameworkConfig {
            latches: LatchConfig {
                max_latches: 0,
                ..LatchConfig::default()
            },
            ..FrameworkConfig::default()
        };
        let mut rig = Rig::with_config(&config);
        let err = rig
            .run(&deadline_match(5), 0, inputs([U64Value(1)]), 1)
            .unwrap_err();
        assert_eq!(
            (err.kind, err.reason.as_ref()),
            (OpErrorKind::ResourceExhausted, "latch.full")
        );
    }
}
