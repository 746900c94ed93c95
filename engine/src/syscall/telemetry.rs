//! The telemetry syscalls: `AppEmit`, `AppNotify`, `Record` and
//! `IncrMetric` (table on [`TelemetrySyscall`]).
//!
//! Invariants: each takes exactly one input and declares at most one
//! output, which (when declared) receives the input unchanged; a value
//! that is both kept and passed on is cloned once (values are cheap to
//! clone), otherwise moved.

use crate::component::{DispatchResult, OpError, OpErrorKind, OpInputs, OpOutputs};
use crate::framework::{CounterError, RecordError};
use crate::resource::{AppOutput, AppOutputKind, RuntimeResourceRef};
use crate::syscall::parse::{Count, OpSpec};
use crate::syscall::{pass_optional, take_input, SyscallParseError};
use crate::value::SlotValue;

/// App-facing outputs, recorded values and metrics.
///
/// | op type      | inputs | outputs | attributes                              | behaviour | errors |
/// |--------------|--------|---------|-----------------------------------------|-----------|--------|
/// | `AppEmit`    | 1      | 0 or 1  | `name`: string                          | pushes an [`AppOutput`] of kind [`AppOutputKind::Emit`] (exec, op, name, value) for the host; passes the input on if it declares an output | — |
/// | `AppNotify`  | 1      | 0 or 1  | `name`: string                          | as `AppEmit` with kind [`AppOutputKind::Notify`] | — |
/// | `Record`     | 1      | 0 or 1  | `name`: string                          | appends the input with `now_ns` to the record ring `name` (a full ring overwrites its oldest value, counted); passes it on | `ResourceExhausted` `record.too_many_names` |
/// | `IncrMetric` | 1 (any) | 0 or 1 | `name`: string, `by`: int ≥ 0, default 1 | adds `by` to counter `name` (saturating, counted); passes the input on | `ResourceExhausted` `metric.too_many_names` |
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TelemetrySyscall {
    /// `AppEmit` / `AppNotify`: hands a value to the host.
    App {
        /// Emit or notify.
        kind: AppOutputKind,
        /// The output's name.
        name: String,
    },
    /// `Record`: keeps the value in a named ring.
    Record {
        /// The ring name.
        name: String,
    },
    /// `IncrMetric`: bumps a named counter.
    IncrMetric {
        /// The counter name.
        name: String,
        /// The increment.
        by: u64,
    },
}

impl TelemetrySyscall {
    /// Parses a telemetry op; `None` when `spec` is not one.
    pub(super) fn parse(spec: &OpSpec<'_>) -> Option<Result<Self, SyscallParseError>> {
        let kind = match spec.op_type() {
            "AppEmit" => Some(AppOutputKind::Emit),
            "AppNotify" => Some(AppOutputKind::Notify),
            "Record" | "IncrMetric" => None,
            _ => return None,
        };
        let parsed = ports(spec).and_then(|()| {
            let name = spec.name("name")?;
            if let Some(kind) = kind {
                return Ok(Self::App { kind, name });
            }
            if spec.op_type() == "Record" {
                return Ok(Self::Record { name });
            }
            let by = spec.optional_non_negative("by")?.unwrap_or(1);
            Ok(Self::IncrMetric { name, by })
        });
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
            Self::App { kind, name } => {
                let (kept, passed) = split(value, outputs);
                ctx.syscall.pending_app_events.push(AppOutput {
                    exec: ctx.current.exec_id,
                    op: ctx.current.op_ref,
                    kind: *kind,
                    name: name.clone(),
                    value: kept,
                });
                pass(outputs, passed)?;
            }
            Self::Record { name } => {
                let (kept, passed) = split(value, outputs);
                let now_ns = ctx.time.now_ns;
                ctx.syscall
                    .record_buffer
                    .record(name, kept, now_ns)
                    .map_err(record_error)?;
                pass(outputs, passed)?;
            }
            Self::IncrMetric { name, by } => {
                ctx.syscall
                    .counters
                    .incr(name, *by)
                    .map_err(counter_error)?;
                pass_optional(outputs, value)?;
            }
        }
        Ok(DispatchResult::Immediate)
    }
}

fn ports(spec: &OpSpec<'_>) -> Result<(), SyscallParseError> {
    spec.inputs(Count::One)?;
    spec.outputs(Count::ZeroOrOne)
}

/// The value to keep, plus a copy to pass on when an output is declared.
fn split(
    value: Box<dyn SlotValue>,
    outputs: &OpOutputs<'_>,
) -> (Box<dyn SlotValue>, Option<Box<dyn SlotValue>>) {
    if outputs.declared() == 0 {
        return (value, None);
    }
    let copy = value.clone_value();
    (value, Some(copy))
}

fn pass(outputs: &mut OpOutputs<'_>, value: Option<Box<dyn SlotValue>>) -> Result<(), OpError> {
    match value {
        Some(value) => outputs.push(value),
        None => Ok(()),
    }
}

