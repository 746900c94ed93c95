//! Credit-based flow control between Nodes (ARCHITECTURE §3.1): per
//! (sender → receiver) windows of envelopes, like HTTP/2 and QUIC stream
//! windows.
//!
//! # Protocol
//! 1. Every sender starts with `window` credits for every receiver.
//!    Sending a `OneWay` or `Request` envelope takes one
//!    ([`FlowControl::try_send`]).
//! 2. Without credit (or while earlier envelopes to that receiver are still
//!    held, so order is kept) the envelope is **held** here with the
//!    command of the `Send` op that made it ([`FlowControl::hold`]); the op
//!    parks until the envelope leaves or its deadline passes
//!    ([`FlowControl::cancel`]).
//! 3. The receiver counts every credited envelope it takes from its
//!    mailbox ([`FlowControl::note_taken`]). It returns the count to the
//!    sender piggy-backed on any control-lane envelope it sends to it
//!    anyway (a response: [`FlowControl::take_owed`]), and alone in a
//!    `Credit` envelope once `return_batch` are owed
//!    ([`FlowControl::due_returns`]).
//! 4. A returned credit ([`FlowControl::grant`]) releases held envelopes in
//!    order, one credit each.
//!
//! # Invariants
//! * A sender never holds more than `window` credits for one receiver
//!   (grants are capped), so a duplicated or stale return cannot widen a
//!   window; credited envelopes queued at a receiver number at most
//!   `window` per sender.
//! * Envelopes to one receiver leave in the order their `Send`s ran.
//! * No deadlock while the receiver keeps draining: a sender is out of
//!   credit only when `window` envelopes are queued at the receiver or
//!   owed by it, and the receiver returns a batch as soon as
//!   `return_batch <= window` of them are owed.
//! * Once `max_held` envelopes are held Node-wide the Node takes no more
//!   data-lane input ([`FlowControl::is_stalled`]), so its own lane fills
//!   and back-pressure reaches its host; work it had already taken may hold
//!   more, up to a hard cap of `max_held` × [`FlowConfig::HARD_HELD_FACTOR`].
//! * Every map is capped by `max_peers`: a send to a new receiver past the
//!   cap gets no credit and [`FlowControl::hold`] refuses it, so the caller
//!   fails the op with a typed error; a new sender past the cap is owed its
//!   credits one envelope at a time.

use std::collections::{HashMap, VecDeque};

use serde::{Deserialize, Serialize};

use crate::ids::{CommandId, PeerId};
use crate::wire::Envelope;

/// Window sizes and caps of a Node's flow control.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlowConfig {
    /// Whether `Send`s wait for credit (default on). Off: every envelope
    /// leaves at once and a full receiver refuses it (the pre-credit
    /// behaviour, for hosts that do their own flow control).
    pub enabled: bool,
    /// Envelopes a sender may have unacknowledged at one receiver (default
    /// 256). What a receiver that never drains costs each sender: `window`
    /// envelopes queued at the receiver plus at most `max_held` parked
    /// `Send`s (each failing typed at its deadline).
    pub window: u32,
    /// Credits a receiver owes a sender before it returns them alone in a
    /// `Credit` envelope (default 64; clamped to `1..=window`).
    pub return_batch: u32,
    /// Envelopes held Node-wide waiting for credit before the Node stalls
    /// (default 1024): at this count it takes no more data-lane input until
    /// credit returns. Work already taken may still hold up to
    /// [`FlowConfig::HARD_HELD_FACTOR`] times as many (one poll drains up to
    /// `ingress_per_poll` events before their sends run); past that a
    /// `Send` fails typed (`wire.flow_held_full`).
    pub max_held: usize,
    /// Most peers tracked on each side (default 65 536).
    pub max_peers: usize,
}

impl FlowConfig {
    /// The hard cap on held envelopes, as a multiple of `max_held`.
    pub const HARD_HELD_FACTOR: usize = 4;
}

impl Default for FlowConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            window: 256,
            return_batch: 64,
            max_held: 1024,
            max_peers: 65_536,
        }
    }
}

/// An envelope waiting for credit, with the `Send` op parked on it.
#[derive(Debug)]
pub struct Held {
    /// The parked command (the `Send` op's, or its request's).
    pub cmd: CommandId,
    /// What leaves once credit comes.
    pub envelope: Envelope,
    /// `Some(outputs)`: a one-way `Send` that completes (with a trigger on
    /// its `outputs` outputs, 0 or 1) when the envelope leaves; `None`: a
    /// request, which keeps waiting for its response.
    pub completes: Option<u8>,
}

