//! The Node's typed event bus: a capped, owner-only queue of [`NodeEvent`]s that drops its oldest event when full.
//!
//! Framework primitives, syscall ops and components publish events here
//! (a peer went down, a backoff notice arrived, an input was rejected at the
//! boundary, an app event); the engine drains the bus once per poll cycle
//! and routes each event to its subscribers.
//!
//! Invariants:
//! * The bus never holds more than its capacity. Publishing into a full bus
//!   evicts the oldest event; every eviction is counted, and
//!   [`TypedBus::take_dropped`] hands the count since the last call to the
//!   engine so it can report the drop (nothing is dropped silently).
//! * Events drain in publish order (FIFO).
//! * Kinds below [`EventKind::USER_MIN`] belong to nodeflow: an app event
//!   ([`NodeEvent::App`]) claiming one is refused and handed back.
//! * The bus is owned by one engine (`&mut self` everywhere): no locks.

use std::collections::VecDeque;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::ids::{CommandId, EventKind, OpRef, PeerId, SiteId};
use crate::value::SlotValue;

/// Kinds of nodeflow's built-in events. The range `1..=0xFF` is reserved
/// for the kinds declared here.
impl EventKind {
    /// A peer was marked down by the governor ([`NodeEvent::PeerWentDown`]).
    pub const PEER_WENT_DOWN: EventKind = EventKind::new(1);
    /// A peer came back up ([`NodeEvent::PeerCameUp`]).
    pub const PEER_CAME_UP: EventKind = EventKind::new(2);
    /// A peer asked this Node to back off ([`NodeEvent::BackoffNotice`]).
    pub const BACKOFF_NOTICE: EventKind = EventKind::new(3);
    /// An input was rejected at the Node's boundary ([`NodeEvent::AppIngressError`]).
    pub const APP_INGRESS_ERROR: EventKind = EventKind::new(4);
    /// A completion arrived for a command that is not parked
    /// ([`NodeEvent::UnknownCompletion`]).
    pub const UNKNOWN_COMPLETION: EventKind = EventKind::new(5);

    /// Whether the kind is in nodeflow's reserved range.
    pub const fn is_builtin(self) -> bool {
        self.as_u32() < Self::USER_MIN
    }
}

/// One event on a Node's bus.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum NodeEvent {
    /// The governor marked `peer` down (failure threshold reached).
    PeerWentDown {
        /// The peer.
        peer: PeerId,
    },
    /// A peer that was down is live again.
    PeerCameUp {
        /// The peer.
        peer: PeerId,
    },
    /// `peer` is overloaded and asked this Node to hold off sending.
    BackoffNotice {
        /// The overloaded peer.
        peer: PeerId,
        /// How long the peer asked us to wait, in nanoseconds.
        retry_after_ns: u64,
    },
    /// An input was refused at the Node's boundary.
    AppIngressError(AppIngressError),
    /// A completion (or completion failure) named a command that is not
    /// parked: it finished, timed out, or never existed.
    UnknownCompletion {
        /// The command the completion named.
        cmd: CommandId,
        /// Whether it was a failure (`CompletionFailed`) rather than a result.
        failure: bool,
    },
    /// A user-defined event; `kind` must be at least [`EventKind::USER_MIN`].
    App {
        /// The user's event kind.
        kind: EventKind,
        /// The event's value.
        value: Box<dyn SlotValue>,
    },
}

/// An app event waiting to be emitted (what `AppEmit` / `AppNotify` produce).
#[derive(Clone, Debug)]
pub struct AppEvent {
    /// The user's event kind.
    pub kind: EventKind,
    /// The event's value.
    pub value: Box<dyn SlotValue>,
}

/// A record of an input refused at the Node's boundary.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppIngressError {
    /// Where the input came from.
    pub source: AppIngressSource,
    /// Size of the refused input in bytes (0 when not a byte payload).
    pub byte_count: usize,
    /// Why it was refused.
    pub kind: AppIngressErrorKind,
}