fn record_error(error: RecordError) -> OpError {
    OpError::new(
        OpErrorKind::ResourceExhausted,
        "record.too_many_names",
        error.to_string(),
    )
}

fn counter_error(error: CounterError) -> OpError {
    OpError::new(
        OpErrorKind::ResourceExhausted,
        "metric.too_many_names",
        error.to_string(),
    )
}

#[cfg(test)]
mod tests {
    use crate::component::OpErrorKind;
    use crate::framework_state::FrameworkConfig;
    use crate::resource::AppOutputKind;
    use crate::syscall::test_rig::{inputs, op, Rig, WithAttr};
    use crate::syscall::Syscall;
    use crate::value::{Trigger, U64Value};

    fn parse(node: crate::graph::OpNode) -> Syscall {
        Syscall::parse(&node).unwrap()
    }

    #[test]
    fn app_emit_and_notify_queue_app_outputs_and_optionally_pass_through() {
        let emit = parse(op("AppEmit", 1, 1).with("name", "result"));
        let notify = parse(op("AppNotify", 1, 0).with("name", "done"));
        let mut rig = Rig::new();
        let out = rig.run(&emit, 0, inputs([U64Value(5)]), 1).unwrap();
        assert_eq!(out.values::<U64Value>(), vec![U64Value(5)]);
        let out = rig.run(&notify, 0, inputs([Trigger]), 0).unwrap();
        assert!(out.outputs.is_empty());
        let events: Vec<_> = rig.framework.drain_app_outputs().collect();
        assert_eq!(events.len(), 2);
        assert_eq!(
            (
                events[0].kind,
                events[0].name.as_str(),
                events[0].exec,
                events[0].op
            ),
            (AppOutputKind::Emit, "result", rig.exec, rig.op_ref)
        );
        assert!(events[0].value.eq_value(&U64Value(5)));
        assert_eq!(
            (events[1].kind, events[1].name.as_str()),
            (AppOutputKind::Notify, "done")
        );
        assert!(Syscall::parse(&op("AppEmit", 1, 2).with("name", "x")).is_err());
        assert!(Syscall::parse(&op("AppEmit", 1, 1)).is_err());
    }

    #[test]
    fn record_keeps_values_with_their_time() {
        let record = parse(op("Record", 1, 1).with("name", "lat"));
        let mut rig = Rig::new();
        let out = rig.run(&record, 42, inputs([U64Value(9)]), 1).unwrap();
        assert_eq!(out.values::<U64Value>(), vec![U64Value(9)]);
        let ctx = rig.handle(0);
        let kept: Vec<_> = ctx.syscall.record_buffer.iter("lat").collect();
        assert_eq!(kept.len(), 1);
        assert_eq!(kept[0].recorded_at_ns, 42);
        assert!(kept[0].value.eq_value(&U64Value(9)));
    }

    #[test]
    fn record_name_cap_is_typed() {
        let config = FrameworkConfig {
            record_max_names: 0,
            ..FrameworkConfig::default()
        };
        let record = parse(op("Record", 1, 0).with("name", "lat"));
        let err = Rig::with_config(&config)
            .run(&record, 0, inputs([U64Value(1)]), 0)
            .unwrap_err();
        assert_eq!(
            (err.kind, err.reason.as_ref()),
            (OpErrorKind::ResourceExhausted, "record.too_many_names")
        );
    }

    #[test]
    fn incr_metric_adds_by_with_a_default_of_one() {
        let once = parse(op("IncrMetric", 1, 0).with("name", "hits"));
        let many = parse(
            op("IncrMetric", 1, 1)
                .with("name", "hits")
                .with("by", 10i64),
        );
        let mut rig = Rig::new();
        rig.run(&once, 0, inputs([Trigger]), 0).unwrap();
        let out = rig.run(&many, 0, inputs([U64Value(3)]), 1).unwrap();
        assert_eq!(out.values::<U64Value>(), vec![U64Value(3)]);
        assert_eq!(rig.handle(0).syscall.counters.value("hits"), Some(11));
        let negative = op("IncrMetric", 1, 0).with("name", "x").with("by", -1i64);
        assert!(Syscall::parse(&negative).is_err());
        assert!(Syscall::parse(&op("IncrMetric", 0, 0).with("name", "x")).is_err());
    }

    #[test]
    fn incr_metric_name_cap_is_typed() {
        let config = FrameworkConfig {
            metric_max_names: 0,
            ..FrameworkConfig::default()
        };
        let incr = parse(op("IncrMetric", 1, 0).with("name", "hits"));
        let mut rig = Rig::with_config(&config);
        let err = rig.run(&incr, 0, inputs([Trigger]), 0).unwrap_err();
        assert_eq!(err.reason, "metric.too_many_names");
        assert_eq!(rig.handle(0).syscall.counters.stats().refused_names, 1);
    }
}