/// Why an envelope could not be held; it is handed back.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HoldError {
    /// The hard cap (`max_held` × [`FlowConfig::HARD_HELD_FACTOR`]) of
    /// envelopes already waits for credit.
    #[error("{cap} sends already wait for flow-control credit; the receivers are not draining")]
    Full {
        /// The cap in force.
        cap: usize,
        /// The envelope, handed back.
        envelope: Box<Envelope>,
    },
    /// The sender-side table is at `max_peers`.
    #[error("flow control tracks {cap} peers already; raise max_peers")]
    TooManyPeers {
        /// The cap in force.
        cap: usize,
        /// The envelope, handed back.
        envelope: Box<Envelope>,
    },
}

/// Counters of a Node's flow control (monotonic).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlowStats {
    /// Envelopes that had to wait for credit.
    pub held: u64,
    /// Held envelopes released by returned credit.
    pub released: u64,
    /// Held envelopes dropped because their `Send` passed its deadline
    /// (the op failed typed).
    pub expired: u64,
    /// Credits received from receivers.
    pub credits_received: u64,
    /// Credits returned to senders.
    pub credits_returned: u64,
    /// `Credit` envelopes sent (returns that found nothing to ride on).
    pub credit_envelopes: u64,
}

/// The credit state that must outlive a Node incarnation (a supervised
/// restart carries it from the dead Node to its successor, since credits
/// move with envelopes the snapshot knows nothing about).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlowLedger {
    /// Sender side: credits left per receiver (absent: a full window).
    pub credits: Vec<(PeerId, u32)>,
    /// Receiver side: credits owed per sender.
    pub owed: Vec<(PeerId, u32)>,
}

#[derive(Debug)]
struct SendWindow {
    available: u32,
    held: VecDeque<Held>,
}

/// A Node's flow-control state (module docs).
#[derive(Debug)]
pub struct FlowControl {
    config: FlowConfig,
    send: HashMap<PeerId, SendWindow>,
    owed: HashMap<PeerId, u32>,
    /// Senders whose owed count reached `return_batch` (each listed once).
    due: Vec<PeerId>,
    /// Which receiver each held command waits on.
    held_by_cmd: HashMap<CommandId, PeerId>,
    held_total: usize,
    stats: FlowStats,
}

impl FlowControl {
    /// Empty state under `config` (`window` 0 is treated as 1).
    pub fn new(mut config: FlowConfig) -> Self {
        config.window = config.window.max(1);
        config.return_batch = config.return_batch.clamp(1, config.window);
        Self {
            config,
            send: HashMap::new(),
            owed: HashMap::new(),
            due: Vec::new(),
            held_by_cmd: HashMap::new(),
            held_total: 0,
            stats: FlowStats::default(),
        }
    }

    /// The settings in force.
    pub fn config(&self) -> FlowConfig {
        self.config
    }

    /// Counters.
    pub fn stats(&self) -> FlowStats {
        self.stats
    }

    /// Envelopes held Node-wide.
    pub fn held_len(&self) -> usize {
        self.held_total
    }

    /// Whether `max_held` envelopes wait for credit: the Node should take
    /// no more data-lane input until some leave.
    pub fn is_stalled(&self) -> bool {
        self.config.enabled && self.held_total >= self.config.max_held
    }

    /// Credits left for sends to `to` (a full window if never used).
    pub fn credits(&self, to: PeerId) -> u32 {
        self.send
            .get(&to)
            .map_or(self.config.window, |w| w.available)
    }

    /// Takes a credit for `envelope` if it may leave now: `Ok` hands it
    /// back to send, `Err` hands it back to [`FlowControl::hold`].
    /// Envelopes that use no credit ([`Envelope::uses_credit`]) and all
    /// envelopes with flow control off always leave.
    #[allow(clippy::result_large_err)]
    pub fn try_send(&mut self, envelope: Envelope) -> Result<Envelope, Envelope> {
        if !self.config.enabled || !envelope.uses_credit() {
            return Ok(envelope);
        }
        let window = self.config.window;
        let cap = self.config.max_peers;
        let len = self.send.len();
        let entry = match self.send.get_mut(&envelope.dst) {
            Some(entry) => entry,
            None if len < cap => self.send.entry(envelope.dst).or_insert(SendWindow {
                available: window,
                held: VecDeque::new(),
            }),
            None => return Err(envelope),
        };
        if entry.held.is_empty() && entry.available > 0 {
            entry.available -= 1;
            return Ok(envelope);
        }
        Err(envelope)
    }

