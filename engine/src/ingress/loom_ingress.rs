// std::task::Wake is implemented on std's own Arc, so waker tests name it.
use super::*;
use crate::bus::test_value::TestValue;
use crate::sync::thread;
use crate::sync::Arc;
use std::sync::Arc as StdArc; // sync-facade: allow (std::task::Wake needs std's Arc)

type Breakage = Option<u8>;

fn queue(data_capacity: usize, breakage: Breakage) -> Arc<IngressQueue> {
    let config = IngressConfig {
        data_capacity,
        ..IngressConfig::default()
    };
    let budget = ByteBudget::new(1024);
    #[cfg(nodeflow_loom_broken)]
    if let Some(code) = breakage {
        return Arc::new(IngressQueue::with_breakage(
            config,
            budget,
            breakage_of(code),
        ));
    }
    let _ = breakage;
    Arc::new(IngressQueue::new(config, budget))
}

#[cfg(nodeflow_loom_broken)]
fn breakage_of(code: u8) -> LoomBreakage {
    match code {
        0 => LoomBreakage::DataSlotReservation,
        1 => LoomBreakage::SkipPushFence,
        2 => LoomBreakage::WakerNoRecheck,
        _ => LoomBreakage::SkipInFlightWait,
    }
}

fn app(value: u64) -> IngressEvent {
    IngressEvent::AppEvent {
        kind: EventKind::new(EventKind::USER_MIN),
        value: Box::new(TestValue(value)),
    }
}

fn app_value(event: &IngressEvent) -> Option<u64> {
    match event {
        IngressEvent::AppEvent { value, .. } => value.downcast_ref::<TestValue>().map(|v| v.0),
        _ => None,
    }
}

/// (a) A control producer and a data producer against an owner that
/// pops while they push: the data lane never holds more than its
/// capacity, every accepted event pops exactly once, every refused one
/// comes back, and the slot count returns to zero.
fn lanes(breakage: Breakage) {
    loom::model(move || {
        const CAP: usize = 2;
        let q = queue(CAP, breakage);
        let control = {
            let q = q.clone();
            thread::spawn(move || q.push_control(IngressEvent::Wake).is_ok())
        };
        let data = {
            let q = q.clone();
            thread::spawn(move || {
                let mut accepted = Vec::new();
                for value in 0..3 {
                    match q.push_data(app(value)) {
                        Ok(()) => accepted.push(value),
                        Err(PushError::Full(event)) => {
                            assert_eq!(app_value(&event), Some(value))
                        }
                        Err(PushError::Closed(_)) => panic!("the queue is open"),
                    }
                }
                accepted
            })
        };
        let mut wakes = 0;
        let mut seen = Vec::new();
        let mut take = |event: IngressEvent| match app_value(&event) {
            Some(value) => seen.push(value),
            None => wakes += 1,
        };
        for _ in 0..2 {
            assert!(q.data_len() <= CAP);
            if let Some(event) = q.try_pop() {
                take(event);
            }
        }
        assert!(
            control.join().expect("control producer"),
            "control never refuses"
        );
        let accepted = data.join().expect("data producer");
        while let Some(event) = q.try_pop() {
            take(event);
        }
        assert_eq!(wakes, 1);
        assert_eq!(seen, accepted, "each accepted event once, in order");
        assert!(q.data_high_water() <= CAP);
        for value in 10..10 + CAP as u64 {
            q.push_data(app(value)).expect("every slot is free again");
        }
    });
}

/// (b) The owner blocks in `wait` while a producer pushes: it must
/// wake (a lost wake-up shows as a loom deadlock).
fn blocking_wakeup(breakage: Breakage) {
    loom::model(move || {
        let q = queue(4, breakage);
        let producer = {
            let q = q.clone();
            thread::spawn(move || q.push_control(IngressEvent::Wake).expect("open"))
        };
        loop {
            assert_eq!(q.wait(None), WaitOutcome::Ready);
            if q.try_pop().is_some() {
                break;
            }
        }
        producer.join().expect("producer");
    });
}

/// (b3) A host nudges the owner (a request left beside the queue)
/// while it goes to sleep: the owner must wake and see the request.
fn nudge_wakeup(breakage: Breakage) {
    loom::model(move || {
        let q = queue(4, breakage);
        let request = Arc::new(AtomicUsize::new(0));
        let host = {
            let (q, request) = (q.clone(), request.clone());
            thread::spawn(move || {
                request.store(7, Ordering::Relaxed);
                q.nudge();
            })
        };
        loop {
            assert_eq!(q.wait(None), WaitOutcome::Ready);
            if q.take_nudges() > 0 {
                break;
            }
        }
        assert_eq!(
            request.load(Ordering::Relaxed),
            7,
            "the nudge publishes the request"
        );
        host.join().expect("host");
    });
}

