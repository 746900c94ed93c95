//! Per-Node metrics reach `tracing`: an actor emits its "node metrics"
//! event (mailbox depth and high-water mark, ops fired, envelopes in and
//! out) inside its `node` span, plus start, snapshot and stop events.
//!
//! A minimal global subscriber records event messages and field names; no
//! timing is asserted.
#![cfg(not(loom))] // real threads; the loom models live in loom-tests/
#![allow(clippy::unwrap_used)]

mod common;

use std::fmt::Debug;
use std::time::Duration;

use common::{echo_graph, next_finished, u64v};
use nodeflow_actors::{ActorConfig, NodeActor, NodeFactory, Router, SystemClock};
use nodeflow_engine::sync::atomic::{AtomicU64, Ordering};
use nodeflow_engine::sync::{Arc, Mutex};
use nodeflow_engine::{Node, PeerId, SiteId};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};

/// Records every event as "message: field, field, ...".
#[derive(Default)]
struct Recorder {
    events: Mutex<Vec<String>>,
    next_id: AtomicU64,
}

struct Fields {
    message: String,
    names: Vec<&'static str>,
}

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn Debug) {
        if field.name() == "message" {
            self.message = format!("{value:?}");
        } else {
            self.names.push(field.name());
        }
    }
}

impl Subscriber for &'static Recorder {
    fn enabled(&self, _metadata: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _span: &Attributes<'_>) -> Id {
        Id::from_u64(self.next_id.fetch_add(1, Ordering::Relaxed) + 1)
    }
    fn record(&self, _span: &Id, _values: &Record<'_>) {}
    fn record_follows_from(&self, _span: &Id, _follows: &Id) {}
    fn event(&self, event: &Event<'_>) {
        let mut fields = Fields {
            message: String::new(),
            names: Vec::new(),
        };
        event.record(&mut fields);
        self.events
            .lock()
            .push(format!("{}: {}", fields.message, fields.names.join(",")));
    }
    fn enter(&self, _span: &Id) {}
    fn exit(&self, _span: &Id) {}
}

#[test]
fn an_actor_reports_its_metrics_through_tracing() {
    let recorder: &'static Recorder = Box::leak(Box::default());
    tracing::subscriber::set_global_default(recorder).unwrap();

    let factory: NodeFactory = Arc::new(|| Node::builder(PeerId::new(3)).graph(echo_graph()));
    let handle = NodeActor::spawn_supervised(
        factory,
        Arc::new(Router::new()),
        Arc::new(SystemClock::new()),
        ActorConfig::default(),
    )
    .unwrap();
    let rx = handle.subscribe().unwrap();
    handle
        .invoke(SiteId::new(0), vec![("x".into(), u64v(1))], 1)
        .unwrap();
    assert_eq!(next_finished(&rx), (Some(1), Some(1)));
    handle.snapshot(Duration::from_secs(10)).unwrap();
    handle.stop().unwrap();

    let events = recorder.events.lock().clone();
    let has = |prefix: &str| events.iter().any(|e| e.starts_with(prefix));
    assert!(has("actor started"), "{events:?}");
    assert!(has("snapshot taken: bytes"), "{events:?}");
    assert!(
        has("node metrics: depth,high_water,ops_fired,envelopes_in,envelopes_out"),
        "{events:?}"
    );
    assert!(
        has("actor stopped: processed,dropped_at_close"),
        "{events:?}"
    );
}
