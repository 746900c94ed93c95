//! `SerializeQueue`: named FIFO queues of slot values behind the
//! `Serialize.Enqueue` / `Serialize.Dequeue` syscalls.
//!
//! Invariants:
//! * Values leave a queue in the order they entered it.
//! * No queue is ever empty: a queue is created by its first enqueue and
//!   removed by the dequeue that empties it, so memory tracks live values.
//! * At most [`SerializeQueueConfig::max_queues`] queues exist, each holds
//!   at most [`SerializeQueueConfig::max_depth`] values, and names are at
//!   most [`SerializeQueueConfig::max_name_len`] bytes. A refused enqueue
//!   hands the value back inside the error and is counted in
//!   [`SerializeQueueStats`]; nothing is dropped silently.
//! * Iteration is in name order, then FIFO order, so snapshots are
//!   deterministic.

use super::bump;
use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};

use crate::value::SlotValue;

/// Named FIFO queues of slot values.
#[derive(Debug, Default)]
pub struct SerializeQueue {
    config: SerializeQueueConfig,
    queues: BTreeMap<String, VecDeque<Box<dyn SlotValue>>>,
    total_len: usize,
    stats: SerializeQueueStats,
}

/// Caps of a [`SerializeQueue`]; [`Default`] gives the documented values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SerializeQueueConfig {
    /// Most queues alive at once. Default 1024.
    pub max_queues: usize,
    /// Most values in one queue. Default 1024.
    pub max_depth: usize,
    /// Longest queue name, in bytes. Default 128.
    pub max_name_len: usize,
}

/// Counters of a [`SerializeQueue`]; all saturate at `u64::MAX`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SerializeQueueStats {
    /// Values accepted.
    pub enqueued: u64,
    /// Values handed out.
    pub dequeued: u64,
    /// Dequeues that found the queue empty or missing.
    pub dequeue_misses: u64,
    /// Enqueues refused because the queue was at `max_depth`.
    pub refused_queue_full: u64,
    /// Enqueues refused because `max_queues` queues already existed.
    pub refused_too_many_queues: u64,
    /// Enqueues refused because the name was over `max_name_len`.
    pub refused_name_too_long: u64,
    /// Most queues alive at once so far.
    pub peak_queues: u64,
}

/// A refused [`SerializeQueue::enqueue`]: why, plus the value, handed back.
#[derive(Debug, thiserror::Error)]
#[error("{reason}")]
pub struct SerializeQueueError {
    /// Why the value was refused.
    pub reason: SerializeQueueRefusal,
    /// The refused value, returned to the caller.
    pub value: Box<dyn SlotValue>,
}

/// Why [`SerializeQueue::enqueue`] refused a value.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SerializeQueueRefusal {
    /// The named queue holds `max_depth` values.
    #[error(
        "serialize queue `{name}` is full ({max_depth} values); dequeue first or raise max_depth"
    )]
    QueueFull {
        /// The queue's name.
        name: String,
        /// The cap.
        max_depth: usize,
    },
    /// `max_queues` queues exist and the name is new.
    #[error("{max_queues} serialize queues already exist; drain one or raise max_queues")]
    TooManyQueues {
        /// The cap.
        max_queues: usize,
    },
    /// The name is longer than `max_name_len`.
    #[error("serialize queue name is {len} bytes, over the cap of {max}; shorten it")]
    NameTooLong {
        /// The name's length in bytes.
        len: usize,
        /// The cap.
        max: usize,
    },
}

impl SerializeQueue {
    /// An empty set of queues under `config`.
    pub fn new(config: SerializeQueueConfig) -> Self {
        Self {
            config,
            queues: BTreeMap::new(),
            total_len: 0,
            stats: SerializeQueueStats::default(),
        }
    }

