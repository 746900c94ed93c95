//! In-flight wire requests: [`RequestTracker`] maps the correlation token a
//! request carries on the wire to the parked command waiting for its response.
//!
//! Invariants:
//! * Tokens are minted from 1 upwards and never reused; 0 is never issued
//!   (it means "no correlation" on the wire). When the counter runs out,
//!   [`RequestTracker::register`] fails with [`RequestError::TokensExhausted`].
//! * At most `max_pending` requests are tracked; more are refused with
//!   [`RequestError::TooManyPending`] and counted.
//! * Every request leaves the tracker exactly once: resolved by its
//!   response, or drained as expired once `now_ns >= deadline_ns`. A
//!   response for a token that is unknown, already resolved or already
//!   expired is stale: [`RequestTracker::resolve`] returns `None` and counts it.
//! * Expired requests drain in deadline order, ties in token (registration)
//!   order; state lives in ordered maps, so snapshots are deterministic.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::ids::{CommandId, IdCounter, NodeSiteId};

/// Default cap on requests in flight per Node.
pub const DEFAULT_MAX_PENDING_REQUESTS: usize = 4096;

/// A wire request waiting for its response.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingRequest {
    /// The correlation token sent on the wire.
    pub token: u64,
    /// The parked command to complete or fail.
    pub cmd: CommandId,
    /// Where the request went.
    pub target: NodeSiteId,
    /// When it was sent (host monotonic ns); RTT samples start here.
    pub sent_at_ns: u64,
    /// When it times out (host monotonic ns).
    pub deadline_ns: u64,
}

/// Why [`RequestTracker::register`] refused a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RequestError {
    /// The tracker already holds `cap` requests.
    #[error("request for {cmd} to {target} not tracked: {cap} requests already in flight; fail the command or retry after responses land")]
    TooManyPending {
        /// The command of the refused request, handed back.
        cmd: CommandId,
        /// The target of the refused request, handed back.
        target: NodeSiteId,
        /// The cap in force.
        cap: usize,
    },
    /// Every correlation token has been issued.
    #[error("request for {cmd} to {target} not tracked: correlation tokens exhausted; restart the Node to reset them")]
    TokensExhausted {
        /// The command of the refused request, handed back.
        cmd: CommandId,
        /// The target of the refused request, handed back.
        target: NodeSiteId,
    },
}

/// Counters of a [`RequestTracker`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestStats {
    /// Requests accepted by `register`.
    pub registered: u64,
    /// Requests matched by a response.
    pub resolved: u64,
    /// Requests drained past their deadline.
    pub expired: u64,
    /// Responses with an unknown, duplicate or already-expired token.
    pub stale_responses: u64,
    /// Registrations refused at the cap.
    pub refused_at_cap: u64,
    /// Registrations refused because tokens ran out.
    pub refused_exhausted: u64,
}

/// Correlation-token table for in-flight wire requests.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RequestTracker {
    pending: BTreeMap<u64, PendingRequest>,
    /// `(deadline_ns, token)` of every pending request, for ordered expiry.
    by_deadline: BTreeSet<(u64, u64)>,
    tokens: IdCounter,
    max_pending: usize,
    stats: RequestStats,
}

impl RequestTracker {
    /// An empty tracker holding at most `max_pending` requests.
    pub fn new(max_pending: usize) -> Self {
        Self::with_first_token(max_pending, 1)
    }

    /// Tracks a request sent at `sent_at_ns` that expires at `deadline_ns`
    /// and returns its fresh correlation token (never 0). A deadline at or
    /// before `sent_at_ns` is accepted; the request simply expires at the
    /// next [`RequestTracker::drain_expired`].
    ///
    /// # Errors
    /// [`RequestError::TooManyPending`] at the cap, and
    /// [`RequestError::TokensExhausted`] once tokens run out; both hand the
    /// command and target back and are counted.
    pub fn register(
        &mut self,
        cmd: CommandId,
        target: NodeSiteId,
        sent_at_ns: u64,
        deadline_ns: u64,
    ) -> Result<u64, RequestError> {
        if self.pending.len() >= self.max_pending {
            self.stats.refused_at_cap = self.stats.refused_at_cap.saturating_add(1);
            return Err(RequestError::TooManyPending {
                cmd,
                target,
                cap: self.max_pending,
            });
        }
        let Some(token) = self.tokens.mint() else {
            self.stats.refused_exhausted = self.stats.refused_exhausted.saturating_add(1);
            return Err(RequestError::TokensExhausted { cmd, target });
        };
        self.pending.insert(
            token,
            PendingRequest {
                token,
                cmd,
                target,
                sent_at_ns,
                deadline_ns,
            },
        );
        self.by_deadline.insert((deadline_ns, token));
        self.stats.registered = self.stats.registered.saturating_add(1);
        Ok(token)
    }

