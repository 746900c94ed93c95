//! Entries the Node starts by itself: trigger sources armed at the first
//! poll, matured timers (ticks, timed completions, deadlines) and bus events
//! routed to their event-source subscribers.

use super::{Completion, DropReason, ExecOrigin, Node, Step};
use crate::bus::NodeEvent;
use crate::component::{OpError, OpErrorKind};
use crate::ids::{ExecId, OpRef};
use crate::resource::TimerEvent;
use crate::syscall::{trigger_value, TriggerSource};
use crate::value::{PeerIdValue, SlotValue};

impl Node {
    pub(super) fn start(&mut self, now_ns: u64) {
        self.started = true;
        for graph in &self.graphs {
            for (op, source) in &graph.sources {
                let op_ref = OpRef::new(graph.site, *op);
                let at = match source {
                    TriggerSource::Interval { period_ns } => {
                        Some(now_ns.saturating_add(*period_ns))
                    }
                    TriggerSource::Pulse { after_ns } => Some(now_ns.saturating_add(*after_ns)),
                    TriggerSource::EventSource { kind } => {
                        if let Err(err) = self.framework.event_source_mut().subscribe(*kind, op_ref)
                        {
                            self.steps.push(Step::OpFailed {
                                exec: ExecId::default(),
                                op: op_ref,
                                error: OpError::new(
                                    OpErrorKind::ResourceExhausted,
                                    "event_source.full",
                                    err.to_string(),
                                ),
                            });
                        }
                        None
                    }
                    TriggerSource::OnTrigger { kind } => {
                        self.on_trigger.entry(*kind).or_default().push(op_ref);
                        None
                    }
                };
                if let Some(at) = at {
                    if self
                        .framework
                        .scheduler()
                        .schedule(at, TimerEvent::Tick { op: op_ref })
                        .is_err()
                    {
                        self.steps.push(Step::OpFailed {
                            exec: ExecId::default(),
                            op: op_ref,
                            error: timers_full(),
                        });
                    }
                }
            }
        }
        self.next_bootstrap();
    }

    pub(super) fn fire_timers(&mut self, now_ns: u64) {
        while let Some(timer) = self.framework.scheduler().pop_due(now_ns) {
            match timer.payload {
                TimerEvent::Resume { cmd } => {
                    if let Some(results) = self.deferred.remove(&cmd) {
                        self.completions.push_back(Completion::Values {
                            cmd,
                            results,
                            charge: None,
                        });
                    }
                }
                TimerEvent::Deadline { cmd } => self.expire(cmd),
                TimerEvent::Tick { op } => {
                    let period = self.source_of(op).and_then(|source| match source {
                        TriggerSource::Interval { period_ns } => Some(*period_ns),
                        _ => None,
                    });
                    if let Some(period) = period {
                        let next = timer.at_ns.saturating_add(period);
                        if self
                            .framework
                            .scheduler()
                            .schedule(next, TimerEvent::Tick { op })
                            .is_err()
                        {
                            self.steps.push(Step::OpFailed {
                                exec: ExecId::default(),
                                op,
                                error: timers_full(),
                            });
                        }
                    }
                    self.start_triggered(op, ExecOrigin::Timer { op }, trigger_value());
                }
                _ => {}
            }
        }
    }

    pub(super) fn route_bus(&mut self, _now_ns: u64) {
        let dropped = self.bus.take_dropped();
        if dropped > 0 {
            self.report_drop(DropReason::BusFull, dropped);
        }
        // Only the events queued when the phase starts: events published
        // while routing wait for the next poll, so one poll stays bounded.
        for _ in 0..self.bus.len() {
            let Some(event) = self.bus.pop() else { break };
            let kind = event.kind();
            let subscribers = self.framework.event_source_mut().subscribers(kind).to_vec();
            for op in subscribers {
                let value: Box<dyn SlotValue> = match &event {
                    NodeEvent::App { value, .. } => value.clone_value(),
                    NodeEvent::PeerWentDown { peer } | NodeEvent::PeerCameUp { peer } => {
                        Box::new(PeerIdValue(*peer))
                    }
                    _ => trigger_value(),
                };
                self.start_triggered(op, ExecOrigin::Bus { kind }, value);
            }
            self.steps.push(Step::Event(event));
        }
    }

    fn source_of(&self, op: OpRef) -> Option<&TriggerSource> {
        self.graphs
            .get(op.site.as_u32() as usize)?
            .sources
            .iter()
            .find(|(index, _)| *index == op.index)
            .map(|(_, source)| source)
    }
}

fn timers_full() -> OpError {
    OpError::new(
        OpErrorKind::ResourceExhausted,
        "timers.full",
        "the Node's timer heap is full",
    )
}
