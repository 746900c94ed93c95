//! Parsing of the trigger-source syscalls `Interval`, `Pulse`,
//! `EventSource` and `OnTrigger` into a [`TriggerSource`] (their table is
//! on [`TriggerSource`]).
//!
//! Invariants: a source declares no input and exactly one output; an
//! `Interval` period is at least 1 ns; an `OnTrigger` kind is a user kind
//! (at least [`EventKind::USER_MIN`]), since built-in kinds never arrive
//! as app events.

use crate::ids::EventKind;
use crate::syscall::parse::{Count, OpSpec};
use crate::syscall::{SyscallParseError, TriggerSource};

/// Parses a trigger source; `None` when `spec` is not one.
pub(super) fn parse(spec: &OpSpec<'_>) -> Option<Result<TriggerSource, SyscallParseError>> {
    let parsed = match spec.op_type() {
        "Interval" => ports(spec).and_then(|()| {
            let period = spec.non_negative("period_ns")?;
            if period == 0 {
                return Err(spec.attribute_error("period_ns", "is 0; must be at least 1"));
            }
            Ok(TriggerSource::Interval { period_ns: period })
        }),
        "Pulse" => ports(spec).and_then(|()| {
            Ok(TriggerSource::Pulse {
                after_ns: spec.non_negative("after_ns")?,
            })
        }),
        "EventSource" => ports(spec).and_then(|()| {
            Ok(TriggerSource::EventSource {
                kind: EventKind::new(spec.u32_at_least("kind", 0)?),
            })
        }),
        "OnTrigger" => ports(spec).and_then(|()| {
            Ok(TriggerSource::OnTrigger {
                kind: EventKind::new(spec.u32_at_least("kind", EventKind::USER_MIN)?),
            })
        }),
        _ => return None,
    };
    Some(parsed)
}

fn ports(spec: &OpSpec<'_>) -> Result<(), SyscallParseError> {
    spec.inputs(Count::Zero)?;
    spec.outputs(Count::One)
}

#[cfg(test)]
mod tests {
    use crate::ids::EventKind;
    use crate::syscall::test_rig::{op, WithAttr};
    use crate::syscall::{Syscall, SyscallParseError, TriggerSource};

    fn source(node: crate::graph::OpNode) -> Result<TriggerSource, SyscallParseError> {
        Syscall::parse(&node).map(|s| s.source().cloned().expect("a trigger source"))
    }

    #[test]
    fn interval_needs_a_positive_period() {
        assert_eq!(
            source(op("Interval", 0, 1).with("period_ns", 5i64)).unwrap(),
            TriggerSource::Interval { period_ns: 5 }
        );
        assert!(source(op("Interval", 0, 1).with("period_ns", 0i64)).is_err());
        assert!(source(op("Interval", 0, 1).with("period_ns", -3i64)).is_err());
        assert!(source(op("Interval", 1, 1).with("period_ns", 5i64)).is_err());
    }

    #[test]
    fn pulse_takes_zero_or_more_nanoseconds() {
        assert_eq!(
            source(op("Pulse", 0, 1).with("after_ns", 0i64)).unwrap(),
            TriggerSource::Pulse { after_ns: 0 }
        );
        assert!(source(op("Pulse", 0, 1).with("after_ns", -1i64)).is_err());
        assert!(source(op("Pulse", 0, 1)).is_err());
        assert!(source(op("Pulse", 0, 2).with("after_ns", 1i64)).is_err());
    }

    #[test]
    fn event_source_accepts_any_u32_kind() {
        assert_eq!(
            source(op("EventSource", 0, 1).with("kind", 1i64)).unwrap(),
            TriggerSource::EventSource {
                kind: EventKind::new(1)
            }
        );
        let too_big = i64::from(u32::MAX) + 1;
        assert!(source(op("EventSource", 0, 1).with("kind", too_big)).is_err());
        assert!(source(op("EventSource", 0, 1).with("kind", -1i64)).is_err());
    }

    #[test]
    fn on_trigger_needs_a_user_kind() {
        let user = i64::from(EventKind::USER_MIN);
        assert_eq!(
            source(op("OnTrigger", 0, 1).with("kind", user)).unwrap(),
            TriggerSource::OnTrigger {
                kind: EventKind::new(EventKind::USER_MIN)
            }
        );
        let err = source(op("OnTrigger", 0, 1).with("kind", user - 1)).unwrap_err();
        assert!(
            matches!(&err, SyscallParseError::Attribute { attribute, .. } if attribute == "kind"),
            "{err:?}"
        );
    }

    #[test]
    fn sources_are_never_dispatched() {
        let syscall = Syscall::parse(&op("Pulse", 0, 1).with("after_ns", 1i64)).unwrap();
        let err = crate::syscall::test_rig::Rig::new()
            .run(&syscall, 0, Vec::new(), 1)
            .unwrap_err();
        assert_eq!(err.reason, "syscall.source_dispatched");
    }
}