    /// Removes and returns the request a response with `token` answers, or
    /// `None` (counted as stale) when the token is unknown, already resolved
    /// or already expired.
    pub fn resolve(&mut self, token: u64) -> Option<PendingRequest> {
        let Some(request) = self.pending.remove(&token) else {
            self.stats.stale_responses = self.stats.stale_responses.saturating_add(1);
            return None;
        };
        self.by_deadline.remove(&(request.deadline_ns, token));
        self.stats.resolved = self.stats.resolved.saturating_add(1);
        Some(request)
    }

    /// Removes and returns every request whose deadline is at or before
    /// `now_ns`, earliest deadline first (ties in token order).
    pub fn drain_expired(&mut self, now_ns: u64) -> Vec<PendingRequest> {
        let mut expired = Vec::new();
        while let Some(&(deadline, token)) = self.by_deadline.first() {
            if deadline > now_ns {
                break;
            }
            self.by_deadline.pop_first();
            if let Some(request) = self.pending.remove(&token) {
                expired.push(request);
            }
        }
        self.stats.expired = self
            .stats
            .expired
            .saturating_add(u64::try_from(expired.len()).unwrap_or(u64::MAX));
        expired
    }

    /// The earliest deadline among pending requests, if any.
    pub fn next_deadline(&self) -> Option<u64> {
        self.by_deadline.first().map(|&(deadline, _)| deadline)
    }

    /// The pending request for `token`, without removing it.
    pub fn peek(&self, token: u64) -> Option<&PendingRequest> {
        self.pending.get(&token)
    }

    /// Number of requests in flight.
    pub fn len(&self) -> usize {
        self.pending.len()
    }

    /// Whether no request is in flight.
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// The cap this tracker was built with.
    pub fn max_pending(&self) -> usize {
        self.max_pending
    }

    /// The token the next request would get.
    pub fn next_token(&self) -> u64 {
        self.tokens.peek()
    }

    /// Makes every later token at least `next`, so tokens an earlier
    /// incarnation of the Node handed out are never reused (a late
    /// response to one of them then matches nothing).
    pub fn skip_tokens_below(&mut self, next: u64) {
        self.tokens.advance_to(next);
    }

    /// Lifetime counters.
    pub fn stats(&self) -> RequestStats {
        self.stats
    }

    /// A tracker whose first token is `first` (tests reach exhaustion with it).
    fn with_first_token(max_pending: usize, first: u64) -> Self {
        Self {
            pending: BTreeMap::new(),
            by_deadline: BTreeSet::new(),
            tokens: IdCounter::starting_at(first.max(1)),
            max_pending,
            stats: RequestStats::default(),
        }
    }
}