    /// Holds `envelope` (refused by [`FlowControl::try_send`]) until credit
    /// for its destination returns.
    pub fn hold(
        &mut self,
        cmd: CommandId,
        envelope: Envelope,
        completes: Option<u8>,
    ) -> Result<(), HoldError> {
        let hard_cap = self
            .config
            .max_held
            .saturating_mul(FlowConfig::HARD_HELD_FACTOR)
            .max(1);
        if self.held_total >= hard_cap {
            return Err(HoldError::Full {
                cap: hard_cap,
                envelope: Box::new(envelope),
            });
        }
        let Some(window) = self.send.get_mut(&envelope.dst) else {
            return Err(HoldError::TooManyPeers {
                cap: self.config.max_peers,
                envelope: Box::new(envelope),
            });
        };
        self.held_by_cmd.insert(cmd, envelope.dst);
        window.held.push_back(Held {
            cmd,
            envelope,
            completes,
        });
        self.held_total += 1;
        self.stats.held += 1;
        Ok(())
    }

    /// `credit` credits came back from `from`: adds them (capped at the
    /// window) and releases held envelopes to it in order, one credit each,
    /// appending them to `released`.
    pub fn grant(&mut self, from: PeerId, credit: u32, released: &mut Vec<Held>) {
        if credit == 0 {
            return;
        }
        self.stats.credits_received += u64::from(credit);
        self.add_credit(from, credit, released);
    }

    /// Adds `credit` for sends to `peer` (capped at the window) and releases
    /// what it lets go; counts nothing as received.
    fn add_credit(&mut self, peer: PeerId, credit: u32, released: &mut Vec<Held>) {
        let Some(window) = self.send.get_mut(&peer) else {
            // Never sent to: the window is still full.
            return;
        };
        window.available = window
            .available
            .saturating_add(credit)
            .min(self.config.window);
        self.release_from(peer, released);
    }

    /// Releases held envelopes to `peer` while it has credit, in order.
    fn release_from(&mut self, peer: PeerId, released: &mut Vec<Held>) {
        let Some(window) = self.send.get_mut(&peer) else {
            return;
        };
        while window.available > 0 {
            let Some(held) = window.held.pop_front() else {
                break;
            };
            window.available -= 1;
            self.held_by_cmd.remove(&held.cmd);
            self.held_total -= 1;
            self.stats.released += 1;
            released.push(held);
        }
    }

    /// Gives back the credit of a credited envelope that never reached its
    /// receiver (the host refused it): the window must not shrink for it.
    /// Held envelopes it lets go are appended to `released`.
    pub fn refund(&mut self, to: PeerId, released: &mut Vec<Held>) {
        if !self.config.enabled {
            return;
        }
        // Not counted as received: the receiver returned nothing.
        self.add_credit(to, 1, released);
    }

    /// Removes the envelope held for `cmd` (its `Send` passed its deadline
    /// or its request expired); `None` if nothing is held for it.
    pub fn cancel(&mut self, cmd: CommandId) -> Option<Held> {
        let peer = self.held_by_cmd.remove(&cmd)?;
        let window = self.send.get_mut(&peer)?;
        let at = window.held.iter().position(|h| h.cmd == cmd)?;
        let held = window.held.remove(at)?;
        self.held_total -= 1;
        self.stats.expired += 1;
        Some(held)
    }

    /// Receiver side: a credited envelope from `from` was taken from the
    /// mailbox; one more credit is owed to it.
    pub fn note_taken(&mut self, from: PeerId) {
        if !self.config.enabled {
            return;
        }
        let len = self.owed.len();
        let owed = match self.owed.get_mut(&from) {
            Some(owed) => owed,
            None if len < self.config.max_peers => self.owed.entry(from).or_insert(0),
            // Past the cap the sender is answered alone, at once.
            None => {
                self.due.push(from);
                return;
            }
        };
        *owed += 1;
        if *owed == self.config.return_batch {
            self.due.push(from);
        }
    }

    /// Credits owed to `to`, taken to ride on an envelope going there now.
    pub fn take_owed(&mut self, to: PeerId) -> u32 {
        let owed = self.owed.remove(&to).unwrap_or(0);
        self.stats.credits_returned += u64::from(owed);
        owed
    }

    /// Senders owed at least a batch, with what is owed (taken). A sender
    /// past the table cap is owed 1 per envelope.
    pub fn due_returns(&mut self, mut each: impl FnMut(PeerId, u32)) {
        for peer in std::mem::take(&mut self.due) {
            let owed = match self.owed.remove(&peer) {
                Some(owed) => owed,
                None if self.owed.len() >= self.config.max_peers => 1,
                None => 0,
            };
            if owed > 0 {
                self.stats.credits_returned += u64::from(owed);
                self.stats.credit_envelopes += 1;
                each(peer, owed);
            }
        }
    }

