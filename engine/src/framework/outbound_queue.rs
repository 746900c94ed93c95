//! `OutboundQueue`: the capped FIFO of items waiting to leave the Node,
//! which drops its oldest item rather than refuse a new one.
//!
//! Invariants:
//! * [`OutboundQueue::len`] never exceeds [`OutboundQueue::capacity`].
//! * Items leave in the order they were pushed.
//! * When full, [`OutboundQueue::push`] evicts the oldest item, hands it back
//!   to the caller and counts it in [`OutboundQueueStats::dropped_oldest`]:
//!   nothing disappears without a count.
//! * Capacity 0 is allowed and means "every push drops": the pushed item is
//!   at once the oldest and is handed straight back (and counted).

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

/// Cap an [`OutboundQueue`] built with [`Default`] uses.
pub const OUTBOUND_QUEUE_DEFAULT_CAPACITY: usize = 4_096;

/// Counters an [`OutboundQueue`] keeps over its lifetime (all saturating).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboundQueueStats {
    /// Items passed to [`OutboundQueue::push`].
    pub pushed: u64,
    /// Items taken out by [`OutboundQueue::pop`] or [`OutboundQueue::drain`].
    pub delivered: u64,
    /// Items evicted because the queue was full.
    pub dropped_oldest: u64,
    /// Largest length the queue has reached.
    pub high_water: usize,
}

/// A capped FIFO that evicts its oldest item when full.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct OutboundQueue<T> {
    capacity: usize,
    items: VecDeque<T>,
    stats: OutboundQueueStats,
}

impl<T> Default for OutboundQueue<T> {
    fn default() -> Self {
        Self::new(OUTBOUND_QUEUE_DEFAULT_CAPACITY)
    }
}

impl<T> OutboundQueue<T> {
    /// An empty queue holding at most `capacity` items (0: every push drops).
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            items: VecDeque::new(),
            stats: OutboundQueueStats::default(),
        }
    }

    /// Appends `item`. If the queue was full, the oldest item is evicted and
    /// returned (with capacity 0 that is `item` itself); otherwise `None`.
    pub fn push(&mut self, item: T) -> Option<T> {
        self.stats.pushed = self.stats.pushed.saturating_add(1);
        if self.capacity == 0 {
            self.count_drop();
            return Some(item);
        }
        let evicted = if self.items.len() >= self.capacity {
            self.count_drop();
            self.items.pop_front()
        } else {
            None
        };
        self.items.push_back(item);
        self.stats.high_water = self.stats.high_water.max(self.items.len());
        evicted
    }

    /// Removes and returns the oldest item.
    pub fn pop(&mut self) -> Option<T> {
        let item = self.items.pop_front()?;
        self.stats.delivered = self.stats.delivered.saturating_add(1);
        Some(item)
    }

    /// Removes every item, oldest first. All of them count as delivered,
    /// even if the iterator is dropped before the end.
    pub fn drain(&mut self) -> std::collections::vec_deque::Drain<'_, T> {
        self.stats.delivered = self
            .stats
            .delivered
            .saturating_add(u64::try_from(self.items.len()).unwrap_or(u64::MAX));
        self.items.drain(..)
    }

    /// The queued items, oldest first, for editing in place.
    pub fn iter_mut(&mut self) -> std::collections::vec_deque::IterMut<'_, T> {
        self.items.iter_mut()
    }

    /// The oldest item, without removing it.
    pub fn front(&self) -> Option<&T> {
        self.items.front()
    }

    /// Items in the queue, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = &T> + '_ {
        self.items.iter()
    }

    /// Number of queued items.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether the queue is empty.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The cap.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Lifetime counters.
    pub fn stats(&self) -> OutboundQueueStats {
        self.stats
    }

    fn count_drop(&mut self) {
        self.stats.dropped_oldest = self.stats.dropped_oldest.saturating_add(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fifo_order() {
        let mut q = OutboundQueue::new(3);
        for i in 0..3 {
            assert_eq!(q.push(i), None);
        }
        assert_eq!(q.front(), Some(&0));
        assert_eq!(
            (q.pop(), q.pop(), q.pop(), q.pop()),
            (Some(0), Some(1), Some(2), None)
        );
    }

    #[test]
    fn full_push_evicts_oldest_and_counts_it() {
        let mut q = OutboundQueue::new(2);
        q.push("a");
        q.push("b");
        assert_eq!(q.push("c"), Some("a"));
        assert_eq!(q.push("d"), Some("b"));
        assert_eq!(q.len(), 2);
        assert_eq!(q.iter().copied().collect::<Vec<_>>(), ["c", "d"]);
        let st = q.stats();
        assert_eq!((st.pushed, st.dropped_oldest, st.high_water), (4, 2, 2));
    }

    #[test]
    fn zero_capacity_drops_every_push() {
        let mut q = OutboundQueue::new(0);
        assert_eq!(q.push(7), Some(7));
        assert!(q.is_empty());
        assert_eq!(q.stats().dropped_oldest, 1);
        assert_eq!(q.capacity(), 0);
    }

    #[test]
    fn drain_empties_in_order_and_counts_delivered() {
        let mut q = OutboundQueue::new(4);
        q.push(1);
        q.push(2);
        q.push(3);
        assert_eq!(q.pop(), Some(1));
        assert_eq!(q.drain().collect::<Vec<_>>(), [2, 3]);
        assert!(q.is_empty());
        assert_eq!(q.stats().delivered, 3);
        assert_eq!(q.stats().high_water, 3);
    }

    #[test]
    fn serde_round_trip_keeps_items_and_counters() {
        let mut q = OutboundQueue::new(2);
        q.push(1u32);
        q.push(2);
        q.push(3);
        let json = serde_json::to_string(&q).unwrap();
        let mut back: OutboundQueue<u32> = serde_json::from_str(&json).unwrap();
        assert_eq!(back.stats(), q.stats());
        assert_eq!(back.capacity(), 2);
        assert_eq!(back.drain().collect::<Vec<_>>(), [2, 3]);
    }
}