/// Which boundary an input was refused at.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum AppIngressSource {
    /// The result of an async command, posted through the completion sink.
    Completion {
        /// The command the result was for.
        command: CommandId,
    },
    /// An envelope from another Node.
    Envelope {
        /// The sender, when it could be read.
        from: Option<PeerId>,
    },
    /// An app event delivered by the host.
    AppEvent {
        /// The event's kind.
        kind: EventKind,
    },
    /// A trigger source (timer tick or bus event) whose execution could
    /// not start.
    Trigger {
        /// The source op.
        op: OpRef,
    },
    /// An invoke of an installed graph by the host.
    Invoke {
        /// The graph invoked.
        site: SiteId,
    },
}

/// Why an input was refused at the Node's boundary.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[non_exhaustive]
pub enum AppIngressErrorKind {
    /// The input is larger than the per-item cap.
    #[error("larger than the per-item cap of {cap} bytes; send smaller items or raise the cap")]
    PerItemCapExceeded {
        /// The cap in force.
        cap: usize,
    },
    /// The Node's byte budget had no room for the input.
    #[error("the Node's byte budget is exhausted ({in_use} of {limit} bytes in use); retry later or raise the budget")]
    BudgetExceeded {
        /// Bytes in use when the input was refused.
        in_use: usize,
        /// The budget's limit.
        limit: usize,
    },
    /// Memory for the input could not be reserved.
    #[error("memory could not be reserved: {reason}")]
    AllocationFailed {
        /// What the allocator reported.
        reason: AllocFailReason,
    },
    /// The Node's ingress is full.
    #[error("the Node's ingress is full ({capacity} items); retry later")]
    QueueFull {
        /// The lane's capacity.
        capacity: usize,
    },
    /// The Node's ingress is closed (the Node is stopping).
    #[error("the Node's ingress is closed; the Node is stopping")]
    Closed,
    /// No op is subscribed to the input's kind, so nothing would run.
    #[error("no op is subscribed to this kind; install an OnTrigger/EventSource op for it")]
    NoSubscriber,
    /// The Node's execution cap is reached.
    #[error("{cap} executions are alive, the cap; poll to let some finish")]
    TooManyExecutions {
        /// The cap.
        cap: usize,
    },
    /// The invoke names an unknown graph or inputs that do not match it.
    #[error(
        "the invoke does not match an installed graph's inputs; check the site and input names"
    )]
    InvalidInvoke,
    /// The Node has minted every execution or command id it can.
    #[error("the Node's id space is exhausted; restart the Node")]
    IdsExhausted,
}

/// What the allocator reported when a fallible reservation failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[non_exhaustive]
pub enum AllocFailReason {
    /// The allocator refused the request (out of memory, or a size the
    /// allocator cannot represent).
    #[error("the heap is exhausted")]
    HeapExhausted,
}

/// An app event claimed a kind reserved for nodeflow; the event is handed back.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error(
    "event kind {kind} is reserved for nodeflow's own events; \
     use a kind of at least EventKind::USER_MIN ({min:#x})",
    min = EventKind::USER_MIN
)]
pub struct ReservedEventKind {
    /// The refused kind.
    pub kind: EventKind,
    /// The refused event, handed back.
    pub event: Box<NodeEvent>,
}

/// The Node's capped, drop-oldest event bus (owned by the engine).
pub struct TypedBus {
    events: VecDeque<NodeEvent>,
    capacity: usize,
    stats: BusStats,
    /// Evictions since the last [`TypedBus::take_dropped`].
    dropped_unreported: u64,
}

/// Counters of a [`TypedBus`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BusStats {
    /// Events accepted by `publish` (including those later evicted).
    pub published: u64,
    /// Events handed out by `drain` / `pop`.
    pub drained: u64,
    /// Events evicted because the bus was full (oldest first).
    pub dropped_oldest: u64,
    /// App events refused for claiming a reserved kind.
    pub refused_reserved_kind: u64,
    /// Most events the bus has held at once.
    pub high_water: usize,
}