    /// Every credit owed, taken (a Node that drains for shutdown returns
    /// them all so its senders' parked `Send`s can finish).
    pub fn take_all_owed(&mut self, mut each: impl FnMut(PeerId, u32)) {
        self.due.clear();
        for (peer, owed) in std::mem::take(&mut self.owed) {
            if owed > 0 {
                self.stats.credits_returned += u64::from(owed);
                self.stats.credit_envelopes += 1;
                each(peer, owed);
            }
        }
    }

    /// Whether any credit is owed.
    pub fn owes(&self) -> bool {
        !self.owed.is_empty()
    }

    /// The credit state to carry into the next incarnation.
    pub fn ledger(&self) -> FlowLedger {
        let mut credits: Vec<_> = self
            .send
            .iter()
            .map(|(peer, window)| (*peer, window.available))
            .collect();
        credits.sort_unstable();
        let mut owed: Vec<_> = self.owed.iter().map(|(p, n)| (*p, *n)).collect();
        owed.sort_unstable();
        FlowLedger { credits, owed }
    }

    /// Replaces the credit counts with `ledger`'s (held envelopes stay).
    /// Counts are capped at the window and the tables at `max_peers`.
    pub fn adopt(&mut self, ledger: &FlowLedger) {
        for window in self.send.values_mut() {
            window.available = self.config.window;
        }
        for (peer, credits) in &ledger.credits {
            if self.send.len() >= self.config.max_peers && !self.send.contains_key(peer) {
                continue;
            }
            let window = self.send.entry(*peer).or_insert(SendWindow {
                available: 0,
                held: VecDeque::new(),
            });
            window.available = (*credits).min(self.config.window);
        }
        self.owed.clear();
        self.due.clear();
        for (peer, owed) in ledger.owed.iter().take(self.config.max_peers) {
            if *owed == 0 {
                continue;
            }
            self.owed.insert(*peer, *owed);
            if *owed >= self.config.return_batch {
                self.due.push(*peer);
            }
        }
    }

    /// Every held envelope with its command and completion, for a snapshot.
    pub fn held(&self) -> impl Iterator<Item = &Held> {
        self.send.values().flat_map(|w| w.held.iter())
    }

    /// Puts back a held envelope from a snapshot (after its window exists
    /// or is created with a full window).
    pub fn restore_held(&mut self, held: Held) -> Result<(), HoldError> {
        let dst = held.envelope.dst;
        if !self.send.contains_key(&dst) && self.send.len() < self.config.max_peers {
            self.send.insert(
                dst,
                SendWindow {
                    available: 0,
                    held: VecDeque::new(),
                },
            );
        }
        self.hold(held.cmd, held.envelope, held.completes)
    }