/// (b2) Two producers and a blocking owner that pops as soon as it
/// wakes: the owner may pop an event whose producer has not yet counted
/// it (so the owner's `taken` runs ahead of the `accepted` it sees); the
/// lagging producer must then ring. The owner must see both events.
fn blocking_wakeup_two_producers(breakage: Breakage) {
    loom::model(move || {
        let q = queue(4, breakage);
        let producers: Vec<_> = (0..2)
            .map(|value| {
                let q = q.clone();
                thread::spawn(move || q.push_data(app(value)).expect("room"))
            })
            .collect();
        let mut seen = 0;
        while seen < 2 {
            assert_eq!(q.wait(None), WaitOutcome::Ready);
            while q.try_pop().is_some() {
                seen += 1;
            }
        }
        for producer in producers {
            producer.join().expect("producer");
        }
    });
}

/// A waker that unparks the (loom) thread that polls.
struct Unparker(thread::Thread);

impl std::task::Wake for Unparker {
    fn wake(self: StdArc<Self>) {
        self.0.unpark();
    }
}

/// (c) The owner polls with a waker that unparks it while a
/// producer pushes: the waker must fire.
fn async_wakeup(breakage: Breakage) {
    loom::model(move || {
        let q = queue(4, breakage);
        let producer = {
            let q = q.clone();
            thread::spawn(move || q.push_data(app(1)).expect("room"))
        };
        let waker = Waker::from(StdArc::new(Unparker(thread::current())));
        let mut cx = Context::from_waker(&waker);
        let outcome = loop {
            match q.poll_ready(&mut cx) {
                Poll::Ready(outcome) => break outcome,
                // A lost wake-up leaves this thread parked forever,
                // which loom reports as a deadlock.
                Poll::Pending => thread::park(),
            }
        };
        assert_eq!(outcome, WaitOutcome::Ready);
        assert_eq!(q.try_pop().as_ref().and_then(app_value), Some(1));
        producer.join().expect("producer");
    });
}

/// (d) Two producers (one per lane) race the owner's close and final
/// drain: each push was either drained exactly once or handed back
/// `Closed`, and nothing is left behind.
fn close_vs_push(breakage: Breakage) {
    loom::model(move || {
        let q = queue(4, breakage);
        let control = {
            let q = q.clone();
            thread::spawn(move || match q.push_control(IngressEvent::Shutdown) {
                Ok(()) => true,
                Err(PushError::Closed(IngressEvent::Shutdown)) => false,
                Err(other) => panic!("unexpected refusal {other:?}"),
            })
        };
        let data = {
            let q = q.clone();
            thread::spawn(move || match q.push_data(app(7)) {
                Ok(()) => true,
                Err(PushError::Closed(event)) => {
                    assert_eq!(app_value(&event), Some(7), "the refused event comes back");
                    false
                }
                Err(PushError::Full(_)) => panic!("the lane has room"),
            })
        };
        let mut out = Vec::new();
        q.drain_after_close(&mut out);
        let control_accepted = control.join().expect("control producer");
        let data_accepted = data.join().expect("data producer");
        let shutdowns = out
            .iter()
            .filter(|e| matches!(e, IngressEvent::Shutdown))
            .count();
        let apps = out.iter().filter(|e| app_value(e) == Some(7)).count();
        assert_eq!(shutdowns, usize::from(control_accepted));
        assert_eq!(apps, usize::from(data_accepted));
        assert!(q.try_pop().is_none(), "an accepted event was left behind");
    });
}

#[test]
fn loom_ingress_lanes_capacity_and_exactly_once() {
    lanes(None);
}

#[test]
fn loom_ingress_no_lost_wakeup_blocking() {
    blocking_wakeup(None);
}

#[test]
fn loom_ingress_no_lost_wakeup_two_producers() {
    blocking_wakeup_two_producers(None);
}

#[test]
fn loom_ingress_no_lost_wakeup_async() {
    async_wakeup(None);
}

#[test]
fn loom_ingress_nudge_wakes_the_owner() {
    nudge_wakeup(None);
}

#[test]
fn loom_ingress_close_vs_push() {
    close_vs_push(None);
}

#[cfg(nodeflow_loom_broken)]
#[test]
fn loom_broken_data_slot_reservation() {
    lanes(Some(0));
}

#[cfg(nodeflow_loom_broken)]
#[test]
fn loom_broken_push_skips_fence() {
    blocking_wakeup(Some(1));
}

#[cfg(nodeflow_loom_broken)]
#[test]
fn loom_broken_two_producers_skip_fence() {
    blocking_wakeup_two_producers(Some(1));
}

#[cfg(nodeflow_loom_broken)]
#[test]
fn loom_broken_nudge_skips_fence() {
    nudge_wakeup(Some(1));
}

#[test]
fn loom_broken_waker_no_recheck() {
    async_wakeup(Some(2));
}

#[cfg(nodeflow_loom_broken)]
#[test]
fn loom_broken_drain_skips_in_flight_wait() {
    close_vs_push(Some(3));
}