impl NodeEvent {
    /// The event's kind (the key event-source subscriptions match on).
    pub fn kind(&self) -> EventKind {
        match self {
            Self::PeerWentDown { .. } => EventKind::PEER_WENT_DOWN,
            Self::PeerCameUp { .. } => EventKind::PEER_CAME_UP,
            Self::BackoffNotice { .. } => EventKind::BACKOFF_NOTICE,
            Self::AppIngressError(_) => EventKind::APP_INGRESS_ERROR,
            Self::UnknownCompletion { .. } => EventKind::UNKNOWN_COMPLETION,
            Self::App { kind, .. } => *kind,
        }
    }
}

// Written by hand: a derived `PartialEq` cannot compare `Box<dyn SlotValue>`
// fields (it tries to move out of them).
impl PartialEq for NodeEvent {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::PeerWentDown { peer: a }, Self::PeerWentDown { peer: b }) => a == b,
            (Self::PeerCameUp { peer: a }, Self::PeerCameUp { peer: b }) => a == b,
            (
                Self::BackoffNotice {
                    peer: a,
                    retry_after_ns: ra,
                },
                Self::BackoffNotice {
                    peer: b,
                    retry_after_ns: rb,
                },
            ) => a == b && ra == rb,
            (Self::AppIngressError(a), Self::AppIngressError(b)) => a == b,
            (
                Self::UnknownCompletion {
                    cmd: a,
                    failure: fa,
                },
                Self::UnknownCompletion {
                    cmd: b,
                    failure: fb,
                },
            ) => a == b && fa == fb,
            (
                Self::App {
                    kind: ka,
                    value: va,
                },
                Self::App {
                    kind: kb,
                    value: vb,
                },
            ) => ka == kb && va.eq_value(&**vb),
            _ => false,
        }
    }
}

impl PartialEq for AppEvent {
    fn eq(&self, other: &Self) -> bool {
        self.kind == other.kind && self.value.eq_value(&*other.value)
    }
}

impl From<AppEvent> for NodeEvent {
    fn from(event: AppEvent) -> Self {
        Self::App {
            kind: event.kind,
            value: event.value,
        }
    }
}

impl From<AppIngressError> for NodeEvent {
    fn from(error: AppIngressError) -> Self {
        Self::AppIngressError(error)
    }
}

impl fmt::Display for AppIngressError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} was rejected ({} bytes): {}",
            self.source, self.byte_count, self.kind
        )
    }
}

// `Display` and `Error` are written by hand: thiserror would treat the
// `source` field as the error's cause.
impl std::error::Error for AppIngressError {}

impl fmt::Display for AppIngressSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Completion { command } => write!(f, "completion for {command}"),
            Self::Envelope { from: Some(peer) } => write!(f, "envelope from {peer}"),
            Self::Envelope { from: None } => f.write_str("envelope from an unknown sender"),
            Self::AppEvent { kind } => write!(f, "app event {kind}"),
            Self::Trigger { op } => write!(f, "trigger source {op}"),
            Self::Invoke { site } => write!(f, "invoke of {site}"),
        }
    }
}

impl TypedBus {
    /// Default capacity: 1024 events.
    pub const DEFAULT_CAPACITY: usize = 1024;

    /// An empty bus holding at most `capacity` events. With a capacity of 0
    /// every published event is counted as dropped at once.
    pub fn new(capacity: usize) -> Self {
        Self {
            events: VecDeque::new(),
            capacity,
            stats: BusStats::default(),
            dropped_unreported: 0,
        }
    }