    /// Releases held envelopes for which credit is available now (after a
    /// restore or an [`FlowControl::adopt`]).
    pub fn release_ready(&mut self, released: &mut Vec<Held>) {
        let peers: Vec<PeerId> = self
            .send
            .iter()
            .filter(|(_, w)| w.available > 0 && !w.held.is_empty())
            .map(|(p, _)| *p)
            .collect();
        for peer in peers {
            self.release_from(peer, released);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::EnvelopeKind;

    const A: PeerId = PeerId::new(1);
    const B: PeerId = PeerId::new(2);

    fn flow(window: u32, batch: u32, max_held: usize) -> FlowControl {
        FlowControl::new(FlowConfig {
            window,
            return_batch: batch,
            max_held,
            ..FlowConfig::default()
        })
    }

    fn one_way(seq: u64) -> Envelope {
        Envelope::new(A, B, EnvelopeKind::OneWay).with_request_id(seq)
    }

    #[test]
    fn a_window_of_sends_leaves_then_the_rest_wait_in_order_for_credit() {
        let mut f = flow(2, 1, 8);
        assert!(f.try_send(one_way(1)).is_ok());
        assert!(f.try_send(one_way(2)).is_ok());
        for seq in 3..6 {
            let held = f.try_send(one_way(seq)).unwrap_err();
            f.hold(CommandId::new(seq), held, Some(0)).unwrap();
        }
        assert_eq!((f.credits(B), f.held_len()), (0, 3));
        let mut out = Vec::new();
        f.grant(B, 2, &mut out);
        let seqs: Vec<_> = out.iter().map(|h| h.envelope.wire_req_id).collect();
        assert_eq!(seqs, [Some(3), Some(4)]);
        // A new send queues behind the one still held, even with credit.
        f.grant(B, 0, &mut out);
        let late = f.try_send(one_way(9));
        assert!(late.is_err(), "order is kept behind held envelopes");
        assert_eq!(f.held_len(), 1);
    }

    #[test]
    fn grants_are_capped_at_the_window_and_answers_need_no_credit() {
        let mut f = flow(4, 2, 8);
        let mut out = Vec::new();
        assert!(f.try_send(one_way(1)).is_ok());
        f.grant(B, 100, &mut out);
        assert_eq!(
            f.credits(B),
            4,
            "a stale or duplicated return cannot widen the window"
        );
        let response = Envelope::new(A, B, EnvelopeKind::Response);
        for _ in 0..10 {
            assert!(f.try_send(response.clone()).is_ok());
        }
        assert_eq!(f.credits(B), 4);
    }

    #[test]
    fn the_receiver_returns_a_batch_and_piggy_backs_the_rest() {
        let mut f = flow(8, 3, 8);
        for _ in 0..4 {
            f.note_taken(A);
        }
        let mut returns = Vec::new();
        f.due_returns(|peer, n| returns.push((peer, n)));
        assert_eq!(returns, [(A, 4)]);
        f.note_taken(A);
        f.due_returns(|peer, n| returns.push((peer, n)));
        assert_eq!(returns.len(), 1, "below a batch nothing is sent alone");
        assert_eq!(f.take_owed(A), 1);
        assert_eq!(f.take_owed(A), 0);
        assert_eq!(f.stats().credits_returned, 5);
    }

    #[test]
    fn cancel_removes_only_its_envelope_and_the_hold_cap_stalls_the_node() {
        let mut f = flow(1, 1, 2);
        assert!(f.try_send(one_way(1)).is_ok());
        for seq in 2..4 {
            let e = f.try_send(one_way(seq)).unwrap_err();
            f.hold(CommandId::new(seq), e, None).unwrap();
        }
        assert!(f.is_stalled());
        // Past the stall point, work already taken may still hold, up to
        // the hard cap.
        for seq in 10..16 {
            let e = f.try_send(one_way(seq)).unwrap_err();
            f.hold(CommandId::new(seq), e, None).unwrap();
        }
        let e = f.try_send(one_way(4)).unwrap_err();
        assert!(matches!(
            f.hold(CommandId::new(4), e, None),
            Err(HoldError::Full { cap: 8, .. })
        ));
        for seq in 10..16 {
            f.cancel(CommandId::new(seq)).unwrap();
        }
        let gone = f.cancel(CommandId::new(2)).unwrap();
        assert_eq!(gone.envelope.wire_req_id, Some(2));
        assert!(f.cancel(CommandId::new(2)).is_none());
        assert!(!f.is_stalled());
        let mut out = Vec::new();
        f.grant(B, 1, &mut out);
        assert_eq!(out[0].envelope.wire_req_id, Some(3));
        assert_eq!(f.stats().expired, 7);
    }

    #[test]
    fn a_ledger_carries_credits_and_debts_into_a_fresh_incarnation() {
        let mut dead = flow(4, 2, 8);
        assert!(dead.try_send(one_way(1)).is_ok());
        assert!(dead.try_send(one_way(2)).is_ok());
        dead.note_taken(A);
        let ledger = dead.ledger();
        let mut next = flow(4, 2, 8);
        next.adopt(&ledger);
        assert_eq!(next.credits(B), 2);
        assert_eq!(next.take_owed(A), 1);
    }

    #[test]
    fn a_refused_envelope_gives_its_credit_back() {
        let mut f = flow(1, 1, 8);
        assert!(f.try_send(one_way(1)).is_ok());
        let e = f.try_send(one_way(2)).unwrap_err();
        f.hold(CommandId::new(2), e, Some(1)).unwrap();
        let mut out = Vec::new();
        f.refund(B, &mut out);
        assert_eq!(out.len(), 1, "the refund lets the held envelope go");
        assert_eq!(f.stats().credits_received, 0);
    }

    #[test]
    fn with_flow_control_off_everything_leaves() {
        let mut f = FlowControl::new(FlowConfig {
            enabled: false,
            window: 1,
            ..FlowConfig::default()
        });
        for seq in 0..10 {
            assert!(f.try_send(one_way(seq)).is_ok());
        }
        f.note_taken(A);
        assert!(!f.owes());
    }
}