    /// Appends `value` to the queue called `name`, creating the queue if
    /// needed; a refusal hands the value back.
    pub fn enqueue(
        &mut self,
        name: &str,
        value: Box<dyn SlotValue>,
    ) -> Result<(), SerializeQueueError> {
        if name.len() > self.config.max_name_len {
            bump(&mut self.stats.refused_name_too_long);
            let reason = SerializeQueueRefusal::NameTooLong {
                len: name.len(),
                max: self.config.max_name_len,
            };
            return Err(SerializeQueueError { reason, value });
        }
        if let Some(queue) = self.queues.get_mut(name) {
            if queue.len() >= self.config.max_depth {
                bump(&mut self.stats.refused_queue_full);
                let reason = SerializeQueueRefusal::QueueFull {
                    name: name.to_owned(),
                    max_depth: self.config.max_depth,
                };
                return Err(SerializeQueueError { reason, value });
            }
            queue.push_back(value);
        } else {
            if self.queues.len() >= self.config.max_queues {
                bump(&mut self.stats.refused_too_many_queues);
                let reason = SerializeQueueRefusal::TooManyQueues {
                    max_queues: self.config.max_queues,
                };
                return Err(SerializeQueueError { reason, value });
            }
            if self.config.max_depth == 0 {
                bump(&mut self.stats.refused_queue_full);
                let reason = SerializeQueueRefusal::QueueFull {
                    name: name.to_owned(),
                    max_depth: 0,
                };
                return Err(SerializeQueueError { reason, value });
            }
            self.queues.insert(name.to_owned(), VecDeque::from([value]));
            self.stats.peak_queues = self.stats.peak_queues.max(self.queues.len() as u64);
        }
        self.total_len += 1;
        bump(&mut self.stats.enqueued);
        Ok(())
    }

    /// Takes the oldest value of the queue called `name`; the queue is
    /// removed when this empties it. `None` (counted) when there is none.
    pub fn dequeue(&mut self, name: &str) -> Option<Box<dyn SlotValue>> {
        let Some(queue) = self.queues.get_mut(name) else {
            bump(&mut self.stats.dequeue_misses);
            return None;
        };
        let value = queue.pop_front();
        if queue.is_empty() {
            self.queues.remove(name);
        }
        match value {
            Some(_) => {
                self.total_len -= 1;
                bump(&mut self.stats.dequeued);
            }
            None => bump(&mut self.stats.dequeue_misses),
        }
        value
    }

    /// The oldest value of the queue called `name`, left in place.
    pub fn peek(&self, name: &str) -> Option<&dyn SlotValue> {
        self.queues.get(name)?.front().map(|v| &**v)
    }

    /// Values waiting in the queue called `name` (0 if it does not exist).
    pub fn len(&self, name: &str) -> usize {
        self.queues.get(name).map_or(0, VecDeque::len)
    }

    /// Values waiting across all queues.
    pub fn total_len(&self) -> usize {
        self.total_len
    }

    /// Whether no value waits in any queue.
    pub fn is_empty(&self) -> bool {
        self.queues.is_empty()
    }

    /// Queues alive (each holds at least one value).
    pub fn queue_count(&self) -> usize {
        self.queues.len()
    }

    /// Every waiting value: queues in name order, values oldest first.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &dyn SlotValue)> + '_ {
        self.queues
            .iter()
            .flat_map(|(name, q)| q.iter().map(move |v| (name.as_str(), &**v)))
    }

    /// The caps in force.
    pub fn config(&self) -> &SerializeQueueConfig {
        &self.config
    }

    /// The counters so far.
    pub fn stats(&self) -> &SerializeQueueStats {
        &self.stats
    }
}

impl Default for SerializeQueueConfig {
    fn default() -> Self {
        Self {
            max_queues: 1024,
            max_depth: 1024,
            max_name_len: 128,
        }
    }
}

