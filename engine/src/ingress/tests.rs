// std::task::Wake is implemented on std's own Arc, so waker tests name it.
use std::sync::Arc as StdArc; // sync-facade: allow (std::task::Wake needs std's Arc)
use std::task::Wake;
use std::time::Duration;

use super::*;
use crate::bus::test_value::TestValue;
use crate::sync::Arc;

fn queue(data_capacity: usize) -> Arc<IngressQueue> {
    let config = IngressConfig {
        data_capacity,
        ..IngressConfig::default()
    };
    Arc::new(IngressQueue::new(config, ByteBudget::new(1024)))
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

/// A waker that counts its wake-ups.
#[derive(Default)]
struct CountingWaker(crate::sync::atomic::AtomicUsize);

impl Wake for CountingWaker {
    fn wake(self: StdArc<Self>) {
        self.wake_by_ref();
    }
    fn wake_by_ref(self: &StdArc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn wait_control_ignores_data_but_not_control() {
    let queue = queue(4);
    queue.push_data(app(1)).expect("room");
    #[allow(clippy::disallowed_methods)] // a test may read the clock
    let soon = Instant::now() + Duration::from_millis(5);
    assert_eq!(queue.wait_control(Some(soon)), WaitOutcome::TimedOut);
    assert_eq!(queue.wait(Some(soon)), WaitOutcome::Ready);
    queue.push_control(IngressEvent::Wake).expect("open");
    assert_eq!(queue.wait_control(None), WaitOutcome::Ready);
}

#[test]
fn a_nudge_wakes_the_owner_until_taken_and_queues_nothing() {
    let queue = queue(4);
    assert_eq!(queue.take_nudges(), 0);
    queue.nudge();
    queue.nudge();
    assert!(queue.is_empty(), "a nudge is not an event");
    assert_eq!(queue.wait(None), WaitOutcome::Ready);
    assert_eq!(queue.take_nudges(), 2);
    #[allow(clippy::disallowed_methods)] // a test may read the clock
    let soon = Instant::now() + Duration::from_millis(5);
    assert_eq!(queue.wait(Some(soon)), WaitOutcome::TimedOut);
    assert_eq!(queue.stats().control.accepted, 0);
}

#[test]
fn push_routes_by_variant_and_control_pops_first() {
    let queue = queue(4);
    queue.push(app(1)).expect("data lane has room");
    queue.push(IngressEvent::Wake).expect("control lane");
    queue.push(app(2)).expect("data lane has room");
    assert_eq!(
        (queue.control_len(), queue.data_len(), queue.len()),
        (1, 2, 3)
    );
    assert!(matches!(queue.try_pop(), Some(IngressEvent::Wake)));
    assert_eq!(queue.try_pop().as_ref().and_then(app_value), Some(1));
    assert_eq!(queue.try_pop().as_ref().and_then(app_value), Some(2));
    assert!(queue.try_pop().is_none());
    assert!(queue.is_empty());
    let stats = queue.stats();
    assert_eq!((stats.control.accepted, stats.control.taken), (1, 1));
    assert_eq!((stats.data.accepted, stats.data.taken), (2, 2));
}

#[test]
fn full_data_lane_hands_the_event_back_and_frees_slots_on_pop() {
    let queue = queue(2);
    queue.push_data(app(1)).expect("room");
    queue.push_data(app(2)).expect("room");
    let refused = queue.push_data(app(3)).expect_err("lane is full");
    assert!(matches!(refused, PushError::Full(_)));
    assert_eq!(app_value(&refused.into_inner()), Some(3));
    queue
        .push_control(IngressEvent::Wake)
        .expect("control never refuses when open");
    assert_eq!(queue.data_high_water(), 2);
    assert_eq!(queue.stats().data.refused_full, 1);

    assert!(matches!(queue.try_pop(), Some(IngressEvent::Wake)));
    assert_eq!(queue.try_pop().as_ref().and_then(app_value), Some(1));
    queue.push_data(app(4)).expect("a pop frees a slot");
    assert_eq!(queue.data_high_water(), 2);
}

#[test]
fn zero_data_capacity_is_treated_as_one() {
    let queue = queue(0);
    assert_eq!(queue.data_capacity(), 1);
    queue.push_data(app(1)).expect("one slot");
    assert!(queue.push_data(app(2)).is_err());
}

#[test]
fn close_refuses_later_pushes_and_final_drain_returns_every_accepted_event() {
    let queue = queue(4);
    queue.push_data(app(1)).expect("open");
    queue.push_control(IngressEvent::Shutdown).expect("open");
    assert!(queue.close(), "first close closes");
    assert!(!queue.close(), "close is idempotent");
    assert!(queue.is_closed());

    let refused = queue.push_control(IngressEvent::Wake).expect_err("closed");
    assert!(refused.is_closed());
    let refused = queue.push_data(app(9)).expect_err("closed");
    assert_eq!(app_value(&refused.into_inner()), Some(9));

    let mut out = Vec::new();
    assert_eq!(queue.drain_after_close(&mut out), 2);
    assert!(matches!(out[0], IngressEvent::Shutdown));
    assert_eq!(app_value(&out[1]), Some(1));
    let stats = queue.stats();
    assert!(stats.closed);
    assert_eq!(
        (stats.control.refused_closed, stats.data.refused_closed),
        (1, 1)
    );
    assert_eq!(queue.wait(None), WaitOutcome::Closed);
}

#[test]
fn drain_into_respects_max() {
    let queue = queue(8);
    for value in 0..5 {
        queue.push_data(app(value)).expect("room");
    }
    let mut out = Vec::new();
    assert_eq!(queue.drain_into(&mut out, 3), 3);
    assert_eq!(queue.drain_into(&mut out, 0), 0);
    assert_eq!(queue.drain_into(&mut out, 10), 2);
    let values: Vec<_> = out.iter().filter_map(app_value).collect();
    assert_eq!(values, vec![0, 1, 2, 3, 4]);
}

#[test]
fn wait_returns_at_once_when_ready_and_times_out_when_idle() {
    let queue = queue(4);
    #[allow(clippy::disallowed_methods)] // a test may read the clock
    let soon = Instant::now() + Duration::from_millis(5);
    assert_eq!(queue.wait(Some(soon)), WaitOutcome::TimedOut);
    queue.push(IngressEvent::Wake).expect("open");
    assert_eq!(queue.wait(None), WaitOutcome::Ready);
    queue.try_pop();
    assert_eq!(queue.wait(Some(soon)), WaitOutcome::TimedOut);
}

#[test]
fn wait_wakes_when_another_thread_pushes_or_closes() {
    for close in [false, true] {
        let queue = queue(4);
        let producer = {
            let queue = Arc::clone(&queue);
            #[allow(clippy::disallowed_methods)] // tests may spawn threads
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(20));
                if close {
                    queue.close();
                } else {
                    queue.push(IngressEvent::Wake).expect("open");
                }
            })
        };
        let expected = if close {
            WaitOutcome::Closed
        } else {
            WaitOutcome::Ready
        };
        assert_eq!(queue.wait(None), expected);
        producer.join().expect("producer ran");
    }
}