impl Default for RequestTracker {
    /// A tracker capped at [`DEFAULT_MAX_PENDING_REQUESTS`].
    fn default() -> Self {
        Self::new(DEFAULT_MAX_PENDING_REQUESTS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{PeerId, SiteId};

    fn target(n: u64) -> NodeSiteId {
        NodeSiteId::new(PeerId::new(n), SiteId::new(1))
    }

    fn cmd(n: u64) -> CommandId {
        CommandId::new(n)
    }

    #[test]
    fn tokens_start_at_one_and_increase() {
        let mut t = RequestTracker::new(8);
        assert_eq!(t.register(cmd(10), target(1), 0, 100), Ok(1));
        assert_eq!(t.register(cmd(11), target(1), 0, 100), Ok(2));
        assert_eq!(t.len(), 2);
    }

    #[test]
    fn token_zero_is_never_issued_and_resolving_it_is_stale() {
        let mut t = RequestTracker::with_first_token(8, 0);
        assert_eq!(t.register(cmd(1), target(1), 0, 10), Ok(1));
        assert_eq!(t.resolve(0), None);
        assert_eq!(t.stats().stale_responses, 1);
    }

    #[test]
    fn resolve_returns_request_once_then_stale() {
        let mut t = RequestTracker::new(8);
        let token = t.register(cmd(7), target(3), 50, 150).unwrap();
        let got = t.resolve(token).unwrap();
        assert_eq!(
            got,
            PendingRequest {
                token,
                cmd: cmd(7),
                target: target(3),
                sent_at_ns: 50,
                deadline_ns: 150
            }
        );
        assert_eq!(t.resolve(token), None, "duplicate response");
        assert_eq!(t.resolve(999), None, "unknown token");
        assert_eq!(t.stats().resolved, 1);
        assert_eq!(t.stats().stale_responses, 2);
        assert!(t.is_empty());
        assert_eq!(
            t.next_deadline(),
            None,
            "resolved request left the deadline index"
        );
    }

    #[test]
    fn cap_refuses_counts_and_hands_input_back() {
        let mut t = RequestTracker::new(1);
        t.register(cmd(1), target(1), 0, 10).unwrap();
        let err = t.register(cmd(2), target(2), 0, 10).unwrap_err();
        assert_eq!(
            err,
            RequestError::TooManyPending {
                cmd: cmd(2),
                target: target(2),
                cap: 1
            }
        );
        assert_eq!(t.stats().refused_at_cap, 1);
        assert_eq!(t.len(), 1);
        // A refused register burns no token.
        t.resolve(1).unwrap();
        assert_eq!(t.register(cmd(2), target(2), 0, 10), Ok(2));
    }

    #[test]
    fn zero_cap_refuses_everything() {
        let mut t = RequestTracker::new(0);
        assert!(matches!(
            t.register(cmd(1), target(1), 0, 1),
            Err(RequestError::TooManyPending { cap: 0, .. })
        ));
    }

    #[test]
    fn exhausted_tokens_are_a_typed_error() {
        let mut t = RequestTracker::with_first_token(8, u64::MAX - 1);
        assert_eq!(t.register(cmd(1), target(1), 0, 10), Ok(u64::MAX - 1));
        let err = t.register(cmd(2), target(4), 0, 10).unwrap_err();
        assert_eq!(
            err,
            RequestError::TokensExhausted {
                cmd: cmd(2),
                target: target(4)
            }
        );
        assert!(t.register(cmd(3), target(4), 0, 10).is_err());
        assert_eq!(t.stats().refused_exhausted, 2);
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn drain_expired_in_deadline_then_token_order_inclusive() {
        let mut t = RequestTracker::new(8);
        let a = t.register(cmd(1), target(1), 0, 300).unwrap();
        let b = t.register(cmd(2), target(1), 0, 100).unwrap();
        let c = t.register(cmd(3), target(1), 0, 200).unwrap();
        let d = t.register(cmd(4), target(1), 0, 100).unwrap();
        assert_eq!(t.next_deadline(), Some(100));
        assert!(t.drain_expired(99).is_empty());
        let first: Vec<u64> = t.drain_expired(200).iter().map(|r| r.token).collect();
        assert_eq!(
            first,
            [b, d, c],
            "deadline order, ties by token; deadline is inclusive"
        );
        assert_eq!(t.next_deadline(), Some(300));
        assert_eq!(t.len(), 1);
        assert_eq!(t.stats().expired, 3);
        // An expired request's late response is stale.
        assert_eq!(t.resolve(b), None);
        assert_eq!(t.stats().stale_responses, 1);
        let rest: Vec<u64> = t.drain_expired(u64::MAX).iter().map(|r| r.token).collect();
        assert_eq!(rest, [a]);
        assert!(t.is_empty());
    }

    #[test]
    fn deadline_before_send_expires_immediately() {
        let mut t = RequestTracker::new(8);
        let token = t.register(cmd(1), target(1), 500, 0).unwrap();
        assert_eq!(t.next_deadline(), Some(0));
        let drained = t.drain_expired(0);
        assert_eq!(drained.len(), 1);
        assert_eq!(drained[0].token, token);
    }

    #[test]
    fn peek_does_not_remove() {
        let mut t = RequestTracker::new(8);
        let token = t.register(cmd(5), target(2), 1, 2).unwrap();
        assert_eq!(t.peek(token).map(|r| r.cmd), Some(cmd(5)));
        assert_eq!(t.len(), 1);
        assert_eq!(t.stats().stale_responses, 0);
    }

    #[test]
    fn snapshot_round_trip_keeps_tokens_deadlines_and_stats() {
        let mut t = RequestTracker::new(8);
        t.register(cmd(1), target(1), 0, 50).unwrap();
        let keep = t.register(cmd(2), target(2), 0, 80).unwrap();
        t.resolve(1);
        let json = serde_json::to_string(&t).unwrap();
        let mut back: RequestTracker = serde_json::from_str(&json).unwrap();
        assert_eq!(back.stats(), t.stats());
        assert_eq!(back.next_deadline(), Some(80));
        assert_eq!(
            back.register(cmd(3), target(3), 0, 90),
            Ok(3),
            "token counter resumed"
        );
        assert_eq!(back.resolve(keep).map(|r| r.cmd), Some(cmd(2)));
    }

    #[test]
    fn default_uses_documented_cap() {
        assert_eq!(
            RequestTracker::default().max_pending(),
            DEFAULT_MAX_PENDING_REQUESTS
        );
    }
}