impl SerializeQueueError {
    /// The refused value, for a retry.
    pub fn into_value(self) -> Box<dyn SlotValue> {
        self.value
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::U64Value;

    fn num(n: u64) -> Box<dyn SlotValue> {
        Box::new(U64Value(n))
    }

    fn unnum(v: Option<Box<dyn SlotValue>>) -> Option<u64> {
        v.map(|v| {
            v.downcast_ref::<U64Value>()
                .expect("test values are U64Value")
                .0
        })
    }

    fn config(max_queues: usize, max_depth: usize) -> SerializeQueueConfig {
        SerializeQueueConfig {
            max_queues,
            max_depth,
            max_name_len: 8,
        }
    }

    #[test]
    fn queues_are_fifo_and_independent() {
        let mut q = SerializeQueue::default();
        q.enqueue("a", num(1)).unwrap();
        q.enqueue("b", num(10)).unwrap();
        q.enqueue("a", num(2)).unwrap();
        assert_eq!(q.len("a"), 2);
        assert_eq!(q.len("b"), 1);
        assert_eq!(q.total_len(), 3);
        assert_eq!(unnum(q.dequeue("a")), Some(1));
        assert_eq!(unnum(q.dequeue("b")), Some(10));
        assert_eq!(unnum(q.dequeue("a")), Some(2));
        assert_eq!(q.total_len(), 0);
        assert!(q.is_empty());
    }

    #[test]
    fn emptied_queue_is_removed_and_missing_dequeue_is_counted() {
        let mut q = SerializeQueue::default();
        q.enqueue("a", num(1)).unwrap();
        assert_eq!(q.queue_count(), 1);
        assert!(q.dequeue("a").is_some());
        assert_eq!(q.queue_count(), 0);
        assert!(q.dequeue("a").is_none());
        assert!(q.dequeue("never").is_none());
        assert_eq!(q.stats().dequeue_misses, 2);
        assert_eq!(q.stats().dequeued, 1);
        assert_eq!(q.stats().enqueued, 1);
    }

    #[test]
    fn full_queue_refuses_and_hands_value_back() {
        let mut q = SerializeQueue::new(config(4, 2));
        q.enqueue("a", num(1)).unwrap();
        q.enqueue("a", num(2)).unwrap();
        let err = q.enqueue("a", num(3)).unwrap_err();
        assert_eq!(
            err.reason,
            SerializeQueueRefusal::QueueFull {
                name: "a".into(),
                max_depth: 2
            }
        );
        assert_eq!(unnum(Some(err.into_value())), Some(3));
        assert_eq!(q.len("a"), 2);
        assert_eq!(q.stats().refused_queue_full, 1);
        // Dequeuing frees room again.
        q.dequeue("a");
        q.enqueue("a", num(3)).unwrap();
        assert_eq!(unnum(q.dequeue("a")), Some(2));
        assert_eq!(unnum(q.dequeue("a")), Some(3));
    }

    #[test]
    fn queue_count_cap_refuses_new_names_only() {
        let mut q = SerializeQueue::new(config(2, 4));
        q.enqueue("a", num(1)).unwrap();
        q.enqueue("b", num(2)).unwrap();
        let err = q.enqueue("c", num(3)).unwrap_err();
        assert_eq!(
            err.reason,
            SerializeQueueRefusal::TooManyQueues { max_queues: 2 }
        );
        assert_eq!(q.stats().refused_too_many_queues, 1);
        // Existing queues still accept.
        q.enqueue("a", num(4)).unwrap();
        // Once a queue drains, a new name fits.
        q.dequeue("b");
        q.enqueue("c", num(3)).unwrap();
        assert_eq!(q.stats().peak_queues, 2);
    }

    #[test]
    fn long_name_is_refused() {
        let mut q = SerializeQueue::new(config(2, 2));
        q.enqueue("12345678", num(1)).unwrap();
        let err = q.enqueue("123456789", num(2)).unwrap_err();
        assert_eq!(
            err.reason,
            SerializeQueueRefusal::NameTooLong { len: 9, max: 8 }
        );
        assert_eq!(q.stats().refused_name_too_long, 1);
        assert!(err.to_string().contains("9 bytes"));
    }

    #[test]
    fn zero_depth_refuses_everything() {
        let mut q = SerializeQueue::new(config(2, 0));
        let err = q.enqueue("a", num(1)).unwrap_err();
        assert!(matches!(
            err.reason,
            SerializeQueueRefusal::QueueFull { max_depth: 0, .. }
        ));
        assert_eq!(q.queue_count(), 0);
        assert_eq!(q.stats().enqueued, 0);
    }

    #[test]
    fn peek_and_iter_follow_name_then_fifo_order() {
        let mut q = SerializeQueue::default();
        q.enqueue("b", num(3)).unwrap();
        q.enqueue("a", num(1)).unwrap();
        q.enqueue("a", num(2)).unwrap();
        assert_eq!(
            q.peek("a").and_then(|v| v.downcast_ref::<U64Value>()),
            Some(&U64Value(1))
        );
        assert!(q.peek("z").is_none());
        let seen: Vec<(&str, u64)> = q
            .iter()
            .map(|(n, v)| (n, v.downcast_ref::<U64Value>().unwrap().0))
            .collect();
        assert_eq!(seen, [("a", 1), ("a", 2), ("b", 3)]);
        assert_eq!(q.len("a"), 2, "peek must not consume");
    }
}