#[test]
fn registered_waker_fires_once_on_push_and_at_once_when_pending() {
    let queue = queue(4);
    let counter = StdArc::new(CountingWaker::default());
    let waker = Waker::from(counter.clone());

    queue.register_waker(&waker);
    assert_eq!(counter.0.load(Ordering::SeqCst), 0, "nothing pending yet");
    queue.push(IngressEvent::Wake).expect("open");
    assert_eq!(counter.0.load(Ordering::SeqCst), 1, "push woke the waker");
    queue.push(IngressEvent::Wake).expect("open");
    assert_eq!(counter.0.load(Ordering::SeqCst), 1, "rings are one-shot");

    queue.register_waker(&waker);
    assert_eq!(
        counter.0.load(Ordering::SeqCst),
        2,
        "pending work wakes at once"
    );

    let mut cx = Context::from_waker(&waker);
    assert_eq!(queue.poll_ready(&mut cx), Poll::Ready(WaitOutcome::Ready));
    queue.drain_into(&mut Vec::new(), usize::MAX);
    assert_eq!(queue.poll_ready(&mut cx), Poll::Pending);
    queue.close();
    assert_eq!(counter.0.load(Ordering::SeqCst), 3, "close wakes");
    assert_eq!(queue.poll_ready(&mut cx), Poll::Ready(WaitOutcome::Closed));
}

#[test]
fn push_error_messages_say_what_to_do() {
    let full: PushError<()> = PushError::Full(());
    assert!(full.to_string().contains("retry"));
    assert_eq!(format!("{:?}", PushError::Closed(())), "Closed(..)");
}

#[test]
fn many_producers_every_accepted_event_is_drained_once() {
    let queue = queue(64);
    let producers: Vec<_> = (0..4u64)
        .map(|p| {
            let queue = Arc::clone(&queue);
            #[allow(clippy::disallowed_methods)] // tests may spawn threads
            std::thread::spawn(move || {
                (0..500u64)
                    .filter(|i| queue.push_data(app(p * 1000 + i)).is_ok())
                    .map(|i| p * 1000 + i)
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut seen = Vec::new();
    let mut out = Vec::new();
    while seen.len() < 2000 && !producers.iter().all(|p| p.is_finished()) {
        #[allow(clippy::disallowed_methods)] // a test may read the clock
        let deadline = Instant::now() + Duration::from_millis(10);
        if queue.wait(Some(deadline)) == WaitOutcome::Ready {
            queue.drain_into(&mut out, usize::MAX);
            seen.extend(out.drain(..).filter_map(|e| app_value(&e)));
        }
    }
    let mut accepted: Vec<u64> = producers
        .into_iter()
        .flat_map(|p| p.join().expect("producer ran"))
        .collect();
    queue.drain_after_close(&mut out);
    seen.extend(out.drain(..).filter_map(|e| app_value(&e)));
    accepted.sort_unstable();
    seen.sort_unstable();
    assert_eq!(seen, accepted);
    assert!(queue.data_high_water() <= 64);
}
