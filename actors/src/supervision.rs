//! Restart policy of a supervised actor: how often its Node is snapshotted
//! and how many restarts from the last snapshot it gets before it is
//! stopped for good.
//!
//! # Invariants
//! * A restart is allowed only while fewer than
//!   [`SupervisionConfig::max_restarts`] restarts happened within the last
//!   [`SupervisionConfig::restart_window_ns`] (clock time); the next panic
//!   after that stops the Node and is reported, never retried.
//! * The window's memory is bounded by `max_restarts` entries.

use std::collections::VecDeque;

use nodeflow_engine::sync::Arc;
use nodeflow_engine::NodeBuilder;

/// Builds a fresh [`NodeBuilder`] for one peer: same graphs, components and
/// config every call. A supervisor calls it once at spawn and once per
/// restart (then restores the last snapshot into the built Node), so
/// components must be created inside the closure, not captured.
pub type NodeFactory = Arc<dyn Fn() -> NodeBuilder + Send + Sync>;

/// When a supervised actor snapshots its Node and how often it may restart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SupervisionConfig {
    /// Snapshot the Node when at least this much clock time has passed since
    /// the last snapshot (checked after each round of polls). `None`: only
    /// at start and on request. Default 100 ms. Work done after the last
    /// snapshot is lost by a restart (and counted), so a shorter period
    /// loses less at the cost of more serialisation.
    pub snapshot_every_ns: Option<u64>,
    /// Most restarts within [`SupervisionConfig::restart_window_ns`]; one
    /// more panic stops the Node for good (default 3; 0 never restarts).
    pub max_restarts: u32,
    /// Length of the restart-intensity window in clock nanoseconds
    /// (default 5 s).
    pub restart_window_ns: u64,
}

impl Default for SupervisionConfig {
    fn default() -> Self {
        Self {
            snapshot_every_ns: Some(100_000_000),
            max_restarts: 3,
            restart_window_ns: 5_000_000_000,
        }
    }
}

/// The times of recent restarts, to enforce the restart intensity.
#[derive(Debug, Default)]
pub(crate) struct RestartWindow {
    /// Restart times (clock ns), oldest first; at most `max_restarts`.
    times: VecDeque<u64>,
}

impl RestartWindow {
    /// Records a restart at `now_ns` and returns `true` if `config` allows
    /// it; returns `false` (recording nothing) when the window is full.
    pub(crate) fn try_restart(&mut self, config: &SupervisionConfig, now_ns: u64) -> bool {
        let horizon = now_ns.saturating_sub(config.restart_window_ns);
        while self
            .times
            .front()
            .is_some_and(|&at| at <= horizon && at < now_ns)
        {
            self.times.pop_front();
        }
        if self.times.len() >= config.max_restarts as usize {
            return false;
        }
        self.times.push_back(now_ns);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(max_restarts: u32, window: u64) -> SupervisionConfig {
        SupervisionConfig {
            snapshot_every_ns: None,
            max_restarts,
            restart_window_ns: window,
        }
    }

    #[test]
    fn allows_max_restarts_per_window_then_refuses() {
        let config = config(2, 100);
        let mut window = RestartWindow::default();
        assert!(window.try_restart(&config, 10));
        assert!(window.try_restart(&config, 20));
        assert!(!window.try_restart(&config, 30), "third within 100 ns");
        assert!(!window.try_restart(&config, 109), "10 is still inside");
        // At 110 the restart at 10 has left the window.
        assert!(window.try_restart(&config, 110));
        assert!(!window.try_restart(&config, 111));
        assert!(window.times.len() <= 2, "memory bounded by the cap");
    }

    #[test]
    fn zero_restarts_never_restarts_and_equal_times_stay_in_the_window() {
        let mut window = RestartWindow::default();
        assert!(!window.try_restart(&config(0, 100), 5));
        let config = config(1, 0);
        assert!(window.try_restart(&config, 7));
        assert!(
            !window.try_restart(&config, 7),
            "same instant, even with a zero window"
        );
        assert!(window.try_restart(&config, 8));
    }

    #[test]
    fn the_default_snapshots_every_100_ms_and_allows_3_restarts_in_5_s() {
        let d = SupervisionConfig::default();
        assert_eq!(d.snapshot_every_ns, Some(100_000_000));
        assert_eq!((d.max_restarts, d.restart_window_ns), (3, 5_000_000_000));
    }
}