    /// Appends `event`, evicting the oldest event if the bus is full.
    ///
    /// Refuses (and hands back) an [`NodeEvent::App`] whose kind is below
    /// [`EventKind::USER_MIN`]; built-in kinds come only from the
    /// built-in variants.
    pub fn publish(&mut self, event: NodeEvent) -> Result<(), ReservedEventKind> {
        if let NodeEvent::App { kind, .. } = &event {
            if kind.is_builtin() {
                self.stats.refused_reserved_kind += 1;
                return Err(ReservedEventKind {
                    kind: *kind,
                    event: Box::new(event),
                });
            }
        }
        self.stats.published += 1;
        if self.capacity == 0 {
            self.count_drop();
            return Ok(());
        }
        if self.events.len() >= self.capacity {
            self.events.pop_front();
            self.count_drop();
        }
        self.events.push_back(event);
        self.stats.high_water = self.stats.high_water.max(self.events.len());
        Ok(())
    }

    /// Removes and returns the oldest event.
    pub fn pop(&mut self) -> Option<NodeEvent> {
        let event = self.events.pop_front()?;
        self.stats.drained += 1;
        Some(event)
    }

    /// Removes every queued event, oldest first.
    pub fn drain(&mut self) -> impl Iterator<Item = NodeEvent> + '_ {
        self.stats.drained += self.events.len() as u64;
        self.events.drain(..)
    }

    /// Evictions since the last call (the engine reports them as a drop step).
    pub fn take_dropped(&mut self) -> u64 {
        std::mem::take(&mut self.dropped_unreported)
    }

    /// Events queued now.
    pub fn len(&self) -> usize {
        self.events.len()
    }

    /// Whether no event is queued.
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    /// The most events the bus holds.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// A copy of the counters.
    pub fn stats(&self) -> BusStats {
        self.stats
    }

    fn count_drop(&mut self) {
        self.stats.dropped_oldest += 1;
        self.dropped_unreported += 1;
    }
}

impl Default for TypedBus {
    /// A bus with [`TypedBus::DEFAULT_CAPACITY`].
    fn default() -> Self {
        Self::new(Self::DEFAULT_CAPACITY)
    }
}

impl fmt::Debug for TypedBus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TypedBus")
            .field("len", &self.events.len())
            .field("capacity", &self.capacity)
            .field("stats", &self.stats)
            .finish()
    }
}

#[cfg(test)]
pub(crate) mod test_value {
    //! A minimal [`SlotValue`] for tests of this crate's queues.
    use crate::value::{EncodeError, SlotValue, TypeTag};

    /// A `u64` slot value with a fake heap size.
    #[derive(Clone, Debug, PartialEq)]
    pub(crate) struct TestValue(pub(crate) u64);

    impl SlotValue for TestValue {
        fn type_tag(&self) -> TypeTag {
            TypeTag::new(TypeTag::USER_MIN + 77)
        }

        fn clone_value(&self) -> Box<dyn SlotValue> {
            Box::new(self.clone())
        }

        fn encode(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
            out.extend_from_slice(&self.0.to_le_bytes());
            Ok(())
        }

        fn heap_bytes(&self) -> usize {
            8
        }

        fn eq_value(&self, other: &dyn SlotValue) -> bool {
            other.downcast_ref::<Self>() == Some(self)
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::test_value::TestValue;
    use super::*;

    fn down(peer: u64) -> NodeEvent {
        NodeEvent::PeerWentDown {
            peer: PeerId::new(peer),
        }
    }

    fn app(kind: u32, value: u64) -> NodeEvent {
        NodeEvent::App {
            kind: EventKind::new(kind),
            value: Box::new(TestValue(value)),
        }
    }

    #[test]
    fn events_drain_in_publish_order() {
        let mut bus = TypedBus::new(4);
        bus.publish(down(1)).expect("built-in kinds are accepted");
        bus.publish(app(EventKind::USER_MIN, 7)).expect("user kind");
        assert_eq!(bus.len(), 2);
        let drained: Vec<_> = bus.drain().collect();
        assert_eq!(drained, vec![down(1), app(EventKind::USER_MIN, 7)]);
        assert!(bus.is_empty());
        assert_eq!(bus.stats().drained, 2);
    }

    #[test]
    fn full_bus_evicts_the_oldest_and_counts_it() {
        let mut bus = TypedBus::new(2);
        for peer in 1..=5 {
            bus.publish(down(peer)).expect("accepted");
        }
        assert_eq!(bus.len(), 2);
        assert_eq!(bus.pop(), Some(down(4)));
        assert_eq!(bus.pop(), Some(down(5)));
        let stats = bus.stats();
        assert_eq!(stats.published, 5);
        assert_eq!(stats.dropped_oldest, 3);
        assert_eq!(stats.high_water, 2);
        assert_eq!(bus.take_dropped(), 3);
        assert_eq!(bus.take_dropped(), 0, "take_dropped resets");
        assert_eq!(bus.stats().dropped_oldest, 3, "the total does not");
    }

    #[test]
    fn zero_capacity_drops_every_event_and_reports_it() {
        let mut bus = TypedBus::new(0);
        bus.publish(down(1)).expect("accepted, then dropped");
        assert!(bus.is_empty());
        assert_eq!(bus.take_dropped(), 1);
    }

    #[test]
    fn app_event_with_reserved_kind_is_refused_and_handed_back() {
        let mut bus = TypedBus::new(4);
        let err = bus
            .publish(app(EventKind::PEER_WENT_DOWN.as_u32(), 9))
            .expect_err("reserved kind");
        assert_eq!(err.kind, EventKind::PEER_WENT_DOWN);
        assert_eq!(*err.event, app(1, 9));
        assert!(bus.is_empty());
        let stats = bus.stats();
        assert_eq!((stats.refused_reserved_kind, stats.published), (1, 0));
        bus.publish(app(EventKind::USER_MIN, 1))
            .expect("first user kind is fine");
    }

    #[test]
    fn kinds_map_variants_and_builtins_are_below_user_min() {
        let error = AppIngressError {
            source: AppIngressSource::Completion {
                command: CommandId::new(3),
            },
            byte_count: 10,
            kind: AppIngressErrorKind::PerItemCapExceeded { cap: 4 },
        };
        let cases = [
            (down(1), EventKind::PEER_WENT_DOWN),
            (
                NodeEvent::PeerCameUp {
                    peer: PeerId::new(1),
                },
                EventKind::PEER_CAME_UP,
            ),
            (
                NodeEvent::BackoffNotice {
                    peer: PeerId::new(1),
                    retry_after_ns: 5,
                },
                EventKind::BACKOFF_NOTICE,
            ),
            (error.clone().into(), EventKind::APP_INGRESS_ERROR),
            (
                NodeEvent::UnknownCompletion {
                    cmd: CommandId::new(2),
                    failure: true,
                },
                EventKind::UNKNOWN_COMPLETION,
            ),
        ];
        for (event, kind) in cases {
            assert_eq!(event.kind(), kind);
            assert!(kind.is_builtin());
        }
        let user = AppEvent {
            kind: EventKind::new(EventKind::USER_MIN + 1),
            value: Box::new(TestValue(1)),
        };
        assert_eq!(
            NodeEvent::from(user).kind().as_u32(),
            EventKind::USER_MIN + 1
        );
        assert_eq!(
            error.to_string(),
            "completion for cmd:3 was rejected (10 bytes): larger than the per-item cap of 4 bytes; \
             send smaller items or raise the cap"
        );
    }

    #[test]
    fn ingress_error_round_trips_through_serde() {
        let error = AppIngressError {
            source: AppIngressSource::Envelope { from: None },
            byte_count: 0,
            kind: AppIngressErrorKind::AllocationFailed {
                reason: AllocFailReason::HeapExhausted,
            },
        };
        let json = serde_json::to_string(&error).expect("serializes");
        let back: AppIngressError = serde_json::from_str(&json).expect("deserializes");
        assert_eq!(back, error);
    }
}
